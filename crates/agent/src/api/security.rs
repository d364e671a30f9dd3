//! The local API's safety layers (DESIGN.md §2, promise 7).
//!
//! The agent listens on loopback only, but a web page open in any browser on the till PC can still
//! reach `127.0.0.1`. These checks keep such pages out:
//! - **Host** must be a loopback name (`127.0.0.1`, `localhost`, `[::1]`): a DNS-rebinding page
//!   reaches us under its own host name and is refused.
//! - **Origin**, when a browser sends one, must be the agent's own or the desktop app's; others are
//!   refused before any handler runs (CORS answers preflights for the same allow-list only).
//! - **Content-Type**: a POST/PUT/PATCH with a body must be `application/json`, so the "simple
//!   request" forms a foreign page can send without a preflight (`text/plain`, form posts) never
//!   reach a handler.
//! - Money-out operations additionally need the POS token; see [`require_pos_token`].

use crate::error::AgentError;
use crate::service::Agent;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::net::SocketAddr;

/// The origins a browser may call us from: the agent's own pages and the Tauri webview.
pub fn allowed_origins(addr: SocketAddr) -> Vec<String> {
    let port = addr.port();
    vec![
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
        format!("http://[::1]:{port}"),
        "tauri://localhost".to_string(),
        "http://tauri.localhost".to_string(),
        "https://tauri.localhost".to_string(),
    ]
}

/// True when a Host header names this machine's loopback interface.
pub fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [::1]:8003
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name == "::1" || name.parse::<std::net::Ipv4Addr>().map(|ip| ip.is_loopback()).unwrap_or(false)
}

fn refuse(status: StatusCode, kind: &str, title: &str) -> Response {
    (status, Json(json!({ "status": status.as_u16(), "error_type": kind, "title": title }))).into_response()
}

/// State of the guard middleware.
#[derive(Clone)]
pub struct Guard {
    /// Allowed `Origin` values.
    pub origins: Vec<String>,
}

/// Host, Origin and Content-Type checks, before routing.
pub async fn guard(State(guard): State<Guard>, request: Request<Body>, next: Next) -> Response {
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !is_loopback_host(host) {
        tracing::warn!("refused a request whose Host is not a loopback name");
        return refuse(StatusCode::FORBIDDEN, "forbidden_host", "Host must be a loopback name (127.0.0.1, localhost)");
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let ok = origin.to_str().map(|o| guard.origins.iter().any(|a| a == o)).unwrap_or(false);
        if !ok {
            tracing::warn!("refused a request from a foreign browser origin");
            return refuse(StatusCode::FORBIDDEN, "forbidden_origin", "requests from this web origin are not allowed");
        }
    }
    let method = request.method();
    if (method == Method::POST || method == Method::PUT || method == Method::PATCH) && has_body(headers) {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json"))
            .unwrap_or(false);
        if !json {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "request bodies must be sent as Content-Type: application/json",
            );
        }
    }
    next.run(request).await
}

fn has_body(headers: &HeaderMap) -> bool {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match length {
        Some(n) => n > 0,
        None => headers.contains_key(header::TRANSFER_ENCODING),
    }
}

/// Money-out operations need `Authorization: Bearer <POS token>` or a manager session, unless
/// the configuration waives it for legacy POS software (reported in the log and in health).
pub fn require_pos_token(agent: &Agent, headers: &HeaderMap) -> Result<(), AgentError> {
    if agent.config().waive_pos_token {
        return Ok(());
    }
    match bearer(headers) {
        Some(t) if agent.check_pos_token(t) || agent.manager().check(t) => Ok(()),
        _ => Err(AgentError::Unauthorized),
    }
}

/// Manager-only operations (pairing, settings, the POS token view) need a manager session from
/// `POST /api/agent/manager/login`. The POS token is not enough: POS software has no business
/// re-pairing the till.
pub fn require_manager(agent: &Agent, headers: &HeaderMap) -> Result<(), AgentError> {
    match bearer(headers) {
        Some(t) if agent.manager().check(t) => Ok(()),
        _ => Err(AgentError::ManagerOnly),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// CORS for the allow-listed origins only.
pub fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    let list: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    tower_http::cors::CorsLayer::new()
        .allow_origin(list)
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::PUT, Method::DELETE])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION, header::HeaderName::from_static("idempotency-key")])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for ok in ["127.0.0.1:8003", "localhost:8003", "localhost", "[::1]:8003", "127.0.0.1", "LOCALHOST:1", "127.1.2.3:9"] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in ["evil.example:8003", "", "10.0.0.1:8003", "localhost.evil.com", "[::2]:1", "127.0.0.1.nip.io:8003"] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }
}
