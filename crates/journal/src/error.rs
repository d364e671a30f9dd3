//! The one error type of the journal.

use crate::model::{OpState, Phase};
use till_core::Minor;

/// Everything that can go wrong reading or writing the journal.
///
/// Callers care about three groups: storage failures (`Sqlite`, `Migration`, `SchemaTooNew`, `Io`, `Corrupt`) which
/// mean "the journal cannot be trusted right now, stop taking money"; lookups that found nothing
/// (`NotFound`); and refusals of a state change that would make the journal lie (`InvalidPhase`,
/// `InvalidOpState`, `NumberMismatch`, `NumberTaken`, `RefundCapExceeded`, `InvalidOperation`).
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// SQLite reported an error (disk full, I/O error, locked beyond the busy timeout, ...).
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// The schema migrations could not be applied.
    #[error("migration: {0}")]
    Migration(#[from] rusqlite_migration::Error),

    /// The journal was written by a newer Till Agent (schema `found`, this build knows up to
    /// `supported`): refused untouched, never migrated or written. Happens after a downgrade.
    #[error(
        "the journal's schema version {found} is newer than this Till Agent supports ({supported}): \
         it was written by a newer version; install that version again (the journal was not changed)"
    )]
    SchemaTooNew {
        /// The journal's `user_version`.
        found: i64,
        /// The newest schema version this build knows (its number of migrations).
        supported: usize,
    },

    /// Creating the journal file or fixing its permissions failed.
    #[error("journal file: {0}")]
    Io(#[from] std::io::Error),

    /// A stored value could not be read back (unknown status code, bad JSON, ...). The journal was
    /// written by something other than this crate, or by a newer version of it.
    #[error("corrupt journal data: {0}")]
    Corrupt(String),

    /// A JSON value could not be serialised for storage.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),

    /// The row a change refers to does not exist.
    #[error("{what} `{key}` not found")]
    NotFound {
        /// What was looked up: "transaction", "operation".
        what: &'static str,
        /// The key that was looked up.
        key: String,
    },

    /// The change does not fit the payment's phase, e.g. "create failed" for a payment that
    /// SensePass already answered.
    #[error("payment {local_id} is in phase {phase:?}; cannot {action}")]
    InvalidPhase {
        /// The payment's local ID.
        local_id: String,
        /// Its phase now.
        phase: Phase,
        /// What was attempted.
        action: &'static str,
    },

    /// `record_created` with a TransactionNumber other than the one already recorded.
    #[error("payment {local_id} already has number {existing}, not {given}")]
    NumberMismatch {
        /// The payment's local ID.
        local_id: String,
        /// The number already recorded.
        existing: String,
        /// The number given now.
        given: String,
    },

    /// The TransactionNumber is already recorded for another payment.
    #[error("transaction number {0} already belongs to another payment")]
    NumberTaken(String),

    /// The outbox operation is not in a state that allows this change (e.g. marking a delivered
    /// refund as failed).
    #[error("operation {id} is {state:?}; cannot {action}")]
    InvalidOpState {
        /// The operation's row ID.
        id: i64,
        /// Its state now.
        state: OpState,
        /// What was attempted.
        action: &'static str,
    },

    /// Refunds delivered plus refunds queued plus this one would exceed the captured amount.
    #[error("refund exceeds the captured amount; {remaining} minor units remain refundable")]
    RefundCapExceeded {
        /// What can still be refunded (captured − delivered − queued), never negative.
        remaining: Minor,
    },

    /// The operation is malformed (a refund without a transaction, a non-positive amount, ...).
    #[error("invalid operation: {0}")]
    InvalidOperation(String),
}
