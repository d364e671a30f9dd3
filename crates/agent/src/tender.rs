//! Payments of the providers behind the `till-gateway` seam (Paymentsense Connect-E), made
//! durable: the local API's `/api/agent/payments`.
//!
//! The same discipline as the SensePass flows of [`crate::service`]:
//! 1. validate (a bad request changes nothing and names every invalid field),
//! 2. journal the intent (`gateway_payments` / `gateway_operations`),
//! 3. call the provider through [`Gateway`],
//! 4. journal the outcome — and when it is unknown, journal *that* and reconcile before anything
//!    is sent again.
//!
//! ```text
//!  POST /payments ─▶ validate ─▶ previous token of the order? ─┬─ succeeded ─▶ attach (200)
//!                                                               ├─ pending, unused ─▶ revoke, then ▼
//!                                                               └─ none / unsuccessful ─▼
//!                    journal intent ─▶ create (access token) ─▶ journal created ─▶ 201 + checkoutUrl
//!  checkout page reports / poller ─▶ GET /v1/payments/{token} ─▶ journal observation (one rule)
//!  capture / refund / void ─▶ journal op (cap checked atomically) ─▶ prepare (new token) ─▶
//!      journal "prepared" ─▶ send ─▶ journal outcome;  unknown ─▶ reconcile (look up the token,
//!      revoke it if unused) ─▶ outcome, or back to pending and send a new one
//! ```
//!
//! The outcome of a payment is only ever what the provider's REST API says
//! ([`Gateway::fetch`]): the checkout page's promise and webhooks only make the agent look
//! sooner. A background task ([`run`]) polls open payments and delivers due operations, so
//! refunds asked for while the provider is unreachable are sent once it is back.

use crate::error::AgentError;
use crate::service::Agent;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use till_core::{Currency, InvalidParameters, Minor, Money};
use till_gateway::{
    Amounts, Awaiting, CardExpiry, CardSummary, CreatePayment, DeclineReason, DeclineRecovery, Gateway,
    GatewayError, Observation, Opaque, Operation, OperationOutcome, OperationRefused,
    OperationTicket, Payment, PaymentKind, PaymentState, ProviderId, Reconciled,
};
use till_journal::{
    CardRecord, GatewayOpBegin, GatewayOpRecord, GatewayPaymentRecord, NewCard, NewGatewayOp,
    NewGatewayPayment, Phase,
};

/// A create whose intent is older than this with no answer journaled was cut off (a crash):
/// the poller settles it.
const STALE_INTENT: Duration = Duration::from_secs(60);

/// Longest `?wait=` a caller may ask for.
pub const MAX_WAIT_SECS: u64 = 120;

/// The configured gateways and what their workers share. Built once from the configuration.
pub struct Tender {
    /// One gateway per configured provider.
    gateways: HashMap<ProviderId, Arc<dyn Gateway>>,
    /// Woken whenever a gateway payment changes (waiters re-read the journal).
    changed: tokio::sync::Notify,
    /// Wakes the worker (a new operation, a report from the checkout page).
    wake: tokio::sync::Notify,
    /// One money-out delivery at a time: the request that journaled an operation and the worker
    /// that finds it due must not both prepare or reconcile it. Held across the provider calls
    /// (an async mutex); deliveries are rare and short next to a payment.
    pub(crate) delivering: tokio::sync::Mutex<()>,
    /// The decline-recovery service (FlexFactor), when configured: declined keyed payments get
    /// a second chance ([`crate::recovery`]).
    recovery: Option<Arc<dyn DeclineRecovery>>,
    /// One recovery step at a time: the page's report, a webhook and the worker must not
    /// evaluate or settle the same payment at once. Held across the service's calls.
    pub(crate) recovering: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Tender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tender")
            .field("providers", &self.gateways.keys().collect::<Vec<_>>())
            .field("recovery", &self.recovery.as_ref().map(|r| r.display_name()))
            .finish()
    }
}

impl Tender {
    /// The gateways the configuration names.
    pub fn from_config(config: &crate::config::Config) -> Result<Tender, AgentError> {
        let mut gateways: HashMap<ProviderId, Arc<dyn Gateway>> = HashMap::new();
        if let Some(ce) = &config.connect_e {
            let mut cfg = till_connect_e::Config::new(&ce.base_url, &ce.web_url, &ce.api_key, &ce.merchant_url);
            cfg.timeout = config.http_timeout;
            cfg.connect_timeout = Duration::from_secs(5);
            let client = till_connect_e::Client::new(cfg).map_err(|e| AgentError::Internal(e.to_string()))?;
            gateways.insert(ProviderId::ConnectE, Arc::new(till_connect_e::ConnectE::new(client, None)));
        }
        if let Some(aq) = &config.acquired {
            let mut cfg = till_acquired::Config::new(&aq.base_url, &aq.components_url, &aq.app_id, &aq.app_key);
            cfg.company_id.clone_from(&aq.company_id);
            cfg.webhook_key = aq.webhook_key.clone().map(Opaque::new);
            cfg.timeout = config.http_timeout;
            cfg.connect_timeout = Duration::from_secs(5);
            let client = till_acquired::Client::new(cfg).map_err(|e| AgentError::Internal(e.to_string()))?;
            // The redirect URL is the agent's return endpoint, given per payment once the agent
            // listens (`CreatePayment::return_url`).
            let settings = till_acquired::gateway::SessionSettings::default();
            gateways.insert(ProviderId::Acquired, Arc::new(till_acquired::Acquired::new(client, settings)));
        }
        let mut tender = Tender::with(gateways);
        if let Some(ff) = &config.flexfactor {
            let mut cfg = till_flexfactor::Config::new(&ff.base_url, &ff.app_key, &ff.app_secret, &ff.mid, &ff.site_id, &ff.tokenize_environment);
            cfg.timeout = config.http_timeout;
            cfg.connect_timeout = Duration::from_secs(5);
            let client = till_flexfactor::Client::new(cfg).map_err(|e| AgentError::Internal(e.to_string()))?;
            tender.recovery = Some(Arc::new(till_flexfactor::FlexFactor::new(client)));
        }
        Ok(tender)
    }

    /// As [`Tender::with`], with a decline-recovery service (tests use fakes).
    pub fn with_recovery(mut self, recovery: Arc<dyn DeclineRecovery>) -> Tender {
        self.recovery = Some(recovery);
        self
    }

    /// The decline-recovery service, when configured.
    pub fn recovery(&self) -> Option<Arc<dyn DeclineRecovery>> {
        self.recovery.clone()
    }

    /// A tender over the given gateways (tests use fakes).
    pub fn with(gateways: HashMap<ProviderId, Arc<dyn Gateway>>) -> Tender {
        Tender {
            gateways,
            changed: tokio::sync::Notify::new(),
            wake: tokio::sync::Notify::new(),
            delivering: tokio::sync::Mutex::new(()),
            recovery: None,
            recovering: tokio::sync::Mutex::new(()),
        }
    }

    /// The configured providers, sorted.
    pub fn providers(&self) -> Vec<ProviderId> {
        let mut p: Vec<_> = self.gateways.keys().copied().collect();
        p.sort();
        p
    }

    pub(crate) fn gateway(&self, provider: ProviderId) -> Result<&Arc<dyn Gateway>, AgentError> {
        self.gateways
            .get(&provider)
            .ok_or_else(|| AgentError::invalid("provider", &format!("{provider} is not configured on this till")))
    }
}

// ----- the journal row <-> the neutral model (one mapping, both ways) -----

fn state_of(s: &str) -> PaymentState {
    PaymentState::ALL.into_iter().find(|p| p.as_str() == s).unwrap_or(PaymentState::Failed)
}

fn kind_of(s: &str) -> PaymentKind {
    if s == PaymentKind::PreAuth.as_str() {
        PaymentKind::PreAuth
    } else {
        PaymentKind::Sale
    }
}

pub(crate) fn ms_to_time(ms: i64) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

