//! The SensePass REST client.
//!
//! One method per documented endpoint, each taking and returning the typed models of
//! [`crate::models`], plus [`Client::forward`] for the Terminal Agent's "any cloud path works"
//! proxy. Credentials travel the way SensePass wants them — inside the JSON body, even for
//! `GET /transactions/{n}` — except for the subscription endpoints, which take headers.
//!
//! Failures are classified for exactly-once logic (see [`Error`]): the client never retries on
//! its own, because only the caller knows whether repeating a call is safe.

use crate::error::Error;
use crate::models::transaction::json_kind;
use crate::models::wire::path_segment;
use crate::models::{
    CancelResponse, CommitResponse, CreateDeviceRequest, CreditRequest, CustomerInputRequest,
    CustomerInputResetRequest, CustomerInputResetResponse, CustomerInputResponse, Device,
    FetchTransactions, InitRequest, MatchRequest, PayRequest, PayResponse, ReadyForPaymentRequest,
    RefundRequest, RefundResponse, SdkCommitRequest, SdkCommitResponse, SettlementsPage,
    SettlementsRequest, Subscription, SubscriptionStatus, Transaction, TransactionsPage,
    UpdateRequest, UpdateSubscriptionRequest,
};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Customer input may wait for the consumer to type an answer, so it gets a longer time limit
/// than ordinary calls.
pub const CUSTOMER_INPUT_TIMEOUT: Duration = Duration::from_secs(300);

/// Where and how patiently to talk to SensePass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The REST base, ending with `/api/`: [`ClientConfig::PRODUCTION_URL`],
    /// [`ClientConfig::SANDBOX_URL`], or any URL (the local sandbox in tests).
    pub base_url: String,
    /// Time limit of a whole call, from connect to the last byte of the answer. A call that
    /// exceeds it fails with [`Error::Uncertain`] (or [`Error::NotSent`] if it never connected).
    pub timeout: Duration,
    /// Time limit of establishing the connection alone.
    pub connect_timeout: Duration,
}

impl ClientConfig {
    /// The production REST base.
    pub const PRODUCTION_URL: &'static str = "https://api.sensepass.com/api/";
    /// The SensePass-hosted sandbox REST base.
    pub const SANDBOX_URL: &'static str = "https://api.sandbox.sensepass.com/api/";

    /// A configuration for `base_url` with 30 s call and 10 s connect limits.
    pub fn new(base_url: impl Into<String>) -> ClientConfig {
        ClientConfig {
            base_url: base_url.into(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// Production SensePass.
    pub fn production() -> ClientConfig {
        ClientConfig::new(Self::PRODUCTION_URL)
    }

    /// The SensePass-hosted sandbox.
    pub fn sandbox() -> ClientConfig {
        ClientConfig::new(Self::SANDBOX_URL)
    }
}

/// Who the client is to SensePass (spec §1.2). `Debug` masks the secrets.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A register's device ID (`deviceAliasKey` of pairing): what a till uses.
    Device(String),
    /// An API key: a location key alone, or a (deprecated) merchant key with `branchNumber`.
    /// Needed for pairing (`devices/match`, `devices/create`).
    ApiKey {
        /// The key.
        api_key: String,
        /// The branch, for merchant keys.
        branch_number: Option<String>,
    },
}

impl Credentials {
    /// The fields added to JSON bodies.
    fn body_fields(&self) -> Vec<(&'static str, String)> {
        match self {
            Credentials::Device(id) => vec![("deviceId", id.clone())],
            Credentials::ApiKey {
                api_key,
                branch_number,
            } => {
                let mut v = vec![("apiKey", api_key.clone())];
                if let Some(b) = branch_number {
                    v.push(("branchNumber", b.clone()));
                }
                v
            }
        }
    }

    /// The headers of the subscription endpoints (§4.16): `deviceId`, `merchantApiKey` (with
    /// `branchNumber`) or `branchApiKey`.
    fn header_fields(&self) -> Vec<(&'static str, String)> {
        match self {
            Credentials::Device(id) => vec![("deviceId", id.clone())],
            Credentials::ApiKey {
                api_key,
                branch_number: Some(b),
            } => {
                vec![
                    ("merchantApiKey", api_key.clone()),
                    ("branchNumber", b.clone()),
                ]
            }
            Credentials::ApiKey {
                api_key,
                branch_number: None,
            } => {
                vec![("branchApiKey", api_key.clone())]
            }
        }
    }

    /// The device ID, when these are device credentials.
    pub fn device_id(&self) -> Option<&str> {
        match self {
            Credentials::Device(id) => Some(id),
            Credentials::ApiKey { .. } => None,
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Device(id) => f
                .debug_tuple("Device")
                .field(&crate::models::mask_secret(id))
                .finish(),
            Credentials::ApiKey {
                api_key,
                branch_number,
            } => f
                .debug_struct("ApiKey")
                .field("api_key", &crate::models::mask_secret(api_key))
                .field("branch_number", branch_number)
                .finish(),
        }
    }
}

/// How a call carries credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// Fields in the JSON body.
    Body,
    /// HTTP headers (subscriptions).
    Headers,
    /// None at all (the commit link).
    None,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    config: ClientConfig,
    credentials: Credentials,
}

/// A SensePass REST client. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base.as_str())
            .field("credentials", &self.inner.credentials)
            .finish()
    }
}

