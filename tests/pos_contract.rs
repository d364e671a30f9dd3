//! The POS contract as an integrator meets it: the real `till-agent` binary against the SensePass
//! sandbox over real sockets. Each test is one thing a POS vendor relies on (docs/INTEGRATION.md):
//! a lost create answer is never a 500, a refund amount is never widened to a full refund, a
//! reused order id is never answered with another sale, a retried refund answers what the first
//! call got, the sandbox agent keeps its world and token across restarts, a live cart survives an
//! init without products, and a decline says why.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use till_tests::{bin_path, init_body, pay, refund, Env};

/// Starts `init/sync` in the background; returns its handle once the sandbox holds the order's
/// transaction (the create call itself may still be waiting for an answer that never comes).
async fn sync_in_background(env: &Env, body: Value) -> Result<(tokio::task::JoinHandle<Result<(u16, Value)>>, String)> {
    let order = body["posData"]["orderId"].as_str().unwrap_or_default().to_string();
    let http = env.http.clone();
    let url = env.url("/api/transactions/init/sync");
    let handle = tokio::spawn(async move {
        let r = http.post(url).json(&body).send().await?;
        let status = r.status().as_u16();
        Ok((status, r.json::<Value>().await.unwrap_or(Value::Null)))
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(tx) = env.sandbox_transactions_for(&order).await?.first() {
            return Ok((handle, tx["TransactionNumber"].as_str().unwrap_or_default().to_string()));
        }
        if Instant::now() > deadline {
            bail!("the sandbox never saw order {order}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A lost create answer while the periodic re-read finds the payment: the POS gets the payment
/// (init) or its outcome (init/sync) — never `500 internal`.
#[tokio::test]
async fn a_lost_create_answer_is_reconciled_not_a_500() -> Result<()> {
    // The re-read (every second) finds the payment before the create call gives up (3 s).
    let env = Env::start_with_config("http_timeout_secs = 3\nresync_interval_secs = 1\n").await?;
    env.control("/faults", json!({ "loseNextResponse": ["init"] })).await?;
    let (status, body) = env.post("/api/transactions/init", init_body("LA-1", 1000)).await?;
    assert_eq!(status, 200, "the payment exists at SensePass, so the POS gets it: {body}");
    let truth = env.sandbox_transactions_for("LA-1").await?;
    assert_eq!(truth.len(), 1);
    assert_eq!(body["TransactionNumber"], truth[0]["TransactionNumber"]);
    env.post(&format!("/api/transactions/cancel/{}", body["TransactionNumber"].as_str().unwrap_or_default()), json!({}))
        .await?;

    // init/sync: the customer pays while the create answer is lost; the POS gets the approval.
    env.control("/faults", json!({ "loseNextResponse": ["init"] })).await?;
    let (sync, number) = sync_in_background(&env, init_body("LA-2", 1500)).await?;
    env.control(&format!("/transactions/{number}/pay"), json!({ "card": "4111111111111111" })).await?;
    let (status, body) = sync.await??;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["TransactionNumber"], number.as_str());
    assert_eq!(body["status"], 5);
    Ok(())
}

/// `refundAmount` without `isPartial` is a 400 (docs/DECISIONS.md), never a full refund; the same
/// amount as what is left is that full refund.
#[tokio::test]
async fn a_refund_amount_without_is_partial_is_refused() -> Result<()> {
    let env = Env::start().await?;
    let token = env.token()?;
    let number = pay(&env, "RA-1", 5000).await?;
    let (status, body) = refund(&env, &token, "ra-1", json!({ "transactionNumber": number, "refundAmount": 1 })).await?;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error_type"], "validation");
    let named: Vec<&str> = body["invalid_parameters"].as_array().map(|a| a.iter().filter_map(|p| p["parameter"].as_str()).collect()).unwrap_or_default();
    assert!(named.contains(&"refundAmount") && named.contains(&"isPartial"), "{body}");
    let truth = till_tests::sandbox_tx(&env, &number).await?;
    assert_eq!(truth["_sandbox"]["refundedMinor"], 0, "nothing was refunded: {truth}");
    // The whole remaining amount, without isPartial: a full refund, as asked.
    let (status, body) = refund(&env, &token, "ra-2", json!({ "transactionNumber": number, "refundAmount": 50 })).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"], "Approved");
    assert_eq!(till_tests::sandbox_tx(&env, &number).await?["_sandbox"]["refundedMinor"], 5000);
    Ok(())
}

/// An init under the explicit Idempotency-Key `till-3-sale-99`.
async fn keyed(env: &Env, amount: i64, order: &str) -> reqwest::Result<reqwest::Response> {
    env.http
        .post(env.url("/api/transactions/init"))
        .header("Idempotency-Key", "till-3-sale-99")
        .json(&init_body(order, amount))
        .send()
        .await
}

/// A reused order id: another amount → 409 naming the original, nothing created; the same amount
/// within the window → the original, marked as a replay; after the window (the clock moved) → a
/// new payment. An explicit Idempotency-Key still replays after the window.
#[tokio::test]
async fn a_reused_order_id_is_a_replay_only_for_the_same_sale_within_the_window() -> Result<()> {
    let out = Command::new(bin_path("till-agent")?).arg("features").output()?;
    if !String::from_utf8_lossy(&out.stdout).contains("failpoints") {
        bail!("target/debug/till-agent was built without the test features: run `cargo build --workspace`");
    }
    let mut env = Env::start().await?;
    let number = pay(&env, "order-17", 300).await?;

    // Another amount under the same order id.
    let (status, body) = env.post("/api/transactions/init", init_body("order-17", 4500)).await?;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error_type"], "idempotency_mismatch");
    assert_eq!(body["transactionNumber"], number.as_str());
    assert_eq!(body["amountMinor"], 300);
    assert_eq!(env.sandbox_transactions_for("order-17").await?.len(), 1, "no new payment");

    // The same sale again: the original, marked as a replay.
    let r = env.http.post(env.url("/api/transactions/init")).json(&init_body("order-17", 300)).send().await?;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers().get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));
    let body: Value = r.json().await?;
    assert_eq!(body["TransactionNumber"], number.as_str());
    assert_eq!(body["idempotentReplay"], true);
    assert_eq!(body["status"], 5);

    // A sale under an explicit key, paid.
    let first: Value = keyed(&env, 700, "K-7").await?.json().await?;
    let keyed_number = first["TransactionNumber"].as_str().context("keyed sale")?.to_string();
    env.control(&format!("/transactions/{keyed_number}/pay"), json!({ "card": "4111111111111111" })).await?;
    env.eventually(&format!("/api/agent/transactions/{keyed_number}"), 15, |v| v["status"] == 5).await?;

    // Ten minutes later (the agent's clock moved past the 5-minute order-id window).
    env.restart_agent_with(&[("TILL_AGENT_TEST_CLOCK_OFFSET_MS", "600000")]).await?;
    let (status, again) = env.post("/api/transactions/init", init_body("order-17", 300)).await?;
    assert_eq!(status, 200, "{again}");
    assert_ne!(again["TransactionNumber"], number.as_str(), "tomorrow's order 17 is a new sale");
    assert_eq!(again["status"], 0);
    assert!(again.get("idempotentReplay").is_none(), "{again}");
    assert_eq!(env.sandbox_transactions_for("order-17").await?.len(), 2);
    env.post(&format!("/api/transactions/cancel/{}", again["TransactionNumber"].as_str().unwrap_or_default()), json!({}))
        .await?;
    // The explicit key holds for 31 days.
    let r = keyed(&env, 700, "K-7").await?;
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await?;
    assert_eq!(body["TransactionNumber"], keyed_number.as_str(), "{body}");
    assert_eq!(body["idempotentReplay"], true);
    let (status, body) = {
        let r = keyed(&env, 800, "K-7").await?;
        (r.status().as_u16(), r.json::<Value>().await?)
    };
    assert_eq!(status, 409, "the key with another amount: {body}");
    Ok(())
}

/// A refund retried with its Idempotency-Key answers the first answer again: same status, same
/// body, and nothing refunded twice.
#[tokio::test]
async fn a_refund_retried_with_its_key_answers_the_same() -> Result<()> {
    let env = Env::start().await?;
    let token = env.token()?;
    let number = pay(&env, "RR-1", 1000).await?;
    let body = json!({ "transactionNumber": number, "isPartial": true, "refundAmount": 2.5 });
    let (status, first) = refund(&env, &token, "rr-1", body.clone()).await?;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["result"], "Approved");
    let r = env
        .http
        .post(env.url("/api/transactions/refund"))
        .bearer_auth(&token)
        .header("Idempotency-Key", "rr-1")
        .json(&body)
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers().get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));
    let again: Value = r.json().await?;
    assert_eq!(again, first, "the retry gets the first answer");
    let truth = till_tests::sandbox_tx(&env, &number).await?;
    assert_eq!(truth["_sandbox"]["refunds"].as_array().map(Vec::len), Some(1));
    // The same key for another amount is another refund: refused, naming the original.
    let (status, other) = refund(&env, &token, "rr-1", json!({ "transactionNumber": number, "isPartial": true, "refundAmount": 3 })).await?;
    assert_eq!(status, 409, "{other}");
    assert_eq!(other["error_type"], "idempotency_mismatch");
    assert_eq!(other["amountMinor"], 250);
    assert_eq!(till_tests::sandbox_tx(&env, &number).await?["_sandbox"]["refundedMinor"], 250);

    // A refused refund is refused the same way again.
    let (status, over) = refund(&env, &token, "rr-2", json!({ "transactionNumber": number, "isPartial": true, "refundAmount": 9 })).await?;
    assert_eq!(status, 422, "{over}");
    Ok(())
}

