//! `till-agent run --sandbox`: the SensePass sandbox started in-process on loopback, a device
//! created and paired, and the agent pointed at it — so a new user sees real payments flow over
//! real HTTP and Socket.IO with no credentials.
//!
//! Its journal lives in `<data-dir>/sandbox/`, apart from a production journal, because sandbox
//! transactions must never mix with real ones.

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

/// Starts the sandbox, rewrites `config` to use it, and pairs a sandbox device (reusing the
/// pairing from an earlier run when the sandbox still knows it — it does not, since its state is
/// in memory, so each run pairs a new dynamic-QR device).
pub async fn start(config: &mut Config, autopilot_ms: Option<u64>) -> Result<SandboxHandle, EmbeddedError> {
    let sandbox = till_sandbox::start(SandboxConfig::default()).await.map_err(|e| EmbeddedError::Sandbox(e.to_string()))?;
    config.data_dir = config.data_dir.join("sandbox");
    config.sensepass_url = sandbox.api_base();
    config.socket_url = sandbox.socket_url();
    std::fs::create_dir_all(&config.data_dir).map_err(|e| EmbeddedError::Sandbox(e.to_string()))?;

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
    let journal = Journal::open(config.journal_path())?;
    journal.set_pairing(&Pairing {
        device_id: device.device_alias_key.clone(),
        pos_name: device.name.clone().unwrap_or_default(),
        environment: "sandbox".to_string(),
        api_base: config.sensepass_url.clone(),
        socket_url: config.socket_url.clone(),
        client_box_url: device.client_boxes.first().cloned(),
        paired_at: till_journal::now_ms(),
    })?;
    if let Some(ms) = autopilot_ms {
        let url = format!("{}/autopilot", sandbox.control_url());
        let body: Value = serde_json::json!({ "approveAfterMs": ms, "card": "4111111111111111" });
        reqwest::Client::new().post(url).json(&body).send().await.map_err(|e| EmbeddedError::Sandbox(e.to_string()))?;
    }
    Ok(sandbox)
}