/// An answer read in full: status and JSON body.
struct Answer {
    status: u16,
    body: Value,
}

/// How long an idle connection to SensePass is kept for reuse.
const POOL_IDLE: Duration = Duration::from_secs(30);
/// Idle connections kept per host (a till makes a few calls at once at most: create, status,
/// commit, refund).
const POOL_MAX_IDLE: usize = 4;

impl Client {
    /// Builds a client. Fails with [`Error::Config`] when `base_url` is not an http(s) URL.
    /// A missing trailing `/` is added so that paths join under `/api/`.
    pub fn new(config: ClientConfig, credentials: Credentials) -> Result<Client, Error> {
        let mut text = config.base_url.trim().to_string();
        if !text.ends_with('/') {
            text.push('/');
        }
        let base = Url::parse(&text)
            .map_err(|e| Error::Config(format!("base_url `{}`: {e}", config.base_url)))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(Error::Config(format!(
                "base_url `{}` must be an http(s) URL",
                config.base_url
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            // Connections are kept and reused: against the real service every new connection
            // costs a TCP and a TLS handshake (two round trips, 60–200 ms on a store's line),
            // more than everything else the agent does for a payment. Reuse keeps "not sent"
            // exact: a connect error can only come from a new connection, and a pooled
            // connection found closed before the request was written is retried by hyper on a
            // new one; a failure after the request left is "uncertain" and reconciled, as for
            // any call. The idle time is below the usual server and proxy limits (nginx 75 s,
            // cloud load balancers 60 s) so the pool rarely meets a connection as it closes.
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(POOL_MAX_IDLE)
            .user_agent(concat!("till-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                config,
                credentials,
            }),
        })
    }

    /// The same client (same connection pool and settings) acting with other credentials,
    /// e.g. the API key for pairing, then the new device ID.
    pub fn with_credentials(&self, credentials: Credentials) -> Client {
        Client {
            inner: Arc::new(Inner {
                http: self.inner.http.clone(),
                base: self.inner.base.clone(),
                config: self.inner.config.clone(),
                credentials,
            }),
        }
    }

    /// The credentials in use.
    pub fn credentials(&self) -> &Credentials {
        &self.inner.credentials
    }

    /// The REST base URL in use.
    pub fn base_url(&self) -> &str {
        self.inner.base.as_str()
    }

    /// The configuration in use.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    // ----- transactions ----------------------------------------------------------------------

    /// `POST /transactions/init` (§4.1): creates a payment request; answers the entity with
    /// status 0.
    pub async fn init(&self, req: &InitRequest) -> Result<Transaction, Error> {
        let body = self
            .call_json(
                "init",
                Method::POST,
                "transactions/init",
                Some(req.to_json()),
                Auth::Body,
            )
            .await?;
        transaction_from(body)
    }

    /// `GET /transactions/{n}` (§4.2), a GET with the credentials in a JSON body.
    pub async fn transaction(&self, number: &str) -> Result<Transaction, Error> {
        transaction_from(self.transaction_json(number).await?)
    }

    /// As [`Client::transaction`], SensePass's JSON as it came (for the Terminal Agent's proxy).
    pub async fn transaction_json(&self, number: &str) -> Result<Value, Error> {
        let path = format!("transactions/{}", path_segment(number));
        self.call_json("status", Method::GET, &path, None, Auth::Body)
            .await
    }

    /// `POST /transactions` (§4.3): transactions in a time window, filtered and paged.
    pub async fn transactions(&self, q: &FetchTransactions) -> Result<TransactionsPage, Error> {
        self.call(
            "transactions",
            Method::POST,
            "transactions",
            Some(to_body(q)?),
            Auth::Body,
        )
        .await
    }

    /// `POST /transactions/cancel/{n}` (§4.4). A `501` ([`Error::is_consumer_activity`]) means
    /// the consumer is already paying.
    pub async fn cancel(&self, number: &str) -> Result<CancelResponse, Error> {
        let path = format!("transactions/cancel/{}", path_segment(number));
        self.call("cancel", Method::POST, &path, None, Auth::Body)
            .await
    }

    /// `POST /transactions/cancelByDeviceId/{deviceId}` (§4.5): cancels the device's last
    /// pending transaction.
    pub async fn cancel_by_device(&self, device_id: &str) -> Result<CancelResponse, Error> {
        let path = format!("transactions/cancelByDeviceId/{}", path_segment(device_id));
        self.call("cancelByDeviceId", Method::POST, &path, None, Auth::Body)
            .await
    }

    /// `POST /transactions/refund` (§4.6). A processor decline is an `Ok` answer with
    /// `result: "Declined"`; check [`RefundResponse::is_approved`].
    pub async fn refund(&self, req: &RefundRequest) -> Result<RefundResponse, Error> {
        self.call(
            "refund",
            Method::POST,
            "transactions/refund",
            Some(to_body(req)?),
            Auth::Body,
        )
        .await
    }

    /// `POST /transactions/pay` (§4.7): charges a card server to server.
    pub async fn pay(&self, req: &PayRequest) -> Result<PayResponse, Error> {
        self.call(
            "pay",
            Method::POST,
            "transactions/pay",
            Some(to_body(req)?),
            Auth::Body,
        )
        .await
    }

    /// `POST /transactions/credit` (§4.8): sends money to a tokenised card.
    pub async fn credit(&self, req: &CreditRequest) -> Result<RefundResponse, Error> {
        self.call(
            "credit",
            Method::POST,
            "transactions/credit",
            Some(to_body(req)?),
            Auth::Body,
        )
        .await
    }

    /// `PATCH /transactions/{n}` (§4.9): updates an open-cart transaction; answers the
    /// updated entity.
    pub async fn update(&self, number: &str, req: &UpdateRequest) -> Result<Transaction, Error> {
        let path = format!("transactions/{}", path_segment(number));
        let body = self
            .call_json(
                "update",
                Method::PATCH,
                &path,
                Some(req.to_json()),
                Auth::Body,
            )
            .await?;
        transaction_from(body)
    }

    /// `POST /transactions/{n}/readyForPayment` (§4.9, older flow): lets the consumer pay.
    pub async fn ready_for_payment(
        &self,
        number: &str,
        req: &ReadyForPaymentRequest,
    ) -> Result<Transaction, Error> {
        let path = format!("transactions/{}/readyForPayment", path_segment(number));
        let body = self
            .call_json(
                "readyForPayment",
                Method::POST,
                &path,
                Some(to_body(req)?),
                Auth::Body,
            )
            .await?;
        transaction_from(body)
    }

    /// `POST /transactions/{n}/commit` (§4.10): the backend step of the browser SDK.
    pub async fn sdk_commit(
        &self,
        number: &str,
        req: &SdkCommitRequest,
    ) -> Result<SdkCommitResponse, Error> {
        let path = format!("transactions/{}/commit", path_segment(number));
        self.call(
            "sdkCommit",
            Method::POST,
            &path,
            Some(req.to_json()),
            Auth::Body,
        )
        .await
    }

    /// `GET {commitLink}` (§3.3): acknowledges an approved payment. The link is absolute and is
    /// called exactly as given: no credentials, no headers, no parameters.
    pub async fn commit_payment(&self, commit_link: &str) -> Result<CommitResponse, Error> {
        let url = Url::parse(commit_link)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| Error::Config("commitLink is not an http(s) URL".into()))?;
        let answer = self
            .send("commitPayment", Method::GET, url, None, Auth::None, None)
            .await?;
        decode(ok_body(answer)?)
    }

