//! Request and response bodies of the transaction endpoints other than `init` (spec §4.2–4.10).
//!
//! Requests are exact: camelCase as the spec spells it, money as integer minor units with
//! `isCent: true`, credentials left to the client. Responses are read leniently (every field
//! optional, numbers that may be strings) and keep unknown fields in `extra`.

use crate::models::init::{mask_card, Receipt};
use crate::models::transaction::{Transaction, TransactionNumber};
use crate::models::wire::{always_true, map_is_empty, opt_bool, opt_i64, opt_string};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use std::fmt;
use till_core::{Currency, Minor, Product};

/// Comparison of a `filter[]` item (§4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FilterOperator {
    /// `=`
    #[serde(rename = "=")]
    Eq,
    /// `!=`
    #[serde(rename = "!=")]
    Ne,
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
}

/// One `filter[]` item: `{ "<key>": <value>, "operator": "=" }`. Keys may be dotted paths such
/// as `posData.orderId` (docs/DECISIONS.md) — how the agent finds a payment by order ID.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// Field name or dotted path.
    pub key: String,
    /// Value to compare with.
    pub value: Value,
    /// Comparison.
    pub operator: FilterOperator,
}

impl Filter {
    /// `key = value`.
    pub fn eq(key: impl Into<String>, value: impl Into<Value>) -> Filter {
        Filter {
            key: key.into(),
            value: value.into(),
            operator: FilterOperator::Eq,
        }
    }
}

impl Serialize for Filter {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry(&self.key, &self.value)?;
        m.serialize_entry("operator", &self.operator)?;
        m.end()
    }
}

/// `pagination` of list requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Pagination {
    /// Page size, 1–1000.
    pub limit: u32,
    /// Records to skip.
    pub offset: u32,
}

/// `status` filter of list requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListStatus {
    /// Settled.
    Settled,
    /// Expired.
    Expired,
    /// Voided.
    Voided,
}

/// The body of `POST /transactions` (multi-fetch, §4.3).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchTransactions {
    /// Start of the window.
    #[serde(with = "time::serde::rfc3339")]
    pub start_date: time::OffsetDateTime,
    /// End of the window.
    #[serde(with = "time::serde::rfc3339")]
    pub end_date: time::OffsetDateTime,
    /// Only this settlement state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ListStatus>,
    /// Only this currency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<Currency>,
    /// Paging.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
    /// Sort field (default `date`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_by: Option<String>,
    /// Field filters.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filter: Vec<Filter>,
}

impl FetchTransactions {
    /// Everything between two instants.
    pub fn between(start: time::OffsetDateTime, end: time::OffsetDateTime) -> FetchTransactions {
        FetchTransactions {
            start_date: start,
            end_date: end,
            status: None,
            currency: None,
            pagination: None,
            order_by: None,
            filter: Vec::new(),
        }
    }
}

/// The body of `POST /transactions/refund` (§4.6). Amounts go as minor units with
/// `isCent: true` (docs/DECISIONS.md); the server decides between void and refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    /// The transaction to refund.
    pub transaction_number: TransactionNumber,
    /// `Some` for a partial refund of that many minor units; `None` refunds what remains.
    pub partial: Option<Minor>,
}

impl RefundRequest {
    /// Refund everything that remains.
    pub fn full(number: impl Into<TransactionNumber>) -> RefundRequest {
        RefundRequest {
            transaction_number: number.into(),
            partial: None,
        }
    }

    /// Refund `amount` minor units.
    pub fn partial(number: impl Into<TransactionNumber>, amount: Minor) -> RefundRequest {
        RefundRequest {
            transaction_number: number.into(),
            partial: Some(amount),
        }
    }
}

impl Serialize for RefundRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("transactionNumber", &self.transaction_number)?;
        if let Some(amount) = self.partial {
            m.serialize_entry("isPartial", &true)?;
            m.serialize_entry("refundAmount", &amount)?;
            m.serialize_entry("isCent", &true)?;
        }
        m.end()
    }
}

