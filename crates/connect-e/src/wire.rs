//! Connect-E's wire format (fact sheet §3–§7), written down once.
//!
//! Requests are built only from our types ([`AccessTokenRequest::new`] takes a [`Money`]) so that
//! what we send is always canonical: ISO 4217 numeric `currencyCode` (`"826"`), `amount` as the
//! minor-unit digit string (`"1250"` for £12.50), the documented camelCase names (and
//! `webHookUrl` as the OpenAPI document spells it). Responses are read leniently: every field is
//! optional, numbers may arrive as strings, unknown fields are ignored, `transactionDateTime` is
//! understood in the Go-style example form and in ISO 8601.

use crate::error::Error;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use till_core::{Currency, Money};
use till_gateway::{
    Awaiting, CardExpiry, CardSummary, DeclineCategory, DeclineReason, Observation, Opaque,
    PaymentKind, PaymentState,
};
use time::OffsetDateTime;

/// The currencies Connect-E takes from Till Agent, with their ISO 4217 numeric codes. Connect-E
/// is a UK gateway; docs/DECISIONS.md ("Connect-E") records why these three.
pub const CURRENCIES: [(Currency, &str); 3] = [
    (Currency::Gbp, "826"),
    (Currency::Eur, "978"),
    (Currency::Usd, "840"),
];

/// The currencies alone (for the gateway's capabilities).
pub const CURRENCY_LIST: [Currency; 3] = [Currency::Gbp, Currency::Eur, Currency::Usd];

/// The ISO 4217 numeric code Connect-E expects for `currency`.
pub fn numeric_currency(currency: Currency) -> Result<&'static str, Error> {
    CURRENCIES
        .iter()
        .find(|(c, _)| *c == currency)
        .map(|(_, n)| *n)
        .ok_or_else(|| Error::Config(format!("Connect-E does not take {currency}")))
}

/// The currency of a numeric code, if it is one we handle.
pub fn currency_of_numeric(code: &str) -> Option<Currency> {
    CURRENCIES.iter().find(|(_, n)| *n == code).map(|(c, _)| *c)
}

/// `transactionType` (§4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TransactionType {
    /// Authorise and capture.
    Sale,
    /// Authorise only.
    Preauth,
    /// Collect a pre-authorisation (cross reference).
    Collection,
    /// Give money back (cross reference).
    Refund,
    /// Release an authorisation (cross reference).
    Void,
}

impl TransactionType {
    /// The payment kind for web payments (`SALE`/`PREAUTH`).
    pub fn for_kind(kind: PaymentKind) -> TransactionType {
        match kind {
            PaymentKind::Sale => TransactionType::Sale,
            PaymentKind::PreAuth => TransactionType::Preauth,
        }
    }
}

/// `shippingDetails` (§4.1, §4.2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingDetails {
    /// Recipient name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
}

/// The Address object (§4.2). All strings; `countryCode` numeric.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct Address {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address3: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address4: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postcode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
}

