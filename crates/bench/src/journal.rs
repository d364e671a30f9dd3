//! Journal benchmarks: durable appends through `till-journal` against raw `rusqlite` doing the
//! same writes with the same pragmas, in the same run; lookups and start-up with 1 M payments.
//!
//! An *append* is one durable commit. A payment's life in the journal is three of them: the
//! intent (`begin_payment`: idempotency and busy checks, the row and its idempotency record), the
//! creation (`record_created`) and the final status (`apply_status`). The raw baseline performs
//! the same three transactions with the same INSERT/UPDATE statements on the same schema (copied
//! from a journal the crate created) with `journal_mode=WAL`, `synchronous=FULL`,
//! `foreign_keys=ON` — but none of the crate's reads and checks. Rounds alternate between the
//! two so that disk and machine noise hit both alike.
//!
//! The large journal is generated for every run (about a minute for 1 M payments) because its
//! payments must belong to a device of this run's sandbox: only then does the agent's Socket.IO
//! connection stay up, as in a store. `/last` is also measured with SensePass unreachable, when
//! the agent re-reads its open work every poll interval.

use crate::procs::{self, AgentMode, AgentProc, Bins, SandboxProc};
use crate::stats::Summary;
use anyhow::{bail, Context, Result};
use rand::Rng;
use rusqlite::{params, Connection, TransactionBehavior};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use till_core::{Currency, Minor, Status};
use till_journal::{Begin, EventSource, Journal, NewPayment, Pairing};

/// The device every generated payment belongs to.
const DEVICE: &str = "bench-device-0001";

/// Append throughput of one variant.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Appends {
    /// Durable commits per second over all rounds.
    pub commits_per_s: f64,
    /// Whole payments (3 commits) per second.
    pub payments_per_s: f64,
    /// Latency of one commit.
    pub commit: Summary,
    /// Commits per second of each round.
    pub rounds: Vec<f64>,
}

/// Lookups and start-up on a large journal.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Large {
    /// Payments in the journal.
    pub payments: u64,
    /// Rows in `status_events`.
    pub status_events: u64,
    /// Rows in `idempotency` (the last 31 days).
    pub idempotency: u64,
    /// Size of the database file, bytes.
    pub file_bytes: u64,
    /// Seconds it took to generate.
    pub generate_secs: f64,
    /// `Journal::open` with the file evicted from the page cache.
    pub open_cold: Summary,
    /// `Journal::open` with the file in the page cache.
    pub open_warm: Summary,
    /// `Journal::last(Some(device))`, what `/api/transactions/last` runs.
    pub last_device: Summary,
    /// `Journal::last(None)`.
    pub last_any: Summary,
    /// `Journal::by_order_id` for random existing orders.
    pub by_order_id: Summary,
    /// `Journal::by_number` for random existing transaction numbers.
    pub by_number: Summary,
    /// `till-agent run` on this journal: spawn → `/api/agent/health` answers (file evicted first).
    pub agent_start_cold: Summary,
    /// Same with the file in the page cache.
    pub agent_start_warm: Summary,
    /// `GET /api/transactions/last` through the agent, a new connection per call (the project's client).
    pub http_last: Summary,
    /// `GET /api/transactions/last` through the agent, one kept-alive connection.
    pub http_last_keepalive: Summary,
    /// `GET /api/transactions/last` (new connection per call) while SensePass is unreachable.
    pub http_last_offline: Summary,
    /// `GET /api/transactions/last` through an agent whose journal holds one payment, for comparison.
    pub http_last_small: Summary,
}

/// Everything the journal benchmark measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JournalResult {
    /// Through `till-journal`, on disk.
    pub crate_disk: Appends,
    /// Raw rusqlite, on disk, same pragmas.
    pub raw_disk: Appends,
    /// Through `till-journal`, in memory (no I/O: the crate's CPU cost).
    pub crate_memory: Appends,
    /// Raw rusqlite, in memory.
    pub raw_memory: Appends,
    /// The 1 M payment journal.
    pub large: Large,
}

/// Sizes of the run.
#[derive(Debug, Clone)]
pub struct JournalPlan {
    /// Alternating rounds per variant.
    pub rounds: usize,
    /// Payments per round on disk.
    pub payments_per_round: usize,
    /// Payments per round in memory.
    pub memory_payments_per_round: usize,
    /// Payments in the large journal.
    pub large_payments: u64,
    /// Lookups per kind.
    pub lookups: usize,
}

