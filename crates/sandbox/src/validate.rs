//! Reading request bodies field by field so that a 400 names *every* invalid field.
//!
//! Bodies are parsed as loose JSON objects rather than through `serde` structs: a typed
//! deserializer stops at the first wrong type, while a POS developer needs the whole list
//! (`invalid_parameters`, docs/DECISIONS.md). JSON `null` counts as absent everywhere.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Number, Value};
use till_core::money::{major_json_number_to_minor, minor_json_number};
use till_core::{Currency, InvalidParameters, Minor, Product, Quantity};

use crate::model::SENSEPASS_CURRENCIES;

/// Every error the REST API answers, in the shapes of docs/DECISIONS.md.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// 400 `{status, error_type:"validation", title, invalid_parameters}`.
    Validation(InvalidParameters),
    /// 401 `{status, error_type:"unauthorized", title}`.
    Unauthorized(String),
    /// 404 `{status, error_type:"not_found", title}`.
    NotFound(String),
    /// `{status, status_message}` with the given code (cancel, commit and update refusals).
    Message(StatusCode, String),
}

impl ApiError {
    /// A validation error about one field.
    pub(crate) fn field(parameter: &str, reason: &str) -> ApiError {
        let mut p = InvalidParameters::new();
        p.push(parameter, reason);
        ApiError::Validation(p)
    }

    /// 404 for an unknown transaction number.
    pub(crate) fn txn_not_found() -> ApiError {
        ApiError::NotFound("Transaction not found".into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, body) = match self {
            ApiError::Validation(params) => (
                StatusCode::BAD_REQUEST,
                json!({
                    "status": 400,
                    "error_type": "validation",
                    "title": "Your request parameters did not validate",
                    "invalid_parameters": params,
                }),
            ),
            ApiError::Unauthorized(title) => (
                StatusCode::UNAUTHORIZED,
                json!({"status": 401, "error_type": "unauthorized", "title": title}),
            ),
            ApiError::NotFound(title) => (
                StatusCode::NOT_FOUND,
                json!({"status": 404, "error_type": "not_found", "title": title}),
            ),
            ApiError::Message(code, message) => {
                (code, json!({"status": code.as_u16(), "status_message": message}))
            }
        };
        (code, axum::Json(body)).into_response()
    }
}

/// A JSON object body being read, with the invalid fields found so far.
pub(crate) struct Body {
    map: Map<String, Value>,
    prefix: String,
    pub(crate) errors: InvalidParameters,
}

