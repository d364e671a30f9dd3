//! FlexFactor decline recovery through the agent, end to end: the real `till-agent` binary
//! configured for the sandbox's Connect-E and FlexFactor simulators, real HTTP on loopback
//! (port 0). A keyed Connect-E payment that Connect-E declines gets a second chance at
//! FlexFactor; the POS sees one payment with one outcome; lost answers, restarts and refunds
//! are checked against the FlexFactor simulator's ground truth.
//!
//! Where a cardholder types a card, the test does what the checkout page does: it reads the
//! page's Connect-E token and FlexFactor tokenization URL, posts the card to FlexFactor's vault
//! and hands the agent only the vault token and the non-sensitive facts, posts the card to
//! Connect-E's web host, then reports. The agent never sees the card number.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::time::Duration;
use till_tests::Env;

/// Declined by Connect-E (not one of its approving test cards); FlexFactor's outcome by card
/// (docs/DECISIONS.md "FlexFactor").
const FF_APPROVE: &str = "4000002760003184";
const FF_CHALLENGE: &str = "4111111111111111";
const FF_DECLINE: &str = "4000300011112220";
const FF_SUBMITTED_COMPLETES: &str = "4000000000000077";

/// Short call timeout, so a lost answer is "unknown" in seconds rather than the default 15.
const CONFIG: &str = "http_timeout_secs = 3\n";

struct Ff {
    env: Env,
    token: String,
}

async fn start() -> Result<Ff> {
    let env = Env::start_flexfactor(&[], Some(CONFIG)).await?;
    let token = env.token()?;
    Ok(Ff { env, token })
}

fn attr(html: &str, name: &str) -> Option<String> {
    let start = html.find(&format!("{name}=\""))? + name.len() + 2;
    Some(html[start..].split('"').next().unwrap_or("").replace("&amp;", "&"))
}

impl Ff {
    async fn new_payment(&self, order: &str, amount: i64, extra: Value) -> Result<Value> {
        let mut body = json!({"provider": "connect-e", "kind": "sale", "amount": amount, "currency": "GBP", "orderId": order, "moto": true});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let (status, p) = self.env.post("/api/agent/payments", body).await?;
        if status != 201 {
            bail!("create: {status} {p}");
        }
        Ok(p)
    }

    /// What the checkout page carries: Connect-E's token and FlexFactor's tokenization URL.
    async fn page(&self, p: &Value) -> Result<(String, Option<String>)> {
        let url = p["checkoutUrl"].as_str().context("checkoutUrl")?;
        let html = self.env.http.get(url).send().await?.text().await?;
        Ok((attr(&html, "data-token").context("data-token")?, attr(&html, "data-vault-url")))
    }

    /// The page's vault step: the card to FlexFactor, the token and facts to the agent.
    async fn vault(&self, p: &Value, vault_url: &str, number: &str) -> Result<(u16, Value)> {
        let card = json!({"payment_method": {"credit_card": {
            "first_name": "A", "last_name": "Customer", "number": number,
            "verification_value": "", "month": "12", "year": "2030"}}});
        let v: Value = self.env.http.post(vault_url).json(&card).send().await?.json().await?;
        let token = v["transaction"]["payment_method"]["token"].as_str().context("vault token")?.to_string();
        let id = p["id"].as_str().unwrap_or("");
        self.env
            .post(
                &format!("/api/agent/payments/{id}/vault"),
                json!({"token": token, "bin": &number[..6], "last4": &number[number.len() - 4..], "expiryMonth": 12, "expiryYear": 2030, "holderName": "A Customer"}),
            )
            .await
    }

