//! The kill -9 harness (docs/RELIABILITY.md).
//!
//! Each iteration: (re)start the agent — sometimes with a failpoint armed at a step between the
//! journal and the network — run a random mix of payments and refunds from several concurrent POS
//! clients while the sandbox's autopilot pays, kill the agent with SIGKILL at a random moment (or
//! let the failpoint do it), restart it, let it recover, let the POS retry whatever it was not told
//! the outcome of (with the same order id / Idempotency-Key, as a POS should), and check:
//!
//! 1. at most one captured SensePass payment per order id;
//! 2. every refund the POS was told was accepted or queued is at SensePass exactly once, and no
//!    other refund is;
//! 3. no transaction refunded above its captured amount;
//! 4. every journal entry agrees with SensePass (status and refunded amount);
//! 5. `/api/transactions/last` is the newest journal entry with SensePass's status.
//!
//! `TILL_CRASH_ITERATIONS` (default 4 for CI) and `TILL_CRASH_SEED` control the run; the summary
//! line reports iterations, kill points and violations.

use anyhow::{bail, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use till_tests::{outbox_drained, Env};

const CONFIG: &str = "http_timeout_secs = 2\npoll_interval_secs = 1\n";
const SITES: [&str; 5] =
    ["payment::before_create", "payment::after_create", "outbox::before_send", "outbox::after_send", "status::before_apply"];

#[derive(Debug, Clone, PartialEq)]
enum RefundOutcome {
    Accepted,
    Queued,
    Refused,
    Unknown,
}

#[derive(Debug, Clone)]
struct RefundAsk {
    number: String,
    amount: i64,
    outcome: RefundOutcome,
}

/// What the simulated POS clients were told.
#[derive(Default)]
struct Ledger {
    /// Order ids sent, and whether the outcome stayed unknown.
    orders: BTreeMap<String, (i64, bool)>,
    /// Approved payments the POS knows of: number → amount.
    approved: BTreeMap<String, i64>,
    /// Refunds by Idempotency-Key.
    refunds: BTreeMap<String, (Value, RefundAsk)>,
}

async fn pos_client(
    http: reqwest::Client,
    base: String,
    token: String,
    ledger: Arc<Mutex<Ledger>>,
    tag: String,
    seed: u64,
    deadline: Instant,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut n = 0;
    while Instant::now() < deadline {
        n += 1;
        let approved: Vec<(String, i64)> = {
            let l = ledger.lock().unwrap_or_else(|e| e.into_inner());
            l.approved.iter().map(|(k, v)| (k.clone(), *v)).collect()
        };
        if approved.is_empty() || rng.gen_bool(0.55) {
            let order = format!("{tag}-{n}");
            let amount = rng.gen_range(100..5000);
            ledger.lock().unwrap_or_else(|e| e.into_inner()).orders.insert(order.clone(), (amount, true));
            let body = json!({ "amount": amount, "currency": "USD", "posData": { "orderId": order } });
            let r = http.post(format!("{base}/api/transactions/init/sync")).json(&body).timeout(Duration::from_secs(8)).send().await;
            let answer = match r {
                Ok(r) => Some((r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))),
                Err(_) => None,
            };
            let mut l = ledger.lock().unwrap_or_else(|e| e.into_inner());
            match answer {
                Some((200, v)) => {
                    l.orders.insert(order, (amount, false));
                    if v["status"] == 5 {
                        if let Some(num) = v["TransactionNumber"].as_str() {
                            l.approved.insert(num.to_string(), amount);
                        }
                    }
                }
                Some((409 | 400 | 503, _)) => {
                    l.orders.insert(order, (amount, false));
                }
                _ => {} // connection lost or 504: outcome unknown, retried after recovery
            }
        } else {
            let (number, amount) = approved[rng.gen_range(0..approved.len())].clone();
            let part = rng.gen_range(1..=(amount / 3).max(1));
            let key = format!("{tag}-r{n}");
            let body = json!({ "transactionNumber": number, "isPartial": true, "refundAmount": part, "isCent": true });
            let outcome = send_refund(&http, &base, &token, &key, &body).await;
            ledger
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .refunds
                .insert(key, (body, RefundAsk { number, amount: part, outcome }));
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..150))).await;
    }
}

