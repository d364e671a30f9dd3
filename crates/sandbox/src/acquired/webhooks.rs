//! Webhooks v2 (§8): a `status_update` to the session's `webhook_url` when its payment reaches
//! a final status.
//!
//! Headers `Content-Type: application/json`, `Company-Id`, `Mid`, `Webhook-Version: 2` and
//! `Hash` = hex HMAC-SHA256 with the app key over the body with all whitespace removed. The body
//! is sent pretty-printed on purpose, so that a receiver hashing the raw bytes fails. Delivered
//! means HTTP 200; otherwise it is sent again every 5 minutes and dropped when no 200 came 25
//! minutes after the first attempt (six attempts: 0, 5, 10, 15, 20, 25 minutes). The
//! `webhookTimeScale` setting divides the delays for tests.

use super::model::{uuid, WebhookAttempt, APP_KEY, COMPANY_ID, MID};
use super::Aq;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;

/// Between attempts.
pub(crate) const RETRY_SECS: u64 = 300;
/// No attempt later than this after the first.
pub(crate) const GIVE_UP_SECS: u64 = 1500;

/// The v2 `Hash` of `body`.
pub(crate) fn sign(body: &[u8]) -> String {
    let compact: Vec<u8> = body.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(APP_KEY.as_bytes()).expect("HMAC takes any key length");
    mac.update(&compact);
    hex::encode(mac.finalize().into_bytes())
}

/// Sends the `status_update` of transaction `tx_id`, if its session asked for webhooks and its
/// status is final.
pub(crate) fn status_update(aq: &Arc<Aq>, tx_id: &str) {
    let (url, body, scale) = {
        let w = aq.world();
        let Some(i) = w.tx_index(tx_id) else { return };
        let t = &w.transactions[i];
        if t.status == "tds_pending" {
            return;
        }
        let Some(url) = w.sessions.get(&t.session_id).and_then(|s| s.webhook_url()) else { return };
        let mut inner = json!({"transaction_id": t.id, "status": t.status, "order_id": t.order_id});
        if let Some(r) = &t.reason {
            inner["reason"] = json!(r);
        }
        let body = json!({
            "webhook_type": "status_update",
            "webhook_id": uuid().to_ascii_lowercase(),
            "timestamp": w.now().unix_timestamp(),
            "webhook_body": inner,
        });
        (url, body, w.settings.webhook_time_scale)
    };
    let webhook_id = body["webhook_id"].as_str().unwrap_or_default().to_string();
    let text = serde_json::to_string_pretty(&body).unwrap_or_default();
    let hash = sign(text.as_bytes());
    let aq = aq.clone();
    let tx_id = tx_id.to_string();
    tokio::spawn(async move {
        let mut elapsed = 0;
        for attempt in 1.. {
            let delay = if attempt == 1 { 0 } else { RETRY_SECS };
            if attempt > 1 {
                elapsed += delay;
                if elapsed > GIVE_UP_SECS {
                    return;
                }
                let real = Duration::from_secs_f64(delay as f64 / scale.max(0.000_001));
                tokio::select! {
                    _ = tokio::time::sleep(real) => {}
                    _ = aq.shutdown.cancelled() => return,
                }
            }
            let result = aq
                .http
                .post(&url)
                .header("Content-Type", "application/json")
                .header("Company-Id", COMPANY_ID)
                .header("Mid", MID)
                .header("Webhook-Version", "2")
                .header("Hash", &hash)
                .body(text.clone())
                .send()
                .await;
            let (delivered, result) = match result {
                Ok(r) => (r.status().as_u16() == 200, format!("HTTP {}", r.status().as_u16())),
                Err(e) => (false, format!("error: {}", e.without_url())),
            };
            aq.world().webhooks.push(WebhookAttempt {
                webhook_id: webhook_id.clone(),
                transaction_id: tx_id.clone(),
                attempt,
                delay_seconds: elapsed,
                result,
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
    #[test]
    fn signature_ignores_whitespace() {
        assert_eq!(super::sign(b"{\"a\": 1}"), super::sign(b"{\"a\":1}"));
        assert_eq!(super::sign(b"{}").len(), 64);
    }
}
