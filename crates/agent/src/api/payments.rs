//! `/api/agent/payments`: payments of the providers behind the gateway seam (Paymentsense
//! Connect-E), the checkout page that loads the provider's `client.js`, and cards on file.
//! Thin: parse, call [`crate::tender`], shape the answer.

use super::handlers::JsonBody;
use super::security::require_pos_token;
use crate::error::AgentError;
use crate::service::Agent;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use till_core::Minor;
use till_gateway::{Operation, ProviderId};

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, AgentError> {
    match headers.get("idempotency-key").map(|v| v.to_str().map(str::trim)) {
        None => Ok(None),
        Some(Ok(k)) if !k.is_empty() && k.len() <= 128 => Ok(Some(k.to_string())),
        Some(_) => Err(AgentError::invalid("Idempotency-Key", "must be 1 to 128 visible characters")),
    }
}

/// Our ids are UUIDs; anything else cannot name a payment (and never reaches SQL or HTML).
fn payment_id(id: &str) -> Result<String, AgentError> {
    uuid::Uuid::parse_str(id)
        .map(|u| u.to_string())
        .map_err(|_| AgentError::NotFound(format!("payment {}", id.chars().take(40).collect::<String>())))
}

/// `POST /api/agent/payments`: 201 with a new payment, 200 with the order's existing one.
pub async fn create(State(agent): State<Agent>, JsonBody(body): JsonBody) -> Result<Response, AgentError> {
    let (new, view) = agent.create_gateway_payment(body).await?;
    let status = if new { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(view)).into_response())
}

/// Query of the payment list.
#[derive(Deserialize)]
pub struct ListParams {
    /// Only payments in this state (e.g. `authorized`: pre-authorisations to collect).
    state: Option<String>,
    /// At most this many (default 50, at most 500).
    limit: Option<u32>,
}

/// `GET /api/agent/payments`: newest first.
pub async fn list(State(agent): State<Agent>, Query(q): Query<ListParams>) -> Result<Response, AgentError> {
    if let Some(s) = &q.state {
        if !till_gateway::PaymentState::ALL.iter().any(|p| p.as_str() == s) {
            return Err(AgentError::invalid("state", "must be one of pending, authorized, captured, declined, cancelled, expired, failed"));
        }
    }
    let items = agent.gateway_payments(q.state, q.limit.unwrap_or(50).clamp(1, 500)).await?;
    let providers: Vec<&str> = agent.tender().providers().iter().map(|p| p.as_str()).collect();
    Ok(Json(json!({ "items": items, "providers": providers })).into_response())
}

/// Query of `GET /api/agent/payments/{id}`.
#[derive(Deserialize)]
pub struct WaitParams {
    /// Wait up to this many seconds (at most 120) for the customer's part to be over.
    wait: Option<u64>,
}

/// `GET /api/agent/payments/{id}[?wait=SECONDS]`.
pub async fn get_one(State(agent): State<Agent>, Path(id): Path<String>, Query(q): Query<WaitParams>) -> Result<Response, AgentError> {
    let id = payment_id(&id)?;
    if q.wait.is_some_and(|w| w > crate::tender::MAX_WAIT_SECS) {
        return Err(AgentError::invalid("wait", &format!("must be at most {} seconds", crate::tender::MAX_WAIT_SECS)));
    }
    Ok(Json(agent.gateway_payment(&id, q.wait).await?).into_response())
}

fn amount_of(body: &Value, required: bool) -> Result<Option<Minor>, AgentError> {
    match body.get("amount") {
        None | Some(Value::Null) if !required => Ok(None),
        None | Some(Value::Null) => Err(AgentError::invalid("amount", "is required (minor units)")),
        Some(v) => match v.as_i64() {
            Some(n) if n > 0 => Ok(Some(Minor(n))),
            _ => Err(AgentError::invalid("amount", "must be a positive integer amount in minor units")),
        },
    }
}

fn operation_response((status, body): (u16, Value)) -> Response {
    (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), Json(body)).into_response()
}

