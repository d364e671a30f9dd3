//! The sandbox's in-memory world: one merchant, its devices and transactions, and every rule that
//! moves a transaction from one status to the next.
//!
//! Status changes go through [`State::set_status`], which asks `till_core::Status::transition`
//! whether the move is legal — the same rule the agent applies to what it observes — and queues
//! the new entity for Socket.IO in order. The JSON the API answers is built here by
//! [`State::entity`], independently of any client crate, from the fact sheet's §7.1.

use crate::ids;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use till_core::money::minor_to_major_string;
use till_core::{Currency, Minor, Money, Product, Status, Transition};
use time::OffsetDateTime;
use tokio::sync::mpsc::UnboundedSender;

/// The sandbox merchant's API key (location and merchant key at once).
pub const SANDBOX_API_KEY: &str = "sandbox-api-key";
/// The sandbox merchant's only branch.
pub(crate) const BRANCH_NUMBER: &str = "1";
pub(crate) const BRANCH_ID: &str = "64b7f0c2a1d3e4f5a6b7c8d9";
pub(crate) const BUSINESS_NAME: &str = "Sandbox Coffee";
pub(crate) const BUSINESS_ID: &str = "100001";
pub(crate) const MERCHANT_UID: &str = "5d0c6f7e-1a2b-4c3d-8e9f-0a1b2c3d4e5f";
pub(crate) const BRANCH_UID: &str = "9e8d7c6b-5a4f-4e3d-9c2b-1a0f9e8d7c6b";
pub(crate) const PROVIDER: &str = "Cardknox Sandbox";
/// The currencies SensePass documents (till-core also knows GBP, which SensePass does not take).
pub(crate) const SENSEPASS_CURRENCIES: [Currency; 5] =
    [Currency::Usd, Currency::Cad, Currency::Ils, Currency::Eur, Currency::Rub];
/// Expiry the sandbox pretends the consumer typed for test cards paid on the page.
pub(crate) const TEST_CARD_EXPIRATION: &str = "12/30";

/// RFC 3339 UTC with milliseconds, e.g. `2024-05-01T12:00:00.123Z`.
pub(crate) fn fmt_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// What a transaction asks of the consumer (`methodType`). The numeric codes are the sandbox's
/// answer to an ambiguous spec (see docs/DECISIONS.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Payment,
    Tokenize,
    Authorize,
    Credit,
    CaptureTokenize,
    Subscription,
}

impl Method {
    pub(crate) fn parse(text: &str) -> Option<Method> {
        match text.trim().to_ascii_lowercase().as_str() {
            "payment" | "regular" => Some(Method::Payment),
            "tokenize" => Some(Method::Tokenize),
            "authorize" => Some(Method::Authorize),
            "credit" => Some(Method::Credit),
            "capture+tokenize" => Some(Method::CaptureTokenize),
            "subscription" => Some(Method::Subscription),
            _ => None,
        }
    }

    /// The method of a numeric code (the inverse of [`Method::code`]).
    pub(crate) fn from_code(code: u8) -> Option<Method> {
        [
            Method::Payment,
            Method::Tokenize,
            Method::Authorize,
            Method::Credit,
            Method::CaptureTokenize,
            Method::Subscription,
        ]
        .into_iter()
        .find(|m| m.code() == code)
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            Method::Payment => 0,
            Method::Tokenize => 1,
            Method::Authorize => 2,
            Method::Credit => 3,
            Method::CaptureTokenize => 4,
            Method::Subscription => 5,
        }
    }

    /// `paymentDetails.type` for methods that yield a token.
    pub(crate) fn details_type(self) -> Option<&'static str> {
        match self {
            Method::Tokenize => Some("Tokenize"),
            Method::CaptureTokenize => Some("Capture+Tokenize"),
            Method::Authorize => Some("Authorize"),
            _ => None,
        }
    }

    fn yields_token(self) -> bool {
        matches!(
            self,
            Method::Tokenize | Method::CaptureTokenize | Method::Authorize | Method::Subscription
        )
    }
}

/// What a test card does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CardOutcome {
    Approve,
    Decline,
    ThreeDs,
}

/// A sandbox test card.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TestCard {
    pub number: &'static str,
    pub brand: &'static str,
    pub outcome: CardOutcome,
    pub label: &'static str,
}

