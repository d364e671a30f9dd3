//! Money-out: cancels and refunds. Each is journaled as an outbox operation first (a refund under
//! the cap of what is left, atomically), then delivered at once by [`crate::outbox`]; when
//! SensePass is unreachable or the outcome unknown it stays queued and the outbox retries it,
//! checking SensePass first so nothing is done twice.

use super::Agent;
use crate::error::AgentError;
use serde_json::{json, Value};
use till_core::{Currency, Minor, Status};
use till_journal::{NewOperation, OpKind, Operation};

impl Agent {
    /// Cancels a pending payment at SensePass (journaled as an outbox operation first).
    /// `reason` is journaled with the intent.
    pub async fn cancel(&self, number: &str, reason: &str) -> Result<Value, AgentError> {
        let n = number.to_string();
        let record = self
            .journal(move |j| j.by_number(&n))
            .await?
            .ok_or_else(|| AgentError::NotFound(format!("transaction {number}")))?;
        let op = NewOperation {
            kind: OpKind::Cancel,
            transaction_local_id: Some(record.local_id.clone()),
            op_key: format!("cancel:{}:{}", number, uuid::Uuid::new_v4()),
            amount: None,
            payload: json!({ "transactionNumber": number, "reason": reason }),
            now_ms: till_journal::now_ms(),
        };
        let op = self.journal(move |j| j.enqueue(op)).await?;
        crate::outbox::deliver_now(self, op).await
    }

    /// Cancels the payment an abandoned sync call was waiting for (the POS hung up).
    pub async fn cancel_abandoned(&self, local_id: String) {
        let id = local_id.clone();
        let record = match self.journal(move |j| j.by_local_id(&id)).await {
            Ok(Some(r)) => r,
            _ => return,
        };
        if !record.is_open() {
            return;
        }
        let Some(number) = record.number.clone() else {
            tracing::warn!(%local_id, "POS hung up before SensePass answered; the reconciler will settle it");
            return;
        };
        tracing::info!(%number, "POS closed the sync connection; cancelling the pending payment");
        match self.cancel(&number, "pos_disconnected").await {
            Ok(_) => {}
            Err(e) => tracing::warn!(%number, error = %e, "cancel after POS disconnect failed"),
        }
    }

    /// Starts a refund: validates, journals it in the outbox under the refund cap, and tries to
    /// deliver it at once. Returns the SensePass answer, or `None` when it was queued.
    pub async fn refund(&self, body: Value, idempotency_key: Option<String>) -> Result<RefundOutcome, AgentError> {
        let number = body.get("transactionNumber").and_then(Value::as_str).map(str::to_string);
        let Some(number) = number.filter(|n| !n.is_empty()) else {
            return Err(AgentError::invalid("transactionNumber", "is required"));
        };
        let op_key = idempotency_key.map(|k| format!("refund:{k}"));
        if let Some(key) = op_key.clone() {
            if let Some(op) = self.journal(move |j| j.operation_by_key(&key)).await? {
                same_refund(&op, &number, &body)?;
                return self.refund_replay(op).await;
            }
        }
        let n = number.clone();
        let record = self
            .journal(move |j| j.by_number(&n))
            .await?
            .ok_or_else(|| AgentError::NotFound(format!("transaction {number}")))?;
        if !record.status.map(Status::was_captured).unwrap_or(false) {
            return Err(AgentError::Conflict(format!("transaction {number} was not paid; nothing to refund")));
        }
        let id = record.local_id.clone();
        let (refunded, queued) = self.journal(move |j| j.refunded_total(&id)).await?;
        let remaining = record.amount.checked_sub(refunded).and_then(|r| r.checked_sub(queued));
        let remaining = remaining.map_err(|e| AgentError::Internal(e.to_string()))?;
        let amount = refund_amount(&body, record.currency, remaining)?;
        let op = NewOperation {
            kind: OpKind::Refund,
            transaction_local_id: Some(record.local_id.clone()),
            op_key: op_key.unwrap_or_else(|| format!("refund:{}", uuid::Uuid::new_v4())),
            amount: Some(amount),
            payload: json!({
                "transactionNumber": number,
                "isPartial": amount < record.amount,
                "amountMinor": amount.0,
                "currency": record.currency.code(),
            }),
            now_ms: till_journal::now_ms(),
        };
        let captured = record.amount;
        let op = self.journal(move |j| j.enqueue_refund(op, captured)).await?;
        let id = op.id;
        let outcome = self.refund_outcome(op).await;
        if matches!(outcome, Ok(RefundOutcome::Answered(_) | RefundOutcome::Queued(_))) {
            crate::printer::on_refund(self, &record.local_id, id).await;
        }
        // The first definite answer is kept, so a retry with the same key gets it again.
        let first = match &outcome {
            Ok(RefundOutcome::Answered(body)) => Some(json!({ "status": 200, "body": body })),
            Ok(_) | Err(AgentError::Uncertain(_) | AgentError::Unreachable(_) | AgentError::Internal(_)) => None,
            Err(e) => {
                let (status, body) = e.status_and_body();
                Some(json!({ "status": status.as_u16(), "body": body }))
            }
        };
        if let Some(answer) = first {
            self.journal(move |j| j.set_op_answer(id, &answer)).await?;
        }
        outcome
    }

