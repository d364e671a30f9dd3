//! [`Acquired`]: Acquired.com payment sessions behind the [`Gateway`] seam.
//!
//! - **create** opens a payment session (`POST /payment-sessions`, §3) for the order: capture
//!   for a sale, authorise only for a pre-authorisation, 3-D Secure on with the configured
//!   redirect URL. The payment is pending with a [`CashierScreen::ScriptCheckout`] carrying the
//!   Components script URL and the session id; it expires with the session, 10 minutes on.
//! - **update_amount** (not part of the trait: only session providers have it) changes the
//!   session's amount when the cart changes (`PUT`, §4); the payment is then made with the
//!   latest amount.
//! - The outcome arrives by the redirect ([`Acquired::observe_redirect`]: hash checked, order
//!   checked, transaction id learned) or a webhook ([`crate::verify_webhook`]); **fetch**
//!   confirms it with the transaction look-up and maps it with the one status mapping
//!   ([`crate::wire::Status::neutral`]).
//! - **capture / refund / void** call the transaction endpoints (shapes assumed, §11.7).
//!
//! **Lost answers** (docs/DECISIONS.md, "Acquired"; Acquired documents no idempotency keys):
//! - *create*: [`Gateway::find`] answers `None`. A session whose id we never learned was never
//!   shown to a Components form, so nobody can pay it, and it lapses after 10 minutes. A new
//!   session for the same order is safe.
//! - *update*: send the same update again. A `PUT` sets the amount, it never adds to it, so a
//!   second identical `PUT` changes nothing; [`Acquired::update_amount`] says so by returning
//!   `OutcomeUnknown` only, never partial state.
//! - *capture*: one capture per authorisation. The look-up's captured amount says whether it
//!   happened; a capture that arrives late after `NotPerformed` meets a second one that Acquired
//!   refuses (already captured) — one capture either way.
//! - *refund*: [`Gateway::prepare`] reads the refunded total before the refund and keeps it in
//!   the ticket (journaled by the agent before the refund is sent); **reconcile** compares the
//!   total after: unchanged → not performed, grown by exactly the amount → performed, anything
//!   else → still unknown (another refund ran meanwhile; the agent sends refunds of one payment
//!   one at a time).

use crate::client::Client;
use crate::error::Error;
use crate::reference::PaymentRef;
use crate::verify::{verify_redirect, Redirect, VerifyError};
use crate::wire::{
    AmountRequest, ChallengePreference, Customer, OperationResult, PaymentMethod, SessionRequest,
    SessionUpdate, Status, Tds, TransactionDetails, TransactionUpdate, CURRENCIES,
};
use till_core::{Minor, Money};
use till_gateway::{
    Capabilities, CashierScreen, CheckoutForm, CreatePayment, DeclineCategory, DeclineReason,
    Gateway, GatewayError, Observation, Opaque, Operation, OperationOutcome, OperationTicket,
    Payment, PaymentKind, PaymentState, ProviderId, Reconciled,
};
use time::OffsetDateTime;

const PROVIDER: ProviderId = ProviderId::Acquired;

/// A session can be paid for this long after creation (§3.5).
pub const SESSION_LIFETIME: time::Duration = time::Duration::minutes(10);

/// After the session's 10 minutes, how long a payment started just before may still take to
/// finish (a 3-D Secure challenge) before a payment with no transaction is called expired.
pub const EXPIRY_GRACE: time::Duration = time::Duration::minutes(5);

/// What every session of this till is created with, besides the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettings {
    /// `tds.redirect_url`: where the customer screen receives the outcome (§5).
    pub redirect_url: Option<String>,
    /// `tds.contact_url`: the store's contact page.
    pub contact_url: Option<String>,
    /// `webhook_url`, unless a request names its own.
    pub webhook_url: Option<String>,
    /// Turn EMV 3-D Secure on (recommended; the test cards of §9 need it).
    pub tds_active: bool,
    /// `tds.challenge_preference`.
    pub challenge_preference: ChallengePreference,
    /// `payment_methods` for the Payment component; empty sends none (Acquired's default).
    pub payment_methods: Vec<PaymentMethod>,
    /// `save_card`: show the "save card" box.
    pub save_card: Option<bool>,
}