/// `POST /v1/access-tokens` body (§4.1), every documented field. Build it with
/// [`AccessTokenRequest::new`] and set the optional fields directly.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessTokenRequest {
    /// Must match the account's registered URL.
    pub merchant_url: String,
    /// ISO 4217 numeric, three digits.
    pub currency_code: String,
    /// Minor units as digits.
    pub amount: String,
    /// What the token is for.
    pub transaction_type: TransactionType,
    /// `"MOTO"` for keyed card-not-present entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_source: Option<String>,
    /// The merchant's order reference.
    pub order_id: String,
    /// Unique per token when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merchant_transaction_id: Option<String>,
    /// Free text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_description: Option<String>,
    /// Cardholder's browser (not for cross-reference transactions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Cardholder e-mail (not for cross-reference transactions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_email_address: Option<String>,
    /// Cardholder phone (not for cross-reference transactions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_phone_number: Option<String>,
    /// Cardholder IP (not for cross-reference transactions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_ip_address: Option<String>,
    /// Billing address line 1.
    #[serde(rename = "userAddress1", skip_serializing_if = "Option::is_none")]
    pub user_address1: Option<String>,
    /// Billing address line 2.
    #[serde(rename = "userAddress2", skip_serializing_if = "Option::is_none")]
    pub user_address2: Option<String>,
    /// Billing address line 3.
    #[serde(rename = "userAddress3", skip_serializing_if = "Option::is_none")]
    pub user_address3: Option<String>,
    /// Billing address line 4.
    #[serde(rename = "userAddress4", skip_serializing_if = "Option::is_none")]
    pub user_address4: Option<String>,
    /// Billing city.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_city: Option<String>,
    /// Billing state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_state: Option<String>,
    /// Billing postcode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_postcode: Option<String>,
    /// Billing country, ISO numeric (three digits) or empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_country_code: Option<String>,
    /// Shipping name and address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shipping_details: Option<ShippingDetails>,
    /// Cross-reference transactions only: "treat as a new transaction".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_transaction: Option<bool>,
    /// A previous transaction's cross reference (repeat payments, refund, collection, void).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cross_reference: Option<Opaque>,
    /// Where Connect-E posts the completion notice. Spelled as the OpenAPI document does.
    #[serde(rename = "webHookUrl", skip_serializing_if = "Option::is_none")]
    pub web_hook_url: Option<String>,
    /// Echoed back by the payment details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta_data: Option<BTreeMap<String, String>>,
    /// Pause after authentication until resumed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_pre_execute: Option<bool>,
    /// Enables saving the payment method for this customer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
}

impl AccessTokenRequest {
    /// The required fields, from our types. Refuses a currency Connect-E does not take and an
    /// amount that is not a positive whole number of minor units.
    pub fn new(
        merchant_url: impl Into<String>,
        amount: Money,
        transaction_type: TransactionType,
        order_id: impl Into<String>,
    ) -> Result<AccessTokenRequest, Error> {
        let currency_code = numeric_currency(amount.currency)?.to_string();
        if amount.minor.0 <= 0 {
            return Err(Error::Config(format!(
                "amount must be positive, not {}",
                amount.minor
            )));
        }
        let order_id = order_id.into();
        if order_id.trim().is_empty() {
            return Err(Error::Config("orderId must not be empty".into()));
        }
        Ok(AccessTokenRequest {
            merchant_url: merchant_url.into(),
            currency_code,
            amount: amount.minor.0.to_string(),
            transaction_type,
            transaction_source: None,
            order_id,
            merchant_transaction_id: None,
            order_description: None,
            user_agent: None,
            user_email_address: None,
            user_phone_number: None,
            user_ip_address: None,
            user_address1: None,
            user_address2: None,
            user_address3: None,
            user_address4: None,
            user_city: None,
            user_state: None,
            user_postcode: None,
            user_country_code: None,
            shipping_details: None,
            new_transaction: None,
            cross_reference: None,
            web_hook_url: None,
            meta_data: None,
            wait_pre_execute: None,
            customer_id: None,
        })
    }
}

impl fmt::Debug for AccessTokenRequest {
    /// Shows what identifies the request; personal data and the cross reference never.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessTokenRequest")
            .field("transaction_type", &self.transaction_type)
            .field("currency_code", &self.currency_code)
            .field("amount", &self.amount)
            .field("order_id", &self.order_id)
            .field("transaction_source", &self.transaction_source)
            .field("cross_reference", &self.cross_reference)
            .field("wait_pre_execute", &self.wait_pre_execute)
            .finish_non_exhaustive()
    }
}

/// `POST /v1/access-tokens` answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessToken {
    /// The access token (path parameter, `paymentToken`, webhook `id`).
    pub id: Opaque,
    /// Expiry, Unix seconds (UTC). Read from a number or a digit string.
    #[serde(default, deserialize_with = "lenient_i64")]
    pub expires_at: Option<i64>,
}

impl AccessToken {
    /// The expiry as a time, when given and in range.
    pub fn expires(&self) -> Option<OffsetDateTime> {
        self.expires_at
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
    }
}