/// An init without products after live-cart updates pays for the cart the customer was looking at.
#[tokio::test]
async fn an_init_without_products_keeps_the_live_cart() -> Result<()> {
    let env = Env::start().await?;
    let cart = json!({ "products": [ { "name": "Coffee", "quantity": 2, "amount": 250 } ],
                       "amount": 500, "currency": "USD", "isCent": true, "readyForPayment": false });
    let (status, shown) = env.post("/api/transactions/products/update", cart).await?;
    assert_eq!(status, 200, "{shown}");
    let number = shown["TransactionNumber"].as_str().unwrap_or_default().to_string();
    let (status, created) = env.post("/api/transactions/init", init_body("PC-1", 500)).await?;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["TransactionNumber"], number.as_str());
    let truth = till_tests::sandbox_tx(&env, &number).await?;
    assert_eq!(truth["products"][0]["name"], "Coffee", "the customer's cart is still there: {truth}");
    assert_eq!(created["products"][0]["name"], "Coffee", "{created}");
    let detail = env.get(&format!("/api/agent/transactions/{number}")).await?.1;
    assert_eq!(detail["transaction"]["products"][0]["name"], "Coffee", "{detail}");
    Ok(())
}

/// A decline says why (code and text) from SensePass through the agent to the POS.
#[tokio::test]
async fn a_decline_carries_its_reason() -> Result<()> {
    let env = Env::start().await?;
    let (sync, number) = sync_in_background(&env, init_body("DR-1", 500)).await?;
    env.control(&format!("/transactions/{number}/pay"), json!({ "card": "4456530000001013" })).await?;
    let (status, body) = sync.await??;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], 6);
    assert_eq!(body["declineReason"]["code"], "5", "{body}");
    assert!(body["declineReason"]["message"].as_str().map(|m| m.contains("Do not honour")).unwrap_or(false), "{body}");
    let (_, last) = env.get("/api/transactions/last").await?;
    assert_eq!(last["declineReason"], body["declineReason"]);
    // An approval carries none.
    let paid = pay(&env, "DR-2", 500).await?;
    let (_, ok) = env.get(&format!("/api/transactions/{paid}")).await?;
    assert!(ok.get("declineReason").is_none(), "{ok}");
    Ok(())
}

