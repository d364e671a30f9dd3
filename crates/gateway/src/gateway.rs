//! The [`Gateway`] trait: what the orchestrator asks of every payment provider.
//!
//! **Why a trait object.** The orchestrator picks the provider per request at run time (the
//! local API's `"provider"` field, the journal's provider column), keeps one gateway per
//! configured provider in a map, and gives its unit tests a fake. `Arc<dyn Gateway>` does all
//! three without making the agent generic over every provider; the price — one boxed future per
//! call, via `async_trait` — is nothing next to a network round trip.
//!
//! **Money-out is two-phase.** Some providers need a remote step before a capture, refund or
//! void can be sent (Connect-E mints a new single-use access token for it). [`Gateway::prepare`]
//! does that step and returns an [`OperationTicket`] that the agent journals *before* the money
//! moves; [`Gateway::capture`] / [`Gateway::refund`] / [`Gateway::void`] send it; and after an
//! unknown outcome [`Gateway::reconcile`] says whether the ticket was performed, so that nothing
//! is ever sent twice. Providers without the remote step return a ticket carrying only our id.

use crate::error::GatewayError;
use crate::model::{
    CardSummary, DeclineReason, Observation, Payment, PaymentKind, ProviderId, ProviderRef,
};
use crate::redact::Opaque;
use futures_util::stream::BoxStream;
use std::fmt;
use till_core::{Currency, Minor, Money};

/// What a provider can do; the orchestrator refuses what is off before anything is journaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Pre-authorisation and later capture (collection).
    pub capture: bool,
    /// Releasing an authorisation without capturing.
    pub void: bool,
    /// Refunds of part of a capture, and several refunds of one capture.
    pub partial_refund: bool,
    /// Charging a stored card again (card on file).
    pub cards_on_file: bool,
    /// Pausing after authentication until the merchant resumes (Connect-E wait pre-execute).
    pub resume: bool,
    /// Cancelling a payment that is still pending.
    pub cancel_pending: bool,
    /// The provider pushes events ([`Gateway::events`]); otherwise the agent polls.
    pub events: bool,
    /// Currencies the provider takes.
    pub currencies: &'static [Currency],
}

impl Capabilities {
    /// True when `currency` is one the provider takes.
    pub fn takes(&self, currency: Currency) -> bool {
        self.currencies.contains(&currency)
    }
}

/// A request for a new payment, in our terms.
#[derive(Clone, PartialEq, Eq)]
pub struct CreatePayment {
    /// Our id of the payment (journal key). Providers with merchant-side ids send it.
    pub id: String,
    /// Sale or pre-authorisation.
    pub kind: PaymentKind,
    /// How much, in which currency.
    pub amount: Money,
    /// The merchant's order reference; the same for a retry after a decline.
    pub order_id: String,
    /// Free text for the provider's records.
    pub description: Option<String>,
    /// Mail order / telephone order: the cashier keys the card.
    pub moto: bool,
    /// Pause after authentication until [`Gateway::resume`].
    pub wait_pre_execute: bool,
    /// The merchant's customer id (cards on file are kept per customer).
    pub customer_id: Option<String>,
    /// A card on file to charge again (the checkout asks only for the CV2).
    pub stored_card: Option<Opaque>,
    /// Where the provider may post completion notices.
    pub webhook_url: Option<String>,
    /// Where the customer's browser is sent after the provider's own step (Acquired's
    /// `tds.redirect_url`): the agent's return endpoint, known only once it listens.
    pub return_url: Option<String>,
}

impl fmt::Debug for CreatePayment {
    /// Redaction-safe: the customer id is personal data and the stored card a capability.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatePayment")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("amount", &self.amount)
            .field("order_id", &self.order_id)
            .field("moto", &self.moto)
            .field("wait_pre_execute", &self.wait_pre_execute)
            .field("customer_id", &self.customer_id.as_ref().map(|_| "***"))
            .field("stored_card", &self.stored_card)
            .field("webhook_url", &self.webhook_url.is_some())
            .field("return_url", &self.return_url)
            .finish()
    }
}

