//! # till-journal
//!
//! The durable journal of Till Agent, on SQLite. It is what makes the agent's promises hold across
//! crashes: every intent (payment, refund, cancel, commit) is committed here *before* the network
//! call, and every outcome *after* it, so a `kill -9` at any point leaves a journal that says
//! exactly what might have happened and what still needs reconciling.
//!
//! It keeps:
//! - payments and their status history, with the rule that a status never moves backwards
//!   ([`Journal::apply_status`], using [`till_core::Status::transition`]);
//! - idempotency records, so one order or `Idempotency-Key` is never charged twice
//!   ([`Journal::begin_payment`]), and the one-open-payment-per-device rule;
//! - the outbox of operations to deliver (refunds, credits, cancels, commits) with the refund cap
//!   enforced atomically ([`Journal::enqueue_refund`]);
//! - the pairing and a few settings.
//!
//! What it is not: it makes no network calls, knows no SensePass wire format beyond storing
//! entities as JSON, and reads no clock (every `now_ms` comes from the caller so tests control
//! time; [`now_ms`] is the helper production code uses). It is the only crate in the project that
//! contains SQL.
//!
//! ## Schema (migration `0001_init.sql`, plus `operations.answer` from `0003`, the manager's
//! resolutions — `operations.dismissed_at`, `transactions.resolved_at`/`resolution` — from `0030`)
//!
//! | table | one row per | key columns |
//! |---|---|---|
//! | `transactions` | payment attempt or Setup cart | `local_id` (ours, UNIQUE), `number` (SensePass, UNIQUE), `phase`, `status`, `is_open`, `amount` + `currency` |
//! | `status_events` | status observation, applied or not | `transaction_id`, `status`, `source`, `transition`, `applied`, `at` |
//! | `idempotency` | order ID or Idempotency-Key, 31 days | (`scope`, `value`) → `transaction_id`, `expires_at` |
//! | `operations` | outbox operation | `op_key` (UNIQUE), `kind`, `state`, `next_at`, `amount` |
//! | `pairing` | the paired device (at most one) | `device_id`, URLs |
//! | `settings` | key/value | `key` |
//! | `print_jobs` | receipt, test page or drawer kick for the printer (migration `0020`) | `job_key` (UNIQUE), `state`, `next_at`, `local_id` |
//! | `changes` | insert/update/delete of a payment, status event or operation (migration `0010`, written by triggers) | `seq` (AUTOINCREMENT: the replication sequence), `tbl`, `row_id` |
//! | `gateway_payments` | payment of a provider behind the gateway seam (Connect-E), migration `0011` | `local_id`, `provider`, `provider_ref`, `kind`, neutral `state`, `authorized`/`captured`/`refunded`, `expires_at` |
//! | `gateway_operations` | collection, refund or void of a gateway payment | `op_key` (UNIQUE), `state` (`prepared` = may have been sent), `ticket_ref` |
//! | `gateway_payments.recovery_json` | (migration `0040`) decline recovery of a gateway payment: opt-out, vault token, held decline, evaluate intent and outcome | JSON owned by the agent |
//! | `cards_on_file` | a customer's stored card (cross reference, scheme, masked number, expiry; never a PAN or CV2) | (`provider`, `customer_id`, `masked`, expiry) UNIQUE |
//!
//! Since `0011` every `transactions` row names its `provider` (existing rows: `sensepass`).
//!
//! Money is INTEGER minor units, currency the ISO code, status the SensePass numeric code,
//! timestamps INTEGER unix milliseconds, JSON TEXT. Indexes cover the hot lookups: number, order
//! ID, `last()` per device and overall, date ranges, and a partial index of open payments per
//! device (the busy check), so they stay sub-millisecond with millions of rows.
//!
//! The file is created with mode 0600 (it holds the pairing), in WAL mode with
//! `synchronous=FULL` (a committed transaction survives power loss) and foreign keys on.

mod changes;
mod error;
mod gateway;
mod misc;
mod model;
mod outbox;
mod payments;
mod prints;
#[cfg(test)]
mod tests;

