//! Acquired.com payment sessions through the agent, end to end: the real `till-agent` binary
//! configured for the sandbox's Acquired simulator, real HTTP on loopback (port 0).
//!
//! Where the customer types a card, the test does what Acquired's Components script does in the
//! checkout page: it reads the session from the agent's checkout page, posts the card to the
//! simulator's Components host, answers the 3-D Secure emulator, and posts the signed outcome to
//! the session's redirect URL — the agent's return endpoint — as the browser's form post would,
//! with the headers a browser sends from another site. The agent never sees the card.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use till_tests::Env;

/// Approves without 3-D Secure (the simulator's plain-approve card).
const APPROVE: &str = "4111111111111111";
/// Declined by the bank: `insufficient_funds`.
const DECLINE: &str = "4000000000009995";
/// Asks for a 3-D Secure challenge; the tester picks the result.
const CHALLENGE: &str = "4000015979612025";
/// Frictionless 3-D Secure that fails: `tds_failed` / `suspected_fraud`.
const FRAUD: &str = "4000016387798026";

struct Aq {
    env: Env,
    token: String,
}

async fn start() -> Result<Aq> {
    let env = Env::start_acquired(&[]).await?;
    let token = env.token()?;
    Ok(Aq { env, token })
}

impl Aq {
    /// The Components host (where `acquired.js` came from).
    fn components(&self) -> String {
        self.env.sandbox.acquired_components_url().trim_end_matches("/v1/acquired.js").to_string()
    }

    /// A new pending payment session (201), checked.
    async fn new_payment(&self, order: &str, minor: i64, kind: &str) -> Result<Value> {
        let (status, p) = self
            .env
            .post("/api/agent/payments", json!({"provider": "acquired", "kind": kind, "amount": minor, "currency": "GBP", "orderId": order, "moto": false}))
            .await?;
        if status != 201 {
            bail!("create: {status} {p}");
        }
        assert_eq!(p["state"], "pending", "{p}");
        assert_eq!(p["provider"], "acquired");
        Ok(p)
    }

    /// The session id, read from the checkout page as the Components script gets it.
    async fn session(&self, p: &Value) -> Result<String> {
        let url = p["checkoutUrl"].as_str().context("checkoutUrl")?;
        let r = self.env.http.get(url).send().await?;
        let csp = r.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        assert!(csp.contains(&self.components()), "the page may load acquired.js: {csp}");
        assert!(csp.contains("form-action 'self'"), "{csp}");
        let html = r.text().await?;
        assert!(html.contains(&self.env.sandbox.acquired_components_url()), "{html}");
        let start = html.find("data-session=\"").context("data-session")? + "data-session=\"".len();
        Ok(html[start..].split('"').next().unwrap_or("").to_string())
    }

    /// What the Components script posts when the customer presses Pay.
    async fn confirm(&self, p: &Value, number: &str) -> Result<Value> {
        let session = self.session(p).await?;
        let url = format!("{}/v1/components/sessions/{session}/confirm", self.components());
        let card = json!({"card": {"number": number, "expiry_month": "12", "expiry_year": "30", "cvv": "123", "holder_name": "A Customer"}});
        Ok(self.env.http.post(url).json(&card).send().await?.json().await?)
    }

    /// The tester's pick in the 3-D Secure emulator.
    async fn challenge(&self, tds_url: &str, status: &str, reason: &str) -> Result<Value> {
        Ok(self.env.http.post(tds_url).json(&json!({"status": status, "reason": reason})).send().await?.json().await?)
    }

