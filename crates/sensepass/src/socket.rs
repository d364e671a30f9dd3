//! The Socket.IO listener: SensePass's real-time `message` events for one device (spec §6.1).
//!
//! SensePass pushes the full Transaction entity on every status change to clients connected at
//! `<socket server>?id=id_<deviceId>`. [`spawn_listener`] keeps such a connection up for as long
//! as the agent runs: it reports [`SocketEvent::Connected`] when the server accepts the
//! Socket.IO connection, yields each `message` as a typed [`Transaction`], reports
//! [`SocketEvent::Disconnected`] as soon as the connection is lost (server disconnect, closed
//! transport, transport error, or Engine.IO ping timeout), and reconnects with exponential
//! back-off and jitter until shut down. Events missed while disconnected are not replayed
//! (docs/DECISIONS.md): on `Connected` after a `Disconnected` the agent re-reads its open
//! transactions.
//!
//! Protocol: Engine.IO v4 / Socket.IO v5, default path `/socket.io/`, namespace `/`. The
//! transport is `rust_engineio` (the Engine.IO layer of `rust_socketio`); the few Socket.IO
//! packet types involved (`CONNECT`, `DISCONNECT`, `EVENT`, `CONNECT_ERROR`) are handled here.
//! Driving the packet stream directly — rather than through `rust_socketio`'s callback client,
//! whose internal reconnect loop ends silently when a transport closes cleanly — is what lets
//! every loss of connection be seen and reported at once.

use crate::models::mask_secret;
use crate::models::Transaction;
use backon::BackoffBuilder;
use futures_util::StreamExt;
use rust_engineio::asynchronous::{Client as EngineClient, ClientBuilder as EngineBuilder};
use rust_engineio::{Packet, PacketId};
use serde_json::Value;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What the listener reports.
#[derive(Debug, Clone, PartialEq)]
pub enum SocketEvent {
    /// The server accepted the Socket.IO connection; events flow from now on.
    Connected,
    /// The connection is lost (or the first attempt failed); reconnection is under way.
    /// `reason` never contains the device ID.
    Disconnected {
        /// Why, for logs and the status screen.
        reason: String,
    },
    /// A `message` event: the transaction's current state.
    Message(Transaction),
}

/// Tuning of the listener; [`ListenerOptions::default`] suits production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerOptions {
    /// First reconnection delay (before jitter).
    pub min_delay: Duration,
    /// Largest reconnection delay (before jitter).
    pub max_delay: Duration,
    /// Time limit of one connection attempt, up to the server's Socket.IO `CONNECT` answer.
    pub connect_timeout: Duration,
    /// Capacity of the event channel.
    pub channel_capacity: usize,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        ListenerOptions {
            min_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(15),
            channel_capacity: 256,
        }
    }
}

/// Starts the listener for `device_id` on the Socket.IO server at `socket_url` (e.g.
/// `https://api.sensepass.com`) with default options. Runs until `shutdown` is cancelled or the
/// receiver is dropped; the channel closes when it stops. Must be called from within a Tokio
/// runtime (it spawns a task). An unusable `socket_url` yields one `Disconnected` and stops.
pub fn spawn_listener(
    socket_url: String,
    device_id: String,
    shutdown: CancellationToken,
) -> mpsc::Receiver<SocketEvent> {
    spawn_listener_with(socket_url, device_id, shutdown, ListenerOptions::default())
}

/// [`spawn_listener`] with explicit options.
pub fn spawn_listener_with(
    socket_url: String,
    device_id: String,
    shutdown: CancellationToken,
    options: ListenerOptions,
) -> mpsc::Receiver<SocketEvent> {
    let (tx, rx) = mpsc::channel(options.channel_capacity.max(1));
    tokio::spawn(async move {
        let listener = Listener {
            tx,
            shutdown,
            options,
            device_id,
        };
        match socket_endpoint(&socket_url, &listener.device_id) {
            Ok(url) => listener.run(url).await,
            Err(reason) => {
                tracing::warn!(%reason, "Socket.IO listener not started");
                let _ = listener.tx.send(SocketEvent::Disconnected { reason }).await;
            }
        }
    });
    rx
}

