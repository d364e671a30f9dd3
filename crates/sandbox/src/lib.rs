//! # till-sandbox
//!
//! A faithful SensePass simulator that runs on loopback, so that Till Agent can be developed,
//! demonstrated and tested without credentials or a network: the REST API under `/api/`, the
//! Socket.IO `message` stream, consumer payment pages with test cards, and a separate control
//! API (`/_sandbox`) that exposes the ground truth and injects faults (really closing the port,
//! failing or delaying calls, performing a call but never answering, dropping sockets).
//!
//! It implements the wire format on its own, from the SensePass fact sheet and
//! `docs/DECISIONS.md`, without sharing code with the client crate (`till-sensepass`), so that a
//! misreading in one is caught by the other. Money and status rules come from `till-core`.
//!
//! The same process also runs a Paymentsense Connect-E simulator on its own port (module
//! `connect_e`: REST `/v1/…`, `client.js`, webhooks; control under `/_sandbox/connect-e/`), an
//! Acquired.com simulator on two ports of its own (module `acquired`: login, payment sessions,
//! transactions; the Components script and 3-D Secure emulator; webhooks v2; control under
//! `/_sandbox/acquired/`) and a FlexFactor decline-recovery simulator on another (module
//! `flexfactor`: REST `/v1/…`, webhooks; control under `/_sandbox/flexfactor/`).
//!
//! What it is not: a SensePass replacement for production, or a sender of SensePass webhooks
//! (`callbackURL` is accepted and echoed, never called). Its world lives in memory, and is kept in
//! a JSON file across restarts only when [`SandboxConfig::state_file`] names one (the SensePass
//! side; the Connect-E simulator's state is memory only).
//!
//! ```no_run
//! # async fn demo() -> Result<(), till_sandbox::SandboxError> {
//! let sandbox = till_sandbox::start(till_sandbox::SandboxConfig::default()).await?;
//! println!("REST base {}", sandbox.api_base());
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```

mod acquired;
mod api;
mod app;
mod connect_e;
mod control;
mod flexfactor;
mod ids;
mod model;
mod pay;
mod persist;
mod server;
mod tasks;
mod validate;

use app::{Autopilot, Shared};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use model::{Emit, State};
use server::{ConnRegistry, MainServer};
use socketioxide::extract::SocketRef;
use socketioxide::SocketIo;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use acquired::{APP_ID as ACQUIRED_APP_ID, APP_KEY as ACQUIRED_APP_KEY, COMPANY_ID as ACQUIRED_COMPANY_ID};
pub use connect_e::{API_KEY as CONNECT_E_API_KEY, MERCHANT_URL as CONNECT_E_MERCHANT_URL};
pub use flexfactor::{
    APP_KEY as FLEXFACTOR_APP_KEY, APP_SECRET as FLEXFACTOR_APP_SECRET, MID as FLEXFACTOR_MID,
    SITE_ID as FLEXFACTOR_SITE_ID, TOKENIZE_ENVIRONMENT as FLEXFACTOR_TOKENIZE_ENVIRONMENT,
};
pub use model::SANDBOX_API_KEY;

/// Where the sandbox listens and which base URL it hands out.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Main API port: REST, Socket.IO and payment pages. Port 0 picks an ephemeral port.
    pub listen: SocketAddr,
    /// Control API port (`/_sandbox`). Port 0 picks an ephemeral port. Separate so that it keeps
    /// answering while the main port is switched off.
    pub control_listen: SocketAddr,
    /// Base used in `qrURL`, `commitLink`, client boxes and receipt endpoints; defaults to
    /// `http://<bound listen address>`. Set it when the sandbox sits behind a proxy.
    pub public_url: Option<String>,
    /// The Connect-E simulator's port (REST `/v1/…`, `client.js`, its card-entry endpoints).
    /// Port 0 picks an ephemeral port. Its own port so that it can go offline on its own.
    pub connect_e_listen: SocketAddr,
    /// A JSON file that keeps devices, transactions, refunds and tokens across restarts (loaded
    /// at start when it exists, rewritten after every change). `None`: memory only.
    pub state_file: Option<std::path::PathBuf>,
    /// The Acquired simulator's API port (`/v1/login`, payment sessions, transactions). Port 0
    /// picks an ephemeral port. Its own port so that it can go offline on its own.
    pub acquired_listen: SocketAddr,
    /// The Acquired Components host (`acquired.js`, card entry, 3-D Secure emulator): a port
    /// of its own, as Acquired serves its script from its own host.
    pub acquired_components_listen: SocketAddr,
    /// The FlexFactor simulator's port (REST `/v1/…`). Port 0 picks an ephemeral port. Its own
    /// port so that it can go offline on its own.
    pub flexfactor_listen: SocketAddr,
}

