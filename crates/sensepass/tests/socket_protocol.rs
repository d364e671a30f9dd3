//! The Socket.IO listener against a real Socket.IO server (socketioxide) on loopback, reached
//! through a TCP relay the tests can cut, to see every way a connection can end.

use serde_json::json;
use socketioxide::extract::SocketRef;
use socketioxide::SocketIo;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use till_core::Status;
use till_sensepass::socket::{spawn_listener_with, ListenerOptions, SocketEvent};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::Receiver;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

const DEVICE: &str = "device0123456789abcdef";

/// A Socket.IO server: accepts `id=id_<DEVICE>`, disconnects other ids, and on connect emits a
/// `message` as an object, one as a JSON string, an unrelated event and an unreadable message.
async fn start_server() -> (SocketAddr, SocketIo) {
    let (layer, io) = SocketIo::builder()
        .ping_interval(Duration::from_millis(300))
        .ping_timeout(Duration::from_millis(300))
        .build_layer();
    io.ns("/", async |s: SocketRef| {
        let query = s.req_parts().uri.query().unwrap_or_default().to_string();
        if !query.contains(&format!("id=id_{DEVICE}")) {
            let _ = s.disconnect();
            return;
        }
        let _ = s.emit(
            "message",
            &json!({"TransactionNumber": "t1", "status": 1, "amount": "2", "currency": "USD"}),
        );
        let _ = s.emit(
            "message",
            &json!({"TransactionNumber": "t1", "status": 5}).to_string(),
        );
        let _ = s.emit("other", &json!({"x": 1}));
        let _ = s.emit("message", &json!({"no": "number"}));
        let _ = s.emit("message", &json!({"TransactionNumber": "t2", "status": 9}));
    });
    let app = axum::Router::new().layer(layer);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, io)
}

/// A TCP relay in front of the server that can be cut (all connections dropped, port closed)
/// and restored on the same port.
struct Relay {
    port: u16,
    target: SocketAddr,
    tasks: Arc<Mutex<JoinSet<()>>>,
    freeze: Arc<tokio::sync::Notify>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let relay = Relay {
            port,
            target,
            tasks: Arc::new(Mutex::new(JoinSet::new())),
            freeze: Arc::new(tokio::sync::Notify::new()),
        };
        relay.serve(listener);
        relay
    }

    fn serve(&self, listener: TcpListener) {
        let target = self.target;
        let tasks = self.tasks.clone();
        let inner = self.tasks.clone();
        let freeze = self.freeze.clone();
        tasks.lock().unwrap().spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let freeze = freeze.clone();
                inner.lock().unwrap().spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = freeze.notified() => {
                                // Silence: keep both sockets open, forward nothing.
                                std::future::pending::<()>().await;
                            }
                        }
                    }
                });
            }
        });
    }

    /// Keeps every connection open but forwards nothing more: a server that went silent.
    fn freeze(&self) {
        self.freeze.notify_waiters();
    }

    fn cut(&self) {
        self.tasks.lock().unwrap().abort_all();
    }

    async fn restore(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(listener);
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn fast() -> ListenerOptions {
    ListenerOptions {
        min_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(400),
        connect_timeout: Duration::from_secs(3),
        channel_capacity: 64,
    }
}

async fn next(rx: &mut Receiver<SocketEvent>) -> SocketEvent {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("no socket event within 10 s")
        .expect("listener stopped")
}

/// Reads the connect burst: Connected, then the three readable messages in order.
async fn expect_connect_burst(rx: &mut Receiver<SocketEvent>) {
    assert_eq!(next(rx).await, SocketEvent::Connected);
    let statuses: Vec<(String, Status)> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            match next(rx).await {
                SocketEvent::Message(t) => v.push((t.number().to_string(), t.status())),
                other => panic!("expected a message, got {other:?}"),
            }
        }
        v
    };
    assert_eq!(
        statuses,
        vec![
            ("t1".to_string(), Status::TapDetected),
            ("t1".to_string(), Status::Approved),
            ("t2".to_string(), Status::Cancelled)
        ]
    );
}

#[tokio::test]
async fn messages_as_objects_and_json_strings() {
    let (addr, _io) = start_server().await;
    let shutdown = CancellationToken::new();
    let mut rx = spawn_listener_with(
        format!("http://{addr}"),
        DEVICE.into(),
        shutdown.clone(),
        fast(),
    );
    expect_connect_burst(&mut rx).await;
    shutdown.cancel();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while rx.recv().await.is_some() {}
    })
    .await;
    assert!(closed.is_ok(), "the channel closes after shutdown");
}

