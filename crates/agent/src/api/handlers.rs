//! Request handlers. Each one parses, delegates to the service, and shapes the answer.

use super::security::require_pos_token;
use super::MAX_BODY;
use crate::error::AgentError;
use crate::service::{Agent, RefundOutcome, Started};
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use till_core::Status;
use till_journal::{OpState, Phase, Query as JournalQuery};

/// A JSON body parsed with our error shape: malformed JSON or an oversize body is a 4xx naming
/// `body`, never axum's plain-text rejection.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = match Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(_) => {
                let body = json!({
                    "status": 413,
                    "error_type": "validation",
                    "title": "request body too large",
                    "invalid_parameters": [{ "parameter": "body", "reason": format!("larger than {MAX_BODY} bytes") }],
                });
                return Err((StatusCode::PAYLOAD_TOO_LARGE, Json(body)).into_response());
            }
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(json!({})));
        }
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| AgentError::invalid("body", &format!("malformed JSON: {e}")).into_response())?;
        let inexact = inexact_numbers(&bytes);
        if !inexact.is_empty() {
            let mut invalid = till_core::InvalidParameters::new();
            for (key, number) in inexact {
                invalid.push(&key, format!("{number} has more digits than can be kept exactly; send at most 15 significant digits"));
            }
            return Err(AgentError::Invalid(invalid).into_response());
        }
        Ok(JsonBody(value))
    }
}

/// Number literals of a JSON text that a 64-bit float does not hold exactly (`125.0000000000000000001`
/// would silently become 125), each with the key it is the value of (`body` at the top level).
/// serde_json reads numbers as `f64` unless built with `arbitrary_precision`, a workspace-wide
/// change of every JSON number; scanning the text here is the small, local way to refuse digits
/// that would be dropped instead of guessing. Assumes `text` is valid JSON (parsed before).
pub(crate) fn inexact_numbers(text: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut last_string: Option<(usize, usize)> = None;
    let mut key: String = "body".into();
    while i < text.len() {
        match text[i] {
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    i += if text[i] == b'\\' { 2 } else { 1 };
                }
                last_string = Some((start, i.min(text.len())));
                i += 1;
            }
            b':' => {
                if let Some((a, b)) = last_string.take() {
                    key = String::from_utf8_lossy(&text[a..b]).into_owned();
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < text.len() && matches!(text[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                    i += 1;
                }
                let literal = String::from_utf8_lossy(&text[start..i]).into_owned();
                if !number_is_exact(&literal) {
                    out.push((key.clone(), literal));
                }
                last_string = None;
            }
            _ => {
                if !text[i].is_ascii_whitespace() {
                    last_string = None;
                }
                i += 1;
            }
        }
    }
    out
}

/// True when the decimal `literal` equals the `f64` it parses to (compared as decimals).
fn number_is_exact(literal: &str) -> bool {
    if !literal.contains(['.', 'e', 'E']) {
        // Integers: exact when they fit i64/u64 (serde keeps those as integers).
        return literal.parse::<i64>().is_ok() || literal.parse::<u64>().is_ok();
    }
    match literal.parse::<f64>() {
        Ok(f) if f.is_finite() => decimal_digits(literal) == decimal_digits(&format!("{f:e}")),
        _ => false,
    }
}