impl Default for SandboxConfig {
    /// Both listeners on 127.0.0.1 with ephemeral ports: safe for parallel tests.
    fn default() -> Self {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        SandboxConfig {
            listen: loopback,
            control_listen: loopback,
            public_url: None,
            connect_e_listen: loopback,
            state_file: None,
            acquired_listen: loopback,
            acquired_components_listen: loopback,
            flexfactor_listen: loopback,
        }
    }
}

/// Why the sandbox could not start or be configured.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A listener could not bind its address.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A card number that is not one of the sandbox test cards.
    #[error("`{0}` is not a sandbox test card")]
    UnknownCard(String),
    /// The state file could not be read.
    #[error("sandbox state file: {0}")]
    State(std::io::Error),
}

/// A running sandbox. Dropping it stops the listeners; [`SandboxHandle::shutdown`] does so and
/// waits.
pub struct SandboxHandle {
    shared: Arc<Shared>,
    main_addr: SocketAddr,
    control_addr: SocketAddr,
    control_task: Option<JoinHandle<()>>,
    emitter_task: Option<JoinHandle<()>>,
    connect_e: connect_e::Running,
    acquired: acquired::Running,
    flexfactor: flexfactor::Running,
}

impl SandboxHandle {
    /// REST base with a trailing slash, e.g. `http://127.0.0.1:41234/api/` — join endpoint paths
    /// such as `transactions/init` to it.
    pub fn api_base(&self) -> String {
        format!("http://{}/api/", self.main_addr)
    }

    /// Socket.IO server URL, e.g. `http://127.0.0.1:41234`; connect with `?id=id_<deviceId>`.
    pub fn socket_url(&self) -> String {
        format!("http://{}", self.main_addr)
    }

    /// Control API base, e.g. `http://127.0.0.1:41235/_sandbox`.
    pub fn control_url(&self) -> String {
        format!("http://{}/_sandbox", self.control_addr)
    }

    /// True when the sandbox knows device `id` (e.g. one created before a restart on the same
    /// state file).
    pub fn knows_device(&self, id: &str) -> bool {
        self.shared.state().devices.contains_key(id)
    }

    /// The sandbox merchant's API key ([`SANDBOX_API_KEY`]).
    pub fn api_key(&self) -> &str {
        SANDBOX_API_KEY
    }

    /// The bound main address (the real port when 0 was asked for).
    pub fn main_addr(&self) -> SocketAddr {
        self.main_addr
    }

    /// The bound control address.
    pub fn control_addr(&self) -> SocketAddr {
        self.control_addr
    }

    /// The base URL used in links the sandbox hands out.
    pub fn public_url(&self) -> &str {
        &self.shared.public_url
    }

    /// The Connect-E simulator's REST host, e.g. `http://127.0.0.1:41236` (paths start with
    /// `/v1`): the `base_url` of a Connect-E client.
    pub fn connect_e_url(&self) -> String {
        format!("http://{}", self.connect_e.addr)
    }

    /// The Connect-E web host (`<url>/assets/js/client.js`); the same port as the REST host.
    pub fn connect_e_web_url(&self) -> String {
        self.connect_e_url()
    }

    /// The Connect-E control API base, e.g. `http://127.0.0.1:41235/_sandbox/connect-e`.
    pub fn connect_e_control_url(&self) -> String {
        format!("{}/connect-e", self.control_url())
    }

    /// The Connect-E sandbox merchant's API key ([`CONNECT_E_API_KEY`]).
    pub fn connect_e_api_key(&self) -> &str {
        CONNECT_E_API_KEY
    }

    /// The URL registered for the Connect-E sandbox merchant ([`CONNECT_E_MERCHANT_URL`]).
    pub fn connect_e_merchant_url(&self) -> &str {
        CONNECT_E_MERCHANT_URL
    }

    /// The Acquired API base of §1, e.g. `http://127.0.0.1:41237/v1`: the `base_url` of an
    /// Acquired client.
    pub fn acquired_url(&self) -> String {
        format!("http://{}/v1", self.acquired.api_addr)
    }

    /// The Acquired Components script, e.g. `http://127.0.0.1:41238/v1/acquired.js` (its own
    /// host): the `components_url` of an Acquired client.
    pub fn acquired_components_url(&self) -> String {
        format!("http://{}/v1/acquired.js", self.acquired.components_addr)
    }

    /// The Acquired control API base, e.g. `http://127.0.0.1:41235/_sandbox/acquired`.
    pub fn acquired_control_url(&self) -> String {
        format!("{}/acquired", self.control_url())
    }

    /// The Acquired sandbox merchant's `app_id` ([`ACQUIRED_APP_ID`]).
    pub fn acquired_app_id(&self) -> &str {
        ACQUIRED_APP_ID
    }

