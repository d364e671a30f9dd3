//! Credits (`POST /api/transactions/credit`, SensePass §4.8): money sent from the merchant to a
//! customer's tokenised card, with no original payment to cap or look up.
//!
//! Journaled like every money movement: the intent (amount, currency, key) is an outbox operation
//! before the call, the answer after it. What makes a credit different from a refund:
//!
//! - The card token is a secret the journal never keeps (`till_core::redact`), so a credit cannot
//!   wait in the outbox for SensePass to come back: it is sent now or not at all.
//! - SensePass has no idempotency key and nothing to look a credit up by, so a lost answer cannot
//!   be reconciled by the agent. Such a credit stays `in_flight` with its reason, is never sent
//!   again by the agent (not by the outbox, not after a restart, not on a retry with its key), and
//!   is answered `504 outcome_unknown` until a person has checked it at SensePass.
//! - A credit that certainly never left (SensePass unreachable) is recorded as failed "not sent",
//!   and a retry with the same `Idempotency-Key` sends it again; without a key every request is a
//!   new credit, as at SensePass itself.
//!
//! Not for refunds of a payment (those are capped by what it captured: `service::money_out`).

use crate::error::AgentError;
use crate::service::Agent;
use reqwest::Method;
use serde_json::{json, Value};
use till_core::{Currency, InvalidParameters, Minor};
use till_journal::{NewOperation, OpKind, OpState, Operation, NOT_SENT};

/// Prefix of `last_error` of a credit whose answer was lost.
const UNKNOWN: &str = "uncertain: answer lost; check this credit at SensePass before crediting again:";

/// What the POS gets for a credit.
#[derive(Debug)]
pub struct CreditAnswer {
    /// HTTP status to answer with (SensePass's own for a definite answer).
    pub status: u16,
    /// SensePass's body, or the agent's error body.
    pub body: Value,
    /// True when it is the recorded answer of an earlier request with the same key.
    pub replay: bool,
}

/// The amount and currency a credit body asks for, or a 400 naming every invalid field.
fn parse(body: &Value) -> Result<(Minor, Currency), AgentError> {
    let mut invalid = InvalidParameters::new();
    if body.get("token").and_then(Value::as_str).is_none_or(|t| t.trim().is_empty()) {
        invalid.push("token", "is required (the customer's card token from tokenisation)");
    }
    let currency = match body.get("currency").and_then(Value::as_str) {
        Some(code) => match Currency::from_code(code) {
            Ok(c) => Some(c),
            Err(e) => {
                invalid.push("currency", e.to_string());
                None
            }
        },
        None => {
            invalid.push("currency", "is required: the agent journals every credit in a known currency");
            None
        }
    };
    let is_cent = body.get("isCent").and_then(Value::as_bool).unwrap_or(false);
    let amount = match (body.get("refundAmount"), currency) {
        (None | Some(Value::Null), _) => {
            invalid.push("refundAmount", "is required");
            None
        }
        (Some(_), None) => None,
        (Some(v), Some(c)) => {
            let parsed = match v {
                Value::Number(n) if is_cent => till_core::money::minor_json_number(n).ok(),
                Value::Number(n) => till_core::money::major_json_number_to_minor(n, c).ok(),
                Value::String(s) if !is_cent => till_core::money::parse_major(s, c).ok(),
                _ => None,
            };
            match parsed {
                Some(a) if a.is_positive() && a <= c.max_amount() => Some(a),
                Some(a) if a.is_positive() => {
                    invalid.push("refundAmount", format!("is above the largest amount taken ({} minor units)", c.max_amount().0));
                    None
                }
                Some(_) => {
                    invalid.push("refundAmount", "must be greater than 0");
                    None
                }
                None => {
                    invalid.push("refundAmount", "must be an exact amount (major units, or minor units with isCent: true)");
                    None
                }
            }
        }
    };
    match (amount, currency) {
        (Some(a), Some(c)) if invalid.is_empty() => Ok((a, c)),
        _ => Err(AgentError::Invalid(invalid)),
    }
}

/// The stored answer of `op` as a replay, if it has one.
fn stored_answer(op: &Operation) -> Option<CreditAnswer> {
    let a = op.answer.as_ref()?;
    let status = a.get("status").and_then(Value::as_u64).and_then(|s| u16::try_from(s).ok()).unwrap_or(200);
    Some(CreditAnswer { status, body: a.get("body").cloned().unwrap_or(Value::Null), replay: true })
}

