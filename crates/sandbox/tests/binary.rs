//! The `till-sandbox` binary: prints its URLs and key, serves, pays with the autopilot, stops on
//! a signal.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test]
async fn binary_prints_urls_serves_and_stops() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_till-sandbox"))
        .args(["--listen", "127.0.0.1:0", "--autopilot-ms", "50"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut values = std::collections::HashMap::new();
    for _ in 0..4 {
        let line = lines.next().unwrap().unwrap();
        let (k, v) = line.split_once('=').unwrap();
        values.insert(k.to_string(), v.to_string());
    }
    let api = values["api_base"].clone();
    let control = values["control_url"].clone();
    assert!(api.starts_with("http://127.0.0.1:") && api.ends_with("/api/"), "{api}");
    assert!(control.ends_with("/_sandbox"), "{control}");
    assert!(values["socket_url"].starts_with("http://127.0.0.1:"));
    assert_eq!(values["api_key"], "sandbox-api-key");

    let http = reqwest::Client::new();
    let device: Value = http
        .post(format!("{api}devices/create"))
        .json(&json!({"apiKey": "sandbox-api-key", "posName": "Bin"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = device["deviceAliasKey"].as_str().unwrap();
    let created: Value = http
        .post(format!("{api}transactions/init"))
        .json(&json!({"deviceId": id, "amount": 100, "currency": "USD"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let n = created["TransactionNumber"].as_str().unwrap().to_string();
    let mut approved = false;
    for _ in 0..100 {
        let state: Value = http.get(format!("{control}/state")).send().await.unwrap().json().await.unwrap();
        if state["transactions"][0]["status"] == 5 {
            assert_eq!(state["transactions"][0]["TransactionNumber"], n.as_str());
            approved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(approved, "--autopilot-ms pays new transactions");

    #[cfg(unix)]
    {
        let pid = child.id().to_string();
        let status = Command::new("kill").args(["-INT", &pid]).status().unwrap();
        assert!(status.success());
        let mut exited = None;
        for _ in 0..100 {
            if let Some(s) = child.try_wait().unwrap() {
                exited = Some(s);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let status = exited.expect("stops on Ctrl-C");
        assert!(status.success(), "{status}");
    }
    let _ = child.kill();
    let _ = child.wait();
}
