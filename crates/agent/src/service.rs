//! The orchestrator: the payment flows of the SensePass docs, made durable.
//!
//! Every flow follows the same discipline (DESIGN.md §2, promise 2):
//! 1. validate (nothing is journaled or sent for a bad request),
//! 2. journal the intent (one SQLite transaction, `synchronous=FULL`),
//! 3. call SensePass,
//! 4. journal the outcome — or, when the outcome is uncertain, journal *that*, and reconcile
//!    with SensePass before anything else may happen for the same order.
//!
//! ```text
//!  POS ──init──▶ validate ─▶ journal.begin_payment ─┬─ Existing ─▶ reconcile if unknown ─▶ attach / return
//!                                                    ├─ Busy ─────▶ 409 busy
//!                                                    └─ Started ──▶ SensePass init ─┬─ ok ─────▶ journal created
//!                                                                                   ├─ not sent ▶ journal failed, 503
//!                                                                                   └─ unknown ─▶ journal unknown, reconcile
//!  sync: wait on the event bus until final (socket / poll / timeout) ─▶ 200 entity; POS hangs up ─▶ cancel
//!  approved ─▶ outbox: commit (GET commitLink) ─▶ journal committed
//! ```
//!
//! Journal calls are synchronous SQLite calls with fsync; they run on tokio's blocking pool
//! ([`Agent::journal`]) so that a slow disk never stalls the async workers.

use crate::config::Config;
use crate::error::AgentError;
use crate::events::{AgentEvent, ConnectivityEvent, EventBus, StatusEvent};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use till_core::{Currency, Minor, Status, Transition};
use till_journal::{
    Begin, EventSource, Journal, NewOperation, NewPayment, OpKind, Operation, Pairing, PaymentRecord,
    Phase,
};
use till_sensepass::{Client, ClientConfig, Credentials, InitRequest, Transaction};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// How long after a transaction's `timeoutDate` a sync call keeps waiting for SensePass's final
/// status (polling meanwhile) before answering `outcome_unknown`.
const SYNC_GRACE: Duration = Duration::from_secs(20);

/// How long a payment whose create call had an unknown outcome must be unseen at SensePass
/// before the agent concludes it was never created (covers a request still in flight).
const UNKNOWN_SETTLE: Duration = Duration::from_secs(30);

/// Live health figures, updated by the workers and read by `/api/agent/health`.
/// Atomics, because they are written from several tasks and read on every health call.
#[derive(Debug, Default)]
pub struct Health {
    /// Socket.IO is connected for the paired device.
    pub socket_connected: AtomicBool,
    /// Unix ms since SensePass has been unreachable; 0 when reachable.
    pub offline_since_ms: AtomicI64,
    /// True until start-up reconciliation finished.
    pub recovering: AtomicBool,
}

/// The outcome of starting a payment, before waiting.
#[derive(Debug)]
pub enum Started {
    /// A new payment was created at SensePass (or is being reconciled).
    New(PaymentRecord),
    /// The same order / idempotency key already has a payment; this is it.
    Existing(PaymentRecord),
}

impl Started {
    /// The payment either way.
    pub fn record(&self) -> &PaymentRecord {
        match self {
            Started::New(r) | Started::Existing(r) => r,
        }
    }
}

/// The agent service. Cheap to clone: everything lives behind one `Arc`.
#[derive(Clone)]
pub struct Agent {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    journal: Journal,
    /// Base client without credentials; per-call clients add the paired device.
    client: Client,
    bus: EventBus,
    health: Health,
    /// The POS token for money-out operations (stored in the journal's settings).
    pos_token: String,
    /// Cancelled when the agent shuts down; background tasks watch it.
    shutdown: CancellationToken,
    /// Wakes the outbox worker when an operation is queued (it also polls on a timer).
    outbox_wake: tokio::sync::Notify,
    /// Manager PIN sessions.
    manager: crate::manager::Manager,
    /// The address the local API actually listens on (the port when 0 was configured).
    bound: std::sync::OnceLock<std::net::SocketAddr>,
    /// Status events that arrived before the journal knew their TransactionNumber (SensePass
    /// emitted them while the create call's answer was still on its way): the latest per number,
    /// applied right after the creation is journaled. A std mutex: a map insert or remove, never
    /// held across an `.await`.
    early_events: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, Transaction, EventSource)>>,
    /// The providers behind the gateway seam (Connect-E) and their workers' signals.
    tender: crate::tender::Tender,
    /// Added to the wall clock for idempotency decisions: always 0 except in test builds
    /// ([`crate::failpoints::clock_offset_ms`]), where a test moves time past the order-ID window.
    clock_offset_ms: i64,
    /// The receipt printer: settings, last known state, the print worker's wake-up.
    printing: crate::printer::Printing,
}

impl Agent {
    /// Opens the journal, makes sure a POS token exists, and builds the SensePass client.
    pub fn new(config: Config, journal: Journal, shutdown: CancellationToken) -> Result<Agent, AgentError> {
        let tender = crate::tender::Tender::from_config(&config)?;
        Agent::with_tender(config, journal, shutdown, tender)
    }

    /// As [`Agent::new`], with the gateway providers given (unit tests pass fakes).
    pub fn with_tender(
        config: Config,
        journal: Journal,
        shutdown: CancellationToken,
        tender: crate::tender::Tender,
    ) -> Result<Agent, AgentError> {
        let client = Client::new(
            ClientConfig {
                base_url: config.sensepass_url.clone(),
                timeout: config.http_timeout,
                connect_timeout: Duration::from_secs(5),
            },
            Credentials::Device(String::new()),
        )
        .map_err(|e| AgentError::Internal(e.to_string()))?;
        let pos_token = ensure_pos_token(&journal)?;
        journal.set_order_id_window(i64::try_from(config.order_id_window.as_millis()).unwrap_or(i64::MAX));
        let health = Health::default();
        health.recovering.store(true, Ordering::SeqCst);
        let printing = crate::printer::Printing::new(config.printer.clone());
        Ok(Agent {
            inner: Arc::new(Inner {
                config,
                journal,
                client,
                bus: EventBus::new(),
                health,
                pos_token,
                shutdown,
                outbox_wake: tokio::sync::Notify::new(),
                manager: crate::manager::Manager::default(),
                bound: std::sync::OnceLock::new(),
                early_events: std::sync::Mutex::new(std::collections::HashMap::new()),
                tender,
                clock_offset_ms: crate::failpoints::clock_offset_ms(),
                printing,
            }),
        })
    }

