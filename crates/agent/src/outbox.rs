//! The outbox worker: delivers journaled operations (payment commits, cancels, refunds) to
//! SensePass, retrying with exponential back-off and jitter until each has a definite answer.
//!
//! An operation is journaled (`Pending`) before any network call. Delivery marks it `InFlight`
//! (a compare-and-set in the journal, so the API path and the worker never send the same
//! operation twice at once), then `Delivered` with SensePass's answer, `Failed` with a reason when
//! SensePass gave a definite refusal, or back to `Pending` with a later `next_attempt_at` when the
//! outcome is unknown or SensePass is unreachable. The schedule is stored in the journal, so a
//! restart resumes it; the delays come from `backon`'s exponential builder.
//!
//! Exactly once: before re-sending a refund whose previous attempt had an uncertain outcome, the
//! worker reads the transaction at SensePass and counts its refund confirmations; if the refund is
//! already there it is marked delivered without a second call.

use crate::error::AgentError;
use crate::events::EventBus;
use backon::BackoffBuilder;
use serde_json::{json, Value};
use std::time::Duration;
use till_core::{Minor, Status};
use till_journal::{EventSource, Journal, OpKind, OpState, Operation, PaymentRecord};
use till_sensepass::models::RefundRequest;
use till_sensepass::{Client, Transaction};
use tokio_util::sync::CancellationToken;

/// Longest wait between two attempts of one operation.
const MAX_DELAY: Duration = Duration::from_secs(60);

/// How often the worker looks for due operations when nothing wakes it.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Most time one delivery may take: it makes at most four SensePass calls (a look-up first after
/// an uncertain attempt, the operation, a re-read), each bounded by the HTTP timeout, plus the
/// journal. Past it the delivery is abandoned as "outcome unknown" and journaled so.
fn delivery_limit<H: OutboxHost>(agent: &H) -> Duration {
    agent.http_timeout() * 4 + Duration::from_secs(10)
}

/// An operation `in_flight` for longer than this has no delivery working on it any more (every
/// delivery ends within [`delivery_limit`] and journals how): it was interrupted without an
/// outcome, like one a restart finds, and goes back to the queue marked uncertain.
fn claim_lease<H: OutboxHost>(agent: &H) -> Duration {
    delivery_limit(agent) + Duration::from_secs(30)
}

/// Prefix of `last_error` when an attempt's outcome is unknown; the next attempt checks first.
const UNCERTAIN: &str = "uncertain:";

/// What the outbox needs from the rest of the agent, and nothing more: the journal, the bus,
/// the shutdown and wake-up signals, a SensePass client for the paired device, and the way
/// observations reach the journal (so a refund or cancel is followed by a re-read of the
/// transaction). The agent ([`crate::Agent`]) implements it; the outbox never names the agent,
/// so the orchestrator depends on the outbox and not the other way round.
#[async_trait::async_trait]
pub trait OutboxHost: Clone + Send + Sync + 'static {
    /// The journal the operations live in.
    fn journal_handle(&self) -> &Journal;
    /// Where operation state changes are published (the manager console follows them).
    fn bus(&self) -> &EventBus;
    /// Cancelled when the agent shuts down.
    fn shutdown_token(&self) -> &CancellationToken;
    /// Resolves when an operation was queued (the worker also polls on a timer).
    async fn outbox_woken(&self);
    /// Wakes the worker (an abandoned delivery was put back in the queue).
    fn wake_outbox(&self);
    /// The time-out of one SensePass call; a delivery is bounded by a few of them.
    fn http_timeout(&self) -> Duration;
    /// The paired device and a SensePass client authenticated as it.
    async fn device_client(&self) -> Result<(String, Client), AgentError>;
    /// Marks SensePass unreachable (from now, if not already) or reachable.
    fn note_offline_if(&self, offline: bool);
    /// Re-reads a transaction from SensePass and applies it to the journal (source: poll).
    async fn refresh(&self, number: &str) -> Result<PaymentRecord, AgentError>;
    /// Applies an entity read from SensePass to the journal.
    async fn apply(&self, tx: Transaction, source: EventSource) -> Result<PaymentRecord, AgentError>;
}

/// Runs a synchronous journal call of the host's journal on the blocking pool.
async fn journal<H, T, F>(host: &H, f: F) -> Result<T, AgentError>
where
    H: OutboxHost,
    T: Send + 'static,
    F: FnOnce(&Journal) -> Result<T, till_journal::JournalError> + Send + 'static,
{
    crate::journal_task::run(host.journal_handle(), f).await
}

