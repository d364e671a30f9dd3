//! Rewrites the tables of BENCHMARKS.md from the result files of the last run.
//!
//! Each table lives between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`; everything outside
//! the markers (method, analysis) is left as written.

use crate::events::EventsResult;
use crate::journal::JournalResult;
use crate::load::{LoadResult, ModeResult};
use crate::resources::ResourcesResult;
use crate::stats::Summary;
use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// Facts about the run that `scripts/bench.sh` and `till-bench` record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunInfo {
    /// Logical CPUs.
    pub cores: usize,
    /// Total memory, bytes.
    pub memory_bytes: u64,
    /// CPU model name.
    pub cpu: String,
    /// Kernel release.
    pub kernel: String,
    /// UTC time the run started.
    pub started: String,
    /// Load averages when the run started.
    pub load_start: [f64; 3],
    /// Load averages when the measurements ended.
    pub load_end: [f64; 3],
    /// Seconds the measurements took (build excluded).
    pub run_secs: f64,
    /// Git commit measured (from the environment, `BENCH_GIT`).
    pub git: String,
    /// Rust compiler version (`BENCH_RUSTC`).
    pub rustc: String,
    /// Seconds the release build took in this invocation (`BENCH_BUILD_SECS`).
    pub build_secs: Option<f64>,
    /// Seconds criterion took (`BENCH_MICRO_SECS`).
    pub micro_secs: Option<f64>,
}

impl RunInfo {
    /// What this machine is, now.
    pub fn collect() -> RunInfo {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kb = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        RunInfo {
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            memory_bytes: mem_kb * 1024,
            cpu,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            started: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            load_start: crate::procs::loadavg(),
            load_end: [0.0; 3],
            run_secs: 0.0,
            git: std::env::var("BENCH_GIT").unwrap_or_default(),
            rustc: std::env::var("BENCH_RUSTC").unwrap_or_default(),
            build_secs: std::env::var("BENCH_BUILD_SECS")
                .ok()
                .and_then(|v| v.parse().ok()),
            micro_secs: std::env::var("BENCH_MICRO_SECS")
                .ok()
                .and_then(|v| v.parse().ok()),
        }
    }
}

fn read<T: DeserializeOwned>(dir: &Path, name: &str) -> Option<T> {
    let text = std::fs::read_to_string(dir.join(name)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Milliseconds with sensible precision.
fn ms(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a < 0.01 {
        format!("{:.1} µs", v * 1000.0)
    } else if a < 1.0 {
        format!("{v:.3} ms")
    } else if a < 10.0 {
        format!("{v:.2} ms")
    } else if a < 1000.0 {
        format!("{v:.1} ms")
    } else {
        format!("{:.2} s", v / 1000.0)
    }
}

/// Megabytes (10⁶ bytes) from KiB.
fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 * 1024.0 / 1e6)
}

fn mb_bytes(b: u64) -> String {
    format!("{:.1} MB", b as f64 / 1e6)
}

fn ok(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**missed**"
    }
}

fn lat_cells(s: &Summary) -> String {
    format!("{} | {} | {}", ms(s.p50_ms), ms(s.p99_ms), ms(s.max_ms))
}

