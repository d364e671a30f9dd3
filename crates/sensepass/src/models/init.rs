//! `POST /transactions/init` (spec §4.1): the request that creates a payment.
//!
//! Two directions meet here. What the agent **sends** is strict: camelCase names exactly as the
//! spec spells them, `amount` as an integer count of minor units with `isCent: true`, a currency
//! from `till_core`. What the POS **sends to the agent** is whatever a Terminal Agent used to
//! accept, so [`InitRequest::from_pos_json`] reads it tolerantly where the spec is ambiguous
//! (`isCent` absent or false, `timeout` in lower case or as a string), checks every field, and
//! names *all* invalid ones at once. Fields we do not know are forwarded unchanged in
//! [`InitRequest::extra`].

use crate::models::wire::{always_true, map_is_empty};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};
use std::fmt;
use till_core::money::{major_json_number_to_minor, minor_json_number};
use till_core::{Currency, InvalidParameters, Minor, MoneyError, Product};

/// The currencies SensePass documents (spec §4.1). `till_core` knows more (GBP for another
/// gateway); SensePass is not sent what it never promised to take.
pub const SENSEPASS_CURRENCIES: [Currency; 5] = [
    Currency::Usd,
    Currency::Cad,
    Currency::Ils,
    Currency::Eur,
    Currency::Rub,
];

/// `timeOut` when the request has none (docs/DECISIONS.md).
pub const DEFAULT_TIMEOUT_SECS: u32 = 600;
/// Smallest accepted `timeOut`, seconds.
pub const MIN_TIMEOUT_SECS: u32 = 10;
/// Largest accepted `timeOut`, seconds (one day).
pub const MAX_TIMEOUT_SECS: u32 = 86_400;

/// The documented `methodType` request values, compared case-insensitively (the examples write
/// `"Authorize"` and `"Tokenize"`).
pub const METHOD_TYPES: [&str; 6] = [
    "payment",
    "tokenize",
    "authorize",
    "credit",
    "subscription",
    "capture+tokenize",
];

/// Request-body names of credentials. The POS may send them; they are never forwarded from its
/// body, because the client injects the agent's own credentials.
const AUTH_FIELDS: [&str; 5] = [
    "deviceId",
    "apiKey",
    "branchNumber",
    "merchantApiKey",
    "branchApiKey",
];

/// How SensePass calls `callbackURL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallbackMethod {
    /// Body-less `GET <callbackURL>?TransactionNumber=…&callbackType=transaction_status`.
    #[serde(rename = "GET")]
    Get,
    /// `POST` with the Transaction entity as JSON (the default).
    #[serde(rename = "POST")]
    Post,
}

/// `emailConfig` of an e-mail payment link.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailConfig {
    /// `paymentRequest`: settings of the payment-request e-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_request: Option<EmailPaymentRequest>,
    /// Other settings, forwarded unchanged.
    #[serde(flatten, skip_serializing_if = "map_is_empty")]
    pub extra: Map<String, Value>,
}

/// `emailConfig.paymentRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EmailPaymentRequest {
    /// `en`, `he` or `ru`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// `invoice` (§7.6): a document shown to the consumer before paying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    /// `pdf`, `jpg` or `png`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A publicly reachable URL; SensePass re-hosts the file.
    pub url: String,
}

/// `receipt` (§7.5): how the receipt is produced after paying.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    /// `1` SensePass generates, `2` POS provides, `3` no receipt; absent = branch default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u8>,
    /// `1` Rivhit, `2` ICount, `3` QuickBook, `4` SensePass, `5` Priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounting_provider: Option<u8>,
    /// Customer details for a generated receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_info: Option<ReceiptInfo>,
    /// Other settings, forwarded unchanged.
    #[serde(flatten, skip_serializing_if = "map_is_empty")]
    pub extra: Map<String, Value>,
}

/// `receipt.receiptInfo`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptInfo {
    /// Customer ID in the accounting system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// First name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Street address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// City.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zip_code: Option<String>,
    /// National ID (`socialID`).
    #[serde(default, rename = "socialID", skip_serializing_if = "Option::is_none")]
    pub social_id: Option<String>,
    /// Phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// `he`, `en` or `ru`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_code: Option<String>,
    /// `ILS`, `USD`, `EUR` or `RUB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency_code: Option<String>,
    /// E-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Receipt-level discount; its unit is not documented, so it is forwarded as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount: Option<Number>,
    /// Whether VAT applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vat: Option<bool>,
    /// Other fields, forwarded unchanged.
    #[serde(flatten, skip_serializing_if = "map_is_empty")]
    pub extra: Map<String, Value>,
}

/// `receiptNotifications`: who receives the receipt.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReceiptNotifications {
    /// E-mail recipients.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email: Vec<String>,
    /// SMS recipients.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sms: Vec<String>,
}

/// `paymentDetails` (§7.7): card data supplied by the merchant (PCI scope).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentDetails {
    /// The card.
    pub credit_card: CreditCard,
}

impl fmt::Debug for PaymentDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaymentDetails")
            .field("credit_card", &self.credit_card)
            .finish()
    }
}

