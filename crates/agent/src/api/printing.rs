//! Endpoints of the receipt printer and the cash drawer: reprints by the POS and the manager
//! console, the drawer kick, the printer's state and queue, its Settings and a test print.

use super::handlers::{idempotency_key, JsonBody};
use super::security::{require_manager, require_pos_token};
use crate::config::PrinterConfig;
use crate::error::AgentError;
use crate::service::Agent;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use till_printer::Copy;

/// `POST /api/agent/transactions/{id}/print {copy: customer|merchant}` (POS token or manager
/// session): queues a (re)print of the receipt; `202` with the job. With an `Idempotency-Key`, a
/// retried request returns the first job instead of printing again.
pub async fn print_receipt(
    State(agent): State<Agent>,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, AgentError> {
    require_pos_token(&agent, &headers)?;
    let copy = match body.get("copy") {
        None | Some(Value::Null) => Copy::Customer,
        Some(v) => v
            .as_str()
            .and_then(Copy::parse)
            .ok_or_else(|| AgentError::invalid("copy", "must be customer or merchant"))?,
    };
    let key = id.clone();
    let record = agent
        .journal(move |j| Ok(j.by_local_id(&key)?.or(j.by_number(&key)?)))
        .await?
        .ok_or_else(|| AgentError::NotFound(format!("transaction {id}")))?;
    let job_key = match idempotency_key(&headers) {
        Some(k) => format!("reprint:{k}"),
        None => format!("reprint:{}", uuid::Uuid::new_v4()),
    };
    let reason = if agent.manager().check(bearer(&headers)) { "console" } else { "pos" };
    let (job, new) = crate::printer::enqueue_receipt(&agent, &record.local_id, copy, reason, job_key).await?;
    if !new && (job.local_id.as_deref() != Some(record.local_id.as_str()) || job.copy.as_deref() != Some(copy.name())) {
        return Err(AgentError::Conflict("this Idempotency-Key was used for another print request".into()));
    }
    Ok((StatusCode::ACCEPTED, Json(json!({ "job": job }))).into_response())
}

fn bearer(headers: &HeaderMap) -> &str {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default()
}

/// `POST /api/agent/drawer/open` (POS token): kicks the cash drawer through the printer now,
/// journaled; `503 printer_unavailable` when it cannot (it is never queued for later).
pub async fn open_drawer(State(agent): State<Agent>, headers: HeaderMap) -> Result<Response, AgentError> {
    require_pos_token(&agent, &headers)?;
    let job = crate::printer::open_drawer(&agent, idempotency_key(&headers)).await?;
    Ok(Json(json!({ "opened": job.state == till_journal::PrintState::Printed, "job": job })).into_response())
}

/// `GET /api/agent/printer`: settings in force, the printer's state, the queue and the newest jobs.
pub async fn printer(State(agent): State<Agent>) -> Result<Response, AgentError> {
    let health = crate::printer::health(&agent).await?;
    let jobs = agent.journal(|j| j.print_jobs(None, 20)).await?;
    Ok(Json(json!({
        "settings": agent.printing().settings(),
        "status": health,
        "jobs": jobs,
        "codePages": till_printer::CodePage::ALL.iter().map(|p| p.name()).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// `POST /api/agent/printer/settings` (manager): `{url, columns, codePages, printOnApproval,
/// printOnRefund}`. Every invalid field is named in one 400 (a malformed URL, an unreachable
/// host, a path that is not a device or FIFO, an unknown CUPS queue, an unknown code page) and
/// nothing changes; `url: null` removes the printer.
pub async fn save_settings(State(agent): State<Agent>, headers: HeaderMap, JsonBody(body): JsonBody) -> Result<Response, AgentError> {
    require_manager(&agent, &headers)?;
    let current = agent.printing().settings();
    let mut invalid = till_core::InvalidParameters::new();
    let url = match body.get("url") {
        None => current.url.clone(),
        Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.trim().to_string()),
        Some(_) => {
            invalid.push("url", "must be a string or null");
            None
        }
    };
    let columns = match body.get("columns") {
        None => current.columns,
        Some(v) => match v.as_u64().and_then(|n| u8::try_from(n).ok()) {
            Some(n) => n,
            None => {
                invalid.push("columns", "must be 32, 42 or 48");
                current.columns
            }
        },
    };
    let code_pages = match body.get("codePages") {
        None => current.code_pages.clone(),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) && !items.is_empty() => {
            items.iter().filter_map(Value::as_str).map(str::to_string).collect()
        }
        Some(_) => {
            invalid.push("codePages", "must be a non-empty list of code page names");
            current.code_pages.clone()
        }
    };
    let mut flag = |name: &str, now: bool| match body.get(name) {
        None => now,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            invalid.push(name, "must be true or false");
            now
        }
    };
    let print_on_approval = flag("printOnApproval", current.print_on_approval);
    let print_on_refund = flag("printOnRefund", current.print_on_refund);
    let settings = PrinterConfig { url, columns, code_pages, print_on_approval, print_on_refund };
    for (field, reason) in settings.problems() {
        if !invalid.0.iter().any(|p| p.parameter == field) {
            invalid.push(field, reason);
        }
    }
    invalid.into_result().map_err(AgentError::Invalid)?;
    let saved = crate::printer::save_settings(&agent, settings).await?;
    Ok(Json(json!({ "settings": saved })).into_response())
}

/// `POST /api/agent/printer/test` (manager): queues a test page; `202` with the job.
pub async fn test_print(State(agent): State<Agent>, headers: HeaderMap) -> Result<Response, AgentError> {
    require_manager(&agent, &headers)?;
    let job = crate::printer::enqueue_test(&agent).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "job": job }))).into_response())
}
