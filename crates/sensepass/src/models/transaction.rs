//! The Transaction entity (spec §7.1): what `init`, the status API, Socket.IO `message` events
//! and callbacks all deliver.
//!
//! SensePass's own examples disagree about types (amount as a string or a number, `businessId`
//! as a number or a string, `messsage` or `message`, `timeOut` or `timeout`, metadata as an array
//! or an object), and new fields appear without notice. So a [`Transaction`] keeps the original
//! JSON in [`Transaction::raw`] — the agent hands it back to POS software unchanged, never losing
//! a field — and offers typed, tolerant accessors on top. Only the two fields nothing can work
//! without, `TransactionNumber` and `status`, are checked when the entity is read.

use crate::error::{Error, FieldError};
use crate::models::subscription::Subscription;
use crate::models::wire::{
    first_of, lenient_bool, lenient_i64, major_amount, opt_bool, opt_i64, scalar_string,
    vec_or_null,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::fmt;
use till_core::{Currency, Minor, Money, Product, Status};

/// SensePass's identifier of a transaction (`TransactionNumber`, 56 hex characters in the
/// examples). A newtype so that it is never confused with an order ID or a device ID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TransactionNumber(String);

impl TransactionNumber {
    /// Wraps a transaction number as received or stored.
    pub fn new(number: impl Into<String>) -> TransactionNumber {
        TransactionNumber(number.into())
    }

    /// The number as text, for URLs and storage.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TransactionNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for TransactionNumber {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for TransactionNumber {
    fn from(s: &str) -> Self {
        TransactionNumber(s.to_string())
    }
}

impl From<String> for TransactionNumber {
    fn from(s: String) -> Self {
        TransactionNumber(s)
    }
}

/// Why a payment was declined or failed: a code and a text, either of which may be missing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeclineReason {
    /// The processor's or SensePass's code, as a string (numbers are written out).
    pub code: Option<String>,
    /// Text for the cashier.
    pub message: Option<String>,
}

/// A SensePass transaction as received, with typed accessors over the original JSON.
#[derive(Clone, PartialEq)]
pub struct Transaction {
    /// The entity exactly as SensePass sent it. Treat it as read-only: [`Transaction::number`]
    /// and [`Transaction::status`] are read from it once, by [`Transaction::from_json`].
    pub raw: Value,
    number: TransactionNumber,
    status: Status,
}

impl Transaction {
    /// Reads an entity. Fails only when it is not a JSON object, has no usable
    /// `TransactionNumber`, or has no known `status` (a number or a numeric string).
    pub fn from_json(value: Value) -> Result<Transaction, Error> {
        if !value.is_object() {
            return Err(Error::Decode(format!(
                "a transaction must be a JSON object, got {}",
                json_kind(&value)
            )));
        }
        let number = match value.get("TransactionNumber").and_then(scalar_string) {
            Some(n) if !n.trim().is_empty() => TransactionNumber(n),
            _ => return Err(FieldError::Missing("TransactionNumber").into()),
        };
        let status = match value.get("status") {
            None | Some(Value::Null) => return Err(FieldError::Missing("status").into()),
            Some(v) => lenient_i64(v).and_then(Status::from_code).ok_or_else(|| {
                Error::from(FieldError::Invalid {
                    field: "status",
                    reason: format!("unknown status {v}"),
                })
            })?,
        };
        Ok(Transaction {
            raw: value,
            number,
            status,
        })
    }

