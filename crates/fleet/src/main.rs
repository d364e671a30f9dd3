//! `till-fleet`: the fleet server and its administration commands.
//!
//! ```text
//! till-fleet serve [--database-url URL] [--listen ADDR] [--tls-cert PEM --tls-key PEM] [--admin-token T]
//! till-fleet migrate
//! till-fleet enrolment-code --store NAME [--time-zone Europe/London] [--ttl-hours 72]
//! till-fleet revoke --till ID
//! ```
//!
//! Settings come from flags, then `TILL_FLEET_*` environment variables, then a TOML file
//! (`--config`), then defaults.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "till-fleet", version, about = "Till Fleet: every till's journal in PostgreSQL, chain-wide reports")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Settings shared by every command.
#[derive(Args, Clone, Debug)]
struct Common {
    /// Config file (TOML): database_url, listen, tls_cert, tls_key, admin_token, acquired_app_key, pool_size.
    #[arg(long, env = "TILL_FLEET_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// PostgreSQL, as a URL (postgres://user@host/db) or key=value pairs (host=/run/postgresql dbname=fleet).
    #[arg(long, env = "TILL_FLEET_DATABASE_URL", global = true)]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (migrates the database first).
    Serve {
        #[command(flatten)]
        common: Common,
        /// Address to listen on. Default 127.0.0.1:8700.
        #[arg(long, env = "TILL_FLEET_LISTEN")]
        listen: Option<SocketAddr>,
        /// TLS certificate chain (PEM), for deployments without a reverse proxy.
        #[arg(long, env = "TILL_FLEET_TLS_CERT", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM).
        #[arg(long, env = "TILL_FLEET_TLS_KEY", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Token for the dashboard and its API. Default: a random one, printed at start.
        #[arg(long, env = "TILL_FLEET_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
        /// The chain's Acquired app key: Acquired webhooks are accepted only when their v2 HMAC
        /// matches it (without it they are refused with 404).
        #[arg(long, env = "TILL_FLEET_ACQUIRED_APP_KEY", hide_env_values = true)]
        acquired_app_key: Option<String>,
    },
    /// Bring the database schema up to date and exit.
    Migrate {
        #[command(flatten)]
        common: Common,
    },
    /// Print a one-time enrolment code for a store (the store is created if new).
    EnrolmentCode {
        #[command(flatten)]
        common: Common,
        /// The store's name.
        #[arg(long)]
        store: String,
        /// The store's IANA time zone (e.g. `Europe/London`): its days run from local midnight.
        /// A new store without one is UTC; given for an existing store, it is changed.
        #[arg(long)]
        time_zone: Option<String>,
        /// Hours the code stays valid.
        #[arg(long, default_value_t = till_fleet::enrol::DEFAULT_CODE_TTL_HOURS)]
        ttl_hours: u32,
    },
    /// Revoke a till: its data is kept, its requests refused from now on.
    Revoke {
        #[command(flatten)]
        common: Common,
        /// The till's id (as on the dashboard).
        #[arg(long)]
        till: uuid::Uuid,
    },
}

/// The config file: every field optional. `Debug` leaves the secrets out.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    database_url: Option<String>,
    listen: Option<SocketAddr>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    admin_token: Option<String>,
    acquired_app_key: Option<String>,
    pool_size: Option<usize>,
}

impl std::fmt::Debug for FileConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileConfig")
            .field("listen", &self.listen)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "[redacted]"))
            .field("acquired_app_key", &self.acquired_app_key.as_ref().map(|_| "[redacted]"))
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}

fn file_config(common: &Common) -> Result<FileConfig> {
    match &common.config {
        None => Ok(FileConfig::default()),
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
        }
    }
}

async fn connect(common: &Common, file: &FileConfig) -> Result<deadpool_postgres::Pool> {
    let Some(url) = common.database_url.clone().or_else(|| file.database_url.clone()) else {
        bail!("no database: pass --database-url (or TILL_FLEET_DATABASE_URL, or database_url in --config)");
    };
    let pool = till_fleet::db::pool(&url, file.pool_size.unwrap_or(16))?;
    till_fleet::db::migrate(&pool).await.context("migrating the database")?;
    Ok(pool)
}

#[tokio::main]
async fn main() -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TILL_FLEET_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    match Cli::parse().command {
        Command::Serve { common, listen, tls_cert, tls_key, admin_token, acquired_app_key } => {
            let file = file_config(&common)?;
            let pool = connect(&common, &file).await?;
            let listen = listen.or(file.listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8700)));
            let tls = match (tls_cert.or(file.tls_cert), tls_key.or(file.tls_key)) {
                (Some(c), Some(k)) => Some((c, k)),
                (None, None) => None,
                _ => bail!("TLS needs both a certificate and a key"),
            };
            let admin_token = match admin_token.or(file.admin_token) {
                Some(t) if t.len() >= 16 => t,
                Some(_) => bail!("the admin token must be at least 16 characters"),
                None => {
                    let t = till_fleet::auth::new_secret();
                    println!("admin token (random, this run only): {t}");
                    t
                }
            };
            let fleet = till_fleet::Fleet::new(pool, &admin_token).with_acquired_app_key(acquired_app_key.or(file.acquired_app_key));
            serve(fleet, listen, tls).await
        }
        Command::Migrate { common } => {
            let file = file_config(&common)?;
            connect(&common, &file).await?;
            println!("database schema up to date");
            Ok(())
        }
        Command::EnrolmentCode { common, store, time_zone, ttl_hours } => {
            let file = file_config(&common)?;
            let pool = connect(&common, &file).await?;
            let code = till_fleet::enrol::new_code(&pool, &store, time_zone.as_deref(), ttl_hours).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{code}");
            Ok(())
        }
        Command::Revoke { common, till } => {
            let file = file_config(&common)?;
            let pool = connect(&common, &file).await?;
            till_fleet::enrol::revoke(&pool, till).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("revoked {till}");
            Ok(())
        }
    }
}

async fn serve(fleet: till_fleet::Fleet, listen: SocketAddr, tls: Option<(PathBuf, PathBuf)>) -> Result<()> {
    let app = till_fleet::router(fleet);
    let handle = axum_server::Handle::new();
    tokio::spawn({
        let handle = handle.clone();
        async move {
            shutdown_signal().await;
            handle.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
        }
    });
    let listener = std::net::TcpListener::bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    match tls {
        None => {
            // A machine-readable first line on stdout, for scripts and tests.
            println!("till-fleet listening on http://{addr}");
            axum_server::from_tcp(listener).handle(handle).serve(app.into_make_service()).await?;
        }
        Some((cert, key)) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                .await
                .with_context(|| format!("loading TLS certificate {} and key {}", cert.display(), key.display()))?;
            println!("till-fleet listening on https://{addr}");
            axum_server::from_tcp_rustls(listener, config).handle(handle).serve(app.into_make_service()).await?;
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
