//! Payments: intents, create outcomes, status observations, lookups.

use crate::model::{is_open, parse_transition, transition_str, IDEMPOTENCY_TTL_MS};
use crate::{
    currency_at, json_at, json_text, opt_json_at, required_status_at, status_at, status_code,
    Applied, Begin, EventSource, Journal, JournalError, NewPayment, Page, PaymentRecord, Phase,
    Query, StatusEvent,
};
use rusqlite::{params, params_from_iter, OptionalExtension, Row, Transaction as SqlTx};
use serde_json::Value;
use till_core::{Minor, Status, Transition};

/// The columns of `transactions`, in the order [`record_from_row`] reads them.
pub(crate) const TX_COLS: &str = "id, local_id, number, device_id, order_id, idempotency_key, \
     amount, currency, phase, status, request_json, entity_json, product_sum_mismatch, setup, \
     created_at, updated_at, final_at, commit_link, committed_at, failure, resolved_at, resolution";

// The WHERE clauses of the hot lookups, named so the plan test in lib.rs checks the very
// statements the methods run.
// The partial indexes are named with INDEXED BY: without ANALYZE statistics the planner cannot
// know they are tiny and may prefer a wider index (then scan every row of the device); with
// INDEXED BY the statement fails to prepare rather than silently scanning.
pub(crate) const W_NUMBER: &str = "WHERE number = ?1";
pub(crate) const W_ORDER_LATEST: &str =
    "WHERE order_id = ?1 ORDER BY created_at DESC, id DESC LIMIT 1";
pub(crate) const W_LAST_DEVICE: &str =
    "WHERE device_id = ?1 AND setup = 0 ORDER BY created_at DESC, id DESC LIMIT 1";
pub(crate) const W_LAST_ANY: &str = "WHERE setup = 0 ORDER BY created_at DESC, id DESC LIMIT 1";
pub(crate) const W_BUSY: &str = "INDEXED BY transactions_open \
     WHERE device_id = ?1 AND is_open = 1 AND setup = 0 ORDER BY created_at, id LIMIT 1";
pub(crate) const W_OPEN_SETUP: &str = "INDEXED BY transactions_open \
     WHERE device_id = ?1 AND is_open = 1 AND setup = 1 ORDER BY created_at DESC, id DESC LIMIT 1";
pub(crate) const W_OPEN: &str =
    "INDEXED BY transactions_open WHERE is_open = 1 ORDER BY created_at, id";
pub(crate) const W_UNCOMMITTED: &str = "INDEXED BY transactions_uncommitted \
     WHERE committed_at IS NULL AND status IN (5, 11, 12, 13) ORDER BY created_at, id";

/// Builds a [`PaymentRecord`] from a row selected with [`TX_COLS`].
pub(crate) fn record_from_row(row: &Row<'_>) -> rusqlite::Result<PaymentRecord> {
    Ok(PaymentRecord {
        id: row.get(0)?,
        local_id: row.get(1)?,
        number: row.get(2)?,
        device_id: row.get(3)?,
        order_id: row.get(4)?,
        idempotency_key: row.get(5)?,
        amount: Minor(row.get(6)?),
        currency: currency_at(row, 7)?,
        phase: row.get(8)?,
        status: status_at(row, 9)?,
        request_json: json_at(row, 10)?,
        entity_json: opt_json_at(row, 11)?,
        product_sum_mismatch: row.get(12)?,
        setup: row.get(13)?,
        created_at: row.get(14)?,
        updated_at: row.get(15)?,
        final_at: row.get(16)?,
        commit_link: row.get(17)?,
        committed_at: row.get(18)?,
        failure: row.get(19)?,
        resolved_at: row.get(20)?,
        resolution: row.get(21)?,
    })
}

/// One record selected by `tail`, the SQL after `FROM transactions` (an optional `INDEXED BY`,
/// then `WHERE ...`), with `?` parameters.
fn one(
    tx: &rusqlite::Connection,
    tail: &str,
    params: impl rusqlite::Params,
) -> Result<Option<PaymentRecord>, JournalError> {
    let sql = format!("SELECT {TX_COLS} FROM transactions {tail}");
    Ok(tx
        .prepare_cached(&sql)?
        .query_row(params, record_from_row)
        .optional()?)
}

