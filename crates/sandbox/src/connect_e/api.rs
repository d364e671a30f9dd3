//! The REST API of §4 under `/v1/`: tokens, payment details, cross-reference payments, resume,
//! revoke, payment methods. Errors are `text/plain` (the one documented error body, revoke's, is
//! text; the others are not documented — docs/DECISIONS.md).

use super::model::{
    Refusal, Token, TokenUse, TxType, World, API_KEY, CURRENCIES, MERCHANT_URL, TOKEN_LIFETIME,
};
use super::{webhooks, Ce};
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

type Sh = State<Arc<Ce>>;

pub(super) fn router(ce: Arc<Ce>) -> Router {
    Router::new()
        .route("/access-tokens", post(create_token))
        .route("/access-tokens/{token}/revoke", post(revoke))
        .route("/payments/{token}", get(payment))
        .route("/payments/{token}/resume", post(resume))
        .route("/cross-reference-payments/{token}", post(cross_reference))
        .route("/payment-methods", get(payment_methods))
        .fallback(|| async { text(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(axum::middleware::from_fn_with_state(ce.clone(), guard))
        .with_state(ce)
}

/// A `text/plain` answer.
pub(super) fn text(code: StatusCode, message: &str) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.to_string(),
    )
        .into_response()
}

fn refusal(r: Refusal) -> Response {
    text(
        StatusCode::from_u16(r.0).unwrap_or(StatusCode::BAD_REQUEST),
        &r.1,
    )
}

/// Latency, injected failures and the API key, for every `/v1` call.
async fn guard(State(ce): Sh, request: Request, next: Next) -> Response {
    let latency = ce.faults().latency_ms;
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let fail = {
        let mut f = ce.faults();
        match f.fail_next {
            Some((count, status)) if count > 0 => {
                f.fail_next = (count > 1).then_some((count - 1, status));
                Some(status)
            }
            _ => None,
        }
    };
    if let Some(status) = fail {
        return text(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "injected fault",
        );
    }
    if !authorized(request.headers()) {
        ce.world().count("unauthorized");
        return text(
            StatusCode::UNAUTHORIZED,
            "there is an issue authenticating the request",
        );
    }
    next.run(request).await
}

/// `Authorization: Bearer <API key>` (scheme case-insensitive). Also required on revoke and
/// payment methods, where the OpenAPI document forgets it (docs/DECISIONS.md).
fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, key)| scheme.eq_ignore_ascii_case("bearer") && key.trim() == API_KEY)
}

/// Answers `response` unless a lost-response fault of `kind` is set: then the work is done and
/// the answer never leaves.
async fn deliver(ce: &Ce, kind: &str, response: Response) -> Response {
    if ce.take_lose(kind) {
        tracing::info!("losing the response of a Connect-E `{kind}` call (fault)");
        ce.hang().await;
        return text(StatusCode::SERVICE_UNAVAILABLE, "lost");
    }
    response
}

fn object(bytes: &[u8]) -> Result<Map<String, Value>, Refusal> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Refusal(400, "body: must be a JSON object".into())),
        Err(e) => Err(Refusal(400, format!("body: malformed JSON ({e})"))),
    }
}

/// Reads an optional string field; a non-string is an error for that field.
fn opt_str(m: &Map<String, Value>, key: &str, errors: &mut Vec<String>) -> Option<String> {
    match m.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(format!("{key}: must be a string"));
            None
        }
    }
}

fn opt_bool(m: &Map<String, Value>, key: &str, errors: &mut Vec<String>) -> Option<bool> {
    match m.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            errors.push(format!("{key}: must be a boolean"));
            None
        }
    }
}

