//! Background work per transaction: the `timeOut` timer and the autopilot consumer.

use crate::app::{Autopilot, Shared};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Moves the transaction to 8 (timeout) at `deadline` if nobody finished it before.
pub(crate) fn watch_timeout(sh: &Arc<Shared>, number: String, deadline: Instant) {
    let sh = sh.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                sh.state().expire_if_open(&number);
            }
            _ = sh.shutdown.cancelled() => {}
        }
    });
}

/// Pays the transaction with the autopilot's card after its delay, waiting for
/// `readyForPayment` if needed; gives up once the transaction is final.
pub(crate) fn autopilot(sh: &Arc<Shared>, number: String, pilot: Autopilot) {
    let sh = sh.clone();
    tokio::spawn(async move {
        let delay = tokio::time::sleep(Duration::from_millis(pilot.approve_after_ms));
        tokio::select! {
            _ = delay => {}
            _ = sh.shutdown.cancelled() => return,
        }
        loop {
            {
                let mut st = sh.state();
                let Some(txn) = st.txns.get(&number) else { return };
                if !txn.status.is_open() {
                    return;
                }
                if txn.ready_for_payment {
                    if let Err(e) = st.consumer_pay(&number, pilot.card, true) {
                        tracing::debug!("autopilot could not pay: {e:?}");
                    }
                    return;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = sh.shutdown.cancelled() => return,
            }
        }
    });
}
