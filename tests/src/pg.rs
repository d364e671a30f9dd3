//! A throwaway PostgreSQL cluster for tests: `initdb` in a temporary directory, listening only on
//! a unix socket in that directory (no TCP port to collide with other test runs), stopped and
//! deleted on drop.
//!
//! `initdb` refuses to run as root; when the tests run as root, the cluster is created and run
//! by the `postgres` system user (via `runuser`) in a directory it owns.
//!
//! The tests use fast, non-durable settings ([`FAST`]); the fleet benchmark (`crates/bench`,
//! which includes this file so there is one way to start a cluster) starts it with durable ones
//! through [`Postgres::start_with`].

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A running cluster.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
    port: u16,
}

/// Where the server binaries are: `/usr/lib/postgresql/<newest>/bin`, else `PATH`.
fn bin_dir() -> Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, p): &(u32, PathBuf)| p.join("initdb").exists())
        .collect();
    versions.sort();
    if let Some((_, p)) = versions.pop() {
        return Ok(p);
    }
    let out = Command::new("sh").args(["-c", "command -v initdb"]).output()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if path.is_empty() {
        bail!("PostgreSQL server binaries not found: run scripts/setup.sh (installs the postgresql package)");
    }
    Ok(Path::new(&path).parent().context("initdb path")?.to_path_buf())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// The tests' settings: nothing is flushed to disk (a test cluster is thrown away; a crash of the
/// machine loses nothing a test needs), and a small buffer cache.
pub const FAST: &str = "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nshared_buffers = 32MB\n";

impl Postgres {
    /// Creates and starts a cluster with the tests' settings ([`FAST`]).
    pub fn start() -> Result<Postgres> {
        Postgres::start_with(FAST)
    }

    /// Creates and starts a cluster with `settings` (postgresql.conf lines) added to the ones
    /// that keep it private (unix socket in its own directory, no TCP).
    pub fn start_with(settings: &str) -> Result<Postgres> {
        let bin = bin_dir()?;
        let as_postgres = is_root();
        let dir = tempfile::Builder::new().prefix("till-pg-").tempdir()?;
        if as_postgres {
            let ok = Command::new("chown").args(["postgres:postgres", &dir.path().display().to_string()]).status()?.success();
            if !ok {
                bail!("cannot hand {} to the postgres user", dir.path().display());
            }
        }
        // Any port number works: it only names the socket file, in our own directory.
        let port = 5432;
        let pg = Postgres { dir, bin, as_postgres, port };
        let data = pg.data_dir();
        pg.run("initdb", &["-D", &data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"])?;
        let conf = format!(
            "listen_addresses = ''\nunix_socket_directories = '{}'\nport = {}\nmax_connections = 100\n{settings}",
            pg.dir.path().display(),
            pg.port
        );
        let conf_path = Path::new(&data).join("postgresql.auto.conf");
        let mut existing = std::fs::read_to_string(&conf_path).unwrap_or_default();
        existing.push_str(&conf);
        std::fs::write(&conf_path, existing)?;
        pg.start_server()?;
        Ok(pg)
    }

    /// The server's log (what `pg_ctl -l` writes: errors, and plans when `auto_explain` is on).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<()> {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd.args(args).stdin(Stdio::null()).output().with_context(|| format!("running {tool}"))?;
        if !out.status.success() {
            bail!("{tool} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    fn start_server(&self) -> Result<()> {
        let log = self.log_path().display().to_string();
        self.run("pg_ctl", &["-D", &self.data_dir(), "-l", &log, "-w", "-t", "60", "start"])
    }

    /// Stops the server (fast shutdown: sessions are cut, committed data stays).
    pub fn stop(&self) -> Result<()> {
        self.run("pg_ctl", &["-D", &self.data_dir(), "-m", "fast", "-w", "stop"])
    }

    /// Starts it again after [`Postgres::stop`].
    pub fn restart(&self) -> Result<()> {
        self.start_server()
    }

    /// Creates a database and returns its connection string.
    pub fn create_db(&self, name: &str) -> Result<String> {
        let url = self.url("postgres");
        let out = Command::new(self.bin.join("psql"))
            .args([&url, "-v", "ON_ERROR_STOP=1", "-q", "-c", &format!("CREATE DATABASE \"{name}\"")])
            .output()?;
        if !out.status.success() {
            bail!("create database: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(self.url(name))
    }

    /// The key=value connection string of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("host={} port={} user=postgres dbname={db}", self.dir.path().display(), self.port)
    }

    /// Runs SQL with psql and returns its unaligned, tab-separated output rows.
    pub fn query(&self, db: &str, sql: &str) -> Result<Vec<Vec<String>>> {
        let out = Command::new(self.bin.join("psql"))
            .args([&self.url(db), "-v", "ON_ERROR_STOP=1", "-X", "-A", "-t", "-F", "\t", "-c", sql])
            .output()?;
        if !out.status.success() {
            bail!("psql: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.run("pg_ctl", &["-D", &self.data_dir(), "-m", "immediate", "-w", "stop"]);
    }
}