/// A decimal literal as (negative, significant digits, exponent of the last digit).
fn decimal_digits(literal: &str) -> (bool, String, i64) {
    let (negative, rest) = match literal.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, literal),
    };
    let (mantissa, exp) = match rest.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i64>().unwrap_or(0)),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits: String = format!("{int}{frac}");
    let mut exp = exp - frac.len() as i64;
    while digits.ends_with('0') {
        digits.pop();
        exp += 1;
    }
    let digits = digits.trim_start_matches('0').to_string();
    if digits.is_empty() {
        return (false, String::new(), 0);
    }
    (negative, digits, exp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_that_lose_digits_are_found_with_their_key() {
        let body = br#"{"amount": 125.0000000000000000001, "isCent": true, "x": [1.5, 2e3, -0.25], "big": 12345678901234567890123, "ok": 12.50, "s": "1.00000000000000000001"}"#;
        let found = inexact_numbers(body);
        assert_eq!(
            found,
            vec![("amount".to_string(), "125.0000000000000000001".to_string()), ("big".to_string(), "12345678901234567890123".to_string())]
        );
        assert!(number_is_exact("0.1") && number_is_exact("12.5") && number_is_exact("1e2") && number_is_exact("-0.0"));
        assert!(!number_is_exact("0.30000000000000000001"));
    }

    /// The outbox answers the journal's own state names — the ones its `state` filter and the
    /// console take — not Rust's `Debug` spelling (`inflight`).
    #[test]
    fn operation_states_are_named_as_the_filter_takes_them() {
        let op = |state| till_journal::Operation {
            id: 7,
            op_key: "k".into(),
            kind: till_journal::OpKind::Refund,
            transaction_local_id: Some("l".into()),
            amount: Some(till_core::Minor(250)),
            payload: json!({}),
            state,
            attempts: 1,
            next_at: 0,
            last_error: Some("uncertain: timed out".into()),
            result: None,
            created_at: 0,
            updated_at: 0,
            finished_at: None,
            answer: None,
            dismissed_at: None,
            order_id: Some("A-1".into()),
            transaction_number: Some("N".into()),
        };
        let v = operation_json(&op(OpState::InFlight));
        assert_eq!((v["state"].as_str(), v["kind"].as_str(), v["orderId"].as_str()), (Some("in_flight"), Some("refund"), Some("A-1")));
        assert_eq!((v["canRetry"].as_bool(), v["canDismiss"].as_bool()), (Some(false), Some(false)));
        let pending = operation_json(&op(OpState::Pending));
        assert!(pending["problem"].as_str().unwrap_or_default().contains("checked with SensePass before it is sent again"), "{pending}");
        assert_eq!(pending["canRetry"], true);
        let failed = operation_json(&op(OpState::Failed));
        assert_eq!((failed["canRetry"].as_bool(), failed["canDismiss"].as_bool()), (Some(false), Some(true)), "a failed refund is dismissed, not re-sent");
    }
}

pub(crate) fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
}

/// The header that marks an answer given from an earlier request with the same order id or
/// Idempotency-Key (the body also says `"idempotentReplay": true`).
pub const REPLAY_HEADER: &str = "idempotent-replayed";

/// The entity of `record`; for a replay marked as one (header and body field).
fn payment_answer(record: &till_journal::PaymentRecord, replay: bool) -> Response {
    let mut entity = Agent::entity_of(record);
    if !replay {
        return Json(entity).into_response();
    }
    if let Some(obj) = entity.as_object_mut() {
        obj.insert("idempotentReplay".into(), Value::Bool(true));
    }
    ([(REPLAY_HEADER, "true")], Json(entity)).into_response()
}

/// `POST /api/transactions/init`: create and return at once (status 0).
pub async fn init(State(agent): State<Agent>, headers: HeaderMap, JsonBody(body): JsonBody) -> Result<Response, AgentError> {
    let started = agent.start_payment(body, idempotency_key(&headers)).await?;
    let record = started.record();
    if record.phase == Phase::CreateFailed {
        return Err(AgentError::Conflict("this payment could not be created; start a new one".into()));
    }
    Ok(payment_answer(record, matches!(started, Started::Existing(_))))
}

/// Cancels the pending payment when dropped while armed: the POS closed a sync connection.
struct CancelOnDrop {
    agent: Agent,
    local_id: String,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let agent = self.agent.clone();
            let local_id = std::mem::take(&mut self.local_id);
            tokio::spawn(async move { agent.cancel_abandoned(local_id).await });
        }
    }
}

