//! Endpoints behind the cashier screen and the manager console: the UI's static files, the
//! dynamic QR, PDF receipts, manager PIN and sessions, end-of-day summary, CSV export, settings
//! and pairing. Everything here is an agent extension under `/api/agent/` (or `/` for the UI).

use super::handlers::{format_ms, JsonBody};
use super::security::require_manager;
use crate::error::AgentError;
use crate::manager::{hash_pin, valid_pin, ManagerError, FAILURES_SETTING, PIN_SETTING};
use crate::service::Agent;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use till_core::{Currency, Minor, Money, Product, Status};
use till_journal::{OpKind, OpState, Pairing, PaymentRecord};
use till_sensepass::Transaction;

/// The web UI (`ui/`), embedded in the binary so one file is the whole agent. In debug builds
/// rust-embed reads the files from disk, so UI edits show without a rebuild.
#[derive(rust_embed::Embed)]
#[folder = "../../ui/"]
#[exclude = "tests/*"]
#[exclude = "*.md"]
struct UiFiles;

/// `GET /` and `GET /{file}`: the UI.
pub async fn ui(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    if path.split('/').any(|seg| seg == ".." || seg.starts_with('.')) {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    match UiFiles::get(path) {
        Some(file) => {
            let mime = file.metadata.mimetype().to_string();
            ([(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, "no-cache".to_string())], file.data.into_owned())
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

/// Query of `GET /api/agent/qr.svg`.
#[derive(Deserialize)]
pub struct QrParams {
    /// What the QR encodes (a payment URL).
    data: String,
}

/// `GET /api/agent/qr.svg?data=…`: the dynamic QR as SVG.
pub async fn qr_svg(Query(q): Query<QrParams>) -> Result<Response, AgentError> {
    if q.data.is_empty() || q.data.len() > 1024 {
        return Err(AgentError::invalid("data", "must be 1 to 1024 characters"));
    }
    let svg = till_receipts::qr_svg(&q.data).map_err(|e| AgentError::invalid("data", &e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "no-store")], svg).into_response())
}

/// Query of the receipt endpoint.
#[derive(Deserialize)]
pub struct ReceiptParams {
    /// `1` to download rather than display.
    download: Option<u8>,
}

/// The journal record (by local id or transaction number) and its receipt model.
async fn receipt_of(agent: &Agent, id: String) -> Result<(PaymentRecord, till_receipts::Receipt), AgentError> {
    let key = id.clone();
    let record = agent
        .journal(move |j| Ok(j.by_local_id(&key)?.or(j.by_number(&key)?)))
        .await?
        .ok_or_else(|| AgentError::NotFound(format!("transaction {id}")))?;
    let local = record.local_id.clone();
    let ops = agent.journal(move |j| j.operations_for(&local)).await?;
    let receipt = build_receipt(&record, &ops)?;
    Ok((record, receipt))
}

/// `GET /api/agent/transactions/{id}/receipt.json`: the receipt model the PDF is drawn from
/// (line totals, VAT, the paid mark, local times, the masked card), so that the console's preview
/// shows exactly what the paper says without computing any of it again.
pub async fn receipt_json(State(agent): State<Agent>, Path(id): Path<String>) -> Result<Response, AgentError> {
    let (_, receipt) = receipt_of(&agent, id).await?;
    Ok(Json(receipt).into_response())
}

/// `GET /api/agent/transactions/{id}/receipt.pdf`.
pub async fn receipt_pdf(
    State(agent): State<Agent>,
    Path(id): Path<String>,
    Query(p): Query<ReceiptParams>,
) -> Result<Response, AgentError> {
    let (record, receipt) = receipt_of(&agent, id).await?;
    let pdf = till_receipts::render_pdf_at(&receipt, record.created_at / 1000)
        .map_err(|e| AgentError::Internal(e.to_string()))?;
    let name = format!("receipt-{}.pdf", record.number.as_deref().unwrap_or(&record.local_id).chars().take(12).collect::<String>());
    let disposition = if p.download == Some(1) { format!("attachment; filename=\"{name}\"") } else { format!("inline; filename=\"{name}\"") };
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CONTENT_SECURITY_POLICY, super::security::RECEIPT_CSP.to_string()),
            (header::X_FRAME_OPTIONS, "SAMEORIGIN".to_string()),
        ],
        pdf,
    )
        .into_response())
}

