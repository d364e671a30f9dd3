//! The control API (`/_sandbox` on its own port): ground truth for tests, consumer actions,
//! faults, autopilot and reset. It stays up while the main listener is "offline".

use crate::app::{Autopilot, Shared};
use crate::model::{find_card, FlowError, TEST_CARDS};
use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;
use till_core::Status;

type Sh = AxState<Arc<Shared>>;

/// The control router (paths include the `/_sandbox` prefix).
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_sandbox/state", get(state))
        .route("/_sandbox/transactions/{n}/{action}", post(action))
        .route("/_sandbox/devices", post(create_device))
        .route("/_sandbox/devices/{device}/customer-input", post(answer_input))
        .route("/_sandbox/faults", get(faults_get).post(faults_set).delete(faults_clear))
        .route("/_sandbox/autopilot", get(autopilot_get).post(autopilot_set).delete(autopilot_off))
        .route("/_sandbox/settings", get(settings_get).post(settings_set))
        .route("/_sandbox/reset", post(reset))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such control endpoint") })
        .with_state(shared)
}

fn error(code: StatusCode, message: &str) -> Response {
    (code, Json(json!({"error": message}))).into_response()
}

/// A control request the sandbox refuses (small, unlike a whole `Response`).
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.0, &self.1)
    }
}

fn body(bytes: &[u8]) -> Result<Value, Refusal> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(Refusal(StatusCode::BAD_REQUEST, "body must be a JSON object".into())),
        Err(e) => Err(Refusal(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}"))),
    }
}

fn flow(result: Result<(), FlowError>, sh: &Shared, n: &str) -> Response {
    match result {
        Ok(()) => {
            let st = sh.state();
            match st.txns.get(n) {
                Some(txn) => Json(st.inspect(txn)).into_response(),
                None => error(StatusCode::NOT_FOUND, "transaction not found"),
            }
        }
        Err(FlowError::NotFound) => error(StatusCode::NOT_FOUND, "transaction not found"),
        Err(FlowError::Conflict(m)) => error(StatusCode::CONFLICT, &m),
    }
}

async fn state(AxState(sh): Sh) -> Response {
    let st = sh.state();
    let transactions: Vec<Value> =
        st.order.iter().filter_map(|n| st.txns.get(n)).map(|t| st.inspect(t)).collect();
    let devices: Vec<Value> = st
        .device_order
        .iter()
        .filter_map(|d| st.devices.get(d))
        .map(|d| {
            let mut v = d.json(&sh.public_url);
            v["pendingCustomerInput"] = json!(sh.pending_inputs(&d.id));
            v["created"] = json!(crate::model::fmt_time(d.created));
            v
        })
        .collect();
    let subscriptions: Vec<Value> = st.subscriptions.values().map(|s| s.json()).collect();
    Json(json!({
        "transactions": transactions,
        "devices": devices,
        "subscriptions": subscriptions,
        "calls": st.calls,
        "faults": sh.faults().json(),
        "autopilot": sh.autopilot().map(|a| json!({"approveAfterMs": a.approve_after_ms, "card": a.card.number})),
    }))
    .into_response()
}

async fn action(AxState(sh): Sh, Path((n, action)): Path<(String, String)>, bytes: Bytes) -> Response {
    let b = match body(&bytes) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    let result = match action.as_str() {
        "tap" => sh.state().tap(&n),
        "approve" => sh.state().approve_now(&n),
        "decline" => sh.state().finish(&n, Status::Declined),
        "fail" => sh.state().finish(&n, Status::Failed),
        "expire" => sh.state().finish(&n, Status::Timeout),
        "abandon" => sh.state().consumer_decline(&n),
        "pay" => {
            let number = b.get("card").and_then(Value::as_str).unwrap_or(TEST_CARDS[1].number);
            let Some(card) = find_card(number) else {
                return error(StatusCode::BAD_REQUEST, "card is not a sandbox test card");
            };
            sh.state().consumer_pay(&n, card, true).map(|_| ())
        }
        // SensePass no longer knows the transaction (a restart lost it, or it was created in
        // another environment): every later look-up, cancel or payment of it answers 404.
        "forget" => {
            let removed = sh.state().txns.remove(&n).is_some();
            if !removed {
                return error(StatusCode::NOT_FOUND, "transaction not found");
            }
            return Json(json!({"forgotten": n})).into_response();
        }
        "emit" => {
            let status = match b.get("status") {
                None | Some(Value::Null) => None,
                Some(v) => match v.as_i64().and_then(Status::from_code) {
                    Some(s) => Some(s),
                    None => return error(StatusCode::BAD_REQUEST, "status must be a code 0–13"),
                },
            };
            let st = sh.state();
            if !st.txns.contains_key(&n) {
                return error(StatusCode::NOT_FOUND, "transaction not found");
            }
            let sent = st.emit(&n, status);
            return Json(json!({"emitted": sent})).into_response();
        }
        _ => return error(StatusCode::NOT_FOUND, "unknown action"),
    };
    flow(result, &sh, &n)
}

