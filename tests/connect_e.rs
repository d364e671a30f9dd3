//! Paymentsense Connect-E through the agent, end to end: the real `till-agent` binary configured
//! for the sandbox's Connect-E simulator, real HTTP on loopback (port 0). Every flow of the fact
//! sheet's §8 through `/api/agent/payments`, lost answers and 5xx bursts against the simulator's
//! ground truth, and bad input that changes nothing.
//!
//! Where a cardholder types a card, the test does what the checkout page's `client.js` does: it
//! reads the access token from the agent's checkout page and posts the card to the simulator's
//! web host; then it reports to the agent as the page does. The agent never sees the card.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::time::Duration;
use till_tests::Env;

const APPROVE: &str = "5200000000000056";
const THREE_DS: &str = "4456530000001096";
const DECLINE: &str = "4456530000001013";

struct Ce {
    env: Env,
    token: String,
}

async fn start() -> Result<Ce> {
    let env = Env::start_connect_e(&[]).await?;
    let token = env.token()?;
    Ok(Ce { env, token })
}

impl Ce {
    async fn create(&self, body: Value) -> Result<(u16, Value)> {
        self.env.post("/api/agent/payments", body).await
    }

    /// A new pending payment (201), checked.
    async fn new_payment(&self, body: Value) -> Result<Value> {
        let (status, p) = self.create(body).await?;
        if status != 201 {
            bail!("create: {status} {p}");
        }
        assert_eq!(p["state"], "pending", "{p}");
        assert_eq!(p["provider"], "connect-e");
        assert!(p["checkoutUrl"].as_str().unwrap_or("").ends_with("/checkout"), "{p}");
        Ok(p)
    }

    /// The access token, read from the checkout page as its script reads it.
    async fn checkout_token(&self, p: &Value) -> Result<(String, String)> {
        let url = p["checkoutUrl"].as_str().context("checkoutUrl")?;
        let r = self.env.http.get(url).send().await?;
        let csp = r.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        assert!(csp.contains(&self.env.sandbox.connect_e_web_url()), "the page may load client.js: {csp}");
        let html = r.text().await?;
        assert!(html.contains("/assets/js/client.js"), "{html}");
        let attr = |name: &str| -> Result<String> {
            let start = html.find(&format!("{name}=\"")).context("attribute")? + name.len() + 2;
            Ok(html[start..].split('"').next().unwrap_or("").to_string())
        };
        Ok((attr("data-token")?, attr("data-form")?))
    }

    /// What client.js posts when the cardholder presses Pay.
    async fn execute(&self, p: &Value, body: Value) -> Result<Value> {
        let (token, _) = self.checkout_token(p).await?;
        let url = format!("{}/web/v1/payments/{token}/execute", self.env.sandbox.connect_e_web_url());
        let r = self.env.http.post(url).json(&body).send().await?;
        Ok(r.json().await?)
    }

    async fn card(&self, p: &Value, number: &str) -> Result<Value> {
        self.execute(p, json!({"cardNumber": number, "expiryDate": "12/30", "cv2": "020", "cardName": "A Customer"})).await
    }

    /// The 3-D Secure modal's answer (the token comes from the first execute's page).
    async fn three_ds(&self, token: &str, passed: bool) -> Result<Value> {
        let url = format!("{}/web/v1/payments/{token}/3ds", self.env.sandbox.connect_e_web_url());
        Ok(self.env.http.post(url).json(&json!({"authenticated": passed})).send().await?.json().await?)
    }

    /// The checkout page reports the promise; the agent looks the payment up and answers.
    async fn report(&self, p: &Value) -> Result<Value> {
        let (status, v) = self.env.post(&format!("/api/agent/payments/{}/report", p["id"].as_str().unwrap_or("")), json!({"statusCode": 0})).await?;
        assert_eq!(status, 200, "{v}");
        Ok(v)
    }

    async fn get(&self, id: &str) -> Result<Value> {
        let (status, v) = self.env.get(&format!("/api/agent/payments/{id}")).await?;
        assert_eq!(status, 200, "{v}");
        Ok(v)
    }