/// `POST /api/transactions/init/sync`: create, then hold the response until the payment is final.
/// If the POS closes the connection first, the pending payment is cancelled.
pub async fn init_sync(State(agent): State<Agent>, headers: HeaderMap, JsonBody(body): JsonBody) -> Result<Response, AgentError> {
    let started = agent.start_payment(body, idempotency_key(&headers)).await?;
    let replay = matches!(started, Started::Existing(_));
    let record = match started {
        Started::New(r) | Started::Existing(r) => r,
    };
    let mut guard = CancelOnDrop { agent: agent.clone(), local_id: record.local_id.clone(), armed: true };
    let result = agent.wait_final(&record.local_id).await;
    guard.armed = false;
    let record = result?;
    if record.phase == Phase::CreateFailed {
        return Err(AgentError::Conflict(format!(
            "payment could not be created at SensePass: {}",
            record.failure.clone().unwrap_or_default()
        )));
    }
    Ok(payment_answer(&record, replay))
}

/// `GET /api/transactions/last`: the last payment, from the journal, refreshed from SensePass
/// when it is not final.
pub async fn last(State(agent): State<Agent>) -> Result<Response, AgentError> {
    let device = agent.pairing().await?.map(|p| p.device_id);
    let record = agent
        .journal(move |j| j.last(device.as_deref()))
        .await?
        .ok_or_else(|| AgentError::NotFound("no transaction yet".into()))?;
    let record = refresh_if_open(&agent, record).await;
    Ok(Json(Agent::entity_of(&record)).into_response())
}

async fn refresh_if_open(agent: &Agent, record: till_journal::PaymentRecord) -> till_journal::PaymentRecord {
    let open = record.status.map(Status::is_open).unwrap_or(true) && record.phase != Phase::CreateFailed;
    if !open {
        return record;
    }
    match &record.number {
        Some(n) => agent.refresh(n).await.unwrap_or(record),
        None => {
            agent.resync_one(record.clone()).await;
            let id = record.local_id.clone();
            agent.journal(move |j| j.by_local_id(&id)).await.ok().flatten().unwrap_or(record)
        }
    }
}

/// `GET /api/transactions/{number}`: from the journal (refreshed when open), or SensePass's
/// answer for a transaction the journal does not know.
pub async fn transaction(State(agent): State<Agent>, Path(number): Path<String>) -> Result<Response, AgentError> {
    let n = number.clone();
    match agent.journal(move |j| j.by_number(&n)).await? {
        Some(record) => {
            let record = refresh_if_open(&agent, record).await;
            Ok(Json(Agent::entity_of(&record)).into_response())
        }
        None => {
            // Not ours: SensePass's answer, read with the typed status call (a fixed path under
            // the base; the one GET that carries the deviceId, as the spec requires).
            let (_, client) = agent.device_client().await?;
            Ok(Json(client.transaction_json(&number).await?).into_response())
        }
    }
}

/// Fields a `PATCH /api/transactions/{n}` may forward as they are: descriptive only (spec §4.9).
const PATCH_PLAIN_FIELDS: &[&str] = &["reason", "posData", "metadata", "clientPhoneNumber", "clientEmail", "deviceId"];

/// Fields that change what is charged: they go through the journaled cart update.
const PATCH_CART_FIELDS: &[&str] = &["amount", "currency", "isCent", "products", "timeOut", "timeout"];

