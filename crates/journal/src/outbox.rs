//! The outbox: refunds, credits, cancels and commits waiting to be delivered to SensePass.
//!
//! An operation is journaled before it is sent, with a stable key, and moves through
//! [`OpState`]s as delivery proceeds. A refund asked for while SensePass is unreachable simply
//! stays `Pending` until the sender gets through (promise 3).

use crate::payments::by_local_id_in;
use crate::{
    json_at, json_text, opt_json_at, opt_minor_at, Journal, JournalError, NewOperation, OpKind,
    OpState, Operation,
};
use rusqlite::{params, OptionalExtension, Row};
use serde_json::Value;
use till_core::Minor;

/// Columns of `operations` (aliased `o`) plus the payment's local ID, in the order
/// [`op_from_row`] reads them.
pub(crate) const OP_SELECT: &str = "SELECT o.id, o.op_key, o.kind, t.local_id, o.amount, o.payload, o.state, \
     o.attempts, o.next_at, o.last_error, o.result, o.created_at, o.updated_at, o.finished_at, \
     o.answer, o.dismissed_at, t.order_id, t.number \
     FROM operations o LEFT JOIN transactions t ON t.id = o.transaction_id";

pub(crate) fn op_from_row(row: &Row<'_>) -> rusqlite::Result<Operation> {
    Ok(Operation {
        id: row.get(0)?,
        op_key: row.get(1)?,
        kind: row.get(2)?,
        transaction_local_id: row.get(3)?,
        amount: opt_minor_at(row, 4)?,
        payload: json_at(row, 5)?,
        state: row.get(6)?,
        attempts: row.get(7)?,
        next_at: row.get(8)?,
        last_error: row.get(9)?,
        result: opt_json_at(row, 10)?,
        created_at: row.get(11)?,
        updated_at: row.get(12)?,
        finished_at: row.get(13)?,
        answer: opt_json_at(row, 14)?,
        dismissed_at: row.get(15)?,
        order_id: row.get(16)?,
        transaction_number: row.get(17)?,
    })
}

fn op_where(
    conn: &rusqlite::Connection,
    where_sql: &str,
    params: impl rusqlite::Params,
) -> Result<Option<Operation>, JournalError> {
    let sql = format!("{OP_SELECT} WHERE {where_sql}");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params, op_from_row)
        .optional()?)
}

fn op_by_id(conn: &rusqlite::Connection, id: i64) -> Result<Operation, JournalError> {
    op_where(conn, "o.id = ?1", [id])?.ok_or_else(|| JournalError::NotFound {
        what: "operation",
        key: id.to_string(),
    })
}

