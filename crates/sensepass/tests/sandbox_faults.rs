//! Each sandbox fault, seen through the client's error classification and the listener's
//! connection reports — the facts the agent's exactly-once logic is built on.

mod common;

use common::{env, expect_connected, expect_disconnected, wait_status};
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};
use till_core::{Currency, Minor, Status};
use till_sensepass::models::RefundRequest;
use till_sensepass::socket::SocketEvent;
use till_sensepass::{Error, InitRequest};

fn payment(order: &str) -> InitRequest {
    let mut req = InitRequest::new(Minor(500), Currency::Usd);
    req.pos_data = Some(json!({"orderId": order}));
    req
}

#[tokio::test]
async fn offline_means_not_sent_and_the_socket_reports_it() {
    let env = env().await;
    let mut rx = env.listen();
    expect_connected(&mut rx).await;
    // A pending transaction from before the outage.
    let t = env.client.init(&payment("O-1")).await.unwrap();

    env.post("/faults", json!({"offline": true})).await;
    let started = Instant::now();
    let reason = expect_disconnected(&mut rx).await;
    assert!(!reason.contains(&env.device), "{reason}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "prompt: {:?}",
        started.elapsed()
    );

    let before = env.calls("init").await;
    let err = env.client.init(&payment("O-2")).await.unwrap_err();
    assert!(matches!(err, Error::NotSent(_)), "{err:?}");
    assert!(err.certainly_not_performed());
    assert!(!err.to_string().contains(&env.device));
    assert_eq!(
        env.calls("init").await,
        before,
        "nothing reached the sandbox"
    );
    for result in [
        env.client
            .transaction(t.number().as_str())
            .await
            .map(|_| ()),
        env.client.cancel(t.number().as_str()).await.map(|_| ()),
        env.client
            .refund(&RefundRequest::full(t.number().clone()))
            .await
            .map(|_| ()),
    ] {
        assert!(matches!(result, Err(Error::NotSent(_))), "{result:?}");
    }

    env.post("/faults", json!({"offline": false})).await;
    expect_connected(&mut rx).await;
    // No replay after reconnecting: the agent re-reads what was open.
    assert_eq!(
        env.client
            .transaction(t.number().as_str())
            .await
            .unwrap()
            .status(),
        Status::Initialize
    );
    env.post(&format!("/transactions/{}/approve", t.number()), json!({}))
        .await;
    wait_status(&mut rx, t.number().as_str(), Status::Approved).await;
}