fn time_to_ms(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

pub(crate) fn parse_mm_yy(s: &str) -> Option<CardExpiry> {
    let (m, y) = s.split_once('/')?;
    CardExpiry::new(2000 + y.trim().parse::<u16>().ok()?, m.trim().parse().ok()?)
}

/// The neutral payment a journal row describes.
pub fn payment_of(r: &GatewayPaymentRecord) -> Result<Payment, AgentError> {
    let provider: ProviderId =
        r.provider.parse().map_err(|e: till_gateway::model::UnknownProvider| AgentError::Internal(e.to_string()))?;
    let mut p = Payment::pending(
        provider,
        Opaque::new(r.provider_ref.clone().unwrap_or_default()),
        kind_of(&r.kind),
        r.order_id.clone(),
        Money::new(r.amount.0, r.currency),
    );
    p.state = state_of(&r.state);
    p.amounts = Amounts { authorized: r.authorized, captured: r.captured, refunded: r.refunded };
    p.expires_at = r.expires_at.and_then(ms_to_time);
    p.auth_code.clone_from(&r.auth_code);
    if r.card_type.is_some() || r.card_masked.is_some() || r.cross_reference.is_some() {
        p.card = Some(CardSummary {
            scheme: r.card_type.clone(),
            masked: r.card_masked.clone(),
            expiry: r.card_expiry.as_deref().and_then(parse_mm_yy),
            on_file: r.cross_reference.clone().map(Opaque::new),
        });
    }
    if let Some(d) = &r.detail {
        p.decline = serde_json::from_value::<DeclineReason>(d["decline"].clone()).ok();
        p.awaiting = serde_json::from_value::<Awaiting>(d["awaiting"].clone()).ok();
    }
    Ok(p)
}

/// Writes what `p` says into the row (amounts only grow: the journal enforces it too).
pub(crate) fn write_back(p: &Payment, r: &mut GatewayPaymentRecord, now_ms: i64) {
    r.state = p.state.as_str().to_string();
    r.authorized = p.amounts.authorized;
    r.captured = p.amounts.captured;
    r.refunded = p.amounts.refunded;
    r.expires_at = p.expires_at.map(time_to_ms);
    r.auth_code.clone_from(&p.auth_code);
    if let Some(card) = &p.card {
        r.card_type = card.scheme.clone().or(r.card_type.take());
        r.card_masked = card.masked.clone().or(r.card_masked.take());
        r.card_expiry = card.expiry.map(CardExpiry::mm_yy).or(r.card_expiry.take());
        r.cross_reference = card.on_file.as_ref().map(|o| o.expose().to_string()).or(r.cross_reference.take());
    }
    r.detail = Some(json!({ "decline": p.decline, "awaiting": p.awaiting }));
    if p.state != PaymentState::Pending && r.final_at.is_none() {
        r.final_at = Some(now_ms);
    }
    r.updated_at = now_ms;
}

/// Why an operation is refused, as the local API says it (409, naming the problem and, for an
/// amount, the field).
fn refused(e: OperationRefused) -> AgentError {
    match e {
        OperationRefused::Exceeds { .. } | OperationRefused::NotPositive => AgentError::Conflict(format!("amount: {e}")),
        e => AgentError::Conflict(e.to_string()),
    }
}

pub(crate) fn gateway_error(e: GatewayError) -> AgentError {
    match e {
        GatewayError::Unreachable { provider, detail } => {
            AgentError::ProviderUnreachable(format!("{} unreachable, nothing sent: {detail}", provider.display_name()))
        }
        GatewayError::OutcomeUnknown { detail, .. } => AgentError::Uncertain(detail),
        GatewayError::Refused { provider, status, message } => {
            AgentError::Conflict(format!("{} refused it (HTTP {status}): {message}", provider.display_name()))
        }
        GatewayError::Invalid { detail, .. } => AgentError::invalid("request", &detail),
        // The provider's validation, field by field, as our own 400 (names already mapped).
        GatewayError::InvalidParameters { provider, parameters } => {
            let mut invalid = InvalidParameters::new();
            for (parameter, reason) in parameters {
                invalid.push(&parameter, format!("{}: {reason}", provider.display_name()));
            }
            AgentError::Invalid(invalid)
        }
        GatewayError::Unsupported { provider, what } => {
            AgentError::Conflict(format!("{} does not support {what}", provider.display_name()))
        }
        GatewayError::NotFound { provider } => AgentError::NotFound(format!("{} payment", provider.display_name())),
    }
}

/// A validated `POST /api/agent/payments`.
struct NewRequest {
    provider: ProviderId,
    kind: PaymentKind,
    amount: Money,
    order_id: String,
    moto: bool,
    wait_pre_execute: bool,
    customer_id: Option<String>,
    card_id: Option<i64>,
    description: Option<String>,
    /// `declineRecovery` (default true): false opts this payment out of decline recovery.
    decline_recovery: bool,
}

fn text_field(body: &Value, key: &str, max: usize, invalid: &mut InvalidParameters) -> Option<String> {
    match body.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control) => {
            Some(s.trim().to_string())
        }
        Some(_) => {
            invalid.push(key, format!("must be a non-empty string of at most {max} characters"));
            None
        }
    }
}

fn bool_field(body: &Value, key: &str, default: bool, invalid: &mut InvalidParameters) -> bool {
    match body.get(key) {
        None | Some(Value::Null) => default,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            invalid.push(key, "must be true or false");
            default
        }
    }
}

/// A positive amount in minor units (an integer, as everywhere in `/api/agent`).
fn minor_field(body: &Value, key: &str, invalid: &mut InvalidParameters) -> Option<Minor> {
    match body.get(key).and_then(Value::as_i64) {
        Some(n) if n > 0 => Some(Minor(n)),
        _ => {
            invalid.push(key, "must be a positive integer amount in minor units (pence, cents)");
            None
        }
    }
}

