//! A fuzzer of the local API: property-based (proptest strategies) over a corpus of the spec's
//! request bodies and every route, with mutations of paths (dot segments, repeated slashes,
//! backslashes, percent escapes, `http:` hosts, repeated `api/`), headers (Host, Origin,
//! Sec-Fetch-Site, Content-Type, Authorization) and bodies (huge, negative, too-precise and mistyped
//! numbers, card data, deep nesting, broken JSON), sent byte for byte to the real `till-agent`
//! binary paired with the sandbox.
//!
//! Each answer is checked as it comes (foreign Host/Origin/site → 403, never a 500, never a dropped
//! connection) and, at the end, the whole: no money moved (the sandbox refunded and credited
//! nothing, the approved payment's amount is unchanged), the credential never reached the trap
//! listener, the agent did not panic and still answers, and no card data reached the journal file.
//!
//! Runs for `FUZZ_SECS` seconds (default 40: a bounded run in every `cargo test`);
//! `scripts/fuzz.sh` runs it for longer. The figures are printed and written to
//! `target/fuzz/local-api.json` (docs/SECURITY.md quotes them). A coverage-guided fuzzer
//! (cargo-fuzz, libFuzzer) needs nightly Rust; this one runs on stable.

use anyhow::{Context, Result};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as PtConfig, RngAlgorithm, TestRng, TestRunner};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use till_tests::{pay, sandbox_tx, Env};

/// One generated request.
#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
}

/// What the fuzzer knows about the target, to fill path templates.
#[derive(Clone)]
struct Target {
    number: String,
    device: String,
    trap_port: u16,
    agent_host: String,
}

const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/transactions/init"),
    ("POST", "/api/transactions/init/sync"),
    ("GET", "/api/transactions/last"),
    ("POST", "/api/transactions/refund"),
    ("POST", "/api/transactions/credit"),
    ("POST", "/api/transactions/cancel/{n}"),
    ("POST", "/api/transactions/cancelByDeviceId/{d}"),
    ("POST", "/api/transactions/products/update"),
    ("GET", "/api/transactions/{n}"),
    ("PATCH", "/api/transactions/{n}"),
    ("POST", "/api/transactions/customer-input"),
    ("POST", "/api/transactions/customer-input/reset"),
    ("POST", "/api/transactions/pay"),
    ("POST", "/api/transactions/{n}/commit"),
    ("POST", "/api/transactions/{n}/readyForPayment"),
    ("POST", "/api/transactions"),
    ("POST", "/api/settlements/all"),
    ("GET", "/api/subscription/{n}"),
    ("PATCH", "/api/subscription/{n}"),
    ("POST", "/api/devices/match"),
    ("GET", "/api/devices"),
    ("GET", "/api/agent/health"),
    ("GET", "/api/agent/transactions"),
    ("GET", "/api/agent/transactions/{n}"),
    ("GET", "/api/agent/outbox"),
    ("GET", "/api/agent/openapi.json"),
    ("GET", "/api/agent/qr.svg?data=x"),
    ("GET", "/api/agent/transactions/{n}/receipt.pdf"),
    ("GET", "/api/agent/transactions.csv"),
    ("GET", "/api/agent/summary"),
    ("GET", "/api/agent/manager"),
    ("POST", "/api/agent/manager/pin"),
    ("POST", "/api/agent/manager/login"),
    ("POST", "/api/agent/manager/logout"),
    ("GET", "/api/agent/settings"),
    ("POST", "/api/agent/pairing"),
    ("DELETE", "/api/agent/pairing"),
    ("GET", "/"),
    ("GET", "/index.html"),
    ("GET", "/app.js"),
];

