//! The REST API under `/v1/`: login (§2), payment sessions (§3, §4) and the transaction
//! look-up, capture, refund and reversal (shapes decided where §11.7 is silent;
//! docs/DECISIONS.md "Acquired"). Every error is the §7 JSON body.

use super::model::{
    error_body, minor_of, validation, Refusal, Session, APP_ID, APP_KEY, CURRENCIES,
    SESSION_LIFETIME,
};
use super::Aq;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

type Sh = State<Arc<Aq>>;

/// The documented 401 (§2).
const UNAUTHORIZED_TITLE: &str = "Authentication with the API failed, please check your details and try again.";

pub(super) fn router(aq: Arc<Aq>) -> Router {
    Router::new()
        .route("/login", post(login))
        .route("/payment-sessions", post(create_session))
        .route("/payment-sessions/{id}", put(update_session))
        .route("/transactions/{id}", get(transaction))
        .route("/transactions/{id}/capture", post(capture))
        .route("/transactions/{id}/refund", post(refund))
        .route("/transactions/{id}/reversal", post(reversal))
        .fallback(|| async { refusal(Refusal(404, error_body("not_found", "No such endpoint.", "", &[]))) })
        .layer(axum::middleware::from_fn_with_state(aq.clone(), guard))
        .with_state(aq)
}

pub(super) fn refusal(r: Refusal) -> Response {
    (StatusCode::from_u16(r.0).unwrap_or(StatusCode::BAD_REQUEST), Json(r.1)).into_response()
}

/// Latency, injected failures and the bearer token, for every `/v1` call (login needs none).
async fn guard(State(aq): Sh, request: Request, next: Next) -> Response {
    let latency = aq.faults().latency_ms;
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let fail = {
        let mut f = aq.faults();
        match f.fail_next {
            Some((count, status)) if count > 0 => {
                f.fail_next = (count > 1).then_some((count - 1, status));
                Some(status)
            }
            _ => None,
        }
    };
    let path = request.uri().path().to_string();
    if let Some(status) = fail {
        return refusal(Refusal(status, error_body("internal_server_error", "Injected fault.", &path, &[])));
    }
    if path.trim_end_matches('/').ends_with("/login") {
        return next.run(request).await;
    }
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string());
    let ok = token.is_some_and(|t| aq.world().token_valid(&t));
    if !ok {
        aq.world().count("unauthorized");
        return refusal(Refusal(401, error_body("unauthorized", UNAUTHORIZED_TITLE, &format!("/v1{path}"), &[])));
    }
    next.run(request).await
}

/// Answers `response` unless a lost-response fault of `kind` is set: then the work is done and
/// the answer never leaves.
pub(super) async fn deliver(aq: &Aq, kind: &str, response: Response) -> Response {
    if aq.take_lose(kind) {
        tracing::info!("losing the response of an Acquired `{kind}` call (fault)");
        aq.hang().await;
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    response
}

fn object(bytes: &[u8], instance: &str) -> Result<Map<String, Value>, Refusal> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Refusal(400, error_body("bad_request", "The request body must be a JSON object.", instance, &[]))),
    }
}

async fn login(State(aq): Sh, bytes: Bytes) -> Response {
    aq.world().count("login");
    let m = object(&bytes, "/v1/login").unwrap_or_default();
    let id = m.get("app_id").and_then(Value::as_str);
    let key = m.get("app_key").and_then(Value::as_str);
    if id != Some(APP_ID) || key != Some(APP_KEY) {
        return refusal(Refusal(401, error_body("unauthorized", UNAUTHORIZED_TITLE, "/v1/login", &[])));
    }
    let token = aq.world().login();
    // Only the documented fields: no `expires_in` (§2), so clients must know the hour.
    let body = json!({"token_type": "Bearer", "access_token": token.value});
    deliver(&aq, "login", Json(body).into_response()).await
}

/// What a valid session body (or update) says.
#[derive(Default)]
struct Parsed {
    order_id: Option<String>,
    amount: Option<i64>,
    currency: Option<String>,
    capture: Option<bool>,
    moto: Option<bool>,
}

