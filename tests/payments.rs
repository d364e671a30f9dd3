//! End-to-end payment flows: the real `till-agent` binary, the SensePass sandbox, real HTTP and
//! Socket.IO on loopback. Each test has its own sandbox, agent process and journal.

use anyhow::Result;
use serde_json::{json, Value};
use std::time::Duration;
use till_tests::{init_body, Env};

/// Starts `init/sync` in the background and returns its join handle plus the transaction number
/// once SensePass has created it.
async fn start_sync(env: &Env, body: Value) -> Result<(tokio::task::JoinHandle<Result<(u16, Value)>>, String)> {
    let order = body["posData"]["orderId"].clone();
    let http = env.http.clone();
    let url = env.url("/api/transactions/init/sync");
    let handle = tokio::spawn(async move {
        let r = http.post(url).json(&body).send().await?;
        let status = r.status().as_u16();
        Ok((status, r.json::<Value>().await?))
    });
    let last = env
        .eventually("/api/transactions/last", 10, |v| {
            v["posData"]["orderId"] == order && v["TransactionNumber"].as_str().map(|s| !s.is_empty()).unwrap_or(false)
        })
        .await?;
    Ok((handle, last["TransactionNumber"].as_str().unwrap_or_default().to_string()))
}

#[tokio::test]
async fn sync_payment_approved_then_committed() -> Result<()> {
    let env = Env::start().await?;
    let (sync, number) = start_sync(&env, init_body("A-1", 1250)).await?;
    env.control(&format!("/transactions/{number}/pay"), json!({ "card": "4111111111111111" })).await?;
    let (status, body) = sync.await??;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], 5);
    assert_eq!(body["TransactionNumber"], number.as_str());
    assert_eq!(body["amount"], "12.5");
    assert_eq!(body["posData"]["orderId"], "A-1");
    // The agent commits the payment (GET commitLink) and journals it.
    let detail = env
        .eventually(&format!("/api/agent/transactions/{number}"), 10, |v| !v["committedAt"].is_null())
        .await?;
    assert_eq!(detail["statusKey"], "approved");
    let truth = env.sandbox_transactions_for("A-1").await?;
    assert_eq!(truth.len(), 1);
    assert!(truth[0]["_sandbox"]["commitCount"].as_u64().unwrap_or(0) >= 1, "{}", truth[0]);
    Ok(())
}

#[tokio::test]
async fn sync_payment_declined() -> Result<()> {
    let env = Env::start().await?;
    let (sync, number) = start_sync(&env, init_body("D-1", 500)).await?;
    env.control(&format!("/transactions/{number}/pay"), json!({ "card": "4456530000001013" })).await?;
    let (status, body) = sync.await??;
    assert_eq!(status, 200);
    assert_eq!(body["status"], 6);
    Ok(())
}

#[tokio::test]
async fn sync_payment_timed_out() -> Result<()> {
    let env = Env::start().await?;
    let (sync, number) = start_sync(&env, init_body("T-1", 500)).await?;
    env.control(&format!("/transactions/{number}/expire"), json!({})).await?;
    let (status, body) = sync.await??;
    assert_eq!(status, 200);
    assert_eq!(body["status"], 8);
    Ok(())
}

#[tokio::test]
async fn pos_closing_the_sync_connection_cancels_the_payment() -> Result<()> {
    let env = Env::start().await?;
    let client = reqwest::Client::builder().timeout(Duration::from_millis(1500)).build()?;
    let result = client.post(env.url("/api/transactions/init/sync")).json(&init_body("C-1", 700)).send().await;
    assert!(result.is_err(), "the sync call must still be waiting when the POS gives up");
    let last = env.eventually("/api/transactions/last", 10, |v| v["status"] == 9).await?;
    let number = last["TransactionNumber"].as_str().unwrap_or_default().to_string();
    let truth = env.sandbox_transactions_for("C-1").await?;
    assert_eq!(truth.len(), 1);
    assert_eq!(truth[0]["status"], 9, "cancelled at SensePass too");
    let ops = env
        .eventually("/api/agent/outbox", 10, |ops| {
            ops["items"].as_array().map(|a| a.iter().any(|o| o["kind"] == "cancel" && o["state"] == "delivered")).unwrap_or(false)
        })
        .await?;
    let cancel = ops["items"].as_array().and_then(|a| a.iter().find(|o| o["kind"] == "cancel").cloned()).unwrap_or_default();
    assert_eq!(cancel["payload"]["transactionNumber"], number.as_str(), "the cancel is journaled as an operation");
    assert_eq!(cancel["payload"]["reason"], "pos_disconnected");
    Ok(())
}