/// `PATCH /api/transactions/{number}`: update an open-cart transaction (spec §4.9). Needs the POS
/// token. Descriptive fields are forwarded; a new amount or cart is accepted only for this till's
/// open cart and goes through the journaled cart update (`products/update`), so the journal always
/// knows what the customer will be charged. Anything else (`readyForPayment`, unknown fields, an
/// amount for a transaction that is not the open cart) is refused, every such field named.
pub async fn update(
    State(agent): State<Agent>,
    headers: HeaderMap,
    Path(number): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, AgentError> {
    require_pos_token(&agent, &headers)?;
    let Some(obj) = body.as_object() else {
        return Err(AgentError::invalid("body", "must be a JSON object"));
    };
    let mut invalid = till_core::InvalidParameters::new();
    let mut cart = false;
    for key in obj.keys() {
        if PATCH_CART_FIELDS.contains(&key.as_str()) {
            cart = true;
        } else if !PATCH_PLAIN_FIELDS.contains(&key.as_str()) {
            invalid.push(key, "cannot be changed through PATCH of a transaction");
        }
    }
    invalid.into_result().map_err(AgentError::Invalid)?;
    if cart {
        let device = agent.device_id().await?;
        let open = agent.journal(move |j| j.open_setup(&device)).await?;
        if open.as_ref().and_then(|r| r.number.as_deref()) != Some(number.as_str()) {
            return Err(AgentError::invalid(
                "amount",
                "can only be changed on this till's open cart (readyForPayment: false); use /api/transactions/products/update",
            ));
        }
        let record = agent.update_cart(body).await?;
        return Ok(Json(Agent::entity_of(&record)).into_response());
    }
    forward(&agent, Method::PATCH, &["transactions", &number], Some(body)).await
}

/// `GET /api/devices`: the paired device id.
pub async fn devices(State(agent): State<Agent>) -> Result<Response, AgentError> {
    let device = agent.device_id().await?;
    Ok(Json(json!({ "deviceId": device })).into_response())
}

/// `POST /api/transactions/cancel/{number}`. Cancelling an approved payment is a money-out
/// operation and needs the POS token.
pub async fn cancel(State(agent): State<Agent>, headers: HeaderMap, Path(number): Path<String>) -> Result<Response, AgentError> {
    let n = number.clone();
    let record = agent.journal(move |j| j.by_number(&n)).await?;
    if record.as_ref().and_then(|r| r.status).map(Status::was_captured).unwrap_or(false) {
        require_pos_token(&agent, &headers)?;
    }
    if record.is_none() {
        require_pos_token(&agent, &headers)?;
        return forward(&agent, Method::POST, &["transactions", "cancel", &number], None).await;
    }
    Ok(Json(agent.cancel(&number, "pos_request").await?).into_response())
}

/// `POST /api/transactions/cancelByDeviceId/{deviceId}`: cancels the device's last pending payment.
pub async fn cancel_by_device(State(agent): State<Agent>, Path(device): Path<String>) -> Result<Response, AgentError> {
    let paired = agent.device_id().await?;
    if device != paired {
        return Err(AgentError::invalid("deviceId", "is not the device paired with this till"));
    }
    let last = agent.journal(move |j| j.last(Some(&paired))).await?;
    match last {
        Some(r) if r.status.map(Status::is_open).unwrap_or(false) && r.number.is_some() => {
            let number = r.number.unwrap_or_default();
            Ok(Json(agent.cancel(&number, "pos_request").await?).into_response())
        }
        _ => Ok((StatusCode::NOT_FOUND, Json(json!({ "status": 404, "status_message": "No pending transaction" }))).into_response()),
    }
}

/// `POST /api/transactions/refund`: needs the POS token. Answers SensePass's refund body, or
/// `202 {status: "queued", refundId}` when SensePass is unreachable (delivered later, once).
pub async fn refund(State(agent): State<Agent>, headers: HeaderMap, JsonBody(body): JsonBody) -> Result<Response, AgentError> {
    require_pos_token(&agent, &headers)?;
    match agent.refund(body, idempotency_key(&headers)).await? {
        RefundOutcome::Answered(answer) => Ok(Json(answer).into_response()),
        RefundOutcome::Queued(op) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "status": "queued", "refundId": op.id, "amountMinor": op.amount.map(|a| a.0) })),
        )
            .into_response()),
        RefundOutcome::Replay { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            Ok((status, [(REPLAY_HEADER, "true")], Json(body)).into_response())
        }
        RefundOutcome::Existing(op) => {
            let status = if matches!(op.state, OpState::Delivered) { StatusCode::OK } else { StatusCode::ACCEPTED };
            Ok((status, Json(operation_json(&op))).into_response())
        }
    }
}

/// `POST /api/transactions/credit`: money-out by token (spec §4.8); needs the POS token.
pub async fn credit(State(agent): State<Agent>, headers: HeaderMap, JsonBody(body): JsonBody) -> Result<Response, AgentError> {
    require_pos_token(&agent, &headers)?;
    let answer = agent.credit(body, idempotency_key(&headers)).await?;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    if answer.replay {
        return Ok((status, [(REPLAY_HEADER, "true")], Json(answer.body)).into_response());
    }
    Ok((status, Json(answer.body)).into_response())
}