/// `<socket_url>/socket.io/?id=id_<deviceId>`.
fn socket_endpoint(socket_url: &str, device_id: &str) -> Result<reqwest::Url, String> {
    let mut url =
        reqwest::Url::parse(socket_url.trim()).map_err(|e| format!("invalid socket URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https" | "ws" | "wss") {
        return Err(format!("invalid socket URL scheme `{}`", url.scheme()));
    }
    if url.path() == "/" || url.path().is_empty() {
        url.set_path("/socket.io/");
    }
    url.query_pairs_mut()
        .append_pair("id", &format!("id_{device_id}"));
    Ok(url)
}

/// How one connection ended.
enum End {
    /// Lost; `connected` tells whether the server had accepted it.
    Lost { reason: String, connected: bool },
    /// Shutdown requested or nobody listens any more.
    Stop,
}

struct Listener {
    tx: mpsc::Sender<SocketEvent>,
    shutdown: CancellationToken,
    options: ListenerOptions,
    device_id: String,
}

impl Listener {
    fn backoff(&self) -> impl Iterator<Item = Duration> {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.options.min_delay)
            .with_max_delay(self.options.max_delay)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
    }

    /// Connects, listens, reconnects; forever until stopped.
    async fn run(self, url: reqwest::Url) {
        let mut backoff = self.backoff();
        // The last connection state reported: reports go out only on change (first failure
        // included, so that a listener that never connects is seen as disconnected).
        let mut reported: Option<bool> = None;
        loop {
            match self.session(&url, &mut reported).await {
                End::Stop => break,
                End::Lost { reason, connected } => {
                    let reason = self.scrub(&reason);
                    if reported != Some(false) {
                        tracing::info!(%reason, "Socket.IO disconnected");
                        if !self.emit(SocketEvent::Disconnected { reason }).await {
                            break;
                        }
                        reported = Some(false);
                    } else {
                        tracing::debug!(%reason, "Socket.IO reconnection failed");
                    }
                    if connected {
                        backoff = self.backoff();
                    }
                }
            }
            let delay = backoff.next().unwrap_or(self.options.max_delay);
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = self.tx.closed() => break,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        tracing::debug!("Socket.IO listener stopped");
    }

    /// Sends an event; false when nobody listens any more or shutdown was requested.
    async fn emit(&self, event: SocketEvent) -> bool {
        tokio::select! {
            _ = self.shutdown.cancelled() => false,
            sent = self.tx.send(event) => sent.is_ok(),
        }
    }

    /// Error texts of the transport may quote the URL, which holds the device ID.
    fn scrub(&self, text: &str) -> String {
        if self.device_id.is_empty() {
            return text.to_string();
        }
        text.replace(&self.device_id, &mask_secret(&self.device_id))
    }

    /// One connection, from the Engine.IO handshake to its loss.
    async fn session(&self, url: &reqwest::Url, reported: &mut Option<bool>) -> End {
        let connect = async {
            let client = EngineBuilder::new(url.clone())
                .build_with_fallback()
                .await?;
            client.connect().await?;
            // Socket.IO CONNECT to the default namespace.
            client.emit(Packet::new(PacketId::Message, "0")).await?;
            Ok::<EngineClient, rust_engineio::Error>(client)
        };
        let client = tokio::select! {
            _ = self.shutdown.cancelled() => return End::Stop,
            _ = self.tx.closed() => return End::Stop,
            r = tokio::time::timeout(self.options.connect_timeout, connect) => match r {
                Err(_) => return End::Lost { reason: "connection attempt timed out".into(), connected: false },
                Ok(Err(e)) => return End::Lost { reason: format!("cannot connect: {e}"), connected: false },
                Ok(Ok(c)) => c,
            },
        };
        let mut stream = client.clone();
        let mut connected = false;
        let accept_deadline = tokio::time::sleep(self.options.connect_timeout);
        tokio::pin!(accept_deadline);
        let end = loop {
            let packet = tokio::select! {
                _ = self.shutdown.cancelled() => break End::Stop,
                _ = self.tx.closed() => break End::Stop,
                _ = &mut accept_deadline, if !connected => break End::Lost {
                    reason: "the server did not accept the Socket.IO connection".into(),
                    connected,
                },
                p = stream.next() => p,
            };
            let packet = match packet {
                None => {
                    break End::Lost {
                        reason: "connection closed".into(),
                        connected,
                    }
                }
                Some(Err(e)) => {
                    break End::Lost {
                        reason: format!("transport error: {e}"),
                        connected,
                    }
                }
                Some(Ok(p)) => p,
            };
            match packet.packet_id {
                PacketId::Close => {
                    break End::Lost {
                        reason: "the server closed the connection".into(),
                        connected,
                    }
                }
                PacketId::Message => {}
                _ => continue,
            }
            let Ok(text) = std::str::from_utf8(&packet.data) else {
                continue;
            };
            match parse_packet(text) {
                SioPacket::Connect => {
                    connected = true;
                    if *reported != Some(true) {
                        tracing::info!("Socket.IO connected");
                        if !self.emit(SocketEvent::Connected).await {
                            break End::Stop;
                        }
                        *reported = Some(true);
                    }
                }
                SioPacket::Disconnect => {
                    break End::Lost {
                        reason: "the server disconnected the socket".into(),
                        connected,
                    }
                }
                SioPacket::ConnectError(message) => {
                    break End::Lost {
                        reason: format!("connection refused by the server: {message}"),
                        connected,
                    }
                }
                SioPacket::Event(event, args) => {
                    if event != "message" {
                        tracing::debug!(%event, "Socket.IO event ignored");
                        continue;
                    }
                    match message_transaction(args) {
                        Ok(t) => {
                            if !self.emit(SocketEvent::Message(t)).await {
                                break End::Stop;
                            }
                        }
                        // The payload is not logged: it may hold consumer data.
                        Err(why) => tracing::warn!(%why, "unreadable Socket.IO message ignored"),
                    }
                }
                SioPacket::Other => {}
            }
        };
        if matches!(end, End::Stop) {
            // Be polite on the way out: Socket.IO DISCONNECT, then Engine.IO close.
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                let _ = client.emit(Packet::new(PacketId::Message, "1")).await;
                let _ = client.disconnect().await;
            })
            .await;
        }
        end
    }
}

