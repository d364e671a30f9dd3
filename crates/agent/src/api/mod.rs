//! The local HTTP API.
//!
//! Two families of paths on one listener:
//! - **SensePass-compatible** (`/api/transactions/*`, `/api/devices`, and a passthrough for an
//!   allow-list of other cloud paths that move no money): the same paths and bodies as the
//!   vendor's Terminal Agent (spec §8), so POS software written for it works unchanged. `deviceId`
//!   may be omitted; the agent adds the paired one.
//! - **Agent extensions** under `/api/agent/`: health, the event stream, journal queries, the outbox,
//!   the OpenAPI document, and the payments of the providers behind the gateway seam
//!   (`/api/agent/payments`, Paymentsense Connect-E; [`crate::tender`]).
//!
//! Handlers are thin: they parse, call [`crate::service::Agent`], and shape the answer.

pub(crate) mod console;
mod handlers;
mod payments;
pub mod openapi;
mod printing;
pub mod display;
pub mod security;
pub mod server;

use crate::service::Agent;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use std::net::SocketAddr;

/// Largest request body accepted (a cart of a few hundred lines fits easily).
pub const MAX_BODY: usize = 64 * 1024;

/// Tells clients how long an idle connection stays open (`Keep-Alive: timeout=N`, N one second
/// under [`server::HEADER_READ_TIMEOUT`]), so that a pooling client which honours it (Node's
/// undici does; others take a pool idle timeout) never reuses a connection just as the agent closes
/// it: that race fails the request with a transport error before anything reaches the agent.
async fn announce_keep_alive(mut response: axum::response::Response) -> axum::response::Response {
    let secs = server::HEADER_READ_TIMEOUT.as_secs().saturating_sub(1).max(1);
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!("timeout={secs}")) {
        response.headers_mut().insert(axum::http::header::HeaderName::from_static("keep-alive"), v);
    }
    response
}

/// Builds the router with its safety layers.
pub fn router(agent: Agent, addr: SocketAddr) -> Router {
    let origins = security::allowed_origins(addr);
    let guard = security::Guard { origins: origins.clone() };
    Router::new()
        // SensePass Terminal Agent compatible paths (spec §8).
        .route("/api/transactions/init", post(handlers::init))
        .route("/api/transactions/init/sync", post(handlers::init_sync))
        .route("/api/transactions/last", get(handlers::last))
        .route("/api/transactions/refund", post(handlers::refund))
        .route("/api/transactions/credit", post(handlers::credit))
        .route("/api/transactions/cancel/{number}", post(handlers::cancel))
        .route("/api/transactions/cancelByDeviceId/{device}", post(handlers::cancel_by_device))
        .route("/api/transactions/products/update", post(handlers::products_update))
        // POSTs to other one-segment paths: customer-input is forwarded, the rest refused.
        .route(
            "/api/transactions/{number}",
            get(handlers::transaction).patch(handlers::update).post(handlers::passthrough),
        )
        .route("/api/devices", get(handlers::devices))
        // Agent extensions.
        .route("/api/agent/health", get(handlers::health))
        .route("/api/agent/events", get(handlers::events))
        .route("/api/agent/transactions", get(handlers::journal_query))
        .route("/api/agent/transactions/{id}", get(handlers::journal_detail))
        .route("/api/agent/outbox", get(handlers::outbox))
        .route("/api/agent/outbox/{id}/retry", post(console::outbox_retry))
        .route("/api/agent/outbox/{id}/dismiss", post(console::outbox_dismiss))
        .route("/api/agent/openapi.json", get(openapi::serve))
        .route("/api/agent/qr.svg", get(console::qr_svg))
        .route("/api/agent/transactions/{id}/resolve", post(console::resolve_payment))
        .route("/api/agent/transactions/{id}/receipt.pdf", get(console::receipt_pdf))
        .route("/api/agent/transactions/{id}/receipt.json", get(console::receipt_json))
        .route("/api/agent/transactions/{id}/print", post(printing::print_receipt))
        .route("/api/agent/drawer/open", post(printing::open_drawer))
        .route("/api/agent/printer", get(printing::printer))
        .route("/api/agent/printer/settings", post(printing::save_settings))
        .route("/api/agent/printer/test", post(printing::test_print))
        .route("/api/agent/display", get(display::get).post(display::set))
        .route("/api/agent/transactions.csv", get(console::transactions_csv))
        .route("/api/agent/summary", get(console::summary))
        .route("/api/agent/manager", get(console::manager_state))
        .route("/api/agent/manager/pin", post(console::manager_set_pin))
        .route("/api/agent/manager/login", post(console::manager_login))
        .route("/api/agent/manager/logout", post(console::manager_logout))
        .route("/api/agent/settings", get(console::settings))
        .route("/api/agent/pairing", post(console::pair).delete(console::unpair))
        // Payments of the providers behind the gateway seam (Paymentsense Connect-E).
        .route("/api/agent/payments", get(payments::list).post(payments::create))
        .route("/api/agent/payments/{id}", get(payments::get_one).patch(payments::change))
        .route("/api/agent/payments/{id}/checkout", get(payments::checkout))
        .route("/api/agent/payments/{id}/report", post(payments::report))
        .route("/api/agent/payments/{id}/vault", post(payments::vault))
        .route("/api/agent/payments/{id}/capture", post(payments::capture))
        .route("/api/agent/payments/{id}/refund", post(payments::refund))
        .route("/api/agent/payments/{id}/void", post(payments::void))
        .route("/api/agent/payments/{id}/resume", post(payments::resume))
        .route("/api/agent/payments/{id}/cancel", post(payments::cancel))
        .route("/api/agent/payments/{id}/renew", post(payments::renew))
        .route("/api/agent/cards", get(payments::cards))
        // The customer's browser back from a provider's own step (Acquired's 3-D Secure).
        .route("/api/agent/providers/{provider}/return", post(payments::provider_return))
        // FlexFactor's events (JSON sent as text/plain; a hint to look the rescue up).
        .route("/api/agent/providers/flexfactor/webhook", post(payments::flexfactor_webhook))
        // Other SensePass paths: forwarded when on the allow-list, refused with a 400 otherwise.
        .route("/api/{*path}", axum::routing::any(handlers::passthrough))
        // The web UI (cashier screen, manager console, settings).
        .fallback(get(console::ui))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(announce_keep_alive))
        .layer(security::cors(&origins))
        .layer(axum::middleware::from_fn_with_state(guard, security::guard))
        .with_state(agent)
}
