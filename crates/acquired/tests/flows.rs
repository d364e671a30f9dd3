//! Acquired flows against the sandbox's Acquired simulator over real sockets (port 0): sessions,
//! cart changes, the 3-D Secure test cards, expiry, capture and refunds, forged redirects and
//! webhooks, validation errors, the token cache, and answers lost on every call that moves money.

use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use till_acquired::gateway::SessionSettings;
use till_acquired::wire::{Tds, TransactionDetails};
use till_acquired::{Acquired, Client, Config, Error, PaymentRef, Redirect, SessionRequest, VerifyError};
use till_core::{Currency, Minor, Money};
use till_gateway::{
    CreatePayment, DeclineCategory, Gateway, GatewayError, Operation, Payment, PaymentKind,
    PaymentState, Reconciled,
};
use till_sandbox::{start, SandboxConfig, SandboxHandle};

const RETURN_URL: &str = "https://till.example/acquired/return";

struct H {
    sb: SandboxHandle,
    gw: Acquired,
    http: reqwest::Client,
}

fn config(sb: &SandboxHandle) -> Config {
    let mut c = Config::new(sb.acquired_url(), sb.acquired_components_url(), sb.acquired_app_id(), sb.acquired_app_key());
    c.timeout = Duration::from_secs(3);
    c.company_id = Some(till_sandbox::ACQUIRED_COMPANY_ID.to_string());
    c
}

async fn setup_with(webhook_url: Option<String>) -> H {
    let sb = start(SandboxConfig::default()).await.unwrap();
    let client = Client::new(config(&sb)).unwrap();
    let settings = SessionSettings {
        redirect_url: Some(RETURN_URL.into()),
        contact_url: Some("https://till.example/contact".into()),
        webhook_url,
        ..SessionSettings::default()
    };
    H { gw: Acquired::new(client, settings), sb, http: reqwest::Client::new() }
}

async fn setup() -> H {
    setup_with(None).await
}

fn request(order: &str, minor: i64, kind: PaymentKind) -> CreatePayment {
    CreatePayment {
        id: format!("pay-{order}"),
        kind,
        amount: Money::new(minor, Currency::Gbp),
        order_id: order.into(),
        description: None,
        moto: false,
        wait_pre_execute: false,
        customer_id: None,
        stored_card: None,
        webhook_url: None,
        return_url: None,
    }
}

impl H {
    async fn control(&self, path: &str, body: Value) -> Value {
        let r = self.http.post(format!("{}/{path}", self.sb.acquired_control_url())).json(&body).send().await.unwrap();
        assert!(r.status().is_success(), "control {path}: {}", r.status());
        r.json().await.unwrap()
    }

    async fn state(&self) -> Value {
        self.http.get(format!("{}/state", self.sb.acquired_control_url())).send().await.unwrap().json().await.unwrap()
    }

