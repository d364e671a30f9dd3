//! The Connect-E REST client: one method per endpoint of §4.
//!
//! Every call carries `Authorization: Bearer <API key>` — including revoke and payment methods,
//! whose security the OpenAPI document forgets to declare (docs/DECISIONS.md). Failures are
//! classified for exactly-once logic (see [`Error`]); the client never retries on its own.

use crate::error::Error;
use crate::wire::{
    AccessToken, AccessTokenRequest, CrossReferencePaymentRequest, PaymentInfo, PaymentMethods,
    StatusResult,
};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::time::Duration;
use till_gateway::Opaque;

/// Where and how to talk to Connect-E.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// The REST host, e.g. [`Config::TEST_URL`]; paths `/v1/…` are appended.
    pub base_url: String,
    /// The host of `client.js` (`<web_url>/assets/js/client.js`).
    pub web_url: String,
    /// The merchant's API key. Never printed.
    pub api_key: Opaque,
    /// The account's registered URL, sent as `merchantUrl` with every token.
    pub merchant_url: String,
    /// Time limit of a whole call; exceeding it is "outcome unknown".
    pub timeout: Duration,
    /// Time limit of connecting; exceeding it is "not sent".
    pub connect_timeout: Duration,
}

impl Config {
    /// Connect-E's test REST host.
    pub const TEST_URL: &'static str = "https://e.test.connect.paymentsense.cloud";
    /// Connect-E's test web host (client.js).
    pub const TEST_WEB_URL: &'static str = "https://web.e.test.connect.paymentsense.cloud";

    /// A configuration with 30 s call and 10 s connect limits.
    pub fn new(
        base_url: impl Into<String>,
        web_url: impl Into<String>,
        api_key: impl Into<String>,
        merchant_url: impl Into<String>,
    ) -> Config {
        Config {
            base_url: base_url.into(),
            web_url: web_url.into(),
            api_key: Opaque::new(api_key),
            merchant_url: merchant_url.into(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// The URL of the provider's script for the checkout page.
    pub fn client_js_url(&self) -> String {
        format!("{}/assets/js/client.js", self.web_url.trim_end_matches('/'))
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("base_url", &self.base_url)
            .field("web_url", &self.web_url)
            .field("api_key", &"***")
            .field("merchant_url", &self.merchant_url)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// The REST client. Cheap to clone (shares the connection pool).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    config: Config,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .finish()
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
        // No keep-alive pool, as for SensePass (docs/DECISIONS.md): on a fresh connection a
        // connect failure proves the request was not sent; a reused connection the server had
        // closed would fail only after the request was written, an avoidable "outcome unknown".
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(Client { http, base, config })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// `POST /v1/access-tokens` (§4.1).
    pub async fn create_access_token(
        &self,
        request: &AccessTokenRequest,
    ) -> Result<AccessToken, Error> {
        self.call(Method::POST, &["v1", "access-tokens"], Some(request))
            .await
    }

    /// `GET /v1/payments/{token}` (§4.2).
    pub async fn payment(&self, token: &Opaque) -> Result<PaymentInfo, Error> {
        self.call::<(), _>(Method::GET, &["v1", "payments", token.expose()], None)
            .await
    }

    /// `POST /v1/cross-reference-payments/{token}` (§4.3).
    pub async fn cross_reference_payment(
        &self,
        token: &Opaque,
        request: &CrossReferencePaymentRequest,
    ) -> Result<StatusResult, Error> {
        self.call(
            Method::POST,
            &["v1", "cross-reference-payments", token.expose()],
            Some(request),
        )
        .await
    }

    /// `POST /v1/payments/{token}/resume` (§4.4). No body is documented; none is sent.
    pub async fn resume(&self, token: &Opaque) -> Result<StatusResult, Error> {
        self.call::<(), _>(
            Method::POST,
            &["v1", "payments", token.expose(), "resume"],
            None,
        )
        .await
    }

    /// `POST /v1/access-tokens/{token}/revoke` (§4.5). `Ok` means revoked; see
    /// [`Error::is_token_consumed`] and [`Error::is_invalid_token`] for the documented 400s.
    pub async fn revoke(&self, token: &Opaque) -> Result<(), Error> {
        let (status, _) = self
            .send::<()>(
                Method::POST,
                &["v1", "access-tokens", token.expose(), "revoke"],
                None,
            )
            .await?;
        debug_assert!(status.is_success());
        Ok(())
    }

    /// `GET /v1/payment-methods` (§4.6).
    pub async fn payment_methods(&self) -> Result<PaymentMethods, Error> {
        self.call::<(), _>(Method::GET, &["v1", "payment-methods"], None)
            .await
    }

    fn url(&self, segments: &[&str]) -> Result<Url, Error> {
        let mut url = self.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|_| Error::Config("base_url cannot be a base".into()))?;
            path.pop_if_empty();
            // extend() percent-encodes each segment: a token can never add a path level
            path.extend(segments);
        }
        Ok(url)
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&B>,
    ) -> Result<T, Error> {
        let (_, text) = self.send(method, segments, body).await?;
        let text = if text.trim().is_empty() {
            "{}"
        } else {
            text.as_str()
        };
        serde_json::from_str(text).map_err(|e| Error::Decode(e.to_string()))
    }

    /// Sends one request; answers the 2xx status and body text, or the classified failure.
    async fn send<B: Serialize>(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&B>,
    ) -> Result<(reqwest::StatusCode, String), Error> {
        let url = self.url(segments)?;
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(self.config.api_key.expose())
            .header(reqwest::header::ACCEPT, "application/json");
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
            Ok((status, text))
        } else {
            let body: String = text.trim().chars().take(500).collect();
            Err(Error::Http {
                status: status.as_u16(),
                body,
            })
        }
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
        let c = Config::new(
            "http://127.0.0.1:1",
            "http://127.0.0.1:1/",
            "sk_live_SECRET",
            "https://shop",
        );
        assert!(!format!("{c:?}").contains("SECRET"));
        let client = Client::new(c.clone()).unwrap();
        assert!(!format!("{client:?}").contains("SECRET"));
        assert_eq!(c.client_js_url(), "http://127.0.0.1:1/assets/js/client.js");
    }

    #[test]
    fn tokens_cannot_change_the_path() {
        let client = Client::new(Config::new("http://h/base/", "http://w", "k", "m")).unwrap();
        let url = client.url(&["v1", "payments", "../../x?y#z"]).unwrap();
        assert_eq!(
            url.as_str(),
            "http://h/base/v1/payments/..%2F..%2Fx%3Fy%23z"
        );
    }
}
