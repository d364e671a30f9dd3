//! Control routes of the FlexFactor simulator, under `/_sandbox/flexfactor/` on the sandbox's
//! control port (which stays up while the FlexFactor port is offline).

use super::model::{Settings, World};
use super::{Ff, LOSE_KINDS};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;

type Sh = State<Arc<Ff>>;

pub(super) fn router(ff: Arc<Ff>) -> Router {
    Router::new()
        .route("/_sandbox/flexfactor/state", get(state))
        .route(
            "/_sandbox/flexfactor/faults",
            get(faults_get).post(faults_set).delete(faults_clear),
        )
        .route(
            "/_sandbox/flexfactor/clock",
            get(clock_get).post(clock_set).delete(clock_reset),
        )
        .route(
            "/_sandbox/flexfactor/settings",
            get(settings_get).post(settings_set),
        )
        .route("/_sandbox/flexfactor/reset", post(reset))
        .with_state(ff)
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

async fn state(State(ff): Sh) -> Response {
    let mut v = ff.world().inspect();
    v["faults"] = ff.faults().json();
    v["settings"] = settings_json(&ff.world().settings);
    v["url"] = json!(ff.url);
    Json(v).into_response()
}

async fn faults_get(State(ff): Sh) -> Response {
    Json(ff.faults().json()).into_response()
}

async fn faults_set(State(ff): Sh, bytes: Bytes) -> Response {
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
        let mut f = ff.faults();
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
        if let Err(e) = ff.set_offline(off).await {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("cannot re-bind: {e}"),
            );
        }
    }
    Json(ff.faults().json()).into_response()
}

async fn faults_clear(State(ff): Sh) -> Response {
    if let Err(e) = ff.set_offline(false).await {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot re-bind: {e}"),
        );
    }
    *ff.faults() = Default::default();
    Json(ff.faults().json()).into_response()
}

fn clock_json(w: &World) -> Value {
    json!({"now": w.now().unix_timestamp(), "offsetSeconds": w.clock_offset.whole_seconds()})
}

async fn clock_get(State(ff): Sh) -> Response {
    Json(clock_json(&ff.world())).into_response()
}

/// `{"advanceSeconds": N}` moves the simulated clock forward (access-token expiry).
async fn clock_set(State(ff): Sh, bytes: Bytes) -> Response {
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
    let mut w = ff.world();
    w.clock_offset += time::Duration::seconds(secs);
    Json(clock_json(&w)).into_response()
}

async fn clock_reset(State(ff): Sh) -> Response {
    let mut w = ff.world();
    w.clock_offset = time::Duration::ZERO;
    Json(clock_json(&w)).into_response()
}

fn settings_json(s: &Settings) -> Value {
    json!({
        "webhookUrl": s.webhook_url,
        "webhookTimeScale": s.webhook_time_scale,
        "settleMs": s.settle_ms,
        "tokenLifetimeSeconds": s.token_lifetime_secs,
    })
}

async fn settings_get(State(ff): Sh) -> Response {
    Json(settings_json(&ff.world().settings)).into_response()
}

/// `{"webhookUrl": "http://…" | null, "webhookTimeScale": ≥1, "settleMs": n,
/// "tokenLifetimeSeconds": ≥1}`; every invalid field is named and nothing changes.
async fn settings_set(State(ff): Sh, bytes: Bytes) -> Response {
    let b = match body(&bytes) {
        Ok(b) => b,
        Err(Bad(m)) => return error(StatusCode::BAD_REQUEST, m),
    };
    let mut errors = Vec::new();
    let url = match b.get("webhookUrl") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(u)) if u.starts_with("http://") || u.starts_with("https://") => {
            Some(Some(u.clone()))
        }
        Some(_) => {
            errors.push("webhookUrl must be an http(s) URL or null");
            None
        }
    };
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
    let settle = match b.get("settleMs") {
        None => None,
        Some(v) => match v.as_u64() {
            Some(ms) => Some(ms),
            None => {
                errors.push("settleMs must be a whole number");
                None
            }
        },
    };
    let lifetime = match b.get("tokenLifetimeSeconds") {
        None => None,
        Some(v) => match v.as_i64().filter(|s| *s >= 1) {
            Some(s) => Some(s),
            None => {
                errors.push("tokenLifetimeSeconds must be a whole number ≥ 1");
                None
            }
        },
    };
    if !errors.is_empty() {
        return error(StatusCode::BAD_REQUEST, &errors.join("; "));
    }
    let mut w = ff.world();
    if let Some(u) = url {
        w.settings.webhook_url = u;
    }
    if let Some(s) = scale {
        w.settings.webhook_time_scale = s;
    }
    if let Some(ms) = settle {
        w.settings.settle_ms = ms;
    }
    if let Some(s) = lifetime {
        w.settings.token_lifetime_secs = s;
    }
    Json(settings_json(&w.settings)).into_response()
}

async fn reset(State(ff): Sh) -> Response {
    if let Err(e) = ff.set_offline(false).await {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot re-bind: {e}"),
        );
    }
    *ff.faults() = Default::default();
    *ff.world() = World::default();
    tracing::info!("flexfactor sandbox reset");
    Json(json!({"reset": true})).into_response()
}