/// All records selected by `tail` (see [`one`]).
fn many(
    tx: &rusqlite::Connection,
    tail: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<PaymentRecord>, JournalError> {
    let sql = format!("SELECT {TX_COLS} FROM transactions {tail}");
    let mut stmt = tx.prepare_cached(&sql)?;
    let rows = stmt.query_map(params, record_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn by_id(tx: &rusqlite::Connection, id: i64) -> Result<PaymentRecord, JournalError> {
    one(tx, "WHERE id = ?1", [id])?.ok_or_else(|| JournalError::NotFound {
        what: "transaction",
        key: id.to_string(),
    })
}

pub(crate) fn by_local_id_in(
    tx: &rusqlite::Connection,
    local_id: &str,
) -> Result<PaymentRecord, JournalError> {
    one(tx, "WHERE local_id = ?1", [local_id])?.ok_or_else(|| JournalError::NotFound {
        what: "transaction",
        key: local_id.to_string(),
    })
}

fn by_number_in(tx: &rusqlite::Connection, number: &str) -> Result<PaymentRecord, JournalError> {
    one(tx, W_NUMBER, [number])?.ok_or_else(|| JournalError::NotFound {
        what: "transaction",
        key: number.to_string(),
    })
}

/// The time a status makes a payment final, if it does and none was recorded yet.
fn final_time(current: Option<i64>, status: Status, now_ms: i64) -> Option<i64> {
    current.or(status.is_final().then_some(now_ms))
}

fn insert_event(
    tx: &SqlTx<'_>,
    transaction_id: i64,
    status: Status,
    source: EventSource,
    transition: Transition,
    entity: Option<&Value>,
    now_ms: i64,
) -> Result<(), JournalError> {
    let entity = entity.map(json_text).transpose()?;
    tx.prepare_cached(
        "INSERT INTO status_events (transaction_id, status, source, transition, applied, at, entity_json) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        transaction_id,
        status_code(status),
        source,
        transition_str(transition),
        transition == Transition::Advance,
        now_ms,
        entity
    ])?;
    Ok(())
}

/// Applies one status observation to a created payment inside `tx`.
fn apply_in(
    tx: &SqlTx<'_>,
    rec: PaymentRecord,
    status: Status,
    entity: &Value,
    source: EventSource,
    now_ms: i64,
    stale: bool,
) -> Result<Applied, JournalError> {
    let transition = match rec.status {
        _ if stale => Transition::Ignore,
        None => Transition::Advance,
        Some(current) => current.transition(status),
    };
    insert_event(tx, rec.id, status, source, transition, Some(entity), now_ms)?;
    match transition {
        Transition::Advance => {
            tx.prepare_cached(
                "UPDATE transactions SET status = ?2, entity_json = ?3, is_open = ?4, \
                 final_at = ?5, updated_at = ?6 WHERE id = ?1",
            )?
            .execute(params![
                rec.id,
                status_code(status),
                json_text(entity)?,
                is_open(rec.phase, Some(status), rec.resolved_at.is_some()),
                final_time(rec.final_at, status, now_ms),
                now_ms
            ])?;
        }
        Transition::Same => {
            tx.prepare_cached(
                "UPDATE transactions SET entity_json = ?2, updated_at = ?3 WHERE id = ?1",
            )?
            .execute(params![rec.id, json_text(entity)?, now_ms])?;
        }
        Transition::Ignore => {
            tracing::debug!(
                local_id = %rec.local_id,
                current = ?rec.status,
                observed = ?status,
                ?source,
                "stale status ignored"
            );
        }
    }
    let record = by_id(tx, rec.id)?;
    Ok(Applied { record, transition })
}

/// Looks up a live idempotency record: `Some(record)` if it points at a payment that must be
/// attached to (open or captured). Expired records and payments that ended without capture are
/// treated as absent (the upsert in `begin_payment` replaces them). An order ID alone is a weak
/// key (POS order numbers repeat): it attaches only to a payment still open or that ended at most
/// `order_window_ms` ago.
fn live_idempotent(
    tx: &SqlTx<'_>,
    scope: &str,
    value: &str,
    now_ms: i64,
    order_window_ms: i64,
) -> Result<Option<PaymentRecord>, JournalError> {
    let id: Option<i64> = tx
        .prepare_cached(
            "SELECT transaction_id FROM idempotency WHERE scope = ?1 AND value = ?2 AND expires_at > ?3",
        )?
        .query_row(params![scope, value, now_ms], |r| r.get(0))
        .optional()?;
    let Some(id) = id else { return Ok(None) };
    let rec = by_id(tx, id)?;
    if scope == "order" && !rec.is_open() {
        let ended = rec.final_at.unwrap_or(rec.updated_at);
        if now_ms.saturating_sub(ended) > order_window_ms {
            return Ok(None);
        }
    }
    Ok((!rec.ended_without_capture()).then_some(rec))
}

/// The idempotency scopes of a new payment: its key and its order id, when given.
fn scopes(p: &NewPayment) -> Vec<(&str, &str)> {
    [p.idempotency_key.as_deref().map(|k| ("key", k)), p.order_id.as_deref().map(|o| ("order", o))]
        .into_iter()
        .flatten()
        .collect()
}

/// The checks before a payment may start: a live idempotency record → attach to it; another open
/// sale on the device → busy (`check_busy` is false for setup carts). `None`: it may start.
fn attach_or_busy(
    tx: &SqlTx<'_>,
    p: &NewPayment,
    scopes: &[(&str, &str)],
    check_busy: bool,
    order_window_ms: i64,
) -> Result<Option<Begin>, JournalError> {
    for (scope, value) in scopes {
        if let Some(rec) = live_idempotent(tx, scope, value, p.now_ms, order_window_ms)? {
            return Ok(Some(Begin::Existing(rec)));
        }
    }
    if check_busy {
        if let Some(rec) = one(tx, W_BUSY, [&p.device_id])? {
            return Ok(Some(Begin::Busy(rec)));
        }
    }
    Ok(None)
}

/// Points the idempotency records of `scopes` at payment row `id` for 31 days.
fn write_idempotency(tx: &SqlTx<'_>, id: i64, scopes: &[(&str, &str)], now_ms: i64) -> Result<(), JournalError> {
    let expires_at = now_ms.saturating_add(IDEMPOTENCY_TTL_MS);
    for (scope, value) in scopes {
        tx.prepare_cached(
            "INSERT INTO idempotency (scope, value, transaction_id, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (scope, value) DO UPDATE SET transaction_id = excluded.transaction_id, \
             created_at = excluded.created_at, expires_at = excluded.expires_at",
        )?
        .execute(params![scope, value, id, now_ms, expires_at])?;
    }
    Ok(())
}

impl Journal {
    /// Journals a payment intent, or explains why not — atomically, in one `BEGIN IMMEDIATE`
    /// transaction, so two concurrent requests for the same order cannot both start.
    ///
    /// 1. Unexpired idempotency records for the `idempotency_key` and then the `order_id` are
    ///    looked up (an `order_id` only finds a payment still open or that ended within the
    ///    order-ID window, [`crate::ORDER_ID_WINDOW_MS`]). One that points at a payment still open or captured gives
    ///    [`Begin::Existing`]: attach to it, never charge again. One that points at a payment that
    ///    ended without capture (declined, failed, timed out, cancelled, or certainly not created)
    ///    is replaced: a new attempt is allowed.
    /// 2. Any other open non-setup payment on the same device gives [`Begin::Busy`] — for a setup
    ///    cart too: a cart shown while a payment is open would hide that payment from the customer
    ///    and the cashier while its QR can still be paid.
    /// 3. Otherwise the intent (phase `Intent`) and its idempotency records (expiring in 31 days)
    ///    are inserted: [`Begin::Started`].
    ///
    /// Beginning the same `local_id` twice returns [`Begin::Existing`] with the first record.
    /// Idempotency is journal-wide, not per device.
    pub fn begin_payment(&self, p: NewPayment) -> Result<Begin, JournalError> {
        let window = self.order_id_window();
        self.write(|tx| {
            if let Some(rec) = one(tx, "WHERE local_id = ?1", [&p.local_id])? {
                return Ok(Begin::Existing(rec));
            }
            let scopes = scopes(&p);
            if let Some(outcome) = attach_or_busy(tx, &p, &scopes, true, window)? {
                return Ok(outcome);
            }
            tx.prepare_cached(
                "INSERT INTO transactions (local_id, device_id, order_id, idempotency_key, amount, \
                 currency, phase, status, is_open, request_json, product_sum_mismatch, setup, \
                 created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, 1, ?8, ?9, ?10, ?11, ?11)",
            )?
            .execute(params![
                p.local_id,
                p.device_id,
                p.order_id,
                p.idempotency_key,
                p.amount.0,
                p.currency.code(),
                Phase::Intent,
                json_text(&p.request_json)?,
                p.product_sum_mismatch,
                p.setup,
                p.now_ms
            ])?;
            let id = tx.last_insert_rowid();
            write_idempotency(tx, id, &scopes, p.now_ms)?;
            Ok(Begin::Started(by_id(tx, id)?))
        })
    }

    /// Turns the device's open "Setup" cart transaction into the payment that `p` describes — the
    /// Terminal Agent's "link the init to the preceding Setup transaction" (spec §8.3) — with the
    /// same checks as [`Journal::begin_payment`], in one `BEGIN IMMEDIATE` transaction:
    /// idempotency first ([`Begin::Existing`]), then busy ([`Begin::Busy`]); otherwise the setup row
    /// becomes a sale (`setup = 0`, the order id, key, amount, currency and request of `p`), its
    /// idempotency records are written, and [`Begin::Started`] returns it — already `Created`, with
    /// the cart's TransactionNumber. The caller then enables payment at SensePass.
    ///
    /// Fails with [`JournalError::InvalidPhase`] when `setup_local_id` is not an open, created
    /// setup cart of `p.device_id`.
    pub fn promote_setup(&self, setup_local_id: &str, p: NewPayment) -> Result<Begin, JournalError> {
        let window = self.order_id_window();
        self.write(|tx| {
            let setup = by_local_id_in(tx, setup_local_id)?;
            if !setup.setup || !setup.is_open() || setup.phase != Phase::Created || setup.device_id != p.device_id {
                return Err(JournalError::InvalidPhase {
                    local_id: setup_local_id.to_string(),
                    phase: setup.phase,
                    action: "promote a cart that is not an open setup transaction of this device",
                });
            }
            let scopes = scopes(&p);
            if let Some(outcome) = attach_or_busy(tx, &p, &scopes, true, window)? {
                return Ok(outcome);
            }
            tx.prepare_cached(
                "UPDATE transactions SET setup = 0, order_id = ?2, idempotency_key = ?3, amount = ?4, \
                 currency = ?5, request_json = ?6, product_sum_mismatch = ?7, updated_at = ?8 WHERE id = ?1",
            )?
            .execute(params![
                setup.id,
                p.order_id,
                p.idempotency_key,
                p.amount.0,
                p.currency.code(),
                json_text(&p.request_json)?,
                p.product_sum_mismatch,
                p.now_ms
            ])?;
            write_idempotency(tx, setup.id, &scopes, p.now_ms)?;
            Ok(Begin::Started(by_id(tx, setup.id)?))
        })
    }

    /// Records SensePass's answer to the create call: the TransactionNumber, the first status and
    /// entity. Also adds the first status event (source `Api`).
    ///
    /// Allowed from `Intent` and `CreateUnknown` (the reconciler found it), and from
    /// `CreateFailed` because SensePass is the truth: if it says the transaction exists, the
    /// journal records that. Already `Created` with the same number: applied as a status
    /// observation. A different number is [`JournalError::NumberMismatch`]; a number that belongs
    /// to another payment is [`JournalError::NumberTaken`].
    pub fn record_created(
        &self,
        local_id: &str,
        number: &str,
        status: Status,
        entity: &Value,
        now_ms: i64,
    ) -> Result<PaymentRecord, JournalError> {
        self.write(|tx| {
            let rec = by_local_id_in(tx, local_id)?;
            if let Some(existing) = &rec.number {
                if existing != number {
                    return Err(JournalError::NumberMismatch {
                        local_id: local_id.to_string(),
                        existing: existing.clone(),
                        given: number.to_string(),
                    });
                }
                return Ok(apply_in(tx, rec, status, entity, EventSource::Api, now_ms, false)?.record);
            }
            if let Some(other) = one(tx, W_NUMBER, [number])? {
                if other.id != rec.id {
                    return Err(JournalError::NumberTaken(number.to_string()));
                }
            }
            if rec.phase == Phase::CreateFailed {
                tracing::warn!(%local_id, %number, "payment recorded as not created exists at SensePass");
            }
            tx.prepare_cached(
                "UPDATE transactions SET number = ?2, phase = ?3, status = ?4, entity_json = ?5, \
                 is_open = ?6, final_at = ?7, failure = NULL, updated_at = ?8 WHERE id = ?1",
            )?
            .execute(params![
                rec.id,
                number,
                Phase::Created,
                status_code(status),
                json_text(entity)?,
                is_open(Phase::Created, Some(status), rec.resolved_at.is_some()),
                status.is_final().then_some(now_ms),
                now_ms
            ])?;
            insert_event(tx, rec.id, status, EventSource::Api, Transition::Advance, Some(entity), now_ms)?;
            by_id(tx, rec.id)
        })
    }

    /// Records that the create call certainly did not create a transaction (a validation error,
    /// a refused connection before sending). The payment ends; the device is free; the order may
    /// be tried again. Allowed from `Intent` and `CreateUnknown`; repeating it is harmless.
    pub fn record_create_failed(
        &self,
        local_id: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<PaymentRecord, JournalError> {
        self.write(|tx| {
            let rec = by_local_id_in(tx, local_id)?;
            match rec.phase {
                Phase::Intent | Phase::CreateUnknown => {}
                Phase::CreateFailed => return Ok(rec),
                Phase::Created => {
                    return Err(JournalError::InvalidPhase {
                        local_id: local_id.to_string(),
                        phase: rec.phase,
                        action: "record a create failure",
                    })
                }
            }
            tx.prepare_cached(
                "UPDATE transactions SET phase = ?2, is_open = 0, failure = ?3, final_at = ?4, \
                 updated_at = ?4 WHERE id = ?1",
            )?
            .execute(params![rec.id, Phase::CreateFailed, reason, now_ms])?;
            by_id(tx, rec.id)
        })
    }

    /// Records that the create call may or may not have reached SensePass (timeout, dropped
    /// connection, crash found at startup). The payment stays open — the device stays busy and the
    /// order attached — until the reconciler resolves it with [`Journal::record_created`] or
    /// [`Journal::record_create_failed`]. Allowed from `Intent`; from `CreateUnknown` it updates
    /// the reason.
    pub fn record_create_unknown(
        &self,
        local_id: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<PaymentRecord, JournalError> {
        self.write(|tx| {
            let rec = by_local_id_in(tx, local_id)?;
            if !matches!(rec.phase, Phase::Intent | Phase::CreateUnknown) {
                return Err(JournalError::InvalidPhase {
                    local_id: local_id.to_string(),
                    phase: rec.phase,
                    action: "record an uncertain create",
                });
            }
            tx.prepare_cached(
                "UPDATE transactions SET phase = ?2, is_open = 1, failure = ?3, updated_at = ?4 \
                 WHERE id = ?1",
            )?
            .execute(params![rec.id, Phase::CreateUnknown, reason, now_ms])?;
            by_id(tx, rec.id)
        })
    }

    /// Applies a status observed for the transaction `number`, from any source, in any order.
    ///
    /// Always inserts a `status_events` row (so the audit trail shows duplicates and stale
    /// events too). The status and entity change only on [`Transition::Advance`]; on
    /// [`Transition::Same`] the entity is refreshed (new confirmations); on
    /// [`Transition::Ignore`] nothing changes. A status never moves backwards.
    pub fn apply_status(
        &self,
        number: &str,
        status: Status,
        entity: &Value,
        source: EventSource,
        now_ms: i64,
    ) -> Result<Applied, JournalError> {
        self.apply_observation(number, status, entity, source, now_ms, |_| false)
    }

    /// As [`Journal::apply_status`], with a caller's test of staleness that the status code alone
    /// cannot express, run inside the same transaction on the current record: when it returns
    /// true the observation is recorded as ignored. The agent uses it for refunds — a status 12
    /// carrying fewer refund confirmations than the journal already holds is an old event, not a
    /// new refund — so the journal needs no knowledge of SensePass's entity.
    pub fn apply_observation(
        &self,
        number: &str,
        status: Status,
        entity: &Value,
        source: EventSource,
        now_ms: i64,
        stale: impl FnOnce(&PaymentRecord) -> bool,
    ) -> Result<Applied, JournalError> {
        self.write(|tx| {
            let rec = by_number_in(tx, number)?;
            let is_stale = stale(&rec);
            apply_in(tx, rec, status, entity, source, now_ms, is_stale)
        })
    }

    /// Records that the payment commit (`GET commitLink`) was acknowledged. Repeating it keeps
    /// the first time.
    pub fn record_commit(&self, number: &str, now_ms: i64) -> Result<PaymentRecord, JournalError> {
        self.write(|tx| {
            let rec = by_number_in(tx, number)?;
            tx.prepare_cached(
                "UPDATE transactions SET committed_at = COALESCE(committed_at, ?2), updated_at = ?2 \
                 WHERE id = ?1",
            )?
            .execute(params![rec.id, now_ms])?;
            by_id(tx, rec.id)
        })
    }

    /// Stores the `paymentCommit.commitLink` of an approved payment.
    pub fn set_commit_link(&self, number: &str, link: &str) -> Result<PaymentRecord, JournalError> {
        self.write(|tx| {
            let rec = by_number_in(tx, number)?;
            tx.prepare_cached("UPDATE transactions SET commit_link = ?2 WHERE id = ?1")?
                .execute(params![rec.id, link])?;
            by_id(tx, rec.id)
        })
    }

    /// Records a cart change of a payment that is still open (typically the "Setup" transaction
    /// the live cart is shown on): new amount, new request body, new mismatch flag.
    pub fn update_cart(
        &self,
        local_id: &str,
        amount: Minor,
        request_json: &Value,
        product_sum_mismatch: bool,
        now_ms: i64,
    ) -> Result<PaymentRecord, JournalError> {
        self.write(|tx| {
            let rec = by_local_id_in(tx, local_id)?;
            if !rec.is_open() {
                return Err(JournalError::InvalidPhase {
                    local_id: local_id.to_string(),
                    phase: rec.phase,
                    action: "update the cart of a finished payment",
                });
            }
            tx.prepare_cached(
                "UPDATE transactions SET amount = ?2, request_json = ?3, product_sum_mismatch = ?4, \
                 updated_at = ?5 WHERE id = ?1",
            )?
            .execute(params![rec.id, amount.0, json_text(request_json)?, product_sum_mismatch, now_ms])?;
            by_id(tx, rec.id)
        })
    }

    /// Closes a payment that has no outcome as not paid, by a manager's decision, once SensePass
    /// has confirmed it cannot be paid (it does not know the transaction): the way out of a
    /// payment stuck open. Records when and why (`resolution`), makes it no longer open (the
    /// device is free, the order may be tried again), and keeps its SensePass status as last
    /// observed, so that a later observation still moves it forward. Only an open, created
    /// payment ([`JournalError::InvalidPhase`] otherwise): an intent without a TransactionNumber
    /// is settled by reconciliation ([`Journal::record_create_failed`]). Repeating it keeps the
    /// first time and reason.
    pub fn resolve_payment(
        &self,
        local_id: &str,
        resolution: &str,
        now_ms: i64,
    ) -> Result<PaymentRecord, JournalError> {
        self.write(|tx| {
            let rec = by_local_id_in(tx, local_id)?;
            if rec.resolved_at.is_some() {
                return Ok(rec);
            }
            if !rec.is_open() || rec.phase != Phase::Created {
                return Err(JournalError::InvalidPhase {
                    local_id: local_id.to_string(),
                    phase: rec.phase,
                    action: "close a payment that is not open and created",
                });
            }
            tx.prepare_cached(
                "UPDATE transactions SET resolved_at = ?2, resolution = ?3, is_open = 0, \
                 final_at = COALESCE(final_at, ?2), updated_at = ?2 WHERE id = ?1",
            )?
            .execute(params![rec.id, now_ms, resolution])?;
            by_id(tx, rec.id)
        })
    }

    /// The payment with this local ID.
    pub fn by_local_id(&self, local_id: &str) -> Result<Option<PaymentRecord>, JournalError> {
        let conn = self.lock();
        one(&conn, "WHERE local_id = ?1", [local_id])
    }

    /// The payment with this SensePass TransactionNumber.
    pub fn by_number(&self, number: &str) -> Result<Option<PaymentRecord>, JournalError> {
        let conn = self.lock();
        one(&conn, W_NUMBER, [number])
    }

    /// The latest payment for this POS order ID (retries create several; the newest is the one
    /// that counts).
    pub fn by_order_id(&self, order_id: &str) -> Result<Option<PaymentRecord>, JournalError> {
        let conn = self.lock();
        one(&conn, W_ORDER_LATEST, [order_id])
    }

    /// Every payment for this POS order ID, oldest first.
    pub fn all_by_order_id(&self, order_id: &str) -> Result<Vec<PaymentRecord>, JournalError> {
        let conn = self.lock();
        many(
            &conn,
            "WHERE order_id = ?1 ORDER BY created_at, id",
            [order_id],
        )
    }

    /// The latest sale (setup carts excluded), of one device or of all: what
    /// `GET /api/transactions/last` answers after a dropped connection.
    pub fn last(&self, device_id: Option<&str>) -> Result<Option<PaymentRecord>, JournalError> {
        let conn = self.lock();
        match device_id {
            Some(device) => one(&conn, W_LAST_DEVICE, [device]),
            None => one(&conn, W_LAST_ANY, []),
        }
    }

    /// The open "Setup" cart transaction of a device, if any (the newest).
    pub fn open_setup(&self, device_id: &str) -> Result<Option<PaymentRecord>, JournalError> {
        let conn = self.lock();
        one(&conn, W_OPEN_SETUP, [device_id])
    }

    /// Payments with a refund in progress (status 12), oldest first: their outcome may have been
    /// missed, so they are re-read. Uses a partial index; cheap at any journal size.
    pub fn refunds_processing(&self) -> Result<Vec<PaymentRecord>, JournalError> {
        let conn = self.lock();
        many(&conn, "INDEXED BY transactions_refund_processing WHERE status = 12 ORDER BY created_at, id LIMIT 1000", [])
    }

    /// Every payment still waiting for an outcome (phase `Intent`/`CreateUnknown`, or created
    /// with a pre-payment status), setup carts included, oldest first: the reconciler's work list
    /// after a restart.
    pub fn open_payments(&self) -> Result<Vec<PaymentRecord>, JournalError> {
        let conn = self.lock();
        many(&conn, W_OPEN, [])
    }

    /// Captured payments whose payment commit has not been acknowledged, oldest first.
    pub fn uncommitted_approved(&self) -> Result<Vec<PaymentRecord>, JournalError> {
        let conn = self.lock();
        many(&conn, W_UNCOMMITTED, [])
    }

    /// The manager's journal view: filtered, newest first, paged, with the total match count.
    pub fn query(&self, q: &Query) -> Result<Page<PaymentRecord>, JournalError> {
        use rusqlite::types::Value as V;
        let mut clauses: Vec<String> = Vec::new();
        let mut args: Vec<V> = Vec::new();
        let mut push = |clause: &str, value: V, args: &mut Vec<V>| {
            args.push(value);
            clauses.push(clause.replace('?', &format!("?{}", args.len())));
        };
        if !q.include_setup {
            push("setup = ?", V::Integer(0), &mut args);
        }
        if let Some(from) = q.from_ms {
            push("created_at >= ?", V::Integer(from), &mut args);
        }
        if let Some(to) = q.to_ms {
            push("created_at < ?", V::Integer(to), &mut args);
        }
        if let Some(order) = &q.order_id {
            push("order_id = ?", V::Text(order.clone()), &mut args);
        }
        if let Some(text) = q.order_search.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            // LIKE ignores ASCII case; the text's own `%`, `_` and `\` are escaped so they match
            // themselves rather than acting as wildcards.
            let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            push("order_id LIKE ? ESCAPE '\\'", V::Text(format!("%{escaped}%")), &mut args);
        }
        if let Some(device) = &q.device_id {
            push("device_id = ?", V::Text(device.clone()), &mut args);
        }
        if let Some(min) = q.min_amount {
            push("amount >= ?", V::Integer(min.0), &mut args);
        }
        if let Some(max) = q.max_amount {
            push("amount <= ?", V::Integer(max.0), &mut args);
        }
        if let Some(currency) = q.currency {
            push(
                "currency = ?",
                V::Text(currency.code().to_string()),
                &mut args,
            );
        }
        if !q.status.is_empty() || q.include_not_created || q.include_closed {
            // Status codes are small integers from our own enum: safe to inline.
            // A payment a manager closed keeps its last (pending) SensePass status but is no
            // longer open: a filter for pending statuses does not find it (status_key: `closed`).
            let codes = |open: bool| -> Vec<String> {
                q.status.iter().filter(|s| s.is_open() == open).map(|s| s.code().to_string()).collect()
            };
            let (open_codes, final_codes) = (codes(true), codes(false));
            let mut any = Vec::new();
            if !final_codes.is_empty() {
                any.push(format!("status IN ({})", final_codes.join(", ")));
            }
            if !open_codes.is_empty() {
                any.push(format!("(status IN ({}) AND resolved_at IS NULL)", open_codes.join(", ")));
            }
            if q.include_not_created {
                any.push("(status IS NULL AND phase = 'create_failed')".to_string());
            }
            if q.include_closed {
                let pending: Vec<String> =
                    Status::ALL.iter().filter(|s| s.is_open()).map(|s| s.code().to_string()).collect();
                any.push(format!(
                    "(resolved_at IS NOT NULL AND (status IS NULL OR status IN ({})))",
                    pending.join(", ")
                ));
            }
            clauses.push(format!("({})", any.join(" OR ")));
        }
        let where_sql = if clauses.is_empty() {
            "1".to_string()
        } else {
            clauses.join(" AND ")
        };
        self.read(|tx| {
            let total: i64 = tx.query_row(
                &format!("SELECT COUNT(*) FROM transactions WHERE {where_sql}"),
                params_from_iter(args.iter()),
                |r| r.get(0),
            )?;
            let n = args.len();
            let mut page_args = args.clone();
            page_args.push(V::Integer(i64::from(q.limit)));
            page_args.push(V::Integer(i64::from(q.offset)));
            let items = many(
                tx,
                &format!(
                    "WHERE {where_sql} ORDER BY created_at DESC, id DESC LIMIT ?{} OFFSET ?{}",
                    n + 1,
                    n + 2
                ),
                params_from_iter(page_args.iter()),
            )?;
            Ok(Page {
                items,
                total: crate::count(total),
            })
        })
    }

    /// The status history of a payment, in order of arrival.
    pub fn events(&self, local_id: &str) -> Result<Vec<StatusEvent>, JournalError> {
        self.read(|tx| {
            let rec = by_local_id_in(tx, local_id)?;
            let mut stmt = tx.prepare_cached(
                &format!("SELECT {EVENT_COLS} FROM status_events WHERE transaction_id = ?1 ORDER BY id"),
            )?;
            let rows = stmt.query_map([rec.id], event_from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }
}

/// The columns of `status_events`, in the order [`event_from_row`] reads them.
pub(crate) const EVENT_COLS: &str = "id, status, source, transition, applied, at, entity_json";

/// Builds a [`StatusEvent`] from a row selected with [`EVENT_COLS`].
pub(crate) fn event_from_row(row: &Row<'_>) -> rusqlite::Result<StatusEvent> {
    let transition: String = row.get(3)?;
    Ok(StatusEvent {
        id: row.get(0)?,
        status: required_status_at(row, 1)?,
        source: row.get(2)?,
        transition: parse_transition(&transition)
            .ok_or_else(|| crate::bad_column(3, rusqlite::types::Type::Text, transition.clone()))?,
        applied: row.get(4)?,
        at: row.get(5)?,
        entity_json: opt_json_at(row, 6)?,
    })
}