/// Bodies from the spec's examples (init, refund, credit, cart, customer input, pairing, PIN).
fn corpus() -> Vec<Value> {
    vec![
        json!({"amount": 1250, "isCent": true, "currency": "USD", "timeOut": 600, "posData": {"orderId": "F-1"}}),
        json!({"amount": "12.50", "isCent": false, "currency": "EUR", "products": [{"name": "Tea", "quantity": 2, "amount": 250, "vat": 50}]}),
        json!({"amount": 12.5, "currency": "GBP", "reason": "fuzz", "clientEmail": "a@b.c", "readyForPayment": false}),
        json!({"amount": 100, "isCent": true, "currency": "USD", "paymentDetails": {"creditCard": {"cardNumber": "4111111111111111", "cvv": "737", "expiration": "11/29", "socialID": "123456782"}}}),
        json!({"transactionNumber": "{n}"}),
        json!({"transactionNumber": "{n}", "isPartial": true, "refundAmount": 1.25}),
        json!({"transactionNumber": "{n}", "isPartial": true, "refundAmount": 125, "isCent": true}),
        json!({"token": "tok", "refundAmount": 5, "isCent": true, "currency": "USD"}),
        json!({"products": [{"name": "Cake", "quantity": 1, "amount": 300}], "amount": 300, "isCent": true, "currency": "USD", "timeout": "1000"}),
        json!({"deviceId": "{d}", "type": "phone", "message": "Enter phone"}),
        json!({"startDate": "2026-01-01T00:00:00Z", "endDate": "2026-12-31T00:00:00Z", "pagination": {"limit": 10}}),
        json!({"pin": "2468"}),
        json!({"pin": "2468", "currentPin": "1357"}),
        json!({"method": "create", "apiKey": "k", "posName": "x"}),
        json!({"amount": 1, "isCent": true, "currency": "USD", "readyForPayment": true}),
        json!({}),
    ]
}

fn fill(text: &str, t: &Target) -> String {
    text.replace("{n}", &t.number).replace("{d}", &t.device).replace("{trap}", &format!("127.0.0.1:{}", t.trap_port))
}

/// Path mutations: each turns a canonical path into another spelling.
fn mutate_path(path: &str, m: u8, pos: usize, t: &Target) -> String {
    let slashes: Vec<usize> = path.match_indices('/').map(|(i, _)| i).collect();
    let at = slashes.get(pos % slashes.len().max(1)).copied().unwrap_or(0);
    let (head, tail) = path.split_at(at);
    match m % 20 {
        0..=5 => path.to_string(),
        6 => format!("{head}/{tail}"),
        7 => format!("{head}/.{tail}"),
        8 => format!("{head}/%2e{tail}"),
        9 => format!("{head}/x/..{tail}"),
        10 => format!("{head}/%2E%2E{tail}"),
        11 => format!("{head}\\{}", tail.trim_start_matches('/')),
        12 => format!("{head}%2f{}", tail.trim_start_matches('/')),
        13 => path.replacen("/api/", "/api/api/", 1),
        14 => format!("/api/http:{}/steal", fill("{trap}", t)),
        15 => format!("/api/%5c%5c{}%5csteal", fill("{trap}", t)),
        16 => format!("{path}/"),
        17 => path.replace('r', "%72").replace('a', "%61"),
        18 => format!("{head}/..%2f..{tail}"),
        _ => path.to_uppercase(),
    }
}

fn mutate_body(body: &Value, m: u8, k: usize) -> Option<String> {
    let mut v = body.clone();
    let keys: Vec<String> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    let key = keys.get(k % keys.len().max(1)).cloned().unwrap_or_else(|| "amount".into());
    let set = |v: &mut Value, x: Value| {
        if let Some(o) = v.as_object_mut() {
            o.insert(key.clone(), x);
        }
    };
    match m % 16 {
        0..=3 => {}
        4 => return Some(format!("{{\"amount\": {}, \"isCent\": true, \"currency\": \"USD\"}}", i64::MAX)),
        5 => return Some("{\"amount\": 125.0000000000000000001, \"isCent\": true, \"currency\": \"USD\"}".into()),
        6 => set(&mut v, json!(-1)),
        7 => set(&mut v, json!(1e300)),
        8 => set(&mut v, json!("x".repeat(5000))),
        9 => set(&mut v, json!(null)),
        10 => set(&mut v, json!([[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]])),
        11 => return Some(v.to_string()[..v.to_string().len() / 2].to_string()),
        12 => return Some("[1,2,3]".into()),
        13 => return Some(format!("{}{}", "[".repeat(200), "]".repeat(200))),
        14 => set(&mut v, json!({"creditCard": {"cardNumber": "5555555555554444", "cvv": "9731"}})),
        _ => return None,
    }
    Some(v.to_string())
}

