//! Harness for the fleet server: the real `till-fleet` binary on a throwaway PostgreSQL, and a
//! checker that compares a till's journal with PostgreSQL row by row.

use crate::bin_path;
use crate::pg::Postgres;
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The administrator token the tests start the fleet with.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// A running `till-fleet serve`.
pub struct FleetProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The port, kept across restarts (the tills know the fleet by URL).
    pub port: u16,
    /// The database connection string.
    pub database_url: String,
    /// stderr of the server.
    pub log: PathBuf,
    _stdout: BufReader<std::process::ChildStdout>,
}

/// The Acquired `app_key` the test fleet verifies webhooks with: the sandbox merchant's key: the test chain's Acquired account is the simulator's, so the
/// webhooks it signs verify at the fleet.
pub const ACQUIRED_APP_KEY: &str = till_sandbox::ACQUIRED_APP_KEY;

impl FleetProcess {
    /// Starts the server on `port` (0: any free port).
    pub fn start(database_url: &str, port: u16, log_dir: &Path) -> Result<FleetProcess> {
        let log = log_dir.join("fleet-stderr.log");
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        let mut child = Command::new(bin_path("till-fleet")?)
            .args(["serve", "--database-url", database_url, "--listen", &format!("127.0.0.1:{port}")])
            .env("TILL_FLEET_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("TILL_FLEET_ACQUIRED_APP_KEY", ACQUIRED_APP_KEY)
            .env("TILL_FLEET_LOG", "info,till_fleet=debug")
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()?;
        let mut stdout = BufReader::new(child.stdout.take().context("stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let url = match line.trim().strip_prefix("till-fleet listening on ") {
            Some(u) => u.to_string(),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("till-fleet did not start: {line:?}; log: {}", std::fs::read_to_string(&log).unwrap_or_default());
            }
        };
        let port = url.rsplit(':').next().and_then(|p| p.parse().ok()).context("port")?;
        Ok(FleetProcess { child, url, port, database_url: database_url.to_string(), log, _stdout: stdout })
    }

    /// Kills the server with SIGKILL (mid-transaction, if it was in one).
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port and database.
    pub fn restart(&mut self) -> Result<()> {
        self.kill9();
        let dir = self.log.parent().context("log dir")?.to_path_buf();
        // The port was just released; retry briefly in case the kernel holds it a moment.
        let mut last = None;
        for _ in 0..50 {
            match FleetProcess::start(&self.database_url, self.port, &dir) {
                Ok(f) => {
                    *self = f;
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Err(last.context("restart")?)
    }

    /// Runs a `till-fleet` administration command against the same database; returns stdout.
    pub fn admin(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(bin_path("till-fleet")?).args(args).args(["--database-url", &self.database_url]).output()?;
        if !out.status.success() {
            bail!("till-fleet {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for FleetProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Enrols the journal in `data_dir` with a fresh code for `store`.
pub fn enrol(fleet: &FleetProcess, data_dir: &Path, store: &str, till: &str) -> Result<()> {
    let code = fleet.admin(&["enrolment-code", "--store", store])?;
    let out = Command::new(bin_path("till-agent")?)
        .args(["enrol", "--fleet-url", &fleet.url, "--code", &code, "--till-name", till])
        .args(["--data-dir", &data_dir.display().to_string()])
        .output()?;
    if !out.status.success() {
        bail!("till-agent enrol: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// The till id in a journal directory's `fleet.json`.
pub fn till_id(data_dir: &Path) -> Result<String> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(data_dir.join("fleet.json"))?)?;
    Ok(v["till_id"].as_str().context("till_id")?.to_string())
}

/// Compares every payment, status event and operation of the journal in `data_dir` with the
/// fleet's rows for that till: same set of row ids (no gap, no duplicate, no stranger) and the
/// same values. Returns how many rows were compared.
pub fn check_till(pg: &Postgres, db: &str, data_dir: &Path) -> Result<usize> {
    let till = till_id(data_dir)?;
    let conn = rusqlite::Connection::open_with_flags(data_dir.join("journal.sqlite3"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let journal = |sql: &str| -> Result<Vec<String>> {
        let mut stmt = conn.prepare(sql)?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut v: Vec<String> = rows.collect::<Result<_, _>>()?;
        v.sort();
        Ok(v)
    };
    let fleet = |sql: &str| -> Result<Vec<String>> {
        let mut v: Vec<String> = pg.query(db, &sql.replace("$TILL", &format!("'{till}'")))?.into_iter().map(|r| r.join("|")).collect();
        v.sort();
        Ok(v)
    };
    let pairs = [
        (
            "SELECT id || '|' || local_id || '|' || amount || '|' || currency || '|' || phase || '|' || coalesce(status, '') || '|' || coalesce(number, '') || '|' || coalesce(order_id, '') || '|' || created_at || '|' || updated_at FROM transactions",
            "SELECT row_id, local_id, amount, currency, phase, coalesce(status::text, ''), coalesce(number, ''), coalesce(order_id, ''), (extract(epoch from created_at) * 1000)::bigint, (extract(epoch from updated_at) * 1000)::bigint FROM payments WHERE till_id = $TILL AND NOT gateway",
        ),
        (
            "SELECT id || '|' || transaction_id || '|' || status || '|' || source || '|' || transition || '|' || applied || '|' || at FROM status_events",
            "SELECT row_id, payment_row_id, status, source, transition, CASE WHEN applied THEN 1 ELSE 0 END, (extract(epoch from at) * 1000)::bigint FROM status_events WHERE till_id = $TILL",
        ),
        (
            "SELECT o.id || '|' || o.op_key || '|' || o.kind || '|' || coalesce(o.amount, '') || '|' || o.state || '|' || o.attempts FROM operations o",
            "SELECT row_id, op_key, kind, coalesce(amount::text, ''), state, attempts FROM operations WHERE till_id = $TILL AND NOT gateway",
        ),
        // Gateway payments (Connect-E, Acquired) and their captures, refunds and voids.
        (
            "SELECT id || '|' || local_id || '|' || provider || '|' || amount || '|' || currency || '|' || phase || '|' || state || '|' || captured || '|' || refunded || '|' || order_id || '|' || created_at || '|' || updated_at FROM gateway_payments",
            "SELECT row_id, local_id, provider, amount, currency, phase, state, captured, refunded, order_id, (extract(epoch from created_at) * 1000)::bigint, (extract(epoch from updated_at) * 1000)::bigint FROM payments WHERE till_id = $TILL AND gateway",
        ),
        (
            "SELECT o.id || '|' || o.op_key || '|' || o.kind || '|' || o.amount || '|' || o.state || '|' || o.attempts FROM gateway_operations o",
            "SELECT row_id, op_key, kind, amount, state, attempts FROM operations WHERE till_id = $TILL AND gateway",
        ),
    ];
    let mut n = 0;
    for (j, f) in pairs {
        let (a, b) = (journal(j)?, fleet(f)?);
        if a != b {
            let missing: Vec<_> = a.iter().filter(|r| !b.contains(r)).collect();
            let extra: Vec<_> = b.iter().filter(|r| !a.contains(r)).collect();
            bail!("till {till}: journal and fleet differ\n  only in journal: {missing:?}\n  only in fleet: {extra:?}");
        }
        n += a.len();
    }
    Ok(n)
}

/// A throwaway PostgreSQL with a fleet server on it (database `fleet`), and the journal in
/// `data_dir` enrolled in store "North" as "Till 1": what a test of one till at a chain needs.
/// Keep the value alive for the test: dropping it stops the fleet and PostgreSQL.
pub struct OneTillChain {
    /// The fleet server.
    pub fleet: FleetProcess,
    /// Its PostgreSQL (query database `fleet`).
    pub pg: Postgres,
    /// Where the fleet writes its log.
    _logs: tempfile::TempDir,
}

impl OneTillChain {
    /// Starts PostgreSQL and the fleet, and enrols the journal in `data_dir`.
    pub fn enrol(data_dir: &Path) -> Result<OneTillChain> {
        let pg = Postgres::start()?;
        let db = pg.create_db("fleet")?;
        let logs = tempfile::tempdir()?;
        let fleet = FleetProcess::start(&db, 0, logs.path())?;
        enrol(&fleet, data_dir, "North", "Till 1")?;
        Ok(OneTillChain { fleet, pg, _logs: logs })
    }
}