/// The Socket.IO packets the listener cares about.
#[derive(Debug, PartialEq)]
enum SioPacket {
    /// `0`: the server accepted the namespace connection.
    Connect,
    /// `1`: the server disconnected the socket.
    Disconnect,
    /// `2`: an event name and its arguments.
    Event(String, Vec<Value>),
    /// `4`: the server refused the connection.
    ConnectError(String),
    /// Anything else (acks, binary packets, other namespaces).
    Other,
}

/// Decodes a Socket.IO v5 text packet: `<type>[<attachments>-][<nsp>,][<ack id>][<json>]`.
fn parse_packet(text: &str) -> SioPacket {
    let mut chars = text.char_indices();
    let Some((_, kind)) = chars.next() else {
        return SioPacket::Other;
    };
    let mut rest = &text[kind.len_utf8()..];
    if matches!(kind, '5' | '6') {
        return SioPacket::Other;
    }
    if rest.starts_with('/') {
        let (nsp, after) = rest.split_once(',').unwrap_or((rest, ""));
        if nsp != "/" {
            return SioPacket::Other;
        }
        rest = after;
    }
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    match kind {
        '0' => SioPacket::Connect,
        '1' => SioPacket::Disconnect,
        '2' => match serde_json::from_str::<Value>(rest) {
            Ok(Value::Array(mut items)) if !items.is_empty() => match items.remove(0) {
                Value::String(name) => SioPacket::Event(name, items),
                first => {
                    items.insert(0, first);
                    SioPacket::Event("message".into(), items)
                }
            },
            _ => SioPacket::Other,
        },
        '4' => {
            let message = match serde_json::from_str::<Value>(rest) {
                Ok(Value::Object(m)) => m
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("no reason given")
                    .to_string(),
                Ok(Value::String(s)) => s,
                _ => "no reason given".to_string(),
            };
            SioPacket::ConnectError(message)
        }
        _ => SioPacket::Other,
    }
}

/// The Transaction of a `message` event: its first argument, an object or a JSON string
/// holding one (spec §6.1 does not say which).
fn message_transaction(mut args: Vec<Value>) -> Result<Transaction, String> {
    if args.is_empty() {
        return Err("message without payload".into());
    }
    let payload = match args.swap_remove(0) {
        Value::String(text) => serde_json::from_str::<Value>(&text)
            .map_err(|e| format!("message payload is a string but not JSON: {e}"))?,
        other => other,
    };
    Transaction::from_json(payload).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn packets() {
        assert_eq!(parse_packet("0{\"sid\":\"x\"}"), SioPacket::Connect);
        assert_eq!(parse_packet("1"), SioPacket::Disconnect);
        assert_eq!(
            parse_packet("2[\"message\",{\"a\":1}]"),
            SioPacket::Event("message".into(), vec![json!({"a": 1})])
        );
        assert_eq!(
            parse_packet("212[\"message\",\"{}\"]"),
            SioPacket::Event("message".into(), vec![json!("{}")])
        );
        assert_eq!(
            parse_packet("2/,[\"other\"]"),
            SioPacket::Event("other".into(), vec![])
        );
        assert_eq!(parse_packet("2/admin,[\"message\",{}]"), SioPacket::Other);
        assert_eq!(
            parse_packet("4{\"message\":\"Unknown id\"}"),
            SioPacket::ConnectError("Unknown id".into())
        );
        assert_eq!(
            parse_packet("51-[\"message\",{\"_placeholder\":true,\"num\":0}]"),
            SioPacket::Other
        );
        assert_eq!(parse_packet(""), SioPacket::Other);
    }

    #[test]
    fn message_payload_object_or_string() {
        let t = message_transaction(vec![json!({"TransactionNumber": "n", "status": 5})]).unwrap();
        assert_eq!(t.status(), till_core::Status::Approved);
        let t =
            message_transaction(vec![json!("{\"TransactionNumber\":\"n\",\"status\":1}")]).unwrap();
        assert_eq!(t.status(), till_core::Status::TapDetected);
        assert!(message_transaction(vec![json!("nope")]).is_err());
        assert!(message_transaction(vec![]).is_err());
    }

    #[test]
    fn endpoint() {
        let u = socket_endpoint("http://127.0.0.1:9", "dev").unwrap();
        assert_eq!(u.as_str(), "http://127.0.0.1:9/socket.io/?id=id_dev");
        let u = socket_endpoint("https://api.sensepass.com/", "dev").unwrap();
        assert_eq!(u.as_str(), "https://api.sensepass.com/socket.io/?id=id_dev");
        assert!(socket_endpoint("ftp://x", "d").is_err());
    }
}