/// Criterion's estimate for one benchmark: (mean, lower, upper, median) in ms.
fn criterion(dir: &Path, id: &str) -> Option<(f64, f64, f64, f64)> {
    let text = std::fs::read_to_string(dir.join(id).join("new").join("estimates.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    let ns = |p: &str| v.pointer(p).and_then(Value::as_f64);
    Some((
        ns("/mean/point_estimate")? / 1e6,
        ns("/mean/confidence_interval/lower_bound")? / 1e6,
        ns("/mean/confidence_interval/upper_bound")? / 1e6,
        ns("/median/point_estimate")? / 1e6,
    ))
}

/// The micro-benchmarks and what they measure.
pub const MICRO: &[(&str, &str)] = &[
    (
        "qr/svg",
        "QR code of a payment URL as SVG (`till_receipts::qr_svg`)",
    ),
    (
        "qr/png",
        "QR code of a payment URL as PNG, 8 px modules (`till_receipts::qr_png`)",
    ),
    (
        "pdf/receipt_20_items",
        "PDF receipt with 20 items, approval, a refund and its QR (`till_receipts::render_pdf_at`)",
    ),
    (
        "validation/init_request",
        "POS init body with 5 products → `InitRequest::from_pos_json`",
    ),
    (
        "validation/init_request_invalid",
        "invalid POS init body (4 bad fields) → `InvalidParameters`",
    ),
    (
        "events/status_transition",
        "`Status::transition` over all 14 × 14 pairs (196 calls)",
    ),
    (
        "events/apply_status_memory",
        "`Journal::apply_status` of one socket event, in-memory journal (no I/O)",
    ),
];

fn mode_row(out: &mut String, clients: usize, name: &str, m: &ModeResult, lat: &Summary) {
    let _ = writeln!(
        out,
        "| {clients} | {name} | {} | {} | {:.0} | {} | {} | {:.2} | {:.2} | {:.2} |",
        m.completed,
        lat_cells(lat),
        m.throughput_per_s,
        m.stalls,
        m.errors,
        m.cpu_agent_ms_per_payment,
        m.cpu_sandbox_ms_per_payment,
        m.cpu_loadgen_ms_per_payment,
    );
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "—".into()
    }
}

/// Builds every table; `None` entries are left untouched in the file.
fn tables(results: &Path, criterion_dir: &Path) -> Vec<(&'static str, Option<String>)> {
    let run: Option<RunInfo> = read(results, "run.json");
    let load: Option<LoadResult> = read(results, "load.json");
    let events: Option<EventsResult> = read(results, "events.json");
    let journal: Option<JournalResult> = read(results, "journal.json");
    let res: Option<ResourcesResult> = read(results, "resources.json");
    let fleet: Option<crate::fleet::FleetResult> = read(results, "fleet.json");

    let machine = run.as_ref().map(|r| {
        let mut s = String::new();
        let _ = writeln!(s, "| | |\n|---|---|");
        let _ = writeln!(s, "| machine | {} cores ({}), {:.1} GiB memory, Linux {} |", r.cores, r.cpu, r.memory_bytes as f64 / (1u64 << 30) as f64, r.kernel);
        let _ = writeln!(s, "| run started | {} (commit `{}`, {}) |", r.started, r.git, r.rustc);
        let _ = writeln!(
            s,
            "| load average | {:.2} / {:.2} / {:.2} at the start, {:.2} / {:.2} / {:.2} at the end (1 / 5 / 15 min) |",
            r.load_start[0], r.load_start[1], r.load_start[2], r.load_end[0], r.load_end[1], r.load_end[2]
        );
        let build = r.build_secs.map(|b| format!("{b:.0} s")).unwrap_or_else(|| "—".into());
        let micro = r.micro_secs.map(|b| format!("{b:.0} s")).unwrap_or_else(|| "—".into());
        let _ = writeln!(s, "| time | `till-bench all` {:.0} s, criterion {micro}; release build in this invocation {build} |", r.run_secs);
        s
    });

    let load_table = load.as_ref().map(|l| {
        let mut s = String::new();
        let _ = writeln!(s, "Per-request latency as the POS sees it (closed loop, every sample kept) and throughput, over {} measured rounds per mode and level. *Stalled*: no answer within {} s — the POS hangs up and recovers with `GET /api/transactions/last`; such a request is in the latency columns with the time the POS waited. CPU columns: CPU time per approved payment of the agent processes, the sandbox process and the load generator.\n", l.levels.first().map(|x| x.agent.round_throughputs.len()).unwrap_or(0), crate::load::STALL.as_secs());
        let _ = writeln!(s, "| POS clients | path | approved | p50 | p99 | max | approved/s | stalled | errors | CPU agent ms | CPU sandbox ms | CPU loadgen ms |");
        let _ = writeln!(s, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for lv in &l.levels {
            mode_row(&mut s, lv.clients, "direct", &lv.direct, &lv.direct.latency);
            mode_row(&mut s, lv.clients, "agent", &lv.agent, &lv.agent.latency);
            if lv.agent.stalls > 0 {
                mode_row(&mut s, lv.clients, "agent, answered requests only", &lv.agent, &lv.agent.answered_latency);
            }
        }
        let _ = writeln!(s, "\nOverhead of the agent (agent − direct, and agent ÷ direct):\n");
        let _ = writeln!(s, "| POS clients | p50 overhead | p99 overhead | p50 ratio | p99 ratio | throughput ratio | largest agent RSS under load |");
        let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|");
        for lv in &l.levels {
            let (a, d) = (&lv.agent.latency, &lv.direct.latency);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} |",
                lv.clients,
                ms(a.p50_ms - d.p50_ms),
                ms(a.p99_ms - d.p99_ms),
                ratio(a.p50_ms, d.p50_ms),
                ratio(a.p99_ms, d.p99_ms),
                ratio(lv.agent.throughput_per_s, lv.direct.throughput_per_s),
                mb(lv.agent_max_rss_kb),
            );
        }
        let polls: u64 = l.levels.iter().map(|x| x.direct.fallback_polls).sum();
        let _ = writeln!(
            s,
            "\nEach level ran with its own sandbox process, N agent processes and N direct clients (setup of all levels {:.0} s; up to {} agents at once); an agent idled at {} before its first payment. Direct payments that needed the status-poll fallback: {polls}. Load average {:.2} before, {:.2} after.",
            l.setup_secs, l.agents_running, mb(l.agent_idle_rss_kb), l.load_before, l.load_after
        );
        s
    });

    let events_table = events.as_ref().map(|e| {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "| from → to | samples | p50 | p99 | max |\n|---|---:|---:|---:|---:|"
        );
        let _ = writeln!(
            s,
            "| sandbox emits final status → POS has its `init/sync` answer | {} | {} |",
            e.to_pos.count,
            lat_cells(&e.to_pos)
        );
        let _ = writeln!(
            s,
            "| sandbox emits final status → UI has the SSE `status` event | {} | {} |",
            e.to_sse.count,
            lat_cells(&e.to_sse)
        );
        let _ = writeln!(
            s,
            "| approve call sent to the sandbox → POS answer (upper bound) | {} | {} |",
            e.call_to_pos.count,
            lat_cells(&e.call_to_pos)
        );
        if e.errors > 0 {
            let _ = writeln!(s, "\n{} samples failed.", e.errors);
        }
        s
    });

    let journal_table = journal.as_ref().map(|j| {
        let mut s = String::new();
        let _ = writeln!(s, "Durable appends (one commit each; a payment is 3), alternating rounds in one run:\n");
        let _ = writeln!(s, "| variant | commits/s | payments/s | commit p50 | commit p99 | commit max | ratio to raw |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
        for (name, a, raw) in [
            ("till-journal, file (WAL, synchronous=FULL)", &j.crate_disk, &j.raw_disk),
            ("raw rusqlite, file (same pragmas, same writes)", &j.raw_disk, &j.raw_disk),
            ("till-journal, in memory (no I/O)", &j.crate_memory, &j.raw_memory),
            ("raw rusqlite, in memory", &j.raw_memory, &j.raw_memory),
        ] {
            let _ = writeln!(
                s,
                "| {name} | {:.0} | {:.0} | {} | {:.0} % |",
                a.commits_per_s,
                a.payments_per_s,
                lat_cells(&a.commit),
                100.0 * a.commits_per_s / raw.commits_per_s.max(1e-9)
            );
        }
        let l = &j.large;
        let _ = writeln!(
            s,
            "\nLarge journal: {} payments, {} status events, {} idempotency records (the last 31 days), file {}{}.\n",
            l.payments,
            l.status_events,
            l.idempotency,
            mb_bytes(l.file_bytes),
            format!(", generated in {:.0} s", l.generate_secs)
        );
        let _ = writeln!(s, "| operation on the 1 M journal | samples | p50 | p99 | max |\n|---|---:|---:|---:|---:|");
        for (name, v) in [
            ("`GET /api/transactions/last` through the agent, new connection per call", &l.http_last),
            ("`GET /api/transactions/last` through the agent, kept-alive connection", &l.http_last_keepalive),
            ("`GET /api/transactions/last` while SensePass is unreachable (agent offline), new connection", &l.http_last_offline),
            ("`GET /api/transactions/last`, journal of 1 payment, new connection (comparison)", &l.http_last_small),
            ("`Journal::last(device)` (what `/last` runs)", &l.last_device),
            ("`Journal::last(None)`", &l.last_any),
            ("`Journal::by_order_id` (random existing order)", &l.by_order_id),
            ("`Journal::by_number` (random existing number)", &l.by_number),
            ("`Journal::open` + first `last`, file evicted from the page cache", &l.open_cold),
            ("`Journal::open` + first `last`, file cached", &l.open_warm),
            ("`till-agent run` spawn → health answers, file evicted from the page cache", &l.agent_start_cold),
            ("`till-agent run` spawn → health answers, file cached", &l.agent_start_warm),
        ] {
            let _ = writeln!(s, "| {name} | {} | {} |", v.count, lat_cells(v));
        }
        s
    });

    let micro = {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "| benchmark | what | mean | 95 % CI of the mean | median |\n|---|---|---:|---:|---:|"
        );
        let mut any = false;
        for (id, what) in MICRO {
            if let Some((mean, lo, hi, median)) = criterion(criterion_dir, id) {
                any = true;
                let _ = writeln!(
                    s,
                    "| `{id}` | {what} | {} | {} – {} | {} |",
                    ms(mean),
                    ms(lo),
                    ms(hi),
                    ms(median)
                );
            } else {
                let _ = writeln!(s, "| `{id}` | {what} | not run | | |");
            }
        }
        any.then_some(s)
    };

    let resources = res.as_ref().map(|r| {
        let mut s = String::new();
        let _ = writeln!(s, "| binary | profile | size | stripped |\n|---|---|---:|---:|");
        for b in &r.binaries {
            let _ = writeln!(s, "| `{}` | {} | {} | {} |", b.name, b.profile, mb_bytes(b.bytes), mb_bytes(b.stripped_bytes));
        }
        let _ = writeln!(s, "\n| start-up (spawn → …) | starts | p50 | p99 | max |\n|---|---:|---:|---:|---:|");
        for (name, st) in [
            ("`till-agent run`, paired, new journal", &r.start_external_fresh),
            ("`till-agent run`, paired, existing journal (restart)", &r.start_external_restart),
            ("`till-agent run --sandbox`, new data dir (embedded sandbox + pairing)", &r.start_embedded),
        ] {
            let _ = writeln!(s, "| {name}: address printed | {} | {} |", st.first_line.count, lat_cells(&st.first_line));
            let _ = writeln!(s, "| {name}: **health answers** | {} | {} |", st.health.count, lat_cells(&st.health));
            let _ = writeln!(s, "| {name}: ready for a payment (status ok, socket connected) | {} | {} |", st.ready_for_payment.count, lat_cells(&st.ready_for_payment));
        }
        let _ = writeln!(s, "\n| memory after {} s idle | RSS | PSS |\n|---|---:|---:|", r.idle_secs);
        let _ = writeln!(s, "| headless agent, `till-agent run` (against the sandbox process) | {} | {} |", mb(r.idle_agent.rss_kb), mb(r.idle_agent.pss_kb));
        let _ = writeln!(s, "| `till-agent run --sandbox` (agent + embedded sandbox, one process) | {} | {} |", mb(r.idle_embedded.rss_kb), mb(r.idle_embedded.pss_kb));
        let _ = writeln!(s, "| `till-sandbox` process (reference) | {} | {} |", mb(r.idle_sandbox.rss_kb), mb(r.idle_sandbox.pss_kb));
        match &r.desktop.skipped {
            None => {
                let _ = writeln!(
                    s,
                    "| desktop app ({} build, `--sandbox`, Xvfb), all {} processes | {} | {} |",
                    r.desktop.profile,
                    r.desktop.processes.len(),
                    mb(r.desktop.total.rss_kb),
                    mb(r.desktop.total.pss_kb)
                );
                for (name, m) in &r.desktop.processes {
                    let _ = writeln!(s, "| &nbsp;&nbsp;`{name}` | {} | {} |", mb(m.rss_kb), mb(m.pss_kb));
                }
            }
            Some(why) => {
                let _ = writeln!(s, "| desktop app | not measured: {} | |", why.replace('|', "/").replace('\n', " "));
            }
        }
        if let Some(l) = &load {
            let max = l.levels.iter().map(|x| x.agent_max_rss_kb).max().unwrap_or(0);
            let _ = writeln!(s, "| headless agent under load (largest RSS of any agent during the load rounds) | {} | |", mb(max));
        }
        s
    });

    let targets = {
        let mut s = String::new();
        let _ = writeln!(s, "| target | measured | |\n|---|---|---|");
        if let Some(lv) = load
            .as_ref()
            .and_then(|l| l.levels.iter().max_by_key(|x| x.clients))
        {
            let (a, d) = (&lv.agent.latency, &lv.direct.latency);
            let o50 = a.p50_ms - d.p50_ms;
            let o99 = a.p99_ms - d.p99_ms;
            let _ = writeln!(s, "| overhead over a direct sandbox call ≤ 1 ms p50 at {} POS clients | {} ({}) | {} |", lv.clients, ms(o50), ratio(a.p50_ms, d.p50_ms), ok(o50 <= 1.0));
            let _ = writeln!(
                s,
                "| overhead ≤ 5 ms p99 at {} POS clients | {} ({}) | {} |",
                lv.clients,
                ms(o99),
                ratio(a.p99_ms, d.p99_ms),
                ok(o99 <= 5.0)
            );
        }
        if let Some(j) = &journal {
            let r = j.crate_disk.commits_per_s / j.raw_disk.commits_per_s.max(1e-9);
            let _ = writeln!(s, "| journal appends ≥ 80 % of raw rusqlite, same durability | {:.0} % ({:.0} vs {:.0} commits/s) | {} |", r * 100.0, j.crate_disk.commits_per_s, j.raw_disk.commits_per_s, ok(r >= 0.8));
            let l = &j.large;
            let _ = writeln!(
                s,
                "| `/last` ≤ 1 ms with 1 M rows | HTTP p50 {} / p99 {} (journal call p99 {}) | {} |",
                ms(l.http_last.p50_ms),
                ms(l.http_last.p99_ms),
                ms(l.last_device.p99_ms),
                ok(l.http_last.p99_ms <= 1.0)
            );
        }
        if let Some(e) = &events {
            let _ = writeln!(
                s,
                "| status event → POS response ≤ 2 ms p99 | p99 {} (p50 {}) | {} |",
                ms(e.to_pos.p99_ms),
                ms(e.to_pos.p50_ms),
                ok(e.to_pos.p99_ms <= 2.0)
            );
        }
        if let Some((mean, _, hi, _)) = criterion(criterion_dir, "pdf/receipt_20_items") {
            let _ = writeln!(
                s,
                "| PDF receipt ≤ 10 ms | {} (CI upper {}) | {} |",
                ms(mean),
                ms(hi),
                ok(hi <= 10.0)
            );
        }
        let svg = criterion(criterion_dir, "qr/svg");
        let png = criterion(criterion_dir, "qr/png");
        if let (Some(svg), Some(png)) = (svg, png) {
            let _ = writeln!(
                s,
                "| QR ≤ 1 ms | SVG {}, PNG {} | {} |",
                ms(svg.0),
                ms(png.0),
                ok(svg.2 <= 1.0 && png.2 <= 1.0)
            );
        }
        if let Some(r) = &res {
            let rss = r.idle_agent.rss_kb * 1024;
            let _ = writeln!(
                s,
                "| headless idle RSS ≤ 25 MB | {} (PSS {}) | {} |",
                mb(r.idle_agent.rss_kb),
                mb(r.idle_agent.pss_kb),
                ok(rss <= 25_000_000)
            );
            let h = &r.start_external_fresh.health;
            let _ = writeln!(s, "| cold start to ready (health answers) ≤ 150 ms | p50 {}, max {} (`--sandbox`: p50 {}) | {} |", ms(h.p50_ms), ms(h.max_ms), ms(r.start_embedded.health.p50_ms), ok(h.p50_ms <= 150.0));
            if let Some(j) = &journal {
                let c = &j.large.agent_start_cold;
                let w = &j.large.agent_start_warm;
                let _ = writeln!(
                    s,
                    "| the same with {} payments in the journal | p50 {} (page cache cold), {} (cached) | {} |",
                    j.large.payments,
                    ms(c.p50_ms),
                    ms(w.p50_ms),
                    ok(c.p50_ms <= 150.0 && w.p50_ms <= 150.0)
                );
            }
        }
        Some(s)
    };

    vec![
        ("machine", machine),
        ("targets", targets),
        ("load", load_table),
        ("events", events_table),
        ("journal", journal_table),
        ("micro", micro),
        ("resources", resources),
        // A quick run's figures are not comparable: never written to the file.
        ("fleet", fleet.filter(|f| !f.quick).map(|f| crate::fleet::table(&f))),
    ]
}

/// Rewrites the marked sections of `markdown` from the results in `results` and criterion's
/// output in `criterion_dir`.
pub fn rewrite(markdown: &Path, results: &Path, criterion_dir: &Path) -> Result<()> {
    let mut text = std::fs::read_to_string(markdown)
        .with_context(|| format!("reading {}", markdown.display()))?;
    for (name, table) in tables(results, criterion_dir) {
        let Some(table) = table else { continue };
        let open = format!("<!-- bench:{name} -->");
        let close = format!("<!-- /bench:{name} -->");
        let (Some(a), Some(b)) = (text.find(&open), text.find(&close)) else {
            bail!("{} has no {open} … {close} section", markdown.display());
        };
        if b < a {
            bail!("{close} comes before {open}");
        }
        text.replace_range(a + open.len()..b, &format!("\n{table}"));
    }
    std::fs::write(markdown, text)?;
    Ok(())
}