    /// Any field of the entity by its wire name, for what has no accessor.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.raw.get(field).filter(|v| !v.is_null())
    }

    /// `TransactionNumber`.
    pub fn number(&self) -> &TransactionNumber {
        &self.number
    }

    /// `status`.
    pub fn status(&self) -> Status {
        self.status
    }

    /// `statusName`, the human status text SensePass sent.
    pub fn status_name(&self) -> Option<&str> {
        self.get("statusName").and_then(Value::as_str)
    }

    /// `currency`.
    pub fn currency(&self) -> Result<Currency, FieldError> {
        let code = self
            .get("currency")
            .ok_or(FieldError::Missing("currency"))?;
        let code = code.as_str().ok_or_else(|| FieldError::Invalid {
            field: "currency",
            reason: format!("expected a string, got {code}"),
        })?;
        Currency::from_code(code).map_err(|e| FieldError::Invalid {
            field: "currency",
            reason: e.to_string(),
        })
    }

    /// `amount` (a major-unit string such as `"12.5"`, or a JSON number in major units) as
    /// exact minor units with the currency.
    pub fn amount_minor(&self) -> Result<Money, FieldError> {
        self.money_field("amount")
    }

    /// `baseAmount`, when present, as exact minor units.
    pub fn base_amount_minor(&self) -> Result<Money, FieldError> {
        self.money_field("baseAmount")
    }

    fn money_field(&self, field: &'static str) -> Result<Money, FieldError> {
        let currency = self.currency()?;
        let raw = self.get(field).ok_or(FieldError::Missing(field))?;
        let minor =
            major_amount(raw, currency).map_err(|reason| FieldError::Invalid { field, reason })?;
        Ok(Money { minor, currency })
    }

    /// `posData`, the merchant's opaque data echoed back (the agent keeps its order ID here).
    pub fn pos_data(&self) -> Option<&Value> {
        self.get("posData")
    }

    /// `date`, the creation time as SensePass wrote it.
    pub fn date(&self) -> Option<&str> {
        self.get("date").and_then(Value::as_str)
    }

    /// `timeoutDate`, when the transaction times out, as SensePass wrote it.
    pub fn timeout_date(&self) -> Option<&str> {
        self.get("timeoutDate").and_then(Value::as_str)
    }

    /// `date` parsed as RFC 3339.
    pub fn created_at(&self) -> Option<time::OffsetDateTime> {
        parse_time(self.date()?)
    }

    /// `timeoutDate` parsed as RFC 3339.
    pub fn timeout_at(&self) -> Option<time::OffsetDateTime> {
        parse_time(self.timeout_date()?)
    }

    /// `timeOut` (or `timeout`) in seconds, as a number or a numeric string.
    pub fn timeout_seconds(&self) -> Option<i64> {
        first_of(&self.raw, &["timeOut", "timeout"]).and_then(lenient_i64)
    }

    /// `businessId`, a number in the model and a string in some examples.
    pub fn business_id(&self) -> Option<String> {
        self.get("businessId").and_then(scalar_string)
    }

    /// `methodType`, numeric in responses (0 for a regular payment).
    pub fn method_type(&self) -> Option<i64> {
        self.get("methodType").and_then(lenient_i64)
    }

    /// `pos`, the register name.
    pub fn pos(&self) -> Option<&str> {
        self.get("pos").and_then(Value::as_str)
    }

    /// `reason` shown to the consumer.
    pub fn reason(&self) -> Option<&str> {
        self.get("reason").and_then(Value::as_str)
    }

    /// Why a payment was declined or failed, when SensePass says. Not documented; the sandbox
    /// sends `errorCode` + `errorMessage` as the refund answer does (docs/DECISIONS.md). Also read:
    /// a `declineReason` object (`code`, `message`) or string, and `statusReason`/`failureReason`
    /// strings. `None` when the entity carries none of them.
    pub fn decline_reason(&self) -> Option<DeclineReason> {
        let text = |v: &Value| v.as_str().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        let code = |v: &Value| scalar_string(v).filter(|s| !s.trim().is_empty());
        let top = (self.get("errorCode").and_then(code), self.get("errorMessage").and_then(text));
        if top.0.is_some() || top.1.is_some() {
            return Some(DeclineReason { code: top.0, message: top.1 });
        }
        match self.get("declineReason") {
            Some(Value::Object(o)) => {
                let c = o.get("code").or_else(|| o.get("errorCode")).and_then(code);
                let m = o.get("message").or_else(|| o.get("errorMessage")).and_then(text);
                if c.is_some() || m.is_some() {
                    return Some(DeclineReason { code: c, message: m });
                }
            }
            Some(v) => {
                if let Some(m) = text(v) {
                    return Some(DeclineReason { code: None, message: Some(m) });
                }
            }
            None => {}
        }
        ["statusReason", "failureReason"]
            .iter()
            .find_map(|k| self.get(k).and_then(text))
            .map(|m| DeclineReason { code: None, message: Some(m) })
    }

    /// `metadata`: an array in requests, an object in some callbacks. Returned as is.
    pub fn metadata(&self) -> Option<&Value> {
        self.get("metadata")
    }

    /// `productSumMismatch`: the cart total differs from the amount.
    pub fn product_sum_mismatch(&self) -> bool {
        self.get("productSumMismatch")
            .and_then(lenient_bool)
            .unwrap_or(false)
    }

    /// `products`, as cart lines in minor units.
    pub fn products(&self) -> Result<Vec<Product>, FieldError> {
        match self.get("products") {
            None => Ok(Vec::new()),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| FieldError::Invalid {
                field: "products",
                reason: e.to_string(),
            }),
        }
    }

    /// `paymentCommit`: whether and how the POS must acknowledge an approved payment.
    pub fn payment_commit(&self) -> Option<PaymentCommit> {
        self.get("paymentCommit")
            .filter(|v| v.is_object())
            .map(PaymentCommit::from_value)
    }

    /// `confirmations` (§7.9): one per approval or refund. Entries that are not objects are
    /// skipped; every field of an entry is optional.
    pub fn confirmations(&self) -> Vec<Confirmation> {
        self.get("confirmations")
            .and_then(Value::as_array)
            .map(|items| items.iter().filter_map(Confirmation::from_value).collect())
            .unwrap_or_default()
    }

    /// `transactionPage`: the consumer links and QR URL. Falls back to the deprecated
    /// `paymentMethodData.directAppLinks` of older examples.
    pub fn transaction_page(&self) -> Option<TransactionPage> {
        let page = self
            .get("transactionPage")
            .filter(|v| v.is_object())
            .or_else(|| {
                self.get("paymentMethodData")
                    .and_then(|d| d.get("directAppLinks"))
                    .filter(|v| v.is_object())
            })?;
        serde_json::from_value(page.clone()).ok()
    }

    /// `paymentDetails`, e.g. `{type: "Tokenize", token}`. May hold a reusable card token: do
    /// not log it.
    pub fn payment_details(&self) -> Option<&Value> {
        self.get("paymentDetails")
    }

    /// `subscription` (§7.12) of a subscription transaction.
    pub fn subscription(&self) -> Option<Subscription> {
        self.get("subscription")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// `parentTransaction` of subscription callbacks, when it is itself a readable entity.
    pub fn parent_transaction(&self) -> Option<Transaction> {
        self.get("parentTransaction")
            .and_then(|v| Transaction::from_json(v.clone()).ok())
    }

    /// `posReceiptsEndpoint`, where the POS uploads its own receipt (receipt mode 2).
    pub fn pos_receipts_endpoint(&self) -> Option<&str> {
        self.get("posReceiptsEndpoint").and_then(Value::as_str)
    }

    /// `receiptPending`.
    pub fn receipt_pending(&self) -> bool {
        self.get("receiptPending")
            .and_then(lenient_bool)
            .unwrap_or(false)
    }

    /// `SMS`, the delivery status of an SMS payment link.
    pub fn sms_status(&self) -> Option<&str> {
        self.get("SMS").and_then(Value::as_str)
    }

    /// `businessName`.
    pub fn business_name(&self) -> Option<&str> {
        self.get("businessName").and_then(Value::as_str)
    }
}