fn request_json(order: &str) -> Value {
    json!({"amount": 1250, "currency": "USD", "isCent": true, "timeOut": 600, "posData": {"orderId": order, "pos": "till 1"}})
}

/// A SensePass entity of realistic size (~700 bytes).
fn entity(number: &str, order: &str, status: u8) -> Value {
    json!({
        "TransactionNumber": number, "status": status, "statusName": Status::from_code(i64::from(status)).map(|s| s.display_name()).unwrap_or(""),
        "amount": "12.5", "baseAmount": "12.5", "currency": "USD", "isCent": true, "methodType": 0,
        "date": "2024-05-03T14:21:07.000Z", "timeoutDate": "2024-05-03T14:31:07.000Z", "businessId": "sandbox-business",
        "businessName": "Sandbox Coffee", "posData": {"orderId": order, "pos": "till 1"},
        "transactionPage": {"qrURL": format!("http://127.0.0.1:8700/pay/{number}")},
        "paymentCommit": {"secondsToCommit": 7200, "isPaymentCommitted": false, "commitLink": format!("http://127.0.0.1:8700/api/transactions/{number}/commit")},
        "confirmations": [], "products": [], "metadata": []
    })
}

fn number_of(i: u64) -> String {
    format!(
        "{:016x}{:040x}",
        i,
        u128::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)
    )
}

fn order_of(i: u64) -> String {
    format!("ORD-{i:09}")
}

/// The three journal writes of one payment through the crate; returns each commit's latency.
fn crate_payment(j: &Journal, tag: &str, i: usize, lat: &mut Vec<Duration>) -> Result<()> {
    let order = format!("{tag}-{i}");
    let number = format!("{tag}-n-{i}");
    let local_id = till_journal::new_local_id();
    let now = till_journal::now_ms();
    let t = Instant::now();
    let begun = j.begin_payment(NewPayment {
        local_id: local_id.clone(),
        device_id: DEVICE.into(),
        order_id: Some(order.clone()),
        idempotency_key: None,
        amount: Minor(1250),
        currency: Currency::Usd,
        request_json: request_json(&order),
        product_sum_mismatch: false,
        setup: false,
        now_ms: now,
    })?;
    lat.push(t.elapsed());
    if !matches!(begun, Begin::Started(_)) {
        bail!("begin_payment did not start a payment");
    }
    let t = Instant::now();
    j.record_created(
        &local_id,
        &number,
        Status::Initialize,
        &entity(&number, &order, 0),
        now,
    )?;
    lat.push(t.elapsed());
    let t = Instant::now();
    j.apply_status(
        &number,
        Status::Approved,
        &entity(&number, &order, 5),
        EventSource::Socket,
        now,
    )?;
    lat.push(t.elapsed());
    Ok(())
}

/// The same three transactions with raw rusqlite.
fn raw_payment(c: &mut Connection, tag: &str, i: usize, lat: &mut Vec<Duration>) -> Result<()> {
    let order = format!("{tag}-{i}");
    let number = format!("{tag}-n-{i}");
    let local_id = till_journal::new_local_id();
    let now = till_journal::now_ms();
    let t = Instant::now();
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.prepare_cached(
        "INSERT INTO transactions (local_id, device_id, order_id, idempotency_key, amount, currency, phase, \
         status, is_open, request_json, product_sum_mismatch, setup, created_at, updated_at) \
         VALUES (?1, ?2, ?3, NULL, 1250, 'USD', 'intent', NULL, 1, ?4, 0, 0, ?5, ?5)",
    )?
    .execute(params![local_id, DEVICE, order, request_json(&order).to_string(), now])?;
    let id = tx.last_insert_rowid();
    tx.prepare_cached("INSERT INTO idempotency (scope, value, transaction_id, created_at, expires_at) VALUES ('order', ?1, ?2, ?3, ?4)")?
        .execute(params![order, id, now, now + till_journal::IDEMPOTENCY_TTL_MS])?;
    tx.commit()?;
    lat.push(t.elapsed());
    let t = Instant::now();
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let e0 = entity(&number, &order, 0).to_string();
    tx.prepare_cached(
        "UPDATE transactions SET number = ?2, phase = 'created', status = 0, entity_json = ?3, is_open = 1, updated_at = ?4 WHERE id = ?1",
    )?
    .execute(params![id, number, e0, now])?;
    tx.prepare_cached(
        "INSERT INTO status_events (transaction_id, status, source, transition, applied, at, entity_json) \
         VALUES (?1, ?2, ?3, 'advance', 1, ?4, ?5)",
    )?
    .execute(params![id, 0, "api", now, e0])?;
    tx.commit()?;
    lat.push(t.elapsed());
    let t = Instant::now();
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let e5 = entity(&number, &order, 5).to_string();
    tx.prepare_cached(
        "INSERT INTO status_events (transaction_id, status, source, transition, applied, at, entity_json) \
         VALUES (?1, ?2, ?3, 'advance', 1, ?4, ?5)",
    )?
    .execute(params![id, 5, "socket", now, e5])?;
    tx.prepare_cached("UPDATE transactions SET status = 5, entity_json = ?2, is_open = 0, final_at = ?3, updated_at = ?3 WHERE id = ?1")?
        .execute(params![id, e5, now])?;
    tx.commit()?;
    lat.push(t.elapsed());
    Ok(())
}