/// A money-out operation on an existing payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Take this much of an authorisation (collection).
    Capture(Minor),
    /// Give this much back.
    Refund(Minor),
    /// Release an authorisation.
    Void,
}

impl Operation {
    /// `capture`, `refund` or `void`.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Capture(_) => "capture",
            Operation::Refund(_) => "refund",
            Operation::Void => "void",
        }
    }
}

/// A prepared money-out operation: journal it, then send it. Its `provider_ref` is what
/// [`Gateway::reconcile`] looks up after a lost answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationTicket {
    /// Our id of the operation (journal key).
    pub id: String,
    /// What it does.
    pub operation: Operation,
    /// The provider handle minted for it (Connect-E: the new access token), if any.
    pub provider_ref: Option<ProviderRef>,
}

/// The provider's answer to a money-out operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationOutcome {
    /// True when the money moved.
    pub approved: bool,
    /// Why not, when it did not.
    pub decline: Option<DeclineReason>,
    /// The issuer's code, when approved.
    pub auth_code: Option<String>,
    /// The provider's reference of the resulting transaction, if it has one.
    pub provider_ref: Option<ProviderRef>,
}

/// What [`Gateway::reconcile`] learned about a ticket whose answer was lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciled {
    /// The provider performed it; this was the outcome.
    Performed(OperationOutcome),
    /// The provider did not perform it and now never will: prepare a new ticket and send that.
    NotPerformed,
}

/// A push from the provider about one payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayEvent {
    /// Which payment.
    pub reference: ProviderRef,
    /// What the event says, when it carries a status; `None` means "something changed, fetch
    /// it" (a Connect-E webhook deliberately carries no status).
    pub observation: Option<Observation>,
}

/// A provider's event stream.
pub type EventStream = BoxStream<'static, GatewayEvent>;

/// A payment provider, as the orchestrator sees it. See the module docs for the shape.
///
/// Every method classifies its failures with [`GatewayError`]; none retries on its own, because
/// only the orchestrator, with its journal, knows whether repeating a call is safe.
#[async_trait::async_trait]
pub trait Gateway: Send + Sync + fmt::Debug {
    /// Which provider this is.
    fn provider(&self) -> ProviderId;

    /// What it can do.
    fn capabilities(&self) -> Capabilities;

    /// Creates a payment and returns it pending, with what the cashier screen must show.
    async fn create(&self, request: &CreatePayment) -> Result<Payment, GatewayError>;

    /// Asks the provider where `payment` stands.
    async fn fetch(&self, payment: &Payment) -> Result<Observation, GatewayError>;

    /// After `create` lost its answer: the payment the provider made for `request`, if any.
    /// `Ok(None)` promises that no payment of this request can take money, so creating a new
    /// one is safe.
    async fn find(&self, request: &CreatePayment) -> Result<Option<Payment>, GatewayError>;

    /// Does whatever must happen before `operation` can be sent, and names it.
    async fn prepare(
        &self,
        payment: &Payment,
        id: &str,
        operation: Operation,
    ) -> Result<OperationTicket, GatewayError>;

    /// Collects (part of) an authorisation.
    async fn capture(
        &self,
        payment: &Payment,
        ticket: &OperationTicket,
    ) -> Result<OperationOutcome, GatewayError>;

    /// Refunds (part of) a capture.
    async fn refund(
        &self,
        payment: &Payment,
        ticket: &OperationTicket,
    ) -> Result<OperationOutcome, GatewayError>;

    /// Releases an authorisation.
    async fn void(
        &self,
        payment: &Payment,
        ticket: &OperationTicket,
    ) -> Result<OperationOutcome, GatewayError>;

    /// After a money-out call's outcome was unknown: did it happen? Must leave the provider in
    /// a state where the ticket can no longer execute when it answers `NotPerformed`.
    async fn reconcile(
        &self,
        payment: &Payment,
        ticket: &OperationTicket,
    ) -> Result<Reconciled, GatewayError>;