/// `POST /api/transactions/products/update`: the live cart (spec §8.3).
pub async fn products_update(State(agent): State<Agent>, JsonBody(body): JsonBody) -> Result<Response, AgentError> {
    let record = agent.update_cart(body).await?;
    Ok(Json(Agent::entity_of(&record)).into_response())
}

/// Why a SensePass path is not forwarded: money moves through the agent's own journaled,
/// token-checked endpoints, pairing through the manager console.
fn not_forwarded(method: &Method, segments: &[&str]) -> &'static str {
    match segments {
        ["transactions", "pay"] => "server-to-server card payments are not taken through the local API; use /api/transactions/init",
        ["transactions", "commitPayment", ..] | ["transactions", _, "commit"] => "the agent commits approved payments itself",
        ["transactions", _, "readyForPayment"] => "use /api/transactions/init to take payment for the open cart",
        ["devices", ..] => "pairing is done in the manager console or with `till-agent pair`",
        ["subscription", _] if method != Method::GET => "subscriptions cannot be changed through the local API",
        ["api", ..] => "paths are relative to /api/ once; drop the repeated api/",
        _ => "not a SensePass path this agent forwards (see /api/agent/openapi.json)",
    }
}

/// The SensePass paths the agent forwards as they are (spec §8.2), each with its one method.
/// Nothing here moves money or changes an amount: refund, credit, cancel, pay, commit, PATCH and
/// pairing have their own handlers (journaled and token-checked) or are refused.
fn forwardable(method: &Method, segments: &[&str]) -> bool {
    matches!(
        (method.as_str(), segments),
        ("POST", ["transactions"])
            | ("POST", ["transactions", "customer-input"])
            | ("POST", ["transactions", "customer-input", "reset"])
            | ("POST", ["settlements", "all"])
            | ("GET", ["subscription", _])
    )
}

/// Other `/api/...` paths: forwarded to SensePass with `deviceId` added when they are on the
/// allow-list ([`forwardable`]), refused with a 400 naming the reason otherwise.
pub async fn passthrough(State(agent): State<Agent>, method: Method, uri: Uri, body: Bytes) -> Result<Response, AgentError> {
    // The guard has already refused paths that are not canonical.
    let rest = uri.path().strip_prefix("/api/").unwrap_or("");
    let segments: Vec<&str> = rest.split('/').collect();
    if !forwardable(&method, &segments) {
        return Err(AgentError::invalid("path", &format!("{method} /api/{rest}: {}", not_forwarded(&method, &segments))));
    }
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(serde_json::from_slice::<Value>(&body).map_err(|e| AgentError::invalid("body", &format!("malformed JSON: {e}")))?)
    };
    if method == Method::GET && body.is_some() {
        return Err(AgentError::invalid("body", "a GET has no body"));
    }
    forward(&agent, method, &segments, body).await
}

/// Sends one call to SensePass under its REST base (segments are encoded, never resolved) and
/// answers SensePass's status and body. A failure here does not change the offline indicator:
/// a caller choosing the path must not be able to raise the cashier's offline banner.
async fn forward(agent: &Agent, method: Method, segments: &[&str], body: Option<Value>) -> Result<Response, AgentError> {
    let (_, client) = agent.device_client().await?;
    let rel: Vec<String> = segments.iter().map(|s| till_sensepass::path_segment(s)).collect();
    let (status, body) = client.forward(method, &rel.join("/"), body).await?;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    Ok((status, Json(body)).into_response())
}

