//! The Paymentsense Connect-E simulator (fact sheet `paymentsense-connect-e.md`, decisions in
//! docs/DECISIONS.md "Connect-E"), served in the same process as the SensePass sandbox on its
//! own port, so that it can go offline on its own:
//!
//! - the REST API of §4 under `/v1/` (Bearer API key, 401 otherwise),
//! - the web host: `client.js` at `/assets/js/client.js` and the endpoints it calls under
//!   `/web/v1/` (card or CV2 submission, the 3-D Secure step),
//! - webhooks to `webHookUrl` with the documented retry schedule and a time scale for tests,
//! - a control API under `/_sandbox/connect-e/` on the sandbox's control port: ground truth,
//!   faults (offline, 5xx, latency, lost responses), the clock and settings.
//!
//! Like the SensePass simulator it shares no code with the client crate (`till-connect-e`), so a
//! misreading in one shows up as a failing test in the other.

mod api;
mod control;
pub(crate) mod model;
mod web;
mod webhooks;

use crate::server::{ConnRegistry, MainServer};
use axum::Router;
use model::World;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use model::{API_KEY, MERCHANT_URL};

/// Faults of the Connect-E port (control API `faults`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Faults {
    /// The port is closed.
    pub offline: bool,
    /// The next `count` `/v1` calls answer `status`, doing nothing.
    pub fail_next: Option<(u32, u16)>,
    /// Delay before every `/v1` and `/web` call.
    pub latency_ms: u64,
    /// Call kinds whose next response is never sent (the work is done).
    pub lose_next: Vec<String>,
}

/// The kinds `loseNextResponse` accepts.
pub(crate) const LOSE_KINDS: [&str; 7] = [
    "access-tokens",
    "payments",
    "cross-reference-payments",
    "resume",
    "revoke",
    "payment-methods",
    "execute",
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

/// What the Connect-E handlers share.
pub(crate) struct Ce {
    world: Mutex<World>,
    faults: Mutex<Faults>,
    epoch: Mutex<CancellationToken>,
    /// Cancelled when the sandbox stops.
    pub shutdown: CancellationToken,
    main: tokio::sync::Mutex<Option<MainServer>>,
    /// Base of the simulator's URLs (`http://<addr>`): REST host and web host.
    pub url: String,
    /// Webhook sender.
    pub http: reqwest::Client,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Ce {
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

    /// Closes or re-opens the port.
    pub(crate) async fn set_offline(&self, offline: bool) -> std::io::Result<()> {
        let mut main = self.main.lock().await;
        if let Some(server) = main.as_mut() {
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
        if let Some(server) = self.main.lock().await.as_mut() {
            server.go_offline().await;
        }
        self.new_epoch();
    }
}

/// A running Connect-E simulator (part of a [`crate::SandboxHandle`]).
pub(crate) struct Running {
    pub ce: Arc<Ce>,
    pub addr: SocketAddr,
}

/// Starts serving on `listener`. `shutdown` is the sandbox's.
pub(crate) fn start(
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<Running> {
    let addr = listener.local_addr()?;
    let registry = Arc::new(ConnRegistry::default());
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(std::io::Error::other)?;
    let ce = Arc::new(Ce {
        world: Mutex::new(World::default()),
        faults: Mutex::new(Faults::default()),
        epoch: Mutex::new(CancellationToken::new()),
        shutdown: shutdown.clone(),
        main: tokio::sync::Mutex::new(None),
        url: format!("http://{addr}"),
        http,
    });
    let router = Router::new()
        .nest("/v1", api::router(ce.clone()))
        .merge(web::router(ce.clone()))
        .layer(axum::middleware::from_fn(log_request));
    let server = MainServer::start(listener, router, registry, shutdown)?;
    // The lock is free: nobody else has seen `ce` yet.
    if let Ok(mut main) = ce.main.try_lock() {
        *main = Some(server);
    }
    Ok(Running { ce, addr })
}

/// The control routes, merged into the sandbox's control router.
pub(crate) fn control_router(ce: Arc<Ce>) -> Router {
    control::router(ce)
}

/// Logs method and path only, with access tokens cut from paths.
async fn log_request(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.method().clone();
    let path: String = request
        .uri()
        .path()
        .split('/')
        .map(|seg| if seg.len() > 40 { "***" } else { seg })
        .collect::<Vec<_>>()
        .join("/");
    let response = next.run(request).await;
    tracing::debug!(%method, %path, status = response.status().as_u16(), "connect-e request");
    response
}