/// `paymentDetails.creditCard`. Its `Debug` shows only the last four digits.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreditCard {
    /// Primary account number.
    pub card_number: String,
    /// `MM/YY`.
    pub expiration: String,
    /// Security code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvv: Option<String>,
    /// Israeli national ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub social_id: Option<String>,
    /// Billing postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_holder_zip_code: Option<String>,
    /// Billing address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_holder_billing_address: Option<String>,
}

impl fmt::Debug for CreditCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreditCard")
            .field("card_number", &mask_card(&self.card_number))
            .field("expiration", &"**/**")
            .field("cvv", &self.cvv.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

/// A card number reduced to its last four digits, for anything a person or a log may see.
pub fn mask_card(number: &str) -> String {
    let digits: Vec<char> = number.chars().filter(char::is_ascii_digit).collect();
    let tail: String = digits.iter().skip(digits.len().saturating_sub(4)).collect();
    format!("****{tail}")
}

/// `subscription.*` of a subscription init (§4.15).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionTerms {
    /// `1day`, `14day`, `1month` (default), `3month`, `1year`…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// ISO date when the subscription ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<String>,
    /// ISO date of the first charge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_date: Option<String>,
    /// Other terms, forwarded unchanged.
    #[serde(flatten, skip_serializing_if = "map_is_empty")]
    pub extra: Map<String, Value>,
}

/// The body of `POST /transactions/init`, without credentials (the client adds them).
///
/// Build one with [`InitRequest::new`] and set fields, or read a POS body with
/// [`InitRequest::from_pos_json`]. Serialising gives exactly the body SensePass receives,
/// minus the credentials: `isCent` is always `true`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
// The private field is the constant `isCent: true` of the wire, not a non-exhaustive marker.
#[allow(clippy::manual_non_exhaustive)]
pub struct InitRequest {
    /// Amount to charge, minor units.
    pub amount: Minor,
    /// Always `true` on the wire.
    #[serde(rename = "isCent", serialize_with = "always_true")]
    is_cent: (),
    /// ISO currency, one of [`SENSEPASS_CURRENCIES`].
    pub currency: Currency,
    /// `timeOut`: seconds until SensePass times the transaction out (10–86400).
    #[serde(rename = "timeOut", skip_serializing_if = "Option::is_none")]
    pub time_out: Option<u32>,
    /// `methodType`: `payment` (default), `tokenize`, `authorize`, `credit`, `subscription`,
    /// `Capture+Tokenize`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method_type: Option<String>,
    /// Installment limit (cards only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_installments: Option<u32>,
    /// `returnURL`: e-commerce redirect after the payment.
    #[serde(rename = "returnURL", skip_serializing_if = "Option::is_none")]
    pub return_url: Option<String>,
    /// `cancelURL`: e-commerce redirect when the consumer cancels.
    #[serde(rename = "cancelURL", skip_serializing_if = "Option::is_none")]
    pub cancel_url: Option<String>,
    /// `callbackURL`: webhook for every status change.
    #[serde(rename = "callbackURL", skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// `callbackMethod`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_method: Option<CallbackMethod>,
    /// `posData`: opaque merchant data echoed in every notification.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pos_data: Option<Value>,
    /// `clientPhoneNumber`: send an SMS payment link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_phone_number: Option<String>,
    /// `customSmsText`: SMS template with `%%variables%%`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_sms_text: Option<String>,
    /// `clientEmail`: send an e-mail payment link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_email: Option<String>,
    /// `emailConfig`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_config: Option<EmailConfig>,
    /// `clientName`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// `reason`, shown to the consumer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `invoice`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoice: Option<Invoice>,
    /// `receipt`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
    /// `receiptNotifications`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt_notifications: Option<ReceiptNotifications>,
    /// `products`: the cart, money in minor units.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub products: Vec<Product>,
    /// `metadata` (§7.8), an array.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// `readyForPayment: false` creates an open-cart ("setup") transaction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready_for_payment: Option<bool>,
    /// `paymentDetails`: card data (PCI scope).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_details: Option<PaymentDetails>,
    /// `subscription.*`, only with `methodType: "subscription"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription: Option<SubscriptionTerms>,
    /// The `deviceId` the POS put in its body, if any. Never sent: the client always sends its
    /// own credentials. Kept so that the agent can notice a POS configured for another device.
    #[serde(skip)]
    pub device_id: Option<String>,
    /// Fields this crate does not know, forwarded unchanged. Do not put typed fields here.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl InitRequest {
    /// A payment of `amount` minor units in `currency`, with nothing else set.
    pub fn new(amount: Minor, currency: Currency) -> InitRequest {
        InitRequest {
            amount,
            is_cent: (),
            currency,
            time_out: None,
            method_type: None,
            max_installments: None,
            return_url: None,
            cancel_url: None,
            callback_url: None,
            callback_method: None,
            pos_data: None,
            client_phone_number: None,
            custom_sms_text: None,
            client_email: None,
            email_config: None,
            client_name: None,
            reason: None,
            invoice: None,
            receipt: None,
            receipt_notifications: None,
            products: Vec::new(),
            metadata: None,
            ready_for_payment: None,
            payment_details: None,
            subscription: None,
            device_id: None,
            extra: Map::new(),
        }
    }