/// The raw connection's settings: the journal's pragmas.
fn raw_pragmas(c: &Connection) -> Result<()> {
    c.busy_timeout(Duration::from_secs(10))?;
    let mode: String = c.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
        bail!("raw baseline could not switch to WAL (got {mode})");
    }
    c.pragma_update(None, "synchronous", "FULL")?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    c.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Copies the schema of a journal the crate created into `c`.
fn copy_schema(from: &Path, c: &Connection) -> Result<()> {
    let src = Connection::open(from)?;
    let mut stmt = src.prepare("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY CASE type WHEN 'table' THEN 0 ELSE 1 END, rowid")?;
    let sqls: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for sql in sqls {
        c.execute_batch(&sql)?;
    }
    Ok(())
}

#[derive(Default)]
struct Acc {
    lat: Vec<Duration>,
    wall: Duration,
    rounds: Vec<f64>,
}

impl Acc {
    fn finish(self) -> Appends {
        let commits = self.lat.len() as f64;
        let secs = self.wall.as_secs_f64().max(1e-9);
        Appends {
            commits_per_s: commits / secs,
            payments_per_s: commits / 3.0 / secs,
            commit: Summary::of(&self.lat),
            rounds: self.rounds,
        }
    }
}

/// Alternating rounds: crate, raw, raw, crate, … each at most 30 s.
fn appends(
    crate_j: &Journal,
    raw: &mut Connection,
    rounds: usize,
    per_round: usize,
    tag: &str,
) -> Result<(Appends, Appends)> {
    let (mut a, mut b) = (Acc::default(), Acc::default());
    for r in 0..rounds {
        let order = if r % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for through_crate in order {
            let acc = if through_crate { &mut a } else { &mut b };
            let mut lat = Vec::with_capacity(per_round * 3);
            let limit = Instant::now() + Duration::from_secs(30);
            let t = Instant::now();
            for i in 0..per_round {
                if Instant::now() > limit {
                    break;
                }
                let tag = format!("{tag}-{r}-{}", if through_crate { "c" } else { "r" });
                if through_crate {
                    crate_payment(crate_j, &tag, i, &mut lat)?;
                } else {
                    raw_payment(raw, &tag, i, &mut lat)?;
                }
            }
            let wall = t.elapsed();
            acc.rounds
                .push(lat.len() as f64 / wall.as_secs_f64().max(1e-9));
            acc.wall += wall;
            acc.lat.extend(lat);
        }
    }
    Ok((a.finish(), b.finish()))
}