/// `POST /v1/cross-reference-payments/{token}` body (§4.3).
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CrossReferencePaymentRequest {
    /// The earlier transaction's cross reference.
    pub cross_reference: Opaque,
    /// CV2 for a server-side repeat payment (SAQ-D merchants only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cv2: Option<Opaque>,
}

impl fmt::Debug for CrossReferencePaymentRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrossReferencePaymentRequest")
            .field("cross_reference", &self.cross_reference)
            .field("cv2", &self.cv2.as_ref().map(|_| "***"))
            .finish()
    }
}

/// A Connect-E `statusCode` (§5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusCode {
    /// 0 — succeeded.
    Successful,
    /// 3 — the cardholder is in 3-D Secure.
    Authorizing,
    /// 4 — referred by the issuer.
    Referred,
    /// 5 — declined.
    Declined,
    /// 20 — duplicate transaction.
    Duplicate,
    /// 30 — failed.
    Failed,
    /// 40 — being processed.
    Processing,
    /// 90 — revoked during 3-D Secure.
    Revoked,
    /// 99 — waiting for resume.
    WaitingPreExecute,
    /// A code the fact sheet does not list (kept, mapped to "still pending").
    Other(i64),
}

impl StatusCode {
    /// From the wire number.
    pub fn from_code(code: i64) -> StatusCode {
        match code {
            0 => StatusCode::Successful,
            3 => StatusCode::Authorizing,
            4 => StatusCode::Referred,
            5 => StatusCode::Declined,
            20 => StatusCode::Duplicate,
            30 => StatusCode::Failed,
            40 => StatusCode::Processing,
            90 => StatusCode::Revoked,
            99 => StatusCode::WaitingPreExecute,
            other => StatusCode::Other(other),
        }
    }

    /// The wire number.
    pub fn code(self) -> i64 {
        match self {
            StatusCode::Successful => 0,
            StatusCode::Authorizing => 3,
            StatusCode::Referred => 4,
            StatusCode::Declined => 5,
            StatusCode::Duplicate => 20,
            StatusCode::Failed => 30,
            StatusCode::Processing => 40,
            StatusCode::Revoked => 90,
            StatusCode::WaitingPreExecute => 99,
            StatusCode::Other(n) => n,
        }
    }

    /// **The** mapping of §5 to the neutral state, for a payment of `kind`. Success means
    /// captured for a sale and authorised for a pre-authorisation; 3, 40, 99 and unknown codes
    /// are still pending (we never conclude from a code we do not know); 4, 5 and 20 are
    /// declines; 30 failed; 90 cancelled.
    pub fn neutral(self, kind: PaymentKind) -> PaymentState {
        match self {
            StatusCode::Successful => match kind {
                PaymentKind::Sale => PaymentState::Captured,
                PaymentKind::PreAuth => PaymentState::Authorized,
            },
            StatusCode::Authorizing
            | StatusCode::Processing
            | StatusCode::WaitingPreExecute
            | StatusCode::Other(_) => PaymentState::Pending,
            StatusCode::Referred | StatusCode::Declined | StatusCode::Duplicate => {
                PaymentState::Declined
            }
            StatusCode::Failed => PaymentState::Failed,
            StatusCode::Revoked => PaymentState::Cancelled,
        }
    }

    /// True when the transaction will not change any more (0, 4, 5, 20, 30, 90).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            StatusCode::Successful
                | StatusCode::Referred
                | StatusCode::Declined
                | StatusCode::Duplicate
                | StatusCode::Failed
                | StatusCode::Revoked
        )
    }

    /// The neutral decline category, for unsuccessful codes.
    pub fn decline_category(self) -> Option<DeclineCategory> {
        match self {
            StatusCode::Referred => Some(DeclineCategory::Referred),
            StatusCode::Declined => Some(DeclineCategory::Declined),
            StatusCode::Duplicate => Some(DeclineCategory::Duplicate),
            StatusCode::Failed => Some(DeclineCategory::Error),
            StatusCode::Revoked => Some(DeclineCategory::Cancelled),
            _ => None,
        }
    }

    /// The decline reason for an unsuccessful code, with Connect-E's message.
    pub fn decline(self, message: Option<&str>) -> Option<DeclineReason> {
        self.decline_category().map(|category| DeclineReason {
            category,
            provider_code: Some(self.code().to_string()),
            message: message.map(str::to_string),
        })
    }
}

