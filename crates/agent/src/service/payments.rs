//! Payments: start one (validate → journal the intent → SensePass → journal the outcome), show
//! the live cart, settle a create whose answer was lost, and wait for the final status.

use super::Agent;
use crate::error::AgentError;
use crate::events::AgentEvent;
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::time::Duration;
use till_core::{Currency, Minor};
use till_journal::{Begin, EventSource, NewPayment, PaymentRecord, Phase};
use till_sensepass::{Client, InitRequest, Transaction};
use tokio::sync::broadcast::error::RecvError;

/// How long after a transaction's `timeoutDate` a sync call keeps waiting for SensePass's final
/// status (polling meanwhile) before answering `outcome_unknown`.
const SYNC_GRACE: Duration = Duration::from_secs(20);

/// How long a payment whose create call had an unknown outcome must be unseen at SensePass
/// before the agent concludes it was never created (covers a request still in flight).
const UNKNOWN_SETTLE: Duration = Duration::from_secs(30);

/// The outcome of starting a payment, before waiting.
#[derive(Debug)]
pub enum Started {
    /// A new payment was created at SensePass (or is being reconciled).
    New(PaymentRecord),
    /// The same order / idempotency key already has a payment; this is it.
    Existing(PaymentRecord),
}

impl Started {
    /// The payment either way.
    pub fn record(&self) -> &PaymentRecord {
        match self {
            Started::New(r) | Started::Existing(r) => r,
        }
    }
}

impl Agent {
    /// `POST /api/transactions/init`: validate, journal, create at SensePass (spec §4.1).
    pub async fn start_payment(&self, body: Value, idempotency_key: Option<String>) -> Result<Started, AgentError> {
        let mut request = InitRequest::from_pos_json(body).map_err(AgentError::Invalid)?;
        if self.inner.health.recovering.load(Ordering::SeqCst) {
            return Err(AgentError::Recovering);
        }
        let (device, client) = self.device_client().await?;
        request.device_id = Some(device.clone());
        let order_id = order_id_of(request.pos_data.as_ref());
        let local_id = uuid::Uuid::new_v4().to_string();
        let request_json = serde_json::to_value(&request).map_err(|e| AgentError::Internal(e.to_string()))?;
        let new = NewPayment {
            local_id: local_id.clone(),
            device_id: device,
            order_id,
            idempotency_key,
            amount: request.amount,
            currency: request.currency,
            request_json,
            product_sum_mismatch: request.product_sum_mismatch(),
            setup: request.ready_for_payment == Some(false),
            now_ms: self.now_ms(),
        };
        // The live cart shown by products/update becomes this payment (spec §8.3) — when its
        // transaction still has the time the POS asks for. SensePass fixes a transaction's time-out
        // when it is created (a PATCH cannot change it), so a cart that has been open for a while
        // would leave the customer less time than `timeOut`: then the cart is cancelled and the
        // payment is a fresh transaction with the full time (docs/DECISIONS.md).
        let mut new = new;
        if !new.setup {
            let d = new.device_id.clone();
            if let Some(cart) = self.journal(move |j| j.open_setup(&d)).await? {
                if request.products.is_empty() {
                    // An init without products pays for the cart the customer is looking at.
                    request.products = cart_products(&cart);
                    new.request_json = serde_json::to_value(&request).map_err(|e| AgentError::Internal(e.to_string()))?;
                    new.product_sum_mismatch = request.product_sum_mismatch();
                }
                let left_ms = timeout_ms_of(&cart) - self.now_ms();
                let wanted_ms = i64::from(request.effective_timeout()) * 1000;
                if cart.phase == Phase::Created && cart.number.is_some() && left_ms >= wanted_ms - CART_TIME_SLACK_MS {
                    return self.pay_with_cart(cart, new, &client, &request).await;
                }
                tracing::info!(left_ms, wanted_ms, "the live cart's transaction has too little time left: a fresh payment replaces it");
            }
        }
        // 1. Journal first: the intent is durable before SensePass hears of it. A second pass
        // happens only when the first finds an earlier attempt that certainly never reached
        // SensePass (then a new attempt is allowed).
        for _ in 0..2 {
            let new = new.clone();
            match self.journal(move |j| j.begin_payment(new)).await? {
                Begin::Busy(open) => return Err(AgentError::Busy { number: open.number, local_id: open.local_id }),
                Begin::Existing(existing) => {
                    same_sale(&existing, request.amount, request.currency)?;
                    tracing::info!(local_id = %existing.local_id, "same order: attaching to the existing payment");
                    if !matches!(existing.phase, Phase::Intent | Phase::CreateUnknown) {
                        return Ok(Started::Existing(existing));
                    }
                    // An earlier attempt whose create outcome is unknown: settle it first.
                    let settled = self.reconcile_unknown(existing).await?;
                    if settled.phase != Phase::CreateFailed {
                        return Ok(Started::Existing(settled));
                    }
                }
                Begin::Started(record) => {
                    self.publish_record(&record, "local");
                    if !record.setup {
                        self.close_open_setup(&record.device_id).await?;
                    }
                    fail::fail_point!("payment::before_create", |_| crate::failpoints::crash("payment::before_create"));
                    // 2. The network call.
                    let result = client.init(&request).await;
                    self.note_reachability(&result);
                    fail::fail_point!("payment::after_create", |_| crate::failpoints::crash("payment::after_create"));
                    // 3. The outcome, journaled.
                    let record = self.record_create_outcome(record, result).await?;
                    return Ok(Started::New(record));
                }
            }
        }
        Err(AgentError::Uncertain("the earlier attempt for this order is still being settled; retry".into()))
    }