/// The test cards of docs/DECISIONS.md.
pub(crate) const TEST_CARDS: [TestCard; 4] = [
    TestCard {
        number: "5200000000000056",
        brand: "MasterCard",
        outcome: CardOutcome::Approve,
        label: "Mastercard — approves",
    },
    TestCard {
        number: "4111111111111111",
        brand: "Visa",
        outcome: CardOutcome::Approve,
        label: "Visa — approves",
    },
    TestCard {
        number: "4456530000001013",
        brand: "Visa",
        outcome: CardOutcome::Decline,
        label: "Visa — declined by the issuer",
    },
    TestCard {
        number: "4456530000001096",
        brand: "Visa",
        outcome: CardOutcome::ThreeDs,
        label: "Visa — 3-D Secure challenge, then approves",
    },
];

/// Finds a test card by number (spaces and dashes ignored).
pub(crate) fn find_card(number: &str) -> Option<TestCard> {
    let digits: String = number.chars().filter(|c| c.is_ascii_digit()).collect();
    TEST_CARDS.iter().copied().find(|c| c.number == digits)
}

/// What the sandbox keeps of a card: never the full number.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct CardInfo {
    pub mask: String,
    pub last4: String,
    pub brand: String,
    pub expiration: String,
}

impl CardInfo {
    pub(crate) fn new(card: &TestCard, expiration: &str) -> CardInfo {
        let n = card.number;
        let stars = "*".repeat(n.len().saturating_sub(10));
        CardInfo {
            mask: format!("{}{}{}", &n[..6], stars, &n[n.len() - 4..]),
            last4: n[n.len() - 4..].to_string(),
            brand: card.brand.to_string(),
            expiration: expiration.to_string(),
        }
    }
}

/// A register in the SensePass network.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Device {
    pub id: String,
    pub name: String,
    pub pin_code: Option<String>,
    pub client_box: String,
    pub created: OffsetDateTime,
    pub emv_terminal_type: Option<String>,
}

impl Device {
    /// The Device model (§7.13).
    pub(crate) fn json(&self, public_url: &str) -> Value {
        let mut v = json!({
            "name": self.name,
            "deviceAliasKey": self.id,
            "merchantUID": MERCHANT_UID,
            "branchUID": BRANCH_UID,
            "clientBoxes": [format!("{public_url}/{}", self.client_box)],
        });
        if let Some(pin) = &self.pin_code {
            v["pinCode"] = json!(pin);
        }
        if let Some(emv) = &self.emv_terminal_type {
            v["emvTerminalType"] = json!(emv);
        }
        v
    }
}

/// A subscription created by a `methodType: subscription` init.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Subscription {
    pub id: String,
    pub created: OffsetDateTime,
    pub updated: OffsetDateTime,
    pub expires: Option<String>,
    pub start_date: String,
    pub interval: String,
    pub status: String,
    pub customer: Value,
}

impl Subscription {
    pub(crate) fn json(&self) -> Value {
        json!({
            "id": self.id,
            "active": self.status == "active",
            "created": fmt_time(self.created),
            "updated": fmt_time(self.updated),
            "expires": self.expires,
            "start_date": self.start_date,
            "interval": self.interval,
            "status": self.status,
            "customer": self.customer,
        })
    }
}

/// A token minted by a tokenizing payment.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct TokenInfo {
    pub card: CardInfo,
    pub currency: Currency,
}

/// One approved refund.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct RefundRecord {
    pub amount: Minor,
    pub at: OffsetDateTime,
    pub confirmation: String,
}

/// One upload to a transaction's `posReceiptsEndpoint`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct ReceiptUpload {
    pub at: OffsetDateTime,
    pub content_type: Option<String>,
    pub bytes: usize,
}

/// A transaction (payment request).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Txn {
    pub number: String,
    pub device_id: Option<String>,
    pub pos: String,
    pub date: OffsetDateTime,
    pub timeout_secs: i64,
    pub timeout_date: OffsetDateTime,
    pub amount: Minor,
    pub currency: Currency,
    #[serde(with = "crate::persist::status_code")]
    pub status: Status,
    #[serde(with = "crate::persist::method_code")]
    pub method: Method,
    pub max_installments: i64,
    pub reason: Option<String>,
    pub pos_data: Option<Value>,
    pub products: Option<(Value, Vec<Product>)>,
    pub metadata: Option<Value>,
    pub invoice: Option<Value>,
    pub receipt: Option<Value>,
    pub pos_receipts_endpoint: Option<String>,
    pub receipt_uploads: Vec<ReceiptUpload>,
    pub client_phone: Option<String>,
    pub client_email: Option<String>,
    pub client_name: Option<String>,
    pub callback_url: Option<String>,
    pub ready_for_payment: bool,
    pub confirmations: Vec<Value>,
    pub refunds: Vec<RefundRecord>,
    pub approved_at: Option<OffsetDateTime>,
    pub commit_enabled: bool,
    pub commit_count: u32,
    pub first_commit_at: Option<OffsetDateTime>,
    pub token: Option<String>,
    pub subscription_id: Option<String>,
    #[serde(with = "crate::persist::opt_card")]
    pub three_ds_pending: Option<TestCard>,
    pub card: Option<CardInfo>,
    #[serde(with = "crate::persist::history")]
    pub history: Vec<(Status, OffsetDateTime)>,
    /// Why the payment was declined or failed (`errorCode`, `errorMessage` in the entity), so the
    /// cashier can be told something; `None` while it has not ended that way.
    pub decline: Option<(i64, String)>,
}

