//! Event latency: from the sandbox emitting a status change to (a) the POS receiving its
//! `init/sync` answer and (b) the UI receiving the SSE `status` event.
//!
//! One agent, paired with a device of a sandbox process whose autopilot is off. For each sample
//! a POS call waits in `init/sync`; once the agent has journaled the new transaction, the
//! benchmark approves it through the sandbox control API. The moment of emission is taken as
//! the moment a *reference* Socket.IO client (`till_sensepass::socket`) in this process,
//! subscribed to the same device, receives the final `message`: the sandbox sends one frame to
//! every socket of the device at once, so the reference sees what the agent's listener sees, and
//! all three timestamps come from one clock. The time from the approve call is reported as well
//! (an upper bound that needs no reference client).

use crate::procs::{self, AgentMode, AgentProc, Bins, SandboxProc};
use crate::stats::Summary;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use till_sensepass::socket::{spawn_listener, SocketEvent};
use till_sensepass::{Client, ClientConfig, Credentials};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EventsResult {
    /// Emission (reference client) → POS sync answer.
    pub to_pos: Summary,
    /// Emission (reference client) → SSE `status` event with `isFinal`.
    pub to_sse: Summary,
    /// Approve call sent → POS sync answer (upper bound, includes the control call).
    pub call_to_pos: Summary,
    /// Samples that timed out or failed.
    pub errors: usize,
}

/// One SSE event as received: when, name, data.
type Sse = (Instant, String, Value);

/// Reads `GET /api/agent/events` and forwards every event with its arrival time.
async fn sse_reader(
    url: String,
    tx: mpsc::UnboundedSender<Sse>,
    stop: CancellationToken,
) -> Result<()> {
    let http = reqwest::Client::builder().build()?;
    let mut resp = http.get(url).send().await?.error_for_status()?;
    let mut buf = String::new();
    loop {
        let chunk = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            c = resp.chunk() => c?,
        };
        let Some(chunk) = chunk else { return Ok(()) };
        let now = Instant::now();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut name = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if !name.is_empty() {
                let value = serde_json::from_str(&data).unwrap_or(Value::Null);
                if tx.send((now, name, value)).is_err() {
                    return Ok(());
                }
            }
        }
    }
}

/// Waits for the first SSE event matching `pred`, within `limit`.
async fn wait_sse(
    rx: &mut mpsc::UnboundedReceiver<Sse>,
    limit: Duration,
    pred: impl Fn(&str, &Value) -> bool,
) -> Result<Sse> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(ev)) if pred(&ev.1, &ev.2) => return Ok(ev),
            Ok(Some(_)) => continue,
            Ok(None) => bail!("SSE stream ended"),
            Err(_) => bail!("no matching SSE event within {limit:?}"),
        }
    }
}

/// Runs `samples` measurements (at most `limit` in total).
pub async fn run(
    bins: &Bins,
    work: &Path,
    samples: usize,
    limit: Duration,
) -> Result<EventsResult> {
    let http = procs::http()?;
    let sandbox = SandboxProc::start(bins, &work.join("events-sandbox.log")).await?;
    let device = sandbox.create_device(&http, "event latency till").await?;
    let dir = work.join("events-agent");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    procs::pair(bins, &dir, &device, &sandbox).await?;
    let agent = AgentProc::start(bins, &dir, AgentMode::External(&sandbox)).await?;
    let result = measure(&agent, &sandbox, &device, samples, limit).await;
    agent.stop().await;
    sandbox.stop().await;
    result
}

