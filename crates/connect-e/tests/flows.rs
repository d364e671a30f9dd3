//! The flows of the Connect-E fact sheet (§8) end to end: the client and its `Gateway`
//! implementation against the sandbox's Connect-E simulator over real sockets (port 0).
//! Where a cardholder types a card, the test posts to the simulator's card-entry endpoint —
//! the same HTTP call its `client.js` makes. Ground truth comes from the control API.

use serde_json::{json, Value};
use std::time::Duration;
use till_connect_e::{Client, Config, ConnectE, Error};
use till_core::{Currency, Minor, Money};
use till_gateway::{
    Awaiting, CashierScreen, CheckoutForm, CreatePayment, DeclineCategory, Gateway, GatewayError,
    Operation, OperationRefused, Payment, PaymentKind, PaymentState, Reconciled,
};
use till_sandbox::{SandboxConfig, SandboxHandle};

const APPROVE: &str = "5200000000000056";
const THREE_DS: &str = "4456530000001096";
const DECLINE: &str = "4456530000001013";

struct World {
    sandbox: SandboxHandle,
    gw: ConnectE,
    http: reqwest::Client,
}

async fn world() -> World {
    world_with(|_| {}).await
}

async fn world_with(tweak: impl FnOnce(&mut Config)) -> World {
    let sandbox = till_sandbox::start(SandboxConfig::default()).await.unwrap();
    let mut config = Config::new(
        sandbox.connect_e_url(),
        sandbox.connect_e_web_url(),
        sandbox.connect_e_api_key(),
        sandbox.connect_e_merchant_url(),
    );
    config.timeout = Duration::from_secs(3);
    tweak(&mut config);
    let gw = ConnectE::new(Client::new(config).unwrap(), None);
    World {
        sandbox,
        gw,
        http: reqwest::Client::new(),
    }
}

fn request(order: &str, kind: PaymentKind, minor: i64) -> CreatePayment {
    CreatePayment {
        id: format!("pay-{order}"),
        kind,
        amount: Money::new(minor, Currency::Gbp),
        order_id: order.to_string(),
        description: None,
        moto: true,
        wait_pre_execute: false,
        customer_id: None,
        stored_card: None,
        webhook_url: None,
        return_url: None,
    }
}

