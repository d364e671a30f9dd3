//! Payments of the providers behind the gateway seam (Paymentsense Connect-E first), their
//! money-out operations and cards on file (migration `0011`).
//!
//! The rows hold the neutral model of `till-gateway` as plain columns: provider, provider
//! reference, kind, neutral state, the three amounts, expiry. This crate stores them as text and
//! numbers and enforces what SQL can enforce atomically (the amounts never shrink, refunds and
//! collections never exceed what is available counting the ones in flight, one row per card of a
//! customer); the agent maps them to `till_gateway::Payment`, where the transition rule lives.
//!
//! The provider reference of a Connect-E payment (its access token) and a card's cross reference
//! are capabilities: they are stored (recovery needs them) but never shown by `Debug`.

use crate::{bad_column, currency_at, json_text, opt_json_at, Journal, JournalError, Phase};
use rusqlite::types::Type;
use rusqlite::{params, OptionalExtension, Row};
use serde_json::Value;
use std::fmt;
use till_core::{Currency, Minor};

/// A payment of a gateway provider, as journaled.
#[derive(Clone, PartialEq, Eq)]
pub struct GatewayPaymentRecord {
    /// Row id (orders records created in the same millisecond).
    pub id: i64,
    /// Our id, known before the provider answers; the local API's `id`.
    pub local_id: String,
    /// `connect-e`, … (`till_gateway::ProviderId::as_str`).
    pub provider: String,
    /// The provider's handle (Connect-E: the access token) once known. A capability.
    pub provider_ref: Option<String>,
    /// `sale` or `preauth`.
    pub kind: String,
    /// The merchant's order reference.
    pub order_id: String,
    /// What was asked for, minor units.
    pub amount: Minor,
    /// Its currency.
    pub currency: Currency,
    /// How far the create call got.
    pub phase: Phase,
    /// Neutral state (`till_gateway::PaymentState::as_str`).
    pub state: String,
    /// Authorised, minor units (only grows).
    pub authorized: Minor,
    /// Captured, minor units (only grows; at most `authorized`).
    pub captured: Minor,
    /// Refunded, minor units (only grows; at most `captured`).
    pub refunded: Minor,
    /// When the customer's window closes (unix ms).
    pub expires_at: Option<i64>,
    /// Mail / telephone order: keyed by the cashier.
    pub moto: bool,
    /// Pauses after authentication until resumed.
    pub wait_pre_execute: bool,
    /// The merchant's customer id (cards on file are kept per customer).
    pub customer_id: Option<String>,
    /// The card on file this payment charges again.
    pub card_id: Option<i64>,
    /// Card scheme, once known.
    pub card_type: Option<String>,
    /// Masked card number as the provider masks it, once known.
    pub card_masked: Option<String>,
    /// Card expiry `MM/YY`, once known.
    pub card_expiry: Option<String>,
    /// The card's cross reference (charging it again, refunds, collections). A capability.
    pub cross_reference: Option<String>,
    /// The issuer's authorisation code.
    pub auth_code: Option<String>,
    /// Decline reason, what a pending payment awaits, the provider's raw status (redacted JSON).
    pub detail: Option<Value>,
    /// When the intent was journaled (unix ms).
    pub created_at: i64,
    /// Last change (unix ms).
    pub updated_at: i64,
    /// When it left `pending` (unix ms).
    pub final_at: Option<i64>,
    /// Decline recovery (FlexFactor): opt-out, the card's vault token (a capability, never a card
    /// number), the held decline, the evaluate intent and outcome (migration `0040`). Kept on
    /// the row so that the payment's state and its recovery change in one transaction.
    pub recovery: Option<Value>,
    /// The card's vault token at the recovery service (FlexFactor): a capability (the JSON of
    /// `recovery` is redacted and would drop it). Never a card number.
    pub recovery_ref: Option<String>,
}

