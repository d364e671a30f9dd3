//! Shared helpers for the journal's integration tests: real SQLite files in temp dirs.
#![allow(dead_code)]

use serde_json::{json, Value};
use till_core::{Currency, Minor, Status};
use till_journal::{Journal, NewPayment};

/// A fresh journal file in its own temp dir (kept alive by the returned guard).
pub fn journal() -> (tempfile::TempDir, Journal) {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path().join("journal.sqlite3")).unwrap();
    (dir, j)
}

/// A sale of `amount` cents USD on `device`, with optional order ID and key.
pub fn sale(
    local_id: &str,
    device: &str,
    order: Option<&str>,
    key: Option<&str>,
    amount: i64,
    now: i64,
) -> NewPayment {
    NewPayment {
        local_id: local_id.to_string(),
        device_id: device.to_string(),
        order_id: order.map(str::to_string),
        idempotency_key: key.map(str::to_string),
        amount: Minor(amount),
        currency: Currency::Usd,
        request_json: json!({"amount": amount, "currency": "USD", "isCent": true}),
        product_sum_mismatch: false,
        setup: false,
        now_ms: now,
    }
}

/// A SensePass-like entity for `number` in `status`.
pub fn entity(number: &str, status: Status) -> Value {
    json!({"TransactionNumber": number, "status": status.code(), "statusName": status.display_name()})
}
