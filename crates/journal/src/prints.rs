//! The print queue (migration `0020`): receipts, test pages and drawer kicks for the printer.
//!
//! A job is journaled `queued` before anything is sent, claimed `sending` in its own committed
//! transaction immediately before the first byte goes to the printer, and `printed` after. The
//! `sending` mark is what makes a crash answerable: a job still `queued` after a crash certainly
//! never reached the printer and is printed once, normally; a job found `sending` may or may not
//! have reached it, and becomes `may_have_printed` ([`Journal::recover_print_jobs`]) instead of
//! being printed a second time.

use crate::{Journal, JournalError};
use rusqlite::{params, OptionalExtension, Row};

/// Where a print job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrintState {
    /// Waiting for the printer (new, or retried later because it was offline / out of paper).
    Queued,
    /// Claimed, bytes about to go or going to the printer.
    Sending,
    /// The printer received the whole job.
    Printed,
    /// Found `sending` after a crash: nobody can know whether it printed. Not retried by itself;
    /// a manager or the POS reprints when the paper is missing.
    MayHavePrinted,
    /// Will never print (the transaction disappeared, a drawer kick that failed).
    Failed,
}

impl PrintState {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PrintState::Queued => "queued",
            PrintState::Sending => "sending",
            PrintState::Printed => "printed",
            PrintState::MayHavePrinted => "may_have_printed",
            PrintState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<PrintState, JournalError> {
        Ok(match s {
            "queued" => PrintState::Queued,
            "sending" => PrintState::Sending,
            "printed" => PrintState::Printed,
            "may_have_printed" => PrintState::MayHavePrinted,
            "failed" => PrintState::Failed,
            other => return Err(JournalError::Corrupt(format!("print job state `{other}`"))),
        })
    }
}

/// A print job as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PrintJob {
    /// Row id; the API's job id.
    pub id: i64,
    /// Unique key: one job per key, so an approval seen twice or a request retried with the same
    /// `Idempotency-Key` never queues a second print.
    pub job_key: String,
    /// `receipt`, `test` or `drawer`.
    pub kind: String,
    /// The payment a receipt is for.
    pub local_id: Option<String>,
    /// `customer` or `merchant` (receipts).
    pub copy: Option<String>,
    /// Why it was asked for: `approval`, `refund`, `pos`, `console`, `settings`.
    pub reason: String,
    /// Where it is.
    pub state: PrintState,
    /// Attempts made to send it.
    pub attempts: i64,
    /// What went wrong last (printer offline, out of paper…), for the UI.
    pub last_error: Option<String>,
    /// When the worker tries it next (unix ms).
    pub next_at: i64,
    /// When it was asked for (unix ms).
    pub created_at: i64,
    /// When it last changed (unix ms).
    pub updated_at: i64,
    /// When it ended (printed, failed, may have printed).
    pub finished_at: Option<i64>,
}

/// A job to queue.
#[derive(Debug, Clone)]
pub struct NewPrintJob {
    /// See [`PrintJob::job_key`].
    pub job_key: String,
    /// See [`PrintJob::kind`].
    pub kind: String,
    /// See [`PrintJob::local_id`].
    pub local_id: Option<String>,
    /// See [`PrintJob::copy`].
    pub copy: Option<String>,
    /// See [`PrintJob::reason`].
    pub reason: String,
    /// Now, unix ms.
    pub now_ms: i64,
}

/// Jobs by state, for health and the UI ("2 receipts waiting").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PrintCounts {
    /// Queued or sending.
    pub waiting: i64,
    /// Marked "may have printed" and not yet looked at.
    pub may_have_printed: i64,
    /// Failed.
    pub failed: i64,
}

const SELECT: &str = "SELECT id, job_key, kind, local_id, copy, reason, state, attempts, last_error, next_at, \
     created_at, updated_at, finished_at FROM print_jobs";

