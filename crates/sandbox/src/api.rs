//! The SensePass REST API under `/api/` (fact sheet §4.1–4.18), answering in the shapes of
//! docs/DECISIONS.md. Credentials travel in the JSON body (headers for subscriptions).

use crate::app::{InputOutcome, Shared};
use crate::ids;
use crate::model::{
    card_confirmation, find_card, fmt_time, CancelOutcome, CardInfo, CardOutcome, Method, State,
    Subscription, Txn, BUSINESS_ID, PROVIDER, SANDBOX_API_KEY,
};
use crate::tasks;
use crate::validate::{credentials, parse_date, products, ApiError, Body, Credentials};
use axum::body::Bytes;
use axum::extract::{Path, Request, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::cmp::Ordering;
use std::sync::Arc;
use std::time::Duration;
use till_core::{Currency, Minor, Money, Status};
use time::OffsetDateTime;

type Sh = AxState<Arc<Shared>>;
type ApiResult = Result<Response, ApiError>;

/// The `/api` router (to be nested under `/api`).
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/transactions/init", post(init))
        .route("/transactions", post(fetch_many))
        .route("/transactions/{n}", get(get_one).patch(update))
        .route("/transactions/cancel/{n}", post(cancel))
        .route("/transactions/cancelByDeviceId/{device}", post(cancel_by_device))
        .route("/transactions/refund", post(refund))
        .route("/transactions/pay", post(pay))
        .route("/transactions/credit", post(credit))
        .route("/transactions/{n}/readyForPayment", post(ready_for_payment))
        .route("/transactions/{n}/commit", post(sdk_commit))
        .route("/transactions/commitPayment/{n}", get(commit_payment))
        .route("/transactions/customer-input", post(customer_input))
        .route("/transactions/customer-input/reset", post(customer_input_reset))
        .route("/devices/match", post(devices_match))
        .route("/devices/create", post(devices_create))
        .route("/settlements/all", post(settlements))
        .route("/subscription/{id}", get(subscription_get).patch(subscription_patch))
        .route("/invoicesReceipts/receipt/save/{id}", post(receipt_upload).put(receipt_upload))
        .fallback(|| async { ApiError::NotFound("No such endpoint".into()) })
        .layer(axum::middleware::from_fn_with_state(shared.clone(), faults))
        .with_state(shared)
}

/// `latencyMs` and `failNext` for every `/api` call.
async fn faults(AxState(sh): Sh, request: Request, next: Next) -> Response {
    let latency = sh.faults().latency_ms;
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let fail = {
        let mut faults = sh.faults();
        match faults.fail_next {
            Some((count, status)) if count > 0 => {
                faults.fail_next = if count > 1 { Some((count - 1, status)) } else { None };
                Some(status)
            }
            _ => None,
        }
    };
    if let Some(status) = fail {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let body = json!({"status": code.as_u16(), "error_type": "fault", "title": "Injected fault"});
        return (code, Json(body)).into_response();
    }
    next.run(request).await
}

/// Checks credentials against the sandbox merchant; returns the device for device credentials.
pub(crate) fn authenticate(st: &State, cred: &Credentials) -> Result<Option<String>, ApiError> {
    match cred {
        Credentials::Device(id) => {
            if st.devices.contains_key(id) {
                Ok(Some(id.clone()))
            } else {
                Err(ApiError::Unauthorized("Unknown deviceId".into()))
            }
        }
        Credentials::Key { key, branch } => {
            if key != SANDBOX_API_KEY {
                return Err(ApiError::Unauthorized("Unknown apiKey".into()));
            }
            match branch.as_deref() {
                None | Some(crate::model::BRANCH_NUMBER) => Ok(None),
                Some(_) => Err(ApiError::Unauthorized("Unknown branchNumber".into())),
            }
        }
    }
}

/// Parses the body, reads credentials, rejects invalid fields and unknown credentials.
fn open(st_sh: &Shared, bytes: &[u8]) -> Result<(Body, Option<String>), ApiError> {
    let mut b = Body::parse(bytes)?;
    let cred = credentials(&mut b);
    b.check()?;
    let device = match cred {
        Some(c) => authenticate(&st_sh.state(), &c)?,
        None => None,
    };
    Ok((b, device))
}

fn ok(value: Value) -> ApiResult {
    Ok(Json(value).into_response())
}

/// Sends the response unless a `loseNextResponse` fault of `kind` is set, in which case the
/// work is already done and the request simply never gets an answer.
async fn deliver(sh: &Shared, kind: &str, response: ApiResult) -> ApiResult {
    if sh.take_lose(kind) {
        tracing::info!("losing the response of a `{kind}` call (fault)");
        sh.hang().await;
        return Err(ApiError::Message(StatusCode::SERVICE_UNAVAILABLE, "lost".into()));
    }
    response
}

fn pos_name(st: &State, device: &Option<String>) -> String {
    device
        .as_ref()
        .and_then(|d| st.devices.get(d))
        .map(|d| d.name.clone())
        .unwrap_or_else(|| "Web".to_string())
}

// ---------------------------------------------------------------------------------------------
// transactions/init

