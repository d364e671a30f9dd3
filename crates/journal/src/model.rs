//! The records the journal stores and hands back. Plain data: no I/O here.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use till_core::{Currency, Minor, Status, Transition};

/// Idempotency records live this long (31 days): long enough for any POS retry or end-of-month
/// reconciliation, short enough that the table does not grow forever.
pub const IDEMPOTENCY_TTL_MS: i64 = 31 * 24 * 60 * 60 * 1000;

/// How long after a payment ended an order ID alone still attaches a new request to it (5
/// minutes): long enough for a POS to retry after a crash or a timeout, short enough that a POS
/// whose order numbers restart every day never gets yesterday's payment for today's order. An
/// explicit `Idempotency-Key` attaches for the full [`IDEMPOTENCY_TTL_MS`]; an open payment is
/// always attached to.
pub const ORDER_ID_WINDOW_MS: i64 = 5 * 60 * 1000;

/// One payment attempt: a row of `transactions`.
///
/// A record exists from the moment the intent is journaled — before SensePass has heard of it — so
/// that a crash at any point leaves a trace the reconciler can resolve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentRecord {
    /// Row ID; orders records created in the same millisecond.
    pub id: i64,
    /// Our own key (a UUID), known before SensePass answers; sent as `posData` so a lost create
    /// response can be found again.
    pub local_id: String,
    /// The SensePass `TransactionNumber`, once known.
    pub number: Option<String>,
    /// The SensePass device the payment was started on.
    pub device_id: String,
    /// The POS order ID, when the POS sent one.
    pub order_id: Option<String>,
    /// The POS `Idempotency-Key` header, when sent.
    pub idempotency_key: Option<String>,
    /// The amount asked for, in minor units of `currency`.
    pub amount: Minor,
    /// The payment currency.
    pub currency: Currency,
    /// How far the create call got.
    pub phase: Phase,
    /// The latest SensePass status, once created. Only ever moves forward
    /// ([`till_core::Status::transition`]).
    pub status: Option<Status>,
    /// The body we send (or sent) to create the transaction.
    pub request_json: Value,
    /// The latest Transaction entity SensePass showed us.
    pub entity_json: Option<Value>,
    /// The cart's line total differs from `amount` (accepted, but shown to the manager).
    pub product_sum_mismatch: bool,
    /// A "Setup" cart transaction (spec §8.3): shows the live cart, is not itself a sale. Setup
    /// rows never make a device busy and are skipped by [`crate::Journal::last`].
    pub setup: bool,
    /// When the intent was journaled (unix ms).
    pub created_at: i64,
    /// Last change (unix ms).
    pub updated_at: i64,
    /// When the payment reached an outcome: a final status, or a certain create failure.
    pub final_at: Option<i64>,
    /// `paymentCommit.commitLink` of an approved payment.
    pub commit_link: Option<String>,
    /// When the payment commit was acknowledged by SensePass.
    pub committed_at: Option<i64>,
    /// Why the create call failed or is uncertain (phase `CreateFailed` / `CreateUnknown`).
    pub failure: Option<String>,
    /// When a manager closed this payment as not paid although it had no outcome — only after
    /// SensePass confirmed it cannot be paid ([`crate::Journal::resolve_payment`]). It is then no
    /// longer open; its SensePass status stays as last observed, so a later observation still
    /// moves it forward.
    pub resolved_at: Option<i64>,
    /// Why it was closed, in words (what SensePass said), for the console and the CSV.
    pub resolution: Option<String>,
}

impl PaymentRecord {
    /// Still waiting for an outcome: the create call is unanswered or uncertain, or SensePass
    /// reports a pre-payment status. An open payment makes its device busy.
    pub fn is_open(&self) -> bool {
        is_open(self.phase, self.status, self.resolved_at.is_some())
    }

    /// Money was captured (approved, possibly refunded since).
    pub fn was_captured(&self) -> bool {
        self.phase == Phase::Created && self.status.is_some_and(Status::was_captured)
    }

    /// Ended without capturing money: a new attempt for the same order is allowed.
    pub fn ended_without_capture(&self) -> bool {
        !self.is_open() && !self.was_captured()
    }

    /// The one name of where this payment stands, shared by the journal view, its status filter,
    /// the end-of-day counts, the CSV and the event stream (see [`status_key`]).
    pub fn status_key(&self) -> &'static str {
        status_key(self.phase, self.status, self.resolved_at.is_some())
    }
}