    /// Links a payment to the device's open Setup cart: the journal promotes the cart into the
    /// payment (one SQLite transaction, with the idempotency and busy checks), then SensePass gets
    /// the final cart with `readyForPayment: true`. If that PATCH fails the cart transaction is
    /// cancelled (journaled) so the customer never sees a stale cart, and the POS may retry the
    /// order as a fresh payment.
    async fn pay_with_cart(
        &self,
        cart: PaymentRecord,
        new: NewPayment,
        client: &Client,
        request: &InitRequest,
    ) -> Result<Started, AgentError> {
        let cart_id = cart.local_id.clone();
        let record = match self.journal(move |j| j.promote_setup(&cart_id, new)).await? {
            Begin::Busy(open) => return Err(AgentError::Busy { number: open.number, local_id: open.local_id }),
            Begin::Existing(existing) => {
                same_sale(&existing, request.amount, request.currency)?;
                return Ok(Started::Existing(existing));
            }
            Begin::Started(record) => record,
        };
        let number = record.number.clone().unwrap_or_default();
        tracing::info!(%number, "payment takes over the live cart transaction");
        let mut update = till_sensepass::models::UpdateRequest::from_init(request);
        update.ready_for_payment = Some(true);
        fail::fail_point!("payment::before_create", |_| crate::failpoints::crash("payment::before_create"));
        let result = client.update(&number, &update).await;
        self.note_reachability(&result);
        match result {
            Ok(tx) => Ok(Started::New(self.apply(tx, EventSource::Api).await?)),
            Err(e) => {
                tracing::warn!(%number, error = %e, "could not enable payment on the cart transaction; cancelling it");
                if let Err(c) = self.cancel(&number, "cart_promotion_failed").await {
                    tracing::warn!(%number, error = %c, "cancel of the cart transaction will be retried");
                }
                Err(AgentError::from(e))
            }
        }
    }

    /// Journals what SensePass answered to a create call.
    async fn record_create_outcome(
        &self,
        record: PaymentRecord,
        result: Result<Transaction, till_sensepass::Error>,
    ) -> Result<PaymentRecord, AgentError> {
        let local_id = record.local_id.clone();
        let now = till_journal::now_ms();
        match result {
            Ok(tx) => {
                let (number, status, raw) = (tx.number().to_string(), tx.status(), tx.raw.clone());
                let rec = self.journal(move |j| j.record_created(&local_id, &number, status, &raw, now)).await?;
                self.publish_record(&rec, "api");
                self.apply_early_events(rec).await
            }
            Err(e) if e.certainly_not_performed() || is_client_error(&e) => {
                let reason = e.to_string();
                let rec = self.journal(move |j| j.record_create_failed(&local_id, &reason, now)).await?;
                self.publish_record(&rec, "api");
                Err(AgentError::from(e))
            }
            Err(e) => {
                // Timeout, reset, 5xx, unreadable answer: SensePass may have created it.
                tracing::warn!(local_id = %record.local_id, error = %e, "create outcome unknown; reconciling");
                let reason = e.to_string();
                // The periodic re-read may have found the payment at SensePass while this call was
                // still waiting for its answer: then the outcome is known, not uncertain.
                let rec = self
                    .journal(move |j| match j.record_create_unknown(&local_id, &reason, now) {
                        Err(till_journal::JournalError::InvalidPhase { .. }) => j
                            .by_local_id(&local_id)?
                            .ok_or(till_journal::JournalError::NotFound { what: "payment", key: local_id }),
                        other => other,
                    })
                    .await?;
                if rec.phase != Phase::CreateUnknown {
                    tracing::info!(local_id = %rec.local_id, phase = ?rec.phase, "create outcome already settled by reconciliation");
                    return Ok(rec);
                }
                self.publish_record(&rec, "api");
                self.reconcile_unknown(rec).await
            }
        }
    }

