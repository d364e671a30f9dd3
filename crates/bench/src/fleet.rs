//! The fleet server under load: `till-fleet` (the binary in `--bin-dir`) on a throwaway
//! PostgreSQL cluster with durable settings ([`PG_SETTINGS`]: `fsync`, `synchronous_commit` and
//! `full_page_writes` on), measured four ways:
//!
//! 1. **Ingest**: many simulated tills post full batches of payments over HTTP at once, as the
//!    agent's replication does; the baseline is the same rows written by `COPY … FROM STDIN`
//!    (tokio-postgres `copy_in`), in the same batch size, one transaction per batch, from as many
//!    connections as there are tills, on the same server in the same run. Rounds alternate.
//! 2. **Dashboard**: the payments table is filled server-side (`INSERT … SELECT generate_series`,
//!    rows spread over a year of monthly partitions, stores of different sizes, a realistic mix
//!    of statuses, tenders and providers), then every call the dashboard makes is timed over HTTP
//!    (p50/p95 over N runs, random keys for the searches) and its plan is taken from the server
//!    log with `auto_explain` (the plan of the query the fleet really ran, not a copy of its SQL).
//! 3. **Lag**: a real `till-agent`, enrolled, pays against the sandbox; the time from the POS's
//!    answer to the payment being found, approved, by the fleet's search API.
//! 4. **Payment latency with replication on and off**: two agents on one sandbox, one enrolled
//!    and one not, in alternating rounds; the ratio of their latencies and the spread between
//!    rounds of the same agent (the noise).
//!
//! Why a cluster of our own: the figures must come from a server whose settings we know, and the
//! cluster code is the tests' (`tests/src/pg.rs`, included by `main.rs`), so there is one way to
//! start one.

use crate::pg::Postgres;
use crate::procs::{self, AgentMode, AgentProc, Bins, SandboxProc};
use crate::stats::{ms, percentile};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use till_sensepass::{Client, ClientConfig, Credentials};
use tokio::process::{Child, Command};

/// The cluster's settings: durable (every commit flushed, torn pages protected), a buffer cache
/// and WAL size fit for tens of millions of rows, and `auto_explain` loaded but silent until the
/// plan pass switches it on.
pub const PG_SETTINGS: &str = "fsync = on\nsynchronous_commit = on\nfull_page_writes = on\n\
shared_buffers = 512MB\nwork_mem = 16MB\nmaintenance_work_mem = 256MB\nmax_wal_size = 1GB\n\
shared_preload_libraries = 'auto_explain'\nauto_explain.log_min_duration = -1\n";

/// The administrator token of the benchmark's fleet.
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";

/// How big the run is.
#[derive(Debug, Clone)]
pub struct FleetPlan {
    /// Simulated tills posting at once.
    pub tills: usize,
    /// Batches per till per ingest round.
    pub batches: i64,
    /// Payments per batch (the agent's `BATCH`).
    pub per_batch: i64,
    /// Ingest rounds per mode (fleet, COPY), alternating.
    pub rounds: usize,
    /// Payment counts at which the dashboard is measured (the table grows to each in turn).
    pub sizes: Vec<i64>,
    /// Stores and tills per store of the generated chain.
    pub stores: i64,
    /// Tills per generated store.
    pub tills_per_store: i64,
    /// Timed calls per dashboard query.
    pub query_runs: usize,
    /// Lag samples.
    pub lag_samples: usize,
    /// Rounds per mode of the on/off comparison.
    pub latency_rounds: usize,
    /// Payments per round of the on/off comparison.
    pub latency_per_round: usize,
}

impl FleetPlan {
    /// The full run (BENCHMARKS.md) or the quick one (CI: seconds).
    pub fn new(quick: bool) -> FleetPlan {
        if quick {
            FleetPlan {
                tills: 4,
                batches: 3,
                per_batch: 100,
                rounds: 1,
                sizes: vec![20_000],
                stores: 10,
                tills_per_store: 2,
                query_runs: 3,
                lag_samples: 3,
                latency_rounds: 2,
                latency_per_round: 3,
            }
        } else {
            FleetPlan {
                tills: 20,
                batches: 10,
                per_batch: 500,
                rounds: 2,
                sizes: sizes_from_env().unwrap_or_else(|| vec![1_000_000, 10_000_000]),
                stores: 100,
                tills_per_store: 4,
                query_runs: 30,
                lag_samples: 40,
                latency_rounds: 8,
                latency_per_round: 25,
            }
        }
    }
}

/// `BENCH_FLEET_PAYMENTS=1000000,4000000`: other table sizes for the dashboard (10 M payments
/// need about 8 GB of free disk for the table, its indexes and the WAL).
fn sizes_from_env() -> Option<Vec<i64>> {
    let v: Vec<i64> = std::env::var("BENCH_FLEET_PAYMENTS").ok()?.split(',').filter_map(|x| x.trim().parse().ok()).collect();
    (!v.is_empty()).then_some(v)
}

/// A latency distribution with the 95th percentile (what the dashboard figures are given in).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Pct {
    /// Samples.
    pub count: usize,
    /// Median, ms.
    pub p50_ms: f64,
    /// 95th percentile (nearest rank), ms.
    pub p95_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
}

impl Pct {
    fn of(samples: &[Duration]) -> Pct {
        let mut v: Vec<f64> = samples.iter().map(|d| ms(*d)).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        Pct {
            count: v.len(),
            p50_ms: percentile(&v, 50.0),
            p95_ms: percentile(&v, 95.0),
            max_ms: v.last().copied().unwrap_or(0.0),
        }
    }
}