impl Agent {
    /// Sends one credit, journaled before and after; see the module notes for lost answers.
    pub async fn credit(&self, body: Value, idempotency_key: Option<String>) -> Result<CreditAnswer, AgentError> {
        let (amount, currency) = parse(&body)?;
        let op_key = format!("credit:{}", idempotency_key.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string()));
        let new = NewOperation {
            kind: OpKind::Credit,
            transaction_local_id: None,
            op_key: op_key.clone(),
            amount: Some(amount),
            // No token here: it is a secret, and the journal would drop it anyway.
            payload: json!({ "amountMinor": amount.0, "currency": currency.code() }),
            now_ms: till_journal::now_ms(),
        };
        let op = self.journal(move |j| j.enqueue(new)).await?;
        let fresh = op.attempts == 0 && op.state == OpState::Pending;
        let op = if fresh {
            let id = op.id;
            self.journal(move |j| j.mark_in_flight(id, till_journal::now_ms())).await?
        } else {
            match self.credit_replay(op, amount, currency).await? {
                Ok(op) => op,
                Err(answer) => return Ok(answer),
            }
        };
        let replay = !fresh;
        // From the claim on, the send and its journaling run as their own task, so that a POS
        // hanging up mid-call cannot leave the credit claimed with no outcome recorded.
        let agent = self.clone();
        tokio::spawn(async move { agent.send_credit(op.id, body, replay).await })
            .await
            .map_err(|e| AgentError::Internal(format!("credit task failed: {e}")))?
    }

    /// Sends a claimed credit and journals what became of it.
    async fn send_credit(&self, id: i64, body: Value, replay: bool) -> Result<CreditAnswer, AgentError> {
        fail::fail_point!("credit::before_send", |_| crate::failpoints::crash("credit::before_send"));
        let (_, client) = self.device_client().await?;
        let sent = client.forward(Method::POST, "transactions/credit", Some(body)).await;
        fail::fail_point!("credit::after_send", |_| crate::failpoints::crash("credit::after_send"));
        let now = till_journal::now_ms();
        match sent {
            Ok((status, answer)) if (200..300).contains(&status) => {
                let a = answer.clone();
                let stored = json!({ "status": status, "body": answer });
                self.journal(move |j| {
                    j.mark_delivered(id, &a, now)?;
                    j.set_op_answer(id, &stored)
                })
                .await?;
                Ok(CreditAnswer { status, body: answer, replay })
            }
            Ok((status, answer)) if (400..500).contains(&status) => {
                // SensePass looked at it and refused: nothing moved.
                let reason = format!("SensePass answered {status}");
                let stored = json!({ "status": status, "body": answer });
                self.journal(move |j| {
                    j.mark_failed(id, &reason, now)?;
                    j.set_op_answer(id, &stored)
                })
                .await?;
                Ok(CreditAnswer { status, body: answer, replay })
            }
            Ok((status, _)) => self.credit_unknown(id, format!("SensePass answered {status}")).await,
            Err(e) if e.certainly_not_performed() => {
                let reason = format!("{NOT_SENT} {e}");
                self.journal(move |j| j.mark_failed(id, &reason, now)).await?;
                Err(AgentError::Unreachable(format!("{e}; nothing was credited, send it again (same Idempotency-Key)")))
            }
            Err(e) => self.credit_unknown(id, e.to_string()).await,
        }
    }

    /// A credit whose key was seen before: the recorded answer, the unknown outcome again, or —
    /// only when the first request certainly never left — a fresh claim to send it now.
    /// `Ok(Err(answer))` is the recorded answer to give again.
    async fn credit_replay(
        &self,
        op: Operation,
        amount: Minor,
        currency: Currency,
    ) -> Result<Result<Operation, CreditAnswer>, AgentError> {
        let same_currency = op.payload.get("currency").and_then(Value::as_str) == Some(currency.code());
        if op.kind != OpKind::Credit || op.amount != Some(amount) || !same_currency {
            return Err(AgentError::IdempotencyMismatch {
                number: None,
                local_id: String::new(),
                amount_minor: op.amount.map(|a| a.0).unwrap_or(0),
                currency: op.payload.get("currency").and_then(Value::as_str).unwrap_or_default().to_string(),
            });
        }
        if let Some(answer) = stored_answer(&op) {
            return Ok(Err(answer));
        }
        let id = op.id;
        match self.journal(move |j| j.reclaim_unsent(id, till_journal::now_ms())).await {
            Ok(op) => Ok(Ok(op)),
            Err(_) => Err(AgentError::Uncertain(format!(
                "credit {id} was sent and its answer is not known; check it at SensePass before crediting again"
            ))),
        }
    }

    /// Records a lost answer: the credit stays in flight, never sent again by the agent.
    async fn credit_unknown(&self, id: i64, why: String) -> Result<CreditAnswer, AgentError> {
        let note = format!("{UNKNOWN} {why}");
        self.journal(move |j| j.note_op_error(id, &note, till_journal::now_ms())).await?;
        tracing::warn!(operation = id, "credit outcome unknown");
        Err(AgentError::Uncertain(format!(
            "credit {id}: {why}; check it at SensePass before crediting again (the agent will not resend it)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_invalid_field_is_named() {
        let Err(AgentError::Invalid(p)) = parse(&json!({ "refundAmount": "1.234", "currency": "XXX" })) else {
            panic!("expected a 400");
        };
        let text = serde_json::to_string(&p).unwrap_or_default();
        assert!(text.contains("token") && text.contains("currency"), "{text}");
        let Err(AgentError::Invalid(p)) = parse(&json!({ "token": "t", "refundAmount": "1.234", "currency": "USD" })) else {
            panic!("expected a 400");
        };
        assert!(serde_json::to_string(&p).unwrap_or_default().contains("refundAmount"));
        assert!(parse(&json!({ "token": "t", "refundAmount": 0, "isCent": true, "currency": "USD" })).is_err());
    }

    #[test]
    fn amounts_in_either_unit() {
        assert_eq!(parse(&json!({ "token": "t", "refundAmount": "1.23", "currency": "USD" })).ok(), Some((Minor(123), Currency::Usd)));
        assert_eq!(parse(&json!({ "token": "t", "refundAmount": 123, "isCent": true, "currency": "USD" })).ok(), Some((Minor(123), Currency::Usd)));
    }
}
