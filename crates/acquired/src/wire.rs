//! Acquired's wire format (fact sheet §2–§7), written down once.
//!
//! Requests are built from our types ([`TransactionDetails::new`] takes a [`Money`]) so that
//! what we send is canonical: `amount` a JSON number in **major** units (`15.02` for 1502
//! pence, converted here and nowhere else), `currency` lower-case ISO 4217 alpha (`"gbp"`),
//! the documented snake_case names. Responses are read leniently: every field optional, amounts
//! as numbers or strings, a status at the top level or inside `transaction`, unknown fields
//! ignored. The look-up, capture and refund shapes are assumed (§11.7; docs/DECISIONS.md,
//! "Acquired").

use crate::error::Error;
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};
use std::fmt;
use till_core::{Currency, Minor, Money};
use till_gateway::{
    Awaiting, CardExpiry, CardSummary, DeclineCategory, DeclineReason, Observation, Opaque,
    PaymentKind, PaymentState,
};

/// The currencies Till Agent takes through Acquired: those of Acquired's list (§3.1) that
/// `till-core` knows.
pub const CURRENCIES: [Currency; 4] = [Currency::Gbp, Currency::Eur, Currency::Usd, Currency::Cad];

/// `currency` as Acquired spells it (`"gbp"`), or a refusal for one it does not take.
pub fn currency_code(currency: Currency) -> Result<String, Error> {
    if CURRENCIES.contains(&currency) {
        Ok(currency.code().to_ascii_lowercase())
    } else {
        Err(Error::Config(format!("Acquired does not take {currency}")))
    }
}

/// The currency of an Acquired code, in either case.
pub fn currency_of(code: &str) -> Option<Currency> {
    Currency::from_code(&code.to_ascii_uppercase())
        .ok()
        .filter(|c| CURRENCIES.contains(c))
}

/// **The** conversion of our minor units to Acquired's major-unit number: 1502 GBP → `15.02`.
/// Goes through the exact decimal text, so the number printed is the shortest one that reads
/// back to the same amount (never `15.019999`). Refuses amounts that are not positive.
pub fn major_amount(amount: Money) -> Result<Number, Error> {
    if !amount.minor.is_positive() {
        return Err(Error::Config(format!("amount must be positive, not {}", amount.minor)));
    }
    let text = till_core::money::minor_to_major_string(amount.minor, amount.currency);
    serde_json::from_str::<Number>(&text)
        .map_err(|e| Error::Config(format!("amount {text}: {e}")))
}

/// **The** conversion back: a major-unit amount as Acquired sends it (a number, or — tolerated
/// — a decimal string) into minor units, exactly.
pub fn minor_amount(value: &Value, currency: Currency) -> Option<Minor> {
    match value {
        Value::Number(n) => till_core::money::major_json_number_to_minor(n, currency).ok(),
        Value::String(s) => till_core::money::parse_major(s, currency).ok(),
        _ => None,
    }
}

/// `POST /v1/login` body (§2). `Debug` never shows the key.
#[derive(Clone, Serialize)]
pub struct LoginRequest {
    /// From the Hub (Settings > API Access).
    pub app_id: String,
    /// The secret half; also the key of the redirect hash and the webhook HMAC.
    pub app_key: Opaque,
}

impl fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginRequest").field("app_id", &self.app_id).field("app_key", &"***").finish()
    }
}

/// `POST /v1/login` answer: `token_type` + `access_token` are what a real client uses (§2);
/// `expires_in` is read when present (not documented), otherwise the documented hour applies.
#[derive(Debug, Clone, Deserialize)]
pub struct LoginResponse {
    /// `Bearer`; the `Authorization` header is `<token_type> <access_token>`.
    #[serde(default)]
    pub token_type: Option<String>,
    /// The bearer token. Opaque: whoever holds it can move money for the hour.
    pub access_token: Opaque,
    /// Seconds of validity, if Acquired says.
    #[serde(default)]
    pub expires_in: Option<i64>,
}

