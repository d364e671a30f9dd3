//! # till-fleet-protocol
//!
//! What a till and the fleet server say to each other, as plain serde types, so both sides
//! compile against one definition: enrolment ([`EnrolRequest`] → [`EnrolResponse`]) and
//! replication of the till's journal change feed ([`Batch`] → [`BatchAck`] or [`Refusal`]).
//!
//! What it is not: no HTTP client or server, no SQL, no provider JSON. Rows are provider-neutral:
//! the agent maps its journal (and any provider entity it holds) to these shapes at its edge.
//!
//! ## Replication contract
//!
//! A till numbers every change of its journal with a sequence number that only grows. It sends
//! batches saying "these are all my changes with `after < seq <= through`" (a row changed several
//! times in that range is sent once, in its newest state). The fleet keeps, per till, the highest
//! sequence number applied (its *cursor*) and:
//! - applies a batch whose `after` is at most its cursor, skipping changes it already has, in one
//!   database transaction, and answers [`BatchAck`] with the new cursor;
//! - refuses a batch whose `after` is beyond its cursor ([`RefusalKind::Gap`]): changes would be
//!   missing; the till resends from the cursor in the refusal;
//! - refuses a batch entirely at or below its cursor ([`RefusalKind::Replay`]): nothing changes;
//!   the till carries on from the cursor in the refusal.
//!
//! Money is integer minor units with an ISO currency code; times are unix milliseconds.

#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST`: a till enrols with a one-time code.
pub const ENROL_PATH: &str = "/api/v1/enrol";
/// `POST`: a till sends a [`Batch`].
pub const BATCH_PATH: &str = "/api/v1/replication/batch";
/// `GET`: a till asks for its cursor ([`CursorResponse`]).
pub const CURSOR_PATH: &str = "/api/v1/replication/cursor";

/// Most changes a batch may carry; the fleet refuses larger ones (bounded memory on both sides).
pub const MAX_BATCH_CHANGES: usize = 1000;

/// Whether `channel` may be reported as a till's update channel: 1 to 32 ASCII letters, digits or
/// `-`. The fleet refuses a batch with any other; the agent sends none rather than such a one, so a
/// misconfigured channel name never stops a till's replication.
pub fn is_valid_channel(channel: &str) -> bool {
    (1..=32).contains(&channel.len()) && channel.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A till's enrolment request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    /// The one-time code the administrator handed out (it names the store).
    pub code: String,
    /// The till's name within its store (e.g. "Till 2"); unique per store.
    pub till_name: String,
    /// The agent's version, shown on the dashboard.
    pub version: String,
}

/// The till's identity, answered once on enrolment.
#[derive(Clone, Serialize, Deserialize)]
pub struct EnrolResponse {
    /// The till's id: the key of all its rows at the fleet.
    pub till_id: Uuid,
    /// The store the code belonged to.
    pub store: String,
    /// The till's name.
    pub till_name: String,
    /// The till's secret, sent as `Authorization: Bearer <till_id>.<secret>`. Shown only here;
    /// the fleet keeps only its hash.
    pub secret: String,
}

impl std::fmt::Debug for EnrolResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrolResponse")
            .field("till_id", &self.till_id)
            .field("store", &self.store)
            .field("till_name", &self.till_name)
            .finish_non_exhaustive()
    }
}

/// The fleet's cursor for the asking till.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct CursorResponse {
    /// Highest sequence number applied (0 when none).
    pub cursor: i64,
}

/// A batch of changes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// The sending till; must be the authenticated till (a till cannot write another's rows).
    pub till_id: Uuid,
    /// The batch holds every change after this sequence number...
    pub after: i64,
    /// ...up to and including this one (`after` for a heartbeat without changes).
    pub through: i64,
    /// The till's state, for the dashboard.
    pub agent: AgentState,
    /// The changes, in increasing `seq`.
    pub changes: Vec<ChangeRecord>,
}

/// What the dashboard shows of a till beyond its rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentState {
    /// Agent version.
    pub version: String,
    /// Outbox operations waiting to be sent to the provider.
    pub queued_operations: i64,
    /// Changes not yet acknowledged by the fleet when the batch was read.
    pub changes_behind: i64,
    /// The update channel the till follows (`stable`, `pilot`, …), so that a chain sees which
    /// tills take a roll-out first. Absent from agents older than this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

/// One change: a row's state at sequence number `seq`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeRecord {
    /// The sequence number.
    pub seq: i64,
    /// The row's id in its journal table.
    pub row_id: i64,
    /// The row, or `Deleted`.
    pub row: Row,
}

/// A row of one of the replicated tables.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "table", rename_all = "snake_case")]
pub enum Row {
    /// A payment.
    Payment(PaymentRow),
    /// A status observation of a payment.
    StatusEvent(StatusEventRow),
    /// An outbox operation.
    Operation(OperationRow),
    /// A payment of a provider behind the gateway seam (Connect-E, Acquired): the journal keeps
    /// these in a table of their own, so their row ids are their own too.
    GatewayPayment(PaymentRow),
    /// A capture, refund or void of a gateway payment.
    GatewayOperation(OperationRow),
    /// The row was deleted from the till's journal.
    Deleted {
        /// Which table.
        of: Table,
    },
}