/// `POST /api/agent/payments/{id}/capture` `{amount?}`: collects (part of) a pre-authorisation;
/// without `amount`, all of what is left. Needs the POS token.
pub async fn capture(State(agent): State<Agent>, headers: HeaderMap, Path(id): Path<String>, JsonBody(body): JsonBody) -> Result<Response, AgentError> {
    require_pos_token(&agent, &headers)?;
    let id = payment_id(&id)?;
    let key = idempotency_key(&headers)?;
    let amount = match amount_of(&body, false)? {
        Some(a) => a,
        None => {
            let view = agent.gateway_payment(&id, None).await?;
            let left = view["authorizedAmount"].as_i64().unwrap_or(0) - view["capturedAmount"].as_i64().unwrap_or(0);
            Minor(left)
        }
    };
    Ok(operation_response(agent.gateway_operation(&id, Operation::Capture(amount), key).await?))
}

/// `POST /api/agent/payments/{id}/refund` `{amount}`: partial and repeated refunds, capped by
/// what was captured; queued (202) while the provider is unreachable. Needs the POS token.
pub async fn refund(State(agent): State<Agent>, headers: HeaderMap, Path(id): Path<String>, JsonBody(body): JsonBody) -> Result<Response, AgentError> {
    require_pos_token(&agent, &headers)?;
    let id = payment_id(&id)?;
    let key = idempotency_key(&headers)?;
    let amount = amount_of(&body, true)?.unwrap_or(Minor::ZERO);
    Ok(operation_response(agent.gateway_operation(&id, Operation::Refund(amount), key).await?))
}

/// `POST /api/agent/payments/{id}/void`: releases a pre-authorisation. Needs the POS token.
pub async fn void(State(agent): State<Agent>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, AgentError> {
    require_pos_token(&agent, &headers)?;
    let id = payment_id(&id)?;
    let key = idempotency_key(&headers)?;
    Ok(operation_response(agent.gateway_operation(&id, Operation::Void, key).await?))
}

/// `POST /api/agent/payments/{id}/resume`: continues a wait-pre-execute payment.
pub async fn resume(State(agent): State<Agent>, Path(id): Path<String>) -> Result<Response, AgentError> {
    let id = payment_id(&id)?;
    Ok(Json(agent.resume_gateway(&id).await?).into_response())
}

/// `POST /api/agent/payments/{id}/cancel`: revokes a pending payment's token.
pub async fn cancel(State(agent): State<Agent>, Path(id): Path<String>) -> Result<Response, AgentError> {
    let id = payment_id(&id)?;
    Ok(Json(agent.cancel_gateway(&id).await?).into_response())
}

/// `POST /api/agent/payments/{id}/renew`: the checkout page, shortly before its session expires
/// and while the customer has not pressed Pay, asks for a fresh one (crate::renew). No POS token:
/// it moves no money, and the agent refuses it outside the session's last minutes.
pub async fn renew(State(agent): State<Agent>, Path(id): Path<String>) -> Result<Response, AgentError> {
    let id = payment_id(&id)?;
    Ok(Json(agent.renew_gateway_checkout(&id).await?).into_response())
}

/// `PATCH /api/agent/payments/{id}` `{"amount": <minor>}` (POS token): the cart changed before
/// the customer paid; the pending payment (an Acquired session) is made for the new total.
pub async fn change(State(agent): State<Agent>, headers: HeaderMap, Path(id): Path<String>, JsonBody(body): JsonBody) -> Result<Response, AgentError> {
    require_pos_token(&agent, &headers)?;
    let id = payment_id(&id)?;
    Ok(Json(agent.change_gateway_amount(&id, &body).await?).into_response())
}

/// `POST /api/agent/payments/{id}/report`: the checkout page's promise settled. Its content is
/// not trusted; the agent looks the payment up at the provider at once and answers that.
pub async fn report(State(agent): State<Agent>, Path(id): Path<String>, JsonBody(_body): JsonBody) -> Result<Response, AgentError> {
    let id = payment_id(&id)?;
    Ok(Json(agent.gateway_reported(&id).await?).into_response())
}

/// `POST /api/agent/payments/{id}/vault` `{token, bin, last4, expiryMonth, expiryYear,
/// holderName}`: the keyed-entry page hands over FlexFactor's vault token of the card and the
/// non-sensitive facts (never the number; any other field is refused by name). A decline the
/// agent was holding for it is evaluated at once.
pub async fn vault(State(agent): State<Agent>, Path(id): Path<String>, JsonBody(body): JsonBody) -> Result<Response, AgentError> {
    let id = payment_id(&id)?;
    Ok(Json(agent.vault_card(&id, &body).await?).into_response())
}

/// `POST /api/agent/providers/flexfactor/webhook`: FlexFactor's event, a JSON body sent as
/// `text/plain` (any content type is read). Unsigned, so only a hint: the agent looks the
/// rescue up at FlexFactor before anything changes. 200 for an event it read (also about a
/// rescue it does not have: FlexFactor need not retry it), 400 for a body that is no event, 415
/// for a body that is neither text nor JSON.
pub async fn flexfactor_webhook(State(agent): State<Agent>, headers: HeaderMap, body: axum::body::Bytes) -> Result<Response, AgentError> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    if media.as_deref().is_some_and(|m| m != "text/plain" && m != "application/json") {
        let body = json!({
            "status": 415,
            "error_type": "unsupported_media_type",
            "title": "a FlexFactor event is JSON text (text/plain or application/json)",
        });
        return Ok((StatusCode::UNSUPPORTED_MEDIA_TYPE, Json(body)).into_response());
    }
    Ok(Json(agent.recovery_webhook(&body).await?).into_response())
}