    /// Cancels a payment that is still pending (nothing taken yet).
    async fn cancel(&self, payment: &Payment) -> Result<Observation, GatewayError>;

    /// Resumes a payment paused after authentication. Only with `capabilities().resume`.
    async fn resume(&self, payment: &Payment) -> Result<Observation, GatewayError> {
        let _ = payment;
        Err(GatewayError::Unsupported {
            provider: self.provider(),
            what: "resume",
        })
    }

    /// Tells the provider the outcome reached the merchant (SensePass's commit); a no-op for
    /// providers without that step.
    async fn acknowledge(&self, payment: &Payment) -> Result<(), GatewayError> {
        let _ = payment;
        Ok(())
    }

    /// Cards on file the provider holds for a customer, if it keeps them itself. Providers
    /// that only hand back a reference per payment (Connect-E) return an empty list and the
    /// agent's journal keeps them.
    async fn stored_cards(&self, customer_id: &str) -> Result<Vec<CardSummary>, GatewayError> {
        let _ = customer_id;
        Ok(Vec::new())
    }

    /// The provider's event stream, when `capabilities().events`.
    fn events(&self) -> Option<EventStream> {
        None
    }

    /// Whether a pending payment's amount may change ([`Gateway::change_amount`]); checked
    /// before anything is journaled.
    fn amount_changes(&self) -> bool {
        false
    }

    /// The cart changed before the customer paid: the pending payment is to be made for
    /// `amount` instead (Acquired's session `PUT`). Setting, never adding: sending the same
    /// change twice is harmless, so after `OutcomeUnknown` the caller sends it again.
    /// Providers whose payments have a fixed amount refuse it.
    async fn change_amount(&self, payment: &Payment, amount: Money) -> Result<(), GatewayError> {
        let _ = (payment, amount);
        Err(GatewayError::Unsupported { provider: self.provider(), what: "changing the amount of a payment" })
    }

    /// The customer's browser came back to the agent's return endpoint (`return_url`) with
    /// these form fields. The provider checks that they are its own (Acquired: the hash over
    /// them with the app key) and about `payment`, and answers the payment's reference from now
    /// on (it may now name the provider's transaction) and what the fields say. The caller
    /// confirms with [`Gateway::fetch`] on that reference before anything changes; a refused
    /// return changes nothing. Providers without a return step refuse every return.
    fn verify_return(&self, payment: &Payment, fields: &[(String, String)]) -> Result<(ProviderRef, Observation), GatewayError> {
        let _ = (payment, fields);
        Err(GatewayError::Invalid { provider: self.provider(), detail: "this provider has no return step".into() })
    }

    /// Whether a pending payment whose checkout is about to expire may be given a fresh one for
    /// the same order and amount ([`Gateway::create`] again, the reference replaced): true only
    /// where the old checkout can no longer be paid through the till once the page moved on, and
    /// nothing was paid on it yet (Acquired: a session with no transaction). Default: never.
    fn can_renew(&self, payment: &Payment) -> bool {
        let _ = payment;
        false
    }

    /// A webhook of this provider, relayed to the till (by the fleet server, which has the
    /// public address a till behind a store's NAT lacks): which of `candidates` (this till's
    /// payments of this provider, newest first) it is about, and the reference to journal for it
    /// from now on. Nothing in a webhook is trusted: whatever it claims beyond "look again at
    /// this payment" is confirmed through the provider's REST API here (Acquired: the
    /// transaction it names must belong to the payment's order), and the payment's state still
    /// comes only from [`Gateway::fetch`] afterwards. `Ok(None)`: it names none of them (a
    /// forgery, another till's payment, or a kind of notice that says nothing about one).
    /// Providers without webhooks name none.
    async fn match_notice(&self, candidates: &[Payment], body: &[u8]) -> Result<Option<(usize, ProviderRef)>, GatewayError> {
        let _ = (candidates, body);
        Ok(None)
    }

