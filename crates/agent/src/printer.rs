//! The print queue worker: receipts on the store's thermal printer, never lost, never twice.
//!
//! A receipt to print is an intent like a refund: journaled (`print_jobs`, `queued`) before
//! anything is sent. The worker prints due jobs oldest first:
//!
//! 1. renders the receipt from the journal (the same model as the PDF, `till_printer`),
//! 2. opens the printer ([`till_printer::transport::open`]): connects, and where the printer
//!    answers ESC/POS real-time status (`DLE EOT`), refuses to go on while it reports paper out,
//!    cover open or offline — nothing is sent, the job waits and is retried with back-off;
//! 3. claims the job (`sending`, committed) — the last step before the first byte;
//! 4. writes it, and marks it `printed`. A connection lost mid-job puts it back in the queue and
//!    the whole receipt is printed again (a receipt cut short is not a receipt).
//!
//! After a crash, a job still `queued` never reached the printer and prints once; a job left
//! `sending` is marked `may_have_printed` and is *not* printed again by itself (docs/DECISIONS.md,
//! "Print queue after a crash").
//!
//! The cash drawer kick does not queue: it opens now or the request fails ([`open_drawer`]).
//! Where the printer is and how it prints comes from the configuration, replaced by what a manager
//! saves in Settings (kept in the journal under [`SETTINGS_KEY`]).

use crate::config::PrinterConfig;
use crate::error::AgentError;
use crate::service::Agent;
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;
use till_journal::{NewPrintJob, PrintJob, PrintState};
use till_printer::{Copy, PrinterState, SendError, Target, Timeouts};

/// Journal setting holding the printer settings a manager saved (JSON of [`PrinterConfig`]).
pub const SETTINGS_KEY: &str = "printer.settings";

/// How often the worker looks for due jobs when nothing wakes it.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Longest wait between two attempts while the printer is away.
const MAX_RETRY: Duration = Duration::from_secs(10);

/// The printer's side of the agent: its settings, what it last said, and the worker's wake-up.
#[derive(Debug)]
pub struct Printing {
    /// Settings in force (configuration, or a manager's saved Settings).
    settings: RwLock<PrinterConfig>,
    /// What the printer said at the last attempt or probe.
    status: Mutex<LiveStatus>,
    /// Attempts in a row that found the printer away; sets the back-off, reset on success.
    failures: AtomicU32,
    /// The whole queue waits until then (unix ms) after the printer was found away, so that
    /// receipts keep their order: the one that failed goes first when the printer is back.
    paused_until_ms: AtomicI64,
    /// Wakes the worker when a job is queued or the settings change.
    wake: tokio::sync::Notify,
}

/// The printer's state as last seen, for health and the UI.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveStatus {
    /// Ready, out of paper, offline…; `unknown` before the first attempt or for printers that do
    /// not answer status queries.
    pub state: PrinterState,
    /// The last error, in words.
    pub message: Option<String>,
    /// When it was seen (unix ms), 0 before the first attempt.
    pub at_ms: i64,
}