/// Query of `GET /api/agent/cards`.
#[derive(Deserialize)]
pub struct CardParams {
    /// The customer.
    #[serde(rename = "customerId")]
    customer_id: Option<String>,
    /// The provider (default `connect-e`).
    provider: Option<String>,
}

/// `GET /api/agent/cards?customerId=…`: a customer's stored cards, expired ones hidden.
pub async fn cards(State(agent): State<Agent>, Query(q): Query<CardParams>) -> Result<Response, AgentError> {
    let mut invalid = till_core::InvalidParameters::new();
    let customer = q.customer_id.filter(|c| !c.trim().is_empty() && c.len() <= 50);
    if customer.is_none() {
        invalid.push("customerId", "is required (1 to 50 characters)");
    }
    let provider = match q.provider.as_deref().unwrap_or("connect-e").parse::<ProviderId>() {
        Ok(p) => Some(p),
        Err(e) => {
            invalid.push("provider", e.to_string());
            None
        }
    };
    match (customer, provider) {
        (Some(c), Some(p)) if invalid.is_empty() => Ok(Json(json!({ "items": agent.stored_cards(p, c.trim()).await? })).into_response()),
        _ => Err(AgentError::Invalid(invalid)),
    }
}

/// Escapes text for HTML (the page carries only our own values, escaped anyway).
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// `GET /api/agent/payments/{id}/checkout`: the keyed-entry page. It loads the provider's
/// `client.js` (its own Content-Security-Policy allows that one origin), renders the card form
/// (or the CV2 only, for a stored card), runs `executePayment()` — the 3-D Secure step included —
/// and reports the promise to the agent, which then asks the provider what really happened.
/// The cashier screen shows it in a frame; it may be opened on its own too.
pub async fn checkout(State(agent): State<Agent>, Path(id): Path<String>) -> Result<Response, AgentError> {
    let id = payment_id(&id)?;
    let Some(c) = agent.checkout_of(&id).await? else {
        let body = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Checkout</title>\
             <link rel=\"stylesheet\" href=\"/style.css\"></head><body class=\"checkout\">\
             <p id=\"checkout-closed\">This payment no longer takes card details.</p>\
             <p><a href=\"/api/agent/payments/{}\">Its state</a></p></body></html>",
            esc(&id)
        );
        return Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], body).into_response());
    };
    let amount = c.amount.to_major_string_fixed();
    if c.provider == ProviderId::Acquired {
        return Ok(acquired_checkout(&id, &c, &amount));
    }
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Card payment</title><link rel=\"stylesheet\" href=\"/style.css\"></head>\
         <body class=\"checkout\">\
         <main id=\"checkout\" data-payment=\"{id}\" data-token=\"{token}\" data-form=\"{form}\"{vault}>\
         <h1>Card payment</h1>\
         <p class=\"checkout-amount\"><span id=\"checkout-amount\">{amount} {currency}</span> · order <span id=\"checkout-order\">{order}</span></p>\
         <p class=\"checkout-hint\">{hint}</p>\
         <div id=\"connect-e-container\"></div>\
         <ul id=\"checkout-errors\" role=\"alert\"></ul>\
         <button id=\"checkout-pay\" type=\"button\" class=\"primary\">Pay {amount} {currency}</button>\
         <p id=\"checkout-status\" role=\"status\"></p>\
         </main>\
         <script src=\"{script}\"></script><script src=\"/checkout.js\"></script></body></html>",
        id = esc(&id),
        token = esc(c.token.expose()),
        form = if c.cv2_only { "cv2" } else { "card" },
        amount = esc(&amount),
        currency = c.amount.currency.code(),
        order = esc(&c.order_id),
        hint = if c.cv2_only { "Stored card: enter its CV2 only." } else { "Enter the card details." },
        script = esc(&c.script_url),
        vault = c.vault_url.as_deref().map(|u| format!(" data-vault-url=\"{}\"", esc(u))).unwrap_or_default(),
    );
    // The page may also post the card to FlexFactor's tokenization endpoint (and nowhere else).
    let vault_origin = c.vault_url.as_deref().map(crate::tender::origin_of).unwrap_or_default();
    let csp = format!(
        "default-src 'none'; script-src 'self' {o}; style-src 'self' 'unsafe-inline'; img-src 'self' data: {o}; \
         connect-src 'self' {o} {v}; frame-src {o}; object-src 'none'; form-action 'none'; base-uri 'none'; \
         frame-ancestors 'self'",
        o = c.web_origin,
        v = vault_origin,
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
            (header::CONTENT_SECURITY_POLICY, csp),
            (header::X_FRAME_OPTIONS, "SAMEORIGIN".to_string()),
        ],
        html,
    )
        .into_response())
}