    /// Sends a prepared ticket with the method its operation names.
    async fn execute(
        &self,
        payment: &Payment,
        ticket: &OperationTicket,
    ) -> Result<OperationOutcome, GatewayError> {
        match ticket.operation {
            Operation::Capture(_) => self.capture(payment, ticket).await,
            Operation::Refund(_) => self.refund(payment, ticket).await,
            Operation::Void => self.void(payment, ticket).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::PaymentState;
    use std::sync::Arc;

    /// The smallest provider: proves the trait is object-safe and the provided methods work.
    #[derive(Debug)]
    struct Fake;

    #[async_trait::async_trait]
    impl Gateway for Fake {
        fn provider(&self) -> ProviderId {
            ProviderId::SensePass
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities {
                capture: false,
                void: false,
                partial_refund: true,
                cards_on_file: false,
                resume: false,
                cancel_pending: true,
                events: false,
                currencies: &[Currency::Usd],
            }
        }
        async fn create(&self, r: &CreatePayment) -> Result<Payment, GatewayError> {
            Ok(Payment::pending(
                self.provider(),
                Opaque::new("n-1"),
                r.kind,
                r.order_id.clone(),
                r.amount,
            ))
        }
        async fn fetch(&self, _: &Payment) -> Result<Observation, GatewayError> {
            Ok(Observation::of(PaymentState::Captured))
        }
        async fn find(&self, _: &CreatePayment) -> Result<Option<Payment>, GatewayError> {
            Ok(None)
        }
        async fn prepare(
            &self,
            _: &Payment,
            id: &str,
            operation: Operation,
        ) -> Result<OperationTicket, GatewayError> {
            Ok(OperationTicket {
                id: id.to_string(),
                operation,
                provider_ref: None,
            })
        }
        async fn capture(
            &self,
            _: &Payment,
            _: &OperationTicket,
        ) -> Result<OperationOutcome, GatewayError> {
            Err(GatewayError::Unsupported {
                provider: self.provider(),
                what: "capture",
            })
        }
        async fn refund(
            &self,
            _: &Payment,
            _: &OperationTicket,
        ) -> Result<OperationOutcome, GatewayError> {
            Ok(OperationOutcome {
                approved: true,
                decline: None,
                auth_code: None,
                provider_ref: None,
            })
        }
        async fn void(
            &self,
            _: &Payment,
            _: &OperationTicket,
        ) -> Result<OperationOutcome, GatewayError> {
            Err(GatewayError::Unsupported {
                provider: self.provider(),
                what: "void",
            })
        }
        async fn reconcile(
            &self,
            _: &Payment,
            _: &OperationTicket,
        ) -> Result<Reconciled, GatewayError> {
            Ok(Reconciled::NotPerformed)
        }
        async fn cancel(&self, _: &Payment) -> Result<Observation, GatewayError> {
            Ok(Observation::of(PaymentState::Cancelled))
        }
    }

    #[tokio::test]
    async fn a_dyn_gateway_runs_a_refund_through_execute() {
        let gw: Arc<dyn Gateway> = Arc::new(Fake);
        let request = CreatePayment {
            id: "p1".into(),
            kind: PaymentKind::Sale,
            amount: Money::new(500, Currency::Usd),
            order_id: "o1".into(),
            description: None,
            moto: false,
            wait_pre_execute: false,
            customer_id: Some("alice@example.com".into()),
            stored_card: None,
            webhook_url: None,
            return_url: None,
        };
        assert!(!format!("{request:?}").contains("alice"));
        {
            let mut p = gw.create(&request).await.unwrap();
            p.observe(&gw.fetch(&p).await.unwrap());
            p.amounts.captured = Minor(500);
            let op = Operation::Refund(Minor(200));
            p.check(op, Minor::ZERO).unwrap();
            let ticket = gw.prepare(&p, "r1", op).await.unwrap();
            let outcome = gw.execute(&p, &ticket).await.unwrap();
            p.record(op, &outcome);
            assert_eq!(p.amounts.refunded, Minor(200));
            assert!(gw.resume(&p).await.is_err());
            gw.acknowledge(&p).await.unwrap();
            assert!(gw.events().is_none());
        }
    }
}
