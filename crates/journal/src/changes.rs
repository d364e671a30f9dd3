//! The change feed (migrations `0010_changes.sql`, `0050_gateway_changes.sql`): an ordered,
//! gap-free list of every insert, update and delete of payments, status events and outbox
//! operations — SensePass's and the gateway providers' alike — numbered by a per-journal sequence,
//! for replication to the fleet server.
//!
//! The triggers write the feed in the same transaction as the change, so a committed change
//! always has its entry. A reader (the replication task, on its own connection) takes a batch
//! with [`Journal::changes_after`], ships it, records how far the fleet acknowledged with
//! [`Journal::set_changes_acked`], and prunes what is acknowledged with
//! [`Journal::prune_changes`].

use crate::outbox::{op_from_row, OP_SELECT};
use crate::payments::{event_from_row, record_from_row, EVENT_COLS, TX_COLS};
use crate::gateway::{gp_from_row, op_from_row as gateway_op_from_row, GP_COLS, OP_COLS as GATEWAY_OP_COLS};
use crate::{GatewayOpRecord, GatewayPaymentRecord, Journal, JournalError, Operation, PaymentRecord, StatusEvent};
use rusqlite::OptionalExtension;
use std::collections::HashMap;

/// The settings key holding the highest sequence number the fleet has acknowledged.
const ACKED_KEY: &str = "fleet.acked_seq";

/// Which table a change touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeTable {
    /// `transactions`: a payment.
    Transactions,
    /// `status_events`: one status observation of a payment.
    StatusEvents,
    /// `operations`: an outbox operation.
    Operations,
    /// `gateway_payments`: a payment of a provider behind the gateway seam (Connect-E, Acquired).
    GatewayPayments,
    /// `gateway_operations`: a capture, refund or void of a gateway payment.
    GatewayOperations,
}

impl ChangeTable {
    fn parse(s: &str) -> Option<ChangeTable> {
        match s {
            "transactions" => Some(ChangeTable::Transactions),
            "status_events" => Some(ChangeTable::StatusEvents),
            "operations" => Some(ChangeTable::Operations),
            "gateway_payments" => Some(ChangeTable::GatewayPayments),
            "gateway_operations" => Some(ChangeTable::GatewayOperations),
            _ => None,
        }
    }
}

/// The state of a changed row as of the batch's snapshot.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeRow {
    /// A payment.
    Payment(PaymentRecord),
    /// A status event, with the row id of its payment (the fleet keys payments by row id).
    StatusEvent {
        /// `transactions.id` of the payment it belongs to.
        transaction_row_id: i64,
        /// The event.
        event: StatusEvent,
    },
    /// An outbox operation.
    Operation(Operation),
    /// A gateway payment.
    GatewayPayment(GatewayPaymentRecord),
    /// A gateway operation.
    GatewayOperation(GatewayOpRecord),
    /// The row no longer exists (deleted after the change was recorded).
    Gone,
}

/// One entry of the feed with the row it names.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The sequence number: strictly increasing, never reused.
    pub seq: i64,
    /// The table.
    pub table: ChangeTable,
    /// The row's id in that table.
    pub row_id: i64,
    /// The row's state in the batch's snapshot.
    pub row: ChangeRow,
}

/// Every change with `after < seq <= through`, read in one snapshot. A row changed more than
/// once in that range appears once, at its last sequence number, in its snapshot state — the
/// earlier entries carry no information the last one lacks.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeBatch {
    /// The sequence number the batch starts after (the caller's cursor).
    pub after: i64,
    /// The last sequence number the batch covers (`after` when the batch is empty).
    pub through: i64,
    /// The changes, in sequence order.
    pub changes: Vec<Change>,
}