/// One ingest round.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestRound {
    /// `fleet` (HTTP through till-fleet) or `copy` (raw COPY baseline).
    pub mode: String,
    /// Payments written.
    pub rows: i64,
    /// Wall time, s.
    pub secs: f64,
    /// Payments per second.
    pub rate: f64,
}

/// The ingest figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IngestResult {
    /// Tills posting at once.
    pub tills: usize,
    /// Batches per till per round.
    pub batches: i64,
    /// Payments per batch.
    pub per_batch: i64,
    /// Every round, in the order run.
    pub rounds: Vec<IngestRound>,
    /// Payments/s through the fleet (all its rounds).
    pub fleet_rate: f64,
    /// Payments/s by COPY (all its rounds).
    pub copy_rate: f64,
    /// Request latency of one batch through the fleet.
    pub batch_latency: Pct,
}

/// One dashboard call at one size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryResult {
    /// What the dashboard shows.
    pub name: String,
    /// The API path (with an example key).
    pub path: String,
    /// Timed over HTTP, keep-alive.
    pub latency: Pct,
    /// Rows in the last answer.
    pub rows: usize,
    /// The scans of the plan, summarised (`Index Only Scan ×13 (payments_store_time)`).
    pub plan_summary: String,
    /// No sequential scan of payments or operations in the plan.
    pub uses_indexes: bool,
    /// The plan as `auto_explain` logged it (EXPLAIN ANALYZE).
    pub plan: String,
}

/// The dashboard at one table size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DashboardAt {
    /// Payments in the table.
    pub payments: i64,
    /// Time to generate the rows added for this size (and ANALYZE), s.
    pub load_secs: f64,
    /// Size of payments with its indexes, bytes.
    pub table_bytes: i64,
    /// Outbox operations in the table.
    pub operations: i64,
    /// Every call.
    pub queries: Vec<QueryResult>,
}

/// Payment latency with replication on and off.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OnOff {
    /// The enrolled agent.
    pub on: Pct,
    /// The agent that is not enrolled.
    pub off: Pct,
    /// p50 of each replication-on round, ms.
    pub on_round_p50: Vec<f64>,
    /// p50 of each replication-off round, ms.
    pub off_round_p50: Vec<f64>,
    /// on p50 ÷ off p50.
    pub ratio_p50: f64,
    /// on p95 ÷ off p95.
    pub ratio_p95: f64,
    /// The noise: the lowest and highest p50 of a replication-off round ÷ the off p50 overall.
    pub noise_band: (f64, f64),
}

/// Everything, as written to `fleet.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FleetResult {
    /// `SELECT version()`.
    pub postgres: String,
    /// The settings the cluster ran with.
    pub settings: String,
    /// Which build of till-fleet (`release` unless `--bin-dir` says otherwise).
    pub fleet_binary: String,
    /// Ingest.
    pub ingest: IngestResult,
    /// Dashboard per size.
    pub dashboard: Vec<DashboardAt>,
    /// POS answer → visible (approved) in the fleet's search API.
    pub lag: Pct,
    /// On vs off.
    pub on_off: OnOff,
    /// Stores and tills of the generated chain.
    pub stores: i64,
    /// Tills of the generated chain.
    pub chain_tills: i64,
    /// Quick run (figures not comparable).
    pub quick: bool,
    /// UTC time the run started.
    pub started: String,
    /// Commit measured (`BENCH_GIT`).
    pub git: String,
    /// Load averages at the start and the end.
    pub load: ([f64; 3], [f64; 3]),
    /// Seconds the whole fleet benchmark took.
    pub secs: f64,
}

/// A running `till-fleet serve`.
struct FleetServer {
    child: Child,
    url: String,
}