/// The answer of refund and credit (§4.6, §4.8). `errorCode 0` with `result: "Approved"` is
/// success; a decline still comes with HTTP 200.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundResponse {
    /// `0` on success; `22` "refund operation declined by Processor".
    #[serde(default, deserialize_with = "opt_i64")]
    pub error_code: Option<i64>,
    /// Reason of a failure.
    #[serde(default, deserialize_with = "opt_string")]
    pub error_message: Option<String>,
    /// `Approved` or `Declined`.
    #[serde(default, deserialize_with = "opt_string")]
    pub result: Option<String>,
    /// Processor confirmation of the refund.
    #[serde(default, deserialize_with = "opt_string")]
    pub refund_confirmation: Option<String>,
    /// Who approved it.
    #[serde(default, deserialize_with = "opt_string")]
    pub approved_by: Option<String>,
    /// Who refunded.
    #[serde(default, deserialize_with = "opt_string")]
    pub refund_by: Option<String>,
    /// When it was approved.
    #[serde(default, deserialize_with = "opt_string")]
    pub date_approval: Option<String>,
    /// Provider identifier.
    #[serde(default, deserialize_with = "opt_string")]
    pub provider_id: Option<String>,
    /// Refunded amount as SensePass wrote it (major units).
    #[serde(default, deserialize_with = "opt_string")]
    pub amount: Option<String>,
    /// The refunded transaction, when SensePass includes it.
    #[serde(default, deserialize_with = "opt_transaction")]
    pub transaction: Option<Transaction>,
    /// Every other field, unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl RefundResponse {
    /// `result` is `Approved` (and no non-zero `errorCode`).
    pub fn is_approved(&self) -> bool {
        self.result
            .as_deref()
            .is_some_and(|r| r.eq_ignore_ascii_case("approved"))
            && self.error_code.unwrap_or(0) == 0
    }
}

fn opt_transaction<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Transaction>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(v.and_then(|v| Transaction::from_json(v).ok()))
}

/// The answer of cancel and cancel-by-device (§4.4–4.5):
/// `{ "status": 200, "status_message": "Transaction Was Canceled" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct CancelResponse {
    /// Status code repeated in the body.
    #[serde(default, deserialize_with = "opt_i64")]
    pub status: Option<i64>,
    /// Human message.
    #[serde(default, deserialize_with = "opt_string")]
    pub status_message: Option<String>,
}

/// `creditCardDetails` of `POST /transactions/pay`. `Debug` shows only the last four digits.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CardDetails {
    /// Primary account number.
    pub card_number: String,
    /// CVV.
    pub security_code: String,
    /// `MM/YY`.
    pub card_expiration: String,
    /// Israeli national ID.
    #[serde(rename = "socialID", skip_serializing_if = "Option::is_none")]
    pub social_id: Option<String>,
}

impl fmt::Debug for CardDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardDetails")
            .field("card_number", &mask_card(&self.card_number))
            .finish_non_exhaustive()
    }
}

/// The body of `POST /transactions/pay` (§4.7): a server-to-server card charge.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PayRequest {
    /// Amount, minor units (this endpoint takes cents only).
    pub amount: Minor,
    /// Always `true`.
    #[serde(rename = "isCent", serialize_with = "always_true")]
    pub is_cent: (),
    /// Currency.
    pub currency: Currency,
    /// The card.
    pub credit_card_details: CardDetails,
    /// Installments (Israel only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installments: Option<u32>,
    /// `methodType`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method_type: Option<String>,
    /// Shown to the consumer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Dashboard metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// The answer of `POST /transactions/pay`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PayResponse {
    /// Whether the charge succeeded.
    #[serde(default, deserialize_with = "opt_bool")]
    pub success: Option<bool>,
    /// Human message.
    #[serde(default, deserialize_with = "opt_string")]
    pub message: Option<String>,
    /// Provider code.
    #[serde(default, deserialize_with = "opt_string")]
    pub code: Option<String>,
    /// Error detail.
    #[serde(default)]
    pub error: Option<Value>,
    /// `approvalID`.
    #[serde(default, rename = "approvalID", deserialize_with = "opt_string")]
    pub approval_id: Option<String>,
    /// `requestID`.
    #[serde(default, rename = "requestID", deserialize_with = "opt_string")]
    pub request_id: Option<String>,
    /// The created transaction.
    #[serde(default, deserialize_with = "opt_string")]
    pub transaction_number: Option<String>,
    /// `transactionPaymentID`.
    #[serde(
        default,
        rename = "transactionPaymentID",
        deserialize_with = "opt_string"
    )]
    pub transaction_payment_id: Option<String>,
    /// Enum-form status, e.g. `TransactionApproved`.
    #[serde(default, deserialize_with = "opt_string")]
    pub transaction_status: Option<String>,
    /// Confirmation (an object in one revision, an array in another).
    #[serde(default)]
    pub confirmation: Option<Value>,
    /// Every other field, unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl PayResponse {
    /// `transactionStatus` as a typed status.
    pub fn status(&self) -> Option<till_core::Status> {
        let name = self.transaction_status.as_deref()?;
        till_core::Status::ALL
            .into_iter()
            .find(|s| s.enum_name() == name)
    }
}