/// `GET /api/agent/health`.
pub async fn health(State(agent): State<Agent>, headers: HeaderMap) -> Result<Response, AgentError> {
    let pairing = agent.pairing().await?;
    // The device ID is a SensePass credential: in full only for the POS and a manager.
    let trusted = crate::api::security::carries_credential(&agent, &headers);
    let device_id = pairing.as_ref().map(|p| {
        if trusted { p.device_id.clone() } else { crate::api::security::mask_device_id(&p.device_id) }
    });
    let counts = agent.journal(|j| j.counts()).await?;
    let fleet_behind = agent.journal(|j| j.changes_behind()).await?;
    let h = agent.health();
    let offline_since = h.offline_since_ms.load(Ordering::SeqCst);
    let recovering = h.recovering.load(Ordering::SeqCst);
    let mut fleet = crate::fleet::health(&agent.config().data_dir, fleet_behind);
    if let (Some(f), Some(w)) = (fleet.as_mut(), crate::relay::health(&agent).await) {
        // Provider webhooks the fleet relayed to this till (crate::relay).
        f["webhooks"] = w;
    }
    Ok(Json(json!({
        "status": if recovering { "recovering" } else { "ok" },
        "version": crate::updater::running_version(),
        "paired": pairing.is_some(),
        "deviceId": device_id,
        "deviceIdMasked": pairing.is_some() && !trusted,
        "posName": pairing.as_ref().map(|p| p.pos_name.clone()),
        // Derived from the URL the agent actually calls, never from a label typed while pairing.
        "environment": crate::config::environment_of(
            pairing.as_ref().map(|p| p.api_base.as_str()).unwrap_or(agent.config().sensepass_url.as_str())
        ),
        "socketConnected": h.socket_connected.load(Ordering::SeqCst),
        "sensepassReachable": offline_since == 0,
        "offlineSince": (offline_since != 0).then(|| format_ms(offline_since)),
        "openTransactions": counts.open_payments,
        "queuedOperations": counts.queued_operations(),
        "posTokenWaived": agent.config().waive_pos_token,
        // Providers behind the gateway seam this till takes payments with (e.g. `connect-e`).
        "gatewayProviders": agent.tender().providers().iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        // Decline recovery (FlexFactor) of keyed card payments: "on", "off" (configured but
        // switched off) or "not_configured".
        "declineRecovery": match &agent.config().flexfactor {
            Some(f) if f.enabled => "on",
            Some(_) => "off",
            None => "not_configured",
        },
        "fleet": fleet,
        "printer": crate::printer::health(&agent).await?,
        "update": crate::updater::health(agent.config()),
    }))
    .into_response())
}

