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
    /// Paymentsense Connect-E (`[connect_e]`): keyed card payments at the till. Optional: a till
    /// without it takes SensePass payments only, a till without a SensePass pairing may take
    /// Connect-E payments only.
    pub connect_e: Option<ConnectEFile>,
    /// Acquired.com payment sessions (`[acquired]`): a card checkout on the customer screen.
    /// Optional, like Connect-E.
    pub acquired: Option<AcquiredFile>,
    /// FlexFactor decline recovery (`[flexfactor]`): a second chance for a declined keyed card
    /// payment. Optional; off unless its credentials are set.
    pub flexfactor: Option<FlexFactorFile>,
    /// The receipt printer (`[printer]` table).
    pub printer: Option<PrinterFileConfig>,
    /// `[update]`: automatic updates of the headless agent (see [`crate::updater`]).
    pub update: Option<crate::updater::UpdateConfig>,
}

/// The `[connect_e]` table of config.toml; every field may also come from the environment or a
/// flag (`TILL_AGENT_CONNECT_E_URL` / `--connect-e-url`, `_WEB_URL`, `_KEY`, `_MERCHANT_URL`).
#[derive(Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectEFile {
    /// The REST host of the fact sheet's §1 (e.g. `https://e.test.connect.paymentsense.cloud`);
    /// paths start with `/v1`.
    pub base_url: Option<String>,
    /// The host of `client.js` (default: the test web host for the test REST host, else `base_url`).
    pub web_url: Option<String>,
    /// The merchant's API key. Never logged.
    pub api_key: Option<String>,
    /// The URL registered with the account, sent as `merchantUrl`.
    pub merchant_url: Option<String>,
}

impl std::fmt::Debug for ConnectEFile {
    /// Redaction-safe: the API key moves money.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectEFile")
            .field("base_url", &self.base_url)
            .field("web_url", &self.web_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("merchant_url", &self.merchant_url)
            .finish()
    }
}

/// Effective Connect-E settings: present only when a REST host and an API key are configured.
#[derive(Clone)]
pub struct ConnectEConfig {
    /// REST host (no trailing slash).
    pub base_url: String,
    /// Host of `client.js` (no trailing slash).
    pub web_url: String,
    /// API key (Bearer). Never logged: `Debug` prints `***`.
    pub api_key: String,
    /// `merchantUrl` of every access token.
    pub merchant_url: String,
}

impl std::fmt::Debug for ConnectEConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectEConfig")
            .field("base_url", &self.base_url)
            .field("web_url", &self.web_url)
            .field("api_key", &"***")
            .field("merchant_url", &self.merchant_url)
            .finish()
    }
}

/// The `[acquired]` table of config.toml. Every field may also come from the environment
/// (`TILL_AGENT_ACQUIRED_URL`, `_COMPONENTS_URL`, `_APP_ID`, `_APP_KEY`, `_COMPANY_ID`,
/// `_WEBHOOK_KEY`) or a flag (`--acquired-url`, `--acquired-components-url`,
/// `--acquired-app-id`, `--acquired-app-key`); see [`Config::with_acquired`].
#[derive(Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcquiredFile {
    /// The API base of the fact sheet's §1 table, e.g. `https://test-api.acquired.com/v1`.
    pub base_url: Option<String>,
    /// The Components script (`Acquired.js`) the customer screen loads.
    pub components_url: Option<String>,
    /// The login's `app_id`.
    pub app_id: Option<String>,
    /// The login's `app_key`; it also signs redirects and webhooks. Never logged.
    pub app_key: Option<String>,
    /// `Company-Id` header, when the account has one.
    pub company_id: Option<String>,
    /// The webhook HMAC key when the Hub shows one apart from the app key. Never logged.
    pub webhook_key: Option<String>,
}