/// Maps a journal record (and its SensePass entity) to the receipt model.
pub fn build_receipt(record: &PaymentRecord, ops: &[till_journal::Operation]) -> Result<till_receipts::Receipt, AgentError> {
    let tx = record.entity_json.clone().and_then(|e| Transaction::from_json(e).ok());
    let raw = |k: &str| tx.as_ref().and_then(|t| t.get(k)).and_then(Value::as_str).map(str::to_string);
    let products = crate::service::products_of(record);
    let lines = products
        .iter()
        .map(till_receipts::ReceiptLine::from_product)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AgentError::Internal(e.to_string()))?;
    let vat_total = Product::cart_vat(&products).unwrap_or(Minor::ZERO);
    let approval = approval_of(tx.as_ref());
    let refunds = ops
        .iter()
        .filter(|o| o.kind == OpKind::Refund && matches!(o.state, OpState::Delivered | OpState::Pending | OpState::InFlight))
        .map(|o| till_receipts::RefundLine {
            amount: o.amount.unwrap_or(Minor::ZERO),
            at: format_human(o.finished_at.unwrap_or(o.created_at)),
            confirmation: o.result.as_ref().and_then(|r| r.get("refundConfirmation")).and_then(Value::as_str).map(str::to_string),
            queued: o.state != OpState::Delivered,
        })
        .collect();
    let status = match (record.status, record.phase) {
        _ if record.status_key() == "closed" => "Closed, not paid".to_string(),
        (Some(s), _) => s.display_name().trim_start_matches("Transaction ").to_string(),
        (None, phase) => format!("{phase:?}"),
    };
    let paid = record.status.map(Status::was_captured).unwrap_or(false);
    Ok(till_receipts::Receipt {
        merchant: till_receipts::Merchant {
            name: tx.as_ref().and_then(|t| t.business_name()).unwrap_or("Till Agent").to_string(),
            address: raw("businessAddress"),
            phone: raw("businessOwnerPhone"),
        },
        transaction_number: record.number.clone(),
        order_id: record.order_id.clone(),
        date: format_human(record.created_at),
        currency: record.currency,
        lines,
        total: record.amount,
        vat_total,
        status,
        paid,
        provider: Some(till_gateway::ProviderId::SensePass.display_name().to_string()),
        approval,
        refunds,
        // No payment link on an unpaid receipt: a customer must not be invited to scan it.
        qr_data: paid.then(|| tx.as_ref().and_then(|t| t.transaction_page()).and_then(|p| p.qr_url.clone())).flatten(),
        note: record.product_sum_mismatch.then(|| "The items do not add up to the amount charged.".to_string()),
    })
}

/// The approving confirmation of a payment (method, card, auth code, approval time in the store's
/// local time), as the receipt prints it and the CSV exports it.
fn approval_of(tx: Option<&Transaction>) -> Option<till_receipts::Approval> {
    tx?.confirmations().into_iter().find(|c| !c.is_refund()).map(|c| till_receipts::Approval {
        confirmation: c.confirmation_number.clone(),
        payment_method: c.payment_method_name.clone(),
        card_mask: c.card_mask.clone(),
        auth_number: c.auth_number.clone(),
        approved_at: c.date_approval.as_deref().map(human_rfc3339),
    })
}

/// An RFC 3339 time from SensePass in the store's local time (see [`format_human`]); other
/// text is kept as it is.
fn human_rfc3339(text: &str) -> String {
    match time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339) {
        Ok(t) => format_human((t.unix_timestamp_nanos() / 1_000_000) as i64),
        Err(_) => text.to_string(),
    }
}