/// The one rule naming where a payment stands: the SensePass status key once created
/// (`approved`, `timed_out`, ...); before that `creating` (the create call is unanswered),
/// `unknown` (its outcome is being checked) or `failed` (certainly never created at SensePass —
/// the same "Failed" a manager filters for, with the reason in `failure`). A payment a manager
/// closed without an outcome (`resolved`) is `closed` — unless SensePass reported a final status
/// since, which then names it (an approval is never hidden).
pub fn status_key(phase: Phase, status: Option<Status>, resolved: bool) -> &'static str {
    match (status, phase) {
        (Some(s), _) if s.is_final() || !resolved => s.key(),
        _ if resolved => "closed",
        (Some(s), _) => s.key(),
        (None, Phase::CreateFailed) => "failed",
        (None, Phase::CreateUnknown) => "unknown",
        (None, _) => "creating",
    }
}

/// The one rule for "open", shared by the `is_open` column and [`PaymentRecord::is_open`]: a
/// payment a manager closed (`resolved`) is never open again.
pub(crate) fn is_open(phase: Phase, status: Option<Status>, resolved: bool) -> bool {
    if resolved {
        return false;
    }
    match phase {
        Phase::Intent | Phase::CreateUnknown => true,
        Phase::CreateFailed => false,
        Phase::Created => status.is_none_or(Status::is_open),
    }
}

/// How far the create call (`POST /transactions/init`) got. The journal writes the intent before
/// the call and the phase after it, so a restart knows which payments need reconciling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Journaled; the create call has not been answered (or not been sent yet).
    Intent,
    /// SensePass answered with a TransactionNumber.
    Created,
    /// Certainly not created (e.g. a 4xx, or the connection was refused before sending).
    CreateFailed,
    /// The request may have reached SensePass (timeout, dropped connection, crash): the reconciler
    /// must find out, by `posData`/order ID, before the till is free again.
    CreateUnknown,
}

impl Phase {
    /// The stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Intent => "intent",
            Phase::Created => "created",
            Phase::CreateFailed => "create_failed",
            Phase::CreateUnknown => "create_unknown",
        }
    }

    /// From the stored text form.
    pub fn parse(s: &str) -> Option<Phase> {
        [
            Phase::Intent,
            Phase::Created,
            Phase::CreateFailed,
            Phase::CreateUnknown,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// Where a status observation came from; kept with every status event so the audit trail says
/// how the agent learned each fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventSource {
    /// A REST response (create, status GET, cancel, refund).
    Api,
    /// A Socket.IO `message` event.
    Socket,
    /// A status poll (safety net after reconnects, reconciler).
    Poll,
    /// Decided locally (e.g. recorded from the journal's own knowledge).
    Local,
}

impl EventSource {
    /// The stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            EventSource::Api => "api",
            EventSource::Socket => "socket",
            EventSource::Poll => "poll",
            EventSource::Local => "local",
        }
    }

    /// From the stored text form.
    pub fn parse(s: &str) -> Option<EventSource> {
        [
            EventSource::Api,
            EventSource::Socket,
            EventSource::Poll,
            EventSource::Local,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// What [`crate::Journal::begin_payment`] needs to journal an intent.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPayment {
    /// Our key for the payment (a fresh UUID, see [`crate::new_local_id`]).
    pub local_id: String,
    /// The device that will show the QR code.
    pub device_id: String,
    /// The POS order ID, if any: idempotency scope number one.
    pub order_id: Option<String>,
    /// The POS `Idempotency-Key`, if any: idempotency scope number two.
    pub idempotency_key: Option<String>,
    /// Amount in minor units.
    pub amount: Minor,
    /// Currency.
    pub currency: Currency,
    /// The create body we are about to send.
    pub request_json: Value,
    /// The cart total differs from `amount`.
    pub product_sum_mismatch: bool,
    /// A "Setup" cart transaction rather than a sale.
    pub setup: bool,
    /// The caller's clock (unix ms), so tests control time.
    pub now_ms: i64,
}

/// The outcome of [`crate::Journal::begin_payment`].
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Begin {
    /// The intent is journaled: go ahead and call SensePass.
    Started(PaymentRecord),
    /// The same order / Idempotency-Key already has a payment that is open or captured: attach to
    /// it instead of charging again (promise 1).
    Existing(PaymentRecord),
    /// Another payment is open on this device: refuse with a busy error (promise 5).
    Busy(PaymentRecord),
}

/// The result of [`crate::Journal::apply_status`].
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The payment after the observation.
    pub record: PaymentRecord,
    /// What the observation meant: only [`Transition::Advance`] changed the status.
    pub transition: Transition,
}

impl Applied {
    /// True when the status moved forward.
    pub fn advanced(&self) -> bool {
        self.transition == Transition::Advance
    }
}

/// One status observation of a payment, applied or not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusEvent {
    /// Row ID (order of arrival).
    pub id: i64,
    /// The observed status.
    pub status: Status,
    /// Where it came from.
    pub source: EventSource,
    /// What it meant when it arrived.
    #[serde(serialize_with = "serialize_transition")]
    pub transition: Transition,
    /// True when it moved the status forward.
    pub applied: bool,
    /// When it arrived (unix ms).
    pub at: i64,
    /// The entity that came with it, if any.
    pub entity_json: Option<Value>,
}