impl Default for SessionSettings {
    /// 3-D Secure on with no preference; no URLs; Acquired's default methods.
    fn default() -> Self {
        SessionSettings {
            redirect_url: None,
            contact_url: None,
            webhook_url: None,
            tds_active: true,
            challenge_preference: ChallengePreference::NoPreference,
            payment_methods: Vec::new(),
            save_card: None,
        }
    }
}

/// Acquired as a [`Gateway`].
#[derive(Debug, Clone)]
pub struct Acquired {
    /// The REST client (and its token cache).
    client: Client,
    /// What every session of this till is created with.
    settings: SessionSettings,
}

fn invalid(detail: &str) -> GatewayError {
    GatewayError::Invalid { provider: PROVIDER, detail: detail.to_string() }
}

fn unknown(detail: impl Into<String>) -> GatewayError {
    GatewayError::OutcomeUnknown { provider: PROVIDER, detail: detail.into() }
}

/// The local API's name of an Acquired parameter, where one corresponds (what the POS sent);
/// otherwise Acquired's own dotted path.
fn local_name(parameter: &str) -> String {
    match parameter {
        "transaction.order_id" => "orderId",
        "transaction.amount" => "amount",
        "transaction.currency" => "currency",
        "transaction.capture" => "kind",
        "transaction.moto" => "moto",
        "customer.reference" | "customer.customer_id" => "customerId",
        other => other,
    }
    .to_string()
}

/// The one translation of client errors into gateway errors. A §7 validation body keeps its
/// parameters one by one, under the local API's names ([`local_name`]).
fn to_gateway(e: Error) -> GatewayError {
    match e {
        Error::Api { status, error } if (400..500).contains(&status) && !error.invalid_parameters.is_empty() => {
            GatewayError::InvalidParameters {
                provider: PROVIDER,
                parameters: error.invalid_parameters.iter().map(|p| (local_name(&p.parameter), p.reason.clone())).collect(),
            }
        }
        Error::NotSent(detail) => GatewayError::Unreachable { provider: PROVIDER, detail },
        Error::Config(detail) => GatewayError::Invalid { provider: PROVIDER, detail },
        Error::Api { status: 404, .. } | Error::Http { status: 404, .. } => {
            GatewayError::NotFound { provider: PROVIDER }
        }
        Error::Api { status, error } if (400..500).contains(&status) => {
            GatewayError::Refused { provider: PROVIDER, status, message: error.to_string() }
        }
        Error::Http { status, body } if (400..500).contains(&status) => {
            GatewayError::Refused { provider: PROVIDER, status, message: body }
        }
        e @ (Error::Api { .. } | Error::Http { .. } | Error::Uncertain(_) | Error::Decode(_)) => {
            unknown(e.to_string())
        }
    }
}

/// A capture, refund or reversal answer as an outcome; a status that is not final cannot be
/// an outcome (the caller reconciles).
fn outcome(result: &OperationResult) -> Result<OperationOutcome, GatewayError> {
    if !result.status.is_final() {
        return Err(unknown(format!("status `{}` is not final", result.status.as_str())));
    }
    let approved = result.status == Status::Success;
    Ok(OperationOutcome {
        approved,
        decline: result.status.decline(result.reason.as_deref()),
        auth_code: None,
        provider_ref: result.transaction_id.clone().map(Opaque::new),
    })
}

fn transaction_of(payment: &Payment) -> Result<String, GatewayError> {
    PaymentRef::parse(&payment.reference)
        .transaction_id
        .ok_or_else(|| invalid("the payment has no transaction yet (no redirect or webhook named one)"))
}

/// The refunded total before a refund, as [`Gateway::prepare`] keeps it in the ticket.
const BASELINE: &str = "refunded-before:";

fn approved(provider_ref: Option<Opaque>) -> OperationOutcome {
    OperationOutcome { approved: true, decline: None, auth_code: None, provider_ref }
}

impl Acquired {
    /// Wraps a client with the till's session settings.
    pub fn new(client: Client, settings: SessionSettings) -> Acquired {
        Acquired { client, settings }
    }