/// `till-agent run --sandbox` as a child process (the embedded sandbox, no pairing step).
struct SandboxAgent {
    child: Child,
    url: String,
    control: String,
    _stdout: BufReader<std::process::ChildStdout>,
}

impl SandboxAgent {
    fn spawn(data_dir: &std::path::Path) -> Result<SandboxAgent> {
        let mut child = Command::new(bin_path("till-agent")?)
            .args(["run", "--sandbox", "--listen", "127.0.0.1:0"])
            .args(data_args(data_dir))
            .stdout(Stdio::piped())
            .stderr(std::fs::OpenOptions::new().create(true).append(true).open(data_dir.join("agent-stderr.log"))?)
            .spawn()?;
        let mut stdout = BufReader::new(child.stdout.take().context("stdout")?);
        let (mut url, mut control) = (String::new(), String::new());
        for _ in 0..3 {
            let mut line = String::new();
            stdout.read_line(&mut line)?;
            if let Some(u) = line.trim().strip_prefix("till-agent listening on ") {
                url = u.to_string();
            }
            if let Some(c) = line.trim().strip_prefix("sandbox control API:") {
                control = c.trim().to_string();
            }
        }
        if url.is_empty() || control.is_empty() {
            bail!("unexpected output of till-agent run --sandbox");
        }
        Ok(SandboxAgent { child, url, control, _stdout: stdout })
    }