async fn init(AxState(sh): Sh, bytes: Bytes) -> ApiResult {
    sh.state().count("init");
    let settings = sh.state().settings.clone();
    let mut b = Body::parse(&bytes)?;
    let cred = credentials(&mut b);
    let method = match b.string("methodType") {
        None => Method::Payment,
        Some(s) => Method::parse(&s).unwrap_or_else(|| {
            b.push(
                "methodType",
                "must be one of payment, tokenize, authorize, credit, Capture+Tokenize, subscription",
            );
            Method::Payment
        }),
    };
    let is_cent = b.boolean("isCent").unwrap_or(true);
    let currency = if b.has("currency") {
        b.currency("currency")
    } else {
        b.push("currency", "is required");
        None
    };
    let blank_amount = matches!(b.get("amount"), Some(Value::String(s)) if s.trim().is_empty());
    let amount = match method {
        Method::Tokenize => b.amount("amount", is_cent, currency, true),
        Method::Authorize if blank_amount => None,
        Method::Authorize => b.amount("amount", is_cent, currency, true),
        _ if !b.has("amount") => {
            b.push("amount", "is required");
            None
        }
        _ => b.amount("amount", is_cent, currency, false),
    };
    let timeout = match b.integer("timeOut") {
        None => 600,
        Some(t) if t >= settings.min_timeout_secs && t <= 86_400 => t,
        Some(_) => {
            b.push(
                "timeOut",
                format!("must be between {} and 86400 seconds", settings.min_timeout_secs),
            );
            600
        }
    };
    let max_installments = match b.integer("maxInstallments") {
        Some(n) if n < 1 => {
            b.push("maxInstallments", "must be at least 1");
            1
        }
        Some(n) => n,
        None => 1,
    };
    for key in ["returnURL", "cancelURL", "customSmsText"] {
        b.string(key);
    }
    let callback_url = b.string("callbackURL");
    if let Some(m) = b.string("callbackMethod") {
        if !m.eq_ignore_ascii_case("GET") && !m.eq_ignore_ascii_case("POST") {
            b.push("callbackMethod", "must be GET or POST");
        }
    }
    let client_phone = b.string("clientPhoneNumber");
    let client_email = b.string("clientEmail");
    let client_name = b.string("clientName");
    let reason = b.string("reason");
    b.object("emailConfig");
    if let Some(mut rn) = b.child("receiptNotifications") {
        string_list(&mut rn, "email");
        string_list(&mut rn, "sms");
        b.absorb(rn);
    }
    let invoice = read_invoice(&mut b);
    let receipt = read_receipt(&mut b);
    let products = products(&mut b, "products", is_cent, currency);
    let metadata = read_metadata(&mut b);
    let ready = b.boolean("readyForPayment").unwrap_or(true);
    if let Some(mut pd) = b.child("paymentDetails") {
        pd.string("type");
        if let Some(mut cc) = pd.child("creditCard") {
            for key in ["cardNumber", "expiration", "cvv", "socialId", "cardHolderZipCode"] {
                cc.string(key);
            }
            pd.absorb(cc);
        }
        b.absorb(pd);
    }
    let subscription = if b.has("subscription") && method != Method::Subscription {
        b.push("subscription", "is only allowed with methodType subscription");
        None
    } else if method == Method::Subscription {
        Some(read_subscription(&mut b))
    } else {
        None
    };
    let pos_data = b.get("posData").cloned();
    b.check()?;
    let Some(currency) = currency else {
        return Err(ApiError::field("currency", "is required"));
    };
    let device = match cred {
        Some(c) => authenticate(&sh.state(), &c)?,
        None => return Err(ApiError::field("deviceId", "is required when apiKey is absent")),
    };

    let now = OffsetDateTime::now_utc();
    let number = ids::transaction_number();
    let (entity, deadline) = {
        let mut st = sh.state();
        let pos = pos_name(&st, &device);
        let receipt_endpoint = receipt
            .as_ref()
            .filter(|r| r.get("mode").and_then(Value::as_i64) == Some(2))
            .map(|_| format!("{}/api/invoicesReceipts/receipt/save/{}", sh.public_url, ids::uuid()));
        let subscription_id = subscription.map(|(interval, expires, start)| {
            let id = ids::uuid();
            st.subscriptions.insert(
                id.clone(),
                Subscription {
                    id: id.clone(),
                    created: now,
                    updated: now,
                    expires,
                    start_date: start.unwrap_or_else(|| fmt_time(now)),
                    interval,
                    status: "active".into(),
                    customer: json!({}),
                },
            );
            id
        });
        let txn = Txn {
            number: number.clone(),
            device_id: device.clone(),
            pos,
            date: now,
            timeout_secs: timeout,
            timeout_date: now + time::Duration::seconds(timeout),
            amount: amount.unwrap_or(Minor::ZERO),
            currency,
            status: Status::Initialize,
            method,
            max_installments,
            reason,
            pos_data,
            products,
            metadata,
            invoice,
            receipt,
            pos_receipts_endpoint: receipt_endpoint,
            receipt_uploads: Vec::new(),
            client_phone,
            client_email,
            client_name,
            callback_url,
            ready_for_payment: ready,
            confirmations: Vec::new(),
            refunds: Vec::new(),
            approved_at: None,
            commit_enabled: true,
            commit_count: 0,
            first_commit_at: None,
            token: None,
            subscription_id,
            three_ds_pending: None,
            card: None,
            history: vec![(Status::Initialize, now)],
            decline: None,
        };
        st.insert(txn);
        let entity = st.txns.get(&number).map(|t| st.entity(t)).unwrap_or(Value::Null);
        (entity, tokio::time::Instant::now() + Duration::from_secs(timeout as u64))
    };
    tracing::info!(transaction = %number, "transaction created");
    tasks::watch_timeout(&sh, number.clone(), deadline);
    if let Some(autopilot) = sh.autopilot() {
        tasks::autopilot(&sh, number.clone(), autopilot);
    }
    deliver(&sh, "init", ok(entity)).await
}

fn string_list(b: &mut Body, key: &str) {
    if let Some(items) = b.array(key) {
        if items.iter().any(|v| !v.is_string()) {
            b.push(key, "must be an array of strings");
        }
    }
}

fn read_invoice(b: &mut Body) -> Option<Value> {
    let raw = b.get("invoice").cloned();
    let mut inv = b.child("invoice")?;
    match inv.string_req("type") {
        Some(t) if ["pdf", "jpg", "png"].contains(&t.as_str()) => {}
        Some(_) => inv.push("type", "must be one of pdf, jpg, png"),
        None => {}
    }
    inv.string_req("url");
    let ok = inv.errors.is_empty();
    b.absorb(inv);
    if ok {
        raw
    } else {
        None
    }
}

fn read_receipt(b: &mut Body) -> Option<Value> {
    let raw = b.get("receipt").cloned();
    let mut r = b.child("receipt")?;
    if let Some(mode) = r.integer("mode") {
        if !(1..=3).contains(&mode) {
            r.push("mode", "must be 1, 2 or 3");
        }
    }
    if let Some(p) = r.integer("accountingProvider") {
        if !(1..=5).contains(&p) {
            r.push("accountingProvider", "must be between 1 and 5");
        }
    }
    r.object("receiptInfo");
    let ok = r.errors.is_empty();
    b.absorb(r);
    if ok {
        raw
    } else {
        None
    }
}

fn read_metadata(b: &mut Body) -> Option<Value> {
    match b.get("metadata") {
        None => None,
        Some(v @ (Value::Array(_) | Value::Object(_))) => Some(v.clone()),
        Some(_) => {
            b.push("metadata", "must be an array");
            None
        }
    }
}

