//! Webhooks (§7): one POST of `{id, orderId, merchantTransactionId?}` to the token's
//! `webHookUrl` when its transaction completes, retried while the answer is not 200/201.
//!
//! Schedule (decided where §7 is silent; docs/DECISIONS.md): first retry 10 s after the first
//! attempt, the delay doubling each time and capped at 600 s, until 2 hours have passed since the
//! first attempt. Delays are divided by the `webhookTimeScale` setting so that tests can watch a
//! whole schedule in seconds. `Content-Type: application/json`, 10 s timeout, no signature.

use super::model::WebhookAttempt;
use super::Ce;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// First retry delay.
const FIRST_DELAY_SECS: u64 = 10;
/// Longest delay between tries.
const MAX_DELAY_SECS: u64 = 600;
/// Retries stop once this much time has passed since the first attempt.
const GIVE_UP_AFTER_SECS: u64 = 2 * 3600;

/// The delays (seconds, unscaled) before each retry: 10, 20, 40, …, 600, 600, … within 2 h.
pub(crate) fn schedule() -> Vec<u64> {
    let mut delays = Vec::new();
    let (mut delay, mut elapsed) = (FIRST_DELAY_SECS, 0);
    while elapsed + delay <= GIVE_UP_AFTER_SECS {
        delays.push(delay);
        elapsed += delay;
        delay = (delay * 2).min(MAX_DELAY_SECS);
    }
    delays
}

/// Called when the transaction of `token` may have completed: sends the notice if the token
/// asked for one and the transaction is final.
pub(crate) fn completed(ce: &Arc<Ce>, token: &str) {
    let (url, body, scale) = {
        let w = ce.world();
        let Some(t) = w.tokens.get(token) else { return };
        let Some(url) = t.webhook_url.clone() else {
            return;
        };
        if w.final_status(token).is_none() {
            return;
        }
        let mut body = json!({"id": t.id, "orderId": t.order_id});
        if let Some(m) = &t.merchant_transaction_id {
            body["merchantTransactionId"] = json!(m);
        }
        (url, body, w.settings.webhook_time_scale)
    };
    let ce = ce.clone();
    let token = token.to_string();
    tokio::spawn(async move {
        let delays = schedule();
        for attempt in 0..=delays.len() {
            let delay = if attempt == 0 { 0 } else { delays[attempt - 1] };
            if delay > 0 {
                let real = Duration::from_secs_f64(delay as f64 / scale.max(0.000_001));
                tokio::select! {
                    _ = tokio::time::sleep(real) => {}
                    _ = ce.shutdown.cancelled() => return,
                }
            }
            let result = ce.http.post(&url).json(&body).send().await;
            let (delivered, text) = match result {
                Ok(r) => (
                    matches!(r.status().as_u16(), 200 | 201),
                    format!("HTTP {}", r.status().as_u16()),
                ),
                Err(e) => (false, format!("error: {}", e.without_url())),
            };
            ce.world().webhooks.push(WebhookAttempt {
                token: token.clone(),
                attempt: attempt as u32 + 1,
                delay_seconds: delay,
                result: text,
                delivered,
            });
            if delivered {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::schedule;

    #[test]
    fn documented_schedule() {
        let s = schedule();
        assert_eq!(&s[..7], &[10, 20, 40, 80, 160, 320, 600]);
        assert!(s.iter().all(|&d| d <= 600));
        let total: u64 = s.iter().sum();
        assert!(total <= 7200 && total + 600 > 7200, "{total}");
    }
}
