//! The event bus: every journaled status change, fanned out to the UI's event stream and to
//! sync callers waiting for a final status.
//!
//! A `tokio::sync::broadcast` channel: slow subscribers lose old events (they get `Lagged`) rather
//! than slowing the payment path, and waiters always re-read the journal after a wake-up, so a lost
//! event costs latency, never correctness.

use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;

/// One status change as seen by subscribers.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusEvent {
    /// Our local id of the payment.
    pub local_id: String,
    /// SensePass TransactionNumber, once known.
    pub transaction_number: Option<String>,
    /// Numeric SensePass status, if SensePass has answered.
    pub status: Option<u8>,
    /// Short status key (`approved`, `waiting`, …) or the journal phase before creation.
    pub status_key: String,
    /// True when the payment reached a final status.
    pub is_final: bool,
    /// Where the change came from: `api`, `socket`, `poll` or `local`.
    pub source: String,
    /// The latest SensePass entity, when there is one.
    pub transaction: Option<Value>,
    /// The payment's lines with their totals, computed by the agent (the screens show these and
    /// never add up a line themselves).
    pub lines: Vec<till_receipts::ReceiptLine>,
}

/// Connection state changes, for the UI's offline banner.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectivityEvent {
    /// Socket.IO connected to SensePass.
    pub socket_connected: bool,
}

/// Anything published on the bus.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum AgentEvent {
    /// A payment's status changed.
    Status(StatusEvent),
    /// The SensePass connection changed.
    Connectivity(ConnectivityEvent),
    /// A payment behind the gateway seam (Connect-E, Acquired) changed: created, paid, declined,
    /// its amount changed with the cart, money-out. The payment resource of
    /// `GET /api/agent/payments/{id}`.
    Payment(Value),
    /// An outbox operation changed state (queued, delivered, failed).
    Operation {
        /// Operation id.
        id: i64,
        /// Its new state.
        state: String,
    },
}

impl AgentEvent {
    /// SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            AgentEvent::Status(_) => "status",
            AgentEvent::Connectivity(_) => "connectivity",
            AgentEvent::Operation { .. } => "operation",
            AgentEvent::Payment(_) => "payment",
        }
    }
}

/// The bus; cheap to clone.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<AgentEvent>,
}

impl EventBus {
    /// A bus that keeps the last 1024 events for slow subscribers.
    pub fn new() -> EventBus {
        let (tx, _) = broadcast::channel(1024);
        EventBus { tx }
    }

    /// Publishes; having no subscriber is fine.
    pub fn publish(&self, event: AgentEvent) {
        let _ = self.tx.send(event);
    }

    /// A new subscription from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<AgentEvent> {
        self.tx.subscribe()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new()
    }
}