use rusqlite::types::Type;
use rusqlite::{Connection, Row, TransactionBehavior};
use rusqlite_migration::{Migrations, M};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use till_core::{Currency, Minor, Status};

pub use changes::{Change, ChangeBatch, ChangeRow, ChangeTable};
pub use outbox::NOT_SENT;
pub use error::JournalError;
pub use gateway::{
    CardRecord, GatewayOpBegin, GatewayOpRecord, GatewayPaymentRecord, NewCard, NewGatewayOp,
    NewGatewayPayment,
};
pub use prints::{NewPrintJob, PrintCounts, PrintJob, PrintState};
pub use model::{
    Applied, Begin, Counts, EventSource, NewOperation, NewPayment, OpKind, OpState, Operation,
    Page, Pairing, PaymentRecord, Phase, Query, StatusEvent, Totals, IDEMPOTENCY_TTL_MS,
    status_key,
    ORDER_ID_WINDOW_MS,
    transition_str,
};
pub use till_core::Transition;

/// How long a writer waits for another connection's write lock before giving up with
/// `SQLITE_BUSY`. Writes are tiny, so anything near this means something is badly wrong.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The schema, oldest first. Never edit a released migration; append a new one.
const MIGRATIONS: &[M<'static>] = &[
    M::up(include_str!("migrations/0001_init.sql")),
    M::up(include_str!("migrations/0002_refunds_processing.sql")),
    M::up(include_str!("migrations/0003_operation_answer.sql")),
    M::up(include_str!("migrations/0010_changes.sql")),
    M::up(include_str!("migrations/0011_gateway_payments.sql")),
    M::up(include_str!("migrations/0020_print_jobs.sql")),
    M::up(include_str!("migrations/0030_manager_resolutions.sql")),
    M::up(include_str!("migrations/0040_decline_recovery.sql")),
    M::up(include_str!("migrations/0050_gateway_changes.sql")),
];

/// The schema version a fully migrated journal has (its `user_version`): the number of
/// migrations.
pub fn schema_version() -> usize {
    MIGRATIONS.len()
}

/// The current wall-clock time in unix milliseconds, for callers that are not tests.
pub fn now_ms() -> i64 {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX)
}

/// A fresh local ID for a payment (a random UUID v4).
pub fn new_local_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A handle on the journal. Cheap to clone; all clones share one SQLite connection.
///
/// All methods are synchronous and short. The connection sits behind a `std::sync::Mutex`, not a
/// tokio one, on purpose: every critical section is a handful of indexed statements that never
/// `.await` while holding the lock, so a blocking mutex is both correct and cheaper. Async callers
/// run journal calls in `tokio::task::spawn_blocking` (or accept a sub-millisecond block) — never
/// hold a journal call across an `.await`.
///
/// Every change made of more than one statement runs in a single `BEGIN IMMEDIATE` transaction:
/// the write lock is taken up front, so two processes (or two handles) racing on the same file
/// serialize instead of failing half-way, and checks such as the refund cap cannot be raced.
#[derive(Clone)]
pub struct Journal {
    conn: Arc<Mutex<Connection>>,
    path: Option<PathBuf>,
    /// How long after its end a payment still answers for its order ID (ms); shared by clones so
    /// the agent sets it once from its configuration. Default [`ORDER_ID_WINDOW_MS`].
    order_window_ms: Arc<std::sync::atomic::AtomicI64>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// Opens (creating if needed) the journal file at `path` and brings its schema up to date.
    ///
    /// The file is created with mode 0600 on unix, and tightened to 0600 if it already exists with
    /// wider permissions. The parent directory is created if missing.
    pub fn open(path: impl AsRef<Path>) -> Result<Journal, JournalError> {
        let path = path.as_ref();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        create_private_file(path)?;
        let mut conn = Connection::open(path)?;
        // Before anything that locks: another process may be opening the same file right now.
        conn.busy_timeout(BUSY_TIMEOUT)?;
        set_wal(&conn)?;
        configure(&mut conn)?;
        // SQLite creates `-wal`/`-shm` with the main file's permissions, so they are 0600 too.
        tracing::debug!(path = %path.display(), "journal opened");
        Ok(Journal {
            conn: Arc::new(Mutex::new(conn)),
            path: Some(path.to_path_buf()),
            order_window_ms: Arc::new(ORDER_ID_WINDOW_MS.into()),
        })
    }