/// The one time rule of receipts: the store's local time — the till PC's time zone (or `TZ`) —
/// with its UTC offset, e.g. `2026-11-21 19:36 +02:00`, so that a printed time is what the
/// customer's watch said and still unambiguous when read elsewhere. jiff reads the zone from the
/// system's tz database; where none can be found it falls back to UTC, printed as `+00:00`.
pub fn format_human(ms: i64) -> String {
    local_time(ms, "%Y-%m-%d %H:%M %:z")
}

/// `ms` in the store's local time (the rule of [`format_human`]) with a `strftime` pattern.
fn local_time(ms: i64, pattern: &str) -> String {
    let tz = jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC);
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => t.to_zoned(tz).strftime(pattern).to_string(),
        Err(_) => format_ms(ms),
    }
}

/// `GET /api/agent/manager`: whether a manager PIN has been set (`till-agent manager set-pin`).
pub async fn manager_state(State(agent): State<Agent>) -> Result<Response, AgentError> {
    let set = agent.journal(|j| j.setting(PIN_SETTING)).await?.is_some();
    Ok(Json(json!({ "pinSet": set })).into_response())
}

/// One login attempt: reserved (and persisted) before Argon2 runs, verified one at a time.
async fn attempt_login(agent: &Agent, pin: String, hash: String) -> Result<crate::manager::Session, AgentError> {
    agent.manager().reserve().map_err(login_error)?;
    persist_failures(agent).await?;
    let result = agent.manager().verify_reserved(pin, hash).await;
    if result.is_ok() {
        persist_failures(agent).await?;
    } else {
        tracing::warn!("wrong manager PIN");
    }
    result.map_err(login_error)
}

/// Writes the failure count and lock as they are *now*, one write at a time, so that parallel
/// attempts cannot leave an older count in the journal than the one in memory.
async fn persist_failures(agent: &Agent) -> Result<(), AgentError> {
    let _gate = agent.manager().persist_gate().await;
    let now = agent.manager().failures();
    agent.journal(move |j| j.set_setting(FAILURES_SETTING, &now.to_setting())).await
}

/// `POST /api/agent/manager/pin {pin, currentPin}`: changes the manager PIN. The first PIN is set
/// on the till (`till-agent manager set-pin`), not here: whoever reached this page first would
/// otherwise own the till.
pub async fn manager_set_pin(State(agent): State<Agent>, JsonBody(body): JsonBody) -> Result<Response, AgentError> {
    let pin = body.get("pin").and_then(Value::as_str).unwrap_or_default().to_string();
    if !valid_pin(&pin) {
        return Err(AgentError::invalid("pin", "must be 4 to 12 digits"));
    }
    let Some(hash) = agent.journal(|j| j.setting(PIN_SETTING)).await? else {
        return Err(AgentError::Conflict(
            "no manager PIN yet: set the first one on this till with `till-agent manager set-pin`".into(),
        ));
    };
    let current = body.get("currentPin").and_then(Value::as_str).unwrap_or_default().to_string();
    attempt_login(&agent, current, hash).await?;
    let hash = tokio::task::spawn_blocking(move || hash_pin(&pin))
        .await
        .map_err(|e| AgentError::Internal(e.to_string()))?
        .map_err(|e| AgentError::Internal(e.to_string()))?;
    agent.journal(move |j| j.set_setting(PIN_SETTING, &hash)).await?;
    agent.manager().logout_all();
    tracing::info!("manager PIN changed");
    Ok(Json(json!({ "pinSet": true })).into_response())
}

/// `POST /api/agent/manager/login {pin}` → `{token, expiresAt, idleSeconds}`.
pub async fn manager_login(State(agent): State<Agent>, JsonBody(body): JsonBody) -> Result<Response, AgentError> {
    let pin = body.get("pin").and_then(Value::as_str).unwrap_or_default().to_string();
    let hash = agent
        .journal(|j| j.setting(PIN_SETTING))
        .await?
        .ok_or_else(|| AgentError::Conflict("no manager PIN yet: set one on this till with `till-agent manager set-pin`".into()))?;
    let session = attempt_login(&agent, pin, hash).await?;
    let expires = till_journal::now_ms() + session.idle.as_millis() as i64;
    Ok(Json(json!({ "token": session.token, "expiresAt": format_ms(expires), "idleSeconds": session.idle.as_secs() })).into_response())
}