impl Body {
    /// Parses raw bytes. An empty body is an empty object; anything but an object is a 400
    /// naming `body`.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Body, ApiError> {
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(Body::from_map(Map::new(), ""));
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Ok(Body::from_map(map, "")),
            Ok(_) => Err(ApiError::field("body", "must be a JSON object")),
            Err(e) => Err(ApiError::field("body", &format!("malformed JSON: {e}"))),
        }
    }

    /// A body over an existing map whose fields are reported as `prefix.field`.
    pub(crate) fn from_map(map: Map<String, Value>, prefix: &str) -> Body {
        Body { map, prefix: prefix.to_string(), errors: InvalidParameters::new() }
    }

    /// The full parameter name of `key`.
    pub(crate) fn name(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    /// Records an invalid field.
    pub(crate) fn push(&mut self, key: &str, reason: impl Into<String>) {
        let name = self.name(key);
        self.errors.push(name, reason);
    }

    /// The raw value, `None` when absent or null.
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// True when present and not null.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// An optional string.
    pub(crate) fn string(&mut self, key: &str) -> Option<String> {
        match self.get(key) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.push(key, "must be a string");
                None
            }
        }
    }

    /// A required, non-empty string.
    pub(crate) fn string_req(&mut self, key: &str) -> Option<String> {
        if !self.has(key) {
            self.push(key, "is required");
            return None;
        }
        let s = self.string(key)?;
        if s.trim().is_empty() {
            self.push(key, "must not be empty");
            return None;
        }
        Some(s)
    }

    /// An optional boolean.
    pub(crate) fn boolean(&mut self, key: &str) -> Option<bool> {
        match self.get(key) {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                self.push(key, "must be a boolean");
                None
            }
        }
    }

    /// An optional JSON number.
    pub(crate) fn number(&mut self, key: &str) -> Option<Number> {
        match self.get(key) {
            None => None,
            Some(Value::Number(n)) => Some(n.clone()),
            Some(_) => {
                self.push(key, "must be a number");
                None
            }
        }
    }

    /// An optional whole number (`5` or `5.0`).
    pub(crate) fn integer(&mut self, key: &str) -> Option<i64> {
        let n = self.number(key)?;
        match minor_json_number(&n) {
            Ok(m) => Some(m.0),
            Err(_) => {
                self.push(key, "must be a whole number");
                None
            }
        }
    }

    /// An optional object.
    pub(crate) fn object(&mut self, key: &str) -> Option<Map<String, Value>> {
        match self.get(key) {
            None => None,
            Some(Value::Object(m)) => Some(m.clone()),
            Some(_) => {
                self.push(key, "must be an object");
                None
            }
        }
    }

    /// An optional object read as a nested body (errors named `key.field`). Merge it back with
    /// [`Body::absorb`].
    pub(crate) fn child(&mut self, key: &str) -> Option<Body> {
        let map = self.object(key)?;
        let name = self.name(key);
        Some(Body::from_map(map, &name))
    }

    /// Takes over a nested body's errors.
    pub(crate) fn absorb(&mut self, child: Body) {
        self.errors.0.extend(child.errors.0);
    }

    /// An optional array.
    pub(crate) fn array(&mut self, key: &str) -> Option<Vec<Value>> {
        match self.get(key) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(_) => {
                self.push(key, "must be an array");
                None
            }
        }
    }

    /// An optional currency among those SensePass documents.
    pub(crate) fn currency(&mut self, key: &str) -> Option<Currency> {
        let code = self.string(key)?;
        match Currency::from_code(&code) {
            Ok(c) if SENSEPASS_CURRENCIES.contains(&c) => Some(c),
            _ => {
                self.push(key, "must be one of USD, CAD, ILS, EUR, RUB");
                None
            }
        }
    }

    /// A money amount: minor units with `is_cent`, else major units (exactly). `Some(Minor)` only
    /// when valid; `allow_zero` admits 0 (tokenization, deferred authorization).
    pub(crate) fn amount(
        &mut self,
        key: &str,
        is_cent: bool,
        currency: Option<Currency>,
        allow_zero: bool,
    ) -> Option<Minor> {
        let n = self.number(key)?;
        let parsed = if is_cent {
            minor_json_number(&n).map_err(|_| "must be a whole number of cents (isCent is true)")
        } else {
            major_json_number_to_minor(&n, currency.unwrap_or(Currency::Usd))
                .map_err(|_| "must be a decimal with at most 2 decimals (isCent is false)")
        };
        match parsed {
            Ok(m) if m.0 > 0 || (allow_zero && m.0 == 0) => Some(m),
            Ok(_) if allow_zero => {
                self.push(key, "must not be negative");
                None
            }
            Ok(_) => {
                self.push(key, "must be greater than 0");
                None
            }
            Err(reason) => {
                self.push(key, reason);
                None
            }
        }
    }

    /// Moves the collected errors out: `Err` when any field was invalid.
    pub(crate) fn check(&mut self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(std::mem::take(&mut self.errors)))
        }
    }
}

/// Credentials a request carries (§1.2).
#[derive(Debug, Clone)]
pub(crate) enum Credentials {
    /// A register.
    Device(String),
    /// A location key, or a merchant key with a branch number.
    Key { key: String, branch: Option<String> },
}

/// Reads `deviceId` | `apiKey` (+`branchNumber`) | `merchantApiKey` (+`branchNumber`). Missing
/// all of them names `deviceId`.
pub(crate) fn credentials(b: &mut Body) -> Option<Credentials> {
    let device = b.string("deviceId");
    let api_key = b.string("apiKey");
    let merchant_key = b.string("merchantApiKey");
    let branch = match b.get("branchNumber") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => {
            b.push("branchNumber", "must be a string or a number");
            None
        }
    };
    if let Some(d) = device {
        if d.trim().is_empty() {
            b.push("deviceId", "must not be empty");
            return None;
        }
        return Some(Credentials::Device(d));
    }
    if let Some(key) = api_key.or(merchant_key) {
        if key.trim().is_empty() {
            b.push("apiKey", "must not be empty");
            return None;
        }
        return Some(Credentials::Key { key, branch });
    }
    if !b.has("deviceId") && !b.has("apiKey") && !b.has("merchantApiKey") {
        b.push("deviceId", "is required when apiKey is absent");
    }
    None
}

