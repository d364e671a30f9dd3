//! Resources: binary sizes, cold start to "ready", idle memory of the headless agent, and the
//! desktop app's idle memory under a private Xvfb display.

use crate::procs::{self, AgentMode, AgentProc, Bins, Mem, SandboxProc};
use crate::stats::Summary;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// One binary's size.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Binary {
    /// File name.
    pub name: String,
    /// `release` or `debug`.
    pub profile: String,
    /// Size as built, bytes.
    pub bytes: u64,
    /// Size after `strip`, bytes.
    pub stripped_bytes: u64,
}

/// Start-up timings of one way of starting the agent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Start {
    /// Spawn → the address line on stdout.
    pub first_line: Summary,
    /// Spawn → `/api/agent/health` answers 200.
    pub health: Summary,
    /// Spawn → health says `status: ok` and `socketConnected: true` (a payment can start).
    pub ready_for_payment: Summary,
}

/// The desktop app at rest.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Desktop {
    /// `release` or `debug` (which build was measured).
    pub profile: String,
    /// Per process of the app (the app and WebKit's helpers): name, memory.
    pub processes: Vec<(String, Mem)>,
    /// Sum over the processes.
    pub total: Mem,
    /// Seconds it sat idle before the reading.
    pub idle_secs: u64,
    /// Why it was not measured, if it was not.
    pub skipped: Option<String>,
}

/// Everything measured here.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ResourcesResult {
    /// Sizes of the binaries.
    pub binaries: Vec<Binary>,
    /// `till-agent run` against the sandbox process, already paired, fresh journal.
    pub start_external_fresh: Start,
    /// The same data directory started again (existing journal).
    pub start_external_restart: Start,
    /// `till-agent run --sandbox`, fresh data directory (starts the embedded sandbox and pairs).
    pub start_embedded: Start,
    /// Idle memory of `till-agent run` (against the sandbox process).
    pub idle_agent: Mem,
    /// Idle memory of `till-agent run --sandbox` (agent + embedded sandbox in one process).
    pub idle_embedded: Mem,
    /// Idle memory of the `till-sandbox` process, for reference.
    pub idle_sandbox: Mem,
    /// Seconds the agents sat idle before the reading.
    pub idle_secs: u64,
    /// The desktop app.
    pub desktop: Desktop,
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct ResourcesPlan {
    /// Starts per variant.
    pub starts: usize,
    /// Idle time before memory readings, seconds.
    pub idle_secs: u64,
    /// Binaries to size: (path, profile).
    pub binaries: Vec<(PathBuf, String)>,
    /// The desktop binary and its profile, if one was built.
    pub desktop: Option<(PathBuf, String)>,
}

async fn stripped_size(path: &Path, work: &Path) -> u64 {
    let out = work.join("stripped.bin");
    let ok = Command::new("strip")
        .arg("-o")
        .arg(&out)
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .map(|s| s.success())
        .unwrap_or(false);
    let size = if ok { procs::file_size(&out) } else { 0 };
    let _ = std::fs::remove_file(&out);
    size
}

#[derive(Default)]
struct StartAcc {
    first: Vec<Duration>,
    health: Vec<Duration>,
    ready: Vec<Duration>,
}

impl StartAcc {
    async fn measure(&mut self, http: &reqwest::Client, agent: &AgentProc) -> Result<()> {
        self.first.push(agent.to_first_line);
        self.health.push(
            agent
                .wait_ready(http, false, Duration::from_secs(30))
                .await?,
        );
        self.ready.push(
            agent
                .wait_ready(http, true, Duration::from_secs(30))
                .await?,
        );
        Ok(())
    }

    fn finish(self) -> Start {
        Start {
            first_line: Summary::of(&self.first),
            health: Summary::of(&self.health),
            ready_for_payment: Summary::of(&self.ready),
        }
    }
}

