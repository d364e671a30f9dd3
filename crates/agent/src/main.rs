//! `till-agent`: the headless Till Agent.
//!
//! ```text
//! till-agent run [--sandbox] [--listen 127.0.0.1:8003] [--data-dir DIR] [--sensepass-url URL] [--socket-url URL]
//!                [--connect-e-url URL --connect-e-key KEY --connect-e-merchant-url URL [--connect-e-web-url URL]]
//! till-agent pair --pin XXX-XXX-XXX --api-key KEY [--pos-name NAME]
//! till-agent pair --create --api-key KEY --pos-name NAME
//! till-agent pair --device-id ID
//! till-agent unpair | status | token
//! till-agent manager set-pin [--sandbox]   # reads the PIN from stdin
//! till-agent enrol --fleet-url URL --code CODE [--till-name NAME] [--sandbox]
//! ```

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use till_agent::config::{Config, Overrides};
use till_journal::{Journal, Pairing};
use till_sensepass::{Client, ClientConfig, Credentials};

#[derive(Parser)]
#[command(name = "till-agent", version, about = "Till Agent: connects POS software to SensePass")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Settings shared by every command (flag > environment > config file > default).
#[derive(Args, Clone)]
struct Common {
    /// Config file (TOML). Default: the platform config dir's till-agent/config.toml.
    #[arg(long, env = "TILL_AGENT_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Local API address; loopback only. Default 127.0.0.1:8003.
    #[arg(long, env = "TILL_AGENT_LISTEN", global = true)]
    listen: Option<SocketAddr>,
    /// Data directory (journal, logs). Default: the platform data dir.
    #[arg(long, env = "TILL_AGENT_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// SensePass REST base, e.g. https://api.sandbox.sensepass.com/api/ (default: production).
    #[arg(long, env = "TILL_AGENT_SENSEPASS_URL", global = true)]
    sensepass_url: Option<String>,
    /// SensePass Socket.IO server, e.g. https://api.sandbox.sensepass.com (default: production).
    #[arg(long, env = "TILL_AGENT_SOCKET_URL", global = true)]
    socket_url: Option<String>,
    /// Paymentsense Connect-E REST host, e.g. https://e.test.connect.paymentsense.cloud.
    #[arg(long, env = "TILL_AGENT_CONNECT_E_URL", global = true)]
    connect_e_url: Option<String>,
    /// Connect-E web host serving client.js (default: the REST host's web host).
    #[arg(long, env = "TILL_AGENT_CONNECT_E_WEB_URL", global = true)]
    connect_e_web_url: Option<String>,
    /// Connect-E API key (prefer the environment or config.toml: flags show in the process list).
    #[arg(long, env = "TILL_AGENT_CONNECT_E_KEY", global = true, hide_env_values = true)]
    connect_e_key: Option<String>,
    /// The merchant URL registered with the Connect-E account.
    #[arg(long, env = "TILL_AGENT_CONNECT_E_MERCHANT_URL", global = true)]
    connect_e_merchant_url: Option<String>,
    /// Acquired.com API base, e.g. https://test-api.acquired.com/v1.
    #[arg(long, env = "TILL_AGENT_ACQUIRED_URL", global = true)]
    acquired_url: Option<String>,
    /// Acquired Components script URL (default: Acquired's test or live script).
    #[arg(long, env = "TILL_AGENT_ACQUIRED_COMPONENTS_URL", global = true)]
    acquired_components_url: Option<String>,
    /// Acquired app_id.
    #[arg(long, env = "TILL_AGENT_ACQUIRED_APP_ID", global = true)]
    acquired_app_id: Option<String>,
    /// Acquired app_key (prefer the environment or config.toml: flags show in the process list).
    #[arg(long, env = "TILL_AGENT_ACQUIRED_APP_KEY", global = true, hide_env_values = true)]
    acquired_app_key: Option<String>,
    /// Acquired Company-Id header, when the account has one.
    #[arg(long, env = "TILL_AGENT_ACQUIRED_COMPANY_ID", global = true)]
    acquired_company_id: Option<String>,
    /// Acquired webhook key, when the Hub shows one apart from the app key.
    #[arg(long, env = "TILL_AGENT_ACQUIRED_WEBHOOK_KEY", global = true, hide_env_values = true)]
    acquired_webhook_key: Option<String>,
    /// FlexFactor API base (decline recovery), e.g. https://api-sandbox.flexfactor.io/v1/.
    #[arg(long, env = "TILL_AGENT_FLEXFACTOR_URL", global = true)]
    flexfactor_url: Option<String>,
    /// FlexFactor AppKey.
    #[arg(long, env = "TILL_AGENT_FLEXFACTOR_APP_KEY", global = true)]
    flexfactor_app_key: Option<String>,
    /// FlexFactor AppSecret (prefer the environment or config.toml: flags show in the process list).
    #[arg(long, env = "TILL_AGENT_FLEXFACTOR_APP_SECRET", global = true, hide_env_values = true)]
    flexfactor_app_secret: Option<String>,
    /// FlexFactor merchant GUID (mid).
    #[arg(long, env = "TILL_AGENT_FLEXFACTOR_MID", global = true)]
    flexfactor_mid: Option<String>,
    /// FlexFactor site GUID (siteId).
    #[arg(long, env = "TILL_AGENT_FLEXFACTOR_SITE_ID", global = true)]
    flexfactor_site_id: Option<String>,
    /// FlexFactor tokenization environment key.
    #[arg(long, env = "TILL_AGENT_FLEXFACTOR_TOKENIZE_ENVIRONMENT", global = true, hide_env_values = true)]
    flexfactor_tokenize_environment: Option<String>,
    /// Decline recovery on or off for this till (default on when FlexFactor is configured).
    #[arg(long, env = "TILL_AGENT_FLEXFACTOR_ENABLED", global = true)]
    flexfactor_enabled: Option<bool>,
    /// Receipt printer: tcp://host:9100, file:///dev/usb/lp0 or cups://queue (over `[printer] url`).
    #[arg(long, env = "TILL_AGENT_PRINTER", global = true)]
    printer: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent (local API on 127.0.0.1:8003).
    Run {
        #[command(flatten)]
        common: Common,
        /// Start the embedded SensePass sandbox and pair with it (no credentials needed).
        #[arg(long)]
        sandbox: bool,
        /// With --sandbox: pay every new payment automatically after N ms with a test card.
        #[arg(long, requires = "sandbox")]
        autopilot_ms: Option<u64>,
        /// Accept money-out operations without the POS token (legacy POS software). Not recommended.
        #[arg(long, env = "TILL_AGENT_WAIVE_POS_TOKEN")]
        waive_pos_token: bool,
    },
    /// Pair this till with a SensePass device.
    Pair {
        #[command(flatten)]
        common: Common,
        /// Tag PIN printed under the tag's QR (XXX-XXX-XXX); uses devices/match.
        #[arg(long, conflicts_with_all = ["create", "device_id"], requires = "api_key")]
        pin: Option<String>,
        /// Create a dynamic-QR device without a tag (devices/create).
        #[arg(long, requires_all = ["api_key", "pos_name"], conflicts_with = "device_id")]
        create: bool,
        /// Use a device id from the SensePass dashboard.
        #[arg(long)]
        device_id: Option<String>,
        /// Location (branch) API key.
        #[arg(long, env = "TILL_AGENT_API_KEY")]
        api_key: Option<String>,
        /// Register name shown in SensePass dashboards.
        #[arg(long)]
        pos_name: Option<String>,
    },
    /// Forget the paired device.
    Unpair {
        #[command(flatten)]
        common: Common,
    },
    /// Show pairing, connectivity, open transactions and queued operations.
    Status {
        #[command(flatten)]
        common: Common,
    },
    /// Enrol this till with a fleet server (chain-wide reporting); the agent starts replicating
    /// its journal within seconds, without a restart.
    Enrol {
        #[command(flatten)]
        common: Common,
        /// The fleet server, e.g. https://fleet.example.com.
        #[arg(long)]
        fleet_url: String,
        /// The one-time enrolment code from the fleet's administrator.
        #[arg(long)]
        code: String,
        /// This till's name in its store. Default: the computer's name.
        #[arg(long)]
        till_name: Option<String>,
        /// Enrol the sandbox journal (`run --sandbox`) instead of the production one.
        #[arg(long)]
        sandbox: bool,
    },
    /// Print the compile-time features of this binary (for test harnesses).
    #[command(hide = true)]
    Features,
    /// Print the POS token that money-out operations need (Authorization: Bearer …); generated
    /// now if the agent has not run yet. `run --sandbox` on the same data directory uses it too.
    Token {
        #[command(flatten)]
        common: Common,
    },
    /// Manager PIN administration, on the till itself.
    Manager {
        #[command(subcommand)]
        command: ManagerCommand,
    },
    /// Bring the journal's schema up to date (the package's upgrade script runs this between
    /// stopping and starting the service); refuses a journal from a newer version.
    Migrate {
        #[command(flatten)]
        common: Common,
    },
    /// Print the journal file's schema version without opening it for writing (package scripts).
    #[command(hide = true)]
    JournalSchema {
        #[command(flatten)]
        common: Common,
    },
    /// Signed automatic updates (configured under `[update]` in config.toml).
    Update {
        #[command(subcommand)]
        command: UpdateCommand,
    },
}

