//! Health and identity: whether SensePass is reachable and the socket connected, the pairing and
//! the SensePass clients it authenticates, and the POS token that guards money-out.

use super::Agent;
use crate::error::AgentError;
use crate::events::{AgentEvent, ConnectivityEvent};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use till_journal::{Journal, Pairing};
use till_sensepass::{Client, Credentials};

/// Live health figures, updated by the workers and read by `/api/agent/health`.
/// Atomics, because they are written from several tasks and read on every health call.
#[derive(Debug, Default)]
pub struct Health {
    /// Socket.IO is connected for the paired device.
    pub socket_connected: AtomicBool,
    /// Unix ms since SensePass has been unreachable; 0 when reachable.
    pub offline_since_ms: AtomicI64,
    /// True until start-up reconciliation finished.
    pub recovering: AtomicBool,
}

impl Agent {
    /// The POS token (shown to a logged-in manager and by `till-agent token`).
    pub fn pos_token(&self) -> &str {
        &self.inner.pos_token
    }

    /// True when `token` is the POS token (constant-time comparison).
    pub fn check_pos_token(&self, token: &str) -> bool {
        constant_time_eq(token.as_bytes(), self.inner.pos_token.as_bytes())
    }

    /// The current pairing, read from the journal (so a `till-agent pair` from another process is
    /// seen without a restart).
    pub async fn pairing(&self) -> Result<Option<Pairing>, AgentError> {
        self.journal(|j| j.pairing()).await
    }

    /// The paired device id, or `NotPaired`.
    pub async fn device_id(&self) -> Result<String, AgentError> {
        self.pairing().await?.map(|p| p.device_id).ok_or(AgentError::NotPaired)
    }

    /// A SensePass client authenticated as the paired device.
    pub async fn device_client(&self) -> Result<(String, Client), AgentError> {
        let device = self.device_id().await?;
        let client = self.inner.client.with_credentials(Credentials::Device(device.clone()));
        Ok((device, client))
    }

    /// A SensePass client authenticated with a device ID that is not (yet) the paired one: pairing
    /// checks a typed-in device ID with it before storing it.
    pub fn device_client_for(&self, device_id: &str) -> Client {
        self.inner.client.with_credentials(Credentials::Device(device_id.to_string()))
    }

    /// A SensePass client authenticated with an API key (pairing).
    pub fn api_key_client(&self, api_key: &str) -> Client {
        self.inner
            .client
            .with_credentials(Credentials::ApiKey { api_key: api_key.to_string(), branch_number: None })
    }

    /// Records the result of a SensePass call for the offline indicator.
    pub fn note_reachability<T>(&self, result: &Result<T, till_sensepass::Error>) {
        // Only a failure to reach SensePass is "offline"; a call the client refused to build
        // (`Config`) says nothing about the network.
        let offline = matches!(result, Err(till_sensepass::Error::NotSent(_)));
        let h = &self.inner.health.offline_since_ms;
        if offline {
            let _ = h.compare_exchange(0, till_journal::now_ms(), Ordering::SeqCst, Ordering::SeqCst);
        } else if result.is_ok() || matches!(result, Err(till_sensepass::Error::Http { .. })) {
            h.store(0, Ordering::SeqCst);
        }
    }

    /// Marks SensePass unreachable (from now, if not already) or reachable.
    pub fn note_offline_if(&self, offline: bool) {
        let h = &self.inner.health.offline_since_ms;
        if offline {
            let _ = h.compare_exchange(0, till_journal::now_ms(), Ordering::SeqCst, Ordering::SeqCst);
        } else {
            h.store(0, Ordering::SeqCst);
        }
    }

    /// Publishes a connectivity change.
    pub fn set_socket_connected(&self, connected: bool) {
        self.inner.health.socket_connected.store(connected, Ordering::SeqCst);
        self.inner.bus.publish(AgentEvent::Connectivity(ConnectivityEvent { socket_connected: connected }));
    }
}

/// The POS token: generated once (32 random bytes, hex), kept in the journal's settings, whose
/// file is mode 0600. Called at pairing, by `till-agent token` and at start, so the token exists
/// whichever comes first.
pub fn ensure_pos_token(journal: &Journal) -> Result<String, AgentError> {
    if let Some(t) = journal.setting("pos_token")? {
        return Ok(t);
    }
    let bytes: [u8; 32] = rand::random();
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    journal.set_setting("pos_token", &token)?;
    Ok(token)
}

/// Compares secrets without an early exit that would leak their length of common prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