fn serialize_transition<S: serde::Serializer>(t: &Transition, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(transition_str(*t))
}

/// The stored text form of a [`Transition`].
pub fn transition_str(t: Transition) -> &'static str {
    match t {
        Transition::Advance => "advance",
        Transition::Same => "same",
        Transition::Ignore => "ignore",
    }
}

/// From the stored text form of a [`Transition`].
pub(crate) fn parse_transition(s: &str) -> Option<Transition> {
    match s {
        "advance" => Some(Transition::Advance),
        "same" => Some(Transition::Same),
        "ignore" => Some(Transition::Ignore),
        _ => None,
    }
}

/// Filters for the manager's journal view and CSV export. Every filter is optional; the default
/// is "the 50 newest sales".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Query {
    /// Created at or after (unix ms, inclusive).
    pub from_ms: Option<i64>,
    /// Created before (unix ms, exclusive).
    pub to_ms: Option<i64>,
    /// Any of these statuses (empty: any status, including not-yet-created intents).
    pub status: Vec<Status>,
    /// Exactly this order ID (the POS's lookup).
    pub order_id: Option<String>,
    /// Order IDs containing this text, ignoring ASCII case (the manager's search box).
    pub order_search: Option<String>,
    /// Also payments that were certainly never created at SensePass (no status; phase
    /// `CreateFailed`), which [`status_key`] names `failed`: set with `status` containing
    /// [`Status::Failed`] so that the "Failed" filter finds every payment shown as failed.
    pub include_not_created: bool,
    /// Also payments a manager closed as not paid ([`status_key`] `closed`: closed without a
    /// final SensePass status), so that the status filter finds what the summary counts.
    pub include_closed: bool,
    /// Amount at least this (minor units, inclusive).
    pub min_amount: Option<Minor>,
    /// Amount at most this (minor units, inclusive).
    pub max_amount: Option<Minor>,
    /// Only this currency.
    pub currency: Option<Currency>,
    /// Only this device.
    pub device_id: Option<String>,
    /// Include "Setup" cart transactions (off by default: they are not sales).
    pub include_setup: bool,
    /// Page size.
    pub limit: u32,
    /// Rows to skip (newest first).
    pub offset: u32,
}

impl Default for Query {
    fn default() -> Self {
        Query {
            from_ms: None,
            to_ms: None,
            status: Vec::new(),
            order_id: None,
            order_search: None,
            include_not_created: false,
            include_closed: false,
            min_amount: None,
            max_amount: None,
            currency: None,
            device_id: None,
            include_setup: false,
            limit: 50,
            offset: 0,
        }
    }
}

/// One page of results plus the total number of matches, for paging UIs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    /// The rows of this page, newest first.
    pub items: Vec<T>,
    /// How many rows match the filters in all.
    pub total: u64,
}

/// The paired SensePass device: one per journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pairing {
    /// SensePass device ID injected into every request.
    pub device_id: String,
    /// The name this till was paired under.
    pub pos_name: String,
    /// `sandbox`, `production`, or `local` (embedded simulator).
    pub environment: String,
    /// REST base URL.
    pub api_base: String,
    /// Socket.IO URL.
    pub socket_url: String,
    /// The ClientBox base URL (card-present devices), when the environment has one.
    pub client_box_url: Option<String>,
    /// When pairing happened (unix ms).
    pub paired_at: i64,
}

/// What an outbox operation does at SensePass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// `POST /transactions/refund` of a captured payment. Counts against the refund cap.
    Refund,
    /// `POST /transactions/credit`: money out without an original payment.
    Credit,
    /// `POST /transactions/cancel/{n}`.
    Cancel,
    /// `GET {commitLink}`: the payment commit.
    Commit,
}