/// Refunds of payment row `transaction_id`: (delivered, pending + in flight), in minor units.
fn refund_sums(
    conn: &rusqlite::Connection,
    transaction_id: i64,
) -> Result<(Minor, Minor), JournalError> {
    let (delivered, queued): (i64, i64) = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(CASE WHEN state = 'delivered' THEN amount END), 0), \
                    COALESCE(SUM(CASE WHEN state IN ('pending', 'in_flight') THEN amount END), 0) \
             FROM operations WHERE transaction_id = ?1 AND kind = 'refund'",
        )?
        .query_row([transaction_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok((Minor(delivered), Minor(queued)))
}

/// Inserts `op` (already checked) and returns it.
fn insert_op(
    conn: &rusqlite::Connection,
    op: &NewOperation,
    transaction_id: Option<i64>,
    amount: Option<Minor>,
) -> Result<Operation, JournalError> {
    conn.prepare_cached(
        "INSERT INTO operations (op_key, kind, transaction_id, amount, payload, state, attempts, \
         next_at, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?7, ?7)",
    )?
    .execute(params![
        op.op_key,
        op.kind,
        transaction_id,
        amount.map(|a| a.0),
        json_text(&op.payload)?,
        OpState::Pending,
        op.now_ms
    ])?;
    op_by_id(conn, conn.last_insert_rowid())
}

/// Prefix of a failure reason meaning "certainly never sent" (see [`Journal::reclaim_unsent`]).
pub const NOT_SENT: &str = "not sent:";

impl Journal {
    /// Puts an operation in the outbox, due at once. Enqueuing an `op_key` that already exists
    /// returns the existing operation unchanged (whatever its state), so a retried request never
    /// queues a second money movement. Refunds should go through [`Journal::enqueue_refund`],
    /// which enforces the cap.
    pub fn enqueue(&self, op: NewOperation) -> Result<Operation, JournalError> {
        self.write(|tx| {
            if let Some(existing) = op_where(tx, "o.op_key = ?1", [&op.op_key])? {
                return Ok(existing);
            }
            if op.amount.is_some_and(|a| !a.is_positive()) {
                return Err(JournalError::InvalidOperation(format!(
                    "{} amount must be positive",
                    op.kind.as_str()
                )));
            }
            let transaction_id = match &op.transaction_local_id {
                Some(local_id) => Some(by_local_id_in(tx, local_id)?.id),
                None => None,
            };
            insert_op(tx, &op, transaction_id, op.amount)
        })
    }

    /// Puts a refund in the outbox if, and only if, it fits under the cap — checked and inserted
    /// in one `BEGIN IMMEDIATE` transaction, so concurrent refunds (other threads, other
    /// processes on the same file) cannot together exceed it:
    ///
    /// `delivered refunds + pending/in-flight refunds + this amount ≤ captured`
    ///
    /// else [`JournalError::RefundCapExceeded`] with what remains. `op.amount == None` refunds
    /// everything that remains. An existing `op_key` returns the existing operation (it is already
    /// counted). The refund must name its payment.
    pub fn enqueue_refund(
        &self,
        op: NewOperation,
        captured: Minor,
    ) -> Result<Operation, JournalError> {
        if op.kind != OpKind::Refund {
            return Err(JournalError::InvalidOperation(format!(
                "enqueue_refund got a {} operation",
                op.kind.as_str()
            )));
        }
        self.write(|tx| {
            if let Some(existing) = op_where(tx, "o.op_key = ?1", [&op.op_key])? {
                return Ok(existing);
            }
            let Some(local_id) = &op.transaction_local_id else {
                return Err(JournalError::InvalidOperation(
                    "a refund must name the payment it refunds".into(),
                ));
            };
            let rec = by_local_id_in(tx, local_id)?;
            let (delivered, queued) = refund_sums(tx, rec.id)?;
            let remaining = captured
                .checked_sub(delivered)
                .and_then(|r| r.checked_sub(queued))
                .map_err(|e| JournalError::InvalidOperation(e.to_string()))?
                .max(Minor::ZERO);
            let amount = match op.amount {
                Some(a) if !a.is_positive() => {
                    return Err(JournalError::InvalidOperation(
                        "refund amount must be positive".into(),
                    ))
                }
                Some(a) => a,
                None => remaining,
            };
            if !amount.is_positive() || amount > remaining {
                return Err(JournalError::RefundCapExceeded { remaining });
            }
            insert_op(tx, &op, Some(rec.id), Some(amount))
        })
    }

    /// Refunds of a payment: (delivered, queued = pending + in flight), in minor units.
    pub fn refunded_total(&self, local_id: &str) -> Result<(Minor, Minor), JournalError> {
        self.read(|tx| {
            let rec = by_local_id_in(tx, local_id)?;
            refund_sums(tx, rec.id)
        })
    }

    /// Pending operations whose `next_at` has come, in due order: the sender's work list.
    pub fn due_operations(&self, now_ms: i64) -> Result<Vec<Operation>, JournalError> {
        let conn = self.lock();
        let sql = format!(
            "{OP_SELECT} WHERE o.state = 'pending' AND o.next_at <= ?1 ORDER BY o.next_at, o.id"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map([now_ms], op_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Operations, newest first, optionally of one state: the manager's "waiting to be sent"
    /// view and the reconciler's list of interrupted (`InFlight`) sends.
    pub fn operations(
        &self,
        state: Option<OpState>,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<Operation>, JournalError> {
        let conn = self.lock();
        let sql = format!(
            "{OP_SELECT} WHERE (?1 IS NULL OR o.state = ?1) ORDER BY o.id DESC LIMIT ?2 OFFSET ?3"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![state, limit, offset], op_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The console's outbox list: newest first, optionally of one state; operations a manager
    /// dismissed only when `include_dismissed`.
    pub fn outbox_view(
        &self,
        state: Option<OpState>,
        include_dismissed: bool,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<Operation>, JournalError> {
        let conn = self.lock();
        let sql = format!(
            "{OP_SELECT} WHERE (?1 IS NULL OR o.state = ?1) AND (?2 OR o.dismissed_at IS NULL) \
             ORDER BY o.id DESC LIMIT ?3 OFFSET ?4"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![state, include_dismissed, limit, offset], op_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// "Retry now" from the console. A pending operation waiting out its back-off becomes due at
    /// `now_ms` (nothing else changes: an uncertain refund is still checked at SensePass before it
    /// is sent again). A failed commit or cancel goes back to `Pending`, due now: neither moves
    /// money out, and SensePass refuses what no longer applies. A failed refund or credit is not
    /// sent again from here — that would be a new money movement, which belongs in a new refund,
    /// under the refund cap — nor is a dismissed operation. In flight or delivered: nothing to
    /// retry ([`JournalError::InvalidOpState`]).
    pub fn retry_operation(&self, id: i64, now_ms: i64) -> Result<Operation, JournalError> {
        self.write(|tx| {
            let op = op_by_id(tx, id)?;
            match op.state {
                OpState::Pending => {
                    tx.prepare_cached("UPDATE operations SET next_at = ?2, updated_at = ?2 WHERE id = ?1")?
                        .execute(params![id, now_ms])?;
                }
                OpState::Failed if op.dismissed_at.is_some() => {
                    return Err(JournalError::InvalidOperation(
                        "a dismissed operation is not sent again".into(),
                    ))
                }
                OpState::Failed if matches!(op.kind, OpKind::Commit | OpKind::Cancel) => {
                    tx.prepare_cached(
                        "UPDATE operations SET state = 'pending', next_at = ?2, finished_at = NULL, \
                         updated_at = ?2 WHERE id = ?1",
                    )?
                    .execute(params![id, now_ms])?;
                }
                OpState::Failed => {
                    return Err(JournalError::InvalidOperation(format!(
                        "a failed {} is not sent again: start a new one from its payment",
                        op.kind.as_str()
                    )))
                }
                OpState::InFlight | OpState::Delivered => {
                    return Err(JournalError::InvalidOpState { id, state: op.state, action: "retry" })
                }
            }
            op_by_id(tx, id)
        })
    }

    /// "Dismiss" from the console: a failed operation — certainly not performed at SensePass, and
    /// never to be retried by the sender — is marked seen. It leaves the default outbox list and
    /// the failure count; the row and its error stay. Only failed operations: a pending or
    /// in-flight one may still move money ([`JournalError::InvalidOpState`]). Repeating it keeps
    /// the first time.
    pub fn dismiss_operation(&self, id: i64, now_ms: i64) -> Result<Operation, JournalError> {
        self.transition_op(id, &[OpState::Failed], "dismiss", |tx| {
            tx.prepare_cached(
                "UPDATE operations SET dismissed_at = COALESCE(dismissed_at, ?2), updated_at = ?2 WHERE id = ?1",
            )?
            .execute(params![id, now_ms])?;
            Ok(())
        })
    }

    /// The operations of one payment, oldest first.
    pub fn operations_for(&self, local_id: &str) -> Result<Vec<Operation>, JournalError> {
        self.read(|tx| {
            let rec = by_local_id_in(tx, local_id)?;
            let sql = format!("{OP_SELECT} WHERE o.transaction_id = ?1 ORDER BY o.id");
            let mut stmt = tx.prepare_cached(&sql)?;
            let rows = stmt.query_map([rec.id], op_from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// One operation by row ID.
    pub fn operation(&self, id: i64) -> Result<Option<Operation>, JournalError> {
        let conn = self.lock();
        op_where(&conn, "o.id = ?1", [id])
    }

    /// One operation by its key.
    pub fn operation_by_key(&self, op_key: &str) -> Result<Option<Operation>, JournalError> {
        let conn = self.lock();
        op_where(&conn, "o.op_key = ?1", [op_key])
    }

    /// Records the first definite answer the POS got for operation `id` (`{"status", "body"}`).
    /// Later calls change nothing: the first answer is the one a retry gets again.
    pub fn set_op_answer(&self, id: i64, answer: &Value) -> Result<Operation, JournalError> {
        let answer = json_text(answer)?;
        self.write(|tx| {
            tx.prepare_cached("UPDATE operations SET answer = ?2 WHERE id = ?1 AND answer IS NULL")?
                .execute(params![id, answer])?;
            op_by_id(tx, id)
        })
    }

    /// Claims a pending operation for sending: `Pending → InFlight`, `attempts + 1`. Journaled
    /// *before* the network call, so a crash mid-send leaves it `InFlight` for the reconciler.
    /// Any other state is [`JournalError::InvalidOpState`] — which is also how two senders are
    /// kept from sending the same operation.
    pub fn mark_in_flight(&self, id: i64, now_ms: i64) -> Result<Operation, JournalError> {
        self.transition_op(id, &[OpState::Pending], "mark in flight", |tx| {
            tx.prepare_cached(
                "UPDATE operations SET state = 'in_flight', attempts = attempts + 1, \
                 updated_at = ?2 WHERE id = ?1",
            )?
            .execute(params![id, now_ms])?;
            Ok(())
        })
    }

    /// Records a delivery SensePass accepted (for a refund: approved), with its answer. From
    /// `InFlight`, or `Pending` when the reconciler finds the operation already done; repeating it
    /// is harmless.
    pub fn mark_delivered(
        &self,
        id: i64,
        result: &Value,
        now_ms: i64,
    ) -> Result<Operation, JournalError> {
        let result = json_text(result)?;
        self.write(|tx| {
            let op = op_by_id(tx, id)?;
            match op.state {
                OpState::Delivered => return Ok(op),
                OpState::Pending | OpState::InFlight => {}
                OpState::Failed => {
                    return Err(JournalError::InvalidOpState {
                        id,
                        state: op.state,
                        action: "mark delivered",
                    })
                }
            }
            // The error of an earlier attempt is history once it got through: cleared, so the
            // console does not show a problem that is over.
            tx.prepare_cached(
                "UPDATE operations SET state = 'delivered', result = ?2, finished_at = ?3, \
                 updated_at = ?3, last_error = NULL WHERE id = ?1",
            )?
            .execute(params![id, result, now_ms])?;
            op_by_id(tx, id)
        })
    }

    /// Records a permanent failure: the operation was certainly not performed (rejected by
    /// SensePass, e.g. a declined refund) and will not be retried. A failed refund no longer
    /// counts against the cap. Only call this when SensePass certainly did not perform it.
    /// Repeating it is harmless.
    pub fn mark_failed(
        &self,
        id: i64,
        reason: &str,
        now_ms: i64,
    ) -> Result<Operation, JournalError> {
        self.write(|tx| {
            let op = op_by_id(tx, id)?;
            match op.state {
                OpState::Failed => return Ok(op),
                OpState::Pending | OpState::InFlight => {}
                OpState::Delivered => {
                    return Err(JournalError::InvalidOpState {
                        id,
                        state: op.state,
                        action: "mark failed",
                    })
                }
            }
            tx.prepare_cached(
                "UPDATE operations SET state = 'failed', last_error = ?2, finished_at = ?3, \
                 updated_at = ?3 WHERE id = ?1",
            )?
            .execute(params![id, reason, now_ms])?;
            op_by_id(tx, id)
        })
    }

    /// Puts an operation back in the queue after a transient failure: `InFlight`/`Pending →
    /// Pending`, due at `next_at_ms`, with the error for the manager's view. `attempts` is stored
    /// as given (normally the value `mark_in_flight` returned).
    pub fn reschedule(
        &self,
        id: i64,
        attempts: i64,
        next_at_ms: i64,
        error: &str,
    ) -> Result<Operation, JournalError> {
        self.transition_op(
            id,
            &[OpState::Pending, OpState::InFlight],
            "reschedule",
            |tx| {
                tx.prepare_cached(
                    "UPDATE operations SET state = 'pending', attempts = ?2, next_at = ?3, \
                 last_error = ?4 WHERE id = ?1",
                )?
                .execute(params![id, attempts, next_at_ms, error])?;
                Ok(())
            },
        )
    }

    /// Checks that operation `id` is in one of `from`, runs `update`, returns the new row — in one
    /// transaction.
    /// Notes why an operation's outcome is not known yet, without changing its state: a credit
    /// whose answer was lost stays `InFlight` (it cannot be looked up or sent again by the agent)
    /// with the reason shown to the manager.
    pub fn note_op_error(&self, id: i64, error: &str, now_ms: i64) -> Result<Operation, JournalError> {
        self.write(|tx| {
            tx.prepare_cached("UPDATE operations SET last_error = ?2, updated_at = ?3 WHERE id = ?1")?
                .execute(params![id, error, now_ms])?;
            op_by_id(tx, id)
        })
    }

    /// Claims again an operation that failed *before anything was sent* (its `last_error` starts
    /// with [`NOT_SENT`]): `Failed → InFlight`, `attempts + 1`. Any other state or reason is
    /// [`JournalError::InvalidOpState`]: only a request that certainly never left may be sent again
    /// under the same key.
    pub fn reclaim_unsent(&self, id: i64, now_ms: i64) -> Result<Operation, JournalError> {
        self.write(|tx| {
            let op = op_by_id(tx, id)?;
            let unsent = op.state == OpState::Failed
                && op.last_error.as_deref().is_some_and(|e| e.starts_with(NOT_SENT));
            if !unsent {
                return Err(JournalError::InvalidOpState { id, state: op.state, action: "send again" });
            }
            tx.prepare_cached(
                "UPDATE operations SET state = 'in_flight', attempts = attempts + 1, last_error = NULL, \
                 finished_at = NULL, updated_at = ?2 WHERE id = ?1",
            )?
            .execute(params![id, now_ms])?;
            op_by_id(tx, id)
        })
    }

    fn transition_op(
        &self,
        id: i64,
        from: &[OpState],
        action: &'static str,
        update: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<(), JournalError>,
    ) -> Result<Operation, JournalError> {
        self.write(|tx| {
            let op = op_by_id(tx, id)?;
            if !from.contains(&op.state) {
                return Err(JournalError::InvalidOpState {
                    id,
                    state: op.state,
                    action,
                });
            }
            update(tx)?;
            op_by_id(tx, id)
        })
    }
}
