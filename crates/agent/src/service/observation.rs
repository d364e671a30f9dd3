//! Observation and recovery: every status the agent learns (an API answer, a socket event, a
//! poll) goes through the one transition rule in the journal; what moved forward is published
//! and starts what follows (the commit of an approved payment). At start, every open payment and
//! every operation a crash interrupted is re-read before new payments are taken.

use super::Agent;
use crate::error::AgentError;
use crate::events::{AgentEvent, StatusEvent};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::time::Duration;
use till_core::{Status, Transition};
use till_journal::{EventSource, NewOperation, OpKind, PaymentRecord, Phase};
use till_sensepass::Transaction;

impl Agent {
    /// Re-reads one transaction from SensePass and applies it (source: poll).
    pub async fn refresh(&self, number: &str) -> Result<PaymentRecord, AgentError> {
        let (_, client) = self.device_client().await?;
        let result = client.transaction(number).await;
        self.note_reachability(&result);
        let tx = result?;
        self.apply(tx, EventSource::Poll).await
    }

    /// Applies an observed SensePass entity to the journal and, when it moved the payment
    /// forward, publishes it and starts what follows (payment commit on approval).
    pub async fn apply(&self, tx: Transaction, source: EventSource) -> Result<PaymentRecord, AgentError> {
        let number = tx.number().to_string();
        let status = tx.status();
        let raw = tx.raw.clone();
        let now = till_journal::now_ms();
        let source_name = source_name(source);
        fail::fail_point!("status::before_apply", |_| crate::failpoints::crash("status::before_apply"));
        // Refund confirmations only ever grow: an observation with fewer than the journal holds
        // is an old event (a 12 after a 13 would otherwise look like a new refund starting).
        let incoming_refunds = refund_confirmations(&tx);
        let stale = move |current: &PaymentRecord| {
            let held = current
                .entity_json
                .clone()
                .and_then(|e| Transaction::from_json(e).ok())
                .map(|t| refund_confirmations(&t))
                .unwrap_or(0);
            incoming_refunds < held
        };
        let found = self
            .journal(move |j| match j.apply_observation(&number, status, &raw, source, now, stale) {
                Ok(applied) => Ok(Some(applied)),
                Err(till_journal::JournalError::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            })
            .await?;
        let Some(applied) = found else {
            // The event beat the create call's answer: keep it until the creation is journaled.
            let number = tx.number().to_string();
            let mut early = self.inner.early_events.lock().unwrap_or_else(|e| e.into_inner());
            early.retain(|_, (at, _, _)| at.elapsed() < Duration::from_secs(120));
            early.insert(number.clone(), (std::time::Instant::now(), tx, source));
            return Err(AgentError::NotFound(format!("transaction {number} (held until its creation is journaled)")));
        };
        if applied.transition == Transition::Advance {
            tracing::info!(number = %tx.number(), status = %status, source = source_name, "status advanced");
            // Journal first: an approval's payment commit is queued before anyone (a waiting
            // sync call, the screens) hears of the approval.
            let commit = if status == Status::Approved {
                self.schedule_commit(&applied.record, &tx).await
            } else {
                Ok(())
            };
            self.publish_record(&applied.record, source_name);
            commit?;
            if status == Status::Approved {
                crate::printer::on_approved(self, &applied.record.local_id).await;
            }
        } else if applied.transition == Transition::Same {
            self.publish_record(&applied.record, source_name);
        }
        Ok(applied.record)
    }

    /// Applies a status event that arrived before `record`'s creation was journaled, if any.
    pub(super) async fn apply_early_events(&self, record: PaymentRecord) -> Result<PaymentRecord, AgentError> {
        let early = match &record.number {
            Some(n) => self.inner.early_events.lock().unwrap_or_else(|e| e.into_inner()).remove(n),
            None => None,
        };
        match early {
            Some((_, tx, source)) => self.apply(tx, source).await,
            None => Ok(record),
        }
    }

    /// Queues the payment commit (GET commitLink) of an approved payment in the outbox.
    async fn schedule_commit(&self, record: &PaymentRecord, tx: &Transaction) -> Result<(), AgentError> {
        let Some(link) = tx.payment_commit().and_then(|c| c.commit_link.clone()) else {
            return Ok(());
        };
        if tx.payment_commit().and_then(|c| c.is_payment_committed).unwrap_or(false) {
            return Ok(());
        }
        let op = NewOperation {
            kind: OpKind::Commit,
            transaction_local_id: Some(record.local_id.clone()),
            op_key: format!("commit:{}", tx.number()),
            amount: None,
            payload: json!({ "commitLink": link, "transactionNumber": tx.number() }),
            now_ms: till_journal::now_ms(),
        };
        self.journal(move |j| j.enqueue(op)).await?;
        self.wake_outbox();
        Ok(())
    }

    /// Publishes a record's state on the event bus.
    pub fn publish_record(&self, record: &PaymentRecord, source: &str) {
        self.inner.bus.publish(AgentEvent::Status(status_event(record, source)));
    }

    /// The SensePass entity of a record, or a minimal stand-in before SensePass answered.
    ///
    /// A declined or failed payment also carries `declineReason: {code, message}` (either may be
    /// null; the whole field is null when SensePass gave no reason), read in one place
    /// ([`Transaction::decline_reason`]) whatever spelling SensePass used.
    pub fn entity_of(record: &PaymentRecord) -> Value {
        let mut entity = Self::entity_as_observed(record);
        // A payment a manager closed as not paid (SensePass no longer knows it: 404 to a look-up
        // and to a cancel) is over for the POS too. Its last observed SensePass status (e.g.
        // "Waiting For Tap") would keep a POS polling `/last` forever, so the POS reads it in
        // SensePass's own vocabulary for "ended, no money taken" — `Transaction Cancel` — with
        // `closedNotPaid` and the manager's resolution to tell it apart from a real cancel.
        if record.status_key() == "closed" {
            if let Some(obj) = entity.as_object_mut() {
                obj.insert("status".into(), json!(Status::Cancelled.code()));
                obj.insert("statusName".into(), json!(Status::Cancelled.display_name()));
                obj.insert("closedNotPaid".into(), json!(true));
                obj.insert("resolution".into(), json!(record.resolution));
            }
        }
        entity
    }

    /// The entity as SensePass last reported it (or, before it numbered the payment, what the
    /// journal knows), with the decline reason read out of it.
    fn entity_as_observed(record: &PaymentRecord) -> Value {
        if let Some(entity) = &record.entity_json {
            let mut entity = entity.clone();
            if matches!(record.status, Some(Status::Declined | Status::Failed)) {
                let reason = Transaction::from_json(entity.clone()).ok().and_then(|t| t.decline_reason());
                if let Some(obj) = entity.as_object_mut() {
                    obj.insert("declineReason".into(), serde_json::to_value(reason).unwrap_or(Value::Null));
                }
            }
            return entity;
        }
        json!({
            "TransactionNumber": record.number,
            "status": Value::Null,
            "statusName": phase_name(record.phase),
            "amount": till_core::money::minor_to_major_string(record.amount, record.currency),
            "currency": record.currency.code(),
            "posData": record.request_json.get("posData").cloned().unwrap_or(Value::Null),
            "localId": record.local_id,
        })
    }

    /// Start-up recovery: every payment that is not final and every payment with an unknown
    /// create outcome is re-read from SensePass before new payments are taken.
    pub async fn recover(&self) {
        let open = match needing_resync(self).await {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "cannot read open payments");
                Vec::new()
            }
        };
        if !open.is_empty() {
            tracing::info!(count = open.len(), "reconciling open payments after start");
        }
        for record in open {
            self.resync_one(record).await;
        }
        // Operations a crash interrupted mid-send: their outcome is unknown, so they go back to
        // the queue marked uncertain, and the sender checks SensePass before re-sending.
        let now = till_journal::now_ms();
        let requeued = self
            .journal(move |j| {
                let mut n = 0;
                for op in j.operations(Some(till_journal::OpState::InFlight), 10_000, 0)? {
                    if op.kind == OpKind::Credit {
                        // Never re-sent: its token is not kept (crate::credit).
                        continue;
                    }
                    j.reschedule(op.id, op.attempts, now, "uncertain: interrupted by a restart")?;
                    n += 1;
                }
                Ok(n)
            })
            .await;
        match requeued {
            Ok(n) if n > 0 => tracing::info!(count = n, "re-queued operations interrupted by a restart"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot re-queue interrupted operations"),
        }
        self.wake_outbox();
        self.inner.health.recovering.store(false, Ordering::SeqCst);
    }

