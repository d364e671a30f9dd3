//! Control routes of the Connect-E simulator, under `/_sandbox/connect-e/` on the sandbox's
//! control port (which stays up while the Connect-E port is offline).

use super::model::{Settings, World};
use super::{Ce, LOSE_KINDS};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;

type Sh = State<Arc<Ce>>;

pub(super) fn router(ce: Arc<Ce>) -> Router {
    Router::new()
        .route("/_sandbox/connect-e/state", get(state))
        .route(
            "/_sandbox/connect-e/faults",
            get(faults_get).post(faults_set).delete(faults_clear),
        )
        .route(
            "/_sandbox/connect-e/clock",
            get(clock_get).post(clock_set).delete(clock_reset),
        )
        .route(
            "/_sandbox/connect-e/settings",
            get(settings_get).post(settings_set),
        )
        .route("/_sandbox/connect-e/reset", post(reset))
        .with_state(ce)
}

fn error(code: StatusCode, message: &str) -> Response {
    (code, Json(json!({"error": message}))).into_response()
}

/// A refused control request (kept small; turned into a response at the handler).
struct Bad(&'static str);

fn body(bytes: &[u8]) -> Result<serde_json::Map<String, Value>, Bad> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Bad("body must be a JSON object")),
    }
}

async fn state(State(ce): Sh) -> Response {
    let mut v = ce.world().inspect();
    v["faults"] = ce.faults().json();
    v["settings"] = settings_json(&ce.world().settings);
    v["url"] = json!(ce.url);
    Json(v).into_response()
}

async fn faults_get(State(ce): Sh) -> Response {
    Json(ce.faults().json()).into_response()
}

async fn faults_set(State(ce): Sh, bytes: Bytes) -> Response {
    let b = match body(&bytes) {
        Ok(b) => b,
        Err(Bad(m)) => return error(StatusCode::BAD_REQUEST, m),
    };
    // Validate everything before changing anything.
    let mut errors = Vec::new();
    let offline = match b.get("offline") {
        None => None,
        Some(Value::Bool(v)) => Some(*v),
        Some(_) => {
            errors.push("offline must be a boolean".to_string());
            None
        }
    };
    let fail_next = match b.get("failNext") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => {
            let count = v.get("count").and_then(Value::as_u64).unwrap_or(1);
            let status = v.get("status").and_then(Value::as_u64).unwrap_or(500);
            if !(400..=599).contains(&status) || count > u64::from(u32::MAX) {
                errors.push("failNext needs count ≥ 0 and status 400–599".to_string());
                None
            } else {
                Some((count > 0).then_some((count as u32, status as u16)))
            }
        }
    };
    let latency = match b.get("latencyMs") {
        None => None,
        Some(v) => match v.as_u64() {
            Some(ms) => Some(ms),
            None => {
                errors.push("latencyMs must be a whole number".to_string());
                None
            }
        },
    };
    let lose = match b.get("loseNextResponse") {
        None => None,
        Some(Value::Array(items)) => {
            let kinds: Vec<String> = items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect();
            if kinds.len() != items.len() || kinds.iter().any(|k| !LOSE_KINDS.contains(&k.as_str()))
            {
                errors.push(format!(
                    "loseNextResponse items must be among {}",
                    LOSE_KINDS.join(", ")
                ));
            }
            Some(kinds)
        }
        Some(_) => {
            errors.push("loseNextResponse must be an array".to_string());
            None
        }
    };
    if !errors.is_empty() {
        return error(StatusCode::BAD_REQUEST, &errors.join("; "));
    }
    {
        let mut f = ce.faults();
        if let Some(x) = fail_next {
            f.fail_next = x;
        }
        if let Some(ms) = latency {
            f.latency_ms = ms;
        }
        if let Some(k) = lose {
            f.lose_next = k;
        }
    }
    if let Some(off) = offline {
        if let Err(e) = ce.set_offline(off).await {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("cannot re-bind: {e}"),
            );
        }
    }
    Json(ce.faults().json()).into_response()
}

async fn faults_clear(State(ce): Sh) -> Response {
    if let Err(e) = ce.set_offline(false).await {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot re-bind: {e}"),
        );
    }
    *ce.faults() = Default::default();
    Json(ce.faults().json()).into_response()
}

fn clock_json(w: &World) -> Value {
    json!({"now": w.now().unix_timestamp(), "offsetSeconds": w.clock_offset.whole_seconds()})
}

async fn clock_get(State(ce): Sh) -> Response {
    Json(clock_json(&ce.world())).into_response()
}

/// `{"advanceSeconds": N}` moves the simulated clock forward (token expiry, resume window).
async fn clock_set(State(ce): Sh, bytes: Bytes) -> Response {
    let b = match body(&bytes) {
        Ok(b) => b,
        Err(Bad(m)) => return error(StatusCode::BAD_REQUEST, m),
    };
    let Some(secs) = b
        .get("advanceSeconds")
        .and_then(Value::as_i64)
        .filter(|s| *s >= 0)
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "advanceSeconds must be a whole number ≥ 0",
        );
    };
    let mut w = ce.world();
    w.clock_offset += time::Duration::seconds(secs);
    Json(clock_json(&w)).into_response()
}

async fn clock_reset(State(ce): Sh) -> Response {
    let mut w = ce.world();
    w.clock_offset = time::Duration::ZERO;
    Json(clock_json(&w)).into_response()
}

fn settings_json(s: &Settings) -> Value {
    json!({
        "webhookTimeScale": s.webhook_time_scale,
        "processingMs": s.processing_ms,
        "nextStatus": s.next_status,
    })
}

async fn settings_get(State(ce): Sh) -> Response {
    Json(settings_json(&ce.world().settings)).into_response()
}

async fn settings_set(State(ce): Sh, bytes: Bytes) -> Response {
    let b = match body(&bytes) {
        Ok(b) => b,
        Err(Bad(m)) => return error(StatusCode::BAD_REQUEST, m),
    };
    let mut errors = Vec::new();
    let scale = match b.get("webhookTimeScale") {
        None => None,
        Some(v) => match v.as_f64().filter(|s| *s >= 1.0 && s.is_finite()) {
            Some(s) => Some(s),
            None => {
                errors.push("webhookTimeScale must be a number ≥ 1");
                None
            }
        },
    };
    let processing = match b.get("processingMs") {
        None => None,
        Some(v) => match v.as_u64() {
            Some(ms) => Some(ms),
            None => {
                errors.push("processingMs must be a whole number");
                None
            }
        },
    };
    let next = match b.get("nextStatus") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => match v.as_i64().filter(|c| matches!(c, 4 | 5 | 20 | 30)) {
            Some(c) => Some(Some(c)),
            None => {
                errors.push("nextStatus must be 4, 5, 20, 30 or null");
                None
            }
        },
    };
    if !errors.is_empty() {
        return error(StatusCode::BAD_REQUEST, &errors.join("; "));
    }
    let mut w = ce.world();
    if let Some(s) = scale {
        w.settings.webhook_time_scale = s;
    }
    if let Some(p) = processing {
        w.settings.processing_ms = p;
    }
    if let Some(n) = next {
        w.settings.next_status = n;
    }
    Json(settings_json(&w.settings)).into_response()
}

async fn reset(State(ce): Sh) -> Response {
    if let Err(e) = ce.set_offline(false).await {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot re-bind: {e}"),
        );
    }
    *ce.faults() = Default::default();
    *ce.world() = World::default();
    tracing::info!("connect-e sandbox reset");
    Json(json!({"reset": true})).into_response()
}
