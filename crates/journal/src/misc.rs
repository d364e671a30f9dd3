//! Pairing, settings, idempotency housekeeping and summary numbers.

use crate::{count, Counts, Journal, JournalError, Pairing, Totals};
use rusqlite::{params, OptionalExtension};
use till_core::{Currency, Minor};

impl Journal {
    /// The paired device, if this till is paired.
    pub fn pairing(&self) -> Result<Option<Pairing>, JournalError> {
        let conn = self.lock();
        let pairing = conn
            .prepare_cached(
                "SELECT device_id, pos_name, environment, api_base, socket_url, client_box_url, \
                 paired_at FROM pairing WHERE id = 1",
            )?
            .query_row([], |row| {
                Ok(Pairing {
                    device_id: row.get(0)?,
                    pos_name: row.get(1)?,
                    environment: row.get(2)?,
                    api_base: row.get(3)?,
                    socket_url: row.get(4)?,
                    client_box_url: row.get(5)?,
                    paired_at: row.get(6)?,
                })
            })
            .optional()?;
        Ok(pairing)
    }

    /// Stores the pairing, replacing any previous one.
    pub fn set_pairing(&self, p: &Pairing) -> Result<(), JournalError> {
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO pairing (id, device_id, pos_name, environment, api_base, socket_url, \
                 client_box_url, paired_at) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (id) DO UPDATE SET device_id = excluded.device_id, \
                 pos_name = excluded.pos_name, environment = excluded.environment, \
                 api_base = excluded.api_base, socket_url = excluded.socket_url, \
                 client_box_url = excluded.client_box_url, paired_at = excluded.paired_at",
            )?
            .execute(params![
                p.device_id,
                p.pos_name,
                p.environment,
                p.api_base,
                p.socket_url,
                p.client_box_url,
                p.paired_at
            ])?;
            Ok(())
        })
    }

    /// Forgets the pairing (unpair). The payment history stays.
    pub fn clear_pairing(&self) -> Result<(), JournalError> {
        self.write(|tx| {
            tx.execute("DELETE FROM pairing", [])?;
            Ok(())
        })
    }

    /// A stored setting.
    pub fn setting(&self, key: &str) -> Result<Option<String>, JournalError> {
        let conn = self.lock();
        let value = conn
            .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?;
        Ok(value)
    }

    /// Stores a setting, replacing any previous value.
    pub fn set_setting(&self, key: &str, value: &str) -> Result<(), JournalError> {
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO settings (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![key, value])?;
            Ok(())
        })
    }

    /// Removes a setting; true if it existed.
    pub fn delete_setting(&self, key: &str) -> Result<bool, JournalError> {
        self.write(|tx| Ok(tx.execute("DELETE FROM settings WHERE key = ?1", [key])? > 0))
    }

    /// Deletes idempotency records that expired (`expires_at <= now_ms`); younger ones stay.
    /// Returns how many were deleted. The payments themselves are never deleted.
    pub fn purge_idempotency(&self, now_ms: i64) -> Result<usize, JournalError> {
        self.write(|tx| Ok(tx.execute("DELETE FROM idempotency WHERE expires_at <= ?1", [now_ms])?))
    }

    /// Headline numbers for the status page.
    pub fn counts(&self) -> Result<Counts, JournalError> {
        self.read(|tx| {
            let one = |sql: &str| -> Result<u64, JournalError> {
                Ok(count(tx.prepare_cached(sql)?.query_row([], |r| r.get(0))?))
            };
            let (pending, in_flight, failed): (i64, i64, i64) = tx
                .prepare_cached(
                    "SELECT COALESCE(SUM(state = 'pending'), 0), COALESCE(SUM(state = 'in_flight'), 0), \
                     COALESCE(SUM(state = 'failed' AND dismissed_at IS NULL), 0) FROM operations",
                )?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Ok(Counts {
                transactions: one("SELECT COUNT(*) FROM transactions")?,
                open_payments: one("SELECT COUNT(*) FROM transactions WHERE is_open = 1")?,
                uncommitted_approved: one(
                    "SELECT COUNT(*) FROM transactions \
                     WHERE committed_at IS NULL AND status IN (5, 11, 12, 13)",
                )?,
                pending_operations: count(pending),
                in_flight_operations: count(in_flight),
                failed_operations: count(failed),
            })
        })
    }

    /// End-of-day style totals per currency for `[from_ms, to_ms)`: sales created in the period
    /// that captured money, and refunds delivered in the period. Setup carts are not sales.
    pub fn totals(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Totals>, JournalError> {
        self.read(|tx| {
            let mut out: Vec<Totals> = Vec::new();
            let mut captured: Vec<(String, i64, i64)> = Vec::new();
            {
                let mut stmt = tx.prepare_cached(
                    "SELECT currency, COUNT(*), SUM(amount / 1000000000), SUM(amount % 1000000000) \
                     FROM transactions \
                     WHERE setup = 0 AND created_at >= ?1 AND created_at < ?2 \
                     AND status IN (5, 11, 12, 13) GROUP BY currency",
                )?;
                let rows = stmt.query_map([from_ms, to_ms], |r| {
                    Ok((r.get(0)?, r.get(1)?, split_sum(r.get(2)?, r.get(3)?)))
                })?;
                for row in rows {
                    captured.push(row?);
                }
            }
            let mut refunded: Vec<(String, i64)> = Vec::new();
            {
                let mut stmt = tx.prepare_cached(
                    "SELECT t.currency, SUM(o.amount / 1000000000), SUM(o.amount % 1000000000) \
                     FROM operations o \
                     JOIN transactions t ON t.id = o.transaction_id \
                     WHERE o.kind = 'refund' AND o.state = 'delivered' \
                     AND o.finished_at >= ?1 AND o.finished_at < ?2 GROUP BY t.currency",
                )?;
                let rows =
                    stmt.query_map([from_ms, to_ms], |r| Ok((r.get(0)?, split_sum(r.get(1)?, r.get(2)?))))?;
                for row in rows {
                    refunded.push(row?);
                }
            }
            for (code, n, sum) in captured {
                let i = totals_entry(&mut out, &code)?;
                out[i].captured_count = count(n);
                out[i].captured_amount = Minor(sum);
            }
            for (code, sum) in refunded {
                let i = totals_entry(&mut out, &code)?;
                out[i].refunded_amount = Minor(sum);
            }
            out.sort_by_key(|t| t.currency);
            Ok(out)
        })
    }
}