    // ----- devices and customer input --------------------------------------------------------

    /// `POST /devices/match` (§4.11): pairs a tag; needs API-key credentials.
    pub async fn devices_match(&self, req: &MatchRequest) -> Result<Device, Error> {
        self.require_api_key("devices/match")?;
        self.call(
            "devicesMatch",
            Method::POST,
            "devices/match",
            Some(to_body(req)?),
            Auth::Body,
        )
        .await
    }

    /// `POST /devices/create` (§4.12): creates a dynamic-QR device; needs API-key credentials.
    pub async fn devices_create(&self, req: &CreateDeviceRequest) -> Result<Device, Error> {
        self.require_api_key("devices/create")?;
        self.call(
            "devicesCreate",
            Method::POST,
            "devices/create",
            Some(to_body(req)?),
            Auth::Body,
        )
        .await
    }

    /// `POST /transactions/customer-input` (§4.13): asks the consumer questions on the device.
    /// May wait for the answers, so its time limit is [`CUSTOMER_INPUT_TIMEOUT`].
    pub async fn customer_input(
        &self,
        req: &CustomerInputRequest,
    ) -> Result<CustomerInputResponse, Error> {
        if req.device_id.is_none() && self.inner.credentials.device_id().is_none() {
            return Err(Error::Config("customer input needs a deviceId".into()));
        }
        let url = self.url("transactions/customer-input")?;
        let answer = self
            .send(
                "customerInput",
                Method::POST,
                url,
                Some(to_body(req)?),
                Auth::Body,
                Some(CUSTOMER_INPUT_TIMEOUT),
            )
            .await?;
        decode(ok_body(answer)?)
    }