impl AcquiredFile {
    /// `other`'s fields where set, else ours (flags and environment over the file).
    fn overlaid(self, other: AcquiredFile) -> AcquiredFile {
        AcquiredFile {
            base_url: other.base_url.or(self.base_url),
            components_url: other.components_url.or(self.components_url),
            app_id: other.app_id.or(self.app_id),
            app_key: other.app_key.or(self.app_key),
            company_id: other.company_id.or(self.company_id),
            webhook_key: other.webhook_key.or(self.webhook_key),
        }
    }
}

impl std::fmt::Debug for AcquiredFile {
    /// Redaction-safe: the app key moves money and signs outcomes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcquiredFile")
            .field("base_url", &self.base_url)
            .field("components_url", &self.components_url)
            .field("app_id", &self.app_id)
            .field("app_key", &self.app_key.as_ref().map(|_| "***"))
            .field("company_id", &self.company_id)
            .field("webhook_key", &self.webhook_key.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Effective Acquired settings: present only when an API base, an app id and an app key are set.
#[derive(Clone)]
pub struct AcquiredConfig {
    /// API base, e.g. `https://test-api.acquired.com/v1` (no trailing slash).
    pub base_url: String,
    /// The Components script URL.
    pub components_url: String,
    /// `app_id`.
    pub app_id: String,
    /// `app_key`. Never logged: `Debug` prints `***`.
    pub app_key: String,
    /// `Company-Id`, when set.
    pub company_id: Option<String>,
    /// The webhook key, when apart from the app key. Never logged.
    pub webhook_key: Option<String>,
}

impl std::fmt::Debug for AcquiredConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcquiredConfig")
            .field("base_url", &self.base_url)
            .field("components_url", &self.components_url)
            .field("app_id", &self.app_id)
            .field("app_key", &"***")
            .field("company_id", &self.company_id)
            .field("webhook_key", &self.webhook_key.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The `[flexfactor]` table of config.toml. Every field may also come from the environment
/// (`TILL_AGENT_FLEXFACTOR_URL`, `_APP_KEY`, `_APP_SECRET`, `_MID`, `_SITE_ID`,
/// `_TOKENIZE_ENVIRONMENT`, `_ENABLED`) or a flag (`--flexfactor-url`, …); see
/// [`Config::with_flexfactor`].
#[derive(Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlexFactorFile {
    /// The API base of the fact sheet's §1, e.g. `https://api-sandbox.flexfactor.io/v1/`.
    pub base_url: Option<String>,
    /// The portal's AppKey (login).
    pub app_key: Option<String>,
    /// The portal's AppSecret (login). Never logged.
    pub app_secret: Option<String>,
    /// Merchant GUID (`mid`): sent with every evaluation and tokenization.
    pub mid: Option<String>,
    /// Site GUID (`siteId`) of this store.
    pub site_id: Option<String>,
    /// The tokenization "Environment" key the keyed-entry page sends with the card. Not logged.
    pub tokenize_environment: Option<String>,
    /// Decline recovery on (default, when configured) or off for the whole till; a payment may
    /// still opt out with `"declineRecovery": false`.
    pub enabled: Option<bool>,
}

impl FlexFactorFile {
    /// `other`'s fields where set, else ours (flags and environment over the file).
    fn overlaid(self, other: FlexFactorFile) -> FlexFactorFile {
        FlexFactorFile {
            base_url: other.base_url.or(self.base_url),
            app_key: other.app_key.or(self.app_key),
            app_secret: other.app_secret.or(self.app_secret),
            mid: other.mid.or(self.mid),
            site_id: other.site_id.or(self.site_id),
            tokenize_environment: other.tokenize_environment.or(self.tokenize_environment),
            enabled: other.enabled.or(self.enabled),
        }
    }
}

impl std::fmt::Debug for FlexFactorFile {
    /// Redaction-safe: the secret logs in and the environment key vaults cards for the account.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlexFactorFile")
            .field("base_url", &self.base_url)
            .field("app_key", &self.app_key)
            .field("app_secret", &self.app_secret.as_ref().map(|_| "***"))
            .field("mid", &self.mid)
            .field("site_id", &self.site_id)
            .field("tokenize_environment", &self.tokenize_environment.as_ref().map(|_| "***"))
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// Effective FlexFactor settings: present only when the API base and every credential are set.
#[derive(Clone)]
pub struct FlexFactorConfig {
    /// API base (`…/v1/`).
    pub base_url: String,
    /// AppKey.
    pub app_key: String,
    /// AppSecret. Never logged: `Debug` prints `***`.
    pub app_secret: String,
    /// Merchant GUID.
    pub mid: String,
    /// Site GUID.
    pub site_id: String,
    /// Tokenization environment key. Never logged.
    pub tokenize_environment: String,
    /// Recovery on for this till (the per-payment opt-out still applies).
    pub enabled: bool,
}

impl std::fmt::Debug for FlexFactorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlexFactorConfig")
            .field("base_url", &self.base_url)
            .field("app_key", &self.app_key)
            .field("app_secret", &"***")
            .field("mid", &self.mid)
            .field("site_id", &self.site_id)
            .field("tokenize_environment", &"***")
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// Resolves the `[flexfactor]` settings; `None` when nothing is set, an error naming the key
/// when only part of what a login and an evaluation need is.
fn flexfactor_of(f: &FlexFactorFile) -> Result<Option<FlexFactorConfig>, ConfigError> {
    let set = |v: &Option<String>| v.as_ref().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let fields = [
        ("flexfactor.base_url", set(&f.base_url)),
        ("flexfactor.app_key", set(&f.app_key)),
        ("flexfactor.app_secret", set(&f.app_secret)),
        ("flexfactor.mid", set(&f.mid)),
        ("flexfactor.site_id", set(&f.site_id)),
        ("flexfactor.tokenize_environment", set(&f.tokenize_environment)),
    ];
    if fields.iter().all(|(_, v)| v.is_none()) {
        return Ok(None);
    }
    if let Some((key, _)) = fields.iter().find(|(_, v)| v.is_none()) {
        return Err(ConfigError::Invalid { key, reason: "FlexFactor needs base_url, app_key, app_secret, mid, site_id and tokenize_environment".into() });
    }
    let [base_url, app_key, app_secret, mid, site_id, env] = fields.map(|(_, v)| v.unwrap_or_default());
    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
        return Err(ConfigError::Invalid { key: "flexfactor.base_url", reason: format!("`{base_url}` is not an http(s) URL") });
    }
    Ok(Some(FlexFactorConfig {
        base_url,
        app_key,
        app_secret,
        mid,
        site_id,
        tokenize_environment: env,
        enabled: f.enabled.unwrap_or(true),
    }))
}

/// Acquired's Components script on its test host (fact sheet §5; the live one is on `js.acquired.com`).
const ACQUIRED_TEST_COMPONENTS: &str = "https://test-js.acquired.com/v1/acquired.js";
const ACQUIRED_LIVE_COMPONENTS: &str = "https://js.acquired.com/v1/acquired.js";

/// Resolves the `[acquired]` settings; `None` when nothing is set, an error naming the key when
/// only part of what a login needs is.
fn acquired_of(f: &AcquiredFile) -> Result<Option<AcquiredConfig>, ConfigError> {
    let set = |v: &Option<String>| v.as_ref().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let (base_url, app_id, app_key) = (set(&f.base_url), set(&f.app_id), set(&f.app_key));
    if base_url.is_none() && app_id.is_none() && app_key.is_none() {
        return Ok(None);
    }
    let base_url = base_url
        .ok_or(ConfigError::Invalid { key: "acquired.base_url", reason: "an app id or key is set but no API base".into() })?
        .trim_end_matches('/')
        .to_string();
    let app_id = app_id.ok_or(ConfigError::Invalid { key: "acquired.app_id", reason: "Acquired needs the app_id to log in".into() })?;
    let app_key = app_key.ok_or(ConfigError::Invalid { key: "acquired.app_key", reason: "Acquired needs the app_key to log in".into() })?;
    let components_url = set(&f.components_url).unwrap_or_else(|| {
        if base_url.starts_with("https://api.acquired.com") { ACQUIRED_LIVE_COMPONENTS } else { ACQUIRED_TEST_COMPONENTS }.to_string()
    });
    for (key, url) in [("acquired.base_url", &base_url), ("acquired.components_url", &components_url)] {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError::Invalid { key, reason: format!("`{url}` is not an http(s) URL") });
        }
    }
    Ok(Some(AcquiredConfig {
        base_url,
        components_url,
        app_id,
        app_key,
        company_id: set(&f.company_id),
        webhook_key: set(&f.webhook_key),
    }))
}

