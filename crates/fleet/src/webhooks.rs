//! Provider webhooks: a public endpoint per provider and till, and a long-poll the till opens
//! to fetch them (a till behind a store's NAT has no public address of its own).
//!
//! The till gives the provider `<fleet>/api/v1/webhooks/<provider>/<till id>` as the webhook URL
//! of each payment. Connect-E and FlexFactor sign nothing, so a webhook proves nothing: the fleet
//! only checks its shape, stores it once per provider notice (retries deduplicated) and relays
//! it; the till confirms through the provider's REST API before it changes anything, so a forged
//! webhook costs one confirmation call and changes nothing. Acquired signs its webhooks (v2:
//! HMAC-SHA256 of the body keyed with the chain's `app_key`, in the `Hash` header): the fleet
//! refuses one whose hash does not match (401, nothing stored) — and the till still confirms.

use crate::enrol::TillAuth;
use crate::error::ApiError;
use deadpool_postgres::Pool;
use serde::Serialize;
use serde_json::Value;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Largest webhook body stored.
pub const MAX_PAYLOAD: usize = 16 * 1024;
/// Longest a till's long-poll is held open.
pub const MAX_WAIT: Duration = Duration::from_secs(25);

/// The providers whose webhooks the fleet relays, with the field naming a notice.
fn dedupe_key(provider: &str, payload: &Value) -> Result<String, ApiError> {
    let field = |name: &str| {
        payload
            .get(name)
            .and_then(|v| v.as_str().map(str::to_string).or_else(|| v.as_i64().map(|n| n.to_string())))
            .filter(|s| !s.is_empty() && s.len() <= 200)
    };
    match provider {
        // Connect-E (§7): {id, orderId, merchantTransactionId?}; one notice per payment token.
        "connect-e" => field("id").ok_or_else(|| ApiError::invalid("id", "required: the payment token id")),
        // FlexFactor: {orderId, ...}; one notice per order and state.
        "flexfactor" => {
            let order = field("orderId").ok_or_else(|| ApiError::invalid("orderId", "required"))?;
            Ok(format!("{order}:{}", field("status").unwrap_or_default()))
        }
        // Acquired (§8): `webhook_id` is unique per event; its retries repeat it.
        "acquired" => field("webhook_id").ok_or_else(|| ApiError::invalid("webhook_id", "required")),
        _ => Err(ApiError::NotFound(format!("no webhooks for provider {provider}"))),
    }
}

/// What a provider's signature is checked with.
#[derive(Clone, Copy, Default)]
pub struct Signature<'a> {
    /// The chain's Acquired `app_key` (None: Acquired webhooks are not accepted).
    pub acquired_app_key: Option<&'a str>,
    /// The request's `Hash` header.
    pub hash: Option<&'a str>,
}

/// Stores a webhook for `till_id` (once per notice). Unknown and revoked tills are 404: a
/// guessed URL learns nothing and stores nothing. A signed provider's webhook must carry a hash
/// that matches before anything of it is read.
pub async fn receive(pool: &Pool, provider: &str, till_id: &str, body: &[u8], signature: Signature<'_>) -> Result<bool, ApiError> {
    if body.len() > MAX_PAYLOAD {
        return Err(ApiError::invalid("body", "at most 16 KiB"));
    }
    if provider == "acquired" {
        let Some(app_key) = signature.acquired_app_key else {
            return Err(ApiError::NotFound("no webhooks for provider acquired (no app key configured)".into()));
        };
        till_acquired::verify_webhook(app_key, body, signature.hash)
            .map_err(|e| ApiError::Unauthorized(format!("Acquired webhook refused: {e}")))?;
    }
    let payload: Value = serde_json::from_slice(body).map_err(|e| ApiError::invalid("body", &e.to_string()))?;
    if !payload.is_object() {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    }
    let key = dedupe_key(provider, &payload)?;
    let till = Uuid::parse_str(till_id).map_err(|_| ApiError::NotFound("no such till".into()))?;
    let client = pool.get().await?;
    let known = client
        .query_opt("SELECT 1 FROM tills WHERE id = $1 AND revoked_at IS NULL", &[&till])
        .await?;
    if known.is_none() {
        return Err(ApiError::NotFound("no such till".into()));
    }
    let n = client
        .execute(
            "INSERT INTO webhooks (provider, till_id, dedupe_key, payload) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (provider, till_id, dedupe_key) DO NOTHING",
            &[&provider, &till, &key, &payload],
        )
        .await?;
    Ok(n == 1)
}

/// One relayed webhook.
#[derive(Debug, Serialize)]
pub struct Relayed {
    /// Position in the till's stream; ask for `after` this next time.
    pub id: i64,
    /// `connect-e`, `flexfactor` or `acquired`.
    pub provider: String,
    /// The body as the provider sent it.
    pub payload: Value,
}

/// The till's webhooks after `after`, waiting up to `wait` for one to arrive.
pub async fn poll(pool: &Pool, till: TillAuth, after: i64, wait: Duration) -> Result<Vec<Relayed>, ApiError> {
    let deadline = Instant::now() + wait.min(MAX_WAIT);
    loop {
        let rows = {
            let client = pool.get().await?;
            client
                .query(
                    "SELECT id, provider, payload FROM webhooks WHERE till_id = $1 AND id > $2 ORDER BY id LIMIT 100",
                    &[&till.till_id, &after],
                )
                .await?
        };
        if !rows.is_empty() || Instant::now() >= deadline {
            return Ok(rows.iter().map(|r| Relayed { id: r.get(0), provider: r.get(1), payload: r.get(2) }).collect());
        }
        // A connection is not held while waiting: thousands of tills may be polling.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
