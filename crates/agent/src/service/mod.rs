//! The orchestrator of SensePass payments, made durable, and the agent's composition root.
//!
//! [`Agent`] owns what every flow shares — the configuration, the journal, the SensePass client,
//! the event bus, the health figures, the providers behind the gateway seam, the printer — and
//! is built once ([`Agent::new`]). Its methods live in one module per concern:
//!
//! - [`payments`]: create a payment (validate → journal intent → SensePass → journal outcome),
//!   the live cart, the lost-create-answer reconciliation, the sync wait.
//! - [`observation`]: status observations (API answers, socket events, polls) through the one
//!   transition rule, the commit scheduled on approval, start-up recovery.
//! - [`money_out`]: cancels and refunds, journaled in the outbox first and delivered by
//!   [`crate::outbox`] (which sees the agent only through [`crate::outbox::OutboxHost`]).
//! - [`health`]: reachability and socket figures, the pairing and its SensePass clients, the
//!   POS token.
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

mod health;
mod money_out;
mod observation;
mod payments;

pub use health::{ensure_pos_token, Health};
pub use money_out::RefundOutcome;
pub use observation::{lines_of, needing_resync, products_of, status_event};
pub use payments::{order_id_of, timeout_ms_of, Started};

use crate::config::Config;
use crate::error::AgentError;
use crate::events::EventBus;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use till_journal::{EventSource, Journal};
use till_sensepass::{Client, ClientConfig, Credentials, Transaction};
use tokio_util::sync::CancellationToken;

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

    /// Wakes the outbox worker.
    pub fn wake_outbox(&self) {
        self.inner.outbox_wake.notify_one();
    }

    /// Resolves when someone called [`Agent::wake_outbox`].
    pub async fn outbox_woken(&self) {
        self.inner.outbox_wake.notified().await
    }

    /// Runs a synchronous journal call on the blocking pool.
    pub async fn journal<T, F>(&self, f: F) -> Result<T, AgentError>
    where
        T: Send + 'static,
        F: FnOnce(&Journal) -> Result<T, till_journal::JournalError> + Send + 'static,
    {
        crate::journal_task::run(&self.inner.journal, f).await
    }
}

/// The outbox's view of the agent: the handles it needs, and the observation path a delivery
/// ends with (a refund or cancel is followed by a re-read of the transaction).
#[async_trait::async_trait]
impl crate::outbox::OutboxHost for Agent {
    fn journal_handle(&self) -> &Journal {
        &self.inner.journal
    }
    fn bus(&self) -> &EventBus {
        Agent::bus(self)
    }
    fn shutdown_token(&self) -> &CancellationToken {
        Agent::shutdown_token(self)
    }
    async fn outbox_woken(&self) {
        Agent::outbox_woken(self).await
    }
    fn wake_outbox(&self) {
        Agent::wake_outbox(self)
    }
    fn http_timeout(&self) -> Duration {
        self.inner.config.http_timeout
    }
    async fn device_client(&self) -> Result<(String, Client), AgentError> {
        Agent::device_client(self).await
    }
    fn note_offline_if(&self, offline: bool) {
        Agent::note_offline_if(self, offline)
    }
    async fn refresh(&self, number: &str) -> Result<till_journal::PaymentRecord, AgentError> {
        Agent::refresh(self, number).await
    }
    async fn apply(&self, tx: Transaction, source: EventSource) -> Result<till_journal::PaymentRecord, AgentError> {
        Agent::apply(self, tx, source).await
    }
}