#[tokio::test]
async fn async_init_and_event_stream() -> Result<()> {
    let env = Env::start().await?;
    let mut stream = env.http.get(env.url("/api/agent/events")).send().await?.bytes_stream();
    let (status, created) = env.post("/api/transactions/init", init_body("E-1", 300)).await?;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["status"], 0);
    let number = created["TransactionNumber"].as_str().unwrap_or_default().to_string();
    assert_eq!(number.len(), 56);
    env.control(&format!("/transactions/{number}/tap"), json!({})).await?;
    env.control(&format!("/transactions/{number}/pay"), json!({ "card": "5200000000000056" })).await?;
    use futures_util::StreamExt;
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains("\"statusKey\":\"approved\"") {
        let chunk = tokio::time::timeout_at(deadline, stream.next()).await?;
        match chunk {
            Some(Ok(bytes)) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            other => panic!("event stream ended: {other:?}; seen: {seen}"),
        }
    }
    assert!(seen.contains("event: status"), "{seen}");
    assert!(seen.contains("\"statusKey\":\"tapped\""), "{seen}");
    assert!(seen.contains("\"statusKey\":\"approved\""), "{seen}");
    Ok(())
}

#[tokio::test]
async fn last_is_truthful_after_a_kill_mid_payment() -> Result<()> {
    let mut env = Env::start().await?;
    let (_, created) = env.post("/api/transactions/init", init_body("K-1", 990)).await?;
    let number = created["TransactionNumber"].as_str().unwrap_or_default().to_string();
    env.agent.kill9();
    // The customer pays while the agent is down: no socket event will ever reach it.
    env.control(&format!("/transactions/{number}/pay"), json!({ "card": "4111111111111111" })).await?;
    env.restart_agent().await?;
    let (status, last) = env.get("/api/transactions/last").await?;
    assert_eq!(status, 200);
    assert_eq!(last["TransactionNumber"], number.as_str());
    assert_eq!(last["status"], 5);
    Ok(())
}

#[tokio::test]
async fn socket_drop_during_payment_still_ends_right() -> Result<()> {
    let env = Env::start().await?;
    let (sync, number) = start_sync(&env, init_body("S-1", 450)).await?;
    env.control("/faults", json!({ "dropSockets": true })).await?;
    env.control(&format!("/transactions/{number}/pay"), json!({ "card": "4111111111111111" })).await?;
    let (status, body) = sync.await??;
    assert_eq!(status, 200);
    assert_eq!(body["status"], 5);
    Ok(())
}

#[tokio::test]
async fn duplicate_and_stale_events_change_nothing() -> Result<()> {
    let env = Env::start().await?;
    let (sync, number) = start_sync(&env, init_body("R-1", 450)).await?;
    env.control(&format!("/transactions/{number}/pay"), json!({ "card": "4111111111111111" })).await?;
    let (_, body) = sync.await??;
    assert_eq!(body["status"], 5);
    // A duplicate of the final event, then stale ones from earlier in the walk.
    env.control(&format!("/transactions/{number}/emit"), json!({})).await?;
    for stale in [4, 1, 0] {
        env.control(&format!("/transactions/{number}/emit"), json!({ "status": stale })).await?;
    }
    let detail = env
        .eventually(&format!("/api/agent/transactions/{number}"), 10, |v| {
            v["events"].as_array().map(|e| e.iter().filter(|e| e["applied"] == false).count() >= 3).unwrap_or(false)
        })
        .await?;
    assert_eq!(detail["status"], 5, "stale events never move a payment backwards: {detail}");
    let (_, last) = env.get("/api/transactions/last").await?;
    assert_eq!(last["status"], 5);
    Ok(())
}