/// `transaction` of a session (§3.1): what will be authorised.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransactionDetails {
    /// The merchant's unique order reference (2–50 characters).
    pub order_id: String,
    /// Major units, from [`major_amount`].
    pub amount: Number,
    /// Lower-case ISO 4217 alpha.
    pub currency: String,
    /// `false` = authorise only; default `true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<bool>,
    /// Mail or telephone order: the cashier keys the card.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moto: Option<bool>,
    /// Base64 merchant data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<String>,
    /// Free reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom1: Option<String>,
    /// Free reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom2: Option<String>,
}

impl TransactionDetails {
    /// The required fields from our types; refuses a currency Acquired does not take, an amount
    /// that is not positive and an order id outside 2–50 characters.
    pub fn new(order_id: impl Into<String>, amount: Money) -> Result<TransactionDetails, Error> {
        let order_id = order_id.into();
        let n = order_id.trim().chars().count();
        if !(2..=50).contains(&n) {
            return Err(Error::Config("order_id must be 2 to 50 characters".into()));
        }
        Ok(TransactionDetails {
            order_id,
            amount: major_amount(amount)?,
            currency: currency_code(amount.currency)?,
            capture: None,
            moto: None,
            custom_data: None,
            custom1: None,
            custom2: None,
        })
    }
}

/// A postal address (§3.2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// First line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_1: Option<String>,
    /// Second line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_2: Option<String>,
    /// Town or city.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// State or county.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Postcode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postcode: Option<String>,
    /// ISO 3166 alpha-2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
}

/// A phone number (§3.2): at most 15 digits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phone {
    /// Country calling code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    /// Subscriber number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
}

/// `customer.billing` (§3.2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Billing {
    /// Billing address (AVS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    /// Contact e-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Contact phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<Phone>,
}

/// `customer.shipping` (§3.2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipping {
    /// True when shipping goes to the billing address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_match: Option<bool>,
    /// Shipping address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    /// Contact e-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Contact phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<Phone>,
}

/// `customer` (§3.2). Personal data: `Debug` shows only which parts are present.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// Acquired's id of a returning customer (stored cards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// The merchant's own customer reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Family name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// `YYYY-MM-DD` (required for MCC 6012 merchants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dob: Option<String>,
    /// The cardholder's IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Base64 merchant data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<String>,
    /// Billing details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing: Option<Billing>,
    /// Shipping details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping: Option<Shipping>,
}

impl fmt::Debug for Customer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Customer")
            .field("customer_id", &self.customer_id.is_some())
            .field("reference", &self.reference.is_some())
            .field("billing", &self.billing.is_some())
            .field("shipping", &self.shipping.is_some())
            .finish_non_exhaustive()
    }
}

/// `tds.challenge_preference` (§3.3; full enum per a third-party summary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChallengePreference {
    /// The issuer must challenge.
    ChallengeMandated,
    /// The merchant prefers a challenge.
    ChallengePreferred,
    /// The merchant asks for no challenge.
    NoChallengeRequested,
    /// The issuer decides (the documented example).
    NoPreference,
}

/// `tds.challenge_window_size` (§3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChallengeWindowSize {
    /// The whole page.
    FullScreen,
    /// 250 × 400.
    #[serde(rename = "windowed_250x400")]
    Windowed250x400,
    /// 390 × 400.
    #[serde(rename = "windowed_390x400")]
    Windowed390x400,
    /// 500 × 600.
    #[serde(rename = "windowed_500x600")]
    Windowed500x600,
    /// 600 × 400.
    #[serde(rename = "windowed_600x400")]
    Windowed600x400,
}

/// `tds` (§3.3): 3-D Secure settings of the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tds {
    /// Enables EMV 3-D Secure.
    pub is_active: bool,
    /// Whether to ask for a challenge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_preference: Option<ChallengePreference>,
    /// Size of the challenge window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_window_size: Option<ChallengeWindowSize>,
    /// The merchant's contact page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_url: Option<String>,
    /// Where the cardholder is sent (form POST) after the payment (§5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_url: Option<String>,
    /// Notifications during authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
}

