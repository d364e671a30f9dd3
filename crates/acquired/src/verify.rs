//! Proving that an outcome came from Acquired: the redirect hash (§5) and the webhook v2
//! HMAC (§8). Both are keyed with the `app_key`, so only Acquired (and we) can produce them.
//!
//! - Redirect: `hex(sha256( hex(sha256(status . transaction_id . order_id . timestamp)) . app_key ))`
//!   — the check of the open-source WooCommerce client, the only exact statement found (§5).
//! - Webhook v2: `hex(HMAC-SHA256(app_key, body with all whitespace removed))`, compared with
//!   the `Hash` header (§8; the canonicalisation is again the WooCommerce client's, the official
//!   one is not documented — docs/DECISIONS.md, "Acquired").
//!
//! Comparisons are constant-time ([`subtle`], [`hmac::Mac::verify_slice`]); hashes are accepted
//! in either hex case. A verified message is only *authentic*: replays (the same webhook twice)
//! are the caller's to drop, by `webhook_id`.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Why a redirect or webhook was refused. Carries no key and no hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The hash does not match: forged, altered, or signed with another key.
    #[error("the hash does not match")]
    BadHash,
    /// A required field or header is missing.
    #[error("missing {0}")]
    Missing(&'static str),
    /// The body is not the documented shape (after the hash matched).
    #[error("unreadable body: {0}")]
    Body(String),
}

/// The fields Acquired posts to `tds.redirect_url` after the payment (§5).
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Redirect {
    /// The §6 status word.
    #[serde(default)]
    pub status: String,
    /// Acquired's transaction id (what the look-up needs).
    #[serde(default)]
    pub transaction_id: String,
    /// The merchant's order reference.
    #[serde(default)]
    pub order_id: String,
    /// Unix seconds, as text.
    #[serde(default, deserialize_with = "string_or_number")]
    pub timestamp: String,
    /// The hash to check.
    #[serde(default)]
    pub hash: String,
    /// Why it failed, on failures.
    #[serde(default)]
    pub reason: Option<String>,
}

impl std::fmt::Debug for Redirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redirect")
            .field("status", &self.status)
            .field("transaction_id", &self.transaction_id)
            .field("order_id", &self.order_id)
            .field("timestamp", &self.timestamp)
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => s,
        serde_json::Value::Number(n) => n.to_string(),
        _ => String::new(),
    })
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The redirect hash of §5 for these fields.
pub fn redirect_hash(app_key: &str, status: &str, transaction_id: &str, order_id: &str, timestamp: &str) -> String {
    let inner = sha256_hex(format!("{status}{transaction_id}{order_id}{timestamp}").as_bytes());
    sha256_hex(format!("{inner}{app_key}").as_bytes())
}

/// Checks a redirect's hash (§5). `Ok` means Acquired sent these fields; confirm the outcome
/// with a transaction look-up all the same (the issue's rule: the redirect names, the look-up
/// confirms).
pub fn verify_redirect(app_key: &str, redirect: &Redirect) -> Result<(), VerifyError> {
    if redirect.hash.is_empty() {
        return Err(VerifyError::Missing("hash"));
    }
    if redirect.status.is_empty() {
        return Err(VerifyError::Missing("status"));
    }
    let want = redirect_hash(
        app_key,
        &redirect.status,
        &redirect.transaction_id,
        &redirect.order_id,
        &redirect.timestamp,
    );
    let got = redirect.hash.trim().to_ascii_lowercase();
    if bool::from(want.as_bytes().ct_eq(got.as_bytes())) {
        Ok(())
    } else {
        Err(VerifyError::BadHash)
    }
}

/// The body with every whitespace byte removed: what the v2 HMAC covers (§8).
pub fn canonical_webhook_body(body: &[u8]) -> Vec<u8> {
    body.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect()
}

/// The v2 `Hash` of a webhook body.
pub fn webhook_hash(app_key: &str, body: &[u8]) -> String {
    let mut mac = hmac_for(app_key);
    mac.update(&canonical_webhook_body(body));
    hex::encode(mac.finalize().into_bytes())
}

