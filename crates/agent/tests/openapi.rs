//! docs/openapi.json against the code: the paths and methods the router serves, the status codes
//! real requests get, the error types the agent can answer and the event-stream events. A change
//! to any of them without the document fails here.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use till_agent::config::{Config, FileConfig, Overrides};
use till_agent::error::AgentError;
use till_agent::events::{AgentEvent, ConnectivityEvent, StatusEvent};

fn doc() -> Value {
    serde_json::from_str(till_agent::api::openapi::DOCUMENT).expect("docs/openapi.json is JSON")
}

fn source(file: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (path, method) pairs the document describes.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                ops.insert((path.clone(), method.to_string()));
            }
        }
    }
    ops
}

/// (path, method) pairs registered in `src/api/mod.rs` with `.route("…", get(…).post(…))`: the
/// text between `.route(` and its closing parenthesis, its first string literal and the method
/// router functions named in it. A catch-all (`{*…}`) is the SensePass passthrough, which the
/// document describes in prose, not as a path.
fn routed() -> BTreeSet<(String, String)> {
    let src = source("src/api/mod.rs");
    let mut ops = BTreeSet::new();
    let mut rest = src.as_str();
    while let Some(i) = rest.find(".route(") {
        let after = &rest[i + ".route(".len()..];
        let mut depth = 1;
        let mut end = after.len();
        for (j, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = j;
                        break;
                    }
                }
                _ => {}
            }
        }
        let call = &after[..end];
        rest = &after[end..];
        let path = call.split('"').nth(1).expect("a route path literal").to_string();
        if path.contains("{*") {
            continue;
        }
        for method in ["get", "post", "put", "patch", "delete", "any"] {
            let named = call
                .match_indices(&format!("{method}("))
                .any(|(k, _)| k == 0 || !call.as_bytes()[k - 1].is_ascii_alphanumeric() && call.as_bytes()[k - 1] != b'_');
            if named {
                assert_ne!(method, "any", "{path}: a route for any method cannot be documented; name the methods");
                ops.insert((path.clone(), method.to_string()));
            }
        }
    }
    ops
}

#[test]
fn the_document_is_openapi_3_1_with_this_version() {
    let d = doc();
    assert_eq!(d["openapi"], "3.1.0");
    assert_eq!(d["info"]["version"], env!("CARGO_PKG_VERSION"), "bump info.version in docs/openapi.json");
    if let Err(e) = serde_json::from_str::<utoipa::openapi::OpenApi>(till_agent::api::openapi::DOCUMENT) {
        panic!("docs/openapi.json does not parse as an OpenAPI document: {e}");
    }
    for scheme in ["posToken", "managerSession"] {
        assert_eq!(d["components"]["securitySchemes"][scheme]["scheme"], "bearer");
    }
    assert_eq!(d["components"]["parameters"]["IdempotencyKey"]["name"], "Idempotency-Key");
}

#[test]
fn the_document_and_the_router_have_the_same_paths_and_methods() {
    let d = doc();
    let documented = documented(&d);
    let routed = routed();
    assert!(!routed.is_empty());
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(undocumented.is_empty(), "routed but not in docs/openapi.json: {undocumented:?}");
    assert!(unrouted.is_empty(), "in docs/openapi.json but not routed: {unrouted:?}");
}

/// Each operation lists the codes its kind of request can get: 403 (Host/Origin guard) always;
/// 400, 413 and 415 with a body; 401 with a security requirement; only codes of the list below.
#[test]
fn every_operation_lists_the_codes_of_its_kind() {
    let d = doc();
    let allowed: BTreeSet<&str> =
        ["200", "201", "202", "400", "401", "403", "404", "409", "413", "415", "422", "500", "501", "502", "503", "504"].into();
    for (path, method) in documented(&d) {
        let op = &d["paths"][&path][&method];
        let codes: BTreeSet<&str> = op["responses"].as_object().expect("responses").keys().map(String::as_str).collect();
        let name = format!("{} {path}", method.to_uppercase());
        assert!(codes.is_subset(&allowed), "{name}: {codes:?}");
        assert!(codes.contains("403"), "{name} lacks 403");
        assert!(codes.contains("200"), "{name} lacks 200");
        if op.get("requestBody").is_some() {
            for c in ["400", "413", "415"] {
                assert!(codes.contains(c), "{name} takes a body but lacks {c}");
            }
        }
        let secured = op["security"].as_array().map(|s| s.iter().any(|r| r.as_object().map(|o| !o.is_empty()).unwrap_or(false))).unwrap_or(false);
        if secured {
            assert!(codes.contains("401"), "{name} needs a token but lacks 401");
        }
        assert!(op["operationId"].is_string(), "{name} has no operationId");
    }
}

