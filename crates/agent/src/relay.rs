//! Provider webhooks relayed by the fleet server: the till's end.
//!
//! A till behind a store's NAT has no public address, so the providers post their webhooks to
//! the fleet (`<fleet>/api/v1/webhooks/<provider>/<till id>`, given to Connect-E as `webHookUrl`
//! and to Acquired as `webhook_url` when this journal is enrolled). The fleet checks what it can,
//! stores each notice once and holds it for this till; this task keeps a long-poll open to
//! `GET /api/v1/webhooks/poll` and hands every notice to the gateway seam.
//!
//! **Nothing in a notice is trusted.** [`till_gateway::Gateway::match_notice`] says which of
//! this till's payments a notice is about, confirming through the provider's REST API anything
//! it claims beyond "look again" (Acquired: that the transaction it names belongs to the
//! payment's order); then [`Agent::refresh_gateway`] asks the provider where the payment stands
//! and journals that through the one transition rule. A forged notice therefore costs at most
//! one look-up and changes nothing. Webhooks only make the till look sooner: the tender's poller
//! finds every outcome without them.
//!
//! **Once each.** The fleet deduplicates a provider's retries; the till remembers how far it has
//! read (`fleet.webhooks` in the journal's settings, written after each batch), so a restart
//! resumes after the last notice handled, and handling one twice is harmless anyway (a
//! look-up that finds nothing new journals nothing).
//!
//! Not for: replication (that is [`crate::fleet`]) or webhooks posted to the agent directly.

use crate::error::AgentError;
use crate::fleet::Identity;
use crate::service::Agent;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use till_gateway::ProviderId;

/// The journal setting holding the relay's position and counts.
pub const SETTING: &str = "fleet.webhooks";
/// How long the fleet may hold a poll open (its own cap is 25 s).
const WAIT_SECS: u64 = 25;
/// How many of this till's newest payments of a provider a notice is matched against. A
/// notice arrives seconds to hours after its payment; older ones are settled by then.
const CANDIDATES: u32 = 200;
/// Longest wait between attempts while the fleet is unreachable or refuses.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where the relay stands, kept in the journal and shown in health.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelayState {
    /// The fleet's id of the last notice handled; the next poll asks for those after it.
    pub cursor: i64,
    /// Notices received from the fleet.
    pub received: u64,
    /// Notices that named one of this till's payments, which was then looked up.
    pub matched: u64,
    /// Notices that named none (forged, another till's, another kind, unknown provider).
    pub ignored: u64,
}

/// One notice as the fleet relays it.
#[derive(Debug, Deserialize)]
struct Relayed {
    id: i64,
    provider: String,
    payload: serde_json::Value,
}

/// The webhook URL of `provider` for this journal, when it is enrolled with a fleet.
pub fn webhook_url(identity: Option<&Identity>, provider: ProviderId) -> Option<String> {
    identity.map(|id| format!("{}/api/v1/webhooks/{}/{}", id.fleet_url.trim_end_matches('/'), provider.as_str(), id.till_id))
}

impl Agent {
    /// The webhook URL to give `provider` with a new payment: the fleet's endpoint for this
    /// till when the journal is enrolled (read at each payment, so an enrolment needs no
    /// restart), else none.
    pub fn fleet_webhook_url(&self, provider: ProviderId) -> Option<String> {
        let identity = Identity::load(&self.config().data_dir).ok().flatten();
        webhook_url(identity.as_ref(), provider)
    }
}

/// What health shows: `None` before the first notice.
pub async fn health(agent: &Agent) -> Option<serde_json::Value> {
    let state = load(agent).await.ok()?;
    (state != RelayState::default()).then(|| serde_json::to_value(&state).unwrap_or_default())
}

async fn load(agent: &Agent) -> Result<RelayState, AgentError> {
    let text = agent.journal(|j| j.setting(SETTING)).await?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default())
}

async fn save(agent: &Agent, state: &RelayState) -> Result<(), AgentError> {
    let text = serde_json::to_string(state).map_err(|e| AgentError::Internal(e.to_string()))?;
    agent.journal(move |j| j.set_setting(SETTING, &text)).await
}