/// `GET /v1/payments/{token}` answer (`paymentInfo`, §4.2). Every field optional. `Debug`
/// leaves out the cardholder's name, e-mail and addresses and masks the cross reference.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentInfo {
    /// When it happened, as Connect-E wrote it; see [`PaymentInfo::transaction_time`].
    #[serde(default)]
    pub transaction_date_time: Option<String>,
    /// The §5 code, from a number or a digit string.
    #[serde(default, deserialize_with = "lenient_i64")]
    pub status_code: Option<i64>,
    /// e.g. `AuthCode: 898968`.
    #[serde(default)]
    pub message: Option<String>,
    /// For cross-reference payments; never expires.
    #[serde(default)]
    pub cross_reference: Option<Opaque>,
    /// Issuer's code.
    #[serde(default)]
    pub auth_code: Option<String>,
    /// Masked card number.
    #[serde(default)]
    pub card_number: Option<String>,
    /// Cardholder name (personal data: not kept by the gateway).
    #[serde(default)]
    pub card_name: Option<String>,
    /// `MM/YY`.
    #[serde(default)]
    pub expiry_date: Option<String>,
    /// `VISA`, `MASTERCARD`, …
    #[serde(default)]
    pub card_type: Option<String>,
    /// Billing address.
    #[serde(default)]
    pub billing_address: Option<Address>,
    /// Shipping.
    #[serde(default)]
    pub shipping_details: Option<ShippingDetails>,
    /// Cardholder e-mail.
    #[serde(default)]
    pub user_email_address: Option<String>,
    /// As passed at token creation.
    #[serde(default)]
    pub meta_data: Option<BTreeMap<String, String>>,
}

impl fmt::Debug for PaymentInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaymentInfo")
            .field("transaction_date_time", &self.transaction_date_time)
            .field("status_code", &self.status_code)
            .field("message", &self.message)
            .field("cross_reference", &self.cross_reference)
            .field("auth_code", &self.auth_code)
            .field("card_number", &self.card_number)
            .field("expiry_date", &self.expiry_date)
            .field("card_type", &self.card_type)
            .finish_non_exhaustive()
    }
}

/// How long a payment paused in status 99 may be resumed (§4.4).
pub const RESUME_WINDOW: time::Duration = time::Duration::minutes(15);

impl PaymentInfo {
    /// The status, if present.
    pub fn status(&self) -> Option<StatusCode> {
        self.status_code.map(StatusCode::from_code)
    }

    /// `transactionDateTime`, parsed leniently (see [`parse_transaction_time`]).
    pub fn transaction_time(&self) -> Option<OffsetDateTime> {
        self.transaction_date_time
            .as_deref()
            .and_then(parse_transaction_time)
    }

    /// The card, as far as the answer tells (no cardholder name: we do not need it).
    pub fn card(&self) -> Option<CardSummary> {
        let card = CardSummary {
            scheme: self.card_type.clone().filter(|s| !s.is_empty()),
            masked: self.card_number.clone().filter(|s| !s.is_empty()),
            expiry: self.expiry_date.as_deref().and_then(parse_expiry),
            on_file: self.cross_reference.clone().filter(|c| !c.is_empty()),
        };
        (card.scheme.is_some() || card.masked.is_some() || card.on_file.is_some()).then_some(card)
    }