/// Generates a journal of `n` finished payments of `device` spread over two years: each with its
/// two status events (created, approved), its delivered payment-commit operation, and an
/// idempotency record when it is younger than 31 days (older ones are purged in a real journal).
/// The schema comes from `Journal::open`; the rows are written with raw SQL, without fsync.
fn generate(path: &Path, device: &str, n: u64) -> Result<f64> {
    let t = Instant::now();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let j = Journal::open(path)?;
    j.set_pairing(&Pairing {
        device_id: device.into(),
        pos_name: "bench till".into(),
        environment: "sandbox".into(),
        api_base: "http://127.0.0.1:9/api/".into(),
        socket_url: "http://127.0.0.1:9".into(),
        client_box_url: None,
        paired_at: till_journal::now_ms(),
    })?;
    drop(j);
    let mut c = Connection::open(path)?;
    c.pragma_update(None, "synchronous", "OFF")?;
    c.pragma_update(None, "cache_size", -262_144)?; // 256 MiB
    let now = till_journal::now_ms();
    let span: i64 = 2 * 365 * 24 * 3600 * 1000;
    let recent = now - till_journal::IDEMPOTENCY_TTL_MS;
    let batch = 50_000u64;
    let mut i = 0u64;
    while i < n {
        let tx = c.transaction()?;
        {
            let mut ins_t = tx.prepare(
                "INSERT INTO transactions (id, local_id, number, device_id, order_id, amount, currency, phase, status, \
                 is_open, request_json, entity_json, created_at, updated_at, final_at, commit_link, committed_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'USD', 'created', 5, 0, ?7, ?8, ?9, ?10, ?10, ?11, ?10)",
            )?;
            let mut ins_e = tx.prepare(
                "INSERT INTO status_events (transaction_id, status, source, transition, applied, at, entity_json) \
                 VALUES (?1, ?2, ?3, 'advance', 1, ?4, NULL)",
            )?;
            let mut ins_i = tx.prepare(
                "INSERT INTO idempotency (scope, value, transaction_id, created_at, expires_at) VALUES ('order', ?1, ?2, ?3, ?4)",
            )?;
            let mut ins_o = tx.prepare(
                "INSERT INTO operations (op_key, kind, transaction_id, amount, payload, state, attempts, next_at, result, \
                 created_at, updated_at, finished_at) VALUES (?1, 'commit', ?2, NULL, ?3, 'delivered', 1, ?4, ?5, ?4, ?4, ?4)",
            )?;
            let end = (i + batch).min(n);
            while i < end {
                let id = i as i64 + 1;
                let created = now - span + (span / n as i64) * i as i64;
                let number = number_of(i);
                let order = order_of(i);
                let local_id = format!("{:08x}-0000-4000-8000-{:012x}", i >> 16, i);
                let e = entity(&number, &order, 5);
                let link = format!("http://127.0.0.1:8700/api/transactions/{number}/commit");
                ins_t.execute(params![
                    id,
                    local_id,
                    number,
                    device,
                    order,
                    1000 + (i % 5000) as i64,
                    request_json(&order).to_string(),
                    e.to_string(),
                    created,
                    created + 9_000,
                    link,
                ])?;
                ins_e.execute(params![id, 0, "api", created])?;
                ins_e.execute(params![id, 5, "socket", created + 9_000])?;
                ins_o.execute(params![
                    format!("commit:{number}"),
                    id,
                    json!({"commitLink": link, "transactionNumber": number}).to_string(),
                    created + 9_500,
                    r#"{"status":200,"status_message":"Payment Committed","isPaymentCommitted":true}"#,
                ])?;
                if created > recent {
                    ins_i.execute(params![
                        order,
                        id,
                        created,
                        created + till_journal::IDEMPOTENCY_TTL_MS
                    ])?;
                }
                i += 1;
            }
        }
        tx.commit()?;
    }
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); ANALYZE;")?;
    Ok(t.elapsed().as_secs_f64())
}

/// Times `f` up to `count` times, and for at most `limit`.
fn time_many<T>(
    count: usize,
    limit: Duration,
    mut f: impl FnMut(usize) -> Result<T>,
) -> Result<Summary> {
    let mut lat = Vec::with_capacity(count);
    let end = Instant::now() + limit;
    for i in 0..count {
        if Instant::now() > end {
            break;
        }
        let t = Instant::now();
        f(i)?;
        lat.push(t.elapsed());
    }
    Ok(Summary::of(&lat))
}

async fn evict(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", path.display()));
        if let Ok(f) = std::fs::File::open(&p) {
            let _ = f.sync_all();
            procs::evict_from_cache(&p).await;
        }
    }
}

/// How long one timed loop of the large-journal benchmark may run.
const LOOP_LIMIT: Duration = Duration::from_secs(15);

/// The 1 M payment measurements.
async fn large(bins: &Bins, work: &Path, plan: &JournalPlan) -> Result<Large> {
    let http = procs::http()?;
    let sandbox = SandboxProc::start(bins, &work.join("journal-sandbox.log")).await?;
    let result = large_with(bins, work, plan, &http, &sandbox).await;
    sandbox.stop().await;
    result
}