fn hmac_for(app_key: &str) -> Hmac<Sha256> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    match Hmac::<Sha256>::new_from_slice(app_key.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

/// `webhook_body` of a `status_update` (§8).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct WebhookBody {
    /// The transaction; may be blank (cancelled before one existed).
    #[serde(default)]
    pub transaction_id: String,
    /// The §6 status word.
    #[serde(default)]
    pub status: String,
    /// The merchant's order reference.
    #[serde(default)]
    pub order_id: String,
    /// Why it failed, when it did.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A verified webhook (v2 layout, §8).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Webhook {
    /// `status_update`, `customer_new`, `card_new`, …
    #[serde(default)]
    pub webhook_type: String,
    /// Unique per event (lower case in v2): the key to drop replays by.
    #[serde(default)]
    pub webhook_id: String,
    /// Unix seconds (top level in v2).
    #[serde(default)]
    pub timestamp: Option<i64>,
    /// The event.
    #[serde(default)]
    pub webhook_body: WebhookBody,
}

/// Checks a v2 webhook's `Hash` header against the raw body and reads it. Nothing of the body
/// is trusted before the hash matched.
pub fn verify_webhook(app_key: &str, body: &[u8], hash: Option<&str>) -> Result<Webhook, VerifyError> {
    let hash = hash.map(str::trim).filter(|h| !h.is_empty()).ok_or(VerifyError::Missing("Hash header"))?;
    let given = hex::decode(hash.to_ascii_lowercase()).map_err(|_| VerifyError::BadHash)?;
    let mut mac = hmac_for(app_key);
    mac.update(&canonical_webhook_body(body));
    mac.verify_slice(&given).map_err(|_| VerifyError::BadHash)?;
    serde_json::from_slice::<Webhook>(body).map_err(|e| VerifyError::Body(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_round_trip_and_forgery() {
        let h = redirect_hash("key", "success", "tx-1", "O1", "1700000000");
        let mut r = Redirect {
            status: "success".into(),
            transaction_id: "tx-1".into(),
            order_id: "O1".into(),
            timestamp: "1700000000".into(),
            hash: h.to_ascii_uppercase(),
            reason: None,
        };
        assert_eq!(verify_redirect("key", &r), Ok(()));
        assert_eq!(verify_redirect("other", &r), Err(VerifyError::BadHash));
        r.status = "declined".into();
        assert_eq!(verify_redirect("key", &r), Err(VerifyError::BadHash));
        r.hash.clear();
        assert_eq!(verify_redirect("key", &r), Err(VerifyError::Missing("hash")));
        // the documented construction, spelled out once more
        let inner = sha256_hex(b"successtx-1O11700000000");
        assert_eq!(h, sha256_hex(format!("{inner}key").as_bytes()));
    }

    #[test]
    fn webhook_hmac_over_whitespace_free_body() {
        let body = br#"{ "webhook_type": "status_update", "webhook_id": "298467ac",
            "timestamp": 1700000000,
            "webhook_body": {"transaction_id": "t", "status": "success", "order_id": "O1"} }"#;
        let compact: Vec<u8> = canonical_webhook_body(body);
        let h = webhook_hash("key", &compact);
        assert_eq!(h, webhook_hash("key", body));
        let w = verify_webhook("key", body, Some(&h)).unwrap();
        assert_eq!(w.webhook_id, "298467ac");
        assert_eq!(w.webhook_body.status, "success");
        assert_eq!(verify_webhook("other", body, Some(&h)), Err(VerifyError::BadHash));
        let forged = body.to_vec().iter().map(|b| if *b == b'O' { b'P' } else { *b }).collect::<Vec<_>>();
        assert_eq!(verify_webhook("key", &forged, Some(&h)), Err(VerifyError::BadHash));
        assert_eq!(verify_webhook("key", body, None), Err(VerifyError::Missing("Hash header")));
        assert_eq!(verify_webhook("key", body, Some("zz")), Err(VerifyError::BadHash));
    }
}