    /// What this answer means for a payment of `kind` and `amount` (minor units), at `now`.
    /// A 99 whose resume window is over (when the answer says when it paused) is reported as
    /// expired: one reading of the undocumented §4.4 lapse is that the status simply stays 99.
    pub fn observation(
        &self,
        kind: PaymentKind,
        amount: till_core::Minor,
        now: OffsetDateTime,
    ) -> Observation {
        let mut obs = status_observation(
            self.status_code,
            self.auth_code.as_deref(),
            self.message.as_deref(),
            kind,
            amount,
        );
        let code = self.status().unwrap_or(StatusCode::Other(-1));
        obs.card = self.card();
        match code {
            StatusCode::Authorizing => obs.awaiting = Some(Awaiting::Authentication),
            StatusCode::WaitingPreExecute => {
                let until = self.transaction_time().map(|t| t + RESUME_WINDOW);
                if until.is_some_and(|u| now > u) {
                    obs.state = PaymentState::Expired;
                    obs.decline = Some(DeclineReason {
                        category: DeclineCategory::Expired,
                        provider_code: Some("99".into()),
                        message: Some("not resumed within 15 minutes".into()),
                    });
                } else {
                    obs.awaiting = Some(Awaiting::Resume { until });
                }
            }
            _ => {}
        }
        obs
    }
}

/// What a status code (of payment details or of a resume answer) says about a payment of `kind`
/// and `amount`: the neutral state by [`StatusCode::neutral`], the amounts it implies, the auth
/// code of a success, the decline reason of a failure. Written once for both answers.
pub fn status_observation(
    status_code: Option<i64>,
    auth_code: Option<&str>,
    message: Option<&str>,
    kind: PaymentKind,
    amount: till_core::Minor,
) -> Observation {
    let code = status_code
        .map(StatusCode::from_code)
        .unwrap_or(StatusCode::Other(-1));
    let mut obs = Observation::of(code.neutral(kind));
    obs.provider_status = status_code.map(|c| c.to_string());
    match obs.state {
        PaymentState::Captured => {
            obs.authorized = Some(amount);
            obs.captured = Some(amount);
        }
        PaymentState::Authorized => obs.authorized = Some(amount),
        _ => {}
    }
    if code == StatusCode::Successful {
        obs.auth_code = auth_code.filter(|c| !c.is_empty()).map(str::to_string);
    }
    obs.decline = code.decline(message);
    obs
}

/// The answer of a cross-reference payment and of resume (§4.3, §4.4).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusResult {
    /// `0, 4, 5, 20, 30`, from a number or a digit string.
    #[serde(default, deserialize_with = "lenient_i64")]
    pub status_code: Option<i64>,
    /// Issuer's code.
    #[serde(default)]
    pub auth_code: Option<String>,
    /// e.g. `AuthCode: 898968`.
    #[serde(default)]
    pub message: Option<String>,
}

impl StatusResult {
    /// The status, if present.
    pub fn status(&self) -> Option<StatusCode> {
        self.status_code.map(StatusCode::from_code)
    }
}

/// `GET /v1/payment-methods` answer (§4.6). Values are kept as strings so that a scheme added
/// by Connect-E later does not make the answer unreadable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentMethods {
    /// `VISA`, `MASTERCARD`, `MAESTRO`, `AMEX`, `DCI`, `DISCOVER`.
    #[serde(default)]
    pub card_schemes: Vec<String>,
    /// `APPLE_PAY`, `GOOGLE_PAY`.
    #[serde(default)]
    pub wallets: Vec<String>,
}

/// The webhook body (§7): no status, by design. Both `webHookUrl` spellings are a request-side
/// concern; this is what arrives at the URL.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookNotice {
    /// The access token of the transaction.
    pub id: Opaque,
    /// The order id given at creation.
    #[serde(default)]
    pub order_id: Option<String>,
    /// The merchant transaction id given at creation.
    #[serde(default)]
    pub merchant_transaction_id: Option<String>,
}

/// Reads `MM/YY` (or `MM/YYYY`) into an expiry.
pub fn parse_expiry(text: &str) -> Option<CardExpiry> {
    let (m, y) = text.trim().split_once('/')?;
    let month: u8 = m.trim().parse().ok()?;
    let year: u16 = match y.trim() {
        y2 if y2.len() == 2 => 2000 + y2.parse::<u16>().ok()?,
        y4 if y4.len() == 4 => y4.parse().ok()?,
        _ => return None,
    };
    CardExpiry::new(year, month)
}