impl Journal {
    /// Reads up to `limit` feed entries after `after` and the rows they name, in one snapshot.
    pub fn changes_after(&self, after: i64, limit: usize) -> Result<ChangeBatch, JournalError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT seq, tbl, row_id FROM changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let entries = stmt
                .query_map([after, limit], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let through = entries.last().map(|e| e.0).unwrap_or(after);
            // Keep only the last entry of each row.
            let mut last: HashMap<(ChangeTable, i64), i64> = HashMap::new();
            let mut parsed = Vec::with_capacity(entries.len());
            for (seq, tbl, row_id) in entries {
                let table = ChangeTable::parse(&tbl)
                    .ok_or_else(|| JournalError::Corrupt(format!("change {seq} names table `{tbl}`")))?;
                last.insert((table, row_id), seq);
                parsed.push((seq, table, row_id));
            }
            let mut changes = Vec::with_capacity(last.len());
            for (seq, table, row_id) in parsed {
                if last.get(&(table, row_id)) != Some(&seq) {
                    continue;
                }
                let row = read_row(tx, table, row_id)?.unwrap_or(ChangeRow::Gone);
                changes.push(Change { seq, table, row_id, row });
            }
            Ok(ChangeBatch { after, through, changes })
        })
    }

    /// The newest sequence number in the feed (0 when nothing was ever recorded).
    pub fn last_change_seq(&self) -> Result<i64, JournalError> {
        self.read(|tx| {
            // sqlite_sequence keeps the high-water mark even after pruning.
            let seq: Option<i64> = tx
                .query_row("SELECT seq FROM sqlite_sequence WHERE name = 'changes'", [], |r| r.get(0))
                .optional()?;
            Ok(seq.unwrap_or(0))
        })
    }

    /// The highest sequence number the fleet acknowledged, as last recorded (0 if never).
    pub fn changes_acked(&self) -> Result<i64, JournalError> {
        Ok(self.setting(ACKED_KEY)?.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    /// Records how far the fleet acknowledged; only ever moves forward.
    pub fn set_changes_acked(&self, seq: i64) -> Result<(), JournalError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value \
                 WHERE CAST(settings.value AS INTEGER) < CAST(excluded.value AS INTEGER)",
                rusqlite::params![ACKED_KEY, seq.to_string()],
            )?;
            Ok(())
        })
    }

    /// How many changes the fleet has not acknowledged yet.
    pub fn changes_behind(&self) -> Result<i64, JournalError> {
        Ok((self.last_change_seq()? - self.changes_acked()?).max(0))
    }

    /// Deletes feed entries up to `through` (acknowledged by the fleet), at most `limit` at a
    /// time so the write lock is held only briefly. Returns how many were deleted.
    pub fn prune_changes(&self, through: i64, limit: usize) -> Result<usize, JournalError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.write(|tx| {
            Ok(tx.execute(
                "DELETE FROM changes WHERE seq IN \
                 (SELECT seq FROM changes WHERE seq <= ?1 ORDER BY seq LIMIT ?2)",
                [through, limit],
            )?)
        })
    }
}

/// The current state of one row, `None` when it no longer exists.
fn read_row(
    tx: &rusqlite::Transaction<'_>,
    table: ChangeTable,
    row_id: i64,
) -> Result<Option<ChangeRow>, JournalError> {
    Ok(match table {
        ChangeTable::Transactions => tx
            .prepare_cached(&format!("SELECT {TX_COLS} FROM transactions WHERE id = ?1"))?
            .query_row([row_id], record_from_row)
            .optional()?
            .map(ChangeRow::Payment),
        ChangeTable::StatusEvents => tx
            .prepare_cached(&format!(
                "SELECT {EVENT_COLS}, transaction_id FROM status_events WHERE id = ?1"
            ))?
            .query_row([row_id], |r| {
                Ok(ChangeRow::StatusEvent { transaction_row_id: r.get(7)?, event: event_from_row(r)? })
            })
            .optional()?,
        ChangeTable::Operations => tx
            .prepare_cached(&format!("{OP_SELECT} WHERE o.id = ?1"))?
            .query_row([row_id], op_from_row)
            .optional()?
            .map(ChangeRow::Operation),
        ChangeTable::GatewayPayments => tx
            .prepare_cached(&format!("SELECT {GP_COLS} FROM gateway_payments g WHERE g.id = ?1"))?
            .query_row([row_id], gp_from_row)
            .optional()?
            .map(ChangeRow::GatewayPayment),
        ChangeTable::GatewayOperations => tx
            .prepare_cached(&format!(
                "SELECT {GATEWAY_OP_COLS} FROM gateway_operations o JOIN gateway_payments g ON g.id = o.payment_id WHERE o.id = ?1"
            ))?
            .query_row([row_id], gateway_op_from_row)
            .optional()?
            .map(ChangeRow::GatewayOperation),
    })
}
