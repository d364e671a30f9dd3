//! Control routes of the Acquired simulator, under `/_sandbox/acquired/` on the sandbox's
//! control port (which stays up while the Acquired API port is offline).

use super::model::{World, TOKEN_LIFETIME};
use super::{Aq, LOSE_KINDS};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;

type Sh = State<Arc<Aq>>;

pub(super) fn router(aq: Arc<Aq>) -> Router {
    Router::new()
        .route("/_sandbox/acquired/state", get(state))
        .route("/_sandbox/acquired/faults", get(faults_get).post(faults_set).delete(faults_clear))
        .route("/_sandbox/acquired/clock", get(clock_get).post(clock_set).delete(clock_reset))
        .route("/_sandbox/acquired/settings", get(settings_get).post(settings_set))
        .route("/_sandbox/acquired/tokens/expire", post(expire_tokens))
        .route("/_sandbox/acquired/reset", post(reset))
        .with_state(aq)
}

fn error(code: StatusCode, message: &str) -> Response {
    (code, Json(json!({"error": message}))).into_response()
}

fn body(bytes: &[u8]) -> Result<serde_json::Map<String, Value>, Response> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(error(StatusCode::BAD_REQUEST, "body must be a JSON object")),
    }
}

async fn state(State(aq): Sh) -> Response {
    let mut v = aq.world().inspect();
    v["faults"] = aq.faults().json();
    v["settings"] = json!({"webhookTimeScale": aq.world().settings.webhook_time_scale});
    v["apiUrl"] = json!(aq.api_url);
    v["componentsUrl"] = json!(aq.components_url);
    Json(v).into_response()
}

async fn faults_get(State(aq): Sh) -> Response {
    Json(aq.faults().json()).into_response()
}

async fn faults_set(State(aq): Sh, bytes: Bytes) -> Response {
    let b = match body(&bytes) {
        Ok(b) => b,
        Err(r) => return r,
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
            let kinds: Vec<String> = items.iter().filter_map(|i| i.as_str().map(str::to_string)).collect();
            if kinds.len() != items.len() || kinds.iter().any(|k| !LOSE_KINDS.contains(&k.as_str())) {
                errors.push(format!("loseNextResponse items must be among {}", LOSE_KINDS.join(", ")));
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
        let mut f = aq.faults();
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
        if let Err(e) = aq.set_offline(off).await {
            return error(StatusCode::INTERNAL_SERVER_ERROR, &format!("cannot re-bind: {e}"));
        }
    }
    Json(aq.faults().json()).into_response()
}

async fn faults_clear(State(aq): Sh) -> Response {
    if let Err(e) = aq.set_offline(false).await {
        return error(StatusCode::INTERNAL_SERVER_ERROR, &format!("cannot re-bind: {e}"));
    }
    *aq.faults() = Default::default();
    Json(aq.faults().json()).into_response()
}

fn clock_json(w: &World) -> Value {
    json!({"now": w.now().unix_timestamp(), "offsetSeconds": w.clock_offset.whole_seconds()})
}

async fn clock_get(State(aq): Sh) -> Response {
    Json(clock_json(&aq.world())).into_response()
}

/// `{"advanceSeconds": N}` moves the simulated clock forward (token hour, session minutes).
async fn clock_set(State(aq): Sh, bytes: Bytes) -> Response {
    let b = match body(&bytes) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(secs) = b.get("advanceSeconds").and_then(Value::as_i64).filter(|s| *s >= 0) else {
        return error(StatusCode::BAD_REQUEST, "advanceSeconds must be a whole number ≥ 0");
    };
    let mut w = aq.world();
    w.clock_offset += time::Duration::seconds(secs);
    Json(clock_json(&w)).into_response()
}

async fn clock_reset(State(aq): Sh) -> Response {
    let mut w = aq.world();
    w.clock_offset = time::Duration::ZERO;
    Json(clock_json(&w)).into_response()
}

/// Ends every issued token now (their hour is over), without moving the clock.
async fn expire_tokens(State(aq): Sh) -> Response {
    let mut w = aq.world();
    let past = w.now() - TOKEN_LIFETIME;
    let n = w.tokens.len();
    for t in w.tokens.values_mut() {
        t.expires = past;
    }
    Json(json!({"expired": n})).into_response()
}

async fn settings_get(State(aq): Sh) -> Response {
    Json(json!({"webhookTimeScale": aq.world().settings.webhook_time_scale})).into_response()
}

async fn settings_set(State(aq): Sh, bytes: Bytes) -> Response {
    let b = match body(&bytes) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let scale = match b.get("webhookTimeScale") {
        None => None,
        Some(v) => match v.as_f64().filter(|s| *s >= 1.0 && s.is_finite()) {
            Some(s) => Some(s),
            None => return error(StatusCode::BAD_REQUEST, "webhookTimeScale must be a number ≥ 1"),
        },
    };
    let mut w = aq.world();
    if let Some(s) = scale {
        w.settings.webhook_time_scale = s;
    }
    Json(json!({"webhookTimeScale": w.settings.webhook_time_scale})).into_response()
}

async fn reset(State(aq): Sh) -> Response {
    if let Err(e) = aq.set_offline(false).await {
        return error(StatusCode::INTERNAL_SERVER_ERROR, &format!("cannot re-bind: {e}"));
    }
    *aq.faults() = Default::default();
    *aq.world() = World::default();
    tracing::info!("acquired sandbox reset");
    Json(json!({"reset": true})).into_response()
}
