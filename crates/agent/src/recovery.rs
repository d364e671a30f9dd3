//! Decline recovery (FlexFactor) of keyed card payments: a declined Connect-E payment gets a
//! second chance, without a second charge, and the POS still sees one payment with one outcome.
//!
//! ```text
//!  checkout page ─┬─ card ─▶ Connect-E (client.js)                 ┐ in parallel; the card
//!                 └─ card ─▶ FlexFactor /tokenize ─▶ vault token ─┘ never reaches the agent
//!                            POST /payments/{id}/vault {token, bin, last4, expiry} ─▶ journal
//!  Connect-E says declined ─▶ (same transaction) payment stays pending, decline held,
//!      recovery "evaluating" (the intent) ─▶ evaluate (idempotency key = payment id)
//!      ─▶ APPROVED: captured, recovered by FlexFactor (orderSessionKey journaled)
//!      ─▶ DECLINED / CHALLENGE: declined as Connect-E said
//!      ─▶ SUBMITTED: pending; `status` polled with back-off, a webhook makes it look at once
//!      ─▶ lost answer / 5xx: evaluated again later with the same key (the same rescue)
//! ```
//!
//! What this module is not: it holds no FlexFactor wire format (that is `till-flexfactor`,
//! behind [`till_gateway::DeclineRecovery`]) and no card number (the page posts the card to the
//! vault itself, docs/DECISIONS.md "FlexFactor"). Its state is one JSON document on the payment's
//! journal row ([`Recovery`], column `recovery_json`), so that the payment's state and its
//! recovery always change in one transaction.

use crate::error::AgentError;
use crate::service::Agent;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use till_core::{InvalidParameters, Money};
use till_gateway::{
    CardExpiry, DeclineCategory, DeclineReason, GatewayError, Operation, OperationOutcome, Payment, PaymentState,
    ProviderId, RecoveryCard, RecoveryOutcome, RecoveryRefund, RecoveryRequest, RecoveryState,
};
use till_journal::{GatewayOpRecord, GatewayPaymentRecord};

/// How long a decline is held for the vault token when the decline arrives before the page
/// handed the token over (the two run in parallel). After it, the decline stands.
pub const HOLD_MS: i64 = 10_000;

/// How long a certainly-unsent evaluation (FlexFactor unreachable) is retried before the decline
/// stands: the customer is at the counter. An evaluation whose answer was lost is never given up
/// (a rescue may exist); it is asked again with the same idempotency key until it answers.
pub const UNREACHABLE_GIVE_UP_MS: i64 = 120_000;

/// Longest back-off between two polls of a rescue FlexFactor decides later (SUBMITTED).
const MAX_BACKOFF_MS: i64 = 60_000;

/// Where a payment's recovery stands (`Recovery::state`), as journaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Recovery is possible; the page has not handed over a vault token yet.
    Armed,
    /// The vault token is journaled; nothing declined yet.
    Vaulted,
    /// The tender declined before the vault token arrived: the decline is held (payment still
    /// pending) for [`HOLD_MS`].
    Held,
    /// The intent: declined, token known, evaluation asked for (answer not yet journaled).
    Evaluating,
    /// FlexFactor decides later (SUBMITTED): polled with back-off, or a webhook.
    Pending,
    /// Recovered: FlexFactor approved and charged it.
    Recovered,
    /// Not recovered: the tender's decline stands.
    NotRecovered,
    /// The POS opted this payment out (`"declineRecovery": false`).
    Off,
}

impl Stage {
    /// The decline is held and the payment shows as pending while in these stages.
    pub fn active(self) -> bool {
        matches!(self, Stage::Held | Stage::Evaluating | Stage::Pending)
    }
}

/// What the keyed-entry page handed over: the vault token and the non-sensitive card facts.
/// The token goes to the row's `recovery_ref` column, the expiry to its `card_expiry` (JSON
/// columns are redacted: a token or an expiry in them would be dropped), the rest here.
#[derive(Clone)]
pub struct Vault {
    /// FlexFactor's vault token of the card: a capability, never logged.
    pub token: String,
    /// First six (or eight) digits: they name the issuer, not the card.
    pub bin: Option<String>,
    /// Last four digits.
    pub last4: String,
    /// Expiry, when the page sent it.
    pub expiry: Option<CardExpiry>,
    /// Holder name as keyed: checked, not kept (see [`CardFacts`]).
    pub holder_name: Option<String>,
}