    /// The receipt printer (settings, state, print queue wake-up).
    pub fn printing(&self) -> &crate::printer::Printing {
        &self.inner.printing
    }

    /// Now, unix ms, as idempotency decisions see it (the wall clock; a test build may move it).
    pub fn now_ms(&self) -> i64 {
        till_journal::now_ms().saturating_add(self.inner.clock_offset_ms)
    }

    /// The effective configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The event bus.
    pub fn bus(&self) -> &EventBus {
        &self.inner.bus
    }

    /// Live health figures.
    pub fn health(&self) -> &Health {
        &self.inner.health
    }

    /// The shutdown signal shared by all background tasks.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// Records the address the local API is bound to (once, at start).
    pub fn set_bound_addr(&self, addr: std::net::SocketAddr) {
        let _ = self.inner.bound.set(addr);
    }

    /// The address the local API listens on: the bound one, else the configured one.
    pub fn listen_addr(&self) -> std::net::SocketAddr {
        self.inner.bound.get().copied().unwrap_or(self.inner.config.listen)
    }

    /// The gateway providers (Connect-E) this till is configured for.
    pub fn tender(&self) -> &crate::tender::Tender {
        &self.inner.tender
    }

    /// Manager PIN sessions.
    pub fn manager(&self) -> &crate::manager::Manager {
        &self.inner.manager
    }

    /// The POS token (shown to a logged-in manager and by `till-agent token`).
    pub fn pos_token(&self) -> &str {
        &self.inner.pos_token
    }

    /// Wakes the outbox worker.
    pub fn wake_outbox(&self) {
        self.inner.outbox_wake.notify_one();
    }

    /// Resolves when someone called [`Agent::wake_outbox`].
    pub async fn outbox_woken(&self) {
        self.inner.outbox_wake.notified().await
    }

    /// True when `token` is the POS token (constant-time comparison).
    pub fn check_pos_token(&self, token: &str) -> bool {
        constant_time_eq(token.as_bytes(), self.inner.pos_token.as_bytes())
    }

    /// Runs a synchronous journal call on the blocking pool.
    pub async fn journal<T, F>(&self, f: F) -> Result<T, AgentError>
    where
        T: Send + 'static,
        F: FnOnce(&Journal) -> Result<T, till_journal::JournalError> + Send + 'static,
    {
        let journal = self.inner.journal.clone();
        tokio::task::spawn_blocking(move || f(&journal))
            .await
            .map_err(|e| AgentError::Internal(format!("journal task failed: {e}")))?
            .map_err(AgentError::from)
    }

    /// The current pairing, read from the journal (so a `till-agent pair` from another process is
    /// seen without a restart).
    pub async fn pairing(&self) -> Result<Option<Pairing>, AgentError> {
        self.journal(|j| j.pairing()).await
    }

    /// The paired device id, or `NotPaired`.
    pub async fn device_id(&self) -> Result<String, AgentError> {
        self.pairing().await?.map(|p| p.device_id).ok_or(AgentError::NotPaired)
    }

    /// A SensePass client authenticated as the paired device.
    pub async fn device_client(&self) -> Result<(String, Client), AgentError> {
        let device = self.device_id().await?;
        let client = self.inner.client.with_credentials(Credentials::Device(device.clone()));
        Ok((device, client))
    }

    /// A SensePass client authenticated with a device ID that is not (yet) the paired one: pairing
    /// checks a typed-in device ID with it before storing it.
    pub fn device_client_for(&self, device_id: &str) -> Client {
        self.inner.client.with_credentials(Credentials::Device(device_id.to_string()))
    }

    /// A SensePass client authenticated with an API key (pairing).
    pub fn api_key_client(&self, api_key: &str) -> Client {
        self.inner
            .client
            .with_credentials(Credentials::ApiKey { api_key: api_key.to_string(), branch_number: None })
    }

    /// Records the result of a SensePass call for the offline indicator.
    pub fn note_reachability<T>(&self, result: &Result<T, till_sensepass::Error>) {
        // Only a failure to reach SensePass is "offline"; a call the client refused to build
        // (`Config`) says nothing about the network.
        let offline = matches!(result, Err(till_sensepass::Error::NotSent(_)));
        let h = &self.inner.health.offline_since_ms;
        if offline {
            let _ = h.compare_exchange(0, till_journal::now_ms(), Ordering::SeqCst, Ordering::SeqCst);
        } else if result.is_ok() || matches!(result, Err(till_sensepass::Error::Http { .. })) {
            h.store(0, Ordering::SeqCst);
        }
    }

    /// Marks SensePass unreachable (from now, if not already) or reachable.
    pub fn note_offline_if(&self, offline: bool) {
        let h = &self.inner.health.offline_since_ms;
        if offline {
            let _ = h.compare_exchange(0, till_journal::now_ms(), Ordering::SeqCst, Ordering::SeqCst);
        } else {
            h.store(0, Ordering::SeqCst);
        }
    }

    /// Publishes a connectivity change.
    pub fn set_socket_connected(&self, connected: bool) {
        self.inner.health.socket_connected.store(connected, Ordering::SeqCst);
        self.inner.bus.publish(AgentEvent::Connectivity(ConnectivityEvent { socket_connected: connected }));
    }

    // ------------------------------------------------------------------------------------------
    // Payments
    // ------------------------------------------------------------------------------------------

