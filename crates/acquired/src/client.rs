//! The Acquired REST client: login with its token cache, one method per endpoint.
//!
//! **The bearer token.** `POST /login` answers a token valid for one hour (§2). The client
//! keeps it and sends it with every call until a minute before the hour is up (or until the
//! answer's `expires_in`, when Acquired sends one), so a till that takes a payment a minute
//! never logs in per request. A 401 on a call renews the token and sends the call once more — a
//! 401 means Acquired did nothing, so this can never repeat a payment. Renewal is single-flight:
//! the cache sits behind an async mutex held across the login, so a hundred calls that find the
//! token stale together cause one login, and a call whose token was already replaced by another
//! call's renewal just takes the new one.
//!
//! Failures are classified for exactly-once logic (see [`Error`]); apart from that one re-send
//! after a 401 the client never retries.

use crate::error::Error;
use crate::wire::{
    AmountRequest, ApiError, LoginRequest, LoginResponse, OperationResult, SessionCreated,
    SessionRequest, SessionUpdate, TransactionInfo,
};
use reqwest::{Method, Url};
use serde::Serialize;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use till_core::Currency;
use till_gateway::Opaque;

/// Where and how to talk to Acquired.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// The API base of §1 including `/v1`, e.g. [`Config::TEST_URL`]; endpoint paths such as
    /// `payment-sessions` are appended to it.
    pub base_url: String,
    /// Where the Components script lives (the customer screen loads it).
    pub components_url: String,
    /// From the Hub (Settings > API Access).
    pub app_id: String,
    /// The secret half: logs in, and keys the redirect hash and the webhook HMAC. Never printed.
    pub app_key: Opaque,
    /// `Company-Id` header, sent when set (which endpoints need it is not documented, §2).
    pub company_id: Option<String>,
    /// `Mid` header: a specific acquiring connection; unset lets Acquired route.
    pub mid: Option<String>,
    /// Time limit of a whole call; exceeding it is "outcome unknown".
    pub timeout: Duration,
    /// Time limit of connecting; exceeding it is "not sent".
    pub connect_timeout: Duration,
    /// How long a token is used when the login answer does not say (§2: one hour).
    pub token_lifetime: Duration,
    /// The key of the webhook HMAC when the Hub shows one apart from the app key; `None` uses
    /// the app key, as the v2 migration notes and the WooCommerce client do (§8).
    pub webhook_key: Option<Opaque>,
}

impl Config {
    /// Acquired's test ("QA") API base.
    pub const TEST_URL: &'static str = "https://test-api.acquired.com/v1";
    /// Acquired's production API base.
    pub const LIVE_URL: &'static str = "https://api.acquired.com/v1";
    /// Renew this long before the token's end, so a call never carries a token that expires on
    /// the way.
    pub const RENEW_MARGIN: Duration = Duration::from_secs(60);

