//! The Standard CIT API under `/v1/`: token, tokenize, evaluate, orders, refund.
//!
//! Error bodies follow what was observed (§2): validation failures are HTTP 400 in the
//! ASP.NET model-state shape — wrapped in `{"status":"400","errors":{…}}` when `OrderId` is
//! among the invalid fields, the flat field→messages map otherwise (both shapes occur, so both
//! are served); a 401 has an empty body; a refused refund is HTTP 200 with the `FAILED` body of
//! §8 (docs/DECISIONS.md "FlexFactor").

use super::model::{
    plan_for, rfc3339, status, Order, Plan, Refund, Vaulted, APP_KEY, APP_SECRET, MID, SITE_ID,
    TOKENIZE_ENVIRONMENT,
};
use super::{webhooks, Ff};
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use till_core::money::parse_major;
use till_core::Currency;

type Sh = State<Arc<Ff>>;

pub(super) fn router(ff: Arc<Ff>) -> Router {
    // The tokenize route answers cross-origin requests: the keyed-entry page posts the card
    // straight to it (docs/DECISIONS.md "FlexFactor").
    let tokenize = Router::new()
        .route("/tokenize", post(tokenize))
        .layer(tower_http::cors::CorsLayer::permissive());
    Router::new()
        .route("/oauth2/token", post(token))
        .route("/evaluate", post(evaluate))
        .route("/orders/{id}", get(order))
        .route("/orders/{id}/refund", post(refund))
        .merge(tokenize)
        .fallback(|| async { StatusCode::NOT_FOUND.into_response() })
        .layer(axum::middleware::from_fn_with_state(ff.clone(), guard))
        .with_state(ff)
}

/// The §2 envelope with `status`, plus `extra` fields.
fn envelope(success: bool, status: Option<&str>, extra: Value) -> Value {
    let mut v = json!({
        "success": success, "result": if success { json!("Success") } else { Value::Null },
        "status": status, "statusCode": null, "errors": [], "customProperties": {},
    });
    if let (Value::Object(target), Value::Object(more)) = (&mut v, extra) {
        target.extend(more);
    }
    v
}

fn trace_id() -> String {
    format!("00-{}-01", uuid::Uuid::new_v4().simple())
}

