//! The FlexFactor simulator's world: credentials, access tokens, the card vault, orders
//! (rescues) and their refunds, webhook attempts, counters, the clock and settings.
//!
//! Outcomes are deterministic by test card (docs/DECISIONS.md "FlexFactor"; crates/sandbox
//! README): the card a vault token stands for decides what `/evaluate` answers.

use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use time::{Duration, OffsetDateTime};

/// The sandbox merchant's AppKey.
pub const APP_KEY: &str = "sandbox-flexfactor-app-key";
/// The sandbox merchant's AppSecret.
pub const APP_SECRET: &str = "sandbox-flexfactor-app-secret";
/// The sandbox merchant's `mid`.
pub const MID: &str = "5a1f0c3e-7f7e-4b57-9d3c-0f1e2d3c4b5a";
/// The sandbox merchant's `siteId`.
pub const SITE_ID: &str = "9b8a7c6d-1e2f-4a3b-8c7d-6e5f4a3b2c1d";
/// The sandbox merchant's tokenization "Environment" key.
pub const TOKENIZE_ENVIRONMENT: &str = "sandbox-tokenize-environment";

/// What `/evaluate` does with a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// `APPROVED`: rescued at once (order Completed, 7).
    Approve,
    /// `CHALLENGE`: needs the UI widget (order Onhold, 1; never settles by itself).
    Challenge,
    /// `DECLINED`: not rescued (order Cancelled, 2).
    Decline,
    /// `SUBMITTED`, settling Completed after `settleMs`.
    SubmitApprove,
    /// `SUBMITTED`, settling Cancelled after `settleMs`.
    SubmitDecline,
}

/// A test card and its outcome.
pub(crate) struct TestCard {
    /// The PAN.
    pub number: &'static str,
    /// Its outcome.
    pub plan: Plan,
}

/// The test cards; any other number is `DECLINED`. The first three follow the outcomes
/// ActiveMerchant's remote tests saw in FlexFactor's sandbox (§12).
pub(crate) const TEST_CARDS: [TestCard; 5] = [
    TestCard {
        number: "4000002760003184",
        plan: Plan::Approve,
    },
    TestCard {
        number: "4111111111111111",
        plan: Plan::Challenge,
    },
    TestCard {
        number: "4000300011112220",
        plan: Plan::Decline,
    },
    TestCard {
        number: "4000000000000077",
        plan: Plan::SubmitApprove,
    },
    TestCard {
        number: "4000000000000085",
        plan: Plan::SubmitDecline,
    },
];

/// The plan for a card number (digits only).
pub(crate) fn plan_for(number: &str) -> Plan {
    TEST_CARDS
        .iter()
        .find(|c| c.number == number)
        .map_or(Plan::Decline, |c| c.plan)
}

/// A vaulted card: what the vault keeps of it. The full number is not kept, only its outcome.
#[derive(Debug, Clone)]
pub(crate) struct Vaulted {
    /// What `/evaluate` will answer for it.
    pub plan: Plan,
    /// First eight digits, as the live transcript returned them.
    pub first_digits: String,
    /// Last four digits.
    pub last4: String,
}

/// Names and codes of §7.1.
pub(crate) fn status_name(code: i64) -> &'static str {
    match code {
        0 => "Draft",
        1 => "Onhold",
        2 => "Cancelled",
        3 => "Problem",
        4 => "Processing",
        5 => "Capturerequired",
        6 => "Returned",
        7 => "Completed",
        _ => "Unknown",
    }
}

/// Order status codes used here.
pub(crate) mod status {
    /// Onhold (a CHALLENGE waits for the widget).
    pub const ONHOLD: i64 = 1;
    /// Cancelled: declined by Flex.
    pub const CANCELLED: i64 = 2;
    /// Processing: SUBMITTED, decision pending.
    pub const PROCESSING: i64 = 4;
    /// Returned: refunded in full.
    pub const RETURNED: i64 = 6;
    /// Completed: approved and charged.
    pub const COMPLETED: i64 = 7;
}

/// One refund performed.
#[derive(Debug, Clone)]
pub(crate) struct Refund {
    /// Minor units.
    pub amount: i64,
    /// `amountToRefund` as sent (the repeat check compares it).
    pub amount_text: String,
    /// `refundMessage` as sent.
    pub message: Option<String>,
    /// When.
    pub at: OffsetDateTime,
}

/// An order FlexFactor opened for an evaluated decline.
#[derive(Debug, Clone)]
pub(crate) struct Order {
    /// `orderSessionKey`.
    pub id: String,
    /// The merchant's `orderId`.
    pub merchant_order_id: String,
    /// The `idempotencyKey` it was opened with.
    pub idempotency_key: String,
    /// Minor units evaluated.
    pub amount: i64,
    /// ISO code.
    pub currency: String,
    /// §7.1 code.
    pub status: i64,
    /// What the card's plan is (decides how a SUBMITTED order settles).
    pub plan: Plan,
    /// Minor units charged by the rescue (0 until Completed).
    pub rescued: i64,
    /// Refunds performed.
    pub refunds: Vec<Refund>,
    /// `/evaluate` calls that named this order (1 + repeats).
    pub evaluate_calls: u32,
    /// When it was opened.
    pub placed: OffsetDateTime,
}

