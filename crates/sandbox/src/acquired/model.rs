//! The Acquired world: logins and tokens, payment sessions, transactions (payments, captures,
//! refunds, reversals) and webhook deliveries, with the rules of the fact sheet and of
//! docs/DECISIONS.md ("Acquired"). Pure state and rules; HTTP lives in `api.rs` and
//! `components.rs`.

use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use time::{Duration, OffsetDateTime};

/// The sandbox merchant's `app_id`.
pub const APP_ID: &str = "sandbox-acquired-app";
/// The sandbox merchant's `app_key`: logs in, keys the redirect hash and the webhook HMAC.
pub const APP_KEY: &str = "sandbox-acquired-key";
/// The sandbox company (sent as `Company-Id` on webhooks).
pub const COMPANY_ID: &str = "0b1c6a0e-5d7e-4a3f-9a51-2c0d8e4f7a10";
/// The sandbox acquiring connection (sent as `Mid` on webhooks).
pub const MID: &str = "8f3e2d1c-0b9a-4e7f-8d6c-5b4a39281706";
/// Access tokens live this long (§2).
pub(crate) const TOKEN_LIFETIME: Duration = Duration::hours(1);
/// Sessions can be paid this long after creation (§3.5); a PUT does not extend it (decided).
pub(crate) const SESSION_LIFETIME: Duration = Duration::minutes(10);
/// Currencies of §3.1 (a third-party list); the sandbox takes them all.
pub(crate) const CURRENCIES: [&str; 14] = [
    "aed", "aud", "cad", "chf", "cny", "dkk", "eur", "gbp", "hkd", "jpy", "mxn", "sek", "usd", "zar",
];

/// What a test card does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behaviour {
    /// Approves (frictionless 3-D Secure when active, or no 3-D Secure).
    Approve,
    /// Ends in this status and reason (frictionless 3-D Secure result, or a bank decline).
    Outcome(&'static str, &'static str),
    /// A 3-D Secure challenge whose result the tester picks in the emulator.
    Challenge,
}

/// A sandbox test card.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TestCard {
    /// The full test number (public test data, never a real card).
    pub number: &'static str,
    /// The scheme the look-up reports.
    pub scheme: &'static str,
    /// What paying with it does.
    pub behaviour: Behaviour,
    /// True when the behaviour is a 3-D Secure one (needs `tds.is_active`).
    pub tds: bool,
}

/// The 3-D Secure test cards of §9, plus one plain approve and one plain decline (decided).
pub(crate) const TEST_CARDS: [TestCard; 8] = [
    TestCard { number: "4000018525249219", scheme: "visa", behaviour: Behaviour::Approve, tds: true },
    TestCard { number: "4000014070307353", scheme: "visa", behaviour: Behaviour::Outcome("tds_failed", "low_confidence"), tds: true },
    TestCard { number: "4000016387798026", scheme: "visa", behaviour: Behaviour::Outcome("tds_failed", "suspected_fraud"), tds: true },
    TestCard { number: "4000010308215921", scheme: "visa", behaviour: Behaviour::Outcome("tds_expired", "challenge_time_out"), tds: true },
    TestCard { number: "4000017000141438", scheme: "visa", behaviour: Behaviour::Outcome("tds_failed", "acs_technical_issue"), tds: true },
    TestCard { number: "4000015979612025", scheme: "visa", behaviour: Behaviour::Challenge, tds: true },
    TestCard { number: "4111111111111111", scheme: "visa", behaviour: Behaviour::Approve, tds: false },
    TestCard { number: "4000000000009995", scheme: "visa", behaviour: Behaviour::Outcome("declined", "insufficient_funds"), tds: false },
];

/// The results a tester may pick in the challenge emulator.
pub(crate) const CHALLENGE_RESULTS: [(&str, &str); 6] = [
    ("success", ""),
    ("tds_failed", "low_confidence"),
    ("tds_failed", "suspected_fraud"),
    ("tds_expired", "challenge_time_out"),
    ("tds_error", "acs_technical_issue"),
    ("declined", "generic_decline"),
];

/// What the sandbox keeps of a card: never the full number or the CVV.
#[derive(Debug, Clone)]
pub(crate) struct CardFacts {
    /// First six and last four digits: what the look-up may show.
    pub masked: String,
    /// `visa`, `mastercard`.
    pub scheme: String,
    /// Expiry month, 1–12.
    pub expiry_month: u8,
    /// Four-digit expiry year.
    pub expiry_year: u16,
}

