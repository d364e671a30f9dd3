//! Automatic updates of the headless agent.
//!
//! For: checking a channel's signed manifest on a schedule, downloading and verifying the offered
//! package, waiting until no payment is open and no refund is queued, and then handing the
//! package to the installer. Not for: deciding what is trustworthy (that is `till-updater`,
//! which this module asks), nor for the desktop app (Tauri's updater plugin does that).
//!
//! Two ways to install, chosen by `[update] apply`:
//! - `systemd` (the package's default): the agent runs unprivileged and cannot install packages,
//!   so it writes the verified package and `updates/ready` into its state directory;
//!   `till-agent-update.path` sees it and runs `till-agent update install-staged` as root, which
//!   verifies the package again with the key shipped in the package (the agent's own directory is
//!   not trusted), waits for the agent to be idle, and runs `dpkg -i`; the package's scripts
//!   stop the service, migrate the journal and start it again.
//! - `command`: the agent runs `install_command` itself (with `{file}` replaced by the package),
//!   waits for an idle moment again and then restarts in place (exec of its own path). For
//!   machines without systemd, and the end-to-end test.
//!
//! What happened last is kept in `update-status.json` in the data directory, which `GET
//! /api/agent/health` reports under `update` together with the running version and channel.

use crate::config::Config;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use till_journal::Journal;
use till_updater::{Offer, UpdateKey};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Where the package installs the project's update public key (root-owned, read by both the
/// agent and the root installer).
pub const DEFAULT_KEY_FILE: &str = "/usr/share/till-agent/update-key.pub";

/// `[update]` in config.toml. Every field optional; without `manifest_url` nothing is checked.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    /// Base URL of the channel manifests (`{manifest_url}{channel}.json` and `.json.sig`): HTTPS,
    /// a static file server or the fleet server. Plain HTTP is accepted only on loopback.
    pub manifest_url: Option<String>,
    /// `stable` (default) or `pilot`: which manifest this till follows.
    pub channel: Option<String>,
    /// Seconds between checks (default 3600; at least 1).
    pub check_interval_secs: Option<u64>,
    /// The update public key itself (Tauri's base64 or minisign text); else `public_key_file`.
    pub public_key: Option<String>,
    /// File holding the public key (default [`DEFAULT_KEY_FILE`]).
    pub public_key_file: Option<PathBuf>,
    /// An extra CA certificate (PEM) trusted for the manifest server, for a chain's own CA.
    pub ca_file: Option<PathBuf>,
    /// `systemd` (default) or `command`; see the module documentation.
    pub apply: Option<String>,
    /// With `apply = "command"`: the installer, `{file}` replaced by the verified package.
    pub install_command: Option<Vec<String>>,
    /// Most seconds to wait for an idle moment before giving up until the next check (default 3600).
    pub max_wait_idle_secs: Option<u64>,
}

/// What the last check did, as health reports it.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStatus {
    /// `idle` (nothing to do), `up_to_date`, `downloading`, `waiting_for_idle`, `installing`,
    /// `restarting`, `refused`, `failed`.
    pub state: String,
    /// The version offered by the last manifest that verified, if newer.
    pub offered: Option<String>,
    /// Why the last offer was refused or failed (a signature that does not verify, a downgrade...).
    pub last_error: Option<String>,
    /// When the last check ran (unix ms).
    pub last_check_ms: Option<i64>,
}

/// The version this installation runs: the installed package's version when the package says so
/// (`/usr/lib/till-agent/package-version` next to the binary's `bin/`), else the crate version.
/// The package version is what an update replaces, so that is what an offer is compared with.
pub fn running_version() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|p| p.join("lib/till-agent/package-version")))
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| till_updater::parse_version(s).is_ok())
        .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string())
}

fn channel(c: &UpdateConfig) -> String {
    c.channel.clone().unwrap_or_else(|| "stable".into())
}

/// The update channel this agent follows (`stable` unless configured): what health and the fleet
/// report.
pub fn channel_of(config: &Config) -> String {
    channel(&config.update)
}

fn status_path(data_dir: &Path) -> PathBuf {
    data_dir.join("update-status.json")
}

