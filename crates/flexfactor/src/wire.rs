//! FlexFactor's wire format: request and response bodies of the Standard CIT endpoints, the
//! envelope and error shapes of §2, the statuses of §6.3 and §7.1 and their one mapping to the
//! neutral [`RecoveryState`], and webhook bodies (§10).
//!
//! Strict in what we send (the §6.2 field names as observed on the wire, amounts of `/evaluate`
//! in minor units, `amountToRefund` in major units), tolerant in what we read: unknown fields,
//! numbers sent as strings, status names in any case, errors as strings or as `{item1…}`
//! objects, both 400 shapes.

use crate::error::Error;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use till_core::{Currency, Minor};
use till_gateway::{DeclineCategory, DeclineReason, Opaque, RecoveryState};

/// The fields most FlexFactor answers carry (§2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Envelope {
    /// The API call succeeded. Absent on some bodies; then only the HTTP status speaks.
    pub success: Option<bool>,
    /// E.g. `"Success"`.
    pub result: Option<String>,
    /// The business status (`APPROVED`, `SUCCESS`, `FAILED`, …).
    pub status: Option<String>,
    /// Kept for support; meaning undocumented.
    #[serde(deserialize_with = "lenient_string")]
    pub status_code: Option<String>,
    /// Error messages: strings per the docs, `{item1,item2,…}` objects on refund failures.
    #[serde(deserialize_with = "error_items")]
    pub errors: Vec<ErrorItem>,
}

impl Envelope {
    /// True when the body says the call failed (`success: false` or `status: "FAILED"`).
    pub fn failed(&self) -> bool {
        self.success == Some(false)
            || self
                .status
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("FAILED"))
    }

    /// The failure as a typed error, using `code`/`message` when the body has them.
    pub fn rejection(&self, code: Option<String>, message: Option<String>) -> Error {
        let first = self.errors.first();
        let message = message
            .or_else(|| first.map(|e| e.message.clone()))
            .or_else(|| self.result.clone())
            .unwrap_or_else(|| "no reason given".into());
        let code = code.or_else(|| first.and_then(|e| e.code.clone()));
        Error::Rejected { code, message }
    }
}

/// One entry of `errors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorItem {
    /// The message (`item1`, or the string itself).
    pub message: String,
    /// The code (`item2`), when the entry is an object.
    pub code: Option<String>,
}

fn error_items<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ErrorItem>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    let items = match v {
        Some(Value::Array(items)) => items,
        _ => return Ok(Vec::new()),
    };
    Ok(items
        .into_iter()
        .map(|item| match item {
            Value::String(s) => ErrorItem {
                message: s,
                code: None,
            },
            Value::Object(m) => ErrorItem {
                message: m
                    .get("item1")
                    .or_else(|| m.get("message"))
                    .map(value_text)
                    .unwrap_or_default(),
                code: m.get("item2").or_else(|| m.get("code")).map(value_text),
            },
            other => ErrorItem {
                message: value_text(&other),
                code: None,
            },
        })
        .collect())
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A string that may arrive as a number (`"2001"` or `2001`) or null.
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(v) => Some(value_text(&v)),
    })
}

/// Invalid fields of a 400 as FlexFactor names them, each with its messages.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// Reads an HTTP 400 body in either §2 shape into field → messages, plus the trace id.
/// `None` when the body is neither (then the caller keeps it as text).
pub fn validation_errors(body: &str) -> Option<(FieldErrors, Option<String>)> {
    let Value::Object(top) = serde_json::from_str::<Value>(body).ok()? else {
        return None;
    };
    // Shape 1: {"status":"400","errors":{Field:[…]}}; shape 2: the map itself.
    let map = match top.get("errors") {
        Some(Value::Object(m)) => m.clone(),
        _ => top,
    };
    let mut fields = BTreeMap::new();
    let mut trace = None;
    for (key, value) in map {
        let messages: Vec<String> = match value {
            Value::Array(items) => items.iter().map(value_text).collect(),
            Value::String(s) => vec![s],
            _ => return None,
        };
        if key.eq_ignore_ascii_case("TraceId") {
            trace = messages.into_iter().next();
        } else {
            fields.insert(key, messages);
        }
    }
    (!fields.is_empty() || trace.is_some()).then_some((fields, trace))
}

// --- §3 authentication -------------------------------------------------------------------