/// `(interval, expires, start_date)` of `subscription.*`.
fn read_subscription(b: &mut Body) -> (String, Option<String>, Option<String>) {
    let mut interval = "1month".to_string();
    let mut expires = None;
    let mut start = None;
    if let Some(mut s) = b.child("subscription") {
        if let Some(i) = s.string("interval") {
            if valid_interval(&i) {
                interval = i;
            } else {
                s.push("interval", "must look like 1day, 14day, 1month, 3month or 1year");
            }
        }
        for (key, slot) in [("expiration", &mut expires), ("dueDate", &mut start)] {
            if let Some(d) = s.string(key) {
                match parse_date(&d, false) {
                    Some(t) => *slot = Some(fmt_time(t)),
                    None => s.push(key, "must be an ISO-8601 date"),
                }
            }
        }
        b.absorb(s);
    }
    (interval, expires, start)
}

fn valid_interval(text: &str) -> bool {
    let digits: String = text.chars().take_while(|c| c.is_ascii_digit()).collect();
    let unit = &text[digits.len()..];
    let unit = unit.strip_suffix('s').unwrap_or(unit);
    !digits.is_empty()
        && digits.parse::<u32>().map(|n| n > 0).unwrap_or(false)
        && ["day", "week", "month", "year"].contains(&unit)
}

// ---------------------------------------------------------------------------------------------
// GET / PATCH transactions/{n}

async fn get_one(AxState(sh): Sh, Path(n): Path<String>, bytes: Bytes) -> ApiResult {
    sh.state().count("status");
    open(&sh, &bytes)?;
    let st = sh.state();
    let txn = st.txns.get(&n).ok_or_else(ApiError::txn_not_found)?;
    ok(st.entity(txn))
}

/// Applies the PATCH-able fields (§4.9) shared by PATCH and the legacy readyForPayment call.
fn apply_update(sh: &Shared, n: &str, mut b: Body, force_ready: bool) -> ApiResult {
    let current = {
        let st = sh.state();
        let txn = st.txns.get(n).ok_or_else(ApiError::txn_not_found)?;
        txn.currency
    };
    let is_cent = b.boolean("isCent").unwrap_or(true);
    let currency = if b.has("currency") { b.currency("currency") } else { Some(current) };
    let amount = if b.has("amount") { b.amount("amount", is_cent, currency, false) } else { None };
    let products = products(&mut b, "products", is_cent, currency);
    let metadata = read_metadata(&mut b);
    let reason = b.string("reason");
    let phone = b.string("clientPhoneNumber");
    let email = b.string("clientEmail");
    let ready = b.boolean("readyForPayment");
    let pos_data = b.get("posData").cloned();
    b.check()?;
    let mut st = sh.state();
    let txn = st.txns.get_mut(n).ok_or_else(ApiError::txn_not_found)?;
    if !matches!(txn.status, Status::Initialize | Status::WaitingForTap) {
        return Err(ApiError::Message(
            StatusCode::BAD_REQUEST,
            "Transaction cannot be updated in its current status".into(),
        ));
    }
    if let Some(c) = currency {
        txn.currency = c;
    }
    if let Some(a) = amount {
        txn.amount = a;
    }
    if products.is_some() {
        txn.products = products;
    }
    if metadata.is_some() {
        txn.metadata = metadata;
    }
    if reason.is_some() {
        txn.reason = reason;
    }
    if phone.is_some() {
        txn.client_phone = phone;
    }
    if email.is_some() {
        txn.client_email = email;
    }
    if pos_data.is_some() {
        txn.pos_data = pos_data;
    }
    if force_ready {
        txn.ready_for_payment = true;
    } else if let Some(r) = ready {
        txn.ready_for_payment = r;
    }
    st.emit(n, None);
    let txn = st.txns.get(n).ok_or_else(ApiError::txn_not_found)?;
    ok(st.entity(txn))
}

async fn update(AxState(sh): Sh, Path(n): Path<String>, bytes: Bytes) -> ApiResult {
    sh.state().count("update");
    let (b, _) = open(&sh, &bytes)?;
    apply_update(&sh, &n, b, false)
}

async fn ready_for_payment(AxState(sh): Sh, Path(n): Path<String>, bytes: Bytes) -> ApiResult {
    sh.state().count("readyForPayment");
    let (b, _) = open(&sh, &bytes)?;
    apply_update(&sh, &n, b, true)
}

// ---------------------------------------------------------------------------------------------
// POST transactions (multi-fetch) and settlements

