//! Receipts on a thermal printer, end to end: the real agent binary, the sandbox, and a fake
//! ESC/POS printer on a loopback port (and a FIFO standing for a device file). The tests decode
//! what the printer received and compare it with the receipt the agent serves as JSON.

use anyhow::{bail, Result};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use till_printer::decode::Paper;
use till_printer::Align;
use till_tests::printer::{FakePrinter, FifoPrinter, Mode};
use till_tests::{pay, Env};


fn config(url: &str) -> String {
    format!("http_timeout_secs = 2\npoll_interval_secs = 1\n[printer]\nurl = \"{url}\"\ncolumns = 42\ncode_pages = [\"wpc1252\"]\n")
}

/// Waits until `pred` holds on the printed papers.
async fn papers_until(printer: &FakePrinter, secs: u64, pred: impl Fn(&[Paper]) -> bool) -> Result<Vec<Paper>> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let papers = printer.papers();
        if pred(&papers) {
            return Ok(papers);
        }
        if Instant::now() > deadline {
            bail!("printer never got there; printed so far:\n{:#?}", papers.iter().map(Paper::text).collect::<Vec<_>>());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Complete receipts (ending in a cut) that carry `number`.
fn receipts_of<'a>(papers: &'a [Paper], number: &str) -> Vec<&'a Paper> {
    // The 56-character number may be wrapped over two lines: match on its first 20 characters.
    papers.iter().filter(|p| p.cut && p.text().replace('\n', "").contains(&number[..20])).collect()
}

