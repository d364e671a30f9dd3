//! The local API's safety layers (DESIGN.md §2, promise 7).
//!
//! The agent listens on loopback only, but a web page open in any browser on the till PC can still
//! reach `127.0.0.1`. These checks keep such pages out:
//! - **Host** must be a loopback name (`127.0.0.1`, `localhost`, `[::1]`): a DNS-rebinding page
//!   reaches us under its own host name and is refused.
//! - **Origin**, when a browser sends one, must be the agent's own or the desktop app's; others are
//!   refused before any handler runs (CORS answers preflights for the same allow-list only).
//! - **Sec-Fetch-Site** `cross-site` or `same-site` is refused on every route unless the request
//!   also carries an allow-listed Origin (the desktop webview's fetches): a navigation, an `<img>`
//!   or a form from another site carries no Origin, and this header is how browsers say where it
//!   came from. A browser too old to send it still cannot read answers (CORS), and nothing that
//!   changes state answers to a GET.
//! - **Path**: the path must already be in canonical form (percent escapes of plain characters
//!   decoded, no `.`/`..` segments, no repeated slashes, no backslashes). A path that is not is
//!   refused with a 400 naming its canonical form, so no spelling reaches a route (or SensePass)
//!   that its canonical form would not.
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

/// Why a request path is not in canonical form, with that form when there is one.
#[derive(Debug, PartialEq, Eq)]
pub struct NotCanonical {
    /// What is wrong with the path.
    pub reason: &'static str,
    /// The canonical spelling, when the path has one.
    pub canonical: Option<String>,
}

/// Checks that `raw` (a request path as sent, without the query) is in canonical form: escapes
/// of unreserved characters (`A-Z a-z 0-9 - . _ ~`), of `/` and of `\` are decoded, `\` becomes
/// `/`, repeated slashes collapse, `.` segments go and `..` segments remove their parent. Any
/// other escape stays as it is; escapes of spaces, controls and non-ASCII bytes are refused.
/// Written here rather than taken from a crate because the rule is "refuse what is not already
/// canonical", not "rewrite", and it fits in a page.
pub fn check_canonical_path(raw: &str) -> Result<(), NotCanonical> {
    if !raw.starts_with('/') {
        return Err(NotCanonical { reason: "the path must start with /", canonical: None });
    }
    let mut decoded = String::with_capacity(raw.len());
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b < 0x21 || b >= 0x7f {
            return Err(NotCanonical { reason: "the path contains a control, space or non-ASCII character", canonical: None });
        }
        if b == b'%' {
            let Some(d) = raw.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok()) else {
                return Err(NotCanonical { reason: "the path contains a malformed percent escape", canonical: None });
            };
            if d.is_ascii_alphanumeric() || matches!(d, b'-' | b'.' | b'_' | b'~' | b'/' | b'\\') {
                decoded.push(char::from(d));
            } else if d < 0x21 || d >= 0x7f {
                return Err(NotCanonical { reason: "the path contains an escaped control or non-ASCII byte", canonical: None });
            } else {
                decoded.push_str(&raw[i..i + 3]);
            }
            i += 3;
            continue;
        }
        decoded.push(char::from(b));
        i += 1;
    }
    let decoded = decoded.replace('\\', "/");
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = decoded.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing = false;
    for (n, seg) in segments.iter().enumerate() {
        match *seg {
            "" if n == last => trailing = true,
            "" | "." => trailing = n == last,
            ".." => {
                out.pop();
                trailing = n == last;
            }
            s => out.push(s),
        }
    }
    let mut canonical = format!("/{}", out.join("/"));
    if trailing && !out.is_empty() {
        canonical.push('/');
    }
    if canonical == raw {
        return Ok(());
    }
    let reason = if raw.contains('%') {
        "the path contains percent escapes of characters that need none"
    } else if raw.contains('\\') {
        "the path contains backslashes"
    } else if raw.contains("//") {
        "the path contains repeated slashes"
    } else {
        "the path contains . or .. segments"
    };
    Err(NotCanonical { reason, canonical: Some(canonical) })
}

/// Whether a request is a provider return (`POST /api/agent/providers/{provider}/return`, for a
/// provider with a return step): the customer's browser sent there by the provider's page after
/// 3-D Secure, a form post another site makes — so the Origin, Sec-Fetch-Site and JSON-only
/// checks cannot apply. The handler authenticates it instead (the provider's signature) and
/// changes nothing before a look-up at the provider. Matched on the exact canonical path.
pub fn is_provider_return(method: &Method, path: &str) -> bool {
    method == Method::POST
        && path
            .strip_prefix("/api/agent/providers/")
            .and_then(|rest| rest.strip_suffix("/return"))
            .is_some_and(|provider| provider == till_gateway::ProviderId::Acquired.as_str())
}