    /// The browser's form post of the signed outcome to the redirect URL, sent from the
    /// provider's page (another site). Answers status and the page.
    async fn return_post(&self, redirect: &Value, fields: &Value) -> Result<(u16, String)> {
        let url = redirect["url"].as_str().context("redirect url")?;
        let form: Vec<(String, String)> = fields
            .as_object()
            .context("fields")?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
            .collect();
        let r = self
            .env
            .http
            .post(url)
            .header("Origin", self.components())
            .header("Sec-Fetch-Site", "cross-site")
            .header("Sec-Fetch-Mode", "navigate")
            .form(&form)
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.text().await?))
    }

    async fn get(&self, id: &str) -> Result<Value> {
        let (status, v) = self.env.get(&format!("/api/agent/payments/{id}")).await?;
        assert_eq!(status, 200, "{v}");
        Ok(v)
    }

    async fn money_out(&self, id: &str, what: &str, body: Value) -> Result<(u16, Value)> {
        let r = self.env.http.post(self.env.url(&format!("/api/agent/payments/{id}/{what}"))).bearer_auth(&self.token).json(&body).send().await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    async fn truth(&self) -> Result<Value> {
        Ok(self.env.http.get(format!("{}/state", self.env.sandbox.acquired_control_url())).send().await?.json().await?)
    }

    async fn transactions_for(&self, order: &str) -> Result<Vec<Value>> {
        let t = self.truth().await?;
        Ok(t["transactions"].as_array().cloned().unwrap_or_default().into_iter().filter(|x| x["orderId"] == order).collect())
    }

    /// A paid payment: card confirmed, outcome returned through the browser, state confirmed.
    async fn paid(&self, order: &str, minor: i64, kind: &str) -> Result<Value> {
        let p = self.new_payment(order, minor, kind).await?;
        let out = self.confirm(&p, APPROVE).await?;
        assert_eq!(out["status"], "success", "{out}");
        let (status, page) = self.return_post(&out["redirect"], &out["redirect"]["fields"]).await?;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("Thank you"), "{page}");
        self.get(p["id"].as_str().context("id")?).await
    }
}

/// A sale: the session is paid on the customer's checkout, the browser brings the signed
/// outcome back, the agent confirms it with Acquired; then two partial refunds and an
/// over-refund refused — each matched by the simulator's ground truth.
#[tokio::test]
async fn a_sale_paid_in_the_checkout_then_partial_refunds() -> Result<()> {
    let aq = start().await?;
    let p = aq.paid("AQ-1", 1250, "sale").await?;
    assert_eq!(p["state"], "captured", "{p}");
    assert_eq!(p["capturedAmount"], 1250, "{p}");
    let id = p["id"].as_str().context("id")?.to_string();
    let txs = aq.transactions_for("AQ-1").await?;
    assert_eq!(txs.len(), 1, "one transaction: {txs:?}");
    assert_eq!(txs[0]["capturedMinor"], 1250);
    // The checkout no longer takes a card for it.
    let html = aq.env.http.get(p["checkoutUrl"].as_str().unwrap_or(&aq.env.url(&format!("/api/agent/payments/{id}/checkout")))).send().await?.text().await?;
    assert!(html.contains("checkout-closed"), "{html}");

    let (status, r) = aq.money_out(&id, "refund", json!({"amount": 300})).await?;
    assert!(status == 200 || status == 201, "{status} {r}");
    let (status, r) = aq.money_out(&id, "refund", json!({"amount": 200})).await?;
    assert!(status == 200 || status == 201, "{status} {r}");
    let (status, r) = aq.money_out(&id, "refund", json!({"amount": 751})).await?;
    assert_eq!(status, 409, "over-refund refused: {r}");
    let p = aq.get(&id).await?;
    assert_eq!(p["refundedAmount"], 500, "{p}");
    let txs = aq.transactions_for("AQ-1").await?;
    assert_eq!(txs[0]["refundedMinor"], 500, "{txs:?}");
    Ok(())
}

/// Auth-only, then a capture of part of it.
#[tokio::test]
async fn a_preauthorisation_then_a_capture() -> Result<()> {
    let aq = start().await?;
    let p = aq.paid("AQ-2", 2000, "preauth").await?;
    assert_eq!(p["state"], "authorized", "{p}");
    let id = p["id"].as_str().context("id")?.to_string();
    assert_eq!(aq.transactions_for("AQ-2").await?[0]["capturedMinor"], 0);
    let (status, r) = aq.money_out(&id, "capture", json!({"amount": 1800})).await?;
    assert!(status == 200 || status == 201, "{status} {r}");
    let p = aq.get(&id).await?;
    assert_eq!(p["state"], "captured", "{p}");
    assert_eq!(p["capturedAmount"], 1800, "{p}");
    assert_eq!(aq.transactions_for("AQ-2").await?[0]["capturedMinor"], 1800);
    Ok(())
}