    /// `POST /transactions/customer-input/reset`: clears pending questions on the device.
    pub async fn customer_input_reset(
        &self,
        req: &CustomerInputResetRequest,
    ) -> Result<CustomerInputResetResponse, Error> {
        if req.device_id.is_none() && self.inner.credentials.device_id().is_none() {
            return Err(Error::Config(
                "customer input reset needs a deviceId".into(),
            ));
        }
        let body = self
            .call_json(
                "customerInputReset",
                Method::POST,
                "transactions/customer-input/reset",
                Some(to_body(req)?),
                Auth::Body,
            )
            .await?;
        if body.is_null() {
            return Ok(CustomerInputResetResponse::default());
        }
        decode(body)
    }

    // ----- settlements and subscriptions -----------------------------------------------------

    /// `POST /settlements/all` (§4.14): the settlement report.
    pub async fn settlements(&self, req: &SettlementsRequest) -> Result<SettlementsPage, Error> {
        self.call(
            "settlements",
            Method::POST,
            "settlements/all",
            Some(to_body(req)?),
            Auth::Body,
        )
        .await
    }

    /// `GET /subscription/{uid}` (§4.16), credentials as headers.
    pub async fn subscription(&self, uid: &str) -> Result<Subscription, Error> {
        let path = format!("subscription/{}", path_segment(uid));
        self.call("subscription", Method::GET, &path, None, Auth::Headers)
            .await
    }

    /// `PATCH /subscription/{uid}` (§4.17), credentials as headers.
    pub async fn update_subscription(
        &self,
        uid: &str,
        status: SubscriptionStatus,
    ) -> Result<Subscription, Error> {
        let path = format!("subscription/{}", path_segment(uid));
        let body = to_body(&UpdateSubscriptionRequest { status })?;
        self.call(
            "updateSubscription",
            Method::PATCH,
            &path,
            Some(body),
            Auth::Headers,
        )
        .await
    }

    // ----- passthrough -----------------------------------------------------------------------

    /// Sends an allow-listed cloud call for the Terminal Agent's proxy (spec §8.2) and returns
    /// SensePass's answer as is, whatever its status. `path` is relative to the REST base (no
    /// leading `/`); the caller (the local API) decides which paths may be forwarded. Credentials
    /// are injected into the JSON object body of a POST/PATCH/PUT (replacing any the caller put
    /// there), sent as headers for `subscription/…`, and never put in the body of a GET.
    /// Only transport failures are errors; a non-JSON answer comes back as a JSON string.
    pub async fn forward(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), Error> {
        let rel = path;
        if let Some(b) = &body {
            if !b.is_object() {
                return Err(Error::Config(format!(
                    "forwarded body must be a JSON object, got {}",
                    json_kind(b)
                )));
            }
        }
        let auth = if rel.starts_with("subscription/") || rel == "subscription" {
            Auth::Headers
        } else if method == Method::GET || method == Method::HEAD {
            Auth::None
        } else {
            Auth::Body
        };
        let url = self.url(rel)?;
        let answer = self.send("forward", method, url, body, auth, None).await?;
        Ok((answer.status, answer.body))
    }

