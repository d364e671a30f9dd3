//! The provider reference of an Acquired payment.
//!
//! A payment starts as a *session* (`session_id`, what the Components script needs) and becomes
//! a *transaction* (`transaction_id`, what look-up, capture and refund need) when the customer
//! pays; the redirect and the webhooks name the transaction, nothing documented maps a session to
//! it (§4, §11.2). The neutral [`till_gateway::Payment`] has one reference, so both ids travel in
//! it as `<session_id>` or `<session_id> <transaction_id>` (ids are UUIDs and never contain a
//! space). [`PaymentRef`] is the one place that writes and reads that form.

use till_gateway::Opaque;

/// Session id and, once known, transaction id of one payment.
#[derive(Clone, PartialEq, Eq)]
pub struct PaymentRef {
    /// The session the customer pays in. A capability (it lets whoever holds it pay).
    pub session_id: Opaque,
    /// Acquired's transaction, once the redirect or a webhook named it.
    pub transaction_id: Option<String>,
}

impl std::fmt::Debug for PaymentRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentRef")
            .field("session_id", &self.session_id)
            .field("transaction_id", &self.transaction_id)
            .finish()
    }
}

impl PaymentRef {
    /// Reads a payment's reference.
    pub fn parse(reference: &Opaque) -> PaymentRef {
        let text = reference.expose().trim();
        match text.split_once(' ') {
            Some((s, t)) if !t.trim().is_empty() => PaymentRef {
                session_id: Opaque::new(s),
                transaction_id: Some(t.trim().to_string()),
            },
            _ => PaymentRef { session_id: Opaque::new(text), transaction_id: None },
        }
    }

    /// The reference to store in the payment.
    pub fn to_opaque(&self) -> Opaque {
        match &self.transaction_id {
            Some(t) => Opaque::new(format!("{} {t}", self.session_id.expose())),
            None => self.session_id.clone(),
        }
    }

    /// `reference` with the transaction id added (after a verified redirect or webhook).
    pub fn with_transaction(reference: &Opaque, transaction_id: &str) -> Opaque {
        let mut r = PaymentRef::parse(reference);
        r.transaction_id = Some(transaction_id.trim().to_string());
        r.to_opaque()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = Opaque::new("6d07e15a-b8ab-41e9-993b-39fbe688da92");
        let r = PaymentRef::parse(&s);
        assert_eq!(r.transaction_id, None);
        let both = PaymentRef::with_transaction(&s, "1d0483a7");
        let r = PaymentRef::parse(&both);
        assert_eq!(r.session_id, s);
        assert_eq!(r.transaction_id.as_deref(), Some("1d0483a7"));
        assert!(!format!("{r:?}").contains("b8ab-41e9"));
    }
}