impl fmt::Debug for Transaction {
    /// Only identifying fields: the raw entity may hold tokens and consumer contact data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("number", &self.number.as_str())
            .field("status", &self.status)
            .field("amount", &self.get("amount"))
            .field("currency", &self.get("currency"))
            .finish_non_exhaustive()
    }
}

impl Serialize for Transaction {
    /// Serialises the original JSON, unchanged.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Transaction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Transaction::from_json(v).map_err(serde::de::Error::custom)
    }
}

fn parse_time(text: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

/// A short name of a JSON value's kind, for error messages that must not echo the value.
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `paymentCommit` (§3.3): the acknowledgement an approved payment expects.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PaymentCommit {
    /// `messsage` (three s, as in every example) or `message` (as in the model table).
    pub message: Option<String>,
    /// `isPaymentCommitted`.
    pub is_payment_committed: Option<bool>,
    /// `secondsToCommit`: the window for the commit call.
    pub seconds_to_commit: Option<i64>,
    /// `commitLink`: the URL to `GET`, without headers or parameters, to commit.
    pub commit_link: Option<String>,
}

impl PaymentCommit {
    fn from_value(v: &Value) -> PaymentCommit {
        PaymentCommit {
            message: first_of(v, &["messsage", "message"]).and_then(scalar_string),
            is_payment_committed: v.get("isPaymentCommitted").and_then(lenient_bool),
            seconds_to_commit: v.get("secondsToCommit").and_then(lenient_i64),
            commit_link: v
                .get("commitLink")
                .and_then(Value::as_str)
                .map(str::to_string),
        }
    }

    /// True when a commit is still owed: there is a link and SensePass does not report the
    /// payment as committed (the docs' prose says the opposite; see spec §3.3 AMBIGUOUS).
    pub fn needs_commit(&self) -> bool {
        self.commit_link.is_some() && self.is_payment_committed != Some(true)
    }
}

/// `sourceProvider` of a confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct SourceProvider {
    /// Provider name.
    #[serde(default, deserialize_with = "crate::models::wire::opt_string")]
    pub name: Option<String>,
    /// Provider code.
    #[serde(default, deserialize_with = "crate::models::wire::opt_string")]
    pub code: Option<String>,
}