    /// `timeOut`, or the default of 600 seconds.
    pub fn effective_timeout(&self) -> u32 {
        self.time_out.unwrap_or(DEFAULT_TIMEOUT_SECS)
    }

    /// True when there is a cart and its total differs from `amount` (accepted, but flagged;
    /// SensePass answers `productSumMismatch: true`).
    pub fn product_sum_mismatch(&self) -> bool {
        !self.products.is_empty() && Product::cart_total(&self.products) != Ok(self.amount)
    }

    /// The request as the JSON SensePass receives, minus credentials.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Reads and validates an init body written by POS software (the Terminal Agent contract):
    /// every field is checked and all invalid ones are reported together.
    ///
    /// - `amount` is required and must be greater than 0. With `isCent` true or absent
    ///   (docs/DECISIONS.md) it must be a whole number of minor units; with `isCent: false` it
    ///   is major units and is converted exactly (`12.5` USD → 1250), as are product money
    ///   fields. A numeric string is accepted.
    /// - `currency` is required and must be one of [`SENSEPASS_CURRENCIES`], upper case.
    /// - `timeOut`, or `timeout` in lower case (spec §8.3), a number or numeric string in
    ///   10–86400.
    /// - Products are read as `till_core::Product`s and checked with `Product::validate_all`.
    /// - `deviceId` may be absent; credentials in the body are not forwarded.
    /// - Unknown fields go to [`InitRequest::extra`] unchanged.
    pub fn from_pos_json(value: Value) -> Result<InitRequest, InvalidParameters> {
        let mut errs = InvalidParameters::new();
        let mut m = match value {
            Value::Object(m) => m,
            other => {
                errs.push(
                    "body",
                    format!("must be a JSON object, got {}", kind(&other)),
                );
                return Err(errs);
            }
        };

        let is_cent = match take(&mut m, "isCent") {
            None => true,
            Some(Value::Bool(b)) => b,
            Some(_) => {
                errs.push("isCent", "must be a boolean");
                true
            }
        };

        let currency = read_currency(take(&mut m, "currency"), &mut errs);
        let amount = read_amount(take(&mut m, "amount"), is_cent, currency, &mut errs);

        let mut req = InitRequest::new(
            amount.unwrap_or(Minor::ZERO),
            currency.unwrap_or(Currency::Usd),
        );

        // timeOut, or the lower-case `timeout` of the products/update example.
        let upper = take(&mut m, "timeOut");
        let lower = take(&mut m, "timeout");
        let upper_secs = upper.map(|v| read_timeout("timeOut", &v, &mut errs));
        let lower_secs = lower.map(|v| read_timeout("timeout", &v, &mut errs));
        req.time_out = match (upper_secs, lower_secs) {
            (Some(Some(a)), Some(Some(b))) if a != b => {
                errs.push("timeout", "conflicts with timeOut");
                None
            }
            (Some(a), _) => a,
            (None, b) => b.flatten(),
        };

        req.method_type = read_string(&mut m, "methodType", &mut errs);
        if let Some(method) = &req.method_type {
            if !METHOD_TYPES.iter().any(|t| t.eq_ignore_ascii_case(method)) {
                errs.push(
                    "methodType",
                    format!("must be one of {}", METHOD_TYPES.join(", ")),
                );
            }
        }
        if let Some(v) = take(&mut m, "maxInstallments") {
            match crate::models::wire::lenient_i64(&v) {
                Some(n) if (1..=i64::from(u8::MAX)).contains(&n) => {
                    req.max_installments = u32::try_from(n).ok();
                }
                _ => errs.push("maxInstallments", "must be a whole number from 1 to 255"),
            }
        }
        req.return_url = read_url(&mut m, "returnURL", &mut errs);
        req.cancel_url = read_url(&mut m, "cancelURL", &mut errs);
        req.callback_url = read_url(&mut m, "callbackURL", &mut errs);
        if let Some(method) = read_string(&mut m, "callbackMethod", &mut errs) {
            match method.to_ascii_uppercase().as_str() {
                "GET" => req.callback_method = Some(CallbackMethod::Get),
                "POST" => req.callback_method = Some(CallbackMethod::Post),
                _ => errs.push("callbackMethod", "must be GET or POST"),
            }
        }
        req.pos_data = take(&mut m, "posData");
        req.client_phone_number = read_string(&mut m, "clientPhoneNumber", &mut errs);
        if let Some(phone) = &req.client_phone_number {
            if !is_phone(phone) {
                errs.push(
                    "clientPhoneNumber",
                    "must be a phone number (digits, optional +)",
                );
            }
        }
        req.custom_sms_text = read_string(&mut m, "customSmsText", &mut errs);
        req.client_email = read_string(&mut m, "clientEmail", &mut errs);
        if let Some(email) = &req.client_email {
            if !is_email(email) {
                errs.push("clientEmail", "must be an e-mail address");
            }
        }
        req.email_config = read_typed::<EmailConfig>(&mut m, "emailConfig", &mut errs);
        if let Some(lang) = req
            .email_config
            .as_ref()
            .and_then(|c| c.payment_request.as_ref())
            .and_then(|p| p.language.as_deref())
        {
            if !["en", "he", "ru"].contains(&lang) {
                errs.push(
                    "emailConfig.paymentRequest.language",
                    "must be en, he or ru",
                );
            }
        }
        req.client_name = read_string(&mut m, "clientName", &mut errs);
        req.reason = read_string(&mut m, "reason", &mut errs);
        req.invoice = read_typed::<Invoice>(&mut m, "invoice", &mut errs);
        if let Some(invoice) = &req.invoice {
            if !["pdf", "jpg", "png"].contains(&invoice.kind.as_str()) {
                errs.push("invoice.type", "must be pdf, jpg or png");
            }
            if !is_http_url(&invoice.url) {
                errs.push("invoice.url", "must be an http(s) URL");
            }
        }
        req.receipt = read_typed::<Receipt>(&mut m, "receipt", &mut errs);
        if let Some(receipt) = &req.receipt {
            validate_receipt(receipt, &mut errs);
        }
        req.receipt_notifications =
            read_typed::<ReceiptNotifications>(&mut m, "receiptNotifications", &mut errs);
        if let Some(n) = &req.receipt_notifications {
            for (i, e) in n.email.iter().enumerate() {
                if !is_email(e) {
                    errs.push(
                        format!("receiptNotifications.email[{i}]"),
                        "must be an e-mail address",
                    );
                }
            }
            for (i, p) in n.sms.iter().enumerate() {
                if !is_phone(p) {
                    errs.push(
                        format!("receiptNotifications.sms[{i}]"),
                        "must be a phone number",
                    );
                }
            }
        }
        if let Some(products) = take(&mut m, "products") {
            req.products = read_products(products, is_cent, currency, &mut errs);
        }
        match take(&mut m, "metadata") {
            None => {}
            Some(v @ Value::Array(_)) => req.metadata = Some(v),
            Some(_) => errs.push("metadata", "must be an array"),
        }
        match take(&mut m, "readyForPayment") {
            None => {}
            Some(Value::Bool(b)) => req.ready_for_payment = Some(b),
            Some(_) => errs.push("readyForPayment", "must be a boolean"),
        }
        req.payment_details = read_typed::<PaymentDetails>(&mut m, "paymentDetails", &mut errs);
        if let Some(card) = req.payment_details.as_ref().map(|d| &d.credit_card) {
            validate_card(card, "paymentDetails.creditCard", &mut errs);
        }
        req.subscription = read_typed::<SubscriptionTerms>(&mut m, "subscription", &mut errs);
        if req.subscription.is_some()
            && !req
                .method_type
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case("subscription"))
        {
            errs.push(
                "subscription",
                "is only allowed with methodType \"subscription\"",
            );
        }