async fn large_with(
    bins: &Bins,
    work: &Path,
    plan: &JournalPlan,
    http: &reqwest::Client,
    sandbox: &SandboxProc,
) -> Result<Large> {
    let dir = work.join("journal-large");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("journal.sqlite3");
    let n = plan.large_payments;
    // The journal belongs to a device the sandbox knows, so the agent's socket stays connected.
    let device = sandbox.create_device(http, "large journal till").await?;
    eprintln!("journal: generating a journal of {n} payments");
    let generate_secs = tokio::task::block_in_place(|| generate(&path, &device, n))?;
    let counts = {
        let c = Connection::open(&path)?;
        let q =
            |sql: &str| -> Result<u64> { Ok(c.query_row(sql, [], |r| r.get::<_, i64>(0))? as u64) };
        (
            q("SELECT count(*) FROM transactions")?,
            q("SELECT count(*) FROM status_events")?,
            q("SELECT count(*) FROM idempotency")?,
        )
    };
    let mut open_cold = Vec::new();
    let mut open_warm = Vec::new();
    for _ in 0..5 {
        evict(&path).await;
        let t = Instant::now();
        let j = Journal::open(&path)?;
        j.last(Some(&device))?;
        open_cold.push(t.elapsed());
        drop(j);
        let t = Instant::now();
        let j = Journal::open(&path)?;
        j.last(Some(&device))?;
        open_warm.push(t.elapsed());
    }
    let (last_device, last_any, by_order_id, by_number) =
        tokio::task::block_in_place(|| -> Result<_> {
            let j = Journal::open(&path)?;
            let mut rng = rand::thread_rng();
            let last_device = time_many(plan.lookups, LOOP_LIMIT, |_| Ok(j.last(Some(&device))?))?;
            let last_any = time_many(plan.lookups, LOOP_LIMIT, |_| Ok(j.last(None)?))?;
            let orders: Vec<String> = (0..plan.lookups)
                .map(|_| order_of(rng.gen_range(0..n)))
                .collect();
            let by_order_id = time_many(plan.lookups, LOOP_LIMIT, |i| {
                j.by_order_id(&orders[i])?
                    .context("generated order not found")
            })?;
            let numbers: Vec<String> = (0..plan.lookups)
                .map(|_| number_of(rng.gen_range(0..n)))
                .collect();
            let by_number = time_many(plan.lookups, LOOP_LIMIT, |i| {
                j.by_number(&numbers[i])?
                    .context("generated number not found")
            })?;
            Ok((last_device, last_any, by_order_id, by_number))
        })?;

    eprintln!("journal: the agent on the large journal");
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for k in 0..6 {
        if k % 2 == 0 {
            evict(&path).await;
        }
        let agent = AgentProc::start(bins, &dir, AgentMode::External(sandbox)).await?;
        let ready = agent.wait_ready(http, false, Duration::from_secs(60)).await;
        agent.stop().await;
        if k % 2 == 0 {
            cold.push(ready?)
        } else {
            warm.push(ready?)
        }
    }
    let agent = AgentProc::start(bins, &dir, AgentMode::External(sandbox)).await?;
    let measured = async {
        agent
            .wait_ready(http, true, Duration::from_secs(60))
            .await?;
        // Let the start-up reconciliation finish before measuring.
        tokio::time::sleep(Duration::from_secs(3)).await;
        http_last(&agent, &device, plan.lookups).await
    }
    .await;
    agent.stop().await;
    let (http_last_fresh, http_last_keepalive) = measured?;

    // SensePass unreachable (a closed port): the agent polls open work while offline.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let (api, socket) = (
        format!("http://127.0.0.1:{closed}/api/"),
        format!("http://127.0.0.1:{closed}"),
    );
    let agent = AgentProc::start(
        bins,
        &dir,
        AgentMode::Urls {
            api_base: &api,
            socket_url: &socket,
        },
    )
    .await?;
    let measured = async {
        agent
            .wait_ready(http, false, Duration::from_secs(60))
            .await?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        http_last(&agent, &device, plan.lookups / 4).await
    }
    .await;
    agent.stop().await;
    let (http_last_offline, _) = measured?;

    let small_dir = work.join("journal-small");
    if small_dir.exists() {
        std::fs::remove_dir_all(&small_dir)?;
    }
    std::fs::create_dir_all(&small_dir)?;
    let small_device = sandbox.create_device(http, "small journal till").await?;
    tokio::task::block_in_place(|| generate(&small_dir.join("journal.sqlite3"), &small_device, 1))?;
    let agent = AgentProc::start(bins, &small_dir, AgentMode::External(sandbox)).await?;
    let measured = async {
        agent
            .wait_ready(http, true, Duration::from_secs(60))
            .await?;
        http_last(&agent, &small_device, plan.lookups).await
    }
    .await;
    agent.stop().await;
    let (http_last_small, _) = measured?;
    let file_bytes = procs::file_size(&path);
    // Gigabytes of scratch: kept only when asked for (to inspect it with sqlite3).
    if std::env::var_os("BENCH_KEEP_JOURNAL").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(Large {
        payments: counts.0,
        status_events: counts.1,
        idempotency: counts.2,
        file_bytes,
        generate_secs,
        open_cold: Summary::of(&open_cold),
        open_warm: Summary::of(&open_warm),
        last_device,
        last_any,
        by_order_id,
        by_number,
        agent_start_cold: Summary::of(&cold),
        agent_start_warm: Summary::of(&warm),
        http_last: http_last_fresh,
        http_last_keepalive,
        http_last_offline,
        http_last_small,
    })
}