/// `settlement` inside a confirmation (§7.10).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct Settlement {
    /// `1` approved, `2` settled.
    #[serde(default, deserialize_with = "opt_i64")]
    pub status: Option<i64>,
    /// Final processor confirmation.
    #[serde(default, deserialize_with = "crate::models::wire::opt_string")]
    pub confirmation: Option<String>,
    /// When it settled (status 2).
    #[serde(default, deserialize_with = "crate::models::wire::opt_string")]
    pub created: Option<String>,
}

impl Settlement {
    /// Status 2: the money reached the merchant.
    pub fn is_settled(&self) -> bool {
        self.status == Some(2)
    }
}

/// One entry of `confirmations` (§7.9): the proof of an approval or a refund. Card fields are
/// masked by SensePass (`lastFourDigits`, `cardMask`); unknown fields stay in `extra`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Confirmation {
    /// `confirmationNumber`.
    pub confirmation_number: Option<String>,
    /// `fullConfirmationCode`.
    pub full_confirmation_code: Option<String>,
    /// `dateApproval` (or `approvalDate`).
    pub date_approval: Option<String>,
    /// `paymentType`, e.g. `Regular`, or `Refund` for a refund confirmation.
    pub payment_type: Option<String>,
    /// `paymentMethodName`.
    pub payment_method_name: Option<String>,
    /// `paymentMethodCode`.
    pub payment_method_code: Option<i64>,
    /// `paymentMethodLogo`.
    pub payment_method_logo: Option<String>,
    /// `sourceProvider`.
    pub source_provider: Option<SourceProvider>,
    /// `approvedBy`.
    pub approved_by: Option<String>,
    /// `providerName`.
    pub provider_name: Option<String>,
    /// `providerId`.
    pub provider_id: Option<String>,
    /// `requestID`.
    pub request_id: Option<String>,
    /// `referenceNumber`.
    pub reference_number: Option<String>,
    /// `authNumber` (cards).
    pub auth_number: Option<String>,
    /// `acquirer` (cards).
    pub acquirer: Option<String>,
    /// `voucher` (cards).
    pub voucher: Option<String>,
    /// `lastFourDigits` (cards).
    pub last_four_digits: Option<String>,
    /// `cardMask`, e.g. `411111******1111`.
    pub card_mask: Option<String>,
    /// `cardType`.
    pub card_type: Option<String>,
    /// `cardExpiration` (or `expiration`).
    pub card_expiration: Option<String>,
    /// `installments`.
    pub installments: Option<i64>,
    /// `amount` as SensePass wrote it (major units); see [`Confirmation::amount_minor`].
    pub amount: Option<String>,
    /// `sensePassReferenceId`.
    pub sense_pass_reference_id: Option<String>,
    /// `extraDetails`.
    pub extra_details: Option<Value>,
    /// `settlement`.
    pub settlement: Option<Settlement>,
    /// Every other field, unchanged.
    pub extra: Map<String, Value>,
}