fn digits_only(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `POST /v1/access-tokens` (§4.1): validates every field and names every invalid one.
async fn create_token(State(ce): Sh, bytes: Bytes) -> Response {
    ce.world().count("access-tokens");
    match new_token(&ce, &bytes) {
        Ok(v) => deliver(&ce, "access-tokens", Json(v).into_response()).await,
        Err(r) => refusal(r),
    }
}

/// The synchronous part of `create_token`: validation and the new token's `{id, expiresAt}`.
fn new_token(ce: &Ce, bytes: &[u8]) -> Result<Value, Refusal> {
    let m = object(bytes)?;
    let mut errors = Vec::new();
    let required = |key: &str, errors: &mut Vec<String>| -> Option<String> {
        match m.get(key) {
            None | Some(Value::Null) => {
                errors.push(format!("{key}: is required"));
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                errors.push(format!("{key}: must be a string"));
                None
            }
        }
    };
    let merchant_url = required("merchantUrl", &mut errors);
    let currency = required("currencyCode", &mut errors);
    let amount = required("amount", &mut errors);
    let tx_type = required("transactionType", &mut errors);
    let order_id = required("orderId", &mut errors);
    if merchant_url
        .as_deref()
        .is_some_and(|u| u.trim_end_matches('/') != MERCHANT_URL)
    {
        errors.push(format!(
            "merchantUrl: does not match the URL registered for this account ({MERCHANT_URL})"
        ));
    }
    if let Some(c) = &currency {
        if c.len() != 3 || !digits_only(c) {
            errors.push("currencyCode: must match ^\\d\\d\\d$ (ISO 4217 numeric)".into());
        } else if !CURRENCIES.contains(&c.as_str()) {
            errors.push(format!("currencyCode: {c} is not enabled for this account"));
        }
    }
    let amount_minor = match &amount {
        Some(a) if !digits_only(a) => {
            errors.push("amount: must match ^\\d+$ (minor units)".into());
            None
        }
        Some(a) => match a.parse::<i64>() {
            Ok(0) | Err(_) => {
                errors.push("amount: must be a positive whole number of minor units".into());
                None
            }
            Ok(n) => Some(n),
        },
        None => None,
    };
    let tx = match &tx_type {
        Some(t) => match TxType::parse(t) {
            Some(tx) => Some(tx),
            None => {
                errors.push(
                    "transactionType: must be SALE, REFUND, PREAUTH, COLLECTION or VOID".into(),
                );
                None
            }
        },
        None => None,
    };
    if order_id.as_deref().is_some_and(|o| o.trim().is_empty()) {
        errors.push("orderId: must not be empty".into());
    }
    let source = opt_str(&m, "transactionSource", &mut errors);
    if source
        .as_deref()
        .is_some_and(|s| !s.is_empty() && s != "MOTO")
    {
        errors.push("transactionSource: must be \"MOTO\" or \"\"".into());
    }
    let merchant_tx = opt_str(&m, "merchantTransactionId", &mut errors);
    for key in [
        "orderDescription",
        "userAgent",
        "userEmailAddress",
        "userPhoneNumber",
        "userIpAddress",
        "userAddress1",
        "userAddress2",
        "userAddress3",
        "userAddress4",
        "userCity",
        "userState",
        "userPostcode",
        "paymentMethodId",
        "gatewayUsername",
        "gatewayPassword",
        "previousTransactionId",
    ] {
        opt_str(&m, key, &mut errors);
    }
    if let Some(cc) = opt_str(&m, "userCountryCode", &mut errors) {
        if !cc.is_empty() && (cc.len() != 3 || !digits_only(&cc)) {
            errors.push("userCountryCode: must be three digits or empty".into());
        }
    }
    if let Some(v) = m.get("shippingDetails") {
        if !v.is_object() && !v.is_null() {
            errors.push("shippingDetails: must be an object".into());
        }
    }
    let meta = match m.get("metaData") {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) if o.values().all(Value::is_string) => {
            Some(Value::Object(o.clone()))
        }
        Some(_) => {
            errors.push("metaData: must be an object of strings".into());
            None
        }
    };
    opt_bool(&m, "newTransaction", &mut errors);
    let wait = opt_bool(&m, "waitPreExecute", &mut errors).unwrap_or(false);
    let customer = opt_str(&m, "customerId", &mut errors);
    let cross_reference = opt_str(&m, "crossReference", &mut errors).filter(|s| !s.is_empty());
    // Both spellings (the OpenAPI document's and the official sample's); docs/DECISIONS.md.
    let hook_a = opt_str(&m, "webHookUrl", &mut errors);
    let hook_b = opt_str(&m, "webhookUrl", &mut errors);
    let webhook = hook_a.or(hook_b).filter(|s| !s.is_empty());
    if let Some(h) = &webhook {
        if !(h.starts_with("http://") || h.starts_with("https://")) {
            errors.push("webHookUrl: must be an http(s) URL".into());
        }
    }
    let mut w = ce.world();
    if let (Some(tx), None) = (tx, &cross_reference) {
        if matches!(tx, TxType::Refund | TxType::Collection | TxType::Void) {
            errors.push(format!("crossReference: is required for {}", tx.name()));
        }
    }
    if let Some(x) = &cross_reference {
        if !w.root_of_xref.contains_key(x) {
            errors.push("crossReference: unknown cross reference".into());
        }
    }
    if let Some(id) = &merchant_tx {
        if w.tokens
            .values()
            .any(|t| t.merchant_transaction_id.as_deref() == Some(id))
        {
            errors.push("merchantTransactionId: must be unique for each access token".into());
        }
    }
    if !errors.is_empty() {
        return Err(Refusal(
            400,
            format!("request failed validation:\n{}", errors.join("\n")),
        ));
    }
    let (Some(tx), Some(amount), Some(currency), Some(order_id)) =
        (tx, amount_minor, currency, order_id)
    else {
        return Err(Refusal(400, "request failed validation".into()));
    };
    let now = w.now();
    let id = super::model::token_id();
    let token = Token {
        id: id.clone(),
        tx_type: tx,
        amount,
        currency,
        order_id,
        merchant_transaction_id: merchant_tx,
        cross_reference,
        wait_pre_execute: wait,
        customer_id: customer,
        webhook_url: webhook,
        moto: source.as_deref() == Some("MOTO"),
        meta_data: meta,
        created: now,
        expires: now + TOKEN_LIFETIME,
        used: TokenUse::Unused,
    };
    let expires = token.expires.unix_timestamp();
    w.tokens.insert(id.clone(), token);
    w.token_order.push(id.clone());
    Ok(json!({"id": id, "expiresAt": expires}))
}

