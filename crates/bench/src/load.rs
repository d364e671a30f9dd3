//! The load generator: N simulated POS clients paying through Till Agent, against the same N
//! clients paying SensePass (the sandbox) directly, in one run, alternating.
//!
//! The agent allows one payment at a time per device (a second one gets `409 busy`), exactly as a
//! till does. N concurrent POS clients are therefore N tills: N `till-agent run` processes, each
//! paired (`till-agent pair --device-id`) with its own device of ONE `till-sandbox` process —
//! the same shape as N stores' tills talking to SensePass, squeezed onto one machine. The direct
//! clients get N other devices of the same sandbox. Every process of both sides stays up for
//! the whole level (all sockets connected), so both modes see the same background; each level
//! starts from a fresh sandbox and fresh journals.
//!
//! A POS client is a closed loop: pay, wait for the outcome, pay again.
//! - **agent**: `POST /api/transactions/init/sync` on its agent with `till_sensepass::Client::forward`
//!   (a new connection per call, as the project's client always does); done when the answer
//!   (status 5) arrives.
//! - **direct**: `till_sensepass::Client::init` on the sandbox, then the final status from its own
//!   Socket.IO listener (`till_sensepass::socket`), with a status poll as a safety net after 2 s
//!   of silence; done when the final status arrives. The payment commit follows outside the
//!   timed window, as the agent's outbox does it after answering.
//!
//! The sandbox's autopilot approves every new transaction at once (`approveAfterMs: 0`), so
//! what is left is the cost of the path itself.
//!
//! A POS that has no answer after [`STALL`] hangs up and asks `GET /api/transactions/last`, as
//! the agent tells it to. Such a request counts as *stalled*: in the latency figures with the time
//! the POS waited, and separately by number, so a lost status event cannot hide.

use crate::procs::{self, AgentMode, AgentProc, Bins, SandboxProc};
use crate::stats::Summary;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use till_sensepass::socket::{spawn_listener, SocketEvent};
use till_sensepass::{Client, ClientConfig, Credentials, InitRequest};
use tokio::sync::{mpsc, Mutex};
use tokio_util::sync::CancellationToken;

/// How much load, for how long.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// Concurrency levels (number of POS clients), e.g. 1, 16, 200.
    pub levels: Vec<usize>,
    /// Measured rounds per mode and level (alternating agent/direct, order flipped every pair).
    pub rounds: usize,
    /// Length of one measured round, seconds, per level (the last value repeats).
    pub round_secs: Vec<f64>,
    /// Length of the unmeasured warm-up round per mode and level, seconds.
    pub warmup_secs: f64,
}

/// Which path a POS client pays through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Through a till-agent process.
    Agent,
    /// Straight to the sandbox.
    Direct,
}

/// One mode's figures at one level.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ModeResult {
    /// Per-request latency as the POS sees it, over every measured round; a stalled request
    /// counts with the time the POS waited before giving up ([`STALL`]).
    pub latency: Summary,
    /// The same over answered (approved) requests only.
    pub answered_latency: Summary,
    /// Approved payments per second over the measured rounds (answered / wall time).
    pub throughput_per_s: f64,
    /// Approved payments.
    pub completed: usize,
    /// Requests without an answer within [`STALL`] (agent mode).
    pub stalls: usize,
    /// Failed payments (any error or a non-approved outcome).
    pub errors: usize,
    /// Direct mode: outcomes that needed the status poll because no socket event came in 2 s.
    pub fallback_polls: u64,
    /// Throughput of each measured round, to show the spread.
    pub round_throughputs: Vec<f64>,
    /// CPU time per payment (ms) of the agent processes in use (agent mode only).
    pub cpu_agent_ms_per_payment: f64,
    /// CPU time per payment (ms) of the sandbox process.
    pub cpu_sandbox_ms_per_payment: f64,
    /// CPU time per payment (ms) of the load generator itself.
    pub cpu_loadgen_ms_per_payment: f64,
}

/// Figures of one concurrency level.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LevelResult {
    /// Concurrent POS clients.
    pub clients: usize,
    /// Through the agent.
    pub agent: ModeResult,
    /// Straight to the sandbox.
    pub direct: ModeResult,
    /// Largest resident set of any agent process in use during the agent rounds, KiB.
    pub agent_max_rss_kb: u64,
}