impl Agent {
    fn parse_new(&self, body: &Value) -> Result<NewRequest, AgentError> {
        let mut invalid = InvalidParameters::new();
        if !body.is_object() {
            return Err(AgentError::invalid("body", "must be a JSON object"));
        }
        let tender = self.tender();
        let provider = match body.get("provider").and_then(Value::as_str) {
            None => {
                invalid.push("provider", "is required (e.g. \"connect-e\")");
                None
            }
            Some(name) => match name.parse::<ProviderId>() {
                Ok(ProviderId::SensePass) => {
                    invalid.push("provider", "SensePass payments are taken with POST /api/transactions/init");
                    None
                }
                Ok(p) if tender.gateways.contains_key(&p) => Some(p),
                Ok(p) => {
                    invalid.push("provider", format!("{p} is not configured on this till"));
                    None
                }
                Err(_) => {
                    let known: Vec<&str> = tender.providers().iter().map(|p| p.as_str()).collect();
                    invalid.push("provider", format!("unknown provider `{name}`; this till takes: {}", known.join(", ")));
                    None
                }
            },
        };
        let kind = match body.get("kind").and_then(Value::as_str) {
            None => Some(PaymentKind::Sale),
            Some("sale") => Some(PaymentKind::Sale),
            Some("preauth") => Some(PaymentKind::PreAuth),
            Some(_) => {
                invalid.push("kind", "must be \"sale\" or \"preauth\"");
                None
            }
        };
        let amount = minor_field(body, "amount", &mut invalid);
        let currency = match body.get("currency").and_then(Value::as_str) {
            None => {
                invalid.push("currency", "is required (ISO 4217 code, e.g. \"GBP\")");
                None
            }
            Some(code) => match Currency::from_code(code) {
                Err(_) => {
                    invalid.push("currency", format!("`{code}` is not a currency this till knows"));
                    None
                }
                Ok(c) => match provider.and_then(|p| tender.gateways.get(&p)) {
                    Some(gw) if !gw.capabilities().takes(c) => {
                        let takes: Vec<&str> = gw.capabilities().currencies.iter().map(|c| c.code()).collect();
                        invalid.push(
                            "currency",
                            format!("{} cannot take {code}; it takes {}", gw.provider().display_name(), takes.join(", ")),
                        );
                        None
                    }
                    _ => Some(c),
                },
            },
        };
        if let (Some(a), Some(c)) = (amount, currency) {
            if a.0 > c.max_amount().0 {
                invalid.push("amount", format!("must be at most {} minor units", c.max_amount().0));
            }
        }
        let order_id = text_field(body, "orderId", 50, &mut invalid);
        if order_id.is_none() && !invalid.0.iter().any(|p| p.parameter == "orderId") {
            invalid.push("orderId", "is required: one live payment per order");
        }
        let moto = bool_field(body, "moto", true, &mut invalid);
        let wait_pre_execute = bool_field(body, "waitPreExecute", false, &mut invalid);
        let customer_id = text_field(body, "customerId", 50, &mut invalid);
        let description = text_field(body, "description", 100, &mut invalid);
        let decline_recovery = bool_field(body, "declineRecovery", true, &mut invalid);
        let card_id = match body.get("cardId") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_i64() {
                Some(id) if customer_id.is_some() => Some(id),
                Some(_) => {
                    invalid.push("cardId", "a stored card is charged for its customer: send customerId too");
                    None
                }
                None => {
                    invalid.push("cardId", "must be the id of a stored card");
                    None
                }
            },
        };
        if !invalid.is_empty() {
            return Err(AgentError::Invalid(invalid));
        }
        match (provider, kind, amount, currency, order_id) {
            (Some(provider), Some(kind), Some(amount), Some(currency), Some(order_id)) => Ok(NewRequest {
                provider,
                kind,
                amount: Money::new(amount.0, currency),
                order_id,
                moto,
                wait_pre_execute,
                customer_id,
                card_id,
                description,
                decline_recovery,
            }),
            _ => Err(AgentError::invalid("body", "incomplete request")),
        }
    }

    /// `POST /api/agent/payments`: a new payment, or the order's payment that already succeeded.
    /// Answers `(true, view)` for a new one, `(false, view)` when attached to an existing one.
    pub async fn create_gateway_payment(&self, body: Value) -> Result<(bool, Value), AgentError> {
        let req = self.parse_new(&body)?;
        let gw = self.tender().gateway(req.provider)?.clone();
        if let Some(card_id) = req.card_id {
            let card = self.journal(move |j| j.card(card_id)).await?;
            let fits = card.as_ref().is_some_and(|c| {
                c.provider == req.provider.as_str()
                    && Some(c.customer_id.as_str()) == req.customer_id.as_deref()
                    && !self.card_expired(c)
            });
            if !fits {
                return Err(AgentError::invalid("cardId", "is not a valid stored card of this customer"));
            }
        }
        // One live token per order (fact sheet §9): look at the previous ones first.
        let order = req.order_id.clone();
        let previous = self.journal(move |j| j.gateway_payments_for_order(&order)).await?;
        for prev in previous {
            let prev = self.settle_previous(prev).await?;
            let state = state_of(&prev.state);
            if matches!(state, PaymentState::Authorized | PaymentState::Captured)
                || (state == PaymentState::Pending && prev.phase == Phase::Created)
            {
                if prev.amount != req.amount.minor || prev.currency != req.amount.currency || prev.kind != req.kind.as_str() {
                    return Err(AgentError::IdempotencyMismatch {
                        number: None,
                        local_id: prev.local_id.clone(),
                        amount_minor: prev.amount.0,
                        currency: prev.currency.code().to_string(),
                    });
                }
                // It succeeded (or is still being paid and could not be revoked): attach.
                return Ok((false, self.gateway_view(&prev).await?));
            }
        }
        let local_id = till_journal::new_local_id();
        let new = NewGatewayPayment {
            local_id: local_id.clone(),
            provider: req.provider.as_str().to_string(),
            kind: req.kind.as_str().to_string(),
            order_id: req.order_id.clone(),
            amount: req.amount.minor,
            currency: req.amount.currency,
            moto: req.moto,
            wait_pre_execute: req.wait_pre_execute,
            customer_id: req.customer_id.clone(),
            card_id: req.card_id,
            recovery: crate::recovery::initial(self, req.provider, req.card_id.is_some(), req.decline_recovery),
            now_ms: self.now_ms(),
        };
        let rec = self.journal(move |j| j.begin_gateway_payment(new)).await?;
        fail::fail_point!("gateway::before_create", |_| crate::failpoints::crash("gateway::before_create"));
        let request = CreatePayment {
            id: local_id.clone(),
            kind: req.kind,
            amount: req.amount,
            order_id: req.order_id.clone(),
            description: req.description.clone(),
            moto: req.moto,
            wait_pre_execute: req.wait_pre_execute,
            customer_id: req.customer_id.clone(),
            stored_card: rec.cross_reference.clone().map(Opaque::new),
            // Enrolled with a fleet: the provider posts its webhooks there (crate::relay).
            webhook_url: self.fleet_webhook_url(req.provider),
            return_url: Some(self.return_url(req.provider)),
        };
        let mut result = gw.create(&request).await;
        // True while the provider may hold a payment of this request that nobody has seen: a lost
        // create answer that the look-up could not settle. Then the outcome is unknown, whatever
        // the look-up's own error says, and the poller (or the order's next request) looks again.
        let mut unsettled = false;
        if let Err(e) = &result {
            if !e.certainly_not_performed() {
                // Lost answer: ask the provider what it made. Connect-E answers "nothing that can
                // take money" (a token we never learned is never shown to a card form), so one
                // more create is safe — and the POS gets its checkout instead of an error.
                tracing::warn!(local_id = %local_id, error = %e, "create answer lost; reconciling");
                match gw.find(&request).await {
                    Ok(Some(found)) => result = Ok(found),
                    Ok(None) => result = gw.create(&request).await,
                    Err(e2) => {
                        unsettled = true;
                        result = Err(e2);
                    }
                }
            }
        }
        fail::fail_point!("gateway::after_create", |_| crate::failpoints::crash("gateway::after_create"));
        let now = self.now_ms();
        match result {
            Ok(created) => {
                let id = local_id.clone();
                let (rec, ()) = self
                    .journal(move |j| {
                        j.update_gateway_payment(&id, |r| {
                            r.phase = Phase::Created;
                            r.provider_ref = Some(created.reference.expose().to_string());
                            let mut p = created.clone();
                            if p.card.is_none() {
                                if let Some(x) = &r.cross_reference {
                                    p.card = Some(CardSummary { scheme: None, masked: None, expiry: None, on_file: Some(Opaque::new(x)) });
                                }
                            }
                            write_back(&p, r, now);
                            r.final_at = None;
                        })
                    })
                    .await?;
                self.gateway_changed(&rec).await;
                self.tender().wake.notify_one();
                Ok((true, self.gateway_view(&rec).await?))
            }
            Err(e) => {
                let certain = e.certainly_not_performed() && !unsettled;
                let id = local_id.clone();
                let message = e.to_string();
                let (failed, ()) = self
                    .journal(move |j| {
                        j.update_gateway_payment(&id, |r| {
                            r.phase = if certain { Phase::CreateFailed } else { Phase::CreateUnknown };
                            if certain {
                                r.state = PaymentState::Failed.as_str().into();
                                r.final_at = Some(now);
                            }
                            r.detail = Some(json!({ "error": message }));
                            r.updated_at = now;
                        })
                    })
                    .await?;
                self.gateway_changed(&failed).await;
                if unsettled {
                    return Err(AgentError::Uncertain(format!(
                        "the create answer was lost and {} cannot be asked yet ({e}); retry with the same orderId",
                        req.provider.display_name()
                    )));
                }
                Err(gateway_error(e))
            }
        }
    }

    /// Before a new token for an order: brings a previous one to rest. A pending one is looked
    /// at; if still unused it is revoked (so the order can never be paid twice); a create that
    /// never got its answer is settled as failed (for Connect-E, such a token can take no money).
    async fn settle_previous(&self, prev: GatewayPaymentRecord) -> Result<GatewayPaymentRecord, AgentError> {
        match prev.phase {
            Phase::Intent | Phase::CreateUnknown => {
                let gw = self.tender().gateway(payment_of(&prev)?.provider)?.clone();
                let p = payment_of(&prev)?;
                let request = CreatePayment {
                    id: prev.local_id.clone(),
                    kind: p.kind,
                    amount: p.amount,
                    order_id: p.order_id.clone(),
                    description: None,
                    moto: prev.moto,
                    wait_pre_execute: prev.wait_pre_execute,
                    customer_id: prev.customer_id.clone(),
                    stored_card: None,
                    webhook_url: None,
                    return_url: Some(self.return_url(p.provider)),
                };
                match gw.find(&request).await.map_err(gateway_error)? {
                    Some(found) => {
                        let now = self.now_ms();
                        let id = prev.local_id.clone();
                        let (rec, ()) = self
                            .journal(move |j| {
                                j.update_gateway_payment(&id, |r| {
                                    r.phase = Phase::Created;
                                    r.provider_ref = Some(found.reference.expose().to_string());
                                    write_back(&found, r, now);
                                })
                            })
                            .await?;
                        Box::pin(self.settle_previous(rec)).await
                    }
                    None => self.mark_never_created(&prev.local_id).await,
                }
            }
            Phase::CreateFailed => Ok(prev),
            Phase::Created if prev.state == PaymentState::Pending.as_str() => {
                let rec = self.refresh_gateway(&prev.local_id).await?;
                if rec.state != PaymentState::Pending.as_str() || crate::recovery::active(&rec) {
                    // Settled, or declined and being recovered: nothing to revoke (attach).
                    return Ok(rec);
                }
                let p = payment_of(&rec)?;
                if p.awaiting.is_some() {
                    // The cardholder is in 3-D Secure or it waits for a resume: in use, not revocable
                    // without losing a payment the customer is making; the caller attaches to it.
                    return Ok(rec);
                }
                match self.cancel_gateway(&rec.local_id).await {
                    Ok(_) => {}
                    Err(AgentError::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
                let id = rec.local_id.clone();
                Ok(self.journal(move |j| j.gateway_payment(&id)).await?.unwrap_or(rec))
            }
            Phase::Created => Ok(prev),
        }
    }

    async fn mark_never_created(&self, local_id: &str) -> Result<GatewayPaymentRecord, AgentError> {
        let now = self.now_ms();
        let id = local_id.to_string();
        let (rec, ()) = self
            .journal(move |j| {
                j.update_gateway_payment(&id, |r| {
                    r.phase = Phase::CreateFailed;
                    r.state = PaymentState::Failed.as_str().into();
                    r.final_at.get_or_insert(now);
                    r.detail = Some(json!({ "error": "the create call was never answered; the provider holds nothing that can take money" }));
                    r.updated_at = now;
                })
            })
            .await?;
        self.gateway_changed(&rec).await;
        Ok(rec)
    }

    fn card_expired(&self, c: &CardRecord) -> bool {
        let today = ms_to_time(self.now_ms()).map(|t| t.date()).unwrap_or(time::Date::MIN);
        CardExpiry::new(c.expiry_year, c.expiry_month).is_none_or(|e| e.is_expired_on(today))
    }

    /// Asks the provider where a payment stands (`GET /v1/payments/{token}` for Connect-E) and
    /// journals what it says through the one transition rule. A provider that cannot be reached
    /// leaves the journal as it was.
    pub async fn refresh_gateway(&self, local_id: &str) -> Result<GatewayPaymentRecord, AgentError> {
        let id = local_id.to_string();
        let rec = self
            .journal(move |j| j.gateway_payment(&id))
            .await?
            .ok_or_else(|| AgentError::NotFound(format!("payment {local_id}")))?;
        if rec.phase != Phase::Created || state_of(&rec.state).is_terminal() {
            return Ok(rec);
        }
        if crate::recovery::active(&rec) {
            // Declined by the tender and being recovered: the recovery decides the outcome.
            return self.recovery_step(local_id, false).await;
        }
        let p = payment_of(&rec)?;
        let gw = self.tender().gateway(p.provider)?.clone();
        let obs = match gw.fetch(&p).await {
            Ok(obs) => obs,
            Err(e) => {
                tracing::debug!(local_id, error = %e, "payment look-up failed; trying again later");
                return Ok(rec);
            }
        };
        self.observe_gateway(local_id, obs).await
    }

    /// Journals one observation (answer, poll, resume, revoke) and remembers the card of a
    /// customer's successful payment.
    async fn observe_gateway(&self, local_id: &str, obs: Observation) -> Result<GatewayPaymentRecord, AgentError> {
        fail::fail_point!("gateway::before_observe", |_| crate::failpoints::crash("gateway::before_observe"));
        let now = self.now_ms();
        let id = local_id.to_string();
        let (rec, changed) = self
            .journal(move |j| {
                j.update_gateway_payment(&id, |r| match payment_of(r) {
                    Ok(mut p) => {
                        let before = (p.state, p.awaiting, r.recovery.clone());
                        p.observe(&obs);
                        // A decline with recovery on is held (the intent journaled here, in the
                        // same transaction as the observation): the POS keeps seeing pending.
                        crate::recovery::hold_decline(r, &mut p, now);
                        write_back(&p, r, now);
                        before != (p.state, p.awaiting, r.recovery.clone())
                    }
                    Err(_) => false,
                })
            })
            .await?;
        if crate::recovery::active(&rec) {
            tracing::info!(local_id, "declined by the tender; decline recovery");
            self.tender().changed.notify_waiters();
            return self.recovery_step(local_id, false).await;
        }
        if changed {
            tracing::info!(local_id, state = %rec.state, "payment state");
            self.gateway_changed(&rec).await;
            self.remember_card(&rec).await;
        }
        Ok(rec)
    }

    /// A gateway payment changed (created, observed, its amount or money-out): wakes whoever
    /// waits on it and tells the screens, with the same resource `GET /api/agent/payments/{id}`
    /// answers (the `payment` event). Screens treat it as a hint and may re-read.
    pub(crate) async fn gateway_changed(&self, rec: &GatewayPaymentRecord) {
        self.tender().changed.notify_waiters();
        match self.gateway_view(rec).await {
            Ok(view) => self.bus().publish(crate::events::AgentEvent::Payment(view)),
            Err(e) => tracing::debug!(error = %e, "payment event not published"),
        }
    }

    /// Keeps the card of a customer's approved payment on file (cross reference, scheme, masked
    /// number, expiry — never the number or the CV2, which the agent never sees).
    async fn remember_card(&self, rec: &GatewayPaymentRecord) {
        let state = state_of(&rec.state);
        if !matches!(state, PaymentState::Authorized | PaymentState::Captured) {
            return;
        }
        let (Some(customer), Some(xref), Some(masked), Some(expiry)) = (
            rec.customer_id.clone(),
            rec.cross_reference.clone(),
            rec.card_masked.clone(),
            rec.card_expiry.as_deref().and_then(parse_mm_yy),
        ) else {
            return;
        };
        let card = NewCard {
            provider: rec.provider.clone(),
            customer_id: customer,
            cross_reference: xref,
            card_type: rec.card_type.clone(),
            masked,
            expiry_year: expiry.year,
            expiry_month: expiry.month,
            now_ms: self.now_ms(),
        };
        if let Err(e) = self.journal(move |j| j.save_card(card)).await {
            tracing::warn!(error = %e, "could not keep the card on file");
        }
    }

    /// `PATCH /api/agent/payments/{id}` `{"amount": <minor>}`: the cart changed before the
    /// customer paid, so the pending payment is to be made for the new total (Acquired: the
    /// session's `PUT`; the customer's checkout then pays the new amount). Journal first: the new
    /// amount is written before the provider is told. Certainly not sent → the old amount is
    /// written back and the answer says so (503); an unknown outcome keeps the new amount and is
    /// a 504 — sending the same change again is harmless (a `PUT` sets, it never adds). Refused
    /// (changes nothing) once the payment is no longer pending, once money is authorised, or for
    /// a provider whose payments have a fixed amount. One change at a time per till.
    pub async fn change_gateway_amount(&self, local_id: &str, body: &Value) -> Result<Value, AgentError> {
        let mut invalid = InvalidParameters::new();
        let amount = minor_field(body, "amount", &mut invalid);
        match body.as_object() {
            Some(obj) => {
                for key in obj.keys().filter(|k| k.as_str() != "amount") {
                    invalid.push(key, "cannot be changed on a payment; only `amount` can");
                }
            }
            None => invalid.push("body", "must be a JSON object"),
        }
        let id = local_id.to_string();
        let rec = self
            .journal(move |j| j.gateway_payment(&id))
            .await?
            .ok_or_else(|| AgentError::NotFound(format!("payment {local_id}")))?;
        if let Some(a) = amount {
            if a.0 > rec.currency.max_amount().0 {
                invalid.push("amount", format!("must be at most {} minor units", rec.currency.max_amount().0));
            }
        }
        if !invalid.is_empty() {
            return Err(AgentError::Invalid(invalid));
        }
        let Some(amount) = amount else { return Err(AgentError::invalid("amount", "is required")) };
        let p = payment_of(&rec)?;
        let gw = self.tender().gateway(p.provider)?.clone();
        if !gw.amount_changes() {
            return Err(AgentError::Conflict(format!("{} payments have a fixed amount", p.provider.display_name())));
        }
        if rec.phase != Phase::Created || p.state != PaymentState::Pending {
            return Err(AgentError::Conflict(format!("the payment is {}: its amount can no longer change", p.state.as_str())));
        }
        let _one_at_a_time = self.tender().delivering.lock().await;
        let (id, old, now) = (rec.local_id.clone(), rec.amount, self.now_ms());
        let Some(_) = self.journal(move |j| j.set_gateway_amount(&id, amount, now)).await? else {
            return Err(AgentError::Conflict("the payment is no longer pending: its amount can no longer change".into()));
        };
        match gw.change_amount(&p, Money::new(amount.0, rec.currency)).await {
            Ok(()) => {
                tracing::info!(local_id, from = old.0, to = amount.0, "payment amount changed with the cart");
                let id = local_id.to_string();
                let rec = self.journal(move |j| j.gateway_payment(&id)).await?.ok_or_else(|| AgentError::NotFound("payment".into()))?;
                self.gateway_changed(&rec).await;
                self.gateway_view(&rec).await
            }
            Err(e) if e.certainly_not_performed() => {
                let id = rec.local_id.clone();
                self.journal(move |j| j.set_gateway_amount(&id, old, now)).await?;
                Err(gateway_error(e))
            }
            Err(e) => {
                tracing::warn!(local_id, error = %e, "amount change unanswered; the same change may be sent again");
                Err(AgentError::Uncertain(format!(
                    "{} did not answer the amount change ({e}); send the same change again",
                    p.provider.display_name()
                )))
            }
        }
    }

    /// The agent's return endpoint for `provider`: where the customer's browser is sent after
    /// the provider's own step (Acquired's `tds.redirect_url`). On the till's loopback: the
    /// customer screen is a window of this PC.
    pub fn return_url(&self, provider: ProviderId) -> String {
        format!("http://{}/api/agent/providers/{}/return", self.listen_addr(), provider.as_str())
    }

    /// A provider return (`POST /api/agent/providers/{provider}/return`): the customer's browser
    /// brings the provider's signed outcome. Whoever sent it, it is trusted only as far as the
    /// provider's signature goes ([`Gateway::verify_return`]: hash and order): then the
    /// reference it names (Acquired's transaction id) is journaled — a signed fact that moves
    /// no money — and the payment's state comes only from the provider's look-up, as always.
    /// A return that matches no open payment of this till changes nothing and is logged.
    pub async fn gateway_return(&self, provider: ProviderId, fields: Vec<(String, String)>) -> Result<GatewayPaymentRecord, AgentError> {
        let gw = self.tender().gateway(provider)?.clone();
        let open = self.journal(|j| j.open_gateway_payments()).await?;
        let mut refusal = None;
        for rec in open.into_iter().filter(|r| r.provider == provider.as_str() && r.phase == Phase::Created) {
            let p = payment_of(&rec)?;
            match gw.verify_return(&p, &fields) {
                Ok((reference, _said)) => {
                    let id = rec.local_id.clone();
                    let now = self.now_ms();
                    let new_ref = reference.expose().to_string();
                    self.journal(move |j| {
                        j.update_gateway_payment(&id, |r| {
                            if r.provider_ref.as_deref() != Some(new_ref.as_str()) {
                                r.provider_ref = Some(new_ref.clone());
                                r.updated_at = now;
                            }
                        })
                    })
                    .await?;
                    tracing::info!(local_id = %rec.local_id, %provider, "provider return verified; confirming with the provider");
                    let rec = self.refresh_gateway(&rec.local_id).await?;
                    self.tender().wake.notify_one();
                    return Ok(rec);
                }
                Err(e) => refusal = Some(e),
            }
        }
        tracing::warn!(%provider, reason = refusal.as_ref().map(ToString::to_string).unwrap_or_else(|| "no open payment".into()),
            "refused a provider return: not signed by the provider for an open payment of this till");
        Err(AgentError::invalid(
            "hash",
            "the return is not signed by the provider for an open payment of this till; nothing was changed",
        ))
    }

    /// The checkout page reported its promise: look at once (never trusting the page).
    pub async fn gateway_reported(&self, local_id: &str) -> Result<Value, AgentError> {
        let rec = self.refresh_gateway(local_id).await?;
        self.tender().wake.notify_one();
        self.gateway_view(&rec).await
    }

    /// `GET /api/agent/payments/{id}` with an optional wait until the customer's part is over
    /// (or the payment waits for the merchant's resume).
    pub async fn gateway_payment(&self, local_id: &str, wait: Option<u64>) -> Result<Value, AgentError> {
        let id = local_id.to_string();
        let mut rec = self
            .journal(move |j| j.gateway_payment(&id))
            .await?
            .ok_or_else(|| AgentError::NotFound(format!("payment {local_id}")))?;
        if let Some(secs) = wait.filter(|s| *s > 0) {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(secs.min(MAX_WAIT_SECS));
            loop {
                let p = payment_of(&rec)?;
                let settled = p.state.is_settled_for_customer()
                    || matches!(p.awaiting, Some(Awaiting::Resume { .. }))
                    || rec.phase != Phase::Created;
                if settled || tokio::time::Instant::now() >= deadline {
                    break;
                }
                let changed = self.tender().changed.notified();
                tokio::select! {
                    _ = changed => {}
                    _ = tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + self.config().poll_interval)) => {}
                    _ = self.shutdown_token().cancelled() => break,
                }
                rec = self.refresh_gateway(local_id).await?;
            }
        }
        self.gateway_view(&rec).await
    }

    /// `POST /api/agent/payments/{id}/capture|refund|void`. `key` makes a retry find the first
    /// request's operation instead of moving money again.
    pub async fn gateway_operation(&self, local_id: &str, operation: Operation, key: Option<String>) -> Result<(u16, Value), AgentError> {
        let id = local_id.to_string();
        let rec = self
            .journal(move |j| j.gateway_payment(&id))
            .await?
            .ok_or_else(|| AgentError::NotFound(format!("payment {local_id}")))?;
        if let Some(k) = &key {
            let k2 = k.clone();
            if let Some(op) = self.journal(move |j| j.gateway_op_by_key(&k2)).await? {
                if op.payment_local_id != rec.local_id || op.kind != operation.name() || op.amount != op_amount(operation) {
                    return Err(AgentError::Conflict(format!(
                        "Idempotency-Key {k} was used for a {} of {} on payment {}",
                        op.kind, op.amount.0, op.payment_local_id
                    )));
                }
                return self.operation_answer(op).await;
            }
        }
        let p = payment_of(&rec)?;
        let gw = self.tender().gateway(p.provider)?.clone();
        let caps = gw.capabilities();
        let recovered = crate::recovery::recovered(&rec);
        let supported = match operation {
            Operation::Capture(_) => caps.capture && !recovered,
            Operation::Refund(_) => true,
            Operation::Void => caps.void && !recovered,
        };
        if recovered && !supported {
            return Err(AgentError::Conflict(format!("a payment recovered by {} can only be refunded", ProviderId::FlexFactor.display_name())));
        }
        if !supported {
            return Err(AgentError::Conflict(format!("{} does not support {}", p.provider.display_name(), operation.name())));
        }
        p.check(operation, Minor::ZERO).map_err(refused)?;
        let new = NewGatewayOp {
            op_key: key.unwrap_or_else(till_journal::new_local_id),
            payment_local_id: rec.local_id.clone(),
            kind: operation.name().to_string(),
            amount: op_amount(operation),
            now_ms: self.now_ms(),
        };
        let op = match self.journal(move |j| j.begin_gateway_op(new)).await? {
            GatewayOpBegin::Started(op) | GatewayOpBegin::Existing(op) => op,
            GatewayOpBegin::Exceeds { available } => {
                return Err(refused(OperationRefused::Exceeds { asked: op_amount(operation), available }))
            }
        };
        let op = self.deliver_op(op).await?;
        self.operation_answer(op).await
    }

    async fn operation_answer(&self, op: GatewayOpRecord) -> Result<(u16, Value), AgentError> {
        let id = op.payment_local_id.clone();
        let rec = self
            .journal(move |j| j.gateway_payment(&id))
            .await?
            .ok_or_else(|| AgentError::NotFound("payment".into()))?;
        let status = match op.state.as_str() {
            "approved" | "declined" | "failed" => 200,
            _ => 202,
        };
        Ok((status, json!({ "operation": op_json(&op), "payment": self.gateway_view(&rec).await? })))
    }

    /// Sends (or reconciles) one operation as far as it can go now. Never sends a second
    /// money movement for one operation: a ticket that may have been sent is reconciled first.
    pub async fn deliver_op(&self, op: GatewayOpRecord) -> Result<GatewayOpRecord, AgentError> {
        let _one_at_a_time = self.tender().delivering.lock().await;
        // Read it again under the lock: another delivery may have moved it meanwhile.
        let id = op.id;
        let mut op = self.journal(move |j| j.gateway_op(id)).await?.unwrap_or(op);
        for _ in 0..3 {
            let operation = operation_of(&op);
            let pid = op.payment_local_id.clone();
            let rec = self
                .journal(move |j| j.gateway_payment(&pid))
                .await?
                .ok_or_else(|| AgentError::NotFound("payment".into()))?;
            if crate::recovery::recovered(&rec) && matches!(op.state.as_str(), "pending" | "prepared") {
                // Money-out of a recovered payment goes to the service that took the money.
                return self.deliver_recovery_refund(op, &rec).await;
            }
            let p = payment_of(&rec)?;
            let gw = self.tender().gateway(p.provider)?.clone();
            let now = self.now_ms();
            let backoff = now + 2_000 * (op.attempts.clamp(1, 15));
            match op.state.as_str() {
                "pending" => {
                    let ticket = match gw.prepare(&p, &op.op_key, operation).await {
                        Ok(t) => t,
                        Err(e) if matches!(e, GatewayError::Refused { .. } | GatewayError::Invalid { .. } | GatewayError::Unsupported { .. }) => {
                            return self.finish_op(&op, "failed", json!({ "error": e.to_string() }), None).await;
                        }
                        Err(e) => {
                            // Not sent (or a token we never learned, which nothing can use): later.
                            let (id, msg) = (op.id, e.to_string());
                            return Ok(self.journal(move |j| j.gateway_op_later(id, &msg, backoff, now)).await?);
                        }
                    };
                    // Providers without a remote step mint no reference (Acquired's capture and
                    // void): the ticket is journaled as prepared all the same, with an empty one.
                    let reference = ticket.provider_ref.as_ref().map(|r| r.expose().to_string()).unwrap_or_default();
                    let id = op.id;
                    op = self.journal(move |j| j.gateway_op_prepared(id, &reference, now)).await?;
                    fail::fail_point!("gateway::before_send", |_| crate::failpoints::crash("gateway::before_send"));
                    let sent = gw.execute(&p, &ticket).await;
                    fail::fail_point!("gateway::after_send", |_| crate::failpoints::crash("gateway::after_send"));
                    match sent {
                        Ok(outcome) => return self.finish_with(&op, operation, outcome).await,
                        Err(e) => {
                            tracing::warn!(op = op.id, error = %e, "money-out answer lost or refused; reconciling");
                            // Loop: "prepared" reconciles before anything is sent again.
                        }
                    }
                }
                "prepared" => {
                    let ticket = OperationTicket {
                        id: op.op_key.clone(),
                        operation,
                        provider_ref: op.ticket_ref.clone().filter(|r| !r.is_empty()).map(Opaque::new),
                    };
                    match gw.reconcile(&p, &ticket).await {
                        Ok(Reconciled::Performed(outcome)) => return self.finish_with(&op, operation, outcome).await,
                        Ok(Reconciled::NotPerformed) => {
                            let id = op.id;
                            op = self
                                .journal(move |j| j.gateway_op_retry(id, "not performed; sending a new one", now, now))
                                .await?;
                        }
                        Err(e) => {
                            let (id, msg) = (op.id, e.to_string());
                            return Ok(self.journal(move |j| j.gateway_op_later(id, &msg, backoff, now)).await?);
                        }
                    }
                }
                _ => return Ok(op),
            }
        }
        Ok(op)
    }

    async fn finish_with(&self, op: &GatewayOpRecord, operation: Operation, outcome: OperationOutcome) -> Result<GatewayOpRecord, AgentError> {
        let state = if outcome.approved { "approved" } else { "declined" };
        let body = json!({
            "approved": outcome.approved,
            "authCode": outcome.auth_code,
            "decline": outcome.decline,
        });
        self.finish_op(op, state, body, Some((operation, outcome))).await
    }

    /// [`Agent::finish_op`] for the recovery module.
    pub(crate) async fn finish_op_pub(
        &self,
        op: &GatewayOpRecord,
        state: &'static str,
        body: Value,
        applied: Option<(Operation, OperationOutcome)>,
    ) -> Result<GatewayOpRecord, AgentError> {
        self.finish_op(op, state, body, applied).await
    }

    async fn finish_op(
        &self,
        op: &GatewayOpRecord,
        state: &'static str,
        body: Value,
        applied: Option<(Operation, OperationOutcome)>,
    ) -> Result<GatewayOpRecord, AgentError> {
        let now = self.now_ms();
        let id = op.id;
        let (op, rec) = self
            .journal(move |j| {
                j.finish_gateway_op(id, state, &body, now, |r| {
                    if let (Some((operation, outcome)), Ok(mut p)) = (applied, payment_of(r)) {
                        p.record(operation, &outcome);
                        write_back(&p, r, now);
                    }
                })
            })
            .await?;
        tracing::info!(op = op.id, kind = %op.kind, state = %op.state, payment = %rec.local_id, "money-out outcome");
        self.gateway_changed(&rec).await;
        Ok(op)
    }

    /// `POST /api/agent/payments/{id}/resume`: continues a wait-pre-execute payment. Refused
    /// (409) when the payment is not waiting or the provider's window has closed.
    pub async fn resume_gateway(&self, local_id: &str) -> Result<Value, AgentError> {
        let rec = self.refresh_gateway(local_id).await?;
        let p = payment_of(&rec)?;
        if p.state != PaymentState::Pending || !matches!(p.awaiting, Some(Awaiting::Resume { .. })) {
            return Err(AgentError::Conflict(format!(
                "cannot resume a payment that is {}{}",
                p.state.as_str(),
                if p.state == PaymentState::Pending { " and not waiting to be resumed" } else { "" }
            )));
        }
        let gw = self.tender().gateway(p.provider)?.clone();
        match gw.resume(&p).await {
            Ok(obs) => {
                let rec = self.observe_gateway(local_id, obs).await?;
                self.gateway_view(&rec).await
            }
            Err(e @ GatewayError::OutcomeUnknown { .. }) => {
                tracing::warn!(local_id, error = %e, "resume answer lost; looking the payment up");
                let rec = self.refresh_gateway(local_id).await?;
                self.gateway_view(&rec).await
            }
            Err(e) => {
                // Refused: look again (a lapsed window reads as expired) and say why.
                let _ = self.refresh_gateway(local_id).await;
                Err(gateway_error(e))
            }
        }
    }

    /// `POST /api/agent/payments/{id}/cancel`: revokes a pending payment's token.
    pub async fn cancel_gateway(&self, local_id: &str) -> Result<Value, AgentError> {
        let rec = self.refresh_gateway(local_id).await?;
        let p = payment_of(&rec)?;
        if p.state != PaymentState::Pending || rec.phase != Phase::Created {
            let hint = match p.state {
                PaymentState::Authorized => "; void it instead",
                PaymentState::Captured => "; refund it instead",
                _ => "",
            };
            return Err(AgentError::Conflict(format!("cannot cancel a payment that is {}{hint}", p.state.as_str())));
        }
        let gw = self.tender().gateway(p.provider)?.clone();
        let obs = gw.cancel(&p).await.map_err(gateway_error)?;
        let rec = self.observe_gateway(local_id, obs).await?;
        self.gateway_view(&rec).await
    }

    /// Stored cards of a customer (expired ones hidden).
    pub async fn stored_cards(&self, provider: ProviderId, customer_id: &str) -> Result<Vec<Value>, AgentError> {
        let c = customer_id.to_string();
        let cards = self.journal(move |j| j.cards_for(provider.as_str(), &c)).await?;
        Ok(cards
            .iter()
            .filter(|c| !self.card_expired(c))
            .map(|c| {
                json!({
                    "id": c.id,
                    "provider": c.provider,
                    "cardType": c.card_type,
                    "masked": till_receipts::mask_card(&c.masked),
                    "expiry": CardExpiry::new(c.expiry_year, c.expiry_month).map(CardExpiry::mm_yy),
                })
            })
            .collect())
    }

    /// Recent gateway payments (newest first), optionally of one state: the cashier screen's
    /// "pre-authorisations to collect", the manager console's list.
    pub async fn gateway_payments(&self, state: Option<String>, limit: u32) -> Result<Vec<Value>, AgentError> {
        let rows = self.journal(move |j| j.recent_gateway_payments(state.as_deref(), limit)).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(view_of(r, &[], &self.listen_addr())?);
        }
        Ok(out)
    }

    /// The local API's view of a payment, its operations included.
    pub async fn gateway_view(&self, rec: &GatewayPaymentRecord) -> Result<Value, AgentError> {
        let id = rec.local_id.clone();
        let ops = self.journal(move |j| j.gateway_ops_for(&id)).await?;
        view_of(rec, &ops, &self.listen_addr())
    }

    /// What the checkout page needs: the provider's script, the token and the form. `None`
    /// once the payment no longer waits for card entry.
    pub async fn checkout_of(&self, local_id: &str) -> Result<Option<Checkout>, AgentError> {
        let id = local_id.to_string();
        let rec = self
            .journal(move |j| j.gateway_payment(&id))
            .await?
            .ok_or_else(|| AgentError::NotFound(format!("payment {local_id}")))?;
        if rec.phase != Phase::Created || rec.state != PaymentState::Pending.as_str() || crate::recovery::active(&rec) {
            return Ok(None);
        }
        let Some(reference) = rec.provider_ref.clone() else { return Ok(None) };
        // The page vaults the card at FlexFactor itself while recovery is armed for it.
        let vault_url = match (crate::recovery::Recovery::of(&rec), self.tender().recovery()) {
            (Some(x), Some(_)) if x.stage == crate::recovery::Stage::Armed => self.config().flexfactor.as_ref().and_then(|ff| {
                let mut cfg = till_flexfactor::Config::new(&ff.base_url, "", "", &ff.mid, &ff.site_id, &ff.tokenize_environment);
                cfg.timeout = Duration::from_secs(1);
                till_flexfactor::Client::new(cfg).ok().and_then(|c| c.tokenize_endpoint().ok()).map(|u| u.to_string())
            }),
            _ => None,
        };
        let (provider, script_url, token) = match rec.provider.parse::<ProviderId>() {
            Ok(ProviderId::ConnectE) => {
                let Some(config) = &self.config().connect_e else { return Ok(None) };
                (ProviderId::ConnectE, format!("{}/assets/js/client.js", config.web_url), Opaque::new(reference))
            }
            Ok(ProviderId::Acquired) => {
                let Some(config) = &self.config().acquired else { return Ok(None) };
                let r = till_acquired::PaymentRef::parse(&Opaque::new(reference));
                if r.transaction_id.is_some() {
                    // Paid already (the return named its transaction): no second card entry.
                    return Ok(None);
                }
                (ProviderId::Acquired, config.components_url.clone(), r.session_id)
            }
            _ => return Ok(None),
        };
        Ok(Some(Checkout {
            provider,
            web_origin: origin_of(&script_url),
            script_url,
            token,
            cv2_only: rec.card_id.is_some(),
            amount: Money::new(rec.amount.0, rec.currency),
            order_id: rec.order_id.clone(),
            expires_at: rec.expires_at,
            vault_url,
        }))
    }

    /// One round of the worker: look at open payments, deliver due operations.
    pub async fn tender_tick(&self) {
        let now = self.now_ms();
        let open = match self.journal(|j| j.open_gateway_payments()).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read open payments");
                return;
            }
        };
        for rec in open {
            let result = match rec.phase {
                Phase::Intent | Phase::CreateUnknown if now - rec.updated_at > STALE_INTENT.as_millis() as i64 => {
                    self.settle_previous(rec).await.map(|_| ())
                }
                Phase::Created => self.refresh_gateway(&rec.local_id).await.map(|_| ()),
                _ => Ok(()),
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "open payment not settled yet");
            }
        }
        let due = match self.journal(move |j| j.due_gateway_ops(now)).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read due operations");
                return;
            }
        };
        for op in due {
            if let Err(e) = self.deliver_op(op).await {
                tracing::warn!(error = %e, "operation not delivered yet");
            }
        }
    }
}