        req.device_id = read_string(&mut m, "deviceId", &mut errs);
        for name in AUTH_FIELDS {
            m.remove(name);
        }
        req.extra = m;

        errs.into_result()?;
        Ok(req)
    }
}

fn kind(v: &Value) -> &'static str {
    crate::models::transaction::json_kind(v)
}

/// Removes a field; an explicit `null` counts as absent.
fn take(m: &mut Map<String, Value>, name: &str) -> Option<Value> {
    m.remove(name).filter(|v| !v.is_null())
}

fn read_string(
    m: &mut Map<String, Value>,
    name: &str,
    errs: &mut InvalidParameters,
) -> Option<String> {
    match take(m, name)? {
        Value::String(s) => Some(s),
        other => {
            errs.push(name, format!("must be a string, got {}", kind(&other)));
            None
        }
    }
}

fn read_url(
    m: &mut Map<String, Value>,
    name: &str,
    errs: &mut InvalidParameters,
) -> Option<String> {
    let url = read_string(m, name, errs)?;
    if is_http_url(&url) {
        Some(url)
    } else {
        errs.push(name, "must be an http(s) URL");
        None
    }
}

fn read_typed<T: DeserializeOwned>(
    m: &mut Map<String, Value>,
    name: &str,
    errs: &mut InvalidParameters,
) -> Option<T> {
    let v = take(m, name)?;
    match serde_json::from_value(v) {
        Ok(t) => Some(t),
        Err(e) => {
            errs.push(name, e.to_string());
            None
        }
    }
}

fn read_currency(v: Option<Value>, errs: &mut InvalidParameters) -> Option<Currency> {
    let allowed = || SENSEPASS_CURRENCIES.map(Currency::code).join(", ");
    match v {
        None => {
            errs.push("currency", "is required");
            None
        }
        Some(Value::String(code)) => match Currency::from_code(&code) {
            Ok(c) if SENSEPASS_CURRENCIES.contains(&c) => Some(c),
            _ => {
                errs.push("currency", format!("must be one of {}", allowed()));
                None
            }
        },
        Some(other) => {
            errs.push(
                "currency",
                format!("must be a string, got {}", kind(&other)),
            );
            None
        }
    }
}

