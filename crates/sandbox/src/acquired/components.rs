//! The Components host (its own port, as Acquired serves its script from its own host): the
//! `Acquired.js`-like script and the endpoints it calls. They stand in for Acquired's hosted
//! fields: the page (ours, the customer screen) loads the script, which renders the card form,
//! posts it here, shows the 3-D Secure emulator and sends the cardholder on to
//! `tds.redirect_url` with the signed outcome (§5). Tests drive the same endpoints over HTTP.
//!
//! - `GET /v1/acquired.js`
//! - `POST /v1/components/sessions/{session_id}/confirm` — `{card: {number, expiry_month,
//!   expiry_year, cvv, holder_name}}`. Answers the outcome `{status, transaction_id, order_id,
//!   reason?, redirect}` or, for the challenge card, `{status: "tds_pending", transaction_id,
//!   tds: {url}}` with the emulator's URL (§9's `.../v1/payments/{transaction_id}/tds-auth`).
//! - `GET /v1/payments/{transaction_id}/tds-auth` — the emulator page: the tester picks the
//!   result (status and reason).
//! - `POST /v1/payments/{transaction_id}/tds-auth` — JSON `{status, reason}` answers like
//!   confirm; the page's form post answers an HTML page that posts the redirect fields to
//!   `tds.redirect_url` (top-level), as the real flow does.
//!
//! `redirect` is `{url, method: "POST", fields: {status, transaction_id, order_id, timestamp,
//! hash, reason?}}`, or `null` when the session has no `tds.redirect_url`. The hash is §5's:
//! `sha256(sha256(status . transaction_id . order_id . timestamp) . app_key)`, hex.

use super::api::refusal;
use super::model::{error_body, validation, Behaviour, CardFacts, Refusal, APP_KEY, CHALLENGE_RESULTS, TEST_CARDS};
use super::{webhooks, Aq};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

type Sh = State<Arc<Aq>>;

/// The script, served as Acquired serves its own.
const SCRIPT: &str = include_str!("acquired.js");

pub(super) fn router(aq: Arc<Aq>) -> Router {
    let cors = tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
        .allow_headers([header::CONTENT_TYPE]);
    Router::new()
        .route("/v1/acquired.js", get(script))
        .route("/v1/components/sessions/{id}/confirm", post(confirm))
        .route("/v1/payments/{tx}/tds-auth", get(tds_page).post(tds_auth))
        .layer(cors)
        .with_state(aq)
}

async fn script() -> Response {
    ([(header::CONTENT_TYPE, "application/javascript; charset=utf-8")], SCRIPT).into_response()
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
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

/// Validates the card; names every invalid field. Number and CVV are not kept.
fn read_card(m: &Map<String, Value>, now: time::OffsetDateTime, instance: &str) -> Result<(CardFacts, Behaviour, bool), Refusal> {
    let card = m.get("card").and_then(Value::as_object).cloned().unwrap_or_default();
    let text = |k: &str| match card.get(k) {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let mut bad = Vec::new();
    let number: String = text("number").chars().filter(|c| !c.is_whitespace()).collect();
    if !(12..=19).contains(&number.len()) || !number.bytes().all(|b| b.is_ascii_digit()) {
        bad.push(("card.number".to_string(), "card.number must be 12 to 19 digits".to_string()));
    } else if !luhn(&number) {
        bad.push(("card.number".into(), "card.number is not a valid card number".into()));
    }
    let month = text("expiry_month").parse::<u8>().ok().filter(|m| (1..=12).contains(m));
    if month.is_none() {
        bad.push(("card.expiry_month".into(), "card.expiry_month must be 1 to 12".into()));
    }
    let year = text("expiry_year").parse::<u16>().ok().map(|y| if y < 100 { 2000 + y } else { y });
    match (year, month) {
        (None, _) => bad.push(("card.expiry_year".into(), "card.expiry_year must be a year".into())),
        (Some(y), Some(m)) if (i32::from(y), m) < (now.year(), u8::from(now.month())) => {
            bad.push(("card.expiry_year".into(), "the card has expired".into()))
        }
        _ => {}
    }
    let cvv = text("cvv");
    if !(3..=4).contains(&cvv.len()) || !cvv.bytes().all(|b| b.is_ascii_digit()) {
        bad.push(("card.cvv".into(), "card.cvv must be 3 or 4 digits".into()));
    }
    if !bad.is_empty() {
        return Err(validation(instance, bad));
    }
    let known = TEST_CARDS.iter().find(|c| c.number == number);
    let len = number.len();
    let facts = CardFacts {
        masked: format!("{}{}{}", &number[..6], "*".repeat(len - 10), &number[len - 4..]),
        scheme: known.map_or(if number.starts_with('5') { "mastercard" } else { "visa" }, |c| c.scheme).to_string(),
        expiry_month: month.unwrap_or(1),
        expiry_year: year.unwrap_or(2000),
    };
    // any other valid number is declined by the bank (decided)
    let behaviour = known.map_or(Behaviour::Outcome("declined", "generic_decline"), |c| c.behaviour);
    Ok((facts, behaviour, known.is_some_and(|c| c.tds)))
}

/// The answer for transaction `i`: the outcome with its redirect, or the challenge.
fn outcome(aq: &Aq, i: usize) -> Value {
    let w = aq.world();
    let t = &w.transactions[i];
    if t.status == "tds_pending" {
        return json!({
            "status": t.status,
            "transaction_id": t.id,
            "order_id": t.order_id,
            "tds": {"url": format!("{}/v1/payments/{}/tds-auth", aq.components_url, t.id)},
        });
    }
    let redirect = w.sessions.get(&t.session_id).and_then(|s| s.redirect_url()).map(|url| {
        let timestamp = w.now().unix_timestamp().to_string();
        let inner = sha256_hex(&format!("{}{}{}{}", t.status, t.id, t.order_id, timestamp));
        let hash = sha256_hex(&format!("{inner}{APP_KEY}"));
        let mut fields = json!({"status": t.status, "transaction_id": t.id, "order_id": t.order_id, "timestamp": timestamp, "hash": hash});
        if let Some(r) = &t.reason {
            fields["reason"] = json!(r);
        }
        json!({"url": url, "method": "POST", "fields": fields})
    });
    let mut v = json!({"status": t.status, "transaction_id": t.id, "order_id": t.order_id, "redirect": redirect});
    if let Some(r) = &t.reason {
        v["reason"] = json!(r);
    }
    v
}

async fn lose_or(aq: &Aq, response: Response) -> Response {
    super::api::deliver(aq, "confirm", response).await
}

async fn confirm(State(aq): Sh, Path(id): Path<String>, bytes: Bytes) -> Response {
    let instance = format!("/v1/components/sessions/{id}/confirm");
    let latency = aq.faults().latency_ms;
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let m = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => m,
        _ => return refusal(Refusal(400, error_body("bad_request", "The request body must be a JSON object.", &instance, &[]))),
    };
    let paid = {
        let mut w = aq.world();
        w.count("confirm");
        let now = w.now();
        match read_card(&m, now, &instance) {
            Ok((card, behaviour, tds_card)) => w.pay(&id, card, behaviour, tds_card),
            Err(r) => Err(r),
        }
    };
    let i = match paid {
        Ok(i) => i,
        Err(r) => return refusal(r),
    };
    let body = outcome(&aq, i);
    if body["status"] != "tds_pending" {
        let tx = aq.world().transactions[i].id.clone();
        webhooks::status_update(&aq, &tx);
    }
    lose_or(&aq, Json(body).into_response()).await
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

async fn tds_page(State(aq): Sh, Path(tx): Path<String>) -> Response {
    if aq.world().tx_index(&tx).is_none() {
        return (StatusCode::NOT_FOUND, Html("<p>No such transaction.</p>".to_string())).into_response();
    }
    let buttons: String = CHALLENGE_RESULTS
        .iter()
        .map(|(s, r)| {
            let label = if r.is_empty() { s.to_string() } else { format!("{s} / {r}") };
            format!("<button type=\"submit\" name=\"choice\" value=\"{s}:{r}\" data-status=\"{s}\" data-reason=\"{r}\">{}</button> ", escape(&label))
        })
        .collect();
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>3-D Secure emulator</title></head>\
         <body style=\"font:16px sans-serif\"><h1>3-D Secure emulator</h1><p>Sandbox bank: pick the result of this challenge.</p>\
         <form method=\"post\" action=\"/v1/payments/{}/tds-auth\">{buttons}</form></body></html>",
        escape(&tx)
    ))
    .into_response()
}

