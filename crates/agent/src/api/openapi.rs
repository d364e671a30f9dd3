//! The OpenAPI 3.1 document of the whole local API: `docs/openapi.json`, written by hand (it is
//! the contract POS vendors integrate from, with schemas, every status code, the error shape and
//! examples) and served as is at `/api/agent/openapi.json`.
//!
//! What keeps it true: `crates/agent/tests/openapi.rs` fails when the document and the router
//! disagree (paths, methods, the status codes a real request gets, the error types the agent can
//! answer), and CI validates it with `openapi-spec-validator` (scripts/test.sh).

use axum::response::IntoResponse;

/// The document, as checked in.
pub const DOCUMENT: &str = include_str!("../../../../docs/openapi.json");

/// The document as JSON text (what `GET /api/agent/openapi.json` answers).
pub fn document_json() -> &'static str {
    DOCUMENT
}

/// The document, parsed into utoipa's OpenAPI model (`None` if it does not parse, which the
/// tests rule out).
pub fn document() -> Option<utoipa::openapi::OpenApi> {
    serde_json::from_str(DOCUMENT).ok()
}

/// `GET /api/agent/openapi.json`.
pub async fn serve() -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