impl Txn {
    pub(crate) fn refunded(&self) -> Minor {
        Minor(self.refunds.iter().map(|r| r.amount.0).sum())
    }

    fn money(&self, m: Minor) -> String {
        minor_to_major_string(m, self.currency)
    }
}

/// The reason a declining test card gives (ISO 8583 response code 05).
pub(crate) const CARD_DECLINE: (i64, &str) = (5, "Do not honour: declined by the card issuer");
/// The reason of a decline forced through the control API.
pub(crate) const CONTROL_DECLINE: (i64, &str) = (5, "Do not honour: declined by the card issuer (sandbox control)");
/// The reason of a failure forced through the control API.
pub(crate) const CONTROL_FAILURE: (i64, &str) = (96, "System malfunction at the processor (sandbox control)");

/// Knobs tests may turn (control API `settings`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Settings {
    /// Smallest accepted `timeOut` (DECISIONS: 10 seconds; tests may lower it).
    pub min_timeout_secs: i64,
    /// `paymentCommit.secondsToCommit`.
    pub seconds_to_commit: i64,
    /// How long `customer-input` waits for answers.
    pub customer_input_wait_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { min_timeout_secs: 10, seconds_to_commit: 7200, customer_input_wait_ms: 60_000 }
    }
}

/// A Socket.IO emission queued in order.
#[derive(Debug)]
pub(crate) struct Emit {
    pub device: String,
    pub payload: Value,
}

/// Why a flow step was refused.
#[derive(Debug)]
pub(crate) enum FlowError {
    NotFound,
    Conflict(String),
}

/// Where a consumer payment ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PayStep {
    Approved,
    Declined,
    Challenge,
}

/// Result of a cancel request.
#[derive(Debug)]
pub(crate) enum CancelOutcome {
    Cancelled,
    ConsumerActivity,
    NotPending,
}

/// The whole simulated SensePass.
pub(crate) struct State {
    pub public_url: String,
    pub txns: HashMap<String, Txn>,
    pub order: Vec<String>,
    pub devices: HashMap<String, Device>,
    pub device_order: Vec<String>,
    pub pins: HashMap<String, String>,
    pub subscriptions: HashMap<String, Subscription>,
    pub tokens: HashMap<String, TokenInfo>,
    pub calls: BTreeMap<String, u64>,
    pub settings: Settings,
    emitter: UnboundedSender<Emit>,
}

impl State {
    pub(crate) fn new(public_url: String, emitter: UnboundedSender<Emit>) -> State {
        State {
            public_url,
            txns: HashMap::new(),
            order: Vec::new(),
            devices: HashMap::new(),
            device_order: Vec::new(),
            pins: HashMap::new(),
            subscriptions: HashMap::new(),
            tokens: HashMap::new(),
            calls: BTreeMap::new(),
            settings: Settings::default(),
            emitter,
        }
    }

    /// Forgets everything (control `reset`).
    pub(crate) fn clear(&mut self) {
        let fresh = State::new(self.public_url.clone(), self.emitter.clone());
        *self = fresh;
    }

    /// Counts a call to an API endpoint (for the inspection endpoint).
    pub(crate) fn count(&mut self, kind: &str) {
        *self.calls.entry(kind.to_string()).or_insert(0) += 1;
    }

    /// Creates a device.
    pub(crate) fn create_device(
        &mut self,
        name: String,
        pin_code: Option<String>,
        emv: Option<String>,
    ) -> Device {
        let device = Device {
            id: ids::device_id(),
            name,
            pin_code: pin_code.clone(),
            client_box: format!("c_{}", ids::upper_alnum(32)),
            created: OffsetDateTime::now_utc(),
            emv_terminal_type: emv,
        };
        if let Some(pin) = pin_code {
            self.pins.insert(pin, device.id.clone());
        }
        self.device_order.push(device.id.clone());
        self.devices.insert(device.id.clone(), device.clone());
        device
    }