    /// The Acquired sandbox merchant's `app_key` ([`ACQUIRED_APP_KEY`]).
    pub fn acquired_app_key(&self) -> &str {
        ACQUIRED_APP_KEY
    }

    /// The FlexFactor API base with its trailing `/v1/`, e.g. `http://127.0.0.1:41237/v1/`: the
    /// `base_url` of a FlexFactor client (the spec's §1 form).
    pub fn flexfactor_url(&self) -> String {
        format!("http://{}/v1/", self.flexfactor.addr)
    }

    /// The FlexFactor control API base, e.g. `http://127.0.0.1:41235/_sandbox/flexfactor`.
    pub fn flexfactor_control_url(&self) -> String {
        format!("{}/flexfactor", self.control_url())
    }

    /// Pays every transaction created from now on after `approve_after_ms`, with `card` (a test
    /// card number) — what the control API's `autopilot` does. `None` turns it off.
    pub fn set_autopilot(&self, autopilot: Option<(u64, &str)>) -> Result<(), SandboxError> {
        let pilot = match autopilot {
            None => None,
            Some((ms, number)) => {
                let card = model::find_card(number)
                    .ok_or_else(|| SandboxError::UnknownCard(number.to_string()))?;
                Some(Autopilot { approve_after_ms: ms, card })
            }
        };
        self.shared.set_autopilot(pilot);
        Ok(())
    }

    /// Stops both listeners, cuts every connection, ends background work and waits for it.
    pub async fn shutdown(mut self) {
        self.shared.persist();
        self.shared.shutdown.cancel();
        if let Some(server) = self.shared.main.lock().await.as_mut() {
            server.go_offline().await;
        }
        self.shared.new_epoch();
        self.connect_e.ce.stop().await;
        self.acquired.aq.stop().await;
        self.flexfactor.ff.stop().await;
        self.shared.io.close().await;
        for task in [self.control_task.take(), self.emitter_task.take()].into_iter().flatten() {
            let _ = task.await;
        }
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
        self.shared.registry.shutdown(false);
    }
}

/// Logs requests by method and path only: query strings (Socket.IO's `?id=id_<deviceId>`) and
/// bodies carry credentials and card data, and the one path that carries a device ID is redacted.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let path = match path.find("/cancelByDeviceId/") {
        Some(i) => format!("{}/cancelByDeviceId/***", &path[..i]),
        None => path,
    };
    let response = next.run(request).await;
    tracing::debug!(%method, %path, status = response.status().as_u16(), "request");
    response
}

/// Saves the world (when a state file is configured) after each request, before its answer
/// leaves: a client that saw an answer finds the same world after a restart.
async fn persist_after(
    axum::extract::State(sh): axum::extract::State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    sh.persist();
    response
}

/// The device ID in a Socket.IO handshake query (`id=id_<deviceId>`).
fn socket_device(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "id")
        .and_then(|(_, v)| v.strip_prefix("id_"))
        .map(str::to_string)
}