    async fn post(&self, url: &str, body: Value) -> (u16, Value) {
        let r = self.http.post(url).json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The Components script's card submission for a session.
    async fn confirm(&self, payment: &Payment, card: &str) -> (u16, Value) {
        let sid = PaymentRef::parse(&payment.reference).session_id.expose().to_string();
        let origin = self.sb.acquired_components_url().replace("/v1/acquired.js", "");
        self.post(
            &format!("{origin}/v1/components/sessions/{sid}/confirm"),
            json!({"card": {"number": card, "expiry_month": "12", "expiry_year": "30", "cvv": "123", "holder_name": "A Customer"}}),
        )
        .await
    }

    /// Pays with `card` (picking `pick` in the challenge emulator), takes the redirect through
    /// the gateway and confirms with a look-up, as the agent does. Answers the final answer.
    async fn pay(&self, payment: &mut Payment, card: &str, pick: Option<(&str, &str)>) -> Value {
        let (status, mut v) = self.confirm(payment, card).await;
        assert_eq!(status, 200, "{v}");
        if v["status"] == "tds_pending" {
            let (s, r) = pick.expect("a challenge card needs a pick");
            let url = v["tds"]["url"].as_str().unwrap().to_string();
            let (status, answer) = self.post(&url, json!({"status": s, "reason": r})).await;
            assert_eq!(status, 200, "{answer}");
            v = answer;
        }
        let redirect: Redirect = serde_json::from_value(v["redirect"]["fields"].clone()).unwrap();
        let (reference, seen) = self.gw.observe_redirect(payment, &redirect).unwrap();
        payment.reference = reference;
        payment.observe(&seen);
        let confirmed = self.gw.fetch(payment).await.unwrap();
        assert_eq!(confirmed.state, seen.state, "the look-up confirms the redirect");
        payment.observe(&confirmed);
        v
    }
}

#[tokio::test]
async fn a_sale_with_every_session_field() {
    let h = setup().await;
    let mut p = h.gw.create(&request("ORD-SALE-1", 1502, PaymentKind::Sale)).await.unwrap();
    assert_eq!(p.state, PaymentState::Pending);
    match p.screen.as_ref().unwrap() {
        till_gateway::CashierScreen::ScriptCheckout { script_url, payment_token, .. } => {
            assert_eq!(*script_url, h.sb.acquired_components_url());
            assert_eq!(payment_token, &p.reference);
        }
        other => panic!("{other:?}"),
    }
    // the script is served from its own host
    let js = h.http.get(h.sb.acquired_components_url()).send().await.unwrap().text().await.unwrap();
    assert!(js.contains("confirmPayment"));
    let st = h.state().await;
    let body = &st["sessions"][0]["body"];
    assert_eq!(body["transaction"]["amount"], json!(15.02));
    assert_eq!(body["transaction"]["currency"], "gbp");
    assert_eq!(body["transaction"]["capture"], true);
    assert_eq!(body["transaction"]["custom1"], "pay-ORD-SALE-1");
    assert_eq!(body["tds"]["is_active"], true);
    assert_eq!(body["tds"]["redirect_url"], RETURN_URL);
    assert_eq!(body["tds"]["challenge_preference"], "no_preference");

    h.pay(&mut p, "4111111111111111", None).await;
    assert_eq!(p.state, PaymentState::Captured);
    assert_eq!(p.amounts.captured, Minor(1502));
    assert_eq!(p.card.as_ref().unwrap().masked.as_deref(), Some("411111******1111"));
    let st = h.state().await;
    assert_eq!(st["transactions"].as_array().unwrap().len(), 1);
    assert_eq!(st["transactions"][0]["amountMinor"], 1502);
    assert_eq!(st["transactions"][0]["status"], "success");
    // a paid session cannot be paid again
    let (status, v) = h.confirm(&p, "4111111111111111").await;
    assert_eq!(status, 409, "{v}");
    h.sb.shutdown().await;
}

#[tokio::test]
async fn the_cart_changes_after_the_session_was_created() {
    let h = setup().await;
    let mut p = h.gw.create(&request("ORD-CART-1", 1000, PaymentKind::Sale)).await.unwrap();
    // a delivery charge, then a coupon
    h.gw.update_amount(&p, Money::new(1499, Currency::Gbp)).await.unwrap();
    h.gw.update_amount(&p, Money::new(1250, Currency::Gbp)).await.unwrap();
    p.amount = Money::new(1250, Currency::Gbp);
    h.pay(&mut p, "4000018525249219", None).await;
    assert_eq!(p.state, PaymentState::Captured);
    assert_eq!(p.amounts.captured, Minor(1250));
    let st = h.state().await;
    assert_eq!(st["sessions"][0]["amountHistory"], json!([1000, 1499, 1250]));
    assert_eq!(st["transactions"][0]["amountMinor"], 1250, "paid with the latest amount");
    // no updates after payment
    let e = h.gw.update_amount(&p, Money::new(1, Currency::Gbp)).await.unwrap_err();
    assert!(e.certainly_not_performed());
    h.sb.shutdown().await;
}

#[tokio::test]
async fn every_3ds_test_card_maps_to_a_neutral_state_and_reason() {
    let h = setup().await;
    let cases: [(&str, Option<(&str, &str)>, PaymentState, Option<(&str, &str)>); 9] = [
        ("4000018525249219", None, PaymentState::Captured, None),
        ("4000014070307353", None, PaymentState::Declined, Some(("tds_failed", "low_confidence"))),
        ("4000016387798026", None, PaymentState::Declined, Some(("tds_failed", "suspected_fraud"))),
        ("4000010308215921", None, PaymentState::Expired, Some(("tds_expired", "challenge_time_out"))),
        ("4000017000141438", None, PaymentState::Declined, Some(("tds_failed", "acs_technical_issue"))),
        ("4000015979612025", Some(("success", "")), PaymentState::Captured, None),
        ("4000015979612025", Some(("tds_error", "acs_technical_issue")), PaymentState::Failed, Some(("tds_error", "acs_technical_issue"))),
        ("4000015979612025", Some(("tds_expired", "challenge_time_out")), PaymentState::Expired, Some(("tds_expired", "challenge_time_out"))),
        ("4000000000009995", None, PaymentState::Declined, Some(("declined", "insufficient_funds"))),
    ];
    for (i, (card, pick, state, reason)) in cases.into_iter().enumerate() {
        let mut p = h.gw.create(&request(&format!("ORD-3DS-{i}"), 700 + i as i64, PaymentKind::Sale)).await.unwrap();
        h.pay(&mut p, card, pick).await;
        assert_eq!(p.state, state, "{card} {pick:?}");
        match reason {
            None => assert!(p.decline.is_none()),
            Some((status, why)) => {
                let d = p.decline.as_ref().unwrap();
                assert_eq!(d.provider_code.as_deref(), Some(status), "{card}");
                assert_eq!(d.message.as_deref(), Some(why), "{card}");
            }
        }
    }
    let st = h.state().await;
    let captured: Vec<i64> = st["transactions"].as_array().unwrap().iter().map(|t| t["capturedMinor"].as_i64().unwrap()).collect();
    assert_eq!(captured.iter().filter(|c| **c > 0).count(), 2, "only the two successes took money: {captured:?}");
    h.sb.shutdown().await;
}

#[tokio::test]
async fn an_expired_session_can_be_neither_paid_nor_updated() {
    let h = setup().await;
    let mut p = h.gw.create(&request("ORD-EXP-1", 900, PaymentKind::Sale)).await.unwrap();
    h.control("clock", json!({"advanceSeconds": 601})).await;
    let (status, v) = h.confirm(&p, "4111111111111111").await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["invalid_parameters"][0]["parameter"], "session_id");
    let e = h.gw.update_amount(&p, Money::new(950, Currency::Gbp)).await.unwrap_err();
    assert!(matches!(e, GatewayError::InvalidParameters { .. }), "{e}");
    // without a transaction the session is pending until it can no longer be paid …
    assert_eq!(h.gw.fetch(&p).await.unwrap().state, PaymentState::Pending);
    // … and expired after its 10 minutes and the grace for a challenge in progress
    p.expires_at = Some(time::OffsetDateTime::now_utc() - time::Duration::minutes(16));
    let obs = h.gw.fetch(&p).await.unwrap();
    assert_eq!(obs.state, PaymentState::Expired);
    assert_eq!(obs.decline.unwrap().category, DeclineCategory::Expired);
    let st = h.state().await;
    assert!(st["transactions"].as_array().unwrap().is_empty());
    assert_eq!(st["refusedConfirms"].as_array().unwrap().len(), 1);
    // a fresh session for the same order is fine
    let mut q = h.gw.create(&request("ORD-EXP-1", 900, PaymentKind::Sale)).await.unwrap();
    h.pay(&mut q, "4111111111111111", None).await;
    assert_eq!(q.state, PaymentState::Captured);
    h.sb.shutdown().await;
}