fn is_url(s: &str) -> bool {
    (s.starts_with("http://") || s.starts_with("https://")) && s.len() > 8
}

/// Validates a create (`creating`) or update body; names every invalid parameter.
fn read_session(m: &Map<String, Value>, creating: bool) -> Result<Parsed, Vec<(String, String)>> {
    let mut bad: Vec<(String, String)> = Vec::new();
    let mut push = |p: &str, r: &str| bad.push((p.to_string(), format!("{p} {r}")));
    let mut out = Parsed::default();
    const KNOWN: [&str; 9] = ["transaction", "customer", "tds", "webhook_url", "save_card", "is_recurring", "payment_methods", "company_domains", "subscription_id"];
    for k in m.keys() {
        if !KNOWN.contains(&k.as_str()) {
            push(k, "is not a known parameter");
        }
    }
    match m.get("transaction") {
        None | Some(Value::Null) if creating => push("transaction", "is required"),
        None | Some(Value::Null) => {}
        Some(Value::Object(t)) => {
            match t.get("order_id") {
                None | Some(Value::Null) if creating => push("transaction.order_id", "can not be empty"),
                None | Some(Value::Null) => {}
                Some(Value::String(s)) if (2..=50).contains(&s.trim().chars().count()) => out.order_id = Some(s.clone()),
                Some(Value::String(s)) if s.trim().is_empty() => push("transaction.order_id", "can not be empty"),
                Some(_) => push("transaction.order_id", "must be a string of 2 to 50 characters"),
            }
            match t.get("amount") {
                None | Some(Value::Null) if creating => push("transaction.amount", "is required"),
                None | Some(Value::Null) => {}
                Some(v) => match minor_of(v) {
                    Some(a) => out.amount = Some(a),
                    None => push("transaction.amount", "must be a positive number with at most 2 decimal places"),
                },
            }
            match t.get("currency") {
                None | Some(Value::Null) if creating => push("transaction.currency", "is required"),
                None | Some(Value::Null) => {}
                Some(Value::String(c)) if CURRENCIES.contains(&c.as_str()) => out.currency = Some(c.clone()),
                Some(_) => push("transaction.currency", "must be a lower-case ISO 4217 code this account takes"),
            }
            for (k, slot) in [("capture", &mut out.capture), ("moto", &mut out.moto)] {
                match t.get(k) {
                    None | Some(Value::Null) => {}
                    Some(Value::Bool(b)) => *slot = Some(*b),
                    Some(_) => push(&format!("transaction.{k}"), "must be a boolean"),
                }
            }
            for k in ["custom_data", "custom1", "custom2"] {
                if t.get(k).is_some_and(|v| !v.is_string() && !v.is_null()) {
                    push(&format!("transaction.{k}"), "must be a string");
                }
            }
        }
        Some(_) => push("transaction", "must be an object"),
    }
    match m.get("customer") {
        None | Some(Value::Null) => {}
        Some(Value::Object(c)) => {
            for k in ["customer_id", "reference", "first_name", "last_name", "ip", "custom_data"] {
                if c.get(k).is_some_and(|v| !v.is_string() && !v.is_null()) {
                    push(&format!("customer.{k}"), "must be a string");
                }
            }
            if let Some(d) = c.get("dob").filter(|v| !v.is_null()) {
                let ok = d.as_str().is_some_and(|s| time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).is_ok());
                if !ok {
                    push("customer.dob", "must be a date YYYY-MM-DD");
                }
            }
            for part in ["billing", "shipping"] {
                if let Some(b) = c.get(part).filter(|v| !v.is_null()) {
                    if !b.is_object() {
                        push(&format!("customer.{part}"), "must be an object");
                    } else if let Some(n) = b.pointer("/phone/number").and_then(Value::as_str) {
                        if n.len() > 15 || !n.bytes().all(|x| x.is_ascii_digit()) {
                            push(&format!("customer.{part}.phone.number"), "must be at most 15 digits");
                        }
                    }
                }
            }
        }
        Some(_) => push("customer", "must be an object"),
    }
    match m.get("tds") {
        None | Some(Value::Null) => {}
        Some(Value::Object(t)) => {
            if t.get("is_active").is_some_and(|v| !v.is_boolean()) {
                push("tds.is_active", "must be a boolean");
            }
            let prefs = ["challenge_mandated", "challenge_preferred", "no_challenge_requested", "no_preference"];
            if t.get("challenge_preference").is_some_and(|v| !v.as_str().is_some_and(|s| prefs.contains(&s))) {
                push("tds.challenge_preference", "must be one of challenge_mandated, challenge_preferred, no_challenge_requested, no_preference");
            }
            let sizes = ["full_screen", "windowed_250x400", "windowed_390x400", "windowed_500x600", "windowed_600x400"];
            if t.get("challenge_window_size").is_some_and(|v| !v.as_str().is_some_and(|s| sizes.contains(&s))) {
                push("tds.challenge_window_size", "must be one of full_screen, windowed_250x400, windowed_390x400, windowed_500x600, windowed_600x400");
            }
            for k in ["contact_url", "redirect_url", "webhook_url"] {
                if t.get(k).is_some_and(|v| !v.is_null() && !v.as_str().is_some_and(is_url)) {
                    push(&format!("tds.{k}"), "must be an http(s) URL");
                }
            }
        }
        Some(_) => push("tds", "must be an object"),
    }
    if m.get("webhook_url").is_some_and(|v| !v.is_null() && !v.as_str().is_some_and(is_url)) {
        push("webhook_url", "must be an http(s) URL");
    }
    for k in ["save_card", "is_recurring"] {
        if m.get(k).is_some_and(|v| !v.is_boolean() && !v.is_null()) {
            push(k, "must be a boolean");
        }
    }
    match m.get("payment_methods") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) if items.iter().all(|i| i.as_str().is_some_and(|s| ["card", "apple_pay", "google_pay"].contains(&s))) => {}
        Some(_) => push("payment_methods", "must be an array of card, apple_pay, google_pay"),
    }
    match m.get("company_domains") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) if items.iter().all(|i| i.as_str().is_some_and(is_url)) => {}
        Some(_) => push("company_domains", "must be an array of URLs"),
    }
    if m.get("subscription_id").is_some_and(|v| !v.is_string() && !v.is_null()) {
        push("subscription_id", "must be a string");
    }
    if bad.is_empty() {
        Ok(out)
    } else {
        Err(bad)
    }
}

