//! The client's error, split by what the caller can conclude about the money.
//!
//! A refused connection means Acquired certainly did not act; a timeout or a cut connection
//! after the request left means it may have. A 4xx is Acquired refusing (nothing done), read
//! into the typed §7 body when it is one ([`crate::wire::ApiError`], with every
//! `invalid_parameters` entry); a 5xx is "maybe", because a server error does not promise that
//! nothing happened. Nothing here ever carries the app key, a bearer token or card data.

use crate::wire::{ApiError, InvalidParameter};

/// Why an Acquired call did not produce the expected answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request certainly never reached Acquired (connect refused or timed out, DNS, TLS).
    #[error("request not sent: {0}")]
    NotSent(String),
    /// The request may have been performed: timeout or reset after it left, answer cut off.
    #[error("outcome unknown: {0}")]
    Uncertain(String),
    /// Acquired answered a non-2xx status with its documented error body (§7).
    #[error("Acquired answered HTTP {status}: {error}")]
    Api {
        /// The HTTP status code.
        status: u16,
        /// The typed body: `error_type`, `title`, `invalid_parameters`.
        error: ApiError,
    },
    /// Acquired answered a non-2xx status with a body that is not the §7 shape (a proxy's
    /// page, an empty body). Kept as text, cut to 500 characters.
    #[error("Acquired answered HTTP {status}: {body}")]
    Http {
        /// The HTTP status code.
        status: u16,
        /// The body as text.
        body: String,
    },
    /// A 2xx answer whose body is not the expected shape. The call was performed.
    #[error("unreadable Acquired response: {0}")]
    Decode(String),
    /// The request cannot be built (bad base URL, a currency Acquired does not take, an amount
    /// that is not positive). Nothing was sent.
    #[error("cannot build the request: {0}")]
    Config(String),
}

impl Error {
    /// True when Acquired certainly did not perform the call.
    pub fn certainly_not_performed(&self) -> bool {
        match self {
            Error::NotSent(_) | Error::Config(_) => true,
            Error::Api { status, .. } | Error::Http { status, .. } => (400..500).contains(status),
            Error::Uncertain(_) | Error::Decode(_) => false,
        }
    }

    /// The HTTP status, when Acquired answered with an error status.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Every parameter a 400 named, in Acquired's order (empty for other errors).
    pub fn invalid_parameters(&self) -> &[InvalidParameter] {
        match self {
            Error::Api { error, .. } => &error.invalid_parameters,
            _ => &[],
        }
    }

    /// True for a 401: the token was refused (the client renews it once by itself).
    pub fn is_unauthorized(&self) -> bool {
        self.http_status() == Some(401)
    }
}

#[cfg(test)]
mod tests {
    use super::Error;
    use crate::wire::ApiError;

    #[test]
    fn classification() {
        assert!(Error::NotSent("refused".into()).certainly_not_performed());
        let e: ApiError = serde_json::from_str(
            r#"{"status":"error","error_type":"validation","title":"t","instance":"/v1/payment-sessions",
                "invalid_parameters":[{"parameter":"transaction.order_id","reason":"can not be empty"}]}"#,
        )
        .unwrap();
        let api = Error::Api { status: 400, error: e };
        assert!(api.certainly_not_performed());
        assert_eq!(api.invalid_parameters()[0].parameter, "transaction.order_id");
        assert!(!Error::Http { status: 502, body: "x".into() }.certainly_not_performed());
        assert!(!Error::Uncertain("timeout".into()).certainly_not_performed());
        assert!(Error::Http { status: 401, body: String::new() }.is_unauthorized());
    }
}