impl std::fmt::Debug for Vault {
    /// Redaction-safe: the token is a capability, the name personal data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("token", &"***")
            .field("bin", &self.bin)
            .field("last4", &self.last4)
            .field("expiry", &self.expiry)
            .field("holder_name", &self.holder_name.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The non-sensitive card facts kept in the recovery's JSON (what a receipt may show). The
/// holder's name is not kept: personal data the journal need not hold (FlexFactor takes the
/// evaluation without it).
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CardFacts {
    /// First six (or eight) digits.
    pub bin: Option<String>,
    /// Last four digits.
    pub last4: String,
}

/// The recovery of one payment (`gateway_payments.recovery_json`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recovery {
    /// Where it stands.
    pub stage: Stage,
    /// Who recovers (`flexfactor`): the journal and receipts name it.
    pub by: String,
    /// The card's facts, once the page handed them over (its token is in `recovery_ref`).
    pub card_facts: Option<CardFacts>,
    /// The tender's decline, held while the recovery runs (the outcome when not recovered).
    pub decline: Option<DeclineReason>,
    /// When the tender's decline was observed (unix ms).
    pub declined_at: Option<i64>,
    /// The rescue's id (FlexFactor `orderSessionKey`): what status and refunds name.
    pub rescue_id: Option<String>,
    /// FlexFactor's own status text (`APPROVED`, `CHALLENGE`, `Completed`, …), for support.
    pub provider_status: Option<String>,
    /// Evaluations and polls so far (back-off).
    pub attempts: u32,
    /// When the worker next asks (unix ms).
    pub next_at: i64,
    /// The last failure, for the manager.
    pub last_error: Option<String>,
    /// When the outcome was journaled (unix ms).
    pub settled_at: Option<i64>,
}

impl std::fmt::Debug for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recovery")
            .field("stage", &self.stage)
            .field("by", &self.by)
            .field("card_facts", &self.card_facts.as_ref().map(|c| &c.last4))
            .field("rescue_id", &self.rescue_id.as_ref().map(|_| "***"))
            .field("provider_status", &self.provider_status)
            .finish_non_exhaustive()
    }
}

impl Recovery {
    fn new(stage: Stage) -> Recovery {
        Recovery {
            stage,
            by: ProviderId::FlexFactor.as_str().to_string(),
            card_facts: None,
            decline: None,
            declined_at: None,
            rescue_id: None,
            provider_status: None,
            attempts: 0,
            next_at: 0,
            last_error: None,
            settled_at: None,
        }
    }

    /// The recovery journaled on a row, if any.
    pub fn of(r: &GatewayPaymentRecord) -> Option<Recovery> {
        r.recovery.clone().and_then(|v| serde_json::from_value(v).ok())
    }

    fn store(&self, r: &mut GatewayPaymentRecord) {
        r.recovery = serde_json::to_value(self).ok();
    }
}

/// True when the payment on this row was recovered (its money-out goes to the recovery service).
pub fn recovered(r: &GatewayPaymentRecord) -> bool {
    Recovery::of(r).is_some_and(|x| x.stage == Stage::Recovered)
}

/// True while the recovery holds the decline (the payment shows as pending, no card entry).
pub fn active(r: &GatewayPaymentRecord) -> bool {
    Recovery::of(r).is_some_and(|x| x.stage.active())
}

/// The one rule applied when the tender declines (inside the journal transaction that writes
/// the observation): a payment whose recovery is armed or vaulted stays pending with the
/// decline held (`Held` without a token, `Evaluating` — the intent — with one). Returns true
/// when the payment was kept pending.
pub fn hold_decline(r: &mut GatewayPaymentRecord, p: &mut Payment, now_ms: i64) -> bool {
    if p.state != PaymentState::Declined {
        return false;
    }
    let Some(mut rec) = Recovery::of(r) else { return false };
    let next = match rec.stage {
        Stage::Armed => Stage::Held,
        Stage::Vaulted => Stage::Evaluating,
        s if s.active() => s,
        _ => return false,
    };
    if rec.decline.is_none() {
        rec.decline = p.decline.take();
        rec.declined_at = Some(now_ms);
    }
    p.decline = None;
    p.state = PaymentState::Pending;
    rec.stage = next;
    rec.next_at = now_ms;
    rec.store(r);
    true
}