/// Declines and 3-D Secure failures reach the cashier as neutral states with Acquired's reason;
/// a challenge the customer passes is a sale.
#[tokio::test]
async fn declines_and_3ds_outcomes_keep_their_reason() -> Result<()> {
    let aq = start().await?;
    for (order, card, reason) in [("AQ-D1", DECLINE, "insufficient_funds"), ("AQ-D2", FRAUD, "suspected_fraud")] {
        let p = aq.new_payment(order, 990, "sale").await?;
        let out = aq.confirm(&p, card).await?;
        let (status, page) = aq.return_post(&out["redirect"], &out["redirect"]["fields"]).await?;
        assert_eq!(status, 200, "{page}");
        let p = aq.get(p["id"].as_str().context("id")?).await?;
        assert_eq!(p["state"], "declined", "{order}: {p}");
        assert!(p.to_string().contains(reason), "{order}: the reason is kept: {p}");
    }
    // The challenge card: the customer fails it, then a new session for the same order passes.
    let p = aq.new_payment("AQ-C", 4200, "sale").await?;
    let out = aq.confirm(&p, CHALLENGE).await?;
    assert_eq!(out["status"], "tds_pending", "{out}");
    let tds = out["tds"]["url"].as_str().context("tds url")?.to_string();
    let out = aq.challenge(&tds, "tds_expired", "challenge_time_out").await?;
    aq.return_post(&out["redirect"], &out["redirect"]["fields"]).await?;
    let failed = aq.get(p["id"].as_str().context("id")?).await?;
    // tds_expired is Acquired's "3-D Secure expired": the neutral `expired`, not a decline.
    assert_eq!(failed["state"], "expired", "{failed}");
    assert!(failed.to_string().contains("challenge_time_out"), "{failed}");
    let p = aq.new_payment("AQ-C", 4200, "sale").await?;
    let out = aq.confirm(&p, CHALLENGE).await?;
    let out = aq.challenge(out["tds"]["url"].as_str().context("tds url")?, "success", "").await?;
    let (_, page) = aq.return_post(&out["redirect"], &out["redirect"]["fields"]).await?;
    assert!(page.contains("Thank you"), "{page}");
    assert_eq!(aq.get(p["id"].as_str().context("id")?).await?["state"], "captured");
    let txs = aq.transactions_for("AQ-C").await?;
    assert_eq!(txs.iter().filter(|t| t["capturedMinor"] == 4200).count(), 1, "one charge: {txs:?}");
    Ok(())
}

