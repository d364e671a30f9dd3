//! `till-bench`: what Till Agent costs on top of the network, measured against the physical limits.
//!
//! It drives the release binaries (`till-agent`, `till-sandbox`) as a store would, over real HTTP
//! and Socket.IO on 127.0.0.1 only, and writes one JSON result file per area; `report` turns them
//! (and criterion's micro-benchmarks, `benches/micro.rs`) into the tables of BENCHMARKS.md.
//! `scripts/bench.sh` runs the whole thing with one command.
//!
//! ```text
//! till-bench all       --bin-dir target/release --results DIR --work DIR [--quick] [--desktop BIN --desktop-profile P]
//! till-bench load|events|journal|resources|fleet   (same options, one area)
//! till-bench report    --results DIR --criterion target/criterion --markdown BENCHMARKS.md
//! ```
//!
//! Every loop is bounded in count and in time, and every child process is killed if the
//! benchmark fails. What it is not: a test suite (it asserts nothing beyond "the payment was
//! approved") or a tool to point at a real SensePass (it only ever talks to its own sandbox).

mod events;
mod fleet;
mod journal;
mod load;
// The tests' throwaway PostgreSQL cluster, included rather than copied: one way to start one.
#[path = "../../../tests/src/pg.rs"]
#[allow(dead_code)] // the tests use the rest of it
mod pg;
mod procs;
mod report;
mod resources;
mod stats;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "till-bench",
    about = "Benchmarks of Till Agent (see BENCHMARKS.md)"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// Where things are and how big the run is.
#[derive(Args, Clone)]
struct Common {
    /// Directory with the release binaries till-agent and till-sandbox.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Where the JSON result files go.
    #[arg(long, default_value = "target/bench/results")]
    results: PathBuf,
    /// Scratch space (agent data directories, journals, logs).
    #[arg(long, default_value = "target/bench/work")]
    work: PathBuf,
    /// A small, fast run for checking the benchmark itself (figures not comparable).
    #[arg(long)]
    quick: bool,
    /// The desktop app binary to measure at rest.
    #[arg(long)]
    desktop: Option<PathBuf>,
    /// Which build `--desktop` is (release or debug).
    #[arg(long, default_value = "release")]
    desktop_profile: String,
    /// Load benchmark concurrency levels instead of the default 1,16,200.
    #[arg(long, value_delimiter = ',')]
    levels: Vec<usize>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Every area in turn, then run.json.
    All(Common),
    /// Agent vs direct under 1, 16 and 200 concurrent POS clients.
    Load(Common),
    /// Sandbox emission → POS answer and → SSE event.
    Events(Common),
    /// Journal appends, lookups and start-up with 1 M payments.
    Journal(Common),
    /// Binary sizes, start-up, idle memory, the desktop app.
    Resources(Common),
    /// The fleet server on PostgreSQL: ingest vs COPY, dashboard queries at 1 M and 10 M
    /// payments, till → fleet lag, payment latency with replication on and off.
    Fleet(Common),
    /// Rewrites the tables of BENCHMARKS.md.
    Report {
        /// The JSON result files.
        #[arg(long, default_value = "target/bench/results")]
        results: PathBuf,
        /// criterion's output directory.
        #[arg(long, default_value = "target/criterion")]
        criterion: PathBuf,
        /// The file to rewrite.
        #[arg(long, default_value = "BENCHMARKS.md")]
        markdown: PathBuf,
    },
}

fn write_json<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(value)?)
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn load_plan(c: &Common) -> load::LoadPlan {
    let mut plan = if c.quick {
        load::LoadPlan {
            levels: vec![1, 4, 16],
            rounds: 2,
            round_secs: vec![1.0],
            warmup_secs: 0.5,
        }
    } else {
        load::LoadPlan {
            levels: vec![1, 16, 200],
            rounds: 3,
            round_secs: vec![3.0, 3.0, 5.0],
            warmup_secs: 1.0,
        }
    };
    if !c.levels.is_empty() {
        plan.levels = c.levels.clone();
    }
    plan
}

