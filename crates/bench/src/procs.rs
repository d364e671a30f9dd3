//! The processes under test: the `till-sandbox` and `till-agent` release binaries, started on
//! 127.0.0.1 with ephemeral ports and private data directories, and what `/proc` says about them.
//!
//! Every child is started with `kill_on_drop`, so an error anywhere in a benchmark never leaves
//! a process behind; a clean stop sends SIGTERM to that child's pid only.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// Where the binaries under test are.
#[derive(Debug, Clone)]
pub struct Bins {
    /// `till-agent` (release).
    pub agent: PathBuf,
    /// `till-sandbox` (release).
    pub sandbox: PathBuf,
}

impl Bins {
    /// The binaries in `dir` (normally `target/release`); fails if one is missing.
    pub fn in_dir(dir: &Path) -> Result<Bins> {
        let bins = Bins {
            agent: dir.join("till-agent"),
            sandbox: dir.join("till-sandbox"),
        };
        for b in [&bins.agent, &bins.sandbox] {
            if !b.is_file() {
                bail!("{} is missing: build with `cargo build --release -p till-agent -p till-sandbox`", b.display());
            }
        }
        Ok(bins)
    }
}

/// A plain HTTP client for health checks and the sandbox control API (no connection reuse, so
/// nothing lingers between measurements).
pub fn http() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")
}

/// Reads stdout lines of a child in the background (so a chatty child never blocks on a full
/// pipe) and hands them over one by one.
pub(crate) fn line_reader(child: &mut Child) -> Result<mpsc::UnboundedReceiver<String>> {
    let stdout = child.stdout.take().context("child stdout not piped")?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(line).is_err() {
                // Nobody listens any more; keep draining so the child never blocks.
                continue;
            }
        }
    });
    Ok(rx)
}

/// The next stdout line, within `limit`.
pub(crate) async fn next_line(
    rx: &mut mpsc::UnboundedReceiver<String>,
    limit: Duration,
    what: &str,
) -> Result<String> {
    match tokio::time::timeout(limit, rx.recv()).await {
        Ok(Some(line)) => Ok(line),
        Ok(None) => bail!("{what} exited before printing its address"),
        Err(_) => bail!("{what} printed nothing within {limit:?}"),
    }
}

/// A running `till-sandbox`.
pub struct SandboxProc {
    child: Child,
    /// REST base (`http://127.0.0.1:P/api/`).
    pub api_base: String,
    /// Socket.IO server URL.
    pub socket_url: String,
    /// Control API base (`…/_sandbox`).
    pub control_url: String,
}

impl SandboxProc {
    /// Starts the sandbox on ephemeral loopback ports; its log (warnings only) goes to `log`.
    pub async fn start(bins: &Bins, log: &Path) -> Result<SandboxProc> {
        let log_file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = Command::new(&bins.sandbox)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bins.sandbox.display()))?;
        let mut rx = line_reader(&mut child)?;
        let (mut api_base, mut socket_url, mut control_url) = (None, None, None);
        while api_base.is_none() || socket_url.is_none() || control_url.is_none() {
            let line = next_line(&mut rx, Duration::from_secs(20), "till-sandbox").await?;
            if let Some((k, v)) = line.split_once('=') {
                let v = Some(v.trim().to_string());
                match k {
                    "api_base" => api_base = v,
                    "socket_url" => socket_url = v,
                    "control_url" => control_url = v,
                    _ => {}
                }
            }
        }
        Ok(SandboxProc {
            child,
            api_base: api_base.unwrap_or_default(),
            socket_url: socket_url.unwrap_or_default(),
            control_url: control_url.unwrap_or_default(),
        })
    }

    /// The sandbox's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Creates a dynamic-QR device through the control API and returns its device ID.
    pub async fn create_device(&self, http: &reqwest::Client, name: &str) -> Result<String> {
        let v: Value = http
            .post(format!("{}/devices", self.control_url))
            .json(&json!({ "posName": name }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        v.get("deviceAliasKey")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| anyhow!("device answer without deviceAliasKey: {v}"))
    }

    /// Sets the autopilot (`Some(ms)`: pay every new transaction after `ms` with an approving
    /// test card) or turns it off.
    pub async fn autopilot(&self, http: &reqwest::Client, after_ms: Option<u64>) -> Result<()> {
        let url = format!("{}/autopilot", self.control_url);
        let req = match after_ms {
            Some(ms) => http
                .post(url)
                .json(&json!({ "approveAfterMs": ms, "card": "4111111111111111" })),
            None => http.delete(url),
        };
        req.send().await?.error_for_status()?;
        Ok(())
    }

    /// Stops the sandbox with SIGTERM (SIGKILL after 5 s).
    pub async fn stop(self) {
        terminate(self.child).await;
    }
}