    // ----- plumbing --------------------------------------------------------------------------

    fn require_api_key(&self, what: &str) -> Result<(), Error> {
        match self.inner.credentials {
            Credentials::ApiKey { .. } => Ok(()),
            Credentials::Device(_) => {
                Err(Error::Config(format!("{what} needs API-key credentials")))
            }
        }
    }

    /// The URL of `rel` under the REST base: `rel`'s segments appended to the base's path, never
    /// resolved against it (`Url::join` would let `http:host/x`, `//host/x` or `..` leave the
    /// base). Each segment must be plain (`[A-Za-z0-9-_.~]` or percent escapes of other bytes, not
    /// `.`/`..` nor an escaped `.`, `/` or `\\`); the result is checked to keep the base's origin and
    /// path prefix, so no spelling of a path can send the credentials elsewhere.
    pub fn url(&self, rel: &str) -> Result<Url, Error> {
        url_under(&self.inner.base, rel)
    }

    /// Calls and decodes a 2xx answer into `T`.
    async fn call<T: DeserializeOwned>(
        &self,
        op: &'static str,
        method: Method,
        rel: &str,
        body: Option<Value>,
        auth: Auth,
    ) -> Result<T, Error> {
        decode(self.call_json(op, method, rel, body, auth).await?)
    }

    /// Calls and returns the JSON of a 2xx answer.
    async fn call_json(
        &self,
        op: &'static str,
        method: Method,
        rel: &str,
        body: Option<Value>,
        auth: Auth,
    ) -> Result<Value, Error> {
        let url = self.url(rel)?;
        ok_body(self.send(op, method, url, body, auth, None).await?)
    }

    /// Sends one request and reads the whole answer. `op` names the endpoint in logs; URLs are
    /// not logged because some carry a device ID.
    async fn send(
        &self,
        op: &'static str,
        method: Method,
        url: Url,
        body: Option<Value>,
        auth: Auth,
        timeout: Option<Duration>,
    ) -> Result<Answer, Error> {
        let mut rb = self.inner.http.request(method.clone(), url);
        if let Some(t) = timeout {
            rb = rb.timeout(t);
        }
        match auth {
            Auth::Body => {
                let mut obj = match body {
                    Some(Value::Object(m)) => m,
                    Some(other) => {
                        return Err(Error::Config(format!(
                            "request body must be a JSON object, got {}",
                            json_kind(&other)
                        )))
                    }
                    None => Map::new(),
                };
                for (k, v) in self.inner.credentials.body_fields() {
                    obj.insert(k.to_string(), Value::String(v));
                }
                rb = rb.json(&Value::Object(obj));
            }
            Auth::Headers => {
                for (k, v) in self.inner.credentials.header_fields() {
                    let mut value = reqwest::header::HeaderValue::from_str(&v).map_err(|_| {
                        Error::Config(format!(
                            "credential for header {k} is not valid header text"
                        ))
                    })?;
                    value.set_sensitive(true);
                    rb = rb.header(k, value);
                }
                if let Some(b) = body {
                    rb = rb.json(&b);
                }
            }
            Auth::None => {
                if let Some(b) = body {
                    rb = rb.json(&b);
                }
            }
        }
        let started = std::time::Instant::now();
        let response = rb.send().await.map_err(|e| {
            let err = classify(e);
            tracing::debug!(op, %method, error = %err, "SensePass call failed");
            err
        })?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| {
            let e = e.without_url();
            tracing::debug!(op, %method, status, error = %e, "SensePass answer cut off");
            Error::Uncertain(format!("answer cut off: {e}"))
        })?;
        tracing::debug!(op, %method, status, elapsed_ms = started.elapsed().as_millis() as u64, "SensePass call");
        Ok(Answer {
            status,
            body: parse_body(&bytes),
        })
    }
}