/// `GET /api/agent/events`: server-sent events of every status, connectivity and outbox change.
pub async fn events(State(agent): State<Agent>) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let mut rx = agent.bus().subscribe();
    let shutdown = agent.shutdown_token().clone();
    let stream = async_stream::stream! {
        yield Ok(Event::default().event("hello").data("{}"));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                ev = rx.recv() => match ev {
                    Ok(ev) => {
                        let data = serde_json::to_string(&ev).unwrap_or_else(|_| "{}".into());
                        yield Ok(Event::default().event(ev.name()).data(data));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        yield Ok(Event::default().event("lagged").data(json!({ "missed": n }).to_string()));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        }
    };
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Query string of `GET /api/agent/transactions`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalParams {
    /// Exact POS order id.
    order_id: Option<String>,
    /// Part of a POS order id, any ASCII case (the manager's search box).
    order_search: Option<String>,
    /// Comma-separated status keys (`approved,declined`) or codes (`5,6`).
    status: Option<String>,
    /// Inclusive lower bound, RFC 3339 or unix ms.
    from: Option<String>,
    /// Exclusive upper bound, RFC 3339 or unix ms.
    to: Option<String>,
    /// Minimum amount, minor units.
    min_amount: Option<i64>,
    /// Maximum amount, minor units.
    max_amount: Option<i64>,
    /// ISO currency code.
    currency: Option<String>,
    /// Page size (default 50, at most 500).
    limit: Option<u32>,
    /// Rows to skip.
    offset: Option<u32>,
}

/// `GET /api/agent/transactions`: the journal, filtered and paginated.
pub async fn journal_query(State(agent): State<Agent>, Query(p): Query<JournalParams>) -> Result<Response, AgentError> {
    let q = journal_query_of(p)?;
    let (limit, offset) = (q.limit, q.offset);
    let page = agent.journal(move |j| j.query(&q)).await?;
    let items: Vec<Value> = page.items.iter().map(record_json).collect();
    Ok(Json(json!({ "total": page.total, "limit": limit, "offset": offset, "items": items })).into_response())
}

/// Validates journal filters (every invalid one named) into a journal query.
pub(crate) fn journal_query_of(p: JournalParams) -> Result<JournalQuery, AgentError> {
    let mut invalid = till_core::InvalidParameters::new();
    let mut statuses = Vec::new();
    let mut not_created = false;
    let mut closed = false;
    for part in p.status.as_deref().unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()) {
        // `not_created` is the older name of a payment never created at SensePass, which the
        // journal now calls `failed` like every other failure (PaymentRecord::status_key).
        if part == "not_created" {
            not_created = true;
            continue;
        }
        // A payment a manager closed as not paid (PaymentRecord::status_key `closed`).
        if part == "closed" {
            closed = true;
            continue;
        }
        match Status::from_key(part).or_else(|| part.parse::<i64>().ok().and_then(Status::from_code)) {
            Some(s) => statuses.push(s),
            None => invalid.push("status", format!("unknown status `{part}`")),
        }
    }
    // "Failed" finds every payment shown as failed, created at SensePass or not.
    let include_not_created = not_created || statuses.contains(&Status::Failed);
    let from = parse_time(p.from.as_deref(), "from", &mut invalid);
    let to = parse_time(p.to.as_deref(), "to", &mut invalid);
    let currency = match p.currency.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => match till_core::Currency::from_code(c) {
            Ok(c) => Some(c),
            Err(_) => {
                invalid.push("currency", format!("unknown currency `{c}`"));
                None
            }
        },
        None => None,
    };
    let limit = p.limit.unwrap_or(50);
    if limit == 0 || limit > 500 {
        invalid.push("limit", "must be between 1 and 500");
    }
    invalid.into_result().map_err(AgentError::Invalid)?;
    Ok(JournalQuery {
        from_ms: from,
        to_ms: to,
        status: statuses,
        order_id: p.order_id.filter(|o| !o.is_empty()),
        order_search: p.order_search.map(|o| o.trim().to_string()).filter(|o| !o.is_empty()),
        include_not_created,
        include_closed: closed,
        min_amount: p.min_amount.map(till_core::Minor),
        max_amount: p.max_amount.map(till_core::Minor),
        currency,
        device_id: None,
        include_setup: false,
        limit,
        offset: p.offset.unwrap_or(0),
    })
}

/// `GET /api/agent/transactions/{id}`: one payment (by local id or TransactionNumber) with its
/// status timeline and operations.
pub async fn journal_detail(State(agent): State<Agent>, Path(id): Path<String>) -> Result<Response, AgentError> {
    let key = id.clone();
    let record = agent
        .journal(move |j| Ok(j.by_local_id(&key)?.or(j.by_number(&key)?)))
        .await?
        .ok_or_else(|| AgentError::NotFound(format!("transaction {id}")))?;
    let local = record.local_id.clone();
    let events = agent.journal(move |j| j.events(&local)).await?;
    let local = record.local_id.clone();
    let (refunded, queued) = agent.journal(move |j| j.refunded_total(&local)).await?;
    let mut body = record_json(&record);
    body["events"] = events
        .iter()
        .map(|e| json!({ "status": e.status.code(), "statusKey": e.status.key(), "source": format!("{:?}", e.source).to_lowercase(), "applied": e.applied, "at": format_ms(e.at) }))
        .collect();
    body["refundedMinor"] = json!(refunded.0);
    body["queuedRefundMinor"] = json!(queued.0);
    body["refundableMinor"] = json!(record.amount.0 - refunded.0 - queued.0);
    Ok(Json(body).into_response())
}

/// Query of `GET /api/agent/outbox`.
#[derive(Debug, Deserialize)]
pub struct OutboxParams {
    /// `pending`, `in_flight`, `delivered` or `failed`.
    state: Option<String>,
    /// `1` (or `true`) to list operations a manager dismissed too.
    dismissed: Option<String>,
    /// Page size.
    limit: Option<u32>,
    /// Rows to skip.
    offset: Option<u32>,
}