/// `payment_methods` (§3.1): what the Payment component offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    /// Keyed card.
    Card,
    /// Apple Pay.
    ApplePay,
    /// Google Pay.
    GooglePay,
}

/// `POST /v1/payment-sessions` body (§3.1), every documented field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionRequest {
    /// What will be authorised.
    pub transaction: TransactionDetails,
    /// Who pays.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<Customer>,
    /// 3-D Secure settings (recommended).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tds: Option<Tds>,
    /// Where the outcome's webhooks go.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// Shows the "save card" box.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub save_card: Option<bool>,
    /// Makes the form mandate card saving.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_recurring: Option<bool>,
    /// Payment component only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_methods: Option<Vec<PaymentMethod>>,
    /// Restricts the session to some of the Hub's registered domains.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company_domains: Option<Vec<String>>,
    /// Inherit configuration from an `incomplete` subscription.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
}

impl SessionRequest {
    /// A session for `transaction` and nothing else.
    pub fn new(transaction: TransactionDetails) -> SessionRequest {
        SessionRequest {
            transaction,
            customer: None,
            tds: None,
            webhook_url: None,
            save_card: None,
            is_recurring: None,
            payment_methods: None,
            company_domains: None,
            subscription_id: None,
        }
    }
}

/// `transaction` of a session update: only what changes (§4).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TransactionUpdate {
    /// New amount, major units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<Number>,
    /// New currency (lower case).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// New order reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// Capture or authorise only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<bool>,
}

impl TransactionUpdate {
    /// An amount change (the cart changed), converted with [`major_amount`].
    pub fn amount(amount: Money) -> Result<TransactionUpdate, Error> {
        Ok(TransactionUpdate {
            amount: Some(major_amount(amount)?),
            currency: Some(currency_code(amount.currency)?),
            ..TransactionUpdate::default()
        })
    }
}

/// `PUT /v1/payment-sessions/{session_id}` body (§4): any of these, only what changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SessionUpdate {
    /// Transaction parameters to change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction: Option<TransactionUpdate>,
    /// Customer to set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<Customer>,
    /// 3-D Secure settings to set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tds: Option<Tds>,
    /// Webhook URL to set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// Payment methods to offer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_methods: Option<Vec<PaymentMethod>>,
}

/// `POST /v1/payment-sessions` answer (§3.4).
#[derive(Debug, Clone, Deserialize)]
pub struct SessionCreated {
    /// The session id the Components script needs. Opaque: it lets whoever holds it pay.
    pub session_id: Opaque,
}

/// One entry of `invalid_parameters` (§7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidParameter {
    /// Dotted path of the parameter, e.g. `transaction.order_id`.
    #[serde(default)]
    pub parameter: String,
    /// Why it is invalid, as Acquired words it.
    #[serde(default)]
    pub reason: String,
}

/// The error body of every endpoint (§7).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// `"error"`.
    #[serde(default)]
    pub status: Option<String>,
    /// `validation`, `unauthorized`, `bad_request`, `forbidden`, `conflict`, …
    #[serde(default)]
    pub error_type: Option<String>,
    /// Human-readable message.
    #[serde(default)]
    pub title: Option<String>,
    /// The request path.
    #[serde(default)]
    pub instance: Option<String>,
    /// Every invalid parameter, for validation errors.
    #[serde(default)]
    pub invalid_parameters: Vec<InvalidParameter>,
}

impl ApiError {
    /// Reads a §7 body; `None` when the text is not one (no `error_type` nor `title`).
    pub fn parse(text: &str) -> Option<ApiError> {
        let e: ApiError = serde_json::from_str(text).ok()?;
        (e.error_type.is_some() || e.title.is_some()).then_some(e)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            self.error_type.as_deref().unwrap_or("error"),
            self.title.as_deref().unwrap_or("")
        )?;
        for p in &self.invalid_parameters {
            write!(f, "; {}: {}", p.parameter, p.reason)?;
        }
        Ok(())
    }
}