impl OpKind {
    /// The stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Refund => "refund",
            OpKind::Credit => "credit",
            OpKind::Cancel => "cancel",
            OpKind::Commit => "commit",
        }
    }

    /// From the stored text form.
    pub fn parse(s: &str) -> Option<OpKind> {
        [
            OpKind::Refund,
            OpKind::Credit,
            OpKind::Cancel,
            OpKind::Commit,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// Where an outbox operation is in its delivery.
///
/// ```text
/// Pending ──mark_in_flight──▶ InFlight ──mark_delivered──▶ Delivered
///    ▲                           │  └──────mark_failed────▶ Failed
///    └────────reschedule─────────┘
/// ```
/// `Pending` may also go straight to `Delivered` (the reconciler found it done) or `Failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpState {
    /// Waiting for `next_at` (and the network).
    Pending,
    /// Being sent now. After a crash, an in-flight operation's fate is unknown: reconcile it before
    /// sending it again.
    InFlight,
    /// SensePass accepted it (for a refund: approved). Counts against the refund cap.
    Delivered,
    /// Permanently rejected or given up: certainly not performed. Does not count against the cap.
    Failed,
}

impl OpState {
    /// The stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            OpState::Pending => "pending",
            OpState::InFlight => "in_flight",
            OpState::Delivered => "delivered",
            OpState::Failed => "failed",
        }
    }

    /// From the stored text form.
    pub fn parse(s: &str) -> Option<OpState> {
        [
            OpState::Pending,
            OpState::InFlight,
            OpState::Delivered,
            OpState::Failed,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// What [`crate::Journal::enqueue`] needs to put an operation in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOperation {
    /// What to do.
    pub kind: OpKind,
    /// The payment it applies to (`None` for a credit without an original payment).
    pub transaction_local_id: Option<String>,
    /// Stable idempotency key: enqueuing the same key twice returns the first operation.
    pub op_key: String,
    /// Money moved, in minor units of the payment's currency (refunds, credits). For
    /// [`crate::Journal::enqueue_refund`], `None` means "everything still refundable".
    pub amount: Option<Minor>,
    /// Whatever the sender needs to build the request.
    pub payload: Value,
    /// The caller's clock (unix ms); also the first `next_at`.
    pub now_ms: i64,
}

/// One row of the outbox.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Operation {
    /// Row ID.
    pub id: i64,
    /// Stable idempotency key.
    pub op_key: String,
    /// What to do.
    pub kind: OpKind,
    /// The payment it applies to.
    pub transaction_local_id: Option<String>,
    /// Money moved (minor units), if any.
    pub amount: Option<Minor>,
    /// Request material for the sender.
    pub payload: Value,
    /// Delivery state.
    pub state: OpState,
    /// Sends started so far (incremented by `mark_in_flight`).
    pub attempts: i64,
    /// Not to be sent before this time (unix ms).
    pub next_at: i64,
    /// The last delivery error, for the manager's "waiting to be sent" view.
    pub last_error: Option<String>,
    /// SensePass's answer once delivered.
    pub result: Option<Value>,
    /// Enqueued at (unix ms).
    pub created_at: i64,
    /// Last change (unix ms).
    pub updated_at: i64,
    /// Delivered or failed at (unix ms).
    pub finished_at: Option<i64>,
    /// The first definite answer the POS got for it, `{"status", "body"}`: what a retry with the
    /// same Idempotency-Key answers again ([`crate::Journal::set_op_answer`]).
    pub answer: Option<Value>,
    /// When a manager dismissed it (failed operations only, [`crate::Journal::dismiss_operation`]):
    /// it then leaves the console's default list and the failure count, and stays in the journal.
    pub dismissed_at: Option<i64>,
    /// The POS order ID of its payment, so that the manager recognises it (read from the payment).
    pub order_id: Option<String>,
    /// The SensePass TransactionNumber of its payment, when known (read from the payment).
    pub transaction_number: Option<String>,
}

/// Headline numbers for the status page and health checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// All payment rows (setup rows included).
    pub transactions: u64,
    /// Payments still waiting for an outcome.
    pub open_payments: u64,
    /// Captured payments whose payment commit is not acknowledged yet.
    pub uncommitted_approved: u64,
    /// Outbox operations waiting to be sent.
    pub pending_operations: u64,
    /// Outbox operations being sent (or whose send was interrupted).
    pub in_flight_operations: u64,
    /// Outbox operations that failed permanently and that no manager has dismissed yet.
    pub failed_operations: u64,
}

impl Counts {
    /// Money movements and commits not yet confirmed by the provider: waiting to be sent, or being
    /// sent right now. This is what every "queued operations" figure shows (health, tray, fleet,
    /// `till-agent status`): an operation in flight is not delivered, and a screen that dropped it
    /// for the length of an attempt would say "nothing queued" while a refund is still unconfirmed.
    pub fn queued_operations(&self) -> u64 {
        self.pending_operations + self.in_flight_operations
    }
}

/// Money totals of one currency over a period (end-of-day report).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// The currency.
    pub currency: Currency,
    /// Sales created in the period that captured money.
    pub captured_count: u64,
    /// Their amount (minor units).
    pub captured_amount: Minor,
    /// Refunds delivered in the period (of payments in this currency), minor units.
    pub refunded_amount: Minor,
}

macro_rules! text_sql {
    ($t:ty) => {
        impl ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }
        impl FromSql for $t {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let s = value.as_str()?;
                <$t>::parse(s).ok_or_else(|| {
                    FromSqlError::Other(format!("unknown {} `{s}`", stringify!($t)).into())
                })
            }
        }
    };
}

text_sql!(Phase);
text_sql!(EventSource);
text_sql!(OpKind);
text_sql!(OpState);
