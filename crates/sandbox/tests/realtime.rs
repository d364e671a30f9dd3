//! Socket.IO `message` events and fault injection, over real sockets: a rust_socketio client,
//! a port that really closes, responses that never come.

mod common;

use common::{listen, next, number, until_status, wait_joined, Sbx};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn every_status_change_reaches_the_device_room() {
    let sbx = Sbx::start().await;
    let (client, mut rx) = listen(&sbx.sandbox.socket_url(), &sbx.device).await;
    let probe = number(&sbx.init(100).await);
    wait_joined(&sbx, &mut rx, &probe).await;

    let e = sbx.init_with(json!({"amount": 321, "posData": {"orderId": "S-1"}})).await;
    let n = number(&e);
    let created = next(&mut rx, 5).await;
    assert_eq!(created, e, "the creation event carries the same entity as the response");
    sbx.pay(&n, "4111111111111111").await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let m = next(&mut rx, 5).await;
        assert_eq!(m["TransactionNumber"], n.as_str());
        assert_eq!(m["posData"]["orderId"], "S-1");
        seen.push(m["status"].as_u64().unwrap());
    }
    assert_eq!(seen, vec![1, 2, 4, 5]);
    // Refund: 12 then 13.
    sbx.api("POST", "transactions/refund", json!({"deviceId": sbx.device, "transactionNumber": n, "isPartial": true, "refundAmount": 1})).await;
    assert_eq!(next(&mut rx, 5).await["status"], 12);
    let partial = next(&mut rx, 5).await;
    assert_eq!(partial["status"], 13);
    assert_eq!(partial["statusName"], "Transaction Partially Refunded");
    // PATCH updates are emitted too.
    let m = number(&sbx.init_with(json!({"readyForPayment": false})).await);
    assert_eq!(next(&mut rx, 5).await["status"], 0);
    sbx.api("PATCH", &format!("transactions/{m}"), json!({"deviceId": sbx.device, "amount": 999})).await;
    let updated = next(&mut rx, 5).await;
    assert_eq!((updated["TransactionNumber"].as_str(), updated["amount"].as_str()), (Some(m.as_str()), Some("9.99")));
    // Cancel and timeout.
    sbx.api("POST", &format!("transactions/cancel/{m}"), sbx.auth()).await;
    assert_eq!(until_status(&mut rx, &m, 9, 5).await["statusName"], "Transaction Cancel");
    sbx.control("/settings", json!({"minTimeOutSeconds": 1})).await;
    let t = number(&sbx.init_with(json!({"timeOut": 1})).await);
    until_status(&mut rx, &t, 8, 5).await;
    client.disconnect().await.unwrap();
}

#[tokio::test]
async fn emit_override_does_not_change_state() {
    let sbx = Sbx::start().await;
    let (_client, mut rx) = listen(&sbx.sandbox.socket_url(), &sbx.device).await;
    let n = number(&sbx.init(100).await);
    wait_joined(&sbx, &mut rx, &n).await;
    sbx.pay(&n, "4111111111111111").await;
    until_status(&mut rx, &n, 5, 5).await;
    let (status, body) = sbx.control(&format!("/transactions/{n}/emit"), json!({"status": 1})).await;
    assert_eq!((status, &body["emitted"]), (200, &json!(true)));
    let stale = next(&mut rx, 5).await;
    assert_eq!(stale["status"], 1);
    assert_eq!(stale["statusName"], "Tap Detected");
    assert_eq!(stale["confirmations"][0]["lastFourDigits"], "1111", "the rest of the entity is current");
    sbx.control(&format!("/transactions/{n}/emit"), json!({})).await;
    assert_eq!(next(&mut rx, 5).await["status"], 5);
    assert_eq!(sbx.truth(&n).await["status"], 5);
}