/// The view's `recovery` object (no token, no rescue id: both are capabilities).
pub fn view(r: &GatewayPaymentRecord) -> Value {
    match Recovery::of(r) {
        None => Value::Null,
        Some(x) => json!({
            "by": x.by,
            "byName": ProviderId::FlexFactor.display_name(),
            "state": x.stage,
            "cardVaulted": r.recovery_ref.is_some(),
            "providerStatus": x.provider_status,
            "error": x.last_error,
        }),
    }
}

/// `"Recovered by FlexFactor"` when the payment was: the one wording of the receipt, the
/// console and the view.
pub fn recovered_label(r: &GatewayPaymentRecord) -> Option<String> {
    recovered(r).then(|| format!("Recovered by {}", ProviderId::FlexFactor.display_name()))
}

/// End of day: payments recovered among `rows`, per currency — how many and how much was
/// captured by the recovery service (minor units). The one rule for counting recoveries.
pub fn summary(rows: &[GatewayPaymentRecord]) -> Vec<Value> {
    let mut per: std::collections::BTreeMap<&'static str, (till_core::Currency, u64, i64)> = Default::default();
    for r in rows.iter().filter(|r| recovered(r)) {
        let e = per.entry(r.currency.code()).or_insert((r.currency, 0, 0));
        e.1 += 1;
        e.2 += r.captured.0;
    }
    per.into_values()
        .map(|(currency, count, minor)| {
            json!({
                "by": ProviderId::FlexFactor.as_str(),
                "byName": ProviderId::FlexFactor.display_name(),
                "currency": currency.code(),
                "count": count,
                "amountMinor": minor,
                "amount": Money::new(minor, currency).display(),
            })
        })
        .collect()
}

fn text(body: &Value, key: &str, ok: impl Fn(&str) -> bool, rule: &str, invalid: &mut InvalidParameters) -> Option<String> {
    match body.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if ok(s.trim()) => Some(s.trim().to_string()),
        Some(_) => {
            invalid.push(key, rule);
            None
        }
    }
}

fn digits(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// Parses the page's hand-over: the vault token and the non-sensitive facts, nothing else. A
/// field that is not among them (e.g. `cardNumber`) is refused by name: the agent never takes a
/// card number.
fn parse_vault(body: &Value) -> Result<Vault, AgentError> {
    const KNOWN: [&str; 6] = ["token", "bin", "last4", "expiryMonth", "expiryYear", "holderName"];
    let mut invalid = InvalidParameters::new();
    let Some(obj) = body.as_object() else {
        return Err(AgentError::invalid("body", "must be a JSON object"));
    };
    for key in obj.keys().filter(|k| !KNOWN.contains(&k.as_str())) {
        invalid.push(key, "is not accepted: only the vault token and the card's first six, last four, expiry and holder name are (never a card number)");
    }
    let token = text(body, "token", |s| !s.is_empty() && s.len() <= 100 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "must be the vault token (letters, digits, - and _)", &mut invalid);
    if token.is_none() && !invalid.0.iter().any(|p| p.parameter == "token") {
        invalid.push("token", "is required: the vault token FlexFactor's /tokenize answered");
    }
    let bin = text(body, "bin", |s| digits(s, 6, 8), "must be the first 6 to 8 digits", &mut invalid);
    let last4 = text(body, "last4", |s| digits(s, 4, 4), "must be the last 4 digits", &mut invalid);
    if last4.is_none() && !invalid.0.iter().any(|p| p.parameter == "last4") {
        invalid.push("last4", "is required: the last 4 digits");
    }
    let month = match body.get("expiryMonth") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64().filter(|m| (1..=12).contains(m)) {
            Some(m) => Some(m as u8),
            None => {
                invalid.push("expiryMonth", "must be a month 1 to 12");
                None
            }
        },
    };
    let year = match body.get("expiryYear") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64().filter(|y| (2000..=2099).contains(y)) {
            Some(y) => Some(y as u16),
            None => {
                invalid.push("expiryYear", "must be a four-digit year");
                None
            }
        },
    };
    let holder_name = text(body, "holderName", |s| s.chars().count() <= 100 && !s.chars().any(char::is_control) && s.chars().filter(char::is_ascii_digit).nth(5).is_none(), "must be a name of at most 100 characters (and no number)", &mut invalid);
    if !invalid.is_empty() {
        return Err(AgentError::Invalid(invalid));
    }
    match (token, last4) {
        (Some(token), Some(last4)) => Ok(Vault {
            token,
            bin,
            last4,
            expiry: year.zip(month).and_then(|(y, m)| CardExpiry::new(y, m)),
            holder_name,
        }),
        _ => Err(AgentError::invalid("body", "incomplete")),
    }
}