    /// `POST /api/transactions/init`: validate, journal, create at SensePass (spec §4.1).
    pub async fn start_payment(&self, body: Value, idempotency_key: Option<String>) -> Result<Started, AgentError> {
        let mut request = InitRequest::from_pos_json(body).map_err(AgentError::Invalid)?;
        if self.inner.health.recovering.load(Ordering::SeqCst) {
            return Err(AgentError::Recovering);
        }
        let (device, client) = self.device_client().await?;
        request.device_id = Some(device.clone());
        let order_id = order_id_of(request.pos_data.as_ref());
        let local_id = uuid::Uuid::new_v4().to_string();
        let request_json = serde_json::to_value(&request).map_err(|e| AgentError::Internal(e.to_string()))?;
        let new = NewPayment {
            local_id: local_id.clone(),
            device_id: device,
            order_id,
            idempotency_key,
            amount: request.amount,
            currency: request.currency,
            request_json,
            product_sum_mismatch: request.product_sum_mismatch(),
            setup: request.ready_for_payment == Some(false),
            now_ms: self.now_ms(),
        };
        // The live cart shown by products/update becomes this payment (spec §8.3) — when its
        // transaction still has the time the POS asks for. SensePass fixes a transaction's time-out
        // when it is created (a PATCH cannot change it), so a cart that has been open for a while
        // would leave the customer less time than `timeOut`: then the cart is cancelled and the
        // payment is a fresh transaction with the full time (docs/DECISIONS.md).
        let mut new = new;
        if !new.setup {
            let d = new.device_id.clone();
            if let Some(cart) = self.journal(move |j| j.open_setup(&d)).await? {
                if request.products.is_empty() {
                    // An init without products pays for the cart the customer is looking at.
                    request.products = cart_products(&cart);
                    new.request_json = serde_json::to_value(&request).map_err(|e| AgentError::Internal(e.to_string()))?;
                    new.product_sum_mismatch = request.product_sum_mismatch();
                }
                let left_ms = timeout_ms_of(&cart) - self.now_ms();
                let wanted_ms = i64::from(request.effective_timeout()) * 1000;
                if cart.phase == Phase::Created && cart.number.is_some() && left_ms >= wanted_ms - CART_TIME_SLACK_MS {
                    return self.pay_with_cart(cart, new, &client, &request).await;
                }
                tracing::info!(left_ms, wanted_ms, "the live cart's transaction has too little time left: a fresh payment replaces it");
            }
        }
        // 1. Journal first: the intent is durable before SensePass hears of it. A second pass
        // happens only when the first finds an earlier attempt that certainly never reached
        // SensePass (then a new attempt is allowed).
        for _ in 0..2 {
            let new = new.clone();
            match self.journal(move |j| j.begin_payment(new)).await? {
                Begin::Busy(open) => return Err(AgentError::Busy { number: open.number, local_id: open.local_id }),
                Begin::Existing(existing) => {
                    same_sale(&existing, request.amount, request.currency)?;
                    tracing::info!(local_id = %existing.local_id, "same order: attaching to the existing payment");
                    if !matches!(existing.phase, Phase::Intent | Phase::CreateUnknown) {
                        return Ok(Started::Existing(existing));
                    }
                    // An earlier attempt whose create outcome is unknown: settle it first.
                    let settled = self.reconcile_unknown(existing).await?;
                    if settled.phase != Phase::CreateFailed {
                        return Ok(Started::Existing(settled));
                    }
                }
                Begin::Started(record) => {
                    self.publish_record(&record, "local");
                    if !record.setup {
                        self.close_open_setup(&record.device_id).await?;
                    }
                    fail::fail_point!("payment::before_create", |_| crate::failpoints::crash("payment::before_create"));
                    // 2. The network call.
                    let result = client.init(&request).await;
                    self.note_reachability(&result);
                    fail::fail_point!("payment::after_create", |_| crate::failpoints::crash("payment::after_create"));
                    // 3. The outcome, journaled.
                    let record = self.record_create_outcome(record, result).await?;
                    return Ok(Started::New(record));
                }
            }
        }
        Err(AgentError::Uncertain("the earlier attempt for this order is still being settled; retry".into()))
    }

    /// Links a payment to the device's open Setup cart: the journal promotes the cart into the
    /// payment (one SQLite transaction, with the idempotency and busy checks), then SensePass gets
    /// the final cart with `readyForPayment: true`. If that PATCH fails the cart transaction is
    /// cancelled (journaled) so the customer never sees a stale cart, and the POS may retry the
    /// order as a fresh payment.
    async fn pay_with_cart(
        &self,
        cart: PaymentRecord,
        new: NewPayment,
        client: &Client,
        request: &InitRequest,
    ) -> Result<Started, AgentError> {
        let cart_id = cart.local_id.clone();
        let record = match self.journal(move |j| j.promote_setup(&cart_id, new)).await? {
            Begin::Busy(open) => return Err(AgentError::Busy { number: open.number, local_id: open.local_id }),
            Begin::Existing(existing) => {
                same_sale(&existing, request.amount, request.currency)?;
                return Ok(Started::Existing(existing));
            }
            Begin::Started(record) => record,
        };
        let number = record.number.clone().unwrap_or_default();
        tracing::info!(%number, "payment takes over the live cart transaction");
        let mut update = till_sensepass::models::UpdateRequest::from_init(request);
        update.ready_for_payment = Some(true);
        fail::fail_point!("payment::before_create", |_| crate::failpoints::crash("payment::before_create"));
        let result = client.update(&number, &update).await;
        self.note_reachability(&result);
        match result {
            Ok(tx) => Ok(Started::New(self.apply(tx, EventSource::Api).await?)),
            Err(e) => {
                tracing::warn!(%number, error = %e, "could not enable payment on the cart transaction; cancelling it");
                if let Err(c) = self.cancel(&number, "cart_promotion_failed").await {
                    tracing::warn!(%number, error = %c, "cancel of the cart transaction will be retried");
                }
                Err(AgentError::from(e))
            }
        }
    }

    /// Journals what SensePass answered to a create call.
    async fn record_create_outcome(
        &self,
        record: PaymentRecord,
        result: Result<Transaction, till_sensepass::Error>,
    ) -> Result<PaymentRecord, AgentError> {
        let local_id = record.local_id.clone();
        let now = till_journal::now_ms();
        match result {
            Ok(tx) => {
                let (number, status, raw) = (tx.number().to_string(), tx.status(), tx.raw.clone());
                let rec = self.journal(move |j| j.record_created(&local_id, &number, status, &raw, now)).await?;
                self.publish_record(&rec, "api");
                self.apply_early_events(rec).await
            }
            Err(e) if e.certainly_not_performed() || is_client_error(&e) => {
                let reason = e.to_string();
                let rec = self.journal(move |j| j.record_create_failed(&local_id, &reason, now)).await?;
                self.publish_record(&rec, "api");
                Err(AgentError::from(e))
            }
            Err(e) => {
                // Timeout, reset, 5xx, unreadable answer: SensePass may have created it.
                tracing::warn!(local_id = %record.local_id, error = %e, "create outcome unknown; reconciling");
                let reason = e.to_string();
                // The periodic re-read may have found the payment at SensePass while this call was
                // still waiting for its answer: then the outcome is known, not uncertain.
                let rec = self
                    .journal(move |j| match j.record_create_unknown(&local_id, &reason, now) {
                        Err(till_journal::JournalError::InvalidPhase { .. }) => j
                            .by_local_id(&local_id)?
                            .ok_or(till_journal::JournalError::NotFound { what: "payment", key: local_id }),
                        other => other,
                    })
                    .await?;
                if rec.phase != Phase::CreateUnknown {
                    tracing::info!(local_id = %rec.local_id, phase = ?rec.phase, "create outcome already settled by reconciliation");
                    return Ok(rec);
                }
                self.publish_record(&rec, "api");
                self.reconcile_unknown(rec).await
            }
        }
    }