/// The `update` object of `GET /api/agent/health`.
pub fn health(config: &Config) -> serde_json::Value {
    let status: Option<UpdateStatus> = std::fs::read(status_path(&config.data_dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    serde_json::json!({
        "version": running_version(),
        "channel": channel(&config.update),
        "enabled": config.update.manifest_url.is_some(),
        "state": status.as_ref().map(|s| s.state.clone()).unwrap_or_else(|| "idle".into()),
        "offered": status.as_ref().and_then(|s| s.offered.clone()),
        "lastError": status.as_ref().and_then(|s| s.last_error.clone()),
    })
}

fn write_status(data_dir: &Path, s: &UpdateStatus) {
    let tmp = data_dir.join("update-status.json.tmp");
    let ok = serde_json::to_vec(s).ok().and_then(|b| std::fs::write(&tmp, b).ok()).is_some();
    if ok {
        let _ = std::fs::rename(&tmp, status_path(data_dir));
    }
}

/// Errors of one update check. Logged and written to the status; never fatal to the agent.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Refused by the signature or version checks.
    #[error("{0}")]
    Refused(#[from] till_updater::UpdateError),
    /// The configuration cannot work (no key, bad URL, ...).
    #[error("update configuration: {0}")]
    Config(String),
    /// The manifest or package could not be fetched.
    #[error("download: {0}")]
    Http(#[from] reqwest::Error),
    /// Writing the package or running the installer failed.
    #[error("install: {0}")]
    Install(String),
}

/// Reads the configured public key.
pub fn load_key(c: &UpdateConfig) -> Result<UpdateKey, CheckError> {
    let text = match (&c.public_key, &c.public_key_file) {
        (Some(k), _) => k.clone(),
        (None, file) => {
            let file = file.clone().unwrap_or_else(|| DEFAULT_KEY_FILE.into());
            std::fs::read_to_string(&file)
                .map_err(|e| CheckError::Config(format!("public key {}: {e}", file.display())))?
        }
    };
    Ok(UpdateKey::parse(&text)?)
}

/// An HTTPS client trusting the system roots plus `ca_file`.
pub fn http_client(c: &UpdateConfig) -> Result<reqwest::Client, CheckError> {
    let mut b = reqwest::Client::builder().timeout(Duration::from_secs(300)).https_only(false);
    if let Some(ca) = &c.ca_file {
        let pem = std::fs::read(ca).map_err(|e| CheckError::Config(format!("ca_file {}: {e}", ca.display())))?;
        b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
    }
    Ok(b.build()?)
}

/// Manifests come over HTTPS; plain HTTP only from this machine (a local mirror).
fn check_url(url: &str) -> Result<reqwest::Url, CheckError> {
    let u = reqwest::Url::parse(url).map_err(|e| CheckError::Config(format!("`{url}`: {e}")))?;
    let loopback = matches!(u.host_str(), Some("127.0.0.1") | Some("localhost") | Some("[::1]"));
    if u.scheme() == "https" || (u.scheme() == "http" && loopback) {
        Ok(u)
    } else {
        Err(CheckError::Config(format!("`{url}` is not an https URL")))
    }
}

/// Fetches and checks the channel's manifest; `Ok(None)` when nothing newer is offered.
pub async fn fetch_offer(c: &UpdateConfig, http: &reqwest::Client, key: &UpdateKey) -> Result<Option<Offer>, CheckError> {
    let base = c.manifest_url.as_deref().ok_or_else(|| CheckError::Config("no manifest_url".into()))?;
    let base = if base.ends_with('/') { base.to_string() } else { format!("{base}/") };
    let url = check_url(&format!("{base}{}.json", channel(c)))?;
    let manifest = http.get(url.clone()).send().await?.error_for_status()?.bytes().await?;
    let sig = http.get(format!("{url}.sig")).send().await?.error_for_status()?.text().await?;
    let running = till_updater::parse_version(&running_version())
        .map_err(|e| CheckError::Config(format!("running version: {e}")))?;
    match key.check_manifest(&manifest, &sig, &running, &till_updater::headless_target()) {
        Ok(offer) => Ok(Some(offer)),
        // The same version: up to date, nothing to say.
        Err(till_updater::UpdateError::NotNewer { offered, .. }) if offered == running.to_string() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Downloads the offered package into `dir`, verifies it, and returns its path.
pub async fn download(http: &reqwest::Client, key: &UpdateKey, offer: &Offer, dir: &Path) -> Result<PathBuf, CheckError> {
    let url = check_url(&offer.url)?;
    let bytes = http.get(url).send().await?.error_for_status()?.bytes().await?;
    let name = format!("till-agent_{}.deb", offer.version);
    key.verify(&name, &bytes, &offer.signature)?;
    std::fs::create_dir_all(dir).map_err(|e| CheckError::Install(e.to_string()))?;
    let path = dir.join(&name);
    std::fs::write(&path, &bytes).map_err(|e| CheckError::Install(e.to_string()))?;
    std::fs::write(dir.join(format!("{name}.sig")), &offer.signature).map_err(|e| CheckError::Install(e.to_string()))?;
    Ok(path)
}

/// True when no payment is open and no refund or commit waits in the outbox.
pub fn is_idle(journal: &Journal) -> bool {
    match journal.counts() {
        Ok(c) => c.open_payments == 0 && c.pending_operations == 0 && c.in_flight_operations == 0,
        Err(_) => false,
    }
}

/// The running updater: a restart request for the binary's main loop.
#[derive(Clone, Default)]
pub struct Updater {
    restart: Arc<Notify>,
}

impl Updater {
    /// Resolves when an installed update asks the process to restart (`apply = "command"`).
    pub async fn restart_requested(&self) {
        self.restart.notified().await
    }
}

/// Starts the schedule (nothing when no `manifest_url` is configured).
pub fn spawn(config: Config, shutdown: CancellationToken) -> Updater {
    let updater = Updater::default();
    if config.update.manifest_url.is_none() {
        return updater;
    }
    let u = updater.clone();
    tokio::spawn(async move {
        let interval = Duration::from_secs(config.update.check_interval_secs.unwrap_or(3600).max(1));
        // The first check soon after start: a till that was off for a week catches up at once.
        let mut wait = Duration::from_secs(1).min(interval);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = interval;
            if check_once(&config, &u, &shutdown).await {
                return;
            }
        }
    });
    updater
}

/// One check; true when the process is about to restart.
async fn check_once(config: &Config, u: &Updater, shutdown: &CancellationToken) -> bool {
    let dir = &config.data_dir;
    let mut status = UpdateStatus { last_check_ms: Some(till_journal::now_ms()), ..Default::default() };
    let result = run_check(config, &mut status, shutdown).await;
    let restart = match result {
        Ok(restart) => restart,
        Err(e) => {
            let refused = matches!(e, CheckError::Refused(_));
            tracing::warn!(error = %e, "update {}", if refused { "refused" } else { "failed" });
            status.state = if refused { "refused" } else { "failed" }.into();
            status.last_error = Some(e.to_string());
            false
        }
    };
    write_status(dir, &status);
    if restart {
        u.restart.notify_one();
    }
    restart
}

async fn run_check(config: &Config, status: &mut UpdateStatus, shutdown: &CancellationToken) -> Result<bool, CheckError> {
    let c = &config.update;
    let key = load_key(c)?;
    let http = http_client(c)?;
    let Some(offer) = fetch_offer(c, &http, &key).await? else {
        status.state = "up_to_date".into();
        return Ok(false);
    };
    tracing::info!(version = %offer.version, channel = %channel(c), "update offered");
    status.offered = Some(offer.version.to_string());
    status.state = "downloading".into();
    write_status(&config.data_dir, status);
    let updates = config.data_dir.join("updates");
    let file = download(&http, &key, &offer, &updates).await?;
    let journal = Journal::open(config.journal_path()).map_err(|e| CheckError::Install(e.to_string()))?;
    let max_wait = Duration::from_secs(c.max_wait_idle_secs.unwrap_or(3600));
    status.state = "waiting_for_idle".into();
    write_status(&config.data_dir, status);
    if !wait_idle(&journal, max_wait, shutdown).await {
        return Err(CheckError::Install("no idle moment; will try again at the next check".into()));
    }
    status.state = "installing".into();
    write_status(&config.data_dir, status);
    match c.apply.as_deref().unwrap_or("systemd") {
        "systemd" => {
            // The root installer re-verifies; this only says which file and version.
            let ready = serde_json::json!({ "file": file, "version": offer.version.to_string() });
            let tmp = updates.join("ready.tmp");
            std::fs::write(&tmp, ready.to_string()).map_err(|e| CheckError::Install(e.to_string()))?;
            std::fs::rename(&tmp, updates.join("ready")).map_err(|e| CheckError::Install(e.to_string()))?;
            tracing::info!(version = %offer.version, "update staged for till-agent-update.service");
            Ok(false)
        }
        "command" => {
            let argv = c.install_command.clone().filter(|a| !a.is_empty())
                .ok_or_else(|| CheckError::Config("apply = \"command\" needs install_command".into()))?;
            let file_s = file.display().to_string();
            let argv: Vec<String> = argv.iter().map(|a| a.replace("{file}", &file_s)).collect();
            let out = tokio::process::Command::new(&argv[0]).args(&argv[1..]).output().await
                .map_err(|e| CheckError::Install(format!("{}: {e}", argv[0])))?;
            if !out.status.success() {
                return Err(CheckError::Install(format!(
                    "{} exited with {}: {}", argv[0], out.status, String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            // The files are replaced; the process restarts only at an idle moment too.
            if !wait_idle(&journal, max_wait, shutdown).await {
                return Err(CheckError::Install("installed, but no idle moment to restart in".into()));
            }
            tracing::info!(version = %offer.version, "update installed; restarting");
            status.state = "restarting".into();
            Ok(true)
        }
        other => Err(CheckError::Config(format!("apply = `{other}`: expected systemd or command"))),
    }
}

/// Waits until [`is_idle`], polling once a second; false after `max` or at shutdown.
pub async fn wait_idle(journal: &Journal, max: Duration, shutdown: &CancellationToken) -> bool {
    let deadline = tokio::time::Instant::now() + max;
    loop {
        let j = journal.clone();
        if tokio::task::spawn_blocking(move || is_idle(&j)).await.unwrap_or(false) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline || shutdown.is_cancelled() {
            return false;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `till-agent update check`: what the channel offers now, as one line of JSON.
pub async fn check_now(config: &Config) -> anyhow::Result<String> {
    let c = &config.update;
    let key = load_key(c)?;
    let http = http_client(c)?;
    let offer = fetch_offer(c, &http, &key).await?;
    Ok(serde_json::json!({
        "running": running_version(),
        "channel": channel(c),
        "offered": offer.as_ref().map(|o| o.version.to_string()),
        "url": offer.as_ref().map(|o| o.url.clone()),
    })
    .to_string())
}

/// `till-agent update install-staged` (root, from `till-agent-update.service`): verifies the
/// package the agent staged with the key this installation ships, refuses anything not newer than
/// what is installed, waits until the agent reports no open payment and no queued operation, and
/// installs it with `dpkg -i` (whose scripts stop, migrate and start the service).
pub async fn install_staged(config: &Config) -> anyhow::Result<()> {
    use anyhow::{bail, Context};
    let updates = config.data_dir.join("updates");
    let ready_path = updates.join("ready");
    let ready: serde_json::Value = serde_json::from_slice(&std::fs::read(&ready_path).context("reading updates/ready")?)?;
    // The marker goes first: the path unit must not loop on a bad one.
    std::fs::remove_file(&ready_path)?;
    // The agent's directory is not trusted: only the version is taken from it, and the file name
    // is rebuilt from the parsed version so no path can be smuggled in.
    let version = till_updater::parse_version(ready["version"].as_str().unwrap_or_default())
        .context("updates/ready: version")?;
    let running = till_updater::parse_version(&running_version())?;
    if version <= running {
        bail!("staged update {version} is not newer than the installed {running}: refused");
    }
    let name = format!("till-agent_{version}.deb");
    let file = updates.join(&name);
    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let sig = std::fs::read_to_string(updates.join(format!("{name}.sig")))?;
    load_key(&config.update)?.verify(&name, &bytes, &sig)?;
    // Copy what was verified to a root-only place, so the agent cannot swap it after the check.
    let tmp = std::env::temp_dir().join(format!("till-agent-update-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let verified = tmp.join(&name);
    std::fs::write(&verified, &bytes)?;
    let max = Duration::from_secs(config.update.max_wait_idle_secs.unwrap_or(3600));
    wait_agent_idle(config, max).await?;
    tracing::info!(%version, "installing staged update");
    let status = tokio::process::Command::new("dpkg")
        // The store's own config.toml is kept (it is a conffile the store edits).
        .args(["--force-confdef", "--force-confold", "-i"])
        .arg(&verified)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .await
        .context("running dpkg")?;
    let _ = std::fs::remove_dir_all(&tmp);
    if !status.success() {
        bail!("dpkg -i {name} failed: {status}");
    }
    Ok(())
}

/// Polls the running agent's health until it reports no open payment and no queued operation.
/// An agent that does not answer has nothing open in memory; its journal recovers on start.
async fn wait_agent_idle(config: &Config, max: Duration) -> anyhow::Result<()> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let url = format!("http://{}/api/agent/health", config.listen);
    let deadline = tokio::time::Instant::now() + max;
    loop {
        let h: serde_json::Value = match http.get(&url).send().await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => return Ok(()),
        };
        if h["openTransactions"].as_u64() == Some(0) && h["queuedOperations"].as_u64() == Some(0) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("the agent was not idle for {} s; the update stays for the next check", max.as_secs());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Replaces this process with the (updated) binary at the same path, with the same arguments.
/// Returns only if that fails.
#[cfg(unix)]
pub fn restart_in_place() -> anyhow::Error {
    use std::os::unix::process::CommandExt;
    let exe = match std::env::current_exe() {
        // Linux names a replaced executable "PATH (deleted)"; the new file is at PATH.
        Ok(p) => PathBuf::from(p.to_string_lossy().trim_end_matches(" (deleted)").to_string()),
        Err(e) => return e.into(),
    };
    let err = std::process::Command::new(&exe).args(std::env::args_os().skip(1)).exec();
    anyhow::anyhow!("restarting {} after the update: {err}", exe.display())
}

/// Elsewhere the process exits and its service manager starts the new binary.
#[cfg(not(unix))]
pub fn restart_in_place() -> anyhow::Error {
    anyhow::anyhow!("update installed; exiting so that the service manager starts the new version")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, FileConfig, Overrides};

    #[test]
    fn manifests_come_over_https_or_from_this_machine_only() {
        assert!(check_url("https://updates.example.com/x/stable.json").is_ok());
        assert!(check_url("http://127.0.0.1:9000/stable.json").is_ok());
        assert!(check_url("http://updates.example.com/stable.json").is_err());
        assert!(check_url("file:///etc/passwd").is_err());
    }

    #[test]
    fn the_update_section_is_read_and_health_reports_version_and_channel() {
        let file: FileConfig = toml::from_str(
            "data_dir = \"/nonexistent/till\"\n[update]\nmanifest_url = \"https://u.example/\"\nchannel = \"pilot\"\ncheck_interval_secs = 60\n",
        )
        .unwrap();
        let config = Config::merge(file, Overrides::default()).unwrap();
        assert_eq!(config.update.channel.as_deref(), Some("pilot"));
        let h = health(&config);
        assert_eq!(h["channel"], "pilot");
        assert_eq!(h["enabled"], true);
        assert_eq!(h["state"], "idle");
        assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));
        // An unknown key in [update] is refused like any other typo in config.toml.
        assert!(toml::from_str::<FileConfig>("[update]\nchanel = \"pilot\"\n").is_err());
        let none = Config::merge(FileConfig { data_dir: Some("/x".into()), ..Default::default() }, Overrides::default()).unwrap();
        assert_eq!(health(&none)["channel"], "stable");
        assert_eq!(health(&none)["enabled"], false);
    }

    /// The root installer trusts nothing in the agent's directory: a package signed by another
    /// key, a version not newer than the installed one, or a version that is a path is refused
    /// before dpkg is ever run, and the marker is consumed so the path unit does not loop.
    #[tokio::test]
    async fn install_staged_refuses_what_does_not_verify_or_is_not_newer() {
        use till_updater::signing::{generate, Signer};
        let dir = tempfile::tempdir().unwrap();
        let key = generate(None).unwrap();
        let other = Signer::new(&generate(None).unwrap().secret, None).unwrap();
        let file = FileConfig {
            data_dir: Some(dir.path().to_path_buf()),
            update: Some(UpdateConfig { public_key: Some(key.public.clone()), ..Default::default() }),
            ..Default::default()
        };
        let config = Config::merge(file, Overrides::default()).unwrap();
        let updates = dir.path().join("updates");
        std::fs::create_dir_all(&updates).unwrap();
        let stage = |version: &str, signer: &Signer| {
            let name = format!("till-agent_{version}.deb");
            std::fs::write(updates.join(&name), b"package").unwrap();
            std::fs::write(updates.join(format!("{name}.sig")), signer.sign(&name, b"package").unwrap()).unwrap();
            std::fs::write(updates.join("ready"), serde_json::json!({ "version": version }).to_string()).unwrap();
        };
        stage("99.0.0", &other);
        let err = install_staged(&config).await.unwrap_err().to_string();
        assert!(err.contains("does not verify"), "{err}");
        assert!(!updates.join("ready").exists(), "the marker is consumed");
        stage("0.0.1", &Signer::new(&key.secret, None).unwrap());
        let err = install_staged(&config).await.unwrap_err().to_string();
        assert!(err.contains("not newer"), "{err}");
        std::fs::write(updates.join("ready"), r#"{"version":"../../etc/passwd"}"#).unwrap();
        assert!(install_staged(&config).await.is_err());
    }

    #[test]
    fn idle_means_no_open_payment_and_an_empty_outbox() {
        let j = Journal::open_in_memory().unwrap();
        assert!(is_idle(&j));
    }
}
