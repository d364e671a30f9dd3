//! The endpoints behind the cashier screen and manager console: QR, receipts, manager PIN and
//! sessions, summary, CSV, settings and pairing — through the real binary.

use anyhow::Result;
use serde_json::{json, Value};
use till_tests::{init_body, Env};

async fn paid(env: &Env, order: &str, amount: i64, currency: &str) -> Result<String> {
    let mut body = init_body(order, amount);
    body["currency"] = json!(currency);
    body["products"] = json!([
        { "name": "Café crème", "quantity": 2, "amount": amount / 4, "vat": 0 },
        { "name": "Croissant au beurre", "quantity": 1, "amount": amount - 2 * (amount / 4) }
    ]);
    let (status, created) = env.post("/api/transactions/init", body).await?;
    assert_eq!(status, 200, "{created}");
    let number = created["TransactionNumber"].as_str().unwrap_or_default().to_string();
    env.control(&format!("/transactions/{number}/pay"), json!({ "card": "4111111111111111" })).await?;
    env.eventually(&format!("/api/agent/transactions/{number}"), 10, |v| v["status"] == 5).await?;
    Ok(number)
}

async fn login(env: &Env, pin: &str) -> Result<String> {
    let (status, body) = env.post("/api/agent/manager/login", json!({ "pin": pin })).await?;
    assert_eq!(status, 200, "{body}");
    Ok(body["token"].as_str().unwrap_or_default().to_string())
}

#[tokio::test]
async fn manager_pin_sessions_and_manager_only_endpoints() -> Result<()> {
    let env = Env::start().await?;
    assert_eq!(env.get("/api/agent/manager").await?.1["pinSet"], false);
    let (status, _) = env.post("/api/agent/manager/pin", json!({ "pin": "12" })).await?;
    assert_eq!(status, 400, "too short");
    // The first PIN is set on the till, not through the page.
    let (status, _) = env.post("/api/agent/manager/pin", json!({ "pin": "2468" })).await?;
    assert_eq!(status, 409);
    env.set_manager_pin("2468")?;
    assert_eq!(env.get("/api/agent/manager").await?.1["pinSet"], true);
    // Changing it needs the current PIN.
    let (status, _) = env.post("/api/agent/manager/pin", json!({ "pin": "1357" })).await?;
    assert_eq!(status, 401);
    let (status, _) = env.post("/api/agent/manager/login", json!({ "pin": "0000" })).await?;
    assert_eq!(status, 401);
    let token = login(&env, "2468").await?;

    // Settings need a manager session; the POS token is not enough.
    let pos = env.token()?;
    let r = env.http.get(env.url("/api/agent/settings")).bearer_auth(&pos).send().await?;
    assert_eq!(r.status().as_u16(), 401);
    let r: Value = env.http.get(env.url("/api/agent/settings")).bearer_auth(&token).send().await?.json().await?;
    assert_eq!(r["posToken"], pos.as_str());

    // A manager session may refund.
    let number = paid(&env, "MG-1", 1000, "EUR").await?;
    let r: Value = env
        .http
        .post(env.url("/api/transactions/refund"))
        .bearer_auth(&token)
        .json(&json!({ "transactionNumber": number, "isPartial": true, "refundAmount": 2.5 }))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(r["result"], "Approved", "{r}");
    let detail = env.get(&format!("/api/agent/transactions/{number}")).await?.1;
    assert_eq!(detail["refundableMinor"], 750);
    Ok(())
}

