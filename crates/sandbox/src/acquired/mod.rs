//! The Acquired.com simulator (fact sheet `payment-sessions.md`, decisions in
//! docs/DECISIONS.md "Acquired"), served in the same process as the other simulators on two
//! ports of its own:
//!
//! - the API port: `/v1/login` (1-hour bearer tokens, the §2 401), payment sessions (create,
//!   `PUT`, 10-minute expiry, the §3.4 400 naming every parameter), the transaction look-up,
//!   capture, refund and reversal;
//! - the Components port (Acquired serves its script from its own host): `acquired.js`, the
//!   card submission, the 3-D Secure emulator with the §9 test cards and the signed redirect
//!   to `tds.redirect_url`;
//! - webhooks v2 to the session's `webhook_url` (HMAC `Hash`, every 5 minutes until a 200,
//!   dropped after 25 minutes; a time scale for tests);
//! - a control API under `/_sandbox/acquired/` on the sandbox's control port: ground truth,
//!   faults (offline, 5xx, latency, lost responses), the clock and settings.
//!
//! Like the other simulators it shares no code with its client crate (`till-acquired`), so a
//! misreading in one shows up as a failing test in the other.

mod api;
mod components;
mod control;
pub(crate) mod model;
mod webhooks;

use crate::server::{ConnRegistry, MainServer};
use axum::Router;
use model::World;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use model::{APP_ID, APP_KEY, COMPANY_ID};

/// Faults of the Acquired API port (control API `faults`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Faults {
    /// The API port is closed.
    pub offline: bool,
    /// The next `count` `/v1` API calls answer `status`, doing nothing.
    pub fail_next: Option<(u32, u16)>,
    /// Delay before every API call and card submission.
    pub latency_ms: u64,
    /// Call kinds whose next response is never sent (the work is done).
    pub lose_next: Vec<String>,
}

/// The kinds `loseNextResponse` accepts.
pub(crate) const LOSE_KINDS: [&str; 8] = [
    "login",
    "payment-sessions",
    "payment-sessions-update",
    "transactions",
    "capture",
    "refund",
    "reversal",
    "confirm",
];

impl Faults {
    fn json(&self) -> Value {
        json!({
            "offline": self.offline,
            "failNext": self.fail_next.map(|(count, status)| json!({"count": count, "status": status})),
            "latencyMs": self.latency_ms,
            "loseNextResponse": self.lose_next,
        })
    }
}

/// What the Acquired handlers share.
pub(crate) struct Aq {
    /// Everything simulated (a std mutex: never held across an `.await`).
    world: Mutex<World>,
    /// The injected faults.
    faults: Mutex<Faults>,
    /// Cancelled when the API port goes offline: ends the requests whose answer is "lost".
    epoch: Mutex<CancellationToken>,
    /// Cancelled when the sandbox stops.
    pub shutdown: CancellationToken,
    /// The API listener, which can go offline.
    api: tokio::sync::Mutex<Option<MainServer>>,
    /// The Components host's listener.
    components: tokio::sync::Mutex<Option<MainServer>>,
    /// `http://<api addr>/v1`: the API base of §1.
    pub api_url: String,
    /// `http://<components addr>`: the Components host.
    pub components_url: String,
    /// Webhook sender.
    pub http: reqwest::Client,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Aq {
    /// The world, locked; never held across an `.await`.
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        lock(&self.world)
    }

    pub(crate) fn faults(&self) -> MutexGuard<'_, Faults> {
        lock(&self.faults)
    }

    /// Takes one "lose the next response" fault of `kind`.
    pub(crate) fn take_lose(&self, kind: &str) -> bool {
        let mut f = self.faults();
        match f.lose_next.iter().position(|k| k == kind) {
            Some(i) => {
                f.lose_next.remove(i);
                true
            }
            None => false,
        }
    }

    /// Never answers: waits until the port goes offline or the sandbox stops.
    pub(crate) async fn hang(&self) {
        let epoch = lock(&self.epoch).clone();
        tokio::select! {
            _ = epoch.cancelled() => {}
            _ = self.shutdown.cancelled() => {}
        }
    }

    fn new_epoch(&self) {
        let mut e = lock(&self.epoch);
        e.cancel();
        *e = CancellationToken::new();
    }

    /// Closes or re-opens the API port (the Components host stays up, as a CDN would).
    pub(crate) async fn set_offline(&self, offline: bool) -> std::io::Result<()> {
        let mut api = self.api.lock().await;
        if let Some(server) = api.as_mut() {
            if offline && server.is_online() {
                server.go_offline().await;
                self.new_epoch();
            } else if !offline && !server.is_online() {
                server.go_online().await?;
            }
        }
        self.faults().offline = offline;
        Ok(())
    }

    /// Stops serving for good.
    pub(crate) async fn stop(&self) {
        for m in [&self.api, &self.components] {
            if let Some(server) = m.lock().await.as_mut() {
                server.go_offline().await;
            }
        }
        self.new_epoch();
    }
}

/// A running Acquired simulator (part of a [`crate::SandboxHandle`]).
pub(crate) struct Running {
    /// The shared state, for the control routes and shutdown.
    pub aq: Arc<Aq>,
    /// The bound API address.
    pub api_addr: SocketAddr,
    /// The bound Components address.
    pub components_addr: SocketAddr,
}

/// Starts serving the API on `api` and the Components host on `components`.
pub(crate) fn start(api: TcpListener, components: TcpListener, shutdown: CancellationToken) -> std::io::Result<Running> {
    let api_addr = api.local_addr()?;
    let components_addr = components.local_addr()?;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(std::io::Error::other)?;
    let aq = Arc::new(Aq {
        world: Mutex::new(World::default()),
        faults: Mutex::new(Faults::default()),
        epoch: Mutex::new(CancellationToken::new()),
        shutdown: shutdown.clone(),
        api: tokio::sync::Mutex::new(None),
        components: tokio::sync::Mutex::new(None),
        api_url: format!("http://{api_addr}/v1"),
        components_url: format!("http://{components_addr}"),
        http,
    });
    let api_router = Router::new()
        .nest("/v1", api::router(aq.clone()))
        .layer(axum::middleware::from_fn(log_request));
    let api_server = MainServer::start(api, api_router, Arc::new(ConnRegistry::default()), shutdown.clone())?;
    let components_router = components::router(aq.clone()).layer(axum::middleware::from_fn(log_request));
    let components_server = MainServer::start(components, components_router, Arc::new(ConnRegistry::default()), shutdown)?;
    // The locks are free: nobody else has seen `aq` yet.
    if let Ok(mut m) = aq.api.try_lock() {
        *m = Some(api_server);
    }
    if let Ok(mut m) = aq.components.try_lock() {
        *m = Some(components_server);
    }
    Ok(Running { aq, api_addr, components_addr })
}

/// The control routes, merged into the sandbox's control router.
pub(crate) fn control_router(aq: Arc<Aq>) -> Router {
    control::router(aq)
}

/// Logs method and path only (session and transaction ids are short-lived capabilities, but
/// paths carry nothing else; bodies carry card data and are never logged).
async fn log_request(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    tracing::debug!(%method, %path, status = response.status().as_u16(), "acquired request");
    response
}