/// `POST /api/agent/manager/logout` (Bearer session): ends the session on the server.
pub async fn manager_logout(State(agent): State<Agent>, headers: HeaderMap) -> Result<Response, AgentError> {
    require_manager(&agent, &headers)?;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    agent.manager().logout(token);
    Ok(Json(json!({ "loggedOut": true })).into_response())
}

fn login_error(e: ManagerError) -> AgentError {
    AgentError::Login(e.to_string())
}

/// Query of the summary and CSV endpoints.
#[derive(Deserialize)]
pub struct RangeParams {
    /// Inclusive start (RFC 3339 or unix ms); default: today 00:00 UTC.
    from: Option<String>,
    /// Exclusive end; default: now.
    to: Option<String>,
}

fn range(p: &RangeParams) -> Result<(i64, i64), AgentError> {
    let mut invalid = till_core::InvalidParameters::new();
    let now = till_journal::now_ms();
    let from = super::handlers::parse_time(p.from.as_deref(), "from", &mut invalid).unwrap_or(now - now % 86_400_000);
    let to = super::handlers::parse_time(p.to.as_deref(), "to", &mut invalid).unwrap_or(now + 1);
    invalid.into_result().map_err(AgentError::Invalid)?;
    Ok((from, to))
}

/// `GET /api/agent/summary?from&to`: end-of-day totals per currency and counts per status.
pub async fn summary(State(agent): State<Agent>, Query(p): Query<RangeParams>) -> Result<Response, AgentError> {
    let (from, to) = range(&p)?;
    let (totals, counts) = agent.journal(move |j| Ok((j.totals(from, to)?, j.status_key_counts(from, to)?))).await?;
    let mut currencies: Vec<Currency> = totals.iter().map(|t| t.currency).chain(counts.iter().map(|c| c.0)).collect();
    currencies.sort();
    currencies.dedup();
    let rows: Vec<Value> = currencies
        .into_iter()
        .map(|c| {
            let t = totals.iter().find(|t| t.currency == c);
            let approved = t.map(|t| t.captured_amount).unwrap_or(Minor::ZERO);
            let refunded = t.map(|t| t.refunded_amount).unwrap_or(Minor::ZERO);
            let net = approved.checked_sub(refunded).unwrap_or(Minor::ZERO);
            let mut by_status = serde_json::Map::new();
            let mut count = 0;
            for (_, key, n) in counts.iter().filter(|x| x.0 == c) {
                count += n;
                by_status.insert(key.to_string(), json!(n));
            }
            let fmt = |m: Minor| Money { minor: m, currency: c }.display();
            json!({
                "currency": c.code(),
                "count": count,
                "approvedCount": t.map(|t| t.captured_count).unwrap_or(0),
                "approvedMinor": approved.0,
                "refundedMinor": refunded.0,
                "netMinor": net.0,
                "approved": fmt(approved),
                "refunded": fmt(refunded),
                "net": fmt(net),
                "byStatus": by_status,
            })
        })
        .collect();
    // Declined card payments recovered by FlexFactor (decline recovery), per currency.
    let gateway = agent.journal(move |j| j.gateway_payments_between(from, to)).await?;
    let recoveries = crate::recovery::summary(&gateway);
    Ok(Json(json!({ "from": format_ms(from), "to": format_ms(to), "currencies": rows, "recoveries": recoveries })).into_response())
}