/// Connect-E's test REST host and its web host (fact sheet §1).
const CONNECT_E_TEST_URL: &str = "https://e.test.connect.paymentsense.cloud";
const CONNECT_E_TEST_WEB_URL: &str = "https://web.e.test.connect.paymentsense.cloud";

/// Merges the `[connect_e]` table with flags / environment; `None` when no REST host or no key.
fn connect_e_of(file: Option<ConnectEFile>, o: &ConnectEOverrides) -> Result<Option<ConnectEConfig>, ConfigError> {
    let file = file.unwrap_or_default();
    let base_url = o.url.clone().or(file.base_url);
    let api_key = o.key.clone().or(file.api_key);
    let web_url = o.web_url.clone().or(file.web_url);
    let merchant_url = o.merchant_url.clone().or(file.merchant_url);
    let (base_url, api_key) = match (base_url, api_key) {
        (None, None) => return Ok(None),
        (Some(b), Some(k)) if !k.trim().is_empty() => (b, k),
        (None, Some(_)) => {
            return Err(ConfigError::Invalid { key: "connect_e.base_url", reason: "an API key is set but no REST host".into() })
        }
        (Some(_), _) => {
            return Err(ConfigError::Invalid { key: "connect_e.api_key", reason: "a REST host is set but no API key".into() })
        }
    };
    let base_url = base_url.trim_end_matches('/').to_string();
    let web_url = web_url
        .map(|w| w.trim_end_matches('/').to_string())
        .unwrap_or_else(|| if base_url == CONNECT_E_TEST_URL { CONNECT_E_TEST_WEB_URL.to_string() } else { base_url.clone() });
    let Some(merchant_url) = merchant_url.filter(|m| !m.trim().is_empty()) else {
        return Err(ConfigError::Invalid { key: "connect_e.merchant_url", reason: "Connect-E needs the URL registered with the account".into() });
    };
    for (key, url) in [("connect_e.base_url", &base_url), ("connect_e.web_url", &web_url), ("connect_e.merchant_url", &merchant_url)] {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError::Invalid { key, reason: format!("`{url}` is not an http(s) URL") });
        }
    }
    Ok(Some(ConnectEConfig { base_url, web_url, api_key: api_key.trim().to_string(), merchant_url }))
}