/// `POST /v1/oauth2/token` body (§3). `AppKey`/`AppSecret` are canonical.
#[derive(Clone, Serialize)]
pub struct TokenRequest {
    /// The portal's AppKey.
    #[serde(rename = "AppKey")]
    pub app_key: Opaque,
    /// The portal's AppSecret. Never printed.
    #[serde(rename = "AppSecret")]
    pub app_secret: Opaque,
}

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRequest").finish_non_exhaustive()
    }
}

/// The token answer (§3).
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    /// The bearer for every other call; valid about 10 minutes.
    pub access_token: Opaque,
    /// Not used: re-login is simpler and the exchange endpoint is undocumented.
    #[serde(default)]
    pub refresh_token: Option<Opaque>,
    /// Expiry of `accessToken`, milliseconds since the Unix epoch.
    #[serde(deserialize_with = "lenient_i64")]
    pub expires: i64,
    /// The envelope.
    #[serde(flatten)]
    pub envelope: Envelope,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &self.access_token)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = Value::deserialize(d)?;
    match &v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .ok_or_else(|| serde::de::Error::custom("not an integer")),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom("not an integer")),
        _ => Err(serde::de::Error::custom("not an integer")),
    }
}

// --- §5 tokenize ---------------------------------------------------------------------------

/// `POST /v1/tokenize` body (§5).
#[derive(Debug, Clone, Serialize)]
pub struct TokenizeRequest {
    /// The card and optional extras.
    pub payment_method: TokenizePaymentMethod,
}

/// `payment_method` of a tokenize request.
#[derive(Clone, Serialize)]
pub struct TokenizePaymentMethod {
    /// Cardholder email, if given. Personal data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// SenseJS key, if the page produced one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sense_key: Option<String>,
    /// The card.
    pub credit_card: CreditCard,
}

impl fmt::Debug for TokenizePaymentMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenizePaymentMethod")
            .field("email", &self.email.as_ref().map(|_| "***"))
            .field("credit_card", &self.credit_card)
            .finish_non_exhaustive()
    }
}

/// The card as typed: the one struct of this crate that holds a card number. `Debug` shows
/// only the last four digits; it is never logged or stored.
#[derive(Clone, Serialize)]
pub struct CreditCard {
    /// Required by FlexFactor.
    pub first_name: String,
    /// Required by FlexFactor.
    pub last_name: String,
    /// The PAN.
    pub number: String,
    /// The CVV; empty when unknown.
    pub verification_value: String,
    /// `"MM"`.
    pub month: String,
    /// `"YYYY"`.
    pub year: String,
}

impl fmt::Debug for CreditCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits: String = self.number.chars().filter(char::is_ascii_digit).collect();
        let last4 = &digits[digits.len().saturating_sub(4)..];
        f.debug_struct("CreditCard")
            .field("number", &format!("…{last4}"))
            .field("month", &self.month)
            .field("year", &self.year)
            .finish_non_exhaustive()
    }
}

/// The tokenize answer as observed (§5); the vault token is `transaction.payment_method.token`.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenizeResponse {
    /// The vault transaction.
    pub transaction: Option<VaultTransaction>,
    /// The envelope.
    #[serde(flatten)]
    pub envelope: Envelope,
}

/// `transaction` of a tokenize answer.
#[derive(Debug, Clone, Deserialize)]
pub struct VaultTransaction {
    /// True when the card was vaulted.
    #[serde(default)]
    pub succeeded: Option<bool>,
    /// The vaulted card.
    pub payment_method: Option<VaultedMethod>,
}

/// The vaulted card: its token and what may be shown of it.
#[derive(Clone, Deserialize)]
pub struct VaultedMethod {
    /// The vault token (uuid) `/evaluate` names the card by. A capability: never printed.
    pub token: Opaque,
    /// Last four digits.
    #[serde(default, deserialize_with = "lenient_string")]
    pub last_four_digits: Option<String>,
    /// First six (sometimes eight) digits.
    #[serde(default, deserialize_with = "lenient_string")]
    pub first_six_digits: Option<String>,
    /// Holder first name. Personal data.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Holder last name. Personal data.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Expiry month (a number on the wire, a string tolerated).
    #[serde(default, deserialize_with = "lenient_string")]
    pub month: Option<String>,
    /// Expiry year.
    #[serde(default, deserialize_with = "lenient_string")]
    pub year: Option<String>,
}

impl fmt::Debug for VaultedMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultedMethod")
            .field("token", &self.token)
            .field("last_four_digits", &self.last_four_digits)
            .field("month", &self.month)
            .field("year", &self.year)
            .finish_non_exhaustive()
    }
}