/// One arm per variant, no wildcard: a new error variant does not compile until it is listed
/// here, and then its error type must be in the document.
fn error_type_of_every_variant() -> BTreeMap<&'static str, u16> {
    let every = vec![
        AgentError::invalid("x", "y"),
        AgentError::NotPaired,
        AgentError::Busy { number: None, local_id: String::new() },
        AgentError::IdempotencyMismatch { number: None, local_id: String::new(), amount_minor: 0, currency: String::new() },
        AgentError::NotFound(String::new()),
        AgentError::Unauthorized,
        AgentError::ManagerOnly,
        AgentError::Login(String::new()),
        AgentError::Conflict(String::new()),
        AgentError::RefundCap { remaining: 0 },
        AgentError::QueueFull(String::new()),
        AgentError::Unreachable(String::new()),
        AgentError::ProviderUnreachable(String::new()),
        AgentError::Uncertain(String::new()),
        AgentError::Printer(String::new()),
        AgentError::Upstream { status: 501, body: Value::Null },
        AgentError::Recovering,
        AgentError::BadGateway(String::new()),
        AgentError::Internal(String::new()),
    ];
    let mut types = BTreeMap::new();
    for e in &every {
        match e {
            // SensePass's own body is passed through: not an error_type of ours.
            AgentError::Upstream { .. } => continue,
            AgentError::Invalid(_)
            | AgentError::NotPaired
            | AgentError::Busy { .. }
            | AgentError::IdempotencyMismatch { .. }
            | AgentError::NotFound(_)
            | AgentError::Unauthorized
            | AgentError::ManagerOnly
            | AgentError::Login(_)
            | AgentError::Conflict(_)
            | AgentError::RefundCap { .. }
            | AgentError::QueueFull(_)
            | AgentError::Unreachable(_)
            | AgentError::ProviderUnreachable(_)
            | AgentError::Uncertain(_)
            | AgentError::Printer(_)
            | AgentError::Recovering
            | AgentError::BadGateway(_)
            | AgentError::Internal(_) => {}
        }
        let (status, kind) = e.status_and_type();
        types.insert(kind, status.as_u16());
    }
    types
}

#[test]
fn every_error_type_is_documented_and_nothing_else() {
    let d = doc();
    let documented: BTreeSet<String> = d["components"]["schemas"]["ErrorType"]["enum"]
        .as_array()
        .expect("ErrorType enum")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let mut made: BTreeSet<String> = error_type_of_every_variant().keys().map(|k| k.to_string()).collect();
    // The guard in front of the router answers these itself.
    let security = source("src/api/security.rs");
    for part in security.split("refuse(").skip(1).map(str::trim_start).filter(|p| p.starts_with("StatusCode::")) {
        if let Some(kind) = part.split('"').nth(1) {
            made.insert(kind.to_string());
        }
    }
    assert!(made.contains("forbidden_host"), "the guard's error types were not found in security.rs");
    let missing: Vec<_> = made.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&made).collect();
    assert!(missing.is_empty(), "error types the agent answers but docs/openapi.json does not list: {missing:?}");
    assert!(stale.is_empty(), "error types docs/openapi.json lists but the agent never answers: {stale:?}");
    // Each error type's status is documented in components.responses.
    for (kind, status) in error_type_of_every_variant() {
        let key = format!("E{status}");
        assert!(d["components"]["responses"].get(&key).is_some(), "{kind} answers {status}, which has no documented response");
    }
}

#[test]
fn the_event_stream_events_are_documented() {
    let d = doc();
    let events = &d["paths"]["/api/agent/events"]["get"]["responses"]["200"]["content"]["text/event-stream"]["x-events"];
    let documented: BTreeSet<&str> = events.as_object().expect("x-events").keys().map(String::as_str).collect();
    let status = StatusEvent {
        local_id: String::new(),
        transaction_number: None,
        status: None,
        status_key: String::new(),
        is_final: false,
        source: String::new(),
        transaction: None,
        lines: Vec::new(),
    };
    let mut made: BTreeSet<&str> = [
        AgentEvent::Status(status).name(),
        AgentEvent::Connectivity(ConnectivityEvent { socket_connected: true }).name(),
        AgentEvent::Operation { id: 0, state: String::new() }.name(),
        AgentEvent::Payment(serde_json::json!({})).name(),
    ]
    .into();
    // Written by the handler itself: the greeting and the slow-subscriber notice.
    made.extend(["hello", "lagged"]);
    assert_eq!(documented, made);
}

/// Every documented operation, sent to the real router of an unpaired agent: the answer is one
/// of the codes the document lists for it (so neither a 405 nor the web UI's fallback).
#[tokio::test]
async fn real_requests_get_documented_codes() {
    let dir = std::env::temp_dir().join(format!("till-openapi-{}", uuid::Uuid::new_v4()));
    let config = Config::merge(
        FileConfig::default(),
        Overrides {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            data_dir: Some(dir.clone()),
            // Nothing listens on port 1: every SensePass call is certainly not sent.
            sensepass_url: Some("http://127.0.0.1:1/api/".into()),
            socket_url: Some("http://127.0.0.1:1".into()),
            waive_pos_token: None,
        },
    )
    .unwrap();
    let running = till_agent::start(config).await.unwrap();
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(20)).build().unwrap();
    let d = doc();
    let mut wrong = Vec::new();
    for (path, method) in documented(&d) {
        let op = &d["paths"][&path][&method];
        let concrete: String = path
            .split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let mut req = http.request(m, format!("{base}{concrete}"));
        if op.get("requestBody").is_some() {
            req = req.header("content-type", "application/json").body("{}");
        }
        let response = req.send().await.unwrap();
        let status = response.status().as_u16().to_string();
        if op["responses"].get(&status).is_none() {
            wrong.push(format!("{} {concrete} answered {status}", method.to_uppercase()));
        }
    }
    running.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(wrong.is_empty(), "answers docs/openapi.json does not list: {wrong:#?}");
}

/// Hanging up a sync call cancels the payment: the document and the integration guide both say
/// so, with the read timeout a POS must use.
#[test]
fn the_sync_read_timeout_is_documented() {
    let d = doc();
    let sync = d["paths"]["/api/transactions/init/sync"]["post"]["description"].as_str().unwrap_or_default();
    assert!(sync.contains("cancels the payment") && sync.contains("timeOut` + 60 s"), "{sync}");
    let guide = source("../../docs/INTEGRATION.md");
    assert!(guide.contains("**Hanging up a sync call cancels the payment.**"));
    assert!(guide.contains("read timeout for `init/sync` ≥ `timeOut` + 60 seconds"));
}