fn from_row(row: &Row<'_>) -> rusqlite::Result<PrintJob> {
    let state: String = row.get(6)?;
    Ok(PrintJob {
        id: row.get(0)?,
        job_key: row.get(1)?,
        kind: row.get(2)?,
        local_id: row.get(3)?,
        copy: row.get(4)?,
        reason: row.get(5)?,
        state: PrintState::parse(&state)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(6, rusqlite::types::Type::Text, Box::new(e)))?,
        attempts: row.get(7)?,
        last_error: row.get(8)?,
        next_at: row.get(9)?,
        created_at: row.get(10)?,
        updated_at: row.get(11)?,
        finished_at: row.get(12)?,
    })
}

fn by_id(conn: &rusqlite::Connection, id: i64) -> Result<PrintJob, JournalError> {
    conn.prepare_cached(&format!("{SELECT} WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?
        .ok_or_else(|| JournalError::NotFound { what: "print job", key: id.to_string() })
}

impl Journal {
    /// Queues a job, due now. A `job_key` that exists already returns that job, unchanged
    /// (`false` as the second value).
    pub fn enqueue_print(&self, job: NewPrintJob) -> Result<(PrintJob, bool), JournalError> {
        self.write(|tx| {
            let existing: Option<i64> = tx
                .prepare_cached("SELECT id FROM print_jobs WHERE job_key = ?1")?
                .query_row([&job.job_key], |r| r.get(0))
                .optional()?;
            if let Some(id) = existing {
                return Ok((by_id(tx, id)?, false));
            }
            tx.prepare_cached(
                "INSERT INTO print_jobs (job_key, kind, local_id, copy, reason, state, next_at, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?6, ?6)",
            )?
            .execute(params![job.job_key, job.kind, job.local_id, job.copy, job.reason, job.now_ms])?;
            Ok((by_id(tx, tx.last_insert_rowid())?, true))
        })
    }

    /// Queued jobs due at `now_ms`, oldest first — drawer kicks excepted: they are sent by the
    /// request that asked for them, at once or never (receipts come out in the order they were asked for).
    pub fn due_print_jobs(&self, now_ms: i64) -> Result<Vec<PrintJob>, JournalError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(&format!("{SELECT} WHERE state = 'queued' AND kind != 'drawer' AND next_at <= ?1 ORDER BY id LIMIT 50"))?;
        let rows = stmt.query_map([now_ms], from_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// One job.
    pub fn print_job(&self, id: i64) -> Result<Option<PrintJob>, JournalError> {
        let conn = self.lock();
        match by_id(&conn, id) {
            Ok(j) => Ok(Some(j)),
            Err(JournalError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The newest jobs, newest first (at most `limit`), optionally of one payment.
    pub fn print_jobs(&self, local_id: Option<&str>, limit: i64) -> Result<Vec<PrintJob>, JournalError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "{SELECT} WHERE (?1 IS NULL OR local_id = ?1) ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![local_id, limit], from_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Counts for health.
    pub fn print_counts(&self) -> Result<PrintCounts, JournalError> {
        let conn = self.lock();
        let counts = conn
            .prepare_cached(
                "SELECT COALESCE(SUM(state IN ('queued', 'sending')), 0), COALESCE(SUM(state = 'may_have_printed'), 0), \
                 COALESCE(SUM(state = 'failed'), 0) FROM print_jobs",
            )?
            .query_row([], |r| Ok(PrintCounts { waiting: r.get(0)?, may_have_printed: r.get(1)?, failed: r.get(2)? }))?;
        Ok(counts)
    }

    /// Claims a queued job (`queued` → `sending`, one more attempt), committed before the first
    /// byte is written. `None` when it is no longer queued (another sender has it).
    pub fn claim_print_job(&self, id: i64, now_ms: i64) -> Result<Option<PrintJob>, JournalError> {
        self.write(|tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE print_jobs SET state = 'sending', attempts = attempts + 1, updated_at = ?2 \
                     WHERE id = ?1 AND state = 'queued'",
                )?
                .execute(params![id, now_ms])?;
            if n == 0 {
                return Ok(None);
            }
            Ok(Some(by_id(tx, id)?))
        })
    }

    /// Ends a job: `printed`, `failed` or `may_have_printed` (with the reason, if any).
    pub fn finish_print_job(&self, id: i64, state: PrintState, error: Option<&str>, now_ms: i64) -> Result<PrintJob, JournalError> {
        self.write(|tx| {
            tx.prepare_cached(
                "UPDATE print_jobs SET state = ?2, last_error = COALESCE(?3, last_error), updated_at = ?4, finished_at = ?4 WHERE id = ?1",
            )?
            .execute(params![id, state.as_str(), error, now_ms])?;
            by_id(tx, id)
        })
    }

    /// Puts a job back in the queue (nothing reached the printer, or a job cut short that is sent
    /// whole again), due at `next_at`, with the reason it did not print.
    pub fn retry_print_job(&self, id: i64, error: &str, next_at: i64, now_ms: i64) -> Result<PrintJob, JournalError> {
        self.write(|tx| {
            tx.prepare_cached(
                "UPDATE print_jobs SET state = 'queued', last_error = ?2, next_at = ?3, updated_at = ?4 WHERE id = ?1",
            )?
            .execute(params![id, error, next_at, now_ms])?;
            by_id(tx, id)
        })
    }

    /// After a restart: every job left `sending` by a crash becomes `may_have_printed` (see the
    /// module documentation), and a drawer kick still queued becomes `failed` (a drawer must not
    /// spring open minutes after it was asked for). Returns how many jobs changed.
    pub fn recover_print_jobs(&self, now_ms: i64) -> Result<usize, JournalError> {
        self.write(|tx| {
            let drawers = tx
                .prepare_cached(
                    "UPDATE print_jobs SET state = 'failed', last_error = 'the agent stopped before the drawer was opened', \
                     updated_at = ?1, finished_at = ?1 WHERE kind = 'drawer' AND state = 'queued'",
                )?
                .execute([now_ms])?;
            Ok(drawers + tx
                .prepare_cached(
                    "UPDATE print_jobs SET state = 'may_have_printed', last_error = 'the agent stopped while this job was \
                     being sent: it may have printed', updated_at = ?1, finished_at = ?1 WHERE state = 'sending'",
                )?
                .execute([now_ms])?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(key: &str) -> NewPrintJob {
        NewPrintJob { job_key: key.into(), kind: "receipt".into(), local_id: Some("L1".into()), copy: Some("customer".into()), reason: "pos".into(), now_ms: 10 }
    }

    #[test]
    fn queue_claim_retry_finish_recover() {
        let j = Journal::open_in_memory().unwrap();
        let (a, new) = j.enqueue_print(job("a")).unwrap();
        assert!(new);
        let (again, new) = j.enqueue_print(job("a")).unwrap();
        assert!(!new);
        assert_eq!(again.id, a.id);
        assert_eq!(j.due_print_jobs(10).unwrap().len(), 1);
        let claimed = j.claim_print_job(a.id, 11).unwrap().unwrap();
        assert_eq!((claimed.state, claimed.attempts), (PrintState::Sending, 1));
        assert!(j.claim_print_job(a.id, 11).unwrap().is_none(), "claimed once");
        j.retry_print_job(a.id, "out of paper", 100, 12).unwrap();
        assert!(j.due_print_jobs(50).unwrap().is_empty());
        assert_eq!(j.print_counts().unwrap().waiting, 1);
        j.claim_print_job(a.id, 100).unwrap().unwrap();
        let done = j.finish_print_job(a.id, PrintState::Printed, None, 101).unwrap();
        assert_eq!(done.state, PrintState::Printed);

        let (b, _) = j.enqueue_print(job("b")).unwrap();
        j.claim_print_job(b.id, 200).unwrap().unwrap();
        assert_eq!(j.recover_print_jobs(300).unwrap(), 1);
        assert_eq!(j.print_job(b.id).unwrap().unwrap().state, PrintState::MayHavePrinted);
        assert_eq!(j.print_counts().unwrap(), PrintCounts { waiting: 0, may_have_printed: 1, failed: 0 });
        assert_eq!(j.print_jobs(Some("L1"), 10).unwrap().len(), 2);
    }
}