    async fn money_out(&self, id: &str, what: &str, body: Value, key: Option<&str>) -> Result<(u16, Value)> {
        let mut req = self.env.http.post(self.env.url(&format!("/api/agent/payments/{id}/{what}"))).bearer_auth(&self.token).json(&body);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    async fn truth(&self) -> Result<Value> {
        Ok(self.env.http.get(format!("{}/state", self.env.sandbox.connect_e_control_url())).send().await?.json().await?)
    }

    async fn control(&self, path: &str, body: Value) -> Result<()> {
        let r = self.env.http.post(format!("{}/{path}", self.env.sandbox.connect_e_control_url())).json(&body).send().await?;
        if !r.status().is_success() {
            bail!("control {path}: {}", r.status());
        }
        Ok(())
    }

    /// A captured sale of `minor` pence.
    async fn paid_sale(&self, order: &str, minor: i64, extra: Value) -> Result<Value> {
        let mut body = json!({"provider": "connect-e", "kind": "sale", "amount": minor, "currency": "GBP", "orderId": order, "moto": true});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let p = self.new_payment(body).await?;
        let r = self.card(&p, APPROVE).await?;
        assert_eq!(r["statusCode"], 0, "{r}");
        let p = self.report(&p).await?;
        assert_eq!(p["state"], "captured", "{p}");
        Ok(p)
    }

    /// Polls the payment until `pred` holds.
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
}

fn xrefs_of(truth: &Value, kind: &str, order: &str) -> Vec<Value> {
    truth["crossReferencePayments"]
        .as_array()
        .map(|a| a.iter().filter(|x| x["transactionType"] == kind && x["orderId"] == order).cloned().collect())
        .unwrap_or_default()
}

fn payments_of(truth: &Value, order: &str) -> Vec<Value> {
    truth["payments"].as_array().map(|a| a.iter().filter(|x| x["orderId"] == order).cloned().collect()).unwrap_or_default()
}

#[tokio::test]
async fn sale_then_two_partial_refunds_and_an_over_refund_refused() -> Result<()> {
    let ce = start().await?;
    let p = ce.paid_sale("CE-SALE-1", 1000, json!({})).await?;
    let id = p["id"].as_str().unwrap().to_string();
    assert_eq!(p["capturedAmount"], 1000);
    assert_eq!(p["card"]["masked"], "**** 0056", "{p}");
    assert!(p["checkoutUrl"].is_null());
    // A refund needs the POS token.
    let (status, _) = ce.env.post(&format!("/api/agent/payments/{id}/refund"), json!({"amount": 100})).await?;
    assert_eq!(status, 401);
    let (status, r1) = ce.money_out(&id, "refund", json!({"amount": 300}), None).await?;
    assert_eq!(status, 200, "{r1}");
    assert_eq!(r1["operation"]["state"], "approved", "{r1}");
    let (status, r2) = ce.money_out(&id, "refund", json!({"amount": 300}), None).await?;
    assert_eq!(status, 200, "{r2}");
    assert_eq!(r2["payment"]["refundedAmount"], 600);
    assert_eq!(r2["payment"]["refund"], "partial");
    let (status, over) = ce.money_out(&id, "refund", json!({"amount": 401}), None).await?;
    assert_eq!(status, 409, "{over}");
    assert!(over["title"].as_str().unwrap_or("").contains("400 available"), "{over}");
    let truth = ce.truth().await?;
    let refunds = xrefs_of(&truth, "REFUND", "CE-SALE-1");
    assert_eq!(refunds.len(), 2, "{truth}");
    assert!(refunds.iter().all(|r| r["amount"] == 300 && r["statusCode"] == 0), "{refunds:?}");
    let after = ce.get(&id).await?;
    assert_eq!(after["refundedAmount"], 600);
    assert_eq!(after["operations"].as_array().map(Vec::len), Some(2));
    Ok(())
}

#[tokio::test]
async fn three_d_secure_sale() -> Result<()> {
    let ce = start().await?;
    let p = ce.new_payment(json!({"provider": "connect-e", "kind": "sale", "amount": 2500, "currency": "GBP", "orderId": "CE-3DS-1"})).await?;
    let (token, form) = ce.checkout_token(&p).await?;
    assert_eq!(form, "card");
    let r = ce.card(&p, THREE_DS).await?;
    assert_eq!(r["statusCode"], 3, "{r}");
    let mid = ce.report(&p).await?;
    assert_eq!(mid["state"], "pending", "{mid}");
    assert_eq!(mid["awaiting"]["type"], "authentication", "{mid}");
    let r = ce.three_ds(&token, true).await?;
    assert_eq!(r["statusCode"], 0, "{r}");
    let done = ce.report(&p).await?;
    assert_eq!(done["state"], "captured", "{done}");
    assert!(done["authCode"].is_string());
    Ok(())
}

#[tokio::test]
async fn decline_then_a_new_token_for_the_same_order() -> Result<()> {
    let ce = start().await?;
    let body = json!({"provider": "connect-e", "kind": "sale", "amount": 700, "currency": "GBP", "orderId": "CE-DEC-1"});
    let first = ce.new_payment(body.clone()).await?;
    let r = ce.card(&first, DECLINE).await?;
    assert_eq!(r["statusCode"], 5, "{r}");
    let first = ce.report(&first).await?;
    assert_eq!(first["state"], "declined", "{first}");
    assert_eq!(first["decline"]["category"], "declined");
    // A declined payment cannot be refunded; nothing is sent.
    let (status, refused) = ce.money_out(first["id"].as_str().unwrap(), "refund", json!({"amount": 100}), None).await?;
    assert_eq!(status, 409, "{refused}");
    assert!(refused["title"].as_str().unwrap_or("").contains("declined"), "{refused}");
    let second = ce.new_payment(body).await?;
    assert_ne!(second["id"], first["id"]);
    ce.card(&second, APPROVE).await?;
    assert_eq!(ce.report(&second).await?["state"], "captured");
    // A third create for the paid order attaches to it: never a second charge.
    let (status, again) = ce.create(json!({"provider": "connect-e", "kind": "sale", "amount": 700, "currency": "GBP", "orderId": "CE-DEC-1"})).await?;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["id"], second["id"]);
    let truth = ce.truth().await?;
    let tokens: Vec<_> = truth["tokens"].as_array().unwrap().iter().filter(|t| t["orderId"] == "CE-DEC-1").collect();
    assert_eq!(tokens.len(), 2, "{truth}");
    let paid: Vec<_> = payments_of(&truth, "CE-DEC-1").into_iter().filter(|p| p["statusCode"] == 0).collect();
    assert_eq!(paid.len(), 1);
    assert!(xrefs_of(&truth, "REFUND", "CE-DEC-1").is_empty());
    Ok(())
}