/// `GET /api/agent/outbox`: operations waiting, delivered or failed.
pub async fn outbox(State(agent): State<Agent>, Query(p): Query<OutboxParams>) -> Result<Response, AgentError> {
    let state = match p.state.as_deref() {
        None | Some("") => None,
        Some("pending") => Some(OpState::Pending),
        Some("in_flight") => Some(OpState::InFlight),
        Some("delivered") => Some(OpState::Delivered),
        Some("failed") => Some(OpState::Failed),
        Some(other) => return Err(AgentError::invalid("state", &format!("unknown state `{other}`"))),
    };
    let dismissed = match p.dismissed.as_deref() {
        None | Some("") | Some("0") | Some("false") => false,
        Some("1") | Some("true") => true,
        Some(other) => return Err(AgentError::invalid("dismissed", &format!("must be 1 or 0, not `{other}`"))),
    };
    let (limit, offset) = (p.limit.unwrap_or(100).min(500), p.offset.unwrap_or(0));
    let ops = agent.journal(move |j| j.outbox_view(state, dismissed, limit, offset)).await?;
    Ok(Json(json!({ "items": ops.iter().map(operation_json).collect::<Vec<_>>() })).into_response())
}

/// One outbox operation as the API shows it. `state` and `kind` are the journal's own stored
/// names (`in_flight`), the ones the `state` filter takes.
pub(crate) fn operation_json(op: &till_journal::Operation) -> Value {
    let actions = crate::outbox::console_actions(op);
    json!({
        "id": op.id,
        "kind": op.kind.as_str(),
        "state": op.state.as_str(),
        "amountMinor": op.amount.map(|a| a.0),
        "attempts": op.attempts,
        "lastError": op.last_error,
        "problem": crate::outbox::describe_error(op),
        "nextAttemptAt": (op.state == OpState::Pending).then(|| format_ms(op.next_at)),
        "transactionLocalId": op.transaction_local_id,
        "orderId": op.order_id,
        "transactionNumber": op.transaction_number,
        "canRetry": actions.retry,
        "canDismiss": actions.dismiss,
        "dismissedAt": op.dismissed_at.map(format_ms),
        "payload": op.payload,
        "result": op.result,
        "createdAt": format_ms(op.created_at),
        "finishedAt": op.finished_at.map(format_ms),
    })
}

pub(crate) fn record_json(r: &till_journal::PaymentRecord) -> Value {
    json!({
        "localId": r.local_id,
        // Journal rows of `transactions` are SensePass payments (migration 0011's provider
        // column); the other providers' payments are under /api/agent/payments.
        "provider": till_gateway::ProviderId::SensePass.as_str(),
        "providerName": till_gateway::ProviderId::SensePass.display_name(),
        "transactionNumber": r.number,
        "orderId": r.order_id,
        "amountMinor": r.amount.0,
        "amount": till_core::Money { minor: r.amount, currency: r.currency }.to_major_string_fixed(),
        "currency": r.currency.code(),
        "status": r.status.map(Status::code),
        "statusKey": r.status_key(),
        "phase": format!("{:?}", r.phase),
        "productSumMismatch": r.product_sum_mismatch,
        "createdAt": format_ms(r.created_at),
        "updatedAt": format_ms(r.updated_at),
        "committedAt": r.committed_at.map(format_ms),
        "failure": r.failure,
        "resolvedAt": r.resolved_at.map(format_ms),
        "resolution": r.resolution,
        "transaction": r.entity_json,
        "lines": crate::service::lines_of(r),
    })
}

pub(crate) fn parse_time(v: Option<&str>, name: &str, invalid: &mut till_core::InvalidParameters) -> Option<i64> {
    let v = v?.trim();
    if let Ok(ms) = v.parse::<i64>() {
        return Some(ms);
    }
    match time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339) {
        Ok(t) => Some((t.unix_timestamp_nanos() / 1_000_000) as i64),
        Err(_) => {
            invalid.push(name, "must be RFC 3339 (2026-01-31T00:00:00Z) or unix milliseconds");
            None
        }
    }
}

/// Unix ms as RFC 3339 UTC.
pub fn format_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}