// --- §6 evaluate ---------------------------------------------------------------------------

/// `POST /v1/evaluate` body, with the field names observed on the wire (§6.2).
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EvaluateRequest {
    /// Site GUID from the portal.
    pub site_id: String,
    /// Merchant GUID from the portal.
    pub mid: String,
    /// Always true: we only evaluate declines.
    pub is_declined: bool,
    /// Our payment id. Stable per payment.
    pub order_id: String,
    /// Required by the server; equal to `order_id` so a retry answers the same rescue.
    pub idempotency_key: String,
    /// SenseJS key, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sense_key: Option<String>,
    /// `Purchase`: the Standard integration (no separate capture).
    pub transaction_type: String,
    /// Customer-initiated.
    #[serde(rename = "isMIT")]
    pub is_mit: bool,
    /// Not a subscription.
    pub is_recurring: bool,
    /// Required for customer-initiated evaluations.
    pub customer_ip: String,
    /// The declined transaction.
    pub transaction: EvaluateTransaction,
    /// The card, by vault token.
    pub payment_method: EvaluatePaymentMethod,
}

impl fmt::Debug for EvaluateRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EvaluateRequest")
            .field("order_id", &self.order_id)
            .field("idempotency_key", &self.idempotency_key)
            .field("transaction", &self.transaction)
            .field("payment_method", &self.payment_method)
            .finish_non_exhaustive()
    }
}

/// `transaction` of an evaluate request.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EvaluateTransaction {
    /// The declining tender's transaction id (reported as required in a 400).
    pub id: String,
    /// ISO 8601 UTC time of the decline.
    pub timestamp: String,
    /// We send UTC timestamps.
    pub timezone_utc_offset: String,
    /// Minor units, as observed (`100` USD = $1.00).
    pub amount: i64,
    /// ISO 4217 alphabetic code.
    pub currency: String,
    /// The declining tender's response code (reported as required).
    pub response_code: String,
    /// Which tender declined.
    pub response_code_source: String,
    /// Not known at a till: empty string (reported as required, so present).
    pub avs_result_code: String,
    /// Not known at a till: empty string (reported as required, so present).
    pub cvv_result_code: String,
    /// Not known at a till.
    pub cavv_result_code: String,
    /// Keyed at the till for a telephone order.
    pub card_not_present: bool,
}

/// `paymentMethod` of an evaluate request: the vault token in place of the number.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EvaluatePaymentMethod {
    /// Cardholder name. Personal data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder_name: Option<String>,
    /// Scheme, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card_brand: Option<String>,
    /// Expiry month.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration_month: Option<u8>,
    /// Expiry year.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration_year: Option<u16>,
    /// First six digits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card_bin_number: Option<String>,
    /// Last four digits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card_last4_digits: Option<String>,
    /// The vault token (never a card number: we never have one).
    pub card_number: Opaque,
    /// True: `cardNumber` is a vault token.
    #[serde(rename = "Token")]
    pub token: bool,
}

impl fmt::Debug for EvaluatePaymentMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EvaluatePaymentMethod")
            .field("card_last4_digits", &self.card_last4_digits)
            .field("card_number", &self.card_number)
            .finish_non_exhaustive()
    }
}

/// The evaluate answer (§6.3).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvaluateResponse {
    /// FlexFactor's order id: what `/orders/{id}` and refunds name.
    pub order_session_key: Option<String>,
    /// Observed equal to `orderSessionKey`; used when that is missing.
    #[serde(default)]
    pub order_id: Option<String>,
    /// The envelope; `status` is the [`EvaluateStatus`].
    #[serde(flatten)]
    pub envelope: Envelope,
}

impl EvaluateResponse {
    /// The rescue's id: `orderSessionKey`, else the response's `orderId`.
    pub fn rescue_id(&self) -> Option<&str> {
        self.order_session_key
            .as_deref()
            .or(self.order_id.as_deref())
            .filter(|s| !s.is_empty())
    }

    /// The status, parsed.
    pub fn status(&self) -> EvaluateStatus {
        EvaluateStatus::parse(self.envelope.status.as_deref().unwrap_or(""))
    }
}

/// `status` of `/evaluate` (§6.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvaluateStatus {
    /// Rescued and charged.
    Approved,
    /// Cannot be rescued.
    Declined,
    /// Rescuable with the UI widget: a decline for the Standard integration.
    Challenge,
    /// Decided later.
    Submitted,
    /// Authorisation flow only; we send `Purchase`, so it should not occur.
    CaptureRequired,
    /// `SUCCESS` / `PROCESSING`, which [AM] treats as non-failures: not final.
    Processing,
    /// Anything else, kept as sent.
    Other(String),
}

