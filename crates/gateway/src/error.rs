//! The error every gateway returns, split by what the caller may conclude about the money.
//!
//! After a failed call the orchestrator has one question: *could the provider have performed
//! it?* If certainly not, it may send it again (or give up cleanly); if maybe, it must first
//! reconcile — ask the provider what happened — before it dares to repeat a charge, a refund or
//! a collection. [`GatewayError::certainly_not_performed`] answers that question, and every
//! variant is built so that it does. Messages never carry credentials, tokens or card data.

use crate::model::ProviderId;

/// Why a gateway call did not produce its result.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The request never reached the provider (connection refused, DNS, TLS handshake, connect
    /// timeout). Nothing was performed; try again later.
    #[error("{provider} unreachable, nothing sent: {detail}")]
    Unreachable {
        /// Which provider.
        provider: ProviderId,
        /// What failed, without secrets.
        detail: String,
    },
    /// The provider answered and refused (validation, authentication, an operation its rules
    /// do not allow). Nothing was performed.
    #[error("{provider} refused (HTTP {status}): {message}")]
    Refused {
        /// Which provider.
        provider: ProviderId,
        /// The HTTP status of the refusal.
        status: u16,
        /// The provider's reason, as text.
        message: String,
    },
    /// The provider refused the request's parameters, naming each (Acquired's
    /// `invalid_parameters`). Names are the local API's where one corresponds (`orderId` for
    /// Acquired's `transaction.order_id`), else the provider's own; the provider crate maps them.
    /// Nothing was performed.
    #[error("{provider} refused the request's parameters: {}", parameters.iter().map(|(p, r)| format!("{p}: {r}")).collect::<Vec<_>>().join("; "))]
    InvalidParameters {
        /// Which provider.
        provider: ProviderId,
        /// Each refused parameter and the provider's reason.
        parameters: Vec<(String, String)>,
    },
    /// The provider does not know the payment or operation.
    #[error("{provider} does not know this payment")]
    NotFound {
        /// Which provider.
        provider: ProviderId,
    },
    /// The provider has no such feature (a capability flag is off). Nothing was sent.
    #[error("{provider} does not support {what}")]
    Unsupported {
        /// Which provider.
        provider: ProviderId,
        /// The feature asked for.
        what: &'static str,
    },
    /// Our request cannot be expressed to this provider (a currency it does not take, a
    /// missing reference). Nothing was sent.
    #[error("invalid for {provider}: {detail}")]
    Invalid {
        /// Which provider.
        provider: ProviderId,
        /// What is wrong.
        detail: String,
    },
    /// The request may have been performed: a timeout after it left, a connection cut before
    /// the answer, a 5xx, an answer we cannot read. Reconcile before repeating anything.
    #[error("{provider}: outcome unknown: {detail}")]
    OutcomeUnknown {
        /// Which provider.
        provider: ProviderId,
        /// What happened, without secrets.
        detail: String,
    },
}

impl GatewayError {
    /// True when the provider certainly did not perform the call, so sending it again cannot
    /// duplicate a charge, a refund or a collection.
    pub fn certainly_not_performed(&self) -> bool {
        !matches!(self, GatewayError::OutcomeUnknown { .. })
    }

    /// True when the provider could not be reached at all (the agent queues money-out then).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, GatewayError::Unreachable { .. })
    }

    /// The provider the error came from.
    pub fn provider(&self) -> ProviderId {
        match self {
            GatewayError::Unreachable { provider, .. }
            | GatewayError::Refused { provider, .. }
            | GatewayError::InvalidParameters { provider, .. }
            | GatewayError::NotFound { provider }
            | GatewayError::Unsupported { provider, .. }
            | GatewayError::Invalid { provider, .. }
            | GatewayError::OutcomeUnknown { provider, .. } => *provider,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unknown_outcome_may_have_been_performed() {
        let p = ProviderId::ConnectE;
        let errors = [
            GatewayError::Unreachable {
                provider: p,
                detail: "refused".into(),
            },
            GatewayError::Refused {
                provider: p,
                status: 400,
                message: "bad".into(),
            },
            GatewayError::InvalidParameters {
                provider: p,
                parameters: vec![("orderId".into(), "too short".into())],
            },
            GatewayError::NotFound { provider: p },
            GatewayError::Unsupported {
                provider: p,
                what: "void",
            },
            GatewayError::Invalid {
                provider: p,
                detail: "currency".into(),
            },
        ];
        for e in &errors {
            assert!(e.certainly_not_performed(), "{e}");
            assert_eq!(e.provider(), p);
        }
        let unknown = GatewayError::OutcomeUnknown {
            provider: p,
            detail: "timeout".into(),
        };
        assert!(!unknown.certainly_not_performed());
    }
}