/// The body of `POST /transactions/credit` (§4.8): money to a tokenised card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditRequest {
    /// The card token from a tokenisation.
    pub token: String,
    /// Amount to send, minor units.
    pub amount: Minor,
}

impl Serialize for CreditRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("token", &self.token)?;
        m.serialize_entry("refundAmount", &self.amount)?;
        m.serialize_entry("isCent", &true)?;
        m.end()
    }
}

/// The body of `PATCH /transactions/{n}` (§4.9): updates an open-cart transaction. Only set
/// fields are sent; a set `amount` goes with `isCent: true`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateRequest {
    /// New amount, minor units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<Minor>,
    /// New currency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<Currency>,
    /// New consumer-facing reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// New cart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub products: Option<Vec<Product>>,
    /// New merchant data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pos_data: Option<Value>,
    /// New metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// New SMS recipient.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_phone_number: Option<String>,
    /// New e-mail recipient.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_email: Option<String>,
    /// `true` lets the consumer pay (newer flow for enabling payment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready_for_payment: Option<bool>,
    /// Other fields, forwarded unchanged.
    #[serde(flatten, skip_serializing_if = "map_is_empty")]
    pub extra: Map<String, Value>,
}

impl UpdateRequest {
    /// The PATCH that brings an open cart in line with a newer init body (the agent's
    /// `products/update`): amount, currency, cart, reason, posData, metadata and contacts.
    pub fn from_init(init: &crate::models::init::InitRequest) -> UpdateRequest {
        UpdateRequest {
            amount: Some(init.amount),
            currency: Some(init.currency),
            reason: init.reason.clone(),
            // No products in the init: the cart shown so far stays (an empty list would clear it).
            products: (!init.products.is_empty()).then(|| init.products.clone()),
            pos_data: init.pos_data.clone(),
            metadata: init.metadata.clone(),
            client_phone_number: init.client_phone_number.clone(),
            client_email: init.client_email.clone(),
            ready_for_payment: init.ready_for_payment,
            extra: Map::new(),
        }
    }

    /// The request as the JSON SensePass receives, minus credentials.
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if self.amount.is_some() {
            if let Some(m) = v.as_object_mut() {
                m.insert("isCent".into(), Value::Bool(true));
            }
        }
        v
    }
}

/// The body of the older `POST /transactions/{n}/readyForPayment` (§4.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReadyForPaymentRequest {
    /// Final amount, minor units.
    pub amount: Minor,
    /// Currency.
    pub currency: Currency,
    /// Always `true`.
    #[serde(rename = "isCent", serialize_with = "always_true")]
    pub is_cent: (),
}

impl ReadyForPaymentRequest {
    /// Ready to pay `amount` minor units of `currency`.
    pub fn new(amount: Minor, currency: Currency) -> ReadyForPaymentRequest {
        ReadyForPaymentRequest {
            amount,
            currency,
            is_cent: (),
        }
    }
}

/// `methodType` of the JS-SDK commit (§4.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SdkMethodType {
    /// Capture the amount now.
    ManualCapture,
    /// Keep a token only.
    Tokenize,
    /// Hold funds.
    Authorize,
}

