//! Shared set-up of the sandbox integration tests: a real sandbox on ephemeral loopback ports,
//! a device created through its control API, and a client with that device's credentials.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::time::Duration;
use till_core::Status;
use till_sandbox::{SandboxConfig, SandboxHandle};
use till_sensepass::socket::{spawn_listener_with, ListenerOptions, SocketEvent};
use till_sensepass::{Client, ClientConfig, Credentials, Transaction};
use tokio::sync::mpsc::Receiver;
use tokio_util::sync::CancellationToken;

pub struct Env {
    pub sandbox: SandboxHandle,
    pub control: reqwest::Client,
    pub device: String,
    pub client: Client,
    pub shutdown: CancellationToken,
    /// Stops the listeners when the test ends.
    pub _guard: tokio_util::sync::DropGuard,
}

pub async fn env() -> Env {
    let sandbox = till_sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox starts");
    let control = reqwest::Client::new();
    let device: Value = control
        .post(format!("{}/devices", sandbox.control_url()))
        .json(&json!({"posName": "Till 1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let device = device["deviceAliasKey"]
        .as_str()
        .expect("deviceAliasKey")
        .to_string();
    let client = Client::new(
        config(&sandbox, Duration::from_secs(10)),
        Credentials::Device(device.clone()),
    )
    .unwrap();
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    Env {
        sandbox,
        control,
        device,
        client,
        shutdown,
        _guard,
    }
}

pub fn config(sandbox: &SandboxHandle, timeout: Duration) -> ClientConfig {
    ClientConfig {
        base_url: sandbox.api_base(),
        timeout,
        connect_timeout: Duration::from_secs(2),
    }
}

impl Env {
    /// A client for the same device with another call time limit.
    pub fn client_with_timeout(&self, timeout: Duration) -> Client {
        Client::new(
            config(&self.sandbox, timeout),
            Credentials::Device(self.device.clone()),
        )
        .unwrap()
    }

    /// A client with the sandbox merchant's API key.
    pub fn api_key_client(&self) -> Client {
        self.client.with_credentials(Credentials::ApiKey {
            api_key: self.sandbox.api_key().to_string(),
            branch_number: None,
        })
    }

    /// Calls the control API; returns status and JSON.
    pub async fn ctl_raw(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .control
            .request(method, format!("{}{}", self.sandbox.control_url(), path))
            .json(&body)
            .send()
            .await
            .expect("control API answers");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Calls the control API and insists on success.
    pub async fn ctl(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let (status, v) = self.ctl_raw(method, path, body).await;
        assert!((200..300).contains(&status), "control {path}: {status} {v}");
        v
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.ctl(reqwest::Method::POST, path, body).await
    }

    /// The sandbox's ground truth for one transaction.
    pub async fn truth(&self, number: &str) -> Value {
        let state = self.ctl(reqwest::Method::GET, "/state", json!({})).await;
        state["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["TransactionNumber"] == number)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Number of calls of one kind the sandbox counted.
    pub async fn calls(&self, kind: &str) -> i64 {
        let state = self.ctl(reqwest::Method::GET, "/state", json!({})).await;
        state["calls"][kind].as_i64().unwrap_or(0)
    }

    /// A Socket.IO listener for the device with quick reconnects.
    pub fn listen(&self) -> Receiver<SocketEvent> {
        spawn_listener_with(
            self.sandbox.socket_url(),
            self.device.clone(),
            self.shutdown.clone(),
            ListenerOptions {
                min_delay: Duration::from_millis(50),
                max_delay: Duration::from_millis(500),
                connect_timeout: Duration::from_secs(3),
                channel_capacity: 256,
            },
        )
    }
}

pub async fn next_event(rx: &mut Receiver<SocketEvent>) -> SocketEvent {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a socket event within 10 s")
        .expect("listener running")
}

pub async fn expect_connected(rx: &mut Receiver<SocketEvent>) {
    match next_event(rx).await {
        SocketEvent::Connected => {}
        other => panic!("expected Connected, got {other:?}"),
    }
}

/// Skips messages until the listener reports a lost connection; returns the reason.
pub async fn expect_disconnected(rx: &mut Receiver<SocketEvent>) -> String {
    loop {
        match next_event(rx).await {
            SocketEvent::Disconnected { reason } => return reason,
            SocketEvent::Message(_) => {}
            SocketEvent::Connected => panic!("expected Disconnected, got Connected"),
        }
    }
}

/// Reads socket messages until `number` reaches `status`; returns that message. Statuses seen
/// on the way are returned too, in order.
pub async fn wait_status(
    rx: &mut Receiver<SocketEvent>,
    number: &str,
    status: Status,
) -> (Transaction, Vec<Status>) {
    let mut seen = Vec::new();
    loop {
        match next_event(rx).await {
            SocketEvent::Message(t) if t.number().as_str() == number => {
                seen.push(t.status());
                if t.status() == status {
                    return (t, seen);
                }
            }
            SocketEvent::Message(_) => {}
            other => panic!("unexpected {other:?} while waiting for {status:?}"),
        }
    }
}