/// `POST /api/agent/providers/{provider}/return`: the customer's browser comes back from the
/// provider's own step (Acquired's 3-D Secure redirect, §5 of its fact sheet) with the signed
/// outcome as form fields — or our checkout page sends the same fields as JSON. The one route
/// that takes requests other sites make a browser send (the guard lets it through, see
/// [`super::security::is_provider_return`]), so it authenticates them itself: the provider's
/// signature over the fields ([`crate::service::Agent::gateway_return`]), then a look-up at the
/// provider before any state changes. A browser gets a page for the customer, a script JSON.
pub async fn provider_return(State(agent): State<Agent>, Path(provider): Path<String>, request: axum::extract::Request) -> Result<Response, AgentError> {
    use axum::extract::FromRequest;
    let provider = provider.parse::<ProviderId>().map_err(|e| AgentError::invalid("provider", &e.to_string()))?;
    let media = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    let form = media.as_deref() == Some("application/x-www-form-urlencoded");
    if !form && media.as_deref().is_some_and(|m| m != "application/json") {
        let body = json!({
            "status": 415,
            "error_type": "unsupported_media_type",
            "title": "a provider return is a form post (application/x-www-form-urlencoded) or JSON",
        });
        return Ok((StatusCode::UNSUPPORTED_MEDIA_TYPE, Json(body)).into_response());
    }
    let fields: Vec<(String, String)> = if form {
        match axum::extract::Form::<Vec<(String, String)>>::from_request(request, &()).await {
            Ok(axum::extract::Form(f)) => f,
            Err(e) => return Err(AgentError::invalid("body", &format!("unreadable form: {e}"))),
        }
    } else {
        let JsonBody(body) = match JsonBody::from_request(request, &()).await {
            Ok(b) => b,
            Err(response) => return Ok(response),
        };
        let Some(obj) = body.as_object() else {
            return Err(AgentError::invalid("body", "must be a JSON object of the provider's return fields"));
        };
        obj.iter()
            .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
            .collect()
    };
    let result = agent.gateway_return(provider, fields).await;
    if !form {
        let rec = result?;
        return Ok(Json(agent.gateway_view(&rec).await?).into_response());
    }
    // A page for the customer on the customer screen: what the provider confirmed.
    let (status, title, text) = match &result {
        Ok(rec) => match rec.state.as_str() {
            "captured" | "authorized" => (StatusCode::OK, "Thank you", "Your payment was approved."),
            "declined" => (StatusCode::OK, "Payment declined", "Please try another card, or ask the cashier."),
            "pending" => (StatusCode::OK, "Checking your payment", "The till is confirming your payment with the card processor."),
            _ => (StatusCode::OK, "Payment not completed", "No money was taken. Please ask the cashier."),
        },
        Err(_) => (StatusCode::BAD_REQUEST, "Payment not confirmed", "This page could not confirm a payment. Please ask the cashier."),
    };
    let state = result.as_ref().map(|r| r.state.clone()).unwrap_or_else(|_| "refused".into());
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"stylesheet\" href=\"/style.css\"></head><body class=\"checkout\">\
         <main id=\"return\" data-state=\"{state}\"><h1>{title}</h1><p>{text}</p></main></body></html>",
        state = esc(&state),
    );
    Ok((status, [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], body).into_response())
}

