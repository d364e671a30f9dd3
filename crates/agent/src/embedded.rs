//! `till-agent run --sandbox`: the SensePass sandbox started in-process on loopback, a device
//! created and paired, and the agent pointed at it (and at the sandbox's Connect-E simulator) — so a new user sees real payments flow over
//! real HTTP and Socket.IO with no credentials.
//!
//! Its journal lives in `<data-dir>/sandbox/`, apart from a production journal, because sandbox
//! transactions must never mix with real ones. The sandbox keeps its world in
//! `<data-dir>/sandbox/sandbox-state.json` and tries its previous ports again
//! (`sandbox-addr.json`), so after an agent restart the same device, the same transactions and
//! the same links (commitLink, qrURL) are still there — an agent crash can be tried end to end.
//! The POS token is the data directory's one (`till-agent token`), shared with a real pairing.

use crate::config::Config;
use serde_json::Value;
use till_journal::{Journal, Pairing};
use till_sandbox::{SandboxConfig, SandboxHandle};

/// Errors starting the embedded sandbox.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// The sandbox did not start.
    #[error("sandbox: {0}")]
    Sandbox(String),
    /// Pairing with the sandbox failed.
    #[error("pairing with the sandbox failed: {0}")]
    Pair(String),
    /// The journal failed.
    #[error("journal: {0}")]
    Journal(#[from] till_journal::JournalError),
}

/// The embedded sandbox's directory inside a data directory.
pub fn sandbox_data_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("sandbox")
}

/// The addresses the sandbox listened on last time, kept so its links stay valid after a restart.
#[derive(serde::Serialize, serde::Deserialize)]
struct Addresses {
    main: std::net::SocketAddr,
    control: std::net::SocketAddr,
}

