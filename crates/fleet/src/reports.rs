//! Chain-wide reporting: stores and tills, day totals, refunds pending, payment search. Each
//! report is one query shaped for an index of the schema (see docs/FLEET.md), returned as JSON
//! or CSV.

use crate::error::ApiError;
use deadpool_postgres::Pool;
use serde::Serialize;
use till_core::Status;
use till_gateway::PaymentState;
use time::OffsetDateTime;

/// A till is shown online when it was heard from within this many seconds (it sends a batch or
/// a heartbeat every few seconds).
pub const ONLINE_WITHIN_SECS: i64 = 60;

/// One till on the dashboard.
#[derive(Debug, Serialize)]
pub struct TillView {
    /// Id.
    pub id: uuid::Uuid,
    /// Store name.
    pub store: String,
    /// Till name.
    pub name: String,
    /// Heard from within [`ONLINE_WITHIN_SECS`].
    pub online: bool,
    /// Last batch or heartbeat (RFC 3339).
    pub last_seen: Option<String>,
    /// Agent version.
    pub version: Option<String>,
    /// The update channel the till follows, as its agent last reported it.
    pub channel: Option<String>,
    /// Outbox operations waiting at the till.
    pub queued_operations: i32,
    /// Changes the till had not shipped yet at its last batch.
    pub changes_behind: i64,
    /// Highest sequence number applied.
    pub cursor: i64,
    /// Revoked at, if revoked.
    pub revoked_at: Option<String>,
}

fn rfc3339(t: Option<OffsetDateTime>) -> Option<String> {
    t.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
}

/// Every till of every store, by store then name.
pub async fn tills(pool: &Pool) -> Result<Vec<TillView>, ApiError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT t.id, s.name, t.name, coalesce(t.last_seen_at > now() - make_interval(secs => $1), false), \
                    t.last_seen_at, t.version, t.queued_operations, t.changes_behind, t.cursor, t.revoked_at, t.update_channel \
             FROM tills t JOIN stores s ON s.id = t.store_id ORDER BY s.name, t.name",
            &[&(ONLINE_WITHIN_SECS as f64)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| TillView {
            id: r.get(0),
            store: r.get(1),
            name: r.get(2),
            online: r.get::<_, bool>(3) && r.get::<_, Option<OffsetDateTime>>(9).is_none(),
            last_seen: rfc3339(r.get(4)),
            version: r.get(5),
            queued_operations: r.get(6),
            changes_behind: r.get(7),
            cursor: r.get(8),
            revoked_at: rfc3339(r.get(9)),
            channel: r.get(10),
        })
        .collect())
}

/// How the day report counts a payment. One rule for both kinds of row: a SensePass payment's
/// status code and a gateway payment's neutral state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Money was taken (possibly refunded since).
    Sale,
    /// Still waiting for an outcome, or money only held (a pre-authorisation not yet collected).
    Open,
    /// Declined, failed, expired, cancelled or voided: no money taken.
    Decline,
}

impl Outcome {
    /// Classifies a row by its `status` (SensePass) or `state` (gateway payments).
    pub fn of(status: Option<i16>, state: Option<&str>) -> Outcome {
        if let Some(state) = state {
            return match state.parse::<PaymentState>() {
                Ok(PaymentState::Captured) => Outcome::Sale,
                Ok(s) if s.is_unsuccessful() => Outcome::Decline,
                // Pending, authorised (held, not taken), or a state this fleet does not know.
                _ => Outcome::Open,
            };
        }
        match status.and_then(|c| Status::from_code(i64::from(c))) {
            Some(s) if s.was_captured() => Outcome::Sale,
            Some(s) if s.is_open() => Outcome::Open,
            Some(_) => Outcome::Decline,
            // No status yet: the create call has not answered (or failed).
            None => Outcome::Open,
        }
    }
}

/// One line of the day report: a store, till, provider, tender and currency.
#[derive(Debug, Serialize, Default, Clone)]
pub struct DayLine {
    /// Store.
    pub store: String,
    /// Till.
    pub till: String,
    /// Provider.
    pub provider: String,
    /// Tender (card type or method), empty when unknown.
    pub tender: String,
    /// Currency.
    pub currency: String,
    /// Its minor-unit digits (ISO 4217 exponent), so the page shows amounts without a rule of its own.
    pub exponent: u32,
    /// The store's time zone: the day below runs from its local midnight.
    pub time_zone: String,
    /// The store's local day (YYYY-MM-DD) these totals are for.
    pub date: String,
    /// Payments where money was captured (approved, possibly refunded since).
    pub sales: i64,
    /// Their amount, minor units.
    pub sales_amount: i64,
    /// Declined, failed, timed-out or cancelled payments.
    pub declines: i64,
    /// Payments still waiting for an outcome.
    pub open: i64,
    /// Of the sales, those a decline-recovery service (FlexFactor) approved after the card was
    /// declined: a sale the store would otherwise have lost.
    pub recoveries: i64,
    /// Their amount, minor units.
    pub recovered_amount: i64,
}