/// A JSON number, or a string holding one (some POS systems quote numbers).
fn as_number(v: &Value) -> Option<Number> {
    match v {
        Value::Number(n) => Some(n.clone()),
        Value::String(s) => serde_json::from_str::<Number>(s.trim()).ok(),
        _ => None,
    }
}

/// Reads one money value: minor units when `is_cent`, else major units of `currency`.
/// `Err` carries the reason; `Ok(None)` means it cannot be judged (no valid currency).
fn read_money(
    v: &Value,
    is_cent: bool,
    currency: Option<Currency>,
) -> Result<Option<Minor>, String> {
    let n = as_number(v).ok_or_else(|| format!("must be a number, got {}", kind(v)))?;
    if is_cent {
        return minor_json_number(&n).map(Some).map_err(|e| match e {
            MoneyError::Overflow => "is too large".to_string(),
            _ => "must be a whole number of minor units (isCent is true)".to_string(),
        });
    }
    let Some(currency) = currency else {
        return Ok(None);
    };
    major_json_number_to_minor(&n, currency)
        .map(Some)
        .map_err(|e| match e {
            MoneyError::Overflow => "is too large".to_string(),
            MoneyError::TooPrecise(..) => {
                format!("has more decimals than {currency} allows (isCent is false)")
            }
            _ => "must be a plain decimal number".to_string(),
        })
}

fn read_amount(
    v: Option<Value>,
    is_cent: bool,
    currency: Option<Currency>,
    errs: &mut InvalidParameters,
) -> Option<Minor> {
    let Some(v) = v else {
        errs.push("amount", "is required");
        return None;
    };
    let max = currency.unwrap_or(Currency::Usd).max_amount();
    match read_money(&v, is_cent, currency) {
        Ok(Some(minor)) if minor > max => {
            errs.push("amount", format!("must be at most {max} minor units"));
            None
        }
        Ok(Some(minor)) if minor.is_positive() => Some(minor),
        Ok(Some(_)) => {
            errs.push("amount", "must be greater than 0");
            None
        }
        Ok(None) => None,
        Err(reason) => {
            errs.push("amount", reason);
            None
        }
    }
}

fn read_timeout(name: &str, v: &Value, errs: &mut InvalidParameters) -> Option<u32> {
    let range =
        format!("must be a whole number of seconds from {MIN_TIMEOUT_SECS} to {MAX_TIMEOUT_SECS}");
    match crate::models::wire::lenient_i64(v) {
        Some(n) if (i64::from(MIN_TIMEOUT_SECS)..=i64::from(MAX_TIMEOUT_SECS)).contains(&n) => {
            u32::try_from(n).ok()
        }
        _ => {
            errs.push(name, range);
            None
        }
    }
}

/// Reads the cart: money fields are normalised to minor units first (with field-level
/// reasons), then each line is read as a `Product` and validated.
fn read_products(
    v: Value,
    is_cent: bool,
    currency: Option<Currency>,
    errs: &mut InvalidParameters,
) -> Vec<Product> {
    let Value::Array(items) = v else {
        errs.push("products", format!("must be an array, got {}", kind(&v)));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, mut item) in items.into_iter().enumerate() {
        let path = format!("products[{i}]");
        let before = errs.0.len();
        normalise_product_money(&mut item, &path, is_cent, currency, errs);
        if errs.0.len() > before {
            continue;
        }
        match serde_json::from_value::<Product>(item) {
            Ok(p) => {
                p.validate(&path, errs);
                out.push(p);
            }
            Err(e) => errs.push(path, e.to_string()),
        }
    }
    out
}

fn normalise_product_money(
    item: &mut Value,
    path: &str,
    is_cent: bool,
    currency: Option<Currency>,
    errs: &mut InvalidParameters,
) {
    let Value::Object(m) = item else {
        errs.push(path, format!("must be an object, got {}", kind(item)));
        return;
    };
    for field in ["amount", "vat", "discount"] {
        let Some(v) = m.get_mut(field) else { continue };
        if v.is_null() {
            *v = Value::from(0);
            continue;
        }
        match read_money(v, is_cent, currency) {
            Ok(Some(minor)) => *v = Value::from(minor.0),
            Ok(None) => {}
            Err(reason) => errs.push(format!("{path}.{field}"), reason),
        }
    }
    match m.get_mut("subProducts") {
        None => {}
        Some(Value::Null) => {
            m.remove("subProducts");
        }
        Some(Value::Array(subs)) => {
            for (j, sub) in subs.iter_mut().enumerate() {
                normalise_product_money(
                    sub,
                    &format!("{path}.subProducts[{j}]"),
                    is_cent,
                    currency,
                    errs,
                );
            }
        }
        Some(other) => errs.push(
            format!("{path}.subProducts"),
            format!("must be an array, got {}", kind(other)),
        ),
    }
}