    /// The REST client underneath.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The session body for `request` (every field of §3 that the till decides).
    pub fn session_request(&self, request: &CreatePayment) -> Result<SessionRequest, GatewayError> {
        // Acquired's rule for `transaction.order_id` (§3), named as the POS sent it.
        if !(2..=50).contains(&request.order_id.trim().chars().count()) {
            return Err(GatewayError::InvalidParameters {
                provider: PROVIDER,
                parameters: vec![("orderId".into(), "must be 2 to 50 characters".into())],
            });
        }
        let mut t = TransactionDetails::new(request.order_id.clone(), request.amount).map_err(to_gateway)?;
        t.capture = Some(request.kind == PaymentKind::Sale);
        t.moto = request.moto.then_some(true);
        // our payment id, so that Acquired's records lead back to the journal
        t.custom1 = Some(request.id.clone());
        let mut body = SessionRequest::new(t);
        body.customer = request.customer_id.as_ref().map(|c| Customer {
            reference: Some(c.clone()),
            ..Customer::default()
        });
        body.tds = Some(Tds {
            is_active: self.settings.tds_active,
            challenge_preference: Some(self.settings.challenge_preference),
            challenge_window_size: None,
            contact_url: self.settings.contact_url.clone(),
            // The agent's return endpoint for this request, else the till's setting.
            redirect_url: request.return_url.clone().or_else(|| self.settings.redirect_url.clone()),
            webhook_url: None,
        });
        body.webhook_url = request.webhook_url.clone().or_else(|| self.settings.webhook_url.clone());
        body.save_card = self.settings.save_card;
        body.is_recurring = None;
        body.payment_methods = (!self.settings.payment_methods.is_empty()).then(|| self.settings.payment_methods.clone());
        Ok(body)
    }

    /// The cart changed: the session's amount becomes `amount` (`PUT`, §4). Only while the
    /// payment is pending and unpaid. On `OutcomeUnknown` send the same update again: a `PUT`
    /// sets, it never adds (module docs).
    pub async fn update_amount(&self, payment: &Payment, amount: Money) -> Result<(), GatewayError> {
        if payment.state != PaymentState::Pending {
            return Err(invalid("the payment is no longer pending"));
        }
        if amount.currency != payment.currency() {
            return Err(invalid("the currency of a session cannot change"));
        }
        let r = PaymentRef::parse(&payment.reference);
        if r.transaction_id.is_some() {
            return Err(invalid("the session was already paid"));
        }
        let update = SessionUpdate {
            transaction: Some(TransactionUpdate::amount(amount).map_err(to_gateway)?),
            ..SessionUpdate::default()
        };
        self.client.update_session(&r.session_id, &update).await.map_err(to_gateway)
    }

    /// A redirect to `tds.redirect_url` for `payment` (§5): checks the hash with the app key and
    /// that it is about this payment's order, and answers the payment's new reference (with the
    /// transaction id) and what the redirect says. Confirm it with [`Gateway::fetch`] on the new
    /// reference before telling the cashier. A refused redirect changes nothing.
    pub fn observe_redirect(&self, payment: &Payment, redirect: &Redirect) -> Result<(Opaque, Observation), VerifyError> {
        verify_redirect(self.client.config().app_key.expose(), redirect)?;
        if redirect.order_id != payment.order_id {
            return Err(VerifyError::Body("the redirect is about another order".into()));
        }
        let reference = if redirect.transaction_id.is_empty() {
            payment.reference.clone()
        } else {
            PaymentRef::with_transaction(&payment.reference, &redirect.transaction_id)
        };
        let status = Status::parse(&redirect.status);
        Ok((reference, status.observation(redirect.reason.as_deref(), payment.kind, payment.amount.minor)))
    }

