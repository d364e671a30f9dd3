//! Helpers shared by the sandbox's integration tests: a started sandbox, a JSON HTTP client for
//! its REST and control APIs, and a Socket.IO listener that forwards `message` payloads.
#![allow(dead_code)]

use futures_util::FutureExt;
use rust_socketio::asynchronous::{Client as SioClient, ClientBuilder};
use rust_socketio::Payload;
use serde_json::{json, Value};
use std::time::Duration;
use till_sandbox::{start, SandboxConfig, SandboxHandle};
use tokio::sync::mpsc;

/// A sandbox with a device and an HTTP client.
pub struct Sbx {
    pub sandbox: SandboxHandle,
    pub http: reqwest::Client,
    pub device: String,
}

/// Status and JSON body of a response (`Null` when the body is not JSON).
pub type Reply = (u16, Value);

impl Sbx {
    /// Starts a sandbox on ephemeral loopback ports and creates one device through the API.
    pub async fn start() -> Sbx {
        let sandbox = start(SandboxConfig::default()).await.unwrap();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
        let mut sbx = Sbx { sandbox, http, device: String::new() };
        let (status, device) = sbx
            .api("POST", "devices/create", json!({"apiKey": "sandbox-api-key", "posName": "Till 1"}))
            .await;
        assert_eq!(status, 200, "{device}");
        sbx.device = device["deviceAliasKey"].as_str().unwrap().to_string();
        sbx
    }

    /// Calls a REST endpoint (`path` relative to the API base) with a JSON body.
    pub async fn api(&self, method: &str, path: &str, body: Value) -> Reply {
        let url = format!("{}{}", self.sandbox.api_base(), path);
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = self.http.request(method, url).json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Calls a REST endpoint with a raw body.
    pub async fn api_raw(&self, path: &str, body: &'static str) -> Reply {
        let url = format!("{}{}", self.sandbox.api_base(), path);
        let r = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// POSTs to the control API (`/_sandbox` + path).
    pub async fn control(&self, path: &str, body: Value) -> Reply {
        let url = format!("{}{}", self.sandbox.control_url(), path);
        let r = self.http.post(url).json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// DELETE on the control API.
    pub async fn control_delete(&self, path: &str) -> Reply {
        let url = format!("{}{}", self.sandbox.control_url(), path);
        let r = self.http.delete(url).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The control API's ground truth.
    pub async fn state(&self) -> Value {
        let url = format!("{}/state", self.sandbox.control_url());
        self.http.get(url).send().await.unwrap().json().await.unwrap()
    }

    /// The ground truth of one transaction.
    pub async fn truth(&self, number: &str) -> Value {
        let state = self.state().await;
        state["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["TransactionNumber"] == number)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Creates a payment of `cents` USD on the device; returns the entity.
    pub async fn init(&self, cents: i64) -> Value {
        self.init_with(json!({"amount": cents})).await
    }

    /// Creates a transaction with extra fields merged into a minimal device body.
    pub async fn init_with(&self, extra: Value) -> Value {
        let mut body = json!({"deviceId": self.device, "amount": 100, "isCent": true, "currency": "USD"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, entity) = self.api("POST", "transactions/init", body).await;
        assert_eq!(status, 200, "{entity}");
        entity
    }

    /// The device's credentials as a body.
    pub fn auth(&self) -> Value {
        json!({"deviceId": self.device})
    }

    /// Pays a transaction through the control API with a test card.
    pub async fn pay(&self, number: &str, card: &str) -> Value {
        let (status, body) =
            self.control(&format!("/transactions/{number}/pay"), json!({"card": card})).await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

/// Number of a transaction entity.
pub fn number(entity: &Value) -> String {
    entity["TransactionNumber"].as_str().unwrap().to_string()
}

/// A Socket.IO client on a device's room; every `message` payload goes to the receiver, and a
/// server-side disconnect sends `{"_event":"close"}`.
pub async fn listen(url: &str, device: &str) -> (SioClient, mpsc::UnboundedReceiver<Value>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let close_tx = tx.clone();
    let client = ClientBuilder::new(format!("{url}?id=id_{device}"))
        .reconnect_delay(100, 300)
        .on("message", move |payload: Payload, _| {
            let tx = tx.clone();
            async move {
                if let Payload::Text(values) = payload {
                    for v in values {
                        let _ = tx.send(v);
                    }
                }
            }
            .boxed()
        })
        .on("close", move |_, _| {
            let tx = close_tx.clone();
            async move {
                let _ = tx.send(json!({"_event": "close"}));
            }
            .boxed()
        })
        .connect()
        .await
        .unwrap();
    (client, rx)
}

/// Waits for the next payload, failing after `secs`.
pub async fn next(rx: &mut mpsc::UnboundedReceiver<Value>, secs: u64) -> Value {
    tokio::time::timeout(Duration::from_secs(secs), rx.recv())
        .await
        .expect("timed out waiting for a socket message")
        .expect("socket channel closed")
}

/// Waits for a payload of `number` with `status`, skipping others.
pub async fn until_status(
    rx: &mut mpsc::UnboundedReceiver<Value>,
    number: &str,
    status: u64,
    secs: u64,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let v = tokio::time::timeout(left, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no status {status} event for {number}"))
            .expect("socket channel closed");
        if v["TransactionNumber"] == number && v["status"] == status {
            return v;
        }
    }
}

/// Re-emits `number` over Socket.IO until the client receives it: proves the socket joined the
/// device's room (joining happens after the handshake completes).
pub async fn wait_joined(sbx: &Sbx, rx: &mut mpsc::UnboundedReceiver<Value>, number: &str) {
    for _ in 0..100 {
        sbx.control(&format!("/transactions/{number}/emit"), json!({})).await;
        if let Ok(Some(v)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            if v["TransactionNumber"] == number {
                // Drain anything else already queued.
                while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {}
                return;
            }
        }
    }
    panic!("socket never joined the device room");
}
