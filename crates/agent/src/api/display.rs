//! The customer display setting: whether the desktop app opens the customer-facing window on a
//! second monitor. The browser's `?view=customer` page needs no setting; this is for the Tauri
//! shell, which reads the same journal setting (`till_agent::api::display::SETTING`).

use super::handlers::JsonBody;
use super::security::require_manager;
use crate::error::AgentError;
use crate::service::Agent;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// Journal setting: `second_screen` (default: the customer window opens on a second monitor when
/// one exists) or `off`.
pub const SETTING: &str = "display.customer";

/// The values [`SETTING`] may hold.
pub const CHOICES: [&str; 2] = ["second_screen", "off"];

/// The choice in force.
pub async fn current(agent: &Agent) -> Result<String, AgentError> {
    Ok(agent
        .journal(|j| j.setting(SETTING))
        .await?
        .filter(|v| CHOICES.contains(&v.as_str()))
        .unwrap_or_else(|| CHOICES[0].to_string()))
}

/// `GET /api/agent/display`: `{customerDisplay}`.
pub async fn get(State(agent): State<Agent>) -> Result<Response, AgentError> {
    Ok(Json(json!({ "customerDisplay": current(&agent).await? })).into_response())
}

/// `POST /api/agent/display {customerDisplay: second_screen|off}` (manager).
pub async fn set(State(agent): State<Agent>, headers: HeaderMap, JsonBody(body): JsonBody) -> Result<Response, AgentError> {
    require_manager(&agent, &headers)?;
    let choice = body.get("customerDisplay").and_then(Value::as_str).unwrap_or_default().to_string();
    if !CHOICES.contains(&choice.as_str()) {
        return Err(AgentError::invalid("customerDisplay", "must be second_screen or off"));
    }
    let c = choice.clone();
    agent.journal(move |j| j.set_setting(SETTING, &c)).await?;
    Ok(Json(json!({ "customerDisplay": choice })).into_response())
}