    /// Checks a webhook with this merchant's key — the configured webhook key, else the app
    /// key (see [`crate::verify_webhook`]).
    pub fn verify_webhook(&self, body: &[u8], hash: Option<&str>) -> Result<crate::Webhook, VerifyError> {
        let config = self.client.config();
        let key = config.webhook_key.as_ref().unwrap_or(&config.app_key);
        crate::verify_webhook(key.expose(), body, hash)
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

#[async_trait::async_trait]
impl Gateway for Acquired {
    fn provider(&self) -> ProviderId {
        PROVIDER
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            capture: true,
            void: true,
            partial_refund: true,
            cards_on_file: false,
            resume: false,
            // no documented way to close a session: it lapses after 10 minutes
            cancel_pending: false,
            events: false,
            currencies: &CURRENCIES,
        }
    }

    async fn create(&self, request: &CreatePayment) -> Result<Payment, GatewayError> {
        if request.stored_card.is_some() {
            return Err(GatewayError::Unsupported { provider: PROVIDER, what: "cards on file" });
        }
        let body = self.session_request(request)?;
        let created = self.client.create_session(&body).await.map_err(to_gateway)?;
        let mut payment = Payment::pending(PROVIDER, created.session_id.clone(), request.kind, request.order_id.clone(), request.amount);
        payment.expires_at = Some(now() + SESSION_LIFETIME);
        payment.screen = Some(CashierScreen::ScriptCheckout {
            script_url: self.client.config().components_url.clone(),
            payment_token: created.session_id,
            form: CheckoutForm::CardDetails,
        });
        Ok(payment)
    }

    async fn fetch(&self, payment: &Payment) -> Result<Observation, GatewayError> {
        let r = PaymentRef::parse(&payment.reference);
        let Some(tx) = r.transaction_id else {
            // Nothing documented maps a session to its transaction: without a redirect or a
            // webhook the session is pending until it can no longer be paid.
            if payment.expires_at.is_some_and(|t| now() > t + EXPIRY_GRACE) {
                let mut obs = Observation::of(PaymentState::Expired);
                obs.decline = Some(DeclineReason {
                    category: DeclineCategory::Expired,
                    provider_code: None,
                    message: Some("session expired unpaid".into()),
                });
                return Ok(obs);
            }
            return Ok(Observation::of(PaymentState::Pending));
        };
        let info = self.client.transaction(&tx, payment.currency()).await.map_err(to_gateway)?;
        Ok(info.observation(payment.kind, payment.amount.minor))
    }

    async fn find(&self, _request: &CreatePayment) -> Result<Option<Payment>, GatewayError> {
        Ok(None)
    }

    async fn prepare(&self, payment: &Payment, id: &str, operation: Operation) -> Result<OperationTicket, GatewayError> {
        let tx = transaction_of(payment)?;
        let provider_ref = match operation {
            Operation::Refund(_) => {
                let info = self.client.transaction(&tx, payment.currency()).await.map_err(to_gateway)?;
                let before = info.refunded.unwrap_or(Minor::ZERO);
                Some(Opaque::new(format!("{BASELINE}{}", before.0)))
            }
            Operation::Capture(_) | Operation::Void => None,
        };
        Ok(OperationTicket { id: id.to_string(), operation, provider_ref })
    }

    async fn capture(&self, payment: &Payment, ticket: &OperationTicket) -> Result<OperationOutcome, GatewayError> {
        let Operation::Capture(amount) = ticket.operation else {
            return Err(invalid("not a capture ticket"));
        };
        if payment.kind != PaymentKind::PreAuth {
            return Err(invalid("only a pre-authorisation can be captured"));
        }
        let tx = transaction_of(payment)?;
        let body = AmountRequest::new(Money { minor: amount, currency: payment.currency() }).map_err(to_gateway)?;
        outcome(&self.client.capture(&tx, &body).await.map_err(to_gateway)?)
    }

    async fn refund(&self, payment: &Payment, ticket: &OperationTicket) -> Result<OperationOutcome, GatewayError> {
        let Operation::Refund(amount) = ticket.operation else {
            return Err(invalid("not a refund ticket"));
        };
        let tx = transaction_of(payment)?;
        let body = AmountRequest::new(Money { minor: amount, currency: payment.currency() }).map_err(to_gateway)?;
        outcome(&self.client.refund(&tx, &body).await.map_err(to_gateway)?)
    }

    async fn void(&self, payment: &Payment, _ticket: &OperationTicket) -> Result<OperationOutcome, GatewayError> {
        let tx = transaction_of(payment)?;
        outcome(&self.client.reversal(&tx).await.map_err(to_gateway)?)
    }

    async fn reconcile(&self, payment: &Payment, ticket: &OperationTicket) -> Result<Reconciled, GatewayError> {
        let tx = transaction_of(payment)?;
        let info = self.client.transaction(&tx, payment.currency()).await.map_err(to_gateway)?;
        match ticket.operation {
            Operation::Capture(_) => match info.captured {
                Some(c) if c.is_positive() => Ok(Reconciled::Performed(approved(None))),
                Some(_) => Ok(Reconciled::NotPerformed),
                None => Err(unknown("the look-up does not say what was captured")),
            },
            Operation::Void => match info.status {
                Status::Cancelled => Ok(Reconciled::Performed(approved(None))),
                Status::Success if info.captured.is_none_or(|c| !c.is_positive()) => Ok(Reconciled::NotPerformed),
                _ => Err(unknown(format!("the look-up reads `{}`", info.status.as_str()))),
            },
            Operation::Refund(amount) => {
                let before = ticket
                    .provider_ref
                    .as_ref()
                    .and_then(|r| r.expose().strip_prefix(BASELINE).and_then(|n| n.parse::<i64>().ok()))
                    .ok_or_else(|| invalid("the refund ticket has no baseline; prepare it first"))?;
                let Some(now) = info.refunded else {
                    return Err(unknown("the look-up does not say what was refunded"));
                };
                match now.0 - before {
                    0 => Ok(Reconciled::NotPerformed),
                    d if d == amount.0 => Ok(Reconciled::Performed(approved(None))),
                    d => Err(unknown(format!("refunded total moved by {d}, not 0 or {}", amount.0))),
                }
            }
        }
    }

    async fn cancel(&self, _payment: &Payment) -> Result<Observation, GatewayError> {
        Err(GatewayError::Unsupported { provider: PROVIDER, what: "cancelling a session" })
    }

    /// Sessions follow the cart (§4).
    fn amount_changes(&self) -> bool {
        true
    }

    /// [`Acquired::update_amount`]: the session's `PUT`.
    async fn change_amount(&self, payment: &Payment, amount: Money) -> Result<(), GatewayError> {
        Acquired::update_amount(self, payment, amount).await
    }

    /// A session lives 10 minutes (§3.5); one with no transaction yet may be replaced by a fresh
    /// session for the same order. One with a transaction was paid (or tried) and never is.
    fn can_renew(&self, payment: &Payment) -> bool {
        PaymentRef::parse(&payment.reference).transaction_id.is_none()
    }

    /// A relayed `status_update` webhook (§8) names a transaction and an order. Its `Hash` was
    /// checked by the fleet that received it, but the till trusts neither: the candidate must be
    /// this order's payment (with no transaction yet, or this one), and the transaction look-up
    /// (`GET /v1/transactions/{id}`) must say it belongs to that order before its id is
    /// attached — so a forged notice can name no other payment's transaction. Other webhook
    /// types match nothing.
    async fn match_notice(&self, candidates: &[Payment], body: &[u8]) -> Result<Option<(usize, Opaque)>, GatewayError> {
        let Ok(hook) = serde_json::from_slice::<crate::Webhook>(body) else {
            return Ok(None);
        };
        let b = &hook.webhook_body;
        let tx = b.transaction_id.trim();
        if hook.webhook_type != "status_update" || tx.is_empty() || b.order_id.trim().is_empty() {
            return Ok(None);
        }
        let Some(i) = candidates.iter().position(|p| {
            p.order_id == b.order_id && PaymentRef::parse(&p.reference).transaction_id.as_deref().is_none_or(|t| t == tx)
        }) else {
            return Ok(None);
        };
        let payment = &candidates[i];
        let info = self.client.transaction(tx, payment.currency()).await.map_err(to_gateway)?;
        if info.order_id.as_deref() != Some(payment.order_id.as_str()) {
            return Ok(None);
        }
        Ok(Some((i, PaymentRef::with_transaction(&payment.reference, tx))))
    }

    /// The redirect of §5, posted by the customer's browser: [`Acquired::observe_redirect`] on
    /// its form fields (hash, order and status checked; unknown fields ignored).
    fn verify_return(&self, payment: &Payment, fields: &[(String, String)]) -> Result<(Opaque, Observation), GatewayError> {
        let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let redirect = Redirect {
            status: field("status").unwrap_or_default(),
            transaction_id: field("transaction_id").unwrap_or_default(),
            order_id: field("order_id").unwrap_or_default(),
            timestamp: field("timestamp").unwrap_or_default(),
            hash: field("hash").unwrap_or_default(),
            reason: field("reason").filter(|r| !r.is_empty()),
        };
        self.observe_redirect(payment, &redirect).map_err(|e| GatewayError::Invalid { provider: PROVIDER, detail: format!("redirect refused: {e}") })
    }
}