impl Confirmation {
    fn from_value(v: &Value) -> Option<Confirmation> {
        let mut m = v.as_object()?.clone();
        let mut s = |names: &[&str]| take(&mut m, names).as_ref().and_then(scalar_string);
        let mut c = Confirmation {
            confirmation_number: s(&["confirmationNumber"]),
            full_confirmation_code: s(&["fullConfirmationCode"]),
            date_approval: s(&["dateApproval", "approvalDate"]),
            payment_type: s(&["paymentType"]),
            payment_method_name: s(&["paymentMethodName"]),
            payment_method_logo: s(&["paymentMethodLogo"]),
            approved_by: s(&["approvedBy"]),
            provider_name: s(&["providerName"]),
            provider_id: s(&["providerId"]),
            request_id: s(&["requestID", "requestId"]),
            reference_number: s(&["referenceNumber"]),
            auth_number: s(&["authNumber"]),
            acquirer: s(&["acquirer"]),
            voucher: s(&["voucher"]),
            last_four_digits: s(&["lastFourDigits"]),
            card_mask: s(&["cardMask"]),
            card_type: s(&["cardType"]),
            card_expiration: s(&["cardExpiration", "expiration"]),
            amount: s(&["amount"]),
            sense_pass_reference_id: s(&["sensePassReferenceId"]),
            ..Confirmation::default()
        };
        c.payment_method_code = take(&mut m, &["paymentMethodCode"])
            .as_ref()
            .and_then(lenient_i64);
        c.installments = take(&mut m, &["installments"])
            .as_ref()
            .and_then(lenient_i64);
        c.extra_details = take(&mut m, &["extraDetails"]);
        c.source_provider =
            take(&mut m, &["sourceProvider"]).and_then(|v| serde_json::from_value(v).ok());
        c.settlement = take(&mut m, &["settlement"]).and_then(|v| serde_json::from_value(v).ok());
        c.extra = m;
        Some(c)
    }

    /// The confirmation's `amount` as exact minor units of `currency`.
    pub fn amount_minor(&self, currency: Currency) -> Result<Minor, FieldError> {
        let text = self
            .amount
            .as_deref()
            .ok_or(FieldError::Missing("amount"))?;
        major_amount(&Value::String(text.to_string()), currency).map_err(|reason| {
            FieldError::Invalid {
                field: "amount",
                reason,
            }
        })
    }

    /// True for the confirmation of a refund (`paymentType: "Refund"`).
    pub fn is_refund(&self) -> bool {
        self.payment_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("refund"))
    }
}

/// Removes the first present, non-null spelling of a field from a map.
fn take(m: &mut Map<String, Value>, names: &[&str]) -> Option<Value> {
    let mut found = None;
    for n in names {
        if let Some(v) = m.remove(*n) {
            if found.is_none() && !v.is_null() {
                found = Some(v);
            }
        }
    }
    found
}

