//! The FlexFactor decline-recovery simulator (fact sheet `flexfactor.md`, decisions in
//! docs/DECISIONS.md "FlexFactor"), served in the same process as the other simulators on its
//! own port, so that it can go offline on its own:
//!
//! - the Standard CIT API under `/v1/`: `oauth2/token` (10-minute access tokens, 401 after
//!   expiry), `tokenize` (the §5 answer; cross-origin allowed, so a keyed-entry page can post the
//!   card itself), `evaluate` (deterministic outcomes by test card, see [`model::TEST_CARDS`]),
//!   `orders/{id}` (status codes of §7.1), `orders/{id}/refund` (capped, the `FAILED` body of §8),
//! - webhooks (§10) to a configured URL, a JSON body sent as `text/plain`, with a time scale,
//! - a control API under `/_sandbox/flexfactor/` on the sandbox's control port: ground truth,
//!   faults (offline, 5xx, latency, lost responses), the clock and settings.
//!
//! Like the other simulators it shares no code with its client crate (`till-flexfactor`), so a
//! misreading in one shows up as a failing test in the other.

mod api;
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

pub use model::{APP_KEY, APP_SECRET, MID, SITE_ID, TOKENIZE_ENVIRONMENT};

/// Faults of the FlexFactor port (control API `faults`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Faults {
    /// The port is closed: connections are refused.
    pub offline: bool,
    /// The next `count` `/v1` calls answer `status` and do nothing (5xx bursts).
    pub fail_next: Option<(u32, u16)>,
    /// Delay before every `/v1` call.
    pub latency_ms: u64,
    /// Call kinds whose next response is never sent although the work is done.
    pub lose_next: Vec<String>,
}

/// The kinds `loseNextResponse` accepts.
pub(crate) const LOSE_KINDS: [&str; 5] = ["token", "tokenize", "evaluate", "orders", "refund"];

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

/// What the FlexFactor handlers share.
pub(crate) struct Ff {
    /// Orders, tokens, the vault, counters and settings; never locked across an `.await`.
    world: Mutex<World>,
    /// Injected faults.
    faults: Mutex<Faults>,
    /// Cancelled when the port goes offline: hung (lost) responses end with the connection.
    epoch: Mutex<CancellationToken>,
    /// Cancelled when the sandbox stops.
    pub shutdown: CancellationToken,
    /// The listener, to close and re-open it.
    main: tokio::sync::Mutex<Option<MainServer>>,
    /// Base of the simulator's URLs (`http://<addr>`); the API base is `<url>/v1/`.
    pub url: String,
    /// Webhook sender.
    pub http: reqwest::Client,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Ff {
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

/// A running FlexFactor simulator (part of a [`crate::SandboxHandle`]).
pub(crate) struct Running {
    /// The shared state.
    pub ff: Arc<Ff>,
    /// The bound address.
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
    let ff = Arc::new(Ff {
        world: Mutex::new(World::default()),
        faults: Mutex::new(Faults::default()),
        epoch: Mutex::new(CancellationToken::new()),
        shutdown: shutdown.clone(),
        main: tokio::sync::Mutex::new(None),
        url: format!("http://{addr}"),
        http,
    });
    let router = Router::new()
        .nest("/v1", api::router(ff.clone()))
        .layer(axum::middleware::from_fn(log_request));
    let server = MainServer::start(listener, router, registry, shutdown)?;
    // The lock is free: nobody else has seen `ff` yet.
    if let Ok(mut main) = ff.main.try_lock() {
        *main = Some(server);
    }
    Ok(Running { ff, addr })
}

/// The control routes, merged into the sandbox's control router.
pub(crate) fn control_router(ff: Arc<Ff>) -> Router {
    control::router(ff)
}

/// Logs method and path only: bodies carry card numbers and secrets, and the query string of
/// `/tokenize` carries the tokenization key.
async fn log_request(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    tracing::debug!(%method, %path, status = response.status().as_u16(), "flexfactor request");
    response
}