async fn send_refund(http: &reqwest::Client, base: &str, token: &str, key: &str, body: &Value) -> RefundOutcome {
    let r = http
        .post(format!("{base}/api/transactions/refund"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .timeout(Duration::from_secs(8))
        .send()
        .await;
    match r {
        Ok(r) => {
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            match status {
                200 if v["result"] == "Approved" || v["state"] == "delivered" => RefundOutcome::Accepted,
                200 => RefundOutcome::Refused,
                202 => RefundOutcome::Queued,
                400..=499 => RefundOutcome::Refused,
                _ => RefundOutcome::Unknown,
            }
        }
        Err(_) => RefundOutcome::Unknown,
    }
}

#[tokio::test]
async fn kill9_harness() -> Result<()> {
    let iterations: usize = std::env::var("TILL_CRASH_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let seed: u64 = std::env::var("TILL_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(rand::random);
    println!("crash harness: seed {seed}, {iterations} iterations");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut env = Env::start_with_config(CONFIG).await?;
    env.sandbox.set_autopilot(Some((150, "4111111111111111"))).map_err(|e| anyhow::anyhow!("{e}"))?;
    let token = env.token()?;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut kills: BTreeMap<String, usize> = BTreeMap::new();
    let started = Instant::now();
    let mut verified = Verified::new();

    for it in 0..iterations {
        // 1. Start, maybe with a failpoint armed.
        let site = if rng.gen_bool(0.5) { Some(SITES[rng.gen_range(0..SITES.len())]) } else { None };
        match site {
            Some(s) => env.restart_agent_with(&[("FAILPOINTS", &format!("{s}=25%return"))]).await?,
            None => env.restart_agent().await?,
        }
        // 2. Load from three POS clients; a kill at a random moment.
        let run_for = Duration::from_millis(rng.gen_range(300..2000));
        let deadline = Instant::now() + run_for;
        let mut clients = Vec::new();
        for c in 0..3 {
            clients.push(tokio::spawn(pos_client(
                env.http.clone(),
                env.agent.url.clone(),
                token.clone(),
                ledger.clone(),
                format!("H{it}c{c}"),
                rng.gen(),
                deadline,
            )));
        }
        tokio::time::sleep(run_for).await;
        let killed_by_failpoint = !env.agent_alive();
        env.agent.kill9();
        *kills.entry(if killed_by_failpoint { site.unwrap_or("?").to_string() } else { "random moment".into() }).or_default() += 1;
        for c in clients {
            let _ = c.await;
        }
        // 3. Restart clean and recover; the POS retries what it does not know.
        env.restart_agent().await?;
        let settled: Result<()> = async {
            pos_follow_up(&env, &token, &ledger).await?;
            outbox_drained(&env, 120).await?;
            env.eventually("/api/agent/health", 120, |h| h["openTransactions"] == 0 && h["queuedOperations"] == 0).await?;
            // 4. The invariants.
            check(&env, &ledger, &mut verified).await
        }
        .await;
        if let Err(e) = settled {
            // The agents' own account of the failing iteration, for whoever investigates.
            let log = std::fs::read_to_string(&env.agent.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(400).collect();
            eprintln!("crash harness: last agent log lines:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            return Err(anyhow::anyhow!("iteration {it} (seed {seed}): {e}"));
        }
        if (it + 1) % 25 == 0 {
            println!("crash harness: {} iterations done in {:.0} s, kills {kills:?}, violations: 0", it + 1, started.elapsed().as_secs_f64());
        }
    }
    let l = ledger.lock().unwrap_or_else(|e| e.into_inner());
    println!(
        "crash harness: {iterations} iterations in {:.0} s, {} orders, {} refunds asked, kills {:?}, violations: 0",
        started.elapsed().as_secs_f64(),
        l.orders.len(),
        l.refunds.len(),
        kills
    );
    Ok(())
}

/// After a restart: every refund with an unknown outcome is asked again with its key until the
/// answer is definite; every order with an unknown outcome is asked again (async init).
async fn pos_follow_up(env: &Env, token: &str, ledger: &Arc<Mutex<Ledger>>) -> Result<()> {
    let unknown_refunds: Vec<(String, Value)> = {
        let l = ledger.lock().unwrap_or_else(|e| e.into_inner());
        l.refunds.iter().filter(|(_, (_, a))| a.outcome == RefundOutcome::Unknown).map(|(k, (b, _))| (k.clone(), b.clone())).collect()
    };
    for (key, body) in unknown_refunds {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let outcome = send_refund(&env.http, &env.agent.url, token, &key, &body).await;
            if outcome != RefundOutcome::Unknown {
                if let Some(entry) = ledger.lock().unwrap_or_else(|e| e.into_inner()).refunds.get_mut(&key) {
                    entry.1.outcome = outcome;
                }
                break;
            }
            if Instant::now() > deadline {
                bail!("refund {key} never got a definite answer");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let unknown_orders: Vec<(String, i64)> = {
        let l = ledger.lock().unwrap_or_else(|e| e.into_inner());
        l.orders.iter().filter(|(_, (_, unknown))| *unknown).map(|(k, (a, _))| (k.clone(), *a)).collect()
    };
    for (order, amount) in unknown_orders {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let body = json!({ "amount": amount, "currency": "USD", "posData": { "orderId": order } });
            let (status, v) = env.post("/api/transactions/init", body).await?;
            if status == 200 {
                if let Some(num) = v["TransactionNumber"].as_str().filter(|n| !n.is_empty()) {
                    // Wait for it to end so the next retry is not busy.
                    let done = env.eventually(&format!("/api/agent/transactions/{num}"), 30, |t| t["status"].as_u64().map(|s| ![0, 1, 2, 3, 4, 10].contains(&s)).unwrap_or(false)).await?;
                    let mut l = ledger.lock().unwrap_or_else(|e| e.into_inner());
                    l.orders.insert(order.clone(), (amount, false));
                    if done["status"] == 5 || done["status"] == 13 || done["status"] == 11 {
                        l.approved.insert(num.to_string(), amount);
                    }
                    break;
                }
            }
            if Instant::now() > deadline {
                bail!("order {order} never settled: {status} {v}");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    Ok(())
}

/// Journal entries already compared with SensePass: number → (the journal's `updatedAt`,
/// SensePass's refunded amount) at that comparison. An entry is compared in detail again only
/// when either has changed, so that a check stays one pass over the journal's list instead of a
/// detail read per payment ever made (which made long runs quadratic).
type Verified = HashMap<String, (Value, Value)>;

async fn check(env: &Env, ledger: &Arc<Mutex<Ledger>>, verified: &mut Verified) -> Result<()> {
    let state = env.sandbox_state().await?;
    let txs = state["transactions"].as_array().cloned().unwrap_or_default();
    let by_number: HashMap<String, Value> =
        txs.iter().filter_map(|t| t["TransactionNumber"].as_str().map(|n| (n.to_string(), t.clone()))).collect();
    // 1. At most one captured payment per order.
    let mut captured: HashMap<String, usize> = HashMap::new();
    for t in &txs {
        if [5, 11, 12, 13].contains(&t["status"].as_u64().unwrap_or(0)) {
            if let Some(o) = t["posData"]["orderId"].as_str() {
                *captured.entry(o.to_string()).or_default() += 1;
            }
        }
    }
    if let Some((o, n)) = captured.iter().find(|(_, n)| **n > 1) {
        bail!("order {o} captured {n} times");
    }
    // 2 and 3. Refunds exactly once; never above captured.
    let l = ledger.lock().unwrap_or_else(|e| e.into_inner()).refunds.clone();
    let mut promised: HashMap<String, (usize, i64)> = HashMap::new();
    for (_, ask) in l.values() {
        match ask.outcome {
            RefundOutcome::Accepted | RefundOutcome::Queued => {
                let e = promised.entry(ask.number.clone()).or_default();
                e.0 += 1;
                e.1 += ask.amount;
            }
            RefundOutcome::Unknown => bail!("a refund was left without a definite answer"),
            RefundOutcome::Refused => {}
        }
    }
    for (number, t) in &by_number {
        let refunds = t["_sandbox"]["refunds"].as_array().map(Vec::len).unwrap_or(0);
        let refunded = t["_sandbox"]["refundedMinor"].as_i64().unwrap_or(0);
        let (count, sum) = promised.get(number).copied().unwrap_or((0, 0));
        if refunds != count || refunded != sum {
            bail!("{number}: SensePass has {refunds} refunds / {refunded}, the POS was promised {count} / {sum}");
        }
        if refunded > t["_sandbox"]["amountMinor"].as_i64().unwrap_or(0) {
            bail!("{number}: refunded {refunded} above captured");
        }
    }
    // 4. Journal agrees with SensePass.
    let mut offset = 0;
    let mut newest: Option<Value> = None;
    loop {
        let (_, page) = env.get(&format!("/api/agent/transactions?limit=500&offset={offset}")).await?;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if offset == 0 {
            newest = items.first().cloned();
        }
        for item in &items {
            let Some(number) = item["transactionNumber"].as_str() else { continue };
            let truth = by_number.get(number).ok_or_else(|| anyhow::anyhow!("journal has {number}, SensePass does not"))?;
            if item["status"] != truth["status"] {
                bail!("{number}: journal status {} but SensePass {}", item["status"], truth["status"]);
            }
            let seen = (item["updatedAt"].clone(), truth["_sandbox"]["refundedMinor"].clone());
            if verified.get(number) == Some(&seen) {
                continue;
            }
            let (_, detail) = env.get(&format!("/api/agent/transactions/{number}")).await?;
            if detail["refundedMinor"] != truth["_sandbox"]["refundedMinor"] {
                bail!("{number}: journal refunded {} but SensePass {}", detail["refundedMinor"], truth["_sandbox"]["refundedMinor"]);
            }
            verified.insert(number.to_string(), seen);
        }
        if items.len() < 500 {
            break;
        }
        offset += 500;
    }
    // 5. /last is truthful.
    if let Some(newest) = newest {
        let (_, last) = env.get("/api/transactions/last").await?;
        let number = newest["transactionNumber"].as_str().unwrap_or_default();
        if !number.is_empty() {
            if last["TransactionNumber"] != number {
                bail!("/last is {} but the newest journal entry is {number}", last["TransactionNumber"]);
            }
            if last["status"] != by_number.get(number).map(|t| t["status"].clone()).unwrap_or(Value::Null) {
                bail!("/last status {} disagrees with SensePass", last["status"]);
            }
        }
    }
    Ok(())
}