/// The recovery a new payment starts with: `None` when the till has no recovery service, the
/// tender is not one recovery applies to (keyed Connect-E payments) or it is off for the till;
/// `Off` when the POS opted the payment out.
pub fn initial(agent: &Agent, provider: ProviderId, stored_card: bool, opt_in: bool) -> Option<Value> {
    if provider != ProviderId::ConnectE || stored_card || agent.tender().recovery().is_none() || !agent.config().decline_recovery() {
        return None;
    }
    serde_json::to_value(Recovery::new(if opt_in { Stage::Armed } else { Stage::Off })).ok()
}

fn backoff(attempts: u32) -> i64 {
    (1_000_i64 << attempts.min(6)).min(MAX_BACKOFF_MS)
}

impl Agent {
    /// `POST /api/agent/payments/{id}/vault`: the keyed-entry page hands over the vault token
    /// and the non-sensitive card facts (never the number). Journaled on the payment; a decline
    /// already held is evaluated at once.
    pub async fn vault_card(&self, local_id: &str, body: &Value) -> Result<Value, AgentError> {
        let vault = parse_vault(body)?;
        let id = local_id.to_string();
        let rec = self
            .journal(move |j| j.gateway_payment(&id))
            .await?
            .ok_or_else(|| AgentError::NotFound(format!("payment {local_id}")))?;
        let Some(current) = Recovery::of(&rec) else {
            return Err(AgentError::Conflict("decline recovery is not on for this payment".into()));
        };
        if !matches!(current.stage, Stage::Armed | Stage::Held) {
            // A repeat of the same hand-over is answered; anything later changes nothing.
            if rec.recovery_ref.as_deref() == Some(vault.token.as_str()) {
                return self.gateway_view(&rec).await;
            }
            return Err(AgentError::Conflict(format!("the payment's card can no longer be vaulted (recovery is {:?})", current.stage)));
        }
        let now = self.now_ms();
        let id = local_id.to_string();
        let (rec, evaluate) = self
            .journal(move |j| {
                j.update_gateway_payment(&id, |r| {
                    let Some(mut x) = Recovery::of(r) else { return false };
                    let evaluate = match x.stage {
                        Stage::Armed => {
                            x.stage = Stage::Vaulted;
                            false
                        }
                        Stage::Held => {
                            x.stage = Stage::Evaluating;
                            x.next_at = now;
                            true
                        }
                        _ => return false,
                    };
                    x.card_facts = Some(CardFacts { bin: vault.bin.clone(), last4: vault.last4.clone() });
                    r.recovery_ref = Some(vault.token.clone());
                    if r.card_expiry.is_none() {
                        r.card_expiry = vault.expiry.map(CardExpiry::mm_yy);
                    }
                    x.store(r);
                    r.updated_at = now;
                    evaluate
                })
            })
            .await?;
        tracing::info!(local_id, "card vaulted for decline recovery");
        let rec = if evaluate { self.recovery_step(&rec.local_id, true).await? } else { rec };
        self.gateway_view(&rec).await
    }