/// The columns of the CSV export, in order: what a store's bookkeeping needs of each payment.
/// Times are the store's local time (the till PC's zone, or `TZ`) — `date`, `time` and
/// `utc_offset` (`UTC+02:00`) of the payment, other times with their offset — so that a day's rows are the day
/// the till saw. Amounts are major units with the currency's digits (`12.50`), one formatting for
/// every amount column: `amount` asked, `charged` (captured, else 0), `refunded` (delivered
/// refunds), `refund_queued` (refunds not delivered yet), `net` = charged − refunded.
pub const CSV_COLUMNS: [&str; 21] = [
    "date",
    "time",
    "utc_offset",
    "order_id",
    "transaction_number",
    "status",
    "currency",
    "amount",
    "charged",
    "refunded",
    "refund_queued",
    "net",
    "payment_method",
    "card",
    "auth_code",
    "confirmation",
    "approved_at",
    "committed_at",
    "failure",
    "product_sum_mismatch",
    "local_id",
];

/// `GET /api/agent/transactions.csv?<journal filters>` (manager): the journal as CSV (up to
/// 10,000 rows), columns [`CSV_COLUMNS`]. Behind the manager session, as the console promises: a
/// whole day's takings, cards and auth codes in one file is the manager's to take away.
pub async fn transactions_csv(
    State(agent): State<Agent>,
    headers: HeaderMap,
    Query(p): Query<super::handlers::JournalParams>,
) -> Result<Response, AgentError> {
    require_manager(&agent, &headers)?;
    let mut q = super::handlers::journal_query_of(p)?;
    q.limit = 10_000;
    q.offset = 0;
    let rows = agent
        .journal(move |j| {
            let page = j.query(&q)?;
            page.items
                .into_iter()
                .map(|r| {
                    let refunds = j.refunded_total(&r.local_id)?;
                    Ok((r, refunds))
                })
                .collect::<Result<Vec<_>, till_journal::JournalError>>()
        })
        .await?;
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_COLUMNS).map_err(|e| AgentError::Internal(e.to_string()))?;
    for (r, (refunded, queued)) in &rows {
        let row = csv_row(r, *refunded, *queued);
        let row = row.map(|cell| csv_cell(&cell));
        w.write_record(&row).map_err(|e| AgentError::Internal(e.to_string()))?;
    }
    let bytes = w.into_inner().map_err(|e| AgentError::Internal(e.to_string()))?;
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8"), (header::CONTENT_DISPOSITION, "attachment; filename=\"till-agent-journal.csv\"")],
        bytes,
    )
        .into_response())
}

/// One payment as a CSV row of [`CSV_COLUMNS`].
fn csv_row(r: &PaymentRecord, refunded: Minor, queued: Minor) -> [String; 21] {
    let major = |m: Minor| Money { minor: m, currency: r.currency }.to_major_string_fixed();
    let charged = if r.was_captured() { r.amount } else { Minor::ZERO };
    let net = charged.checked_sub(refunded).unwrap_or(Minor::ZERO);
    let tx = r.entity_json.clone().and_then(|e| Transaction::from_json(e).ok());
    let approval = approval_of(tx.as_ref());
    let a = |f: fn(&till_receipts::Approval) -> Option<String>| approval.as_ref().and_then(f).unwrap_or_default();
    [
        local_time(r.created_at, "%Y-%m-%d"),
        local_time(r.created_at, "%H:%M:%S"),
        // "UTC+05:30", not "+05:30": a cell starting with + or − is a formula to a spreadsheet.
        local_time(r.created_at, "UTC%:z"),
        r.order_id.clone().unwrap_or_default(),
        r.number.clone().unwrap_or_default(),
        r.status_key().to_string(),
        r.currency.code().to_string(),
        major(r.amount),
        major(charged),
        major(refunded),
        major(queued),
        major(net),
        a(|x| x.payment_method.clone()),
        a(|x| x.card_mask.as_deref().map(till_receipts::mask_card)),
        a(|x| x.auth_number.clone()),
        a(|x| x.confirmation.clone()),
        a(|x| x.approved_at.clone()),
        r.committed_at.map(format_human).unwrap_or_default(),
        r.failure.clone().or_else(|| r.resolution.clone()).unwrap_or_default(),
        r.product_sum_mismatch.to_string(),
        r.local_id.clone(),
    ]
}