fn validate_receipt(receipt: &Receipt, errs: &mut InvalidParameters) {
    if let Some(mode) = receipt.mode {
        if !(1..=3).contains(&mode) {
            errs.push("receipt.mode", "must be 1, 2 or 3");
        }
    }
    if let Some(provider) = receipt.accounting_provider {
        if !(1..=5).contains(&provider) {
            errs.push("receipt.accountingProvider", "must be from 1 to 5");
        }
    }
    if let Some(info) = &receipt.receipt_info {
        if let Some(lang) = info.language_code.as_deref() {
            if !["he", "en", "ru"].contains(&lang) {
                errs.push("receipt.receiptInfo.languageCode", "must be he, en or ru");
            }
        }
        if let Some(code) = info.currency_code.as_deref() {
            if !["ILS", "USD", "EUR", "RUB"].contains(&code) {
                errs.push(
                    "receipt.receiptInfo.currencyCode",
                    "must be ILS, USD, EUR or RUB",
                );
            }
        }
        if let Some(email) = info.email.as_deref() {
            if !is_email(email) {
                errs.push("receipt.receiptInfo.email", "must be an e-mail address");
            }
        }
    }
}

/// Checks a card's number (12–19 digits) and expiry (`MM/YY`). Never echoes the values.
pub(crate) fn validate_card(card: &CreditCard, path: &str, errs: &mut InvalidParameters) {
    let n = card.card_number.len();
    if !(12..=19).contains(&n) || !card.card_number.bytes().all(|b| b.is_ascii_digit()) {
        errs.push(format!("{path}.cardNumber"), "must be 12 to 19 digits");
    }
    if !is_expiry(&card.expiration) {
        errs.push(format!("{path}.expiration"), "must be MM/YY");
    }
    if let Some(cvv) = &card.cvv {
        if !(3..=4).contains(&cvv.len()) || !cvv.bytes().all(|b| b.is_ascii_digit()) {
            errs.push(format!("{path}.cvv"), "must be 3 or 4 digits");
        }
    }
}

/// `MM/YY` with a real month.
pub(crate) fn is_expiry(text: &str) -> bool {
    let Some((mm, yy)) = text.split_once('/') else {
        return false;
    };
    mm.len() == 2
        && yy.len() == 2
        && yy.bytes().all(|b| b.is_ascii_digit())
        && mm.parse::<u8>().is_ok_and(|m| (1..=12).contains(&m))
}

fn is_http_url(text: &str) -> bool {
    reqwest::Url::parse(text)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

fn is_email(text: &str) -> bool {
    match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !text.contains(char::is_whitespace)
                && !domain.contains('@')
        }
        None => false,
    }
}