/// A 400 in one of the two observed shapes (see the module docs).
fn invalid(fields: BTreeMap<String, Vec<String>>) -> Response {
    let wrapped = fields.contains_key("OrderId");
    let mut map: Map<String, Value> = fields.into_iter().map(|(k, v)| (k, json!(v))).collect();
    map.insert("TraceId".into(), json!([trace_id()]));
    let body = if wrapped {
        json!({"status": "400", "errors": map})
    } else {
        Value::Object(map)
    };
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn one(field: &str, message: &str) -> BTreeMap<String, Vec<String>> {
    BTreeMap::from([(field.to_string(), vec![message.to_string()])])
}

/// Latency, injected failures and, except for token and tokenize, a live bearer.
async fn guard(State(ff): Sh, request: Request, next: Next) -> Response {
    let latency = ff.faults().latency_ms;
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let fail = {
        let mut f = ff.faults();
        match f.fail_next {
            Some((count, code)) if count > 0 => {
                f.fail_next = (count > 1).then_some((count - 1, code));
                Some(code)
            }
            _ => None,
        }
    };
    if let Some(code) = fail {
        ff.world().count("injected-failure");
        return (
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "injected fault",
        )
            .into_response();
    }
    let path = request.uri().path();
    // `/tokenize` needs no bearer: the docs' example has none, and the page posts to it.
    let open = path.ends_with("/oauth2/token") || path.ends_with("/tokenize");
    if !open && !bearer_ok(&ff, request.headers()) {
        ff.world().count("unauthorized");
        return StatusCode::UNAUTHORIZED.into_response();
    }
    next.run(request).await
}

/// `Authorization: Bearer <live access token>` (scheme case-insensitive).
fn bearer_ok(ff: &Ff, headers: &HeaderMap) -> bool {
    let Some((scheme, token)) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
    else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer") && ff.world().token_valid(token.trim())
}

/// Answers `response` unless a lost-response fault of `kind` is set: then the work is done and
/// the answer never leaves.
async fn deliver(ff: &Ff, kind: &str, response: Response) -> Response {
    if ff.take_lose(kind) {
        tracing::info!("losing the response of a FlexFactor `{kind}` call (fault)");
        ff.hang().await;
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    response
}

/// A JSON object body (any content type: FlexFactor's docs send `application/*+json`).
fn object(bytes: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// The 400 for a body that is not a JSON object.
fn not_json() -> Response {
    invalid(one("$", "The JSON value could not be converted."))
}

fn text_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `POST /v1/oauth2/token` (§3): `AppKey`/`AppSecret` (also `client_id`/`client_secret`).
async fn token(State(ff): Sh, bytes: Bytes) -> Response {
    let Some(m) = object(&bytes) else {
        return not_json();
    };
    ff.world().count("token");
    let key = text_of(m.get("AppKey").or_else(|| m.get("client_id")));
    let secret = text_of(m.get("AppSecret").or_else(|| m.get("client_secret")));
    if key.as_deref() != Some(APP_KEY) || secret.as_deref() != Some(APP_SECRET) {
        let mut body = envelope(false, Some("FAILED"), json!({}));
        body["errors"] = json!(["Invalid AppKey or AppSecret"]);
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    let (access, expires_ms) = {
        let mut w = ff.world();
        let access = format!("ff.{}.{}", MID, uuid::Uuid::new_v4().simple());
        let expires = w.now() + time::Duration::seconds(w.settings.token_lifetime_secs);
        w.tokens.insert(access.clone(), expires);
        w.count("token.issued");
        (access, (expires.unix_timestamp_nanos() / 1_000_000) as i64)
    };
    let body = envelope(
        true,
        None,
        json!({
            "accessToken": access, "refreshToken": uuid::Uuid::new_v4().to_string(),
            "expires": expires_ms, "id": uuid::Uuid::new_v4().to_string(),
            "session": null, "daysToEnforceMFA": null, "skipAvailable": null,
        }),
    );
    deliver(&ff, "token", Json(body).into_response()).await
}

/// `POST /v1/tokenize?mid=…&environment=…` (§5).
async fn tokenize(
    State(ff): Sh,
    Query(q): Query<HashMap<String, String>>,
    bytes: Bytes,
) -> Response {
    ff.world().count("tokenize");
    let mut errors = BTreeMap::new();
    if q.get("mid").map(String::as_str) != Some(MID) {
        errors.insert("mid".to_string(), vec!["Unknown merchant".to_string()]);
    }
    if q.get("environment").map(String::as_str) != Some(TOKENIZE_ENVIRONMENT) {
        errors.insert(
            "environment".to_string(),
            vec!["Unknown tokenization environment".to_string()],
        );
    }
    let Some(m) = object(&bytes) else {
        return not_json();
    };
    let card = m
        .get("payment_method")
        .and_then(|p| p.get("credit_card"))
        .and_then(Value::as_object);
    let field = |k: &str| card.and_then(|c| text_of(c.get(k)));
    for k in ["first_name", "last_name", "number", "month", "year"] {
        if field(k).is_none() {
            errors.insert(
                format!("payment_method.credit_card.{k}"),
                vec![format!("The {k} field is required.")],
            );
        }
    }
    let number: String = field("number")
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    if field("number").is_some() && !(12..=19).contains(&number.len()) {
        errors.insert(
            "payment_method.credit_card.number".into(),
            vec!["Invalid card number".into()],
        );
    }
    let month = field("month")
        .and_then(|m| m.parse::<u8>().ok())
        .filter(|m| (1..=12).contains(m));
    let year = field("year")
        .and_then(|y| y.parse::<u16>().ok())
        .filter(|y| *y >= 2000);
    if field("month").is_some() && month.is_none() {
        errors.insert(
            "payment_method.credit_card.month".into(),
            vec!["Invalid month".into()],
        );
    }
    if field("year").is_some() && year.is_none() {
        errors.insert(
            "payment_method.credit_card.year".into(),
            vec!["Invalid year (YYYY)".into()],
        );
    }
    if !errors.is_empty() {
        return invalid(errors);
    }
    let token = uuid::Uuid::new_v4().to_string();
    let vaulted = Vaulted {
        plan: plan_for(&number),
        first_digits: number.chars().take(8).collect(),
        last4: number[number.len() - 4..].to_string(),
    };
    let body = {
        let mut w = ff.world();
        let now = w.now();
        w.vault.insert(token.clone(), vaulted.clone());
        envelope(
            true,
            None,
            json!({
                "transaction": {
                    "succeeded": true, "on_test_gateway": true, "created_at": rfc3339(now),
                    "payment_method": {
                        "token": token, "last_four_digits": vaulted.last4,
                        "first_six_digits": vaulted.first_digits,
                        "first_name": field("first_name"), "last_name": field("last_name"),
                        "month": month, "year": year,
                    }
                },
                "cardBinInfo": null, "result": null,
            }),
        )
    };
    deliver(&ff, "tokenize", Json(body).into_response()).await
}

/// What `evaluate` decided, to answer after the lock is released.
enum Evaluated {
    /// The answer body, and the order it opened with its plan (`None` for a repeat), so that
    /// webhooks and settling start once.
    Answer(Value, Option<(String, Plan)>),
    /// The invalid fields, for the 400.
    Invalid(BTreeMap<String, Vec<String>>),
}

/// `POST /v1/evaluate` (§6): validates, then opens (or, for a known `idempotencyKey`, answers)
/// the order.
async fn evaluate(State(ff): Sh, bytes: Bytes) -> Response {
    let Some(m) = object(&bytes) else {
        return not_json();
    };
    let result = evaluate_sync(&ff, &m);
    match result {
        Evaluated::Invalid(fields) => invalid(fields),
        Evaluated::Answer(body, opened) => {
            if let Some((id, plan)) = opened {
                match plan {
                    Plan::Approve => webhooks::send(&ff, "order.completed", &id),
                    Plan::SubmitApprove | Plan::SubmitDecline => webhooks::settle_later(&ff, &id),
                    Plan::Challenge | Plan::Decline => {}
                }
            }
            deliver(&ff, "evaluate", Json(body).into_response()).await
        }
    }
}

fn evaluate_sync(ff: &Ff, m: &Map<String, Value>) -> Evaluated {
    let mut w = ff.world();
    w.count("evaluate");
    let mut errors = BTreeMap::new();
    let order_id = text_of(m.get("orderId"));
    let key = text_of(m.get("idempotencyKey"));
    if order_id.is_none() {
        errors.insert(
            "OrderId".into(),
            vec!["Merchant's orderId is required".into()],
        );
    }
    if key.is_none() {
        errors.insert(
            "IdempotencyKey".into(),
            vec!["The IdempotencyKey field is required.".into()],
        );
    }
    if m.get("isDeclined").and_then(Value::as_bool).is_none() {
        errors.insert(
            "IsDeclined".into(),
            vec!["The IsDeclined field is required.".into()],
        );
    }
    if text_of(m.get("mid")).as_deref() != Some(MID) {
        errors.insert("Mid".into(), vec!["Unknown or missing mid".into()]);
    }
    let site = text_of(m.get("siteId"));
    if site.is_none() && text_of(m.get("siteUrl")).is_none() {
        errors.insert(
            "SiteId".into(),
            vec!["SiteId or SiteUrl is required".into()],
        );
    } else if site.as_deref().is_some_and(|s| s != SITE_ID) {
        errors.insert("SiteId".into(), vec!["Unknown siteId".into()]);
    }
    if text_of(m.get("customerIp")).is_none() {
        errors.insert(
            "CustomerIp".into(),
            vec!["The CustomerIp field is required.".into()],
        );
    }
    let tx = m.get("transaction").and_then(Value::as_object);
    let amount = tx
        .and_then(|t| t.get("amount"))
        .and_then(Value::as_i64)
        .filter(|a| *a > 0);
    if amount.is_none() {
        errors.insert(
            "Transaction.Amount".into(),
            vec!["A positive amount in minor units is required.".into()],
        );
    }
    let currency = tx
        .and_then(|t| text_of(t.get("currency")))
        .filter(|c| Currency::from_code(&c.to_ascii_uppercase()).is_ok());
    if currency.is_none() {
        errors.insert(
            "Transaction.Currency".into(),
            vec!["The Currency field is required.".into()],
        );
    }
    for (k, name) in [
        ("id", "Transaction.Id"),
        ("responseCode", "Transaction.ResponseCode"),
    ] {
        if tx.and_then(|t| t.get(k)).is_none() {
            errors.insert(name.into(), vec![format!("The {name} field is required.")]);
        }
    }
    let pm = m.get("paymentMethod").and_then(Value::as_object);
    let card_number = pm.and_then(|p| text_of(p.get("cardNumber")));
    let is_token = pm
        .and_then(|p| p.get("Token").or_else(|| p.get("token")))
        .and_then(Value::as_bool)
        == Some(true);
    let plan = match &card_number {
        None => {
            errors.insert(
                "PaymentMethod.CardNumber".into(),
                vec!["The CardNumber field is required.".into()],
            );
            None
        }
        Some(n) if is_token => match w.vault.get(n) {
            Some(v) => Some(v.plan),
            None => {
                errors.insert(
                    "PaymentMethod.CardNumber".into(),
                    vec!["Unknown payment method token".into()],
                );
                None
            }
        },
        Some(n) => Some(plan_for(
            &n.chars().filter(char::is_ascii_digit).collect::<String>(),
        )),
    };
    if !errors.is_empty() {
        w.count("evaluate.invalid");
        return Evaluated::Invalid(errors);
    }
    let (Some(order_id), Some(key), Some(amount), Some(currency), Some(plan)) =
        (order_id, key, amount, currency, plan)
    else {
        return Evaluated::Invalid(one("$", "invalid request"));
    };
    // The same idempotencyKey answers the same order, in its current state.
    if let Some(id) = w.by_key.get(&key).cloned() {
        w.count("evaluate.repeat");
        if let Some(o) = w.order_mut(&id) {
            o.evaluate_calls += 1;
            let st = o.evaluate_status();
            return Evaluated::Answer(
                envelope(
                    true,
                    Some(st),
                    json!({"orderSessionKey": id, "senseKey": null, "orderId": id}),
                ),
                None,
            );
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    let (st, code, rescued) = match plan {
        Plan::Approve => ("APPROVED", status::COMPLETED, amount),
        Plan::Challenge => ("CHALLENGE", status::ONHOLD, 0),
        Plan::Decline => ("DECLINED", status::CANCELLED, 0),
        Plan::SubmitApprove | Plan::SubmitDecline => ("SUBMITTED", status::PROCESSING, 0),
    };
    let placed = w.now();
    w.orders.push(Order {
        id: id.clone(),
        merchant_order_id: order_id,
        idempotency_key: key.clone(),
        amount,
        currency: currency.to_ascii_uppercase(),
        status: code,
        plan,
        rescued,
        refunds: Vec::new(),
        evaluate_calls: 1,
        placed,
    });
    w.by_key.insert(key, id.clone());
    tracing::info!(order = %id, status = st, "flexfactor sandbox evaluated a decline");
    Evaluated::Answer(
        envelope(
            true,
            Some(st),
            json!({"orderSessionKey": id, "senseKey": null, "orderId": id}),
        ),
        Some((id, plan)),
    )
}

/// `GET /v1/orders/{id}` (§7.1).
async fn order(State(ff): Sh, Path(id): Path<String>) -> Response {
    let body = {
        let mut w = ff.world();
        w.count("orders");
        w.order_mut(&id).map(|o| o.json())
    };
    match body {
        Some(b) => deliver(&ff, "orders", Json(b).into_response()).await,
        None => {
            let mut b = envelope(false, Some("NOTFOUND"), json!({}));
            b["errors"] = json!(["Order not found"]);
            (StatusCode::NOT_FOUND, Json(b)).into_response()
        }
    }
}

/// The `FAILED` body of §8.
fn failed(code: &str, message: &str) -> Value {
    json!({
        "responseCode": code, "responseMessage": message, "transactionId": null,
        "success": false, "result": null, "status": "FAILED", "statusCode": null,
        "errors": [ { "item1": message, "item2": code, "item3": code, "item4": true } ],
        "customProperties": {},
    })
}

/// `POST /v1/orders/{id}/refund` (§8): capped at what was rescued minus what was refunded; a
/// repeat of the order's previous refund (same amount and message) is not refunded again.
async fn refund(State(ff): Sh, Path(id): Path<String>, bytes: Bytes) -> Response {
    let Some(m) = object(&bytes) else {
        return not_json();
    };
    let Some(amount_text) = text_of(m.get("amountToRefund")) else {
        return invalid(one(
            "AmountToRefund",
            "The AmountToRefund field is required.",
        ));
    };
    let message = text_of(m.get("refundMessage"));
    let outcome = {
        let mut w = ff.world();
        w.count("refund");
        let now = w.now();
        let Some(o) = w.order_mut(&id) else {
            let mut b = envelope(false, Some("FAILED"), json!({}));
            b["errors"] = json!(["Order not found"]);
            return (StatusCode::NOT_FOUND, Json(b)).into_response();
        };
        let currency = Currency::from_code(&o.currency).unwrap_or(Currency::Usd);
        let minor = match parse_major(&amount_text, currency) {
            Ok(m) if m.0 > 0 => m.0,
            _ => {
                return invalid(one(
                    "AmountToRefund",
                    "The field AmountToRefund is invalid.",
                ))
            }
        };
        let available = o.rescued - o.refunded();
        let major = |v: i64| till_core::Money::new(v, currency).to_major_string_fixed();
        let repeat = o
            .refunds
            .last()
            .is_some_and(|r| r.amount_text == amount_text && r.message == message);
        if repeat {
            w.count("refund.repeat");
            Ok(None)
        } else if o.rescued == 0 {
            Err(failed(
                "2002",
                "Order is not refundable: it was not approved",
            ))
        } else if minor > available {
            Err(failed(
                "2001",
                &format!(
                    "Amount to refund ({}) is greater than maximum refund amount in ({}))",
                    major(minor),
                    major(available)
                ),
            ))
        } else {
            o.refunds.push(Refund {
                amount: minor,
                amount_text,
                message,
                at: now,
            });
            if o.refunded() == o.rescued {
                o.status = status::RETURNED;
            }
            Ok(Some(id.clone()))
        }
    };
    match outcome {
        Ok(done) => {
            if let Some(id) = done {
                webhooks::send(&ff, "order.refunded", &id);
            }
            let body = envelope(true, Some("SUCCESS"), json!({"result": null}));
            deliver(&ff, "refund", Json(body).into_response()).await
        }
        Err(body) => {
            ff.world().count("refund.failed");
            deliver(&ff, "refund", Json(body).into_response()).await
        }
    }
}