/// `transactionPage.consumerPage`: iframe variants of the consumer page.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct ConsumerPage {
    /// Full page.
    #[serde(default, deserialize_with = "crate::models::wire::opt_string")]
    pub regular: Option<String>,
    /// Without QR.
    #[serde(default, deserialize_with = "crate::models::wire::opt_string")]
    pub medium: Option<String>,
    /// Without QR and header.
    #[serde(default, deserialize_with = "crate::models::wire::opt_string")]
    pub small: Option<String>,
}

/// `transactionPage`: where the consumer pays. `qrURL` is what the cashier screen renders as
/// the dynamic QR code.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct TransactionPage {
    /// `iOSLink`.
    #[serde(
        default,
        rename = "iOSLink",
        deserialize_with = "crate::models::wire::opt_string"
    )]
    pub ios_link: Option<String>,
    /// `androidLink`.
    #[serde(
        default,
        rename = "androidLink",
        deserialize_with = "crate::models::wire::opt_string"
    )]
    pub android_link: Option<String>,
    /// `qrURL`.
    #[serde(
        default,
        rename = "qrURL",
        deserialize_with = "crate::models::wire::opt_string"
    )]
    pub qr_url: Option<String>,
    /// `consumerPage`.
    #[serde(default, rename = "consumerPage")]
    pub consumer_page: Option<ConsumerPage>,
}

/// `pagination` of list answers (`/transactions`, `/settlements/all`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PageInfo {
    /// Records in this page.
    #[serde(default, deserialize_with = "opt_i64")]
    pub returned_records: Option<i64>,
    /// Records matching in total.
    #[serde(default, deserialize_with = "opt_i64")]
    pub total_records: Option<i64>,
    /// More pages follow.
    #[serde(default, deserialize_with = "opt_bool")]
    pub is_partial_result: Option<bool>,
}