    /// Re-reads one open payment (poll) or reconciles an unknown create.
    pub async fn resync_one(&self, record: PaymentRecord) {
        let result = match (&record.number, record.phase) {
            (_, Phase::Intent) | (_, Phase::CreateUnknown) => self.reconcile_unknown(record.clone()).await.map(|_| ()),
            (Some(number), _) => self.refresh(number).await.map(|_| ()),
            (None, _) => Ok(()),
        };
        if let Err(e) = result {
            tracing::debug!(local_id = %record.local_id, error = %e, "resync deferred");
        }
    }
}

/// How many refunds SensePass lists in an entity's confirmations.
fn refund_confirmations(tx: &Transaction) -> usize {
    tx.confirmations().iter().filter(|c| c.is_refund()).count()
}

/// Payments whose state must be re-read: those still open, and those with a refund in progress
/// (status 12 is transient; its outcome may have been missed).
pub async fn needing_resync(agent: &Agent) -> Result<Vec<PaymentRecord>, AgentError> {
    agent
        .journal(|j| {
            let mut list = j.open_payments()?;
            list.extend(j.refunds_processing()?);
            Ok(list)
        })
        .await
}

fn source_name(source: EventSource) -> &'static str {
    match source {
        EventSource::Api => "api",
        EventSource::Socket => "socket",
        EventSource::Poll => "poll",
        EventSource::Local => "local",
    }
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Intent => "Pending Creation",
        Phase::Created => "Created",
        Phase::CreateFailed => "Creation Failed",
        Phase::CreateUnknown => "Creation Outcome Unknown",
    }
}

