//! # till-fleet
//!
//! The fleet server of a store chain: every till's journal replicated into PostgreSQL, one
//! place to see all stores and tills, and (later) the public end of providers' webhooks.
//!
//! - [`enrol`]: stores, one-time enrolment codes, till identities and secrets, revocation.
//! - [`ingest`]: applies a till's batch of journal changes in one PostgreSQL transaction,
//!   exactly once, refusing gaps and replays (the contract is in `till-fleet-protocol`).
//! - [`reports`]: stores and tills, day totals, refunds pending, chain-wide payment search, as
//!   JSON and CSV; [`web`] serves the dashboard page that shows them.
//! - [`webhooks`]: provider webhooks received on a till's behalf, deduplicated, stored and relayed
//!   to the till over a long-poll it opens (the till confirms with the provider).
//! - [`db`]: the connection pool, embedded migrations (refinery) and month partitions.
//!
//! What it is not: it never talks to a payment provider and never changes a payment; the tills
//! are the source of truth for what they did, and PostgreSQL is the fleet's only store of
//! record (the server keeps no state of its own, so several can run behind a load balancer).

#![forbid(unsafe_code)]

pub mod auth;
pub mod db;
pub mod enrol;
pub mod error;
pub mod ingest;
pub mod reports;
pub mod web;
pub mod webhooks;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use deadpool_postgres::Pool;
use error::ApiError;
use serde::Deserialize;
use std::sync::Arc;
use till_fleet_protocol::{Batch, CursorResponse, EnrolRequest, BATCH_PATH, CURSOR_PATH, ENROL_PATH};

/// Largest request body accepted (a full batch of payments is well under this).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// The server's shared state.
#[derive(Clone)]
pub struct Fleet {
    /// PostgreSQL connections.
    pub pool: Pool,
    /// Which month partitions exist.
    pub partitions: Arc<db::Partitions>,
    /// The administrator token for the dashboard and its API.
    admin_token: Arc<str>,
    /// The chain's Acquired `app_key`, which keys the webhook v2 HMAC; without it Acquired
    /// webhooks are not accepted (404). A secret: never logged, not in `Debug`.
    acquired_app_key: Option<Arc<str>>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet").finish_non_exhaustive()
    }
}

impl Fleet {
    /// A fleet over `pool` whose dashboard is opened with `admin_token`.
    pub fn new(pool: Pool, admin_token: &str) -> Fleet {
        Fleet { pool, partitions: Arc::default(), admin_token: admin_token.into(), acquired_app_key: None }
    }

    /// Accepts Acquired webhooks, verified with the chain's `app_key`.
    pub fn with_acquired_app_key(mut self, app_key: Option<String>) -> Fleet {
        self.acquired_app_key = app_key.filter(|k| !k.is_empty()).map(Arc::from);
        self
    }

    fn admin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        auth::require_admin(headers, &self.admin_token)
    }
}

/// Every route of the server.
pub fn router(fleet: Fleet) -> Router {
    Router::new()
        .route(ENROL_PATH, post(enrol_handler))
        .route(BATCH_PATH, post(batch_handler))
        .route(CURSOR_PATH, get(cursor_handler))
        .route("/api/v1/health", get(health))
        .route("/api/v1/stores", post(create_store))
        .route("/api/v1/enrolment-codes", post(create_code))
        .route("/api/v1/tills", get(list_tills))
        .route("/api/v1/tills/{id}/revoke", post(revoke_till))
        .route("/api/v1/reports/day", get(day_report))
        .route("/api/v1/reports/refunds-pending", get(refunds_pending))
        .route("/api/v1/payments/search", get(search_payments))
        .route("/api/v1/webhooks/poll", get(poll_webhooks))
        .route("/api/v1/webhooks/{provider}/{till}", post(receive_webhook))
        .merge(web::router())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(fleet)
}

async fn health(State(fleet): State<Fleet>) -> Result<Response, ApiError> {
    let client = fleet.pool.get().await?;
    client.query_one("SELECT 1", &[]).await?;
    Ok(Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") })).into_response())
}

/// A JSON body, with a 400 naming the problem instead of axum's plain-text rejection.
struct JsonBody<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;
    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(e) => Err(ApiError::invalid("body", &e.body_text())),
        }
    }
}

async fn enrol_handler(State(fleet): State<Fleet>, JsonBody(req): JsonBody<EnrolRequest>) -> Result<Response, ApiError> {
    Ok(Json(enrol::enrol(&fleet.pool, &req).await?).into_response())
}

async fn batch_handler(State(fleet): State<Fleet>, headers: HeaderMap, body: axum::body::Bytes) -> Result<Response, ApiError> {
    // Authenticate before parsing: an unknown caller gets 401 whatever it sent.
    let till = {
        let client = fleet.pool.get().await?;
        enrol::authenticate(&client, &headers).await?
    };
    let batch: Batch = serde_json::from_slice(&body).map_err(|e| ApiError::invalid("body", &e.to_string()))?;
    Ok(Json(ingest::apply(&fleet, till, batch).await?).into_response())
}