#[tokio::test]
async fn lost_create_response_then_retry_makes_one_transaction() -> Result<()> {
    let env = Env::start_with_config("http_timeout_secs = 2\n").await?;
    env.control("/faults", json!({ "loseNextResponse": ["init"] })).await?;
    let (first_status, first) = env.post("/api/transactions/init", init_body("L-1", 1000)).await?;
    // The POS retries the same order, as it would after any doubt.
    let (second_status, second) = env.post("/api/transactions/init", init_body("L-1", 1000)).await?;
    assert_eq!(second_status, 200, "{second}");
    if first_status == 200 {
        assert_eq!(first["TransactionNumber"], second["TransactionNumber"]);
    }
    let truth = env.sandbox_transactions_for("L-1").await?;
    assert_eq!(truth.len(), 1, "exactly one SensePass transaction for the order: {truth:?}");
    assert_eq!(truth[0]["TransactionNumber"], second["TransactionNumber"]);
    Ok(())
}

#[tokio::test]
async fn one_payment_at_a_time() -> Result<()> {
    let env = Env::start().await?;
    let (_, first) = env.post("/api/transactions/init", init_body("B-1", 100)).await?;
    let (status, busy) = env.post("/api/transactions/init", init_body("B-2", 200)).await?;
    assert_eq!(status, 409, "{busy}");
    assert_eq!(busy["error_type"], "busy");
    assert_eq!(busy["transactionNumber"], first["TransactionNumber"]);
    assert_eq!(env.sandbox_transactions_for("B-2").await?.len(), 0);
    Ok(())
}

#[tokio::test]
async fn idempotent_after_approval_new_attempt_after_decline() -> Result<()> {
    let env = Env::start().await?;
    // Approved: a retry returns the approved payment and charges nothing new.
    let (sync, number) = start_sync(&env, init_body("I-1", 800)).await?;
    env.control(&format!("/transactions/{number}/pay"), json!({ "card": "4111111111111111" })).await?;
    assert_eq!(sync.await??.1["status"], 5);
    let (status, again) = env.post("/api/transactions/init/sync", init_body("I-1", 800)).await?;
    assert_eq!(status, 200);
    assert_eq!(again["TransactionNumber"], number.as_str());
    assert_eq!(again["status"], 5);
    assert_eq!(env.sandbox_transactions_for("I-1").await?.len(), 1);

    // Declined: the same order may try again, as a new transaction.
    let (sync, declined) = start_sync(&env, init_body("I-2", 800)).await?;
    env.control(&format!("/transactions/{declined}/pay"), json!({ "card": "4456530000001013" })).await?;
    assert_eq!(sync.await??.1["status"], 6);
    let (status, retry) = env.post("/api/transactions/init", init_body("I-2", 800)).await?;
    assert_eq!(status, 200);
    assert_ne!(retry["TransactionNumber"], declined.as_str());
    assert_eq!(env.sandbox_transactions_for("I-2").await?.len(), 2);

    // The Idempotency-Key header works the same way without an order id.
    let body = json!({ "amount": 300, "currency": "USD" });
    let send = || env.http.post(env.url("/api/transactions/init")).header("Idempotency-Key", "key-1").json(&body).send();
    let a: Value = send().await?.json().await?;
    let b: Value = send().await?.json().await?;
    assert_eq!(a["TransactionNumber"], b["TransactionNumber"]);
    Ok(())
}

#[tokio::test]
async fn refunds_partial_then_rest_with_the_pos_token() -> Result<()> {
    let env = Env::start().await?;
    let (sync, number) = start_sync(&env, init_body("F-1", 1000)).await?;
    env.control(&format!("/transactions/{number}/pay"), json!({ "card": "4111111111111111" })).await?;
    assert_eq!(sync.await??.1["status"], 5);
    let token = env.token()?;
    let refund = |body: Value| {
        env.http.post(env.url("/api/transactions/refund")).bearer_auth(&token).json(&body).send()
    };
    let r: Value = refund(json!({ "transactionNumber": number, "isPartial": true, "refundAmount": 2.5 })).await?.json().await?;
    assert_eq!(r["errorCode"], 0, "{r}");
    assert_eq!(r["result"], "Approved");
    let over = refund(json!({ "transactionNumber": number, "isPartial": true, "refundAmount": 9 })).await?;
    assert_eq!(over.status().as_u16(), 422, "more than what is left is refused locally");
    let r: Value = refund(json!({ "transactionNumber": number })).await?.json().await?;
    assert_eq!(r["result"], "Approved", "{r}");
    let detail = env.eventually(&format!("/api/agent/transactions/{number}"), 10, |v| v["status"] == 11).await?;
    assert_eq!(detail["refundedMinor"], 1000);
    let truth = env.sandbox_transactions_for("F-1").await?;
    assert_eq!(truth[0]["_sandbox"]["refundedMinor"], 1000);
    Ok(())
}