impl World {
    /// The simulator's ground truth.
    async fn truth(&self) -> Value {
        self.http
            .get(format!("{}/state", self.sandbox.connect_e_control_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}/{path}", self.sandbox.connect_e_control_url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "control {path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// What client.js posts when the cardholder presses Pay.
    async fn enter(&self, payment: &Payment, body: Value) -> (u16, Value) {
        // the checkout's payment token while pending; the same value is the payment's reference
        let token = match &payment.screen {
            Some(CashierScreen::ScriptCheckout { payment_token, .. }) => {
                payment_token.expose().to_string()
            }
            _ => payment.reference.expose().to_string(),
        };
        let url = format!(
            "{}/web/v1/payments/{token}/execute",
            self.sandbox.connect_e_web_url()
        );
        let r = self.http.post(url).json(&body).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn card(&self, payment: &Payment, number: &str) -> Value {
        let (status, body) =
            self.enter(payment, json!({"cardNumber": number, "expiryDate": "12/30", "cv2": "020", "cardName": "A Customer"})).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The cardholder's answer in the 3-D Secure modal.
    async fn three_ds(&self, payment: &Payment, passed: bool) -> Value {
        let url = format!(
            "{}/web/v1/payments/{}/3ds",
            self.sandbox.connect_e_web_url(),
            payment.reference.expose()
        );
        let r = self
            .http
            .post(url)
            .json(&json!({"authenticated": passed}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    async fn refresh(&self, p: &mut Payment) {
        let obs = self.gw.fetch(p).await.unwrap();
        p.observe(&obs);
    }

    /// A captured sale of `minor` on `card`.
    async fn paid_sale(&self, order: &str, minor: i64, card: &str) -> Payment {
        let mut p = self
            .gw
            .create(&request(order, PaymentKind::Sale, minor))
            .await
            .unwrap();
        let r = self.card(&p, card).await;
        if r["statusCode"] == 3 {
            self.three_ds(&p, true).await;
        }
        self.refresh(&mut p).await;
        assert_eq!(p.state, PaymentState::Captured);
        p
    }

    async fn money_out(
        &self,
        p: &mut Payment,
        id: &str,
        op: Operation,
    ) -> Result<till_gateway::OperationOutcome, GatewayError> {
        p.check(op, Minor::ZERO).unwrap();
        let ticket = self.gw.prepare(p, id, op).await?;
        let outcome = self.gw.execute(p, &ticket).await?;
        p.record(op, &outcome);
        Ok(outcome)
    }
}

fn count(truth: &Value, list: &str, pred: impl Fn(&Value) -> bool) -> usize {
    truth[list]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| pred(v))
        .count()
}

#[tokio::test]
async fn sale_with_a_keyed_card() {
    let w = world().await;
    let mut p =
        w.gw.create(&request("S-1", PaymentKind::Sale, 1250))
            .await
            .unwrap();
    assert_eq!(p.state, PaymentState::Pending);
    assert!(p.expires_at.is_some());
    let Some(CashierScreen::ScriptCheckout {
        script_url, form, ..
    }) = &p.screen
    else {
        panic!()
    };
    assert_eq!(*form, CheckoutForm::CardDetails);
    let js = w
        .http
        .get(script_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(js.contains("ConnectERecurringPayment") && js.contains("executePayment"));
    // before the card is entered: still pending (an unused token has no payment)
    w.refresh(&mut p).await;
    assert_eq!(p.state, PaymentState::Pending);
    let r = w.card(&p, APPROVE).await;
    assert_eq!(r["statusCode"], 0);
    assert!(r["authCode"].is_string());
    w.refresh(&mut p).await;
    assert_eq!(p.state, PaymentState::Captured);
    assert_eq!(p.amounts.captured, Minor(1250));
    let card = p.card.clone().unwrap();
    assert_eq!(card.scheme.as_deref(), Some("MASTERCARD"));
    assert_eq!(card.masked.as_deref(), Some("520000******0056"));
    assert!(card.on_file.is_some());
    assert_eq!(p.auth_code.as_deref(), r["authCode"].as_str());
    let truth = w.truth().await;
    let token = &truth["tokens"][0];
    assert_eq!(token["currencyCode"], "826");
    assert_eq!(token["amount"], "1250");
    assert_eq!(token["moto"], true);
    assert_eq!(count(&truth, "payments", |p| p["statusCode"] == 0), 1);
    // the token is single use
    let (status, body) = w
        .enter(
            &p,
            json!({"cardNumber": APPROVE, "expiryDate": "12/30", "cv2": "020"}),
        )
        .await;
    assert_eq!((status, body["statusCode"].clone()), (401, json!(401)));
    assert!(
        !truth.to_string().contains(APPROVE),
        "the full card number must not be kept"
    );
}

#[tokio::test]
async fn three_d_secure_sale() {
    let w = world().await;
    let mut p =
        w.gw.create(&request("S-3DS", PaymentKind::Sale, 500))
            .await
            .unwrap();
    let r = w.card(&p, THREE_DS).await;
    assert_eq!(r["statusCode"], 3);
    assert_eq!(r["threeDSecure"]["required"], true);
    w.refresh(&mut p).await;
    assert_eq!(p.state, PaymentState::Pending);
    assert_eq!(p.awaiting, Some(Awaiting::Authentication));
    let r = w.three_ds(&p, true).await;
    assert_eq!(r["statusCode"], 0);
    w.refresh(&mut p).await;
    assert_eq!(p.state, PaymentState::Captured);
    assert_eq!(p.awaiting, None);
    let truth = w.truth().await;
    assert_eq!(truth["payments"][0]["statusHistory"], json!([3, 40, 0]));
}

#[tokio::test]
async fn decline_then_a_new_token_for_the_same_order() {
    let w = world().await;
    let mut first =
        w.gw.create(&request("ORD-D", PaymentKind::Sale, 700))
            .await
            .unwrap();
    assert_eq!(w.card(&first, DECLINE).await["statusCode"], 5);
    w.refresh(&mut first).await;
    assert_eq!(first.state, PaymentState::Declined);
    assert_eq!(
        first.decline.as_ref().unwrap().category,
        DeclineCategory::Declined
    );
    assert!(matches!(
        first.check(Operation::Refund(Minor(1)), Minor::ZERO),
        Err(OperationRefused::WrongState { .. })
    ));
    // same orderId after a decline (§9): accepted, and it pays
    let mut second =
        w.gw.create(&request("ORD-D", PaymentKind::Sale, 700))
            .await
            .unwrap();
    assert_eq!(w.card(&second, APPROVE).await["statusCode"], 0);
    w.refresh(&mut second).await;
    assert_eq!(second.state, PaymentState::Captured);
    // a third charge for the paid order is a duplicate (20)
    let mut third =
        w.gw.create(&request("ORD-D", PaymentKind::Sale, 700))
            .await
            .unwrap();
    assert_eq!(w.card(&third, APPROVE).await["statusCode"], 20);
    w.refresh(&mut third).await;
    assert_eq!(third.state, PaymentState::Declined);
    assert_eq!(
        third.decline.as_ref().unwrap().category,
        DeclineCategory::Duplicate
    );
    let truth = w.truth().await;
    assert_eq!(count(&truth, "payments", |p| p["statusCode"] == 0), 1);
}

#[tokio::test]
async fn refunds_partial_twice_and_over_refund_refused() {
    let w = world().await;
    let mut p = w.paid_sale("R-1", 1000, APPROVE).await;
    let o = w
        .money_out(&mut p, "r1", Operation::Refund(Minor(300)))
        .await
        .unwrap();
    assert!(o.approved);
    let o = w
        .money_out(&mut p, "r2", Operation::Refund(Minor(300)))
        .await
        .unwrap();
    assert!(o.approved);
    assert_eq!(p.amounts.refunded, Minor(600));
    // our rule refuses first…
    assert_eq!(
        p.check(Operation::Refund(Minor(500)), Minor::ZERO),
        Err(OperationRefused::Exceeds {
            asked: Minor(500),
            available: Minor(400)
        })
    );
    // …and the simulator refuses too, performing nothing
    let ticket =
        w.gw.prepare(&p, "r3", Operation::Refund(Minor(500)))
            .await
            .unwrap();
    let err = w.gw.refund(&p, &ticket).await.unwrap_err();
    assert!(
        matches!(err, GatewayError::Refused { status: 400, .. }),
        "{err}"
    );
    assert!(err.certainly_not_performed());
    let truth = w.truth().await;
    assert_eq!(
        count(&truth, "crossReferencePayments", |x| x["transactionType"]
            == "REFUND"
            && x["statusCode"] == 0),
        2
    );
    let refunded: i64 = truth["crossReferencePayments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["amount"].as_i64().unwrap())
        .sum();
    assert_eq!(refunded, 600);
}

#[tokio::test]
async fn preauth_then_collection() {
    let w = world().await;
    let mut p =
        w.gw.create(&request("PA-1", PaymentKind::PreAuth, 2000))
            .await
            .unwrap();
    assert_eq!(w.card(&p, APPROVE).await["statusCode"], 0);
    w.refresh(&mut p).await;
    assert_eq!(p.state, PaymentState::Authorized);
    assert_eq!(p.amounts.authorized, Minor(2000));
    assert_eq!(p.amounts.captured, Minor(0));
    assert!(matches!(
        p.check(Operation::Capture(Minor(2001)), Minor::ZERO),
        Err(OperationRefused::Exceeds { .. })
    ));
    let o = w
        .money_out(&mut p, "c1", Operation::Capture(Minor(1500)))
        .await
        .unwrap();
    assert!(o.approved);
    assert_eq!(p.state, PaymentState::Captured);
    assert_eq!(p.amounts.captured, Minor(1500));
    // a refund of the collection works against the same cross reference
    assert!(
        w.money_out(&mut p, "r1", Operation::Refund(Minor(500)))
            .await
            .unwrap()
            .approved
    );
    let truth = w.truth().await;
    assert_eq!(
        count(&truth, "crossReferencePayments", |x| x["transactionType"]
            == "COLLECTION"
            && x["statusCode"] == 0),
        1
    );
    assert_eq!(truth["tokens"][0]["transactionType"], "PREAUTH");
}

#[tokio::test]
async fn preauth_void() {
    let w = world().await;
    let mut p =
        w.gw.create(&request("PA-V", PaymentKind::PreAuth, 900))
            .await
            .unwrap();
    w.card(&p, APPROVE).await;
    w.refresh(&mut p).await;
    assert!(
        w.money_out(&mut p, "v1", Operation::Void)
            .await
            .unwrap()
            .approved
    );
    assert_eq!(p.state, PaymentState::Cancelled);
    let truth = w.truth().await;
    assert_eq!(
        count(&truth, "crossReferencePayments", |x| x["transactionType"]
            == "VOID"
            && x["statusCode"] == 0),
        1
    );
}

#[tokio::test]
async fn card_on_file_with_cv2_plain_and_three_d_secure() {
    let w = world().await;
    for (i, card) in [APPROVE, THREE_DS].into_iter().enumerate() {
        let first = w.paid_sale(&format!("COF-{i}"), 1000, card).await;
        let stored = first.card.clone().unwrap();
        assert!(stored.expiry.is_some());
        let mut req = request(&format!("COF-{i}-again"), PaymentKind::Sale, 400);
        req.stored_card = stored.on_file.clone();
        req.customer_id = Some("cust-1".into());
        let mut p = w.gw.create(&req).await.unwrap();
        let Some(CashierScreen::ScriptCheckout { form, .. }) = &p.screen else {
            panic!()
        };
        assert_eq!(*form, CheckoutForm::Cv2Only);
        // the CV2 form refuses a full card body without a CV2
        let (status, _) = w.enter(&p, json!({"cardNumber": APPROVE})).await;
        assert_eq!(status, 400);
        let (status, r) = w.enter(&p, json!({"cv2": "020"})).await;
        assert_eq!(status, 200);
        if card == THREE_DS {
            assert_eq!(r["statusCode"], 3);
            assert_eq!(w.three_ds(&p, true).await["statusCode"], 0);
        } else {
            assert_eq!(r["statusCode"], 0);
        }
        w.refresh(&mut p).await;
        assert_eq!(p.state, PaymentState::Captured);
        assert_eq!(p.amounts.captured, Minor(400));
        assert_eq!(p.card.as_ref().unwrap().masked, stored.masked);
    }
    let truth = w.truth().await;
    assert_eq!(
        count(&truth, "payments", |p| p["cv2Only"] == true
            && p["statusCode"] == 0),
        2
    );
    assert_eq!(count(&truth, "tokens", |t| t["customerId"] == "cust-1"), 2);
}

#[tokio::test]
async fn server_side_repeat_payment_with_cv2() {
    // The SAQ-D path: a cross-reference SALE with the CV2, no card form.
    let w = world().await;
    let first = w.paid_sale("SRV-1", 1000, APPROVE).await;
    let xref = first.card.as_ref().unwrap().on_file.clone().unwrap();
    let client = w.gw.client();
    let mut body = till_connect_e::AccessTokenRequest::new(
        w.sandbox.connect_e_merchant_url(),
        Money::new(250, Currency::Gbp),
        till_connect_e::TransactionType::Sale,
        "SRV-2",
    )
    .unwrap();
    body.cross_reference = Some(xref.clone());
    let token = client.create_access_token(&body).await.unwrap();
    let result = client
        .cross_reference_payment(
            &token.id,
            &till_connect_e::CrossReferencePaymentRequest {
                cross_reference: xref,
                cv2: Some(till_gateway::Opaque::new("020")),
            },
        )
        .await
        .unwrap();
    assert_eq!(result.status_code, Some(0));
    let info = client.payment(&token.id).await.unwrap();
    assert_eq!(info.status_code, Some(0));
    assert!(info.cross_reference.is_some());
}

#[tokio::test]
async fn wait_pre_execute_then_resume() {
    let w = world().await;
    let mut req = request("W-1", PaymentKind::Sale, 800);
    req.wait_pre_execute = true;
    let mut p = w.gw.create(&req).await.unwrap();
    assert_eq!(w.card(&p, APPROVE).await["statusCode"], 99);
    w.refresh(&mut p).await;
    assert_eq!(p.state, PaymentState::Pending);
    assert!(matches!(
        p.awaiting,
        Some(Awaiting::Resume { until: Some(_) })
    ));
    let truth = w.truth().await;
    assert_eq!(
        count(&truth, "payments", |p| p["statusCode"] == 0),
        0,
        "nothing charged before the resume"
    );
    let obs = w.gw.resume(&p).await.unwrap();
    p.observe(&obs);
    assert_eq!(p.state, PaymentState::Captured);
    w.refresh(&mut p).await;
    assert_eq!(p.state, PaymentState::Captured);
    // a second resume is refused
    assert!(matches!(
        w.gw.resume(&p).await,
        Err(GatewayError::Refused { status: 400, .. })
    ));
}

#[tokio::test]
async fn resume_after_fifteen_minutes_is_refused() {
    let w = world().await;
    let mut req = request("W-LATE", PaymentKind::PreAuth, 800);
    req.wait_pre_execute = true;
    let mut p = w.gw.create(&req).await.unwrap();
    // 3-D Secure first, then the pause
    assert_eq!(w.card(&p, THREE_DS).await["statusCode"], 3);
    assert_eq!(w.three_ds(&p, true).await["statusCode"], 99);
    w.control("clock", json!({"advanceSeconds": 15 * 60 + 1}))
        .await;
    let err = w.gw.resume(&p).await.unwrap_err();
    assert!(
        matches!(&err, GatewayError::Refused { status: 400, message, .. } if message.contains("15-minute")),
        "{err}"
    );
    w.refresh(&mut p).await;
    assert!(p.state.is_unsuccessful(), "{:?}", p.state);
    let truth = w.truth().await;
    assert_eq!(count(&truth, "payments", |p| p["statusCode"] == 0), 0);
}

#[tokio::test]
async fn revoke_an_unused_token_and_during_three_d_secure() {
    let w = world().await;
    let mut p =
        w.gw.create(&request("REV-1", PaymentKind::Sale, 300))
            .await
            .unwrap();
    let obs = w.gw.cancel(&p).await.unwrap();
    p.observe(&obs);
    assert_eq!(p.state, PaymentState::Cancelled);
    let (status, _) = w
        .enter(
            &p,
            json!({"cardNumber": APPROVE, "expiryDate": "12/30", "cv2": "020"}),
        )
        .await;
    assert_eq!(status, 401, "a revoked token takes no card");
    // during 3-D Secure: the payment ends in 90 and is not processed
    let mut q =
        w.gw.create(&request("REV-2", PaymentKind::Sale, 300))
            .await
            .unwrap();
    assert_eq!(w.card(&q, THREE_DS).await["statusCode"], 3);
    let obs = w.gw.cancel(&q).await.unwrap();
    q.observe(&obs);
    assert_eq!(q.state, PaymentState::Cancelled);
    let info = w.gw.client().payment(&q.reference).await.unwrap();
    assert_eq!(info.status_code, Some(90));
    // a used token cannot be revoked: the documented text/plain 400
    let paid = w.paid_sale("REV-3", 300, APPROVE).await;
    let err = w.gw.client().revoke(&paid.reference).await.unwrap_err();
    assert!(err.is_token_consumed(), "{err}");
    let err =
        w.gw.client()
            .revoke(&till_gateway::Opaque::new("no-such-token"))
            .await
            .unwrap_err();
    assert!(err.is_invalid_token(), "{err}");
    let truth = w.truth().await;
    assert_eq!(truth["revokes"].as_array().unwrap().len(), 4);
    assert_eq!(count(&truth, "payments", |p| p["statusCode"] == 0), 1);
}

#[tokio::test]
async fn referred_and_failed_outcomes() {
    let w = world().await;
    for (code, state) in [(4, PaymentState::Declined), (30, PaymentState::Failed)] {
        w.control("settings", json!({"nextStatus": code})).await;
        let mut p =
            w.gw.create(&request(&format!("F-{code}"), PaymentKind::Sale, 100))
                .await
                .unwrap();
        assert_eq!(w.card(&p, APPROVE).await["statusCode"], code);
        w.refresh(&mut p).await;
        assert_eq!(p.state, state);
    }
}

#[tokio::test]
async fn lost_answer_on_create_charges_once() {
    let w = world().await;
    let req = request("LOST-C", PaymentKind::Sale, 1500);
    w.control("faults", json!({"loseNextResponse": ["access-tokens"]}))
        .await;
    let err = w.gw.create(&req).await.unwrap_err();
    assert!(!err.certainly_not_performed(), "{err}");
    // nothing to find: a token nobody learned of can take no money
    assert!(w.gw.find(&req).await.unwrap().is_none());
    let mut p = w.gw.create(&req).await.unwrap();
    w.card(&p, APPROVE).await;
    w.refresh(&mut p).await;
    assert_eq!(p.state, PaymentState::Captured);
    let truth = w.truth().await;
    assert_eq!(truth["tokens"].as_array().unwrap().len(), 2);
    assert_eq!(count(&truth, "tokens", |t| t["use"] == "unused"), 1);
    assert_eq!(count(&truth, "payments", |p| p["statusCode"] == 0), 1);
}

/// Sends `op` with its answer lost (`lose`) or refused with a 500 before it is performed
/// (`fail`), reconciles, re-sends if needed, and checks exactly one at the simulator.
async fn exactly_once(kind: PaymentKind, op: Operation, xref_type: &str, fault: Value) {
    let w = world().await;
    let mut p = w.gw.create(&request("ONCE", kind, 1000)).await.unwrap();
    w.card(&p, APPROVE).await;
    w.refresh(&mut p).await;
    let ticket = w.gw.prepare(&p, "op-1", op).await.unwrap();
    w.control("faults", fault).await;
    let err = w.gw.execute(&p, &ticket).await.unwrap_err();
    assert!(!err.certainly_not_performed(), "{err}");
    let outcome = match w.gw.reconcile(&p, &ticket).await.unwrap() {
        Reconciled::Performed(o) => o,
        Reconciled::NotPerformed => {
            // revoked now: the old ticket can never run; a new one is safe
            let again = w.gw.prepare(&p, "op-2", op).await.unwrap();
            let (status, _) = (
                w.gw.client()
                    .revoke(ticket.provider_ref.as_ref().unwrap())
                    .await,
                (),
            );
            assert!(status.is_ok(), "revoking a revoked token stays harmless");
            w.gw.execute(&p, &again).await.unwrap()
        }
    };
    assert!(outcome.approved);
    p.record(op, &outcome);
    // reconciling again changes nothing and re-sends nothing
    let _ = w.gw.reconcile(&p, &ticket).await.unwrap();
    let truth = w.truth().await;
    assert_eq!(
        count(&truth, "crossReferencePayments", |x| x["transactionType"]
            == xref_type
            && x["statusCode"] == 0),
        1,
        "{truth}"
    );
}

#[tokio::test]
async fn lost_answer_on_a_refund_refunds_once() {
    exactly_once(
        PaymentKind::Sale,
        Operation::Refund(Minor(400)),
        "REFUND",
        json!({"loseNextResponse": ["cross-reference-payments"]}),
    )
    .await;
}

#[tokio::test]
async fn refund_refused_with_a_5xx_before_it_ran_refunds_once() {
    exactly_once(
        PaymentKind::Sale,
        Operation::Refund(Minor(400)),
        "REFUND",
        json!({"failNext": {"count": 1, "status": 503}}),
    )
    .await;
}

#[tokio::test]
async fn lost_answer_on_a_collection_collects_once() {
    exactly_once(
        PaymentKind::PreAuth,
        Operation::Capture(Minor(1000)),
        "COLLECTION",
        json!({"loseNextResponse": ["cross-reference-payments"]}),
    )
    .await;
}

#[tokio::test]
async fn collection_refused_with_a_5xx_collects_once() {
    exactly_once(
        PaymentKind::PreAuth,
        Operation::Capture(Minor(700)),
        "COLLECTION",
        json!({"failNext": {"count": 1, "status": 500}}),
    )
    .await;
}

#[tokio::test]
async fn offline_is_certainly_not_performed_and_comes_back() {
    let w = world().await;
    w.control("faults", json!({"offline": true})).await;
    let err =
        w.gw.create(&request("OFF", PaymentKind::Sale, 100))
            .await
            .unwrap_err();
    assert!(
        err.is_unreachable() && err.certainly_not_performed(),
        "{err}"
    );
    let _ = w
        .http
        .delete(format!("{}/faults", w.sandbox.connect_e_control_url()))
        .send()
        .await
        .unwrap();
    w.gw.create(&request("OFF", PaymentKind::Sale, 100))
        .await
        .unwrap();
    // the SensePass side was never affected
    let r = w
        .http
        .get(format!("{}/state", w.sandbox.control_url()))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

#[tokio::test]
async fn latency_beyond_the_timeout_is_an_unknown_outcome() {
    let w = world_with(|c| c.timeout = Duration::from_millis(500)).await;
    w.control("faults", json!({"latencyMs": 1500})).await;
    let err =
        w.gw.create(&request("SLOW", PaymentKind::Sale, 100))
            .await
            .unwrap_err();
    assert!(!err.certainly_not_performed(), "{err}");
}

#[tokio::test]
async fn wrong_key_is_401_and_nothing_happens() {
    let w = world_with(|c| c.api_key = till_gateway::Opaque::new("not-the-key")).await;
    let err =
        w.gw.create(&request("KEY", PaymentKind::Sale, 100))
            .await
            .unwrap_err();
    assert!(
        matches!(err, GatewayError::Refused { status: 401, .. }),
        "{err}"
    );
    let err = w.gw.client().payment_methods().await.unwrap_err();
    assert_eq!(err.http_status(), Some(401));
    let err =
        w.gw.client()
            .revoke(&till_gateway::Opaque::new("x"))
            .await
            .unwrap_err();
    assert_eq!(err.http_status(), Some(401));
    assert!(w.truth().await["tokens"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn payment_methods_and_currency_rules() {
    let w = world().await;
    let m = w.gw.client().payment_methods().await.unwrap();
    assert!(m.card_schemes.iter().any(|s| s == "VISA"));
    // a currency Connect-E cannot take is refused before anything is sent
    let mut req = request("CUR", PaymentKind::Sale, 100);
    req.amount = Money::new(100, Currency::Ils);
    let err = w.gw.create(&req).await.unwrap_err();
    assert!(matches!(err, GatewayError::Invalid { .. }), "{err}");
    assert!(!w.gw.capabilities().takes(Currency::Ils));
    assert!(w.truth().await["tokens"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn the_simulator_names_every_invalid_field() {
    let w = world().await;
    let url = format!("{}/v1/access-tokens", w.sandbox.connect_e_url());
    let r = w
        .http
        .post(&url)
        .bearer_auth(w.sandbox.connect_e_api_key())
        .json(&json!({"merchantUrl": "https://elsewhere", "currencyCode": "GBP", "amount": "12.50", "transactionType": "SALE"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    for f in ["merchantUrl", "currencyCode", "amount", "orderId"] {
        assert!(text.contains(f), "{f} missing from {text}");
    }
    // and the client reads that text/plain answer
    let mut body = till_connect_e::AccessTokenRequest::new(
        "https://elsewhere",
        Money::new(1, Currency::Gbp),
        till_connect_e::TransactionType::Sale,
        "o",
    )
    .unwrap();
    body.user_country_code = Some("GB".into());
    match w.gw.client().create_access_token(&body).await {
        Err(Error::Http { status: 400, body }) => assert!(
            body.contains("userCountryCode") && body.contains("merchantUrl"),
            "{body}"
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn webhooks_with_both_spellings_and_retries() {
    use axum::routing::post;
    use std::sync::{Arc, Mutex};
    let w = world().await;
    w.control("settings", json!({"webhookTimeScale": 1000}))
        .await;
    // a receiver that fails its first call
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen2 = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |axum::Json(v): axum::Json<Value>| {
            let seen = seen2.clone();
            async move {
                let mut s = seen.lock().unwrap();
                s.push(v);
                if s.len() == 1 {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    // the sample's `webhookUrl` spelling, sent raw
    let r: Value = w
        .http
        .post(format!("{}/v1/access-tokens", w.sandbox.connect_e_url()))
        .bearer_auth(w.sandbox.connect_e_api_key())
        .json(&json!({"merchantUrl": w.sandbox.connect_e_merchant_url(), "currencyCode": "826", "amount": "100",
                      "transactionType": "SALE", "orderId": "HOOK-1", "merchantTransactionId": "m-1", "webhookUrl": hook}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = r["id"].as_str().unwrap().to_string();
    let url = format!(
        "{}/web/v1/payments/{token}/execute",
        w.sandbox.connect_e_web_url()
    );
    w.http
        .post(url)
        .json(&json!({"cardNumber": APPROVE, "expiryDate": "12/30", "cv2": "020"}))
        .send()
        .await
        .unwrap();
    for _ in 0..100 {
        if seen.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        got[0],
        json!({"id": token, "orderId": "HOOK-1", "merchantTransactionId": "m-1"})
    );
    assert!(
        got[0].get("statusCode").is_none(),
        "the notice carries no status"
    );
    let notice: till_connect_e::WebhookNotice = serde_json::from_value(got[1].clone()).unwrap();
    assert_eq!(notice.id.expose(), token);
    let truth = w.truth().await;
    let attempts = truth["webhooks"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[1]["delaySeconds"], 10);
    assert_eq!(attempts[1]["delivered"], true);
    server.abort();
}

#[tokio::test]
async fn processing_shows_forty_and_stays_pending() {
    let w = world().await;
    w.control("settings", json!({"processingMs": 800})).await;
    let mut p =
        w.gw.create(&request("P-40", PaymentKind::Sale, 100))
            .await
            .unwrap();
    let (gw_url, token) = (
        w.sandbox.connect_e_web_url(),
        p.reference.expose().to_string(),
    );
    let http = w.http.clone();
    let entry = tokio::spawn(async move {
        http.post(format!("{gw_url}/web/v1/payments/{token}/execute"))
            .json(&json!({"cardNumber": APPROVE, "expiryDate": "12/30", "cv2": "020"}))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let info = w.gw.client().payment(&p.reference).await.unwrap();
    assert_eq!(info.status_code, Some(40));
    w.refresh(&mut p).await;
    assert_eq!(p.state, PaymentState::Pending);
    assert_eq!(entry.await.unwrap()["statusCode"], 0);
    w.refresh(&mut p).await;
    assert_eq!(p.state, PaymentState::Captured);
}

#[tokio::test]
async fn lost_answer_on_resume_is_resolved_by_fetching() {
    let w = world().await;
    let mut req = request("W-LOST", PaymentKind::Sale, 650);
    req.wait_pre_execute = true;
    let mut p = w.gw.create(&req).await.unwrap();
    assert_eq!(w.card(&p, APPROVE).await["statusCode"], 99);
    w.control("faults", json!({"loseNextResponse": ["resume"]}))
        .await;
    let err = w.gw.resume(&p).await.unwrap_err();
    assert!(!err.certainly_not_performed(), "{err}");
    w.refresh(&mut p).await;
    assert_eq!(p.state, PaymentState::Captured);
    // resuming again cannot charge twice
    assert!(matches!(
        w.gw.resume(&p).await,
        Err(GatewayError::Refused { status: 400, .. })
    ));
    let truth = w.truth().await;
    assert_eq!(count(&truth, "payments", |p| p["statusCode"] == 0), 1);
}

#[tokio::test]
async fn a_burst_of_5xx_on_create_then_one_charge() {
    let w = world().await;
    let req = request("BURST", PaymentKind::Sale, 900);
    w.control("faults", json!({"failNext": {"count": 3, "status": 502}}))
        .await;
    for _ in 0..3 {
        let err = w.gw.create(&req).await.unwrap_err();
        assert!(
            !err.certainly_not_performed(),
            "a 5xx promises nothing: {err}"
        );
        assert!(w.gw.find(&req).await.unwrap().is_none());
    }
    let mut p = w.gw.create(&req).await.unwrap();
    w.card(&p, APPROVE).await;
    w.refresh(&mut p).await;
    assert_eq!(p.state, PaymentState::Captured);
    let truth = w.truth().await;
    assert_eq!(
        truth["tokens"].as_array().unwrap().len(),
        1,
        "the injected 5xx performed nothing"
    );
    assert_eq!(count(&truth, "payments", |p| p["statusCode"] == 0), 1);
}

#[tokio::test]
async fn unknown_cross_reference_token_is_refused() {
    let w = world().await;
    let first = w.paid_sale("XR-U", 500, APPROVE).await;
    let xref = first.card.unwrap().on_file.unwrap();
    let err =
        w.gw.client()
            .cross_reference_payment(
                &till_gateway::Opaque::new("no-such-token"),
                &till_connect_e::CrossReferencePaymentRequest {
                    cross_reference: xref,
                    cv2: None,
                },
            )
            .await
            .unwrap_err();
    assert_eq!(err.http_status(), Some(401));
    assert!(err.certainly_not_performed());
}

#[tokio::test]
async fn webhooks_give_up_after_two_hours_of_retries() {
    use axum::routing::post;
    let w = world().await;
    // 2 h of schedule in about 72 ms
    w.control("settings", json!({"webhookTimeScale": 100000}))
        .await;
    let app = axum::Router::new().route(
        "/hook",
        post(|| async { axum::http::StatusCode::SERVICE_UNAVAILABLE }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut req = request("HOOK-GIVEUP", PaymentKind::Sale, 100);
    req.webhook_url = Some(hook);
    let p = w.gw.create(&req).await.unwrap();
    w.card(&p, DECLINE).await; // declines complete a transaction too
    for _ in 0..150 {
        if w.truth().await["webhooks"].as_array().unwrap().len() >= 17 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // and no 18th attempt follows
    tokio::time::sleep(Duration::from_millis(200)).await;
    let attempts = w.truth().await["webhooks"].as_array().unwrap().clone();
    let delays: Vec<u64> = attempts
        .iter()
        .map(|a| a["delaySeconds"].as_u64().unwrap())
        .collect();
    assert_eq!(
        &delays[..8],
        &[0, 10, 20, 40, 80, 160, 320, 600],
        "{delays:?}"
    );
    assert!(delays.iter().all(|&d| d <= 600));
    let total: u64 = delays.iter().sum();
    assert!(
        total <= 7200 && total + 600 > 7200,
        "retries span up to 2 h: {total}"
    );
    assert!(attempts.iter().all(|a| a["delivered"] == false));
    assert_eq!(attempts.len(), 17);
    server.abort();
}