fn is_phone(text: &str) -> bool {
    let body = text.strip_prefix('+').unwrap_or(text);
    let digits = body.bytes().filter(u8::is_ascii_digit).count();
    (6..=15).contains(&digits)
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b' ' | b'-' | b'(' | b')'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn minimal_pos_example_round_trips() {
        // The minimal POS example of spec §4.1.
        let body = json!({ "deviceId": "dev", "amount": 200, "isCent": true, "currency": "USD",
            "timeOut": 600, "posData": { "orderId": "A-17" },
            "callbackURL": "https://merchant.example/cb" });
        let req = InitRequest::from_pos_json(body).unwrap();
        assert_eq!(req.amount, Minor(200));
        assert_eq!(req.currency, Currency::Usd);
        assert_eq!(req.time_out, Some(600));
        assert_eq!(req.device_id.as_deref(), Some("dev"));
        let wire = req.to_json();
        assert_eq!(
            wire,
            json!({ "amount": 200, "isCent": true, "currency": "USD", "timeOut": 600,
                "posData": { "orderId": "A-17" }, "callbackURL": "https://merchant.example/cb" })
        );
        // What we send reads back to the same request (the journal relies on this).
        let mut again = InitRequest::from_pos_json(wire).unwrap();
        again.device_id = Some("dev".into());
        assert_eq!(again, req);
    }

    #[test]
    fn is_cent_absent_means_minor_units() {
        let req = InitRequest::from_pos_json(json!({"amount": 1250, "currency": "EUR"})).unwrap();
        assert_eq!(req.amount, Minor(1250));
        assert_eq!(req.effective_timeout(), 600);
        assert_eq!(req.to_json()["isCent"], true);
    }

    #[test]
    fn is_cent_false_converts_exactly() {
        let req = InitRequest::from_pos_json(json!({"amount": 12.5, "isCent": false, "currency": "USD",
            "products": [{"name": "A", "quantity": 2, "amount": 5.25, "vat": 1.1, "discount": "0.1"}]}))
        .unwrap();
        assert_eq!(req.amount, Minor(1250));
        assert_eq!(req.products[0].amount, Minor(525));
        assert_eq!(req.products[0].vat, Minor(110));
        assert_eq!(req.products[0].discount, Minor(10));
        assert!(!req.product_sum_mismatch(), "(525 + 110 - 10) * 2 = 1250");
        let wire = req.to_json();
        assert_eq!(wire["amount"], 1250);
        assert_eq!(wire["products"][0]["amount"], 525);
        let req = InitRequest::from_pos_json(
            json!({"amount": "0.1", "isCent": false, "currency": "ILS"}),
        )
        .unwrap();
        assert_eq!(req.amount, Minor(10));
    }

    #[test]
    fn lower_case_timeout_as_string() {
        // The products/update example of spec §8.3.
        let req = InitRequest::from_pos_json(json!({"products": [{"name": "Tea", "amount": 190}],
            "amount": 190, "currency": "USD", "isCent": true, "timeout": "1000",
            "readyForPayment": false}))
        .unwrap();
        assert_eq!(req.time_out, Some(1000));
        assert_eq!(req.ready_for_payment, Some(false));
        let wire = req.to_json();
        assert_eq!(wire["timeOut"], 1000);
        assert!(wire.get("timeout").is_none());
    }

    #[test]
    fn every_invalid_field_is_named() {
        let body = json!({
            "amount": 12.5, "isCent": true, "currency": "usd", "timeOut": 5,
            "methodType": "teleport", "maxInstallments": 0, "returnURL": "ftp://x",
            "cancelURL": 7, "callbackURL": "not a url", "callbackMethod": "PUT",
            "clientPhoneNumber": "abc", "clientEmail": "nobody", "customSmsText": 1,
            "clientName": [], "reason": {}, "emailConfig": {"paymentRequest": {"language": "fr"}},
            "invoice": {"type": "gif", "url": "x"}, "receipt": {"mode": 9, "accountingProvider": 0,
            "receiptInfo": {"languageCode": "de", "currencyCode": "GBP", "email": "x"}},
            "receiptNotifications": {"email": ["a"], "sms": ["b"]},
            "products": [{"name": "A", "amount": 1.5}, {"name": "B", "quantity": 0, "amount": -1},
                         "nope", {"name": "C", "amount": 1, "subProducts": [{"vat": "x"}]}],
            "metadata": {"a": 1}, "readyForPayment": "no",
            "paymentDetails": {"creditCard": {"cardNumber": "12", "expiration": "13/99", "cvv": "1"}},
            "subscription": {"interval": "1month"}, "deviceId": 5, "isCentX": true
        });
        let errs = InitRequest::from_pos_json(body).unwrap_err();
        let names = errs.names();
        for expected in [
            "amount",
            "currency",
            "timeOut",
            "methodType",
            "maxInstallments",
            "returnURL",
            "cancelURL",
            "callbackURL",
            "callbackMethod",
            "clientPhoneNumber",
            "clientEmail",
            "customSmsText",
            "clientName",
            "reason",
            "emailConfig.paymentRequest.language",
            "invoice.type",
            "invoice.url",
            "receipt.mode",
            "receipt.accountingProvider",
            "receipt.receiptInfo.languageCode",
            "receipt.receiptInfo.currencyCode",
            "receipt.receiptInfo.email",
            "receiptNotifications.email[0]",
            "receiptNotifications.sms[0]",
            "products[0].amount",
            "products[1].quantity",
            "products[1].amount",
            "products[2]",
            "products[3].subProducts[0].vat",
            "metadata",
            "readyForPayment",
            "paymentDetails.creditCard.cardNumber",
            "paymentDetails.creditCard.expiration",
            "paymentDetails.creditCard.cvv",
            "subscription",
            "deviceId",
        ] {
            assert!(
                names.contains(&expected),
                "{expected} not reported in {names:?}"
            );
        }
        // Card data never appears in reasons.
        assert!(!errs.to_string().contains("13/99"));
    }

    #[test]
    fn amount_rules() {
        let reason = |body: Value| {
            let e = InitRequest::from_pos_json(body).unwrap_err();
            assert_eq!(e.names(), vec!["amount"], "{e}");
            e.0[0].reason.clone()
        };
        assert_eq!(reason(json!({"currency": "USD"})), "is required");
        assert_eq!(
            reason(json!({"currency": "USD", "amount": null})),
            "is required"
        );
        assert_eq!(
            reason(json!({"currency": "USD", "amount": 0})),
            "must be greater than 0"
        );
        assert_eq!(
            reason(json!({"currency": "USD", "amount": -5})),
            "must be greater than 0"
        );
        assert!(reason(json!({"currency": "USD", "amount": 1.5})).contains("whole number"));
        assert!(reason(json!({"currency": "USD", "amount": true})).contains("must be a number"));
        assert!(
            reason(json!({"currency": "USD", "amount": 1.234, "isCent": false}))
                .contains("more decimals")
        );
        assert_eq!(
            reason(json!({"currency": "USD", "amount": 1e300, "isCent": true})),
            "must be a whole number of minor units (isCent is true)"
        );
        assert_eq!(
            reason(json!({"currency": "USD", "amount": 10000000000000000000u64})),
            "is too large"
        );
        // A whole float and a numeric string are fine.
        assert_eq!(
            InitRequest::from_pos_json(json!({"currency": "USD", "amount": 200.0}))
                .unwrap()
                .amount,
            Minor(200)
        );
        assert_eq!(
            InitRequest::from_pos_json(json!({"currency": "USD", "amount": "200"}))
                .unwrap()
                .amount,
            Minor(200)
        );
        // GBP is a till_core currency but not a SensePass one.
        let e = InitRequest::from_pos_json(json!({"currency": "GBP", "amount": 1})).unwrap_err();
        assert_eq!(e.names(), vec!["currency"]);
        let e = InitRequest::from_pos_json(json!([1])).unwrap_err();
        assert_eq!(e.names(), vec!["body"]);
        let e =
            InitRequest::from_pos_json(json!({"currency": "USD", "amount": 1, "isCent": "yes"}))
                .unwrap_err();
        assert_eq!(e.names(), vec!["isCent"]);
    }

    #[test]
    fn timeout_rules() {
        let names = |body: Value| {
            InitRequest::from_pos_json(body)
                .unwrap_err()
                .names()
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(json!({"currency": "USD", "amount": 1, "timeOut": 9})),
            vec!["timeOut"]
        );
        assert_eq!(
            names(json!({"currency": "USD", "amount": 1, "timeOut": 86401})),
            vec!["timeOut"]
        );
        assert_eq!(
            names(json!({"currency": "USD", "amount": 1, "timeout": "ten"})),
            vec!["timeout"]
        );
        assert_eq!(
            names(json!({"currency": "USD", "amount": 1, "timeOut": 60, "timeout": 70})),
            vec!["timeout"]
        );
        let ok = |body: Value| InitRequest::from_pos_json(body).unwrap().time_out;
        assert_eq!(
            ok(json!({"currency": "USD", "amount": 1, "timeOut": 10})),
            Some(10)
        );
        assert_eq!(
            ok(json!({"currency": "USD", "amount": 1, "timeOut": "86400"})),
            Some(86400)
        );
        assert_eq!(
            ok(json!({"currency": "USD", "amount": 1, "timeOut": 60, "timeout": 60})),
            Some(60)
        );
    }

    #[test]
    fn full_request_keeps_every_field_and_unknowns() {
        let body = json!({
            "amount": 3499, "isCent": true, "currency": "ILS", "timeOut": 500,
            "methodType": "Authorize", "maxInstallments": 3,
            "returnURL": "https://shop.example/ok", "cancelURL": "https://shop.example/cancel",
            "callbackURL": "https://shop.example/cb", "callbackMethod": "GET",
            "posData": {"orderId": "A-1", "lines": [1, 2]}, "clientPhoneNumber": "+972 50-123-4567",
            "customSmsText": "Pay %%amount%% at %%link%%", "clientEmail": "ann@example.com",
            "emailConfig": {"paymentRequest": {"language": "he"}}, "clientName": "Ann",
            "reason": "Order A-1", "invoice": {"type": "pdf", "url": "https://shop.example/i.pdf"},
            "receipt": {"mode": 1, "accountingProvider": 4, "receiptInfo": {"firstName": "Ann",
                "socialID": "123", "languageCode": "he", "currencyCode": "ILS", "discount": 0, "vat": true}},
            "receiptNotifications": {"email": ["ann@example.com"], "sms": ["+972501234567"]},
            "products": [{"name": "Mug", "quantity": 1, "amount": 3499, "vat": 0, "discount": 0,
                "posIdentifier": "M1", "itemNumber": 1}],
            "metadata": [{"key": "genericDisplay", "value": [{"sectionLabel": "Order",
                "values": [{"label": "Id", "value": "A-1"}]}]}],
            "readyForPayment": true,
            "paymentDetails": {"creditCard": {"cardNumber": "4111111111111111", "expiration": "12/30",
                "cvv": "123"}},
            "brandNewField": {"x": 1}
        });
        let req = InitRequest::from_pos_json(body.clone()).unwrap();
        assert!(!req.product_sum_mismatch());
        assert_eq!(req.extra["brandNewField"], json!({"x": 1}));
        let wire = req.to_json();
        assert_eq!(
            wire, body,
            "every field is sent exactly as the spec names it"
        );
        // Debug never shows the card number.
        let dbg = format!("{req:?}");
        assert!(!dbg.contains("4111111111111111"));
        assert!(dbg.contains("****1111"));
    }

    #[test]
    fn subscription_terms() {
        let req = InitRequest::from_pos_json(json!({"amount": 1000, "currency": "USD",
            "methodType": "subscription", "subscription": {"interval": "1month", "dueDate": "2025-01-01"}}))
        .unwrap();
        assert_eq!(
            req.subscription.unwrap().due_date.as_deref(),
            Some("2025-01-01")
        );
    }

    #[test]
    fn product_sum_mismatch_is_flagged_not_rejected() {
        let req = InitRequest::from_pos_json(json!({"amount": 500, "currency": "USD",
            "products": [{"name": "A", "quantity": 2, "amount": 200}]}))
        .unwrap();
        assert!(req.product_sum_mismatch());
        let mut ok = req.clone();
        ok.amount = Minor(400);
        assert!(!ok.product_sum_mismatch());
    }

    #[test]
    fn credentials_in_the_body_are_not_forwarded() {
        let req = InitRequest::from_pos_json(json!({"amount": 1, "currency": "USD", "apiKey": "k",
            "branchNumber": "1", "deviceId": "d"}))
        .unwrap();
        let wire = req.to_json();
        for f in AUTH_FIELDS {
            assert!(wire.get(f).is_none(), "{f} forwarded");
        }
    }
}
