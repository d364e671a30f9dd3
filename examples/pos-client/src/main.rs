//! `pos-client --agent http://127.0.0.1:8003 --token <till-agent token>`: a sync sale, a sale
//! recovered after a simulated POS crash, and a partial refund retried with its key. Against
//! `till-agent run --sandbox --autopilot-ms 1000` every payment is paid by the sandbox.

use anyhow::{bail, Context, Result};
use till_pos_client_example::{Outcome, Pos};

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let agent = arg("--agent").unwrap_or_else(|| "http://127.0.0.1:8003".into());
    let token = arg("--token").context("--token <what `till-agent token` prints> is required")?;
    let pos = Pos::new(&agent, &token)?;
    let run = std::process::id();

    // 1. A sync sale.
    let order = format!("demo-{run}-1");
    let number = match pos.sale(&order, 1250, "USD").await? {
        Outcome::Paid { number } => number,
        Outcome::NotPaid { status, reason, .. } => bail!("sale {order} not paid: status {status}, {reason:?}"),
    };
    println!("sale {order}: paid ({number})");

    // 2. The POS starts a sale and crashes; after its restart it recovers the order's outcome.
    let order2 = format!("demo-{run}-2");
    pos.start_sale(&order2, 450, "USD").await?;
    println!("sale {order2}: started; the POS crashes here");
    let recovered = Pos::new(&agent, &token)?.recover(&order2).await?;
    println!("sale {order2}: recovered after the restart: {recovered:?}");

    // 3. A partial refund, sent twice with the same key: refunded once.
    let key = format!("refund-{number}-1");
    let first = pos.refund(&number, Some(250), &key).await?;
    let again = pos.refund(&number, Some(250), &key).await?;
    if first != again {
        bail!("a retried refund must get the same answer: {first} vs {again}");
    }
    println!("refund of 2.50 on {number}: {}", first["result"].as_str().unwrap_or("queued"));
    Ok(())
}