#[derive(Subcommand)]
enum UpdateCommand {
    /// Check the channel's manifest now and print what it offers (installs nothing).
    Check {
        #[command(flatten)]
        common: Common,
    },
    /// As root (till-agent-update.service): verify the update the agent staged, wait until the
    /// agent is idle and install it with dpkg.
    InstallStaged {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum ManagerCommand {
    /// Set (or reset) the manager PIN, 4 to 12 digits, read from the first line of stdin so it
    /// never shows in the process list. Also clears the wrong-PIN lock. Sessions of a running
    /// agent end at its next restart or on logout.
    SetPin {
        #[command(flatten)]
        common: Common,
        /// The PIN of `run --sandbox`'s journal (`<data-dir>/sandbox/`).
        #[arg(long)]
        sandbox: bool,
    },
}

fn load(common: &Common, waive: Option<bool>) -> Result<Config> {
    let overrides = Overrides {
        listen: common.listen,
        data_dir: common.data_dir.clone(),
        sensepass_url: common.sensepass_url.clone(),
        socket_url: common.socket_url.clone(),
        waive_pos_token: waive,
    };
    let connect_e = till_agent::config::ConnectEOverrides {
        url: common.connect_e_url.clone(),
        web_url: common.connect_e_web_url.clone(),
        key: common.connect_e_key.clone(),
        merchant_url: common.connect_e_merchant_url.clone(),
    };
    let acquired = till_agent::config::AcquiredFile {
        base_url: common.acquired_url.clone(),
        components_url: common.acquired_components_url.clone(),
        app_id: common.acquired_app_id.clone(),
        app_key: common.acquired_app_key.clone(),
        company_id: common.acquired_company_id.clone(),
        webhook_key: common.acquired_webhook_key.clone(),
    };
    let flexfactor = till_agent::config::FlexFactorFile {
        base_url: common.flexfactor_url.clone(),
        app_key: common.flexfactor_app_key.clone(),
        app_secret: common.flexfactor_app_secret.clone(),
        mid: common.flexfactor_mid.clone(),
        site_id: common.flexfactor_site_id.clone(),
        tokenize_environment: common.flexfactor_tokenize_environment.clone(),
        enabled: common.flexfactor_enabled,
    };
    Ok(Config::load_with(common.config.as_deref(), overrides, connect_e)?
        .with_acquired(acquired)?
        .with_flexfactor(flexfactor)?
        .with_printer_url(common.printer.clone())?)
}

fn open_journal(config: &Config) -> Result<Journal> {
    refuse_foreign_data_dir(config)?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    Ok(Journal::open(config.journal_path())?)
}

/// Root must not write into the service user's data directory: files it created there (the
/// journal's WAL, a new journal) would be root's, and the sandboxed service could not open them.
#[cfg(unix)]
fn refuse_foreign_data_dir(config: &Config) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX);
    if me == 0 {
        if let Ok(m) = std::fs::metadata(&config.data_dir) {
            if m.uid() != 0 {
                bail!(
                    "{} belongs to another user (the service's): run this as that user, e.g. \
                     `sudo -u till-agent till-agent ...`",
                    config.data_dir.display()
                );
            }
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn refuse_foreign_data_dir(_config: &Config) -> Result<()> {
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    // Crash points for the reliability harness (inactive unless built with `failpoints` and armed).
    let _failpoints = till_agent::failpoints::setup();
    match cli.command {
        Command::Run { common, sandbox, autopilot_ms, waive_pos_token } => {
            let mut config = load(&common, waive_pos_token.then_some(true))?;
            run(&mut config, sandbox, autopilot_ms).await
        }
        Command::Pair { common, pin, create, device_id, api_key, pos_name } => {
            init_logging();
            let config = load(&common, None)?;
            pair(&config, pin, create, device_id, api_key, pos_name).await
        }
        Command::Unpair { common } => {
            let config = load(&common, None)?;
            open_journal(&config)?.clear_pairing()?;
            println!("unpaired");
            Ok(())
        }
        Command::Status { common } => {
            let config = load(&common, None)?;
            status(&config).await
        }
        Command::Enrol { common, fleet_url, code, till_name, sandbox } => {
            let config = load(&common, None)?;
            let dir = if sandbox { config.data_dir.join("sandbox") } else { config.data_dir.clone() };
            let name = till_name.unwrap_or_else(computer_name);
            let id = till_agent::fleet::enrol(&dir, &fleet_url, &code, &name).await?;
            println!("enrolled as till {} of store {} (id {})", id.till_name, id.store, id.till_id);
            Ok(())
        }
        Command::Features => {
            println!("{}", if cfg!(feature = "failpoints") { "failpoints" } else { "" });
            Ok(())
        }
        Command::Manager { command: ManagerCommand::SetPin { common, sandbox } } => {
            let mut config = load(&common, None)?;
            if sandbox {
                config.data_dir = config.data_dir.join("sandbox");
            }
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).context("reading the PIN from stdin")?;
            let pin = line.trim();
            if !till_agent::manager::valid_pin(pin) {
                bail!("the PIN must be 4 to 12 digits");
            }
            let hash = till_agent::manager::hash_pin(pin)?;
            let journal = open_journal(&config)?;
            journal.set_setting(till_agent::manager::PIN_SETTING, &hash)?;
            journal.set_setting(till_agent::manager::FAILURES_SETTING, "0:0")?;
            println!("manager PIN set");
            Ok(())
        }
        Command::Migrate { common } => {
            let config = load(&common, None)?;
            refuse_foreign_data_dir(&config)?;
            if !config.journal_path().exists() {
                println!("no journal yet at {}", config.journal_path().display());
                return Ok(());
            }
            drop(open_journal(&config)?);
            println!("journal schema {}", till_journal::schema_version());
            Ok(())
        }
        Command::JournalSchema { common } => {
            let config = load(&common, None)?;
            let path = config.journal_path();
            let v = if path.exists() { till_journal::file_schema_version(&path)? } else { 0 };
            println!("{v}");
            Ok(())
        }
        Command::Update { command: UpdateCommand::Check { common } } => {
            let config = load(&common, None)?;
            println!("{}", till_agent::updater::check_now(&config).await?);
            Ok(())
        }
        Command::Update { command: UpdateCommand::InstallStaged { common } } => {
            init_logging();
            let config = load(&common, None)?;
            till_agent::updater::install_staged(&config).await
        }
        Command::Token { common } => {
            let config = load(&common, None)?;
            let token = till_agent::service::ensure_pos_token(&open_journal(&config)?)?;
            println!("{token}");
            Ok(())
        }
    }
}

/// Files the agent creates (logs, journal, exports) are readable by the till's user only: the
/// logs name transactions and the journal holds the POS token.
fn private_files() {
    #[cfg(unix)]
    {
        // SAFETY: umask only swaps the process's file-creation mask; it cannot fail.
        #[allow(unsafe_code)]
        unsafe {
            libc::umask(0o077);
        }
    }
}

async fn run(config: &mut Config, sandbox: bool, autopilot_ms: Option<u64>) -> Result<()> {
    private_files();
    // Logs go to the base data directory (not the sandbox's sub-directory).
    let _log_guard = init_logging_files(config);
    let sandbox_handle = if sandbox {
        Some(till_agent::embedded::start(config, autopilot_ms).await?)
    } else {
        None
    };
    let running = till_agent::start(config.clone()).await?;
    let url = format!("http://{}", running.addr);
    // A machine-readable first line on stdout, for scripts and tests.
    println!("till-agent listening on {url}");
    if let Some(sb) = &sandbox_handle {
        println!("sandbox SensePass API: {}", sb.api_base());
        println!("sandbox control API:   {}", sb.control_url());
        println!("sandbox Connect-E API: {} (keyed cards: 5200000000000056 approves, 4456530000001096 asks 3-D Secure, 4456530000001013 declines)", sb.connect_e_url());
        println!("sandbox Acquired API: {} (session checkout cards: 4111111111111111 approves, 4000015979612025 opens a 3-D Secure challenge, 4000000000009995 declines)", sb.acquired_url());
        println!("sandbox FlexFactor API: {} (decline recovery of keyed cards Connect-E declines: 4000002760003184 recovered, 4000300011112220 declined, 4000000000000077 decided later)", sb.flexfactor_url());
        // FlexFactor's events go to this agent's webhook route (as the portal's setting would).
        till_agent::embedded::point_webhooks(sb, &url).await;
        println!("try: curl -s -X POST {url}/api/transactions/init -H 'Content-Type: application/json' \\");
        println!("       -d '{{\"amount\":1250,\"currency\":\"USD\",\"posData\":{{\"orderId\":\"A-1\"}}}}'");
        println!("then open the transaction's transactionPage.qrURL in a browser and pay with 4111111111111111");
    }
    let update_stop = tokio_util::sync::CancellationToken::new();
    let updater = till_agent::updater::spawn(config.clone(), update_stop.clone());
    let mut restart = false;
    tokio::select! {
        _ = shutdown_signal() => tracing::info!("stopping"),
        _ = running.stopped() => {}
        _ = updater.restart_requested() => restart = true,
    }
    update_stop.cancel();
    running.shutdown().await;
    if let Some(sb) = sandbox_handle {
        sb.shutdown().await;
    }
    if restart {
        // An update replaced the binary: start it in this process's place (same arguments,
        // same pid, so a supervisor sees no exit).
        return Err(till_agent::updater::restart_in_place());
    }
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn pair(
    config: &Config,
    pin: Option<String>,
    create: bool,
    device_id: Option<String>,
    api_key: Option<String>,
    pos_name: Option<String>,
) -> Result<()> {
    let journal = open_journal(config)?;
    // The POS token exists from pairing on, so the POS can be set up before the first run.
    till_agent::service::ensure_pos_token(&journal)?;
    let environment = environment_of(&config.sensepass_url);
    let (device_id, name, client_box) = if let Some(id) = device_id {
        (id, pos_name.unwrap_or_default(), None)
    } else {
        let api_key = api_key.context("--api-key is required with --pin or --create")?;
        let client = Client::new(
            ClientConfig {
                base_url: config.sensepass_url.clone(),
                timeout: config.http_timeout,
                connect_timeout: std::time::Duration::from_secs(5),
            },
            Credentials::ApiKey { api_key, branch_number: None },
        )?;
        let device = if let Some(pin) = pin {
            client
                .devices_match(&till_sensepass::models::MatchRequest {
                    pin_code: Some(pin),
                    pos_name: pos_name.clone(),
                    ..Default::default()
                })
                .await?
        } else if create {
            let name = pos_name.context("--pos-name is required with --create")?;
            client.devices_create(&till_sensepass::models::CreateDeviceRequest { pos_name: name }).await?
        } else {
            bail!("say how to pair: --pin PIN --api-key KEY, --create --api-key KEY --pos-name NAME, or --device-id ID");
        };
        (device.device_alias_key.clone(), device.name.clone().unwrap_or_default(), device.client_boxes.first().cloned())
    };
    journal.set_pairing(&Pairing {
        device_id: device_id.clone(),
        pos_name: name,
        environment,
        api_base: config.sensepass_url.clone(),
        socket_url: config.socket_url.clone(),
        client_box_url: client_box,
        paired_at: till_journal::now_ms(),
    })?;
    println!("paired with device {}…", &device_id.chars().take(8).collect::<String>());
    Ok(())
}

/// The computer's name, the default till name.
fn computer_name() -> String {
    std::env::var("COMPUTERNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "till".to_string())
}

fn environment_of(url: &str) -> String {
    till_agent::config::environment_of(url).to_string()
}

async fn status(config: &Config) -> Result<()> {
    let journal = open_journal(config)?;
    match journal.pairing()? {
        Some(p) => println!("paired:        yes ({} device {}…, {})", p.environment, &p.device_id.chars().take(8).collect::<String>(), p.pos_name),
        None => println!("paired:        no"),
    }
    let counts = journal.counts()?;
    println!("open payments: {}", counts.open_payments);
    println!("queued ops:    {}", counts.queued_operations());
    match till_agent::fleet::Identity::load(&config.data_dir) {
        Ok(Some(id)) => println!("fleet:         {} changes behind ({}, {} at {})", journal.changes_behind()?, id.till_name, id.store, id.fleet_url),
        Ok(None) => println!("fleet:         not enrolled"),
        Err(e) => println!("fleet:         {e}"),
    }
    let url = format!("http://{}/api/agent/health", config.listen);
    match reqwest::Client::new().get(&url).timeout(std::time::Duration::from_secs(2)).send().await {
        Ok(r) => {
            let h: serde_json::Value = r.json().await.unwrap_or_default();
            println!("agent:         running at {}", config.listen);
            println!("socket:        {}", if h["socketConnected"] == true { "connected" } else { "disconnected" });
            println!("sensepass:     {}", if h["sensepassReachable"] == true { "reachable".to_string() } else { format!("unreachable since {}", h["offlineSince"]) });
        }
        Err(_) => println!("agent:         not running at {}", config.listen),
    }
    Ok(())
}

/// Human-readable logs to stderr. Card data and secrets are never logged by the agent's code.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("TILL_AGENT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// Stderr logs plus rotated daily JSON files in `<data-dir>/logs`. Returns the guard that
/// flushes the file writer on drop.
fn init_logging_files(config: &Config) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::EnvFilter;
    let dir = config.log_dir();
    if std::fs::create_dir_all(&dir).is_err() {
        init_logging();
        return None;
    }
    let appender = tracing_appender::rolling::daily(&dir, "till-agent.json");
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = || EnvFilter::try_from_env("TILL_AGENT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let result = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter()))
        .with(tracing_subscriber::fmt::layer().json().with_writer(writer).with_filter(filter()))
        .try_init();
    if result.is_err() {
        return None;
    }
    Some(guard)
}