/// The whole load benchmark.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoadResult {
    /// One entry per level.
    pub levels: Vec<LevelResult>,
    /// Agent processes running during the benchmark (the largest level).
    pub agents_running: usize,
    /// Seconds spent creating devices, pairing and starting every agent.
    pub setup_secs: f64,
    /// Idle resident set of agent 0 after setup, before any payment, KiB.
    pub agent_idle_rss_kb: u64,
    /// Load average (1 min) before and after.
    pub load_before: f64,
    /// Load average (1 min) after.
    pub load_after: f64,
}

/// A POS client paying straight to the sandbox with its own device and socket.
struct DirectPos {
    client: Client,
    events: Mutex<mpsc::Receiver<SocketEvent>>,
    polls: AtomicU64,
}

/// A POS client of one agent.
struct AgentPos {
    client: Client,
    pid: u32,
}

/// The processes and clients of the benchmark.
struct Fleet {
    sandbox: SandboxProc,
    agents: Vec<AgentProc>,
    agent_pos: Vec<Arc<AgentPos>>,
    direct_pos: Vec<Arc<DirectPos>>,
    shutdown: CancellationToken,
}

fn client_config(base: String) -> ClientConfig {
    ClientConfig {
        base_url: base,
        timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(10),
    }
}

/// Runs `f` over `items` with at most `width` at a time, keeping the results in order.
async fn bounded<T, R, F, Fut>(items: Vec<T>, width: usize, f: F) -> Result<Vec<R>>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = Result<R>>,
{
    use futures_util::StreamExt;
    let results: Vec<Result<R>> = futures_util::stream::iter(items.into_iter().map(f))
        .buffered(width)
        .collect()
        .await;
    results.into_iter().collect()
}

impl Fleet {
    async fn start(bins: &Bins, work: &Path, size: usize) -> Result<Fleet> {
        let http = procs::http()?;
        let sandbox = SandboxProc::start(bins, &work.join("sandbox.log")).await?;
        let mut agent_devices = Vec::with_capacity(size);
        let mut direct_devices = Vec::with_capacity(size);
        for i in 0..size {
            agent_devices.push(
                sandbox
                    .create_device(&http, &format!("agent till {i}"))
                    .await?,
            );
            direct_devices.push(
                sandbox
                    .create_device(&http, &format!("direct till {i}"))
                    .await?,
            );
        }
        // Pair every agent's data directory (a few `till-agent pair` processes at a time).
        let dirs: Vec<_> = (0..size)
            .map(|i| work.join(format!("agent-{i:03}")))
            .collect();
        for d in &dirs {
            if d.exists() {
                std::fs::remove_dir_all(d).with_context(|| format!("clearing {}", d.display()))?;
            }
        }
        let sb = &sandbox;
        bounded(
            dirs.iter().zip(&agent_devices).collect(),
            8,
            |(dir, dev)| async move { procs::pair(bins, dir, dev, sb).await },
        )
        .await?;
        let agents: Vec<AgentProc> = bounded(dirs.iter().collect(), 16, |dir| async move {
            AgentProc::start(bins, dir, AgentMode::External(sb)).await
        })
        .await?;
        bounded(agents.iter().collect(), 32, |a| {
            let http = http.clone();
            async move {
                a.wait_ready(&http, true, Duration::from_secs(120))
                    .await
                    .map(|_| ())
            }
        })
        .await?;
        let mut agent_pos = Vec::with_capacity(size);
        for (a, dev) in agents.iter().zip(&agent_devices) {
            let client = Client::new(
                client_config(format!("{}/api/", a.url)),
                Credentials::Device(dev.clone()),
            )?;
            agent_pos.push(Arc::new(AgentPos {
                client,
                pid: a.pid().unwrap_or(0),
            }));
        }
        let shutdown = CancellationToken::new();
        let mut direct_pos = Vec::with_capacity(size);
        for dev in &direct_devices {
            let client = Client::new(
                client_config(sandbox.api_base.clone()),
                Credentials::Device(dev.clone()),
            )?;
            let rx = spawn_listener(
                sandbox.socket_url.clone(),
                dev.clone(),
                shutdown.child_token(),
            );
            direct_pos.push(Arc::new(DirectPos {
                client,
                events: Mutex::new(rx),
                polls: AtomicU64::new(0),
            }));
        }
        // Every direct listener connected before anything is measured.
        for pos in &direct_pos {
            let mut rx = pos.events.lock().await;
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, rx.recv()).await {
                    Ok(Some(SocketEvent::Connected)) => break,
                    Ok(Some(_)) => continue,
                    Ok(None) => bail!("direct listener stopped"),
                    Err(_) => bail!("direct listener did not connect within 60 s"),
                }
            }
        }
        sandbox.autopilot(&http, Some(0)).await?;
        Ok(Fleet {
            sandbox,
            agents,
            agent_pos,
            direct_pos,
            shutdown,
        })
    }

    async fn stop(self) {
        self.shutdown.cancel();
        for a in self.agents {
            a.stop().await;
        }
        self.sandbox.stop().await;
    }
}