/// Looks up a dotted path (`posData.orderId`, `confirmations.0.cardMask`).
fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |cur, key| match cur {
        Value::Object(m) => m.get(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// A decimal number (JSON number or numeric string) scaled by 10^9, for exact comparisons.
fn decimal(v: &Value) -> Option<i128> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return None,
    };
    let (neg, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest.to_string()),
        None => (false, text.clone()),
    };
    let (int, frac) = body.split_once('.').unwrap_or((&body, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 9 {
        return None;
    }
    let int: i128 = int.parse().ok()?;
    let frac: i128 = if frac.is_empty() { 0 } else { format!("{frac:0<9}").parse().ok()? };
    let value = int.checked_mul(1_000_000_000)?.checked_add(frac)?;
    Some(if neg { -value } else { value })
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (decimal(a), decimal(b)) {
        return Some(x.cmp(&y));
    }
    match (a, b) {
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ if a == b => Some(Ordering::Equal),
        _ => None,
    }
}

/// One `filter[]` item.
struct Filter {
    key: String,
    op: String,
    value: Value,
}

impl Filter {
    fn matches(&self, row: &Value) -> bool {
        let actual = lookup(row, &self.key).unwrap_or(&Value::Null);
        let ord = compare(actual, &self.value);
        match self.op.as_str() {
            "=" => ord == Some(Ordering::Equal),
            "!=" => ord != Some(Ordering::Equal),
            "<" => ord == Some(Ordering::Less),
            "<=" => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
            ">" => ord == Some(Ordering::Greater),
            ">=" => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
            _ => false,
        }
    }
}

/// The query parts shared by multi-fetch and settlements.
struct Query {
    start: Option<OffsetDateTime>,
    end: Option<OffsetDateTime>,
    status: Option<String>,
    currency: Option<Currency>,
    limit: usize,
    offset: usize,
    order_by: Option<String>,
    filters: Vec<Filter>,
}

fn read_query(b: &mut Body) -> Query {
    let mut range = [None, None];
    for (i, key) in ["startDate", "endDate"].into_iter().enumerate() {
        if let Some(text) = b.string_req(key) {
            match parse_date(&text, i == 1) {
                Some(t) => range[i] = Some(t),
                None => b.push(key, "must be an ISO-8601 date, e.g. 2024-01-01T12:00:00Z"),
            }
        }
    }
    if let (Some(s), Some(e)) = (range[0], range[1]) {
        if e < s {
            b.push("endDate", "must not be before startDate");
        }
    }
    let status = match b.get("status") {
        None => None,
        Some(Value::String(s)) if ["settled", "expired", "voided"].contains(&s.as_str()) => {
            Some(s.clone())
        }
        Some(Value::Number(n)) if n.as_i64().and_then(Status::from_code).is_some() => {
            Some(n.to_string())
        }
        Some(_) => {
            b.push("status", "must be settled, expired or voided");
            None
        }
    };
    let currency = b.currency("currency");
    let (mut limit, mut offset) = (100usize, 0usize);
    if let Some(mut p) = b.child("pagination") {
        if let Some(l) = p.integer("limit") {
            if (1..=1000).contains(&l) {
                limit = l as usize;
            } else {
                p.push("limit", "must be between 1 and 1000");
            }
        }
        if let Some(o) = p.integer("offset") {
            if o >= 0 {
                offset = o as usize;
            } else {
                p.push("offset", "must not be negative");
            }
        }
        b.absorb(p);
    }
    let order_by = b.string("orderBy");
    let mut filters = Vec::new();
    let key = if b.has("filter[]") { "filter[]" } else { "filter" };
    if let Some(items) = b.array(key) {
        for (i, item) in items.iter().enumerate() {
            let Value::Object(m) = item else {
                b.push(&format!("{key}[{i}]"), "must be an object");
                continue;
            };
            let op = match m.get("operator") {
                None => "=".to_string(),
                Some(Value::String(s)) if ["=", "!=", "<", "<=", ">", ">="].contains(&s.as_str()) => {
                    s.clone()
                }
                Some(_) => {
                    b.push(&format!("{key}[{i}].operator"), "must be one of =, !=, <, <=, >, >=");
                    continue;
                }
            };
            let fields: Vec<(&String, &Value)> = m.iter().filter(|(k, _)| *k != "operator").collect();
            if fields.len() != 1 {
                b.push(&format!("{key}[{i}]"), "must have exactly one field besides operator");
                continue;
            }
            filters.push(Filter { key: fields[0].0.clone(), op, value: fields[0].1.clone() });
        }
    }
    Query { start: range[0], end: range[1], status, currency, limit, offset, order_by, filters }
}

/// Filters by the query's filters, sorts by `orderBy` (a leading `-` sorts descending) and pages.
fn page(mut rows: Vec<Value>, q: &Query, default_order: &str) -> Value {
    rows.retain(|r| q.filters.iter().all(|f| f.matches(r)));
    let order = q.order_by.clone().unwrap_or_else(|| default_order.to_string());
    let (desc, key) = match order.strip_prefix('-') {
        Some(k) => (true, k.to_string()),
        None => (false, order),
    };
    rows.sort_by(|a, b| {
        let x = lookup(a, &key).unwrap_or(&Value::Null);
        let y = lookup(b, &key).unwrap_or(&Value::Null);
        let o = compare(x, y).unwrap_or(Ordering::Equal);
        if desc {
            o.reverse()
        } else {
            o
        }
    });
    let total = rows.len();
    let data: Vec<Value> = rows.into_iter().skip(q.offset).take(q.limit).collect();
    json!({
        "pagination": {
            "returnedRecords": data.len(),
            "totalRecords": total,
            "isPartialResult": q.offset + data.len() < total,
        },
        "data": data,
    })
}

fn in_range(q: &Query, t: OffsetDateTime) -> bool {
    q.start.is_none_or(|s| t >= s) && q.end.is_none_or(|e| t <= e)
}

async fn fetch_many(AxState(sh): Sh, bytes: Bytes) -> ApiResult {
    sh.state().count("fetch");
    let (mut b, _) = open(&sh, &bytes)?;
    let q = read_query(&mut b);
    b.check()?;
    let st = sh.state();
    let rows: Vec<Value> = st
        .order
        .iter()
        .filter_map(|n| st.txns.get(n))
        .filter(|t| in_range(&q, t.date))
        .filter(|t| q.currency.is_none_or(|c| c == t.currency))
        .filter(|t| match q.status.as_deref() {
            None => true,
            Some("settled") => t.status.was_captured() && t.status != Status::Refunded,
            Some("expired") => t.status == Status::Timeout,
            Some("voided") => matches!(t.status, Status::Cancelled | Status::Refunded),
            Some(code) => code.parse::<u8>().ok() == Some(t.status.code()),
        })
        .map(|t| st.entity(t))
        .collect();
    ok(page(rows, &q, "date"))
}

async fn settlements(AxState(sh): Sh, bytes: Bytes) -> ApiResult {
    sh.state().count("settlements");
    let (mut b, _) = open(&sh, &bytes)?;
    let q = read_query(&mut b);
    let method = b.string("paymentMethod");
    if let Some(o) = &q.order_by {
        let key = o.strip_prefix('-').unwrap_or(o);
        let allowed = [
            "status", "paymentMethod", "settlementAmount", "fee", "submitDate", "settlementDate",
            "transactionNumber", "pmTransId", "cardType",
        ];
        if !allowed.contains(&key) {
            b.push("orderBy", format!("must be one of {}", allowed.join(", ")));
        }
    }
    b.check()?;
    let st = sh.state();
    let rows: Vec<Value> = st
        .order
        .iter()
        .filter_map(|n| st.txns.get(n))
        .filter_map(|t| {
            let approved = t.approved_at?;
            if !t.status.was_captured() || !in_range(&q, approved) {
                return None;
            }
            if q.currency.is_some_and(|c| c != t.currency) {
                return None;
            }
            let status = if t.status == Status::Refunded { "voided" } else { "settled" };
            if q.status.as_deref().is_some_and(|s| s != status) {
                return None;
            }
            if method.as_deref().is_some_and(|m| m != "Credit Card") {
                return None;
            }
            let net = Minor(t.amount.0 - t.refunded().0);
            let conf = t.confirmations.first();
            Some(json!({
                "status": status,
                "paymentMethod": "Credit Card",
                "settlementAmount": Money { minor: net, currency: t.currency }.to_major_string(),
                "fee": "0",
                "submitDate": fmt_time(approved),
                "settlementDate": fmt_time(approved + time::Duration::days(1)),
                "transactionNumber": t.number,
                "pmTransId": conf.and_then(|c| c.get("referenceNumber")).cloned().unwrap_or(Value::Null),
                "cardType": t.card.as_ref().map(|c| c.brand.clone()),
                "settlementCurrency": t.currency.code(),
            }))
        })
        .collect();
    ok(page(rows, &q, "submitDate"))
}

// ---------------------------------------------------------------------------------------------
// cancel

fn cancel_response(outcome: CancelOutcome) -> ApiResult {
    match outcome {
        CancelOutcome::Cancelled => {
            ok(json!({"status": 200, "status_message": "Transaction Was Canceled"}))
        }
        CancelOutcome::ConsumerActivity => Err(ApiError::Message(
            StatusCode::NOT_IMPLEMENTED,
            "Transaction cannot be cancelled due to consumer activity".into(),
        )),
        CancelOutcome::NotPending => {
            Err(ApiError::Message(StatusCode::BAD_REQUEST, "Transaction is not pending".into()))
        }
    }
}

async fn cancel(AxState(sh): Sh, Path(n): Path<String>, bytes: Bytes) -> ApiResult {
    sh.state().count("cancel");
    open(&sh, &bytes)?;
    let outcome = sh.state().cancel(&n).map_err(|_| ApiError::txn_not_found())?;
    deliver(&sh, "cancel", cancel_response(outcome)).await
}

async fn cancel_by_device(AxState(sh): Sh, Path(device): Path<String>, bytes: Bytes) -> ApiResult {
    sh.state().count("cancelByDeviceId");
    open(&sh, &bytes)?;
    let outcome = {
        let mut st = sh.state();
        if !st.devices.contains_key(&device) {
            return Err(ApiError::Unauthorized("Unknown deviceId".into()));
        }
        let Some(n) = st.latest_pending(&device) else {
            return Err(ApiError::Message(StatusCode::NOT_FOUND, "No pending transaction".into()));
        };
        st.cancel(&n).map_err(|_| ApiError::txn_not_found())?
    };
    deliver(&sh, "cancel", cancel_response(outcome)).await
}

// ---------------------------------------------------------------------------------------------
// refund and credit

fn refund_declined() -> Value {
    json!({
        "errorCode": 22,
        "errorMessage": "refund operation declined by Processor",
        "result": "Declined",
        "refundConfirmation": null,
        "approvedBy": null,
        "refundBy": null,
        "dateApproval": null,
        "providerId": null,
        "amount": null,
        "transaction": null,
    })
}

fn refund_approved(st: &State, n: &str, confirmation: &Value, amount: Minor, by: &str) -> Value {
    let txn = st.txns.get(n);
    json!({
        "errorCode": 0,
        "errorMessage": null,
        "result": "Approved",
        "refundConfirmation": confirmation.get("confirmationNumber"),
        "approvedBy": PROVIDER,
        "refundBy": by,
        "dateApproval": confirmation.get("dateApproval"),
        "providerId": confirmation.get("providerId"),
        "amount": txn.map(|t| Money { minor: amount, currency: t.currency }.to_major_string()),
        "transaction": txn.map(|t| json!({
            "TransactionNumber": t.number,
            "date": fmt_time(t.date),
            "amount": Money { minor: t.amount, currency: t.currency }.to_major_string(),
            "currency": t.currency.code(),
            "status": t.status.code(),
            "businessId": BUSINESS_ID,
        })),
    })
}

async fn refund(AxState(sh): Sh, bytes: Bytes) -> ApiResult {
    sh.state().count("refund");
    let (mut b, device) = open(&sh, &bytes)?;
    let n = b.string_req("transactionNumber");
    let partial = b.boolean("isPartial").unwrap_or(false);
    let is_cent = b.boolean("isCent").unwrap_or(false);
    let requested = if b.has("refundAmount") {
        b.amount("refundAmount", is_cent, None, false)
    } else {
        if partial {
            b.push("refundAmount", "is required when isPartial is true");
        }
        None
    };
    b.check()?;
    let n = n.unwrap_or_default();
    let response = {
        let mut st = sh.state();
        let by = pos_name(&st, &device);
        let txn = st.txns.get(&n).ok_or_else(ApiError::txn_not_found)?;
        if !matches!(txn.status, Status::Approved | Status::PartiallyRefunded) {
            return Err(ApiError::field(
                "transactionNumber",
                &format!("transaction is {} and cannot be refunded", txn.status.display_name()),
            ));
        }
        let remaining = Minor(txn.amount.0 - txn.refunded().0);
        let amount = match requested {
            Some(r) if r > remaining => None,
            Some(r) if !partial && r != remaining => {
                return Err(ApiError::field(
                    "refundAmount",
                    &format!(
                        "must equal the remaining amount ({}) unless isPartial is true",
                        Money { minor: remaining, currency: txn.currency }.to_major_string()
                    ),
                ))
            }
            Some(r) => Some(r),
            None => Some(remaining),
        };
        match amount {
            Some(a) if a.is_positive() => {
                let conf = st.refund(&n, a).map_err(|_| ApiError::txn_not_found())?;
                tracing::info!(transaction = %n, amount = a.0, "refund approved");
                refund_approved(&st, &n, &conf, a, &by)
            }
            _ => refund_declined(),
        }
    };
    deliver(&sh, "refund", ok(response)).await
}

async fn credit(AxState(sh): Sh, bytes: Bytes) -> ApiResult {
    sh.state().count("credit");
    let (mut b, device) = open(&sh, &bytes)?;
    let token = b.string_req("token");
    let is_cent = b.boolean("isCent").unwrap_or(false);
    let amount = if b.has("refundAmount") {
        b.amount("refundAmount", is_cent, None, false)
    } else {
        b.push("refundAmount", "is required");
        None
    };
    let currency = b.currency("currency");
    let token_info = token.as_ref().and_then(|t| sh.state().tokens.get(t).cloned());
    if token.is_some() && token_info.is_none() {
        b.push("token", "unknown token");
    }
    b.check()?;
    let (Some(info), Some(amount)) = (token_info, amount) else {
        return Err(ApiError::field("token", "is required"));
    };
    let now = OffsetDateTime::now_utc();
    let response = {
        let mut st = sh.state();
        let currency = currency.unwrap_or(info.currency);
        let money = Money { minor: amount, currency };
        let conf = card_confirmation(&info.card, money, now, false, "Credit", 1, &sh.public_url);
        let number = ids::transaction_number();
        let pos = pos_name(&st, &device);
        let txn = new_txn(&number, device, pos, now, amount, currency, Method::Credit, Status::Approved, vec![conf.clone()], Some(info.card.clone()));
        st.insert(txn);
        ok(refund_approved(&st, &number, &conf, amount, "API"))
    };
    deliver(&sh, "credit", response).await
}

/// A transaction created directly by a server-to-server call (pay, credit).
#[allow(clippy::too_many_arguments)]
fn new_txn(
    number: &str,
    device: Option<String>,
    pos: String,
    now: OffsetDateTime,
    amount: Minor,
    currency: Currency,
    method: Method,
    status: Status,
    confirmations: Vec<Value>,
    card: Option<CardInfo>,
) -> Txn {
    Txn {
        number: number.to_string(),
        device_id: device,
        pos,
        date: now,
        timeout_secs: 600,
        timeout_date: now + time::Duration::seconds(600),
        amount,
        currency,
        status,
        method,
        max_installments: 1,
        reason: None,
        pos_data: None,
        products: None,
        metadata: None,
        invoice: None,
        receipt: None,
        pos_receipts_endpoint: None,
        receipt_uploads: Vec::new(),
        client_phone: None,
        client_email: None,
        client_name: None,
        callback_url: None,
        ready_for_payment: true,
        confirmations,
        refunds: Vec::new(),
        approved_at: None,
        commit_enabled: method != Method::Credit,
        commit_count: 0,
        first_commit_at: None,
        token: None,
        subscription_id: None,
        three_ds_pending: None,
        card,
        history: vec![(status, now)],
        decline: None,
    }
}

// ---------------------------------------------------------------------------------------------
// pay (server to server)

async fn pay(AxState(sh): Sh, bytes: Bytes) -> ApiResult {
    sh.state().count("pay");
    let (mut b, device) = open(&sh, &bytes)?;
    if b.boolean("isCent") == Some(false) {
        b.push("isCent", "this endpoint accepts amounts in cents only");
    }
    let currency = if b.has("currency") {
        b.currency("currency")
    } else {
        b.push("currency", "is required");
        None
    };
    let amount = if b.has("amount") {
        b.amount("amount", true, currency, false)
    } else {
        b.push("amount", "is required");
        None
    };
    let token = b.string("token");
    let mut card = None;
    match b.child("creditCardDetails") {
        Some(mut cc) => {
            if let Some(number) = cc.string_req("cardNumber") {
                match find_card(&number) {
                    Some(c) => card = Some(c),
                    None => cc.push("cardNumber", "is not a sandbox test card"),
                }
            }
            if let Some(cvv) = cc.string_req("securityCode") {
                if !(3..=4).contains(&cvv.len()) || !cvv.bytes().all(|c| c.is_ascii_digit()) {
                    cc.push("securityCode", "must be 3 or 4 digits");
                }
            }
            if let Some(exp) = cc.string_req("cardExpiration") {
                if !valid_expiration(&exp) {
                    cc.push("cardExpiration", "must be MM/YY");
                }
            }
            cc.string("socialID");
            b.absorb(cc);
        }
        None if token.is_none() => b.push("creditCardDetails", "is required unless token is given"),
        None => {}
    }
    let token_card = token.as_ref().and_then(|t| sh.state().tokens.get(t).map(|i| i.card.clone()));
    if token.is_some() && card.is_none() && token_card.is_none() {
        b.push("token", "unknown token");
    }
    b.integer("installments");
    b.string("reason");
    let metadata = read_metadata(&mut b);
    let pos_data = b.get("posData").cloned();
    b.check()?;
    let (Some(amount), Some(currency)) = (amount, currency) else {
        return Err(ApiError::field("amount", "is required"));
    };
    let expiration = b.get("creditCardDetails").and_then(|c| c.get("cardExpiration")).and_then(Value::as_str).unwrap_or("12/30").to_string();
    let now = OffsetDateTime::now_utc();
    let number = ids::transaction_number();
    let mut st = sh.state();
    let pos = pos_name(&st, &device);
    let mut txn = new_txn(&number, device, pos, now, amount, currency, Method::Payment, Status::Initialize, Vec::new(), None);
    txn.metadata = metadata;
    txn.pos_data = pos_data;
    st.insert(txn);
    let _ = st.set_status(&number, Status::ProcessingPayment);
    let (approved, three_ds, info) = match (card, token_card) {
        (Some(c), _) => (c.outcome != CardOutcome::Decline, c.outcome == CardOutcome::ThreeDs, CardInfo::new(&c, &expiration)),
        (None, Some(info)) => (true, false, info),
        (None, None) => return Err(ApiError::field("creditCardDetails", "is required")),
    };
    let request_id = ids::uuid();
    if approved {
        st.approve_with(&number, info, three_ds).map_err(|_| ApiError::txn_not_found())?;
        let conf = st.txns.get(&number).and_then(|t| t.confirmations.last().cloned()).unwrap_or(Value::Null);
        ok(json!({
            "success": true,
            "message": "Transaction Approved",
            "code": 0,
            "error": null,
            "approvalID": conf.get("authNumber"),
            "requestID": request_id,
            "transactionNumber": number,
            "transactionPaymentID": conf.get("referenceNumber"),
            "transactionStatus": Status::Approved.enum_name(),
            "confirmation": conf,
        }))
    } else {
        let _ = st.finish(&number, Status::Declined);
        ok(json!({
            "success": false,
            "message": "Transaction Declined",
            "code": 6,
            "error": "Card declined by the issuer",
            "approvalID": null,
            "requestID": request_id,
            "transactionNumber": number,
            "transactionPaymentID": null,
            "transactionStatus": Status::Declined.enum_name(),
            "confirmation": null,
        }))
    }
}

fn valid_expiration(text: &str) -> bool {
    let Some((mm, yy)) = text.split_once('/') else { return false };
    mm.len() == 2
        && yy.len() == 2
        && yy.bytes().all(|b| b.is_ascii_digit())
        && mm.parse::<u8>().map(|m| (1..=12).contains(&m)).unwrap_or(false)
}

// ---------------------------------------------------------------------------------------------
// commits

/// Records one commit of an approved transaction.
fn record_commit(st: &mut State, n: &str) -> Result<(), ApiError> {
    let txn = st.txns.get_mut(n).ok_or_else(ApiError::txn_not_found)?;
    if txn.approved_at.is_none() || !txn.commit_enabled {
        return Err(ApiError::Message(StatusCode::BAD_REQUEST, "Transaction is not approved".into()));
    }
    txn.commit_count += 1;
    if txn.first_commit_at.is_none() {
        txn.first_commit_at = Some(OffsetDateTime::now_utc());
    }
    Ok(())
}

async fn commit_payment(AxState(sh): Sh, Path(n): Path<String>) -> ApiResult {
    sh.state().count("commitPayment");
    record_commit(&mut sh.state(), &n)?;
    tracing::info!(transaction = %n, "payment committed");
    let response = ok(json!({
        "status": 200,
        "status_message": "Payment Committed",
        "isPaymentCommitted": true,
    }));
    deliver(&sh, "commit", response).await
}

async fn sdk_commit(AxState(sh): Sh, Path(n): Path<String>, bytes: Bytes) -> ApiResult {
    sh.state().count("commit");
    let (mut b, _) = open(&sh, &bytes)?;
    let method = b.string_req("methodType").map(|m| m.to_ascii_lowercase());
    if let Some(m) = &method {
        if !["manual_capture", "tokenize", "authorize"].contains(&m.as_str()) {
            b.push("methodType", "must be manual_capture, tokenize or authorize");
        }
    }
    let currency = b.currency("currency");
    let needs_amount = matches!(method.as_deref(), Some("manual_capture" | "authorize"));
    if b.has("amount") {
        b.amount("amount", true, currency, false);
    } else if needs_amount {
        b.push("amount", "is required for manual_capture and authorize");
    }
    b.string("callbackURL");
    read_metadata(&mut b);
    products(&mut b, "products", true, currency);
    b.object("receipt");
    b.check()?;
    let response = {
        let mut st = sh.state();
        let txn = st.txns.get(&n).ok_or_else(ApiError::txn_not_found)?;
        let status = txn.status;
        if txn.approved_at.is_some() && status.was_captured() {
            record_commit(&mut st, &n)?;
        }
        let txn = st.txns.get(&n).ok_or_else(ApiError::txn_not_found)?;
        json!({
            "success": txn.approved_at.is_some() && status.was_captured(),
            "transactionNumber": n,
            "transactionStatus": status.enum_name(),
            "paymentDetails": {
                "type": method,
                "paymentMethod": txn.card.as_ref().map(|_| "Credit Card"),
                "created": txn.approved_at.map(fmt_time),
                "token": txn.token,
            },
            "confirmation": txn.confirmations.first(),
        })
    };
    deliver(&sh, "commit", ok(response)).await
}

// ---------------------------------------------------------------------------------------------
// devices

fn valid_pin(pin: &str) -> bool {
    let parts: Vec<&str> = pin.split('-').collect();
    parts.len() == 3
        && parts.iter().all(|p| p.len() == 3 && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Reads the `apiKey` (+`branchNumber`) that device management requires (device credentials
/// are not accepted there).
fn api_key_only(b: &mut Body) -> Option<Credentials> {
    let key = b.string_req("apiKey");
    let branch = match b.get("branchNumber") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => {
            b.push("branchNumber", "must be a string or a number");
            None
        }
    };
    key.map(|key| Credentials::Key { key, branch })
}

async fn devices_match(AxState(sh): Sh, bytes: Bytes) -> ApiResult {
    sh.state().count("devicesMatch");
    let mut b = Body::parse(&bytes)?;
    let key = api_key_only(&mut b);
    let pin = b.string_req("pinCode").map(|p| p.trim().to_ascii_uppercase());
    if pin.as_deref().is_some_and(|p| !valid_pin(p)) {
        b.push("pinCode", "must have the format XXX-XXX-XXX");
    }
    let device_id = b.string("deviceId");
    let pos_name = b.string("posName");
    let emv = b.string("emvTerminalType");
    let types = ["Dejavoo", "Clover", "Adyen", "Verifone", "Flex", "CloudIM", "KCP", "VIVA"];
    if emv.as_deref().is_some_and(|e| !types.iter().any(|t| t.eq_ignore_ascii_case(e))) {
        b.push("emvTerminalType", format!("must be one of {}", types.join(", ")));
    }
    b.object("agentConfig");
    if let Some(d) = &device_id {
        if !sh.state().devices.contains_key(d) {
            b.push("deviceId", "unknown device");
        }
    }
    b.check()?;
    if let Some(key) = key {
        authenticate(&sh.state(), &key)?;
    }
    let pin = pin.unwrap_or_default();
    let mut st = sh.state();
    let device = match (device_id, st.pins.get(&pin).cloned()) {
        (Some(d), _) => {
            st.pins.insert(pin.clone(), d.clone());
            let dev = st.devices.get_mut(&d).ok_or_else(|| ApiError::field("deviceId", "unknown device"))?;
            dev.pin_code = Some(pin.clone());
            if let Some(name) = pos_name {
                dev.name = name;
            }
            if emv.is_some() {
                dev.emv_terminal_type = emv;
            }
            dev.clone()
        }
        (None, Some(existing)) => st
            .devices
            .get(&existing)
            .cloned()
            .ok_or_else(|| ApiError::field("pinCode", "tag is paired to a removed device"))?,
        (None, None) => {
            let name = pos_name.unwrap_or_else(|| format!("Register {pin}"));
            st.create_device(name, Some(pin.clone()), emv)
        }
    };
    tracing::info!(pin = %pin, "tag paired");
    ok(device.json(&sh.public_url))
}

async fn devices_create(AxState(sh): Sh, bytes: Bytes) -> ApiResult {
    sh.state().count("devicesCreate");
    let mut b = Body::parse(&bytes)?;
    let key = api_key_only(&mut b);
    let name = b.string_req("posName");
    b.check()?;
    if let Some(key) = key {
        authenticate(&sh.state(), &key)?;
    }
    let device = sh.state().create_device(name.unwrap_or_default(), None, None);
    tracing::info!("dynamic-QR device created");
    ok(device.json(&sh.public_url))
}

// ---------------------------------------------------------------------------------------------
// customer input

async fn customer_input(AxState(sh): Sh, bytes: Bytes) -> ApiResult {
    sh.state().count("customerInput");
    let mut b = Body::parse(&bytes)?;
    let device = b.string_req("deviceId");
    let mut inputs = Vec::new();
    match b.array("inputs") {
        None if !b.has("inputs") => b.push("inputs", "is required"),
        None => {}
        Some(items) if items.is_empty() => b.push("inputs", "must not be empty"),
        Some(items) => {
            for (i, item) in items.into_iter().enumerate() {
                let Value::Object(m) = item else {
                    b.push(&format!("inputs[{i}]"), "must be an object");
                    continue;
                };
                let mut q = Body::from_map(m.clone(), &b.name(&format!("inputs[{i}]")));
                q.string_req("type");
                q.string_req("question");
                if q.integer("minimumLength").is_some_and(|l| l < 0) {
                    q.push("minimumLength", "must not be negative");
                }
                b.absorb(q);
                inputs.push(Value::Object(m));
            }
        }
    }
    b.check()?;
    let device = device.unwrap_or_default();
    authenticate(&sh.state(), &Credentials::Device(device.clone()))?;
    let wait = Duration::from_millis(sh.state().settings.customer_input_wait_ms);
    let (id, rx) = sh.add_input(&device, inputs);
    let outcome = tokio::time::timeout(wait, rx).await;
    sh.drop_input(&device, id);
    let body = match outcome {
        Ok(Ok(InputOutcome::Answered(results))) => {
            json!({"success": true, "error": null, "results": results})
        }
        Ok(Ok(InputOutcome::Reset)) => {
            json!({"success": false, "error": "Customer input was reset", "results": []})
        }
        Ok(Ok(InputOutcome::Replaced)) => json!({
            "success": false, "error": "Replaced by a newer customer input request", "results": []
        }),
        Ok(Err(_)) | Err(_) => {
            json!({"success": false, "error": "Customer did not answer in time", "results": []})
        }
    };
    ok(body)
}

async fn customer_input_reset(AxState(sh): Sh, bytes: Bytes) -> ApiResult {
    sh.state().count("customerInputReset");
    let mut b = Body::parse(&bytes)?;
    let device = b.string_req("deviceId");
    b.check()?;
    let device = device.unwrap_or_default();
    authenticate(&sh.state(), &Credentials::Device(device.clone()))?;
    let had = sh.take_input(&device).map(|p| p.tx.send(InputOutcome::Reset)).is_some();
    ok(json!({"success": true, "error": null, "reset": had}))
}

// ---------------------------------------------------------------------------------------------
// subscriptions (header credentials)

fn header_auth(sh: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let st = sh.state();
    if let Some(device) = get("deviceId") {
        return authenticate(&st, &Credentials::Device(device)).map(|_| ());
    }
    if let Some(key) = get("merchantApiKey").or_else(|| get("branchApiKey")) {
        return authenticate(&st, &Credentials::Key { key, branch: get("branchNumber") })
            .map(|_| ());
    }
    Err(ApiError::field(
        "deviceId",
        "header is required when merchantApiKey and branchApiKey are absent",
    ))
}

async fn subscription_get(AxState(sh): Sh, Path(id): Path<String>, headers: HeaderMap) -> ApiResult {
    sh.state().count("subscriptionGet");
    header_auth(&sh, &headers)?;
    let st = sh.state();
    let sub = st
        .subscriptions
        .get(&id)
        .ok_or_else(|| ApiError::NotFound("Subscription not found".into()))?;
    ok(sub.json())
}

async fn subscription_patch(
    AxState(sh): Sh,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    sh.state().count("subscriptionPatch");
    let mut b = Body::parse(&bytes)?;
    let status = b.string_req("status");
    if status.as_deref().is_some_and(|s| !["active", "paused", "canceled"].contains(&s)) {
        b.push("status", "must be active, paused or canceled");
    }
    b.check()?;
    header_auth(&sh, &headers)?;
    let mut st = sh.state();
    let sub = st
        .subscriptions
        .get_mut(&id)
        .ok_or_else(|| ApiError::NotFound("Subscription not found".into()))?;
    if sub.status == "canceled" {
        return Err(ApiError::Message(
            StatusCode::BAD_REQUEST,
            "A canceled subscription cannot be updated".into(),
        ));
    }
    sub.status = status.unwrap_or_default();
    sub.updated = OffsetDateTime::now_utc();
    ok(sub.json())
}

// ---------------------------------------------------------------------------------------------
// POS-provided receipts

async fn receipt_upload(
    AxState(sh): Sh,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    sh.state().count("receiptUpload");
    let suffix = format!("/api/invoicesReceipts/receipt/save/{id}");
    let mut st = sh.state();
    let txn = st
        .txns
        .values_mut()
        .find(|t| t.pos_receipts_endpoint.as_deref().is_some_and(|e| e.ends_with(&suffix)))
        .ok_or_else(|| ApiError::NotFound("Receipt endpoint not found".into()))?;
    txn.receipt_uploads.push(crate::model::ReceiptUpload {
        at: OffsetDateTime::now_utc(),
        content_type: headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        bytes: bytes.len(),
    });
    ok(json!({"success": true, "error": null}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_compare_exactly() {
        assert_eq!(compare(&json!("10"), &json!(2)), Some(Ordering::Greater));
        assert_eq!(compare(&json!("2.50"), &json!(2.5)), Some(Ordering::Equal));
        assert_eq!(compare(&json!("A-17"), &json!("A-17")), Some(Ordering::Equal));
        assert_eq!(compare(&json!("a"), &json!(1)), None);
        let row = json!({"posData": {"orderId": "A-1"}, "confirmations": [{"cardType": "Visa"}]});
        assert_eq!(lookup(&row, "posData.orderId"), Some(&json!("A-1")));
        assert_eq!(lookup(&row, "confirmations.0.cardType"), Some(&json!("Visa")));
        assert_eq!(lookup(&row, "nope.x"), None);
    }

    #[test]
    fn small_formats() {
        assert!(valid_interval("1month") && valid_interval("14day") && valid_interval("2years"));
        assert!(!valid_interval("month") && !valid_interval("0day") && !valid_interval("1fortnight"));
        assert!(valid_pin("53K-HMD-786") && !valid_pin("53K-HMD") && !valid_pin("53K-HMD-78!"));
        assert!(valid_expiration("01/30") && !valid_expiration("13/30") && !valid_expiration("1/30"));
    }
}