#[tokio::test]
async fn preauth_then_collection_capped_and_a_void() -> Result<()> {
    let ce = start().await?;
    let p = ce.new_payment(json!({"provider": "connect-e", "kind": "preauth", "amount": 2000, "currency": "GBP", "orderId": "CE-PRE-1"})).await?;
    ce.card(&p, APPROVE).await?;
    let p = ce.report(&p).await?;
    assert_eq!(p["state"], "authorized", "{p}");
    assert_eq!(p["authorizedAmount"], 2000);
    assert_eq!(p["capturedAmount"], 0);
    let id = p["id"].as_str().unwrap().to_string();
    // Listed among the pre-authorisations to collect.
    let (_, list) = ce.env.get("/api/agent/payments?state=authorized").await?;
    assert!(list["items"].as_array().unwrap().iter().any(|i| i["id"] == id.as_str()), "{list}");
    let (status, over) = ce.money_out(&id, "capture", json!({"amount": 2001}), None).await?;
    assert_eq!(status, 409, "{over}");
    assert!(over["title"].as_str().unwrap_or("").contains("2000 available"), "{over}");
    let (status, c) = ce.money_out(&id, "capture", json!({"amount": 1500}), None).await?;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["payment"]["state"], "captured", "{c}");
    assert_eq!(c["payment"]["capturedAmount"], 1500);
    let (status, r) = ce.money_out(&id, "refund", json!({"amount": 200}), None).await?;
    assert_eq!(status, 200, "{r}");
    let truth = ce.truth().await?;
    assert_eq!(xrefs_of(&truth, "COLLECTION", "CE-PRE-1").len(), 1, "{truth}");
    assert_eq!(xrefs_of(&truth, "COLLECTION", "CE-PRE-1")[0]["amount"], 1500);
    // Another pre-authorisation, released.
    let q = ce.new_payment(json!({"provider": "connect-e", "kind": "preauth", "amount": 900, "currency": "GBP", "orderId": "CE-PRE-2"})).await?;
    ce.card(&q, APPROVE).await?;
    ce.report(&q).await?;
    let (status, v) = ce.money_out(q["id"].as_str().unwrap(), "void", json!({}), None).await?;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["payment"]["state"], "cancelled", "{v}");
    let (status, _) = ce.money_out(q["id"].as_str().unwrap(), "capture", json!({"amount": 100}), None).await?;
    assert_eq!(status, 409);
    Ok(())
}