/// The body of `POST /transactions/{n}/commit` (§4.10), the backend step of the browser SDK.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SdkCommitRequest {
    /// What to do.
    pub method_type: SdkMethodType,
    /// Amount, minor units (required for capture and authorize).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<Minor>,
    /// Currency (required for capture).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<Currency>,
    /// Webhook.
    #[serde(rename = "callbackURL", skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// Merchant data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pos_data: Option<Value>,
    /// Dashboard metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Cart.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub products: Vec<Product>,
    /// Receipt handling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
}

impl SdkCommitRequest {
    /// A commit of `method_type` with nothing else set.
    pub fn new(method_type: SdkMethodType) -> SdkCommitRequest {
        SdkCommitRequest {
            method_type,
            amount: None,
            currency: None,
            callback_url: None,
            pos_data: None,
            metadata: None,
            products: Vec::new(),
            receipt: None,
        }
    }

    /// The request as the JSON SensePass receives, minus credentials.
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if self.amount.is_some() {
            if let Some(m) = v.as_object_mut() {
                m.insert("isCent".into(), Value::Bool(true));
            }
        }
        v
    }
}

/// The answer of the SDK commit.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SdkCommitResponse {
    /// Whether it worked.
    #[serde(default, deserialize_with = "opt_bool")]
    pub success: Option<bool>,
    /// The transaction.
    #[serde(default, deserialize_with = "opt_string")]
    pub transaction_number: Option<String>,
    /// Enum-form status.
    #[serde(default, deserialize_with = "opt_string")]
    pub transaction_status: Option<String>,
    /// `{type, paymentMethod, created, token}`; the token is a secret.
    #[serde(default)]
    pub payment_details: Option<Value>,
    /// Confirmation.
    #[serde(default)]
    pub confirmation: Option<Value>,
    /// Every other field, unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The answer of a `GET {commitLink}` (docs/DECISIONS.md):