/// What the checkout page shows.
pub struct Checkout {
    /// Whose script: Connect-E's `client.js` or Acquired's Components.
    pub provider: ProviderId,
    /// The provider's script (`client.js`, `acquired.js`).
    pub script_url: String,
    /// Its origin, for the page's Content-Security-Policy.
    pub web_origin: String,
    /// What the script needs: Connect-E's access token, Acquired's session id.
    pub token: Opaque,
    /// A repeat payment on a stored card: only the CV2 is asked for.
    pub cv2_only: bool,
    /// For the page's heading.
    pub amount: Money,
    /// For the page's heading.
    pub order_id: String,
    /// When the provider stops taking the card (unix ms), if it says: an Acquired session's
    /// page asks for a fresh session shortly before (crate::renew).
    pub expires_at: Option<i64>,
    /// FlexFactor's tokenization URL (with `mid` and `environment`) when the page is to vault
    /// the card for decline recovery; `None` otherwise.
    pub vault_url: Option<String>,
}

/// `scheme://host[:port]` of a URL (the CSP source of the provider's web host).
pub(crate) fn origin_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => u.origin().ascii_serialization(),
        Err(_) => url.to_string(),
    }
}

fn op_amount(operation: Operation) -> Minor {
    match operation {
        Operation::Capture(a) | Operation::Refund(a) => a,
        Operation::Void => Minor::ZERO,
    }
}