#[tokio::test]
async fn card_on_file_repeat_payment_asks_only_for_the_cv2() -> Result<()> {
    let ce = start().await?;
    ce.paid_sale("CE-COF-1", 1200, json!({"customerId": "cust-42"})).await?;
    let (status, cards) = ce.env.get("/api/agent/cards?customerId=cust-42").await?;
    assert_eq!(status, 200, "{cards}");
    let items = cards["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{cards}");
    assert_eq!(items[0]["masked"], "**** 0056");
    assert_eq!(items[0]["expiry"], "12/30");
    assert!(!cards.to_string().contains("5200000000000056"));
    let card_id = items[0]["id"].as_i64().unwrap();
    // Another customer cannot use it.
    let (status, bad) = ce
        .create(json!({"provider": "connect-e", "amount": 500, "currency": "GBP", "orderId": "CE-COF-X", "customerId": "someone-else", "cardId": card_id}))
        .await?;
    assert_eq!(status, 400, "{bad}");
    let p = ce
        .new_payment(json!({"provider": "connect-e", "kind": "sale", "amount": 800, "currency": "GBP", "orderId": "CE-COF-2", "customerId": "cust-42", "cardId": card_id}))
        .await?;
    let (_, form) = ce.checkout_token(&p).await?;
    assert_eq!(form, "cv2");
    let r = ce.execute(&p, json!({"cv2": "020"})).await?;
    assert_eq!(r["statusCode"], 0, "{r}");
    let p = ce.report(&p).await?;
    assert_eq!(p["state"], "captured", "{p}");
    let truth = ce.truth().await?;
    let repeat = payments_of(&truth, "CE-COF-2");
    assert_eq!(repeat.len(), 1);
    assert_eq!(repeat[0]["cv2Only"], true, "{truth}");
    // Still one stored card (the same card, its reference refreshed).
    let (_, cards) = ce.env.get("/api/agent/cards?customerId=cust-42").await?;
    assert_eq!(cards["items"].as_array().unwrap().len(), 1);
    Ok(())
}

#[tokio::test]
async fn wait_pre_execute_then_resume_and_a_late_resume_refused() -> Result<()> {
    let ce = start().await?;
    let body = |order: &str| json!({"provider": "connect-e", "amount": 1500, "currency": "GBP", "orderId": order, "waitPreExecute": true});
    let p = ce.new_payment(body("CE-WPE-1")).await?;
    let r = ce.card(&p, APPROVE).await?;
    assert_eq!(r["statusCode"], 99, "{r}");
    let p = ce.report(&p).await?;
    assert_eq!(p["state"], "pending");
    assert_eq!(p["awaiting"]["type"], "resume", "{p}");
    // ?wait returns at once: the payment waits for the till, not the customer.
    let t0 = std::time::Instant::now();
    let (_, waited) = ce.env.get(&format!("/api/agent/payments/{}?wait=10", p["id"].as_str().unwrap())).await?;
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(waited["awaiting"]["type"], "resume");
    let (status, done) = ce.env.post(&format!("/api/agent/payments/{}/resume", p["id"].as_str().unwrap()), json!({})).await?;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["state"], "captured", "{done}");

    // Paused, then 16 minutes pass at the provider: the resume is refused and nothing is taken.
    let q = ce.new_payment(body("CE-WPE-2")).await?;
    ce.card(&q, APPROVE).await?;
    ce.report(&q).await?;
    ce.control("clock", json!({"advanceSeconds": 16 * 60})).await?;
    let (status, late) = ce.env.post(&format!("/api/agent/payments/{}/resume", q["id"].as_str().unwrap()), json!({})).await?;
    assert_eq!(status, 409, "{late}");
    let q = ce.get(q["id"].as_str().unwrap()).await?;
    assert!(matches!(q["state"].as_str(), Some("failed" | "expired")), "{q}");
    assert_eq!(q["capturedAmount"], 0);
    Ok(())
}

