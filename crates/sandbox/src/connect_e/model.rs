//! The Connect-E world: access tokens, web payments, cross-reference payments, revokes and
//! webhook deliveries, with the rules of the fact sheet and of docs/DECISIONS.md ("Connect-E").
//! Pure state and rules; HTTP lives in `api.rs` and `web.rs`.

use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use time::{Duration, OffsetDateTime};

/// The sandbox merchant's Connect-E API key (`Authorization: Bearer …`).
pub const API_KEY: &str = "sandbox-connect-e-key";
/// The URL registered for the sandbox merchant; `merchantUrl` must equal it.
pub const MERCHANT_URL: &str = "https://till.sandbox.invalid";
/// Single-use tokens live this long (§3).
pub(crate) const TOKEN_LIFETIME: Duration = Duration::minutes(30);
/// A payment in 99 may be resumed this long (§4.4).
pub(crate) const RESUME_WINDOW: Duration = Duration::minutes(15);
/// ISO 4217 numeric codes the sandbox merchant takes (GBP, EUR, USD).
pub(crate) const CURRENCIES: [&str; 3] = ["826", "978", "840"];

/// What a test card does (§10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behaviour {
    /// Approves at once.
    Approve,
    /// A 3-D Secure step, then approves.
    ThreeDs,
    /// Declined by the issuer (5).
    Decline,
}

/// A sandbox test card.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TestCard {
    pub number: &'static str,
    pub scheme: &'static str,
    pub behaviour: Behaviour,
}

/// The cards of §10 (first three documented by the provider; the last two from its samples).
pub(crate) const TEST_CARDS: [TestCard; 5] = [
    TestCard {
        number: "5200000000000056",
        scheme: "MASTERCARD",
        behaviour: Behaviour::Approve,
    },
    TestCard {
        number: "4456530000001096",
        scheme: "VISA",
        behaviour: Behaviour::ThreeDs,
    },
    TestCard {
        number: "4456530000001013",
        scheme: "VISA",
        behaviour: Behaviour::Decline,
    },
    TestCard {
        number: "4456530000000007",
        scheme: "VISA",
        behaviour: Behaviour::ThreeDs,
    },
    TestCard {
        number: "5200000000001096",
        scheme: "MASTERCARD",
        behaviour: Behaviour::ThreeDs,
    },
];

/// What the sandbox keeps of a card: never the full number or the CV2.
#[derive(Debug, Clone)]
pub(crate) struct CardFacts {
    pub masked: String,
    pub scheme: String,
    pub expiry: String,
    pub name: String,
    pub behaviour: Behaviour,
}

impl CardFacts {
    /// From a keyed number: a test card behaves as listed, any other number is declined.
    pub(crate) fn from_number(number: &str, expiry: &str, name: &str) -> CardFacts {
        let card = TEST_CARDS.iter().find(|c| c.number == number);
        let scheme = match card {
            Some(c) => c.scheme.to_string(),
            None if number.starts_with('4') => "VISA".into(),
            None if number.starts_with('5') => "MASTERCARD".into(),
            None if number.starts_with("34") || number.starts_with("37") => "AMEX".into(),
            None => "UNKNOWN".into(),
        };
        let len = number.len();
        let masked = format!(
            "{}{}{}",
            &number[..6.min(len)],
            "*".repeat(len.saturating_sub(10)),
            &number[len.saturating_sub(4)..]
        );
        CardFacts {
            masked,
            scheme,
            expiry: expiry.to_string(),
            name: name.to_string(),
            behaviour: card.map(|c| c.behaviour).unwrap_or(Behaviour::Decline),
        }
    }
}

/// `transactionType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxType {
    Sale,
    Preauth,
    Collection,
    Refund,
    Void,
}

impl TxType {
    pub(crate) fn parse(s: &str) -> Option<TxType> {
        Some(match s {
            "SALE" => TxType::Sale,
            "PREAUTH" => TxType::Preauth,
            "COLLECTION" => TxType::Collection,
            "REFUND" => TxType::Refund,
            "VOID" => TxType::Void,
            _ => return None,
        })
    }
    pub(crate) fn name(self) -> &'static str {
        match self {
            TxType::Sale => "SALE",
            TxType::Preauth => "PREAUTH",
            TxType::Collection => "COLLECTION",
            TxType::Refund => "REFUND",
            TxType::Void => "VOID",
        }
    }
}