#[tokio::test]
async fn lost_response_means_uncertain_and_the_work_was_done() {
    let env = env().await;
    let quick = env.client_with_timeout(Duration::from_millis(500));

    env.post("/faults", json!({"loseNextResponse": ["init"]}))
        .await;
    let err = quick.init(&payment("L-1")).await.unwrap_err();
    assert!(matches!(err, Error::Uncertain(_)), "{err:?}");
    assert!(!err.certainly_not_performed());
    // It was performed: the sandbox holds exactly one transaction for the order.
    let state = env.ctl(Method::GET, "/state", json!({})).await;
    let created: Vec<_> = state["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["posData"]["orderId"] == "L-1")
        .collect();
    assert_eq!(created.len(), 1);
    // The next call is answered again.
    let n = created[0]["TransactionNumber"]
        .as_str()
        .unwrap()
        .to_string();
    env.post(&format!("/transactions/{n}/approve"), json!({}))
        .await;

    env.post("/faults", json!({"loseNextResponse": ["refund"]}))
        .await;
    let err = quick
        .refund(&RefundRequest::partial(n.as_str(), Minor(100)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Uncertain(_)), "{err:?}");
    assert_eq!(
        env.truth(&n).await["_sandbox"]["refundedMinor"],
        100,
        "the refund happened"
    );

    env.post("/faults", json!({"loseNextResponse": ["commit"]}))
        .await;
    let link = env
        .client
        .transaction(&n)
        .await
        .unwrap()
        .payment_commit()
        .unwrap()
        .commit_link
        .unwrap();
    assert!(matches!(
        quick.commit_payment(&link).await,
        Err(Error::Uncertain(_))
    ));
    assert_eq!(env.truth(&n).await["_sandbox"]["commitCount"], 1);

    let pending = env.client.init(&payment("L-2")).await.unwrap();
    env.post("/faults", json!({"loseNextResponse": ["cancel"]}))
        .await;
    assert!(matches!(
        quick.cancel(pending.number().as_str()).await,
        Err(Error::Uncertain(_))
    ));
    assert_eq!(
        env.client
            .transaction(pending.number().as_str())
            .await
            .unwrap()
            .status(),
        Status::Cancelled
    );
}

#[tokio::test]
async fn injected_failures_are_http_errors() {
    let env = env().await;
    env.post("/faults", json!({"failNext": {"count": 2, "status": 503}}))
        .await;
    for _ in 0..2 {
        match env.client.init(&payment("F-1")).await {
            Err(Error::Http { status: 503, body }) => assert_eq!(body["status"], 503),
            other => panic!("expected 503, got {other:?}"),
        }
    }
    let t = env.client.init(&payment("F-1")).await.unwrap();
    assert_eq!(t.status(), Status::Initialize);
    env.post("/faults", json!({"failNext": {"count": 1, "status": 500}}))
        .await;
    let err = env
        .client
        .transaction(t.number().as_str())
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), Some(500));
    assert!(!err.is_consumer_activity());
}

#[tokio::test]
async fn latency_within_and_beyond_the_time_limit() {
    let env = env().await;
    env.post("/faults", json!({"latencyMs": 300})).await;
    let started = Instant::now();
    let t = env.client.init(&payment("S-1")).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));

    let impatient = env.client_with_timeout(Duration::from_millis(100));
    let err = impatient
        .transaction(t.number().as_str())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Uncertain(ref m) if m.contains("timed out")),
        "{err:?}"
    );

    env.ctl(Method::DELETE, "/faults", json!({})).await;
    assert!(impatient.transaction(t.number().as_str()).await.is_ok());
}

#[tokio::test]
async fn dropped_sockets_reconnect_and_events_flow_again() {
    let env = env().await;
    let mut rx = env.listen();
    expect_connected(&mut rx).await;

    env.post("/faults", json!({"dropSockets": true})).await;
    let started = Instant::now();
    expect_disconnected(&mut rx).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    expect_connected(&mut rx).await;

    // REST was untouched, and new events arrive on the new connection.
    let t = env.client.init(&payment("D-1")).await.unwrap();
    env.post(&format!("/transactions/{}/tap", t.number()), json!({}))
        .await;
    wait_status(&mut rx, t.number().as_str(), Status::TapDetected).await;
}

#[tokio::test]
async fn unknown_device_socket_is_refused_and_keeps_retrying_quietly() {
    let env = env().await;
    let mut rx = till_sensepass::socket::spawn_listener_with(
        env.sandbox.socket_url(),
        "not-a-device".into(),
        env.shutdown.clone(),
        till_sensepass::socket::ListenerOptions {
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(200),
            ..Default::default()
        },
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let mut disconnects = 0;
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        match ev {
            SocketEvent::Disconnected { .. } => disconnects += 1,
            SocketEvent::Connected => {}
            SocketEvent::Message(t) => panic!("no messages for an unknown device: {t:?}"),
        }
    }
    assert!(disconnects >= 1);
}

#[tokio::test]
async fn sandbox_shutdown_is_seen_by_the_listener() {
    let env = env().await;
    let mut rx = env.listen();
    expect_connected(&mut rx).await;
    let common::Env {
        sandbox, _guard, ..
    } = env;
    let started = Instant::now();
    sandbox.shutdown().await;
    expect_disconnected(&mut rx).await;
    assert!(started.elapsed() < Duration::from_secs(3));
}
