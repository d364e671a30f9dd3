//! The web host: `client.js` and the endpoints it calls. These stand in for the provider's
//! hosted card form: the page (ours, the agent's checkout) loads `client.js`, which renders the
//! card or CV2 fields, posts them here, shows the 3-D Secure step and resolves the promise of
//! `executePayment()`. Tests drive the same endpoints over HTTP.
//!
//! - `GET /assets/js/client.js`
//! - `POST /web/v1/payments/{token}/execute` — `{cardNumber, expiryDate, cv2, cardName}` for the
//!   card form, `{cv2}` for a repeat payment. Answers `{statusCode, authCode?, message}`, or
//!   `{statusCode: 3, threeDSecure: {required: true}}` when the card needs the 3-D Secure step.
//! - `POST /web/v1/payments/{token}/3ds` — `{authenticated: true|false}`: the cardholder's
//!   answer to the challenge; answers like `execute`.
//!
//! Errors are JSON `{statusCode, message}` with the JS client's codes (§5): 400 invalid request,
//! 401 token used or expired, 404 no such token. Cross-origin calls are allowed: the checkout page
//! is served by another origin, as with the real provider.

use super::api::text;
use super::model::{CardFacts, Refusal};
use super::{webhooks, Ce};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

type Sh = State<Arc<Ce>>;

/// The script, served as the provider serves its own.
const CLIENT_JS: &str = include_str!("client.js");

pub(super) fn router(ce: Arc<Ce>) -> Router {
    let cors = tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
        .allow_headers([header::CONTENT_TYPE]);
    Router::new()
        .route("/assets/js/client.js", get(client_js))
        .route("/web/v1/payments/{token}/execute", post(execute))
        .route("/web/v1/payments/{token}/3ds", post(three_ds))
        .layer(cors)
        .with_state(ce)
}

async fn client_js() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/javascript; charset=utf-8",
        )],
        CLIENT_JS,
    )
        .into_response()
}

fn js_error(r: Refusal) -> Response {
    let code = StatusCode::from_u16(r.0).unwrap_or(StatusCode::BAD_REQUEST);
    (code, Json(json!({"statusCode": r.0, "message": r.1}))).into_response()
}

fn field<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str)
}

