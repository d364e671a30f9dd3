//! The FlexFactor REST client: one method per Standard CIT endpoint, and the access token.
//!
//! **The token** (§3): fetched with AppKey/AppSecret, reused until shortly before its `expires`
//! (milliseconds since the epoch) or until a call answers 401; then one fresh login and the call
//! is sent once more (a 401 proves it was not performed). Renewal is single-flight: the cache
//! sits behind an async mutex held across the login, so ten concurrent calls that find the
//! token stale cause one login, not ten.
//!
//! **Logging**: method, path and status only. Bodies carry card data (tokenize), personal data
//! (orders) and secrets (token), so none is ever logged, and query strings (the tokenization
//! `environment` key) are left out.

use crate::error::Error;
use crate::wire::{
    validation_errors, EvaluateRequest, EvaluateResponse, Order, RefundRequest, RefundResponse,
    TokenRequest, TokenResponse, TokenizeRequest, TokenizeResponse, VaultedMethod,
};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use till_gateway::Opaque;

/// Where and how to talk to FlexFactor.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// The API base of §1 including `/v1/`, e.g. [`Config::SANDBOX_URL`]. A base without a
    /// path gets `/v1` added.
    pub base_url: String,
    /// The tokenization endpoint's base when the portal shows a different host (§5); `None`
    /// uses `base_url`.
    pub tokenize_url: Option<String>,
    /// The portal's AppKey.
    pub app_key: Opaque,
    /// The portal's AppSecret. Never printed.
    pub app_secret: Opaque,
    /// Merchant GUID (`mid`).
    pub mid: String,
    /// Site GUID (`siteId`).
    pub site_id: String,
    /// The tokenization "Environment" key (`environment` query parameter). Not secret per the
    /// docs, but an account key: not printed either.
    pub tokenize_environment: Opaque,
    /// Time limit of a whole call; exceeding it is "outcome unknown".
    pub timeout: Duration,
    /// Time limit of connecting; exceeding it is "not sent".
    pub connect_timeout: Duration,
}

impl Config {
    /// FlexFactor's sandbox API base.
    pub const SANDBOX_URL: &'static str = "https://api-sandbox.flexfactor.io/v1/";

