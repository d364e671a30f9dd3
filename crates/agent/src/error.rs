//! The agent's error type and how each error is told to the POS.
//!
//! Every error body has one shape, extended from the SensePass/Acquired validation error:
//! `{"status": 409, "error_type": "busy", "title": "...", ...}`; validation errors add
//! `invalid_parameters`, busy errors add the open `transactionNumber`. POS developers can switch on
//! `error_type` without parsing prose.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use till_core::InvalidParameters;

/// Everything that can go wrong handling a local API call.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The request is invalid; every invalid field is named. Nothing was journaled or sent.
    #[error("{0}")]
    Invalid(InvalidParameters),
    /// No device is paired, so nothing can be sent to SensePass.
    #[error("this till is not paired with a SensePass device")]
    NotPaired,
    /// Another payment is open on this device (one payment at a time).
    #[error("another payment is in progress")]
    Busy {
        /// The open transaction's SensePass number, if SensePass has answered already.
        number: Option<String>,
        /// Our local id of the open payment.
        local_id: String,
    },
    /// An order id or Idempotency-Key that belongs to a payment of another amount or currency, or
    /// a refund key reused for another refund: refused, nothing created; the body names the
    /// original (for a refund: its payment, and the refund's amount).
    #[error("this order id / Idempotency-Key was used for {amount_minor} minor units {currency} (payment {local_id}); a replay must ask for the same thing")]
    IdempotencyMismatch {
        /// The original payment's SensePass number, if it has one.
        number: Option<String>,
        /// Our local id of the original payment.
        local_id: String,
        /// The original amount, minor units.
        amount_minor: i64,
        /// The original currency (ISO code).
        currency: String,
    },
    /// The named thing does not exist in the journal.
    #[error("{0} not found")]
    NotFound(String),
    /// A money-out operation without a valid POS token or manager PIN.
    #[error("this operation needs the POS token (Authorization: Bearer …)")]
    Unauthorized,
    /// A manager-only operation without a manager session.
    #[error("this needs a manager login (Authorization: Bearer <session>)")]
    ManagerOnly,
    /// Wrong manager PIN, or logins locked after too many.
    #[error("{0}")]
    Login(String),
    /// The request conflicts with the transaction's state (e.g. refund of an unpaid payment).
    #[error("{0}")]
    Conflict(String),
    /// A refund would take more than was captured (queued refunds included).
    #[error("refund exceeds what is left to refund ({remaining} minor units)")]
    RefundCap {
        /// Minor units still refundable.
        remaining: i64,
    },
    /// SensePass is unreachable and the refund queue is at its configured limit.
    #[error("SensePass is unreachable and the refund queue is full: {0}")]
    QueueFull(String),
    /// SensePass could not be reached; the call certainly did not happen.
    #[error("SensePass is unreachable: {0}")]
    Unreachable(String),
    /// A provider behind the gateway seam (Connect-E) could not be reached; nothing was sent.
    #[error("{0}")]
    ProviderUnreachable(String),
    /// The receipt printer cannot do what was asked now (none configured, unreachable, out of
    /// paper) — for requests that must act at once, such as opening the cash drawer.
    #[error("printer: {0}")]
    Printer(String),
    /// The call may or may not have happened at SensePass; the agent will reconcile.
    #[error("outcome unknown: {0}")]
    Uncertain(String),
    /// SensePass answered with an error; its status and body are passed through.
    #[error("SensePass answered {status}")]
    Upstream {
        /// HTTP status from SensePass.
        status: u16,
        /// Body from SensePass.
        body: Value,
    },
    /// The agent is still reconciling after start-up and not taking payments yet.
    #[error("the agent is recovering; retry shortly")]
    Recovering,
    /// SensePass answered something unreadable (a 2xx that is not the documented shape).
    #[error("unreadable answer from SensePass: {0}")]
    BadGateway(String),
    /// A bug or a broken disk: the journal failed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<till_journal::JournalError> for AgentError {
    fn from(e: till_journal::JournalError) -> Self {
        match e {
            till_journal::JournalError::RefundCapExceeded { remaining } => {
                AgentError::RefundCap { remaining: remaining.0 }
            }
            other => AgentError::Internal(other.to_string()),
        }
    }
}