/// `GET /v1/payments/{token}` (§4.2).
async fn payment(State(ce): Sh, Path(token): Path<String>) -> Response {
    let info = {
        let mut w = ce.world();
        w.count("payments");
        w.payment_info(&token)
    };
    let response = match info {
        Some(v) => Json(v).into_response(),
        None => text(
            StatusCode::NOT_FOUND,
            "unable to find a payment with this access-token",
        ),
    };
    deliver(&ce, "payments", response).await
}

/// `POST /v1/payments/{token}/resume` (§4.4).
async fn resume(State(ce): Sh, Path(token): Path<String>) -> Response {
    let started = {
        let mut w = ce.world();
        w.count("resume");
        w.resume(&token)
    };
    let i = match started {
        Ok(i) => i,
        Err(r) => return refusal(r),
    };
    let status = super::web::finish(&ce, i).await;
    let body = {
        let w = ce.world();
        let p = &w.payments[i];
        World::status_json(status, &p.auth_code, &p.message)
    };
    deliver(&ce, "resume", Json(body).into_response()).await
}

/// `POST /v1/access-tokens/{token}/revoke` (§4.5).
async fn revoke(State(ce): Sh, Path(token): Path<String>) -> Response {
    let result = {
        let mut w = ce.world();
        w.count("revoke");
        w.revoke(&token)
    };
    let response = match result {
        Ok(()) => {
            if ce.world().final_status(&token) == Some(90) {
                webhooks::completed(&ce, &token);
            }
            text(StatusCode::OK, "access token successfully revoked")
        }
        Err(r) => refusal(r),
    };
    deliver(&ce, "revoke", response).await
}

/// `POST /v1/cross-reference-payments/{token}` (§4.3).
async fn cross_reference(State(ce): Sh, Path(token): Path<String>, bytes: Bytes) -> Response {
    ce.world().count("cross-reference-payments");
    let m = match object(&bytes) {
        Ok(m) => m,
        Err(r) => return refusal(r),
    };
    let mut errors = Vec::new();
    let xref = match m.get("crossReference") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        None | Some(Value::Null) => {
            errors.push("crossReference: is required".to_string());
            None
        }
        Some(_) => {
            errors.push("crossReference: must be a non-empty string".to_string());
            None
        }
    };
    let cv2 = opt_str(&m, "cv2", &mut errors);
    let Some(xref) = xref.filter(|_| errors.is_empty()) else {
        return text(
            StatusCode::BAD_REQUEST,
            &format!("request failed validation:\n{}", errors.join("\n")),
        );
    };
    let result = ce
        .world()
        .cross_reference_payment(&token, &xref, cv2.as_deref());
    let response = match result {
        Ok(x) => {
            webhooks::completed(&ce, &token);
            let w = ce.world();
            let p = &w.xrefs[x];
            Json(World::status_json(p.status, &p.auth_code, &p.message)).into_response()
        }
        Err(r) => refusal(r),
    };
    deliver(&ce, "cross-reference-payments", response).await
}

/// `GET /v1/payment-methods` (§4.6).
async fn payment_methods(State(ce): Sh) -> Response {
    ce.world().count("payment-methods");
    let body = json!({"cardSchemes": ["VISA", "MASTERCARD", "MAESTRO", "AMEX"], "wallets": []});
    deliver(&ce, "payment-methods", Json(body).into_response()).await
}