    /// A configuration with 30 s call and 10 s connect limits.
    pub fn new(
        base_url: impl Into<String>,
        app_key: impl Into<String>,
        app_secret: impl Into<String>,
        mid: impl Into<String>,
        site_id: impl Into<String>,
        tokenize_environment: impl Into<String>,
    ) -> Config {
        Config {
            base_url: base_url.into(),
            tokenize_url: None,
            app_key: Opaque::new(app_key),
            app_secret: Opaque::new(app_secret),
            mid: mid.into(),
            site_id: site_id.into(),
            tokenize_environment: Opaque::new(tokenize_environment),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("base_url", &self.base_url)
            .field("tokenize_url", &self.tokenize_url)
            .field("app_key", &self.app_key)
            .field("app_secret", &"***")
            .field("mid", &self.mid)
            .field("site_id", &self.site_id)
            .field("tokenize_environment", &"***")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The access-token lifetime FlexFactor documents (§3), used when `expires` is not believable.
const DOCUMENTED_LIFETIME: Duration = Duration::from_secs(600);
/// The longest `expires` we take at face value.
const MAX_BELIEVABLE_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The cached access token.
#[derive(Clone)]
struct Cached {
    /// The bearer value.
    token: Opaque,
    /// When to stop using it: `expires` minus a margin, on our clock.
    use_until: SystemTime,
}

/// The REST client. Cheap to clone (shares the connection settings and the token cache).
#[derive(Clone)]
pub struct Client {
    /// The HTTP client, without a keep-alive pool (see [`Client::new`]).
    http: reqwest::Client,
    /// The API base, parsed once (`…/v1`).
    base: Url,
    /// The tokenization base: the portal may name another host for it (§5).
    tokenize_base: Url,
    /// Credentials and ids, kept for building requests.
    config: Config,
    /// The access token; `None` before the first login and after a 401. An async mutex so that
    /// renewal is single-flight (see the module docs).
    token: std::sync::Arc<tokio::sync::Mutex<Option<Cached>>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn parse_base(text: &str, what: &str) -> Result<Url, Error> {
    let mut url = Url::parse(text.trim()).map_err(|e| Error::Config(format!("{what}: {e}")))?;
    if url.cannot_be_a_base() {
        return Err(Error::Config(format!("{what} cannot be a base")));
    }
    if url.path().trim_matches('/').is_empty() {
        url.set_path("/v1");
    }
    url.set_query(None);
    Ok(url)
}

impl Client {
    /// Builds a client. Fails only for an unusable base URL.
    pub fn new(config: Config) -> Result<Client, Error> {
        let base = parse_base(&config.base_url, "base_url")?;
        let tokenize_base = match &config.tokenize_url {
            Some(u) => parse_base(u, "tokenize_url")?,
            None => base.clone(),
        };
        // No keep-alive pool, as for the other providers (docs/DECISIONS.md): on a fresh
        // connection a connect failure proves the request was not sent.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(Client {
            http,
            base,
            tokenize_base,
            config,
            token: Default::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The full tokenization URL with `mid` and `environment`: what a keyed-entry page posts
    /// the card to directly, so that the card number never passes through the agent.
    pub fn tokenize_endpoint(&self) -> Result<Url, Error> {
        let mut url = join(&self.tokenize_base, &["tokenize"])?;
        url.query_pairs_mut()
            .append_pair("mid", &self.config.mid)
            .append_pair("environment", self.config.tokenize_environment.expose());
        Ok(url)
    }

    /// `POST /v1/oauth2/token` (§3), bypassing the cache. Answers the token response.
    pub async fn login(&self) -> Result<TokenResponse, Error> {
        let request = TokenRequest {
            app_key: self.config.app_key.clone(),
            app_secret: self.config.app_secret.clone(),
        };
        let url = join(&self.base, &["oauth2", "token"])?;
        let (status, text) = self.send(Method::POST, url, None, Some(&request)).await?;
        let answer: TokenResponse = decode(status, &text)?;
        if answer.envelope.failed() || answer.access_token.is_empty() {
            return Err(answer.envelope.rejection(None, None));
        }
        Ok(answer)
    }

    /// A usable bearer: the cached one, or a fresh login (single-flight).
    async fn bearer(&self) -> Result<Opaque, Error> {
        let mut cache = self.token.lock().await;
        if let Some(c) = cache.as_ref() {
            if SystemTime::now() < c.use_until {
                return Ok(c.token.clone());
            }
        }
        let answer = self.login().await?;
        let expires = UNIX_EPOCH + Duration::from_millis(answer.expires.max(0) as u64);
        let now = SystemTime::now();
        // An `expires` already past or more than a day ahead means our clock and FlexFactor's
        // disagree: assume the documented 10 minutes from now (a 401 still corrects a wrong
        // guess) rather than logging in before every call.
        let left = match expires.duration_since(now) {
            Ok(left) if left > Duration::ZERO && left <= MAX_BELIEVABLE_LIFETIME => left,
            _ => DOCUMENTED_LIFETIME,
        };
        // Renew a little early: a tenth of the remaining lifetime, at most 30 s, so a call
        // never leaves with a token that dies on the way.
        let margin = (left / 10).min(Duration::from_secs(30));
        tracing::debug!(
            lifetime_ms = left.as_millis() as u64,
            "flexfactor access token issued"
        );
        let cached = Cached {
            token: answer.access_token,
            use_until: now + left - margin,
        };
        let token = cached.token.clone();
        *cache = Some(cached);
        Ok(token)
    }

    /// Forgets `used` after a 401 (unless another call already replaced it).
    async fn forget(&self, used: &Opaque) {
        let mut cache = self.token.lock().await;
        if cache.as_ref().is_some_and(|c| &c.token == used) {
            *cache = None;
        }
    }

    /// `POST /v1/tokenize?mid=…&environment=…` (§5). The bearer is sent although the docs'
    /// example has none: harmless if not needed, required if it is.
    pub async fn tokenize(&self, request: &TokenizeRequest) -> Result<VaultedMethod, Error> {
        let url = self.tokenize_endpoint()?;
        let answer: TokenizeResponse = self.authed(Method::POST, url, Some(request)).await?;
        if answer.envelope.failed() {
            return Err(answer.envelope.rejection(None, None));
        }
        let transaction = answer
            .transaction
            .ok_or_else(|| Error::Decode("tokenize: no transaction".into()))?;
        if transaction.succeeded == Some(false) {
            return Err(answer
                .envelope
                .rejection(None, Some("card not vaulted".into())));
        }
        transaction
            .payment_method
            .filter(|m| !m.token.is_empty())
            .ok_or_else(|| Error::Decode("tokenize: no payment_method.token".into()))
    }

    /// `POST /v1/evaluate` (§6). A `success: false` answer without a status is a rejection.
    pub async fn evaluate(&self, request: &EvaluateRequest) -> Result<EvaluateResponse, Error> {
        let url = join(&self.base, &["evaluate"])?;
        let answer: EvaluateResponse = self.authed(Method::POST, url, Some(request)).await?;
        if answer.envelope.success == Some(false) && answer.envelope.status.is_none() {
            return Err(answer.envelope.rejection(None, None));
        }
        Ok(answer)
    }

    /// `GET /v1/orders/{id}` (§7.1).
    pub async fn order(&self, id: &str) -> Result<Order, Error> {
        let url = join(&self.base, &["orders", id])?;
        self.authed::<(), Order>(Method::GET, url, None)
            .await
            .map_err(|e| match e {
                Error::Http { status: 404, .. } => Error::Rejected {
                    code: Some("404".into()),
                    message: "no such order".into(),
                },
                other => other,
            })
    }

    /// `POST /v1/orders/{id}/refund` (§8). `Ok` means `SUCCESS`; `FAILED` (also inside an HTTP
    /// 4xx) is [`Error::Rejected`].
    pub async fn refund(&self, id: &str, request: &RefundRequest) -> Result<(), Error> {
        let url = join(&self.base, &["orders", id, "refund"])?;
        let answer: Result<RefundResponse, Error> =
            self.authed(Method::POST, url, Some(request)).await;
        let answer = match answer {
            Ok(a) => a,
            // a FAILED body under a 4xx status (the HTTP code is undocumented): read it
            Err(Error::Http { status, body }) if (400..500).contains(&status) => {
                match serde_json::from_str::<RefundResponse>(&body) {
                    Ok(a) if a.envelope.failed() => a,
                    _ => return Err(Error::Http { status, body }),
                }
            }
            Err(e) => return Err(e),
        };
        if answer.envelope.failed() {
            return Err(answer
                .envelope
                .rejection(answer.response_code, answer.response_message));
        }
        Ok(())
    }

    /// Sends with the bearer; on 401 logs in again and sends once more (a 401 proves the first
    /// attempt was not performed). A second 401 is [`Error::Unauthorized`].
    async fn authed<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&B>,
    ) -> Result<T, Error> {
        for attempt in 0..2 {
            let bearer = self.bearer().await?;
            match self
                .send(method.clone(), url.clone(), Some(&bearer), body)
                .await
            {
                Ok((status, text)) => return decode(status, &text),
                Err(Error::Http { status: 401, .. }) => {
                    tracing::debug!(attempt, "flexfactor answered 401: renewing the token");
                    self.forget(&bearer).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Unauthorized)
    }

    /// Sends one request; answers the 2xx status and body text, or the classified failure.
    async fn send<B: Serialize>(
        &self,
        method: Method,
        url: Url,
        bearer: Option<&Opaque>,
        body: Option<&B>,
    ) -> Result<(StatusCode, String), Error> {
        let path = url.path().to_string();
        let mut request = self
            .http
            .request(method.clone(), url)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(b) = bearer {
            request = request.bearer_auth(b.expose());
        }
        if let Some(b) = body {
            request = request.json(b);
        }
        let response = request.send().await.map_err(classify)?;
        let status = response.status();
        tracing::debug!(%method, %path, status = status.as_u16(), "flexfactor call");
        let text = response
            .text()
            .await
            .map_err(|e| Error::Uncertain(format!("answer cut off: {}", e.without_url())))?;
        if status.is_success() {
            return Ok((status, text));
        }
        if status == StatusCode::BAD_REQUEST {
            if let Some((fields, trace_id)) = validation_errors(&text) {
                return Err(Error::Validation {
                    status: status.as_u16(),
                    fields,
                    trace_id,
                });
            }
        }
        let body: String = text.trim().chars().take(500).collect();
        Err(Error::Http {
            status: status.as_u16(),
            body,
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

/// Appends path segments to a base; `extend` percent-encodes each, so an id can never add a
/// path level or a query.
fn join(base: &Url, segments: &[&str]) -> Result<Url, Error> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|_| Error::Config("base cannot be a base".into()))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// A 2xx body into `T`; an empty body reads as `{}`.
fn decode<T: DeserializeOwned>(_status: StatusCode, text: &str) -> Result<T, Error> {
    let text = if text.trim().is_empty() { "{}" } else { text };
    serde_json::from_str(text).map_err(|e| Error::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets_and_paths_stay_paths() {
        let c = Config::new(
            "http://h/",
            "key",
            "SECRETSECRET",
            "mid-1",
            "site-1",
            "ENVKEY",
        );
        let client = Client::new(c.clone()).unwrap();
        let d = format!("{client:?}");
        assert!(!d.contains("SECRETSECRET") && !d.contains("ENVKEY"), "{d}");
        assert_eq!(
            join(&client.base, &["orders", "../x?y"]).unwrap().as_str(),
            "http://h/v1/orders/..%2Fx%3Fy"
        );
        assert_eq!(
            client.tokenize_endpoint().unwrap().as_str(),
            "http://h/v1/tokenize?mid=mid-1&environment=ENVKEY"
        );
        let c = Config::new(Config::SANDBOX_URL, "k", "s", "m", "s", "e");
        let client = Client::new(c).unwrap();
        assert_eq!(
            join(&client.base, &["evaluate"]).unwrap().as_str(),
            "https://api-sandbox.flexfactor.io/v1/evaluate"
        );
    }
}