impl From<till_sensepass::Error> for AgentError {
    fn from(e: till_sensepass::Error) -> Self {
        use till_sensepass::Error as E;
        match e {
            E::NotSent(m) => AgentError::Unreachable(m),
            E::Uncertain(m) => AgentError::Uncertain(m),
            E::Http { status, body } => AgentError::Upstream { status, body },
            E::Decode(m) => AgentError::BadGateway(m),
            // The client refused to build the call (a path or body it will not send): the
            // request's fault, and nothing was sent.
            E::Config(m) => {
                AgentError::invalid(if m.starts_with("cannot send to path") { "path" } else { "request" }, &m)
            }
        }
    }
}

impl AgentError {
    /// The HTTP status and machine-readable type of this error.
    pub fn status_and_type(&self) -> (StatusCode, &'static str) {
        match self {
            AgentError::Invalid(_) => (StatusCode::BAD_REQUEST, "validation"),
            AgentError::NotPaired => (StatusCode::SERVICE_UNAVAILABLE, "not_paired"),
            AgentError::Busy { .. } => (StatusCode::CONFLICT, "busy"),
            AgentError::IdempotencyMismatch { .. } => (StatusCode::CONFLICT, "idempotency_mismatch"),
            AgentError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            AgentError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AgentError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            AgentError::ManagerOnly => (StatusCode::UNAUTHORIZED, "manager_only"),
            AgentError::Login(_) => (StatusCode::UNAUTHORIZED, "login_failed"),
            AgentError::RefundCap { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "refund_exceeds_captured"),
            AgentError::Unreachable(_) => (StatusCode::SERVICE_UNAVAILABLE, "sensepass_unreachable"),
            AgentError::QueueFull(_) => (StatusCode::SERVICE_UNAVAILABLE, "refund_queue_full"),
            AgentError::ProviderUnreachable(_) => (StatusCode::SERVICE_UNAVAILABLE, "provider_unreachable"),
            AgentError::Uncertain(_) => (StatusCode::GATEWAY_TIMEOUT, "outcome_unknown"),
            AgentError::Printer(_) => (StatusCode::SERVICE_UNAVAILABLE, "printer_unavailable"),
            AgentError::Upstream { status, .. } => (
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY),
                "sensepass_error",
            ),
            AgentError::Recovering => (StatusCode::SERVICE_UNAVAILABLE, "recovering"),
            AgentError::BadGateway(_) => (StatusCode::BAD_GATEWAY, "bad_gateway"),
            AgentError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// A validation error for one field.
    pub fn invalid(parameter: &str, reason: &str) -> AgentError {
        let mut p = InvalidParameters::new();
        p.push(parameter, reason);
        AgentError::Invalid(p)
    }
}

impl IntoResponse for AgentError {
    fn into_response(self) -> Response {
        let (status, body) = self.status_and_body();
        if status.is_server_error() {
            tracing::warn!(error = %self, "request failed");
        }
        (status, Json(body)).into_response()
    }
}

impl AgentError {
    /// The HTTP status and JSON body this error is answered with (also what an idempotent retry
    /// of a refund gets again).
    pub fn status_and_body(&self) -> (StatusCode, Value) {
        let (status, kind) = self.status_and_type();
        if let AgentError::Upstream { body, .. } = self {
            // SensePass's own error body is what a POS written for the vendor's agent expects.
            return (status, body.clone());
        }
        let mut body = json!({ "status": status.as_u16(), "error_type": kind, "title": self.to_string() });
        match self {
            AgentError::Invalid(params) => body["invalid_parameters"] = json!(params),
            AgentError::Busy { number, local_id } => {
                body["transactionNumber"] = json!(number);
                body["localId"] = json!(local_id);
            }
            AgentError::IdempotencyMismatch { number, local_id, amount_minor, currency } => {
                body["transactionNumber"] = json!(number);
                body["localId"] = json!(local_id);
                body["amountMinor"] = json!(amount_minor);
                body["currency"] = json!(currency);
            }
            AgentError::RefundCap { remaining } => body["remainingMinor"] = json!(remaining),
            _ => {}
        }
        (status, body)
    }
}