async fn measure(
    agent: &AgentProc,
    sandbox: &SandboxProc,
    device: &str,
    samples: usize,
    limit: Duration,
) -> Result<EventsResult> {
    let http = procs::http()?;
    agent
        .wait_ready(&http, true, Duration::from_secs(60))
        .await?;
    sandbox.autopilot(&http, None).await?;
    let stop = CancellationToken::new();
    let (sse_tx, mut sse_rx) = mpsc::unbounded_channel();
    let sse_task = tokio::spawn(sse_reader(
        format!("{}/api/agent/events", agent.url),
        sse_tx,
        stop.clone(),
    ));
    wait_sse(&mut sse_rx, Duration::from_secs(10), |name, _| {
        name == "hello"
    })
    .await
    .context("SSE hello")?;
    // The reference client's events are stamped by a task of their own the moment they arrive.
    let mut listener = spawn_listener(
        sandbox.socket_url.clone(),
        device.to_string(),
        stop.child_token(),
    );
    let (ref_tx, mut reference) = mpsc::unbounded_channel::<(Instant, SocketEvent)>();
    tokio::spawn(async move {
        while let Some(ev) = listener.recv().await {
            if ref_tx.send((Instant::now(), ev)).is_err() {
                break;
            }
        }
    });
    loop {
        match tokio::time::timeout(Duration::from_secs(30), reference.recv()).await {
            Ok(Some((_, SocketEvent::Connected))) => break,
            Ok(Some(_)) => continue,
            _ => bail!("reference Socket.IO client did not connect"),
        }
    }
    let pos = Client::new(
        ClientConfig {
            base_url: format!("{}/api/", agent.url),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
        },
        Credentials::Device(device.to_string()),
    )?;
    let (mut to_pos, mut to_sse, mut call_to_pos) = (Vec::new(), Vec::new(), Vec::new());
    let mut errors = 0;
    let started = Instant::now();
    for i in 0..samples {
        if started.elapsed() > limit {
            break;
        }
        match sample(&pos, &http, sandbox, &mut sse_rx, &mut reference, i).await {
            Ok((p, s, c)) => {
                to_pos.push(p);
                to_sse.push(s);
                call_to_pos.push(c);
            }
            Err(e) => {
                errors += 1;
                eprintln!("events: sample {i} failed: {e:#}");
                if errors > 10 {
                    break;
                }
            }
        }
    }
    stop.cancel();
    let _ = sse_task.await;
    Ok(EventsResult {
        to_pos: Summary::of_ms(to_pos),
        to_sse: Summary::of_ms(to_sse),
        call_to_pos: Summary::of_ms(call_to_pos),
        errors,
    })
}

/// Signed difference `b − a` in milliseconds.
fn diff_ms(a: Instant, b: Instant) -> f64 {
    if b >= a {
        (b - a).as_secs_f64() * 1000.0
    } else {
        -((a - b).as_secs_f64() * 1000.0)
    }
}

async fn sample(
    pos: &Client,
    http: &reqwest::Client,
    sandbox: &SandboxProc,
    sse: &mut mpsc::UnboundedReceiver<Sse>,
    reference: &mut mpsc::UnboundedReceiver<(Instant, SocketEvent)>,
    i: usize,
) -> Result<(f64, f64, f64)> {
    let order = format!("event-latency-{}-{i}", std::process::id());
    let body = json!({ "amount": 990, "currency": "EUR", "isCent": true, "posData": { "orderId": order } });
    let call = {
        let pos = pos.clone();
        tokio::spawn(async move {
            let r = pos
                .forward(reqwest::Method::POST, "transactions/init/sync", Some(body))
                .await;
            (Instant::now(), r)
        })
    };
    // The agent has created and journaled the transaction: its SSE says so.
    let (_, _, created) = wait_sse(sse, Duration::from_secs(10), |name, v| {
        name == "status" && v["transactionNumber"].is_string() && v["isFinal"] == false
    })
    .await?;
    let number = created["transactionNumber"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // Let the agent finish with the creation events, then forget everything seen so far.
    tokio::time::sleep(Duration::from_millis(20)).await;
    while sse.try_recv().is_ok() {}
    while reference.try_recv().is_ok() {}

    let t_call = Instant::now();
    http.post(format!(
        "{}/transactions/{number}/approve",
        sandbox.control_url
    ))
    .json(&json!({}))
    .send()
    .await?
    .error_for_status()?;
    let t_ref = loop {
        match tokio::time::timeout(Duration::from_secs(10), reference.recv()).await {
            Ok(Some((at, SocketEvent::Message(t))))
                if t.number().as_str() == number && t.status().is_final() =>
            {
                break at
            }
            Ok(Some(_)) => continue,
            _ => bail!("reference client saw no final status"),
        }
    };
    let (t_sse, _, _) = wait_sse(sse, Duration::from_secs(10), |name, v| {
        name == "status" && v["transactionNumber"] == number.as_str() && v["isFinal"] == true
    })
    .await?;
    let (t_pos, answer) = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .map_err(|_| anyhow!("no POS answer"))??;
    let (status, body) = answer.map_err(|e| anyhow!("init/sync: {e}"))?;
    if status != 200 || body["status"] != 5 {
        bail!("init/sync answered {status}: {body}");
    }
    Ok((
        diff_ms(t_ref, t_pos),
        diff_ms(t_ref, t_sse),
        diff_ms(t_call, t_pos),
    ))
}