/// The totals of one day (`None`: today) in each store's own time zone — from the store's local
/// midnight to the next — one line per store, till, provider, tender and currency. Setup carts
/// are not sales and are left out.
pub async fn day(pool: &Pool, date: Option<time::Date>) -> Result<Vec<DayLine>, ApiError> {
    let date = date.map(|d| d.to_string());
    let client = pool.get().await?;
    // One index range scan per store: for each store, its own day's bounds (from its time zone)
    // and `store_id = …` feed the index on (store_id, created_at) of the one or two month
    // partitions the day falls in (the others are pruned while the query runs). A plain join of
    // payments with the stores' bounds cannot be pruned or range-scanned — PostgreSQL read every
    // partition and filtered the join (BENCHMARKS.md §6: 10 M payments, before and after) — so the
    // per-store aggregate is a LATERAL subquery, which is evaluated once per store.
    let rows = client
        .query(
            "WITH d AS (SELECT s.id, s.name, s.time_zone, \
                        coalesce($1::text::date, (now() AT TIME ZONE s.time_zone)::date) AS day FROM stores s) \
             SELECT d.name, t.name, x.provider, x.tender, x.currency, x.status, x.n, x.amount, d.time_zone, d.day::text, x.state, x.recovered \
             FROM d CROSS JOIN LATERAL ( \
                 SELECT p.till_id, p.provider, coalesce(p.tender, '') AS tender, p.currency, p.status, p.state, \
                        p.recovered_by IS NOT NULL AS recovered, \
                        count(*) AS n, sum(CASE WHEN p.gateway THEN coalesce(p.captured, 0) ELSE p.amount END)::bigint AS amount \
                 FROM payments p \
                 WHERE p.store_id = d.id AND p.created_at >= (d.day::timestamp AT TIME ZONE d.time_zone) \
                   AND p.created_at < ((d.day + 1)::timestamp AT TIME ZONE d.time_zone) AND NOT p.setup \
                 GROUP BY 1, 2, 3, 4, 5, 6, 7) x \
             JOIN tills t ON t.id = x.till_id \
             ORDER BY 1, 2, 3, 4, 5",
            &[&date],
        )
        .await?;
    let mut lines: Vec<DayLine> = Vec::new();
    for r in rows {
        let key = (r.get::<_, String>(0), r.get::<_, String>(1), r.get::<_, String>(2), r.get::<_, String>(3), r.get::<_, String>(4));
        let outcome = Outcome::of(r.get(5), r.get::<_, Option<String>>(10).as_deref());
        let count: i64 = r.get(6);
        let amount: i64 = r.get(7);
        let line = match lines.last_mut() {
            Some(l) if (&l.store, &l.till, &l.provider, &l.tender, &l.currency) == (&key.0, &key.1, &key.2, &key.3, &key.4) => l,
            _ => {
                lines.push(DayLine {
                    store: key.0,
                    till: key.1,
                    provider: key.2,
                    tender: key.3,
                    exponent: exponent_of(&key.4),
                    currency: key.4,
                    time_zone: r.get(8),
                    date: r.get(9),
                    ..Default::default()
                });
                lines.last_mut().expect("just pushed")
            }
        };
        match outcome {
            Outcome::Sale => {
                line.sales += count;
                line.sales_amount += amount;
                if r.get::<_, bool>(11) {
                    line.recoveries += count;
                    line.recovered_amount += amount;
                }
            }
            Outcome::Open => line.open += count,
            Outcome::Decline => line.declines += count,
        }
    }
    Ok(lines)
}

/// A refund (or credit) still waiting at a till.
#[derive(Debug, Serialize)]
pub struct PendingRefund {
    /// Store.
    pub store: String,
    /// Till.
    pub till: String,
    /// The operation's key.
    pub op_key: String,
    /// `refund` or `credit`.
    pub kind: String,
    /// The payment's local id.
    pub payment_local_id: Option<String>,
    /// Minor units.
    pub amount: Option<i64>,
    /// `pending` or `in_flight`.
    pub state: String,
    /// Attempts so far.
    pub attempts: i64,
    /// Last error.
    pub last_error: Option<String>,
    /// Queued at.
    pub created_at: Option<String>,
}