    /// Adds a new transaction, announces it and returns its number.
    pub(crate) fn insert(&mut self, txn: Txn) -> String {
        let n = txn.number.clone();
        self.order.push(n.clone());
        self.txns.insert(n.clone(), txn);
        self.emit(&n, None);
        n
    }

    /// Queues the transaction's entity for its device's Socket.IO room. `override_status`
    /// rewrites `status`/`statusName` in the payload only (control `emit`).
    pub(crate) fn emit(&self, n: &str, override_status: Option<Status>) -> bool {
        let Some(txn) = self.txns.get(n) else { return false };
        let Some(device) = txn.device_id.clone() else { return false };
        let mut payload = self.entity(txn);
        if let Some(s) = override_status {
            payload["status"] = json!(s.code());
            payload["statusName"] = json!(s.display_name());
        }
        self.emitter.send(Emit { device, payload }).is_ok()
    }

    /// Moves a transaction to `next` if `till_core` allows it, and announces it.
    pub(crate) fn set_status(&mut self, n: &str, next: Status) -> Result<(), FlowError> {
        let txn = self.txns.get_mut(n).ok_or(FlowError::NotFound)?;
        match txn.status.transition(next) {
            Transition::Advance => {
                txn.status = next;
                txn.history.push((next, OffsetDateTime::now_utc()));
                self.emit(n, None);
                Ok(())
            }
            Transition::Same => Ok(()),
            Transition::Ignore => Err(FlowError::Conflict(format!(
                "transaction is {} and cannot move to {}",
                txn.status.display_name(),
                next.display_name()
            ))),
        }
    }

    fn get(&self, n: &str) -> Result<&Txn, FlowError> {
        self.txns.get(n).ok_or(FlowError::NotFound)
    }

    fn get_mut(&mut self, n: &str) -> Result<&mut Txn, FlowError> {
        self.txns.get_mut(n).ok_or(FlowError::NotFound)
    }

    /// A consumer opened the payment page or tapped the tag.
    pub(crate) fn tap(&mut self, n: &str) -> Result<(), FlowError> {
        let status = self.get(n)?.status;
        match status {
            Status::Initialize | Status::WaitingForTap | Status::UserDeclined => {
                self.set_status(n, Status::TapDetected)
            }
            Status::TapDetected => Ok(()),
            other => Err(FlowError::Conflict(format!(
                "transaction is {} and cannot be tapped",
                other.display_name()
            ))),
        }
    }

    /// Refuses payment on a transaction that is final or not ready.
    fn check_payable(&self, n: &str) -> Result<(), FlowError> {
        let txn = self.get(n)?;
        if !txn.status.is_open() {
            return Err(FlowError::Conflict(format!(
                "transaction is {} and can no longer be paid",
                txn.status.display_name()
            )));
        }
        if !txn.ready_for_payment {
            return Err(FlowError::Conflict("transaction is not ready for payment yet".into()));
        }
        Ok(())
    }

    /// The consumer pays with a test card: 1 → 2 → 4 → 5 (or 6). With `auto_3ds` the 3-D Secure
    /// card completes its challenge at once; otherwise the walk stops in 2 awaiting the challenge.
    pub(crate) fn consumer_pay(
        &mut self,
        n: &str,
        card: TestCard,
        auto_3ds: bool,
    ) -> Result<PayStep, FlowError> {
        self.check_payable(n)?;
        let status = self.get(n)?.status;
        if matches!(status, Status::Initialize | Status::WaitingForTap | Status::UserDeclined) {
            self.set_status(n, Status::TapDetected)?;
        }
        if self.get(n)?.status != Status::UserApproved {
            self.set_status(n, Status::UserApproved)?;
        }
        if card.outcome == CardOutcome::ThreeDs && !auto_3ds {
            self.get_mut(n)?.three_ds_pending = Some(card);
            return Ok(PayStep::Challenge);
        }
        self.process_card(n, card, card.outcome == CardOutcome::ThreeDs)
    }

    /// The consumer completed the 3-D Secure challenge on the page.
    pub(crate) fn complete_3ds(&mut self, n: &str) -> Result<PayStep, FlowError> {
        let txn = self.get_mut(n)?;
        let Some(card) = txn.three_ds_pending.take() else {
            return Err(FlowError::Conflict("no 3-D Secure challenge is pending".into()));
        };
        if txn.status != Status::UserApproved {
            return Err(FlowError::Conflict(format!(
                "transaction is {} and can no longer be paid",
                txn.status.display_name()
            )));
        }
        self.process_card(n, card, true)
    }