impl fmt::Debug for GatewayPaymentRecord {
    /// Redaction-safe: the token and the cross reference move money; the customer id is personal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayPaymentRecord")
            .field("local_id", &self.local_id)
            .field("provider", &self.provider)
            .field("provider_ref", &self.provider_ref.as_ref().map(|_| "***"))
            .field("kind", &self.kind)
            .field("order_id", &self.order_id)
            .field("amount", &self.amount)
            .field("currency", &self.currency)
            .field("phase", &self.phase)
            .field("state", &self.state)
            .field("authorized", &self.authorized)
            .field("captured", &self.captured)
            .field("refunded", &self.refunded)
            .field("customer_id", &self.customer_id.as_ref().map(|_| "***"))
            .field("cross_reference", &self.cross_reference.as_ref().map(|_| "***"))
            .field("recovery", &self.recovery.as_ref().map(|_| "***"))
            .field("recovery_ref", &self.recovery_ref.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

/// A new payment intent.
#[derive(Clone)]
pub struct NewGatewayPayment {
    /// Our id.
    pub local_id: String,
    /// Provider name.
    pub provider: String,
    /// `sale` or `preauth`.
    pub kind: String,
    /// Merchant order reference.
    pub order_id: String,
    /// Minor units.
    pub amount: Minor,
    /// Currency.
    pub currency: Currency,
    /// MOTO.
    pub moto: bool,
    /// Wait pre-execute.
    pub wait_pre_execute: bool,
    /// Customer id, if any.
    pub customer_id: Option<String>,
    /// The card on file to charge again, if any (its cross reference is copied to the row).
    pub card_id: Option<i64>,
    /// Decline recovery as it starts (enabled or opted out), if the till has a recovery service.
    pub recovery: Option<Value>,
    /// Now (unix ms).
    pub now_ms: i64,
}

/// A money-out operation on a gateway payment.
#[derive(Clone, PartialEq, Eq)]
pub struct GatewayOpRecord {
    /// Row id.
    pub id: i64,
    /// Stable key (ours, or the POS's `Idempotency-Key`): a retried request finds it.
    pub op_key: String,
    /// The payment's local id.
    pub payment_local_id: String,
    /// `capture`, `refund` or `void`.
    pub kind: String,
    /// Minor units (0 for a void).
    pub amount: Minor,
    /// `pending` (nothing sent), `prepared` (may have been sent: reconcile first), `approved`,
    /// `declined`, `failed` (certainly not performed, given up).
    pub state: String,
    /// The provider's single-use handle minted for it (Connect-E token). A capability.
    pub ticket_ref: Option<String>,
    /// Attempts so far.
    pub attempts: i64,
    /// When the worker next looks at it (unix ms).
    pub next_at: i64,
    /// The last failure, for the manager.
    pub last_error: Option<String>,
    /// The provider's answer (redacted JSON) once final.
    pub outcome: Option<Value>,
    /// Journaled at (unix ms).
    pub created_at: i64,
    /// Last change (unix ms).
    pub updated_at: i64,
    /// When it reached a final state (unix ms).
    pub finished_at: Option<i64>,
}

impl fmt::Debug for GatewayOpRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayOpRecord")
            .field("id", &self.id)
            .field("op_key", &self.op_key)
            .field("payment_local_id", &self.payment_local_id)
            .field("kind", &self.kind)
            .field("amount", &self.amount)
            .field("state", &self.state)
            .field("ticket_ref", &self.ticket_ref.as_ref().map(|_| "***"))
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// A new money-out operation.
#[derive(Debug, Clone)]
pub struct NewGatewayOp {
    /// Stable key.
    pub op_key: String,
    /// The payment's local id.
    pub payment_local_id: String,
    /// `capture`, `refund` or `void`.
    pub kind: String,
    /// Minor units (0 for a void).
    pub amount: Minor,
    /// Now (unix ms).
    pub now_ms: i64,
}

/// What [`Journal::begin_gateway_op`] did.
#[derive(Debug, Clone)]
pub enum GatewayOpBegin {
    /// A new operation, journaled and due.
    Started(GatewayOpRecord),
    /// The key was used before: this is that operation (unchanged).
    Existing(GatewayOpRecord),
    /// The amount exceeds what is available counting operations in flight; nothing journaled.
    Exceeds {
        /// What is left.
        available: Minor,
    },
}

/// A card on file.
#[derive(Clone, PartialEq, Eq)]
pub struct CardRecord {
    /// Row id: the local API's `cardId`.
    pub id: i64,
    /// Provider name.
    pub provider: String,
    /// The merchant's customer id.
    pub customer_id: String,
    /// The provider's reference to charge the card again. A capability.
    pub cross_reference: String,
    /// Scheme (`VISA`, …).
    pub card_type: Option<String>,
    /// Masked number (never a full number: the schema refuses one).
    pub masked: String,
    /// Expiry year (four digits).
    pub expiry_year: u16,
    /// Expiry month 1–12.
    pub expiry_month: u8,
    /// First stored (unix ms).
    pub created_at: i64,
    /// Last refreshed by a payment on it (unix ms).
    pub updated_at: i64,
}

impl fmt::Debug for CardRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardRecord")
            .field("id", &self.id)
            .field("provider", &self.provider)
            .field("card_type", &self.card_type)
            .field("masked", &self.masked)
            .field("expiry", &(self.expiry_month, self.expiry_year))
            .finish_non_exhaustive()
    }
}