async fn cursor_handler(State(fleet): State<Fleet>, headers: HeaderMap) -> Result<Response, ApiError> {
    let client = fleet.pool.get().await?;
    let till = enrol::authenticate(&client, &headers).await?;
    let row = client.query_one("SELECT cursor FROM tills WHERE id = $1", &[&till.till_id]).await?;
    Ok(Json(CursorResponse { cursor: row.get(0) }).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreBody {
    name: String,
    /// IANA time zone; UTC for a new store when absent.
    time_zone: Option<String>,
}

async fn create_store(State(fleet): State<Fleet>, headers: HeaderMap, JsonBody(b): JsonBody<StoreBody>) -> Result<Response, ApiError> {
    fleet.admin(&headers)?;
    let id = enrol::ensure_store(&fleet.pool, &b.name, b.time_zone.as_deref()).await?;
    Ok(Json(serde_json::json!({ "id": id, "name": b.name.trim() })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeBody {
    store: String,
    /// IANA time zone of the store (set when given).
    time_zone: Option<String>,
    ttl_hours: Option<u32>,
}

async fn create_code(State(fleet): State<Fleet>, headers: HeaderMap, JsonBody(b): JsonBody<CodeBody>) -> Result<Response, ApiError> {
    fleet.admin(&headers)?;
    let ttl = b.ttl_hours.unwrap_or(enrol::DEFAULT_CODE_TTL_HOURS);
    let code = enrol::new_code(&fleet.pool, &b.store, b.time_zone.as_deref(), ttl).await?;
    Ok(Json(serde_json::json!({ "store": b.store.trim(), "code": code, "ttl_hours": ttl })).into_response())
}

async fn revoke_till(State(fleet): State<Fleet>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, ApiError> {
    fleet.admin(&headers)?;
    let id = uuid::Uuid::parse_str(&id).map_err(|_| ApiError::invalid("id", "must be a till id (UUID)"))?;
    enrol::revoke(&fleet.pool, id).await?;
    Ok(Json(serde_json::json!({ "revoked": id })).into_response())
}

/// `?format=csv` for CSV; JSON otherwise.
#[derive(Deserialize, Default)]
struct Format {
    format: Option<String>,
}

fn respond<T: serde::Serialize>(format: Option<&str>, name: &str, rows: &[T]) -> Result<Response, ApiError> {
    match format {
        None | Some("json") => Ok(Json(rows).into_response()),
        Some("csv") => Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}.csv\"")),
            ],
            reports::csv(rows)?,
        )
            .into_response()),
        Some(_) => Err(ApiError::invalid("format", "must be json or csv")),
    }
}

async fn list_tills(State(fleet): State<Fleet>, headers: HeaderMap, Query(f): Query<Format>) -> Result<Response, ApiError> {
    fleet.admin(&headers)?;
    respond(f.format.as_deref(), "tills", &reports::tills(&fleet.pool).await?)
}

#[derive(Deserialize)]
struct DayQuery {
    date: Option<String>,
    format: Option<String>,
}

async fn day_report(State(fleet): State<Fleet>, headers: HeaderMap, Query(q): Query<DayQuery>) -> Result<Response, ApiError> {
    fleet.admin(&headers)?;
    // No date: each store's own today, in its time zone.
    let date = match q.date.as_deref() {
        None | Some("") | Some("today") => None,
        Some(d) => Some(
            time::Date::parse(d, time::macros::format_description!("[year]-[month]-[day]"))
                .map_err(|_| ApiError::invalid("date", "must be YYYY-MM-DD"))?,
        ),
    };
    let name = date.map(|d| format!("day-{d}")).unwrap_or_else(|| "day-today".into());
    respond(q.format.as_deref(), &name, &reports::day(&fleet.pool, date).await?)
}

async fn refunds_pending(State(fleet): State<Fleet>, headers: HeaderMap, Query(f): Query<Format>) -> Result<Response, ApiError> {
    fleet.admin(&headers)?;
    respond(f.format.as_deref(), "refunds-pending", &reports::pending_refunds(&fleet.pool).await?)
}

#[derive(Deserialize)]
struct SearchQuery {
    order_id: Option<String>,
    last_four: Option<String>,
    amount: Option<String>,
    format: Option<String>,
}

async fn search_payments(State(fleet): State<Fleet>, headers: HeaderMap, Query(q): Query<SearchQuery>) -> Result<Response, ApiError> {
    fleet.admin(&headers)?;
    let blank = |s: Option<String>| s.filter(|v| !v.trim().is_empty()).map(|v| v.trim().to_string());
    let amount = match blank(q.amount) {
        None => None,
        Some(a) => Some(a.parse::<i64>().map_err(|_| ApiError::invalid("amount", "must be an integer in minor units"))?),
    };
    let search = reports::Search { order_id: blank(q.order_id), last_four: blank(q.last_four), amount };
    respond(q.format.as_deref(), "payments", &reports::search(&fleet.pool, &search).await?)
}

async fn receive_webhook(
    State(fleet): State<Fleet>,
    Path((provider, till)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let signature = webhooks::Signature {
        acquired_app_key: fleet.acquired_app_key.as_deref(),
        hash: headers.get("hash").and_then(|v| v.to_str().ok()),
    };
    let stored = webhooks::receive(&fleet.pool, &provider, &till, &body, signature).await?;
    // 200 for a repeat too: the provider has delivered, it must stop retrying.
    Ok(Json(serde_json::json!({ "received": true, "duplicate": !stored })).into_response())
}

#[derive(Deserialize)]
struct PollQuery {
    after: Option<i64>,
    wait: Option<u64>,
}

async fn poll_webhooks(State(fleet): State<Fleet>, headers: HeaderMap, Query(q): Query<PollQuery>) -> Result<Response, ApiError> {
    let till = {
        let client = fleet.pool.get().await?;
        enrol::authenticate(&client, &headers).await?
    };
    let wait = std::time::Duration::from_secs(q.wait.unwrap_or(25));
    Ok(Json(webhooks::poll(&fleet.pool, till, q.after.unwrap_or(0), wait).await?).into_response())
}