/// The replicated tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    /// Payments.
    Payment,
    /// Status events.
    StatusEvent,
    /// Outbox operations.
    Operation,
    /// Gateway payments.
    GatewayPayment,
    /// Gateway operations.
    GatewayOperation,
}

/// A payment, provider-neutral.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentRow {
    /// The till's own key (UUID).
    pub local_id: String,
    /// Which provider took it (e.g. `sensepass`).
    pub provider: String,
    /// The provider's transaction number, once known.
    pub number: Option<String>,
    /// The provider device (terminal, QR tag) it ran on.
    pub device_id: String,
    /// The POS order id.
    pub order_id: Option<String>,
    /// Minor units.
    pub amount: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// How far the create call got (`intent`, `created`, `create_failed`, `create_unknown`).
    pub phase: String,
    /// The numeric status (see `till_core::Status`), once known.
    pub status: Option<u8>,
    /// Still waiting for an outcome.
    pub is_open: bool,
    /// A setup cart, not a sale.
    pub setup: bool,
    /// How it was paid (card type or method), when the provider said.
    pub tender: Option<String>,
    /// Last four digits of the card, when the provider said (never more of the number).
    pub last_four: Option<String>,
    /// Journaled at (unix ms).
    pub created_at_ms: i64,
    /// Last change (unix ms).
    pub updated_at_ms: i64,
    /// Outcome reached at (unix ms).
    pub final_at_ms: Option<i64>,
    /// Payment commit acknowledged at (unix ms).
    pub committed_at_ms: Option<i64>,
    /// Why the create failed or is uncertain.
    pub failure: Option<String>,
    /// The neutral state of a gateway payment (`pending`, `authorized`, `captured`, `declined`,
    /// `cancelled`, `expired`, `failed`); SensePass payments have `status` instead. Absent from
    /// agents older than this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Minor units captured (gateway payments: a pre-authorisation may be collected in part).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured: Option<i64>,
    /// Minor units refunded so far (gateway payments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refunded: Option<i64>,
    /// Who took the money after the tender declined (decline recovery, e.g. `flexfactor`), when
    /// the payment was recovered. Absent otherwise and from agents older than this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered_by: Option<String>,
}

/// A status observation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusEventRow {
    /// Row id of the payment (at the same till).
    pub payment_row_id: i64,
    /// The numeric status observed.
    pub status: u8,
    /// Where it came from (`api`, `socket`, `poll`, `local`).
    pub source: String,
    /// What it meant (`advance`, `same`, `ignore`).
    pub transition: String,
    /// It moved the payment forward.
    pub applied: bool,
    /// Observed at (unix ms).
    pub at_ms: i64,
}

/// An outbox operation (refund, credit, cancel, commit).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationRow {
    /// Its stable idempotency key.
    pub op_key: String,
    /// `refund`, `credit`, `cancel` or `commit`; for a gateway payment `capture`, `refund` or
    /// `void`.
    pub kind: String,
    /// The payment's local id.
    pub payment_local_id: Option<String>,
    /// Minor units moved, if any.
    pub amount: Option<i64>,
    /// `pending`, `in_flight`, `delivered` or `failed`; for a gateway operation `pending`,
    /// `prepared`, `approved`, `declined` or `failed`.
    pub state: String,
    /// Sends so far.
    pub attempts: i64,
    /// The last delivery error.
    pub last_error: Option<String>,
    /// Enqueued at (unix ms).
    pub created_at_ms: i64,
    /// Last change (unix ms).
    pub updated_at_ms: i64,
    /// Finished at (unix ms).
    pub finished_at_ms: Option<i64>,
}

/// The fleet applied a batch.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct BatchAck {
    /// The till's cursor now: the batch's `through`.
    pub cursor: i64,
    /// Changes applied (those at or below the old cursor are skipped).
    pub applied: usize,
}

/// Why the fleet refused a batch (HTTP 409), with its cursor so the till knows where to resume.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refusal {
    /// What went wrong.
    pub error: RefusalKind,
    /// Human-readable.
    pub message: String,
    /// The fleet's cursor for this till.
    pub cursor: i64,
}

/// The kinds of [`Refusal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalKind {
    /// The batch starts beyond the cursor: changes in between would be lost.
    Gap,
    /// Every change of the batch is already applied.
    Replay,
}

#[cfg(test)]
mod tests {
    use super::is_valid_channel;

    #[test]
    fn channels_are_short_plain_names() {
        for ok in ["stable", "pilot", "store-17", "a", &"x".repeat(32)] {
            assert!(is_valid_channel(ok), "{ok}");
        }
        for bad in ["", "Pilot Stores", "pilot;", "pilot/..", "é", &"x".repeat(33)] {
            assert!(!is_valid_channel(bad), "{bad}");
        }
    }
}
