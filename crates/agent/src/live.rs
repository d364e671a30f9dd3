//! Live status: follows the paired device's Socket.IO stream, and never trusts it alone.
//!
//! - Every `message` is applied to the journal (source `socket`) through the same transition rule
//!   as every other observation, so duplicates and stale events change nothing.
//! - After every (re)connect, every open payment is re-read from SensePass (source `poll`): events
//!   emitted while the socket was down are not replayed by SensePass.
//! - While the socket is down, open payments are re-read every `poll_interval`; while it is up,
//!   every `resync_interval` all the same (a lost event must not leave a payment open).
//! - When the pairing changes (another device paired, or unpaired), the listener is restarted.

use crate::service::Agent;
use std::time::Duration;
use till_journal::EventSource;
use till_sensepass::socket::{spawn_listener, SocketEvent};
use tokio_util::sync::CancellationToken;

/// How often the pairing is re-read to notice a change made by `till-agent pair`.
const PAIRING_CHECK: Duration = Duration::from_secs(2);


/// Runs until shutdown.
pub async fn run(agent: Agent) {
    let shutdown = agent.shutdown_token().clone();
    loop {
        let device = match agent.pairing().await {
            Ok(Some(p)) => p.device_id,
            _ => {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(PAIRING_CHECK) => continue,
                }
            }
        };
        let session = shutdown.child_token();
        follow_device(&agent, &device, session.clone()).await;
        session.cancel();
        if shutdown.is_cancelled() {
            return;
        }
    }
}

/// Follows one device until shutdown or until the pairing changes.
async fn follow_device(agent: &Agent, device: &str, session: CancellationToken) {
    tracing::info!("following SensePass status events for the paired device");
    let mut events =
        spawn_listener(agent.config().socket_url.clone(), device.to_string(), session.clone());
    let mut poll = tokio::time::interval(agent.config().poll_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pairing_check = tokio::time::interval(PAIRING_CHECK);
    // Open payments are re-read even while the socket is connected: no event is trusted to
    // arrive, and a lost one must not leave a payment open (or a refund "processing") for long.
    let mut safety_net = tokio::time::interval(agent.config().resync_interval);
    safety_net.reset();
    let mut connected = false;
    loop {
        tokio::select! {
            _ = session.cancelled() => return,
            ev = events.recv() => match ev {
                None => return,
                Some(SocketEvent::Connected) => {
                    connected = true;
                    agent.set_socket_connected(true);
                    resync_open(agent).await;
                }
                Some(SocketEvent::Disconnected { reason }) => {
                    if connected {
                        tracing::warn!(%reason, "SensePass socket disconnected; polling open payments");
                    }
                    connected = false;
                    agent.set_socket_connected(false);
                }
                Some(SocketEvent::Message(tx)) => {
                    if let Err(e) = agent.apply(tx, EventSource::Socket).await {
                        tracing::debug!(error = %e, "socket event not applied");
                    }
                }
            },
            _ = poll.tick(), if !connected => resync_open(agent).await,
            _ = safety_net.tick(), if connected => resync_open(agent).await,
            _ = pairing_check.tick() => {
                let still = matches!(agent.pairing().await, Ok(Some(p)) if p.device_id == device);
                if !still {
                    tracing::info!("pairing changed; restarting the status listener");
                    agent.set_socket_connected(false);
                    return;
                }
            }
        }
    }
}

/// Re-reads every open payment from SensePass.
pub async fn resync_open(agent: &Agent) {
    let open = match crate::service::needing_resync(agent).await {
        Ok(open) => open,
        Err(e) => {
            tracing::error!(error = %e, "cannot list open payments");
            return;
        }
    };
    for record in open {
        agent.resync_one(record).await;
    }
}