fn journal_plan(quick: bool) -> journal::JournalPlan {
    if quick {
        journal::JournalPlan {
            rounds: 2,
            payments_per_round: 50,
            memory_payments_per_round: 500,
            large_payments: 20_000,
            lookups: 200,
        }
    } else {
        journal::JournalPlan {
            rounds: 6,
            payments_per_round: 1_500,
            memory_payments_per_round: 3_000,
            large_payments: 1_000_000,
            lookups: 2_000,
        }
    }
}

fn resources_plan(c: &Common) -> resources::ResourcesPlan {
    let mut binaries = vec![
        (c.bin_dir.join("till-agent"), "release".to_string()),
        (c.bin_dir.join("till-sandbox"), "release".to_string()),
    ];
    let desktop = c
        .desktop
        .clone()
        .filter(|d| d.is_file())
        .map(|d| (d, c.desktop_profile.clone()));
    if let Some((d, p)) = &desktop {
        binaries.push((d.clone(), p.clone()));
    }
    resources::ResourcesPlan {
        starts: if c.quick { 3 } else { 10 },
        idle_secs: if c.quick { 2 } else { 10 },
        binaries,
        desktop,
    }
}

async fn area(which: &str, c: &Common) -> Result<()> {
    let bins = procs::Bins::in_dir(&c.bin_dir)?;
    std::fs::create_dir_all(&c.work)?;
    let t = Instant::now();
    match which {
        "load" => write_json(
            &c.results,
            "load.json",
            &load::run(&bins, &c.work, &load_plan(c)).await?,
        )?,
        "events" => {
            let (n, limit) = if c.quick { (50, 20) } else { (300, 60) };
            write_json(
                &c.results,
                "events.json",
                &events::run(&bins, &c.work, n, Duration::from_secs(limit)).await?,
            )?
        }
        "journal" => write_json(
            &c.results,
            "journal.json",
            &journal::run(&bins, &c.work, &journal_plan(c.quick)).await?,
        )?,
        "fleet" => {
            let fb = fleet::FleetBins {
                bins: bins.clone(),
                fleet: c.bin_dir.join("till-fleet"),
            };
            let r = fleet::run(&fb, &c.work, &fleet::FleetPlan::new(c.quick), c.quick).await?;
            write_json(&c.results, "fleet.json", &r)?;
            // Every plan in full, for reading beside the summary in BENCHMARKS.md.
            let mut plans = String::new();
            for d in &r.dashboard {
                for q in &d.queries {
                    plans.push_str(&format!("==== {} payments: {} ({})\n{}\n", d.payments, q.name, q.path, q.plan));
                }
            }
            std::fs::write(c.results.join("fleet-plans.txt"), plans)?;
        }
        "resources" => write_json(
            &c.results,
            "resources.json",
            &resources::run(&bins, &c.work, &resources_plan(c)).await?,
        )?,
        _ => unreachable!("unknown area"),
    }
    eprintln!("{which}: {:.0} s", t.elapsed().as_secs_f64());
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::All(c) => {
            let mut info = report::RunInfo::collect();
            let t = Instant::now();
            // The quiet measurements first, the machine-filling load last.
            for which in ["resources", "journal", "events", "fleet", "load"] {
                if which == "fleet" && std::env::var("BENCH_FLEET").as_deref() == Ok("0") {
                    continue;
                }
                area(which, &c).await?;
            }
            info.run_secs = t.elapsed().as_secs_f64();
            info.load_end = procs::loadavg();
            write_json(&c.results, "run.json", &info)?;
        }
        Cmd::Load(c) => area("load", &c).await?,
        Cmd::Events(c) => area("events", &c).await?,
        Cmd::Journal(c) => area("journal", &c).await?,
        Cmd::Resources(c) => area("resources", &c).await?,
        Cmd::Fleet(c) => area("fleet", &c).await?,
        Cmd::Report {
            results,
            criterion,
            markdown,
        } => {
            report::rewrite(&markdown, &results, &criterion)?;
            eprintln!("rewrote {}", markdown.display());
        }
    }
    Ok(())
}