/// A card payment status (§6), plus the Pay-by-Bank ones and `cancelled` that webhooks carry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Status {
    /// Processed successfully.
    Success,
    /// Declined by the bank, or the cardholder failed authentication.
    Declined,
    /// Stopped by a pre-configured rule.
    Blocked,
    /// An internal platform error.
    Error,
    /// A technical problem during authentication.
    TdsError,
    /// The cardholder did not complete authentication in time.
    TdsExpired,
    /// Authentication failed.
    TdsFailed,
    /// Awaiting authentication.
    TdsPending,
    /// Cancelled by the user (webhooks; Pay by Bank).
    Cancelled,
    /// Pay by Bank: executed.
    Executed,
    /// Pay by Bank: settled.
    Settled,
    /// Pay by Bank: expired.
    Expired,
    /// A status the fact sheet does not list (kept; mapped to "still pending").
    Other(String),
}

impl Status {
    /// From the wire word (case-insensitive).
    pub fn parse(s: &str) -> Status {
        match s.trim().to_ascii_lowercase().as_str() {
            "success" => Status::Success,
            "declined" => Status::Declined,
            "blocked" => Status::Blocked,
            "error" => Status::Error,
            "tds_error" => Status::TdsError,
            "tds_expired" => Status::TdsExpired,
            "tds_failed" => Status::TdsFailed,
            "tds_pending" => Status::TdsPending,
            "cancelled" | "canceled" => Status::Cancelled,
            "executed" => Status::Executed,
            "settled" => Status::Settled,
            "expired" => Status::Expired,
            other => Status::Other(other.to_string()),
        }
    }

    /// The wire word.
    pub fn as_str(&self) -> &str {
        match self {
            Status::Success => "success",
            Status::Declined => "declined",
            Status::Blocked => "blocked",
            Status::Error => "error",
            Status::TdsError => "tds_error",
            Status::TdsExpired => "tds_expired",
            Status::TdsFailed => "tds_failed",
            Status::TdsPending => "tds_pending",
            Status::Cancelled => "cancelled",
            Status::Executed => "executed",
            Status::Settled => "settled",
            Status::Expired => "expired",
            Status::Other(s) => s,
        }
    }

    /// **The** mapping of §6 to the neutral state, for a payment of `kind`. Success (and Pay by
    /// Bank's executed/settled) is captured for a sale and authorised for a pre-authorisation;
    /// `declined`, `blocked` and `tds_failed` are declines; `error` and `tds_error` failed;
    /// `tds_expired` and `expired` expired; `cancelled` cancelled; `tds_pending` and anything
    /// unknown still pending (we never conclude from a word we do not know).
    pub fn neutral(&self, kind: PaymentKind) -> PaymentState {
        match self {
            Status::Success | Status::Executed | Status::Settled => match kind {
                PaymentKind::Sale => PaymentState::Captured,
                PaymentKind::PreAuth => PaymentState::Authorized,
            },
            Status::Declined | Status::Blocked | Status::TdsFailed => PaymentState::Declined,
            Status::Error | Status::TdsError => PaymentState::Failed,
            Status::TdsExpired | Status::Expired => PaymentState::Expired,
            Status::Cancelled => PaymentState::Cancelled,
            Status::TdsPending | Status::Other(_) => PaymentState::Pending,
        }
    }

    /// True when the payment will not change any more.
    pub fn is_final(&self) -> bool {
        !matches!(self, Status::TdsPending | Status::Other(_))
    }

    /// The decline reason of an unsuccessful status: the neutral category, the status word as
    /// the provider code and Acquired's `reason` (e.g. `insufficient_funds`,
    /// `challenge_time_out`) as the message, so a screen can show "declined:
    /// insufficient_funds".
    pub fn decline(&self, reason: Option<&str>) -> Option<DeclineReason> {
        let category = match self {
            Status::Declined | Status::Blocked | Status::TdsFailed => DeclineCategory::Declined,
            Status::Error | Status::TdsError => DeclineCategory::Error,
            Status::TdsExpired | Status::Expired => DeclineCategory::Expired,
            Status::Cancelled => DeclineCategory::Cancelled,
            _ => return None,
        };
        Some(DeclineReason {
            category,
            provider_code: Some(self.as_str().to_string()),
            message: reason.filter(|r| !r.is_empty()).map(str::to_string),
        })
    }