#[tokio::test]
async fn receipt_pdf_qr_summary_and_csv() -> Result<()> {
    let env = Env::start().await?;
    let number = paid(&env, "RC-1", 1250, "EUR").await?;

    let r = env.http.get(env.url(&format!("/api/agent/transactions/{number}/receipt.pdf"))).send().await?;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    let pdf = r.bytes().await?;
    assert!(pdf.starts_with(b"%PDF"));
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("r.pdf");
    std::fs::write(&path, &pdf)?;
    let out = std::process::Command::new("pdftotext").args(["-layout"]).arg(&path).arg("-").output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Café crème"), "{text}");
    assert!(text.contains("€12.50"), "{text}");
    assert!(text.contains(&number[..12]), "{text}");

    let qr_url = env.get(&format!("/api/agent/transactions/{number}")).await?.1["transaction"]["transactionPage"]["qrURL"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let r = env.http.get(env.url("/api/agent/qr.svg")).query(&[("data", qr_url.as_str())]).send().await?;
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    assert!(r.text().await?.contains("<svg"));
    let (status, _) = env.get("/api/agent/qr.svg?data=").await?;
    assert_eq!(status, 400);

    let (_, summary) = env.get("/api/agent/summary").await?;
    let eur = summary["currencies"].as_array().and_then(|a| a.iter().find(|c| c["currency"] == "EUR")).cloned().unwrap_or_default();
    assert_eq!(eur["approvedMinor"], 1250, "{summary}");
    assert_eq!(eur["byStatus"]["approved"], 1);

    // The export is the manager's: no session, no CSV; the POS token is not one.
    let r = env.http.get(env.url("/api/agent/transactions.csv?status=approved")).send().await?;
    assert_eq!(r.status().as_u16(), 401);
    let r = env.http.get(env.url("/api/agent/transactions.csv")).bearer_auth(env.token()?).send().await?;
    assert_eq!(r.status().as_u16(), 401);
    env.set_manager_pin("2468")?;
    let manager = login(&env, "2468").await?;
    let csv = env.http.get(env.url("/api/agent/transactions.csv?status=approved")).bearer_auth(&manager).send().await?.text().await?;
    assert!(csv.starts_with("date,time,utc_offset,order_id,transaction_number,status,currency,amount"), "{csv}");
    assert!(csv.contains(&format!("RC-1,{number},approved,EUR,12.50,12.50")), "{csv}");
    Ok(())
}

/// The CSV a store's bookkeeping reads: the till's local time with its offset, every amount in
/// major units, charged, refunded and net, the card (last four only), method and auth code.
#[tokio::test]
async fn csv_has_bookkeeping_columns_in_local_time() -> Result<()> {
    let mut env = Env::start().await?;
    // India: +05:30 all year, so the offset and the shifted clock are unmistakable.
    env.restart_agent_with(&[("TZ", "Asia/Kolkata")]).await?;
    let number = paid(&env, "BK-1", 1250, "EUR").await?;
    let pos = env.token()?;
    let (status, body) = till_tests::refund(
        &env,
        &pos,
        "bk-refund",
        json!({ "transactionNumber": number, "isPartial": true, "refundAmount": 250, "isCent": true }),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    env.eventually(&format!("/api/agent/transactions/{number}"), 10, |v| v["statusKey"] == "partially_refunded").await?;
    let (status, declined) = env.post("/api/transactions/init", till_tests::init_body("BK-2", 700)).await?;
    assert_eq!(status, 200, "{declined}");
    let detail = env.get(&format!("/api/agent/transactions/{number}")).await?.1;

    env.set_manager_pin("2468")?;
    let manager = login(&env, "2468").await?;
    let csv = env.http.get(env.url("/api/agent/transactions.csv")).bearer_auth(&manager).send().await?.text().await?;
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    assert_eq!(
        header,
        [
            "date", "time", "utc_offset", "order_id", "transaction_number", "status", "currency", "amount", "charged",
            "refunded", "refund_queued", "net", "payment_method", "card", "auth_code", "confirmation", "approved_at",
            "committed_at", "failure", "product_sum_mismatch", "local_id"
        ]
    );
    let rows: Vec<std::collections::HashMap<&str, &str>> =
        lines.map(|l| header.iter().copied().zip(l.split(',')).collect()).collect();
    let paid_row = rows.iter().find(|r| r["order_id"] == "BK-1").expect("the paid row");
    assert_eq!(paid_row["utc_offset"], "UTC+05:30");
    let created = detail["createdAt"].as_str().unwrap_or_default();
    // createdAt is UTC (…THH:MM:SS…Z); the CSV's time is 5 h 30 min later.
    let hms: Vec<i64> = created[11..19].split(':').filter_map(|x| x.parse().ok()).collect();
    let local = (hms[0] * 3600 + hms[1] * 60 + hms[2] + 5 * 3600 + 1800).rem_euclid(86_400);
    assert_eq!(paid_row["time"], format!("{:02}:{:02}:{:02}", local / 3600, local / 60 % 60, local % 60), "{created}");
    assert_eq!(
        (paid_row["currency"], paid_row["amount"], paid_row["charged"], paid_row["refunded"], paid_row["refund_queued"], paid_row["net"]),
        ("EUR", "12.50", "12.50", "2.50", "0.00", "10.00")
    );
    assert_eq!(paid_row["status"], "partially_refunded");
    assert_eq!(paid_row["card"], "**** 1111");
    assert!(!paid_row["payment_method"].is_empty() && !paid_row["confirmation"].is_empty(), "{paid_row:?}");
    assert!(paid_row["approved_at"].ends_with("+05:30"), "{paid_row:?}");
    assert!(!csv.contains("4111111111111111"));
    let open_row = rows.iter().find(|r| r["order_id"] == "BK-2").expect("the open row");
    assert_eq!((open_row["amount"], open_row["charged"], open_row["net"], open_row["card"]), ("7.00", "0.00", "0.00", ""));
    Ok(())
}

#[tokio::test]
async fn ui_is_served_and_pairing_by_api() -> Result<()> {
    let env = Env::start().await?;
    let r = env.http.get(env.url("/")).send().await?;
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"].to_str()?.starts_with("text/html"));
    let (status, _) = env.get("/../Cargo.toml").await?;
    assert_eq!(status, 404);

    env.set_manager_pin("2468")?;
    let token = login(&env, "2468").await?;
    let unpair = env.http.delete(env.url("/api/agent/pairing")).bearer_auth(&token).send().await?;
    assert_eq!(unpair.status().as_u16(), 200);
    let (status, body) = env.get("/api/devices").await?;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error_type"], "not_paired");
    // Re-pair by creating a dynamic-QR device with the sandbox's API key.
    let r = env
        .http
        .post(env.url("/api/agent/pairing"))
        .bearer_auth(&token)
        .json(&json!({ "method": "create", "apiKey": env.sandbox.api_key(), "posName": "Till 2", "environment": "sandbox" }))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200);
    let (status, body) = env.get("/api/devices").await?;
    assert_eq!(status, 200);
    assert_ne!(body["deviceId"], env.device_id.as_str(), "a new device");
    let bad = env.http.post(env.url("/api/agent/pairing")).bearer_auth(&token).json(&json!({ "method": "pin" })).send().await?;
    assert_eq!(bad.status().as_u16(), 400);
    let names: Value = bad.json().await?;
    assert_eq!(names["invalid_parameters"].as_array().map(Vec::len), Some(2), "{names}");
    Ok(())
}