fn request_strategy(t: Target) -> impl Strategy<Value = Req> {
    let corpus = corpus();
    (
        0..ROUTES.len(),
        prop::sample::select(vec!["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS", "HEAD"]),
        any::<bool>(),
        (any::<u8>(), any::<usize>()),
        (0..corpus.len(), any::<u8>(), any::<usize>()),
        (0u8..6, 0u8..6, 0u8..6, 0u8..6, 0u8..4),
    )
        .prop_map(move |(route, other_method, keep_method, (pm, ppos), (bi, bm, bk), (host, origin, site, ctype, auth))| {
            let (method, template) = ROUTES[route];
            let method = if keep_method { method.to_string() } else { other_method.to_string() };
            let path = mutate_path(&fill(template, &t), pm, ppos, &t);
            let body_value: Value = serde_json::from_str(&fill(&corpus[bi].to_string(), &t)).unwrap_or(Value::Null);
            let body = if matches!(method.as_str(), "GET" | "HEAD" | "DELETE" | "OPTIONS") && bm % 3 != 0 {
                None
            } else {
                mutate_body(&body_value, bm, bk)
            };
            let mut headers = Vec::new();
            headers.push((
                "Host".to_string(),
                match host {
                    0..=2 => t.agent_host.clone(),
                    3 => "evil.example".into(),
                    4 => format!("localhost.evil.example:{}", t.agent_host.rsplit(':').next().unwrap_or("1")),
                    _ => "127.0.0.1.nip.io".into(),
                },
            ));
            match origin {
                0 | 1 => {}
                2 => headers.push(("Origin".into(), "https://evil.example".into())),
                3 => headers.push(("Origin".into(), "null".into())),
                4 => headers.push(("Origin".into(), format!("http://{}", t.agent_host))),
                _ => headers.push(("Origin".into(), "http://127.0.0.1:1".into())),
            }
            match site {
                0 | 1 => {}
                2 => headers.push(("Sec-Fetch-Site".into(), "cross-site".into())),
                3 => headers.push(("Sec-Fetch-Site".into(), "same-site".into())),
                4 => headers.push(("Sec-Fetch-Site".into(), "same-origin".into())),
                _ => headers.push(("Sec-Fetch-Site".into(), "none".into())),
            }
            if body.is_some() {
                headers.push((
                    "Content-Type".into(),
                    match ctype {
                        0..=2 => "application/json",
                        3 => "text/plain",
                        4 => "application/x-www-form-urlencoded",
                        _ => "application/json; charset=utf-8",
                    }
                    .into(),
                ));
            }
            match auth {
                0 | 1 => {}
                2 => headers.push(("Authorization".into(), "Bearer wrong".into())),
                _ => headers.push(("Authorization".into(), "Bearer ".into())),
            }
            Req { method, path, headers, body }
        })
}

/// What one request came to.
enum Outcome {
    Status(u16, String),
    /// No answer within the time allowed (sync payments and event streams hold on purpose).
    Timeout,
    /// The connection closed without a status line.
    Dropped,
}

async fn send(addr: &str, r: &Req) -> Outcome {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return Outcome::Dropped;
    };
    let mut text = format!("{} {} HTTP/1.1\r\nConnection: close\r\n", r.method, r.path);
    for (k, v) in &r.headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    match &r.body {
        Some(b) => text.push_str(&format!("Content-Length: {}\r\n\r\n{b}", b.len())),
        None => text.push_str("\r\n"),
    }
    if stream.write_all(text.as_bytes()).await.is_err() {
        return Outcome::Dropped;
    }
    let mut answer = Vec::new();
    match tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut answer)).await {
        Err(_) => {
            if answer.is_empty() {
                Outcome::Timeout
            } else {
                parse(&answer)
            }
        }
        Ok(_) => parse(&answer),
    }
}

fn parse(answer: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(answer);
    match text.split_whitespace().nth(1).and_then(|s| s.parse::<u16>().ok()) {
        Some(s) if text.starts_with("HTTP/1.1") => Outcome::Status(s, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()),
        _ => Outcome::Dropped,
    }
}