/// Pairs the agent data directory `data_dir` with `device_id` through `till-agent pair`.
pub async fn pair(
    bins: &Bins,
    data_dir: &Path,
    device_id: &str,
    sandbox: &SandboxProc,
) -> Result<()> {
    std::fs::create_dir_all(data_dir)?;
    let out = Command::new(&bins.agent)
        .arg("pair")
        .args(["--device-id", device_id, "--pos-name", "bench till"])
        .args(common_args(data_dir, Some(sandbox)))
        .env("TILL_AGENT_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .await
        .context("running till-agent pair")?;
    if !out.status.success() {
        bail!(
            "till-agent pair failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The flags that isolate an agent from the user's own config and data, and point it at the
/// sandbox process when given.
pub(crate) fn common_args(data_dir: &Path, sandbox: Option<&SandboxProc>) -> Vec<String> {
    common_args_urls(
        data_dir,
        sandbox.map(|sb| (sb.api_base.as_str(), sb.socket_url.as_str())),
    )
}

fn common_args_urls(data_dir: &Path, urls: Option<(&str, &str)>) -> Vec<String> {
    let mut args = vec![
        "--data-dir".to_string(),
        data_dir.display().to_string(),
        "--config".to_string(),
        data_dir.join("none.toml").display().to_string(),
    ];
    if let Some((api, socket)) = urls {
        args.extend([
            "--sensepass-url".to_string(),
            api.to_string(),
            "--socket-url".to_string(),
            socket.to_string(),
        ]);
    }
    args
}

/// A running `till-agent run`.
pub struct AgentProc {
    child: Child,
    /// The local API base, `http://127.0.0.1:P`.
    pub url: String,
    /// When the process was spawned.
    pub spawned: Instant,
    /// How long until the first stdout line (the address) arrived.
    pub to_first_line: Duration,
}

/// How to run an agent.
pub enum AgentMode<'a> {
    /// Against the sandbox process (paired beforehand with [`pair`]).
    External(&'a SandboxProc),
    /// Against these SensePass URLs (e.g. a closed port: SensePass unreachable).
    Urls {
        /// REST base.
        api_base: &'a str,
        /// Socket.IO server.
        socket_url: &'a str,
    },
    /// `run --sandbox`: the embedded sandbox, optionally with its autopilot.
    Embedded {
        /// `--autopilot-ms`.
        autopilot_ms: Option<u64>,
    },
}

impl AgentProc {
    /// Spawns `till-agent run` with its data in `data_dir` and waits for its address line.
    /// stderr goes to `data_dir/stderr.log`.
    pub async fn start(bins: &Bins, data_dir: &Path, mode: AgentMode<'_>) -> Result<AgentProc> {
        std::fs::create_dir_all(data_dir)?;
        let stderr = std::fs::File::create(data_dir.join("stderr.log"))?;
        let mut cmd = Command::new(&bins.agent);
        cmd.arg("run").args(["--listen", "127.0.0.1:0"]);
        match mode {
            AgentMode::External(sb) => {
                cmd.args(common_args(data_dir, Some(sb)));
            }
            AgentMode::Urls {
                api_base,
                socket_url,
            } => {
                cmd.args(common_args_urls(data_dir, Some((api_base, socket_url))));
            }
            AgentMode::Embedded { autopilot_ms } => {
                cmd.args(common_args(data_dir, None)).arg("--sandbox");
                if let Some(ms) = autopilot_ms {
                    cmd.args(["--autopilot-ms", &ms.to_string()]);
                }
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true);
        let spawned = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bins.agent.display()))?;
        let mut rx = line_reader(&mut child)?;
        let first = next_line(&mut rx, Duration::from_secs(30), "till-agent").await?;
        let to_first_line = spawned.elapsed();
        let url = first
            .strip_prefix("till-agent listening on ")
            .map(|u| u.trim().to_string())
            .ok_or_else(|| anyhow!("unexpected first line from till-agent: {first}"))?;
        Ok(AgentProc {
            child,
            url,
            spawned,
            to_first_line,
        })
    }

    /// The agent's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits until `/api/agent/health` answers 200 (and, with `payments`, says `status: ok` and
    /// `socketConnected: true`, i.e. ready for a payment). Returns the time since spawn.
    pub async fn wait_ready(
        &self,
        http: &reqwest::Client,
        payments: bool,
        limit: Duration,
    ) -> Result<Duration> {
        let deadline = Instant::now() + limit;
        let url = format!("{}/api/agent/health", self.url);
        loop {
            if let Ok(resp) = http.get(&url).send().await {
                if resp.status().is_success() {
                    if !payments {
                        return Ok(self.spawned.elapsed());
                    }
                    let v: Value = resp.json().await.unwrap_or(Value::Null);
                    if v["status"] == "ok" && v["socketConnected"] == true {
                        return Ok(self.spawned.elapsed());
                    }
                }
            }
            if Instant::now() > deadline {
                bail!("agent at {} not ready within {limit:?}", self.url);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Stops the agent with SIGTERM (SIGKILL after 5 s).
    pub async fn stop(self) {
        terminate(self.child).await;
    }
}

/// SIGTERM to this child's pid, then SIGKILL if it has not exited within 5 s.
pub async fn terminate(mut child: Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.kill().await;
}

/// Resident and proportional set size of a process, from `/proc/PID/smaps_rollup`.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Mem {
    /// Resident set size, KiB.
    pub rss_kb: u64,
    /// Proportional set size (shared pages divided among their users), KiB.
    pub pss_kb: u64,
}

/// Memory of `pid`, or zeros if it is gone.
pub fn mem(pid: u32) -> Mem {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Mem {
        rss_kb: field("Rss:"),
        pss_kb: field("Pss:"),
    }
}

/// CPU time (user + system) a process has used so far, from `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> Duration {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // After ')' the first field is field 3 (state): utime = index 11, stime = index 12.
    let total = ticks(11) + ticks(12);
    Duration::from_secs_f64(total as f64 / clock_ticks_per_sec())
}

/// `getconf CLK_TCK`: 100 on every Linux distribution we run on.
fn clock_ticks_per_sec() -> f64 {
    100.0
}

/// The load averages of the machine (1, 5, 15 minutes).
pub fn loadavg() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text
        .split_whitespace()
        .map(|v| v.parse::<f64>().unwrap_or(0.0));
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
}

/// The size of a file in bytes (0 when missing).
pub fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Evicts a file from the OS page cache (`dd iflag=nocache`, i.e. `posix_fadvise(DONTNEED)` on
/// that file only), so a start-up can be measured with a cold cache without disturbing anything
/// else on the machine.
pub async fn evict_from_cache(path: &Path) {
    let _ = Command::new("dd")
        .arg(format!("if={}", path.display()))
        .args(["iflag=nocache", "count=0", "status=none"])
        .status()
        .await;
}