    /// A configuration with 30 s call and 10 s connect limits and the documented hour.
    pub fn new(
        base_url: impl Into<String>,
        components_url: impl Into<String>,
        app_id: impl Into<String>,
        app_key: impl Into<String>,
    ) -> Config {
        Config {
            base_url: base_url.into(),
            components_url: components_url.into(),
            app_id: app_id.into(),
            app_key: Opaque::new(app_key),
            company_id: None,
            mid: None,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            token_lifetime: Duration::from_secs(3600),
            webhook_key: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("base_url", &self.base_url)
            .field("components_url", &self.components_url)
            .field("app_id", &self.app_id)
            .field("app_key", &"***")
            .field("company_id", &self.company_id)
            .field("mid", &self.mid)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("webhook_key", &self.webhook_key.as_ref().map(|_| "***"))
            .finish()
    }
}

/// A token in use: the whole `Authorization` value and when to stop using it.
#[derive(Clone)]
struct Cached {
    /// `Bearer <access_token>`.
    header: Opaque,
    /// Renew from here on.
    renew_at: Instant,
}

/// The REST client. Cheap to clone (clones share the token cache).
#[derive(Clone)]
pub struct Client {
    /// The HTTP client (no keep-alive pool, see [`Client::new`]).
    http: reqwest::Client,
    /// `base_url`, parsed once, so that paths are joined segment by segment.
    base: Url,
    /// Where and how.
    config: Config,
    /// The token cache; the async mutex makes renewal single-flight (module docs).
    token: Arc<tokio::sync::Mutex<Option<Cached>>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Client {
    /// Builds a client. Fails only for an unusable base URL.
    pub fn new(config: Config) -> Result<Client, Error> {
        let base = Url::parse(config.base_url.trim_end_matches('/'))
            .map_err(|e| Error::Config(format!("base_url: {e}")))?;
        if base.cannot_be_a_base() {
            return Err(Error::Config("base_url cannot be a base".into()));
        }
        // No keep-alive pool, as for the other providers (docs/DECISIONS.md): on a fresh
        // connection a connect failure proves the request was not sent.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(Client { http, base, config, token: Arc::new(tokio::sync::Mutex::new(None)) })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// `POST /login` (§2), always; [`Client`]'s other calls use the cached token instead.
    pub async fn login(&self) -> Result<LoginResponse, Error> {
        let body = LoginRequest { app_id: self.config.app_id.clone(), app_key: self.config.app_key.clone() };
        let (_, text) = self.send(Method::POST, &["login"], Some(&body), None).await?;
        serde_json::from_str::<LoginResponse>(&text).map_err(|e| Error::Decode(format!("login: {e}")))
    }

    /// The token to send: the cached one, or a fresh login when there is none, it is due for
    /// renewal, or it is `refused` (the token a 401 just answered).
    async fn bearer(&self, refused: Option<&Opaque>) -> Result<Opaque, Error> {
        let mut cache = self.token.lock().await;
        if let Some(c) = cache.as_ref() {
            let replaced = refused.is_some_and(|r| *r != c.header);
            if replaced || (refused.is_none() && Instant::now() < c.renew_at) {
                return Ok(c.header.clone());
            }
        }
        // Held across the login: whoever comes next waits and takes this token.
        let login = self.login().await?;
        let lifetime = login
            .expires_in
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(s as u64))
            .unwrap_or(self.config.token_lifetime);
        let scheme = login.token_type.filter(|t| !t.trim().is_empty()).unwrap_or_else(|| "Bearer".into());
        let header = Opaque::new(format!("{} {}", scheme.trim(), login.access_token.expose()));
        *cache = Some(Cached {
            header: header.clone(),
            renew_at: Instant::now() + lifetime.saturating_sub(Config::RENEW_MARGIN),
        });
        Ok(header)
    }

    /// Forgets the cached token (tests; after the key changed).
    pub async fn forget_token(&self) {
        *self.token.lock().await = None;
    }

    /// `POST /payment-sessions` (§3).
    pub async fn create_session(&self, request: &SessionRequest) -> Result<SessionCreated, Error> {
        let text = self.authorized(Method::POST, &["payment-sessions"], Some(request)).await?;
        let created: SessionCreated =
            serde_json::from_str(&text).map_err(|e| Error::Decode(format!("payment-sessions: {e}")))?;
        if created.session_id.is_empty() {
            return Err(Error::Decode("empty session_id".into()));
        }
        Ok(created)
    }

    /// `PUT /payment-sessions/{session_id}` (§4). Any 2xx is success; the body (not documented)
    /// is ignored.
    pub async fn update_session(&self, session_id: &Opaque, update: &SessionUpdate) -> Result<(), Error> {
        self.authorized(Method::PUT, &["payment-sessions", session_id.expose()], Some(update)).await?;
        Ok(())
    }

    /// `GET /transactions/{transaction_id}` (assumed, §11.7), read for a payment in `currency`.
    pub async fn transaction(&self, transaction_id: &str, currency: Currency) -> Result<TransactionInfo, Error> {
        let text = self.authorized::<()>(Method::GET, &["transactions", transaction_id], None).await?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| Error::Decode(format!("transactions: {e}")))?;
        Ok(TransactionInfo::from_json(&v, currency))
    }

    /// `POST /transactions/{transaction_id}/capture` (assumed, §11.7).
    pub async fn capture(&self, transaction_id: &str, body: &AmountRequest) -> Result<OperationResult, Error> {
        self.operation(&["transactions", transaction_id, "capture"], Some(body)).await
    }