/// Merges `from` into `into`, objects recursively (a PUT changes only what it names; decided).
fn merge(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (k, v) in from {
        match (into.get_mut(k), v) {
            (Some(Value::Object(a)), Value::Object(b)) => merge(a, b),
            _ => {
                into.insert(k.clone(), v.clone());
            }
        }
    }
}

async fn create_session(State(aq): Sh, bytes: Bytes) -> Response {
    const INSTANCE: &str = "/v1/payment-sessions";
    aq.world().count("payment-sessions");
    let m = match object(&bytes, INSTANCE) {
        Ok(m) => m,
        Err(r) => return refusal(r),
    };
    let p = match read_session(&m, true) {
        Ok(p) => p,
        Err(bad) => return refusal(validation(INSTANCE, bad)),
    };
    let (Some(order_id), Some(amount), Some(currency)) = (p.order_id, p.amount, p.currency) else {
        return refusal(validation(INSTANCE, vec![("transaction".into(), "transaction is incomplete".into())]));
    };
    let id = {
        let mut w = aq.world();
        let now = w.now();
        let id = super::model::uuid();
        w.add_session(Session {
            id: id.clone(),
            order_id,
            amount,
            currency,
            capture: p.capture.unwrap_or(true),
            moto: p.moto.unwrap_or(false),
            body: m,
            created: now,
            expires: now + SESSION_LIFETIME,
            amount_history: vec![amount],
            updates: 0,
            transaction: None,
        });
        id
    };
    // HTTP 200 (201 is not documented either; decided).
    deliver(&aq, "payment-sessions", Json(json!({"session_id": id})).into_response()).await
}