async fn post_auth(env: &Env, path: &str, token: &str, body: Value, key: Option<&str>) -> Result<(u16, Value)> {
    let mut r = env.http.post(env.url(path)).bearer_auth(token).json(&body);
    if let Some(k) = key {
        r = r.header("Idempotency-Key", k);
    }
    let r = r.send().await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

/// A paid EUR cart: a line with VAT, a discount and an add-on, and a plain line (€9.90).
async fn paid_cart(env: &Env, order: &str) -> Result<String> {
    let mut body = till_tests::init_body(order, 990);
    body["currency"] = json!("EUR");
    body["products"] = json!([
        { "name": "Café crème", "quantity": 2, "amount": 300, "vat": 50, "discount": 20,
          "subProducts": [ { "name": "Oat milk", "quantity": 1, "amount": 40 } ] },
        { "name": "Croissant au beurre", "quantity": 1, "amount": 250 }
    ]);
    let (status, created) = env.post("/api/transactions/init", body).await?;
    assert_eq!(status, 200, "{created}");
    let number = created["TransactionNumber"].as_str().unwrap_or_default().to_string();
    env.control(&format!("/transactions/{number}/pay"), json!({ "card": "4111111111111111" })).await?;
    env.eventually(&format!("/api/agent/transactions/{number}"), 15, |v| v["status"] == 5).await?;
    Ok(number)
}

#[tokio::test]
async fn approval_prints_the_receipt_and_the_pos_reprints_it() -> Result<()> {
    let printer = FakePrinter::start()?;
    let env = Env::start_with_config(&config(&printer.url)).await?;
    let number = paid_cart(&env, "PRINT-1").await?;

    // Printed on approval, once: the customer's copy.
    let papers = papers_until(&printer, 20, |p| receipts_of(p, &number).len() == 1).await?;
    let paper = receipts_of(&papers, &number)[0].clone();
    let (_, receipt) = env.get(&format!("/api/agent/transactions/{number}/receipt.json")).await?;
    let text = paper.text();
    assert!(text.contains("CUSTOMER COPY"), "{text}");
    let merchant = receipt["merchant"]["name"].as_str().unwrap_or_default();
    let title = paper.lines.iter().find(|l| l.text.contains(merchant)).expect("merchant name printed");
    assert_eq!((title.align, title.bold, title.double), (Align::Center, true, true));
    for needle in ["€9.90", "Café crème", "2 × €3.00", "VAT €1.00", "Discount -€0.40", "+ Oat milk", "Croissant au beurre"] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
    assert!(text.contains(receipt["status"].as_str().unwrap_or("?")), "{text}");
    if let Some(card) = receipt["approval"]["cardMask"].as_str() {
        assert!(text.contains(card), "card {card} in {text}");
    }
    assert!(!text.contains("4111111111111111"), "a full card number reached paper");
    assert_eq!(paper.qr, receipt["qrData"].as_str().map(|q| vec![q.to_string()]).unwrap_or_default(), "QR data");
    for line in &paper.lines {
        assert!(line.text.chars().count() <= if line.double { 21 } else { 42 }, "wider than the paper: {:?}", line.text);
    }
    let total = paper.lines.iter().find(|l| l.text.starts_with("TOTAL")).expect("TOTAL line");
    assert!(total.bold && total.double, "{total:?}");

    // A refund prints the customer's receipt again, with the refund on it.
    let token = env.token()?;
    let (status, body) = till_tests::refund(&env, &token, "refund-1", json!({ "transactionNumber": number, "isPartial": true, "refundAmount": 1.5 })).await?;
    assert!(status == 200 || status == 202, "{status} {body}");
    let papers = papers_until(&printer, 20, |p| receipts_of(p, &number).len() == 2).await?;
    let refund_paper = receipts_of(&papers, &number)[1].clone();
    assert!(refund_paper.text().contains("-€1.50") && refund_paper.text().contains("Net after refunds"), "{}", refund_paper.text());

    // The POS reprints the merchant's copy; bad input is refused naming the field.
    let (status, body) = post_auth(&env, &format!("/api/agent/transactions/{number}/print"), &token, json!({ "copy": "both" }), None).await?;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["invalid_parameters"][0]["parameter"], "copy");
    let (status, _) = env.post(&format!("/api/agent/transactions/{number}/print"), json!({ "copy": "merchant" })).await?;
    assert_eq!(status, 401, "the POS token is required");
    let (status, _) = post_auth(&env, "/api/agent/transactions/nope/print", &token, json!({}), None).await?;
    assert_eq!(status, 404);
    let (status, body) =
        post_auth(&env, &format!("/api/agent/transactions/{number}/print"), &token, json!({ "copy": "merchant" }), Some("re-1")).await?;
    assert_eq!(status, 202, "{body}");
    // The same request retried (same Idempotency-Key) is the same job, not a second print.
    let (status, again) =
        post_auth(&env, &format!("/api/agent/transactions/{number}/print"), &token, json!({ "copy": "merchant" }), Some("re-1")).await?;
    assert_eq!((status, &again["job"]["id"]), (202, &body["job"]["id"]));
    let papers = papers_until(&printer, 20, |p| receipts_of(p, &number).len() == 3).await?;
    assert!(receipts_of(&papers, &number)[2].text().contains("MERCHANT COPY"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receipts_of(&printer.papers(), &number).len(), 3, "printed exactly once per request");

    // The cash drawer: POS token, sent at once, journaled.
    let (status, _) = env.post("/api/agent/drawer/open", json!({})).await?;
    assert_eq!(status, 401);
    let (status, body) = post_auth(&env, "/api/agent/drawer/open", &token, json!({}), None).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["opened"], true);
    let kicks = || {
        till_printer::decode::decode(&printer.recorded())
            .into_iter()
            .filter(|e| *e == till_printer::decode::Event::Drawer)
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while kicks() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(kicks(), 1);

    // The picture of the receipt with the refund: into docs/screenshots, next to the PDF one, with
    // UPDATE_SCREENSHOTS=1 (as the UI tests do), else among the test artifacts.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = if std::env::var("UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        root.join("docs/screenshots/receipt-escpos.png")
    } else {
        root.join("target/test-artifacts/receipt-escpos.png")
    };
    let bytes = printer.recorded();
    let cuts: Vec<usize> = bytes
        .windows(till_printer::CUT.len())
        .enumerate()
        .filter(|(_, w)| *w == till_printer::CUT)
        .map(|(i, _)| i + till_printer::CUT.len())
        .collect();
    till_tests::printer::render_png(&bytes[cuts[0]..cuts[1]], 42, &out)?;
    Ok(())
}