/// Every example body of the spec's §4.1 and §8.3, sent unchanged (without deviceId).
#[tokio::test]
async fn spec_example_bodies_are_accepted_unchanged() -> Result<()> {
    let env = Env::start().await?;
    let bodies = vec![
        json!({ "amount": 200, "isCent": true, "currency": "USD", "timeOut": 600,
                "posData": { "orderId": "X-1" }, "callbackURL": "https://merchant.example/cb" }),
        json!({ "amount": 1000, "isCent": true, "currency": "ILS", "timeOut": 500, "clientPhoneNumber": "+972500000000",
                "customSmsText": "Pay %%amount%% at %%businessName%%: %%link%%", "reason": "Order 17" }),
        json!({ "amount": 1000, "isCent": true, "currency": "EUR", "clientEmail": "buyer@example.com",
                "emailConfig": { "paymentRequest": { "language": "en" } }, "clientName": "Ana Núñez" }),
        json!({ "amount": 3499, "isCent": true, "currency": "USD",
                "receipt": { "mode": 2, "accountingProvider": 4 }, "receiptNotifications": { "email": ["a@example.com"], "sms": [] },
                "products": [ { "name": "Shirt", "quantity": 1, "amount": 3499, "vat": 0, "discount": 0, "itemNumber": 1, "posIdentifier": "SKU-1" } ] }),
        json!({ "amount": 190, "isCent": true, "currency": "RUB",
                "receipt": { "mode": 1, "accountingProvider": 4, "receiptInfo": { "firstName": "Ivan", "languageCode": "ru", "currencyCode": "RUB", "vat": true, "discount": 0 } },
                "invoice": { "type": "pdf", "url": "https://merchant.example/invoice.pdf" },
                "metadata": [ { "key": "genericDisplay", "value": [ { "sectionLabel": "Order", "values": [ { "label": "Table", "value": "4" } ] } ] } ] }),
        json!({ "amount": 2500, "isCent": true, "currency": "CAD", "callbackURL": "https://merchant.example/cb", "callbackMethod": "GET",
                "maxInstallments": 3, "methodType": "payment" }),
    ];
    for (i, body) in bodies.into_iter().enumerate() {
        let (status, created) = env.post("/api/transactions/init", body.clone()).await?;
        assert_eq!(status, 200, "example {i}: {created}");
        assert_eq!(created["status"], 0);
        let number = created["TransactionNumber"].as_str().unwrap_or_default().to_string();
        let (status, _) = env.post(&format!("/api/transactions/cancel/{number}"), json!({})).await?;
        assert_eq!(status, 200, "example {i} cancel");
    }
    // §8.3 live cart: lower-case `timeout` as a string.
    let cart = json!({ "products": [ { "name": "Coffee", "quantity": 2, "amount": 250 } ], "amount": 500,
                       "currency": "USD", "isCent": true, "timeout": "1000", "readyForPayment": false });
    let (status, setup) = env.post("/api/transactions/products/update", cart).await?;
    assert_eq!(status, 200, "{setup}");
    Ok(())
}

/// The live cart (spec §8.3): products/update shows a "Setup" transaction; the next init takes it
/// over (same TransactionNumber, payable now) instead of creating a second one.
#[tokio::test]
async fn live_cart_becomes_the_payment() -> Result<()> {
    let env = Env::start().await?;
    let cart = |amount: i64| json!({ "products": [ { "name": "Coffee", "quantity": 2, "amount": amount / 2 } ],
                                     "amount": amount, "currency": "USD", "isCent": true, "timeout": "1000", "readyForPayment": false });
    let (status, first) = env.post("/api/transactions/products/update", cart(500)).await?;
    assert_eq!(status, 200, "{first}");
    let number = first["TransactionNumber"].as_str().unwrap_or_default().to_string();
    let (status, second) = env.post("/api/transactions/products/update", cart(800)).await?;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["TransactionNumber"], number.as_str(), "the same cart transaction is updated");
    assert_eq!(second["amount"], "8");
    let mut body = init_body("LC-1", 800);
    body["products"] = json!([ { "name": "Coffee", "quantity": 2, "amount": 400 } ]);
    let (sync, paid_number) = start_sync(&env, body).await?;
    assert_eq!(paid_number, number, "the payment is the cart transaction");
    env.control(&format!("/transactions/{number}/pay"), json!({ "card": "4111111111111111" })).await?;
    let (status, done) = sync.await??;
    assert_eq!(status, 200);
    assert_eq!(done["status"], 5);
    assert_eq!(done["amount"], "8");
    let state = env.sandbox_state().await?;
    assert_eq!(state["transactions"].as_array().map(Vec::len), Some(1), "one SensePass transaction in all");
    Ok(())
}