impl EvaluateStatus {
    /// Case-insensitive parse.
    pub fn parse(s: &str) -> EvaluateStatus {
        match s.trim().to_ascii_uppercase().as_str() {
            "APPROVED" => EvaluateStatus::Approved,
            "DECLINED" => EvaluateStatus::Declined,
            "CHALLENGE" => EvaluateStatus::Challenge,
            "SUBMITTED" => EvaluateStatus::Submitted,
            "CAPTUREREQUIRED" => EvaluateStatus::CaptureRequired,
            "SUCCESS" | "PROCESSING" => EvaluateStatus::Processing,
            _ => EvaluateStatus::Other(s.to_string()),
        }
    }

    /// The one mapping of `/evaluate` statuses to the neutral state. CHALLENGE is a decline (the
    /// Standard integration cannot present the widget); CAPTUREREQUIRED and unknown statuses are
    /// "pending" so the order is asked again rather than guessed.
    pub fn state(&self) -> RecoveryState {
        match self {
            EvaluateStatus::Approved => RecoveryState::Recovered,
            EvaluateStatus::Declined | EvaluateStatus::Challenge => RecoveryState::NotRecovered,
            EvaluateStatus::Submitted
            | EvaluateStatus::CaptureRequired
            | EvaluateStatus::Processing
            | EvaluateStatus::Other(_) => RecoveryState::Pending,
        }
    }
}

// --- §7.1 orders ---------------------------------------------------------------------------

/// `GET /v1/orders/{id}` (§7.1), the fields we use. Personal data fields (names, email, phone,
/// addresses) are deliberately not read.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// The order id (`orderSessionKey`).
    #[serde(default)]
    pub id: Option<String>,
    /// The numeric status.
    #[serde(deserialize_with = "order_status")]
    pub status: OrderStatus,
    /// Its text form (portal names or upper case; not relied upon).
    #[serde(default)]
    pub status_name: Option<String>,
    /// `USD`, …
    #[serde(default)]
    pub currency_code: Option<String>,
}

/// `status` of an order (§7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    /// 0: ingested, not yet picked up.
    Draft,
    /// 1: processing suspended.
    OnHold,
    /// 2: declined by Flex.
    Cancelled,
    /// 3: contact support.
    Problem,
    /// 4: being processed.
    Processing,
    /// 5: authorisation flow, capture required.
    CaptureRequired,
    /// 6: refunded.
    Returned,
    /// 7: approved.
    Completed,
    /// A code not in the table.
    Unknown(i64),
}

impl OrderStatus {
    /// From the numeric code.
    pub fn from_code(code: i64) -> OrderStatus {
        match code {
            0 => OrderStatus::Draft,
            1 => OrderStatus::OnHold,
            2 => OrderStatus::Cancelled,
            3 => OrderStatus::Problem,
            4 => OrderStatus::Processing,
            5 => OrderStatus::CaptureRequired,
            6 => OrderStatus::Returned,
            7 => OrderStatus::Completed,
            other => OrderStatus::Unknown(other),
        }
    }

    /// From a status name, when the number is sent as text (`"Completed"`, `"COMPLETED"`, `"7"`).
    pub fn from_name(name: &str) -> OrderStatus {
        let n = name.trim().to_ascii_lowercase();
        if let Ok(code) = n.parse::<i64>() {
            return OrderStatus::from_code(code);
        }
        match n.as_str() {
            "draft" => OrderStatus::Draft,
            "onhold" | "on hold" => OrderStatus::OnHold,
            "cancelled" | "canceled" | "declined" => OrderStatus::Cancelled,
            "problem" => OrderStatus::Problem,
            "processing" | "submitted" => OrderStatus::Processing,
            "capturerequired" => OrderStatus::CaptureRequired,
            "returned" | "refunded" => OrderStatus::Returned,
            "completed" | "approved" => OrderStatus::Completed,
            _ => OrderStatus::Unknown(-1),
        }
    }

    /// The numeric code.
    pub fn code(self) -> i64 {
        match self {
            OrderStatus::Draft => 0,
            OrderStatus::OnHold => 1,
            OrderStatus::Cancelled => 2,
            OrderStatus::Problem => 3,
            OrderStatus::Processing => 4,
            OrderStatus::CaptureRequired => 5,
            OrderStatus::Returned => 6,
            OrderStatus::Completed => 7,
            OrderStatus::Unknown(c) => c,
        }
    }