    /// `POST /transactions/{transaction_id}/refund` (assumed, §11.7).
    pub async fn refund(&self, transaction_id: &str, body: &AmountRequest) -> Result<OperationResult, Error> {
        self.operation(&["transactions", transaction_id, "refund"], Some(body)).await
    }

    /// `POST /transactions/{transaction_id}/reversal` (assumed, §11.7): releases an
    /// authorisation.
    pub async fn reversal(&self, transaction_id: &str) -> Result<OperationResult, Error> {
        self.operation::<()>(&["transactions", transaction_id, "reversal"], None).await
    }

    async fn operation<B: Serialize>(&self, segments: &[&str], body: Option<&B>) -> Result<OperationResult, Error> {
        let text = self.authorized(Method::POST, segments, body).await?;
        let text = if text.trim().is_empty() { "{}" } else { text.as_str() };
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| Error::Decode(e.to_string()))?;
        Ok(OperationResult::from_json(&v))
    }

    /// Sends with the cached token; after a 401, once more with a renewed one.
    async fn authorized<B: Serialize>(&self, method: Method, segments: &[&str], body: Option<&B>) -> Result<String, Error> {
        let token = self.bearer(None).await?;
        match self.send(method.clone(), segments, body, Some(&token)).await {
            Err(e) if e.is_unauthorized() => {
                tracing::info!("Acquired refused the access token; logging in again");
                let renewed = self.bearer(Some(&token)).await?;
                self.send(method, segments, body, Some(&renewed)).await.map(|(_, t)| t)
            }
            other => other.map(|(_, t)| t),
        }
    }

    fn url(&self, segments: &[&str]) -> Result<Url, Error> {
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().map_err(|_| Error::Config("base_url cannot be a base".into()))?;
            path.pop_if_empty();
            // extend() percent-encodes each segment: an id can never add a path level
            path.extend(segments);
        }
        Ok(url)
    }

    /// Sends one request; answers the 2xx status and body text, or the classified failure.
    async fn send<B: Serialize>(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&B>,
        token: Option<&Opaque>,
    ) -> Result<(reqwest::StatusCode, String), Error> {
        let url = self.url(segments)?;
        let mut request = self.http.request(method, url).header(reqwest::header::ACCEPT, "application/json");
        if let Some(t) = token {
            request = request.header(reqwest::header::AUTHORIZATION, t.expose());
        }
        if let Some(c) = &self.config.company_id {
            request = request.header("Company-Id", c);
        }
        if let Some(m) = &self.config.mid {
            request = request.header("Mid", m);
        }
        if let Some(b) = body {
            request = request.json(b);
        }
        let response = request.send().await.map_err(classify)?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| Error::Uncertain(format!("answer cut off: {}", e.without_url())))?;
        if status.is_success() {
            return Ok((status, text));
        }
        Err(match ApiError::parse(&text) {
            Some(error) => Error::Api { status: status.as_u16(), error },
            None => Error::Http { status: status.as_u16(), body: text.trim().chars().take(500).collect() },
        })
    }
}

/// Not connected → certainly not sent; anything after the request left → unknown.
fn classify(e: reqwest::Error) -> Error {
    let e = e.without_url();
    if e.is_builder() {
        Error::Config(e.to_string())
    } else if e.is_connect() {
        Error::NotSent(e.to_string())
    } else if e.is_timeout() {
        Error::Uncertain(format!("timed out: {e}"))
    } else {
        Error::Uncertain(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_key() {
        let mut c = Config::new("http://127.0.0.1:1/v1", "http://127.0.0.1:2", "app", "SECRET-KEY");
        c.webhook_key = Some(Opaque::new("SECRET-HOOK"));
        assert!(!format!("{c:?}").contains("SECRET"));
        let client = Client::new(c).unwrap();
        assert!(!format!("{client:?}").contains("SECRET"));
    }

    #[test]
    fn ids_cannot_change_the_path() {
        let client = Client::new(Config::new("http://h/v1/", "http://c", "a", "k")).unwrap();
        let url = client.url(&["transactions", "../x?y#z", "capture"]).unwrap();
        assert_eq!(url.as_str(), "http://h/v1/transactions/..%2Fx%3Fy%23z/capture");
    }
}