/// Starts the sandbox: binds both listeners and returns once they accept connections.
pub async fn start(config: SandboxConfig) -> Result<SandboxHandle, SandboxError> {
    let main_listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| SandboxError::Bind { addr: config.listen, source })?;
    let main_addr = main_listener
        .local_addr()
        .map_err(|source| SandboxError::Bind { addr: config.listen, source })?;
    let control_listener = TcpListener::bind(config.control_listen)
        .await
        .map_err(|source| SandboxError::Bind { addr: config.control_listen, source })?;
    let control_addr = control_listener
        .local_addr()
        .map_err(|source| SandboxError::Bind { addr: config.control_listen, source })?;
    let connect_e_listener = TcpListener::bind(config.connect_e_listen)
        .await
        .map_err(|source| SandboxError::Bind { addr: config.connect_e_listen, source })?;
    let acquired_listener = TcpListener::bind(config.acquired_listen)
        .await
        .map_err(|source| SandboxError::Bind { addr: config.acquired_listen, source })?;
    let acquired_components_listener = TcpListener::bind(config.acquired_components_listen)
        .await
        .map_err(|source| SandboxError::Bind { addr: config.acquired_components_listen, source })?;
    let flexfactor_listener = TcpListener::bind(config.flexfactor_listen)
        .await
        .map_err(|source| SandboxError::Bind { addr: config.flexfactor_listen, source })?;
    let public_url = config
        .public_url
        .map(|u| u.trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("http://{main_addr}"));

    let (sio_layer, io) = SocketIo::builder().build_layer();
    let (emit_tx, mut emit_rx) = mpsc::unbounded_channel::<Emit>();
    let registry = Arc::new(ConnRegistry::default());
    let mut state = State::new(public_url.clone(), emit_tx);
    if let Some(path) = &config.state_file {
        if persist::load(path, &mut state).map_err(SandboxError::State)? {
            tracing::info!(path = %path.display(), transactions = state.txns.len(), "sandbox state loaded");
        }
    }
    // Transactions still open after a restart get their timeOut timers back.
    let reopened: Vec<(String, time::OffsetDateTime)> =
        state.txns.values().filter(|t| t.status.is_open()).map(|t| (t.number.clone(), t.timeout_date)).collect();
    let shared = Arc::new(Shared::new(state, io.clone(), registry.clone(), public_url, config.state_file.clone()));
    for (number, at) in reopened {
        let left = (at - time::OffsetDateTime::now_utc()).max(time::Duration::ZERO);
        let left = std::time::Duration::try_from(left).unwrap_or_default();
        tasks::watch_timeout(&shared, number, tokio::time::Instant::now() + left);
    }
    if config.state_file.is_some() {
        // Changes made by the sandbox's own timers (timeouts, autopilot) are saved on a short tick;
        // changes made by requests are saved as each request ends (the `persist_after` layer).
        let sh = shared.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_millis(250)) => sh.persist(),
                    _ = sh.shutdown.cancelled() => break,
                }
            }
        });
    }

    // Socket.IO: `?id=id_<deviceId>` joins the device's room; anything else is disconnected.
    let on_connect = shared.clone();
    io.ns("/", move |socket: SocketRef| {
        let sh = on_connect.clone();
        async move {
            let device = socket_device(socket.req_parts().uri.query());
            match device.filter(|d| sh.state().devices.contains_key(d)) {
                Some(d) => {
                    tracing::debug!("socket connected for a known device");
                    socket.join(d);
                }
                None => {
                    tracing::debug!("socket with an unknown device id disconnected");
                    let _ = socket.disconnect();
                }
            }
        }
    });

    // Emissions leave in the order the state queued them.
    let emit_io = io.clone();
    let stop = shared.shutdown.clone();
    let emitter_task = tokio::spawn(async move {
        loop {
            tokio::select! {
                next = emit_rx.recv() => match next {
                    Some(e) => {
                        if let Err(err) = emit_io.to(e.device).emit("message", &e.payload).await {
                            tracing::debug!("socket emit failed: {err}");
                        }
                    }
                    None => break,
                },
                _ = stop.cancelled() => break,
            }
        }
    });

    let main_router = Router::new()
        .nest("/api", api::router(shared.clone()))
        .merge(pay::router(shared.clone()))
        .layer(sio_layer)
        .layer(axum::middleware::from_fn_with_state(shared.clone(), persist_after))
        .layer(axum::middleware::from_fn(log_request))
        .layer(axum::middleware::from_fn_with_state(registry.clone(), server::mark_socketio));
    let main = MainServer::start(main_listener, main_router, registry, shared.shutdown.clone())
        .map_err(|source| SandboxError::Bind { addr: config.listen, source })?;
    *shared.main.lock().await = Some(main);

    let connect_e = connect_e::start(connect_e_listener, shared.shutdown.clone())
        .map_err(|source| SandboxError::Bind { addr: config.connect_e_listen, source })?;
    let acquired = acquired::start(acquired_listener, acquired_components_listener, shared.shutdown.clone())
        .map_err(|source| SandboxError::Bind { addr: config.acquired_listen, source })?;
    let flexfactor = flexfactor::start(flexfactor_listener, shared.shutdown.clone())
        .map_err(|source| SandboxError::Bind { addr: config.flexfactor_listen, source })?;
    let control_router = control::router(shared.clone())
        .layer(axum::middleware::from_fn_with_state(shared.clone(), persist_after))
        .merge(connect_e::control_router(connect_e.ce.clone()))
        .merge(acquired::control_router(acquired.aq.clone()))
        .merge(flexfactor::control_router(flexfactor.ff.clone()));
    let stop = shared.shutdown.clone();
    let control_task = tokio::spawn(async move {
        let serve = axum::serve(control_listener, control_router)
            .with_graceful_shutdown(async move { stop.cancelled().await });
        if let Err(e) = serve.await {
            tracing::warn!("control listener stopped: {e}");
        }
    });

    tracing::info!(api = %format!("http://{main_addr}/api/"), control = %format!("http://{control_addr}/_sandbox"), "sandbox listening");
    Ok(SandboxHandle {
        shared,
        main_addr,
        control_addr,
        control_task: Some(control_task),
        emitter_task: Some(emitter_task),
        connect_e,
        acquired,
        flexfactor,
    })
}

#[cfg(test)]
mod tests {
    use super::socket_device;

    #[test]
    fn socket_query_id() {
        assert_eq!(socket_device(Some("EIO=4&transport=websocket&id=id_abc")), Some("abc".into()));
        assert_eq!(socket_device(Some("id=abc")), None);
        assert_eq!(socket_device(None), None);
    }
}