/// A card to remember (after an approved payment of a customer).
#[derive(Clone)]
pub struct NewCard {
    /// Provider name.
    pub provider: String,
    /// Customer id.
    pub customer_id: String,
    /// Cross reference.
    pub cross_reference: String,
    /// Scheme.
    pub card_type: Option<String>,
    /// Masked number.
    pub masked: String,
    /// Expiry year.
    pub expiry_year: u16,
    /// Expiry month.
    pub expiry_month: u8,
    /// Now (unix ms).
    pub now_ms: i64,
}

pub(crate) const GP_COLS: &str = "g.id, g.local_id, g.provider, g.provider_ref, g.kind, g.order_id, g.amount, \
    g.currency, g.phase, g.state, g.authorized, g.captured, g.refunded, g.expires_at, g.moto, \
    g.wait_pre_execute, g.customer_id, g.card_id, g.card_type, g.card_masked, g.card_expiry, \
    g.cross_reference, g.auth_code, g.detail_json, g.created_at, g.updated_at, g.final_at, \
    g.recovery_json, g.recovery_ref";

pub(crate) fn gp_from_row(row: &Row<'_>) -> rusqlite::Result<GatewayPaymentRecord> {
    Ok(GatewayPaymentRecord {
        id: row.get(0)?,
        local_id: row.get(1)?,
        provider: row.get(2)?,
        provider_ref: row.get(3)?,
        kind: row.get(4)?,
        order_id: row.get(5)?,
        amount: Minor(row.get(6)?),
        currency: currency_at(row, 7)?,
        phase: row.get(8)?,
        state: row.get(9)?,
        authorized: Minor(row.get(10)?),
        captured: Minor(row.get(11)?),
        refunded: Minor(row.get(12)?),
        expires_at: row.get(13)?,
        moto: row.get::<_, i64>(14)? == 1,
        wait_pre_execute: row.get::<_, i64>(15)? == 1,
        customer_id: row.get(16)?,
        card_id: row.get(17)?,
        card_type: row.get(18)?,
        card_masked: row.get(19)?,
        card_expiry: row.get(20)?,
        cross_reference: row.get(21)?,
        auth_code: row.get(22)?,
        detail: opt_json_at(row, 23)?,
        created_at: row.get(24)?,
        updated_at: row.get(25)?,
        final_at: row.get(26)?,
        recovery: opt_json_at(row, 27)?,
        recovery_ref: row.get(28)?,
    })
}

pub(crate) const OP_COLS: &str = "o.id, o.op_key, g.local_id, o.kind, o.amount, o.state, o.ticket_ref, \
    o.attempts, o.next_at, o.last_error, o.outcome_json, o.created_at, o.updated_at, o.finished_at";

pub(crate) fn op_from_row(row: &Row<'_>) -> rusqlite::Result<GatewayOpRecord> {
    Ok(GatewayOpRecord {
        id: row.get(0)?,
        op_key: row.get(1)?,
        payment_local_id: row.get(2)?,
        kind: row.get(3)?,
        amount: Minor(row.get(4)?),
        state: row.get(5)?,
        ticket_ref: row.get(6)?,
        attempts: row.get(7)?,
        next_at: row.get(8)?,
        last_error: row.get(9)?,
        outcome: opt_json_at(row, 10)?,
        created_at: row.get(11)?,
        updated_at: row.get(12)?,
        finished_at: row.get(13)?,
    })
}

const CARD_COLS: &str = "id, provider, customer_id, cross_reference, card_type, masked, \
    expiry_year, expiry_month, created_at, updated_at";

fn card_from_row(row: &Row<'_>) -> rusqlite::Result<CardRecord> {
    let year: i64 = row.get(6)?;
    let month: i64 = row.get(7)?;
    Ok(CardRecord {
        id: row.get(0)?,
        provider: row.get(1)?,
        customer_id: row.get(2)?,
        cross_reference: row.get(3)?,
        card_type: row.get(4)?,
        masked: row.get(5)?,
        expiry_year: u16::try_from(year)
            .map_err(|_| bad_column(6, Type::Integer, format!("expiry year {year}")))?,
        expiry_month: u8::try_from(month)
            .map_err(|_| bad_column(7, Type::Integer, format!("expiry month {month}")))?,
        created_at: row.get(8)?,
        updated_at: row.get(9)?,
    })
}