/// The return endpoint is the one route that takes another site's form post, so it trusts only
/// Acquired's signature: a forged or altered return, or one about another order, changes
/// nothing; other spellings of its path get no such exception; every other route still refuses
/// cross-site requests.
#[tokio::test]
async fn a_forged_return_changes_nothing() -> Result<()> {
    let aq = start().await?;
    let p = aq.new_payment("AQ-F", 500, "sale").await?;
    let id = p["id"].as_str().context("id")?.to_string();
    let out = aq.confirm(&p, DECLINE).await?;
    let redirect = out["redirect"].clone();
    // The declined outcome, rewritten as a success: the hash no longer matches.
    let mut forged = redirect["fields"].clone();
    forged["status"] = json!("success");
    let (status, page) = aq.return_post(&redirect, &forged).await?;
    assert_eq!(status, 400, "{page}");
    assert!(!page.contains("Thank you"));
    // No hash at all, and a hash computed with another key.
    let mut unsigned = redirect["fields"].clone();
    unsigned["hash"] = json!("");
    assert_eq!(aq.return_post(&redirect, &unsigned).await?.0, 400);
    let mut other_key = redirect["fields"].clone();
    other_key["hash"] = json!("0".repeat(64));
    assert_eq!(aq.return_post(&redirect, &other_key).await?.0, 400);
    let still = aq.get(&id).await?;
    assert_eq!(still["state"], "pending", "nothing changed: {still}");
    // The page still takes a card: the forged returns did not attach a transaction.
    assert!(!aq.session(&p).await?.is_empty());

    // Other spellings of the return path get no exemption from the cross-site checks.
    let base = aq.env.agent.url.clone();
    for path in ["/api/agent/providers/acquired/./return", "/api/agent/providers//acquired/return", "/api/agent/providers/acquired/return/", "/api/agent/providers/sensepass/return"] {
        let r = aq
            .env
            .http
            .post(format!("{base}{path}"))
            .header("Origin", aq.components())
            .header("Sec-Fetch-Site", "cross-site")
            .form(&[("status", "success")])
            .send()
            .await?;
        assert!(r.status().is_client_error(), "{path}: {}", r.status());
    }
    // Neither a form nor JSON: refused before anything is read.
    let r = aq.env.http.post(format!("{base}/api/agent/providers/acquired/return")).header("Content-Type", "text/plain").body("status=success").send().await?;
    assert_eq!(r.status().as_u16(), 415);
    // A cross-site form post anywhere else is refused as before.
    let r = aq.env.http.post(aq.env.url("/api/agent/payments")).header("Sec-Fetch-Site", "cross-site").form(&[("provider", "acquired")]).send().await?;
    assert_eq!(r.status().as_u16(), 403);

    // The genuine (declined) return is accepted and confirmed with Acquired.
    let (status, page) = aq.return_post(&redirect, &redirect["fields"]).await?;
    assert_eq!(status, 200, "{page}");
    assert_eq!(aq.get(&id).await?["state"], "declined");
    Ok(())
}

/// The session follows the cart: `PATCH /api/agent/payments/{id}` (POS token) changes the
/// pending session's amount, and the customer then pays the new total (the simulator's ground
/// truth shows it). Bad input names every field and changes nothing; Acquired unreachable
/// changes nothing; once paid the amount can no longer change.
#[tokio::test]
async fn the_session_follows_the_cart() -> Result<()> {
    let aq = start().await?;
    let p = aq.new_payment("AQ-CART", 1000, "sale").await?;
    let id = p["id"].as_str().context("id")?.to_string();
    let url = aq.env.url(&format!("/api/agent/payments/{id}"));
    let patch = |body: Value, token: Option<&str>| {
        let mut r = aq.env.http.patch(&url).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move {
            let r = r.send().await?;
            let status = r.status().as_u16();
            Ok::<(u16, Value), anyhow::Error>((status, r.json().await.unwrap_or(Value::Null)))
        }
    };
    let (status, _) = patch(json!({"amount": 1350}), None).await?;
    assert_eq!(status, 401, "an amount change needs the POS token");
    let (status, body) = patch(json!({"amount": -5, "currency": "EUR"}), Some(&aq.token)).await?;
    assert_eq!(status, 400, "{body}");
    let named: Vec<&str> = body["invalid_parameters"].as_array().into_iter().flatten().filter_map(|p| p["parameter"].as_str()).collect();
    assert!(named.contains(&"amount") && named.contains(&"currency"), "{body}");
    assert_eq!(aq.get(&id).await?["amount"], 1000, "nothing changed");

    let (status, body) = patch(json!({"amount": 1350}), Some(&aq.token)).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["amount"], 1350);

    // Acquired unreachable: certainly not sent, so the old amount stands.
    let faults = format!("{}/faults", aq.env.sandbox.acquired_control_url());
    aq.env.http.post(&faults).json(&json!({"offline": true})).send().await?.error_for_status()?;
    let (status, body) = patch(json!({"amount": 1500}), Some(&aq.token)).await?;
    aq.env.http.delete(&faults).send().await?.error_for_status()?;
    assert_eq!(status, 503, "{body}");
    assert_eq!(aq.get(&id).await?["amount"], 1350, "the journal keeps what Acquired has");

    // The customer pays: the session's latest amount.
    let out = aq.confirm(&p, APPROVE).await?;
    assert_eq!(out["status"], "success", "{out}");
    aq.return_post(&out["redirect"], &out["redirect"]["fields"]).await?;
    let paid = aq.get(&id).await?;
    assert_eq!((paid["state"].clone(), paid["capturedAmount"].clone()), (json!("captured"), json!(1350)), "{paid}");
    let txs = aq.transactions_for("AQ-CART").await?;
    assert_eq!(txs.len(), 1, "{txs:?}");
    assert_eq!(txs[0]["capturedMinor"], 1350, "the paid amount is the updated one: {txs:?}");
    let (status, body) = patch(json!({"amount": 2000}), Some(&aq.token)).await?;
    assert_eq!(status, 409, "{body}");
    assert_eq!(aq.get(&id).await?["amount"], 1350);
    Ok(())
}