    /// What this status says about a payment of `kind` and `amount`: the neutral state, the
    /// amounts it implies, the decline reason, what a pending payment waits for. The one place
    /// a status becomes an [`Observation`] (redirect, webhook and look-up all use it).
    pub fn observation(&self, reason: Option<&str>, kind: PaymentKind, amount: Minor) -> Observation {
        let mut obs = Observation::of(self.neutral(kind));
        obs.provider_status = Some(self.as_str().to_string());
        match obs.state {
            PaymentState::Captured => {
                obs.authorized = Some(amount);
                obs.captured = Some(amount);
            }
            PaymentState::Authorized => obs.authorized = Some(amount),
            _ => {}
        }
        if *self == Status::TdsPending {
            obs.awaiting = Some(Awaiting::Authentication);
        }
        obs.decline = self.decline(reason);
        obs
    }
}

/// `GET /v1/transactions/{transaction_id}` answer, read leniently (shape assumed, §11.7): the
/// status and reason at the top level or inside `transaction`; the amount, order id and
/// currency inside `transaction` or at the top level; what was captured and refunded from
/// `captured_amount`/`amount_captured` and `refunded_amount`/`amount_refunded` when present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionInfo {
    /// Acquired's id of the transaction.
    pub transaction_id: Option<String>,
    /// Its status.
    pub status: Status,
    /// Why it failed, when it did.
    pub reason: Option<String>,
    /// The order reference.
    pub order_id: Option<String>,
    /// The authorised amount, minor units.
    pub amount: Option<Minor>,
    /// `capture` as created (`false` = authorise only).
    pub capture: Option<bool>,
    /// Captured so far, when the answer says.
    pub captured: Option<Minor>,
    /// Refunded so far, when the answer says.
    pub refunded: Option<Minor>,
    /// The card, as far as the answer tells (never the full number).
    pub card: Option<CardSummary>,
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl TransactionInfo {
    /// Reads a look-up answer for a payment in `currency`.
    pub fn from_json(v: &Value, currency: Currency) -> TransactionInfo {
        let tx = v.get("transaction").filter(|t| t.is_object());
        let pick = |key: &str| v.get(key).or_else(|| tx.and_then(|t| t.get(key)));
        let first_amount = |keys: &[&str]| {
            keys.iter().find_map(|k| pick(k).and_then(|a| minor_amount(a, currency)))
        };
        let card = v.get("card").filter(|c| c.is_object()).map(|c| {
            let month = c.get("expiry_month").and_then(|m| text(Some(m))).and_then(|m| m.parse::<u8>().ok());
            let year = c.get("expiry_year").and_then(|y| text(Some(y))).and_then(|y| y.parse::<u16>().ok());
            CardSummary {
                scheme: text(c.get("scheme")).map(|s| s.to_ascii_uppercase()),
                masked: text(c.get("number")).or_else(|| text(c.get("masked"))),
                expiry: match (year, month) {
                    (Some(y), Some(m)) => CardExpiry::new(if y < 100 { 2000 + y } else { y }, m),
                    _ => None,
                },
                on_file: text(c.get("card_id")).map(Opaque::new),
            }
        });
        TransactionInfo {
            transaction_id: text(pick("transaction_id")),
            status: text(pick("status")).map(|s| Status::parse(&s)).unwrap_or(Status::Other(String::new())),
            reason: text(pick("reason")),
            order_id: text(pick("order_id")),
            amount: first_amount(&["amount"]),
            capture: pick("capture").and_then(Value::as_bool),
            captured: first_amount(&["captured_amount", "amount_captured"]),
            refunded: first_amount(&["refunded_amount", "amount_refunded"]),
            card,
        }
    }

    /// What the look-up says about a payment of `kind` and `amount`.
    pub fn observation(&self, kind: PaymentKind, amount: Minor) -> Observation {
        let amount = self.amount.unwrap_or(amount);
        let mut obs = self.status.observation(self.reason.as_deref(), kind, amount);
        if obs.state == PaymentState::Authorized || obs.state == PaymentState::Captured {
            if let Some(c) = self.captured.filter(|c| c.is_positive()) {
                // an authorisation that was captured later reads `success` too
                obs.state = PaymentState::Captured;
                obs.captured = Some(c);
            }
            obs.refunded = self.refunded;
        }
        obs.card = self.card.clone();
        obs
    }
}