/// Starts the sandbox, rewrites `config` to use it, and pairs a sandbox device — the one of the
/// previous run when the sandbox (restored from its state file) still knows it, else a new
/// dynamic-QR device.
pub async fn start(config: &mut Config, autopilot_ms: Option<u64>) -> Result<SandboxHandle, EmbeddedError> {
    let base_dir = config.data_dir.clone();
    let dir = sandbox_data_dir(&base_dir);
    std::fs::create_dir_all(&dir).map_err(|e| EmbeddedError::Sandbox(e.to_string()))?;
    let addr_file = dir.join("sandbox-addr.json");
    let state_file = Some(dir.join("sandbox-state.json"));
    let previous: Option<Addresses> =
        std::fs::read(&addr_file).ok().and_then(|b| serde_json::from_slice(&b).ok());
    let fresh = SandboxConfig { state_file: state_file.clone(), ..SandboxConfig::default() };
    let started = match previous {
        Some(prev) => {
            let again = SandboxConfig { listen: prev.main, control_listen: prev.control, ..fresh.clone() };
            match till_sandbox::start(again).await {
                // The old ports are taken: new ones (links handed out before point nowhere).
                Err(till_sandbox::SandboxError::Bind { .. }) => till_sandbox::start(fresh).await,
                other => other,
            }
        }
        None => till_sandbox::start(fresh).await,
    };
    let sandbox = started.map_err(|e| EmbeddedError::Sandbox(e.to_string()))?;
    let addresses = Addresses { main: sandbox.main_addr(), control: sandbox.control_addr() };
    if let Ok(bytes) = serde_json::to_vec(&addresses) {
        if let Err(e) = std::fs::write(&addr_file, bytes) {
            tracing::warn!(error = %e, "cannot record the sandbox addresses");
        }
    }
    config.data_dir = dir;
    config.sensepass_url = sandbox.api_base();
    config.socket_url = sandbox.socket_url();
    // The sandbox's Connect-E simulator too: keyed card payments with its test cards.
    config.connect_e = Some(crate::config::ConnectEConfig {
        base_url: sandbox.connect_e_url(),
        web_url: sandbox.connect_e_web_url(),
        api_key: sandbox.connect_e_api_key().to_string(),
        merchant_url: sandbox.connect_e_merchant_url().to_string(),
    });
    // And its Acquired simulator: a card checkout on the customer screen.
    config.acquired = Some(crate::config::AcquiredConfig {
        base_url: sandbox.acquired_url(),
        components_url: sandbox.acquired_components_url(),
        app_id: sandbox.acquired_app_id().to_string(),
        app_key: sandbox.acquired_app_key().to_string(),
        company_id: None,
        webhook_key: None,
    });
    // And its FlexFactor simulator: declined keyed payments get a second chance (its test cards
    // decide the outcome, docs/DECISIONS.md "FlexFactor"). A till configured with recovery off
    // keeps it off.
    config.flexfactor = Some(crate::config::FlexFactorConfig {
        base_url: sandbox.flexfactor_url(),
        app_key: till_sandbox::FLEXFACTOR_APP_KEY.to_string(),
        app_secret: till_sandbox::FLEXFACTOR_APP_SECRET.to_string(),
        mid: till_sandbox::FLEXFACTOR_MID.to_string(),
        site_id: till_sandbox::FLEXFACTOR_SITE_ID.to_string(),
        tokenize_environment: till_sandbox::FLEXFACTOR_TOKENIZE_ENVIRONMENT.to_string(),
        enabled: config.flexfactor.as_ref().is_none_or(|f| f.enabled),
    });
    let journal = Journal::open(config.journal_path())?;
    // One POS token per data directory: the sandbox agent uses the one `till-agent token` prints.
    let main = Journal::open(base_dir.join("journal.sqlite3"))?;
    let token = crate::service::ensure_pos_token(&main).map_err(|e| EmbeddedError::Sandbox(e.to_string()))?;
    journal.set_setting("pos_token", &token)?;
    if let Some(p) = journal.pairing()?.filter(|p| sandbox.knows_device(&p.device_id)) {
        journal.set_pairing(&Pairing {
            api_base: config.sensepass_url.clone(),
            socket_url: config.socket_url.clone(),
            ..p
        })?;
        tracing::info!("sandbox: the device of the previous run is paired again");
        set_autopilot(&sandbox, autopilot_ms).await?;
        return Ok(sandbox);
    }

    let client = till_sensepass::Client::new(
        till_sensepass::ClientConfig {
            base_url: config.sensepass_url.clone(),
            timeout: config.http_timeout,
            connect_timeout: std::time::Duration::from_secs(5),
        },
        till_sensepass::Credentials::ApiKey { api_key: sandbox.api_key().to_string(), branch_number: None },
    )
    .map_err(|e| EmbeddedError::Pair(e.to_string()))?;
    let device = client
        .devices_create(&till_sensepass::models::CreateDeviceRequest { pos_name: "Till Agent sandbox till".into() })
        .await
        .map_err(|e| EmbeddedError::Pair(e.to_string()))?;
    journal.set_pairing(&Pairing {
        device_id: device.device_alias_key.clone(),
        pos_name: device.name.clone().unwrap_or_default(),
        environment: "sandbox".to_string(),
        api_base: config.sensepass_url.clone(),
        socket_url: config.socket_url.clone(),
        client_box_url: device.client_boxes.first().cloned(),
        paired_at: till_journal::now_ms(),
    })?;
    set_autopilot(&sandbox, autopilot_ms).await?;
    Ok(sandbox)
}

/// Points the FlexFactor simulator's webhooks at the agent listening on `agent_url` (as a
/// merchant sets "Developers > Webhooks" in FlexFactor's portal). A failure is logged: the
/// agent polls FlexFactor anyway.
pub async fn point_webhooks(sandbox: &SandboxHandle, agent_url: &str) {
    let url = format!("{}/settings", sandbox.flexfactor_control_url());
    let body = serde_json::json!({ "webhookUrl": format!("{agent_url}/api/agent/providers/flexfactor/webhook") });
    if let Err(e) = reqwest::Client::new().post(url).json(&body).send().await.and_then(reqwest::Response::error_for_status) {
        tracing::warn!(error = %e.without_url(), "cannot point the FlexFactor simulator's webhooks at the agent");
    }
}

/// Turns the sandbox's autopilot on when asked.
async fn set_autopilot(sandbox: &SandboxHandle, autopilot_ms: Option<u64>) -> Result<(), EmbeddedError> {
    if let Some(ms) = autopilot_ms {
        let url = format!("{}/autopilot", sandbox.control_url());
        let body: Value = serde_json::json!({ "approveAfterMs": ms, "card": "4111111111111111" });
        reqwest::Client::new().post(url).json(&body).send().await.map_err(|e| EmbeddedError::Sandbox(e.to_string()))?;
    }
    Ok(())
}
