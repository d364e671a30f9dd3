//! The local API refuses what it must: foreign hosts and origins, non-JSON bodies, money-out
//! without the POS token, and every kind of bad input — naming every invalid field and changing
//! nothing.

use anyhow::Result;
use serde_json::{json, Value};
use till_tests::{init_body, Env};

#[tokio::test]
async fn host_origin_and_content_type() -> Result<()> {
    let env = Env::start().await?;
    let http = &env.http;
    // DNS rebinding: a page on evil.example resolved to 127.0.0.1 sends its own Host.
    let r = http.get(env.url("/api/devices")).header("Host", "evil.example:8003").send().await?;
    assert_eq!(r.status().as_u16(), 403);
    // A foreign web page in a browser on the till.
    let r = http.post(env.url("/api/transactions/init")).header("Origin", "https://evil.example").json(&init_body("O-1", 100)).send().await?;
    assert_eq!(r.status().as_u16(), 403);
    // A form post / text/plain "simple request" that needs no CORS preflight.
    let r = http.post(env.url("/api/transactions/init")).header("Content-Type", "text/plain").body(init_body("O-2", 100).to_string()).send().await?;
    assert_eq!(r.status().as_u16(), 415);
    // The agent's own origin is fine.
    let r = http.get(env.url("/api/devices")).header("Origin", env.agent.url.clone()).send().await?;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().await?["deviceId"], env.device_id.as_str());
    assert!(env.sandbox_transactions_for("O-1").await?.is_empty());
    assert!(env.sandbox_transactions_for("O-2").await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn money_out_needs_the_pos_token() -> Result<()> {
    let env = Env::start().await?;
    let (_, created) = env.post("/api/transactions/init", init_body("M-1", 100)).await?;
    let number = created["TransactionNumber"].as_str().unwrap_or_default().to_string();
    env.control(&format!("/transactions/{number}/pay"), json!({ "card": "4111111111111111" })).await?;
    env.eventually("/api/transactions/last", 10, |v| v["status"] == 5).await?;
    let (status, body) = env.post("/api/transactions/refund", json!({ "transactionNumber": number })).await?;
    assert_eq!(status, 401, "{body}");
    let r = env.http.post(env.url("/api/transactions/refund")).bearer_auth("wrong").json(&json!({ "transactionNumber": number })).send().await?;
    assert_eq!(r.status().as_u16(), 401);
    let (status, _) = env.post(&format!("/api/transactions/cancel/{number}"), json!({})).await?;
    assert_eq!(status, 401, "cancelling an approved payment is money-out");
    let truth = env.sandbox_transactions_for("M-1").await?;
    assert_eq!(truth[0]["_sandbox"]["refundedMinor"], 0);
    Ok(())
}

#[tokio::test]
async fn bad_input_names_every_field_and_changes_nothing() -> Result<()> {
    let env = Env::start().await?;
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({ "amount": 0, "currency": "USD" }), vec!["amount"]),
        (json!({ "amount": -5, "currency": "USD" }), vec!["amount"]),
        (json!({ "amount": 12.5, "isCent": true, "currency": "USD" }), vec!["amount"]),
        (json!({ "amount": 100, "currency": "XYZ" }), vec!["currency"]),
        (json!({ "currency": "USD" }), vec!["amount"]),
        (json!({ "amount": "abc", "currency": 5 }), vec!["amount", "currency"]),
        (json!({ "amount": 100, "currency": "USD", "products": [ { "name": "x", "quantity": -1, "amount": -3 } ] }),
            vec!["products[0].quantity", "products[0].amount"]),
        (json!({ "amount": -1, "currency": "ABC", "products": [ { "name": "x", "quantity": 1, "amount": 1, "vat": -1 } ] }),
            vec!["amount", "currency", "products[0].vat"]),
    ];
    for (body, fields) in cases {
        let (status, err) = env.post("/api/transactions/init", body.clone()).await?;
        assert_eq!(status, 400, "{body} → {err}");
        assert_eq!(err["error_type"], "validation");
        let named: Vec<&str> = err["invalid_parameters"].as_array().map(|a| a.iter().filter_map(|p| p["parameter"].as_str()).collect()).unwrap_or_default();
        for f in fields {
            assert!(named.contains(&f), "{body}: {f} not named in {err}");
        }
    }
    // Malformed JSON.
    let r = env.http.post(env.url("/api/transactions/init")).header("Content-Type", "application/json").body("{\"amount\": 1").send().await?;
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.json::<Value>().await?["invalid_parameters"][0]["parameter"], "body");
    // Oversize body.
    let big = json!({ "amount": 100, "currency": "USD", "reason": "x".repeat(100_000) });
    let (status, err) = env.post("/api/transactions/init", big).await?;
    assert_eq!(status, 413, "{err}");
    // Nothing journaled, nothing sent.
    let (_, journal) = env.get("/api/agent/transactions").await?;
    assert_eq!(journal["total"], 0, "{journal}");
    let state = env.sandbox_state().await?;
    assert_eq!(state["transactions"].as_array().map(Vec::len), Some(0));
    Ok(())
}

#[tokio::test]
async fn products_mismatch_is_accepted_and_flagged() -> Result<()> {
    let env = Env::start().await?;
    let body = json!({ "amount": 1000, "currency": "USD", "posData": { "orderId": "P-1" },
                       "products": [ { "name": "Tea", "quantity": 2, "amount": 300 } ] });
    let (status, created) = env.post("/api/transactions/init", body).await?;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["productSumMismatch"], true);
    let (_, journal) = env.get("/api/agent/transactions?orderId=P-1").await?;
    assert_eq!(journal["items"][0]["productSumMismatch"], true);
    Ok(())
}
