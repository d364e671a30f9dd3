//! # till-gateway
//!
//! The provider-neutral payment model of Till Agent and the [`Gateway`] trait that the
//! orchestrator talks to. Every payment provider (SensePass, Paymentsense Connect-E, and the
//! ones to come) sits behind this seam; the orchestrator, the journal and the UI speak only the
//! types defined here.
//!
//! - [`model`]: what a payment *is* to us — provider, provider reference, kind (sale or
//!   pre-authorisation), neutral [`PaymentState`], authorised / captured / refunded amounts in
//!   minor units, expiry, what the cashier screen has to show, a decline reason, the card used.
//! - [`state`]: the one transition rule: observations (answers, events, polls) arrive late,
//!   twice or out of order, and never move a payment backwards.
//! - [`gateway`]: the [`Gateway`] trait (create, fetch, find after a lost answer, capture,
//!   refund, void, cancel, resume, acknowledge, optional events) and its [`Capabilities`].
//! - [`error`]: [`GatewayError`], which tells "certainly not performed" apart from "outcome
//!   unknown" — the distinction exactly-once money movement rests on.
//! - [`redact`]: [`Opaque`], the wrapper for provider values that must never reach a log.
//! - [`recovery`]: the [`DeclineRecovery`] trait for services that rescue a declined card
//!   payment (FlexFactor) — not tenders, a step after a decline.
//!
//! What this crate is not: it does no I/O, knows no wire format, keeps no state and retries
//! nothing. Provider JSON lives in the provider crates (`till-sensepass`, `till-connect-e`);
//! journaling, retries and reconciliation policy live in the agent.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod gateway;
pub mod model;
pub mod recovery;
pub mod redact;
pub mod state;

pub use error::GatewayError;
pub use gateway::{
    Capabilities, CreatePayment, EventStream, Gateway, GatewayEvent, Operation, OperationOutcome,
    OperationTicket, Reconciled,
};
pub use model::{
    Amounts, Awaiting, CardExpiry, CardSummary, CashierScreen, CheckoutForm, DeclineCategory,
    DeclineReason, Observation, OperationRefused, Payment, PaymentKind, ProviderId, ProviderRef,
    RefundProgress,
};
pub use recovery::{
    DeclineRecovery, RecoveryCard, RecoveryEvent, RecoveryOutcome, RecoveryRefund, RecoveryRequest,
    RecoveryState,
};
pub use redact::Opaque;
pub use state::PaymentState;
pub use till_core::Transition;