/// Parses `transactionDateTime` in the forms seen or plausible: the OpenAPI example
/// `2019-07-16 07:39:29 +0000 UTC` (Go's `time.String()`), the same without the zone name,
/// RFC 3339 / ISO 8601 (`2019-07-16T07:39:29Z`, `…+01:00`, fractional seconds).
pub fn parse_transaction_time(text: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    let t = text.trim();
    if let Ok(v) = OffsetDateTime::parse(t, &Rfc3339) {
        return Some(v);
    }
    // Go style: drop a trailing zone abbreviation after the numeric offset.
    let mut parts: Vec<&str> = t.split_whitespace().collect();
    if parts.len() == 4 && parts[3].chars().all(|c| c.is_ascii_alphabetic()) {
        parts.pop();
    }
    if parts.len() == 3 {
        // fractional seconds, if any, are dropped: second precision is plenty here
        let clock = parts[1].split('.').next().unwrap_or(parts[1]);
        let joined = format!("{} {} {}", parts[0], clock, parts[2]);
        let fmt = format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second] [offset_hour sign:mandatory][offset_minute]"
        );
        if let Ok(v) = OffsetDateTime::parse(&joined, &fmt) {
            return Some(v);
        }
        let fmt_colon = format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second] [offset_hour sign:mandatory]:[offset_minute]"
        );
        if let Ok(v) = OffsetDateTime::parse(&joined, &fmt_colon) {
            return Some(v);
        }
    }
    None
}

/// Formats a time the way the OpenAPI example does (`2019-07-16 07:39:29 +0000 UTC`).
pub fn format_transaction_time(t: OffsetDateTime) -> String {
    use time::macros::format_description;
    let fmt = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let utc = t.to_offset(time::UtcOffset::UTC);
    format!("{} +0000 UTC", utc.format(&fmt).unwrap_or_default())
}