    /// A refund retried with the Idempotency-Key of an earlier one: the first definite answer
    /// again (same status, same body); a refund that was queued (202) and has been delivered
    /// since answers SensePass's refund answer; one still waiting is tried again or reported
    /// queued.
    async fn refund_replay(&self, op: Operation) -> Result<RefundOutcome, AgentError> {
        let stored = op.answer.as_ref().map(|a| {
            let status = a.get("status").and_then(Value::as_u64).and_then(|s| u16::try_from(s).ok()).unwrap_or(200);
            (status, a.get("body").cloned().unwrap_or(Value::Null))
        });
        if let Some((status, body)) = stored {
            return Ok(RefundOutcome::Replay { status, body });
        }
        match (&op.state, &op.result) {
            (till_journal::OpState::Delivered, Some(result)) => Ok(RefundOutcome::Replay { status: 200, body: result.clone() }),
            _ => self.refund_outcome(op).await,
        }
    }

    /// Checks the refund queue limits with `op` added: `Ok(Err(reason))` when past a limit.
    async fn check_refund_queue(&self, op: &Operation) -> Result<Result<(), String>, AgentError> {
        let limits = self.inner.config.refund_queue;
        let queued: Vec<Operation> = self
            .journal(|j| j.operations(Some(till_journal::OpState::Pending), 100_000, 0))
            .await?
            .into_iter()
            .filter(|o| o.kind == OpKind::Refund && o.id != op.id)
            .collect();
        let count = queued.len() as u64 + 1;
        let total: i64 = queued.iter().filter_map(|o| o.amount).map(|a| a.0).sum::<i64>() + op.amount.map(|a| a.0).unwrap_or(0);
        let oldest = queued.iter().map(|o| o.created_at).min();
        let now = till_journal::now_ms();
        if count > limits.max_count {
            return Ok(Err(format!("{} refunds already wait (limit {})", count - 1, limits.max_count)));
        }
        if total > limits.max_total_minor {
            return Ok(Err(format!("queued refunds would total {total} minor units (limit {})", limits.max_total_minor)));
        }
        if let Some(oldest) = oldest {
            if now - oldest > limits.max_age.as_millis() as i64 {
                return Ok(Err(format!("a refund has waited longer than {} hours", limits.max_age.as_secs() / 3600)));
            }
        }
        Ok(Ok(()))
    }

    /// Sends a refund operation that is still waiting, or answers what it became. The same
    /// Idempotency-Key as an earlier refund lands here with that earlier operation.
    async fn refund_outcome(&self, op: Operation) -> Result<RefundOutcome, AgentError> {
        match op.state {
            till_journal::OpState::Pending => match crate::outbox::deliver_now(self, op.clone()).await {
                Ok(answer) => Ok(RefundOutcome::Answered(answer)),
                Err(AgentError::Unreachable(_)) => {
                    // Certainly not performed: it may still be refused if the queue is full.
                    if let Err(reason) = self.check_refund_queue(&op).await? {
                        let (id, now, r) = (op.id, till_journal::now_ms(), reason.clone());
                        self.journal(move |j| j.mark_failed(id, &format!("not queued: {r}"), now)).await?;
                        return Err(AgentError::QueueFull(reason));
                    }
                    tracing::warn!(operation = op.id, "SensePass unreachable: refund queued");
                    Ok(RefundOutcome::Queued(op))
                }
                Err(AgentError::Uncertain(_)) => Ok(RefundOutcome::Queued(op)),
                Err(e) => Err(e),
            },
            till_journal::OpState::InFlight => Ok(RefundOutcome::Queued(op)),
            till_journal::OpState::Delivered | till_journal::OpState::Failed => Ok(RefundOutcome::Existing(op)),
        }
    }
}