#[tokio::test]
async fn server_disconnect_is_reported_and_healed() {
    let (addr, io) = start_server().await;
    let shutdown = CancellationToken::new();
    let mut rx = spawn_listener_with(
        format!("http://{addr}"),
        DEVICE.into(),
        shutdown.clone(),
        fast(),
    );
    expect_connect_burst(&mut rx).await;
    io.disconnect().await.unwrap();
    let started = std::time::Instant::now();
    match next(&mut rx).await {
        SocketEvent::Disconnected { reason } => {
            assert!(reason.contains("disconnected"), "{reason}");
            assert!(!reason.contains(DEVICE));
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "reported promptly"
    );
    expect_connect_burst(&mut rx).await;
    shutdown.cancel();
}

#[tokio::test]
async fn network_loss_is_reported_promptly_and_healed() {
    let (addr, _io) = start_server().await;
    let relay = Relay::start(addr).await;
    let shutdown = CancellationToken::new();
    let mut rx = spawn_listener_with(relay.url(), DEVICE.into(), shutdown.clone(), fast());
    expect_connect_burst(&mut rx).await;

    relay.cut();
    let started = std::time::Instant::now();
    match next(&mut rx).await {
        SocketEvent::Disconnected { reason } => assert!(!reason.contains(DEVICE), "{reason}"),
        other => panic!("expected Disconnected, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "reported promptly: {:?}",
        started.elapsed()
    );
    // While unreachable, failed attempts are not reported again.
    assert!(tokio::time::timeout(Duration::from_millis(800), rx.recv())
        .await
        .is_err());

    relay.restore().await;
    expect_connect_burst(&mut rx).await;
    shutdown.cancel();
}

#[tokio::test]
async fn unreachable_from_the_start_is_reported_then_connects() {
    // Reserve a port, free it, and start the relay there later.
    let (addr, _io) = start_server().await;
    let relay = Relay::start(addr).await;
    relay.cut();
    let shutdown = CancellationToken::new();
    let mut rx = spawn_listener_with(relay.url(), DEVICE.into(), shutdown.clone(), fast());
    assert!(matches!(
        next(&mut rx).await,
        SocketEvent::Disconnected { .. }
    ));
    relay.restore().await;
    expect_connect_burst(&mut rx).await;
    shutdown.cancel();
}

#[tokio::test]
async fn unknown_device_never_stays_connected() {
    let (addr, _io) = start_server().await;
    let shutdown = CancellationToken::new();
    let mut rx = spawn_listener_with(
        format!("http://{addr}"),
        "someone-else".into(),
        shutdown.clone(),
        fast(),
    );
    let mut saw_disconnect = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        match ev {
            SocketEvent::Disconnected { .. } => saw_disconnect = true,
            SocketEvent::Connected => {}
            SocketEvent::Message(t) => panic!("no message for an unknown device: {t:?}"),
        }
    }
    assert!(saw_disconnect);
    shutdown.cancel();
}

#[tokio::test]
async fn dropping_the_receiver_stops_the_listener() {
    let (addr, io) = start_server().await;
    let shutdown = CancellationToken::new();
    let mut rx = spawn_listener_with(
        format!("http://{addr}"),
        DEVICE.into(),
        shutdown.clone(),
        fast(),
    );
    expect_connect_burst(&mut rx).await;
    drop(rx);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !io.sockets().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "socket still open after the receiver dropped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn silent_server_is_detected_by_ping_timeout() {
    let (addr, _io) = start_server().await;
    let relay = Relay::start(addr).await;
    let shutdown = CancellationToken::new();
    let mut rx = spawn_listener_with(relay.url(), DEVICE.into(), shutdown.clone(), fast());
    expect_connect_burst(&mut rx).await;

    relay.freeze();
    let started = std::time::Instant::now();
    match next(&mut rx).await {
        SocketEvent::Disconnected { reason } => {
            assert!(reason.to_lowercase().contains("ping"), "{reason}")
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
    // pingInterval + pingTimeout is 600 ms here.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "detected in {:?}",
        started.elapsed()
    );
    // New connections through the relay still work.
    expect_connect_burst(&mut rx).await;
    shutdown.cancel();
}