/// See [`Client::url`].
pub fn url_under(base: &Url, rel: &str) -> Result<Url, Error> {
    let refuse = |why: &str| Error::Config(format!("cannot send to path `{rel}`: {why}"));
    if rel.is_empty() {
        return Err(refuse("empty path"));
    }
    let mut path = base.path().to_string();
    if !path.ends_with('/') {
        path.push('/');
    }
    let prefix = path.clone();
    for (i, seg) in rel.split('/').enumerate() {
        if seg.is_empty() || seg == "." || seg == ".." {
            return Err(refuse("empty or dot segment"));
        }
        let bytes = seg.as_bytes();
        let mut j = 0;
        while j < bytes.len() {
            let b = bytes[j];
            if b == b'%' {
                let hex = seg.get(j + 1..j + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(d) if !matches!(d, b'.' | b'/' | b'\\' | b'%') && !d.is_ascii_alphanumeric() => j += 3,
                    _ => return Err(refuse("escape of a character that needs none")),
                }
            } else if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                j += 1;
            } else {
                return Err(refuse("character not allowed in a path segment"));
            }
        }
        if i > 0 {
            path.push('/');
        }
        path.push_str(seg);
    }
    let mut url = base.clone();
    url.set_path(&path);
    url.set_query(None);
    url.set_fragment(None);
    if url.origin() != base.origin() || !url.path().starts_with(&prefix) {
        return Err(refuse("would leave the SensePass base"));
    }
    Ok(url)
}

/// Sorts a transport failure into "certainly not sent" and "maybe performed".
fn classify(e: reqwest::Error) -> Error {
    let e = e.without_url();
    if e.is_builder() {
        Error::Config(e.to_string())
    } else if e.is_connect() {
        Error::NotSent(describe(&e))
    } else if e.is_timeout() {
        Error::Uncertain(format!("timed out: {}", describe(&e)))
    } else {
        Error::Uncertain(describe(&e))
    }
}

/// The error with its causes, which reqwest keeps in `source()`.
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// JSON when the body is JSON, a string when it is text, null when empty.
fn parse_body(bytes: &[u8]) -> Value {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

fn ok_body(answer: Answer) -> Result<Value, Error> {
    if (200..300).contains(&answer.status) {
        Ok(answer.body)
    } else {
        Err(Error::Http {
            status: answer.status,
            body: answer.body,
        })
    }
}

fn decode<T: DeserializeOwned>(body: Value) -> Result<T, Error> {
    if let Value::String(_) = body {
        return Err(Error::Decode("the answer is not JSON".into()));
    }
    serde_json::from_value(body).map_err(|e| Error::Decode(e.to_string()))
}

fn transaction_from(body: Value) -> Result<Transaction, Error> {
    Transaction::from_json(body)
}

fn to_body<T: Serialize>(req: &T) -> Result<Value, Error> {
    serde_json::to_value(req).map_err(|e| Error::Config(format!("request body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_and_credentials() {
        let c = Client::new(
            ClientConfig::new("http://127.0.0.1:9/api"),
            Credentials::Device("d".into()),
        )
        .unwrap();
        assert_eq!(c.base_url(), "http://127.0.0.1:9/api/");
        assert!(matches!(
            Client::new(
                ClientConfig::new("ftp://x/api/"),
                Credentials::Device("d".into())
            ),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            Client::new(
                ClientConfig::new("not a url"),
                Credentials::Device("d".into())
            ),
            Err(Error::Config(_))
        ));
        let secret = "0123456789abcdefghijklmnopqrstuvwxyz";
        let dbg = format!(
            "{:?}",
            c.with_credentials(Credentials::ApiKey {
                api_key: secret.into(),
                branch_number: Some("1".into())
            })
        );
        assert!(!dbg.contains(secret), "{dbg}");
        let k = Credentials::ApiKey {
            api_key: "k".into(),
            branch_number: None,
        };
        assert_eq!(k.body_fields(), vec![("apiKey", "k".to_string())]);
        assert_eq!(k.header_fields(), vec![("branchApiKey", "k".to_string())]);
        let m = Credentials::ApiKey {
            api_key: "k".into(),
            branch_number: Some("1".into()),
        };
        assert_eq!(
            m.body_fields(),
            vec![
                ("apiKey", "k".to_string()),
                ("branchNumber", "1".to_string())
            ]
        );
        assert_eq!(
            m.header_fields(),
            vec![
                ("merchantApiKey", "k".to_string()),
                ("branchNumber", "1".to_string())
            ]
        );
        assert_eq!(
            Credentials::Device("d".into()).header_fields(),
            vec![("deviceId", "d".to_string())]
        );
    }

    #[test]
    fn bodies() {
        assert_eq!(parse_body(b""), Value::Null);
        assert_eq!(parse_body(b"{\"a\":1}"), serde_json::json!({"a": 1}));
        assert_eq!(parse_body(b"oops"), Value::String("oops".into()));
    }
}