async fn authorised(h: &H, order: &str, minor: i64) -> Payment {
    let mut p = h.gw.create(&request(order, minor, PaymentKind::PreAuth)).await.unwrap();
    h.pay(&mut p, "4111111111111111", None).await;
    assert_eq!(p.state, PaymentState::Authorized);
    assert_eq!(p.amounts.authorized, Minor(minor));
    p
}

async fn captured(h: &H, order: &str, minor: i64) -> Payment {
    let mut p = h.gw.create(&request(order, minor, PaymentKind::Sale)).await.unwrap();
    h.pay(&mut p, "4111111111111111", None).await;
    assert_eq!(p.state, PaymentState::Captured);
    p
}

#[tokio::test]
async fn auth_only_then_capture() {
    let h = setup().await;
    let mut p = authorised(&h, "ORD-AUTH-1", 2000).await;
    assert_eq!(h.state().await["sessions"][0]["body"]["transaction"]["capture"], false);
    let op = Operation::Capture(Minor(1800));
    p.check(op, Minor::ZERO).unwrap();
    let ticket = h.gw.prepare(&p, "cap-1", op).await.unwrap();
    let outcome = h.gw.execute(&p, &ticket).await.unwrap();
    assert!(outcome.approved);
    p.record(op, &outcome);
    assert_eq!(p.state, PaymentState::Captured);
    let seen = h.gw.fetch(&p).await.unwrap();
    assert_eq!(seen.state, PaymentState::Captured);
    assert_eq!(seen.captured, Some(Minor(1800)));
    // a second capture is refused and changes nothing
    let e = h.gw.capture(&p, &ticket).await.unwrap_err();
    assert!(matches!(e, GatewayError::Refused { status: 409, .. }), "{e}");
    let st = h.state().await;
    assert_eq!(st["transactions"][0]["capturedMinor"], 1800);
    h.sb.shutdown().await;
}

