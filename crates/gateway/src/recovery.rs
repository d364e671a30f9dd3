//! Decline recovery: a second chance for a card payment the acquirer declined.
//!
//! A recovery service (FlexFactor) is not a tender: the customer does not pay *with* it. After a
//! card tender (Connect-E, Acquired) answers "declined", the orchestrator may hand the declined
//! payment to a [`DeclineRecovery`] service, which can approve and charge it itself. The POS
//! still sees one payment with one outcome; the journal records that it was recovered and by
//! whom.
//!
//! **Why a trait of its own, not a [`crate::Gateway`].** A gateway *creates* payments and owns
//! their life cycle (checkout screen, capture, void, resume). A recovery service only ever
//! receives a payment that already failed elsewhere, answers once (possibly "later"), and can
//! refund what it took. Forcing it into `Gateway` would leave most methods `Unsupported` and
//! invite the orchestrator to offer it as a tender.
//!
//! **Exactly once.** [`RecoveryRequest::order_id`] is the payment's own id in the journal; the
//! implementation derives the provider's idempotency key from it, so a repeated
//! [`DeclineRecovery::evaluate`] after a lost answer (or a crash) answers the same rescue and
//! never opens a second one. Refunds carry our refund id ([`RecoveryRefund::id`]) for the same
//! reason. Errors reuse [`GatewayError`], whose [`GatewayError::certainly_not_performed`] tells
//! the orchestrator whether a repeat is safe without asking first.
//!
//! **No card number here.** The card reaches the service's vault from the keyed-entry page
//! (docs/DECISIONS.md, "FlexFactor"); the orchestrator holds only the vault token
//! ([`RecoveryRequest::card_token`], [`Opaque`]) and the non-sensitive card facts.

use crate::error::GatewayError;
use crate::model::{CardExpiry, DeclineReason};
use crate::redact::Opaque;
use std::fmt;
use till_core::Money;
use time::OffsetDateTime;

/// What the orchestrator knows about a declined card payment, handed to the recovery service.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryRequest {
    /// Our id of the payment (journal key). Stable across retries: the service's idempotency
    /// key is derived from it, so a retry answers the same rescue.
    pub order_id: String,
    /// The amount that was declined and is to be rescued, in minor units.
    pub amount: Money,
    /// The vault token of the card (FlexFactor `/tokenize`). A capability: never printed.
    pub card_token: Opaque,
    /// Non-sensitive card facts the service scores on: first six, last four, expiry, holder.
    pub card: RecoveryCard,
    /// The declining tender's answer: its code and message, for the service's scoring.
    pub decline: DeclineReason,
    /// Which tender declined (`connect-e`, …), sent as the response code's source.
    pub declined_by: String,
    /// The declining tender's transaction id, if it has one.
    pub declined_transaction: Option<String>,
    /// When the decline happened.
    pub declined_at: OffsetDateTime,
    /// The customer's IP at checkout (required for customer-initiated evaluations); the till's
    /// own address when the card was keyed at the counter.
    pub customer_ip: String,
    /// Browser fingerprint key (FlexFactor SenseJS), when the checkout page produced one.
    pub sense_key: Option<String>,
    /// Mail or telephone order: the card was not present.
    pub card_not_present: bool,
}

impl fmt::Debug for RecoveryRequest {
    /// Redaction-safe: the card token is a capability and the IP personal data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoveryRequest")
            .field("order_id", &self.order_id)
            .field("amount", &self.amount)
            .field("card_token", &self.card_token)
            .field("card", &self.card)
            .field("decline", &self.decline)
            .field("declined_by", &self.declined_by)
            .field("declined_at", &self.declined_at)
            .field("customer_ip", &"***")
            .field("sense_key", &self.sense_key.as_ref().map(|_| "***"))
            .field("card_not_present", &self.card_not_present)
            .finish()
    }
}

/// The card facts a recovery service may see: what a receipt could show, never the number.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCard {
    /// The first six digits (BIN): they name the issuer, not the card.
    pub bin: Option<String>,
    /// The last four digits.
    pub last4: Option<String>,
    /// Expiry month.
    pub expiry: Option<CardExpiry>,
    /// Cardholder name as keyed. Personal data: never printed.
    pub holder_name: Option<String>,
    /// Scheme (`VISA`, `MASTERCARD`), when known.
    pub scheme: Option<String>,
}