    /// `POST /api/transactions/products/update` (spec §8.3): shows the live cart to the customer.
    /// The first call creates a "Setup" transaction (`readyForPayment: false`: visible, not
    /// payable); later calls PATCH it. Journaled like a payment, flagged `setup`.
    pub async fn update_cart(&self, mut body: Value) -> Result<PaymentRecord, AgentError> {
        if let Some(obj) = body.as_object_mut() {
            obj.insert("readyForPayment".into(), Value::Bool(false));
        }
        let mut request = InitRequest::from_pos_json(body).map_err(AgentError::Invalid)?;
        let (device, client) = self.device_client().await?;
        request.device_id = Some(device.clone());
        let d = device.clone();
        let open = self.journal(move |j| j.open_setup(&d)).await?;
        match open.and_then(|r| r.number.clone().map(|n| (r, n))) {
            Some((setup, number)) => {
                let update = till_sensepass::models::UpdateRequest::from_init(&request);
                let result = client.update(&number, &update).await;
                self.note_reachability(&result);
                let tx = result?;
                let request_json = serde_json::to_value(&request).map_err(|e| AgentError::Internal(e.to_string()))?;
                let (local_id, amount, mismatch, now) =
                    (setup.local_id.clone(), request.amount, request.product_sum_mismatch(), till_journal::now_ms());
                self.journal(move |j| j.update_cart(&local_id, amount, &request_json, mismatch, now)).await?;
                self.apply(tx, EventSource::Api).await
            }
            None => {
                let request_json = serde_json::to_value(&request).map_err(|e| AgentError::Internal(e.to_string()))?;
                let new = NewPayment {
                    local_id: uuid::Uuid::new_v4().to_string(),
                    device_id: device,
                    order_id: None,
                    idempotency_key: None,
                    amount: request.amount,
                    currency: request.currency,
                    request_json,
                    product_sum_mismatch: request.product_sum_mismatch(),
                    setup: true,
                    now_ms: till_journal::now_ms(),
                };
                let record = match self.journal(move |j| j.begin_payment(new)).await? {
                    Begin::Started(r) => r,
                    Begin::Busy(open) => return Err(AgentError::Busy { number: open.number, local_id: open.local_id }),
                    Begin::Existing(r) => return Ok(r),
                };
                let result = client.init(&request).await;
                self.note_reachability(&result);
                self.record_create_outcome(record, result).await
            }
        }
    }

    /// Before a real payment starts, an open Setup (cart display) transaction of the device is
    /// cancelled (journaled), so the customer never sees two payable requests.
    async fn close_open_setup(&self, device: &str) -> Result<(), AgentError> {
        let d = device.to_string();
        if let Some(setup) = self.journal(move |j| j.open_setup(&d)).await? {
            if let Some(number) = setup.number {
                if let Err(e) = self.cancel(&number, "cart_replaced_by_payment").await {
                    tracing::warn!(error = %e, "could not cancel the cart display transaction");
                }
            }
        }
        Ok(())
    }

    /// Finds out whether a create call with an unknown outcome created a transaction at SensePass,
    /// by searching the device's transactions around the intent's time for the same order.
    /// Found → adopted. Certainly absent (and old enough that no request can still be in flight)
    /// → marked failed. Otherwise the payment stays unknown and the call reports so.
    pub async fn reconcile_unknown(&self, record: PaymentRecord) -> Result<PaymentRecord, AgentError> {
        let (_, client) = self.device_client().await?;
        let at = |ms: i64| {
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        };
        let mut query = till_sensepass::models::FetchTransactions::between(
            at(record.created_at - 60_000),
            at(till_journal::now_ms() + 60_000),
        );
        if let Some(order) = &record.order_id {
            query.filter.push(till_sensepass::models::Filter::eq("posData.orderId", order.clone()));
        }
        let result = client.transactions(&query).await;
        self.note_reachability(&result);
        let page = match result {
            Ok(page) => page,
            Err(e) => return Err(AgentError::Uncertain(format!("cannot reconcile yet: {e}"))),
        };
        let sent_pos_data = record.request_json.get("posData").cloned();
        let found = page.data.into_iter().find(|tx| {
            tx.raw.get("posData").cloned() == sent_pos_data
                && tx.amount_minor().map(|m| m.minor == record.amount && m.currency == record.currency).unwrap_or(false)
        });
        let local_id = record.local_id.clone();
        let now = till_journal::now_ms();
        if let Some(tx) = found {
            let (number, status, raw) = (tx.number().to_string(), tx.status(), tx.raw.clone());
            tracing::info!(local_id = %local_id, number = %number, "reconciled: SensePass has the payment");
            let rec = self.journal(move |j| j.record_created(&local_id, &number, status, &raw, now)).await?;
            self.publish_record(&rec, "poll");
            return self.apply_early_events(rec).await;
        }
        if now - record.created_at > UNKNOWN_SETTLE.as_millis() as i64 {
            let rec = self
                .journal(move |j| j.record_create_failed(&local_id, "not found at SensePass after reconciliation", now))
                .await?;
            self.publish_record(&rec, "poll");
            return Ok(rec);
        }
        Err(AgentError::Uncertain("the payment is not visible at SensePass yet; retry with the same order".into()))
    }