/// Refunds and credits not yet delivered, oldest first.
pub async fn pending_refunds(pool: &Pool) -> Result<Vec<PendingRefund>, ApiError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT s.name, t.name, o.op_key, o.kind, o.payment_local_id, o.amount, o.state, o.attempts, o.last_error, o.created_at \
             FROM operations o JOIN tills t ON t.id = o.till_id JOIN stores s ON s.id = o.store_id \
             WHERE o.state IN ('pending', 'in_flight') AND o.kind IN ('refund', 'credit') \
             ORDER BY o.created_at LIMIT 1000",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| PendingRefund {
            store: r.get(0),
            till: r.get(1),
            op_key: r.get(2),
            kind: r.get(3),
            payment_local_id: r.get(4),
            amount: r.get(5),
            state: r.get(6),
            attempts: r.get(7),
            last_error: r.get(8),
            created_at: rfc3339(r.get(9)),
        })
        .collect())
}

/// A payment found by search.
#[derive(Debug, Serialize)]
pub struct FoundPayment {
    /// Store.
    pub store: String,
    /// Till.
    pub till: String,
    /// The till's key of the payment.
    pub local_id: String,
    /// Provider.
    pub provider: String,
    /// Provider transaction number.
    pub number: Option<String>,
    /// POS order id.
    pub order_id: Option<String>,
    /// Minor units.
    pub amount: i64,
    /// Currency.
    pub currency: String,
    /// Its minor-unit digits (ISO 4217 exponent).
    pub exponent: u32,
    /// Status code.
    pub status: Option<i16>,
    /// Status name.
    pub status_name: Option<&'static str>,
    /// A gateway payment's neutral state (`captured`, `declined`, …); SensePass payments have a
    /// status instead.
    pub state: Option<String>,
    /// Tender.
    pub tender: Option<String>,
    /// Last four digits.
    pub last_four: Option<String>,
    /// Created at.
    pub created_at: Option<String>,
}

/// What to search for: exactly one criterion (each has its own index).
#[derive(Debug, Default, serde::Deserialize)]
pub struct Search {
    /// POS order id (exact).
    pub order_id: Option<String>,
    /// Last four digits of the card.
    pub last_four: Option<String>,
    /// Amount in minor units.
    pub amount: Option<i64>,
}

/// The newest 100 payments matching the criterion, chain-wide.
pub async fn search(pool: &Pool, q: &Search) -> Result<Vec<FoundPayment>, ApiError> {
    let mut p = till_core::InvalidParameters::new();
    let given = [q.order_id.is_some(), q.last_four.is_some(), q.amount.is_some()].iter().filter(|b| **b).count();
    if given != 1 {
        p.push("order_id", "give exactly one of order_id, last_four, amount");
    }
    if let Some(l4) = &q.last_four {
        if l4.len() != 4 || !l4.bytes().all(|b| b.is_ascii_digit()) {
            p.push("last_four", "must be 4 digits");
        }
    }
    if q.amount.is_some_and(|a| a < 0) {
        p.push("amount", "must be minor units, not negative");
    }
    p.into_result()?;
    const SELECT: &str = "SELECT s.name, t.name, p.local_id, p.provider, p.number, p.order_id, p.amount, p.currency, \
         p.status, p.tender, p.last_four, p.created_at, p.state \
         FROM payments p JOIN tills t ON t.id = p.till_id JOIN stores s ON s.id = p.store_id";
    let client = pool.get().await?;
    let rows = if let Some(o) = &q.order_id {
        client.query(&format!("{SELECT} WHERE p.order_id = $1 ORDER BY p.created_at DESC LIMIT 100"), &[o]).await?
    } else if let Some(l4) = &q.last_four {
        client.query(&format!("{SELECT} WHERE p.last_four = $1 ORDER BY p.created_at DESC LIMIT 100"), &[l4]).await?
    } else {
        let a = q.amount.unwrap_or_default();
        client.query(&format!("{SELECT} WHERE p.amount = $1 ORDER BY p.created_at DESC LIMIT 100"), &[&a]).await?
    };
    Ok(rows
        .iter()
        .map(|r| {
            let status: Option<i16> = r.get(8);
            FoundPayment {
                store: r.get(0),
                till: r.get(1),
                local_id: r.get(2),
                provider: r.get(3),
                number: r.get(4),
                order_id: r.get(5),
                amount: r.get(6),
                exponent: exponent_of(&r.get::<_, String>(7)),
                currency: r.get(7),
                status,
                status_name: status.and_then(|c| Status::from_code(i64::from(c))).map(Status::display_name),
                tender: r.get(9),
                last_four: r.get(10),
                created_at: rfc3339(r.get(11)),
                state: r.get(12),
            }
        })
        .collect())
}

/// The minor-unit digits of a currency code (ingest only accepts codes `till_core` knows).
fn exponent_of(code: &str) -> u32 {
    till_core::Currency::from_code(code).map(till_core::Currency::exponent).unwrap_or(2)
}

/// Rows as CSV with a header line.
pub fn csv<T: Serialize>(rows: &[T]) -> Result<String, ApiError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r).map_err(|e| ApiError::Internal(format!("csv: {e}")))?;
    }
    let bytes = w.into_inner().map_err(|e| ApiError::Internal(format!("csv: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
