//! Signed automatic updates of the desktop app, through `tauri-plugin-updater`.
//!
//! The app follows the same `[update]` section of config.toml as the headless agent and the same
//! channel manifests. Before Tauri's updater is asked, the agent's updater checks the manifest's
//! own signature and that the offer is newer (Tauri's checks only the package's signature), so a
//! tampered manifest or a downgrade is refused the same way on both. The package is downloaded,
//! verified with the project's key and installed by the plugin (.deb/.rpm through the system's
//! package tools, MSI/NSIS on Windows, the app bundle on macOS) only while no payment is open and
//! no refund is queued; then the app restarts.

use std::time::Duration;
use tauri::AppHandle;
use tauri_plugin_updater::UpdaterExt;
use till_agent::Agent;

/// Checks on the configured schedule; does nothing when no `manifest_url` is configured.
pub async fn follow(app: AppHandle, agent: Agent) {
    let config = agent.config().update.clone();
    let Some(base) = config.manifest_url.clone() else {
        return;
    };
    let interval = Duration::from_secs(config.check_interval_secs.unwrap_or(3600).max(60));
    let mut wait = Duration::from_secs(30);
    loop {
        tokio::time::sleep(wait).await;
        wait = interval;
        match check(&app, &agent, &base).await {
            Ok(true) => {
                tracing::info!("update installed; restarting");
                app.restart();
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(error = format!("{error:#}"), "update check failed or refused"),
        }
    }
}

async fn check(app: &AppHandle, agent: &Agent, base: &str) -> anyhow::Result<bool> {
    let c = &agent.config().update;
    let key = till_agent::updater::load_key(c)?;
    let http = till_agent::updater::http_client(c)?;
    // Our own checks first: the manifest's signature, and a version newer than this one.
    if till_agent::updater::fetch_offer(c, &http, &key).await?.is_none() {
        return Ok(false);
    }
    let channel = c.channel.clone().unwrap_or_else(|| "stable".into());
    let base = if base.ends_with('/') { base.to_string() } else { format!("{base}/") };
    let mut builder = app.updater_builder().endpoints(vec![format!("{base}{channel}.json").parse()?])?;
    if let Some(pubkey) = pubkey_text(c) {
        builder = builder.pubkey(pubkey);
    }
    let Some(update) = builder.build()?.check().await? else {
        return Ok(false);
    };
    let bytes = update.download(|_, _| {}, || {}).await?;
    // Installing replaces the app under a running agent: only at an idle moment.
    loop {
        let c = agent.journal(|j| j.counts()).await?;
        if c.open_payments == 0 && c.pending_operations == 0 && c.in_flight_operations == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    update.install(bytes)?;
    Ok(true)
}

/// The key as Tauri wants it (base64 of the minisign key file), from config or the key file.
fn pubkey_text(c: &till_agent::updater::UpdateConfig) -> Option<String> {
    c.public_key.clone().or_else(|| {
        let file = c.public_key_file.clone().unwrap_or_else(|| till_agent::updater::DEFAULT_KEY_FILE.into());
        std::fs::read_to_string(file).ok().map(|s| s.trim().to_string())
    })
}