    /// `POST /api/transactions/products/update` (spec §8.3): shows the live cart to the customer.
    /// The first call creates a "Setup" transaction (`readyForPayment: false`: visible, not
    /// payable); later calls PATCH it. Journaled like a payment, flagged `setup`.
    pub async fn update_cart(&self, mut body: Value) -> Result<PaymentRecord, AgentError> {
        if let Some(obj) = body.as_object_mut() {
            obj.insert("readyForPayment".into(), Value::Bool(false));
        }
        let mut request = InitRequest::from_pos_json(body).map_err(AgentError::Invalid)?;
        let (device, client) = self.device_client().await?;
        request.device_id = Some(device.clone());
        let d = device.clone();
        let open = self.journal(move |j| j.open_setup(&d)).await?;
        match open.and_then(|r| r.number.clone().map(|n| (r, n))) {
            Some((setup, number)) => {
                let update = till_sensepass::models::UpdateRequest::from_init(&request);
                let result = client.update(&number, &update).await;
                self.note_reachability(&result);
                let tx = result?;
                let request_json = serde_json::to_value(&request).map_err(|e| AgentError::Internal(e.to_string()))?;
                let (local_id, amount, mismatch, now) =
                    (setup.local_id.clone(), request.amount, request.product_sum_mismatch(), till_journal::now_ms());
                self.journal(move |j| j.update_cart(&local_id, amount, &request_json, mismatch, now)).await?;
                self.apply(tx, EventSource::Api).await
            }
            None => {
                let request_json = serde_json::to_value(&request).map_err(|e| AgentError::Internal(e.to_string()))?;
                let new = NewPayment {
                    local_id: uuid::Uuid::new_v4().to_string(),
                    device_id: device,
                    order_id: None,
                    idempotency_key: None,
                    amount: request.amount,
                    currency: request.currency,
                    request_json,
                    product_sum_mismatch: request.product_sum_mismatch(),
                    setup: true,
                    now_ms: till_journal::now_ms(),
                };
                let record = match self.journal(move |j| j.begin_payment(new)).await? {
                    Begin::Started(r) => r,
                    Begin::Busy(open) => return Err(AgentError::Busy { number: open.number, local_id: open.local_id }),
                    Begin::Existing(r) => return Ok(r),
                };
                let result = client.init(&request).await;
                self.note_reachability(&result);
                self.record_create_outcome(record, result).await
            }
        }
    }

    /// Before a real payment starts, an open Setup (cart display) transaction of the device is
    /// cancelled (journaled), so the customer never sees two payable requests.
    async fn close_open_setup(&self, device: &str) -> Result<(), AgentError> {
        let d = device.to_string();
        if let Some(setup) = self.journal(move |j| j.open_setup(&d)).await? {
            if let Some(number) = setup.number {
                if let Err(e) = self.cancel(&number, "cart_replaced_by_payment").await {
                    tracing::warn!(error = %e, "could not cancel the cart display transaction");
                }
            }
        }
        Ok(())
    }

    /// Applies a status event that arrived before `record`'s creation was journaled, if any.
    async fn apply_early_events(&self, record: PaymentRecord) -> Result<PaymentRecord, AgentError> {
        let early = match &record.number {
            Some(n) => self.inner.early_events.lock().unwrap_or_else(|e| e.into_inner()).remove(n),
            None => None,
        };
        match early {
            Some((_, tx, source)) => self.apply(tx, source).await,
            None => Ok(record),
        }
    }

    /// Finds out whether a create call with an unknown outcome created a transaction at SensePass,
    /// by searching the device's transactions around the intent's time for the same order.
    /// Found → adopted. Certainly absent (and old enough that no request can still be in flight)
    /// → marked failed. Otherwise the payment stays unknown and the call reports so.
    pub async fn reconcile_unknown(&self, record: PaymentRecord) -> Result<PaymentRecord, AgentError> {
        let (_, client) = self.device_client().await?;
        let at = |ms: i64| {
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        };
        let mut query = till_sensepass::models::FetchTransactions::between(
            at(record.created_at - 60_000),
            at(till_journal::now_ms() + 60_000),
        );
        if let Some(order) = &record.order_id {
            query.filter.push(till_sensepass::models::Filter::eq("posData.orderId", order.clone()));
        }
        let result = client.transactions(&query).await;
        self.note_reachability(&result);
        let page = match result {
            Ok(page) => page,
            Err(e) => return Err(AgentError::Uncertain(format!("cannot reconcile yet: {e}"))),
        };
        let sent_pos_data = record.request_json.get("posData").cloned();
        let found = page.data.into_iter().find(|tx| {
            tx.raw.get("posData").cloned() == sent_pos_data
                && tx.amount_minor().map(|m| m.minor == record.amount && m.currency == record.currency).unwrap_or(false)
        });
        let local_id = record.local_id.clone();
        let now = till_journal::now_ms();
        if let Some(tx) = found {
            let (number, status, raw) = (tx.number().to_string(), tx.status(), tx.raw.clone());
            tracing::info!(local_id = %local_id, number = %number, "reconciled: SensePass has the payment");
            let rec = self.journal(move |j| j.record_created(&local_id, &number, status, &raw, now)).await?;
            self.publish_record(&rec, "poll");
            return self.apply_early_events(rec).await;
        }
        if now - record.created_at > UNKNOWN_SETTLE.as_millis() as i64 {
            let rec = self
                .journal(move |j| j.record_create_failed(&local_id, "not found at SensePass after reconciliation", now))
                .await?;
            self.publish_record(&rec, "poll");
            return Ok(rec);
        }
        Err(AgentError::Uncertain("the payment is not visible at SensePass yet; retry with the same order".into()))
    }