    fn process_card(&mut self, n: &str, card: TestCard, three_ds: bool) -> Result<PayStep, FlowError> {
        self.set_status(n, Status::ProcessingPayment)?;
        match card.outcome {
            CardOutcome::Decline => {
                self.get_mut(n)?.decline = Some((CARD_DECLINE.0, CARD_DECLINE.1.to_string()));
                self.set_status(n, Status::Declined)?;
                Ok(PayStep::Declined)
            }
            CardOutcome::Approve | CardOutcome::ThreeDs => {
                let info = CardInfo::new(&card, TEST_CARD_EXPIRATION);
                self.approve_with(n, info, three_ds)?;
                Ok(PayStep::Approved)
            }
        }
    }

    /// Records the approval (confirmation, token, commit window) and moves to 5.
    pub(crate) fn approve_with(
        &mut self,
        n: &str,
        card: CardInfo,
        three_ds: bool,
    ) -> Result<(), FlowError> {
        let now = OffsetDateTime::now_utc();
        let public_url = self.public_url.clone();
        let txn = self.get(n)?;
        if txn.status.transition(Status::Approved) != Transition::Advance {
            return Err(FlowError::Conflict(format!(
                "transaction is {} and cannot be approved",
                txn.status.display_name()
            )));
        }
        let money = Money { minor: txn.amount, currency: txn.currency };
        let pos = txn.pos.clone();
        let confirmation = card_confirmation(&card, money, now, three_ds, "Regular", 1, &public_url);
        let method = txn.method;
        let token = if method.yields_token() { Some(ids::token()) } else { None };
        if let Some(t) = &token {
            self.tokens.insert(t.clone(), TokenInfo { card: card.clone(), currency: money.currency });
        }
        let txn = self.get_mut(n)?;
        txn.confirmations.push(confirmation);
        txn.approved_at = Some(now);
        txn.card = Some(card.clone());
        txn.token = token;
        let sub_id = txn.subscription_id.clone();
        if let Some(sub) = sub_id.and_then(|id| self.subscriptions.get_mut(&id)) {
            sub.customer = json!({"cardMask": card.mask, "cardType": card.brand, "pos": pos});
            sub.updated = now;
        }
        self.set_status(n, Status::Approved)
    }

    /// Jumps straight to approved with the default Visa test card (control `approve`).
    pub(crate) fn approve_now(&mut self, n: &str) -> Result<(), FlowError> {
        let card = TEST_CARDS[1];
        self.approve_with(n, CardInfo::new(&card, TEST_CARD_EXPIRATION), false)
    }

    /// The consumer declines on the page (3, not final).
    pub(crate) fn consumer_decline(&mut self, n: &str) -> Result<(), FlowError> {
        let txn = self.get_mut(n)?;
        txn.three_ds_pending = None;
        self.set_status(n, Status::UserDeclined)
    }

    /// Ends a transaction in a final status (declined, failed, timeout) if still open.
    pub(crate) fn finish(&mut self, n: &str, status: Status) -> Result<(), FlowError> {
        if let Ok(txn) = self.get_mut(n) {
            txn.three_ds_pending = None;
            let reason = match status {
                Status::Declined => Some(CONTROL_DECLINE),
                Status::Failed => Some(CONTROL_FAILURE),
                _ => None,
            };
            if txn.status.is_open() && txn.decline.is_none() {
                txn.decline = reason.map(|(c, m)| (c, m.to_string()));
            }
        }
        self.set_status(n, status)
    }

    /// The background timer fired: status 8 if still open.
    pub(crate) fn expire_if_open(&mut self, n: &str) {
        let open = self.txns.get(n).map(|t| t.status.is_open()).unwrap_or(false);
        if open {
            let _ = self.finish(n, Status::Timeout);
        }
    }

    /// Cancel per DECISIONS: 0, 1, 3, 10 → 9; 2, 4 → consumer activity; else not pending.
    pub(crate) fn cancel(&mut self, n: &str) -> Result<CancelOutcome, FlowError> {
        let status = self.get(n)?.status;
        match status {
            Status::Initialize | Status::TapDetected | Status::UserDeclined | Status::WaitingForTap => {
                self.finish(n, Status::Cancelled)?;
                Ok(CancelOutcome::Cancelled)
            }
            Status::UserApproved | Status::ProcessingPayment => Ok(CancelOutcome::ConsumerActivity),
            _ => Ok(CancelOutcome::NotPending),
        }
    }

    /// The device's most recent still-open transaction.
    pub(crate) fn latest_pending(&self, device: &str) -> Option<String> {
        self.order
            .iter()
            .rev()
            .filter_map(|n| self.txns.get(n))
            .find(|t| t.device_id.as_deref() == Some(device) && t.status.is_open())
            .map(|t| t.number.clone())
    }