    /// One step of a payment's recovery, as far as it can go now: a held decline past its hold
    /// stands; an evaluation intent is sent (again, with the same idempotency key); a pending
    /// rescue is looked up when due (`force`: now, e.g. after a webhook).
    pub async fn recovery_step(&self, local_id: &str, force: bool) -> Result<GatewayPaymentRecord, AgentError> {
        let _one_at_a_time = self.tender().recovering.lock().await;
        let id = local_id.to_string();
        let rec = self
            .journal(move |j| j.gateway_payment(&id))
            .await?
            .ok_or_else(|| AgentError::NotFound(format!("payment {local_id}")))?;
        let Some(x) = Recovery::of(&rec) else { return Ok(rec) };
        let now = self.now_ms();
        if !x.stage.active() || (!force && now < x.next_at) {
            return Ok(rec);
        }
        let Some(service) = self.tender().recovery() else {
            return self.settle_recovery(local_id, Stage::NotRecovered, None, Some("decline recovery is no longer configured".into())).await;
        };
        match x.stage {
            Stage::Held => {
                if now - x.declined_at.unwrap_or(now) >= HOLD_MS {
                    return self.settle_recovery(local_id, Stage::NotRecovered, None, Some("no vault token reached the agent in time".into())).await;
                }
                Ok(rec)
            }
            Stage::Evaluating => {
                fail::fail_point!("recovery::before_evaluate", |_| crate::failpoints::crash("recovery::before_evaluate"));
                let (Some(token), Some(card)) = (rec.recovery_ref.clone(), x.card_facts.clone()) else {
                    return self.settle_recovery(local_id, Stage::NotRecovered, None, Some("no vault token".into())).await;
                };
                let request = RecoveryRequest {
                    order_id: rec.local_id.clone(),
                    amount: Money::new(rec.amount.0, rec.currency),
                    card_token: till_gateway::Opaque::new(token),
                    card: RecoveryCard {
                        bin: card.bin.clone(),
                        last4: Some(card.last4.clone()),
                        expiry: rec.card_expiry.as_deref().and_then(crate::tender::parse_mm_yy),
                        holder_name: None,
                        scheme: rec.card_type.clone(),
                    },
                    decline: x.decline.clone().unwrap_or(DeclineReason { category: DeclineCategory::Declined, provider_code: None, message: None }),
                    declined_by: rec.provider.clone(),
                    declined_transaction: None,
                    declined_at: crate::tender::ms_to_time(x.declined_at.unwrap_or(now)).unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
                    customer_ip: self.listen_addr().ip().to_string(),
                    sense_key: None,
                    card_not_present: rec.moto,
                };
                let answer = service.evaluate(&request).await;
                fail::fail_point!("recovery::after_evaluate", |_| crate::failpoints::crash("recovery::after_evaluate"));
                match answer {
                    Ok(outcome) => self.apply_recovery(local_id, outcome).await,
                    Err(e) => self.recovery_failed(local_id, &x, e).await,
                }
            }
            Stage::Pending => {
                let Some(rescue) = x.rescue_id.clone() else {
                    return self.settle_recovery(local_id, Stage::NotRecovered, None, Some("no rescue id".into())).await;
                };
                match service.status(&rescue).await {
                    Ok(outcome) => self.apply_recovery(local_id, outcome).await,
                    Err(e) => self.recovery_failed(local_id, &x, e).await,
                }
            }
            _ => Ok(rec),
        }
    }

    /// Journals what the service answered (evaluate or status).
    async fn apply_recovery(&self, local_id: &str, outcome: RecoveryOutcome) -> Result<GatewayPaymentRecord, AgentError> {
        let stage = match outcome.state {
            RecoveryState::Recovered | RecoveryState::Refunded => Stage::Recovered,
            RecoveryState::NotRecovered => Stage::NotRecovered,
            RecoveryState::Pending => Stage::Pending,
        };
        let now = self.now_ms();
        if stage == Stage::Pending {
            let id = local_id.to_string();
            let (rec, ()) = self
                .journal(move |j| {
                    j.update_gateway_payment(&id, |r| {
                        let Some(mut x) = Recovery::of(r) else { return };
                        if !x.stage.active() {
                            return;
                        }
                        x.stage = Stage::Pending;
                        if outcome.rescue_id.is_some() {
                            x.rescue_id.clone_from(&outcome.rescue_id);
                        }
                        x.provider_status = Some(outcome.provider_status.clone());
                        x.attempts += 1;
                        x.next_at = now + backoff(x.attempts);
                        x.last_error = None;
                        x.store(r);
                        r.updated_at = now;
                    })
                })
                .await?;
            tracing::info!(local_id, "decline recovery pending: FlexFactor decides later");
            self.gateway_changed(&rec).await;
            return Ok(rec);
        }
        let status = outcome.provider_status.clone();
        let rescue = outcome.rescue_id.clone();
        self.settle_recovery_with(local_id, stage, rescue, Some(status), None).await
    }