/// The bus event for a record.
pub fn status_event(record: &PaymentRecord, source: &str) -> StatusEvent {
    let status_key = record.status_key().to_string();
    StatusEvent {
        local_id: record.local_id.clone(),
        transaction_number: record.number.clone(),
        status: record.status.map(Status::code),
        // A payment a manager closed (no outcome, SensePass does not know it) is over for the
        // screens too, unless SensePass reported it since.
        is_final: record.status.map(Status::is_final).unwrap_or(record.phase == Phase::CreateFailed)
            || (record.resolved_at.is_some() && !record.is_open()),
        status_key,
        source: source.to_string(),
        transaction: record.entity_json.clone(),
        lines: lines_of(record),
    }
}

/// The products of a payment: those of its SensePass entity (what SensePass shows the customer),
/// else those the POS sent. Minor units; the one place that reads them for screens and receipts.
pub fn products_of(record: &PaymentRecord) -> Vec<till_core::Product> {
    let from_entity = record
        .entity_json
        .clone()
        .and_then(|e| Transaction::from_json(e).ok())
        .and_then(|t| t.products().ok())
        .filter(|p| !p.is_empty());
    from_entity.unwrap_or_else(|| {
        record
            .request_json
            .get("products")
            .cloned()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default()
    })
}

/// The lines of a payment as every screen and the receipt show them, totals computed once by
/// [`till_core::Product::line_total`] (sub-products included), so no page computes a total again.
/// A line whose total overflows (a POS cannot send one the validation lets through) is left out.
pub fn lines_of(record: &PaymentRecord) -> Vec<till_receipts::ReceiptLine> {
    products_of(record)
        .iter()
        .filter_map(|p| till_receipts::ReceiptLine::from_product(p).ok())
        .collect()
}