/// kill -9 of the agent right before and right after a refund or a capture is sent, and right
/// before a session is created: after the restart each request has moved money exactly once at
/// Acquired (its ground truth), and a retried request with the same key moves nothing more.
#[tokio::test]
async fn kill_9_around_sessions_captures_and_refunds_moves_money_once() -> Result<()> {
    let mut aq = start().await?;
    let p = aq.paid("AQ-K1", 1000, "sale").await?;
    let id = p["id"].as_str().context("id")?.to_string();
    let died = |aq: &mut Aq| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if !aq.env.agent_alive() {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                bail!("the agent did not die");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    for (i, site) in ["gateway::after_send", "gateway::before_send"].iter().enumerate() {
        aq.env.restart_agent_with(&[("FAILPOINTS", &format!("{site}=return"))]).await?;
        let r = aq
            .env
            .http
            .post(aq.env.url(&format!("/api/agent/payments/{id}/refund")))
            .bearer_auth(&aq.token)
            .header("Idempotency-Key", format!("aq-crash-{i}"))
            .json(&json!({"amount": 100}))
            .send()
            .await;
        assert!(r.is_err() || r.as_ref().is_ok_and(|r| r.status().is_server_error()), "{site}: the agent should have died: {r:?}");
        died(&mut aq)?;
        aq.env.restart_agent().await?;
        let want = 100 * (i as i64 + 1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while aq.get(&id).await?["refundedAmount"] != want {
            if std::time::Instant::now() > deadline {
                bail!("{site}: refund not settled: {}", aq.get(&id).await?);
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    assert_eq!(aq.transactions_for("AQ-K1").await?[0]["refundedMinor"], 200, "one refund per request");
    let r = aq.env.http.post(aq.env.url(&format!("/api/agent/payments/{id}/refund"))).bearer_auth(&aq.token).header("Idempotency-Key", "aq-crash-0").json(&json!({"amount": 100})).send().await?;
    assert!(r.status().is_success(), "the retried request answers the first refund: {}", r.status());
    assert_eq!(aq.transactions_for("AQ-K1").await?[0]["refundedMinor"], 200, "and moves nothing");

    // A capture cut off right after it was sent: one capture.
    let pre = aq.paid("AQ-K2", 2000, "preauth").await?;
    let pre_id = pre["id"].as_str().context("id")?.to_string();
    aq.env.restart_agent_with(&[("FAILPOINTS", "gateway::after_send=return")]).await?;
    let _ = aq.money_out(&pre_id, "capture", json!({"amount": 2000})).await;
    died(&mut aq)?;
    aq.env.restart_agent().await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while aq.get(&pre_id).await?["state"] != "captured" {
        if std::time::Instant::now() > deadline {
            bail!("capture not settled: {}", aq.get(&pre_id).await?);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let tx = &aq.transactions_for("AQ-K2").await?[0];
    assert_eq!(tx["capturedMinor"], 2000, "{tx}");
    assert_eq!(tx["statusHistory"].as_array().map(|h| h.iter().filter(|s| *s == "captured").count()), Some(1), "one capture: {tx}");

    // A session create cut off before the call: the order is free for a new session, one charge.
    aq.env.restart_agent_with(&[("FAILPOINTS", "gateway::before_create=return")]).await?;
    let _ = aq.env.post("/api/agent/payments", json!({"provider": "acquired", "kind": "sale", "amount": 700, "currency": "GBP", "orderId": "AQ-K3", "moto": false})).await;
    died(&mut aq)?;
    aq.env.restart_agent().await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let p = loop {
        let (status, p) = aq.env.post("/api/agent/payments", json!({"provider": "acquired", "kind": "sale", "amount": 700, "currency": "GBP", "orderId": "AQ-K3", "moto": false})).await?;
        if status == 201 || (status == 200 && p["checkoutUrl"].is_string()) {
            break p;
        }
        if std::time::Instant::now() > deadline {
            bail!("no new session for the order: {status} {p}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    let out = aq.confirm(&p, APPROVE).await?;
    aq.return_post(&out["redirect"], &out["redirect"]["fields"]).await?;
    let txs = aq.transactions_for("AQ-K3").await?;
    assert_eq!(txs.iter().filter(|t| t["capturedMinor"] == 700).count(), 1, "one charge: {txs:?}");
    Ok(())
}

/// Acquired's rules reach the POS as our 400, field by field, under the names the POS sent: a
/// one-character order id passes the agent's general checks but not Acquired's (2 to 50
/// characters) and comes back naming `orderId`, before anything is sent. (A §7
/// `invalid_parameters` answer from Acquired itself is mapped the same way, by the one
/// translation in `till_acquired`; `crates/acquired/tests/flows.rs` shows an over-refund's
/// `transaction.amount` arriving as `amount`.) Nothing is left open.
#[tokio::test]
async fn acquired_validation_reaches_the_pos_field_by_field() -> Result<()> {
    let aq = start().await?;
    let (status, body) = aq.env.post("/api/agent/payments", json!({"provider": "acquired", "kind": "sale", "amount": 500, "currency": "GBP", "orderId": "Z", "moto": false})).await?;
    assert_eq!(status, 400, "{body}");
    let params = body["invalid_parameters"].as_array().cloned().unwrap_or_default();
    assert_eq!(params.len(), 1, "{body}");
    assert_eq!(params[0]["parameter"], "orderId", "{body}");
    assert!(params[0]["reason"].as_str().unwrap_or("").contains("Acquired"), "{body}");
    let t = aq.truth().await?;
    assert!(t["sessions"].as_array().is_none_or(|s| s.iter().all(|x| x["body"]["transaction"]["order_id"] != "Z")), "no session: {t}");
    let (_, list) = aq.env.get("/api/agent/payments?orderId=Z").await?;
    assert!(list["items"].as_array().is_none_or(|i| i.iter().all(|p| p["state"] != "pending")), "nothing left open: {list}");
    Ok(())
}

/// Lost answers: Acquired performs the call, the agent never hears back. A lost session create
/// leaves no payable session behind (its id was never shown to a checkout) and the order gets a
/// new one; a lost `PUT` is a 504 that keeps the new amount, and sending the same change again
/// is harmless; a lost refund answer is reconciled with Acquired before anything is sent again.
/// Each moved money exactly once at the simulator.
#[tokio::test]
async fn lost_answers_on_create_update_and_refund_move_money_once() -> Result<()> {
    let aq = start().await?;
    let faults = format!("{}/faults", aq.env.sandbox.acquired_control_url());
    let lose = |kind: &'static str| {
        let (http, url) = (aq.env.http.clone(), faults.clone());
        async move { http.post(url).json(&json!({"loseNextResponse": [kind]})).send().await?.error_for_status().map(|_| ()).map_err(anyhow::Error::from) }
    };

    // Create: the session Acquired made is never used; the agent answers with a fresh one.
    lose("payment-sessions").await?;
    let (status, p) = aq.env.post("/api/agent/payments", json!({"provider": "acquired", "kind": "sale", "amount": 1100, "currency": "GBP", "orderId": "AQ-L1", "moto": false})).await?;
    let p = if status == 201 {
        p
    } else {
        // 504: the outcome of the create is unknown; the same order again gets a session.
        assert_eq!(status, 504, "{p}");
        aq.new_payment("AQ-L1", 1100, "sale").await?
    };
    let id = p["id"].as_str().context("id")?.to_string();

    // PUT: the answer is lost; 504, the new amount kept; the same change again is 200.
    lose("payment-sessions-update").await?;
    let url = aq.env.url(&format!("/api/agent/payments/{id}"));
    let r = aq.env.http.patch(&url).bearer_auth(&aq.token).json(&json!({"amount": 1600})).send().await?;
    assert_eq!(r.status().as_u16(), 504, "{}", r.text().await?);
    assert_eq!(aq.get(&id).await?["amount"], 1600, "the journal keeps the amount asked for");
    let r = aq.env.http.patch(&url).bearer_auth(&aq.token).json(&json!({"amount": 1600})).send().await?;
    assert_eq!(r.status().as_u16(), 200);

    let out = aq.confirm(&p, APPROVE).await?;
    aq.return_post(&out["redirect"], &out["redirect"]["fields"]).await?;
    assert_eq!(aq.get(&id).await?["capturedAmount"], 1600);
    let txs = aq.transactions_for("AQ-L1").await?;
    assert_eq!(txs.len(), 1, "one charge for the order: {txs:?}");
    assert_eq!(txs[0]["capturedMinor"], 1600);

    // Refund: the answer is lost; the agent reconciles and the refund happens once.
    lose("refund").await?;
    let _ = aq.money_out(&id, "refund", json!({"amount": 300})).await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while aq.get(&id).await?["refundedAmount"] != 300 {
        if std::time::Instant::now() > deadline {
            bail!("refund not settled: {}", aq.get(&id).await?);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(aq.transactions_for("AQ-L1").await?[0]["refundedMinor"], 300, "refunded once");
    Ok(())
}

/// A customer pays and closes the checkout before the browser comes back: nothing documented maps
/// the session to its transaction, so without the redirect the payment would stay pending. The
/// simulator's signed `status_update` goes to the fleet (the till has no public address), which
/// verifies its hash, stores it and relays it; the till checks with Acquired that the transaction
/// belongs to the payment's order before attaching it, then looks it up: captured. A forged notice
/// naming another order's transaction, signed correctly, is refused by the till's check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_whose_browser_never_returns_is_settled_by_the_relayed_webhook() -> Result<()> {
    use till_tests::fleet::{till_id, OneTillChain, ACQUIRED_APP_KEY};
    let aq = start().await?;
    let chain = OneTillChain::enrol(aq.env.data_dir.path())?;
    let (pg, fleet) = (&chain.pg, &chain.fleet);
    let till = till_id(aq.env.data_dir.path())?;
    let relay = |h: &Value| h["fleet"]["webhooks"].clone();

    // Another payment, paid normally: its transaction is what a forger would name.
    let other = aq.paid("AQ-HOOK-0", 300, "sale").await?;
    assert_eq!(other["state"], "captured", "{other}");
    aq.env.eventually("/api/agent/health", 20, |h| relay(h)["matched"] == 1).await?;

    let p = aq.new_payment("AQ-HOOK-1", 1250, "sale").await?;
    let id = p["id"].as_str().context("id")?.to_string();
    let out = aq.confirm(&p, APPROVE).await?;
    assert_eq!(out["status"], "success", "{out}");
    // No return post: the customer closed the tab. The webhook settles it.
    let settled = aq.env.eventually(&format!("/api/agent/payments/{id}"), 30, |v| v["state"] == "captured").await?;
    assert_eq!(settled["capturedAmount"], 1250, "{settled}");
    let h = aq.env.eventually("/api/agent/health", 20, |h| relay(h)["matched"] == 2).await?;
    assert_eq!(relay(&h)["ignored"], 0, "{h}");
    assert_eq!(pg.query("fleet", "SELECT count(*) FROM webhooks WHERE provider = 'acquired'")?[0][0], "2");

    // A correctly signed notice that names another order's transaction for this order.
    let pending = aq.new_payment("AQ-HOOK-2", 999, "sale").await?;
    let other_tx = aq.transactions_for("AQ-HOOK-0").await?.first().and_then(|t| t["transactionId"].as_str().map(str::to_string)).context("other tx")?;
    let body = json!({"webhook_type": "status_update", "webhook_id": "forged-1", "timestamp": 1_700_000_000,
                      "webhook_body": {"transaction_id": other_tx, "status": "success", "order_id": "AQ-HOOK-2"}}).to_string();
    let hash = till_acquired::verify::webhook_hash(ACQUIRED_APP_KEY, body.as_bytes());
    let r = aq.env.http.post(format!("{}/api/v1/webhooks/acquired/{till}", fleet.url)).header("Hash", hash).header("Content-Type", "application/json").body(body).send().await?;
    assert_eq!(r.status().as_u16(), 200);
    aq.env.eventually("/api/agent/health", 20, |h| relay(h)["ignored"] == 1).await?;
    let still = aq.get(pending["id"].as_str().unwrap_or("")).await?;
    assert_eq!(still["state"], "pending", "the forged notice attached nothing: {still}");
    Ok(())
}

/// A session about to pass its 10 minutes while the customer is still at the checkout is
/// replaced by a fresh one for the same order, and the payment keeps its id: refused while the
/// session has more than two minutes left, granted in its last minutes (the agent's and the
/// simulator's clocks moved 9 minutes on), the checkout page then carries the new session, the
/// customer pays it, and the simulator holds two sessions for the order and one charge. A paid
/// payment is never renewed.
#[tokio::test]
async fn a_session_about_to_expire_is_replaced_without_a_second_charge() -> Result<()> {
    let mut aq = start().await?;
    let p = aq.new_payment("AQ-RENEW-1", 800, "sale").await?;
    let id = p["id"].as_str().context("id")?.to_string();
    let first = aq.session(&p).await?;
    let renew = |env: &Env| {
        let (http, url) = (env.http.clone(), env.url(&format!("/api/agent/payments/{id}/renew")));
        async move {
            let r = http.post(url).send().await?;
            Ok::<(u16, Value), anyhow::Error>((r.status().as_u16(), r.json().await.unwrap_or(Value::Null)))
        }
    };
    let (status, early) = renew(&aq.env).await?;
    assert_eq!(status, 409, "ten minutes left is too early: {early}");

    // Nine minutes later, the customer still at the checkout.
    let r = aq.env.http.post(format!("{}/clock", aq.env.sandbox.acquired_control_url())).json(&json!({"advanceSeconds": 540})).send().await?;
    assert!(r.status().is_success());
    aq.env.restart_agent_with(&[("TILL_AGENT_TEST_CLOCK_OFFSET_MS", "540000")]).await?;
    let (status, renewed) = renew(&aq.env).await?;
    assert_eq!(status, 200, "{renewed}");
    assert_eq!(renewed["id"], id.as_str(), "the same payment");
    assert_eq!(renewed["state"], "pending");
    assert!(renewed["expiresAt"].as_str() > p["expiresAt"].as_str(), "a later end: {renewed} vs {p}");
    let second = aq.session(&renewed).await?;
    assert_ne!(second, first, "the checkout page carries the new session");

    // The customer pays on the new session: one charge for the order.
    let out = aq.confirm(&renewed, APPROVE).await?;
    assert_eq!(out["status"], "success", "{out}");
    let (status, page) = aq.return_post(&out["redirect"], &out["redirect"]["fields"]).await?;
    assert_eq!(status, 200, "{page}");
    let paid = aq.get(&id).await?;
    assert_eq!(paid["state"], "captured", "{paid}");
    assert_eq!(paid["capturedAmount"], 800);
    let truth = aq.truth().await?;
    let sessions = truth["sessions"].as_array().map(|a| a.iter().filter(|s| s["orderId"] == "AQ-RENEW-1").count());
    assert_eq!(sessions, Some(2), "{truth}");
    let txs = aq.transactions_for("AQ-RENEW-1").await?;
    assert_eq!(txs.len(), 1, "one charge: {txs:?}");
    assert_eq!(txs[0]["capturedMinor"], 800);

    let (status, late) = renew(&aq.env).await?;
    assert_eq!(status, 409, "a paid payment is never renewed: {late}");
    Ok(())
}