#[tokio::test]
async fn paper_out_and_a_printer_going_away_print_each_receipt_exactly_once() -> Result<()> {
    let printer = FakePrinter::start()?;
    printer.set_mode(Mode::PaperOut);
    let env = Env::start_with_config(&config(&printer.url)).await?;
    let a = pay(&env, "PAPER-A", 500).await?;
    let b = pay(&env, "PAPER-B", 700).await?;

    // Out of paper: nothing printed, both waiting, and health says so in words.
    let health = env
        .eventually("/api/agent/health", 20, |h| h["printer"]["state"] == "paper_out" && h["printer"]["waiting"] == 2)
        .await?;
    assert_eq!(health["printer"]["summary"], "printer: out of paper, 2 receipts waiting");
    assert!(printer.papers().is_empty());

    // Paper back, but the printer drops the connection in the middle of the first job…
    printer.set_mode(Mode::DropAfter(300));
    // …then works: every receipt comes out whole exactly once.
    let papers = papers_until(&printer, 40, |p| receipts_of(p, &a).len() == 1 && receipts_of(p, &b).len() == 1).await?;
    assert!(papers.iter().any(|p| !p.cut), "a job was cut short");
    // In order: the receipt asked for first comes out first, also after the printer was away.
    let complete: Vec<&Paper> = papers.iter().filter(|p| p.cut).collect();
    assert!(complete[0].text().contains("PAPER-A") && complete[1].text().contains("PAPER-B"));
    env.eventually("/api/agent/health", 20, |h| h["printer"]["waiting"] == 0 && h["printer"]["state"] == "ready").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let papers = printer.papers();
    assert_eq!(receipts_of(&papers, &a).len(), 1, "{:#?}", papers.iter().map(Paper::text).collect::<Vec<_>>());
    assert_eq!(receipts_of(&papers, &b).len(), 1);

    // A printer that refuses connections: receipts wait, then print once it is back.
    printer.set_mode(Mode::Refuse);
    let c = pay(&env, "PAPER-C", 900).await?;
    env.eventually("/api/agent/health", 20, |h| h["printer"]["state"] == "unreachable" && h["printer"]["waiting"] == 1).await?;
    printer.set_mode(Mode::Ready);
    papers_until(&printer, 40, |p| receipts_of(p, &c).len() == 1).await?;
    Ok(())
}

