//! Values that identify money but must never be printed in full.
//!
//! A Connect-E access token lets whoever holds it complete a payment; a cross reference lets the
//! merchant charge the card again. Both travel through our types, so both are wrapped: `Debug`
//! and `Display` show only the length and, for references people need to tell apart in logs, a
//! short prefix. The value itself is reached only through [`Opaque::expose`], which makes every
//! place that puts it on a wire easy to find.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A provider value that is a capability (a token, a card-on-file reference). Serialises as the
/// plain string — the journal must be able to store it — but never prints it.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Opaque(String);

impl Opaque {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Opaque {
        Opaque(value.into())
    }

    /// The value, for the one place that sends it to the provider or stores it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the wrapped value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A short, safe label: the first four characters and the length, e.g. `5f1t…(128)`. Four
    /// characters of a 100+ character random token tell two tokens apart in a log without
    /// helping anyone use them.
    pub fn label(&self) -> String {
        let prefix: String = self.0.chars().take(4).collect();
        format!("{prefix}…({})", self.0.chars().count())
    }
}

impl fmt::Debug for Opaque {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Opaque({})", self.label())
    }
}

impl fmt::Display for Opaque {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::Opaque;

    #[test]
    fn never_prints_the_value() {
        let secret = "5f1tYtm-I5X_fB4lxkD7vQqtSECRETSECRET";
        let o = Opaque::new(secret);
        assert!(!format!("{o:?}").contains("SECRET"));
        assert!(!format!("{o}").contains("SECRET"));
        assert_eq!(o.label(), format!("5f1t…({})", secret.len()));
        assert_eq!(o.expose(), secret);
        assert_eq!(serde_json::to_string(&o).unwrap(), format!("\"{secret}\""));
    }
}