    /// The one mapping of order statuses to the neutral state. Problem stays pending: it is not
    /// a decision, and the agent raises it after its polling gives up.
    pub fn state(self) -> RecoveryState {
        match self {
            OrderStatus::Completed => RecoveryState::Recovered,
            OrderStatus::Cancelled => RecoveryState::NotRecovered,
            OrderStatus::Returned => RecoveryState::Refunded,
            OrderStatus::Draft
            | OrderStatus::OnHold
            | OrderStatus::Problem
            | OrderStatus::Processing
            | OrderStatus::CaptureRequired
            | OrderStatus::Unknown(_) => RecoveryState::Pending,
        }
    }
}

fn order_status<'de, D: Deserializer<'de>>(d: D) -> Result<OrderStatus, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => OrderStatus::from_code(n.as_i64().unwrap_or(-1)),
        Value::String(s) => OrderStatus::from_name(&s),
        _ => OrderStatus::Unknown(-1),
    })
}

/// The decline reason of a rescue that was not recovered.
pub fn not_recovered_reason(status: &str) -> DeclineReason {
    DeclineReason {
        category: DeclineCategory::Declined,
        provider_code: Some(status.to_string()),
        message: Some(format!("not recovered by FlexFactor ({status})")),
    }
}

// --- §8 refund -----------------------------------------------------------------------------

/// `POST /v1/orders/{id}/refund` body (§8).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundRequest {
    /// Major units as a JSON number (`19.99`); see [`major_amount`].
    pub amount_to_refund: serde_json::Number,
    /// Free text; we put our refund id in it (docs/DECISIONS.md, "FlexFactor").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_message: Option<String>,
}

/// Minor units → the major-unit JSON number `amountToRefund` wants, at this crate's boundary
/// only. Written via the exact decimal string: an `f64` parsed from the shortest decimal prints
/// back as the same digits, so `1999` USD goes out as `19.99`, never `19.990000000000002`.
pub fn major_amount(minor: Minor, currency: Currency) -> Result<serde_json::Number, Error> {
    let text = till_core::money::minor_to_major_string(minor, currency);
    let value: f64 = text
        .parse()
        .map_err(|_| Error::Config(format!("amount {text} is not a number")))?;
    if minor.0 <= 0 || minor.0 > (1_i64 << 53) {
        return Err(Error::Config(format!("amount {text} out of range")));
    }
    serde_json::Number::from_f64(value)
        .ok_or_else(|| Error::Config(format!("amount {text} is not finite")))
}

/// The refund answer (§8), success or `FAILED`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundResponse {
    /// `2001` and friends on failure.
    #[serde(default, deserialize_with = "lenient_string")]
    pub response_code: Option<String>,
    /// The failure text.
    #[serde(default)]
    pub response_message: Option<String>,
    /// The envelope; `status` is `SUCCESS` or `FAILED`.
    #[serde(flatten)]
    pub envelope: Envelope,
}

// --- §10 webhooks --------------------------------------------------------------------------

/// A webhook body (§10): read from the raw bytes whatever the content type. The payload schema
/// is not documented; this reads the event name from `event`/`eventType`/`type`/`name` and the
/// order from `orderSessionKey`/`orderId`/`id`, at the top level or under `data`/`payload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// `order.completed`, `order.refunded`, …
    pub event: String,
    /// The order (`orderSessionKey`).
    pub order_id: String,
}

impl WebhookEvent {
    /// Parses a body; `None` for anything that is not a JSON object naming an event and an order.
    pub fn parse(body: &[u8]) -> Option<WebhookEvent> {
        let text = std::str::from_utf8(body)
            .ok()?
            .trim_start_matches('\u{feff}');
        let Value::Object(top) = serde_json::from_str::<Value>(text).ok()? else {
            return None;
        };
        let nested = ["data", "payload", "order"]
            .iter()
            .filter_map(|k| top.get(*k).and_then(Value::as_object))
            .collect::<Vec<_>>();
        let pick = |keys: &[&str]| {
            std::iter::once(&top)
                .chain(nested.iter().copied())
                .find_map(|m| {
                    keys.iter()
                        .find_map(|k| m.get(*k).and_then(Value::as_str).map(str::to_string))
                })
        };
        let event = pick(&["event", "eventType", "type", "name", "eventName"])?;
        let order_id = pick(&["orderSessionKey", "orderId", "id"])?;
        Some(WebhookEvent { event, order_id })
    }

