//! Webhooks (§10) and the settling of SUBMITTED orders.
//!
//! The payload schema is not documented; the simulator sends (docs/DECISIONS.md "FlexFactor")
//! `{"event": "order.completed", "orderSessionKey": "<uuid>", "orderId": "<merchant order id>",
//! "status": <§7.1 code>, "statusName": "Completed", "timestamp": "<RFC 3339>"}` — JSON text with
//! `Content-Type: text/plain; charset=utf-8`, as the docs warn ("not sent with application/json").
//! A delivery is retried until a 2xx answer: 10, 20, 40, 80 and 160 s after the first attempt
//! (six attempts), each delay divided by `webhookTimeScale`.

use super::model::{rfc3339, status, Plan, WebhookAttempt};
use super::Ff;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Retry delays in seconds, unscaled.
const RETRY_DELAYS: [u64; 5] = [10, 20, 40, 80, 160];

/// Sends `event` about order `id` to the configured URL, if any, in the background.
pub(crate) fn send(ff: &Arc<Ff>, event: &str, id: &str) {
    let (url, body, scale) = {
        let w = ff.world();
        let Some(url) = w.settings.webhook_url.clone() else {
            return;
        };
        let Some(o) = w.orders.iter().find(|o| o.id == id) else {
            return;
        };
        let body = json!({
            "event": event, "orderSessionKey": o.id, "orderId": o.merchant_order_id,
            "status": o.status, "statusName": super::model::status_name(o.status),
            "timestamp": rfc3339(w.now()),
        });
        (url, body.to_string(), w.settings.webhook_time_scale)
    };
    let ff = ff.clone();
    let (event, id) = (event.to_string(), id.to_string());
    tokio::spawn(async move {
        for attempt in 0..=RETRY_DELAYS.len() {
            if attempt > 0 {
                let delay = RETRY_DELAYS[attempt - 1] as f64 / scale.max(0.000_001);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs_f64(delay)) => {}
                    _ = ff.shutdown.cancelled() => return,
                }
            }
            let result = ff
                .http
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(body.clone())
                .send()
                .await;
            let (delivered, text) = match result {
                Ok(r) => (
                    r.status().is_success(),
                    format!("HTTP {}", r.status().as_u16()),
                ),
                Err(e) => (false, format!("error: {}", e.without_url())),
            };
            ff.world().webhooks.push(WebhookAttempt {
                event: event.clone(),
                order: id.clone(),
                attempt: attempt as u32 + 1,
                result: text,
                delivered,
            });
            if delivered {
                return;
            }
        }
    });
}

/// Settles a SUBMITTED order after `settleMs`: Completed (rescued) or Cancelled by its card's
/// plan, then sends `order.completed` or `order.cancelled`.
pub(crate) fn settle_later(ff: &Arc<Ff>, id: &str) {
    let wait = Duration::from_millis(ff.world().settings.settle_ms);
    let ff = ff.clone();
    let id = id.to_string();
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = ff.shutdown.cancelled() => return,
        }
        let event = {
            let mut w = ff.world();
            let Some(o) = w.order_mut(&id) else { return };
            if o.status != status::PROCESSING {
                return;
            }
            if o.plan == Plan::SubmitApprove {
                o.status = status::COMPLETED;
                o.rescued = o.amount;
                "order.completed"
            } else {
                o.status = status::CANCELLED;
                "order.cancelled"
            }
        };
        tracing::info!(order = %id, event, "flexfactor sandbox settled a submitted order");
        send(&ff, event, &id);
    });
}