#[tokio::test]
async fn an_unused_token_is_revoked_and_a_new_create_for_its_order_revokes_it_first() -> Result<()> {
    let ce = start().await?;
    let body = json!({"provider": "connect-e", "amount": 300, "currency": "GBP", "orderId": "CE-REV-1"});
    let p = ce.new_payment(body.clone()).await?;
    let (status, c) = ce.env.post(&format!("/api/agent/payments/{}/cancel", p["id"].as_str().unwrap()), json!({})).await?;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["state"], "cancelled");
    // The same order again: a new token; then once more while that one is unused: it is revoked.
    let second = ce.new_payment(body.clone()).await?;
    let third = ce.new_payment(json!({"provider": "connect-e", "amount": 300, "currency": "GBP", "orderId": "CE-REV-1"})).await?;
    assert_ne!(second["id"], third["id"]);
    assert_eq!(ce.get(second["id"].as_str().unwrap()).await?["state"], "cancelled");
    let truth = ce.truth().await?;
    let uses: Vec<_> = truth["tokens"].as_array().unwrap().iter().filter(|t| t["orderId"] == "CE-REV-1").map(|t| t["use"].clone()).collect();
    assert_eq!(uses, vec![json!("revoked"), json!("revoked"), json!("unused")], "{truth}");
    Ok(())
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_problem_and_changes_nothing() -> Result<()> {
    let ce = start().await?;
    let (status, v) = ce.create(json!({"provider": "stripe", "amount": 100, "currency": "GBP", "orderId": "B-1"})).await?;
    assert_eq!(status, 400);
    assert_eq!(v["invalid_parameters"][0]["parameter"], "provider", "{v}");
    let (status, v) = ce.create(json!({"provider": "connect-e", "amount": 100, "currency": "ILS", "orderId": "B-2"})).await?;
    assert_eq!(status, 400);
    assert_eq!(v["invalid_parameters"][0]["parameter"], "currency", "{v}");
    assert!(v["invalid_parameters"][0]["reason"].as_str().unwrap_or("").contains("cannot take ILS"), "{v}");
    let (status, v) = ce.create(json!({"provider": "connect-e", "amount": -5, "kind": "layaway"})).await?;
    assert_eq!(status, 400);
    let named: Vec<&str> = v["invalid_parameters"].as_array().unwrap().iter().filter_map(|p| p["parameter"].as_str()).collect();
    for f in ["kind", "amount", "currency", "orderId"] {
        assert!(named.contains(&f), "{f} not named: {v}");
    }
    let (status, _) = ce.env.get("/api/agent/payments/not-a-payment").await?;
    assert_eq!(status, 404);
    let truth = ce.truth().await?;
    assert!(truth["tokens"].as_array().unwrap().is_empty(), "nothing reached Connect-E: {truth}");
    Ok(())
}

#[tokio::test]
async fn a_lost_create_answer_still_charges_once() -> Result<()> {
    let ce = start().await?;
    ce.control("faults", json!({"loseNextResponse": ["access-tokens"]})).await?;
    let p = ce.paid_sale("CE-LOST-1", 1100, json!({})).await?;
    assert_eq!(p["capturedAmount"], 1100);
    let truth = ce.truth().await?;
    let paid: Vec<_> = payments_of(&truth, "CE-LOST-1").into_iter().filter(|p| p["statusCode"] == 0).collect();
    assert_eq!(paid.len(), 1, "{truth}");
    Ok(())
}

#[tokio::test]
async fn lost_refund_and_collection_answers_and_a_5xx_burst_move_money_once() -> Result<()> {
    let ce = start().await?;
    let p = ce.paid_sale("CE-LOST-R", 1000, json!({})).await?;
    let id = p["id"].as_str().unwrap().to_string();
    // The refund happens at Connect-E, its answer never arrives: reconciled, not re-sent.
    ce.control("faults", json!({"loseNextResponse": ["cross-reference-payments"]})).await?;
    let (status, r) = ce.money_out(&id, "refund", json!({"amount": 250}), Some("r-lost-1")).await?;
    assert!(status == 200 || status == 202, "{status} {r}");
    ce.eventually(&id, 30, |v| v["refundedAmount"] == 250).await?;
    // A retry with the same key is the same refund.
    let (status, again) = ce.money_out(&id, "refund", json!({"amount": 250}), Some("r-lost-1")).await?;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["payment"]["refundedAmount"], 250);
    // A burst of 503s: the refund waits (202) and is delivered once Connect-E answers.
    ce.control("faults", json!({"failNext": {"count": 3, "status": 503}})).await?;
    let (status, r) = ce.money_out(&id, "refund", json!({"amount": 100}), Some("r-5xx-1")).await?;
    assert!(status == 200 || status == 202, "{status} {r}");
    ce.eventually(&id, 60, |v| v["refundedAmount"] == 350).await?;
    let truth = ce.truth().await?;
    let refunds = xrefs_of(&truth, "REFUND", "CE-LOST-R");
    assert_eq!(refunds.len(), 2, "exactly one refund each: {refunds:?}");

    // A collection whose answer is lost.
    let q = ce.new_payment(json!({"provider": "connect-e", "kind": "preauth", "amount": 3000, "currency": "GBP", "orderId": "CE-LOST-C"})).await?;
    ce.card(&q, APPROVE).await?;
    ce.report(&q).await?;
    let qid = q["id"].as_str().unwrap().to_string();
    ce.control("faults", json!({"loseNextResponse": ["cross-reference-payments"]})).await?;
    let (status, c) = ce.money_out(&qid, "capture", json!({"amount": 3000}), None).await?;
    assert!(status == 200 || status == 202, "{status} {c}");
    ce.eventually(&qid, 30, |v| v["capturedAmount"] == 3000).await?;
    let truth = ce.truth().await?;
    assert_eq!(xrefs_of(&truth, "COLLECTION", "CE-LOST-C").len(), 1, "{truth}");
    Ok(())
}