    /// Performs a refund of `amount` (already checked against the remaining amount). Emits 12,
    /// then 13 or 11. Returns the refund confirmation.
    pub(crate) fn refund(&mut self, n: &str, amount: Minor) -> Result<Value, FlowError> {
        let now = OffsetDateTime::now_utc();
        let public_url = self.public_url.clone();
        let txn = self.get(n)?;
        let remaining = txn.amount.0 - txn.refunded().0;
        if !matches!(txn.status, Status::Approved | Status::PartiallyRefunded) {
            return Err(FlowError::Conflict(format!(
                "transaction is {} and cannot be refunded",
                txn.status.display_name()
            )));
        }
        let full = amount.0 >= remaining;
        let card = txn.card.clone();
        let money = Money { minor: amount, currency: txn.currency };
        self.set_status(n, Status::ProcessingRefund)?;
        let confirmation = match &card {
            Some(card) => card_confirmation(card, money, now, false, "Refund", 1, &public_url),
            None => json!({
                "confirmationNumber": ids::digits(8),
                "paymentType": "Refund",
                "amount": money.to_major_string(),
                "dateApproval": fmt_time(now),
                "approvalDate": fmt_time(now),
                "approvedBy": PROVIDER,
                "providerName": PROVIDER,
            }),
        };
        let code = confirmation["confirmationNumber"].as_str().unwrap_or_default().to_string();
        let txn = self.get_mut(n)?;
        txn.confirmations.push(confirmation.clone());
        txn.refunds.push(RefundRecord { amount, at: now, confirmation: code });
        let next = if full { Status::Refunded } else { Status::PartiallyRefunded };
        self.set_status(n, next)?;
        Ok(confirmation)
    }

    /// Whether the commit window passed without a (timely) commit.
    pub(crate) fn commit_expired(&self, txn: &Txn) -> bool {
        let Some(approved) = txn.approved_at else { return false };
        let deadline = approved + time::Duration::seconds(self.settings.seconds_to_commit);
        match txn.first_commit_at {
            Some(at) => at > deadline,
            None => OffsetDateTime::now_utc() > deadline,
        }
    }

    /// The Transaction entity (§7.1) as the API answers it.
    pub(crate) fn entity(&self, txn: &Txn) -> Value {
        let base = &self.public_url;
        let n = &txn.number;
        let pay = format!("{base}/pay/{n}");
        let mut v = json!({
            "TransactionNumber": n,
            "date": fmt_time(txn.date),
            "amount": txn.money(txn.amount),
            "baseAmount": txn.money(txn.amount),
            "currency": txn.currency.code(),
            "status": txn.status.code(),
            "statusName": txn.status.display_name(),
            "timeoutDate": fmt_time(txn.timeout_date),
            "maxInstallments": txn.max_installments,
            "reason": txn.reason,
            "methodType": txn.method.code(),
            "pos": txn.pos,
            "posData": txn.pos_data,
            "businessId": BUSINESS_ID,
            "businessName": BUSINESS_NAME,
            "businessOwnerPhone": "+1-555-0100",
            "businessCountry": "United States",
            "businessCity": "Springfield",
            "businessState": "IL",
            "businessStreet": "1 Sandbox Way",
            "businessAddress": "1 Sandbox Way, Springfield, IL",
            "businessLocaleName": "en-US",
            "branchNumber": BRANCH_NUMBER,
            "branchId": BRANCH_ID,
            "branch": {"number": BRANCH_NUMBER, "rules": {}},
            "locale": {
                "name": "en-US",
                "currency": txn.currency.code(),
                "timezone": "UTC",
                "timezoneNumber": 0,
                "phoneNumberPrefix": "+1",
                "countryIso": "US",
                "language": "en",
            },
            "readyForPayment": txn.ready_for_payment,
            "transactionPage": {
                "iOSLink": format!("{pay}?platform=ios"),
                "androidLink": format!("{pay}?platform=android"),
                "qrURL": pay,
                "consumerPage": {
                    "regular": pay,
                    "medium": format!("{pay}?viewMode=medium"),
                    "small": format!("{pay}?viewMode=small"),
                },
            },
            "paymentCommit": self.payment_commit(txn),
            "confirmations": txn.confirmations,
        });
        let Some(obj) = v.as_object_mut() else { return v };
        if let Some((code, message)) = &txn.decline {
            obj.insert("errorCode".into(), json!(code));
            obj.insert("errorMessage".into(), json!(message));
        }
        if let Some((echo, products)) = &txn.products {
            obj.insert("products".into(), echo.clone());
            obj.insert("productsSum".into(), products_sum(products, txn.currency));
            let mismatch = Product::cart_total(products).map(|t| t != txn.amount).unwrap_or(true);
            obj.insert("productSumMismatch".into(), json!(mismatch));
        }
        for (key, value) in [
            ("metadata", &txn.metadata),
            ("invoice", &txn.invoice),
            ("receipt", &txn.receipt),
        ] {
            if let Some(value) = value {
                obj.insert(key.into(), value.clone());
            }
        }
        if let Some(endpoint) = &txn.pos_receipts_endpoint {
            obj.insert("receiptPending".into(), json!(txn.receipt_uploads.is_empty()));
            obj.insert("posReceiptsEndpoint".into(), json!(endpoint));
        }
        if txn.client_phone.is_some() {
            obj.insert("SMS".into(), json!("Sent"));
            obj.insert("clientPhoneNumber".into(), json!(txn.client_phone));
        }
        if let Some(email) = &txn.client_email {
            obj.insert("clientEmail".into(), json!(email));
        }
        if let Some(name) = &txn.client_name {
            obj.insert("clientName".into(), json!(name));
        }
        if let Some(url) = &txn.callback_url {
            obj.insert("callbackURL".into(), json!(url));
        }
        if let Some(kind) = txn.method.details_type() {
            let mut details = Map::new();
            details.insert("type".into(), json!(kind));
            if let (Some(token), Some(approved)) = (&txn.token, txn.approved_at) {
                details.insert("paymentMethod".into(), json!("Credit Card"));
                details.insert("created".into(), json!(fmt_time(approved)));
                details.insert("token".into(), json!(token));
            }
            obj.insert("paymentDetails".into(), Value::Object(details));
        } else if let Some(token) = &txn.token {
            obj.insert("paymentDetails".into(), json!({"type": "Subscription", "token": token}));
        }
        if let Some(sub) = txn.subscription_id.as_ref().and_then(|id| self.subscriptions.get(id)) {
            obj.insert("subscription".into(), sub.json());
        }
        v
    }