    /// Waits until the payment is final (or failed to be created), re-reading SensePass after the
    /// timeout if no final event arrived. Returns the final record, or `Uncertain` when SensePass
    /// cannot tell us within the grace period.
    pub async fn wait_final(&self, local_id: &str) -> Result<PaymentRecord, AgentError> {
        let mut events = self.inner.bus.subscribe();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let id = local_id.to_string();
            let record = self
                .journal(move |j| j.by_local_id(&id))
                .await?
                .ok_or_else(|| AgentError::NotFound(format!("payment {local_id}")))?;
            // Over: a final status, never created, or closed by a manager as not paid.
            if !record.is_open() {
                return Ok(record);
            }
            let overdue_by = till_journal::now_ms() - timeout_ms_of(&record);
            if overdue_by > 0 {
                // No final event yet although the payment should have timed out: ask SensePass.
                if let Some(number) = record.number.clone() {
                    let _ = self.refresh(&number).await;
                } else if record.phase == Phase::CreateUnknown {
                    let _ = self.reconcile_unknown(record.clone()).await;
                }
                if overdue_by > SYNC_GRACE.as_millis() as i64 {
                    return Err(AgentError::Uncertain(format!(
                        "no final status from SensePass for payment {local_id}; ask GET /api/transactions/last"
                    )));
                }
            }
            // Sleep until this payment changes (or a lagged bus may have hidden it), or the tick.
            loop {
                tokio::select! {
                    ev = events.recv() => match ev {
                        Ok(AgentEvent::Status(s)) if s.local_id == local_id => break,
                        Ok(_) => continue,
                        Err(RecvError::Lagged(_)) => break,
                        Err(RecvError::Closed) => return Err(AgentError::Internal("event bus closed".into())),
                    },
                    _ = tick.tick() => break,
                    _ = self.inner.shutdown.cancelled() => return Err(AgentError::Internal("agent shutting down".into())),
                }
            }
        }
    }

    /// Re-reads one transaction from SensePass and applies it (source: poll).
    pub async fn refresh(&self, number: &str) -> Result<PaymentRecord, AgentError> {
        let (_, client) = self.device_client().await?;
        let result = client.transaction(number).await;
        self.note_reachability(&result);
        let tx = result?;
        self.apply(tx, EventSource::Poll).await
    }

    /// Applies an observed SensePass entity to the journal and, when it moved the payment
    /// forward, publishes it and starts what follows (payment commit on approval).
    pub async fn apply(&self, tx: Transaction, source: EventSource) -> Result<PaymentRecord, AgentError> {
        let number = tx.number().to_string();
        let status = tx.status();
        let raw = tx.raw.clone();
        let now = till_journal::now_ms();
        let source_name = source_name(source);
        fail::fail_point!("status::before_apply", |_| crate::failpoints::crash("status::before_apply"));
        // Refund confirmations only ever grow: an observation with fewer than the journal holds
        // is an old event (a 12 after a 13 would otherwise look like a new refund starting).
        let incoming_refunds = refund_confirmations(&tx);
        let stale = move |current: &PaymentRecord| {
            let held = current
                .entity_json
                .clone()
                .and_then(|e| Transaction::from_json(e).ok())
                .map(|t| refund_confirmations(&t))
                .unwrap_or(0);
            incoming_refunds < held
        };
        let found = self
            .journal(move |j| match j.apply_observation(&number, status, &raw, source, now, stale) {
                Ok(applied) => Ok(Some(applied)),
                Err(till_journal::JournalError::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            })
            .await?;
        let Some(applied) = found else {
            // The event beat the create call's answer: keep it until the creation is journaled.
            let number = tx.number().to_string();
            let mut early = self.inner.early_events.lock().unwrap_or_else(|e| e.into_inner());
            early.retain(|_, (at, _, _)| at.elapsed() < Duration::from_secs(120));
            early.insert(number.clone(), (std::time::Instant::now(), tx, source));
            return Err(AgentError::NotFound(format!("transaction {number} (held until its creation is journaled)")));
        };
        if applied.transition == Transition::Advance {
            tracing::info!(number = %tx.number(), status = %status, source = source_name, "status advanced");
            self.publish_record(&applied.record, source_name);
            if status == Status::Approved {
                self.schedule_commit(&applied.record, &tx).await?;
                crate::printer::on_approved(self, &applied.record.local_id).await;
            }
        } else if applied.transition == Transition::Same {
            self.publish_record(&applied.record, source_name);
        }
        Ok(applied.record)
    }

    /// Queues the payment commit (GET commitLink) of an approved payment in the outbox.
    async fn schedule_commit(&self, record: &PaymentRecord, tx: &Transaction) -> Result<(), AgentError> {
        let Some(link) = tx.payment_commit().and_then(|c| c.commit_link.clone()) else {
            return Ok(());
        };
        if tx.payment_commit().and_then(|c| c.is_payment_committed).unwrap_or(false) {
            return Ok(());
        }
        let op = NewOperation {
            kind: OpKind::Commit,
            transaction_local_id: Some(record.local_id.clone()),
            op_key: format!("commit:{}", tx.number()),
            amount: None,
            payload: json!({ "commitLink": link, "transactionNumber": tx.number() }),
            now_ms: till_journal::now_ms(),
        };
        self.journal(move |j| j.enqueue(op)).await?;
        self.wake_outbox();
        Ok(())
    }

    /// Cancels a pending payment at SensePass (journaled as an outbox operation first).
    /// `reason` is journaled with the intent.
    pub async fn cancel(&self, number: &str, reason: &str) -> Result<Value, AgentError> {
        let n = number.to_string();
        let record = self
            .journal(move |j| j.by_number(&n))
            .await?
            .ok_or_else(|| AgentError::NotFound(format!("transaction {number}")))?;
        let op = NewOperation {
            kind: OpKind::Cancel,
            transaction_local_id: Some(record.local_id.clone()),
            op_key: format!("cancel:{}:{}", number, uuid::Uuid::new_v4()),
            amount: None,
            payload: json!({ "transactionNumber": number, "reason": reason }),
            now_ms: till_journal::now_ms(),
        };
        let op = self.journal(move |j| j.enqueue(op)).await?;
        crate::outbox::deliver_now(self, op).await
    }

    /// Cancels the payment an abandoned sync call was waiting for (the POS hung up).
    pub async fn cancel_abandoned(&self, local_id: String) {
        let id = local_id.clone();
        let record = match self.journal(move |j| j.by_local_id(&id)).await {
            Ok(Some(r)) => r,
            _ => return,
        };
        if !record.is_open() {
            return;
        }
        let Some(number) = record.number.clone() else {
            tracing::warn!(%local_id, "POS hung up before SensePass answered; the reconciler will settle it");
            return;
        };
        tracing::info!(%number, "POS closed the sync connection; cancelling the pending payment");
        match self.cancel(&number, "pos_disconnected").await {
            Ok(_) => {}
            Err(e) => tracing::warn!(%number, error = %e, "cancel after POS disconnect failed"),
        }
    }

    /// Starts a refund: validates, journals it in the outbox under the refund cap, and tries to
    /// deliver it at once. Returns the SensePass answer, or `None` when it was queued.
    pub async fn refund(&self, body: Value, idempotency_key: Option<String>) -> Result<RefundOutcome, AgentError> {
        let number = body.get("transactionNumber").and_then(Value::as_str).map(str::to_string);
        let Some(number) = number.filter(|n| !n.is_empty()) else {
            return Err(AgentError::invalid("transactionNumber", "is required"));
        };
        let op_key = idempotency_key.map(|k| format!("refund:{k}"));
        if let Some(key) = op_key.clone() {
            if let Some(op) = self.journal(move |j| j.operation_by_key(&key)).await? {
                same_refund(&op, &number, &body)?;
                return self.refund_replay(op).await;
            }
        }
        let n = number.clone();
        let record = self
            .journal(move |j| j.by_number(&n))
            .await?
            .ok_or_else(|| AgentError::NotFound(format!("transaction {number}")))?;
        if !record.status.map(Status::was_captured).unwrap_or(false) {
            return Err(AgentError::Conflict(format!("transaction {number} was not paid; nothing to refund")));
        }
        let id = record.local_id.clone();
        let (refunded, queued) = self.journal(move |j| j.refunded_total(&id)).await?;
        let remaining = record.amount.checked_sub(refunded).and_then(|r| r.checked_sub(queued));
        let remaining = remaining.map_err(|e| AgentError::Internal(e.to_string()))?;
        let amount = refund_amount(&body, record.currency, remaining)?;
        let op = NewOperation {
            kind: OpKind::Refund,
            transaction_local_id: Some(record.local_id.clone()),
            op_key: op_key.unwrap_or_else(|| format!("refund:{}", uuid::Uuid::new_v4())),
            amount: Some(amount),
            payload: json!({
                "transactionNumber": number,
                "isPartial": amount < record.amount,
                "amountMinor": amount.0,
                "currency": record.currency.code(),
            }),
            now_ms: till_journal::now_ms(),
        };
        let captured = record.amount;
        let op = self.journal(move |j| j.enqueue_refund(op, captured)).await?;
        let id = op.id;
        let outcome = self.refund_outcome(op).await;
        if matches!(outcome, Ok(RefundOutcome::Answered(_) | RefundOutcome::Queued(_))) {
            crate::printer::on_refund(self, &record.local_id, id).await;
        }
        // The first definite answer is kept, so a retry with the same key gets it again.
        let first = match &outcome {
            Ok(RefundOutcome::Answered(body)) => Some(json!({ "status": 200, "body": body })),
            Ok(_) | Err(AgentError::Uncertain(_) | AgentError::Unreachable(_) | AgentError::Internal(_)) => None,
            Err(e) => {
                let (status, body) = e.status_and_body();
                Some(json!({ "status": status.as_u16(), "body": body }))
            }
        };
        if let Some(answer) = first {
            self.journal(move |j| j.set_op_answer(id, &answer)).await?;
        }
        outcome
    }

    /// A refund retried with the Idempotency-Key of an earlier one: the first definite answer
    /// again (same status, same body); a refund that was queued (202) and has been delivered
    /// since answers SensePass's refund answer; one still waiting is tried again or reported
    /// queued.
    async fn refund_replay(&self, op: Operation) -> Result<RefundOutcome, AgentError> {
        let stored = op.answer.as_ref().map(|a| {
            let status = a.get("status").and_then(Value::as_u64).and_then(|s| u16::try_from(s).ok()).unwrap_or(200);
            (status, a.get("body").cloned().unwrap_or(Value::Null))
        });
        if let Some((status, body)) = stored {
            return Ok(RefundOutcome::Replay { status, body });
        }
        match (&op.state, &op.result) {
            (till_journal::OpState::Delivered, Some(result)) => Ok(RefundOutcome::Replay { status: 200, body: result.clone() }),
            _ => self.refund_outcome(op).await,
        }
    }

    /// Checks the refund queue limits with `op` added: `Ok(Err(reason))` when past a limit.
    async fn check_refund_queue(&self, op: &Operation) -> Result<Result<(), String>, AgentError> {
        let limits = self.inner.config.refund_queue;
        let queued: Vec<Operation> = self
            .journal(|j| j.operations(Some(till_journal::OpState::Pending), 100_000, 0))
            .await?
            .into_iter()
            .filter(|o| o.kind == OpKind::Refund && o.id != op.id)
            .collect();
        let count = queued.len() as u64 + 1;
        let total: i64 = queued.iter().filter_map(|o| o.amount).map(|a| a.0).sum::<i64>() + op.amount.map(|a| a.0).unwrap_or(0);
        let oldest = queued.iter().map(|o| o.created_at).min();
        let now = till_journal::now_ms();
        if count > limits.max_count {
            return Ok(Err(format!("{} refunds already wait (limit {})", count - 1, limits.max_count)));
        }
        if total > limits.max_total_minor {
            return Ok(Err(format!("queued refunds would total {total} minor units (limit {})", limits.max_total_minor)));
        }
        if let Some(oldest) = oldest {
            if now - oldest > limits.max_age.as_millis() as i64 {
                return Ok(Err(format!("a refund has waited longer than {} hours", limits.max_age.as_secs() / 3600)));
            }
        }
        Ok(Ok(()))
    }

    /// Sends a refund operation that is still waiting, or answers what it became. The same
    /// Idempotency-Key as an earlier refund lands here with that earlier operation.
    async fn refund_outcome(&self, op: Operation) -> Result<RefundOutcome, AgentError> {
        match op.state {
            till_journal::OpState::Pending => match crate::outbox::deliver_now(self, op.clone()).await {
                Ok(answer) => Ok(RefundOutcome::Answered(answer)),
                Err(AgentError::Unreachable(_)) => {
                    // Certainly not performed: it may still be refused if the queue is full.
                    if let Err(reason) = self.check_refund_queue(&op).await? {
                        let (id, now, r) = (op.id, till_journal::now_ms(), reason.clone());
                        self.journal(move |j| j.mark_failed(id, &format!("not queued: {r}"), now)).await?;
                        return Err(AgentError::QueueFull(reason));
                    }
                    tracing::warn!(operation = op.id, "SensePass unreachable: refund queued");
                    Ok(RefundOutcome::Queued(op))
                }
                Err(AgentError::Uncertain(_)) => Ok(RefundOutcome::Queued(op)),
                Err(e) => Err(e),
            },
            till_journal::OpState::InFlight => Ok(RefundOutcome::Queued(op)),
            till_journal::OpState::Delivered | till_journal::OpState::Failed => Ok(RefundOutcome::Existing(op)),
        }
    }

    /// Publishes a record's state on the event bus.
    pub fn publish_record(&self, record: &PaymentRecord, source: &str) {
        self.inner.bus.publish(AgentEvent::Status(status_event(record, source)));
    }

    /// The SensePass entity of a record, or a minimal stand-in before SensePass answered.
    ///
    /// A declined or failed payment also carries `declineReason: {code, message}` (either may be
    /// null; the whole field is null when SensePass gave no reason), read in one place
    /// ([`Transaction::decline_reason`]) whatever spelling SensePass used.
    pub fn entity_of(record: &PaymentRecord) -> Value {
        let mut entity = Self::entity_as_observed(record);
        // A payment a manager closed as not paid (SensePass no longer knows it: 404 to a look-up
        // and to a cancel) is over for the POS too. Its last observed SensePass status (e.g.
        // "Waiting For Tap") would keep a POS polling `/last` forever, so the POS reads it in
        // SensePass's own vocabulary for "ended, no money taken" — `Transaction Cancel` — with
        // `closedNotPaid` and the manager's resolution to tell it apart from a real cancel.
        if record.status_key() == "closed" {
            if let Some(obj) = entity.as_object_mut() {
                obj.insert("status".into(), json!(Status::Cancelled.code()));
                obj.insert("statusName".into(), json!(Status::Cancelled.display_name()));
                obj.insert("closedNotPaid".into(), json!(true));
                obj.insert("resolution".into(), json!(record.resolution));
            }
        }
        entity
    }

    /// The entity as SensePass last reported it (or, before it numbered the payment, what the
    /// journal knows), with the decline reason read out of it.
    fn entity_as_observed(record: &PaymentRecord) -> Value {
        if let Some(entity) = &record.entity_json {
            let mut entity = entity.clone();
            if matches!(record.status, Some(Status::Declined | Status::Failed)) {
                let reason = Transaction::from_json(entity.clone()).ok().and_then(|t| t.decline_reason());
                if let Some(obj) = entity.as_object_mut() {
                    obj.insert("declineReason".into(), serde_json::to_value(reason).unwrap_or(Value::Null));
                }
            }
            return entity;
        }
        json!({
            "TransactionNumber": record.number,
            "status": Value::Null,
            "statusName": phase_name(record.phase),
            "amount": till_core::money::minor_to_major_string(record.amount, record.currency),
            "currency": record.currency.code(),
            "posData": record.request_json.get("posData").cloned().unwrap_or(Value::Null),
            "localId": record.local_id,
        })
    }

    /// Start-up recovery: every payment that is not final and every payment with an unknown
    /// create outcome is re-read from SensePass before new payments are taken.
    pub async fn recover(&self) {
        let open = match needing_resync(self).await {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "cannot read open payments");
                Vec::new()
            }
        };
        if !open.is_empty() {
            tracing::info!(count = open.len(), "reconciling open payments after start");
        }
        for record in open {
            self.resync_one(record).await;
        }
        // Operations a crash interrupted mid-send: their outcome is unknown, so they go back to
        // the queue marked uncertain, and the sender checks SensePass before re-sending.
        let now = till_journal::now_ms();
        let requeued = self
            .journal(move |j| {
                let mut n = 0;
                for op in j.operations(Some(till_journal::OpState::InFlight), 10_000, 0)? {
                    if op.kind == OpKind::Credit {
                        // Never re-sent: its token is not kept (crate::credit).
                        continue;
                    }
                    j.reschedule(op.id, op.attempts, now, "uncertain: interrupted by a restart")?;
                    n += 1;
                }
                Ok(n)
            })
            .await;
        match requeued {
            Ok(n) if n > 0 => tracing::info!(count = n, "re-queued operations interrupted by a restart"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot re-queue interrupted operations"),
        }
        self.wake_outbox();
        self.inner.health.recovering.store(false, Ordering::SeqCst);
    }

    /// Re-reads one open payment (poll) or reconciles an unknown create.
    pub async fn resync_one(&self, record: PaymentRecord) {
        let result = match (&record.number, record.phase) {
            (_, Phase::Intent) | (_, Phase::CreateUnknown) => self.reconcile_unknown(record.clone()).await.map(|_| ()),
            (Some(number), _) => self.refresh(number).await.map(|_| ()),
            (None, _) => Ok(()),
        };
        if let Err(e) = result {
            tracing::debug!(local_id = %record.local_id, error = %e, "resync deferred");
        }
    }
}