/// An access token from `/v1/login`.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    /// The bearer token itself.
    pub value: String,
    /// One hour after login, on the simulated clock.
    pub expires: OffsetDateTime,
}

/// A payment session and every parameter it holds (the latest ones: a PUT replaces them).
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The `session_id` (a UUID).
    pub id: String,
    /// The latest `transaction.order_id`.
    pub order_id: String,
    /// The latest amount, minor units: what a payment will take.
    pub amount: i64,
    /// The latest lower-case currency.
    pub currency: String,
    /// `transaction.capture`: false authorises only.
    pub capture: bool,
    /// `transaction.moto`.
    pub moto: bool,
    /// The whole body as last merged (customer, tds, flags), for the ground truth.
    pub body: Map<String, Value>,
    /// When it was created (simulated clock).
    pub created: OffsetDateTime,
    /// Ten minutes after creation; not moved by a PUT.
    pub expires: OffsetDateTime,
    /// Every amount it held, in order (creation, then each PUT that changed it).
    pub amount_history: Vec<i64>,
    /// How many PUTs were accepted (a re-sent PUT counts again).
    pub updates: u32,
    /// The transaction that paid it.
    pub transaction: Option<String>,
}

impl Session {
    fn tds(&self) -> Option<&Map<String, Value>> {
        self.body.get("tds").and_then(Value::as_object)
    }
    pub(crate) fn tds_active(&self) -> bool {
        self.tds().and_then(|t| t.get("is_active")).and_then(Value::as_bool).unwrap_or(false)
    }
    pub(crate) fn redirect_url(&self) -> Option<String> {
        self.tds().and_then(|t| t.get("redirect_url")).and_then(Value::as_str).map(str::to_string)
    }
    pub(crate) fn webhook_url(&self) -> Option<String> {
        self.body.get("webhook_url").and_then(Value::as_str).map(str::to_string)
    }
}

/// A card payment (authorisation, with or without capture).
#[derive(Debug, Clone)]
pub(crate) struct Transaction {
    /// The `transaction_id` (a UUID).
    pub id: String,
    /// The session it paid.
    pub session_id: String,
    /// The session's order at payment time.
    pub order_id: String,
    /// The session's amount at payment time, minor units.
    pub amount: i64,
    /// Lower-case currency.
    pub currency: String,
    /// False for an authorisation only.
    pub capture: bool,
    /// The §6 status word.
    pub status: String,
    /// The §6 reason of a failure.
    pub reason: Option<String>,
    /// The card, masked.
    pub card: CardFacts,
    /// Taken, minor units (the sale, or the later capture).
    pub captured: i64,
    /// Given back so far, minor units.
    pub refunded: i64,
    /// True once the authorisation was released.
    pub reversed: bool,
    /// Every status and money event, in order (ground truth).
    pub history: Vec<String>,
    /// When the card was submitted.
    pub created: OffsetDateTime,
}

/// A capture, refund or reversal that was performed.
#[derive(Debug, Clone)]
pub(crate) struct Operation {
    /// Its own id (a refund answers it as `transaction_id`).
    pub id: String,
    /// `capture`, `refund` or `reversal`.
    pub kind: &'static str,
    /// The payment it applies to.
    pub transaction_id: String,
    /// Minor units.
    pub amount: i64,
    /// When it was performed.
    pub at: OffsetDateTime,
}

/// One webhook POST attempt.
#[derive(Debug, Clone)]
pub(crate) struct WebhookAttempt {
    /// The webhook (the same for every attempt of it).
    pub webhook_id: String,
    /// The transaction it reports.
    pub transaction_id: String,
    /// 1 for the first try.
    pub attempt: u32,
    /// Unscaled seconds since the first attempt.
    pub delay_seconds: u64,
    /// `HTTP 200`, or the error.
    pub result: String,
    /// True for an HTTP 200.
    pub delivered: bool,
}

/// Knobs for tests (control API `settings`).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Webhook delays are divided by this (1 = real time).
    pub webhook_time_scale: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { webhook_time_scale: 1.0 }
    }
}

/// A refused call: HTTP status and the §7 body.
#[derive(Debug)]
pub(crate) struct Refusal(pub u16, pub Value);