impl Printing {
    /// The printer side of an agent with these settings.
    pub fn new(settings: PrinterConfig) -> Printing {
        Printing {
            settings: RwLock::new(settings),
            status: Mutex::new(LiveStatus { state: PrinterState::Unknown, message: None, at_ms: 0 }),
            failures: AtomicU32::new(0),
            paused_until_ms: AtomicI64::new(0),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> PrinterConfig {
        self.settings.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_settings(&self, settings: PrinterConfig) {
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = settings;
        self.failures.store(0, Ordering::SeqCst);
        self.paused_until_ms.store(0, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// What the printer said last.
    pub fn status(&self) -> LiveStatus {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_status(&self, state: PrinterState, message: Option<String>) {
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) =
            LiveStatus { state, message, at_ms: till_journal::now_ms() };
    }

    /// Wakes the worker (a job was queued).
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

fn timeouts() -> Timeouts {
    Timeouts::default()
}

/// Applies the Settings a manager saved earlier (they override the configuration file).
pub async fn load_saved(agent: &Agent) -> Result<(), AgentError> {
    if let Some(text) = agent.journal(|j| j.setting(SETTINGS_KEY)).await? {
        match serde_json::from_str::<PrinterConfig>(&text) {
            Ok(saved) if saved.problems().is_empty() => agent.printing().set_settings(saved),
            _ => tracing::warn!("saved printer settings are unreadable; using the configuration file's"),
        }
    }
    Ok(())
}

/// Validates and saves printer settings from Settings: form first (every invalid field named),
/// then whether the printer can be reached there. Nothing changes unless all of it is right.
pub async fn save_settings(agent: &Agent, settings: PrinterConfig) -> Result<PrinterConfig, AgentError> {
    let mut invalid = till_core::InvalidParameters::new();
    for (field, reason) in settings.problems() {
        invalid.push(field, &reason);
    }
    invalid.into_result().map_err(AgentError::Invalid)?;
    if let Some(url) = settings.url.clone() {
        let target = Target::parse(&url).map_err(|e| AgentError::invalid("url", &e.to_string()))?;
        tokio::task::spawn_blocking(move || till_printer::transport::check(&target, timeouts()))
            .await
            .map_err(|e| AgentError::Internal(e.to_string()))?
            .map_err(|e| AgentError::invalid("url", &e.to_string()))?;
    }
    let text = serde_json::to_string(&settings).map_err(|e| AgentError::Internal(e.to_string()))?;
    agent.journal(move |j| j.set_setting(SETTINGS_KEY, &text)).await?;
    agent.printing().set_settings(settings.clone());
    tracing::info!(printer = settings.url.as_deref().unwrap_or("none"), "printer settings saved");
    Ok(settings)
}

/// Queues a receipt of payment `local_id`. `key` makes it idempotent: a second call with the same
/// key returns the first job (`false`).
pub async fn enqueue_receipt(
    agent: &Agent,
    local_id: &str,
    copy: Copy,
    reason: &str,
    key: String,
) -> Result<(PrintJob, bool), AgentError> {
    if agent.printing().settings().url.is_none() {
        return Err(AgentError::Printer("no receipt printer is configured (Settings → Printer)".into()));
    }
    let job = NewPrintJob {
        job_key: key,
        kind: "receipt".into(),
        local_id: Some(local_id.to_string()),
        copy: Some(copy.name().to_string()),
        reason: reason.to_string(),
        now_ms: till_journal::now_ms(),
    };
    let queued = agent.journal(move |j| j.enqueue_print(job)).await?;
    agent.printing().wake();
    Ok(queued)
}

/// Queues a test page (Settings → Printer → Test print).
pub async fn enqueue_test(agent: &Agent) -> Result<PrintJob, AgentError> {
    if agent.printing().settings().url.is_none() {
        return Err(AgentError::Printer("no receipt printer is configured".into()));
    }
    let job = NewPrintJob {
        job_key: format!("test:{}", uuid::Uuid::new_v4()),
        kind: "test".into(),
        local_id: None,
        copy: None,
        reason: "settings".into(),
        now_ms: till_journal::now_ms(),
    };
    let (job, _) = agent.journal(move |j| j.enqueue_print(job)).await?;
    agent.printing().wake();
    Ok(job)
}

/// Hook after a payment is approved: the customer's receipt, when the store prints on approval.
/// Never fails the payment path; a problem is logged.
pub async fn on_approved(agent: &Agent, local_id: &str) {
    let s = agent.printing().settings();
    if s.url.is_none() || !s.print_on_approval {
        return;
    }
    let key = format!("approval:{local_id}:customer");
    if let Err(e) = enqueue_receipt(agent, local_id, Copy::Customer, "approval", key).await {
        tracing::warn!(error = %e, "could not queue the approval receipt");
    }
}

/// Hook after a refund was accepted or queued (outbox operation `op_id`): the customer's receipt
/// with the refund on it, when the store prints on refunds.
pub async fn on_refund(agent: &Agent, local_id: &str, op_id: i64) {
    let s = agent.printing().settings();
    if s.url.is_none() || !s.print_on_refund {
        return;
    }
    let key = format!("refund:{op_id}:customer");
    if let Err(e) = enqueue_receipt(agent, local_id, Copy::Customer, "refund", key).await {
        tracing::warn!(error = %e, "could not queue the refund receipt");
    }
}

/// Opens the cash drawer now (`ESC p` through the printer), journaled: the intent first, then
/// `printed` (sent) or `failed` with the reason. Never queued for later.
pub async fn open_drawer(agent: &Agent, key: Option<String>) -> Result<PrintJob, AgentError> {
    let Some(url) = agent.printing().settings().url else {
        return Err(AgentError::Printer("no receipt printer is configured; the drawer is wired to it".into()));
    };
    let target = Target::parse(&url).map_err(|e| AgentError::Printer(e.to_string()))?;
    let job = NewPrintJob {
        job_key: format!("drawer:{}", key.unwrap_or_else(|| uuid::Uuid::new_v4().to_string())),
        kind: "drawer".into(),
        local_id: None,
        copy: None,
        reason: "pos".into(),
        now_ms: till_journal::now_ms(),
    };
    let (job, new) = agent.journal(move |j| j.enqueue_print(job)).await?;
    if !new {
        // The same request again: answer what happened the first time, never kick twice.
        return Ok(job);
    }
    let id = job.id;
    let claimed = agent.journal(move |j| j.claim_print_job(id, till_journal::now_ms())).await?;
    if claimed.is_none() {
        return Ok(job);
    }
    let sent = tokio::task::spawn_blocking(move || {
        let mut bytes = till_printer::INIT.to_vec();
        bytes.extend_from_slice(till_printer::DRAWER_KICK);
        till_printer::transport::send_now(&target, &bytes, timeouts())
    })
    .await
    .map_err(|e| AgentError::Internal(e.to_string()))?;
    let now = till_journal::now_ms();
    match sent {
        Ok(()) => {
            tracing::info!(job = id, "cash drawer opened");
            agent.journal(move |j| j.finish_print_job(id, PrintState::Printed, None, now)).await
        }
        Err(e) => {
            let reason = e.to_string();
            let r = reason.clone();
            agent.journal(move |j| j.finish_print_job(id, PrintState::Failed, Some(&r), now)).await?;
            Err(AgentError::Printer(format!("the drawer did not open: {reason}")))
        }
    }
}

/// Runs until shutdown: recovers jobs a crash left `sending`, then prints due jobs.
pub async fn run(agent: Agent) {
    let shutdown = agent.shutdown_token().clone();
    match agent.journal(|j| j.recover_print_jobs(till_journal::now_ms())).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(jobs = n, "print jobs interrupted by a stop: marked 'may have printed' or failed"),
        Err(e) => tracing::error!(error = %e, "print queue: recovery failed"),
    }
    loop {
        let now = till_journal::now_ms();
        if agent.printing().settings().url.is_some() && now >= agent.printing().paused_until_ms.load(Ordering::SeqCst) {
            match agent.journal(move |j| j.due_print_jobs(now)).await {
                Ok(due) => {
                    for job in due {
                        // In order: when one cannot print, the ones after it wait too.
                        if !print_one(&agent, job).await {
                            break;
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "print queue: cannot read due jobs"),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = agent.printing().wake.notified() => {}
            _ = tokio::time::sleep(IDLE_POLL) => {}
        }
    }
}

/// Renders a job's bytes from the journal; `Ok(None)` when it can never print.
async fn render(agent: &Agent, job: &PrintJob, settings: &PrinterConfig) -> Result<Option<Vec<u8>>, AgentError> {
    let layout = settings.layout();
    match job.kind.as_str() {
        "receipt" => {
            let Some(local) = job.local_id.clone() else { return Ok(None) };
            let key = local.clone();
            let Some(record) = agent.journal(move |j| j.by_local_id(&key)).await? else { return Ok(None) };
            let ops = agent.journal(move |j| j.operations_for(&local)).await?;
            let receipt = crate::api::console::build_receipt(&record, &ops)?;
            let copy = job.copy.as_deref().and_then(Copy::parse).unwrap_or(Copy::Customer);
            Ok(Some(till_printer::render_receipt(&receipt, &layout, copy).map_err(|e| AgentError::Internal(e.to_string()))?))
        }
        "test" => {
            let at = crate::api::console::format_human(job.created_at);
            Ok(Some(till_printer::render_test_page(&layout, "Till Agent", &at).map_err(|e| AgentError::Internal(e.to_string()))?))
        }
        _ => Ok(None),
    }
}

/// Prints one job; `false` when the printer is away (the rest of the queue waits).
async fn print_one(agent: &Agent, job: PrintJob) -> bool {
    let settings = agent.printing().settings();
    let Some(target) = settings.url.as_deref().and_then(|u| Target::parse(u).ok()) else { return false };
    let id = job.id;
    let bytes = match render(agent, &job, &settings).await {
        Ok(Some(b)) => b,
        Ok(None) => {
            let now = till_journal::now_ms();
            let _ = agent
                .journal(move |j| j.finish_print_job(id, PrintState::Failed, Some("nothing to print (transaction not found)"), now))
                .await;
            return true;
        }
        Err(e) => {
            tracing::error!(job = id, error = %e, "cannot render the receipt");
            return false;
        }
    };
    let t = target.clone();
    let opened = tokio::task::spawn_blocking(move || till_printer::transport::open(&t, timeouts())).await;
    let conn = match opened {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            retry_later(agent, id, e).await;
            return false;
        }
        Err(e) => {
            tracing::error!(error = %e, "print worker thread failed");
            return false;
        }
    };
    fail::fail_point!("print::before_claim", |_| crate::failpoints::crash("print::before_claim"));
    let claimed = agent.journal(move |j| j.claim_print_job(id, till_journal::now_ms())).await;
    match claimed {
        Ok(Some(_)) => {}
        Ok(None) => return true,
        Err(e) => {
            tracing::error!(error = %e, "print queue: cannot claim a job");
            return false;
        }
    }
    let written = tokio::task::spawn_blocking(move || conn.write_job(&bytes, timeouts())).await;
    fail::fail_point!("print::after_write", |_| crate::failpoints::crash("print::after_write"));
    let now = till_journal::now_ms();
    match written {
        Ok(Ok(state)) => {
            let printing = agent.printing();
            printing.failures.store(0, Ordering::SeqCst);
            printing.set_status(if state == PrinterState::Unknown { PrinterState::Unknown } else { state }, None);
            if let Err(e) = agent.journal(move |j| j.finish_print_job(id, PrintState::Printed, None, now)).await {
                tracing::error!(error = %e, "print queue: cannot record a printed job");
            }
            tracing::info!(job = id, kind = %job.kind, "printed");
            true
        }
        Ok(Err(e)) => {
            retry_later(agent, id, e).await;
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "print worker thread failed");
            retry_later(agent, id, SendError::Interrupted(e.to_string())).await;
            false
        }
    }
}

/// Puts a job back with back-off after the printer was away, and remembers why.
async fn retry_later(agent: &Agent, id: i64, error: SendError) {
    let printing = agent.printing();
    let n = printing.failures.fetch_add(1, Ordering::SeqCst);
    let delay = Duration::from_millis(500u64.saturating_mul(1 << n.min(6))).min(MAX_RETRY);
    let (state, message) = match &error {
        SendError::NotSent { state, reason } => (*state, reason.clone()),
        SendError::Interrupted(reason) => (PrinterState::Unreachable, format!("connection lost mid-job, printing it again: {reason}")),
    };
    printing.set_status(state, Some(message.clone()));
    tracing::warn!(job = id, printer = state.describe(), "receipt not printed yet: {message}");
    let now = till_journal::now_ms();
    printing.paused_until_ms.store(now + delay.as_millis() as i64, Ordering::SeqCst);
    if let Err(e) = agent.journal(move |j| j.retry_print_job(id, &message, now, now)).await {
        tracing::error!(error = %e, "print queue: cannot reschedule a job");
    }
}

/// The printer in one sentence, as health, the UI and the desktop tray show it:
/// `printer: out of paper, 2 receipts waiting`, `printer: ready`, `no printer`.
pub fn summary(configured: bool, state: PrinterState, counts: &till_journal::PrintCounts) -> String {
    let mut summary = if configured {
        format!("printer: {}", state.describe())
    } else {
        "no printer".to_string()
    };
    if counts.waiting > 0 {
        let noun = if counts.waiting == 1 { "receipt" } else { "receipts" };
        summary.push_str(&format!(", {} {noun} waiting", counts.waiting));
    }
    if counts.may_have_printed > 0 {
        summary.push_str(&format!(", {} may have printed", counts.may_have_printed));
    }
    summary
}

/// The printer's part of `/api/agent/health`: configured or not, its state, the queue, and one
/// sentence for the UI ("printer: out of paper, 2 receipts waiting").
pub async fn health(agent: &Agent) -> Result<Value, AgentError> {
    let settings = agent.printing().settings();
    let counts = agent.journal(|j| j.print_counts()).await?;
    let status = agent.printing().status();
    let configured = settings.url.is_some();
    let summary = summary(configured, status.state, &counts);
    Ok(json!({
        "configured": configured,
        "url": settings.url,
        "state": status.state,
        "message": status.message,
        "waiting": counts.waiting,
        "mayHavePrinted": counts.may_have_printed,
        "failed": counts.failed,
        "summary": summary,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use till_journal::PrintCounts;

    #[test]
    fn the_summary_names_the_state_and_the_queue() {
        let counts = |waiting, may_have_printed| PrintCounts { waiting, may_have_printed, failed: 0 };
        assert_eq!(summary(false, PrinterState::Unknown, &counts(0, 0)), "no printer");
        assert_eq!(summary(true, PrinterState::Ready, &counts(0, 0)), "printer: ready");
        assert_eq!(summary(true, PrinterState::PaperOut, &counts(2, 0)), "printer: out of paper, 2 receipts waiting");
        assert_eq!(summary(true, PrinterState::Unreachable, &counts(1, 1)), "printer: not reachable, 1 receipt waiting, 1 may have printed");
    }
}