    /// An error from the service: not sent → try again soon (giving up after
    /// [`UNREACHABLE_GIVE_UP_MS`] for an evaluation: no rescue can exist); refused → the decline
    /// stands; outcome unknown → ask again later with the same key, never give up.
    async fn recovery_failed(&self, local_id: &str, x: &Recovery, e: GatewayError) -> Result<GatewayPaymentRecord, AgentError> {
        let now = self.now_ms();
        tracing::warn!(local_id, error = %e, stage = ?x.stage, "decline recovery call failed");
        let refused = matches!(e, GatewayError::Refused { .. } | GatewayError::Invalid { .. } | GatewayError::InvalidParameters { .. });
        if x.stage == Stage::Evaluating && refused {
            return self.settle_recovery(local_id, Stage::NotRecovered, None, Some(e.to_string())).await;
        }
        if x.stage == Stage::Evaluating
            && e.certainly_not_performed()
            && now - x.declined_at.unwrap_or(now) >= UNREACHABLE_GIVE_UP_MS
        {
            return self.settle_recovery(local_id, Stage::NotRecovered, None, Some(format!("FlexFactor could not be reached: {e}"))).await;
        }
        let id = local_id.to_string();
        let message = e.to_string();
        let (rec, ()) = self
            .journal(move |j| {
                j.update_gateway_payment(&id, |r| {
                    let Some(mut x) = Recovery::of(r) else { return };
                    x.attempts += 1;
                    x.next_at = now + backoff(x.attempts);
                    x.last_error = Some(message);
                    x.store(r);
                    r.updated_at = now;
                })
            })
            .await?;
        Ok(rec)
    }

    async fn settle_recovery(&self, local_id: &str, stage: Stage, rescue: Option<String>, error: Option<String>) -> Result<GatewayPaymentRecord, AgentError> {
        self.settle_recovery_with(local_id, stage, rescue, None, error).await
    }

    /// The outcome: recovered (the payment becomes captured for its whole amount) or not (the
    /// tender's held decline stands). One transaction; a payment already settled stays as it is.
    async fn settle_recovery_with(
        &self,
        local_id: &str,
        stage: Stage,
        rescue: Option<String>,
        provider_status: Option<String>,
        error: Option<String>,
    ) -> Result<GatewayPaymentRecord, AgentError> {
        let now = self.now_ms();
        let id = local_id.to_string();
        let reason = error.clone();
        let (rec, changed) = self
            .journal(move |j| {
                j.update_gateway_payment(&id, |r| {
                    let Some(mut x) = Recovery::of(r) else { return false };
                    if !x.stage.active() {
                        return false;
                    }
                    let Ok(mut p) = crate::tender::payment_of(r) else { return false };
                    x.stage = stage;
                    if rescue.is_some() {
                        x.rescue_id.clone_from(&rescue);
                    }
                    if provider_status.is_some() {
                        x.provider_status.clone_from(&provider_status);
                    }
                    x.last_error.clone_from(&error);
                    x.settled_at = Some(now);
                    if stage == Stage::Recovered {
                        p.state = PaymentState::Captured;
                        p.amounts.authorized = p.amount.minor;
                        p.amounts.captured = p.amount.minor;
                        p.decline = None;
                    } else {
                        p.state = PaymentState::Declined;
                        p.decline = x.decline.clone();
                    }
                    crate::tender::write_back(&p, r, now);
                    x.store(r);
                    true
                })
            })
            .await?;
        if changed {
            let by = ProviderId::FlexFactor.display_name();
            if stage == Stage::Recovered {
                tracing::info!(local_id, "payment recovered by {by}");
            } else {
                tracing::info!(local_id, reason = reason.as_deref().unwrap_or(""), "decline not recovered by {by}");
            }
            self.gateway_changed(&rec).await;
        }
        Ok(rec)
    }

    /// `POST /api/agent/providers/flexfactor/webhook`: a FlexFactor event (JSON sent as
    /// `text/plain`). Unsigned (FlexFactor documents no signature), so it is only a hint: the
    /// agent looks the rescue up with its own credentials before anything changes, and an
    /// event about a rescue this till does not have changes nothing.
    pub async fn recovery_webhook(&self, body: &[u8]) -> Result<Value, AgentError> {
        let Some(service) = self.tender().recovery() else {
            return Err(AgentError::NotFound("decline recovery is not configured".into()));
        };
        let Some(event) = service.parse_event(body) else {
            return Err(AgentError::invalid("body", "not a FlexFactor event about an order"));
        };
        let open = self.journal(|j| j.open_gateway_payments()).await?;
        let found = open.into_iter().find(|r| Recovery::of(r).is_some_and(|x| x.stage == Stage::Pending && x.rescue_id.as_deref() == Some(event.rescue_id.as_str())));
        match found {
            Some(rec) => {
                tracing::info!(local_id = %rec.local_id, event = %event.name, "FlexFactor event; looking the rescue up");
                let rec = self.recovery_step(&rec.local_id, true).await?;
                Ok(json!({ "accepted": true, "payment": rec.local_id, "state": rec.state }))
            }
            None => {
                tracing::info!(event = %event.name, "FlexFactor event about no pending rescue of this till; nothing changed");
                Ok(json!({ "accepted": false }))
            }
        }
    }