/// A CSV cell a spreadsheet will not run: text starting with `=`, `+`, `-`, `@`, a tab or a
/// carriage return (a formula to Excel, LibreOffice and Sheets) gets a leading `'` (OWASP's advice).
/// Our own numbers never start so (amounts are not negative).
pub fn csv_cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

/// `POST /api/agent/transactions/{id}/resolve` (manager): the way out of a payment that stays
/// open with no outcome (after a restart, SensePass no longer knowing it, a missed timeout). It
/// asks SensePass and never closes anything on the agent's word alone:
/// 1. SensePass has an outcome → it is journaled (`"resolved": "sensepass"`).
/// 2. SensePass still has it open → it is cancelled, journaled as the cashier's Cancel is, so the
///    customer can no longer pay (`"cancelled"`).
/// 3. SensePass does not know it (404 on the look-up and on the cancel) → no money can move
///    through it: the journal closes it as not paid, with the reason (`"closed"`).
/// 4. Not created yet (no TransactionNumber) → the reconciliation of an unknown create: adopted if
///    SensePass has it, failed if certainly not (`"reconciled"`).
///
/// SensePass unreachable, an unknown outcome, or the customer paying right now (501): nothing is
/// closed and the error says so.
pub async fn resolve_payment(State(agent): State<Agent>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, AgentError> {
    require_manager(&agent, &headers)?;
    let key = id.clone();
    let record = agent
        .journal(move |j| Ok(j.by_local_id(&key)?.or(j.by_number(&key)?)))
        .await?
        .ok_or_else(|| AgentError::NotFound(format!("transaction {id}")))?;
    if !record.is_open() {
        return Err(AgentError::Conflict(format!(
            "this payment is not open ({}): there is nothing to resolve",
            record.status_key()
        )));
    }
    tracing::info!(local_id = %record.local_id, "manager asked to resolve an open payment");
    let (how, record) = match (record.number.clone(), record.phase) {
        (Some(number), till_journal::Phase::Created) => resolve_created(&agent, record, &number).await?,
        _ => match agent.reconcile_unknown(record).await {
            Ok(rec) => ("reconciled", rec),
            Err(AgentError::Uncertain(m)) => {
                return Err(AgentError::Conflict(format!(
                    "SensePass cannot tell yet whether this payment was created ({m}); nothing was changed: try again in a minute"
                )))
            }
            Err(e) => return Err(e),
        },
    };
    Ok(Json(json!({ "resolved": how, "transaction": super::handlers::record_json(&record) })).into_response())
}

/// Steps 1–3 of [`resolve_payment`] for a payment SensePass numbered.
async fn resolve_created(agent: &Agent, record: PaymentRecord, number: &str) -> Result<(&'static str, PaymentRecord), AgentError> {
    match agent.refresh(number).await {
        Ok(rec) if !rec.is_open() => return Ok(("sensepass", rec)),
        // Open there, or unknown there: the cancel below decides (and makes sure of it).
        Ok(_) | Err(AgentError::Upstream { status: 404, .. }) => {}
        Err(e) => return Err(e),
    }
    let local = record.local_id.clone();
    match agent.cancel(number, "stuck_payment_resolved_by_manager").await {
        Ok(_) => {
            let rec = agent.journal(move |j| j.by_local_id(&local)).await?.unwrap_or(record);
            Ok(("cancelled", rec))
        }
        Err(AgentError::Upstream { status: 404, .. }) => {
            let now = till_journal::now_ms();
            let why = "closed as not paid by a manager: SensePass does not know this transaction (404 to its look-up and to a cancel), so no money can move through it";
            let rec = agent.journal(move |j| j.resolve_payment(&local, why, now)).await?;
            tracing::warn!(local_id = %rec.local_id, "open payment unknown to SensePass closed by the manager");
            agent.publish_record(&rec, "local");
            Ok(("closed", rec))
        }
        Err(e) => Err(e),
    }
}

/// `POST /api/agent/outbox/{id}/retry` (manager): "Retry now" — a pending operation is sent at
/// once instead of after its back-off; a failed commit or cancel goes back to the queue. A failed
/// refund is never re-sent from here (a new refund, under the cap, is the way). 409 otherwise.
pub async fn outbox_retry(State(agent): State<Agent>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, AgentError> {
    require_manager(&agent, &headers)?;
    let id = operation_id(&id)?;
    let now = till_journal::now_ms();
    let op = agent.journal(move |j| Ok(j.retry_operation(id, now))).await?.map_err(console_refusal)?;
    tracing::info!(operation = id, "manager asked to retry an operation now");
    agent.bus().publish(crate::events::AgentEvent::Operation { id, state: op.state.as_str().to_string() });
    agent.wake_outbox();
    Ok(Json(super::handlers::operation_json(&op)).into_response())
}

/// `POST /api/agent/outbox/{id}/dismiss` (manager): puts away a failed operation — one SensePass
/// certainly did not carry out and the agent will not send again. It leaves the console's default
/// list and the failure count; the journal keeps it. Anything that may still move money (pending,
/// in flight) or did (delivered) cannot be dismissed: 409.
pub async fn outbox_dismiss(State(agent): State<Agent>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, AgentError> {
    require_manager(&agent, &headers)?;
    let id = operation_id(&id)?;
    let now = till_journal::now_ms();
    let op = agent.journal(move |j| Ok(j.dismiss_operation(id, now))).await?.map_err(console_refusal)?;
    tracing::info!(operation = id, "manager dismissed a failed operation");
    agent.bus().publish(crate::events::AgentEvent::Operation { id, state: op.state.as_str().to_string() });
    Ok(Json(super::handlers::operation_json(&op)).into_response())
}

fn operation_id(text: &str) -> Result<i64, AgentError> {
    text.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| AgentError::invalid("id", "must be an operation number"))
}

/// A journal refusal of a console action, in the API's terms: 404 for an unknown operation, 409
/// for one whose state does not allow it (in a manager's words), anything else as it is.
fn console_refusal(e: till_journal::JournalError) -> AgentError {
    use till_journal::JournalError as J;
    match e {
        J::NotFound { what, key } => AgentError::NotFound(format!("{what} {key}")),
        J::InvalidOpState { state, action, .. } => AgentError::Conflict(format!(
            "cannot {action} an operation that is {}: {}",
            state.as_str().replace('_', " "),
            match state {
                OpState::Pending | OpState::InFlight => "it may still be carried out at SensePass",
                OpState::Delivered => "SensePass has already carried it out",
                OpState::Failed => "it failed and will not be sent again",
            }
        )),
        J::InvalidOperation(m) => AgentError::Conflict(m),
        other => other.into(),
    }
}

/// `GET /api/agent/settings` (manager): the POS token and where the agent talks to.
pub async fn settings(State(agent): State<Agent>, headers: HeaderMap) -> Result<Response, AgentError> {
    require_manager(&agent, &headers)?;
    let pairing = agent.pairing().await?;
    let c = agent.config();
    Ok(Json(json!({
        "posToken": agent.pos_token(),
        "environment": crate::config::environment_of(
            pairing.as_ref().map(|p| p.api_base.as_str()).unwrap_or(c.sensepass_url.as_str())
        ),
        "sensepassUrl": pairing.as_ref().map(|p| p.api_base.clone()).unwrap_or_else(|| c.sensepass_url.clone()),
        "socketUrl": pairing.as_ref().map(|p| p.socket_url.clone()).unwrap_or_else(|| c.socket_url.clone()),
        "listen": agent.listen_addr().to_string(),
        "waivePosToken": c.waive_pos_token,
    }))
    .into_response())
}

/// `POST /api/agent/pairing` (manager): pair by tag PIN, by creating a dynamic-QR device, or by
/// device id. The agent keeps talking to its configured SensePass URLs; the environment names them.
pub async fn pair(State(agent): State<Agent>, headers: HeaderMap, JsonBody(body): JsonBody) -> Result<Response, AgentError> {
    require_manager(&agent, &headers)?;
    let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
    let method = s("method").unwrap_or_default();
    let mut invalid = till_core::InvalidParameters::new();
    match method.as_str() {
        "pin" => {
            if s("pin").is_none() {
                invalid.push("pin", "is required (XXX-XXX-XXX)");
            }
            if s("apiKey").is_none() {
                invalid.push("apiKey", "is required");
            }
        }
        "create" => {
            if s("apiKey").is_none() {
                invalid.push("apiKey", "is required");
            }
            if s("posName").is_none() {
                invalid.push("posName", "is required");
            }
        }
        "device" => {
            if s("deviceId").is_none() {
                invalid.push("deviceId", "is required");
            }
        }
        _ => invalid.push("method", "must be pin, create or device"),
    }
    let c = agent.config();
    let environment = crate::config::environment_of(&c.sensepass_url);
    if let Some(asked) = s("environment") {
        if asked != environment {
            invalid.push(
                "environment",
                &format!(
                    "this agent talks to SensePass {environment} ({}); the environment is set by the agent's \
                     sensepass_url setting, not by pairing",
                    c.sensepass_url
                ),
            );
        }
    }
    invalid.into_result().map_err(AgentError::Invalid)?;
    let (device_id, name, client_box) = if method == "device" {
        // A device ID is checked with SensePass before it is stored: a typo would otherwise leave
        // a till that looks paired while every payment is refused.
        let device_id = s("deviceId").unwrap_or_default();
        let client = agent.device_client_for(&device_id);
        let now = time::OffsetDateTime::now_utc();
        let probe = client
            .transactions(&till_sensepass::models::FetchTransactions::between(now - time::Duration::minutes(1), now))
            .await;
        agent.note_reachability(&probe);
        probe.map_err(|e| pairing_error(e, "deviceId", "SensePass does not know this device ID"))?;
        (device_id, s("posName").unwrap_or_default(), None)
    } else {
        let client = agent.api_key_client(&s("apiKey").unwrap_or_default());
        let result = if method == "pin" {
            client
                .devices_match(&till_sensepass::models::MatchRequest { pin_code: s("pin"), pos_name: s("posName"), ..Default::default() })
                .await
        } else {
            client.devices_create(&till_sensepass::models::CreateDeviceRequest { pos_name: s("posName").unwrap_or_default() }).await
        };
        agent.note_reachability(&result);
        let device = result.map_err(|e| pairing_error(e, "apiKey", "SensePass does not accept this location API key"))?;
        (device.device_alias_key.clone(), device.name.clone().unwrap_or_default(), device.client_boxes.first().cloned())
    };
    let pairing = Pairing {
        device_id: device_id.clone(),
        pos_name: name.clone(),
        environment: environment.to_string(),
        api_base: c.sensepass_url.clone(),
        socket_url: c.socket_url.clone(),
        client_box_url: client_box,
        paired_at: till_journal::now_ms(),
    };
    agent.journal(move |j| j.set_pairing(&pairing)).await?;
    tracing::info!("paired with a new device");
    Ok(Json(json!({ "paired": true, "deviceId": device_id, "posName": name })).into_response())
}

/// A SensePass refusal of the credential being paired with (401/403, or 404 for an unknown
/// device) becomes a 400 naming the field, so that the manager reads what to correct — and is
/// not mistaken for the manager's own session ending, which is what a 401 from this agent means.
fn pairing_error(e: till_sensepass::Error, field: &str, reason: &str) -> AgentError {
    match e {
        till_sensepass::Error::Http { status: 401 | 403 | 404, .. } => AgentError::invalid(field, reason),
        other => other.into(),
    }
}

/// `DELETE /api/agent/pairing` (manager).
pub async fn unpair(State(agent): State<Agent>, headers: HeaderMap) -> Result<Response, AgentError> {
    require_manager(&agent, &headers)?;
    agent.journal(|j| j.clear_pairing()).await?;
    tracing::info!("unpaired");
    Ok(Json(json!({ "paired": false })).into_response())
}
