//! Configuration: a TOML file in the platform's config directory, overridden by environment
//! variables and command-line flags (in that order of precedence: flag > env > file > default).
//!
//! Data (the journal, logs) lives in the platform's data directory unless `--data-dir` says
//! otherwise. The listen address must be a loopback address: the local API carries money-out
//! operations and must never be reachable from the store's network.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// SensePass production REST base (spec §2).
pub const PRODUCTION_API: &str = "https://api.sensepass.com/api/";

/// The SensePass environment a base URL names: `production` for SensePass's production API,
/// `sandbox` for its sandbox host or a simulator on this machine (a real SensePass is never on
/// loopback), `custom` otherwise. The environment is a property of the agent's configuration, not
/// a choice made while pairing: a label that disagreed with the URL the agent actually calls could
/// tell a manager "test payments" while cards are charged.
pub fn environment_of(url: &str) -> &'static str {
    if url.starts_with(PRODUCTION_API) {
        return "production";
    }
    let host = reqwest::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_ascii_lowercase));
    match host.as_deref() {
        Some(h) if h.ends_with("sandbox.sensepass.com") => "sandbox",
        Some("localhost") | Some("127.0.0.1") | Some("[::1]") | Some("::1") => "sandbox",
        Some(h) if h.starts_with("127.") => "sandbox",
        _ => "custom",
    }
}
/// SensePass production Socket.IO server (spec §2).
pub const PRODUCTION_SOCKET: &str = "https://api.sensepass.com";
/// The configuration file the Debian package installs (and its service reads).
pub const SYSTEM_CONFIG: &str = "/etc/till-agent/config.toml";
/// The port of the vendor's Terminal Agent, kept for drop-in compatibility.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8003";

/// Errors loading or validating configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file exists but could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for our schema.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: toml::de::Error,
    },
    /// A value is not acceptable (e.g. a non-loopback listen address).
    #[error("invalid setting `{key}`: {reason}")]
    Invalid {
        /// Setting name.
        key: &'static str,
        /// Why.
        reason: String,
    },
    /// No platform directory could be determined and none was given.
    #[error("no data directory: pass --data-dir")]
    NoDataDir,
}

/// The file format: every field optional, so a partial file overrides only what it names.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Local API address.
    pub listen: Option<SocketAddr>,
    /// Where the journal and logs live.
    pub data_dir: Option<PathBuf>,
    /// SensePass REST base URL.
    pub sensepass_url: Option<String>,
    /// SensePass Socket.IO URL.
    pub socket_url: Option<String>,
    /// Waive the POS token for money-out operations (for POS software written for the vendor's
    /// agent that cannot send one). Off by default; loudly reported when on.
    pub waive_pos_token: Option<bool>,
    /// Seconds between status polls of open transactions while the socket is down.
    pub poll_interval_secs: Option<u64>,
    /// Timeout of one SensePass HTTP call, seconds.
    pub http_timeout_secs: Option<u64>,
    /// Seconds between re-reads of open payments while the socket is connected (default 20).
    pub resync_interval_secs: Option<u64>,
    /// Most refunds that may wait in the outbox while SensePass is unreachable (default 50).
    pub max_queued_refunds: Option<u64>,
    /// Most money, in minor units, that queued refunds may add up to (default 500000 = 5,000.00).
    pub max_queued_refund_minor: Option<i64>,
    /// Oldest a queued refund may be, in hours, before new ones are refused (default 72).
    pub max_queued_refund_age_hours: Option<u64>,
    /// Seconds after a payment ended during which a new init with the same `posData.orderId`
    /// (and no other key) is answered with that payment (default 300). Order numbers repeat, so
    /// this stays short; an `Idempotency-Key` holds for 31 days regardless.
    pub order_id_window_secs: Option<u64>,
    /// `[update]`: automatic updates of the headless agent (see [`crate::updater`]).
    pub update: Option<crate::updater::UpdateConfig>,
}

/// Effective configuration after merging file, environment and flags.
#[derive(Debug, Clone)]
pub struct Config {
    /// Local API address; loopback only.
    pub listen: SocketAddr,
    /// Directory of the journal (`journal.sqlite3`) and logs.
    pub data_dir: PathBuf,
    /// SensePass REST base URL (ends with `/api/`).
    pub sensepass_url: String,
    /// SensePass Socket.IO server URL.
    pub socket_url: String,
    /// See [`FileConfig::waive_pos_token`].
    pub waive_pos_token: bool,
    /// Poll interval for open transactions while the socket is down.
    pub poll_interval: Duration,
    /// Timeout of one SensePass HTTP call.
    pub http_timeout: Duration,
    /// Re-read interval of open payments while the socket is connected (no event is trusted).
    pub resync_interval: Duration,
    /// Limits on refunds waiting for SensePass; past them new refunds are refused, never dropped.
    pub refund_queue: RefundQueueLimits,
    /// See [`FileConfig::order_id_window_secs`].
    pub order_id_window: Duration,
    /// See [`FileConfig::update`]; empty (no checks) by default.
    pub update: crate::updater::UpdateConfig,
}

/// Limits on refunds queued while SensePass is unreachable. A till that has been offline for days
/// should stop promising refunds it cannot deliver; refunds already accepted are never dropped.
#[derive(Debug, Clone, Copy)]
pub struct RefundQueueLimits {
    /// Most queued refunds.
    pub max_count: u64,
    /// Most queued money, minor units.
    pub max_total_minor: i64,
    /// Oldest queued refund before new ones are refused.
    pub max_age: Duration,
}

