//! Stores, one-time enrolment codes, enrolment, revocation and till authentication.

use crate::auth;
use crate::error::ApiError;
use axum::http::HeaderMap;
use deadpool_postgres::Pool;
use till_core::InvalidParameters;
use till_fleet_protocol::{EnrolRequest, EnrolResponse};
use uuid::Uuid;

/// How long an enrolment code stays valid by default.
pub const DEFAULT_CODE_TTL_HOURS: u32 = 72;

/// An authenticated, not revoked till.
#[derive(Debug, Clone, Copy)]
pub struct TillAuth {
    /// The till.
    pub till_id: Uuid,
    /// Its store.
    pub store_id: i64,
}

fn check_name(p: &mut InvalidParameters, field: &str, name: &str) {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 200 || n.chars().any(char::is_control) {
        p.push(field, "must be 1 to 200 printable characters");
    }
}

/// Creates the store if it does not exist, and sets its time zone when one is given (an IANA
/// name PostgreSQL knows, e.g. `Europe/London`; a new store without one is UTC); returns its id.
pub async fn ensure_store(pool: &Pool, name: &str, time_zone: Option<&str>) -> Result<i64, ApiError> {
    let mut p = InvalidParameters::new();
    check_name(&mut p, "store", name);
    let client = pool.get().await?;
    let time_zone = time_zone.map(str::trim).filter(|z| !z.is_empty());
    if let Some(zone) = time_zone {
        let known: bool = client
            .query_one("SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)", &[&zone])
            .await?
            .get(0);
        if !known {
            p.push("time_zone", "must be an IANA time zone name, e.g. Europe/London");
        }
    }
    p.into_result()?;
    let row = client
        .query_one(
            "WITH ins AS (INSERT INTO stores (name, time_zone) VALUES ($1, coalesce($2, 'UTC')) \
                          ON CONFLICT (name) DO NOTHING RETURNING id) \
             SELECT id FROM ins UNION ALL SELECT id FROM stores WHERE name = $1 LIMIT 1",
            &[&name.trim(), &time_zone],
        )
        .await?;
    let id: i64 = row.get(0);
    if let Some(zone) = time_zone {
        client.execute("UPDATE stores SET time_zone = $2 WHERE id = $1", &[&id, &zone]).await?;
    }
    Ok(id)
}

/// A new one-time enrolment code for `store` (created if missing, its time zone set when given),
/// valid for `ttl_hours`.
pub async fn new_code(pool: &Pool, store: &str, time_zone: Option<&str>, ttl_hours: u32) -> Result<String, ApiError> {
    if ttl_hours == 0 || ttl_hours > 24 * 90 {
        return Err(ApiError::invalid("ttl_hours", "must be from 1 to 2160"));
    }
    let store_id = ensure_store(pool, store, time_zone).await?;
    let code = auth::new_code();
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO enrolment_codes (code_hash, store_id, expires_at) VALUES ($1, $2, now() + make_interval(hours => $3))",
            &[&auth::hash(&code), &store_id, &(ttl_hours as i32)],
        )
        .await?;
    Ok(code)
}

/// Enrols a till with a one-time code: the code is used up in the same transaction that creates
/// the till, so two tills racing with one code cannot both succeed.
pub async fn enrol(pool: &Pool, req: &EnrolRequest) -> Result<EnrolResponse, ApiError> {
    let mut p = InvalidParameters::new();
    check_name(&mut p, "till_name", &req.till_name);
    if req.code.trim().is_empty() {
        p.push("code", "required");
    }
    if req.version.len() > 64 {
        p.push("version", "at most 64 characters");
    }
    p.into_result()?;
    let code = auth::normalise_code(&req.code);
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "SELECT c.store_id, s.name, c.used_at IS NOT NULL, c.expires_at < now() \
             FROM enrolment_codes c JOIN stores s ON s.id = c.store_id WHERE c.code_hash = $1 FOR UPDATE OF c",
            &[&auth::hash(&code)],
        )
        .await?;
    // One answer for unknown, used and expired codes: a guesser learns nothing.
    let refused = || ApiError::Unauthorized("unknown, used or expired enrolment code".into());
    let row = row.ok_or_else(refused)?;
    let (store_id, store, used, expired): (i64, String, bool, bool) = (row.get(0), row.get(1), row.get(2), row.get(3));
    if used || expired {
        return Err(refused());
    }
    let till_id = Uuid::new_v4();
    let secret = auth::new_secret();
    let name = req.till_name.trim().to_string();
    let inserted = tx
        .execute(
            "INSERT INTO tills (id, store_id, name, secret_hash, version) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (store_id, name) DO NOTHING",
            &[&till_id, &store_id, &name, &auth::hash(&secret), &req.version],
        )
        .await?;
    if inserted == 0 {
        return Err(ApiError::Conflict(format!("store {store} already has a till named {name}")));
    }
    tx.execute(
        "UPDATE enrolment_codes SET used_at = now(), till_id = $2 WHERE code_hash = $1",
        &[&auth::hash(&code), &till_id],
    )
    .await?;
    tx.commit().await?;
    tracing::info!(%till_id, store = %store, till = %name, "till enrolled");
    Ok(EnrolResponse { till_id, store, till_name: name, secret })
}

/// Revokes a till: from now on every request with its credentials is refused.
pub async fn revoke(pool: &Pool, till_id: Uuid) -> Result<(), ApiError> {
    let client = pool.get().await?;
    let n = client
        .execute("UPDATE tills SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1", &[&till_id])
        .await?;
    if n == 0 {
        return Err(ApiError::NotFound(format!("till {till_id}")));
    }
    tracing::info!(%till_id, "till revoked");
    Ok(())
}

/// Authenticates a till request (unknown till and wrong secret look the same: 401; a revoked
/// till gets 403).
pub async fn authenticate(client: &tokio_postgres::Client, headers: &HeaderMap) -> Result<TillAuth, ApiError> {
    let (till_id, secret) = auth::till_credentials(headers)?;
    let row = client
        .query_opt("SELECT store_id, secret_hash, revoked_at IS NOT NULL FROM tills WHERE id = $1", &[&till_id])
        .await?;
    let refused = || ApiError::Unauthorized("unknown till or wrong secret".into());
    let row = row.ok_or_else(refused)?;
    let hash: Vec<u8> = row.get(1);
    if !auth::matches(secret, &hash) {
        return Err(refused());
    }
    if row.get::<_, bool>(2) {
        return Err(ApiError::Forbidden("this till was revoked".into()));
    }
    Ok(TillAuth { till_id, store_id: row.get(0) })
}
