//! The HTTP server loop of the local API: HTTP/1.1 with a header-read timeout and a cap on open
//! connections, so idle or slow sockets from another local process cannot use up the agent's file
//! descriptors (at a 1024 limit, 1,100 idle sockets used to make health and init time out).
//!
//! Written on hyper directly rather than with `axum::serve`, which has neither knob. Connections
//! beyond [`MAX_CONNECTIONS`] are accepted and closed at once (the kernel's backlog would otherwise
//! hold them); a connection that has not sent a full request head within [`HEADER_READ_TIMEOUT`]
//! (including an idle keep-alive connection) is closed.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Open connections served at once (the UI's event streams included).
pub const MAX_CONNECTIONS: usize = 512;
/// Time allowed to send a request head; also how long an idle keep-alive connection stays open.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long shutdown waits for open requests.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown`, then lets open requests finish (up to [`DRAIN`]).
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, _) = match accepted {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: back off a little instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!("connection limit reached: closing a new connection");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
            let conn = builder.serve_connection(TokioIo::new(stream), service).with_upgrades();
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(DRAIN, conn).await;
                }
            }
        });
    }
    // Wait for open connections (all permits back), bounded.
    let _ = tokio::time::timeout(DRAIN, slots.acquire_many(MAX_CONNECTIONS as u32)).await;
}

/// Raises the soft limit of open files to the hard limit (at most 65,536), so the connection cap,
/// the journal and the outbound connections fit comfortably. Unix only; a failure is logged.
#[cfg(unix)]
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    #[allow(unsafe_code)]
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    if !ok {
        return;
    }
    let want = lim.rlim_max.min(65_536);
    if lim.rlim_cur >= want {
        return;
    }
    let new = libc::rlimit { rlim_cur: want, rlim_max: lim.rlim_max };
    #[allow(unsafe_code)]
    let set = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0;
    if set {
        tracing::debug!(from = lim.rlim_cur, to = want, "raised the open-file limit");
    } else {
        tracing::warn!("could not raise the open-file limit");
    }
}

/// No limit to raise here.
#[cfg(not(unix))]
pub fn raise_fd_limit() {}