#[tokio::test]
async fn kill_9_between_the_intent_and_the_write() -> Result<()> {
    let printer = FakePrinter::start()?;
    let mut env = Env::start_with_config(&config(&printer.url)).await?;
    let number = pay(&env, "CRASH-1", 800).await?;
    papers_until(&printer, 20, |p| receipts_of(p, &number).len() == 1).await?;
    let merchant = |papers: &[Paper]| receipts_of(papers, &number).iter().filter(|p| p.text().contains("MERCHANT COPY")).count();

    // Killed after the printer was opened, before the job was claimed: nothing was written, and
    // the job prints once after the restart.
    env.restart_agent_with(&[("FAILPOINTS", "print::before_claim=return")]).await?;
    let token = env.token()?;
    let (status, body) = post_auth(&env, &format!("/api/agent/transactions/{number}/print"), &token, json!({ "copy": "merchant" }), None).await?;
    assert_eq!(status, 202, "{body}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while env.agent_alive() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!env.agent_alive(), "the failpoint did not fire");
    assert_eq!(merchant(&printer.papers()), 0);
    env.restart_agent().await?;
    papers_until(&printer, 20, |p| merchant(p) == 1).await?;
    // The printer has the bytes a moment before the agent journals "printed": wait for the journal.
    let job = body["job"]["id"].as_i64().unwrap_or_default();
    let find = move |state: &serde_json::Value| state["jobs"].as_array().and_then(|j| j.iter().find(|x| x["id"] == job).cloned()).unwrap_or_default();
    let state = env.eventually("/api/agent/printer", 10, |s| find(s)["state"] == "printed").await?;
    assert_eq!(find(&state)["state"], "printed", "{}", find(&state));

    // Killed after the bytes were written, before "printed" was journaled: the journal cannot
    // know, so the job is marked "may have printed" and is not printed a second time.
    env.restart_agent_with(&[("FAILPOINTS", "print::after_write=return")]).await?;
    let (status, body) = post_auth(&env, &format!("/api/agent/transactions/{number}/print"), &token, json!({ "copy": "merchant" }), None).await?;
    assert_eq!(status, 202, "{body}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while env.agent_alive() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!env.agent_alive(), "the failpoint did not fire");
    env.restart_agent().await?;
    let health = env.eventually("/api/agent/health", 10, |h| h["printer"]["mayHavePrinted"] == 1).await?;
    assert!(health["printer"]["summary"].as_str().unwrap_or_default().contains("1 may have printed"), "{health}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(merchant(&printer.papers()), 2, "written once before the crash, never again");
    Ok(())
}

#[tokio::test]
async fn settings_refuse_bad_printers_and_a_fifo_prints_the_test_page() -> Result<()> {
    let env = Env::start().await?;
    env.set_manager_pin("2468")?;
    let (status, body) = env.post("/api/agent/manager/login", json!({ "pin": "2468" })).await?;
    assert_eq!(status, 200, "{body}");
    let manager = body["token"].as_str().unwrap_or_default().to_string();
    let (_, before) = env.get("/api/agent/printer").await?;
    assert_eq!(before["status"]["configured"], false);

    // The POS token is not enough for Settings.
    let (status, _) = post_auth(&env, "/api/agent/printer/settings", &env.token()?, json!({ "url": "tcp://127.0.0.1:9" }), None).await?;
    assert_eq!(status, 401);

    // Nothing listens on a port that was just freed: unreachable.
    let free = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let regular = env.data_dir.path().join("not-a-printer.txt");
    std::fs::write(&regular, b"")?;
    for (body, field, words) in [
        (json!({ "url": format!("tcp://{free}") }), "url", "not reachable"),
        (json!({ "url": format!("file://{}", regular.display()) }), "url", "not a device file or a FIFO"),
        (json!({ "url": "lpt1:" }), "url", "must start with"),
        (json!({ "codePages": ["wpc1252", "klingon"] }), "codePages", "klingon"),
        (json!({ "columns": 40 }), "columns", "32, 42 or 48"),
    ] {
        let (status, answer) = post_auth(&env, "/api/agent/printer/settings", &manager, body.clone(), None).await?;
        assert_eq!(status, 400, "{body}: {answer}");
        let named = answer["invalid_parameters"].as_array().cloned().unwrap_or_default();
        assert!(
            named.iter().any(|p| p["parameter"] == field && p["reason"].as_str().unwrap_or_default().contains(words)),
            "{body}: {answer}"
        );
    }
    // Two bad fields at once: both named.
    let (status, answer) =
        post_auth(&env, "/api/agent/printer/settings", &manager, json!({ "url": "ftp://x", "columns": 7 }), None).await?;
    assert_eq!(status, 400);
    assert_eq!(answer["invalid_parameters"].as_array().map(Vec::len), Some(2), "{answer}");
    // …and nothing changed.
    let (_, after) = env.get("/api/agent/printer").await?;
    assert_eq!(after["settings"], before["settings"]);
    let (status, _) = post_auth(&env, "/api/agent/printer/test", &manager, json!({}), None).await?;
    assert_eq!(status, 503, "no printer yet");

    // A FIFO standing for /dev/usb/lp0: saved, then the test page comes out of it.
    let fifo = FifoPrinter::start(env.data_dir.path())?;
    let (status, saved) = post_auth(
        &env,
        "/api/agent/printer/settings",
        &manager,
        json!({ "url": fifo.url, "columns": 32, "codePages": ["wpc1252", "wpc1255"] }),
        None,
    )
    .await?;
    assert_eq!(status, 200, "{saved}");
    let (status, _) = post_auth(&env, "/api/agent/printer/test", &manager, json!({}), None).await?;
    assert_eq!(status, 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    let paper = loop {
        let papers = till_printer::decode::papers(&fifo.recorded());
        if let Some(p) = papers.into_iter().find(|p| p.cut) {
            break p;
        }
        if Instant::now() > deadline {
            bail!("no test page from the FIFO");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let text = paper.text();
    assert!(text.contains("Printer test") && text.contains("€ £ ₪ RUB"), "{text}");
    assert!(text.contains("José Núñez"), "{text}");
    assert_eq!(paper.qr.len(), 1);
    assert!(paper.lines.iter().any(|l| l.text == "Right" && l.align == Align::Right));
    // The saved settings are the ones in force.
    let (_, state) = env.get("/api/agent/printer").await?;
    assert_eq!(state["settings"]["columns"], 32);
    Ok(())
}
