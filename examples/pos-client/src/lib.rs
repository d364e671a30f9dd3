//! A POS client for Till Agent's local API, written only from docs/INTEGRATION.md and
//! docs/openapi.json — the example a POS vendor copies. It is not part of the agent.
//!
//! What it shows:
//! - a **sync sale** with an order id and an HTTP read timeout longer than the payment's
//!   `timeOut` (hanging up early would cancel the payment);
//! - **recovery**: after a 5xx, a timeout or a POS crash it never reports "failed", it asks the
//!   agent what happened to the order and waits for the final status;
//! - a **refund** with an `Idempotency-Key`, retried with the same key after a network error, so
//!   the customer is refunded once whatever happens to the connection.
//!
//! Amounts: init takes minor units (`isCent: true`); a refund's `refundAmount` is sent in minor
//! units too, with `isCent: true`, so no decimal conversion is needed.

#![forbid(unsafe_code)]

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use std::time::Duration;

/// How long a customer may take to pay (the init's `timeOut`), seconds.
pub const PAYMENT_TIMEOUT_SECS: u64 = 120;

/// The sync call's read timeout: the payment's `timeOut` plus 60 s (docs/INTEGRATION.md §3).
pub const SYNC_READ_TIMEOUT: Duration = Duration::from_secs(PAYMENT_TIMEOUT_SECS + 60);

/// How a sale ended, as the cashier is told.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Approved: hand over the goods, print the receipt.
    Paid {
        /// SensePass TransactionNumber (needed for refunds).
        number: String,
    },
    /// Declined, failed, timed out or cancelled: the customer has not paid.
    NotPaid {
        /// SensePass TransactionNumber.
        number: String,
        /// Final status code (6, 7, 8 or 9).
        status: i64,
        /// What to tell the cashier, when SensePass gave a reason.
        reason: Option<String>,
    },
}

/// A connection to the agent.
pub struct Pos {
    http: reqwest::Client,
    sync_http: reqwest::Client,
    base: String,
    token: String,
}

impl Pos {
    /// `base` is the agent's address (`http://127.0.0.1:8003`); `token` is what
    /// `till-agent token` prints (refunds need it).
    pub fn new(base: &str, token: &str) -> Result<Pos> {
        Ok(Pos {
            // The agent closes a connection idle for 5 s (`Keep-Alive: timeout=4`): drop pooled
            // connections before that, or a request may meet a connection as it closes.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_idle_timeout(Duration::from_secs(3))
                .build()?,
            // Only the sync call waits for the customer: its own, longer read timeout.
            sync_http: reqwest::Client::builder()
                .timeout(SYNC_READ_TIMEOUT)
                .pool_idle_timeout(Duration::from_secs(3))
                .build()?,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
        })
    }

    /// A sale: `init/sync` and the final outcome. After a 5xx, a timeout or a dropped connection
    /// it asks the agent what became of the order ([`Pos::recover`]) instead of guessing.
    pub async fn sale(&self, order_id: &str, amount_minor: i64, currency: &str) -> Result<Outcome> {
        let body = json!({
            "amount": amount_minor, "isCent": true, "currency": currency,
            "timeOut": PAYMENT_TIMEOUT_SECS, "posData": { "orderId": order_id },
        });
        let sent = self.sync_http.post(format!("{}/api/transactions/init/sync", self.base)).json(&body).send().await;
        match sent {
            Ok(r) if r.status().is_success() => outcome_of(&r.json::<Value>().await?),
            Ok(r) if r.status().is_server_error() => self.recover(order_id).await,
            Ok(r) => {
                let status = r.status();
                let e: Value = r.json().await.unwrap_or(Value::Null);
                // 400 validation (fix the request), 409 busy or idempotency_mismatch (another sale
                // is open, or this order id was used for another amount): nothing was charged.
                bail!("the agent refused the sale ({status}, {}): {}", e["error_type"], e["title"])
            }
            // No answer at all: the payment may exist. Ask.
            Err(_) => self.recover(order_id).await,
        }
    }

    /// Starts a sale without waiting (`init`): what a POS that crashes right after it did.
    pub async fn start_sale(&self, order_id: &str, amount_minor: i64, currency: &str) -> Result<String> {
        let body = json!({
            "amount": amount_minor, "isCent": true, "currency": currency,
            "timeOut": PAYMENT_TIMEOUT_SECS, "posData": { "orderId": order_id },
        });
        let r = self.http.post(format!("{}/api/transactions/init", self.base)).json(&body).send().await?;
        let v: Value = r.json().await?;
        v["TransactionNumber"].as_str().map(str::to_string).ok_or_else(|| anyhow!("no transaction: {v}"))
    }

    /// After a crash or any doubt: finds the order's payment in the agent's journal and waits for
    /// its final status. Never answers "not paid" without the agent saying so.
    pub async fn recover(&self, order_id: &str) -> Result<Outcome> {
        let deadline = tokio::time::Instant::now() + SYNC_READ_TIMEOUT;
        loop {
            let page: Value = self
                .http
                .get(format!("{}/api/agent/transactions", self.base))
                .query(&[("orderId", order_id), ("limit", "1")])
                .send()
                .await?
                .json()
                .await?;
            // The newest payment of the order (the journal lists newest first).
            if let Some(entry) = page["items"].as_array().and_then(|a| a.first()) {
                if let Some(number) = entry["transactionNumber"].as_str() {
                    let tx: Value =
                        self.http.get(format!("{}/api/transactions/{number}", self.base)).send().await?.json().await?;
                    if is_final(&tx) {
                        return outcome_of(&tx);
                    }
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!("order {order_id}: no final status yet; ask again later (never report it failed)");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Refunds `amount_minor` of payment `number` (the whole remainder when `None`). `key` is this
    /// refund's Idempotency-Key: a retry after a network error reuses it, so the customer is
    /// refunded once. Answers SensePass's refund answer, or the queued receipt (`202`).
    pub async fn refund(&self, number: &str, amount_minor: Option<i64>, key: &str) -> Result<Value> {
        let body = match amount_minor {
            Some(a) => json!({ "transactionNumber": number, "isPartial": true, "refundAmount": a, "isCent": true }),
            None => json!({ "transactionNumber": number }),
        };
        let mut last_error = None;
        for _ in 0..3 {
            let sent = self
                .http
                .post(format!("{}/api/transactions/refund", self.base))
                .bearer_auth(&self.token)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await;
            match sent {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let v: Value = r.json().await.context("refund answer")?;
                    return match status {
                        200 if v["result"] == "Approved" => Ok(v),
                        200 => bail!("refund declined: {}", v["errorMessage"]),
                        202 => Ok(v), // queued: the agent delivers it once SensePass is back
                        _ => bail!("refund refused ({status}, {}): {}", v["error_type"], v["title"]),
                    };
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(anyhow!("refund not answered: {last_error:?}; retry later with the same key"))
    }
}

fn is_final(tx: &Value) -> bool {
    matches!(tx["status"].as_i64(), Some(5..=9 | 11 | 13))
}

fn outcome_of(tx: &Value) -> Result<Outcome> {
    let number = tx["TransactionNumber"].as_str().unwrap_or_default().to_string();
    match tx["status"].as_i64() {
        Some(5 | 11 | 13) => Ok(Outcome::Paid { number }),
        Some(status @ 6..=9) => Ok(Outcome::NotPaid {
            number,
            status,
            reason: tx["declineReason"]["message"].as_str().map(str::to_string),
        }),
        other => bail!("not final yet (status {other:?})"),
    }
}