#[tokio::test]
async fn refunds_wait_while_connect_e_is_offline_and_go_once_it_is_back() -> Result<()> {
    let ce = start().await?;
    let p = ce.paid_sale("CE-OFF-1", 900, json!({})).await?;
    let id = p["id"].as_str().unwrap().to_string();
    ce.control("faults", json!({"offline": true})).await?;
    let (status, r) = ce.money_out(&id, "refund", json!({"amount": 400}), None).await?;
    assert_eq!(status, 202, "{r}");
    assert_eq!(r["operation"]["state"], "queued", "{r}");
    // The queued refund counts against the cap.
    let (status, over) = ce.money_out(&id, "refund", json!({"amount": 600}), None).await?;
    assert_eq!(status, 409, "{over}");
    ce.control("faults", json!({"offline": false})).await?;
    ce.eventually(&id, 30, |v| v["refundedAmount"] == 400).await?;
    assert_eq!(xrefs_of(&ce.truth().await?, "REFUND", "CE-OFF-1").len(), 1);
    Ok(())
}

/// kill -9 right before a refund is sent (its token journaled) and right after Connect-E
/// performed it (its answer not journaled): after the restart the agent reconciles the
/// journaled token before anything is sent again — exactly one refund each time.
#[tokio::test]
async fn kill_9_around_sending_a_refund_still_refunds_exactly_once() -> Result<()> {
    let mut ce = start().await?;
    let p = ce.paid_sale("CE-CRASH-1", 1000, json!({})).await?;
    let id = p["id"].as_str().unwrap().to_string();
    for (i, site) in ["gateway::after_send", "gateway::before_send"].iter().enumerate() {
        ce.env.restart_agent_with(&[("FAILPOINTS", &format!("{site}=return"))]).await?;
        let answer = ce.money_out(&id, "refund", json!({"amount": 100}), Some(&format!("crash-{i}"))).await;
        assert!(answer.is_err() || answer.as_ref().is_ok_and(|(s, _)| *s >= 500), "{site}: the agent should have died: {answer:?}");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while ce.env.agent_alive() {
            if std::time::Instant::now() > deadline {
                bail!("the agent did not die at {site}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ce.env.restart_agent().await?;
        let want = 100 * (i as i64 + 1);
        ce.eventually(&id, 30, |v| v["refundedAmount"] == want).await?;
    }
    let refunds = xrefs_of(&ce.truth().await?, "REFUND", "CE-CRASH-1");
    assert_eq!(refunds.len(), 2, "one refund per request: {refunds:?}");
    // The retried request with the first key answers that refund, moving nothing.
    let (status, again) = ce.money_out(&id, "refund", json!({"amount": 100}), Some("crash-0")).await?;
    assert_eq!(status, 200, "{again}");
    assert_eq!(xrefs_of(&ce.truth().await?, "REFUND", "CE-CRASH-1").len(), 2);
    Ok(())
}

/// A till may take Connect-E payments without any SensePass pairing.
#[tokio::test]
async fn a_till_without_a_sensepass_pairing_takes_connect_e_payments() -> Result<()> {
    let sandbox = till_sandbox::start(till_sandbox::SandboxConfig::default()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let dir = tempfile::tempdir()?;
    let mut args = vec![
        "--data-dir".to_string(),
        dir.path().display().to_string(),
        "--config".into(),
        dir.path().join("none.toml").display().to_string(),
    ];
    args.extend(till_tests::connect_e_args(&sandbox));
    let agent = till_tests::start_agent_process(dir.path(), &args, &[])?;
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let h: Value = http.get(format!("{}/api/agent/health", agent.url)).send().await?.json().await?;
        if h["status"] == "ok" {
            assert_eq!(h["paired"], false);
            assert_eq!(h["gatewayProviders"], json!(["connect-e"]));
            break;
        }
        if std::time::Instant::now() > deadline {
            bail!("not ready: {h}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = http
        .post(format!("{}/api/agent/payments", agent.url))
        .json(&json!({"provider": "connect-e", "amount": 450, "currency": "GBP", "orderId": "SOLO-1"}))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 201);
    let p: Value = r.json().await?;
    assert_eq!(p["state"], "pending");
    // The key never shows in the agent's log.
    let log = std::fs::read_to_string(&agent.log).unwrap_or_default();
    assert!(!log.contains(sandbox.connect_e_api_key()), "the Connect-E key reached the log");
    Ok(())
}

/// Connect-E's webhooks reach a till through the fleet (the till has no public address): the
/// agent gives the fleet's endpoint as `webHookUrl`, the simulator posts the completion notice
/// there, the fleet stores it once and relays it over the till's long-poll, and the till looks
/// the payment up at Connect-E. A forged notice naming no payment is ignored; one naming a
/// real, unpaid payment's token only makes the till ask Connect-E, which says "pending" — nothing
/// changes. The relay's position survives a restart: no notice is handled twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_relayed_by_the_fleet_are_confirmed_with_connect_e() -> Result<()> {
    let mut ce = start().await?;
    let chain = till_tests::fleet::OneTillChain::enrol(ce.env.data_dir.path())?;
    let (pg, fleet) = (&chain.pg, &chain.fleet);
    let till = till_tests::fleet::till_id(ce.env.data_dir.path())?;
    let relay = |h: &Value| h["fleet"]["webhooks"].clone();

    // A paid sale: its token was created with the fleet's webhook URL, and the notice comes back.
    let p = ce.paid_sale("CE-HOOK-1", 700, json!({})).await?;
    let id = p["id"].as_str().context("id")?.to_string();
    let truth = ce.truth().await?;
    let hook_url = format!("{}/api/v1/webhooks/connect-e/{till}", fleet.url);
    let t = truth["tokens"].as_array().and_then(|a| a.iter().find(|t| t["orderId"] == "CE-HOOK-1")).cloned().unwrap_or_default();
    assert_eq!(t["webHookUrl"], hook_url.as_str(), "the token asks for the fleet's webhook: {t}");
    let h = ce.env.eventually("/api/agent/health", 20, |h| relay(h)["matched"] == 1).await?;
    assert_eq!(relay(&h), json!({"cursor": relay(&h)["cursor"], "received": 1, "matched": 1, "ignored": 0}), "{h}");
    let delivered = ce.truth().await?["webhooks"].as_array().map(|a| a.iter().filter(|w| w["delivered"] == true).count());
    assert_eq!(delivered, Some(1), "the simulator delivered its notice to the fleet");
    assert_eq!(pg.query("fleet", "SELECT count(*) FROM webhooks WHERE provider = 'connect-e'")?[0][0], "1");
    assert_eq!(ce.get(&id).await?["state"], "captured");

    // Forged notices through the fleet's public endpoint.
    let http = ce.env.http.clone();
    let forge = |body: Value| {
        let (http, url) = (http.clone(), hook_url.clone());
        async move { Ok::<u16, anyhow::Error>(http.post(url).json(&body).send().await?.status().as_u16()) }
    };
    assert_eq!(forge(json!({"id": "no-such-token", "orderId": "CE-HOOK-1"})).await?, 200);
    ce.env.eventually("/api/agent/health", 20, |h| relay(h)["ignored"] == 1).await?;
    let unpaid = ce.new_payment(json!({"provider": "connect-e", "kind": "sale", "amount": 900, "currency": "GBP", "orderId": "CE-HOOK-2", "moto": true})).await?;
    let (unpaid_token, _) = ce.checkout_token(&unpaid).await?;
    assert_eq!(forge(json!({"id": unpaid_token, "orderId": "CE-HOOK-2"})).await?, 200);
    ce.env.eventually("/api/agent/health", 20, |h| relay(h)["matched"] == 2).await?;
    let still = ce.get(unpaid["id"].as_str().unwrap_or("")).await?;
    assert_eq!(still["state"], "pending", "a forged notice moved nothing: {still}");
    assert!(payments_of(&ce.truth().await?, "CE-HOOK-2").is_empty(), "and charged nothing");

    // A provider retry is stored once by the fleet and never relayed again; after a restart the
    // till resumes after the last notice it handled.
    assert_eq!(forge(json!({"id": unpaid_token, "orderId": "CE-HOOK-2"})).await?, 200);
    ce.env.restart_agent().await?;
    assert_eq!(forge(json!({"id": "another-forgery", "orderId": "CE-HOOK-3"})).await?, 200);
    let h = ce.env.eventually("/api/agent/health", 30, |h| relay(h)["ignored"] == 2).await?;
    assert_eq!(relay(&h)["received"], 4, "after the restart only the new notice was handled: {h}");
    assert_eq!(relay(&h)["matched"], 2, "{h}");
    assert_eq!(pg.query("fleet", "SELECT count(*) FROM webhooks")?[0][0], "4");
    Ok(())
}

/// Connect-E payments reach the chain's PostgreSQL like SensePass's: a keyed sale with a partial
/// refund and a declined payment at an enrolled till are replicated (a checker compares the
/// journal's gateway rows with PostgreSQL row by row), the day report counts the sale at what was
/// collected and the decline under provider `connect-e`, and a search by the card's last four
/// digits finds the sale with its neutral state. The access token (a capability) never leaves
/// the till.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_e_payments_are_replicated_to_the_fleet() -> Result<()> {
    use till_tests::fleet::{check_till, OneTillChain, ADMIN_TOKEN};
    let ce = start().await?;
    let chain = OneTillChain::enrol(ce.env.data_dir.path())?;
    let (pg, fleet) = (&chain.pg, &chain.fleet);

    let sale = ce.paid_sale("CE-FLEET-1", 1200, json!({})).await?;
    let id = sale["id"].as_str().context("id")?.to_string();
    let (status, r) = ce.money_out(&id, "refund", json!({"amount": 200}), None).await?;
    assert_eq!(status, 200, "{r}");
    let declined = ce.new_payment(json!({"provider": "connect-e", "kind": "sale", "amount": 500, "currency": "GBP", "orderId": "CE-FLEET-2"})).await?;
    let (token, _) = ce.checkout_token(&declined).await?;
    ce.card(&declined, DECLINE).await?;
    assert_eq!(ce.report(&declined).await?["state"], "declined");

    ce.env.eventually("/api/agent/health", 30, |h| h["fleet"]["changesBehind"] == 0).await?;
    let compared = check_till(pg, "fleet", ce.env.data_dir.path())?;
    assert!(compared >= 3, "two payments and a refund at least: {compared}");
    let q = |sql: &str| pg.query("fleet", sql).map(|rows| rows.into_iter().map(|r| r.join("|")).collect::<Vec<_>>());
    assert_eq!(
        q("SELECT provider, state, amount, captured, refunded FROM payments WHERE order_id = 'CE-FLEET-1'")?,
        vec!["connect-e|captured|1200|1200|200"]
    );
    assert_eq!(q("SELECT kind, amount, state FROM operations WHERE gateway AND kind = 'refund'")?, vec!["refund|200|approved"]);
    assert_eq!(q(&format!("SELECT count(*) FROM payments WHERE number = '{token}' OR local_id = '{token}'"))?, vec!["0"], "the token stayed at the till");

    let http = reqwest::Client::new();
    let day: Value = http.get(format!("{}/api/v1/reports/day", fleet.url)).bearer_auth(ADMIN_TOKEN).send().await?.json().await?;
    let line = day.as_array().and_then(|a| a.iter().find(|l| l["provider"] == "connect-e" && l["sales"] == 1)).cloned().context("a connect-e sales line")?;
    assert_eq!(line["salesAmount"].as_i64().or(line["sales_amount"].as_i64()), Some(1200), "{day}");
    let declines: i64 = day.as_array().map(|a| a.iter().filter(|l| l["provider"] == "connect-e").map(|l| l["declines"].as_i64().unwrap_or(0)).sum()).unwrap_or(0);
    assert_eq!(declines, 1, "{day}");
    let last_four = q("SELECT last_four FROM payments WHERE order_id = 'CE-FLEET-1'")?.pop().unwrap_or_default();
    assert_eq!(last_four.len(), 4, "the masked card gives the last four digits");
    let found: Value = http.get(format!("{}/api/v1/payments/search?last_four={last_four}", fleet.url)).bearer_auth(ADMIN_TOKEN).send().await?.json().await?;
    assert_eq!(found[0]["state"], "captured", "{found}");
    assert_eq!(found[0]["provider"], "connect-e");
    Ok(())
}