fn operation_of(op: &GatewayOpRecord) -> Operation {
    match op.kind.as_str() {
        "capture" => Operation::Capture(op.amount),
        "refund" => Operation::Refund(op.amount),
        _ => Operation::Void,
    }
}

fn iso(ms: i64) -> Value {
    ms_to_time(ms)
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .map(Value::String)
        .unwrap_or(Value::Null)
}

fn op_json(op: &GatewayOpRecord) -> Value {
    json!({
        "id": op.id,
        "kind": op.kind,
        "amount": op.amount.0,
        "state": match op.state.as_str() { "prepared" => "unknown", "pending" => "queued", s => s },
        "attempts": op.attempts,
        "error": op.last_error,
        "createdAt": iso(op.created_at),
        "finishedAt": op.finished_at.map(iso),
    })
}

/// The one JSON shape of a gateway payment (the OpenAPI `GatewayPayment` schema).
fn view_of(r: &GatewayPaymentRecord, ops: &[GatewayOpRecord], addr: &std::net::SocketAddr) -> Result<Value, AgentError> {
    let p = payment_of(r)?;
    let checkout = (r.phase == Phase::Created && p.state == PaymentState::Pending && p.awaiting.is_none() && !crate::recovery::active(r))
        .then(|| format!("http://{addr}/api/agent/payments/{}/checkout", r.local_id));
    let refund = match p.refund_progress() {
        till_gateway::RefundProgress::None => "none",
        till_gateway::RefundProgress::Partial => "partial",
        till_gateway::RefundProgress::Full => "full",
    };
    let card = p.card.as_ref().filter(|c| c.masked.is_some() || c.scheme.is_some()).map(|c| {
        json!({
            "type": c.scheme,
            "masked": c.masked.as_deref().map(till_receipts::mask_card),
            "expiry": c.expiry.map(CardExpiry::mm_yy),
        })
    });
    let awaiting = match p.awaiting {
        Some(Awaiting::Resume { until }) => json!({ "type": "resume", "until": until.map(time_to_ms).map(iso) }),
        Some(Awaiting::Authentication) => json!({ "type": "authentication" }),
        None => Value::Null,
    };
    let error = r.detail.as_ref().and_then(|d| d.get("error")).cloned().unwrap_or(Value::Null);
    Ok(json!({
        "id": r.local_id,
        "provider": p.provider.as_str(),
        "providerName": p.provider.display_name(),
        "kind": p.kind.as_str(),
        "state": p.state.as_str(),
        "orderId": r.order_id,
        "amount": r.amount.0,
        "currency": r.currency.code(),
        "authorizedAmount": p.amounts.authorized.0,
        "capturedAmount": p.amounts.captured.0,
        "refundedAmount": p.amounts.refunded.0,
        "refundableAmount": p.amounts.refundable().0,
        "refund": refund,
        "moto": r.moto,
        "waitPreExecute": r.wait_pre_execute,
        "customerId": r.customer_id,
        "cardId": r.card_id,
        "card": card,
        "authCode": p.auth_code,
        "decline": p.decline.as_ref().map(|d| json!({ "category": d.category, "providerCode": d.provider_code, "message": d.message })),
        "awaiting": awaiting,
        "error": error,
        "expiresAt": r.expires_at.map(iso),
        "checkoutUrl": checkout,
        "createdAt": iso(r.created_at),
        "updatedAt": iso(r.updated_at),
        "finalAt": r.final_at.map(iso),
        "operations": ops.iter().map(op_json).collect::<Vec<_>>(),
        "recovery": crate::recovery::view(r),
        "recoveredBy": crate::recovery::recovered(r).then(|| ProviderId::FlexFactor.as_str()),
        "recoveredLabel": crate::recovery::recovered_label(r),
    }))
}