/// The relay task: runs until the agent shuts down. Idle (a look every few seconds for an
/// enrolment) while this journal is not enrolled or no provider is configured.
pub async fn run(agent: Agent) {
    let shutdown = agent.shutdown_token().clone();
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(WAIT_SECS + 10))
        .connect_timeout(Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "webhook relay: no HTTP client");
            return;
        }
    };
    let mut failures: u32 = 0;
    loop {
        let delay = match poll_once(&agent, &client).await {
            Ok(true) => {
                failures = 0;
                Duration::ZERO
            }
            Ok(false) => Duration::from_secs(5),
            Err(e) => {
                failures = failures.saturating_add(1);
                if failures <= 3 || failures.is_multiple_of(20) {
                    tracing::warn!(error = %e, "webhook relay: will retry");
                }
                crate::outbox::backoff_delay(failures).min(MAX_BACKOFF)
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// One long-poll and the notices it brought. `Ok(false)`: nothing to relay to (not enrolled,
/// or no provider with webhooks configured).
async fn poll_once(agent: &Agent, client: &reqwest::Client) -> Result<bool, AgentError> {
    if agent.tender().providers().is_empty() {
        return Ok(false);
    }
    let dir = agent.config().data_dir.clone();
    let Some(identity) = Identity::load(&dir).map_err(|e| AgentError::Internal(e.to_string()))? else {
        return Ok(false);
    };
    let mut state = load(agent).await?;
    let url = format!("{}/api/v1/webhooks/poll?after={}&wait={WAIT_SECS}", identity.fleet_url.trim_end_matches('/'), state.cursor);
    let poll = client.get(&url).bearer_auth(format!("{}.{}", identity.till_id, identity.secret)).send();
    let r = tokio::select! {
        r = poll => r.map_err(|e| AgentError::Internal(format!("fleet unreachable: {}", e.without_url())))?,
        _ = agent.shutdown_token().cancelled() => return Ok(true),
    };
    if !r.status().is_success() {
        return Err(AgentError::Internal(format!("fleet refused the webhook poll: HTTP {}", r.status().as_u16())));
    }
    let notices: Vec<Relayed> = r.json().await.map_err(|e| AgentError::Internal(format!("fleet answered garbage: {e}")))?;
    if notices.is_empty() {
        return Ok(true);
    }
    for n in &notices {
        state.received += 1;
        match agent.relayed_notice(&n.provider, &n.payload).await {
            Ok(Some(local_id)) => {
                state.matched += 1;
                tracing::info!(provider = %n.provider, %local_id, notice = n.id, "relayed webhook: payment looked up");
            }
            Ok(None) => {
                state.ignored += 1;
                tracing::warn!(provider = %n.provider, notice = n.id, "relayed webhook names no payment of this till; ignored");
            }
            Err(e) => {
                // Not counted as handled: the provider could not confirm it now. Keep the cursor
                // before it and ask again; the poller settles the payment meanwhile anyway.
                state.received -= 1;
                save(agent, &state).await?;
                return Err(e);
            }
        }
        state.cursor = state.cursor.max(n.id);
    }
    save(agent, &state).await?;
    Ok(true)
}

impl Agent {
    /// One relayed notice of `provider`: the local id of the payment it was about (which was
    /// then looked up at the provider), or `None` when it names none of this till's payments.
    /// Errors only when the provider could not be asked.
    pub async fn relayed_notice(&self, provider: &str, payload: &serde_json::Value) -> Result<Option<String>, AgentError> {
        let Some(provider) = self.tender().providers().into_iter().find(|p| p.as_str() == provider) else {
            return Ok(None);
        };
        let gw = self.tender().gateway(provider)?.clone();
        let recent = self.journal(|j| j.recent_gateway_payments(None, CANDIDATES)).await?;
        let mine: Vec<_> = recent.into_iter().filter(|r| r.provider == provider.as_str() && r.provider_ref.is_some()).collect();
        let mut payments = Vec::with_capacity(mine.len());
        let mut records = Vec::with_capacity(mine.len());
        for r in mine {
            if let Ok(p) = crate::tender::payment_of(&r) {
                payments.push(p);
                records.push(r);
            }
        }
        let body = serde_json::to_vec(payload).map_err(|e| AgentError::Internal(e.to_string()))?;
        let matched = gw.match_notice(&payments, &body).await.map_err(|e| AgentError::Internal(format!("{provider} could not confirm a webhook: {e}")))?;
        let Some((i, reference)) = matched else {
            return Ok(None);
        };
        let rec = &records[i];
        let id = rec.local_id.clone();
        let new_ref = reference.expose().to_string();
        if rec.provider_ref.as_deref() != Some(new_ref.as_str()) {
            let now = self.now_ms();
            let id = id.clone();
            self.journal(move |j| {
                j.update_gateway_payment(&id, |r| {
                    r.provider_ref = Some(new_ref.clone());
                    r.updated_at = now;
                })
            })
            .await?;
        }
        self.refresh_gateway(&id).await?;
        Ok(Some(id))
    }
}