#[tokio::test]
async fn partial_refunds_bounded_by_the_capture() {
    let h = setup().await;
    let mut p = captured(&h, "ORD-REF-1", 2000).await;
    for (id, minor) in [("r1", 500), ("r2", 300)] {
        let op = Operation::Refund(Minor(minor));
        let t = h.gw.prepare(&p, id, op).await.unwrap();
        let o = h.gw.execute(&p, &t).await.unwrap();
        assert!(o.approved && o.provider_ref.is_some());
        p.record(op, &o);
    }
    assert_eq!(p.amounts.refunded, Minor(800));
    // more than what is left: refused by Acquired, field by field
    let t = h.gw.prepare(&p, "r3", Operation::Refund(Minor(1201))).await.unwrap();
    match h.gw.execute(&p, &t).await.unwrap_err() {
        GatewayError::InvalidParameters { parameters, .. } => {
            assert!(parameters.iter().any(|(p, _)| p == "amount"), "Acquired's transaction.amount, as the local API names it: {parameters:?}")
        }
        e => panic!("{e}"),
    }
    let seen = h.gw.fetch(&p).await.unwrap();
    assert_eq!(seen.refunded, Some(Minor(800)));
    let st = h.state().await;
    assert_eq!(st["transactions"][0]["refundedMinor"], 800);
    assert_eq!(st["operations"].as_array().unwrap().iter().filter(|o| o["kind"] == "refund").count(), 2);
    h.sb.shutdown().await;
}

#[tokio::test]
async fn a_void_releases_an_authorisation() {
    let h = setup().await;
    let mut p = authorised(&h, "ORD-VOID-1", 1200).await;
    let t = h.gw.prepare(&p, "v1", Operation::Void).await.unwrap();
    let o = h.gw.execute(&p, &t).await.unwrap();
    assert!(o.approved);
    p.record(Operation::Void, &o);
    assert_eq!(p.state, PaymentState::Cancelled);
    assert_eq!(h.gw.fetch(&p).await.unwrap().state, PaymentState::Cancelled);
    h.sb.shutdown().await;
}