/// Combines a sum taken in two parts (`SUM(x / 10⁹)`, `SUM(x % 10⁹)`): neither part can overflow
/// SQLite's 64-bit integers for fewer than 9·10⁹ rows, where `SUM(x)` of two amounts near the
/// limit made the summary fail. The result saturates at `i64::MAX` (amounts are bounded far below
/// that by validation, so only a journal written before the bound existed can get there).
fn split_sum(high: Option<i64>, low: Option<i64>) -> i64 {
    let total = i128::from(high.unwrap_or(0)) * 1_000_000_000 + i128::from(low.unwrap_or(0));
    i64::try_from(total).unwrap_or(if total > 0 { i64::MAX } else { i64::MIN })
}

impl Journal {
    /// Number of sales (setup carts excluded) created in `[from_ms, to_ms)`, per currency and
    /// status, for the end-of-day summary. Payments SensePass never answered have no status and
    /// are counted under `None`.
    pub fn status_counts(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(Currency, Option<till_core::Status>, u64)>, JournalError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT currency, status, COUNT(*) FROM transactions \
                 WHERE setup = 0 AND created_at >= ?1 AND created_at < ?2 \
                 GROUP BY currency, status ORDER BY currency, status",
            )?;
            let rows = stmt.query_map([from_ms, to_ms], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?, r.get::<_, i64>(2)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (code, status, n) = row?;
                let currency =
                    Currency::from_code(&code).map_err(|e| JournalError::Corrupt(e.to_string()))?;
                let status = match status {
                    Some(c) => Some(till_core::Status::from_code(c).ok_or_else(|| {
                        JournalError::Corrupt(format!("unknown status code {c}"))
                    })?),
                    None => None,
                };
                out.push((currency, status, count(n)));
            }
            Ok(out)
        })
    }
}

impl Journal {
    /// Number of sales (setup carts excluded) created in `[from_ms, to_ms)` per currency and
    /// [`crate::status_key`] — the same names the journal view and its filter use, so that the
    /// end of day's "Failed 2" is what the "Failed" filter finds. Sorted by currency, then key.
    pub fn status_key_counts(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(Currency, &'static str, u64)>, JournalError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT currency, status, phase, resolved_at IS NOT NULL, COUNT(*) FROM transactions \
                 WHERE setup = 0 AND created_at >= ?1 AND created_at < ?2 \
                 GROUP BY currency, status, phase, resolved_at IS NOT NULL",
            )?;
            let rows = stmt.query_map([from_ms, to_ms], |r| {
                Ok((
                    crate::currency_at(r, 0)?,
                    crate::status_at(r, 1)?,
                    r.get::<_, crate::Phase>(2)?,
                    r.get::<_, bool>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })?;
            let mut out: Vec<(Currency, &'static str, u64)> = Vec::new();
            for row in rows {
                let (currency, status, phase, resolved, n) = row?;
                let key = crate::status_key(phase, status, resolved);
                match out.iter_mut().find(|(c, k, _)| *c == currency && *k == key) {
                    Some(entry) => entry.2 += count(n),
                    None => out.push((currency, key, count(n))),
                }
            }
            out.sort();
            Ok(out)
        })
    }
}

/// The index of `code`'s entry in `out`, adding an empty one if needed.
fn totals_entry(out: &mut Vec<Totals>, code: &str) -> Result<usize, JournalError> {
    let currency = Currency::from_code(code).map_err(|e| JournalError::Corrupt(e.to_string()))?;
    if let Some(i) = out.iter().position(|t| t.currency == currency) {
        return Ok(i);
    }
    out.push(Totals {
        currency,
        captured_count: 0,
        captured_amount: Minor::ZERO,
        refunded_amount: Minor::ZERO,
    });
    Ok(out.len() - 1)
}