/// Reads a product list (§7.3) under `key`, naming every invalid field
/// (`products[1].quantity`). Money fields use the transaction's unit (`is_cent`).
pub(crate) fn products(
    b: &mut Body,
    key: &str,
    is_cent: bool,
    currency: Option<Currency>,
) -> Option<(Value, Vec<Product>)> {
    let raw = b.get(key)?.clone();
    let Value::Array(items) = &raw else {
        b.push(key, "must be an array");
        return None;
    };
    let path = b.name(key);
    let mut out = Vec::new();
    let mut errors = InvalidParameters::new();
    for (i, item) in items.iter().enumerate() {
        out.push(product(item, &format!("{path}[{i}]"), is_cent, currency, &mut errors));
    }
    Product::validate_all(&out, &path, &mut errors);
    let ok = errors.is_empty();
    b.errors.0.extend(errors.0);
    ok.then_some((raw, out))
}

fn product(
    item: &Value,
    path: &str,
    is_cent: bool,
    currency: Option<Currency>,
    errors: &mut InvalidParameters,
) -> Product {
    let mut p = Product::simple("", 1, 0);
    let Value::Object(map) = item else {
        errors.push(path, "must be an object");
        return p;
    };
    let mut b = Body::from_map(map.clone(), path);
    p.name = b.string("name").unwrap_or_default();
    match b.get("quantity") {
        None => {}
        Some(Value::Number(n)) => match Quantity::parse(&n.to_string()) {
            Ok(q) => p.quantity = q,
            Err(_) => b.push("quantity", "must be a number with at most 3 decimals"),
        },
        Some(Value::String(s)) => match Quantity::parse(s.trim()) {
            Ok(q) => p.quantity = q,
            Err(_) => b.push("quantity", "must be a number with at most 3 decimals"),
        },
        Some(_) => b.push("quantity", "must be a number"),
    }
    for field in ["amount", "vat", "discount"] {
        let Some(n) = b.number(field) else { continue };
        let parsed = if is_cent {
            minor_json_number(&n).map_err(|_| "must be a whole number of cents (isCent is true)")
        } else {
            major_json_number_to_minor(&n, currency.unwrap_or(Currency::Usd))
                .map_err(|_| "must be a decimal with at most 2 decimals (isCent is false)")
        };
        match parsed {
            Ok(m) => match field {
                "amount" => p.amount = m,
                "vat" => p.vat = m,
                _ => p.discount = m,
            },
            Err(reason) => b.push(field, reason),
        }
    }
    p.pos_identifier = b.string("posIdentifier");
    p.item_number = b.integer("itemNumber");
    p.product_url = b.string("productUrl");
    p.product_image_url = b.string("productImageUrl");
    p.measurement_unit = b.string("measurementUnit");
    if let Some(subs) = b.array("subProducts") {
        for (i, sub) in subs.iter().enumerate() {
            let sub_path = format!("{path}.subProducts[{i}]");
            p.sub_products.push(product(sub, &sub_path, is_cent, currency, &mut b.errors));
        }
    }
    errors.0.extend(b.errors.0);
    p
}

/// Parses an ISO-8601 date or date-time. A bare date is midnight UTC; with `end_of_day` it is
/// the last instant of that day (for inclusive `endDate`s).
pub(crate) fn parse_date(text: &str, end_of_day: bool) -> Option<time::OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(text.trim(), &Rfc3339) {
        return Some(t);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(text.trim(), &fmt).ok()?;
    let t = date.midnight().assume_utc();
    Some(if end_of_day { t + time::Duration::days(1) - time::Duration::milliseconds(1) } else { t })
}
