//! The client's error, split by what the caller can conclude about the money.
//!
//! A refused connection means FlexFactor certainly did not act; a timeout or a cut connection
//! after the request left means it may have acted (an `/evaluate` may have opened a rescue, a
//! refund may have been paid). A 4xx — including both 400 shapes of §2 and a `FAILED` refund —
//! is FlexFactor refusing: nothing done. A 5xx is "maybe": a server error does not promise that
//! nothing happened. Nothing here ever carries the AppSecret, a token or card data.

use std::collections::BTreeMap;

/// Why a FlexFactor call did not produce the expected answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request certainly never reached FlexFactor (connect refused or timed out, DNS, TLS).
    #[error("request not sent: {0}")]
    NotSent(String),
    /// The request may have been performed: timeout or reset after it left, answer cut off.
    #[error("outcome unknown: {0}")]
    Uncertain(String),
    /// HTTP 400 in one of the ASP.NET model-state shapes of §2 (with or without the envelope):
    /// field name → messages. `TraceId` is kept apart, it names no field.
    #[error("FlexFactor refused the request (HTTP {status}): {}", describe(.fields))]
    Validation {
        /// The HTTP status (400).
        status: u16,
        /// Invalid fields and their messages, e.g. `IdempotencyKey` → `["… is required."]`.
        fields: BTreeMap<String, Vec<String>>,
        /// FlexFactor's trace id, for support.
        trace_id: Option<String>,
    },
    /// An answer with `success: false` or `status: "FAILED"` (a refund above what is
    /// refundable, §8). Nothing was performed.
    #[error("FlexFactor declined the operation: {message}")]
    Rejected {
        /// FlexFactor's `responseCode` or the errors' code (`2001`), if any.
        code: Option<String>,
        /// FlexFactor's message (`Amount to refund (1.00) is greater than …`).
        message: String,
    },
    /// Still 401 after a fresh access token: the AppKey/AppSecret are not accepted.
    #[error("FlexFactor rejected our credentials")]
    Unauthorized,
    /// Any other non-2xx answer. The body is kept as text (cut to 500 characters).
    #[error("FlexFactor answered HTTP {status}: {body}")]
    Http {
        /// The HTTP status code.
        status: u16,
        /// The body as text.
        body: String,
    },
    /// A 2xx answer whose body is not the expected shape. The call was performed.
    #[error("unreadable FlexFactor response: {0}")]
    Decode(String),
    /// The request cannot be built (bad base URL, an amount that cannot be expressed). Nothing
    /// was sent.
    #[error("cannot build the request: {0}")]
    Config(String),
}

fn describe(fields: &BTreeMap<String, Vec<String>>) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k}: {}", v.join(" ")))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// True when FlexFactor certainly did not perform the call, so sending it again cannot open
    /// a second rescue or pay a second refund.
    pub fn certainly_not_performed(&self) -> bool {
        match self {
            Error::NotSent(_)
            | Error::Config(_)
            | Error::Validation { .. }
            | Error::Rejected { .. }
            | Error::Unauthorized => true,
            Error::Http { status, .. } => (400..500).contains(status),
            Error::Uncertain(_) | Error::Decode(_) => false,
        }
    }

    /// The HTTP status, when FlexFactor answered with an error status.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Error::Validation { status, .. } | Error::Http { status, .. } => Some(*status),
            Error::Unauthorized => Some(401),
            _ => None,
        }
    }

    /// The invalid fields of a 400, if this is one (names as FlexFactor spells them).
    pub fn invalid_fields(&self) -> Vec<&str> {
        match self {
            Error::Validation { fields, .. } => fields.keys().map(String::as_str).collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert!(Error::NotSent("refused".into()).certainly_not_performed());
        assert!(Error::Rejected {
            code: Some("2001".into()),
            message: "too much".into()
        }
        .certainly_not_performed());
        assert!(Error::Validation {
            status: 400,
            fields: BTreeMap::new(),
            trace_id: None
        }
        .certainly_not_performed());
        assert!(!Error::Http {
            status: 503,
            body: String::new()
        }
        .certainly_not_performed());
        assert!(!Error::Uncertain("timeout".into()).certainly_not_performed());
        assert!(!Error::Decode("x".into()).certainly_not_performed());
    }
}