/// What a refund request became.
#[derive(Debug)]
pub enum RefundOutcome {
    /// SensePass answered (approved or declined); the body is SensePass's.
    Answered(Value),
    /// SensePass is unreachable or the outcome is uncertain: queued for delivery.
    Queued(Operation),
    /// The idempotency key matched an earlier refund.
    Existing(Operation),
    /// The idempotency key matched an earlier refund whose answer is known: that answer again.
    Replay {
        /// The HTTP status the first call got.
        status: u16,
        /// The body the first call got.
        body: Value,
    },
}

/// The refund amount in minor units: the whole remainder for a full refund, otherwise
/// `refundAmount` in major units (or minor units with `isCent: true`), per docs/DECISIONS.md.
///
/// A `refundAmount` without `isPartial: true` is never read as "refund everything": it must equal
/// what is left to refund (then it is that full refund), otherwise the body is a 400 naming both
/// fields — a POS that forgot `isPartial` must not refund the whole payment by accident.
fn refund_amount(body: &Value, currency: Currency, remaining: Minor) -> Result<Minor, AgentError> {
    let partial = body.get("isPartial").and_then(Value::as_bool).unwrap_or(false);
    let is_cent = body.get("isCent").and_then(Value::as_bool).unwrap_or(false);
    let given = body.get("refundAmount").filter(|v| !v.is_null());
    let amount = match given {
        Some(Value::Number(n)) if is_cent => till_core::money::minor_json_number(n).ok(),
        Some(Value::Number(n)) => till_core::money::major_json_number_to_minor(n, currency).ok(),
        Some(Value::String(s)) if !is_cent => till_core::money::parse_major(s, currency).ok(),
        _ => None,
    };
    if !partial {
        if !remaining.is_positive() {
            return Err(AgentError::RefundCap { remaining: remaining.0.max(0) });
        }
        return match (given, amount) {
            (None, _) => Ok(remaining),
            (Some(_), Some(a)) if a == remaining => Ok(remaining),
            (Some(_), _) => {
                let mut p = till_core::InvalidParameters::new();
                p.push(
                    "refundAmount",
                    format!(
                        "without isPartial: true a refund is of the whole remaining amount ({} minor units); \
                         send isPartial: true for a partial refund, or leave refundAmount out",
                        remaining.0
                    ),
                );
                p.push("isPartial", "must be true when refundAmount is less than the remaining amount");
                Err(AgentError::Invalid(p))
            }
        };
    }
    match amount {
        Some(a) if a.is_positive() => {
            if a > remaining {
                Err(AgentError::RefundCap { remaining: remaining.0.max(0) })
            } else {
                Ok(a)
            }
        }
        Some(_) => Err(AgentError::invalid("refundAmount", "must be greater than 0")),
        None => Err(AgentError::invalid(
            "refundAmount",
            "is required for a partial refund: a number in major units (or minor units with isCent: true)",
        )),
    }
}

/// A refund retried with its Idempotency-Key must name the same transaction and, when partial,
/// the same amount; otherwise the key is being reused for another refund: refused, naming the
/// original.
fn same_refund(op: &Operation, number: &str, body: &Value) -> Result<(), AgentError> {
    let original = op.payload.get("transactionNumber").and_then(Value::as_str).unwrap_or_default();
    let currency = op.payload.get("currency").and_then(Value::as_str).and_then(|c| Currency::from_code(c).ok());
    let partial = body.get("isPartial").and_then(Value::as_bool).unwrap_or(false);
    let asked = match (partial, currency) {
        (true, Some(c)) => refund_amount(body, c, Minor(i64::MAX)).ok(),
        _ => None,
    };
    let other_amount = matches!((asked, op.amount), (Some(a), Some(b)) if a != b);
    if original == number && !other_amount {
        return Ok(());
    }
    Err(AgentError::IdempotencyMismatch {
        number: Some(original.to_string()),
        local_id: op.transaction_local_id.clone().unwrap_or_default(),
        amount_minor: op.amount.map(|a| a.0).unwrap_or(0),
        currency: currency.map(|c| c.code().to_string()).unwrap_or_default(),
    })
}
