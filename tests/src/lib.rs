//! Harness for end-to-end tests: a SensePass sandbox (in-process, real HTTP and Socket.IO on
//! loopback) and the real `till-agent` binary as a child process with its own data directory.
//!
//! The binary is the one `cargo build --workspace` put next to the test executable
//! (`target/debug/till-agent`); `scripts/test.sh` builds it before running the tests.

pub mod fleet;
pub mod pg;
pub mod printer;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use till_sandbox::{SandboxConfig, SandboxHandle};

/// Path of a workspace binary built next to the running test executable.
pub fn bin_path(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/debug/deps/<test>-<hash> → target/debug/<name>
    let dir = exe.parent().and_then(Path::parent).context("test executable has no target dir")?;
    let path = dir.join(name);
    if !path.exists() {
        bail!("{} not found: run `cargo build --workspace` first (scripts/test.sh does)", path.display());
    }
    Ok(path)
}

/// A running `till-agent` child process.
pub struct AgentProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Everything the agent wrote to stderr is kept in this file (for failing tests).
    pub log: PathBuf,
    /// Kept open so the agent never writes to a closed pipe.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl AgentProcess {
    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the process with SIGKILL (no chance to clean up), like a power cut.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A sandbox plus an agent paired with one of its devices.
pub struct Env {
    /// The in-process SensePass sandbox.
    pub sandbox: SandboxHandle,
    /// The agent child process.
    pub agent: AgentProcess,
    /// The agent's data directory.
    pub data_dir: tempfile::TempDir,
    /// The paired sandbox device id.
    pub device_id: String,
    /// HTTP client for the agent and the sandbox's control API.
    pub http: reqwest::Client,
    /// Extra flags for `till-agent run` (kept for restarts).
    extra: Vec<String>,
}

impl Env {
    /// Starts a sandbox, creates a device, pairs a fresh agent with it and starts the agent.
    pub async fn start() -> Result<Env> {
        Env::start_with(&[]).await
    }

    /// As [`Env::start`], with a config file (TOML) for the agent.
    pub async fn start_with_config(toml: &str) -> Result<Env> {
        Env::start_inner(&[], Some(toml)).await
    }

    /// As [`Env::start`], with extra `till-agent run` flags.
    pub async fn start_with(extra: &[&str]) -> Result<Env> {
        Env::start_inner(extra, None).await
    }

    /// As [`Env::start`], with the agent also configured for the sandbox's Connect-E simulator
    /// (`--connect-e-url`, `--connect-e-web-url`, `--connect-e-key`, `--connect-e-merchant-url`).
    pub async fn start_connect_e(extra: &[&str]) -> Result<Env> {
        Env::start_full(extra, None, true, false).await
    }

    /// As [`Env::start`], with the agent also configured for the sandbox's Acquired simulator
    /// (`--acquired-url`, `--acquired-components-url`, `--acquired-app-id`, `--acquired-app-key`).
    pub async fn start_acquired(extra: &[&str]) -> Result<Env> {
        Env::start_full(extra, None, false, true).await
    }

    /// As [`Env::start_connect_e`], with the agent also configured for the sandbox's FlexFactor
    /// simulator (decline recovery, [`flexfactor_args`]) and an optional config file (TOML).
    pub async fn start_flexfactor(extra: &[&str], config: Option<&str>) -> Result<Env> {
        Env::start_providers(extra, config, true, false, true).await
    }

    async fn start_inner(extra: &[&str], config: Option<&str>) -> Result<Env> {
        Env::start_full(extra, config, false, false).await
    }

    async fn start_full(extra: &[&str], config: Option<&str>, connect_e: bool, acquired: bool) -> Result<Env> {
        Env::start_providers(extra, config, connect_e, acquired, false).await
    }