/// An integer from a JSON number or a digit string; anything else reads as absent.
fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use till_core::Minor;
    use time::macros::datetime;

    #[test]
    fn strict_request() {
        let mut r = AccessTokenRequest::new(
            "https://shop.example",
            Money::new(1250, Currency::Gbp),
            TransactionType::Sale,
            "ORD-0001",
        )
        .unwrap();
        r.web_hook_url = Some("https://shop.example/hook".into());
        r.cross_reference = Some(Opaque::new("181025085937854101886353"));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["currencyCode"], "826");
        assert_eq!(v["amount"], "1250");
        assert_eq!(v["transactionType"], "SALE");
        assert_eq!(v["orderId"], "ORD-0001");
        assert_eq!(v["webHookUrl"], "https://shop.example/hook");
        assert_eq!(v["crossReference"], "181025085937854101886353");
        assert!(v.get("customerId").is_none());
        assert!(!format!("{r:?}").contains("181025085937854101886353"));
        assert!(AccessTokenRequest::new(
            "u",
            Money::new(1, Currency::Ils),
            TransactionType::Sale,
            "o"
        )
        .is_err());
        assert!(AccessTokenRequest::new(
            "u",
            Money::new(0, Currency::Gbp),
            TransactionType::Sale,
            "o"
        )
        .is_err());
        assert!(AccessTokenRequest::new(
            "u",
            Money::new(1, Currency::Gbp),
            TransactionType::Sale,
            " "
        )
        .is_err());
    }

    #[test]
    fn tolerant_reads() {
        let info: PaymentInfo = serde_json::from_str(
            r#"{"transactionDateTime":"2019-07-16 07:39:29 +0000 UTC","statusCode":"0","authCode":"866344",
                "cardNumber":"411111*****1111","expiryDate":"11/20","cardType":"VISA",
                "crossReference":"181025085937854101886353","somethingNew":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(info.status(), Some(StatusCode::Successful));
        assert_eq!(
            info.transaction_time(),
            Some(datetime!(2019-07-16 07:39:29 UTC))
        );
        let obs = info.observation(
            PaymentKind::Sale,
            Minor(1250),
            datetime!(2019-07-16 08:00 UTC),
        );
        assert_eq!(obs.state, PaymentState::Captured);
        assert_eq!(obs.captured, Some(Minor(1250)));
        assert_eq!(obs.auth_code.as_deref(), Some("866344"));
        let card = obs.card.unwrap();
        assert_eq!(card.expiry, CardExpiry::new(2020, 11));
        assert_eq!(card.on_file.unwrap().expose(), "181025085937854101886353");
        let t: AccessToken =
            serde_json::from_str(r#"{"id":"abc","expiresAt":"1540457361"}"#).unwrap();
        assert_eq!(t.expires_at, Some(1540457361));
        let named: PaymentInfo =
            serde_json::from_str(r#"{"cardName":"Jane Q Holder","userEmailAddress":"jane@example.com"}"#).unwrap();
        let text = format!("{named:?}");
        assert!(!text.contains("Jane") && !text.contains("jane@"), "{text}");
        let empty: PaymentInfo = serde_json::from_str("{}").unwrap();
        assert_eq!(
            empty
                .observation(PaymentKind::Sale, Minor(1), datetime!(2020-01-01 0:00 UTC))
                .state,
            PaymentState::Pending
        );
    }

    #[test]
    fn time_styles() {
        let want = datetime!(2019-07-16 07:39:29 UTC);
        for s in [
            "2019-07-16 07:39:29 +0000 UTC",
            "2019-07-16 07:39:29 +0000",
            "2019-07-16 07:39:29.123456 +0000 UTC",
            "2019-07-16T07:39:29Z",
            "2019-07-16T08:39:29+01:00",
            "2019-07-16 08:39:29 +01:00",
        ] {
            assert_eq!(parse_transaction_time(s), Some(want), "{s}");
        }
        assert_eq!(parse_transaction_time("yesterday"), None);
        assert_eq!(
            format_transaction_time(want),
            "2019-07-16 07:39:29 +0000 UTC"
        );
    }

    #[test]
    fn status_mapping() {
        use PaymentState::*;
        let table = [
            (0, Captured, Authorized),
            (3, Pending, Pending),
            (4, Declined, Declined),
            (5, Declined, Declined),
            (20, Declined, Declined),
            (30, Failed, Failed),
            (40, Pending, Pending),
            (90, Cancelled, Cancelled),
            (99, Pending, Pending),
            (7, Pending, Pending),
        ];
        for (code, sale, preauth) in table {
            let s = StatusCode::from_code(code);
            assert_eq!(s.code(), code);
            assert_eq!(s.neutral(PaymentKind::Sale), sale, "{code}");
            assert_eq!(s.neutral(PaymentKind::PreAuth), preauth, "{code}");
        }
    }

    #[test]
    fn resume_window() {
        let info = PaymentInfo {
            status_code: Some(99),
            transaction_date_time: Some("2026-01-01 10:00:00 +0000 UTC".into()),
            ..PaymentInfo::default()
        };
        let early = info.observation(PaymentKind::Sale, Minor(5), datetime!(2026-01-01 10:14 UTC));
        assert_eq!(early.state, PaymentState::Pending);
        assert!(matches!(
            early.awaiting,
            Some(Awaiting::Resume { until: Some(_) })
        ));
        let late = info.observation(PaymentKind::Sale, Minor(5), datetime!(2026-01-01 10:16 UTC));
        assert_eq!(late.state, PaymentState::Expired);
    }

    #[test]
    fn expiry_forms() {
        assert_eq!(parse_expiry("12/30"), CardExpiry::new(2030, 12));
        assert_eq!(parse_expiry("01/2031"), CardExpiry::new(2031, 1));
        assert_eq!(parse_expiry("13/30"), None);
        assert_eq!(parse_expiry("1230"), None);
    }
}