    fn payment_commit(&self, txn: &Txn) -> Value {
        let seconds = self.settings.seconds_to_commit;
        let link = format!("{}/api/transactions/commitPayment/{}", self.public_url, txn.number);
        match (txn.commit_enabled, txn.approved_at) {
            (true, Some(_)) if txn.commit_count > 0 => json!({
                "messsage": "Payment Committed",
                "isPaymentCommitted": true,
                "secondsToCommit": seconds,
                "commitLink": link,
            }),
            (true, Some(_)) => json!({
                "messsage": format!("Please Commit this payment in {seconds} seconds"),
                "isPaymentCommitted": false,
                "secondsToCommit": seconds,
                "commitLink": link,
            }),
            _ => json!({"messsage": "Payment commit is enabled for this transaction"}),
        }
    }

    /// The entity plus the sandbox's own ground truth (control `state`).
    pub(crate) fn inspect(&self, txn: &Txn) -> Value {
        let mut v = self.entity(txn);
        let order_id = txn.pos_data.as_ref().and_then(|p| p.get("orderId")).cloned();
        let created_count = match &order_id {
            Some(id) => self
                .txns
                .values()
                .filter(|t| t.pos_data.as_ref().and_then(|p| p.get("orderId")) == Some(id))
                .count(),
            None => 1,
        };
        v["_sandbox"] = json!({
            "deviceId": txn.device_id,
            "refunds": txn.refunds.iter().map(|r| json!({
                "amountMinor": r.amount.0,
                "at": fmt_time(r.at),
                "confirmation": r.confirmation,
            })).collect::<Vec<_>>(),
            "refundedMinor": txn.refunded().0,
            "amountMinor": txn.amount.0,
            "timeOutSeconds": txn.timeout_secs,
            "commitCount": txn.commit_count,
            "committedAt": txn.first_commit_at.map(fmt_time),
            "commitExpired": self.commit_expired(txn),
            "createdCount": created_count,
            "approvedAt": txn.approved_at.map(fmt_time),
            "threeDSecurePending": txn.three_ds_pending.is_some(),
            "receiptUploads": txn.receipt_uploads.iter().map(|u| json!({
                "at": fmt_time(u.at),
                "contentType": u.content_type,
                "bytes": u.bytes,
            })).collect::<Vec<_>>(),
            "statusHistory": txn.history.iter().map(|(s, at)| json!({
                "status": s.code(),
                "at": fmt_time(*at),
            })).collect::<Vec<_>>(),
        });
        v
    }
}