/// Runs the resource measurements.
pub async fn run(bins: &Bins, work: &Path, plan: &ResourcesPlan) -> Result<ResourcesResult> {
    let mut binaries = Vec::new();
    for (path, profile) in &plan.binaries {
        binaries.push(Binary {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            profile: profile.clone(),
            bytes: procs::file_size(path),
            stripped_bytes: stripped_size(path, work).await,
        });
    }
    let http = procs::http()?;
    let sandbox = SandboxProc::start(bins, &work.join("resources-sandbox.log")).await?;
    let result = async {
        eprintln!(
            "resources: start-up times ({} starts per variant)",
            plan.starts
        );
        let mut fresh = StartAcc::default();
        let mut restart = StartAcc::default();
        for i in 0..plan.starts {
            let dir = work.join(format!("start-{i:02}"));
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            let device = sandbox.create_device(&http, "start-up till").await?;
            procs::pair(bins, &dir, &device, &sandbox).await?;
            let agent = AgentProc::start(bins, &dir, AgentMode::External(&sandbox)).await?;
            fresh.measure(&http, &agent).await?;
            agent.stop().await;
            let agent = AgentProc::start(bins, &dir, AgentMode::External(&sandbox)).await?;
            restart.measure(&http, &agent).await?;
            agent.stop().await;
        }
        let mut embedded = StartAcc::default();
        for i in 0..plan.starts {
            let dir = work.join(format!("start-embedded-{i:02}"));
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            let agent =
                AgentProc::start(bins, &dir, AgentMode::Embedded { autopilot_ms: None }).await?;
            embedded.measure(&http, &agent).await?;
            agent.stop().await;
        }

        eprintln!("resources: idle memory ({} s idle)", plan.idle_secs);
        let dir = work.join("idle-agent");
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        let device = sandbox.create_device(&http, "idle till").await?;
        procs::pair(bins, &dir, &device, &sandbox).await?;
        let agent = AgentProc::start(bins, &dir, AgentMode::External(&sandbox)).await?;
        let edir = work.join("idle-embedded");
        if edir.exists() {
            std::fs::remove_dir_all(&edir)?;
        }
        let emb = AgentProc::start(bins, &edir, AgentMode::Embedded { autopilot_ms: None }).await?;
        agent
            .wait_ready(&http, true, Duration::from_secs(30))
            .await?;
        emb.wait_ready(&http, true, Duration::from_secs(30)).await?;
        tokio::time::sleep(Duration::from_secs(plan.idle_secs)).await;
        let idle_agent = agent.pid().map(procs::mem).unwrap_or_default();
        let idle_embedded = emb.pid().map(procs::mem).unwrap_or_default();
        let idle_sandbox = sandbox.pid().map(procs::mem).unwrap_or_default();
        agent.stop().await;
        emb.stop().await;
        Ok::<_, anyhow::Error>((
            fresh.finish(),
            restart.finish(),
            embedded.finish(),
            idle_agent,
            idle_embedded,
            idle_sandbox,
        ))
    }
    .await;
    sandbox.stop().await;
    let (
        start_external_fresh,
        start_external_restart,
        start_embedded,
        idle_agent,
        idle_embedded,
        idle_sandbox,
    ) = result?;
    let desktop = match &plan.desktop {
        None => Desktop {
            skipped: Some("no till-desktop binary was built".into()),
            ..Default::default()
        },
        Some((bin, profile)) => match desktop(bin, profile, work, plan.idle_secs).await {
            Ok(d) => d,
            Err(e) => Desktop {
                profile: profile.clone(),
                skipped: Some(format!("{e:#}")),
                ..Default::default()
            },
        },
    };
    Ok(ResourcesResult {
        binaries,
        start_external_fresh,
        start_external_restart,
        start_embedded,
        idle_agent,
        idle_embedded,
        idle_sandbox,
        idle_secs: plan.idle_secs,
        desktop,
    })
}

/// Every process's parent and name, from `/proc`.
fn process_table() -> HashMap<u32, (u32, String)> {
    let mut table = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return table;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_string();
        let ppid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        table.insert(pid, (ppid, name));
    }
    table
}

/// `root` and every process below it.
fn descendants(root: u32) -> Vec<(u32, String)> {
    let table = process_table();
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        if let Some((_, name)) = table.get(&p) {
            out.push((p, name.clone()));
        }
        todo.extend(
            table
                .iter()
                .filter(|(_, (pp, _))| *pp == p)
                .map(|(c, _)| *c),
        );
    }
    out
}

/// Starts the desktop app with the embedded sandbox on a private Xvfb display (`xvfb-run -a`) and
/// a private D-Bus session, waits for its agent, lets it sit idle, and sums the memory of the
/// app's process and the WebKit processes it started.
async fn desktop(bin: &Path, profile: &str, work: &Path, idle_secs: u64) -> Result<Desktop> {
    for tool in ["xvfb-run", "Xvfb"] {
        if which(tool).is_none() {
            bail!("{tool} is not installed");
        }
    }
    let dir = work.join("desktop");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(dir.join("xdg-config"))?;
    std::fs::create_dir_all(dir.join("xdg-runtime"))?;
    let mut cmd = Command::new("xvfb-run");
    cmd.args(["-a", "-s", "-screen 0 1024x768x24 -nolisten tcp"]);
    if which("dbus-run-session").is_some() {
        cmd.args(["dbus-run-session", "--"]);
    }
    cmd.arg(bin)
        .args(["--sandbox", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(dir.join("none.toml"))
        .env("XDG_CONFIG_HOME", dir.join("xdg-config"))
        .env("XDG_RUNTIME_DIR", dir.join("xdg-runtime"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("stderr.log"))?)
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("starting xvfb-run")?;
    let root = child.id().unwrap_or(0);
    let result = desktop_idle(&mut child, root, &dir, profile, idle_secs).await;
    // Whatever happened: TERM to every process this launch started (app, WebKit, D-Bus, Xvfb).
    let tree = descendants(root);
    if let Some((app, _)) = tree.iter().find(|(_, n)| n.starts_with("till-desktop")) {
        let _ = Command::new("kill")
            .args(["-TERM", &app.to_string()])
            .status()
            .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    for (pid, _) in descendants(root).into_iter().rev() {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
    result
}

async fn desktop_idle(
    child: &mut tokio::process::Child,
    root: u32,
    dir: &Path,
    profile: &str,
    idle_secs: u64,
) -> Result<Desktop> {
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        match tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await {
            Ok(Ok(Some(l))) => {
                if let Some(u) = l.strip_prefix("till-agent listening on ") {
                    break u.trim().to_string();
                }
            }
            _ => bail!(
                "the desktop app printed no address within 60 s (see {})",
                dir.join("stderr.log").display()
            ),
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let http = procs::http()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(format!("{url}/api/agent/health")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        if Instant::now() > deadline {
            bail!("the desktop app's agent did not answer");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let tree = descendants(root);
    let app = tree
        .iter()
        .find(|(_, n)| n.starts_with("till-desktop"))
        .map(|(p, _)| *p);
    let mut processes = Vec::new();
    let mut total = Mem::default();
    if let Some(app) = app {
        for (pid, name) in descendants(app) {
            let m = procs::mem(pid);
            total.rss_kb += m.rss_kb;
            total.pss_kb += m.pss_kb;
            processes.push((name, m));
        }
    } else {
        bail!("no till-desktop process found under xvfb-run");
    }
    Ok(Desktop {
        profile: profile.to_string(),
        processes,
        total,
        idle_secs,
        skipped: None,
    })
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}
