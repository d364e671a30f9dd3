//! The fleet's API errors and how each becomes an HTTP answer.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use till_core::InvalidParameters;
use till_fleet_protocol::Refusal;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or bad credentials (unknown till, wrong secret, missing admin token).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Known caller, not allowed (revoked till, another till's rows).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Bad input, naming every invalid field.
    #[error("invalid parameters: {0}")]
    Invalid(InvalidParameters),
    /// Nothing there.
    #[error("not found: {0}")]
    NotFound(String),
    /// A batch that would leave a gap or repeats what is applied.
    #[error("refused: {}", .0.message)]
    Refused(Refusal),
    /// Already exists (a till name taken in its store).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A bug or an unexpected failure of ours.
    #[error("internal: {0}")]
    Internal(String),
    /// PostgreSQL failed.
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    /// No connection from the pool.
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
}

impl ApiError {
    /// A single invalid field.
    pub fn invalid(field: &str, reason: &str) -> ApiError {
        let mut p = InvalidParameters::new();
        p.push(field, reason);
        ApiError::Invalid(p)
    }
}

impl From<InvalidParameters> for ApiError {
    fn from(p: InvalidParameters) -> ApiError {
        ApiError::Invalid(p)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, json!({ "error": "unauthorized", "message": m })),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, json!({ "error": "forbidden", "message": m })),
            ApiError::Invalid(p) => (
                StatusCode::BAD_REQUEST,
                json!({ "error": "invalid_parameters", "message": p.to_string(), "invalid_parameters": p }),
            ),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, json!({ "error": "not_found", "message": m })),
            ApiError::Refused(r) => (StatusCode::CONFLICT, serde_json::to_value(r).unwrap_or_default()),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, json!({ "error": "conflict", "message": m })),
            ApiError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, json!({ "error": "internal", "message": "internal error" }))
            }
            ApiError::Db(_) | ApiError::Pool(_) => {
                // Details go to the log, not to the caller.
                tracing::error!(error = %self, "database error");
                (StatusCode::SERVICE_UNAVAILABLE, json!({ "error": "database_unavailable", "message": "database unavailable; retry" }))
            }
        };
        (status, Json(body)).into_response()
    }
}