    /// Health once the agent is up, read with the POS token (which shows the device ID in full).
    async fn ready(&self, http: &reqwest::Client, token: &str) -> Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(format!("{}/api/agent/health", self.url)).bearer_auth(token).send().await {
                if let Ok(v) = r.json::<Value>().await {
                    if v["status"] == "ok" && v["socketConnected"] == true {
                        return Ok(v);
                    }
                }
            }
            if Instant::now() > deadline {
                bail!("sandbox agent not ready");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SandboxAgent {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn data_args(data_dir: &std::path::Path) -> Vec<String> {
    vec![
        "--config".into(),
        data_dir.join("config.toml").display().to_string(),
        "--data-dir".into(),
        data_dir.display().to_string(),
    ]
}

fn token_of(data_dir: &std::path::Path) -> Result<String> {
    let out = Command::new(bin_path("till-agent")?).arg("token").args(data_args(data_dir)).output()?;
    if !out.status.success() {
        bail!("till-agent token failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// `till-agent token` works before the first run and for a sandbox agent; `run --sandbox` keeps
/// its device and its sandbox world across a kill, so `/last` after the restart answers from the
/// journal and the payment can still be paid and refunded with the same token.
#[tokio::test]
async fn the_sandbox_agent_keeps_its_token_device_and_payments_across_restarts() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let token = token_of(dir.path())?;
    assert_eq!(token.len(), 64, "a token exists before the first run: {token:?}");

    let mut agent = SandboxAgent::spawn(dir.path())?;
    let health = agent.ready(&http, &token).await?;
    let device = health["deviceId"].as_str().context("device")?.to_string();
    assert_eq!(token_of(dir.path())?, token, "the sandbox agent uses the data directory's token");
    let created: Value =
        http.post(format!("{}/api/transactions/init", agent.url)).json(&init_body("SR-1", 1200)).send().await?.json().await?;
    let number = created["TransactionNumber"].as_str().context("number")?.to_string();

    agent.kill9();
    let agent = SandboxAgent::spawn(dir.path())?;
    let health = agent.ready(&http, &token).await?;
    assert_eq!(health["deviceId"], device.as_str(), "the same sandbox device after a restart");
    let r = http.get(format!("{}/api/transactions/last", agent.url)).send().await?;
    assert_eq!(r.status().as_u16(), 200);
    let last: Value = r.json().await?;
    assert_eq!(last["TransactionNumber"], number.as_str(), "{last}");
    assert_eq!(last["status"], 0);

    // The restored sandbox still has the payment: the customer pays, the POS refunds.
    let paid = http
        .post(format!("{}/transactions/{number}/pay", agent.control))
        .json(&json!({ "card": "4111111111111111" }))
        .send()
        .await?;
    assert!(paid.status().is_success(), "{}", paid.text().await?);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let v: Value = http.get(format!("{}/api/agent/transactions/{number}", agent.url)).send().await?.json().await?;
        if v["status"] == 5 {
            break;
        }
        if Instant::now() > deadline {
            bail!("never approved: {v}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = http
        .post(format!("{}/api/transactions/refund", agent.url))
        .bearer_auth(&token)
        .json(&json!({ "transactionNumber": number }))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await?);
    Ok(())
}