/// Capture and refund body (assumed shape, §11.7): `{"transaction": {"amount": 5.0}}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AmountRequest {
    /// The amount wrapper, as sessions nest it.
    pub transaction: AmountOnly,
}

/// The `transaction` of an [`AmountRequest`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AmountOnly {
    /// Major units, from [`major_amount`].
    pub amount: Number,
}

impl AmountRequest {
    /// For `amount`.
    pub fn new(amount: Money) -> Result<AmountRequest, Error> {
        Ok(AmountRequest { transaction: AmountOnly { amount: major_amount(amount)? } })
    }
}

/// The answer of capture, refund and reversal (assumed shape, §11.7): `status`, the
/// `transaction_id` of the resulting transaction, `reason` when it failed. Read leniently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationResult {
    /// The outcome.
    pub status: Status,
    /// The resulting transaction (the refund's own id), when given.
    pub transaction_id: Option<String>,
    /// Why not, when it failed.
    pub reason: Option<String>,
}

impl OperationResult {
    /// Reads the answer; a missing status is [`Status::Other`], which the gateway treats as
    /// "outcome unknown".
    pub fn from_json(v: &Value) -> OperationResult {
        let tx = v.get("transaction").filter(|t| t.is_object());
        let pick = |key: &str| v.get(key).or_else(|| tx.and_then(|t| t.get(key)));
        OperationResult {
            status: text(pick("status")).map(|s| Status::parse(&s)).unwrap_or(Status::Other(String::new())),
            transaction_id: text(pick("transaction_id")),
            reason: text(pick("reason")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn amounts_convert_once_and_exactly() {
        let n = major_amount(Money::new(1502, Currency::Gbp)).unwrap();
        assert_eq!(n.to_string(), "15.02");
        assert_eq!(major_amount(Money::new(1500, Currency::Gbp)).unwrap().to_string(), "15");
        assert_eq!(major_amount(Money::new(1, Currency::Eur)).unwrap().to_string(), "0.01");
        assert!(major_amount(Money::new(0, Currency::Gbp)).is_err());
        for minor in [1, 7, 10, 99, 1502, 123456, 999_999_99] {
            let n = major_amount(Money::new(minor, Currency::Gbp)).unwrap();
            assert_eq!(minor_amount(&Value::Number(n), Currency::Gbp), Some(Minor(minor)));
        }
        assert_eq!(minor_amount(&json!("15.02"), Currency::Gbp), Some(Minor(1502)));
        assert_eq!(minor_amount(&json!(true), Currency::Gbp), None);
    }

    #[test]
    fn session_body_is_canonical() {
        let mut t = TransactionDetails::new("ORD-1", Money::new(1502, Currency::Gbp)).unwrap();
        t.capture = Some(false);
        let mut r = SessionRequest::new(t);
        r.tds = Some(Tds {
            is_active: true,
            challenge_preference: Some(ChallengePreference::NoPreference),
            challenge_window_size: Some(ChallengeWindowSize::FullScreen),
            contact_url: Some("https://shop/contact".into()),
            redirect_url: Some("https://shop/back".into()),
            webhook_url: None,
        });
        r.payment_methods = Some(vec![PaymentMethod::Card, PaymentMethod::ApplePay]);
        r.save_card = Some(false);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["transaction"]["amount"], json!(15.02));
        assert_eq!(v["transaction"]["currency"], "gbp");
        assert_eq!(v["transaction"]["capture"], false);
        assert_eq!(v["tds"]["challenge_preference"], "no_preference");
        assert_eq!(v["tds"]["challenge_window_size"], "full_screen");
        assert_eq!(v["payment_methods"], json!(["card", "apple_pay"]));
        assert!(v.get("customer").is_none());
        assert!(TransactionDetails::new("X", Money::new(1, Currency::Gbp)).is_err());
        assert!(TransactionDetails::new("ORD", Money::new(1, Currency::Ils)).is_err());
        let c = Customer { first_name: Some("Jane".into()), ..Customer::default() };
        assert!(!format!("{c:?}").contains("Jane"));
    }

    #[test]
    fn status_mapping() {
        use PaymentState::*;
        let table = [
            ("success", Captured, Authorized),
            ("declined", Declined, Declined),
            ("blocked", Declined, Declined),
            ("error", Failed, Failed),
            ("tds_error", Failed, Failed),
            ("tds_expired", Expired, Expired),
            ("tds_failed", Declined, Declined),
            ("tds_pending", Pending, Pending),
            ("cancelled", Cancelled, Cancelled),
            ("something_new", Pending, Pending),
        ];
        for (word, sale, preauth) in table {
            let s = Status::parse(word);
            assert_eq!(s.as_str(), word);
            assert_eq!(s.neutral(PaymentKind::Sale), sale, "{word}");
            assert_eq!(s.neutral(PaymentKind::PreAuth), preauth, "{word}");
        }
        let obs = Status::TdsFailed.observation(Some("low_confidence"), PaymentKind::Sale, Minor(5));
        let d = obs.decline.unwrap();
        assert_eq!(d.provider_code.as_deref(), Some("tds_failed"));
        assert_eq!(d.message.as_deref(), Some("low_confidence"));
    }

    #[test]
    fn tolerant_lookup() {
        let a = TransactionInfo::from_json(
            &json!({"transaction_id": "t1", "status": "success",
                    "transaction": {"order_id": "O1", "amount": 15.02, "currency": "gbp", "capture": false},
                    "captured_amount": "10.00", "card": {"scheme": "visa", "number": "400001******9219", "expiry_month": 12, "expiry_year": 30}}),
            Currency::Gbp,
        );
        assert_eq!(a.amount, Some(Minor(1502)));
        assert_eq!(a.captured, Some(Minor(1000)));
        assert_eq!(a.card.as_ref().unwrap().expiry, CardExpiry::new(2030, 12));
        let obs = a.observation(PaymentKind::PreAuth, Minor(1502));
        assert_eq!(obs.state, PaymentState::Captured);
        let b = TransactionInfo::from_json(
            &json!({"transaction": {"transaction_id": "t1", "status": "DECLINED", "reason": "insufficient_funds", "amount": "1.5"}}),
            Currency::Gbp,
        );
        assert_eq!(b.status, Status::Declined);
        assert_eq!(b.amount, Some(Minor(150)));
        assert_eq!(b.reason.as_deref(), Some("insufficient_funds"));
        assert_eq!(OperationResult::from_json(&json!({})).status, Status::Other(String::new()));
    }

    #[test]
    fn error_body() {
        let e = ApiError::parse(
            r#"{"status":"error","error_type":"validation","title":"Your request parameters did not pass our validation.",
                "instance":"/v1/payment-sessions","invalid_parameters":[{"parameter":"transaction.order_id","reason":"transaction.order_id can not be empty"}]}"#,
        )
        .unwrap();
        assert_eq!(e.error_type.as_deref(), Some("validation"));
        assert!(e.to_string().contains("transaction.order_id: transaction.order_id can not be empty"));
        assert!(ApiError::parse("<html>").is_none());
        assert!(ApiError::parse("{}").is_none());
    }
}