/// The worker: every poll interval (and whenever woken) looks at open payments and delivers
/// due operations, until shutdown.
pub async fn run(agent: Agent) {
    if agent.tender().gateways.is_empty() {
        return;
    }
    let interval = agent.config().poll_interval.min(Duration::from_secs(2));
    loop {
        agent.tender_tick().await;
        tokio::select! {
            _ = agent.shutdown_token().cancelled() => return,
            _ = agent.tender().wake.notified() => {}
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    //! The orchestration against a fake gateway: exactly-once money-out after lost answers, one
    //! live token per order, and bad input that changes nothing.
    use super::*;
    use std::sync::Mutex;
    use till_gateway::{Capabilities, DeclineCategory};

    /// A provider kept in memory. `lose_next` makes the next money-out perform and then answer
    /// "outcome unknown", as a lost response does.
    #[derive(Debug, Default)]
    struct Fake {
        tokens: Mutex<Vec<(String, PaymentState)>>,
        performed: Mutex<Vec<(String, Operation)>>,
        lose_next: Mutex<bool>,
        revoked: Mutex<Vec<String>>,
        /// The agent's journal, to look at from inside a call (journal first).
        journal: Mutex<Option<till_journal::Journal>>,
        /// Our payment ids whose intent row the journal held when `create` was called.
        intents_seen: Mutex<Vec<String>>,
        /// Which of our payment ids each token was made for (what `find` looks up).
        created_for: Mutex<Vec<(String, String)>>,
        /// Makes the next `create` make the token and then lose the answer.
        lose_create: Mutex<bool>,
        /// How many more `find` / `reconcile` calls fail as "provider unreachable".
        lookups_unreachable: Mutex<u32>,
    }

    fn unreachable_now(f: &Fake) -> Option<GatewayError> {
        let mut n = f.lookups_unreachable.lock().unwrap();
        if *n == 0 {
            return None;
        }
        *n -= 1;
        Some(GatewayError::Unreachable { provider: ProviderId::ConnectE, detail: "down".into() })
    }

    fn fake_state(f: &Fake, token: &str) -> Option<PaymentState> {
        f.tokens.lock().unwrap().iter().find(|(t, _)| t == token).map(|(_, s)| *s)
    }

    #[async_trait::async_trait]
    impl Gateway for Fake {
        fn provider(&self) -> ProviderId {
            ProviderId::ConnectE
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities {
                capture: true,
                void: true,
                partial_refund: true,
                cards_on_file: true,
                resume: false,
                cancel_pending: true,
                events: false,
                currencies: &[Currency::Gbp],
            }
        }
        async fn create(&self, r: &CreatePayment) -> Result<Payment, GatewayError> {
            if let Some(j) = self.journal.lock().unwrap().as_ref() {
                if j.gateway_payment(&r.id).unwrap().is_some_and(|row| row.phase == Phase::Intent) {
                    self.intents_seen.lock().unwrap().push(r.id.clone());
                }
            }
            let mut tokens = self.tokens.lock().unwrap();
            let token = format!("tok-{}", tokens.len());
            tokens.push((token.clone(), PaymentState::Pending));
            self.created_for.lock().unwrap().push((r.id.clone(), token.clone()));
            if std::mem::take(&mut *self.lose_create.lock().unwrap()) {
                return Err(GatewayError::OutcomeUnknown { provider: ProviderId::ConnectE, detail: "lost".into() });
            }
            Ok(Payment::pending(ProviderId::ConnectE, Opaque::new(token), r.kind, r.order_id.clone(), r.amount))
        }
        async fn fetch(&self, p: &Payment) -> Result<Observation, GatewayError> {
            let state = fake_state(self, p.reference.expose()).unwrap_or(PaymentState::Pending);
            let mut obs = Observation::of(state);
            if state == PaymentState::Captured {
                obs.authorized = Some(p.amount.minor);
                obs.captured = Some(p.amount.minor);
                obs.card = Some(CardSummary { scheme: Some("VISA".into()), masked: Some("445653******1096".into()), expiry: CardExpiry::new(2030, 12), on_file: Some(Opaque::new("xref")) });
            }
            if state == PaymentState::Declined {
                obs.decline = Some(DeclineReason { category: DeclineCategory::Declined, provider_code: Some("5".into()), message: None });
            }
            Ok(obs)
        }
        async fn find(&self, r: &CreatePayment) -> Result<Option<Payment>, GatewayError> {
            if let Some(e) = unreachable_now(self) {
                return Err(e);
            }
            let made = self.created_for.lock().unwrap().iter().find(|(id, _)| *id == r.id).map(|(_, t)| t.clone());
            Ok(made.map(|t| Payment::pending(ProviderId::ConnectE, Opaque::new(t), r.kind, r.order_id.clone(), r.amount)))
        }
        async fn prepare(&self, _: &Payment, id: &str, operation: Operation) -> Result<OperationTicket, GatewayError> {
            Ok(OperationTicket { id: id.to_string(), operation, provider_ref: Some(Opaque::new(format!("op-{id}"))) })
        }
        async fn capture(&self, p: &Payment, t: &OperationTicket) -> Result<OperationOutcome, GatewayError> {
            self.refund(p, t).await
        }
        async fn refund(&self, _: &Payment, t: &OperationTicket) -> Result<OperationOutcome, GatewayError> {
            let reference = t.provider_ref.as_ref().map(|r| r.expose().to_string()).unwrap_or_default();
            self.performed.lock().unwrap().push((reference, t.operation));
            if std::mem::take(&mut *self.lose_next.lock().unwrap()) {
                return Err(GatewayError::OutcomeUnknown { provider: ProviderId::ConnectE, detail: "lost".into() });
            }
            Ok(OperationOutcome { approved: true, decline: None, auth_code: None, provider_ref: None })
        }
        async fn void(&self, p: &Payment, t: &OperationTicket) -> Result<OperationOutcome, GatewayError> {
            self.refund(p, t).await
        }
        async fn reconcile(&self, _: &Payment, t: &OperationTicket) -> Result<Reconciled, GatewayError> {
            if let Some(e) = unreachable_now(self) {
                return Err(e);
            }
            let reference = t.provider_ref.as_ref().map(|r| r.expose().to_string()).unwrap_or_default();
            let done = self.performed.lock().unwrap().iter().any(|(r, _)| *r == reference);
            Ok(if done {
                Reconciled::Performed(OperationOutcome { approved: true, decline: None, auth_code: None, provider_ref: None })
            } else {
                Reconciled::NotPerformed
            })
        }
        async fn cancel(&self, p: &Payment) -> Result<Observation, GatewayError> {
            self.revoked.lock().unwrap().push(p.reference.expose().to_string());
            Ok(Observation::of(PaymentState::Cancelled))
        }
    }

    fn agent(fake: Arc<Fake>) -> (Agent, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::Config::merge(
            crate::config::FileConfig::default(),
            crate::config::Overrides {
                listen: Some("127.0.0.1:0".parse().unwrap()),
                data_dir: Some(dir.path().to_path_buf()),
                sensepass_url: Some("http://127.0.0.1:1/api/".into()),
                socket_url: Some("http://127.0.0.1:1".into()),
                waive_pos_token: None,
            },
        )
        .unwrap();
        let journal = till_journal::Journal::open_in_memory().unwrap();
        let mut gateways: HashMap<ProviderId, Arc<dyn Gateway>> = HashMap::new();
        gateways.insert(ProviderId::ConnectE, fake.clone());
        *fake.journal.lock().unwrap() = Some(journal.clone());
        let agent = Agent::with_tender(config, journal, tokio_util::sync::CancellationToken::new(), Tender::with(gateways)).unwrap();
        (agent, dir)
    }

    fn sale(order: &str) -> Value {
        json!({"provider": "connect-e", "amount": 1000, "currency": "GBP", "orderId": order, "customerId": "c1"})
    }

    async fn paid(agent: &Agent, fake: &Fake, order: &str) -> String {
        let (new, p) = agent.create_gateway_payment(sale(order)).await.unwrap();
        assert!(new);
        let id = p["id"].as_str().unwrap().to_string();
        let token = fake.tokens.lock().unwrap().last().unwrap().0.clone();
        fake.tokens.lock().unwrap().iter_mut().for_each(|(t, s)| if *t == token { *s = PaymentState::Captured });
        let v = agent.gateway_reported(&id).await.unwrap();
        assert_eq!(v["state"], "captured", "{v}");
        id
    }

    #[tokio::test]
    async fn a_lost_refund_answer_is_reconciled_not_resent() {
        let fake = Arc::new(Fake::default());
        let (agent, _dir) = agent(fake.clone());
        let id = paid(&agent, &fake, "o1").await;
        *fake.lose_next.lock().unwrap() = true;
        let (status, v) = agent.gateway_operation(&id, Operation::Refund(Minor(300)), None).await.unwrap();
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["payment"]["refundedAmount"], 300);
        assert_eq!(fake.performed.lock().unwrap().len(), 1, "one refund at the provider");
        // the card of the customer's payment is on file, masked
        let cards = agent.stored_cards(ProviderId::ConnectE, "c1").await.unwrap();
        assert_eq!(cards.len(), 1);
        assert_eq!(cards[0]["masked"], "**** 1096");
    }

    #[tokio::test]
    async fn one_live_token_per_order() {
        let fake = Arc::new(Fake::default());
        let (agent, _dir) = agent(fake.clone());
        let (_, first) = agent.create_gateway_payment(sale("o2")).await.unwrap();
        let (new, second) = agent.create_gateway_payment(sale("o2")).await.unwrap();
        assert!(new);
        assert_ne!(first["id"], second["id"]);
        assert_eq!(*fake.revoked.lock().unwrap(), vec!["tok-0".to_string()], "the unused token was revoked first");
        let paid_id = {
            let token = "tok-1";
            fake.tokens.lock().unwrap().iter_mut().for_each(|(t, s)| if t == token { *s = PaymentState::Captured });
            second["id"].as_str().unwrap().to_string()
        };
        let (new, again) = agent.create_gateway_payment(sale("o2")).await.unwrap();
        assert!(!new, "a paid order is answered, not charged again");
        assert_eq!(again["id"], paid_id.as_str());
        let mut other = sale("o2");
        other["amount"] = json!(999);
        assert!(matches!(agent.create_gateway_payment(other).await, Err(AgentError::IdempotencyMismatch { .. })));
    }

    #[tokio::test]
    async fn bad_input_changes_nothing() {
        let fake = Arc::new(Fake::default());
        let (agent, _dir) = agent(fake.clone());
        for body in [
            json!({"provider": "acquired", "amount": 1, "currency": "GBP", "orderId": "x"}),
            json!({"provider": "connect-e", "amount": 1, "currency": "EUR", "orderId": "x"}),
            json!({"provider": "connect-e", "amount": 0, "currency": "GBP"}),
        ] {
            assert!(matches!(agent.create_gateway_payment(body).await, Err(AgentError::Invalid(_))));
        }
        assert!(fake.tokens.lock().unwrap().is_empty());
        assert!(agent.gateway_payments(None, 10).await.unwrap().is_empty());
        // a refund of a pending payment: 409, nothing journaled
        let (_, p) = agent.create_gateway_payment(sale("o3")).await.unwrap();
        let id = p["id"].as_str().unwrap();
        assert!(matches!(agent.gateway_operation(id, Operation::Refund(Minor(1)), None).await, Err(AgentError::Conflict(_))));
        assert!(fake.performed.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_intent_is_journaled_before_the_provider_is_called() {
        let fake = Arc::new(Fake::default());
        let (agent, _dir) = agent(fake.clone());
        let (_, p) = agent.create_gateway_payment(sale("o4")).await.unwrap();
        let id = p["id"].as_str().unwrap().to_string();
        assert_eq!(*fake.intents_seen.lock().unwrap(), vec![id.clone()], "the provider was called with the intent durable");
        let i2 = id.clone();
        let row = agent.journal(move |j| j.gateway_payment(&i2)).await.unwrap().unwrap();
        assert_eq!(row.phase, Phase::Created);
        assert_eq!(row.provider_ref.as_deref(), Some("tok-0"), "the outcome journaled after the call");
    }

    #[tokio::test]
    async fn a_lost_create_answer_is_unknown_until_the_look_up_finds_the_payment() {
        let fake = Arc::new(Fake::default());
        let (agent, _dir) = agent(fake.clone());
        // The provider makes the token, the answer is lost, and the look-up cannot reach it.
        *fake.lose_create.lock().unwrap() = true;
        *fake.lookups_unreachable.lock().unwrap() = 1;
        let err = agent.create_gateway_payment(sale("o5")).await.unwrap_err();
        assert!(matches!(err, AgentError::Unreachable(_) | AgentError::ProviderUnreachable(_) | AgentError::Uncertain(_)), "{err:?}");
        let rows = agent.journal(|j| j.gateway_payments_for_order("o5")).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].phase, Phase::CreateUnknown, "outcome unknown, journaled as such");
        let first = rows[0].local_id.clone();
        // Meanwhile the customer paid on the token whose answer was lost.
        fake.tokens.lock().unwrap()[0].1 = PaymentState::Captured;
        // The POS retries the order: the look-up finds the payment; nothing is charged again.
        let (new, v) = agent.create_gateway_payment(sale("o5")).await.unwrap();
        assert!(!new, "attached to the payment the look-up found: {v}");
        assert_eq!(v["id"], first.as_str());
        assert_eq!(v["state"], "captured", "{v}");
        assert_eq!(fake.tokens.lock().unwrap().len(), 1, "one create at the provider");
        let row = agent.journal(move |j| j.gateway_payment(&first)).await.unwrap().unwrap();
        assert_eq!((row.phase, row.provider_ref.as_deref()), (Phase::Created, Some("tok-0")));
    }

    #[tokio::test]
    async fn a_refund_is_never_sent_twice() {
        let fake = Arc::new(Fake::default());
        let (agent, _dir) = agent(fake.clone());
        let id = paid(&agent, &fake, "o6").await;
        // Sent, answer lost, and the provider cannot be asked yet: the refund stays open.
        *fake.lose_next.lock().unwrap() = true;
        *fake.lookups_unreachable.lock().unwrap() = 1;
        let (status, v) = agent.gateway_operation(&id, Operation::Refund(Minor(400)), Some("k-6".into())).await.unwrap();
        assert_eq!(status, 202, "{v}");
        assert_eq!(v["operation"]["state"], "unknown", "outcome unknown, not re-sent: {v}");
        // The POS retries with its key: the same operation answers, nothing is sent.
        let (status, _) = agent.gateway_operation(&id, Operation::Refund(Minor(400)), Some("k-6".into())).await.unwrap();
        assert_eq!(status, 202);
        assert_eq!(fake.performed.lock().unwrap().len(), 1);
        // The worker reconciles it: found performed, finished without a second send.
        let op = agent.journal(|j| j.gateway_op_by_key("k-6")).await.unwrap().unwrap();
        let op = agent.deliver_op(op.clone()).await.unwrap();
        assert_eq!(op.state, "approved");
        let op = agent.deliver_op(op).await.unwrap();
        assert_eq!(op.state, "approved");
        assert_eq!(fake.performed.lock().unwrap().len(), 1, "one refund at the provider");
        let (status, v) = agent.gateway_operation(&id, Operation::Refund(Minor(400)), Some("k-6".into())).await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(v["payment"]["refundedAmount"], 400, "{v}");
        assert_eq!(fake.performed.lock().unwrap().len(), 1);
    }
}