/// `[printer]` in config.toml: where the receipt printer is and how it prints.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrinterFileConfig {
    /// `tcp://host:9100`, `file:///dev/usb/lp0` or `cups://queue`. Overridden by `--printer` /
    /// `TILL_AGENT_PRINTER`, and by what a manager saves in Settings.
    pub url: Option<String>,
    /// Paper width in mm, 58 or 80 (default 80); sets the columns unless `columns` says otherwise.
    pub paper_mm: Option<u16>,
    /// Characters per line: 32, 42 or 48.
    pub columns: Option<u8>,
    /// Code pages the printer has, preferred first (default `["wpc1252"]`).
    pub code_pages: Option<Vec<String>>,
    /// Print the customer's receipt when a payment is approved (default true).
    pub print_on_approval: Option<bool>,
    /// Print the customer's receipt when a refund is accepted or queued (default true).
    pub print_on_refund: Option<bool>,
}

/// The receipt printer's settings, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrinterConfig {
    /// The printer URL; `None`: no printer (receipts are PDF only).
    pub url: Option<String>,
    /// Characters per line: 32, 42 or 48.
    pub columns: u8,
    /// Code page names, known to `till_printer`, preferred first.
    pub code_pages: Vec<String>,
    /// Print the customer copy on approval.
    pub print_on_approval: bool,
    /// Print the customer copy on a refund.
    pub print_on_refund: bool,
}

