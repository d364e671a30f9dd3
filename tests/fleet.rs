//! The fleet server end to end: real `till-fleet`, real PostgreSQL (a throwaway cluster), real
//! `till-agent` processes against the SensePass sandbox.
//!
//! - three tills in two stores: payments and refunds reach PostgreSQL exactly once, through the
//!   fleet being down (tills keep selling), kill -9 of a till and of the fleet while batches are
//!   in flight, and a PostgreSQL restart; a checker compares every journal with PostgreSQL row by
//!   row;
//! - refusals: a till never enrolled, a revoked till, a till writing another till's rows, a
//!   replayed batch, a gap and a malformed batch are refused and change nothing.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::time::Duration;
use till_tests::fleet::{check_till, enrol, till_id, FleetProcess, ADMIN_TOKEN};
use till_tests::pg::Postgres;
use till_tests::{outbox_drained, pay, refund, Env};

/// Waits until every till's health says the fleet has all its changes.
async fn caught_up(envs: &[&Env], secs: u64) -> Result<()> {
    for env in envs {
        env.eventually("/api/agent/health", secs, |h| h["fleet"]["changesBehind"] == 0).await?;
    }
    Ok(())
}

fn count(pg: &Postgres, sql: &str) -> Result<i64> {
    Ok(pg.query("fleet", sql)?.first().and_then(|r| r.first()).context("no row")?.parse()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_tills_in_two_stores_reach_postgres_exactly_once_through_outages() -> Result<()> {
    let pg = Postgres::start()?;
    let db = pg.create_db("fleet")?;
    let logs = tempfile::tempdir()?;
    let mut fleet = FleetProcess::start(&db, 0, logs.path())?;
    let (a, b, c) = (Env::start().await?, Env::start().await?, Env::start().await?);
    enrol(&fleet, a.data_dir.path(), "North", "Till 1")?;
    enrol(&fleet, b.data_dir.path(), "North", "Till 2")?;
    enrol(&fleet, c.data_dir.path(), "South", "Till 1")?;
    let mut b = b;

    // Selling, and a refund queued and delivered at till A.
    let n1 = pay(&a, "A-1", 1000).await?;
    pay(&b, "B-1", 2000).await?;
    pay(&c, "C-1", 3000).await?;
    let token = a.token()?;
    let (status, body) = refund(&a, &token, "refund-A-1", json!({ "transactionNumber": n1, "isPartial": true, "refundAmount": 2.5 })).await?;
    assert_eq!(status, 200, "{body}");
    outbox_drained(&a, 30).await?;
    caught_up(&[&a, &b, &c], 30).await?;
    let health = a.get("/api/agent/health").await?.1;
    assert_eq!(health["fleet"]["summary"], "fleet: 0 changes behind");
    assert_eq!(health["fleet"]["store"], "North");

    // The fleet is down: tills keep selling and know how far behind they are.
    fleet.kill9();
    pay(&a, "A-2", 1100).await?;
    pay(&b, "B-2", 2100).await?;
    pay(&c, "C-2", 3100).await?;
    for env in [&a, &b, &c] {
        let h = env.get("/api/agent/health").await?.1;
        assert!(h["fleet"]["changesBehind"].as_i64().unwrap_or(0) > 0, "{h}");
    }
    fleet.restart()?;
    caught_up(&[&a, &b, &c], 60).await?;

    // kill -9 of a till right after a burst of sales (its batch in flight), then restarted.
    for i in 0..4 {
        pay(&b, &format!("B-burst-{i}"), 500 + i).await?;
    }
    b.restart_agent().await?;
    // kill -9 of the fleet while batches arrive, then restarted.
    let sales = async {
        for i in 0..3 {
            pay(&a, &format!("A-burst-{i}"), 700 + i).await?;
        }
        Ok::<_, anyhow::Error>(())
    };
    let killer = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        fleet.kill9();
        tokio::time::sleep(Duration::from_millis(500)).await;
        fleet.restart()
    };
    let (s, k) = tokio::join!(sales, killer);
    s?;
    k?;
    // PostgreSQL restarts under the fleet.
    pg.stop()?;
    pay(&c, "C-3", 3200).await?;
    pg.restart()?;
    caught_up(&[&a, &b, &c], 60).await?;

    // kill -9 mid-batch: the fleet has taken a batch, the till dies before recording the
    // acknowledgement; restarted, it sends the batch again and the fleet stores nothing twice.
    // The till may already die at its first batch after the start (changes made while starting);
    // otherwise a sale makes one.
    let _ = tokio::time::timeout(Duration::from_secs(15), b.restart_agent_with(&[("FAILPOINTS", "fleet::after_send=return")])).await;
    if b.agent_alive() {
        let _ = b.post("/api/transactions/init", till_tests::init_body("B-mid-batch", 900)).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while b.agent_alive() {
        if std::time::Instant::now() > deadline {
            bail!("the till did not stop at fleet::after_send");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.restart_agent().await?;
    caught_up(&[&a, &b, &c], 60).await?;

    // Row by row: every journal equals PostgreSQL for its till; nothing else is there.
    let mut total = 0;
    for env in [&a, &b, &c] {
        total += check_till(&pg, "fleet", env.data_dir.path())?;
    }
    let fleet_rows = count(&pg, "SELECT (SELECT count(*) FROM payments) + (SELECT count(*) FROM status_events) + (SELECT count(*) FROM operations)")?;
    assert_eq!(fleet_rows as usize, total, "PostgreSQL holds exactly the journals' rows");
    assert_eq!(count(&pg, "SELECT count(*) FROM payments WHERE order_id = 'A-1' AND status = 13")?, 1, "the partial refund replicated");
    assert_eq!(count(&pg, "SELECT count(*) FROM operations WHERE kind = 'refund' AND state = 'delivered'")?, 1);
    // The card's last four digits and the tender come through the provider's model, nothing more.
    assert_eq!(count(&pg, "SELECT count(*) FROM payments WHERE order_id = 'B-1' AND last_four = '1111' AND tender IS NOT NULL")?, 1);

    // The reports see it: day totals per store and till, search by order id.
    let http = reqwest::Client::new();
    let day: Value = http.get(format!("{}/api/v1/reports/day", fleet.url)).bearer_auth(ADMIN_TOKEN).send().await?.json().await?;
    let north: i64 = day.as_array().context("lines")?.iter().filter(|l| l["store"] == "North").map(|l| l["sales"].as_i64().unwrap_or(0)).sum();
    assert_eq!(north, 2 + 2 + 4 + 3, "North's sales today: {day}");
    let found: Value = http.get(format!("{}/api/v1/payments/search?order_id=C-3", fleet.url)).bearer_auth(ADMIN_TOKEN).send().await?.json().await?;
    assert_eq!(found[0]["store"], "South", "{found}");
    let tills: Value = http.get(format!("{}/api/v1/tills", fleet.url)).bearer_auth(ADMIN_TOKEN).send().await?.json().await?;
    assert_eq!(tills.as_array().map(Vec::len), Some(3));
    assert!(tills.as_array().context("tills")?.iter().all(|t| t["online"] == true), "{tills}");
    // Each till reports the version it runs and the update channel it follows.
    assert!(
        tills.as_array().context("tills")?.iter().all(|t| t["version"] == env!("CARGO_PKG_VERSION") && t["channel"] == "stable"),
        "{tills}"
    );
    // The checker bites: a lost row and a duplicated row are both caught.
    let till_b = till_id(b.data_dir.path())?;
    pg.query("fleet", &format!("DELETE FROM status_events WHERE till_id = '{till_b}' AND row_id = (SELECT min(row_id) FROM status_events WHERE till_id = '{till_b}')"))?;
    assert!(check_till(&pg, "fleet", b.data_dir.path()).is_err(), "a missing row must be noticed");
    let till_c = till_id(c.data_dir.path())?;
    pg.query("fleet", &format!("INSERT INTO operations SELECT till_id, row_id + 1000, store_id, seq, op_key, kind, payment_local_id, amount, state, attempts, last_error, created_at, updated_at, finished_at FROM operations WHERE till_id = '{till_c}' LIMIT 1"))?;
    pg.query("fleet", &format!("UPDATE payments SET amount = amount + 1 WHERE till_id = '{till_c}' AND order_id = 'C-1'"))?;
    assert!(check_till(&pg, "fleet", c.data_dir.path()).is_err(), "a changed row must be noticed");
    Ok(())
}

/// A batch body by hand, as a till would send it.
fn batch(till: &str, after: i64, through: i64, changes: Value) -> Value {
    json!({
        "till_id": till, "after": after, "through": through,
        "agent": { "version": "test", "queued_operations": 0, "changes_behind": 0 },
        "changes": changes,
    })
}

fn payment(seq: i64, row_id: i64, order: &str) -> Value {
    json!({ "seq": seq, "row_id": row_id, "row": {
        "table": "payment", "local_id": format!("L-{order}"), "provider": "sensepass", "number": null,
        "device_id": "D", "order_id": order, "amount": 1250, "currency": "USD", "phase": "created",
        "status": 5, "is_open": false, "setup": false, "tender": "Visa", "last_four": "1111",
        "created_at_ms": 1_764_460_800_000i64, "updated_at_ms": 1_764_460_800_000i64, "final_at_ms": null,
        "committed_at_ms": null, "failure": null
    }})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_revoked_tills_foreign_rows_replays_and_gaps_are_refused_and_change_nothing() -> Result<()> {
    let pg = Postgres::start()?;
    let db = pg.create_db("fleet")?;
    let logs = tempfile::tempdir()?;
    let fleet = FleetProcess::start(&db, 0, logs.path())?;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", fleet.url);
    let enrol_one = |store: &'static str, name: &'static str| {
        let code = fleet.admin(&["enrolment-code", "--store", store]);
        let http = http.clone();
        let url = url("/api/v1/enrol");
        async move {
            let r = http.post(url).json(&json!({ "code": code?, "till_name": name, "version": "test" })).send().await?;
            if !r.status().is_success() {
                bail!("enrol: {}", r.text().await?);
            }
            Ok::<Value, anyhow::Error>(r.json().await?)
        }
    };
    let t1 = enrol_one("North", "Till 1").await?;
    let t2 = enrol_one("North", "Till 2").await?;
    let (id1, id2) = (t1["till_id"].as_str().context("id")?.to_string(), t2["till_id"].as_str().context("id")?.to_string());
    let cred1 = format!("{id1}.{}", t1["secret"].as_str().context("secret")?);
    let cred2 = format!("{id2}.{}", t2["secret"].as_str().context("secret")?);
    let post = |cred: String, body: Value| {
        let http = http.clone();
        let url = url("/api/v1/replication/batch");
        async move {
            let r = http.post(url).bearer_auth(cred).json(&body).send().await?;
            let status = r.status().as_u16();
            Ok::<(u16, Value), anyhow::Error>((status, r.json().await.unwrap_or(Value::Null)))
        }
    };
    let snapshot = || pg.query("fleet", "SELECT till_id, row_id, order_id, seq FROM payments ORDER BY 1, 2").map(|v| format!("{v:?}"));
    let cursor = |id: &str| count(&pg, &format!("SELECT cursor FROM tills WHERE id = '{id}'"));

    // The code is one-time.
    let code = fleet.admin(&["enrolment-code", "--store", "South"])?;
    let r = http.post(url("/api/v1/enrol")).json(&json!({ "code": code, "till_name": "X", "version": "t" })).send().await?;
    assert_eq!(r.status(), 200);
    let r = http.post(url("/api/v1/enrol")).json(&json!({ "code": code, "till_name": "Y", "version": "t" })).send().await?;
    assert_eq!(r.status(), 401, "a used code is refused");

    // Till 1 applies a batch.
    let (s, ack) = post(cred1.clone(), batch(&id1, 0, 2, json!([payment(1, 1, "O-1"), payment(2, 2, "O-2")]))).await?;
    assert_eq!((s, ack["cursor"].as_i64()), (200, Some(2)), "{ack}");
    let before = snapshot()?;

    // Never enrolled: unknown till, and a known till with a wrong secret.
    let stranger = format!("{}.{}", uuid::Uuid::new_v4(), "0".repeat(64));
    let (s, _) = post(stranger, batch(&id1, 2, 3, json!([payment(3, 3, "X")]))).await?;
    assert_eq!(s, 401);
    let (s, _) = post(format!("{id1}.wrong"), batch(&id1, 2, 3, json!([payment(3, 3, "X")]))).await?;
    assert_eq!(s, 401);
    let (s, _) = post(String::new(), batch(&id1, 2, 3, json!([payment(3, 3, "X")]))).await?;
    assert_eq!(s, 401);
    // Till 2 writing till 1's rows.
    let (s, body) = post(cred2.clone(), batch(&id1, 2, 3, json!([payment(3, 1, "HIJACK")]))).await?;
    assert_eq!(s, 403, "{body}");
    // A replayed batch.
    let (s, body) = post(cred1.clone(), batch(&id1, 0, 2, json!([payment(1, 1, "O-1"), payment(2, 2, "O-2-changed")]))).await?;
    assert_eq!((s, body["error"].as_str(), body["cursor"].as_i64()), (409, Some("replay"), Some(2)), "{body}");
    // A gap: changes 3..4 never sent.
    let (s, body) = post(cred1.clone(), batch(&id1, 4, 5, json!([payment(5, 5, "O-5")]))).await?;
    assert_eq!((s, body["error"].as_str(), body["cursor"].as_i64()), (409, Some("gap"), Some(2)), "{body}");
    // Malformed: every invalid field named.
    let mut bad = payment(3, 3, "O-3");
    bad["row"]["currency"] = json!("XYZ1");
    bad["row"]["status"] = json!(99);
    bad["row"]["last_four"] = json!("12345");
    let mut bad_batch = batch(&id1, 2, 3, json!([bad]));
    bad_batch["agent"]["channel"] = json!("pilot; DROP TABLE tills");
    let (s, body) = post(cred1.clone(), bad_batch).await?;
    assert_eq!(s, 400, "{body}");
    let names: Vec<&str> = body["invalid_parameters"].as_array().context("names")?.iter().filter_map(|p| p["parameter"].as_str()).collect();
    for f in ["changes[0].row.currency", "changes[0].row.status", "changes[0].row.last_four", "agent.channel"] {
        assert!(names.contains(&f), "{f} not named in {body}");
    }
    assert_eq!(snapshot()?, before, "refused batches changed nothing");
    assert_eq!(cursor(&id1)?, 2);
    assert_eq!(cursor(&id2)?, 0);

    // A partly applied batch (overlap) applies only what is new.
    let (s, ack) = post(cred1.clone(), batch(&id1, 1, 3, json!([payment(2, 2, "O-2"), payment(3, 3, "O-3")]))).await?;
    assert_eq!((s, ack["applied"].as_i64(), ack["cursor"].as_i64()), (200, Some(1), Some(3)), "{ack}");

    // Revoked: refused from now on; its rows stay.
    fleet.admin(&["revoke", "--till", &id1])?;
    let before = snapshot()?;
    let (s, body) = post(cred1.clone(), batch(&id1, 3, 4, json!([payment(4, 4, "O-4")]))).await?;
    assert_eq!(s, 403, "{body}");
    assert_eq!(snapshot()?, before);
    assert_eq!(count(&pg, &format!("SELECT count(*) FROM payments WHERE till_id = '{id1}'"))?, 3);

    // The dashboard API needs the administrator token.
    let r = http.get(url("/api/v1/tills")).send().await?;
    assert_eq!(r.status(), 401);
    let r = http.get(url("/api/v1/tills")).bearer_auth("wrong-token-wrong-token").send().await?;
    assert_eq!(r.status(), 401);
    let csv = http.get(url("/api/v1/payments/search?last_four=1111&format=csv")).bearer_auth(ADMIN_TOKEN).send().await?.text().await?;
    assert!(csv.starts_with("store,till,local_id"), "{csv}");
    assert_eq!(csv.lines().count(), 4, "header and three payments: {csv}");
    Ok(())
}

/// A payment of today, with a status, amount, order and last four digits.
fn sale(seq: i64, order: &str, amount: i64, status: u8, last_four: Option<&str>) -> Value {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    json!({ "seq": seq, "row_id": seq, "row": {
        "table": "payment", "local_id": format!("L-{order}"), "provider": "sensepass", "number": format!("N-{order}"),
        "device_id": "D", "order_id": order, "amount": amount, "currency": "GBP", "phase": "created",
        "status": status, "is_open": false, "setup": false, "tender": "Visa", "last_four": last_four,
        "created_at_ms": now, "updated_at_ms": now, "final_at_ms": now, "committed_at_ms": null, "failure": null
    }})
}

/// The dashboard page in chromium (crates/fleet/web-tests, Playwright) over data sent as tills
/// send it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_chromium() -> Result<()> {
    let pg = Postgres::start()?;
    let db = pg.create_db("fleet")?;
    let logs = tempfile::tempdir()?;
    let fleet = FleetProcess::start(&db, 0, logs.path())?;
    let http = reqwest::Client::new();
    let mut tills = Vec::new();
    for (store, name) in [("North", "Till 1"), ("North", "Till 2"), ("South", "Till 1")] {
        let code = fleet.admin(&["enrolment-code", "--store", store])?;
        let t: Value = http
            .post(format!("{}/api/v1/enrol", fleet.url))
            .json(&json!({ "code": code, "till_name": name, "version": "0.1.0" }))
            .send()
            .await?
            .json()
            .await?;
        tills.push(t);
    }
    let send = |t: &Value, changes: Value| {
        let cred = format!("{}.{}", t["till_id"].as_str().unwrap_or(""), t["secret"].as_str().unwrap_or(""));
        let n = changes.as_array().map(Vec::len).unwrap_or(0) as i64;
        let body = batch(t["till_id"].as_str().unwrap_or(""), 0, n, changes);
        let http = http.clone();
        let url = format!("{}/api/v1/replication/batch", fleet.url);
        async move {
            let r = http.post(url).bearer_auth(cred).json(&body).send().await?;
            if r.status() != 200 {
                bail!("batch: {}", r.text().await?);
            }
            Ok::<(), anyhow::Error>(())
        }
    };
    send(&tills[0], json!([sale(1, "N-1", 1250, 5, Some("1111")), sale(2, "N-2", 990, 6, None)])).await?;
    let mut refund = json!({ "seq": 2, "row_id": 1, "row": {
        "table": "operation", "op_key": "refund-N-3", "kind": "refund", "payment_local_id": "L-N-3", "amount": 500,
        "state": "pending", "attempts": 2, "last_error": "provider unreachable",
        "created_at_ms": 1_764_460_800_000i64, "updated_at_ms": 1_764_460_800_000i64, "finished_at_ms": null }});
    refund["row"]["created_at_ms"] = json!(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64);
    send(&tills[1], json!([sale(1, "N-3", 2000, 13, Some("5555")), refund])).await?;
    send(&tills[2], json!([sale(1, "S-1", 1250, 5, Some("4242"))])).await?;
    // Till 2 was last heard from an hour ago.
    pg.query("fleet", &format!("UPDATE tills SET last_seen_at = now() - interval '1 hour' WHERE id = '{}'", tills[1]["till_id"].as_str().unwrap_or("")))?;

    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("repo")?.to_path_buf();
    let out = tokio::process::Command::new("node")
        .args(["--test", "crates/fleet/web-tests/dashboard.test.js"])
        .current_dir(&repo)
        .env("FLEET_URL", &fleet.url)
        .env("FLEET_TOKEN", ADMIN_TOKEN)
        .output()
        .await
        .context("node (run scripts/setup.sh)")?;
    if !out.status.success() {
        bail!("dashboard test failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Provider webhooks: stored once per notice (the provider's retries deduplicated), relayed over
/// the long-poll only to the till they name; unknown tills, unknown providers and malformed
/// bodies are refused and store nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_stored_once_and_relayed_only_to_their_till() -> Result<()> {
    let pg = Postgres::start()?;
    let db = pg.create_db("fleet")?;
    let logs = tempfile::tempdir()?;
    let fleet = FleetProcess::start(&db, 0, logs.path())?;
    let http = reqwest::Client::new();
    let mut tills = Vec::new();
    for name in ["Till 1", "Till 2"] {
        let code = fleet.admin(&["enrolment-code", "--store", "North"])?;
        let t: Value = http
            .post(format!("{}/api/v1/enrol", fleet.url))
            .json(&json!({ "code": code, "till_name": name, "version": "0.1.0" }))
            .send()
            .await?
            .json()
            .await?;
        tills.push(t);
    }
    let id = |t: &Value| t["till_id"].as_str().unwrap_or("").to_string();
    let cred = |t: &Value| format!("{}.{}", id(t), t["secret"].as_str().unwrap_or(""));
    let hook = |till: String, body: Value| {
        let http = http.clone();
        let url = format!("{}/api/v1/webhooks/connect-e/{till}", fleet.url);
        async move { Ok::<u16, anyhow::Error>(http.post(url).json(&body).send().await?.status().as_u16()) }
    };

    // Till 1 is waiting on its long-poll when the notice arrives.
    let waiting = {
        let http = http.clone();
        let url = format!("{}/api/v1/webhooks/poll?after=0&wait=10", fleet.url);
        let cred = cred(&tills[0]);
        tokio::spawn(async move { http.get(url).bearer_auth(cred).send().await?.json::<Value>().await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let notice = json!({ "id": "tok-1", "orderId": "A-1" });
    assert_eq!(hook(id(&tills[0]), notice.clone()).await?, 200);
    assert_eq!(hook(id(&tills[0]), notice.clone()).await?, 200, "a retry is acknowledged");
    let got = waiting.await??;
    assert_eq!(got.as_array().map(Vec::len), Some(1), "{got}");
    assert_eq!(got[0]["payload"], notice);

    // Refused, storing nothing: unknown till, unknown provider, malformed bodies.
    assert_eq!(hook(uuid::Uuid::new_v4().to_string(), json!({ "id": "x" })).await?, 404);
    assert_eq!(hook("not-a-till".into(), json!({ "id": "x" })).await?, 404);
    assert_eq!(hook(id(&tills[0]), json!({ "orderId": "no id" })).await?, 400);
    let r = http.post(format!("{}/api/v1/webhooks/unknown/{}", fleet.url, id(&tills[0]))).json(&json!({ "id": "x" })).send().await?;
    assert_eq!(r.status(), 404);
    assert_eq!(count(&pg, "SELECT count(*) FROM webhooks")?, 1, "one notice, stored once");

    // Till 2 sees none of till 1's webhooks; a stranger cannot poll.
    let other: Value = http.get(format!("{}/api/v1/webhooks/poll?wait=0", fleet.url)).bearer_auth(cred(&tills[1])).send().await?.json().await?;
    assert_eq!(other, json!([]));
    let r = http.get(format!("{}/api/v1/webhooks/poll?wait=0", fleet.url)).send().await?;
    assert_eq!(r.status(), 401);
    // After the last one seen, nothing new.
    let after = got[0]["id"].as_i64().context("id")?;
    let none: Value = http.get(format!("{}/api/v1/webhooks/poll?after={after}&wait=0", fleet.url)).bearer_auth(cred(&tills[0])).send().await?.json().await?;
    assert_eq!(none, json!([]));
    Ok(())
}

/// `--tls-cert/--tls-key`: the server speaks HTTPS itself (for deployments without a proxy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_with_a_certificate_and_key() -> Result<()> {
    let pg = Postgres::start()?;
    let db = pg.create_db("fleet")?;
    let dir = tempfile::tempdir()?;
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let ok = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .context("openssl")?
        .status
        .success();
    assert!(ok, "openssl could not make a certificate");
    let mut child = std::process::Command::new(till_tests::bin_path("till-fleet")?)
        .args(["serve", "--database-url", &db, "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env("TILL_FLEET_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().context("stdout")?), &mut line)?;
    let url = line.trim().strip_prefix("till-fleet listening on ").context("first line")?.to_string();
    let result = async {
        assert!(url.starts_with("https://"), "{url}");
        let http = reqwest::Client::builder().danger_accept_invalid_certs(true).build()?;
        let health: Value = http.get(format!("{url}/api/v1/health")).send().await?.json().await?;
        assert_eq!(health["status"], "ok");
        // Plain HTTP to the TLS port gets no answer from the API.
        let plain = reqwest::get(format!("{}/api/v1/health", url.replacen("https", "http", 1))).await;
        assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));
        Ok::<(), anyhow::Error>(())
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// A store's day runs from its own local midnight: the day report puts a payment on the store's
/// local date, "today" is each store's own today, and an unknown time zone is refused (CLI and
/// API) and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_days_follow_the_store_time_zone() -> Result<()> {
    let pg = Postgres::start()?;
    let db = pg.create_db("fleet")?;
    let logs = tempfile::tempdir()?;
    let fleet = FleetProcess::start(&db, 0, logs.path())?;
    // A zone whose date differs from UTC's right now: UTC+14 from 10:00 UTC, UTC−11 before.
    let hour: u32 = pg.query("fleet", "SELECT extract(hour FROM now() AT TIME ZONE 'UTC')::int")?[0][0].parse()?;
    let zone = if hour >= 10 { "Pacific/Kiritimati" } else { "Pacific/Pago_Pago" };
    assert!(fleet.admin(&["enrolment-code", "--store", "Nowhere", "--time-zone", "Mars/Olympus"]).is_err(), "unknown zone refused");
    assert_eq!(count(&pg, "SELECT count(*) FROM stores")?, 0, "and nothing was created");
    let code = fleet.admin(&["enrolment-code", "--store", "Island", "--time-zone", zone])?;
    assert!(!code.is_empty());
    let env = Env::start().await?;
    let out = std::process::Command::new(till_tests::bin_path("till-agent")?)
        .args(["enrol", "--fleet-url", &fleet.url, "--code", &code, "--till-name", "Till 1"])
        .args(["--data-dir", &env.data_dir.path().display().to_string()])
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    pay(&env, "TZ-1", 700).await?;
    caught_up(&[&env], 60).await?;
    let local = pg.query("fleet", &format!("SELECT (now() AT TIME ZONE '{zone}')::date::text"))?[0][0].clone();
    let utc = pg.query("fleet", "SELECT (now() AT TIME ZONE 'UTC')::date::text")?[0][0].clone();
    assert_ne!(local, utc, "the chosen zone is on another date now");
    let http = reqwest::Client::new();
    let day = |date: Option<&str>| {
        let url = match date {
            Some(d) => format!("{}/api/v1/reports/day?date={d}", fleet.url),
            None => format!("{}/api/v1/reports/day", fleet.url),
        };
        let http = http.clone();
        async move { Ok::<Value, anyhow::Error>(http.get(url).bearer_auth(ADMIN_TOKEN).send().await?.json().await?) }
    };
    let today = day(None).await?;
    let line = today.as_array().and_then(|l| l.iter().find(|l| l["store"] == "Island")).cloned().context("Island today")?;
    assert_eq!((line["sales"].as_i64(), line["date"].as_str(), line["time_zone"].as_str()), (Some(1), Some(local.as_str()), Some(zone)), "{today}");
    assert_eq!(day(Some(&local)).await?.as_array().map(Vec::len), Some(1));
    assert_eq!(day(Some(&utc)).await?.as_array().map(Vec::len), Some(0), "not on the UTC date");
    let r = http
        .post(format!("{}/api/v1/stores", fleet.url))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "name": "Island", "time_zone": "Nowhere/Else" }))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await?;
    assert!(body.to_string().contains("time_zone"), "{body}");
    assert_eq!(pg.query("fleet", "SELECT time_zone FROM stores WHERE name = 'Island'")?[0][0], zone, "unchanged");
    Ok(())
}

/// Acquired signs its webhooks (v2 HMAC of the body with the app key, `Hash` header): one that
/// verifies is stored once (by `webhook_id`) and relayed; a forged, altered or unsigned one is
/// refused with 401 and stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquired_webhooks_must_carry_the_app_keys_hash() -> Result<()> {
    let pg = Postgres::start()?;
    let db = pg.create_db("fleet")?;
    let logs = tempfile::tempdir()?;
    let fleet = FleetProcess::start(&db, 0, logs.path())?;
    let http = reqwest::Client::new();
    let code = fleet.admin(&["enrolment-code", "--store", "North"])?;
    let till: Value = http
        .post(format!("{}/api/v1/enrol", fleet.url))
        .json(&json!({ "code": code, "till_name": "Till 1", "version": "0.1.0" }))
        .send()
        .await?
        .json()
        .await?;
    let till_id = till["till_id"].as_str().context("till_id")?.to_string();
    let cred = format!("{till_id}.{}", till["secret"].as_str().unwrap_or(""));
    let url = format!("{}/api/v1/webhooks/acquired/{till_id}", fleet.url);
    let body = r#"{ "webhook_type": "status_update", "webhook_id": "wh-1", "timestamp": 1700000000,
                    "webhook_body": { "transaction_id": "tx-1", "status": "success", "order_id": "A-1" } }"#;
    let send = |body: String, hash: Option<String>| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let mut r = http.post(url).header("content-type", "application/json").header("Webhook-Version", "2").body(body);
            if let Some(h) = hash {
                r = r.header("Hash", h);
            }
            Ok::<u16, anyhow::Error>(r.send().await?.status().as_u16())
        }
    };
    let good = till_acquired::verify::webhook_hash(till_tests::fleet::ACQUIRED_APP_KEY, body.as_bytes());
    let forged = till_acquired::verify::webhook_hash("another-key", body.as_bytes());
    assert_eq!(send(body.to_string(), Some(forged)).await?, 401, "signed with another key");
    assert_eq!(send(body.to_string(), None).await?, 401, "unsigned");
    assert_eq!(send(body.replace("success", "declined"), Some(good.clone())).await?, 401, "altered after signing");
    assert_eq!(count(&pg, "SELECT count(*) FROM webhooks")?, 0, "nothing stored");
    assert_eq!(send(body.to_string(), Some(good.clone())).await?, 200);
    assert_eq!(send(body.to_string(), Some(good.to_uppercase())).await?, 200, "a retry (hash in either case)");
    assert_eq!(count(&pg, "SELECT count(*) FROM webhooks WHERE provider = 'acquired'")?, 1, "stored once");
    let got: Value = http.get(format!("{}/api/v1/webhooks/poll?wait=0", fleet.url)).bearer_auth(cred).send().await?.json().await?;
    assert_eq!(got[0]["provider"], "acquired", "{got}");
    assert_eq!(got[0]["payload"]["webhook_body"]["transaction_id"], "tx-1");
    Ok(())
}