/// Where a token stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenUse {
    Unused,
    Revoked,
    /// Used by a web payment (card form or CV2 form).
    Web,
    /// Used by a cross-reference payment.
    CrossReference,
}

/// An access token and everything it was created with.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub id: String,
    pub tx_type: TxType,
    pub amount: i64,
    pub currency: String,
    pub order_id: String,
    pub merchant_transaction_id: Option<String>,
    pub cross_reference: Option<String>,
    pub wait_pre_execute: bool,
    pub customer_id: Option<String>,
    pub webhook_url: Option<String>,
    pub moto: bool,
    pub meta_data: Option<Value>,
    pub created: OffsetDateTime,
    pub expires: OffsetDateTime,
    pub used: TokenUse,
}

/// A money-holding transaction that cross references point at: the first successful web or
/// cross-reference SALE/PREAUTH. Collections, refunds and voids are booked against it.
#[derive(Debug, Clone)]
pub(crate) struct Root {
    pub tx_type: TxType,
    pub amount: i64,
    pub currency: String,
    pub collected: i64,
    pub refunded: i64,
    pub voided: bool,
    pub card: CardFacts,
}

impl Root {
    /// What was taken: a sale's amount, a pre-authorisation's collection.
    pub(crate) fn captured(&self) -> i64 {
        if self.voided {
            return 0;
        }
        match self.tx_type {
            TxType::Sale => self.amount,
            _ => self.collected,
        }
    }
}

/// A payment made through client.js (card form or CV2 form).
#[derive(Debug, Clone)]
pub(crate) struct WebPayment {
    pub token: String,
    pub status: i64,
    pub history: Vec<(i64, OffsetDateTime)>,
    pub card: CardFacts,
    pub cv2_only: bool,
    pub auth_code: Option<String>,
    pub message: String,
    pub cross_reference: Option<String>,
    pub at: OffsetDateTime,
    pub paused_at: Option<OffsetDateTime>,
    pub revoked_during: Option<i64>,
}

/// A `POST /v1/cross-reference-payments/{token}` that was performed.
#[derive(Debug, Clone)]
pub(crate) struct CrossRefPayment {
    pub token: String,
    pub tx_type: TxType,
    pub amount: i64,
    pub order_id: String,
    pub root: usize,
    pub status: i64,
    pub auth_code: Option<String>,
    pub message: String,
    pub cross_reference: Option<String>,
    pub cv2: bool,
    pub at: OffsetDateTime,
}

/// A revoke call and what it did.
#[derive(Debug, Clone)]
pub(crate) struct Revoke {
    pub token: String,
    pub outcome: String,
    pub at: OffsetDateTime,
}

/// One webhook POST attempt.
#[derive(Debug, Clone)]
pub(crate) struct WebhookAttempt {
    pub token: String,
    pub attempt: u32,
    pub delay_seconds: u64,
    pub result: String,
    pub delivered: bool,
}

/// Knobs for tests (control API `settings`).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Webhook delays are divided by this (1 = real time).
    pub webhook_time_scale: f64,
    /// How long a payment shows 40 (Processing) before its outcome.
    pub processing_ms: u64,
    /// The next execution (web, resume or cross reference) ends in this code instead of the
    /// card's (4, 5, 20 or 30); one shot.
    pub next_status: Option<i64>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            webhook_time_scale: 1.0,
            processing_ms: 0,
            next_status: None,
        }
    }
}

/// A rule broken by a request: the HTTP status and a text/plain message.
#[derive(Debug)]
pub(crate) struct Refusal(pub u16, pub String);

/// Everything the Connect-E sandbox holds.
#[derive(Default)]
pub(crate) struct World {
    pub tokens: HashMap<String, Token>,
    pub token_order: Vec<String>,
    pub payments: Vec<WebPayment>,
    pub payment_of_token: HashMap<String, usize>,
    pub roots: Vec<Root>,
    pub root_of_xref: HashMap<String, usize>,
    pub xrefs: Vec<CrossRefPayment>,
    pub xref_of_token: HashMap<String, usize>,
    pub revokes: Vec<Revoke>,
    pub webhooks: Vec<WebhookAttempt>,
    pub calls: BTreeMap<String, u64>,
    pub clock_offset: Duration,
    pub settings: Settings,
}