/// The customer's checkout for an Acquired payment session: Acquired's Components script
/// renders its card form for the session; `confirmPayment()` pays it (the 3-D Secure step
/// included); the signed outcome goes to the agent's return endpoint, which confirms it with
/// Acquired before the screen says anything. The CSP allows the Components host only.
fn acquired_checkout(id: &str, c: &crate::tender::Checkout, amount: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Card payment</title><link rel=\"stylesheet\" href=\"/style.css\"></head>\
         <body class=\"checkout\">\
         <main id=\"checkout\" data-provider=\"acquired\" data-payment=\"{id}\" data-session=\"{session}\" data-expires=\"{expires}\">\
         <h1>Card payment</h1>\
         <p class=\"checkout-amount\"><span id=\"checkout-amount\">{amount} {currency}</span> · order <span id=\"checkout-order\">{order}</span></p>\
         <p class=\"checkout-hint\">Enter the card details.</p>\
         <div id=\"acquired-container\"></div>\
         <ul id=\"checkout-errors\" role=\"alert\"></ul>\
         <button id=\"checkout-pay\" type=\"button\" class=\"primary\">Pay {amount} {currency}</button>\
         <p id=\"checkout-status\" role=\"status\"></p>\
         </main>\
         <script src=\"{script}\"></script><script src=\"/checkout.js\"></script></body></html>",
        id = esc(id),
        session = esc(c.token.expose()),
        expires = c.expires_at.map(|t| t.to_string()).unwrap_or_default(),
        amount = esc(amount),
        currency = c.amount.currency.code(),
        order = esc(&c.order_id),
        script = esc(&c.script_url),
    );
    let csp = format!(
        "default-src 'none'; script-src 'self' {o}; style-src 'self' 'unsafe-inline'; img-src 'self' data: {o}; \
         connect-src 'self' {o}; frame-src {o}; object-src 'none'; form-action 'self'; base-uri 'none'; \
         frame-ancestors 'self'",
        o = c.web_origin
    );
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
            (header::CONTENT_SECURITY_POLICY, csp),
            (header::X_FRAME_OPTIONS, "SAMEORIGIN".to_string()),
        ],
        html,
    )
        .into_response()
}