fn gp_where(
    conn: &rusqlite::Connection,
    tail: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<GatewayPaymentRecord>, JournalError> {
    let sql = format!("SELECT {GP_COLS} FROM gateway_payments g {tail}");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params, gp_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn gp_by_local_id(
    conn: &rusqlite::Connection,
    local_id: &str,
) -> Result<GatewayPaymentRecord, JournalError> {
    gp_where(conn, "WHERE g.local_id = ?1", [local_id])?
        .pop()
        .ok_or_else(|| JournalError::NotFound {
            what: "payment",
            key: local_id.to_string(),
        })
}

fn op_where(
    conn: &rusqlite::Connection,
    tail: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<GatewayOpRecord>, JournalError> {
    let sql = format!(
        "SELECT {OP_COLS} FROM gateway_operations o JOIN gateway_payments g ON g.id = o.payment_id {tail}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params, op_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn op_by_id(conn: &rusqlite::Connection, id: i64) -> Result<GatewayOpRecord, JournalError> {
    op_where(conn, "WHERE o.id = ?1", [id])?
        .pop()
        .ok_or_else(|| JournalError::NotFound {
            what: "operation",
            key: id.to_string(),
        })
}

/// Writes every mutable column of `r` (the row was read in the same transaction).
fn write_gp(conn: &rusqlite::Connection, r: &GatewayPaymentRecord) -> Result<(), JournalError> {
    let detail = r.detail.as_ref().map(json_text).transpose()?;
    let recovery = r.recovery.as_ref().map(json_text).transpose()?;
    conn.prepare_cached(
        "UPDATE gateway_payments SET provider_ref = ?2, phase = ?3, state = ?4, \
         authorized = MAX(authorized, ?5), captured = MAX(captured, ?6), refunded = MAX(refunded, ?7), \
         expires_at = ?8, card_type = ?9, card_masked = ?10, card_expiry = ?11, cross_reference = ?12, \
         auth_code = ?13, detail_json = ?14, updated_at = ?15, final_at = ?16, recovery_json = ?17, \
         recovery_ref = ?18 \
         WHERE id = ?1",
    )?
    .execute(params![
        r.id,
        r.provider_ref,
        r.phase,
        r.state,
        r.authorized.0,
        r.captured.0,
        r.refunded.0,
        r.expires_at,
        r.card_type,
        r.card_masked,
        r.card_expiry,
        r.cross_reference,
        r.auth_code,
        detail,
        r.updated_at,
        r.final_at,
        recovery,
        r.recovery_ref,
    ])?;
    Ok(())
}

/// Sums of operations of `kind` on payment row `payment_id` that may still move money.
fn in_flight(conn: &rusqlite::Connection, payment_id: i64, kind: &str) -> Result<Minor, JournalError> {
    let sum: i64 = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(amount), 0) FROM gateway_operations \
             WHERE payment_id = ?1 AND kind = ?2 AND state IN ('pending', 'prepared')",
        )?
        .query_row(params![payment_id, kind], |r| r.get(0))?;
    Ok(Minor(sum))
}

impl Journal {
    /// Journals the intent of a new gateway payment (pending, phase `intent`). A card on file
    /// must belong to the same provider and customer.
    pub fn begin_gateway_payment(
        &self,
        p: NewGatewayPayment,
    ) -> Result<GatewayPaymentRecord, JournalError> {
        self.write(|tx| {
            let cross_reference = match p.card_id {
                None => None,
                Some(card_id) => {
                    let card = card_by_id(tx, card_id)?;
                    if card.provider != p.provider
                        || Some(card.customer_id.as_str()) != p.customer_id.as_deref()
                    {
                        return Err(JournalError::NotFound {
                            what: "card of this customer",
                            key: card_id.to_string(),
                        });
                    }
                    Some(card.cross_reference)
                }
            };
            tx.prepare_cached(
                "INSERT INTO gateway_payments (local_id, provider, kind, order_id, amount, currency, \
                 phase, state, moto, wait_pre_execute, customer_id, card_id, cross_reference, \
                 created_at, updated_at, recovery_json) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'intent', 'pending', ?7, ?8, ?9, ?10, ?11, ?12, ?12, ?13)",
            )?
            .execute(params![
                p.local_id,
                p.provider,
                p.kind,
                p.order_id,
                p.amount.0,
                p.currency.code(),
                i64::from(p.moto),
                i64::from(p.wait_pre_execute),
                p.customer_id,
                p.card_id,
                cross_reference,
                p.now_ms,
                p.recovery.as_ref().map(json_text).transpose()?,
            ])?;
            gp_by_local_id(tx, &p.local_id)
        })
    }

    /// Reads a payment, lets `f` change it, and writes it back in one transaction (so an answer,
    /// a poll and the checkout page's report never overwrite each other). Amounts only grow
    /// whatever `f` does.
    pub fn update_gateway_payment<T>(
        &self,
        local_id: &str,
        f: impl FnOnce(&mut GatewayPaymentRecord) -> T,
    ) -> Result<(GatewayPaymentRecord, T), JournalError> {
        self.write(|tx| {
            let mut r = gp_by_local_id(tx, local_id)?;
            let out = f(&mut r);
            write_gp(tx, &r)?;
            Ok((gp_by_local_id(tx, local_id)?, out))
        })
    }

    /// The cart changed: a payment still pending, with nothing authorised, is to be made for
    /// `amount` (written before the provider is told, like every intent). `None` when it is no
    /// longer pending or something was authorised: its amount can no longer change.
    pub fn set_gateway_amount(
        &self,
        local_id: &str,
        amount: Minor,
        now_ms: i64,
    ) -> Result<Option<GatewayPaymentRecord>, JournalError> {
        self.write(|tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE gateway_payments SET amount = ?2, updated_at = ?3 \
                     WHERE local_id = ?1 AND state = 'pending' AND authorized = 0 AND captured = 0",
                )?
                .execute(params![local_id, amount.0, now_ms])?;
            if n == 0 {
                return Ok(None);
            }
            Ok(Some(gp_by_local_id(tx, local_id)?))
        })
    }

    /// One gateway payment by our id.
    pub fn gateway_payment(
        &self,
        local_id: &str,
    ) -> Result<Option<GatewayPaymentRecord>, JournalError> {
        self.read(|tx| Ok(gp_where(tx, "WHERE g.local_id = ?1", [local_id])?.pop()))
    }

    /// Every payment of an order, newest first.
    pub fn gateway_payments_for_order(
        &self,
        order_id: &str,
    ) -> Result<Vec<GatewayPaymentRecord>, JournalError> {
        self.read(|tx| gp_where(tx, "WHERE g.order_id = ?1 ORDER BY g.id DESC", [order_id]))
    }

    /// Payments still waiting for an outcome (pending, or the create call unanswered).
    pub fn open_gateway_payments(&self) -> Result<Vec<GatewayPaymentRecord>, JournalError> {
        self.read(|tx| {
            gp_where(
                tx,
                "INDEXED BY gateway_payments_open \
                 WHERE g.state = 'pending' OR g.phase IN ('intent', 'create_unknown') ORDER BY g.id",
                [],
            )
        })
    }

    /// The newest `limit` payments, optionally of one state, newest first.
    pub fn recent_gateway_payments(
        &self,
        state: Option<&str>,
        limit: u32,
    ) -> Result<Vec<GatewayPaymentRecord>, JournalError> {
        self.read(|tx| match state {
            Some(s) => gp_where(
                tx,
                "WHERE g.state = ?1 ORDER BY g.id DESC LIMIT ?2",
                params![s, limit],
            ),
            None => gp_where(tx, "ORDER BY g.id DESC LIMIT ?1", [limit]),
        })
    }

    /// Payments journaled in `[from_ms, to_ms)` (their intent's time), oldest first: the
    /// end-of-day summary's recoveries.
    pub fn gateway_payments_between(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<GatewayPaymentRecord>, JournalError> {
        self.read(|tx| {
            gp_where(
                tx,
                "INDEXED BY gateway_payments_created WHERE g.created_at >= ?1 AND g.created_at < ?2 ORDER BY g.created_at, g.id",
                params![from_ms, to_ms],
            )
        })
    }

    /// Journals a money-out operation, atomically checking that it fits: a refund at most what
    /// was captured minus refunded minus refunds in flight, a collection at most what was
    /// authorised minus captured minus collections in flight. A known `op_key` returns that
    /// operation unchanged.
    pub fn begin_gateway_op(&self, op: NewGatewayOp) -> Result<GatewayOpBegin, JournalError> {
        self.write(|tx| {
            if let Some(existing) = op_where(tx, "WHERE o.op_key = ?1", [&op.op_key])?.pop() {
                return Ok(GatewayOpBegin::Existing(existing));
            }
            let p = gp_by_local_id(tx, &op.payment_local_id)?;
            let available = match op.kind.as_str() {
                "refund" => Some(p.captured.0 - p.refunded.0 - in_flight(tx, p.id, "refund")?.0),
                "capture" => Some(p.authorized.0 - p.captured.0 - in_flight(tx, p.id, "capture")?.0),
                "void" => None,
                other => {
                    return Err(JournalError::InvalidOperation(format!(
                        "unknown operation kind {other}"
                    )))
                }
            };
            if let Some(available) = available {
                if op.amount.0 <= 0 {
                    return Err(JournalError::InvalidOperation(format!(
                        "{} amount must be positive",
                        op.kind
                    )));
                }
                if op.amount.0 > available {
                    return Ok(GatewayOpBegin::Exceeds {
                        available: Minor(available.max(0)),
                    });
                }
            }
            tx.prepare_cached(
                "INSERT INTO gateway_operations (op_key, payment_id, kind, amount, state, next_at, \
                 created_at, updated_at) VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?5, ?5)",
            )?
            .execute(params![op.op_key, p.id, op.kind, op.amount.0, op.now_ms])?;
            Ok(GatewayOpBegin::Started(op_by_id(tx, tx.last_insert_rowid())?))
        })
    }

    /// Records the provider handle minted for an operation, before it is sent: from now on it
    /// may have been sent, and is reconciled before anything is sent again.
    pub fn gateway_op_prepared(
        &self,
        id: i64,
        ticket_ref: &str,
        now_ms: i64,
    ) -> Result<GatewayOpRecord, JournalError> {
        self.write(|tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE gateway_operations SET state = 'prepared', ticket_ref = ?2, \
                     attempts = attempts + 1, updated_at = ?3 WHERE id = ?1 AND state = 'pending'",
                )?
                .execute(params![id, ticket_ref, now_ms])?;
            if n == 0 {
                return Err(JournalError::InvalidOperation(format!(
                    "operation {id} is not pending"
                )));
            }
            op_by_id(tx, id)
        })
    }

    /// Records an operation's final outcome (`approved`, `declined` or `failed`) and, in the same
    /// transaction, what it did to the payment (`f`, e.g. adding a refund to `refunded`).
    pub fn finish_gateway_op(
        &self,
        id: i64,
        state: &str,
        outcome: &Value,
        now_ms: i64,
        f: impl FnOnce(&mut GatewayPaymentRecord),
    ) -> Result<(GatewayOpRecord, GatewayPaymentRecord), JournalError> {
        self.write(|tx| {
            let op = op_by_id(tx, id)?;
            if !matches!(op.state.as_str(), "pending" | "prepared") {
                // Already final: the first outcome stands (a replayed answer changes nothing).
                let p = gp_by_local_id(tx, &op.payment_local_id)?;
                return Ok((op, p));
            }
            tx.prepare_cached(
                "UPDATE gateway_operations SET state = ?2, outcome_json = ?3, updated_at = ?4, \
                 finished_at = ?4 WHERE id = ?1",
            )?
            .execute(params![id, state, json_text(outcome)?, now_ms])?;
            let mut p = gp_by_local_id(tx, &op.payment_local_id)?;
            if state == "approved" {
                f(&mut p);
                p.updated_at = now_ms;
                write_gp(tx, &p)?;
            }
            Ok((op_by_id(tx, id)?, gp_by_local_id(tx, &op.payment_local_id)?))
        })
    }

    /// Puts an operation back to `pending` (certainly not performed: its ticket, if any, can no
    /// longer execute), due at `next_at`.
    pub fn gateway_op_retry(
        &self,
        id: i64,
        error: &str,
        next_at: i64,
        now_ms: i64,
    ) -> Result<GatewayOpRecord, JournalError> {
        self.write(|tx| {
            tx.prepare_cached(
                "UPDATE gateway_operations SET state = 'pending', ticket_ref = NULL, last_error = ?2, \
                 next_at = ?3, updated_at = ?4 WHERE id = ?1 AND state IN ('pending', 'prepared')",
            )?
            .execute(params![id, error, next_at, now_ms])?;
            op_by_id(tx, id)
        })
    }

    /// Leaves an operation as it is (its outcome is still unknown) and looks again at `next_at`.
    pub fn gateway_op_later(
        &self,
        id: i64,
        error: &str,
        next_at: i64,
        now_ms: i64,
    ) -> Result<GatewayOpRecord, JournalError> {
        self.write(|tx| {
            tx.prepare_cached(
                "UPDATE gateway_operations SET last_error = ?2, next_at = ?3, updated_at = ?4 \
                 WHERE id = ?1",
            )?
            .execute(params![id, error, next_at, now_ms])?;
            op_by_id(tx, id)
        })
    }

    /// Operations due for (re)sending or reconciling.
    pub fn due_gateway_ops(&self, now_ms: i64) -> Result<Vec<GatewayOpRecord>, JournalError> {
        self.read(|tx| {
            op_where(
                tx,
                "WHERE o.state IN ('pending', 'prepared') AND o.next_at <= ?1 ORDER BY o.next_at, o.id",
                [now_ms],
            )
        })
    }

    /// The operations of one payment, oldest first.
    pub fn gateway_ops_for(&self, local_id: &str) -> Result<Vec<GatewayOpRecord>, JournalError> {
        self.read(|tx| op_where(tx, "WHERE g.local_id = ?1 ORDER BY o.id", [local_id]))
    }

    /// An operation by its key.
    pub fn gateway_op_by_key(&self, op_key: &str) -> Result<Option<GatewayOpRecord>, JournalError> {
        self.read(|tx| Ok(op_where(tx, "WHERE o.op_key = ?1", [op_key])?.pop()))
    }

    /// An operation by its row id.
    pub fn gateway_op(&self, id: i64) -> Result<Option<GatewayOpRecord>, JournalError> {
        self.read(|tx| Ok(op_where(tx, "WHERE o.id = ?1", [id])?.pop()))
    }

    /// Remembers a customer's card (or refreshes the cross reference of a card already known).
    pub fn save_card(&self, c: NewCard) -> Result<CardRecord, JournalError> {
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO cards_on_file (provider, customer_id, cross_reference, card_type, masked, \
                 expiry_year, expiry_month, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8) \
                 ON CONFLICT (provider, customer_id, masked, expiry_year, expiry_month) DO UPDATE SET \
                 cross_reference = excluded.cross_reference, \
                 card_type = COALESCE(excluded.card_type, card_type), updated_at = excluded.updated_at",
            )?
            .execute(params![
                c.provider,
                c.customer_id,
                c.cross_reference,
                c.card_type,
                c.masked,
                i64::from(c.expiry_year),
                i64::from(c.expiry_month),
                c.now_ms,
            ])?;
            let id: i64 = tx
                .prepare_cached(
                    "SELECT id FROM cards_on_file WHERE provider = ?1 AND customer_id = ?2 \
                     AND masked = ?3 AND expiry_year = ?4 AND expiry_month = ?5",
                )?
                .query_row(
                    params![
                        c.provider,
                        c.customer_id,
                        c.masked,
                        i64::from(c.expiry_year),
                        i64::from(c.expiry_month)
                    ],
                    |r| r.get(0),
                )?;
            card_by_id(tx, id)
        })
    }

    /// A customer's cards with a provider, most recently used first (expired ones included:
    /// the caller hides them with the one expiry rule, `till_gateway::CardExpiry`).
    pub fn cards_for(&self, provider: &str, customer_id: &str) -> Result<Vec<CardRecord>, JournalError> {
        self.read(|tx| {
            let sql = format!(
                "SELECT {CARD_COLS} FROM cards_on_file WHERE provider = ?1 AND customer_id = ?2 \
                 ORDER BY updated_at DESC, id DESC"
            );
            let mut stmt = tx.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![provider, customer_id], card_from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// A card by id.
    pub fn card(&self, id: i64) -> Result<Option<CardRecord>, JournalError> {
        self.read(|tx| match card_by_id(tx, id) {
            Ok(c) => Ok(Some(c)),
            Err(JournalError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        })
    }
}

fn card_by_id(conn: &rusqlite::Connection, id: i64) -> Result<CardRecord, JournalError> {
    conn.prepare_cached(&format!("SELECT {CARD_COLS} FROM cards_on_file WHERE id = ?1"))?
        .query_row([id], card_from_row)
        .optional()?
        .ok_or_else(|| JournalError::NotFound {
            what: "card",
            key: id.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    fn new_payment(j: &Journal, local_id: &str, order: &str) -> GatewayPaymentRecord {
        j.begin_gateway_payment(NewGatewayPayment {
            local_id: local_id.into(),
            provider: "connect-e".into(),
            kind: "sale".into(),
            order_id: order.into(),
            amount: Minor(1000),
            currency: Currency::Gbp,
            moto: true,
            wait_pre_execute: false,
            customer_id: Some("c-1".into()),
            card_id: None,
            recovery: None,
            now_ms: T0,
        })
        .unwrap()
    }

    fn captured(j: &Journal, local_id: &str, amount: i64) {
        j.update_gateway_payment(local_id, |r| {
            r.phase = Phase::Created;
            r.state = "captured".into();
            r.authorized = Minor(amount);
            r.captured = Minor(amount);
        })
        .unwrap();
    }

    fn refund(j: &Journal, key: &str, local_id: &str, amount: i64) -> GatewayOpBegin {
        j.begin_gateway_op(NewGatewayOp {
            op_key: key.into(),
            payment_local_id: local_id.into(),
            kind: "refund".into(),
            amount: Minor(amount),
            now_ms: T0,
        })
        .unwrap()
    }

    #[test]
    fn refunds_are_capped_counting_those_in_flight_and_amounts_never_shrink() {
        let j = Journal::open_in_memory().unwrap();
        let p = new_payment(&j, "p1", "o1");
        assert_eq!(p.state, "pending");
        assert_eq!(p.phase, Phase::Intent);
        captured(&j, "p1", 1000);
        let GatewayOpBegin::Started(a) = refund(&j, "r1", "p1", 600) else { panic!() };
        assert!(matches!(refund(&j, "r2", "p1", 500), GatewayOpBegin::Exceeds { available } if available == Minor(400)));
        assert!(matches!(refund(&j, "r1", "p1", 600), GatewayOpBegin::Existing(e) if e.id == a.id));
        j.gateway_op_prepared(a.id, "tok", T0).unwrap();
        let (op, p) = j
            .finish_gateway_op(a.id, "approved", &serde_json::json!({"statusCode": 0}), T0, |p| {
                p.refunded = Minor(p.refunded.0 + 600)
            })
            .unwrap();
        assert_eq!(op.state, "approved");
        assert_eq!(p.refunded, Minor(600));
        // a second outcome changes nothing
        let (_, p) = j
            .finish_gateway_op(a.id, "approved", &serde_json::json!({}), T0, |p| {
                p.refunded = Minor(p.refunded.0 + 600)
            })
            .unwrap();
        assert_eq!(p.refunded, Minor(600));
        // a stale write cannot lower an amount
        let (p, ()) = j.update_gateway_payment("p1", |r| r.refunded = Minor(0)).unwrap();
        assert_eq!(p.refunded, Minor(600));
        assert!(matches!(refund(&j, "r3", "p1", 401), GatewayOpBegin::Exceeds { .. }));
        assert!(matches!(refund(&j, "r3", "p1", 400), GatewayOpBegin::Started(_)));
    }

    #[test]
    fn cards_are_one_row_per_card_and_never_a_full_number() {
        let j = Journal::open_in_memory().unwrap();
        let card = |xref: &str, masked: &str| NewCard {
            provider: "connect-e".into(),
            customer_id: "c-1".into(),
            cross_reference: xref.into(),
            card_type: Some("VISA".into()),
            masked: masked.into(),
            expiry_year: 2030,
            expiry_month: 12,
            now_ms: T0,
        };
        let a = j.save_card(card("x1", "445653******1096")).unwrap();
        let b = j.save_card(card("x2", "445653******1096")).unwrap();
        assert_eq!(a.id, b.id);
        assert_eq!(b.cross_reference, "x2");
        assert!(j.save_card(card("x3", "4456530000001096")).is_err(), "a PAN is refused");
        assert_eq!(j.cards_for("connect-e", "c-1").unwrap().len(), 1);
        assert!(j.cards_for("connect-e", "c-2").unwrap().is_empty());
        // the card is charged again only for its own customer
        let other = j.begin_gateway_payment(NewGatewayPayment {
            local_id: "p2".into(),
            provider: "connect-e".into(),
            kind: "sale".into(),
            order_id: "o2".into(),
            amount: Minor(100),
            currency: Currency::Gbp,
            moto: true,
            wait_pre_execute: false,
            customer_id: Some("c-2".into()),
            card_id: Some(a.id),
            recovery: None,
            now_ms: T0,
        });
        assert!(other.is_err());
        assert!(!format!("{b:?}").contains("x2"));
    }

    #[test]
    fn open_payments_and_orders() {
        let j = Journal::open_in_memory().unwrap();
        new_payment(&j, "p1", "o1");
        new_payment(&j, "p2", "o1");
        captured(&j, "p1", 1000);
        let open = j.open_gateway_payments().unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].local_id, "p2");
        let order = j.gateway_payments_for_order("o1").unwrap();
        assert_eq!(order[0].local_id, "p2");
        assert_eq!(j.recent_gateway_payments(Some("captured"), 10).unwrap().len(), 1);
    }
}

#[cfg(test)]
mod migration_tests {
    use crate::Journal;

    /// A journal written before `0011` (schema of `0010`, one SensePass payment) opens, gains the
    /// provider column with `sensepass` for its rows, and keeps working.
    #[test]
    fn an_old_journal_opens_and_its_payments_are_sensepass() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite3");
        {
            let mut conn = rusqlite::Connection::open(&path).unwrap();
            let old = rusqlite_migration::Migrations::from_slice(&crate::MIGRATIONS[..4]);
            old.to_latest(&mut conn).unwrap();
            conn.execute(
                "INSERT INTO transactions (local_id, number, device_id, amount, currency, phase, status, \
                 is_open, request_json, created_at, updated_at) \
                 VALUES ('l1', 'N1', 'd1', 100, 'USD', 'created', 5, 0, '{}', 1, 1)",
                [],
            )
            .unwrap();
        }
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.pragma("user_version").unwrap(), crate::schema_version().to_string());
        let provider: String = j
            .lock()
            .query_row("SELECT provider FROM transactions WHERE local_id = 'l1'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(provider, "sensepass");
        assert!(j.by_number("N1").unwrap().is_some());
        assert!(j.open_gateway_payments().unwrap().is_empty());
    }
}