    /// Delivers a refund of a payment recovered by FlexFactor (instead of the tender). Journal
    /// first: the operation is `prepared` (may have been sent) before the call. A lost answer
    /// leaves it prepared; it is settled by sending the *identical* refund again (same refund id
    /// in `refundMessage`), which FlexFactor answers without refunding twice (docs/DECISIONS.md
    /// "FlexFactor"), never by a new one.
    pub(crate) async fn deliver_recovery_refund(&self, op: GatewayOpRecord, rec: &GatewayPaymentRecord) -> Result<GatewayOpRecord, AgentError> {
        let now = self.now_ms();
        let backoff_at = now + 2_000 * op.attempts.clamp(1, 15);
        let Some(service) = self.tender().recovery() else {
            let (id, msg) = (op.id, "decline recovery is not configured".to_string());
            return Ok(self.journal(move |j| j.gateway_op_later(id, &msg, backoff_at, now)).await?);
        };
        let Some(rescue) = Recovery::of(rec).and_then(|x| x.rescue_id) else {
            return self.finish_op_pub(&op, "failed", json!({ "error": "the rescue has no id" }), None).await;
        };
        let amount = match op.kind.as_str() {
            "refund" => op.amount,
            other => return self.finish_op_pub(&op, "failed", json!({ "error": format!("a recovered payment cannot be {other}d") }), None).await,
        };
        let mut op = op;
        if op.state == "pending" {
            // One refund of unknown outcome at a time: FlexFactor deduplicates a repeat of the
            // order's *previous* refund only, so nothing new is sent before it is settled.
            let pid = rec.local_id.clone();
            let others = self.journal(move |j| j.gateway_ops_for(&pid)).await?;
            if others.iter().any(|o| o.id != op.id && o.state == "prepared") {
                let (id, msg) = (op.id, "waiting for an earlier refund's outcome".to_string());
                return Ok(self.journal(move |j| j.gateway_op_later(id, &msg, backoff_at, now)).await?);
            }
            let id = op.id;
            op = self.journal(move |j| j.gateway_op_prepared(id, "flexfactor", now)).await?;
        }
        fail::fail_point!("recovery::before_refund", |_| crate::failpoints::crash("recovery::before_refund"));
        let refund = RecoveryRefund { id: op.op_key.clone(), rescue_id: rescue, amount: Money::new(amount.0, rec.currency), reason: None };
        match service.refund(&refund).await {
            Ok(()) => {
                let outcome = OperationOutcome { approved: true, decline: None, auth_code: None, provider_ref: None };
                self.finish_op_pub(&op, "approved", json!({ "approved": true, "by": "flexfactor" }), Some((Operation::Refund(amount), outcome))).await
            }
            Err(e @ (GatewayError::Refused { .. } | GatewayError::Invalid { .. } | GatewayError::NotFound { .. })) => {
                self.finish_op_pub(&op, "declined", json!({ "approved": false, "error": e.to_string() }), None).await
            }
            Err(e) if e.certainly_not_performed() && op.attempts <= 1 => {
                // Never reached FlexFactor: back to pending, sent when it is back.
                let (id, msg) = (op.id, e.to_string());
                Ok(self.journal(move |j| j.gateway_op_retry(id, &msg, backoff_at, now)).await?)
            }
            Err(e) => {
                // Outcome unknown (or a repeat not delivered): stays prepared; the identical
                // refund is sent again later and is deduplicated by FlexFactor.
                tracing::warn!(op = op.id, error = %e, "FlexFactor refund answer lost; will repeat the identical refund");
                let (id, msg) = (op.id, e.to_string());
                Ok(self.journal(move |j| j.gateway_op_later(id, &msg, backoff_at, now)).await?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recovery_round_trips_through_the_journal() {
        let j = till_journal::Journal::open_in_memory().unwrap();
        let rec = j
            .begin_gateway_payment(till_journal::NewGatewayPayment {
                local_id: "p1".into(),
                provider: "connect-e".into(),
                kind: "sale".into(),
                order_id: "o1".into(),
                amount: till_core::Minor(100),
                currency: till_core::Currency::Gbp,
                moto: true,
                wait_pre_execute: false,
                customer_id: None,
                card_id: None,
                recovery: serde_json::to_value(Recovery::new(Stage::Armed)).ok(),
                now_ms: 1,
            })
            .unwrap();
        assert!(rec.recovery.is_some(), "{:?}", rec.recovery);
        let x = Recovery::of(&rec).expect("parses");
        assert_eq!(x.stage, Stage::Armed);
        assert!(!format!("{x:?}").contains("token"));
    }

    fn row(stage: Option<Stage>) -> GatewayPaymentRecord {
        let j = till_journal::Journal::open_in_memory().unwrap();
        j.begin_gateway_payment(till_journal::NewGatewayPayment {
            local_id: "p1".into(),
            provider: "connect-e".into(),
            kind: "sale".into(),
            order_id: "o1".into(),
            amount: till_core::Minor(100),
            currency: till_core::Currency::Gbp,
            moto: true,
            wait_pre_execute: false,
            customer_id: None,
            card_id: None,
            recovery: stage.and_then(|s| serde_json::to_value(Recovery::new(s)).ok()),
            now_ms: 1,
        })
        .unwrap()
    }

    fn declined() -> Payment {
        let mut p = Payment::pending(ProviderId::ConnectE, till_gateway::Opaque::new("t"), till_gateway::PaymentKind::Sale, "o1", Money::new(100, till_core::Currency::Gbp));
        p.state = PaymentState::Declined;
        p.decline = Some(DeclineReason { category: DeclineCategory::Declined, provider_code: Some("5".into()), message: None });
        p
    }

    #[test]
    fn a_decline_is_held_only_while_recovery_is_armed_or_vaulted() {
        for (stage, held, next) in [
            (Some(Stage::Armed), true, Some(Stage::Held)),
            (Some(Stage::Vaulted), true, Some(Stage::Evaluating)),
            (Some(Stage::Off), false, Some(Stage::Off)),
            (None, false, None),
        ] {
            let mut r = row(stage);
            let mut p = declined();
            assert_eq!(hold_decline(&mut r, &mut p, 5), held, "{stage:?}");
            assert_eq!(Recovery::of(&r).map(|x| x.stage), next);
            if held {
                assert_eq!(p.state, PaymentState::Pending, "the POS keeps seeing pending");
                assert!(p.decline.is_none());
                let x = Recovery::of(&r).unwrap();
                assert_eq!(x.decline.and_then(|d| d.provider_code).as_deref(), Some("5"), "the decline is kept");
                assert!(active(&r));
            } else {
                assert_eq!(p.state, PaymentState::Declined);
            }
        }
    }

    #[test]
    fn the_hand_over_takes_no_card_number_and_names_every_bad_field() {
        let err = parse_vault(&json!({"token": "t-1", "last4": "3184", "cardNumber": "4000002760003184", "expiryMonth": 13})).unwrap_err();
        let text = format!("{err:?}");
        assert!(text.contains("cardNumber") && text.contains("expiryMonth"), "{text}");
        assert!(!text.contains("4000002760003184"));
        assert!(parse_vault(&json!({"last4": "12"})).is_err());
        let v = parse_vault(&json!({"token": "t-1", "bin": "400000", "last4": "3184", "expiryMonth": 12, "expiryYear": 2030})).unwrap();
        assert_eq!(v.expiry.map(CardExpiry::mm_yy).as_deref(), Some("12/30"));
    }

    #[test]
    fn end_of_day_counts_recovered_payments_only() {
        let mut a = row(Some(Stage::Recovered));
        a.captured = till_core::Minor(100);
        let b = row(Some(Stage::NotRecovered));
        let s = summary(&[a, b, row(None)]);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0]["count"].as_u64(), s[0]["amountMinor"].as_i64()), (Some(1), Some(100)));
    }
}