fn header<'a>(r: &'a Req, name: &str) -> Option<&'a str> {
    r.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_the_local_api() -> Result<()> {
    let secs: u64 = std::env::var("FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(40);
    let env = Env::start().await?;
    let number = pay(&env, "FZ-PAID", 5000).await?;
    let before = sandbox_tx(&env, &number).await?;
    // The attacker's host: any connection to it is a leak.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let trap_port = listener.local_addr()?.port();
    let leaks = Arc::new(Mutex::new(0u64));
    let counter = leaks.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            *counter.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        }
    });
    let agent_host = env.agent.url.trim_start_matches("http://").to_string();
    let target = Target { number: number.clone(), device: env.device_id.clone(), trap_port, agent_host: agent_host.clone() };
    let strategy = request_strategy(target);
    let seed: u64 = std::env::var("FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(PtConfig::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes));

    let mut stats: BTreeMap<&str, u64> = BTreeMap::new();
    let mut violations: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        let req = strategy.new_tree(&mut runner).map_err(|e| anyhow::anyhow!("{e}"))?.current();
        *stats.entry("tried").or_default() += 1;
        let foreign_host = !header(&req, "host").map(|h| h == agent_host).unwrap_or(false);
        let origin = header(&req, "origin");
        let own_origin = origin.map(|o| o == format!("http://{agent_host}")).unwrap_or(false);
        let foreign_origin = origin.is_some() && !own_origin;
        let cross = matches!(header(&req, "sec-fetch-site"), Some("cross-site") | Some("same-site")) && !own_origin;
        match send(&agent_host, &req).await {
            Outcome::Status(status, body) => {
                let class = match status {
                    200..=299 => "2xx",
                    300..=399 => "3xx",
                    400..=499 => "4xx",
                    _ => "5xx",
                };
                *stats.entry(class).or_default() += 1;
                if (200..300).contains(&status) {
                    *stats.entry("accepted").or_default() += 1;
                }
                // Refused: 403 from the guard, or 400 when the request line itself is malformed.
                if (foreign_host || foreign_origin || cross) && status < 400 {
                    violations.push(format!("{} {} {:?} → {status} (should be refused)", req.method, req.path, req.headers));
                }
                if status == 500 {
                    violations.push(format!("{} {} {:?} {:?} → 500 {body}", req.method, req.path, req.headers, req.body));
                }
            }
            Outcome::Timeout => {
                *stats.entry("held (no answer in 3 s)").or_default() += 1;
                let holds = req.path.contains("init/sync") || req.path.contains("events") || req.method == "HEAD";
                if !holds && (foreign_host || foreign_origin || cross) {
                    violations.push(format!("{} {} {:?}: no answer to a request that must be refused", req.method, req.path, req.headers));
                }
            }
            Outcome::Dropped => {
                *stats.entry("dropped").or_default() += 1;
                violations.push(format!("{} {} {:?} {:?}: connection dropped without an answer", req.method, req.path, req.headers, req.body));
            }
        }
        if violations.len() > 20 {
            break;
        }
    }

    // The whole: no money moved, no leak, no panic, card data not journaled, still answering.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = sandbox_tx(&env, &number).await?;
    let state = env.sandbox_state().await?;
    let refunded: i64 = state["transactions"].as_array().map(|a| a.iter().filter_map(|t| t["_sandbox"]["refundedMinor"].as_i64()).sum()).unwrap_or(0);
    if refunded != 0 {
        violations.push(format!("the sandbox refunded {refunded} minor units"));
    }
    if after["amount"] != before["amount"] || after["status"] != before["status"] {
        violations.push(format!("the paid payment changed: {before} → {after}"));
    }
    if state["credits"].as_array().map(|a| !a.is_empty()).unwrap_or(false) {
        violations.push(format!("the sandbox credited: {}", state["credits"]));
    }
    let leaked = *leaks.lock().unwrap_or_else(|e| e.into_inner());
    if leaked != 0 {
        violations.push(format!("{leaked} connections reached the attacker's listener"));
    }
    let log = std::fs::read_to_string(&env.agent.log).unwrap_or_default();
    let panics = log.matches("panicked").count() as u64;
    if panics != 0 {
        violations.push(format!("{panics} panics in the agent's log"));
    }
    let mut journal = Vec::new();
    for entry in std::fs::read_dir(env.data_dir.path())? {
        let p = entry?.path();
        if p.file_name().and_then(|n| n.to_str()).map(|n| n.starts_with("journal")).unwrap_or(false) {
            journal.extend(std::fs::read(&p)?);
        }
    }
    let journal = String::from_utf8_lossy(&journal);
    for secret in ["4111111111111111", "5555555555554444", "\"737\"", "\"9731\"", "123456782"] {
        if journal.contains(secret) {
            violations.push(format!("{secret} reached the journal file"));
        }
    }
    let (status, _) = env.get("/api/agent/health").await?;
    if status != 200 {
        violations.push(format!("health answers {status} after the run"));
    }
    stats.insert("panics", panics);
    stats.insert("leaks", leaked);
    stats.insert("seconds", secs);
    let figures = json!({ "seed": seed.to_string(), "stats": stats, "violations": violations });
    println!("local API fuzz: {figures}");
    let dir = till_tests::bin_path("till-agent")?.parent().and_then(|p| p.parent()).context("target dir")?.join("fuzz");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("local-api.json"), serde_json::to_string_pretty(&figures)?)?;
    assert!(violations.is_empty(), "violations (seed {seed}):\n{}", violations.join("\n"));
    Ok(())
}