/// `GET /api/transactions/last` up to `count` times (and at most [`LOOP_LIMIT`] each): through
/// the project's client (new connection per call), then through one kept-alive connection.
async fn http_last(agent: &AgentProc, device: &str, count: usize) -> Result<(Summary, Summary)> {
    let client = till_sensepass::Client::new(
        till_sensepass::ClientConfig::new(format!("{}/api/", agent.url)),
        till_sensepass::Credentials::Device(device.into()),
    )?;
    let mut fresh = Vec::with_capacity(count);
    let end = Instant::now() + LOOP_LIMIT;
    for _ in 0..count {
        if Instant::now() > end {
            break;
        }
        let t = Instant::now();
        let (status, body) = client
            .forward(reqwest::Method::GET, "transactions/last", None)
            .await
            .map_err(|e| anyhow::anyhow!("/last: {e}"))?;
        fresh.push(t.elapsed());
        if status != 200 || body.get("TransactionNumber").is_none() {
            bail!("/last answered {status}: {body}");
        }
    }
    let keep = reqwest::Client::new();
    let url = format!("{}/api/transactions/last", agent.url);
    let mut kept = Vec::with_capacity(count);
    let end = Instant::now() + LOOP_LIMIT;
    for _ in 0..count {
        if Instant::now() > end {
            break;
        }
        let t = Instant::now();
        let resp = keep.get(&url).send().await?;
        let status = resp.status();
        let _ = resp.bytes().await?;
        kept.push(t.elapsed());
        if !status.is_success() {
            bail!("/last answered {status}");
        }
    }
    Ok((Summary::of(&fresh), Summary::of(&kept)))
}

/// Runs every journal measurement.
pub async fn run(bins: &Bins, work: &Path, plan: &JournalPlan) -> Result<JournalResult> {
    let dir = work.join("journal-appends");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    eprintln!("journal: durable appends, crate vs raw rusqlite");
    let (crate_disk, raw_disk, crate_memory, raw_memory) =
        tokio::task::block_in_place(|| -> Result<_> {
            let crate_path = dir.join("crate.sqlite3");
            let raw_path = dir.join("raw.sqlite3");
            let cj = Journal::open(&crate_path)?;
            // Same schema: let the crate create it, then open it raw.
            drop(Journal::open(&raw_path)?);
            let mut raw = Connection::open(&raw_path)?;
            raw_pragmas(&raw)?;
            let (crate_disk, raw_disk) =
                appends(&cj, &mut raw, plan.rounds, plan.payments_per_round, "disk")?;
            let cm = Journal::open_in_memory()?;
            let mut rm = Connection::open_in_memory()?;
            copy_schema(&crate_path, &rm)?;
            raw_pragmas(&rm)?;
            let (crate_memory, raw_memory) = appends(
                &cm,
                &mut rm,
                plan.rounds,
                plan.memory_payments_per_round,
                "mem",
            )?;
            Ok((crate_disk, raw_disk, crate_memory, raw_memory))
        })?;
    eprintln!(
        "journal: disk {:.0} vs {:.0} commits/s, memory {:.0} vs {:.0}",
        crate_disk.commits_per_s,
        raw_disk.commits_per_s,
        crate_memory.commits_per_s,
        raw_memory.commits_per_s
    );
    let large = large(bins, work, plan).await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(JournalResult {
        crate_disk,
        raw_disk,
        crate_memory,
        raw_memory,
        large,
    })
}
