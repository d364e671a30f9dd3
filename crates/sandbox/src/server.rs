//! The main listener, with a real off switch.
//!
//! Fault injection needs the sandbox to *really* go away: a client that calls SensePass while the
//! network is down gets "connection refused", and a client in the middle of a request or holding a
//! Socket.IO connection sees its TCP connection die. Dropping axum's serve future closes the
//! listening socket, but the connections it already accepted live on in their own tasks (and an
//! upgraded WebSocket lives on even longer). So every accepted connection is registered here with a
//! duplicate of its socket handle, and going offline calls `shutdown(Both)` on each: the peer sees
//! the connection end at once and the server-side tasks read EOF and finish.
//!
//! The same registry knows which connections carry Socket.IO traffic, so `dropSockets` can cut only
//! those (a transport-level drop, which clients treat as a network blip and reconnect after).

use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use axum::serve::{IncomingStream, Listener};
use axum::Router;
use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use std::future::IntoFuture;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// One live connection: a duplicate handle used only to shut the socket down from outside.
struct ConnEntry {
    handle: std::net::TcpStream,
    socketio: bool,
}

/// Every connection the main listener accepted and that is still open.
#[derive(Default)]
pub(crate) struct ConnRegistry {
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, ConnEntry>>,
}

impl ConnRegistry {
    fn register(&self, handle: std::net::TcpStream) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut conns) = self.conns.lock() {
            conns.insert(id, ConnEntry { handle, socketio: false });
        }
        id
    }

    fn forget(&self, id: u64) {
        if let Ok(mut conns) = self.conns.lock() {
            conns.remove(&id);
        }
    }

    /// Marks a connection as carrying Socket.IO (Engine.IO) traffic.
    pub(crate) fn mark_socketio(&self, id: u64) {
        if let Ok(mut conns) = self.conns.lock() {
            if let Some(entry) = conns.get_mut(&id) {
                entry.socketio = true;
            }
        }
    }

    /// Shuts down every open connection (or only the Socket.IO ones). Returns how many.
    pub(crate) fn shutdown(&self, only_socketio: bool) -> usize {
        let Ok(mut conns) = self.conns.lock() else {
            return 0;
        };
        let ids: Vec<u64> =
            conns.iter().filter(|(_, e)| !only_socketio || e.socketio).map(|(id, _)| *id).collect();
        for id in &ids {
            if let Some(entry) = conns.remove(id) {
                // Errors only mean the peer already went away.
                let _ = entry.handle.shutdown(Shutdown::Both);
            }
        }
        ids.len()
    }
}

/// A TCP stream that unregisters itself when dropped.
pub(crate) struct TrackedStream {
    inner: TcpStream,
    id: u64,
    registry: Arc<ConnRegistry>,
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        self.registry.forget(self.id);
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A listener whose accepted streams are registered in a [`ConnRegistry`].
pub(crate) struct TrackedListener {
    inner: TcpListener,
    registry: Arc<ConnRegistry>,
}

impl TrackedListener {
    fn track(&self, stream: TcpStream) -> io::Result<TrackedStream> {
        let std_stream = stream.into_std()?;
        let handle = std_stream.try_clone()?;
        let inner = TcpStream::from_std(std_stream)?;
        let _ = inner.set_nodelay(true);
        let id = self.registry.register(handle);
        Ok(TrackedStream { inner, id, registry: self.registry.clone() })
    }
}

impl Listener for TrackedListener {
    type Io = TrackedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => match self.track(stream) {
                    Ok(tracked) => return (tracked, addr),
                    Err(e) => tracing::debug!("dropping connection from {addr}: {e}"),
                },
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::debug!("accept error: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// Which registered connection a request arrived on (request extension via `ConnectInfo`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnId(pub u64);

impl Connected<IncomingStream<'_, TrackedListener>> for ConnId {
    fn connect_info(stream: IncomingStream<'_, TrackedListener>) -> Self {
        ConnId(stream.io().id)
    }
}

/// Middleware: remembers which connections carry `/socket.io/` requests.
pub(crate) async fn mark_socketio(
    axum::extract::State(registry): axum::extract::State<Arc<ConnRegistry>>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path().starts_with("/socket.io") {
        if let Some(ConnectInfo(ConnId(id))) = request.extensions().get::<ConnectInfo<ConnId>>() {
            registry.mark_socketio(*id);
        }
    }
    next.run(request).await
}

/// The main listener's lifecycle: online (serving) or offline (port closed).
pub(crate) struct MainServer {
    addr: SocketAddr,
    router: Router,
    registry: Arc<ConnRegistry>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl MainServer {
    /// Starts serving on an already bound listener. Its address (with the real port) is
    /// remembered so that going back online re-binds the same port. `stop` ends serving for good.
    pub(crate) fn start(
        listener: TcpListener,
        router: Router,
        registry: Arc<ConnRegistry>,
        stop: CancellationToken,
    ) -> io::Result<MainServer> {
        let addr = listener.local_addr()?;
        let mut server = MainServer { addr, router, registry, stop, task: None };
        server.serve(listener);
        Ok(server)
    }

    fn serve(&mut self, listener: TcpListener) {
        let tracked = TrackedListener { inner: listener, registry: self.registry.clone() };
        let app = self.router.clone().into_make_service_with_connect_info::<ConnId>();
        let stop = self.stop.clone();
        self.task = Some(tokio::spawn(async move {
            tokio::select! {
                result = axum::serve(tracked, app).into_future() => {
                    if let Err(e) = result {
                        tracing::warn!("main listener stopped: {e}");
                    }
                }
                _ = stop.cancelled() => {}
            }
        }));
    }

    /// True while the listener accepts connections.
    pub(crate) fn is_online(&self) -> bool {
        self.task.is_some()
    }

    /// Closes the listening socket and cuts every open connection. Returns once the port is closed.
    pub(crate) async fn go_offline(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        let cut = self.registry.shutdown(false);
        tracing::info!("main listener offline ({cut} connections cut)");
    }

    /// Re-binds the same address and serves again.
    pub(crate) async fn go_online(&mut self) -> io::Result<()> {
        if self.task.is_some() {
            return Ok(());
        }
        // The old socket is closed, but the OS may need a moment; retry briefly.
        let mut last_err = None;
        for _ in 0..50 {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => {
                    self.serve(listener);
                    tracing::info!("main listener online again on {}", self.addr);
                    return Ok(());
                }
                Err(e) => {
                    last_err = Some(e);
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("bind failed")))
    }
}