#[tokio::test]
async fn unknown_device_id_is_disconnected() {
    let sbx = Sbx::start().await;
    let (_client, mut rx) = listen(&sbx.sandbox.socket_url(), "not-a-device").await;
    let first = next(&mut rx, 5).await;
    assert_eq!(first["_event"], "close");
    // Another device's events never reach it.
    sbx.init(100).await;
    assert!(tokio::time::timeout(Duration::from_millis(300), rx.recv()).await.map(|m| m.is_none() || m.unwrap()["_event"] == "close").unwrap_or(true));
}

#[tokio::test]
async fn offline_really_refuses_connections_and_comes_back_on_the_same_port() {
    let sbx = Sbx::start().await;
    let (_client, mut rx) = listen(&sbx.sandbox.socket_url(), &sbx.device).await;
    let n = number(&sbx.init(100).await);
    wait_joined(&sbx, &mut rx, &n).await;
    let addr = sbx.sandbox.main_addr();
    // A request held open by a lost response is cut when the port closes.
    sbx.control("/faults", json!({"loseNextResponse": ["cancel"]})).await;
    let hanging = {
        let http = reqwest::Client::new();
        let url = format!("{}transactions/cancel/{n}", sbx.sandbox.api_base());
        let auth = sbx.auth();
        tokio::spawn(async move { http.post(url).json(&auth).send().await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    let (status, faults) = sbx.control("/faults", json!({"offline": true})).await;
    assert_eq!((status, &faults["offline"]), (200, &json!(true)));
    let err = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    let r = sbx.http.post(format!("{}transactions/init", sbx.sandbox.api_base())).json(&json!({})).send().await;
    assert!(r.unwrap_err().is_connect());
    let cut = tokio::time::timeout(Duration::from_secs(5), hanging).await.expect("hanging request cut").unwrap();
    assert!(cut.is_err(), "the held request saw its connection die");
    // The control API stays up and the world keeps turning.
    assert_eq!(sbx.truth(&n).await["status"], 9);

    let (_, faults) = sbx.control("/faults", json!({"offline": false})).await;
    assert_eq!(faults["offline"], false);
    assert_eq!(sbx.sandbox.main_addr(), addr);
    let (status, _) = sbx.api("GET", &format!("transactions/{n}"), sbx.auth()).await;
    assert_eq!(status, 200);
    // The socket client reconnects by itself and receives events again.
    let m = number(&sbx.init(100).await);
    wait_joined(&sbx, &mut rx, &m).await;
}

#[tokio::test]
async fn fail_next_answers_errors_without_doing_anything() {
    let sbx = Sbx::start().await;
    let (_, faults) = sbx.control("/faults", json!({"failNext": {"count": 2, "status": 503}})).await;
    assert_eq!(faults["failNext"], json!({"count": 2, "status": 503}));
    let body = json!({"deviceId": sbx.device, "amount": 100, "currency": "USD"});
    for _ in 0..2 {
        let (status, reply) = sbx.api("POST", "transactions/init", body.clone()).await;
        assert_eq!(status, 503);
        assert_eq!(reply["status"], 503);
        assert_eq!(reply["error_type"], "fault");
    }
    assert_eq!(sbx.state().await["transactions"], json!([]));
    let (status, _) = sbx.api("POST", "transactions/init", body.clone()).await;
    assert_eq!(status, 200);
    sbx.control("/faults", json!({"failNext": {"count": 1, "status": 500}})).await;
    let (status, _) = sbx.api("POST", "transactions/init", body).await;
    assert_eq!(status, 500);
    assert_eq!(sbx.state().await["transactions"].as_array().unwrap().len(), 1);
    let (_, faults) = sbx.control_delete("/faults").await;
    assert_eq!(faults, json!({"offline": false, "failNext": null, "latencyMs": 0, "loseNextResponse": []}));
}

#[tokio::test]
async fn latency_delays_api_calls() {
    let sbx = Sbx::start().await;
    sbx.control("/faults", json!({"latencyMs": 400})).await;
    let started = Instant::now();
    sbx.init(100).await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    sbx.control("/faults", json!({"latencyMs": 0})).await;
    let started = Instant::now();
    sbx.init(100).await;
    assert!(started.elapsed() < Duration::from_millis(400));
}

#[tokio::test]
async fn lost_responses_are_performed_but_never_answered() {
    let sbx = Sbx::start().await;
    let (_client, mut rx) = listen(&sbx.sandbox.socket_url(), &sbx.device).await;
    let probe = number(&sbx.init(100).await);
    wait_joined(&sbx, &mut rx, &probe).await;
    sbx.control("/faults", json!({"loseNextResponse": ["init", "refund", "commit"]})).await;
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(800)).build().unwrap();
    let api = sbx.sandbox.api_base();

    // init: created and announced, never answered.
    let r = impatient
        .post(format!("{api}transactions/init"))
        .json(&json!({"deviceId": sbx.device, "amount": 500, "currency": "USD", "posData": {"orderId": "LOST"}}))
        .send()
        .await;
    assert!(r.unwrap_err().is_timeout());
    let created = next(&mut rx, 5).await;
    assert_eq!(created["posData"]["orderId"], "LOST");
    let n = number(&created);
    assert_eq!(sbx.truth(&n).await["status"], 0);
    // Only the next call of the kind is lost.
    sbx.init(100).await;
    next(&mut rx, 5).await;

    // refund: performed, not answered.
    sbx.pay(&n, "4111111111111111").await;
    until_status(&mut rx, &n, 5, 5).await;
    let r = impatient
        .post(format!("{api}transactions/refund"))
        .json(&json!({"deviceId": sbx.device, "transactionNumber": n}))
        .send()
        .await;
    assert!(r.unwrap_err().is_timeout());
    assert_eq!(sbx.truth(&n).await["_sandbox"]["refundedMinor"], 500);
    until_status(&mut rx, &n, 11, 5).await;

    // commit: recorded, not answered.
    let m = number(&sbx.init(100).await);
    sbx.pay(&m, "4111111111111111").await;
    let r = impatient.get(format!("{api}transactions/commitPayment/{m}")).send().await;
    assert!(r.unwrap_err().is_timeout());
    assert_eq!(sbx.truth(&m).await["_sandbox"]["commitCount"], 1);
    assert_eq!(sbx.state().await["faults"]["loseNextResponse"], json!([]));
    let r = impatient.get(format!("{api}transactions/commitPayment/{m}")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn drop_sockets_disconnects_clients_which_reconnect() {
    let sbx = Sbx::start().await;
    let (_client, mut rx) = listen(&sbx.sandbox.socket_url(), &sbx.device).await;
    let n = number(&sbx.init(100).await);
    wait_joined(&sbx, &mut rx, &n).await;
    let (status, reply) = sbx.control("/faults", json!({"dropSockets": true})).await;
    assert_eq!(status, 200);
    assert!(reply["droppedSockets"].as_u64().unwrap() >= 1, "{reply}");
    // REST is unaffected.
    let (status, _) = sbx.api("GET", &format!("transactions/{n}"), sbx.auth()).await;
    assert_eq!(status, 200);
    // The client reconnects and receives events again.
    wait_joined(&sbx, &mut rx, &n).await;
    sbx.pay(&n, "4111111111111111").await;
    until_status(&mut rx, &n, 5, 5).await;
}

#[tokio::test]
async fn reset_clears_faults_and_brings_the_port_back() {
    let sbx = Sbx::start().await;
    sbx.control("/faults", json!({"offline": true, "latencyMs": 50, "loseNextResponse": ["init"]})).await;
    let (status, _) = sbx.control("/reset", json!({})).await;
    assert_eq!(status, 200);
    let state = sbx.state().await;
    assert_eq!(state["faults"]["offline"], false);
    assert_eq!(state["faults"]["loseNextResponse"], json!([]));
    let (status, _) = sbx.api("POST", "devices/create", json!({"apiKey": "sandbox-api-key", "posName": "x"})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn shutdown_closes_the_ports() {
    let sbx = Sbx::start().await;
    let main = sbx.sandbox.main_addr();
    let control = sbx.sandbox.control_addr();
    sbx.sandbox.shutdown().await;
    for addr in [main, control] {
        let err = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{addr}");
    }
}