#[tokio::test]
async fn a_forged_redirect_is_refused() {
    let h = setup().await;
    let mut p = h.gw.create(&request("ORD-FORGE-1", 500, PaymentKind::Sale)).await.unwrap();
    let (_, v) = h.confirm(&p, "4000000000009995").await;
    let real: Redirect = serde_json::from_value(v["redirect"]["fields"].clone()).unwrap();
    assert_eq!(real.status, "declined");
    // the cardholder edits the form: "declined" becomes "success"
    let mut forged = real.clone();
    forged.status = "success".into();
    assert_eq!(h.gw.observe_redirect(&p, &forged).unwrap_err(), VerifyError::BadHash);
    // a hash made with a guessed key
    forged.hash = till_acquired::verify::redirect_hash("guess", "success", &real.transaction_id, &real.order_id, &real.timestamp);
    assert_eq!(h.gw.observe_redirect(&p, &forged).unwrap_err(), VerifyError::BadHash);
    // a genuine redirect of another order
    let other = h.gw.create(&request("ORD-FORGE-2", 500, PaymentKind::Sale)).await.unwrap();
    assert!(matches!(h.gw.observe_redirect(&other, &real), Err(VerifyError::Body(_))));
    assert_eq!(p.state, PaymentState::Pending, "nothing changed");
    let (reference, seen) = h.gw.observe_redirect(&p, &real).unwrap();
    p.reference = reference;
    p.observe(&seen);
    assert_eq!(p.state, PaymentState::Declined);
    h.sb.shutdown().await;
}

/// A webhook receiver on port 0: records each delivery and answers the next scripted status.
#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<(axum::http::HeaderMap, Vec<u8>)>>>,
    answers: Arc<Mutex<Vec<u16>>>,
}

async fn receiver(answers: Vec<u16>) -> (String, Receiver) {
    let r = Receiver { answers: Arc::new(Mutex::new(answers)), ..Receiver::default() };
    let state = r.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let state = state.clone();
            async move {
                state.seen.lock().unwrap().push((headers, body.to_vec()));
                let mut a = state.answers.lock().unwrap();
                let code = if a.is_empty() { 200 } else { a.remove(0) };
                axum::http::StatusCode::from_u16(code).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), r)
}