/// The §7 error body.
pub(crate) fn error_body(error_type: &str, title: &str, instance: &str, invalid: &[(String, String)]) -> Value {
    let mut v = json!({"status": "error", "error_type": error_type, "title": title, "instance": instance});
    if !invalid.is_empty() {
        v["invalid_parameters"] = Value::Array(
            invalid.iter().map(|(p, r)| json!({"parameter": p, "reason": r})).collect(),
        );
    }
    v
}

/// The 400 validation refusal naming every invalid parameter (§3.4).
pub(crate) fn validation(instance: &str, invalid: Vec<(String, String)>) -> Refusal {
    Refusal(400, error_body("validation", "Your request parameters did not pass our validation.", instance, &invalid))
}

/// Everything the Acquired sandbox holds.
#[derive(Default)]
pub(crate) struct World {
    /// Every token issued, by value.
    pub tokens: HashMap<String, Token>,
    /// How many logins succeeded (a client should log in once an hour, not per call).
    pub logins: u64,
    /// Sessions by id.
    pub sessions: HashMap<String, Session>,
    /// Session ids in creation order (for the ground truth).
    pub session_order: Vec<String>,
    /// Every card payment: the charges.
    pub transactions: Vec<Transaction>,
    /// Every capture, refund and reversal performed.
    pub operations: Vec<Operation>,
    /// Card submissions refused before a transaction existed (expired or used session, …).
    pub refused_confirms: Vec<Value>,
    /// Every webhook attempt.
    pub webhooks: Vec<WebhookAttempt>,
    /// Calls per endpoint kind.
    pub calls: BTreeMap<String, u64>,
    /// How far the simulated clock is ahead of the wall clock.
    pub clock_offset: Duration,
    /// Knobs for tests.
    pub settings: Settings,
}

/// A random UUID (v4) string, lower case.
pub(crate) fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Major-unit JSON number → minor units, exactly, from the number's text: at most 2 decimals
/// (the sandbox's currencies all have 2, JPY aside, which it treats alike), positive.
pub(crate) fn minor_of(v: &Value) -> Option<i64> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    if text.starts_with('-') || text.contains(['e', 'E']) {
        return None;
    }
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let frac = frac.trim_end_matches('0');
    if frac.len() > 2 || int.is_empty() {
        return None;
    }
    let int: i64 = int.parse().ok()?;
    let frac_val: i64 = if frac.is_empty() { 0 } else { format!("{frac:0<2}").parse().ok()? };
    int.checked_mul(100)?.checked_add(frac_val).filter(|m| *m > 0)
}