fn luhn(number: &str) -> bool {
    let mut sum = 0;
    for (i, b) in number.bytes().rev().enumerate() {
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

/// Validates the card form; names every invalid field. The number and CV2 are not kept.
fn read_card(m: &Map<String, Value>, now: time::OffsetDateTime) -> Result<CardFacts, Refusal> {
    let mut errors = Vec::new();
    let number: String = field(m, "cardNumber")
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if !(12..=19).contains(&number.len()) || !number.bytes().all(|b| b.is_ascii_digit()) {
        errors.push("cardNumber: must be 12 to 19 digits");
    } else if !luhn(&number) {
        errors.push("cardNumber: is not a valid card number");
    }
    let expiry = field(m, "expiryDate").unwrap_or("").trim().to_string();
    match expiry
        .split_once('/')
        .map(|(a, b)| (a.parse::<u8>(), b.parse::<i32>(), b.len()))
    {
        Some((Ok(mm), Ok(yy), 2)) if (1..=12).contains(&mm) => {
            if (2000 + yy, mm) < (now.year(), u8::from(now.month())) {
                errors.push("expiryDate: the card has expired");
            }
        }
        _ => errors.push("expiryDate: must be MM/YY"),
    }
    check_cv2(m, &mut errors);
    if !errors.is_empty() {
        return Err(Refusal(400, errors.join("; ")));
    }
    let name = field(m, "cardName").unwrap_or("").trim().to_string();
    Ok(CardFacts::from_number(&number, &expiry, &name))
}

fn check_cv2(m: &Map<String, Value>, errors: &mut Vec<&'static str>) {
    let cv2 = field(m, "cv2").unwrap_or("");
    if !(3..=4).contains(&cv2.len()) || !cv2.bytes().all(|b| b.is_ascii_digit()) {
        errors.push("cv2: must be 3 or 4 digits");
    }
}

/// The answer of `execute` / `3ds` for payment `i` with `status`.
fn answer(ce: &Ce, i: usize, status: i64) -> Response {
    let w = ce.world();
    let p = &w.payments[i];
    let mut v = json!({"statusCode": status, "message": p.message});
    if let Some(a) = &p.auth_code {
        v["authCode"] = json!(a);
    }
    if status == 3 {
        v["threeDSecure"] = json!({"required": true});
    }
    Json(v).into_response()
}

/// Runs the processing step of payment `i` and its outcome; answers the final status.
pub(super) async fn finish(ce: &Arc<Ce>, i: usize) -> i64 {
    let processing = ce.world().settings.processing_ms;
    if processing > 0 {
        tokio::time::sleep(Duration::from_millis(processing)).await;
    }
    let (status, token) = {
        let mut w = ce.world();
        let status = w.execute_web(i);
        (status, w.payments[i].token.clone())
    };
    webhooks::completed(ce, &token);
    status
}

/// After authentication (or none): pause, or process and finish.
async fn proceed(ce: &Arc<Ce>, i: usize) -> i64 {
    let status = ce.world().after_authentication(i);
    if status == 99 {
        status
    } else {
        finish(ce, i).await
    }
}

async fn lose_or(ce: &Ce, response: Response) -> Response {
    if ce.take_lose("execute") {
        ce.hang().await;
        return text(StatusCode::SERVICE_UNAVAILABLE, "lost");
    }
    response
}

async fn execute(State(ce): Sh, Path(token): Path<String>, bytes: Bytes) -> Response {
    let latency = ce.faults().latency_ms;
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let m = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => m,
        _ => return js_error(Refusal(400, "body: must be a JSON object".into())),
    };
    let started = {
        let mut w = ce.world();
        w.count("execute");
        let cv2_only = match w.usable(&token) {
            Ok(t) => t.cross_reference.clone(),
            Err(r) => return js_error(r),
        };
        let card = match &cv2_only {
            Some(xref) => {
                let mut errors = Vec::new();
                check_cv2(&m, &mut errors);
                if !errors.is_empty() {
                    return js_error(Refusal(400, errors.join("; ")));
                }
                match w.root_of_xref.get(xref) {
                    Some(&r) => w.roots[r].card.clone(),
                    None => return js_error(Refusal(400, "crossReference: unknown".into())),
                }
            }
            None => match read_card(&m, w.now()) {
                Ok(c) => c,
                Err(r) => return js_error(r),
            },
        };
        w.start_web(&token, card, cv2_only.is_some())
    };
    let i = match started {
        Ok(i) => i,
        Err(r) => return js_error(r),
    };
    if ce.world().payments[i].status == 3 {
        return lose_or(&ce, answer(&ce, i, 3)).await;
    }
    let status = proceed(&ce, i).await;
    lose_or(&ce, answer(&ce, i, status)).await
}

async fn three_ds(State(ce): Sh, Path(token): Path<String>, bytes: Bytes) -> Response {
    let passed = match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) => v
            .get("authenticated")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        Err(_) => return js_error(Refusal(400, "body: must be a JSON object".into())),
    };
    let result = {
        let mut w = ce.world();
        w.count("3ds");
        match w.payment_of_token.get(&token).copied() {
            None => Err(Refusal(404, "no payment for this access token".into())),
            Some(i) => w.authenticate(i, passed).map(|s| (i, s)),
        }
    };
    let (i, status) = match result {
        Ok(x) => x,
        Err(r) => return js_error(r),
    };
    let status = if status == 5 {
        webhooks::completed(&ce, &token);
        5
    } else if status == 99 {
        99
    } else {
        finish(&ce, i).await
    };
    lose_or(&ce, answer(&ce, i, status)).await
}