/// What a refund request became.
#[derive(Debug)]
pub enum RefundOutcome {
    /// SensePass answered (approved or declined); the body is SensePass's.
    Answered(Value),
    /// SensePass is unreachable or the outcome is uncertain: queued for delivery.
    Queued(Operation),
    /// The idempotency key matched an earlier refund.
    Existing(Operation),
    /// The idempotency key matched an earlier refund whose answer is known: that answer again.
    Replay {
        /// The HTTP status the first call got.
        status: u16,
        /// The body the first call got.
        body: Value,
    },
}

/// How many refunds SensePass lists in an entity's confirmations.
fn refund_confirmations(tx: &Transaction) -> usize {
    tx.confirmations().iter().filter(|c| c.is_refund()).count()
}

/// Payments whose state must be re-read: those still open, and those with a refund in progress
/// (status 12 is transient; its outcome may have been missed).
pub async fn needing_resync(agent: &Agent) -> Result<Vec<PaymentRecord>, AgentError> {
    agent
        .journal(|j| {
            let mut list = j.open_payments()?;
            list.extend(j.refunds_processing()?);
            Ok(list)
        })
        .await
}

/// The POS's order id: `posData.orderId` (string or number).
pub fn order_id_of(pos_data: Option<&Value>) -> Option<String> {
    match pos_data?.get("orderId")? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The refund amount in minor units: the whole remainder for a full refund, otherwise
/// `refundAmount` in major units (or minor units with `isCent: true`), per docs/DECISIONS.md.
///
/// A `refundAmount` without `isPartial: true` is never read as "refund everything": it must equal
/// what is left to refund (then it is that full refund), otherwise the body is a 400 naming both
/// fields — a POS that forgot `isPartial` must not refund the whole payment by accident.
fn refund_amount(body: &Value, currency: Currency, remaining: Minor) -> Result<Minor, AgentError> {
    let partial = body.get("isPartial").and_then(Value::as_bool).unwrap_or(false);
    let is_cent = body.get("isCent").and_then(Value::as_bool).unwrap_or(false);
    let given = body.get("refundAmount").filter(|v| !v.is_null());
    let amount = match given {
        Some(Value::Number(n)) if is_cent => till_core::money::minor_json_number(n).ok(),
        Some(Value::Number(n)) => till_core::money::major_json_number_to_minor(n, currency).ok(),
        Some(Value::String(s)) if !is_cent => till_core::money::parse_major(s, currency).ok(),
        _ => None,
    };
    if !partial {
        if !remaining.is_positive() {
            return Err(AgentError::RefundCap { remaining: remaining.0.max(0) });
        }
        return match (given, amount) {
            (None, _) => Ok(remaining),
            (Some(_), Some(a)) if a == remaining => Ok(remaining),
            (Some(_), _) => {
                let mut p = till_core::InvalidParameters::new();
                p.push(
                    "refundAmount",
                    format!(
                        "without isPartial: true a refund is of the whole remaining amount ({} minor units); \
                         send isPartial: true for a partial refund, or leave refundAmount out",
                        remaining.0
                    ),
                );
                p.push("isPartial", "must be true when refundAmount is less than the remaining amount");
                Err(AgentError::Invalid(p))
            }
        };
    }
    match amount {
        Some(a) if a.is_positive() => {
            if a > remaining {
                Err(AgentError::RefundCap { remaining: remaining.0.max(0) })
            } else {
                Ok(a)
            }
        }
        Some(_) => Err(AgentError::invalid("refundAmount", "must be greater than 0")),
        None => Err(AgentError::invalid(
            "refundAmount",
            "is required for a partial refund: a number in major units (or minor units with isCent: true)",
        )),
    }
}

/// The products of a live cart as journaled by `products/update` (the request as sent to
/// SensePass, minor units), read back through the same validation as a POS body.
fn cart_products(cart: &PaymentRecord) -> Vec<till_core::Product> {
    let mut body = cart.request_json.clone();
    if let Some(obj) = body.as_object_mut() {
        obj.insert("isCent".into(), Value::Bool(true));
    }
    InitRequest::from_pos_json(body).map(|r| r.products).unwrap_or_default()
}

/// A replay (same order id or Idempotency-Key) must ask for the same money as the payment it
/// attaches to; otherwise it is another sale under a reused key, refused naming the original.
fn same_sale(existing: &PaymentRecord, amount: Minor, currency: Currency) -> Result<(), AgentError> {
    if existing.amount == amount && existing.currency == currency {
        return Ok(());
    }
    Err(AgentError::IdempotencyMismatch {
        number: existing.number.clone(),
        local_id: existing.local_id.clone(),
        amount_minor: existing.amount.0,
        currency: existing.currency.code().to_string(),
    })
}

/// A refund retried with its Idempotency-Key must name the same transaction and, when partial,
/// the same amount; otherwise the key is being reused for another refund: refused, naming the
/// original.
fn same_refund(op: &Operation, number: &str, body: &Value) -> Result<(), AgentError> {
    let original = op.payload.get("transactionNumber").and_then(Value::as_str).unwrap_or_default();
    let currency = op.payload.get("currency").and_then(Value::as_str).and_then(|c| Currency::from_code(c).ok());
    let partial = body.get("isPartial").and_then(Value::as_bool).unwrap_or(false);
    let asked = match (partial, currency) {
        (true, Some(c)) => refund_amount(body, c, Minor(i64::MAX)).ok(),
        _ => None,
    };
    let other_amount = matches!((asked, op.amount), (Some(a), Some(b)) if a != b);
    if original == number && !other_amount {
        return Ok(());
    }
    Err(AgentError::IdempotencyMismatch {
        number: Some(original.to_string()),
        local_id: op.transaction_local_id.clone().unwrap_or_default(),
        amount_minor: op.amount.map(|a| a.0).unwrap_or(0),
        currency: currency.map(|c| c.code().to_string()).unwrap_or_default(),
    })
}

/// True for a 4xx from SensePass: it looked at the request and refused it, so nothing was created.
fn is_client_error(e: &till_sensepass::Error) -> bool {
    matches!(e, till_sensepass::Error::Http { status, .. } if (400..500).contains(status))
}

/// How much less time than the POS's `timeOut` a live cart's transaction may have left and still
/// become the payment (a cart promoted within a minute of its start keeps its QR on the
/// customer's phone); with less, the payment is a fresh transaction.
const CART_TIME_SLACK_MS: i64 = 60_000;

/// When the payment times out at SensePass, unix ms: `timeoutDate` if known, else creation +
/// the requested `timeOut` (default 600 s, docs/DECISIONS.md).
pub fn timeout_ms_of(record: &PaymentRecord) -> i64 {
    let from_entity = record
        .entity_json
        .as_ref()
        .and_then(|e| e.get("timeoutDate"))
        .and_then(Value::as_str)
        .and_then(|s| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok())
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64);
    from_entity.unwrap_or_else(|| {
        let secs = record.request_json.get("timeOut").and_then(Value::as_i64).unwrap_or(600);
        record.created_at + secs * 1000
    })
}