/// A confirmation (§7.9) for a card payment or refund. Only the mask and last four digits of
/// the card appear.
pub(crate) fn card_confirmation(
    card: &CardInfo,
    money: Money,
    at: OffsetDateTime,
    three_ds: bool,
    payment_type: &str,
    installments: i64,
    public_url: &str,
) -> Value {
    let number = ids::digits(8);
    json!({
        "confirmationNumber": number,
        "fullConfirmationCode": format!("SBX-{number}-{}", ids::upper_alnum(6)),
        "dateApproval": fmt_time(at),
        "approvalDate": fmt_time(at),
        "paymentType": payment_type,
        "paymentMethodName": "Credit Card",
        "paymentMethodCode": 1,
        "paymentMethodLogo": format!("{public_url}/assets/card.svg"),
        "sourceProvider": {"name": PROVIDER, "code": 1},
        "approvedBy": PROVIDER,
        "providerName": PROVIDER,
        "providerId": ids::digits(10),
        "requestID": ids::uuid(),
        "referenceNumber": ids::digits(10),
        "authNumber": ids::digits(6),
        "acquirer": "Sandbox Acquirer",
        "voucher": ids::digits(7),
        "lastFourDigits": card.last4,
        "cardMask": card.mask,
        "cardType": card.brand,
        "cardExpiration": card.expiration,
        "expiration": card.expiration,
        "installments": installments,
        "amount": money.to_major_string(),
        "sensePassReferenceId": ids::uuid(),
        "extraDetails": {"threeDSecure": three_ds},
        "settlement": {"status": 1, "confirmation": null, "created": null},
    })
}

/// `productsSum` (§7.1): per-cart sums as major-unit strings. Each component is summed per line
/// with the line rounding of `till_core::Product::line_total`.
pub(crate) fn products_sum(products: &[Product], currency: Currency) -> Value {
    fn line(unit: i64, qty_milli: i64) -> i128 {
        let p = i128::from(unit) * i128::from(qty_milli);
        if p >= 0 {
            (p + 500) / 1000
        } else {
            (p - 500) / 1000
        }
    }
    fn walk(products: &[Product], parent_milli: i64, sums: &mut [i128; 3]) {
        for p in products {
            let milli = ((i128::from(p.quantity.milli()) * i128::from(parent_milli)) / 1000) as i64;
            sums[0] += line(p.amount.0, milli);
            sums[1] += line(p.vat.0, milli);
            sums[2] += line(p.discount.0, milli);
            walk(&p.sub_products, milli, sums);
        }
    }
    let mut sums = [0i128; 3];
    walk(products, 1000, &mut sums);
    let s = |v: i128| minor_to_major_string(Minor(i64::try_from(v).unwrap_or(i64::MAX)), currency);
    let total = Product::cart_total(products).map(|m| m.0).unwrap_or(0);
    json!({
        "allAmountSum": s(sums[0]),
        "allTipSum": "0",
        "allVatSum": s(sums[1]),
        "allDiscountSum": s(sums[2]),
        "allDiscountedAmountSum": s(sums[0] - sums[2]),
        "allTotalSum": minor_to_major_string(Minor(total), currency),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_mask_keeps_first_six_and_last_four() {
        let c = CardInfo::new(&TEST_CARDS[1], "12/30");
        assert_eq!(c.mask, "411111******1111");
        assert_eq!(c.last4, "1111");
        assert!(find_card("4111 1111 1111 1111").is_some());
        assert!(find_card("4000000000000002").is_none());
    }

    #[test]
    fn times_are_rfc3339_utc_with_millis() {
        let t = time::macros::datetime!(2024-05-01 12:00:00.123456 +02:00);
        assert_eq!(fmt_time(t), "2024-05-01T10:00:00.123Z");
    }

    #[test]
    fn products_sum_strings() {
        let mut latte = Product::simple("Latte", 2, 90);
        latte.vat = Minor(10);
        let mut cookie = Product::simple("Cookie", 1, 20);
        cookie.discount = Minor(5);
        cookie.sub_products.push(Product::simple("Icing", 1, 5));
        let sum = products_sum(&[latte, cookie], Currency::Usd);
        assert_eq!(sum["allAmountSum"], "2.05");
        assert_eq!(sum["allVatSum"], "0.2");
        assert_eq!(sum["allDiscountSum"], "0.05");
        assert_eq!(sum["allDiscountedAmountSum"], "2");
        assert_eq!(sum["allTotalSum"], "2.2");
    }

    #[test]
    fn method_types() {
        assert_eq!(Method::parse("Capture+Tokenize"), Some(Method::CaptureTokenize));
        assert_eq!(Method::parse("TOKENIZE").map(Method::code), Some(1));
        assert_eq!(Method::parse("subscription").map(Method::code), Some(5));
        assert_eq!(Method::parse("manual_capture"), None);
    }
}