    /// Keys `number` as the page does and reports; answers the agent's view after the report.
    async fn keyed(&self, order: &str, amount: i64, number: &str) -> Result<Value> {
        let p = self.new_payment(order, amount, json!({})).await?;
        let (token, vault_url) = self.page(&p).await?;
        let vault_url = vault_url.context("the page vaults the card for recovery")?;
        let (status, v) = self.vault(&p, &vault_url, number).await?;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["recovery"]["cardVaulted"], true, "{v}");
        let url = format!("{}/web/v1/payments/{token}/execute", self.env.sandbox.connect_e_web_url());
        let r: Value = self
            .env
            .http
            .post(url)
            .json(&json!({"cardNumber": number, "expiryDate": "12/30", "cv2": "020", "cardName": "A Customer"}))
            .send()
            .await?
            .json()
            .await?;
        assert_ne!(r["statusCode"], 0, "Connect-E declines this card: {r}");
        let id = p["id"].as_str().unwrap_or("");
        let (status, v) = self.env.post(&format!("/api/agent/payments/{id}/report"), json!({"statusCode": r["statusCode"]})).await?;
        if status != 200 {
            bail!("report: {status} {v}");
        }
        Ok(v)
    }

    async fn get(&self, id: &str) -> Result<Value> {
        let (status, v) = self.env.get(&format!("/api/agent/payments/{id}")).await?;
        assert_eq!(status, 200, "{v}");
        Ok(v)
    }

    async fn eventually(&self, id: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Result<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.get(id).await?;
            if pred(&v) {
                return Ok(v);
            }
            if std::time::Instant::now() > deadline {
                bail!("not reached; last {v}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn refund(&self, id: &str, amount: i64, key: &str) -> Result<(u16, Value)> {
        let r = self
            .env
            .http
            .post(self.env.url(&format!("/api/agent/payments/{id}/refund")))
            .bearer_auth(&self.token)
            .header("Idempotency-Key", key)
            .json(&json!({"amount": amount}))
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    async fn truth(&self) -> Result<Value> {
        Ok(self.env.http.get(format!("{}/state", self.env.sandbox.flexfactor_control_url())).send().await?.json().await?)
    }

    async fn control(&self, path: &str, body: Value) -> Result<()> {
        let r = self.env.http.post(format!("{}/{path}", self.env.sandbox.flexfactor_control_url())).json(&body).send().await?;
        if !r.status().is_success() {
            bail!("control {path}: {} {}", r.status(), r.text().await.unwrap_or_default());
        }
        Ok(())
    }

    /// The simulator's order for our payment id (its idempotency key).
    async fn order_of(&self, id: &str) -> Result<Value> {
        let truth = self.truth().await?;
        truth["orders"]
            .as_array()
            .and_then(|a| a.iter().find(|o| o["idempotencyKey"] == id).cloned())
            .with_context(|| format!("no FlexFactor order for {id}: {truth}"))
    }
}

#[tokio::test]
async fn approved_is_recovered_then_partial_refund_and_over_refund_refused() -> Result<()> {
    let ff = start().await?;
    let (_, health) = ff.env.get("/api/agent/health").await?;
    assert_eq!(health["declineRecovery"], "on", "{health}");
    let p = ff.keyed("FF-APPROVE-1", 1000, FF_APPROVE).await?;
    let id = p["id"].as_str().unwrap().to_string();
    assert_eq!(p["state"], "captured", "{p}");
    assert_eq!(p["capturedAmount"], 1000);
    assert_eq!(p["recoveredBy"], "flexfactor", "{p}");
    assert_eq!(p["recoveredLabel"], "Recovered by FlexFactor");
    assert_eq!(p["recovery"]["state"], "recovered");
    assert!(p["decline"].is_null(), "one outcome: {p}");
    let order = ff.order_of(&id).await?;
    assert_eq!(order["rescued"], 1000, "{order}");
    // A partial refund goes to FlexFactor; the rest is capped.
    let (status, r) = ff.refund(&id, 400, "ff-r1").await?;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["operation"]["state"], "approved", "{r}");
    assert_eq!(r["payment"]["refundedAmount"], 400);
    let (status, over) = ff.refund(&id, 601, "ff-r2").await?;
    assert_eq!(status, 409, "{over}");
    assert!(over["title"].as_str().unwrap_or("").contains("amount"), "names the field: {over}");
    let order = ff.order_of(&id).await?;
    assert_eq!(order["refunded"], 400, "{order}");
    assert_eq!(order["refunds"].as_array().map(Vec::len), Some(1));
    // End of day counts the recovery and its amount.
    let (status, summary) = ff.env.get("/api/agent/summary").await?;
    assert_eq!(status, 200, "{summary}");
    let rec = &summary["recoveries"][0];
    assert_eq!((rec["currency"].as_str(), rec["count"].as_u64(), rec["amountMinor"].as_i64()), (Some("GBP"), Some(1), Some(1000)), "{summary}");
    assert_eq!(rec["byName"], "FlexFactor");
    // A capture or void of a recovered payment is refused.
    let r = ff.env.http.post(ff.env.url(&format!("/api/agent/payments/{id}/void"))).bearer_auth(&ff.token).send().await?;
    assert_eq!(r.status().as_u16(), 409);
    Ok(())
}

#[tokio::test]
async fn declined_and_challenge_stay_declined() -> Result<()> {
    let ff = start().await?;
    for (order, card, status) in [("FF-DECLINE-1", FF_DECLINE, "DECLINED"), ("FF-CHALLENGE-1", FF_CHALLENGE, "CHALLENGE")] {
        let p = ff.keyed(order, 700, card).await?;
        assert_eq!(p["state"], "declined", "{p}");
        assert!(p["recoveredBy"].is_null(), "{p}");
        assert_eq!(p["recovery"]["state"], "not_recovered", "{p}");
        assert_eq!(p["recovery"]["providerStatus"], status, "{p}");
        assert!(!p["decline"].is_null(), "the tender's decline stands: {p}");
        let order = ff.order_of(p["id"].as_str().unwrap()).await?;
        assert_eq!(order["rescued"], 0, "{order}");
    }
    // Opted out: no recovery, the decline stands at once, FlexFactor never asked.
    let p = ff.new_payment("FF-OPTOUT-1", 500, json!({"declineRecovery": false})).await?;
    let (_, vault_url) = ff.page(&p).await?;
    assert!(vault_url.is_none(), "an opted-out payment's page does not vault");
    let (status, bad) = ff.env.post("/api/agent/payments", json!({"provider": "connect-e", "amount": 5, "currency": "GBP", "orderId": "FF-BAD", "declineRecovery": "no"})).await?;
    assert_eq!(status, 400, "{bad}");
    assert!(bad.to_string().contains("declineRecovery"), "{bad}");
    Ok(())
}

#[tokio::test]
async fn a_card_number_is_refused_by_the_vault_hand_over() -> Result<()> {
    let ff = start().await?;
    let p = ff.new_payment("FF-PAN-1", 500, json!({})).await?;
    let id = p["id"].as_str().unwrap();
    let (status, v) = ff.env.post(&format!("/api/agent/payments/{id}/vault"), json!({"token": "t-1", "last4": "3184", "cardNumber": FF_APPROVE})).await?;
    assert_eq!(status, 400, "{v}");
    assert!(v.to_string().contains("cardNumber"), "{v}");
    assert!(!v.to_string().contains(FF_APPROVE));
    Ok(())
}

#[tokio::test]
async fn submitted_is_settled_by_polling() -> Result<()> {
    let ff = start().await?;
    ff.control("settings", json!({"settleMs": 1500})).await?;
    let p = ff.keyed("FF-SUBMITTED-1", 1200, FF_SUBMITTED_COMPLETES).await?;
    let id = p["id"].as_str().unwrap().to_string();
    assert_eq!(p["state"], "pending", "FlexFactor decides later: {p}");
    assert_eq!(p["recovery"]["state"], "pending", "{p}");
    assert!(p["checkoutUrl"].is_null(), "no second card entry while it is recovered: {p}");
    let done = ff.eventually(&id, 30, |v| v["state"] != "pending").await?;
    assert_eq!(done["state"], "captured", "{done}");
    assert_eq!(done["recoveredBy"], "flexfactor");
    assert_eq!(ff.order_of(&id).await?["rescued"], 1200);
    Ok(())
}

#[tokio::test]
async fn submitted_is_settled_by_a_webhook() -> Result<()> {
    let ff = start().await?;
    let hook = ff.env.url("/api/agent/providers/flexfactor/webhook");
    ff.control("settings", json!({"settleMs": 4000, "webhookUrl": hook})).await?;
    // Something that is no event is refused; an event about an unknown rescue changes nothing.
    let r = ff.env.http.post(&hook).header("content-type", "text/plain").body("hello").send().await?;
    assert_eq!(r.status().as_u16(), 400);
    let r = ff.env.http.post(&hook).header("content-type", "text/plain; charset=utf-8")
        .body(r#"{"event":"order.completed","orderSessionKey":"00000000-0000-0000-0000-000000000000","status":7}"#).send().await?;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().await?["accepted"], false);
    // Only the exact path is exempt from the JSON-only check.
    let (status, _) = till_tests::raw_http(&ff.env.agent.url, "POST", "/api/agent/providers/flexfactor//webhook", &[("Content-Type", "text/plain")], Some("{}")).await?;
    assert!((400..500).contains(&status), "{status}");
    let (status, _) = till_tests::raw_http(&ff.env.agent.url, "POST", "/api/agent/providers/flexfactor/webhook", &[("Content-Type", "multipart/form-data")], Some("{}")).await?;
    assert_eq!(status, 415);
    let p = ff.keyed("FF-HOOK-1", 900, FF_SUBMITTED_COMPLETES).await?;
    let id = p["id"].as_str().unwrap().to_string();
    assert_eq!(p["state"], "pending", "{p}");
    let done = ff.eventually(&id, 30, |v| v["state"] != "pending").await?;
    assert_eq!(done["state"], "captured", "{done}");
    // The webhook was delivered (as text/plain) and made the agent look.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let truth = ff.truth().await?;
        let delivered = truth["webhooks"].as_array().is_some_and(|a| a.iter().any(|w| w["event"] == "order.completed" && w["delivered"] == true));
        if delivered {
            break;
        }
        if std::time::Instant::now() > deadline {
            bail!("webhook not delivered: {truth}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = std::fs::read_to_string(&ff.env.agent.log)?;
    assert!(log.contains("FlexFactor event; looking the rescue up"), "the agent acted on the event");
    Ok(())
}

#[tokio::test]
async fn lost_answers_on_evaluate_and_refund_rescue_and_refund_once() -> Result<()> {
    let ff = start().await?;
    ff.control("faults", json!({"loseNextResponse": ["evaluate"]})).await?;
    let p = ff.keyed("FF-LOST-1", 1500, FF_APPROVE).await?;
    let id = p["id"].as_str().unwrap().to_string();
    // The evaluation's answer was lost: still pending (never declined, never a guess) until
    // the same evaluation is asked again with the same idempotency key.
    assert_eq!(p["state"], "pending", "{p}");
    let done = ff.eventually(&id, 30, |v| v["state"] != "pending").await?;
    assert_eq!(done["state"], "captured", "{done}");
    let truth = ff.truth().await?;
    assert_eq!(truth["rescues"], 1, "one rescue: {truth}");
    let order = ff.order_of(&id).await?;
    assert!(order["evaluateCalls"].as_u64().unwrap_or(0) >= 2, "asked again: {order}");
    // A refund whose answer is lost: unknown, then settled without a second refund.
    ff.control("faults", json!({"loseNextResponse": ["refund"]})).await?;
    let (status, r) = ff.refund(&id, 500, "ff-lost-r1").await?;
    assert!(status == 202 || status == 200, "{status} {r}");
    let done = ff.eventually(&id, 30, |v| v["refundedAmount"] == 500).await?;
    assert_eq!(done["operations"][0]["state"], "approved", "{done}");
    let order = ff.order_of(&id).await?;
    assert_eq!(order["refunded"], 500, "{order}");
    assert_eq!(order["refunds"].as_array().map(Vec::len), Some(1), "one refund: {order}");
    // 5xx burst on a second refund: queued, delivered once FlexFactor answers again.
    ff.control("faults", json!({"failNext": {"count": 2, "status": 503}})).await?;
    let (status, r) = ff.refund(&id, 200, "ff-lost-r2").await?;
    assert!(status == 202 || status == 200, "{status} {r}");
    ff.eventually(&id, 30, |v| v["refundedAmount"] == 700).await?;
    let order = ff.order_of(&id).await?;
    assert_eq!(order["refunded"], 700, "{order}");
    assert_eq!(order["refunds"].as_array().map(Vec::len), Some(2), "{order}");
    Ok(())
}

#[tokio::test]
async fn a_5xx_burst_on_evaluate_rescues_once() -> Result<()> {
    let ff = start().await?;
    let p = ff.new_payment("FF-5XX-1", 800, json!({})).await?;
    let id = p["id"].as_str().unwrap().to_string();
    let (token, vault_url) = ff.page(&p).await?;
    let (status, v) = ff.vault(&p, &vault_url.context("vault url")?, FF_APPROVE).await?;
    assert_eq!(status, 200, "{v}");
    // The card is vaulted; now FlexFactor answers 5xx to the next three calls (login, evaluate).
    ff.control("faults", json!({"failNext": {"count": 3, "status": 503}})).await?;
    let url = format!("{}/web/v1/payments/{token}/execute", ff.env.sandbox.connect_e_web_url());
    ff.env.http.post(url).json(&json!({"cardNumber": FF_APPROVE, "expiryDate": "12/30", "cv2": "020", "cardName": "A Customer"})).send().await?;
    let (_, p) = ff.env.post(&format!("/api/agent/payments/{id}/report"), json!({})).await?;
    assert_eq!(p["state"], "pending", "no guess while FlexFactor answers 5xx: {p}");
    let done = ff.eventually(&id, 30, |v| v["state"] != "pending").await?;
    assert_eq!(done["state"], "captured", "{done}");
    let truth = ff.truth().await?;
    assert_eq!(truth["rescues"], 1, "{truth}");
    Ok(())
}

#[tokio::test]
async fn kill_between_decline_and_evaluate_rescues_once() -> Result<()> {
    // Before the evaluation (intent journaled, FlexFactor not asked) and after it (FlexFactor
    // answered, the answer not journaled): one rescue and one outcome either way.
    for (n, site) in ["recovery::before_evaluate", "recovery::after_evaluate"].into_iter().enumerate() {
        let mut ff = start().await?;
        ff.env.restart_agent_with(&[("FAILPOINTS", &format!("{site}=return"))]).await?;
        let p = ff.new_payment(&format!("FF-KILL-{n}"), 1100, json!({})).await?;
        let id = p["id"].as_str().unwrap().to_string();
        let (token, vault_url) = ff.page(&p).await?;
        let (status, v) = ff.vault(&p, &vault_url.context("vault url")?, FF_APPROVE).await?;
        assert_eq!(status, 200, "{v}");
        let url = format!("{}/web/v1/payments/{token}/execute", ff.env.sandbox.connect_e_web_url());
        ff.env.http.post(url).json(&json!({"cardNumber": FF_APPROVE, "expiryDate": "12/30", "cv2": "020", "cardName": "A Customer"})).send().await?;
        // The report makes the agent see the decline, journal the intent and die at the site.
        let _ = ff.env.post(&format!("/api/agent/payments/{id}/report"), json!({})).await;
        for _ in 0..50 {
            if !ff.env.agent_alive() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(!ff.env.agent_alive(), "{site} killed the agent");
        let expected_before = if site.ends_with("before_evaluate") { 0 } else { 1 };
        assert_eq!(ff.truth().await?["rescues"], expected_before, "{site}");
        ff.env.restart_agent().await?;
        let done = ff.eventually(&id, 30, |v| v["state"] != "pending").await?;
        assert_eq!(done["state"], "captured", "{site}: the intent was resumed: {done}");
        let truth = ff.truth().await?;
        assert_eq!(truth["rescues"], 1, "{site}: {truth}");
    }
    Ok(())
}

#[tokio::test]
async fn no_card_number_in_the_data_directory_or_the_log() -> Result<()> {
    let ff = start().await?;
    let approved = ff.keyed("FF-SCAN-1", 1000, FF_APPROVE).await?;
    let declined = ff.keyed("FF-SCAN-2", 1000, FF_DECLINE).await?;
    assert_eq!(approved["state"], "captured");
    assert_eq!(declined["state"], "declined");
    // Let the journal and the log settle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut files = Vec::new();
    let mut dirs = vec![ff.env.data_dir.path().to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d)? {
            let path = e?.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    assert!(files.iter().any(|f| f.to_string_lossy().contains("journal")), "{files:?}");
    for f in &files {
        let bytes = std::fs::read(f)?;
        for pan in [FF_APPROVE, FF_DECLINE] {
            assert!(!bytes.windows(pan.len()).any(|w| w == pan.as_bytes()), "{} holds a card number", f.display());
        }
    }
    Ok(())
}

/// The chain sees recoveries: at an enrolled till, a recovered payment and a declined one reach
/// the fleet, and the day report counts the recovery and its amount among the sales under
/// provider `connect-e` ("declines and recoveries"), and the decline as a decline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_counts_recoveries_in_the_day_report() -> Result<()> {
    use till_tests::fleet::{OneTillChain, ADMIN_TOKEN};
    let ff = start().await?;
    let chain = OneTillChain::enrol(ff.env.data_dir.path())?;
    let p = ff.keyed("FF-FLEET-1", 1300, FF_APPROVE).await?;
    assert_eq!(p["state"], "captured", "{p}");
    let d = ff.keyed("FF-FLEET-2", 700, FF_DECLINE).await?;
    assert_eq!(d["state"], "declined", "{d}");
    ff.env.eventually("/api/agent/health", 30, |h| h["fleet"]["changesBehind"] == 0).await?;
    assert_eq!(
        chain.pg.query("fleet", "SELECT order_id, recovered_by FROM payments WHERE recovered_by IS NOT NULL")?,
        vec![vec!["FF-FLEET-1".to_string(), "flexfactor".to_string()]]
    );
    let day: Value = ff.env.http.get(format!("{}/api/v1/reports/day", chain.fleet.url)).bearer_auth(ADMIN_TOKEN).send().await?.json().await?;
    let lines: Vec<&Value> = day.as_array().map(|a| a.iter().filter(|l| l["provider"] == "connect-e").collect()).unwrap_or_default();
    let sum = |k: &str| lines.iter().map(|l| l[k].as_i64().unwrap_or(0)).sum::<i64>();
    assert_eq!((sum("sales"), sum("recoveries"), sum("recovered_amount"), sum("declines")), (1, 1, 1300, 1), "{day}");
    Ok(())
}