impl fmt::Debug for RecoveryCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoveryCard")
            .field("bin", &self.bin)
            .field("last4", &self.last4)
            .field("expiry", &self.expiry)
            .field("holder_name", &self.holder_name.as_ref().map(|_| "***"))
            .field("scheme", &self.scheme)
            .finish()
    }
}

/// Where a rescue stands, in neutral words. The one mapping from a service's statuses to
/// these lives in that service's crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecoveryState {
    /// The service approved and charged the payment: it becomes captured, "recovered".
    Recovered,
    /// The service will not rescue it (including "challenge", which a till cannot present):
    /// the payment stays declined.
    NotRecovered,
    /// The service decides later: poll [`DeclineRecovery::status`] or wait for an event.
    Pending,
    /// Recovered and then refunded in full.
    Refunded,
}

impl RecoveryState {
    /// True once nothing will change except by a refund.
    pub fn is_final(self) -> bool {
        !matches!(self, RecoveryState::Pending)
    }

    /// `recovered`, `not_recovered`, `pending`, `refunded`: for the journal and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryState::Recovered => "recovered",
            RecoveryState::NotRecovered => "not_recovered",
            RecoveryState::Pending => "pending",
            RecoveryState::Refunded => "refunded",
        }
    }
}

/// What the service answered about a rescue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryOutcome {
    /// The neutral state.
    pub state: RecoveryState,
    /// The service's id of the rescue (FlexFactor `orderSessionKey`): what status queries and
    /// refunds name. `None` only when the service declined without opening one.
    pub rescue_id: Option<String>,
    /// The service's own status text (`APPROVED`, `Completed`, …), for support.
    pub provider_status: String,
    /// Why not, when not recovered.
    pub decline: Option<DeclineReason>,
}

/// A refund of (part of) a recovered payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryRefund {
    /// Our id of the refund (journal key). Stable across retries of the same refund.
    pub id: String,
    /// The rescue to refund ([`RecoveryOutcome::rescue_id`]).
    pub rescue_id: String,
    /// How much, in minor units.
    pub amount: Money,
    /// Why, for the service's records.
    pub reason: Option<String>,
}

/// A push from the service (webhook) about one rescue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryEvent {
    /// The service's event name (`order.completed`), for logs.
    pub name: String,
    /// Which rescue.
    pub rescue_id: String,
    /// What the event implies, when it implies a state; `None` means "fetch it".
    pub state: Option<RecoveryState>,
}

/// A decline-recovery service, as the orchestrator sees it (see the module docs).
///
/// Like [`crate::Gateway`], no method retries on its own: only the orchestrator, with its
/// journal, knows whether repeating a call is safe.
#[async_trait::async_trait]
pub trait DeclineRecovery: Send + Sync + fmt::Debug {
    /// The service's name for the journal, screens and receipts ("FlexFactor").
    fn display_name(&self) -> &'static str;

    /// Asks the service to rescue a declined payment. Idempotent per
    /// [`RecoveryRequest::order_id`]: a repeat answers the same rescue.
    async fn evaluate(&self, request: &RecoveryRequest) -> Result<RecoveryOutcome, GatewayError>;

    /// Where a rescue stands now (after [`RecoveryState::Pending`], or to reconcile).
    async fn status(&self, rescue_id: &str) -> Result<RecoveryOutcome, GatewayError>;

    /// Refunds (part of) a recovered payment. `Ok` means the money went back; a refusal (more
    /// than is refundable) is `Err(GatewayError::Refused)`. Safe to repeat with the same
    /// [`RecoveryRefund`] after an unknown outcome: it is not refunded twice.
    async fn refund(&self, refund: &RecoveryRefund) -> Result<(), GatewayError>;

    /// Reads a webhook body; `None` when it is not an event about a rescue.
    fn parse_event(&self, body: &[u8]) -> Option<RecoveryEvent>;
}
