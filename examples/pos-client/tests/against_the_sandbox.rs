//! The example, run against the real `till-agent run --sandbox --autopilot-ms …` (the sandbox
//! pays every payment): a sync sale, a crash recovery and a refund retried with its key.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use till_pos_client_example::{Outcome, Pos};

/// `target/debug/<name>`, built by `cargo build --workspace` (scripts/test.sh does).
fn bin(name: &str) -> Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().and_then(|p| p.parent()).context("target dir")?;
    let path = dir.join(name);
    if !path.exists() {
        bail!("{} not found: run `cargo build --workspace` first", path.display());
    }
    Ok(path)
}

#[tokio::test]
async fn sale_recovery_and_refund_against_the_sandbox() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let common = ["--data-dir".to_string(), dir.path().display().to_string(), "--config".into(), dir.path().join("config.toml").display().to_string()];
    let token = String::from_utf8(Command::new(bin("till-agent")?).arg("token").args(&common).output()?.stdout)?.trim().to_string();
    let mut agent = Command::new(bin("till-agent")?)
        .args(["run", "--sandbox", "--autopilot-ms", "300", "--listen", "127.0.0.1:0"])
        .args(&common)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdout = BufReader::new(agent.stdout.take().context("stdout")?);
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    let url = line.trim().strip_prefix("till-agent listening on ").context("agent address")?.to_string();
    let result = async {
        // Ready when health says ok.
        let http = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(r) = http.get(format!("{url}/api/agent/health")).send().await {
                if r.json::<serde_json::Value>().await.map(|v| v["status"] == "ok").unwrap_or(false) {
                    break;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let pos = Pos::new(&url, &token)?;
        let Outcome::Paid { number } = pos.sale("EX-1", 1250, "USD").await? else { bail!("not paid") };
        pos.start_sale("EX-2", 450, "USD").await?;
        let after_crash = Pos::new(&url, &token)?.recover("EX-2").await?;
        assert!(matches!(after_crash, Outcome::Paid { .. }), "{after_crash:?}");
        let first = pos.refund(&number, Some(250), "ex-refund-1").await?;
        let again = pos.refund(&number, Some(250), "ex-refund-1").await?;
        assert_eq!(first["result"], "Approved", "{first}");
        assert_eq!(first, again, "the retry gets the first answer");
        let detail: serde_json::Value = http.get(format!("{url}/api/agent/transactions/{number}")).send().await?.json().await?;
        assert_eq!(detail["refundedMinor"], 250, "refunded once: {detail}");
        anyhow::Ok(())
    }
    .await;
    let _ = agent.kill();
    let _ = agent.wait();
    result
}