async fn create_device(AxState(sh): Sh, bytes: Bytes) -> Response {
    let b = match body(&bytes) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    let name = b.get("posName").and_then(Value::as_str).unwrap_or("Sandbox Register").to_string();
    let pin = b.get("pinCode").and_then(Value::as_str).map(str::to_string);
    let device = sh.state().create_device(name, pin, None);
    Json(device.json(&sh.public_url)).into_response()
}

async fn answer_input(AxState(sh): Sh, Path(device): Path<String>, bytes: Bytes) -> Response {
    let b = match body(&bytes) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    let Some(answers) = b.get("answers").and_then(Value::as_array).cloned() else {
        return error(StatusCode::BAD_REQUEST, "answers must be an array of strings");
    };
    let Some(pending) = sh.take_input(&device) else {
        return error(StatusCode::NOT_FOUND, "no customer input is pending on this device");
    };
    if answers.len() != pending.inputs.len() || answers.iter().any(|a| !a.is_string()) {
        let message = format!("expected {} string answers", pending.inputs.len());
        sh.restore_input(&device, pending);
        return error(StatusCode::BAD_REQUEST, &message);
    }
    for (q, a) in pending.inputs.iter().zip(&answers) {
        let min = q.get("minimumLength").and_then(Value::as_u64).unwrap_or(0) as usize;
        if a.as_str().map(|s| s.chars().count()).unwrap_or(0) < min {
            let message = format!("answer to {:?} is shorter than {min}", q.get("question"));
            sh.restore_input(&device, pending);
            return error(StatusCode::BAD_REQUEST, &message);
        }
    }
    let results: Vec<Value> = pending
        .inputs
        .iter()
        .zip(answers)
        .map(|(q, a)| {
            let mut r = q.clone();
            r["input"] = a;
            r
        })
        .collect();
    let delivered = pending.tx.send(crate::app::InputOutcome::Answered(results.clone())).is_ok();
    Json(json!({"delivered": delivered, "results": results})).into_response()
}

async fn faults_get(AxState(sh): Sh) -> Response {
    Json(sh.faults().json()).into_response()
}

/// Switches the main listener on or off to match `offline`.
async fn apply_offline(sh: &Shared, offline: bool) -> Result<(), Response> {
    let mut main = sh.main.lock().await;
    let Some(server) = main.as_mut() else { return Ok(()) };
    if offline && server.is_online() {
        server.go_offline().await;
        sh.new_epoch();
    } else if !offline && !server.is_online() {
        if let Err(e) = server.go_online().await {
            return Err(error(StatusCode::INTERNAL_SERVER_ERROR, &format!("cannot re-bind: {e}")));
        }
    }
    sh.faults().offline = offline;
    Ok(())
}

async fn faults_set(AxState(sh): Sh, bytes: Bytes) -> Response {
    let b = match body(&bytes) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    // Validate everything before changing anything.
    let offline = match b.get("offline") {
        None => None,
        Some(Value::Bool(v)) => Some(*v),
        Some(_) => return error(StatusCode::BAD_REQUEST, "offline must be a boolean"),
    };
    let fail_next = match b.get("failNext") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => {
            let count = v.get("count").and_then(Value::as_u64).unwrap_or(1);
            let status = v.get("status").and_then(Value::as_u64).unwrap_or(503);
            if !(400..=599).contains(&status) || count > u64::from(u32::MAX) {
                return error(StatusCode::BAD_REQUEST, "failNext needs count ≥ 0 and status 400–599");
            }
            Some((count > 0).then_some((count as u32, status as u16)))
        }
    };
    let latency = match b.get("latencyMs") {
        None => None,
        Some(v) => match v.as_u64() {
            Some(ms) => Some(ms),
            None => return error(StatusCode::BAD_REQUEST, "latencyMs must be a whole number"),
        },
    };
    let lose = match b.get("loseNextResponse") {
        None => None,
        Some(Value::Array(items)) => {
            let mut kinds = Vec::new();
            for item in items {
                match item.as_str() {
                    Some(k @ ("init" | "refund" | "cancel" | "commit" | "credit")) => kinds.push(k.to_string()),
                    _ => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "loseNextResponse items must be init, refund, cancel, commit or credit",
                        )
                    }
                }
            }
            Some(kinds)
        }
        Some(_) => return error(StatusCode::BAD_REQUEST, "loseNextResponse must be an array"),
    };
    let drop_sockets = match b.get("dropSockets") {
        None => false,
        Some(Value::Bool(v)) => *v,
        Some(_) => return error(StatusCode::BAD_REQUEST, "dropSockets must be a boolean"),
    };
    {
        let mut faults = sh.faults();
        if let Some(f) = fail_next {
            faults.fail_next = f;
        }
        if let Some(ms) = latency {
            faults.latency_ms = ms;
        }
        if let Some(kinds) = lose {
            faults.lose_next = kinds;
        }
    }
    let dropped = drop_sockets.then(|| {
        let cut = sh.registry.shutdown(true);
        tracing::info!("dropped {cut} Socket.IO connections (fault)");
        cut
    });
    if let Some(offline) = offline {
        if let Err(r) = apply_offline(&sh, offline).await {
            return r;
        }
    }
    let mut reply = sh.faults().json();
    if let Some(cut) = dropped {
        reply["droppedSockets"] = json!(cut);
    }
    Json(reply).into_response()
}

