//! The client's error type, split by what the caller can conclude about the money.
//!
//! The agent's exactly-once logic rests on one question after a failed call: *could SensePass
//! have performed it?* A refused connection means certainly not, so the call can simply be sent
//! again; a timeout after the request left means maybe, so the agent must first ask SensePass
//! what happened before it dares to repeat a payment or a refund. [`Error`] answers that question
//! by construction, and nothing here ever carries a credential or card data.

use serde_json::Value;

/// Why a SensePass call did not produce the expected answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request certainly never reached SensePass: connection refused, DNS failure, TLS
    /// handshake failure, connect timeout. Safe to send again.
    #[error("request not sent: {0}")]
    NotSent(String),
    /// The request may have been performed: a timeout or a reset after it left, or a response
    /// cut off half way. The caller must reconcile (ask for the transaction) before repeating.
    #[error("outcome unknown: {0}")]
    Uncertain(String),
    /// SensePass answered with a non-2xx status, e.g. `501` when a cancel meets consumer
    /// activity or `400` with `invalid_parameters`. The body is kept as JSON for the caller
    /// (`Value::String` when it was not JSON, `Value::Null` when empty).
    #[error("SensePass answered HTTP {status}")]
    Http {
        /// The HTTP status code.
        status: u16,
        /// The response body.
        body: Value,
    },
    /// SensePass answered 2xx but the body is not the documented shape. The call was performed.
    #[error("unreadable SensePass response: {0}")]
    Decode(String),
    /// The client was asked to do something its configuration cannot express (bad base URL,
    /// an endpoint that needs an API key called with a device ID). Nothing was sent.
    #[error("client configuration: {0}")]
    Config(String),
}

impl Error {
    /// True when SensePass certainly did not perform the call, so sending it again cannot
    /// duplicate anything. `Http` is deliberately not included: a 5xx may hide a partial effect,
    /// and the caller decides per status.
    pub fn certainly_not_performed(&self) -> bool {
        matches!(self, Error::NotSent(_) | Error::Config(_))
    }

    /// True for the documented `501 Not Implemented` of a cancel: the consumer is already paying,
    /// so the transaction cannot be cancelled now and its outcome must be awaited.
    pub fn is_consumer_activity(&self) -> bool {
        matches!(self, Error::Http { status: 501, .. })
    }

    /// The HTTP status when SensePass answered with an error status.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Error::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The names of the `invalid_parameters` of a 400 validation answer, if any — handy for
    /// surfacing SensePass's own complaints next to ours.
    pub fn invalid_parameter_names(&self) -> Vec<String> {
        match self {
            Error::Http { body, .. } => body
                .get("invalid_parameters")
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|p| p.get("parameter").and_then(Value::as_str))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

/// A field of a SensePass entity that is missing or does not have a usable value. Returned by
/// the typed accessors of [`crate::Transaction`] and friends, which read lazily from the raw
/// JSON so that one odd field never makes a whole entity unreadable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// The field is absent or null.
    #[error("`{0}` is missing")]
    Missing(&'static str),
    /// The field is present but unusable.
    #[error("`{field}` is invalid: {reason}")]
    Invalid {
        /// Wire name of the field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl From<FieldError> for Error {
    fn from(e: FieldError) -> Self {
        Error::Decode(e.to_string())
    }
}