/// Minor units → the major-unit JSON number Acquired writes.
pub(crate) fn major_of(minor: i64) -> Value {
    let text = if minor % 100 == 0 { format!("{}", minor / 100) } else { format!("{}.{:02}", minor / 100, minor % 100) };
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

impl World {
    /// The simulated now: the wall clock plus the control API's offset.
    pub(crate) fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.clock_offset
    }

    pub(crate) fn count(&mut self, call: &str) {
        *self.calls.entry(call.to_string()).or_default() += 1;
    }

    /// Issues a token for an hour.
    pub(crate) fn login(&mut self) -> Token {
        self.logins += 1;
        let token = Token { value: format!("{}{}", uuid().replace('-', ""), uuid().replace('-', "")), expires: self.now() + TOKEN_LIFETIME };
        self.tokens.insert(token.value.clone(), token.clone());
        token
    }

    /// True when `value` is a token that has not expired.
    pub(crate) fn token_valid(&self, value: &str) -> bool {
        self.tokens.get(value).is_some_and(|t| self.now() < t.expires)
    }

    pub(crate) fn add_session(&mut self, s: Session) {
        self.session_order.push(s.id.clone());
        self.sessions.insert(s.id.clone(), s);
    }

    /// Whether a session may still be updated or paid.
    pub(crate) fn open_session(&self, id: &str, instance: &str) -> Result<&Session, Refusal> {
        let Some(s) = self.sessions.get(id) else {
            return Err(Refusal(404, error_body("not_found", "The session_id was not found.", instance, &[])));
        };
        if s.transaction.is_some() {
            return Err(Refusal(409, error_body("conflict", "The session has already been used for a payment.", instance, &[])));
        }
        if self.now() > s.expires {
            return Err(Refusal(
                400,
                error_body("bad_request", "The session has expired; generate a new session_id.", instance, &[("session_id".into(), "session_id has expired".into())]),
            ));
        }
        Ok(s)
    }

    /// The card was submitted for `session_id`: a transaction with the session's *latest*
    /// parameters. Answers its index.
    pub(crate) fn pay(&mut self, session_id: &str, card: CardFacts, behaviour: Behaviour, tds_card: bool) -> Result<usize, Refusal> {
        let instance = format!("/v1/payment-sessions/{session_id}");
        let s = match self.open_session(session_id, &instance) {
            Ok(s) => s.clone(),
            Err(r) => {
                self.refused_confirms.push(json!({"sessionId": session_id, "httpStatus": r.0, "error": r.1}));
                return Err(r);
            }
        };
        let (status, reason) = match behaviour {
            Behaviour::Approve => ("success", None),
            Behaviour::Outcome(st, re) if !tds_card || s.tds_active() => (st, Some(re.to_string())),
            Behaviour::Outcome(..) => ("success", None),
            Behaviour::Challenge if s.tds_active() => ("tds_pending", None),
            Behaviour::Challenge => ("success", None),
        };
        let now = self.now();
        let captured = if status == "success" && s.capture { s.amount } else { 0 };
        let tx = Transaction {
            id: uuid(),
            session_id: s.id.clone(),
            order_id: s.order_id.clone(),
            amount: s.amount,
            currency: s.currency.clone(),
            capture: s.capture,
            status: status.to_string(),
            reason,
            card,
            captured,
            refunded: 0,
            reversed: false,
            history: vec![status.to_string()],
            created: now,
        };
        if let Some(sess) = self.sessions.get_mut(session_id) {
            sess.transaction = Some(tx.id.clone());
        }
        self.transactions.push(tx);
        Ok(self.transactions.len() - 1)
    }

    /// The tester's pick in the challenge emulator.
    pub(crate) fn authenticate(&mut self, i: usize, status: &str, reason: &str) -> Result<(), Refusal> {
        let t = &mut self.transactions[i];
        if t.status != "tds_pending" {
            return Err(Refusal(409, error_body("conflict", "The transaction is not awaiting authentication.", "/v1/payments/tds-auth", &[])));
        }
        t.status = status.to_string();
        t.reason = (!reason.is_empty()).then(|| reason.to_string());
        if status == "success" && t.capture {
            t.captured = t.amount;
        }
        t.history.push(status.to_string());
        Ok(())
    }

    pub(crate) fn tx_index(&self, id: &str) -> Option<usize> {
        self.transactions.iter().position(|t| t.id == id)
    }

    /// `GET /v1/transactions/{id}` (shape decided; docs/DECISIONS.md "Acquired").
    pub(crate) fn transaction_json(&self, i: usize) -> Value {
        let t = &self.transactions[i];
        let mut v = json!({
            "transaction_id": t.id,
            "status": t.status,
            "transaction": {"order_id": t.order_id, "amount": major_of(t.amount), "currency": t.currency, "capture": t.capture},
            "captured_amount": major_of(t.captured),
            "refunded_amount": major_of(t.refunded),
            "card": {"scheme": t.card.scheme, "number": t.card.masked, "expiry_month": t.card.expiry_month, "expiry_year": t.card.expiry_year},
            "created": t.created.unix_timestamp(),
        });
        if let Some(r) = &t.reason {
            v["reason"] = json!(r);
        }
        v
    }

    fn record(&mut self, kind: &'static str, tx: &str, amount: i64) -> String {
        let id = uuid();
        let at = self.now();
        self.operations.push(Operation { id: id.clone(), kind, transaction_id: tx.to_string(), amount, at });
        id
    }

    /// A capture of (part of) an authorisation: once, at most what was authorised.
    pub(crate) fn capture(&mut self, i: usize, amount: Option<i64>, instance: &str) -> Result<String, Refusal> {
        let t = self.transactions[i].clone();
        if t.status != "success" || t.capture || t.reversed {
            return Err(Refusal(409, error_body("conflict", "Only a successful authorisation can be captured.", instance, &[])));
        }
        if t.captured > 0 {
            return Err(Refusal(409, error_body("conflict", "The authorisation was already captured.", instance, &[])));
        }
        let amount = amount.unwrap_or(t.amount);
        if amount > t.amount {
            return Err(validation(instance, vec![("transaction.amount".into(), format!("transaction.amount exceeds the authorised {}", major_of(t.amount)))]));
        }
        self.transactions[i].captured = amount;
        self.transactions[i].history.push("captured".into());
        Ok(self.record("capture", &t.id, amount))
    }

    /// A refund of (part of) what was captured; several allowed, never more than captured.
    pub(crate) fn refund(&mut self, i: usize, amount: Option<i64>, instance: &str) -> Result<String, Refusal> {
        let t = self.transactions[i].clone();
        if t.captured == 0 {
            return Err(Refusal(409, error_body("conflict", "Nothing was captured on this transaction.", instance, &[])));
        }
        let left = t.captured - t.refunded;
        let amount = amount.unwrap_or(left);
        if amount > left || amount <= 0 {
            return Err(validation(instance, vec![("transaction.amount".into(), format!("transaction.amount exceeds the refundable {}", major_of(left)))]));
        }
        self.transactions[i].refunded += amount;
        self.transactions[i].history.push("refunded".into());
        Ok(self.record("refund", &t.id, amount))
    }

    /// Releases an authorisation that was not captured.
    pub(crate) fn reversal(&mut self, i: usize, instance: &str) -> Result<String, Refusal> {
        let t = self.transactions[i].clone();
        if t.status != "success" || t.capture || t.captured > 0 || t.reversed {
            return Err(Refusal(409, error_body("conflict", "The transaction can no longer be reversed.", instance, &[])));
        }
        let tx = &mut self.transactions[i];
        tx.reversed = true;
        tx.status = "cancelled".into();
        tx.history.push("cancelled".into());
        Ok(self.record("reversal", &t.id, t.amount))
    }

    /// The ground truth for `GET /_sandbox/acquired/state`.
    pub(crate) fn inspect(&self) -> Value {
        let now = self.now();
        let sessions: Vec<Value> = self
            .session_order
            .iter()
            .filter_map(|id| self.sessions.get(id))
            .map(|s| {
                json!({
                    "sessionId": s.id,
                    "orderId": s.order_id,
                    "amountMinor": s.amount,
                    "amountHistory": s.amount_history,
                    "currency": s.currency,
                    "capture": s.capture,
                    "moto": s.moto,
                    "updates": s.updates,
                    "createdAt": s.created.unix_timestamp(),
                    "expiresAt": s.expires.unix_timestamp(),
                    "expired": now > s.expires,
                    "transactionId": s.transaction,
                    "body": Value::Object(s.body.clone()),
                })
            })
            .collect();
        let transactions: Vec<Value> = self
            .transactions
            .iter()
            .map(|t| {
                json!({
                    "transactionId": t.id,
                    "sessionId": t.session_id,
                    "orderId": t.order_id,
                    "amountMinor": t.amount,
                    "currency": t.currency,
                    "capture": t.capture,
                    "status": t.status,
                    "reason": t.reason,
                    "statusHistory": t.history,
                    "capturedMinor": t.captured,
                    "refundedMinor": t.refunded,
                    "reversed": t.reversed,
                    "cardNumber": t.card.masked,
                })
            })
            .collect();
        let operations: Vec<Value> = self
            .operations
            .iter()
            .map(|o| json!({"id": o.id, "kind": o.kind, "transactionId": o.transaction_id, "amountMinor": o.amount, "at": o.at.unix_timestamp()}))
            .collect();
        let webhooks: Vec<Value> = self
            .webhooks
            .iter()
            .map(|w| json!({"webhookId": w.webhook_id, "transactionId": w.transaction_id, "attempt": w.attempt, "delaySeconds": w.delay_seconds, "result": w.result, "delivered": w.delivered}))
            .collect();
        json!({
            "now": now.unix_timestamp(),
            "clockOffsetSeconds": self.clock_offset.whole_seconds(),
            "logins": self.logins,
            "sessions": sessions,
            "transactions": transactions,
            "operations": operations,
            "refusedConfirms": self.refused_confirms,
            "webhooks": webhooks,
            "calls": self.calls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts() {
        assert_eq!(minor_of(&json!(15.02)), Some(1502));
        assert_eq!(minor_of(&json!(15)), Some(1500));
        assert_eq!(minor_of(&json!(0.1)), Some(10));
        assert_eq!(minor_of(&json!(15.021)), None);
        assert_eq!(minor_of(&json!(0)), None);
        assert_eq!(minor_of(&json!("15.02")), None);
        assert_eq!(major_of(1502), json!(15.02));
        assert_eq!(major_of(1500), json!(15));
        assert_eq!(major_of(7), json!(0.07));
    }
}