    async fn start_providers(extra: &[&str], config: Option<&str>, connect_e: bool, acquired: bool, flexfactor: bool) -> Result<Env> {
        let sandbox = till_sandbox::start(SandboxConfig::default()).await.map_err(|e| anyhow!("sandbox: {e}"))?;
        // The agent closes connections idle for 5 s (it says `Keep-Alive: timeout=4`): a pooled
        // connection is dropped before that, as docs/INTEGRATION.md asks of a POS.
        let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).pool_idle_timeout(Duration::from_secs(3)).build()?;
        let device: Value = http
            .post(format!("{}/devices", sandbox.control_url()))
            .json(&json!({ "posName": "E2E till" }))
            .send()
            .await?
            .json()
            .await?;
        let device_id = device["deviceAliasKey"].as_str().context("device id")?.to_string();
        let data_dir = tempfile::tempdir()?;
        if let Some(toml) = config {
            std::fs::write(data_dir.path().join("config.toml"), toml)?;
        }
        let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        if connect_e {
            extra.extend(connect_e_args(&sandbox));
        }
        if acquired {
            extra.extend(acquired_args(&sandbox));
        }
        if flexfactor {
            extra.extend(flexfactor_args(&sandbox));
        }
        let status = Command::new(bin_path("till-agent")?)
            .args(["pair", "--device-id", &device_id])
            .args(common_args(&sandbox, data_dir.path()))
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            bail!("till-agent pair failed");
        }
        let agent = spawn_agent(&sandbox, data_dir.path(), &extra)?;
        let env = Env { sandbox, agent, data_dir, device_id, http, extra };
        env.wait_ready().await?;
        Ok(env)
    }

    /// Kills the agent with SIGKILL and starts it again on the same data directory.
    pub async fn restart_agent(&mut self) -> Result<()> {
        self.restart_agent_with(&[]).await
    }

    /// As [`Env::restart_agent`], with extra environment variables (e.g. `FAILPOINTS`).
    pub async fn restart_agent_with(&mut self, envs: &[(&str, &str)]) -> Result<()> {
        if envs.iter().any(|(k, _)| *k == "FAILPOINTS") {
            let out = Command::new(bin_path("till-agent")?).arg("features").output()?;
            if !String::from_utf8_lossy(&out.stdout).contains("failpoints") {
                bail!("target/debug/till-agent was built without failpoints: run `cargo build --workspace` (scripts/test.sh does)");
            }
        }
        self.agent.kill9();
        self.agent = spawn_agent_with(&self.sandbox, self.data_dir.path(), &self.extra, envs)?;
        self.wait_ready().await
    }

    /// True while the agent process is alive (a failpoint may have killed it).
    pub fn agent_alive(&mut self) -> bool {
        self.agent.alive()
    }

    /// Waits until health answers `ok` (start-up reconciliation done) with the Socket.IO stream
    /// connected, so that tests see live events rather than the polling fallback.
    pub async fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.http.get(self.url("/api/agent/health")).send().await {
                if let Ok(v) = r.json::<Value>().await {
                    if v["status"] == "ok" && v["socketConnected"] == true {
                        return Ok(());
                    }
                }
            }
            if Instant::now() > deadline {
                bail!("agent not ready; log: {}", std::fs::read_to_string(&self.agent.log).unwrap_or_default());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Full URL of an agent path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.agent.url, path)
    }

    /// POSTs JSON to the agent; returns status and body.
    pub async fn post(&self, path: &str, body: Value) -> Result<(u16, Value)> {
        let r = self.http.post(self.url(path)).json(&body).send().await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    /// GETs from the agent; returns status and body.
    pub async fn get(&self, path: &str) -> Result<(u16, Value)> {
        let r = self.http.get(self.url(path)).send().await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    /// POSTs to the sandbox control API (`/_sandbox` + path).
    pub async fn control(&self, path: &str, body: Value) -> Result<Value> {
        let r = self.http.post(format!("{}{}", self.sandbox.control_url(), path)).json(&body).send().await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("control {path}: {status} {v}");
        }
        Ok(v)
    }

    /// DELETEs on the sandbox control API.
    pub async fn control_delete(&self, path: &str) -> Result<()> {
        self.http.delete(format!("{}{}", self.sandbox.control_url(), path)).send().await?;
        Ok(())
    }

    /// The sandbox's ground truth: every transaction, refund and commit it holds.
    pub async fn sandbox_state(&self) -> Result<Value> {
        Ok(self.http.get(format!("{}/state", self.sandbox.control_url())).send().await?.json().await?)
    }

    /// Sandbox transactions whose `posData.orderId` is `order_id`.
    pub async fn sandbox_transactions_for(&self, order_id: &str) -> Result<Vec<Value>> {
        let state = self.sandbox_state().await?;
        Ok(state["transactions"]
            .as_array()
            .map(|a| a.iter().filter(|t| t["posData"]["orderId"] == order_id).cloned().collect())
            .unwrap_or_default())
    }

    /// Sets the manager PIN the way a till's owner does: `till-agent manager set-pin`, PIN on stdin.
    pub fn set_manager_pin(&self, pin: &str) -> Result<()> {
        set_manager_pin(self.data_dir.path(), &common_args(&self.sandbox, self.data_dir.path()), pin)
    }

    /// Common `till-agent` flags for this environment (config, data dir, sandbox URLs).
    /// `host:port` of the sandbox's SensePass REST listener (for a proxy in front of it).
    pub fn sandbox_api_addr(&self) -> String {
        self.sandbox.api_base().trim_start_matches("http://").trim_end_matches("/api/").to_string()
    }

    pub fn common_args(&self) -> Vec<String> {
        common_args(&self.sandbox, self.data_dir.path())
    }

    /// The POS token, read with `till-agent token`.
    pub fn token(&self) -> Result<String> {
        let out = Command::new(bin_path("till-agent")?)
            .arg("token")
            .args(common_args(&self.sandbox, self.data_dir.path()))
            .output()?;
        Ok(String::from_utf8(out.stdout)?.trim().to_string())
    }

    /// Polls `GET path` until `pred` holds on the body, or fails after `secs`.
    pub async fn eventually(&self, path: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (_, v) = self.get(path).await?;
            if pred(&v) {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!("condition not reached on {path}; last: {v}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Runs `till-agent manager set-pin` with `args`, writing `pin` to its stdin.
pub fn set_manager_pin(_data_dir: &Path, args: &[String], pin: &str) -> Result<()> {
    use std::io::Write;
    let mut child = Command::new(bin_path("till-agent")?)
        .args(["manager", "set-pin"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    child.stdin.take().context("stdin")?.write_all(format!("{pin}\n").as_bytes())?;
    if !child.wait()?.success() {
        bail!("till-agent manager set-pin failed");
    }
    Ok(())
}

/// Starts `till-agent run --listen 127.0.0.1:0 <args>` (optionally under a wrapper command such as
/// `prlimit --nofile=1024:1024`) and returns once it has named its address.
pub fn start_agent_process(data_dir: &Path, args: &[String], wrapper: &[&str]) -> Result<AgentProcess> {
    let log = data_dir.join("agent-stderr.log");
    let log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
    let bin = bin_path("till-agent")?;
    let mut command = match wrapper.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    let mut child = command
        .arg("run")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("TILL_AGENT_LOG", "info,till_agent=debug")
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut stdout = BufReader::new(stdout);
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    let url = line
        .trim()
        .strip_prefix("till-agent listening on ")
        .with_context(|| format!("unexpected first line from till-agent: {line:?}"))?
        .to_string();
    Ok(AgentProcess { child, url, log, _stdout: stdout })
}

/// One HTTP/1.1 request written byte for byte (the path exactly as given: no client normalises
/// it), `Connection: close`. Returns the status and the body text.
pub async fn raw_http(base: &str, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
            req.push_str("Content-Type: application/json\r\n");
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n{b}", b.len()));
    } else {
        req.push_str("\r\n");
    }
    stream.write_all(req.as_bytes()).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await??;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .with_context(|| format!("no HTTP status in {text:?}"))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// The flags that point an agent at the sandbox's Connect-E simulator.
pub fn connect_e_args(sandbox: &SandboxHandle) -> Vec<String> {
    vec![
        "--connect-e-url".into(),
        sandbox.connect_e_url(),
        "--connect-e-web-url".into(),
        sandbox.connect_e_web_url(),
        "--connect-e-key".into(),
        sandbox.connect_e_api_key().to_string(),
        "--connect-e-merchant-url".into(),
        sandbox.connect_e_merchant_url().to_string(),
    ]
}

/// The flags that point an agent at the sandbox's FlexFactor simulator (decline recovery).
pub fn flexfactor_args(sandbox: &SandboxHandle) -> Vec<String> {
    vec![
        "--flexfactor-url".into(),
        sandbox.flexfactor_url(),
        "--flexfactor-app-key".into(),
        till_sandbox::FLEXFACTOR_APP_KEY.into(),
        "--flexfactor-app-secret".into(),
        till_sandbox::FLEXFACTOR_APP_SECRET.into(),
        "--flexfactor-mid".into(),
        till_sandbox::FLEXFACTOR_MID.into(),
        "--flexfactor-site-id".into(),
        till_sandbox::FLEXFACTOR_SITE_ID.into(),
        "--flexfactor-tokenize-environment".into(),
        till_sandbox::FLEXFACTOR_TOKENIZE_ENVIRONMENT.into(),
    ]
}

/// The flags that point an agent at the sandbox's Acquired simulator.
pub fn acquired_args(sandbox: &SandboxHandle) -> Vec<String> {
    vec![
        "--acquired-url".into(),
        sandbox.acquired_url(),
        "--acquired-components-url".into(),
        sandbox.acquired_components_url(),
        "--acquired-app-id".into(),
        sandbox.acquired_app_id().to_string(),
        "--acquired-app-key".into(),
        sandbox.acquired_app_key().to_string(),
    ]
}

fn common_args(sandbox: &SandboxHandle, data_dir: &Path) -> Vec<String> {
    vec![
        "--config".into(),
        data_dir.join("config.toml").display().to_string(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--sensepass-url".into(),
        sandbox.api_base(),
        "--socket-url".into(),
        sandbox.socket_url(),
    ]
}

fn spawn_agent(sandbox: &SandboxHandle, data_dir: &Path, extra: &[String]) -> Result<AgentProcess> {
    spawn_agent_with(sandbox, data_dir, extra, &[])
}

fn spawn_agent_with(
    sandbox: &SandboxHandle,
    data_dir: &Path,
    extra: &[String],
    envs: &[(&str, &str)],
) -> Result<AgentProcess> {
    let log = data_dir.join("agent-stderr.log");
    let log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
    let mut child = Command::new(bin_path("till-agent")?)
        .arg("run")
        .args(["--listen", "127.0.0.1:0"])
        .args(common_args(sandbox, data_dir))
        .args(extra)
        .env("TILL_AGENT_LOG", "info,till_agent=debug")
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut stdout = BufReader::new(stdout);
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    let url = line
        .trim()
        .strip_prefix("till-agent listening on ")
        .with_context(|| format!("unexpected first line from till-agent: {line:?}"))?
        .to_string();
    Ok(AgentProcess { child, url, log, _stdout: stdout })
}

/// A minimal valid init body.
pub fn init_body(order_id: &str, amount: i64) -> Value {
    json!({ "amount": amount, "isCent": true, "currency": "USD", "timeOut": 600, "posData": { "orderId": order_id } })
}

/// A paid (approved) payment created through the agent; returns its TransactionNumber.
pub async fn pay(env: &Env, order_id: &str, amount: i64) -> Result<String> {
    let (status, created) = env.post("/api/transactions/init", init_body(order_id, amount)).await?;
    if status != 200 {
        bail!("init {order_id}: {status} {created}");
    }
    let number = created["TransactionNumber"].as_str().context("number")?.to_string();
    env.control(&format!("/transactions/{number}/pay"), json!({ "card": "4111111111111111" })).await?;
    env.eventually(&format!("/api/agent/transactions/{number}"), 15, |v| v["status"] == 5).await?;
    Ok(number)
}

/// POSTs a refund with the POS token and an Idempotency-Key; returns status and body.
pub async fn refund(env: &Env, token: &str, key: &str, body: Value) -> Result<(u16, Value)> {
    let r = env
        .http
        .post(env.url("/api/transactions/refund"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

/// The sandbox's record of one transaction (its ground truth).
pub async fn sandbox_tx(env: &Env, number: &str) -> Result<Value> {
    let state = env.sandbox_state().await?;
    state["transactions"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["TransactionNumber"] == number).cloned())
        .with_context(|| format!("sandbox has no {number}"))
}

/// Waits until the agent's outbox has nothing pending or in flight.
pub async fn outbox_drained(env: &Env, secs: u64) -> Result<Value> {
    env.eventually("/api/agent/outbox", secs, |v| {
        v["items"].as_array().map(|a| a.iter().all(|o| o["state"] == "delivered" || o["state"] == "failed")).unwrap_or(false)
    })
    .await
}