async fn update_session(State(aq): Sh, Path(id): Path<String>, bytes: Bytes) -> Response {
    let instance = format!("/v1/payment-sessions/{id}");
    aq.world().count("payment-sessions-update");
    let m = match object(&bytes, &instance) {
        Ok(m) => m,
        Err(r) => return refusal(r),
    };
    let p = match read_session(&m, false) {
        Ok(p) => p,
        Err(bad) => return refusal(validation(&instance, bad)),
    };
    let result = {
        let mut w = aq.world();
        match w.open_session(&id, &instance) {
            Err(r) => Err(r),
            Ok(_) => {
                let s = w.sessions.get_mut(&id).expect("checked by open_session");
                merge(&mut s.body, &m);
                if let Some(a) = p.amount {
                    if a != s.amount {
                        s.amount_history.push(a);
                    }
                    s.amount = a;
                }
                if let Some(c) = p.currency {
                    s.currency = c;
                }
                if let Some(o) = p.order_id {
                    s.order_id = o;
                }
                if let Some(c) = p.capture {
                    s.capture = c;
                }
                if let Some(m) = p.moto {
                    s.moto = m;
                }
                s.updates += 1;
                Ok(())
            }
        }
    };
    match result {
        // Body not documented (§4): the session id again (decided).
        Ok(()) => deliver(&aq, "payment-sessions-update", Json(json!({"session_id": id})).into_response()).await,
        Err(r) => refusal(r),
    }
}

async fn transaction(State(aq): Sh, Path(id): Path<String>) -> Response {
    let v = {
        let mut w = aq.world();
        w.count("transactions");
        w.tx_index(&id).map(|i| w.transaction_json(i))
    };
    let response = match v {
        Some(v) => Json(v).into_response(),
        None => refusal(Refusal(404, error_body("not_found", "The transaction was not found.", &format!("/v1/transactions/{id}"), &[]))),
    };
    deliver(&aq, "transactions", response).await
}

/// `{"transaction": {"amount": 5.0}}`; absent = the whole amount.
fn amount_of(m: &Map<String, Value>, instance: &str) -> Result<Option<i64>, Refusal> {
    match m.get("transaction").and_then(|t| t.get("amount")) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => minor_of(v).map(Some).ok_or_else(|| {
            validation(instance, vec![("transaction.amount".into(), "transaction.amount must be a positive number with at most 2 decimal places".into())])
        }),
    }
}

async fn money(aq: Arc<Aq>, id: String, bytes: Bytes, kind: &'static str) -> Response {
    let instance = format!("/v1/transactions/{id}/{kind}");
    aq.world().count(kind);
    let m = match object(&bytes, &instance) {
        Ok(m) => m,
        Err(r) => return refusal(r),
    };
    let amount = match amount_of(&m, &instance) {
        Ok(a) => a,
        Err(r) => return refusal(r),
    };
    let result = {
        let mut w = aq.world();
        match w.tx_index(&id) {
            None => Err(Refusal(404, error_body("not_found", "The transaction was not found.", &instance, &[]))),
            Some(i) => match kind {
                "capture" => w.capture(i, amount, &instance),
                "refund" => w.refund(i, amount, &instance),
                _ => w.reversal(i, &instance),
            },
        }
    };
    match result {
        Ok(op) => {
            let tx = if kind == "refund" { op } else { id.clone() };
            deliver(&aq, kind, Json(json!({"status": "success", "transaction_id": tx})).into_response()).await
        }
        Err(r) => refusal(r),
    }
}

async fn capture(State(aq): Sh, Path(id): Path<String>, bytes: Bytes) -> Response {
    money(aq, id, bytes, "capture").await
}

async fn refund(State(aq): Sh, Path(id): Path<String>, bytes: Bytes) -> Response {
    money(aq, id, bytes, "refund").await
}

async fn reversal(State(aq): Sh, Path(id): Path<String>, bytes: Bytes) -> Response {
    money(aq, id, bytes, "reversal").await
}