    /// An in-memory journal for unit tests: same schema and rules, nothing on disk.
    pub fn open_in_memory() -> Result<Journal, JournalError> {
        let mut conn = Connection::open_in_memory()?;
        configure(&mut conn)?;
        Ok(Journal {
            conn: Arc::new(Mutex::new(conn)),
            path: None,
            order_window_ms: Arc::new(ORDER_ID_WINDOW_MS.into()),
        })
    }

    /// Sets how long after its end a payment still answers for its order ID (see
    /// [`ORDER_ID_WINDOW_MS`]); applies to every clone of this handle.
    pub fn set_order_id_window(&self, ms: i64) {
        self.order_window_ms.store(ms.max(0), std::sync::atomic::Ordering::Relaxed);
    }

    /// The order-ID window in force (ms).
    pub fn order_id_window(&self) -> i64 {
        self.order_window_ms.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The file this journal lives in (`None` in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Reads a pragma's current value as text, for diagnostics and tests
    /// (`journal_mode`, `synchronous`, `foreign_keys`, `busy_timeout`, ...).
    pub fn pragma(&self, name: &str) -> Result<String, JournalError> {
        let conn = self.lock();
        let value: rusqlite::types::Value =
            conn.pragma_query_value(None, name, |row| row.get(0))?;
        Ok(match value {
            rusqlite::types::Value::Null => String::new(),
            rusqlite::types::Value::Integer(i) => i.to_string(),
            rusqlite::types::Value::Real(f) => f.to_string(),
            rusqlite::types::Value::Text(s) => s,
            rusqlite::types::Value::Blob(_) => "<blob>".to_string(),
        })
    }

    /// `EXPLAIN QUERY PLAN` of a statement, one detail line per step — lets tests prove the hot
    /// lookups use their indexes.
    #[cfg(test)]
    fn explain(
        &self,
        sql: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<String>, JournalError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
        let rows = stmt.query_map(params, |row| row.get::<_, String>(3))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Locks the connection. A poisoned lock is recovered: a panic inside a journal call unwinds
    /// through the `rusqlite::Transaction` guard, which rolls back, so the connection itself is
    /// always in a clean state.
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` inside one `BEGIN IMMEDIATE` transaction and commits it if `f` succeeds; any error
    /// rolls everything back.
    fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Runs `f` inside one read transaction, so multi-statement reads (a page and its total) see
    /// one consistent snapshot.
    fn read<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let out = f(&tx)?;
        tx.finish()?;
        Ok(out)
    }
}

/// Switches the file to WAL mode (persistent: only the first opener really changes it).
///
/// The switch needs an exclusive lock and SQLite does not run the busy handler for it, so when
/// another process is opening the same new file at the same moment the switch is retried here,
/// for up to [`BUSY_TIMEOUT`].
fn set_wal(conn: &Connection) -> Result<(), JournalError> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        let attempt = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0));
        match attempt {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(mode) => {
                return Err(JournalError::Corrupt(format!(
                    "could not switch the journal to WAL mode (got `{mode}`)"
                )))
            }
            Err(e)
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Connection settings shared by file and memory journals, then the migrations.
fn configure(conn: &mut Connection) -> Result<(), JournalError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(64);
    // Migrations take the write lock up front, so two processes opening a new file at once
    // serialize. The loser may still have read the old schema version before waiting; trying
    // again re-reads it and finds nothing left to do. A real migration error fails twice.
    conn.set_transaction_behavior(TransactionBehavior::Immediate);
    refuse_newer_schema(conn)?;
    let migrations = Migrations::from_slice(MIGRATIONS);
    if let Err(first) = migrations.to_latest(conn) {
        tracing::debug!(error = %first, "migration failed; retrying once in case another process migrated");
        migrations.to_latest(conn)?;
    }
    Ok(())
}

/// The schema version of the journal file at `path`, read without locking or writing anything
/// (not even `-shm`), so a package script running as root can ask before a downgrade. Reads the
/// main file only: call it while no agent has the journal open (the package stops the service
/// first, which checkpoints the WAL).
pub fn file_schema_version(path: impl AsRef<Path>) -> Result<i64, JournalError> {
    let path = path.as_ref();
    let mut uri = String::from("file:");
    // `immutable=1`: no locks, no WAL or shared-memory files created. Percent-encode what a URI reserves.
    for b in path.to_string_lossy().bytes() {
        match b {
            b'?' | b'#' | b'%' | 0x80..=0xff => uri.push_str(&format!("%{b:02X}")),
            _ => uri.push(char::from(b)),
        }
    }
    uri.push_str("?immutable=1");
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(&uri, flags)?;
    Ok(conn.pragma_query_value(None, "user_version", |row| row.get(0))?)
}

/// Refuses a journal written by a newer Till Agent (its `user_version` is past our last
/// migration), before anything writes to it. An older binary cannot know what the newer columns
/// and tables mean, so it must neither migrate nor write: this happens after a package downgrade,
/// and the fix is to install the newer version again (the file is left exactly as it was).
fn refuse_newer_schema(conn: &Connection) -> Result<(), JournalError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let supported = schema_version();
    match usize::try_from(found) {
        Ok(found) if found <= supported => Ok(()),
        // A negative user_version was never written by us: as foreign as a newer one.
        _ => Err(JournalError::SchemaTooNew { found, supported }),
    }
}

/// Creates `path` with mode 0600 if it does not exist, and narrows an existing file to 0600.
#[cfg(unix)]
fn create_private_file(path: &Path) -> Result<(), JournalError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode != 0o600 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// On other platforms the file lives in the per-user data directory, whose ACLs already keep
/// other users out.
#[cfg(not(unix))]
fn create_private_file(path: &Path) -> Result<(), JournalError> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    Ok(())
}

// ----- column helpers shared by the modules -----

/// A conversion failure for column `idx`, so corrupt data surfaces as a typed SQLite error.
fn bad_column(idx: usize, ty: Type, msg: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, ty, msg.into())
}

/// Reads a nullable status code.
fn status_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<Status>> {
    match row.get::<_, Option<i64>>(idx)? {
        None => Ok(None),
        Some(code) => Status::from_code(code)
            .map(Some)
            .ok_or_else(|| bad_column(idx, Type::Integer, format!("unknown status {code}"))),
    }
}

/// Reads a non-null status code.
fn required_status_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Status> {
    status_at(row, idx)?.ok_or_else(|| bad_column(idx, Type::Null, "status is null".into()))
}

/// Reads an ISO currency code.
fn currency_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Currency> {
    let code: String = row.get(idx)?;
    Currency::from_code(&code).map_err(|e| bad_column(idx, Type::Text, e.to_string()))
}

/// Reads a JSON text column.
fn json_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<serde_json::Value> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text).map_err(|e| bad_column(idx, Type::Text, e.to_string()))
}

/// Reads a nullable JSON text column.
fn opt_json_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<serde_json::Value>> {
    match row.get::<_, Option<String>>(idx)? {
        None => Ok(None),
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| bad_column(idx, Type::Text, e.to_string())),
    }
}

/// Reads a nullable minor-units amount.
fn opt_minor_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<Minor>> {
    Ok(row.get::<_, Option<i64>>(idx)?.map(Minor))
}

/// Stored form of a status.
fn status_code(s: Status) -> i64 {
    i64::from(s.code())
}

/// Stored form of a JSON value.
fn json_text(v: &serde_json::Value) -> Result<String, JournalError> {
    // Every JSON the journal stores passes here: card data and secrets never reach the file.
    Ok(serde_json::to_string(&till_core::redact::redacted(v))?)
}

/// A count read from SQLite (never negative).
fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