    /// Waits until the payment is final (or failed to be created), re-reading SensePass after the
    /// timeout if no final event arrived. Returns the final record, or `Uncertain` when SensePass
    /// cannot tell us within the grace period.
    pub async fn wait_final(&self, local_id: &str) -> Result<PaymentRecord, AgentError> {
        let mut events = self.inner.bus.subscribe();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let id = local_id.to_string();
            let record = self
                .journal(move |j| j.by_local_id(&id))
                .await?
                .ok_or_else(|| AgentError::NotFound(format!("payment {local_id}")))?;
            // Over: a final status, never created, or closed by a manager as not paid.
            if !record.is_open() {
                return Ok(record);
            }
            let overdue_by = till_journal::now_ms() - timeout_ms_of(&record);
            if overdue_by > 0 {
                // No final event yet although the payment should have timed out: ask SensePass.
                if let Some(number) = record.number.clone() {
                    let _ = self.refresh(&number).await;
                } else if record.phase == Phase::CreateUnknown {
                    let _ = self.reconcile_unknown(record.clone()).await;
                }
                if overdue_by > SYNC_GRACE.as_millis() as i64 {
                    return Err(AgentError::Uncertain(format!(
                        "no final status from SensePass for payment {local_id}; ask GET /api/transactions/last"
                    )));
                }
            }
            // Sleep until this payment changes (or a lagged bus may have hidden it), or the tick.
            loop {
                tokio::select! {
                    ev = events.recv() => match ev {
                        Ok(AgentEvent::Status(s)) if s.local_id == local_id => break,
                        Ok(_) => continue,
                        Err(RecvError::Lagged(_)) => break,
                        Err(RecvError::Closed) => return Err(AgentError::Internal("event bus closed".into())),
                    },
                    _ = tick.tick() => break,
                    _ = self.inner.shutdown.cancelled() => return Err(AgentError::Internal("agent shutting down".into())),
                }
            }
        }
    }
}

/// The POS's order id: `posData.orderId` (string or number).
pub fn order_id_of(pos_data: Option<&Value>) -> Option<String> {
    match pos_data?.get("orderId")? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The products of a live cart as journaled by `products/update` (the request as sent to
/// SensePass, minor units), read back through the same validation as a POS body.
fn cart_products(cart: &PaymentRecord) -> Vec<till_core::Product> {
    let mut body = cart.request_json.clone();
    if let Some(obj) = body.as_object_mut() {
        obj.insert("isCent".into(), Value::Bool(true));
    }
    InitRequest::from_pos_json(body).map(|r| r.products).unwrap_or_default()
}

/// A replay (same order id or Idempotency-Key) must ask for the same money as the payment it
/// attaches to; otherwise it is another sale under a reused key, refused naming the original.
fn same_sale(existing: &PaymentRecord, amount: Minor, currency: Currency) -> Result<(), AgentError> {
    if existing.amount == amount && existing.currency == currency {
        return Ok(());
    }
    Err(AgentError::IdempotencyMismatch {
        number: existing.number.clone(),
        local_id: existing.local_id.clone(),
        amount_minor: existing.amount.0,
        currency: existing.currency.code().to_string(),
    })
}

/// True for a 4xx from SensePass: it looked at the request and refused it, so nothing was created.
fn is_client_error(e: &till_sensepass::Error) -> bool {
    matches!(e, till_sensepass::Error::Http { status, .. } if (400..500).contains(status))
}

/// How much less time than the POS's `timeOut` a live cart's transaction may have left and still
/// become the payment (a cart promoted within a minute of its start keeps its QR on the
/// customer's phone); with less, the payment is a fresh transaction.
const CART_TIME_SLACK_MS: i64 = 60_000;

/// When the payment times out at SensePass, unix ms: `timeoutDate` if known, else creation +
/// the requested `timeOut` (default 600 s, docs/DECISIONS.md).
pub fn timeout_ms_of(record: &PaymentRecord) -> i64 {
    let from_entity = record
        .entity_json
        .as_ref()
        .and_then(|e| e.get("timeoutDate"))
        .and_then(Value::as_str)
        .and_then(|s| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok())
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64);
    from_entity.unwrap_or_else(|| {
        let secs = record.request_json.get("timeOut").and_then(Value::as_i64).unwrap_or(600);
        record.created_at + secs * 1000
    })
}