async fn wait_for(r: &Receiver, n: usize) {
    for _ in 0..200 {
        if r.seen.lock().unwrap().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("expected {n} webhook deliveries, got {}", r.seen.lock().unwrap().len());
}

#[tokio::test]
async fn webhooks_v2_are_verified_and_forgeries_refused() {
    let (url, rx) = receiver(vec![500, 503]).await;
    let h = setup_with(Some(url)).await;
    h.control("settings", json!({"webhookTimeScale": 600})).await;
    let mut p = h.gw.create(&request("ORD-HOOK-1", 800, PaymentKind::Sale)).await.unwrap();
    h.pay(&mut p, "4000014070307353", None).await;
    wait_for(&rx, 3).await;
    let (headers, body) = rx.seen.lock().unwrap()[2].clone();
    assert_eq!(headers["webhook-version"], "2");
    assert_eq!(headers["company-id"], till_sandbox::ACQUIRED_COMPANY_ID);
    assert!(headers.contains_key("mid"));
    assert!(body.contains(&b'\n'), "the body is sent with whitespace");
    let hash = headers["hash"].to_str().unwrap();
    let w = h.gw.verify_webhook(&body, Some(hash)).unwrap();
    assert_eq!(w.webhook_type, "status_update");
    assert_eq!(w.webhook_body.status, "tds_failed");
    assert_eq!(w.webhook_body.reason.as_deref(), Some("low_confidence"));
    assert_eq!(w.webhook_body.order_id, "ORD-HOOK-1");
    assert_eq!(w.webhook_id, w.webhook_id.to_ascii_lowercase());
    // the three deliveries are the same webhook (one id), the retries 5 minutes apart
    let ids: Vec<String> = rx.seen.lock().unwrap().iter().map(|(_, b)| serde_json::from_slice::<Value>(b).unwrap()["webhook_id"].as_str().unwrap().to_string()).collect();
    assert!(ids.iter().all(|i| *i == ids[0]));
    let st = h.state().await;
    let delays: Vec<i64> = st["webhooks"].as_array().unwrap().iter().map(|a| a["delaySeconds"].as_i64().unwrap()).collect();
    assert_eq!(delays, vec![0, 300, 600]);
    // forged: a status changed, or a hash made with another key
    let forged = String::from_utf8(body.clone()).unwrap().replace("tds_failed", "success");
    assert_eq!(h.gw.verify_webhook(forged.as_bytes(), Some(hash)).unwrap_err(), VerifyError::BadHash);
    let other = till_acquired::verify::webhook_hash("guess", forged.as_bytes());
    assert_eq!(h.gw.verify_webhook(forged.as_bytes(), Some(&other)).unwrap_err(), VerifyError::BadHash);
    assert_eq!(h.gw.verify_webhook(&body, None).unwrap_err(), VerifyError::Missing("Hash header"));
    h.sb.shutdown().await;
}

#[tokio::test]
async fn an_undelivered_webhook_is_dropped_after_25_minutes() {
    let (url, rx) = receiver(vec![500; 20]).await;
    let h = setup_with(Some(url)).await;
    h.control("settings", json!({"webhookTimeScale": 1500})).await;
    let mut p = h.gw.create(&request("ORD-HOOK-2", 800, PaymentKind::Sale)).await.unwrap();
    h.pay(&mut p, "4111111111111111", None).await;
    wait_for(&rx, 6).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(rx.seen.lock().unwrap().len(), 6, "0, 5, 10, 15, 20, 25 minutes, then dropped");
    h.sb.shutdown().await;
}

#[tokio::test]
async fn a_400_names_every_invalid_parameter() {
    let h = setup().await;
    let mut t = TransactionDetails::new("ORD-VAL-1", Money::new(100, Currency::Gbp)).unwrap();
    t.order_id = String::new();
    t.amount = serde_json::Number::from_f64(15.021).unwrap();
    t.currency = "GBP".into();
    let mut body = SessionRequest::new(t);
    body.tds = Some(Tds {
        is_active: true,
        challenge_preference: None,
        challenge_window_size: None,
        contact_url: None,
        redirect_url: Some("not a url".into()),
        webhook_url: None,
    });
    let e = h.gw.client().create_session(&body).await.unwrap_err();
    assert!(e.certainly_not_performed());
    let Error::Api { status: 400, error } = &e else { panic!("{e}") };
    assert_eq!(error.error_type.as_deref(), Some("validation"));
    assert_eq!(error.instance.as_deref(), Some("/v1/payment-sessions"));
    let named: Vec<&str> = e.invalid_parameters().iter().map(|p| p.parameter.as_str()).collect();
    assert_eq!(named, ["transaction.order_id", "transaction.amount", "transaction.currency", "tds.redirect_url"]);
    assert_eq!(e.invalid_parameters()[0].reason, "transaction.order_id can not be empty");
    assert!(h.state().await["sessions"].as_array().unwrap().is_empty(), "nothing was created");
    h.sb.shutdown().await;
}

#[tokio::test]
async fn the_token_is_reused_for_its_hour_and_renewed_on_401() {
    let h = setup().await;
    for i in 0..3 {
        h.gw.create(&request(&format!("ORD-TOK-{i}"), 100, PaymentKind::Sale)).await.unwrap();
    }
    assert_eq!(h.state().await["logins"], 1, "one login for three calls");
    // the hour is over at Acquired (the client's clock does not know yet)
    h.control("tokens/expire", json!({})).await;
    h.gw.create(&request("ORD-TOK-3", 100, PaymentKind::Sale)).await.unwrap();
    let st = h.state().await;
    assert_eq!(st["logins"], 2);
    assert_eq!(st["calls"]["unauthorized"], 1);
    assert_eq!(st["sessions"].as_array().unwrap().len(), 4, "the refused call was sent once more, once");
    // many calls finding no token at once log in once (single flight)
    h.gw.client().forget_token().await;
    let calls = (0..8).map(|i| {
        let gw = h.gw.clone();
        async move { gw.create(&request(&format!("ORD-TOK-P{i}"), 100, PaymentKind::Sale)).await.unwrap() }
    });
    futures_join(calls).await;
    assert_eq!(h.state().await["logins"], 3);
    // wrong credentials: the documented 401
    let mut c = config(&h.sb);
    c.app_key = till_gateway::Opaque::new("wrong");
    let e = Client::new(c).unwrap().login().await.unwrap_err();
    let Error::Api { status: 401, error } = e else { panic!() };
    assert_eq!(error.error_type.as_deref(), Some("unauthorized"));
    assert_eq!(error.instance.as_deref(), Some("/v1/login"));
    h.sb.shutdown().await;
}

async fn futures_join<F: std::future::Future + Send + 'static>(fs: impl Iterator<Item = F>) where F::Output: Send + 'static {
    let handles: Vec<_> = fs.map(tokio::spawn).collect();
    for h in handles {
        h.await.unwrap();
    }
}

fn unknown(e: &GatewayError) -> bool {
    !e.certainly_not_performed()
}

#[tokio::test]
async fn a_lost_session_create_is_never_charged_twice() {
    let h = setup().await;
    h.control("faults", json!({"loseNextResponse": ["payment-sessions"]})).await;
    let req = request("ORD-LOST-C", 1000, PaymentKind::Sale);
    let e = h.gw.create(&req).await.unwrap_err();
    assert!(unknown(&e), "{e}");
    // the session made for it was never shown to anyone: it cannot take money
    assert!(h.gw.find(&req).await.unwrap().is_none());
    let mut p = h.gw.create(&req).await.unwrap();
    h.pay(&mut p, "4111111111111111", None).await;
    let st = h.state().await;
    assert_eq!(st["sessions"].as_array().unwrap().len(), 2);
    let charges: Vec<&Value> = st["transactions"].as_array().unwrap().iter().filter(|t| t["orderId"] == "ORD-LOST-C").collect();
    assert_eq!(charges.len(), 1, "exactly one charge");
    h.sb.shutdown().await;
}

#[tokio::test]
async fn a_lost_update_is_sent_again_and_the_latest_amount_is_paid_once() {
    let h = setup().await;
    let mut p = h.gw.create(&request("ORD-LOST-U", 1000, PaymentKind::Sale)).await.unwrap();
    h.control("faults", json!({"loseNextResponse": ["payment-sessions-update"]})).await;
    let e = h.gw.update_amount(&p, Money::new(1300, Currency::Gbp)).await.unwrap_err();
    assert!(unknown(&e), "{e}");
    h.gw.update_amount(&p, Money::new(1300, Currency::Gbp)).await.unwrap();
    p.amount = Money::new(1300, Currency::Gbp);
    h.pay(&mut p, "4111111111111111", None).await;
    let st = h.state().await;
    assert_eq!(st["sessions"][0]["updates"], 2);
    assert_eq!(st["sessions"][0]["amountHistory"], json!([1000, 1300]));
    assert_eq!(st["transactions"].as_array().unwrap().len(), 1, "one charge");
    assert_eq!(st["transactions"][0]["amountMinor"], 1300);
    h.sb.shutdown().await;
}

#[tokio::test]
async fn lost_captures_are_reconciled_to_exactly_one_capture() {
    let h = setup().await;
    // the capture happened, its answer was lost
    let p = authorised(&h, "ORD-LOST-CAP", 1500).await;
    let op = Operation::Capture(Minor(1500));
    let t = h.gw.prepare(&p, "cap-1", op).await.unwrap();
    h.control("faults", json!({"loseNextResponse": ["capture"]})).await;
    let e = h.gw.execute(&p, &t).await.unwrap_err();
    assert!(unknown(&e), "{e}");
    assert!(matches!(h.gw.reconcile(&p, &t).await.unwrap(), Reconciled::Performed(o) if o.approved));
    // a 5xx before anything was done: not performed, sent again
    let q = authorised(&h, "ORD-LOST-CAP2", 900).await;
    let t2 = h.gw.prepare(&q, "cap-2", Operation::Capture(Minor(900))).await.unwrap();
    h.control("faults", json!({"failNext": {"count": 1, "status": 503}})).await;
    let e = h.gw.execute(&q, &t2).await.unwrap_err();
    assert!(unknown(&e), "{e}");
    assert_eq!(h.gw.reconcile(&q, &t2).await.unwrap(), Reconciled::NotPerformed);
    assert!(h.gw.execute(&q, &t2).await.unwrap().approved);
    let st = h.state().await;
    let caps: Vec<&Value> = st["operations"].as_array().unwrap().iter().filter(|o| o["kind"] == "capture").collect();
    assert_eq!(caps.len(), 2, "one capture per authorisation");
    assert_ne!(caps[0]["transactionId"], caps[1]["transactionId"]);
    h.sb.shutdown().await;
}

#[tokio::test]
async fn lost_refunds_are_reconciled_to_exactly_one_refund() {
    let h = setup().await;
    let mut p = captured(&h, "ORD-LOST-REF", 3000).await;
    // one refund already done, so the baseline is not zero
    let op0 = Operation::Refund(Minor(400));
    let t0 = h.gw.prepare(&p, "r0", op0).await.unwrap();
    let o0 = h.gw.execute(&p, &t0).await.unwrap();
    p.record(op0, &o0);
    // the refund happened, its answer was lost
    let op = Operation::Refund(Minor(700));
    let t = h.gw.prepare(&p, "r1", op).await.unwrap();
    h.control("faults", json!({"loseNextResponse": ["refund"]})).await;
    let e = h.gw.execute(&p, &t).await.unwrap_err();
    assert!(unknown(&e), "{e}");
    let Reconciled::Performed(o) = h.gw.reconcile(&p, &t).await.unwrap() else { panic!("performed") };
    p.record(op, &o);
    // a 5xx before anything was done: not performed, sent again once
    let op2 = Operation::Refund(Minor(200));
    let t2 = h.gw.prepare(&p, "r2", op2).await.unwrap();
    h.control("faults", json!({"failNext": {"count": 1, "status": 500}})).await;
    assert!(unknown(&h.gw.execute(&p, &t2).await.unwrap_err()));
    assert_eq!(h.gw.reconcile(&p, &t2).await.unwrap(), Reconciled::NotPerformed);
    let o2 = h.gw.execute(&p, &t2).await.unwrap();
    p.record(op2, &o2);
    assert_eq!(p.amounts.refunded, Minor(1300));
    let st = h.state().await;
    let refunds: Vec<i64> = st["operations"].as_array().unwrap().iter().filter(|o| o["kind"] == "refund").map(|o| o["amountMinor"].as_i64().unwrap()).collect();
    assert_eq!(refunds, vec![400, 700, 200], "each refund exactly once");
    assert_eq!(st["transactions"][0]["refundedMinor"], 1300);
    h.sb.shutdown().await;
}

#[tokio::test]
async fn an_offline_api_is_certainly_not_performed() {
    let h = setup().await;
    h.control("faults", json!({"offline": true})).await;
    let e = h.gw.create(&request("ORD-OFF-1", 100, PaymentKind::Sale)).await.unwrap_err();
    assert!(e.is_unreachable(), "{e}");
    let r = h.http.delete(format!("{}/faults", h.sb.acquired_control_url())).send().await.unwrap();
    assert!(r.status().is_success());
    h.gw.create(&request("ORD-OFF-1", 100, PaymentKind::Sale)).await.unwrap();
    h.sb.shutdown().await;
}