/// A status 12 observed after a partial refund may be a new refund starting, so it is applied;
/// if its outcome never arrives, the periodic re-read brings the journal back to SensePass's truth.
#[tokio::test]
async fn a_refund_left_processing_is_re_read() -> Result<()> {
    let env = Env::start_with_config("resync_interval_secs = 1\n").await?;
    let (sync, number) = start_sync(&env, init_body("RP-1", 1000)).await?;
    env.control(&format!("/transactions/{number}/pay"), json!({ "card": "4111111111111111" })).await?;
    assert_eq!(sync.await??.1["status"], 5);
    let token = env.token()?;
    let r = env.http.post(env.url("/api/transactions/refund")).bearer_auth(&token)
        .json(&json!({ "transactionNumber": number, "isPartial": true, "refundAmount": 1 })).send().await?;
    assert_eq!(r.status().as_u16(), 200);
    env.eventually(&format!("/api/agent/transactions/{number}"), 10, |v| v["status"] == 13).await?;
    env.control(&format!("/transactions/{number}/emit"), json!({ "status": 12 })).await?;
    env.eventually(&format!("/api/agent/transactions/{number}"), 10, |v| {
        v["events"].as_array().map(|e| e.iter().any(|e| e["status"] == 12 && e["source"] == "socket")).unwrap_or(false)
    })
    .await?;
    env.eventually(&format!("/api/agent/transactions/{number}"), 15, |v| v["status"] == 13).await?;
    Ok(())
}

/// Customer input (spec §4.13, §8.3) through the agent: the POS sends no deviceId; the agent adds
/// the paired one; the call returns the consumer's answers.
#[tokio::test]
async fn customer_input_through_the_agent() -> Result<()> {
    let env = Env::start().await?;
    let http = env.http.clone();
    let url = env.url("/api/transactions/customer-input");
    let ask = tokio::spawn(async move {
        let r = http
            .post(url)
            .json(&json!({ "inputs": [ { "type": "email", "question": "Your e-mail for the receipt?" } ] }))
            .send()
            .await?;
        let status = r.status().as_u16();
        anyhow::Ok((status, r.json::<Value>().await?))
    });
    // The consumer answers on the device (the sandbox's control API stands in for the tag).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answered = env
            .control(&format!("/devices/{}/customer-input", env.device_id), json!({ "answers": ["ana@example.com"] }))
            .await;
        if answered.is_ok() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the question never reached the device: {answered:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = ask.await??;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["results"][0]["input"], "ana@example.com");
    Ok(())
}

/// A cancel that meets the consumer paying gets SensePass's documented 501, passed through as it
/// is (not a 504 "outcome unknown"), is not retried, and the payment's outcome is still journaled.
#[tokio::test]
async fn cancel_during_consumer_activity_is_a_501_and_the_payment_runs_on() -> Result<()> {
    let env = Env::start().await?;
    let (status, created) = env.post("/api/transactions/init", init_body("C501-1", 700)).await?;
    assert_eq!(status, 200, "{created}");
    let number = created["TransactionNumber"].as_str().unwrap_or_default().to_string();
    // The consumer's page with the 3-D Secure card: the payment stops in 2 (the challenge).
    let page = till_tests::sandbox_tx(&env, &number).await?["transactionPage"]["qrURL"].as_str().unwrap_or_default().to_string();
    let r = env.http.post(format!("{page}/card")).form(&[("card", "4456530000001096")]).send().await?;
    assert!(r.status().is_success(), "card entry: {}", r.status());
    env.eventually(&format!("/api/agent/transactions/{number}"), 10, |v| v["status"] == 2).await?;
    let r = env.http.post(env.url(&format!("/api/transactions/cancel/{number}"))).send().await?;
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 501, "SensePass's answer passed through: {body}");
    assert!(body.to_string().contains("consumer activity"), "{body}");
    let (_, outbox) = env.get("/api/agent/outbox").await?;
    let cancels: Vec<Value> = outbox["items"].as_array().cloned().unwrap_or_default().into_iter().filter(|o| o["kind"] == "cancel").collect();
    assert_eq!(cancels.len(), 1, "{outbox}");
    assert_eq!(cancels[0]["attempts"], 1, "a 501 is an answer, not retried: {outbox}");
    assert_eq!(cancels[0]["state"], "failed", "{outbox}");
    env.control(&format!("/transactions/{number}/approve"), json!({})).await?;
    env.eventually(&format!("/api/agent/transactions/{number}"), 15, |v| v["status"] == 5).await?;
    Ok(())
}