/// The delay before attempt number `attempts` (1-based), with jitter.
pub fn backoff_delay(attempts: u32) -> Duration {
    let mut delays = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(MAX_DELAY)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build();
    let n = attempts.saturating_sub(1).min(64) as usize;
    delays.nth(n).unwrap_or(MAX_DELAY)
}

/// Runs until shutdown: delivers due operations, then sleeps until woken or [`IDLE_POLL`].
pub async fn run<H: OutboxHost>(agent: H) {
    let shutdown = agent.shutdown_token().clone();
    loop {
        let now = till_journal::now_ms();
        requeue_abandoned(&agent, now).await;
        match journal(&agent, move |j| j.due_operations(now)).await {
            Ok(due) => {
                for op in due {
                    if let Err(e) = deliver_now(&agent, op).await {
                        tracing::debug!(error = %e, "operation not delivered yet");
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "outbox: cannot read due operations"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = agent.outbox_woken() => {}
            _ = tokio::time::sleep(IDLE_POLL) => {}
        }
    }
}

/// Delivers one operation now and returns SensePass's answer (or the error that kept it pending).
///
/// The delivery runs as its own task: when the caller goes away mid-call (a POS that hangs up
/// while its refund is being sent drops the request's future), the delivery still finishes and
/// journals its outcome. Dropped half way, an operation would stay `in_flight` — claimed, never
/// retried — until the next restart.
///
/// And it is bounded ([`delivery_limit`]): a delivery that takes longer is abandoned and
/// journaled as uncertain, so the next attempt checks SensePass before sending anything.
pub async fn deliver_now<H: OutboxHost>(agent: &H, op: Operation) -> Result<Value, AgentError> {
    let agent = agent.clone();
    let limit = delivery_limit(&agent);
    tokio::spawn(async move {
        let id = op.id;
        match tokio::time::timeout(limit, deliver(&agent, op)).await {
            Ok(result) => result,
            Err(_) => {
                tracing::error!(operation = id, ?limit, "delivery took too long; abandoned as uncertain");
                requeue_if_in_flight(&agent, id, "uncertain: the delivery took too long and was abandoned").await;
                Err(AgentError::Uncertain(format!("operation {id}: no outcome in {limit:?}; it is checked with SensePass before it is sent again")))
            }
        }
    })
    .await
    .map_err(|e| AgentError::Internal(format!("delivery task failed: {e}")))?
}

/// Puts operation `id` back in the queue, marked uncertain, if it is still `in_flight`.
async fn requeue_if_in_flight<H: OutboxHost>(agent: &H, id: i64, why: &'static str) {
    let now = till_journal::now_ms();
    let result = journal(agent, move |j| match j.operation(id)? {
            Some(op) if op.state == OpState::InFlight => j.reschedule(id, op.attempts, now, why).map(Some),
            _ => Ok(None),
        })
        .await;
    match result {
        Ok(Some(_)) => {
            publish(agent, id, "pending");
            agent.wake_outbox();
        }
        Ok(None) => {}
        Err(e) => tracing::error!(operation = id, error = %e, "cannot re-queue an abandoned operation"),
    }
}

/// Operations left `in_flight` past [`claim_lease`] — a delivery that ended without journaling
/// its outcome — go back to the queue, uncertain, as a restart would put them. Credits excepted:
/// they are never sent again (`crate::credit`).
async fn requeue_abandoned<H: OutboxHost>(agent: &H, now: i64) {
    let cutoff = now - claim_lease(agent).as_millis() as i64;
    let stale = journal(agent, move |j| {
            Ok(j.operations(Some(OpState::InFlight), 1_000, 0)?
                .into_iter()
                .filter(|op| op.kind != OpKind::Credit && op.updated_at < cutoff)
                .map(|op| op.id)
                .collect::<Vec<_>>())
        })
        .await;
    match stale {
        Ok(ids) => {
            for id in ids {
                tracing::error!(operation = id, "operation in flight past its lease with no outcome; re-queued as uncertain");
                requeue_if_in_flight(agent, id, "uncertain: its delivery ended without an outcome").await;
            }
        }
        Err(e) => tracing::error!(error = %e, "outbox: cannot read operations in flight"),
    }
}

/// [`deliver_now`]'s body: claim, send, journal the outcome.
async fn deliver<H: OutboxHost>(agent: &H, op: Operation) -> Result<Value, AgentError> {
    let (id, now) = (op.id, till_journal::now_ms());
    // Claim it (Pending → InFlight, journaled before the call): two senders never send one op.
    let claimed = journal(agent, move |j| match j.mark_in_flight(id, now) {
            Ok(op) => Ok(Some(op)),
            Err(till_journal::JournalError::InvalidOpState { .. }) => Ok(None),
            Err(e) => Err(e),
        })
        .await?;
    let Some(op) = claimed else {
        // Another sender holds it: its outcome is not known yet to this caller.
        return Err(AgentError::Uncertain(format!("operation {id} is already being delivered")));
    };
    fail::fail_point!("outbox::before_send", |_| crate::failpoints::crash("outbox::before_send"));
    let result = match op.kind {
        OpKind::Commit => deliver_commit(agent, &op).await,
        OpKind::Cancel => deliver_cancel(agent, &op).await,
        OpKind::Refund => deliver_refund(agent, &op).await,
        OpKind::Credit => Err(Attempt::Refused("credits are sent directly, not through the outbox".into())),
    };
    fail::fail_point!("outbox::after_send", |_| crate::failpoints::crash("outbox::after_send"));
    // A delivery that ends without journaling its outcome (what the claim lease recovers from).
    fail::fail_point!("outbox::outcome_lost", |_| Err(AgentError::Internal("failpoint outbox::outcome_lost".into())));
    let now = till_journal::now_ms();
    match result {
        Ok(answer) => {
            let a = answer.clone();
            journal(agent, move |j| j.mark_delivered(id, &a, now)).await?;
            publish(agent, id, "delivered");
            Ok(answer)
        }
        Err(Attempt::Refused(reason)) => {
            let r = reason.clone();
            journal(agent, move |j| j.mark_failed(id, &r, now)).await?;
            publish(agent, id, "failed");
            Err(AgentError::Conflict(reason))
        }
        Err(Attempt::Answered(status, body)) => {
            // SensePass gave a definite business answer that is not success (501 cancel, declined
            // refund): the operation is over; the POS gets SensePass's own body.
            let reason = format!("SensePass answered {status}: {body}");
            journal(agent, move |j| j.mark_failed(id, &reason, now)).await?;
            publish(agent, id, "failed");
            Err(AgentError::Upstream { status, body })
        }
        Err(Attempt::Retry(error)) => {
            let attempts = op.attempts;
            let next = now + backoff_delay(u32::try_from(attempts).unwrap_or(u32::MAX)).as_millis() as i64;
            let message = match &error {
                till_sensepass::Error::NotSent(m) => format!("unreachable: {m}"),
                other => format!("{UNCERTAIN} {other}"),
            };
            journal(agent, move |j| j.reschedule(id, attempts, next, &message)).await?;
            publish(agent, id, "pending");
            // It will be sent again: the caller must not read this as a refusal.
            Err(match error {
                till_sensepass::Error::NotSent(m) => AgentError::Unreachable(m),
                other => AgentError::Uncertain(format!("{other}; will retry")),
            })
        }
    }
}

/// How one delivery attempt ended.
enum Attempt {
    /// Not delivered; try again later.
    Retry(till_sensepass::Error),
    /// SensePass answered definitely with something other than success.
    Answered(u16, Value),
    /// The operation cannot be delivered at all (bad payload, unknown transaction).
    Refused(String),
}

/// Sorts a SensePass error into retry (unreachable, unknown outcome, 5xx) or a definite answer.
fn classify<H: OutboxHost>(agent: &H, e: till_sensepass::Error) -> Attempt {
    agent.note_offline_if(e.certainly_not_performed());
    match e {
        till_sensepass::Error::Http { status, body } if status < 500 => Attempt::Answered(status, body),
        other => Attempt::Retry(other),
    }
}

fn publish<H: OutboxHost>(agent: &H, id: i64, state: &str) {
    agent.bus().publish(crate::events::AgentEvent::Operation { id, state: state.to_string() });
}

async fn deliver_commit<H: OutboxHost>(agent: &H, op: &Operation) -> Result<Value, Attempt> {
    let link = op.payload.get("commitLink").and_then(Value::as_str).unwrap_or_default().to_string();
    if link.is_empty() {
        return Err(Attempt::Refused("commit without commitLink".into()));
    }
    let (_, client) = agent.device_client().await.map_err(|e| Attempt::Refused(e.to_string()))?;
    let answer = client.commit_payment(&link).await.map_err(|e| classify(agent, e))?;
    agent.note_offline_if(false);
    let number = op.payload.get("transactionNumber").and_then(Value::as_str).unwrap_or_default().to_string();
    let now = till_journal::now_ms();
    journal(agent, move |j| j.record_commit(&number, now))
        .await
        .map_err(|e| Attempt::Refused(e.to_string()))?;
    tracing::info!(operation = op.id, "payment committed");
    serde_json::to_value(&answer).map_err(|e| Attempt::Refused(e.to_string()))
}

async fn deliver_cancel<H: OutboxHost>(agent: &H, op: &Operation) -> Result<Value, Attempt> {
    let number = op.payload.get("transactionNumber").and_then(Value::as_str).unwrap_or_default().to_string();
    let (_, client) = agent.device_client().await.map_err(|e| Attempt::Refused(e.to_string()))?;
    let answer = match client.cancel(&number).await {
        Ok(answer) => answer,
        // The documented 501: the consumer is already paying, so SensePass will not cancel now.
        // A definite answer, not a 5xx to retry: the payment runs on, its outcome is journaled as
        // it comes, and the POS gets SensePass's own 501 (docs/DECISIONS.md).
        Err(till_sensepass::Error::Http { status: 501, body }) => {
            agent.note_offline_if(false);
            return Err(Attempt::Answered(501, body));
        }
        Err(e) => {
            let attempt = classify(agent, e);
            // SensePass refused: if an earlier attempt with an unknown outcome did cancel it, the
            // refusal ("not pending") is the proof it is done, not a failure.
            if let Attempt::Answered(status, body) = attempt {
                if op.attempts > 1 {
                    if let Ok(record) = agent.refresh(&number).await {
                        if record.status == Some(Status::Cancelled) {
                            tracing::info!(%number, "cancel found done after an uncertain attempt");
                            return Ok(json!({ "status": 200, "status_message": "Transaction Was Canceled", "recoveredFrom": "transaction status" }));
                        }
                    }
                }
                return Err(Attempt::Answered(status, body));
            }
            return Err(attempt);
        }
    };
    agent.note_offline_if(false);
    // The cancel answer carries no entity; read the transaction to journal its new status.
    if let Err(e) = agent.refresh(&number).await {
        tracing::warn!(%number, error = %e, "cancelled, but could not re-read the transaction yet");
    }
    serde_json::to_value(&answer).map_err(|e| Attempt::Refused(e.to_string()))
}

async fn deliver_refund<H: OutboxHost>(agent: &H, op: &Operation) -> Result<Value, Attempt> {
    let number = op.payload.get("transactionNumber").and_then(Value::as_str).unwrap_or_default().to_string();
    let amount = op.amount.ok_or_else(|| Attempt::Refused("refund without amount".into()))?;
    let is_partial = op.payload.get("isPartial").and_then(Value::as_bool).unwrap_or(true);
    let (_, client) = agent.device_client().await.map_err(|e| Attempt::Refused(e.to_string()))?;

    // Exactly once: after an uncertain attempt, look before sending again.
    if op.last_error.as_deref().map(|e| e.starts_with(UNCERTAIN)).unwrap_or(false) {
        if let Some(answer) = already_refunded(agent, &client, op, &number).await? {
            return Ok(answer);
        }
    }
    let currency = journal(agent, {
            let n = number.clone();
            move |j| j.by_number(&n)
        })
        .await
        .map_err(|e| Attempt::Refused(e.to_string()))?
        .map(|r| r.currency)
        .ok_or_else(|| Attempt::Refused(format!("transaction {number} not in the journal")))?;
    let _ = currency;
    let request = if is_partial {
        RefundRequest::partial(number.as_str(), amount)
    } else {
        RefundRequest::full(number.as_str())
    };
    let answer = client.refund(&request).await.map_err(|e| classify(agent, e))?;
    agent.note_offline_if(false);
    let body = refund_body(&answer);
    if !answer.is_approved() {
        return Err(Attempt::Answered(200, body));
    }
    if let Err(e) = agent.refresh(&number).await {
        tracing::warn!(%number, error = %e, "refunded, but could not re-read the transaction yet");
    }
    Ok(body)
}

/// Reads the transaction at SensePass and decides whether this refund already happened: the
/// refunds SensePass shows, minus those the journal already counts as delivered, cover this one.
async fn already_refunded<H: OutboxHost>(
    agent: &H,
    client: &Client,
    op: &Operation,
    number: &str,
) -> Result<Option<Value>, Attempt> {
    let tx = client.transaction(number).await.map_err(|e| classify(agent, e))?;
    let currency = tx.currency().map_err(|e| Attempt::Refused(e.to_string()))?;
    let at_sensepass = Minor::checked_sum(
        tx.confirmations().iter().filter(|c| c.is_refund()).filter_map(|c| c.amount_minor(currency).ok()),
    )
    .map_err(|e| Attempt::Refused(e.to_string()))?;
    let local_id = op.transaction_local_id.clone().unwrap_or_default();
    let (delivered, _) = journal(agent, move |j| j.refunded_total(&local_id))
        .await
        .map_err(|e| Attempt::Refused(e.to_string()))?;
    let amount = op.amount.unwrap_or(Minor::ZERO);
    let unseen = at_sensepass.checked_sub(delivered).unwrap_or(Minor::ZERO);
    let status = tx.status();
    let _ = agent.apply(tx, EventSource::Poll).await;
    if unseen >= amount && amount.is_positive() && matches!(status, Status::PartiallyRefunded | Status::Refunded) {
        tracing::info!(operation = op.id, "refund found at SensePass after an uncertain attempt; not re-sending");
        return Ok(Some(json!({ "errorCode": 0, "result": "Approved", "recoveredFrom": "transaction status" })));
    }
    Ok(None)
}

/// SensePass's refund answer as JSON for the POS (every field it sent, unchanged).
fn refund_body(answer: &till_sensepass::models::RefundResponse) -> Value {
    let mut body = Value::Object(answer.extra.clone());
    body["errorCode"] = json!(answer.error_code);
    body["errorMessage"] = json!(answer.error_message);
    body["result"] = json!(answer.result);
    body["refundConfirmation"] = json!(answer.refund_confirmation);
    body["approvedBy"] = json!(answer.approved_by);
    body["refundBy"] = json!(answer.refund_by);
    body["dateApproval"] = json!(answer.date_approval);
    body["providerId"] = json!(answer.provider_id);
    body["amount"] = json!(answer.amount);
    body["transaction"] = answer.transaction.as_ref().map(|t| t.raw.clone()).unwrap_or(Value::Null);
    body
}

/// Whether an operation in this state still needs work.
pub fn is_open(state: OpState) -> bool {
    matches!(state, OpState::Pending | OpState::InFlight)
}

/// What the manager console may do with an operation (the journal enforces the same rules in
/// `retry_operation` and `dismiss_operation`; this is what the buttons show).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleActions {
    /// "Retry now": a pending operation (sooner than its back-off), or a failed commit or cancel
    /// (neither moves money out). Never a failed refund or credit: that is a new refund.
    pub retry: bool,
    /// "Dismiss": a failed operation only — certainly not performed at SensePass. Never one that
    /// is pending or in flight, which may still move money.
    pub dismiss: bool,
}

/// The console's actions of `op` (see [`ConsoleActions`]).
pub fn console_actions(op: &Operation) -> ConsoleActions {
    let dismissed = op.dismissed_at.is_some();
    ConsoleActions {
        retry: match op.state {
            OpState::Pending => true,
            OpState::Failed => !dismissed && matches!(op.kind, OpKind::Commit | OpKind::Cancel),
            OpState::InFlight | OpState::Delivered => false,
        },
        dismiss: op.state == OpState::Failed && !dismissed,
    }
}

/// The last error of an operation in a manager's words, from the prefixes this module writes
/// (`unreachable:`, `uncertain:`, `SensePass answered …`); `None` when there is none (a delivered
/// operation's error is cleared). The raw text stays in `lastError` for support.
pub fn describe_error(op: &Operation) -> Option<String> {
    let raw = op.last_error.as_deref()?.trim();
    if raw.is_empty() {
        return None;
    }
    let will_retry = op.state == OpState::Pending;
    if raw.starts_with("unreachable:") {
        return Some(if will_retry {
            "SensePass could not be reached. It is sent again automatically.".into()
        } else {
            "SensePass could not be reached.".into()
        });
    }
    if raw.starts_with(UNCERTAIN) {
        return Some(if will_retry {
            "SensePass did not answer clearly. It is checked with SensePass before it is sent again, so it cannot happen twice.".into()
        } else {
            "SensePass did not answer clearly.".into()
        });
    }
    if let Some(rest) = raw.strip_prefix("SensePass answered ") {
        let (status, body) = rest.split_once(':').unwrap_or((rest, ""));
        let message = serde_json::from_str::<Value>(body.trim())
            .ok()
            .and_then(|b| {
                ["status_message", "errorMessage", "message", "title", "error"]
                    .iter()
                    .find_map(|k| b.get(*k).and_then(Value::as_str).map(str::to_string))
                    .or_else(|| b.get("result").and_then(Value::as_str).map(str::to_string))
            })
            .filter(|m| !m.trim().is_empty());
        return Some(match message {
            Some(m) => format!("SensePass refused it (HTTP {}): {m}. It was not carried out.", status.trim()),
            None => format!("SensePass refused it (HTTP {}). It was not carried out.", status.trim()),
        });
    }
    Some(raw.to_string())
}