/// Random decimal digits.
pub(crate) fn digits(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}

/// A token id shaped like the OpenAPI example: long, URL-safe base64 alphabet.
pub(crate) fn token_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::thread_rng();
    (0..120)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// The state name used in revoke's `[state]` message.
pub(crate) fn state_name(status: i64) -> &'static str {
    match status {
        0 => "SUCCESSFUL",
        3 => "AUTHORIZING",
        4 => "REFERRED",
        5 => "DECLINED",
        20 => "DUPLICATE",
        30 => "FAILED",
        40 => "PROCESSING",
        90 => "REVOKED",
        99 => "WAITING_PRE_EXECUTE",
        _ => "UNKNOWN",
    }
}

fn is_final(status: i64) -> bool {
    matches!(status, 0 | 4 | 5 | 20 | 30 | 90)
}

/// `transactionDateTime` in the OpenAPI example's style.
pub(crate) fn fmt_go_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} +0000 UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

impl World {
    /// The simulated now: the wall clock plus the control API's offset.
    pub(crate) fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.clock_offset
    }

    pub(crate) fn count(&mut self, call: &str) {
        *self.calls.entry(call.to_string()).or_default() += 1;
    }

    /// Moves payments whose resume window lapsed from 99 to 30 (decided; docs/DECISIONS.md).
    pub(crate) fn refresh(&mut self) {
        let now = self.now();
        for p in &mut self.payments {
            if p.status == 99 && p.paused_at.is_some_and(|t| now > t + RESUME_WINDOW) {
                p.status = 30;
                p.message = "Wait pre-execute window elapsed".into();
                p.history.push((30, now));
            }
        }
    }

    /// Whether a token may be used now for `what`; the refusal otherwise.
    pub(crate) fn usable(&self, id: &str) -> Result<&Token, Refusal> {
        let Some(t) = self.tokens.get(id) else {
            return Err(Refusal(
                404,
                "no access token supplied or unknown access token".into(),
            ));
        };
        match t.used {
            TokenUse::Unused if self.now() > t.expires => {
                Err(Refusal(401, "access token expired".into()))
            }
            TokenUse::Unused => Ok(t),
            TokenUse::Revoked => Err(Refusal(401, "access token revoked".into())),
            TokenUse::Web | TokenUse::CrossReference => {
                Err(Refusal(401, "access token already used".into()))
            }
        }
    }

    /// Takes the one-shot forced outcome, if set.
    fn forced(&mut self) -> Option<i64> {
        self.settings.next_status.take()
    }

    /// True when `order_id` already has a successful SALE/PREAUTH (web or cross reference):
    /// a new one is a duplicate (20). Declined attempts do not count, so a retry after a decline
    /// with the same orderId goes through (§9).
    fn order_already_paid(&self, order_id: &str, except_token: &str) -> bool {
        let web = self.payments.iter().any(|p| {
            p.status == 0
                && p.token != except_token
                && self
                    .tokens
                    .get(&p.token)
                    .is_some_and(|t| t.order_id == order_id)
        });
        let xref = self.xrefs.iter().any(|x| {
            x.status == 0
                && matches!(x.tx_type, TxType::Sale | TxType::Preauth)
                && x.order_id == order_id
        });
        web || xref
    }

    /// Starts a web payment on an unused token (the card or CV2 was submitted). Answers the
    /// payment's index.
    pub(crate) fn start_web(
        &mut self,
        token: &str,
        card: CardFacts,
        cv2_only: bool,
    ) -> Result<usize, Refusal> {
        let now = self.now();
        let t = self.usable(token)?.clone();
        if !matches!(t.tx_type, TxType::Sale | TxType::Preauth) {
            return Err(Refusal(
                400,
                format!(
                    "invalid transaction type {} for a web payment",
                    t.tx_type.name()
                ),
            ));
        }
        if cv2_only != t.cross_reference.is_some() {
            return Err(Refusal(
                400,
                if cv2_only {
                    "this access token has no crossReference: use the card form".into()
                } else {
                    "this access token is for a repeat payment: use the CV2 form".into()
                },
            ));
        }
        if let Some(tok) = self.tokens.get_mut(token) {
            tok.used = TokenUse::Web;
        }
        self.payments.push(WebPayment {
            token: token.to_string(),
            status: 40,
            history: Vec::new(),
            card,
            cv2_only,
            auth_code: None,
            message: String::new(),
            cross_reference: None,
            at: now,
            paused_at: None,
            revoked_during: None,
        });
        let i = self.payments.len() - 1;
        self.payment_of_token.insert(token.to_string(), i);
        if self.payments[i].card.behaviour == Behaviour::ThreeDs {
            self.set_status(i, 3, "Authorizing");
        }
        Ok(i)
    }

    fn set_status(&mut self, i: usize, status: i64, message: &str) {
        let now = self.now();
        let p = &mut self.payments[i];
        p.status = status;
        p.message = message.to_string();
        p.at = now;
        p.history.push((status, now));
    }

    /// 3-D Secure finished (`passed` or not). Answers the new status.
    pub(crate) fn authenticate(&mut self, i: usize, passed: bool) -> Result<i64, Refusal> {
        if self.payments[i].status != 3 {
            return Err(Refusal(
                400,
                format!(
                    "payment is in {} state, not AUTHORIZING",
                    state_name(self.payments[i].status)
                ),
            ));
        }
        if !passed {
            self.set_status(i, 5, "3-D Secure authentication failed");
            return Ok(5);
        }
        Ok(self.after_authentication(i))
    }

    /// Authentication is over (or was not needed): pause for resume, or go to processing.
    pub(crate) fn after_authentication(&mut self, i: usize) -> i64 {
        let wait = self
            .tokens
            .get(&self.payments[i].token)
            .is_some_and(|t| t.wait_pre_execute);
        if wait {
            let now = self.now();
            self.set_status(i, 99, "Waiting pre-execute");
            self.payments[i].paused_at = Some(now);
            99
        } else {
            self.set_status(i, 40, "Processing");
            40
        }
    }

    /// Executes a web payment that is processing: the card (or a forced code, or the duplicate
    /// rule) decides. Answers the final status.
    pub(crate) fn execute_web(&mut self, i: usize) -> i64 {
        let token = self.payments[i].token.clone();
        let Some(t) = self.tokens.get(&token).cloned() else {
            return 30;
        };
        let forced = self.forced();
        let status = if let Some(code) = forced {
            code
        } else if self.order_already_paid(&t.order_id, &token) {
            20
        } else if self.payments[i].card.behaviour == Behaviour::Decline {
            5
        } else {
            0
        };
        if status == 0 {
            let auth = digits(6);
            let xref = digits(24);
            let root = Root {
                tx_type: t.tx_type,
                amount: t.amount,
                currency: t.currency.clone(),
                collected: 0,
                refunded: 0,
                voided: false,
                card: self.payments[i].card.clone(),
            };
            self.roots.push(root);
            self.root_of_xref.insert(xref.clone(), self.roots.len() - 1);
            self.payments[i].auth_code = Some(auth.clone());
            self.payments[i].cross_reference = Some(xref);
            self.set_status(i, 0, &format!("AuthCode: {auth}"));
        } else {
            self.set_status(i, status, message_of(status));
        }
        status
    }

    /// Resume of a payment paused in 99. Ok(()) means "execute it now".
    pub(crate) fn resume(&mut self, token: &str) -> Result<usize, Refusal> {
        self.refresh();
        let Some(&i) = self.payment_of_token.get(token) else {
            return Err(Refusal(
                400,
                "no payment is waiting pre-execute for this access token".into(),
            ));
        };
        match self.payments[i].status {
            99 => {
                self.set_status(i, 40, "Processing");
                Ok(i)
            }
            30 if self.payments[i].paused_at.is_some() => Err(Refusal(
                400,
                "payment can no longer be resumed: the 15-minute window has elapsed".into(),
            )),
            s => Err(Refusal(
                400,
                format!(
                    "payment is in {} state, not WAITING_PRE_EXECUTE",
                    state_name(s)
                ),
            )),
        }
    }

    /// Revoke (§4.5). Unused tokens (expired or not) are revoked; a payment in 3-D Secure or
    /// waiting pre-execute ends in 90; anything else was consumed.
    pub(crate) fn revoke(&mut self, token: &str) -> Result<(), Refusal> {
        self.refresh();
        let now = self.now();
        let Some(t) = self.tokens.get_mut(token) else {
            let message = "Invalid access token".to_string();
            self.revokes.push(Revoke {
                token: token.to_string(),
                outcome: message.clone(),
                at: now,
            });
            return Err(Refusal(400, message));
        };
        let result = match t.used {
            TokenUse::Unused => {
                t.used = TokenUse::Revoked;
                Ok("revoked unused token".to_string())
            }
            TokenUse::Revoked => Ok("already revoked".to_string()),
            TokenUse::CrossReference => {
                let s = self
                    .xref_of_token
                    .get(token)
                    .map(|&x| self.xrefs[x].status)
                    .unwrap_or(30);
                Err(Refusal(
                    400,
                    format!(
                        "unable to revoke access token with transaction in [{}] state",
                        state_name(s)
                    ),
                ))
            }
            TokenUse::Web => {
                let i = self.payment_of_token.get(token).copied();
                match i.map(|i| (i, self.payments[i].status)) {
                    Some((i, s @ (3 | 99))) => {
                        self.payments[i].revoked_during = Some(s);
                        self.set_status(i, 90, "Revoked");
                        Ok("revoked during authentication; payment revoked (90)".to_string())
                    }
                    Some((_, 90)) => Ok("already revoked".to_string()),
                    Some((_, s)) => Err(Refusal(
                        400,
                        format!(
                            "unable to revoke access token with transaction in [{}] state",
                            state_name(s)
                        ),
                    )),
                    None => Err(Refusal(400, "Invalid access token".into())),
                }
            }
        };
        self.revokes.push(Revoke {
            token: token.to_string(),
            outcome: match &result {
                Ok(s) => s.clone(),
                Err(Refusal(_, m)) => m.clone(),
            },
            at: now,
        });
        result.map(|_| ())
    }

    /// A cross-reference payment (§4.3). Answers the index of the recorded payment.
    pub(crate) fn cross_reference_payment(
        &mut self,
        token: &str,
        cross_reference: &str,
        cv2: Option<&str>,
    ) -> Result<usize, Refusal> {
        // §4.3 documents 400/401/500 only: an unknown token is an authentication issue (401)
        let t = match self.usable(token) {
            Ok(t) => t.clone(),
            Err(Refusal(404, _)) => return Err(Refusal(401, "invalid access token".into())),
            Err(r) => return Err(r),
        };
        let Some(token_xref) = t.cross_reference.as_deref() else {
            return Err(Refusal(
                400,
                "crossReference: the access token was not created with a crossReference".into(),
            ));
        };
        if token_xref != cross_reference {
            return Err(Refusal(
                400,
                "crossReference: does not match the access token's crossReference".into(),
            ));
        }
        let Some(&root_i) = self.root_of_xref.get(cross_reference) else {
            return Err(Refusal(
                400,
                "crossReference: unknown cross reference".into(),
            ));
        };
        let root = self.roots[root_i].clone();
        if root.currency != t.currency {
            return Err(Refusal(
                400,
                "currencyCode: differs from the original transaction".into(),
            ));
        }
        // Rules of the money (decided; docs/DECISIONS.md "Connect-E").
        match t.tx_type {
            TxType::Refund => {
                let left = root.captured() - root.refunded;
                if root.captured() == 0 {
                    return Err(Refusal(
                        400,
                        "transactionType: nothing was captured on this cross reference".into(),
                    ));
                }
                if t.amount > left {
                    return Err(Refusal(
                        400,
                        format!("amount: {} exceeds the refundable {}", t.amount, left),
                    ));
                }
            }
            TxType::Collection => {
                if root.tx_type != TxType::Preauth {
                    return Err(Refusal(
                        400,
                        "transactionType: only a PREAUTH can be collected".into(),
                    ));
                }
                if root.voided || root.collected > 0 {
                    return Err(Refusal(
                        400,
                        "transactionType: the pre-authorisation was already collected or voided"
                            .into(),
                    ));
                }
                if t.amount > root.amount {
                    return Err(Refusal(
                        400,
                        format!(
                            "amount: {} exceeds the authorised {}",
                            t.amount, root.amount
                        ),
                    ));
                }
            }
            TxType::Void => {
                let voidable = match root.tx_type {
                    TxType::Preauth => root.collected == 0,
                    TxType::Sale => root.refunded == 0,
                    _ => false,
                };
                if root.voided || !voidable {
                    return Err(Refusal(
                        400,
                        "transactionType: the transaction can no longer be voided".into(),
                    ));
                }
            }
            TxType::Sale | TxType::Preauth => {
                if let Some(c) = cv2 {
                    if !(3..=4).contains(&c.len()) || !c.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(Refusal(400, "cv2: must be 3 or 4 digits".into()));
                    }
                }
            }
        }
        let forced = self.forced();
        let status = match forced {
            Some(code) => code,
            None if matches!(t.tx_type, TxType::Sale | TxType::Preauth)
                && self.order_already_paid(&t.order_id, token) =>
            {
                20
            }
            None if matches!(t.tx_type, TxType::Sale | TxType::Preauth)
                && root.card.behaviour == Behaviour::Decline =>
            {
                5
            }
            None => 0,
        };
        let now = self.now();
        let mut cross_reference_out = None;
        let mut auth_code = None;
        if status == 0 {
            let auth = digits(6);
            let xref = digits(24);
            let target = match t.tx_type {
                TxType::Sale | TxType::Preauth => {
                    self.roots.push(Root {
                        tx_type: t.tx_type,
                        amount: t.amount,
                        currency: t.currency.clone(),
                        collected: 0,
                        refunded: 0,
                        voided: false,
                        card: root.card.clone(),
                    });
                    self.roots.len() - 1
                }
                _ => root_i,
            };
            match t.tx_type {
                TxType::Refund => self.roots[root_i].refunded += t.amount,
                TxType::Collection => self.roots[root_i].collected += t.amount,
                TxType::Void => self.roots[root_i].voided = true,
                _ => {}
            }
            self.root_of_xref.insert(xref.clone(), target);
            cross_reference_out = Some(xref);
            auth_code = Some(auth);
        }
        if let Some(tok) = self.tokens.get_mut(token) {
            tok.used = TokenUse::CrossReference;
        }
        let message = match &auth_code {
            Some(a) => format!("AuthCode: {a}"),
            None => message_of(status).to_string(),
        };
        self.xrefs.push(CrossRefPayment {
            token: token.to_string(),
            tx_type: t.tx_type,
            amount: t.amount,
            order_id: t.order_id.clone(),
            root: root_i,
            status,
            auth_code,
            message,
            cross_reference: cross_reference_out,
            cv2: cv2.is_some(),
            at: now,
        });
        let x = self.xrefs.len() - 1;
        self.xref_of_token.insert(token.to_string(), x);
        Ok(x)
    }

    /// `{statusCode, authCode, message}` of a cross-reference payment or resume.
    pub(crate) fn status_json(status: i64, auth_code: &Option<String>, message: &str) -> Value {
        let mut v = json!({"statusCode": status, "message": message});
        if let Some(a) = auth_code {
            v["authCode"] = json!(a);
        }
        v
    }

    /// `GET /v1/payments/{token}` (decided: an unused or unknown token is a 404).
    pub(crate) fn payment_info(&mut self, token: &str) -> Option<Value> {
        self.refresh();
        let meta = self.tokens.get(token)?.meta_data.clone();
        // (when, status, message, card — hidden while the cardholder is in 3-D Secure —, auth
        // code, cross reference) of the web or cross-reference payment of this token
        let (at, status, message, card, auth, xref) =
            if let Some(&i) = self.payment_of_token.get(token) {
                let p = &self.payments[i];
                let card = (p.status != 3 || p.cv2_only).then_some(&p.card);
                (
                    p.at,
                    p.status,
                    &p.message,
                    card,
                    &p.auth_code,
                    &p.cross_reference,
                )
            } else {
                let p = &self.xrefs[*self.xref_of_token.get(token)?];
                let card = Some(&self.roots[p.root].card);
                (
                    p.at,
                    p.status,
                    &p.message,
                    card,
                    &p.auth_code,
                    &p.cross_reference,
                )
            };
        let mut v = json!({
            "transactionDateTime": fmt_go_time(at),
            "statusCode": status,
            "message": message,
        });
        if let Some(card) = card {
            v["cardNumber"] = json!(card.masked);
            v["cardType"] = json!(card.scheme);
            v["expiryDate"] = json!(card.expiry);
            v["cardName"] = json!(card.name);
        }
        if let Some(a) = auth {
            v["authCode"] = json!(a);
        }
        if let Some(x) = xref {
            v["crossReference"] = json!(x);
        }
        if let Some(m) = meta {
            v["metaData"] = m;
        }
        Some(v)
    }

    /// The ground truth for `GET /_sandbox/connect-e/state`.
    pub(crate) fn inspect(&mut self) -> Value {
        self.refresh();
        let now = self.now();
        let tokens: Vec<Value> = self
            .token_order
            .iter()
            .filter_map(|id| self.tokens.get(id))
            .map(|t| {
                json!({
                    "id": t.id,
                    "transactionType": t.tx_type.name(),
                    "amount": t.amount.to_string(),
                    "currencyCode": t.currency,
                    "orderId": t.order_id,
                    "merchantTransactionId": t.merchant_transaction_id,
                    "crossReference": t.cross_reference,
                    "waitPreExecute": t.wait_pre_execute,
                    "customerId": t.customer_id,
                    "webHookUrl": t.webhook_url,
                    "moto": t.moto,
                    "createdAt": t.created.unix_timestamp(),
                    "expiresAt": t.expires.unix_timestamp(),
                    "expired": t.used == TokenUse::Unused && now > t.expires,
                    "use": match t.used {
                        TokenUse::Unused => "unused",
                        TokenUse::Revoked => "revoked",
                        TokenUse::Web => "web",
                        TokenUse::CrossReference => "cross-reference",
                    },
                })
            })
            .collect();
        let payments: Vec<Value> = self
            .payments
            .iter()
            .map(|p| {
                let t = self.tokens.get(&p.token);
                json!({
                    "token": p.token,
                    "transactionType": t.map(|t| t.tx_type.name()),
                    "orderId": t.map(|t| t.order_id.clone()),
                    "amount": t.map(|t| t.amount),
                    "statusCode": p.status,
                    "statusHistory": p.history.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
                    "cardNumber": p.card.masked,
                    "cardType": p.card.scheme,
                    "cv2Only": p.cv2_only,
                    "authCode": p.auth_code,
                    "crossReference": p.cross_reference,
                    "revokedDuring": p.revoked_during,
                })
            })
            .collect();
        let xrefs: Vec<Value> = self
            .xrefs
            .iter()
            .map(|x| {
                json!({
                    "token": x.token,
                    "transactionType": x.tx_type.name(),
                    "amount": x.amount,
                    "orderId": x.order_id,
                    "statusCode": x.status,
                    "authCode": x.auth_code,
                    "crossReference": x.cross_reference,
                    "cv2": x.cv2,
                })
            })
            .collect();
        let revokes: Vec<Value> = self
            .revokes
            .iter()
            .map(|r| json!({"token": r.token, "outcome": r.outcome, "at": r.at.unix_timestamp()}))
            .collect();
        let webhooks: Vec<Value> = self
            .webhooks
            .iter()
            .map(|w| json!({"token": w.token, "attempt": w.attempt, "delaySeconds": w.delay_seconds, "result": w.result, "delivered": w.delivered}))
            .collect();
        json!({
            "now": now.unix_timestamp(),
            "clockOffsetSeconds": self.clock_offset.whole_seconds(),
            "tokens": tokens,
            "payments": payments,
            "crossReferencePayments": xrefs,
            "revokes": revokes,
            "webhooks": webhooks,
            "calls": self.calls,
        })
    }

    /// Whether the token's transaction is final now (webhook time).
    pub(crate) fn final_status(&self, token: &str) -> Option<i64> {
        if let Some(&i) = self.payment_of_token.get(token) {
            return Some(self.payments[i].status).filter(|s| is_final(*s));
        }
        self.xref_of_token.get(token).map(|&x| self.xrefs[x].status)
    }
}

fn message_of(status: i64) -> &'static str {
    match status {
        4 => "Referred: call the card issuer",
        5 => "Card declined",
        20 => "Duplicate transaction",
        30 => "Transaction failed",
        90 => "Revoked",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_never_keep_the_middle() {
        let c = CardFacts::from_number("4456530000001096", "12/30", "A N Other");
        assert_eq!(c.masked, "445653******1096");
        assert_eq!(c.behaviour, Behaviour::ThreeDs);
        assert_eq!(
            CardFacts::from_number("4000000000000002", "12/30", "x").behaviour,
            Behaviour::Decline
        );
    }

    #[test]
    fn go_time() {
        let t = time::macros::datetime!(2019-07-16 07:39:29 UTC);
        assert_eq!(fmt_go_time(t), "2019-07-16 07:39:29 +0000 UTC");
    }
}