/// Values given on the command line or in the environment (clap fills these).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--listen` / `TILL_AGENT_LISTEN`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir` / `TILL_AGENT_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--sensepass-url` / `TILL_AGENT_SENSEPASS_URL`.
    pub sensepass_url: Option<String>,
    /// `--socket-url` / `TILL_AGENT_SOCKET_URL`.
    pub socket_url: Option<String>,
    /// `--waive-pos-token` / `TILL_AGENT_WAIVE_POS_TOKEN`.
    pub waive_pos_token: Option<bool>,
}

impl Config {
    /// The default config file path for this platform (`~/.config/till-agent/config.toml` on Linux).
    pub fn default_path() -> Option<PathBuf> {
        let user = project_dirs().map(|d| d.config_dir().join("config.toml"));
        // An installed package's service user, and root at the till, have no config of their own:
        // they use the system one, so `till-agent status` and the service read the same file.
        match user {
            Some(p) if p.exists() => Some(p),
            other => Some(PathBuf::from(SYSTEM_CONFIG)).filter(|p| p.exists()).or(other),
        }
    }

    /// Loads `path` (or the default path; a missing file is fine) and applies `overrides`.
    pub fn load(path: Option<&Path>, overrides: Overrides) -> Result<Config, ConfigError> {
        let path = path.map(Path::to_path_buf).or_else(Config::default_path);
        let file = match &path {
            Some(p) if p.exists() => {
                let text = std::fs::read_to_string(p)
                    .map_err(|source| ConfigError::Read { path: p.clone(), source })?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|source| ConfigError::Parse { path: p.clone(), source })?
            }
            _ => FileConfig::default(),
        };
        Config::merge(file, overrides)
    }

    /// Merges a file config with overrides, then validates.
    pub fn merge(file: FileConfig, o: Overrides) -> Result<Config, ConfigError> {
        let listen = match o.listen.or(file.listen) {
            Some(a) => a,
            None => DEFAULT_LISTEN.parse().map_err(|_| ConfigError::Invalid {
                key: "listen",
                reason: "bad default".into(),
            })?,
        };
        if !listen.ip().is_loopback() {
            return Err(ConfigError::Invalid {
                key: "listen",
                reason: format!("{listen} is not a loopback address; the local API must stay on this PC"),
            });
        }
        let data_dir = match o.data_dir.or(file.data_dir) {
            Some(d) => d,
            None => project_dirs().map(|d| d.data_dir().to_path_buf()).ok_or(ConfigError::NoDataDir)?,
        };
        let sensepass_url = normalise_base(
            o.sensepass_url.or(file.sensepass_url).unwrap_or_else(|| PRODUCTION_API.to_string()),
        );
        let socket_url =
            o.socket_url.or(file.socket_url).unwrap_or_else(|| PRODUCTION_SOCKET.to_string());
        for (key, url) in [("sensepass_url", &sensepass_url), ("socket_url", &socket_url)] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::Invalid { key, reason: format!("`{url}` is not an http(s) URL") });
            }
        }
        Ok(Config {
            listen,
            data_dir,
            sensepass_url,
            socket_url,
            waive_pos_token: o.waive_pos_token.or(file.waive_pos_token).unwrap_or(false),
            poll_interval: Duration::from_secs(file.poll_interval_secs.unwrap_or(2).max(1)),
            http_timeout: Duration::from_secs(file.http_timeout_secs.unwrap_or(15).max(1)),
            resync_interval: Duration::from_secs(file.resync_interval_secs.unwrap_or(20).max(1)),
            refund_queue: RefundQueueLimits {
                max_count: file.max_queued_refunds.unwrap_or(50),
                max_total_minor: file.max_queued_refund_minor.unwrap_or(500_000),
                max_age: Duration::from_secs(file.max_queued_refund_age_hours.unwrap_or(72) * 3600),
            },
            order_id_window: Duration::from_secs(
                file.order_id_window_secs
                    .unwrap_or((till_journal::ORDER_ID_WINDOW_MS / 1000) as u64),
            ),
            update: file.update.unwrap_or_default(),
        })
    }

    /// Path of the journal database inside the data directory.
    pub fn journal_path(&self) -> PathBuf {
        self.data_dir.join("journal.sqlite3")
    }

    /// Directory of the rotated JSON log files.
    pub fn log_dir(&self) -> PathBuf {
        self.data_dir.join("logs")
    }
}

/// The REST base must end with a slash so that relative paths join under `/api/`.
fn normalise_base(mut url: String) -> String {
    if !url.ends_with('/') {
        url.push('/');
    }
    url
}

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("com", "tillagent", "till-agent")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_defaults() {
        let file = FileConfig {
            sensepass_url: Some("http://file/api".into()),
            socket_url: Some("http://file".into()),
            data_dir: Some("/tmp/x".into()),
            ..Default::default()
        };
        let o = Overrides { socket_url: Some("http://flag".into()), ..Default::default() };
        let c = Config::merge(file, o).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8003");
        assert_eq!(c.sensepass_url, "http://file/api/");
        assert_eq!(c.socket_url, "http://flag");
        assert!(!c.waive_pos_token);
    }

    #[test]
    fn refuses_non_loopback_listen() {
        let o = Overrides {
            listen: Some("0.0.0.0:8003".parse().unwrap()),
            data_dir: Some("/tmp".into()),
            ..Default::default()
        };
        assert!(matches!(Config::merge(FileConfig::default(), o), Err(ConfigError::Invalid { key: "listen", .. })));
    }
}
