//! The shape of a validation failure: every invalid field, named, with a reason.
//!
//! Modelled on the `invalid_parameters` array of Acquired's payment-sessions errors
//! (`{parameter, reason}`), which names *every* bad field at once so a POS developer fixes a
//! request in one round trip instead of one field per attempt.

use serde::{Deserialize, Serialize};

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidParameter {
    /// Dotted path of the field, e.g. `amount` or `products[2].quantity`.
    pub parameter: String,
    /// Human-readable reason, e.g. `must be greater than 0`.
    pub reason: String,
}

/// A collector of invalid fields; validation code pushes into it and checks [`Self::is_empty`]
/// at the end, so that all problems are reported together.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InvalidParameters(pub Vec<InvalidParameter>);

impl InvalidParameters {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `parameter` is invalid for `reason`.
    pub fn push(&mut self, parameter: impl Into<String>, reason: impl Into<String>) {
        self.0.push(InvalidParameter { parameter: parameter.into(), reason: reason.into() });
    }

    /// True when nothing was found wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Names of the invalid parameters, in the order found.
    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|p| p.parameter.as_str()).collect()
    }

    /// `Ok(())` when empty, otherwise `Err(self)`: the usual end of a validation function.
    pub fn into_result(self) -> Result<(), InvalidParameters> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl std::fmt::Display for InvalidParameters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> =
            self.0.iter().map(|p| format!("{}: {}", p.parameter, p.reason)).collect();
        write!(f, "invalid parameters: {}", parts.join("; "))
    }
}

impl std::error::Error for InvalidParameters {}