/// The body a POS sends for one sale.
fn sale(order: &str) -> Value {
    json!({ "amount": 1250, "currency": "USD", "isCent": true, "posData": { "orderId": order } })
}

/// How long a POS waits for its `init/sync` answer before it gives up, hangs up and asks
/// `GET /api/transactions/last` instead (what the agent's own error message tells it to do):
/// 10 s, the shortest payment lifetime SensePass allows (`timeOut` ≥ 10). The happy path is
/// three orders of magnitude faster, so a payment that takes this long is stalled.
pub const STALL: Duration = Duration::from_secs(10);

/// How long a POS keeps asking `GET /api/transactions/last` after a stall.
const RECOVER_LIMIT: Duration = Duration::from_secs(5);

/// What became of one POS request.
enum Paid {
    /// Approved, in this time.
    Answered(Duration),
    /// No answer within [`STALL`]; the POS hung up at this time.
    Stalled(Duration),
}

impl AgentPos {
    async fn pay(&self, order: &str) -> Result<Paid> {
        let t0 = Instant::now();
        let call = self.client.forward(
            reqwest::Method::POST,
            "transactions/init/sync",
            Some(sale(order)),
        );
        let (status, body) = match tokio::time::timeout(STALL, call).await {
            Ok(answer) => answer.map_err(|e| anyhow!("init/sync: {e}"))?,
            Err(_) => {
                let waited = t0.elapsed();
                self.recover().await;
                return Ok(Paid::Stalled(waited));
            }
        };
        if status != 200 || body.get("status").and_then(Value::as_i64) != Some(5) {
            if status == 409 {
                self.recover().await;
            }
            bail!("init/sync answered {status}: {body}");
        }
        Ok(Paid::Answered(t0.elapsed()))
    }