    /// What the event implies: completed → recovered, cancelled/expired → not recovered,
    /// refunded → `None` (a refund may be partial: fetch the order); other events → `None`.
    pub fn state(&self) -> Option<RecoveryState> {
        match self.event.to_ascii_lowercase().as_str() {
            "order.completed" => Some(RecoveryState::Recovered),
            "order.cancelled" | "order.canceled" | "order.expired" => {
                Some(RecoveryState::NotRecovered)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_400_shapes() {
        let (f, t) = validation_errors(
            r#"{"status":"400","errors":{"OrderId":["Merchant's orderId is required"],"IsDeclined":["The IsDeclined field is required."],"TraceId":["00-3b4a-01"]}}"#,
        )
        .unwrap();
        assert_eq!(f.keys().collect::<Vec<_>>(), ["IsDeclined", "OrderId"]);
        assert_eq!(t.as_deref(), Some("00-3b4a-01"));
        let (f, _) = validation_errors(
            r#"{"TraceId":["00-bf5a-01"],"IdempotencyKey":["The IdempotencyKey field is required."]}"#,
        )
        .unwrap();
        assert_eq!(
            f["IdempotencyKey"],
            ["The IdempotencyKey field is required."]
        );
        assert!(validation_errors("not json").is_none());
        assert!(validation_errors(r#"{"a":{"b":1}}"#).is_none());
    }

    #[test]
    fn failed_refund_body() {
        let r: RefundResponse = serde_json::from_str(
            r#"{ "responseCode": "2001",
  "responseMessage": "Amount to refund (1.00) is greater than maximum refund amount in (0.00))",
  "transactionId": null, "success": false, "result": null, "status": "FAILED",
  "statusCode": null,
  "errors": [ { "item1": "Amount to refund (1.00) is greater than maximum refund amount in (0.00))",
                "item2": "2001", "item3": "2001", "item4": true } ],
  "customProperties": {} }"#,
        )
        .unwrap();
        assert!(r.envelope.failed());
        assert_eq!(r.envelope.errors[0].code.as_deref(), Some("2001"));
    }

    #[test]
    fn statuses_map_once() {
        assert_eq!(
            EvaluateStatus::parse("approved").state(),
            RecoveryState::Recovered
        );
        assert_eq!(
            EvaluateStatus::parse("CHALLENGE").state(),
            RecoveryState::NotRecovered
        );
        assert_eq!(
            EvaluateStatus::parse("SUBMITTED").state(),
            RecoveryState::Pending
        );
        assert_eq!(OrderStatus::from_code(7).state(), RecoveryState::Recovered);
        assert_eq!(
            OrderStatus::from_code(2).state(),
            RecoveryState::NotRecovered
        );
        assert_eq!(OrderStatus::from_code(6).state(), RecoveryState::Refunded);
        assert_eq!(OrderStatus::from_name("Completed"), OrderStatus::Completed);
        for c in 0..8 {
            assert_eq!(OrderStatus::from_code(c).code(), c);
        }
    }

    #[test]
    fn major_amounts_are_exact() {
        let n = major_amount(Minor(1999), Currency::Usd).unwrap();
        assert_eq!(serde_json::to_string(&n).unwrap(), "19.99");
        let n = major_amount(Minor(100), Currency::Usd).unwrap();
        assert_eq!(serde_json::to_string(&n).unwrap(), "1.0");
        assert!(major_amount(Minor(0), Currency::Usd).is_err());
    }

    #[test]
    fn webhook_without_json_content_type() {
        let e =
            WebhookEvent::parse(br#"{"event":"order.completed","orderSessionKey":"k1"}"#).unwrap();
        assert_eq!(e.state(), Some(RecoveryState::Recovered));
        let e =
            WebhookEvent::parse(br#"{"type":"order.refunded","data":{"orderId":"k2"}}"#).unwrap();
        assert_eq!((e.order_id.as_str(), e.state()), ("k2", None));
        assert!(WebhookEvent::parse(b"event=order.completed").is_none());
    }

    #[test]
    fn card_debug_shows_last_four_only() {
        let c = CreditCard {
            first_name: "A".into(),
            last_name: "B".into(),
            number: "4111111111111111".into(),
            verification_value: "123".into(),
            month: "09".into(),
            year: "2030".into(),
        };
        let d = format!("{c:?}");
        assert!(!d.contains("4111111111111111") && !d.contains("123\"") && d.contains("…1111"));
    }
}