/// The answer of `POST /transactions` (multi-fetch).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TransactionsPage {
    /// Paging facts.
    #[serde(default)]
    pub pagination: PageInfo,
    /// The transactions of this page.
    #[serde(default, deserialize_with = "vec_or_null")]
    pub data: Vec<Transaction>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The init response of spec §4.1 (abbreviated there; fields as documented).
    fn init_example() -> Value {
        json!({
            "TransactionNumber": "2f1c0e8a9b7d6c5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a",
            "date": "2024-05-01T10:00:00.000Z",
            "amount": "2",
            "currency": "USD",
            "status": 0,
            "statusName": "Initialize",
            "timeoutDate": "2024-05-01T10:10:00.000Z",
            "paymentCommit": {"messsage": "Payment commit is enabled for this transaction"},
            "businessId": 1234,
            "businessName": "Sandbox Coffee",
            "pos": "Till 1",
            "businessOwnerPhone": "+15550000",
            "businessCountry": "US",
            "businessCity": "Austin",
            "businessStreet": "Main",
            "businessAddress": "1 Main St",
            "branchNumber": "1",
            "branchId": "b-1",
            "transactionPage": {
                "iOSLink": "https://pay.sandbox.sensepass.com/i/x",
                "androidLink": "https://pay.sandbox.sensepass.com/a/x",
                "qrURL": "https://pay.sandbox.sensepass.com/orderSummary/x",
                "consumerPage": {
                    "regular": "https://pay.sandbox.sensepass.com/orderSummary/x",
                    "medium": "https://pay.sandbox.sensepass.com/orderSummary/x?viewMode=medium"
                }
            },
            "posData": {"orderId": "A-17"},
            "metadata": [{"key": "genericDisplay", "value": []}],
            "someFutureField": {"kept": true}
        })
    }

    #[test]
    fn init_response_shape() {
        let t = Transaction::from_json(init_example()).unwrap();
        assert_eq!(t.status(), Status::Initialize);
        assert_eq!(t.number().as_str().len(), 56);
        assert_eq!(t.amount_minor().unwrap(), Money::new(200, Currency::Usd));
        assert_eq!(t.business_id().as_deref(), Some("1234"));
        assert_eq!(t.pos_data().unwrap()["orderId"], "A-17");
        let commit = t.payment_commit().unwrap();
        assert_eq!(
            commit.message.as_deref(),
            Some("Payment commit is enabled for this transaction")
        );
        assert!(!commit.needs_commit());
        let page = t.transaction_page().unwrap();
        assert_eq!(
            page.qr_url.as_deref(),
            Some("https://pay.sandbox.sensepass.com/orderSummary/x")
        );
        assert!(page
            .consumer_page
            .unwrap()
            .medium
            .unwrap()
            .ends_with("viewMode=medium"));
        assert!(t.metadata().unwrap().is_array());
        assert_eq!(t.created_at().unwrap().year(), 2024);
        assert!(!t.product_sum_mismatch());
        // Nothing is lost: serialising gives back the very same JSON.
        assert_eq!(serde_json::to_value(&t).unwrap(), init_example());
    }

    /// The approved sync response of spec §8.3, with the variants seen elsewhere.
    #[test]
    fn approved_shape_with_variants() {
        let raw = json!({
            "TransactionNumber": "abc",
            "date": "2024-05-01T10:00:00Z",
            "amount": 12.5,
            "baseAmount": "12.5",
            "currency": "USD",
            "status": "5",
            "statusName": "Transaction Approved",
            "timeOut": "500",
            "maxInstallments": 1,
            "reason": null,
            "methodType": 0,
            "businessId": "98",
            "paymentCommit": {
                "message": "Please Commit this payment in 7200 seconds",
                "secondsToCommit": 7200,
                "isPaymentCommitted": false,
                "commitLink": "https://api.sandbox.sensepass.com/api/transactions/commitPayment/abc"
            },
            "metadata": {"receiptMode": 1, "receiptSaveUid": "u"},
            "productSumMismatch": true,
            "confirmations": [{
                "confirmationNumber": 5551,
                "approvalDate": "2024-05-01T10:01:00Z",
                "paymentType": "Regular",
                "paymentMethodCode": "1",
                "sourceProvider": {"name": "Cardknox Sandbox", "code": 7},
                "providerId": 3,
                "lastFourDigits": "1111",
                "cardMask": "411111******1111",
                "expiration": "12/30",
                "amount": "12.5",
                "settlement": {"status": 2, "confirmation": "S-1", "created": "2024-05-02T00:00:00Z"},
                "unknownThing": 1
            }, "not an object"]
        });
        let t = Transaction::from_json(raw).unwrap();
        assert_eq!(t.status(), Status::Approved);
        assert_eq!(t.amount_minor().unwrap().minor, Minor(1250));
        assert_eq!(t.base_amount_minor().unwrap().minor, Minor(1250));
        assert_eq!(t.timeout_seconds(), Some(500));
        assert_eq!(t.business_id().as_deref(), Some("98"));
        assert_eq!(t.method_type(), Some(0));
        assert!(t.metadata().unwrap().is_object());
        assert!(t.product_sum_mismatch());
        let commit = t.payment_commit().unwrap();
        assert_eq!(commit.seconds_to_commit, Some(7200));
        assert!(commit.needs_commit());
        assert_eq!(
            commit.message.as_deref(),
            Some("Please Commit this payment in 7200 seconds")
        );
        let confirmations = t.confirmations();
        assert_eq!(confirmations.len(), 1);
        let c = &confirmations[0];
        assert_eq!(c.confirmation_number.as_deref(), Some("5551"));
        assert_eq!(c.date_approval.as_deref(), Some("2024-05-01T10:01:00Z"));
        assert_eq!(c.payment_method_code, Some(1));
        assert_eq!(c.provider_id.as_deref(), Some("3"));
        assert_eq!(c.card_expiration.as_deref(), Some("12/30"));
        assert_eq!(
            c.source_provider.as_ref().unwrap().code.as_deref(),
            Some("7")
        );
        assert!(c.settlement.as_ref().unwrap().is_settled());
        assert_eq!(c.amount_minor(Currency::Usd), Ok(Minor(1250)));
        assert_eq!(c.extra.get("unknownThing"), Some(&json!(1)));
        assert!(!c.is_refund());
    }

    #[test]
    fn lower_case_timeout_and_legacy_links() {
        let t = Transaction::from_json(json!({
            "TransactionNumber": "n", "status": 10, "timeout": 600, "currency": "ILS",
            "amount": "1234.56",
            "paymentMethodData": {"PaymentType": "x", "directAppLinks": {"qrURL": "https://q"}}
        }))
        .unwrap();
        assert_eq!(t.timeout_seconds(), Some(600));
        assert_eq!(t.status(), Status::WaitingForTap);
        assert_eq!(
            t.transaction_page().unwrap().qr_url.as_deref(),
            Some("https://q")
        );
        assert_eq!(t.amount_minor().unwrap(), Money::new(123456, Currency::Ils));
    }

    #[test]
    fn rejects_what_nothing_can_work_without() {
        assert!(Transaction::from_json(json!([1])).is_err());
        assert!(Transaction::from_json(json!({"status": 0})).is_err());
        assert!(Transaction::from_json(json!({"TransactionNumber": "", "status": 0})).is_err());
        assert!(Transaction::from_json(json!({"TransactionNumber": "n"})).is_err());
        assert!(Transaction::from_json(json!({"TransactionNumber": "n", "status": 14})).is_err());
        assert!(Transaction::from_json(json!({"TransactionNumber": "n", "status": "x"})).is_err());
        // Odd fields elsewhere only fail their own accessor.
        let t = Transaction::from_json(json!({"TransactionNumber": "n", "status": 0,
            "currency": "XYZ", "amount": "1"}))
        .unwrap();
        assert!(matches!(
            t.amount_minor(),
            Err(FieldError::Invalid {
                field: "currency",
                ..
            })
        ));
        assert!(t.payment_commit().is_none());
        assert!(t.confirmations().is_empty());
    }

    #[test]
    fn page_of_transactions() {
        let page: TransactionsPage = serde_json::from_value(json!({
            "pagination": {"returnedRecords": 1, "totalRecords": "3", "isPartialResult": true},
            "data": [{"TransactionNumber": "n", "status": 5}]
        }))
        .unwrap();
        assert_eq!(page.pagination.total_records, Some(3));
        assert_eq!(page.data[0].status(), Status::Approved);
    }

    #[test]
    fn decline_reason_in_every_tolerated_spelling() {
        let tx = |extra: serde_json::Value| {
            let mut v = json!({"TransactionNumber": "n", "status": 6});
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            Transaction::from_json(v).unwrap()
        };
        let both = |c: &str, m: &str| Some(DeclineReason { code: Some(c.into()), message: Some(m.into()) });
        assert_eq!(tx(json!({"errorCode": 5, "errorMessage": "Do not honour"})).decline_reason(), both("5", "Do not honour"));
        assert_eq!(tx(json!({"declineReason": {"code": "51", "message": "Insufficient funds"}})).decline_reason(), both("51", "Insufficient funds"));
        assert_eq!(
            tx(json!({"declineReason": "Card expired"})).decline_reason(),
            Some(DeclineReason { code: None, message: Some("Card expired".into()) })
        );
        assert_eq!(
            tx(json!({"statusReason": "Risk check"})).decline_reason(),
            Some(DeclineReason { code: None, message: Some("Risk check".into()) })
        );
        assert_eq!(tx(json!({})).decline_reason(), None);
        assert_eq!(tx(json!({"errorCode": null, "errorMessage": " "})).decline_reason(), None);
    }
}