impl Order {
    /// Minor units refunded so far.
    pub(crate) fn refunded(&self) -> i64 {
        self.refunds.iter().map(|r| r.amount).sum()
    }

    /// The `/evaluate` status its current state answers (for repeats).
    pub(crate) fn evaluate_status(&self) -> &'static str {
        match self.status {
            status::COMPLETED | status::RETURNED => "APPROVED",
            status::CANCELLED => "DECLINED",
            status::ONHOLD => "CHALLENGE",
            _ => "SUBMITTED",
        }
    }

    /// The `/orders/{id}` body (§7.1; personal data fields present but empty).
    pub(crate) fn json(&self) -> Value {
        json!({
            "id": self.id,
            "correlationId": self.merchant_order_id,
            "referenceNumber": self.idempotency_key,
            "status": self.status,
            "statusName": status_name(self.status),
            "orderPlacedDate": rfc3339(self.placed),
            "expiryDate": null,
            "billingAddress": null,
            "shippingAddress": null,
            "firstName": "", "lastName": "", "email": "", "phone": "", "secondaryEmail": "",
            "currencyCode": self.currency,
            "currencySymbol": symbol(&self.currency),
            "success": true, "result": null, "statusCode": null, "errors": [], "customProperties": {},
        })
    }
}

fn symbol(code: &str) -> &'static str {
    match code {
        "USD" | "CAD" => "$",
        "EUR" => "€",
        "GBP" => "£",
        _ => "",
    }
}

/// RFC 3339 text of a time.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// One webhook delivery attempt.
#[derive(Debug, Clone)]
pub(crate) struct WebhookAttempt {
    /// `order.completed`, …
    pub event: String,
    /// Which order.
    pub order: String,
    /// 1, 2, …
    pub attempt: u32,
    /// `HTTP 200` or the error.
    pub result: String,
    /// True for a 2xx answer.
    pub delivered: bool,
}

/// Settings changed through the control API.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Where webhooks go (the portal's "Developers > Webhooks"); none by default.
    pub webhook_url: Option<String>,
    /// Divides webhook retry delays, so tests see a schedule in seconds.
    pub webhook_time_scale: f64,
    /// Real milliseconds before a SUBMITTED order settles.
    pub settle_ms: u64,
    /// Access-token lifetime in seconds (documented: 600).
    pub token_lifetime_secs: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            webhook_url: None,
            webhook_time_scale: 1.0,
            settle_ms: 5_000,
            token_lifetime_secs: 600,
        }
    }
}

/// Everything the simulator knows.
#[derive(Debug, Default)]
pub(crate) struct World {
    /// Access tokens and when each expires (simulated clock).
    pub tokens: HashMap<String, OffsetDateTime>,
    /// Vault token → card facts.
    pub vault: HashMap<String, Vaulted>,
    /// Orders by `orderSessionKey`, in creation order.
    pub orders: Vec<Order>,
    /// `idempotencyKey` → `orderSessionKey`.
    pub by_key: HashMap<String, String>,
    /// Calls by kind (`token`, `evaluate`, `evaluate.repeat`, `refund.repeat`, `unauthorized`, …).
    pub counts: BTreeMap<String, u64>,
    /// Webhook attempts.
    pub webhooks: Vec<WebhookAttempt>,
    /// Settings.
    pub settings: Settings,
    /// Added to the real clock (token expiry tests).
    pub clock_offset: Duration,
}

impl World {
    /// The simulated now.
    pub(crate) fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.clock_offset
    }

    /// Counts a call.
    pub(crate) fn count(&mut self, kind: &str) {
        *self.counts.entry(kind.to_string()).or_default() += 1;
    }

    /// An order by id.
    pub(crate) fn order_mut(&mut self, id: &str) -> Option<&mut Order> {
        self.orders.iter_mut().find(|o| o.id == id)
    }

    /// True when `token` is a live access token.
    pub(crate) fn token_valid(&self, token: &str) -> bool {
        self.tokens.get(token).is_some_and(|exp| *exp > self.now())
    }

    /// The ground truth for the control API.
    pub(crate) fn inspect(&self) -> Value {
        let orders: Vec<Value> = self
            .orders
            .iter()
            .map(|o| {
                json!({
                    "orderSessionKey": o.id,
                    "orderId": o.merchant_order_id,
                    "idempotencyKey": o.idempotency_key,
                    "amount": o.amount,
                    "currency": o.currency,
                    "status": o.status,
                    "statusName": status_name(o.status),
                    "rescued": o.rescued,
                    "refunded": o.refunded(),
                    "evaluateCalls": o.evaluate_calls,
                    "refunds": o.refunds.iter().map(|r| json!({
                        "amount": r.amount, "message": r.message, "at": rfc3339(r.at),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "orders": orders,
            "rescues": self.orders.iter().filter(|o| o.rescued > 0).count(),
            "refunds": self.orders.iter().map(|o| o.refunds.len()).sum::<usize>(),
            "vaulted": self.vault.len(),
            "tokensIssued": self.counts.get("token.issued").copied().unwrap_or(0),
            "counts": self.counts,
            "webhooks": self.webhooks.iter().map(|w| json!({
                "event": w.event, "orderSessionKey": w.order, "attempt": w.attempt,
                "result": w.result, "delivered": w.delivered,
            })).collect::<Vec<_>>(),
            "clockOffsetSeconds": self.clock_offset.whole_seconds(),
        })
    }
}