/// The POS's `timeOut` wins over the live cart's: a cart whose transaction has less time left
/// than the init asks for is cancelled, and the payment is a fresh transaction with the full time
/// (and the cart's products when the init has none).
#[tokio::test]
async fn a_short_lived_cart_does_not_shorten_the_payment() -> Result<()> {
    let env = Env::start().await?;
    let cart = json!({ "products": [ { "name": "Tea", "quantity": 1, "amount": 300 } ], "amount": 300,
                       "currency": "USD", "isCent": true, "timeOut": 10 });
    let (status, shown) = env.post("/api/transactions/products/update", cart).await?;
    assert_eq!(status, 200, "{shown}");
    let cart_number = shown["TransactionNumber"].as_str().unwrap_or_default().to_string();
    let mut body = init_body("TO-1", 300);
    body["timeOut"] = json!(600);
    let started = std::time::SystemTime::now();
    let (status, created) = env.post("/api/transactions/init", body).await?;
    assert_eq!(status, 200, "{created}");
    let number = created["TransactionNumber"].as_str().unwrap_or_default().to_string();
    assert_ne!(number, cart_number, "a fresh transaction, not the 10-second cart");
    let truth = till_tests::sandbox_tx(&env, &number).await?;
    assert_eq!(truth["_sandbox"]["timeOutSeconds"], 600, "{truth}");
    assert_eq!(truth["products"][0]["name"], "Tea", "the cart's products are paid for: {truth}");
    let timeout = time::OffsetDateTime::parse(truth["timeoutDate"].as_str().unwrap_or_default(), &time::format_description::well_known::Rfc3339)?;
    let from_now = timeout.unix_timestamp() - started.duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    assert!((590..=610).contains(&from_now), "the customer gets the 600 s the POS asked for: {from_now}");
    env.eventually(&format!("/api/agent/transactions/{cart_number}"), 10, |v| v["status"] == 9).await?;
    Ok(())
}

/// A cart update while a payment is open is refused (409 busy, naming the payment) and changes
/// nothing: the customer keeps seeing, and can still pay, the open payment.
#[tokio::test]
async fn a_cart_update_cannot_hide_an_open_payment() -> Result<()> {
    let env = Env::start().await?;
    let (status, created) = env.post("/api/transactions/init", init_body("CU-1", 1500)).await?;
    assert_eq!(status, 200, "{created}");
    let number = created["TransactionNumber"].as_str().unwrap_or_default().to_string();
    let cart = json!({ "products": [ { "name": "Cake", "quantity": 1, "amount": 500 } ], "amount": 500,
                       "currency": "USD", "isCent": true });
    let (status, busy) = env.post("/api/transactions/products/update", cart).await?;
    assert_eq!(status, 409, "{busy}");
    assert_eq!(busy["error_type"], "busy", "{busy}");
    assert_eq!(busy["transactionNumber"], number.as_str(), "{busy}");
    let state = env.sandbox_state().await?;
    assert_eq!(state["transactions"].as_array().map(Vec::len), Some(1), "no cart transaction was created");
    env.control(&format!("/transactions/{number}/pay"), json!({ "card": "4111111111111111" })).await?;
    env.eventually(&format!("/api/agent/transactions/{number}"), 15, |v| v["status"] == 5).await?;
    Ok(())
}