impl Default for PrinterConfig {
    fn default() -> Self {
        PrinterConfig {
            url: None,
            columns: 48,
            code_pages: vec!["wpc1252".into()],
            print_on_approval: true,
            print_on_refund: true,
        }
    }
}

impl PrinterConfig {
    /// Every problem with these settings, as (field, reason) pairs; empty when valid. Checks the
    /// form only (URL syntax, columns, code page names), not whether the printer answers.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(url) = &self.url {
            if let Err(e) = till_printer::Target::parse(url) {
                out.push(("url", e.to_string()));
            }
        }
        if let Err(e) = till_printer::Columns::new(self.columns) {
            out.push(("columns", e.to_string()));
        }
        if let Err(e) = till_printer::parse_code_pages(&self.code_pages) {
            out.push(("codePages", e.to_string()));
        }
        out
    }

    /// The layout the renderer needs (defaults where the settings are invalid).
    pub fn layout(&self) -> till_printer::Layout {
        till_printer::Layout::new(
            till_printer::Columns::new(self.columns).unwrap_or(till_printer::Columns::WIDE),
            till_printer::parse_code_pages(&self.code_pages).unwrap_or_default(),
        )
    }

    fn from_file(f: Option<PrinterFileConfig>) -> Result<PrinterConfig, ConfigError> {
        let f = f.unwrap_or_default();
        let d = PrinterConfig::default();
        let columns = match (f.columns, f.paper_mm) {
            (Some(c), _) => c,
            (None, Some(mm)) => till_printer::Columns::for_paper_mm(mm)
                .map_err(|e| ConfigError::Invalid { key: "printer.paper_mm", reason: e.to_string() })?
                .get() as u8,
            (None, None) => d.columns,
        };
        let c = PrinterConfig {
            url: f.url.filter(|u| !u.trim().is_empty()),
            columns,
            code_pages: f.code_pages.unwrap_or(d.code_pages),
            print_on_approval: f.print_on_approval.unwrap_or(d.print_on_approval),
            print_on_refund: f.print_on_refund.unwrap_or(d.print_on_refund),
        };
        c.check()?;
        Ok(c)
    }

    fn check(&self) -> Result<(), ConfigError> {
        match self.problems().into_iter().next() {
            Some((key, reason)) => Err(ConfigError::Invalid {
                key: match key {
                    "url" => "printer.url",
                    "columns" => "printer.columns",
                    _ => "printer.code_pages",
                },
                reason,
            }),
            None => Ok(()),
        }
    }
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
    /// Paymentsense Connect-E, when configured (see [`FileConfig::connect_e`]).
    pub connect_e: Option<ConnectEConfig>,
    /// Acquired.com, when configured (see [`FileConfig::acquired`] and [`Config::with_acquired`]).
    pub acquired: Option<AcquiredConfig>,
    /// The `[acquired]` table as read, kept so that flags and environment can be laid over it.
    acquired_file: AcquiredFile,
    /// FlexFactor decline recovery, when configured (see [`FileConfig::flexfactor`]).
    pub flexfactor: Option<FlexFactorConfig>,
    /// The `[flexfactor]` table as read, kept so that flags and environment can be laid over it.
    flexfactor_file: FlexFactorFile,
    /// The receipt printer as configured (a manager's Settings, kept in the journal, override it).
    pub printer: PrinterConfig,
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