/// Whether a request is FlexFactor's webhook (`POST /api/agent/providers/flexfactor/webhook`,
/// exact canonical path): a server's post of JSON text as `text/plain`, so the JSON-only check
/// cannot apply. It is unsigned (FlexFactor documents no signature); the handler treats it as a
/// hint only and changes nothing before looking the rescue up with the agent's own credentials.
pub fn is_provider_webhook(method: &Method, path: &str) -> bool {
    method == Method::POST && path == "/api/agent/providers/flexfactor/webhook"
}

/// Host, Sec-Fetch-Site, Origin, path and Content-Type checks, before routing.
pub async fn guard(State(guard): State<Guard>, request: Request<Body>, next: Next) -> Response {
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !is_loopback_host(host) {
        tracing::warn!("refused a request whose Host is not a loopback name");
        return refuse(StatusCode::FORBIDDEN, "forbidden_host", "Host must be a loopback name (127.0.0.1, localhost)");
    }
    if is_provider_return(request.method(), request.uri().path()) || is_provider_webhook(request.method(), request.uri().path()) {
        let mut response = next.run(request).await;
        add_security_headers(response.headers_mut());
        return response;
    }
    let origin_ok = match headers.get(header::ORIGIN) {
        Some(origin) => {
            let ok = origin.to_str().map(|o| guard.origins.iter().any(|a| a == o)).unwrap_or(false);
            if !ok {
                tracing::warn!("refused a request from a foreign browser origin");
                return refuse(StatusCode::FORBIDDEN, "forbidden_origin", "requests from this web origin are not allowed");
            }
            true
        }
        None => false,
    };
    let site = headers.get("sec-fetch-site").map(|v| v.to_str().unwrap_or("cross-site").trim().to_ascii_lowercase());
    if matches!(site.as_deref(), Some("cross-site") | Some("same-site")) && !origin_ok {
        tracing::warn!("refused a request another web site made the browser send");
        return refuse(
            StatusCode::FORBIDDEN,
            "forbidden_site",
            "requests another web site makes a browser send (Sec-Fetch-Site: cross-site or same-site) are not allowed",
        );
    }
    if let Err(e) = check_canonical_path(request.uri().path()) {
        let reason = match &e.canonical {
            Some(c) => format!("{}; its canonical form is {c}", e.reason),
            None => e.reason.to_string(),
        };
        return AgentError::invalid("path", &reason).into_response();
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
    let mut response = next.run(request).await;
    add_security_headers(response.headers_mut());
    response
}

/// The UI's Content-Security-Policy: its own scripts, styles and API only, no inline script, no
/// framing by anyone (a frame of the cashier screen on another page could be click-jacked).
pub const UI_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; frame-src 'self'; object-src 'none'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// The receipt PDF's policy: only the agent's own pages may frame it (the manager console shows
/// it in an iframe). Nothing more: a stricter policy on a PDF stops Chromium's viewer.
pub const RECEIPT_CSP: &str = "frame-ancestors 'self'";

/// `nosniff`, no referrer, and a CSP (unless the handler set its own) on every response.
fn add_security_headers(headers: &mut HeaderMap) {
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(UI_CSP));
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
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

/// Whether the request carries the POS token or a manager session — the waiver for legacy POS
/// software does not count. Decides what a read shows, not whether it is allowed: health hides
/// the device ID (a SensePass credential) from anyone without one.
pub fn carries_credential(agent: &Agent, headers: &HeaderMap) -> bool {
    bearer(headers).is_some_and(|t| agent.check_pos_token(t) || agent.manager().check(t))
}

/// The device ID as shown to a caller without a credential: only its last four characters.
/// The one mask for it (the UI shows what health sends).
pub fn mask_device_id(device_id: &str) -> String {
    let chars: Vec<char> = device_id.chars().collect();
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    format!("•••• {tail}")
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
    fn canonical_paths() {
        for ok in ["/", "/api/transactions/refund", "/api/transactions/12%3Ax", "/api/transactions/12%3ax", "/index.html", "/api/x/"] {
            assert_eq!(check_canonical_path(ok), Ok(()), "{ok}");
        }
        for (bad, canonical) in [
            ("/api//transactions/refund", Some("/api/transactions/refund")),
            ("/api/transactions/./refund", Some("/api/transactions/refund")),
            ("/api/transactions/%2e/refund", Some("/api/transactions/refund")),
            ("/api/transactions/%2E%2E/transactions/refund", Some("/api/transactions/refund")),
            ("/api/x/../transactions/refund", Some("/api/transactions/refund")),
            ("/api/transactions\\refund", Some("/api/transactions/refund")),
            ("/api/transactions%2frefund", Some("/api/transactions/refund")),
            ("/api/transactions/re%66und", Some("/api/transactions/refund")),
            ("/api/%5c%5cevil.example%5cx", Some("/api/evil.example/x")),
            ("/api/transactions/%zz", None),
            ("/api/transactions/%00", None),
            ("/api/transactions/12%20x", None),
        ] {
            let e = check_canonical_path(bad).expect_err(bad);
            assert_eq!(e.canonical.as_deref(), canonical, "{bad}");
        }
    }

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