/// `{status: 200, status_message: "Payment Committed", isPaymentCommitted: true}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct CommitResponse {
    /// Status repeated in the body.
    #[serde(default, deserialize_with = "opt_i64")]
    pub status: Option<i64>,
    /// Human message.
    #[serde(default, deserialize_with = "opt_string")]
    pub status_message: Option<String>,
    /// Whether the payment is now committed.
    #[serde(default, rename = "isPaymentCommitted", deserialize_with = "opt_bool")]
    pub is_payment_committed: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refund_bodies() {
        assert_eq!(
            serde_json::to_value(RefundRequest::full("abc")).unwrap(),
            json!({"transactionNumber": "abc"})
        );
        assert_eq!(
            serde_json::to_value(RefundRequest::partial("abc", Minor(150))).unwrap(),
            json!({"transactionNumber": "abc", "isPartial": true, "refundAmount": 150, "isCent": true})
        );
    }

    #[test]
    fn refund_answers() {
        let ok: RefundResponse = serde_json::from_value(json!({
            "errorCode": 0, "errorMessage": null, "result": "Approved", "refundConfirmation": 778,
            "approvedBy": "Cardknox Sandbox", "refundBy": "api", "dateApproval": "2024-05-01T10:00:00Z",
            "providerId": 3, "amount": "1.5",
            "transaction": {"TransactionNumber": "abc", "date": "2024-05-01T09:00:00Z",
                "amount": "2", "currency": "USD", "status": 13, "businessId": 1}
        }))
        .unwrap();
        assert!(ok.is_approved());
        assert_eq!(ok.refund_confirmation.as_deref(), Some("778"));
        assert_eq!(ok.provider_id.as_deref(), Some("3"));
        assert_eq!(
            ok.transaction.unwrap().status(),
            till_core::Status::PartiallyRefunded
        );
        // The documented failure example.
        let declined: RefundResponse = serde_json::from_value(json!({
            "errorCode": 22, "errorMessage": "refund operation declined by Processor",
            "result": "Declined", "refundConfirmation": null, "approvedBy": null, "refundBy": null,
            "dateApproval": null, "providerId": null, "transaction": null
        }))
        .unwrap();
        assert!(!declined.is_approved());
        assert_eq!(declined.error_code, Some(22));
        assert!(declined.transaction.is_none());
    }

    #[test]
    fn cancel_and_commit_answers() {
        let c: CancelResponse = serde_json::from_value(
            json!({"status": 200, "status_message": "Transaction Was Canceled"}),
        )
        .unwrap();
        assert_eq!(c.status, Some(200));
        let c: CommitResponse = serde_json::from_value(
            json!({"status": 200, "status_message": "Payment Committed", "isPaymentCommitted": true}),
        )
        .unwrap();
        assert_eq!(c.is_payment_committed, Some(true));
    }

    #[test]
    fn pay_and_credit_bodies() {
        let pay = PayRequest {
            amount: Minor(500),
            is_cent: (),
            currency: Currency::Usd,
            credit_card_details: CardDetails {
                card_number: "4111111111111111".into(),
                security_code: "123".into(),
                card_expiration: "12/30".into(),
                social_id: None,
            },
            installments: None,
            method_type: None,
            reason: Some("x".into()),
            metadata: None,
        };
        assert_eq!(
            serde_json::to_value(&pay).unwrap(),
            json!({"amount": 500, "isCent": true, "currency": "USD", "reason": "x",
                "creditCardDetails": {"cardNumber": "4111111111111111", "securityCode": "123",
                "cardExpiration": "12/30"}})
        );
        assert!(!format!("{pay:?}").contains("4111111111111111"));
        let r: PayResponse = serde_json::from_value(json!({"success": true, "code": 0,
            "approvalID": "A1", "requestID": 9, "transactionNumber": "n",
            "transactionPaymentID": "p", "transactionStatus": "TransactionApproved",
            "confirmation": [{"confirmationNumber": "1"}]}))
        .unwrap();
        assert_eq!(r.status(), Some(till_core::Status::Approved));
        assert_eq!(r.request_id.as_deref(), Some("9"));
        assert_eq!(
            serde_json::to_value(CreditRequest {
                token: "t".into(),
                amount: Minor(123)
            })
            .unwrap(),
            json!({"token": "t", "refundAmount": 123, "isCent": true})
        );
    }

    #[test]
    fn update_and_commit_bodies() {
        let u = UpdateRequest {
            amount: Some(Minor(300)),
            ready_for_payment: Some(true),
            ..Default::default()
        };
        assert_eq!(
            u.to_json(),
            json!({"amount": 300, "isCent": true, "readyForPayment": true})
        );
        let u = UpdateRequest {
            reason: Some("r".into()),
            ..Default::default()
        };
        assert_eq!(u.to_json(), json!({"reason": "r"}));
        assert_eq!(
            serde_json::to_value(ReadyForPaymentRequest::new(Minor(5), Currency::Cad)).unwrap(),
            json!({"amount": 5, "currency": "CAD", "isCent": true})
        );
        let mut c = SdkCommitRequest::new(SdkMethodType::ManualCapture);
        c.amount = Some(Minor(100));
        c.currency = Some(Currency::Usd);
        assert_eq!(
            c.to_json(),
            json!({"methodType": "manual_capture", "amount": 100, "currency": "USD", "isCent": true})
        );
    }

    #[test]
    fn fetch_body() {
        let start = time::macros::datetime!(2024-01-01 12:00 UTC);
        let end = time::macros::datetime!(2024-01-02 12:00 UTC);
        let mut q = FetchTransactions::between(start, end);
        q.filter.push(Filter::eq("posData.orderId", "A-17"));
        q.pagination = Some(Pagination {
            limit: 10,
            offset: 0,
        });
        q.status = Some(ListStatus::Settled);
        assert_eq!(
            serde_json::to_value(&q).unwrap(),
            json!({"startDate": "2024-01-01T12:00:00Z", "endDate": "2024-01-02T12:00:00Z",
                "status": "settled", "pagination": {"limit": 10, "offset": 0},
                "filter": [{"posData.orderId": "A-17", "operator": "="}]})
        );
    }
}