fn source_name(source: EventSource) -> &'static str {
    match source {
        EventSource::Api => "api",
        EventSource::Socket => "socket",
        EventSource::Poll => "poll",
        EventSource::Local => "local",
    }
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Intent => "Pending Creation",
        Phase::Created => "Created",
        Phase::CreateFailed => "Creation Failed",
        Phase::CreateUnknown => "Creation Outcome Unknown",
    }
}

/// The bus event for a record.
pub fn status_event(record: &PaymentRecord, source: &str) -> StatusEvent {
    let status_key = record.status_key().to_string();
    StatusEvent {
        local_id: record.local_id.clone(),
        transaction_number: record.number.clone(),
        status: record.status.map(Status::code),
        // A payment a manager closed (no outcome, SensePass does not know it) is over for the
        // screens too, unless SensePass reported it since.
        is_final: record.status.map(Status::is_final).unwrap_or(record.phase == Phase::CreateFailed)
            || (record.resolved_at.is_some() && !record.is_open()),
        status_key,
        source: source.to_string(),
        transaction: record.entity_json.clone(),
    }
}

/// The POS token: generated once (32 random bytes, hex), kept in the journal's settings, whose
/// file is mode 0600. Called at pairing, by `till-agent token` and at start, so the token exists
/// whichever comes first.
pub fn ensure_pos_token(journal: &Journal) -> Result<String, AgentError> {
    if let Some(t) = journal.setting("pos_token")? {
        return Ok(t);
    }
    let bytes: [u8; 32] = rand::random();
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    journal.set_setting("pos_token", &token)?;
    Ok(token)
}

/// Compares secrets without an early exit that would leak their length of common prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