impl FleetServer {
    async fn start(bin: &Path, db: &str, log: &Path) -> Result<FleetServer> {
        let log_file = std::fs::File::create(log)?;
        let mut child = Command::new(bin)
            .args(["serve", "--database-url", db, "--listen", "127.0.0.1:0"])
            .env("TILL_FLEET_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("TILL_FLEET_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut rx = procs::line_reader(&mut child)?;
        let line = procs::next_line(&mut rx, Duration::from_secs(60), "till-fleet").await?;
        let url = line
            .trim()
            .strip_prefix("till-fleet listening on ")
            .ok_or_else(|| anyhow!("unexpected first line from till-fleet: {line}"))?
            .to_string();
        Ok(FleetServer { child, url })
    }

    async fn stop(self) {
        procs::terminate(self.child).await;
    }
}

/// A connection of the benchmark's own (COPY baseline, data generation, settings).
async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.context("connecting to PostgreSQL")?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// A till of the ingest benchmark: its identity and where its feed stands.
struct SimTill {
    id: String,
    secret: String,
    store_id: i64,
    next_seq: i64,
}

/// `till-fleet enrolment-code` then `POST /api/v1/enrol`, as an administrator and a till would.
async fn enrol_sim(bin: &Path, db: &str, fleet: &str, http: &reqwest::Client, store: &str, name: &str) -> Result<(String, String)> {
    let code = enrolment_code(bin, db, store).await?;
    let t: Value = http
        .post(format!("{fleet}/api/v1/enrol"))
        .json(&json!({ "code": code, "till_name": name, "version": "bench" }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok((
        t["till_id"].as_str().context("till_id")?.to_string(),
        t["secret"].as_str().context("secret")?.to_string(),
    ))
}

async fn enrolment_code(bin: &Path, db: &str, store: &str) -> Result<String> {
    let out = Command::new(bin)
        .args(["enrolment-code", "--store", store, "--database-url", db])
        .stdin(Stdio::null())
        .output()
        .await?;
    if !out.status.success() {
        bail!("till-fleet enrolment-code: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One change of the feed: an approved card payment, as the agent ships it.
fn payment_change(seq: i64, order: &str, amount: i64, at_ms: i64) -> Value {
    json!({ "seq": seq, "row_id": seq, "row": {
        "table": "payment", "local_id": format!("L-{order}"), "provider": "sensepass", "number": format!("N-{order}"),
        "device_id": "D", "order_id": order, "amount": amount, "currency": "GBP", "phase": "created",
        "status": 5, "is_open": false, "setup": false, "tender": "Visa", "last_four": "4242",
        "created_at_ms": at_ms, "updated_at_ms": at_ms, "final_at_ms": at_ms, "committed_at_ms": null, "failure": null
    }})
}

/// One fleet round: every till posts `batches` batches one after another, all tills at once.
async fn ingest_fleet_round(fleet: &str, tills: &mut [SimTill], plan: &FleetPlan, latencies: &mut Vec<Duration>) -> Result<IngestRound> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
    let url = format!("{fleet}/api/v1/replication/batch");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in tills.iter() {
        let (http, url, id, cred, first) = (http.clone(), url.clone(), t.id.clone(), format!("{}.{}", t.id, t.secret), t.next_seq);
        let (batches, per) = (plan.batches, plan.per_batch);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for b in 0..batches {
                let after = first - 1 + b * per;
                let at = now_ms();
                let changes: Vec<Value> =
                    (1..=per).map(|k| payment_change(after + k, &format!("{id}-{}", after + k), 1000 + k, at)).collect();
                let body = json!({
                    "till_id": id, "after": after, "through": after + per,
                    "agent": { "version": "bench", "queued_operations": 0, "changes_behind": 0 },
                    "changes": changes,
                });
                let t0 = Instant::now();
                let r = http.post(&url).bearer_auth(&cred).json(&body).send().await?;
                if r.status() != 200 {
                    bail!("batch refused: {} {}", r.status(), r.text().await.unwrap_or_default());
                }
                lat.push(t0.elapsed());
            }
            Ok::<Vec<Duration>, anyhow::Error>(lat)
        }));
    }
    for t in tasks {
        latencies.extend(t.await??);
    }
    let secs = started.elapsed().as_secs_f64();
    for t in tills.iter_mut() {
        t.next_seq += plan.batches * plan.per_batch;
    }
    let rows = tills.len() as i64 * plan.batches * plan.per_batch;
    Ok(IngestRound { mode: "fleet".into(), rows, secs, rate: rows as f64 / secs })
}

/// One COPY round: the same number of rows, batch size and connections, raw.
async fn ingest_copy_round(db: &str, tills: &[SimTill], plan: &FleetPlan, round: usize) -> Result<IngestRound> {
    use futures_util::SinkExt;
    let mut clients = Vec::new();
    for _ in tills {
        clients.push(connect(db).await?);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (t, mut client) in tills.iter().zip(clients) {
        let (id, store) = (t.id.clone(), t.store_id);
        let (batches, per) = (plan.batches, plan.per_batch);
        // Row ids far above anything the fleet rounds use, distinct per round.
        let base = 1_000_000_000 + round as i64 * 10_000_000;
        tasks.push(tokio::spawn(async move {
            for b in 0..batches {
                let now = time::OffsetDateTime::now_utc();
                let ts = now.format(&time::format_description::well_known::Rfc3339)?;
                let mut buf = String::with_capacity(per as usize * 200);
                for k in 1..=per {
                    let row = base + b * per + k;
                    buf.push_str(&format!(
                        "{id}\t{row}\t{ts}\t{store}\t{row}\tL-{row}\tsensepass\tN-{row}\tD\t{id}-c{row}\t{}\tGBP\tcreated\t5\tf\tf\tVisa\t4242\t{ts}\t{ts}\n",
                        1000 + k
                    ));
                }
                let tx = client.transaction().await?;
                let sink = tx
                    .copy_in(
                        "COPY payments (till_id, row_id, created_at, store_id, seq, local_id, provider, number, device_id, order_id, \
                         amount, currency, phase, status, is_open, setup, tender, last_four, updated_at, final_at) FROM STDIN",
                    )
                    .await?;
                futures_util::pin_mut!(sink);
                sink.send(bytes::Bytes::from(buf)).await?;
                sink.finish().await?;
                tx.commit().await?;
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    let rows = tills.len() as i64 * plan.batches * plan.per_batch;
    Ok(IngestRound { mode: "copy".into(), rows, secs, rate: rows as f64 / secs })
}

async fn ingest(bins: &FleetBins, db: &str, fleet: &str, plan: &FleetPlan) -> Result<IngestResult> {
    let http = reqwest::Client::new();
    let pg = connect(db).await?;
    let mut tills = Vec::new();
    for i in 0..plan.tills {
        let (id, secret) = enrol_sim(&bins.fleet, db, fleet, &http, &format!("Ingest {}", i % 5), &format!("Till {i}")).await?;
        let store_id: i64 = pg.query_one("SELECT store_id FROM tills WHERE id = $1::text::uuid", &[&id]).await?.get(0);
        tills.push(SimTill { id, secret, store_id, next_seq: 1 });
    }
    // The month's partition exists before the first COPY (the fleet creates it on ingest).
    pg.execute("SELECT fleet_ensure_month(now())", &[]).await?;
    let mut rounds = Vec::new();
    let mut latencies = Vec::new();
    for r in 0..plan.rounds {
        // Alternate which goes first, so drift hits both alike.
        if r % 2 == 0 {
            rounds.push(ingest_fleet_round(fleet, &mut tills, plan, &mut latencies).await?);
            rounds.push(ingest_copy_round(db, &tills, plan, r).await?);
        } else {
            rounds.push(ingest_copy_round(db, &tills, plan, r).await?);
            rounds.push(ingest_fleet_round(fleet, &mut tills, plan, &mut latencies).await?);
        }
        let last = &rounds[rounds.len() - 2..];
        eprintln!("fleet ingest: {} {:.0}/s, {} {:.0}/s", last[0].mode, last[0].rate, last[1].mode, last[1].rate);
    }
    let expected = 2 * plan.rounds as i64 * plan.tills as i64 * plan.batches * plan.per_batch;
    let n: i64 = pg.query_one("SELECT count(*) FROM payments", &[]).await?.get(0);
    if n != expected {
        bail!("payments after ingest: {n}, expected {expected}");
    }
    let rate = |mode: &str| {
        let (rows, secs) = rounds.iter().filter(|r| r.mode == mode).fold((0i64, 0f64), |(a, b), r| (a + r.rows, b + r.secs));
        rows as f64 / secs
    };
    Ok(IngestResult {
        tills: plan.tills,
        batches: plan.batches,
        per_batch: plan.per_batch,
        fleet_rate: rate("fleet"),
        copy_rate: rate("copy"),
        rounds,
        batch_latency: Pct::of(&latencies),
    })
}

/// Creates the generated chain: `stores` stores in three time zones, `tills_per_store` tills
/// each (seen within the last two minutes, as live tills are), and the partitions of the last
/// thirteen months.
async fn make_chain(pg: &tokio_postgres::Client, plan: &FleetPlan) -> Result<()> {
    pg.batch_execute(&format!(
        "INSERT INTO stores (name, time_zone) SELECT 'Store ' || lpad(s::text, 4, '0'), \
           (ARRAY['Europe/London', 'Europe/Berlin', 'America/New_York'])[1 + s % 3] FROM generate_series(1, {stores}) s;
         INSERT INTO tills (id, store_id, name, secret_hash, last_seen_at, version, cursor) \
           SELECT gen_random_uuid(), st.id, 'Till ' || t, '\\x00'::bytea, now() - random() * interval '2 minutes', 'bench-data', 0 \
           FROM stores st, generate_series(1, {per}) t WHERE st.name LIKE 'Store %';
         SELECT fleet_ensure_month(now() - make_interval(months => m)) FROM generate_series(0, 12) m;",
        stores = plan.stores,
        per = plan.tills_per_store
    ))
    .await?;
    Ok(())
}

/// Adds payments `from..=to` of the generated chain, spread evenly over the last 365 days in
/// time order (as tills write them), in chunks of a million rows (one transaction each).
///
/// Every value is a function of the row number `g`, so the searches can pick keys that exist:
/// order `ORD-g`; till by a skewed hash (some stores sell much more than others); status 90 %
/// approved, 5 % declined, 2 % failed, 1.5 % cancelled, 1 % refunded, 0.5 % still open; tender,
/// provider, last four digits and amount (1.00–200.99) spread by hashes of `g`.
async fn grow(pg: &tokio_postgres::Client, from: i64, to: i64) -> Result<()> {
    let count = to - from + 1;
    let mut start = from;
    while start <= to {
        let end = (start + 999_999).min(to);
        pg.execute(
            &format!(
                "INSERT INTO payments (till_id, row_id, created_at, store_id, seq, local_id, provider, number, device_id, order_id, \
                   amount, currency, phase, status, is_open, setup, tender, last_four, updated_at, final_at) \
                 SELECT c.ids[k], g, ts, c.sids[k], g, 'L' || g, \
                   (ARRAY['sensepass','sensepass','sensepass','sensepass','sensepass','sensepass','sensepass','connect-e','connect-e','acquired'])[1 + (g * 7) % 10], \
                   'N' || g, 'D', 'ORD-' || g, 100 + (g * 104729) % 20000, 'GBP', 'created', st, st IN (1), false, \
                   (ARRAY['Visa','Mastercard','Amex','Visa Debit'])[1 + (g * 13) % 4], lpad(((g * 7919) % 10000)::text, 4, '0'), ts, \
                   CASE WHEN st IN (1) THEN NULL ELSE ts END \
                 FROM (SELECT array_agg(id ORDER BY id) ids, array_agg(store_id ORDER BY id) sids, count(*)::int n \
                       FROM tills WHERE version = 'bench-data') c, \
                 LATERAL (SELECT g, \
                   1 + floor(c.n * power(((g * 48271) % 100003) / 100003.0, 1.6))::int AS k, \
                   now() - interval '365 days' + ((g - {from})::float8 / {count}) * interval '365 days' AS ts, \
                   (CASE WHEN (g * 31) % 1000 < 900 THEN 5 WHEN (g * 31) % 1000 < 950 THEN 6 WHEN (g * 31) % 1000 < 970 THEN 7 \
                         WHEN (g * 31) % 1000 < 985 THEN 9 WHEN (g * 31) % 1000 < 995 THEN 11 ELSE 1 END)::smallint AS st \
                   FROM generate_series({start}::bigint, {end}::bigint) g) x"
            ),
            &[],
        )
        .await?;
        // Refunds: one payment in fifty, delivered, except one in 5,000 still pending.
        pg.execute(
            &format!(
                "INSERT INTO operations (till_id, row_id, store_id, seq, op_key, kind, payment_local_id, amount, state, attempts, created_at, updated_at, finished_at) \
                 SELECT p.till_id, p.row_id + 5000000000, p.store_id, p.seq, 'refund-' || p.row_id, 'refund', p.local_id, p.amount / 2, \
                   CASE WHEN p.row_id % 5000 = 0 THEN 'pending' ELSE 'delivered' END, 1, p.created_at, p.created_at, \
                   CASE WHEN p.row_id % 5000 = 0 THEN NULL ELSE p.created_at END \
                 FROM payments p WHERE p.row_id BETWEEN {start} AND {end} AND p.row_id % 50 = 0 \
                   AND p.till_id IN (SELECT id FROM tills WHERE version = 'bench-data')"
            ),
            &[],
        )
        .await?;
        eprintln!("fleet dashboard: generated payments up to {end}");
        start = end + 1;
    }
    pg.batch_execute("ANALYZE payments; ANALYZE operations; ANALYZE tills; ANALYZE stores;").await?;
    Ok(())
}

/// The dashboard's calls; `{}` in a path is filled with a random existing key per run.
fn dashboard_calls(size: i64) -> Vec<(&'static str, String)> {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    let g = rng.gen_range(1..=size);
    let chosen = (time::OffsetDateTime::now_utc() - time::Duration::days(30)).date();
    vec![
        ("stores and tills (online, last seen, version, queued)", "/api/v1/tills".to_string()),
        ("day totals per store, till, provider, tender (with declines), today", "/api/v1/reports/day".to_string()),
        ("day totals per store, till, provider, tender (with declines), a chosen day", format!("/api/v1/reports/day?date={chosen}")),
        ("refunds pending", "/api/v1/reports/refunds-pending".to_string()),
        ("search by order id", format!("/api/v1/payments/search?order_id=ORD-{g}")),
        ("search by last four digits", format!("/api/v1/payments/search?last_four={:04}", rng.gen_range(0..10000))),
        ("search by amount", format!("/api/v1/payments/search?amount={}", 100 + rng.gen_range(0..20000))),
    ]
}

/// One name per index of the partitioned table: `payments_2026_11_store_id_created_at_…_idx`
/// → `payments.store_id_created_at_…_idx`.
fn index_name(idx: &str) -> String {
    let parts: Vec<&str> = idx.splitn(4, '_').collect();
    if parts.len() == 4 && parts[0] == "payments" && parts[1].len() == 4 && parts[1].chars().all(|c| c.is_ascii_digit()) {
        format!("payments.{}", parts[3])
    } else {
        idx.to_string()
    }
}

/// Summarises the scans of a plan: node type and index or relation, with counts; and whether it
/// is free of sequential scans of the big tables (payments partitions, operations).
fn summarise_plan(plan: &str) -> (String, bool) {
    let mut seen: Vec<(String, usize)> = Vec::new();
    let mut seq_on_big = false;
    for line in plan.lines() {
        let l = line.trim().trim_start_matches("->").trim();
        let (on, using) = (l.find(" on "), l.find(" using "));
        let kind_end = match (on, using) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => continue,
        };
        let kind = &l[..kind_end];
        if !kind.ends_with("Scan") && !kind.ends_with("Scan Backward") {
            continue;
        }
        let word_after = |at: usize, skip: usize| l[at + skip..].split_whitespace().next().unwrap_or("").to_string();
        let target = if let Some(u) = using {
            index_name(&word_after(u, 7))
        } else if kind == "Bitmap Index Scan" {
            index_name(&word_after(kind_end, 4))
        } else {
            let rel = word_after(kind_end, 4);
            if kind.ends_with("Seq Scan") && (rel.starts_with("payments") || rel == "operations") {
                seq_on_big = true;
            }
            if rel.starts_with("payments_") { "payments (partition)".to_string() } else { rel }
        };
        let key = format!("{kind} {target}");
        match seen.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => seen.push((key, 1)),
        }
    }
    let s = seen.iter().map(|(k, n)| if *n > 1 { format!("{k} ×{n}") } else { k.clone() }).collect::<Vec<_>>().join("; ");
    (s, !seq_on_big)
}

async fn dashboard(pgc: &Postgres, pg: &tokio_postgres::Client, fleet: &str, size: i64, load_secs: f64, runs: usize) -> Result<DashboardAt> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
    let call = |path: String| {
        let http = http.clone();
        let url = format!("{fleet}{path}");
        async move {
            let t0 = Instant::now();
            let r = http.get(url).bearer_auth(ADMIN_TOKEN).send().await?;
            if !r.status().is_success() {
                bail!("{path}: {}", r.status());
            }
            let v: Value = r.json().await?;
            Ok::<(Duration, usize), anyhow::Error>((t0.elapsed(), v.as_array().map(Vec::len).unwrap_or(0)))
        }
    };
    let names: Vec<&str> = dashboard_calls(size).iter().map(|c| c.0).collect();
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
    let mut rows = vec![0usize; names.len()];
    // One unmeasured pass (connections, caches), then `runs` passes, calls interleaved.
    for pass in 0..=runs {
        for (i, (_, path)) in dashboard_calls(size).into_iter().enumerate() {
            let (d, n) = call(path).await?;
            if pass > 0 {
                samples[i].push(d);
                rows[i] = n;
            }
        }
    }
    // Plans of what the fleet ran: auto_explain on for one more pass.
    // ALTER SYSTEM refuses to run in a transaction: one statement at a time.
    for sql in [
        "ALTER SYSTEM SET auto_explain.log_min_duration = 0",
        "ALTER SYSTEM SET auto_explain.log_analyze = on",
        "ALTER SYSTEM SET auto_explain.log_buffers = on",
        "SELECT pg_reload_conf()",
    ] {
        pg.batch_execute(sql).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut plans = Vec::new();
    for (_, path) in dashboard_calls(size) {
        let before = procs::file_size(&pgc.log_path());
        call(path).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let log = std::fs::read(pgc.log_path())?;
        let text = String::from_utf8_lossy(&log[(before as usize).min(log.len())..]).to_string();
        plans.push(text);
    }
    for sql in [
        "ALTER SYSTEM RESET auto_explain.log_min_duration",
        "ALTER SYSTEM RESET auto_explain.log_analyze",
        "ALTER SYSTEM RESET auto_explain.log_buffers",
        "SELECT pg_reload_conf()",
    ] {
        pg.batch_execute(sql).await?;
    }
    let table_bytes: i64 = pg
        .query_one("SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0)::bigint FROM pg_inherits WHERE inhparent = 'payments'::regclass", &[])
        .await?
        .get(0);
    let operations: i64 = pg.query_one("SELECT count(*) FROM operations", &[]).await?.get(0);
    let payments: i64 = pg.query_one("SELECT count(*) FROM payments", &[]).await?.get(0);
    let calls = dashboard_calls(size);
    let mut queries = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let (plan_summary, uses_indexes) = summarise_plan(&plans[i]);
        queries.push(QueryResult {
            name: name.to_string(),
            path: calls[i].1.clone(),
            latency: Pct::of(&samples[i]),
            rows: rows[i],
            plan_summary,
            uses_indexes,
            plan: plans[i].clone(),
        });
        eprintln!("fleet dashboard at {payments}: {name}: p50 {:.1} ms p95 {:.1} ms", queries[i].latency.p50_ms, queries[i].latency.p95_ms);
    }
    Ok(DashboardAt { payments, load_secs, table_bytes, operations, queries })
}

/// The binaries of the fleet benchmark.
pub struct FleetBins {
    /// Agent and sandbox.
    pub bins: Bins,
    /// `till-fleet`.
    pub fleet: PathBuf,
}

/// A POS of one agent: pays and waits for the approval.
struct Pos {
    client: Client,
}

impl Pos {
    fn new(agent: &AgentProc, device: &str) -> Result<Pos> {
        let config = ClientConfig { base_url: format!("{}/api/", agent.url), timeout: Duration::from_secs(30), connect_timeout: Duration::from_secs(10) };
        Ok(Pos { client: Client::new(config, Credentials::Device(device.to_string()))? })
    }

    async fn pay(&self, order: &str) -> Result<Duration> {
        let t0 = Instant::now();
        let (status, body) = self
            .client
            .forward(reqwest::Method::POST, "transactions/init/sync", Some(json!({ "amount": 1250, "currency": "USD", "isCent": true, "posData": { "orderId": order } })))
            .await
            .map_err(|e| anyhow!("init/sync: {e}"))?;
        if status != 200 || body.get("status").and_then(Value::as_i64) != Some(5) {
            bail!("init/sync answered {status}: {body}");
        }
        Ok(t0.elapsed())
    }
}

/// Lag and on/off: a sandbox, one enrolled agent and one that is not.
async fn tills_against_sandbox(fb: &FleetBins, work: &Path, db: &str, fleet: &str, plan: &FleetPlan) -> Result<(Pct, OnOff)> {
    let http = procs::http()?;
    let sandbox = SandboxProc::start(&fb.bins, &work.join("fleet-sandbox.log")).await?;
    let result = async {
        let (dev_on, dev_off) = (sandbox.create_device(&http, "on").await?, sandbox.create_device(&http, "off").await?);
        let (dir_on, dir_off) = (work.join("fleet-agent-on"), work.join("fleet-agent-off"));
        for d in [&dir_on, &dir_off] {
            if d.exists() {
                std::fs::remove_dir_all(d)?;
            }
        }
        procs::pair(&fb.bins, &dir_on, &dev_on, &sandbox).await?;
        procs::pair(&fb.bins, &dir_off, &dev_off, &sandbox).await?;
        let code = enrolment_code(&fb.fleet, db, "Lag store").await?;
        let out = Command::new(&fb.bins.agent)
            .args(["enrol", "--fleet-url", fleet, "--code", &code, "--till-name", "Till 1"])
            .args(procs::common_args(&dir_on, None))
            .env("TILL_AGENT_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .await?;
        if !out.status.success() {
            bail!("till-agent enrol: {}", String::from_utf8_lossy(&out.stderr));
        }
        let on = AgentProc::start(&fb.bins, &dir_on, AgentMode::External(&sandbox)).await?;
        let off = AgentProc::start(&fb.bins, &dir_off, AgentMode::External(&sandbox)).await?;
        on.wait_ready(&http, true, Duration::from_secs(60)).await?;
        off.wait_ready(&http, true, Duration::from_secs(60)).await?;
        sandbox.autopilot(&http, Some(0)).await?;
        let (pos_on, pos_off) = (Pos::new(&on, &dev_on)?, Pos::new(&off, &dev_off)?);
        // Warm-up: both agents pay once; the enrolled one is caught up before anything is timed.
        pos_on.pay("warm-on").await?;
        pos_off.pay("warm-off").await?;

        // Lag: POS answer → found, approved, by the fleet's search (polled every 5 ms).
        let api = reqwest::Client::new();
        let mut lags = Vec::new();
        for i in 0..plan.lag_samples {
            let order = format!("LAG-{i}");
            pos_on.pay(&order).await?;
            let answered = Instant::now();
            let deadline = answered + Duration::from_secs(20);
            loop {
                let v: Value = api
                    .get(format!("{fleet}/api/v1/payments/search?order_id={order}"))
                    .bearer_auth(ADMIN_TOKEN)
                    .send()
                    .await?
                    .json()
                    .await?;
                if v.as_array().and_then(|a| a.first()).is_some_and(|p| p["status"] == 5) {
                    lags.push(answered.elapsed());
                    break;
                }
                if Instant::now() > deadline {
                    bail!("{order} did not reach the fleet within 20 s");
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // Payments at a till are seconds apart, not back to back: let the feed go idle.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }

        // On vs off, alternating rounds (off, on, on, off, …).
        let (mut on_all, mut off_all) = (Vec::new(), Vec::new());
        let (mut on_p50, mut off_p50) = (Vec::new(), Vec::new());
        for r in 0..plan.latency_rounds * 2 {
            let replicating = matches!(r % 4, 1 | 2);
            let pos = if replicating { &pos_on } else { &pos_off };
            let mut lat = Vec::new();
            for k in 0..plan.latency_per_round {
                lat.push(pos.pay(&format!("ONOFF-{r}-{k}")).await?);
            }
            let p = Pct::of(&lat).p50_ms;
            if replicating {
                on_p50.push(p);
                on_all.extend(lat);
            } else {
                off_p50.push(p);
                off_all.extend(lat);
            }
        }
        let (on_pct, off_pct) = (Pct::of(&on_all), Pct::of(&off_all));
        let lo = off_p50.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = off_p50.iter().copied().fold(0.0, f64::max);
        let on_off = OnOff {
            ratio_p50: on_pct.p50_ms / off_pct.p50_ms,
            ratio_p95: on_pct.p95_ms / off_pct.p95_ms,
            noise_band: (lo / off_pct.p50_ms, hi / off_pct.p50_ms),
            on: on_pct,
            off: off_pct,
            on_round_p50: on_p50,
            off_round_p50: off_p50,
        };
        // The enrolled till's payments all reached the fleet.
        let caught_up = Instant::now() + Duration::from_secs(30);
        loop {
            let h: Value = http.get(format!("{}/api/agent/health", on.url)).send().await?.json().await?;
            if h["fleet"]["changesBehind"] == 0 {
                break;
            }
            if Instant::now() > caught_up {
                bail!("the enrolled till did not catch up: {h}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        on.stop().await;
        off.stop().await;
        Ok::<_, anyhow::Error>((Pct::of(&lags), on_off))
    }
    .await;
    sandbox.stop().await;
    result
}

/// The whole fleet benchmark.
pub async fn run(fb: &FleetBins, work: &Path, plan: &FleetPlan, quick: bool) -> Result<FleetResult> {
    if !fb.fleet.is_file() {
        bail!("{} is missing: build with `cargo build --release -p till-fleet`", fb.fleet.display());
    }
    std::fs::create_dir_all(work)?;
    let (started_at, load_start) = (Instant::now(), procs::loadavg());
    let started = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let cluster = tokio::task::spawn_blocking(|| Postgres::start_with(PG_SETTINGS)).await??;
    let db = {
        let c = &cluster;
        tokio::task::block_in_place(|| c.create_db("fleet"))?
    };
    let server = FleetServer::start(&fb.fleet, &db, &work.join("fleet-stderr.log")).await?;
    let result = async {
        let pg = connect(&db).await?;
        let postgres: String = pg.query_one("SELECT version()", &[]).await?.get(0);
        let t = Instant::now();
        let ingest = ingest(fb, &db, &server.url, plan).await?;
        eprintln!("fleet ingest: {:.0} s", t.elapsed().as_secs_f64());

        // The dashboard over a generated chain. The ingest rows go: all of today in five
        // stores, they would make "today" a day no chain has.
        pg.batch_execute("TRUNCATE payments").await?;
        make_chain(&pg, plan).await?;
        let mut dashboard_results = Vec::new();
        let mut have = 0i64;
        for &size in &plan.sizes {
            let t = Instant::now();
            grow(&pg, have + 1, size).await?;
            have = size;
            let load_secs = t.elapsed().as_secs_f64();
            eprintln!("fleet dashboard: {size} payments generated in {load_secs:.0} s");
            dashboard_results.push(dashboard(&cluster, &pg, &server.url, size, load_secs, plan.query_runs).await?);
        }
        let (lag, on_off) = tills_against_sandbox(fb, work, &db, &server.url, plan).await?;
        let profile = fb.fleet.parent().and_then(Path::file_name).map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        Ok::<_, anyhow::Error>(FleetResult {
            postgres,
            settings: PG_SETTINGS.trim().replace('\n', ", "),
            fleet_binary: profile,
            ingest,
            dashboard: dashboard_results,
            lag,
            on_off,
            stores: plan.stores,
            chain_tills: plan.stores * plan.tills_per_store,
            quick,
            started,
            git: std::env::var("BENCH_GIT").unwrap_or_default(),
            load: (load_start, procs::loadavg()),
            secs: started_at.elapsed().as_secs_f64(),
        })
    }
    .await;
    server.stop().await;
    tokio::task::spawn_blocking(move || drop(cluster)).await?;
    result
}

fn f_ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2} ms")
    } else if v < 1000.0 {
        format!("{v:.1} ms")
    } else {
        format!("{:.2} s", v / 1000.0)
    }
}

fn millions(n: i64) -> String {
    if n >= 1_000_000 {
        format!("{:.1} M", n as f64 / 1e6)
    } else {
        n.to_string()
    }
}

/// The tables of BENCHMARKS.md §6.
pub fn table(r: &FleetResult) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Run {} (commit `{}`), `till-fleet` {} build, {} cores shared with other builds (load average {:.2} at the start, {:.2} at the end); the fleet benchmark took {:.0} s. {}.\n\nCluster settings: `{}`.\n",
        r.started,
        r.git,
        r.fleet_binary,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        r.load.0[0],
        r.load.1[0],
        r.secs,
        r.postgres.split(" on ").next().unwrap_or(&r.postgres),
        r.settings
    );
    let i = &r.ingest;
    let _ = writeln!(s, "**Ingest**: {} tills at once, each {} batches of {} payments per round, rounds alternating.\n", i.tills, i.batches, i.per_batch);
    let _ = writeln!(s, "| round | path | payments | time | payments/s |\n|---:|---|---:|---:|---:|");
    for (n, x) in i.rounds.iter().enumerate() {
        let path = if x.mode == "fleet" { "HTTP batches through `till-fleet` (validation, auth, gap check, upserts, cursor)" } else { "raw `COPY … FROM STDIN` (tokio-postgres `copy_in`), one transaction per batch" };
        let _ = writeln!(s, "| {} | {} | {} | {:.1} s | {:.0} |", n + 1, path, x.rows, x.secs, x.rate);
    }
    let _ = writeln!(
        s,
        "\nThrough the fleet **{:.0} payments/s**, COPY {:.0} payments/s: the fleet reaches **{:.0} %** of the raw baseline ({:.2}×). One batch of {} through the fleet: p50 {}, p95 {}, max {}.\n",
        i.fleet_rate,
        i.copy_rate,
        100.0 * i.fleet_rate / i.copy_rate,
        i.fleet_rate / i.copy_rate,
        i.per_batch,
        f_ms(i.batch_latency.p50_ms),
        f_ms(i.batch_latency.p95_ms),
        f_ms(i.batch_latency.max_ms)
    );
    let _ = writeln!(s, "**Dashboard** ({} stores, {} tills; API calls over HTTP with a kept-alive connection, {} runs each, random keys):\n", r.stores, r.chain_tills, r.dashboard.first().map(|d| d.queries.first().map(|q| q.latency.count).unwrap_or(0)).unwrap_or(0));
    let mut head = String::from("| call |");
    let mut rule = String::from("|---|");
    for d in &r.dashboard {
        let _ = write!(head, " {} p50 | {} p95 |", millions(d.payments), millions(d.payments));
        rule.push_str("---:|---:|");
    }
    head.push_str(" rows | plan (scans) at the largest size |");
    rule.push_str("---:|---|");
    let _ = writeln!(s, "{head}\n{rule}");
    if let Some(last) = r.dashboard.last() {
        for (k, q) in last.queries.iter().enumerate() {
            let mut row = format!("| {} |", q.name);
            for d in &r.dashboard {
                let l = &d.queries[k].latency;
                let _ = write!(row, " {} | {} |", f_ms(l.p50_ms), f_ms(l.p95_ms));
            }
            let flag = if q.uses_indexes { "" } else { " **(sequential scan)**" };
            let _ = write!(row, " {} | {}{} |", q.rows, q.plan_summary, flag);
            let _ = writeln!(s, "{row}");
        }
    }
    let _ = writeln!(s);
    for d in &r.dashboard {
        let _ = writeln!(
            s,
            "- {} payments ({} outbox operations): generated in {:.0} s; payments with indexes {:.2} GB.",
            d.payments,
            d.operations,
            d.load_secs,
            d.table_bytes as f64 / 1e9
        );
    }
    let _ = writeln!(
        s,
        "\n**Lag**, POS answer at the till → the payment found, approved, by `GET /api/v1/payments/search` (polled every 5 ms): {} samples, p50 {}, p95 {}, max {}.\n",
        r.lag.count,
        f_ms(r.lag.p50_ms),
        f_ms(r.lag.p95_ms),
        f_ms(r.lag.max_ms)
    );
    let o = &r.on_off;
    let _ = writeln!(s, "**Payment latency at the till** (`init/sync`, POS → approved answer), replication on vs off, alternating rounds of one run:\n");
    let _ = writeln!(s, "| replication | payments | p50 | p95 | max | p50 of each round |\n|---|---:|---:|---:|---:|---|");
    for (name, p, rounds) in [("on (enrolled, shipping)", &o.on, &o.on_round_p50), ("off (not enrolled)", &o.off, &o.off_round_p50)] {
        let rs: Vec<String> = rounds.iter().map(|v| format!("{v:.2}")).collect();
        let _ = writeln!(s, "| {name} | {} | {} | {} | {} | {} |", p.count, f_ms(p.p50_ms), f_ms(p.p95_ms), f_ms(p.max_ms), rs.join(", "));
    }
    // The noise: how far a round's p50 moves from its own agent's overall p50, over the rounds of
    // both agents (the same configuration, measured again).
    let spread: Vec<f64> = o
        .on_round_p50
        .iter()
        .map(|v| v / o.on.p50_ms)
        .chain(o.off_round_p50.iter().map(|v| v / o.off.p50_ms))
        .collect();
    let lo = spread.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = spread.iter().copied().fold(0.0, f64::max);
    let verdict = if o.ratio_p50 < lo {
        "below the noise band (on was faster)"
    } else if o.ratio_p50 > hi {
        "**above the noise band**"
    } else {
        "**within the noise**"
    };
    let _ = writeln!(
        s,
        "\non ÷ off: p50 **{:.2}×**, p95 {:.2}×. Noise: a round's p50 lies between {:.2}× and {:.2}× of its own agent's p50 (both agents' rounds; off rounds alone {:.2}×–{:.2}×), so the p50 ratio is {verdict}.",
        o.ratio_p50,
        o.ratio_p95,
        lo,
        hi,
        o.noise_band.0,
        o.noise_band.1
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_summary_names_scans_and_flags_sequential_ones() {
        let plan = "Limit\n  ->  Merge Append\n        ->  Index Scan Backward using payments_2026_11_last_four_created_at_idx on payments_2026_11 p_1\n        ->  Index Scan Backward using payments_2026_10_last_four_created_at_idx on payments_2026_10 p_2\n  ->  Seq Scan on stores s\n";
        let (s, ok) = summarise_plan(plan);
        assert_eq!(s, "Index Scan Backward payments.last_four_created_at_idx ×2; Seq Scan stores");
        assert!(ok);
        let (_, ok) = summarise_plan("->  Parallel Seq Scan on payments_2026_11 p_1\n");
        assert!(!ok, "a sequential scan of a payments partition is flagged");
    }
}