/// The redirect as an auto-submitting HTML form (the browser flow).
fn redirect_page(v: &Value) -> Response {
    let Some(r) = v.get("redirect").filter(|r| r.is_object()) else {
        return Html(format!("<!doctype html><p id=\"result\">{}</p>", escape(v["status"].as_str().unwrap_or("")))).into_response();
    };
    let inputs: String = r["fields"]
        .as_object()
        .map(|f| {
            f.iter()
                .map(|(k, v)| format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", escape(k), escape(v.as_str().unwrap_or(""))))
                .collect()
        })
        .unwrap_or_default();
    Html(format!(
        "<!doctype html><html><body><form id=\"r\" method=\"post\" target=\"_top\" action=\"{}\">{inputs}</form>\
         <script>document.getElementById('r').submit();</script></body></html>",
        escape(r["url"].as_str().unwrap_or(""))
    ))
    .into_response()
}

async fn tds_auth(State(aq): Sh, Path(tx): Path<String>, headers: HeaderMap, bytes: Bytes) -> Response {
    let instance = format!("/v1/payments/{tx}/tds-auth");
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let (status, reason) = if is_form {
        let text = String::from_utf8_lossy(&bytes).to_string();
        let choice = text
            .split('&')
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| *k == "choice")
            .map(|(_, v)| v.replace("%3A", ":").replace("%3a", ":"))
            .unwrap_or_default();
        let (s, r) = choice.split_once(':').unwrap_or((&choice, ""));
        (s.to_string(), r.to_string())
    } else {
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (
            v.get("status").and_then(Value::as_str).unwrap_or("").to_string(),
            v.get("reason").and_then(Value::as_str).unwrap_or("").to_string(),
        )
    };
    if !CHALLENGE_RESULTS.iter().any(|(s, r)| *s == status && *r == reason) {
        let allowed: Vec<String> = CHALLENGE_RESULTS.iter().map(|(s, r)| format!("{s}/{r}")).collect();
        return refusal(validation(&instance, vec![("status".into(), format!("status/reason must be one of {}", allowed.join(", ")))]));
    }
    let done = {
        let mut w = aq.world();
        w.count("tds-auth");
        match w.tx_index(&tx) {
            None => Err(Refusal(404, error_body("not_found", "The transaction was not found.", &instance, &[]))),
            Some(i) => w.authenticate(i, &status, &reason).map(|()| i),
        }
    };
    let i = match done {
        Ok(i) => i,
        Err(r) => return refusal(r),
    };
    webhooks::status_update(&aq, &tx);
    let body = outcome(&aq, i);
    if is_form {
        redirect_page(&body)
    } else {
        lose_or(&aq, Json(body).into_response()).await
    }
}