/// Connect-E values given on the command line or in the environment. Apart from [`Overrides`]
/// so that callers that build those field by field (the desktop shell) keep compiling.
#[derive(Default, Clone)]
pub struct ConnectEOverrides {
    /// `--connect-e-url` / `TILL_AGENT_CONNECT_E_URL`.
    pub url: Option<String>,
    /// `--connect-e-web-url` / `TILL_AGENT_CONNECT_E_WEB_URL`.
    pub web_url: Option<String>,
    /// `--connect-e-key` / `TILL_AGENT_CONNECT_E_KEY`. Never logged.
    pub key: Option<String>,
    /// `--connect-e-merchant-url` / `TILL_AGENT_CONNECT_E_MERCHANT_URL`.
    pub merchant_url: Option<String>,
}

impl std::fmt::Debug for ConnectEOverrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectEOverrides")
            .field("url", &self.url)
            .field("web_url", &self.web_url)
            .field("key", &self.key.as_ref().map(|_| "***"))
            .field("merchant_url", &self.merchant_url)
            .finish()
    }
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
        Config::load_with(path, overrides, ConnectEOverrides::default())
    }

    /// As [`Config::load`], with Connect-E flags / environment.
    pub fn load_with(path: Option<&Path>, overrides: Overrides, ce: ConnectEOverrides) -> Result<Config, ConfigError> {
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
        Config::merge_with(file, overrides, ce)
    }

    /// Merges a file config with overrides, then validates.
    pub fn merge(file: FileConfig, o: Overrides) -> Result<Config, ConfigError> {
        Config::merge_with(file, o, ConnectEOverrides::default())
    }

    /// As [`Config::merge`], with Connect-E flags / environment.
    pub fn merge_with(file: FileConfig, o: Overrides, ce: ConnectEOverrides) -> Result<Config, ConfigError> {
        let connect_e = connect_e_of(file.connect_e.clone(), &ce)?;
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
            connect_e,
            acquired: acquired_of(&file.acquired.clone().unwrap_or_default())?,
            acquired_file: file.acquired.unwrap_or_default(),
            flexfactor: flexfactor_of(&file.flexfactor.clone().unwrap_or_default())?,
            flexfactor_file: file.flexfactor.unwrap_or_default(),
            printer: PrinterConfig::from_file(file.printer)?,
            update: file.update.unwrap_or_default(),
        })
    }

    /// Lays Acquired values from flags or the environment over the `[acquired]` table.
    pub fn with_acquired(mut self, overrides: AcquiredFile) -> Result<Config, ConfigError> {
        self.acquired_file = std::mem::take(&mut self.acquired_file).overlaid(overrides);
        self.acquired = acquired_of(&self.acquired_file)?;
        Ok(self)
    }

    /// Lays FlexFactor values from flags or the environment over the `[flexfactor]` table.
    pub fn with_flexfactor(mut self, overrides: FlexFactorFile) -> Result<Config, ConfigError> {
        self.flexfactor_file = std::mem::take(&mut self.flexfactor_file).overlaid(overrides);
        self.flexfactor = flexfactor_of(&self.flexfactor_file)?;
        Ok(self)
    }

    /// Decline recovery is configured and on for this till.
    pub fn decline_recovery(&self) -> bool {
        self.flexfactor.as_ref().is_some_and(|f| f.enabled)
    }

    /// Sets the printer URL given by `--printer` / `TILL_AGENT_PRINTER` (over the file's).
    pub fn with_printer_url(mut self, url: Option<String>) -> Result<Config, ConfigError> {
        if let Some(url) = url.filter(|u| !u.trim().is_empty()) {
            self.printer.url = Some(url);
            self.printer.check()?;
        }
        Ok(self)
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
    fn flexfactor_from_file_and_flags_with_secrets_redacted() {
        let file: FileConfig = toml::from_str(
            "data_dir = \"/tmp/x\"\n[flexfactor]\nbase_url = \"https://api-sandbox.flexfactor.io/v1/\"\napp_key = \"k\"\napp_secret = \"file-secret\"\nmid = \"m\"\nsite_id = \"s\"\ntokenize_environment = \"env-key\"\n",
        )
        .unwrap();
        let c = Config::merge(file.clone(), Overrides::default()).unwrap();
        let ff = c.flexfactor.as_ref().unwrap();
        assert!(ff.enabled && c.decline_recovery(), "on by default once configured");
        for text in [format!("{c:?}"), format!("{file:?}")] {
            assert!(!text.contains("file-secret") && !text.contains("env-key"), "{text}");
        }
        // Flags over the file: switched off for the till.
        let off = c.with_flexfactor(FlexFactorFile { enabled: Some(false), ..Default::default() }).unwrap();
        assert!(!off.decline_recovery());
        // Part of a configuration names the first missing key.
        let partial = Config::merge(FileConfig::default(), Overrides { data_dir: Some("/tmp/x".into()), ..Default::default() })
            .unwrap()
            .with_flexfactor(FlexFactorFile { base_url: Some("https://x/v1/".into()), app_key: Some("k".into()), ..Default::default() });
        assert!(matches!(partial, Err(ConfigError::Invalid { key: "flexfactor.app_secret", .. })), "{partial:?}");
    }

    #[test]
    fn connect_e_from_file_and_flags_with_the_key_redacted() {
        let file: FileConfig = toml::from_str(
            "data_dir = \"/tmp/x\"\n[connect_e]\nbase_url = \"https://e.test.connect.paymentsense.cloud/\"\napi_key = \"file-key\"\nmerchant_url = \"https://shop.example\"\n",
        )
        .unwrap();
        assert!(!format!("{file:?}").contains("file-key"));
        let c = Config::merge(file.clone(), Overrides::default()).unwrap();
        let ce = c.connect_e.clone().unwrap();
        assert_eq!(ce.base_url, "https://e.test.connect.paymentsense.cloud");
        assert_eq!(ce.web_url, "https://web.e.test.connect.paymentsense.cloud");
        assert_eq!(ce.api_key, "file-key");
        assert!(!format!("{c:?}").contains("file-key"), "{c:?}");
        let o = ConnectEOverrides { key: Some("flag-key".into()), url: Some("http://127.0.0.1:9".into()), ..Default::default() };
        let ce = Config::merge_with(file, Overrides::default(), o).unwrap().connect_e.unwrap();
        assert_eq!((ce.api_key.as_str(), ce.web_url.as_str()), ("flag-key", "http://127.0.0.1:9"));
        // none configured: none
        let none = FileConfig { data_dir: Some("/tmp".into()), ..Default::default() };
        assert!(Config::merge(none.clone(), Overrides::default()).unwrap().connect_e.is_none());
        // half configured: refused, naming what is missing
        let half = ConnectEOverrides { url: Some("http://127.0.0.1:9".into()), ..Default::default() };
        assert!(matches!(Config::merge_with(none, Overrides::default(), half), Err(ConfigError::Invalid { key: "connect_e.api_key", .. })));
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

    #[test]
    fn printer_table() {
        let file: FileConfig = toml::from_str(
            "data_dir = \"/tmp\"\n[printer]\nurl = \"tcp://10.0.0.9\"\npaper_mm = 58\ncode_pages = [\"wpc1252\", \"wpc1255\"]\n",
        )
        .unwrap();
        let c = Config::merge(file, Overrides::default()).unwrap();
        assert_eq!(c.printer.columns, 32);
        assert_eq!(c.printer.url.as_deref(), Some("tcp://10.0.0.9"));
        let c = c.with_printer_url(Some("cups://Front".into())).unwrap();
        assert_eq!(c.printer.url.as_deref(), Some("cups://Front"));
        assert!(matches!(c.with_printer_url(Some("lpt1".into())), Err(ConfigError::Invalid { key: "printer.url", .. })));
        let bad: FileConfig = toml::from_str("data_dir = \"/tmp\"\n[printer]\ncode_pages = [\"ebcdic\"]\n").unwrap();
        assert!(matches!(Config::merge(bad, Overrides::default()), Err(ConfigError::Invalid { key: "printer.code_pages", .. })));
    }
}