async fn faults_clear(AxState(sh): Sh) -> Response {
    if let Err(r) = apply_offline(&sh, false).await {
        return r;
    }
    *sh.faults() = Default::default();
    Json(sh.faults().json()).into_response()
}

fn autopilot_json(a: Option<Autopilot>) -> Value {
    match a {
        Some(a) => json!({"enabled": true, "approveAfterMs": a.approve_after_ms, "card": a.card.number}),
        None => json!({"enabled": false}),
    }
}

async fn autopilot_get(AxState(sh): Sh) -> Response {
    Json(autopilot_json(sh.autopilot())).into_response()
}

async fn autopilot_set(AxState(sh): Sh, bytes: Bytes) -> Response {
    let b = match body(&bytes) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    let after = match b.get("approveAfterMs") {
        None => 200,
        Some(v) => match v.as_u64() {
            Some(ms) => ms,
            None => return error(StatusCode::BAD_REQUEST, "approveAfterMs must be a whole number"),
        },
    };
    let number = b.get("card").and_then(Value::as_str).unwrap_or(TEST_CARDS[1].number);
    let Some(card) = find_card(number) else {
        return error(StatusCode::BAD_REQUEST, "card is not a sandbox test card");
    };
    let pilot = Autopilot { approve_after_ms: after, card };
    sh.set_autopilot(Some(pilot));
    Json(autopilot_json(Some(pilot))).into_response()
}

async fn autopilot_off(AxState(sh): Sh) -> Response {
    sh.set_autopilot(None);
    Json(autopilot_json(None)).into_response()
}

fn settings_json(sh: &Shared) -> Value {
    let s = sh.state().settings.clone();
    json!({
        "minTimeOutSeconds": s.min_timeout_secs,
        "secondsToCommit": s.seconds_to_commit,
        "customerInputWaitMs": s.customer_input_wait_ms,
    })
}

async fn settings_get(AxState(sh): Sh) -> Response {
    Json(settings_json(&sh)).into_response()
}

async fn settings_set(AxState(sh): Sh, bytes: Bytes) -> Response {
    let b = match body(&bytes) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    let read = |key: &str| -> Result<Option<u64>, Refusal> {
        match b.get(key) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                Refusal(StatusCode::BAD_REQUEST, format!("{key} must be a whole number"))
            }),
        }
    };
    let (min, commit, wait) = match (
        read("minTimeOutSeconds"),
        read("secondsToCommit"),
        read("customerInputWaitMs"),
    ) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(r), _, _) | (_, Err(r), _) | (_, _, Err(r)) => return r.into_response(),
    };
    {
        let mut st = sh.state();
        if let Some(v) = min {
            st.settings.min_timeout_secs = v.clamp(1, 86_400) as i64;
        }
        if let Some(v) = commit {
            st.settings.seconds_to_commit = v.min(i64::MAX as u64) as i64;
        }
        if let Some(v) = wait {
            st.settings.customer_input_wait_ms = v;
        }
    }
    Json(settings_json(&sh)).into_response()
}

async fn reset(AxState(sh): Sh) -> Response {
    if let Err(r) = apply_offline(&sh, false).await {
        return r;
    }
    *sh.faults() = Default::default();
    sh.set_autopilot(None);
    sh.clear_inputs();
    sh.state().clear();
    let _ = sh.io.disconnect().await;
    tracing::info!("sandbox reset");
    Json(json!({"reset": true})).into_response()
}