    /// After a lost answer: `GET /api/transactions/last` (which makes the agent re-read an open
    /// payment from SensePass) until the last payment is final, for at most [`RECOVER_LIMIT`].
    async fn recover(&self) {
        let end = Instant::now() + RECOVER_LIMIT;
        for _ in 0..50 {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            let ask = self
                .client
                .forward(reqwest::Method::GET, "transactions/last", None);
            if let Ok(Ok((200, body))) = tokio::time::timeout(left, ask).await {
                let s = body.get("status").and_then(Value::as_i64).unwrap_or(0);
                if till_core::Status::from_code(s)
                    .map(|s| s.is_final())
                    .unwrap_or(false)
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl DirectPos {
    /// Pays and returns the time until the final status; commits afterwards (not timed).
    async fn pay(&self, order: &str) -> Result<Duration> {
        let req =
            InitRequest::from_pos_json(sale(order)).map_err(|e| anyhow!("invalid sale: {e:?}"))?;
        let mut events = self.events.lock().await;
        let t0 = Instant::now();
        let created = self
            .client
            .init(&req)
            .await
            .map_err(|e| anyhow!("init: {e}"))?;
        let number = created.number().clone();
        let deadline = t0 + Duration::from_secs(30);
        let outcome = loop {
            match tokio::time::timeout(Duration::from_secs(2), events.recv()).await {
                Ok(Some(SocketEvent::Message(t)))
                    if t.number() == &number && t.status().is_final() =>
                {
                    break t
                }
                Ok(Some(_)) => continue,
                Ok(None) => bail!("socket listener stopped"),
                Err(_) => {
                    self.polls.fetch_add(1, Ordering::Relaxed);
                    let t = self
                        .client
                        .transaction(number.as_str())
                        .await
                        .map_err(|e| anyhow!("poll: {e}"))?;
                    if t.status().is_final() {
                        break t;
                    }
                    if Instant::now() > deadline {
                        bail!("no final status within 30 s");
                    }
                }
            }
        };
        let elapsed = t0.elapsed();
        drop(events);
        if outcome.status().code() != 5 {
            bail!("payment ended in status {}", outcome.status().code());
        }
        if let Some(link) = outcome.payment_commit().and_then(|c| c.commit_link) {
            let _ = self.client.commit_payment(&link).await;
        }
        Ok(elapsed)
    }
}

/// What one round produced.
#[derive(Default)]
struct RoundOut {
    /// Every answered payment, and every stalled one at the time the POS gave up.
    latencies: Vec<Duration>,
    /// Answered payments only.
    answered: Vec<Duration>,
    stalls: usize,
    errors: usize,
    wall: Duration,
    first_error: Option<String>,
}

static ORDER_SEQ: AtomicU64 = AtomicU64::new(0);

fn next_order(run: &str, mode: Mode) -> String {
    let n = ORDER_SEQ.fetch_add(1, Ordering::Relaxed);
    format!("bench-{run}-{mode:?}-{n}")
}

/// One closed-loop round of `clients` POS clients in `mode`, `secs` long (each client finishes
/// the payment in flight at the end, and none makes more than 10 000 payments).
async fn round(fleet: &Fleet, run: &str, mode: Mode, clients: usize, secs: f64) -> RoundOut {
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        let agent = fleet.agent_pos[i].clone();
        let direct = fleet.direct_pos[i].clone();
        let run = run.to_string();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            let mut out = RoundOut::default();
            for _ in 0..10_000 {
                if Instant::now() >= end {
                    break;
                }
                let order = next_order(&run, mode);
                let result = match mode {
                    Mode::Agent => agent.pay(&order).await,
                    Mode::Direct => direct.pay(&order).await.map(Paid::Answered),
                };
                match result {
                    Ok(Paid::Answered(d)) => {
                        out.latencies.push(d);
                        out.answered.push(d);
                    }
                    Ok(Paid::Stalled(d)) => {
                        out.latencies.push(d);
                        out.stalls += 1;
                    }
                    Err(e) => {
                        out.errors += 1;
                        out.first_error.get_or_insert_with(|| e.to_string());
                        // Do not spin on a broken path.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            out
        }));
    }
    let mut total = RoundOut::default();
    for t in tasks {
        if let Ok(out) = t.await {
            total.latencies.extend(out.latencies);
            total.answered.extend(out.answered);
            total.stalls += out.stalls;
            total.errors += out.errors;
            if total.first_error.is_none() {
                total.first_error = out.first_error;
            }
        }
    }
    total.wall = start.elapsed();
    total
}

/// Accumulates a mode's rounds at one level.
#[derive(Default)]
struct Acc {
    latencies: Vec<Duration>,
    answered: Vec<Duration>,
    stalls: usize,
    errors: usize,
    wall: Duration,
    round_tp: Vec<f64>,
    cpu_agents: Duration,
    cpu_sandbox: Duration,
    cpu_self: Duration,
}

impl Acc {
    fn finish(self, polls: u64) -> ModeResult {
        let n = self.answered.len().max(1) as f64;
        ModeResult {
            latency: Summary::of(&self.latencies),
            answered_latency: Summary::of(&self.answered),
            throughput_per_s: self.answered.len() as f64 / self.wall.as_secs_f64().max(1e-9),
            completed: self.answered.len(),
            stalls: self.stalls,
            errors: self.errors,
            fallback_polls: polls,
            round_throughputs: self.round_tp,
            cpu_agent_ms_per_payment: self.cpu_agents.as_secs_f64() * 1000.0 / n,
            cpu_sandbox_ms_per_payment: self.cpu_sandbox.as_secs_f64() * 1000.0 / n,
            cpu_loadgen_ms_per_payment: self.cpu_self.as_secs_f64() * 1000.0 / n,
        }
    }
}

fn cpu_of(pids: &[u32]) -> Duration {
    pids.iter().map(|p| procs::cpu_time(*p)).sum()
}

/// Resident set of `pid` from `/proc/PID/statm` (cheap enough to sample under load), KiB.
fn statm_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|t| {
            t.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|pages| pages * 4)
        .unwrap_or(0)
}

/// Runs the whole load benchmark; progress goes to stderr.
///
/// Each level gets a fresh sandbox process and a fresh fleet (N agents with new journals, N
/// direct clients): the sandbox keeps every transaction in memory, and its multi-fetch endpoint
/// (which the agent uses to reconcile an uncertain create) walks all of them under one lock, so
/// tens of thousands of transactions left over from an earlier level would slow the later one.
pub async fn run(bins: &Bins, work: &Path, plan: &LoadPlan) -> Result<LoadResult> {
    let load_before = procs::loadavg()[0];
    let run = format!("{:x}", rand::random::<u32>());
    let mut levels = Vec::new();
    let mut setup_secs = 0.0;
    let mut agent_idle_rss_kb = 0;
    for (li, &n) in plan.levels.iter().enumerate() {
        let t_setup = Instant::now();
        eprintln!("load: starting a sandbox, {n} agents and {n} direct clients");
        let fleet = Fleet::start(bins, work, n).await?;
        let secs = t_setup.elapsed().as_secs_f64();
        setup_secs += secs;
        eprintln!("load: setup took {secs:.1} s");
        if agent_idle_rss_kb == 0 {
            agent_idle_rss_kb = fleet
                .agents
                .first()
                .and_then(|a| a.pid())
                .map(|p| procs::mem(p).rss_kb)
                .unwrap_or(0);
        }
        let round_secs = plan
            .round_secs
            .get(li)
            .or(plan.round_secs.last())
            .copied()
            .unwrap_or(3.0);
        let result = measure(&fleet, plan, &run, n, round_secs).await;
        fleet.stop().await;
        levels.push(result?);
    }
    Ok(LoadResult {
        levels,
        agents_running: plan.levels.iter().copied().max().unwrap_or(0),
        setup_secs,
        agent_idle_rss_kb,
        load_before,
        load_after: procs::loadavg()[0],
    })
}

async fn measure(
    fleet: &Fleet,
    plan: &LoadPlan,
    run: &str,
    n: usize,
    secs: f64,
) -> Result<LevelResult> {
    let sandbox_pid = fleet.sandbox.pid().unwrap_or(0);
    let self_pid = std::process::id();
    let run = run.to_string();
    let agent_pids: Vec<u32> = fleet.agent_pos[..n].iter().map(|p| p.pid).collect();
    // Warm-up: connections, caches, the first payment of every device.
    for mode in [Mode::Direct, Mode::Agent] {
        let out = round(fleet, &run, mode, n, plan.warmup_secs).await;
        if out.answered.is_empty() {
            bail!(
                "{mode:?} warm-up at {n} clients completed nothing: {}",
                out.first_error.unwrap_or_default()
            );
        }
    }
    let polls_before: u64 = fleet.direct_pos[..n]
        .iter()
        .map(|p| p.polls.load(Ordering::Relaxed))
        .sum();
    let (mut agent, mut direct) = (Acc::default(), Acc::default());
    let mut max_rss = 0u64;
    for r in 0..plan.rounds {
        let order = if r % 2 == 0 {
            [Mode::Direct, Mode::Agent]
        } else {
            [Mode::Agent, Mode::Direct]
        };
        for mode in order {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let cpu0 = (
                cpu_of(&agent_pids),
                procs::cpu_time(sandbox_pid),
                procs::cpu_time(self_pid),
            );
            let sampler = (mode == Mode::Agent).then(|| {
                let pids = agent_pids.clone();
                let stop = CancellationToken::new();
                let s = stop.clone();
                (
                    stop,
                    tokio::spawn(async move {
                        let mut max = 0u64;
                        for _ in 0..600 {
                            for p in &pids {
                                max = max.max(statm_rss_kb(*p));
                            }
                            tokio::select! {
                                _ = s.cancelled() => break,
                                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                            }
                        }
                        max
                    }),
                )
            });
            let out = round(fleet, &run, mode, n, secs).await;
            if let Some((stop, task)) = sampler {
                stop.cancel();
                max_rss = max_rss.max(task.await.unwrap_or(0));
            }
            let cpu1 = (
                cpu_of(&agent_pids),
                procs::cpu_time(sandbox_pid),
                procs::cpu_time(self_pid),
            );
            let acc = if mode == Mode::Agent {
                &mut agent
            } else {
                &mut direct
            };
            let tp = out.answered.len() as f64 / out.wall.as_secs_f64().max(1e-9);
            eprintln!(
                "load: {n:>3} clients {mode:?} round {r}: {} ok, {} stalled, {} errors, {tp:.0}/s{}",
                out.answered.len(),
                out.stalls,
                out.errors,
                out.first_error.as_deref().map(|e| format!(" (first error: {e})")).unwrap_or_default()
            );
            acc.round_tp.push(tp);
            acc.latencies.extend(out.latencies);
            acc.answered.extend(out.answered);
            acc.stalls += out.stalls;
            acc.errors += out.errors;
            acc.wall += out.wall;
            if mode == Mode::Agent {
                acc.cpu_agents += cpu1.0.saturating_sub(cpu0.0);
            }
            acc.cpu_sandbox += cpu1.1.saturating_sub(cpu0.1);
            acc.cpu_self += cpu1.2.saturating_sub(cpu0.2);
        }
    }
    let polls_after: u64 = fleet.direct_pos[..n]
        .iter()
        .map(|p| p.polls.load(Ordering::Relaxed))
        .sum();
    Ok(LevelResult {
        clients: n,
        agent: agent.finish(0),
        direct: direct.finish(polls_after - polls_before),
        agent_max_rss_kb: max_rss,
    })
}
