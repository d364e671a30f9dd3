//! The client's error, split by what the caller can conclude about the money.
//!
//! A refused connection means Connect-E certainly did not act, so the call may be sent again; a
//! timeout or a cut connection after the request left means it may have acted, and the caller
//! must reconcile first. A 4xx is Connect-E refusing (nothing done); a 5xx is treated as
//! "maybe", because a server error does not promise that nothing happened. Nothing here ever
//! carries the API key, an access token or card data.

/// Why a Connect-E call did not produce the expected answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request certainly never reached Connect-E (connect refused or timed out, DNS, TLS).
    #[error("request not sent: {0}")]
    NotSent(String),
    /// The request may have been performed: timeout or reset after it left, answer cut off.
    #[error("outcome unknown: {0}")]
    Uncertain(String),
    /// Connect-E answered a non-2xx status. The body is kept as text: error bodies are not
    /// documented (revoke's are `text/plain`, others may be JSON), and both are readable.
    #[error("Connect-E answered HTTP {status}: {body}")]
    Http {
        /// The HTTP status code.
        status: u16,
        /// The body as text, cut to 500 characters.
        body: String,
    },
    /// A 2xx answer whose body is not the documented shape. The call was performed.
    #[error("unreadable Connect-E response: {0}")]
    Decode(String),
    /// The request cannot be built (bad base URL, a currency Connect-E does not take, an
    /// amount that is not a positive number of minor units). Nothing was sent.
    #[error("cannot build the request: {0}")]
    Config(String),
}

impl Error {
    /// True when Connect-E certainly did not perform the call.
    pub fn certainly_not_performed(&self) -> bool {
        match self {
            Error::NotSent(_) | Error::Config(_) => true,
            Error::Http { status, .. } => (400..500).contains(status),
            Error::Uncertain(_) | Error::Decode(_) => false,
        }
    }

    /// The HTTP status, when Connect-E answered with an error status.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Error::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True for revoke's `unable to revoke access token with transaction in [state] state`:
    /// the token was used.
    pub fn is_token_consumed(&self) -> bool {
        matches!(self, Error::Http { status: 400, body } if body.to_ascii_lowercase().contains("unable to revoke"))
    }

    /// True for revoke's `Invalid access token`: unknown, or expired and never used.
    pub fn is_invalid_token(&self) -> bool {
        matches!(self, Error::Http { status: 400, body } if body.to_ascii_lowercase().contains("invalid access token"))
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn classification() {
        assert!(Error::NotSent("refused".into()).certainly_not_performed());
        assert!(Error::Http {
            status: 400,
            body: "x".into()
        }
        .certainly_not_performed());
        assert!(Error::Http {
            status: 401,
            body: "x".into()
        }
        .certainly_not_performed());
        assert!(!Error::Http {
            status: 500,
            body: "x".into()
        }
        .certainly_not_performed());
        assert!(!Error::Uncertain("timeout".into()).certainly_not_performed());
        let consumed = Error::Http {
            status: 400,
            body: "unable to revoke access token with transaction in [SUCCESSFUL] state".into(),
        };
        assert!(consumed.is_token_consumed() && !consumed.is_invalid_token());
        assert!(Error::Http {
            status: 400,
            body: "Invalid access token".into()
        }
        .is_invalid_token());
    }
}
