//! The client and the listener drive the real sandbox over HTTP and Socket.IO, endpoint by
//! endpoint and status path by status path, checking field names and types against the spec.

mod common;

use common::{env, expect_connected, wait_status, Env};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use till_core::{Currency, Minor, Money, Product, Status};
use till_sensepass::models::{
    CardDetails, CreateDeviceRequest, CreditRequest, CustomerInputQuestion, CustomerInputRequest,
    CustomerInputResetRequest, FetchTransactions, Filter, MatchRequest, PayRequest,
    ReadyForPaymentRequest, RefundRequest, SdkCommitRequest, SdkMethodType, SettlementsRequest,
    SubscriptionStatus, SubscriptionTerms, UpdateRequest,
};
use till_sensepass::{Error, InitRequest, Transaction};

const VISA: &str = "4111111111111111";
const DECLINE: &str = "4456530000001013";
const THREE_DS: &str = "4456530000001096";

fn payment(amount: i64, order: &str) -> InitRequest {
    let mut req = InitRequest::new(Minor(amount), Currency::Usd);
    req.time_out = Some(600);
    req.pos_data = Some(json!({"orderId": order}));
    req
}

async fn approved(env: &Env, amount: i64, order: &str) -> Transaction {
    let t = env.client.init(&payment(amount, order)).await.unwrap();
    env.post(
        &format!("/transactions/{}/pay", t.number()),
        json!({"card": VISA}),
    )
    .await;
    let t = env.client.transaction(t.number().as_str()).await.unwrap();
    assert_eq!(t.status(), Status::Approved);
    t
}

/// The init answer has the documented fields with the documented JSON types.
fn assert_entity_shape(raw: &Value) {
    let expect_str = [
        "TransactionNumber",
        "date",
        "amount",
        "currency",
        "statusName",
        "timeoutDate",
    ];
    for f in expect_str {
        assert!(raw[f].is_string(), "{f} must be a string: {raw}");
    }
    assert!(raw["status"].is_u64(), "status is a number");
    assert!(raw["methodType"].is_number(), "methodType is a number");
    assert!(raw["paymentCommit"].is_object());
    for f in ["iOSLink", "androidLink", "qrURL"] {
        assert!(raw["transactionPage"][f].is_string(), "transactionPage.{f}");
    }
    for f in ["businessName", "pos", "branchNumber"] {
        assert!(raw.get(f).is_some(), "{f} present");
    }
}

#[tokio::test]
async fn approve_path_with_socket_events_and_commit() {
    let env = env().await;
    let mut rx = env.listen();
    expect_connected(&mut rx).await;

    let mut req = payment(200, "A-17");
    req.products = vec![Product::simple("Coffee", 2, 100)];
    req.reason = Some("Order A-17".into());
    let t = env.client.init(&req).await.unwrap();
    assert_eq!(t.status(), Status::Initialize);
    assert_entity_shape(&t.raw);
    assert_eq!(
        t.raw["amount"], "2",
        "amount comes back as a major-unit string"
    );
    assert_eq!(t.amount_minor().unwrap(), Money::new(200, Currency::Usd));
    assert_eq!(t.pos_data().unwrap()["orderId"], "A-17");
    assert!(!t.product_sum_mismatch());
    assert!(
        t.payment_commit().unwrap().message.is_some(),
        "stub messsage before approval"
    );
    assert!(t
        .transaction_page()
        .unwrap()
        .qr_url
        .unwrap()
        .starts_with("http"));
    assert_eq!(t.timeout_seconds(), None);
    assert!(t.timeout_at().unwrap() > t.created_at().unwrap());
    let n = t.number().to_string();

    env.post(&format!("/transactions/{n}/tap"), json!({})).await;
    let (tapped, _) = wait_status(&mut rx, &n, Status::TapDetected).await;
    assert_eq!(
        tapped.pos_data().unwrap()["orderId"],
        "A-17",
        "posData echoed on the socket"
    );

    env.post(&format!("/transactions/{n}/pay"), json!({"card": VISA}))
        .await;
    let (done, seen) = wait_status(&mut rx, &n, Status::Approved).await;
    assert!(
        seen.contains(&Status::UserApproved) || seen.contains(&Status::ProcessingPayment),
        "{seen:?}"
    );
    let conf = &done.confirmations()[0];
    assert_eq!(conf.last_four_digits.as_deref(), Some("1111"));
    assert!(conf.card_mask.as_deref().unwrap().ends_with("1111"));
    assert!(
        !done.raw.to_string().contains(VISA),
        "no full card number anywhere"
    );
    assert_eq!(conf.amount_minor(Currency::Usd), Ok(Minor(200)));

    let status = env.client.transaction(&n).await.unwrap();
    assert_eq!(status.status(), Status::Approved);
    let commit = status.payment_commit().unwrap();
    assert!(commit.needs_commit());
    assert!(commit.seconds_to_commit.unwrap() > 0);
    let link = commit.commit_link.unwrap();
    let answer = env.client.commit_payment(&link).await.unwrap();
    assert_eq!(answer.status, Some(200));
    assert_eq!(answer.status_message.as_deref(), Some("Payment Committed"));
    assert_eq!(answer.is_payment_committed, Some(true));
    // Idempotent.
    assert_eq!(
        env.client
            .commit_payment(&link)
            .await
            .unwrap()
            .is_payment_committed,
        Some(true)
    );
    let after = env.client.transaction(&n).await.unwrap();
    assert!(!after.payment_commit().unwrap().needs_commit());
    assert_eq!(env.truth(&n).await["_sandbox"]["commitCount"], 2);
}

#[tokio::test]
async fn decline_timeout_and_fail_paths() {
    let env = env().await;
    let mut rx = env.listen();
    expect_connected(&mut rx).await;

    let t = env.client.init(&payment(150, "D-1")).await.unwrap();
    env.post(
        &format!("/transactions/{}/pay", t.number()),
        json!({"card": DECLINE}),
    )
    .await;
    wait_status(&mut rx, t.number().as_str(), Status::Declined).await;
    assert_eq!(
        env.client
            .transaction(t.number().as_str())
            .await
            .unwrap()
            .status(),
        Status::Declined
    );

    let t = env.client.init(&payment(150, "T-1")).await.unwrap();
    env.post(&format!("/transactions/{}/expire", t.number()), json!({}))
        .await;
    let (expired, _) = wait_status(&mut rx, t.number().as_str(), Status::Timeout).await;
    assert_eq!(expired.status_name(), Some("Transaction Timeout"));

    let t = env.client.init(&payment(150, "F-1")).await.unwrap();
    env.post(&format!("/transactions/{}/fail", t.number()), json!({}))
        .await;
    wait_status(&mut rx, t.number().as_str(), Status::Failed).await;

    // Unknown transaction: 404 with the documented body.
    match env.client.transaction("0000").await {
        Err(Error::Http { status: 404, body }) => assert_eq!(body["error_type"], "not_found"),
        other => panic!("expected 404, got {other:?}"),
    }
}

#[tokio::test]
async fn cancel_paths_including_consumer_activity() {
    let env = env().await;
    let mut rx = env.listen();
    expect_connected(&mut rx).await;

    let t = env.client.init(&payment(300, "C-1")).await.unwrap();
    let n = t.number().to_string();
    let c = env.client.cancel(&n).await.unwrap();
    assert_eq!(c.status, Some(200));
    assert_eq!(
        c.status_message.as_deref(),
        Some("Transaction Was Canceled")
    );
    wait_status(&mut rx, &n, Status::Cancelled).await;
    let again = env.client.cancel(&n).await.unwrap_err();
    assert_eq!(again.http_status(), Some(400));
    assert!(!again.certainly_not_performed());

    // A consumer in a 3-D Secure challenge: status 2, cancel answers 501.
    let t = env.client.init(&payment(300, "C-2")).await.unwrap();
    let n = t.number().to_string();
    let qr = t.transaction_page().unwrap().qr_url.unwrap();
    let page = env
        .control
        .post(format!("{qr}/card"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("card={THREE_DS}"))
        .send()
        .await
        .unwrap();
    assert!(page.status().is_success());
    wait_status(&mut rx, &n, Status::UserApproved).await;
    let err = env.client.cancel(&n).await.unwrap_err();
    assert!(err.is_consumer_activity(), "{err:?}");
    match &err {
        Error::Http { status: 501, body } => {
            assert_eq!(
                body["status_message"],
                "Transaction cannot be cancelled due to consumer activity"
            )
        }
        other => panic!("{other:?}"),
    }
    // The challenge completes: approved after all.
    env.control.post(format!("{qr}/3ds")).send().await.unwrap();
    wait_status(&mut rx, &n, Status::Approved).await;

    // Cancel by device: the latest pending one; then nothing is pending.
    let t = env.client.init(&payment(300, "C-3")).await.unwrap();
    let c = env.client.cancel_by_device(&env.device).await.unwrap();
    assert_eq!(
        c.status_message.as_deref(),
        Some("Transaction Was Canceled")
    );
    assert_eq!(
        env.client
            .transaction(t.number().as_str())
            .await
            .unwrap()
            .status(),
        Status::Cancelled
    );
    let none = env.client.cancel_by_device(&env.device).await.unwrap_err();
    assert_eq!(none.http_status(), Some(404));
}

#[tokio::test]
async fn partial_then_full_refund() {
    let env = env().await;
    let mut rx = env.listen();
    expect_connected(&mut rx).await;
    let t = approved(&env, 1000, "R-1").await;
    let n = t.number().to_string();

    let r = env
        .client
        .refund(&RefundRequest::partial(n.as_str(), Minor(250)))
        .await
        .unwrap();
    assert!(r.is_approved(), "{r:?}");
    assert_eq!(r.error_code, Some(0));
    assert_eq!(r.amount.as_deref(), Some("2.5"));
    assert!(r.refund_confirmation.is_some());
    assert_eq!(
        r.transaction.as_ref().unwrap().status(),
        Status::PartiallyRefunded
    );
    wait_status(&mut rx, &n, Status::PartiallyRefunded).await;
    assert_eq!(env.truth(&n).await["_sandbox"]["refundedMinor"], 250);

    // More than remains: declined with the documented body, nothing changes.
    let over = env
        .client
        .refund(&RefundRequest::partial(n.as_str(), Minor(751)))
        .await
        .unwrap();
    assert!(!over.is_approved());
    assert_eq!(over.error_code, Some(22));
    assert_eq!(over.result.as_deref(), Some("Declined"));
    assert!(over.transaction.is_none());

    let full = env
        .client
        .refund(&RefundRequest::full(n.as_str()))
        .await
        .unwrap();
    assert!(full.is_approved());
    assert_eq!(full.amount.as_deref(), Some("7.5"));
    let (refunded, _) = wait_status(&mut rx, &n, Status::Refunded).await;
    let refunds: Vec<_> = refunded
        .confirmations()
        .into_iter()
        .filter(|c| c.is_refund())
        .collect();
    assert_eq!(refunds.len(), 2);
    assert_eq!(env.truth(&n).await["_sandbox"]["refundedMinor"], 1000);

    // Nothing left to refund: the sandbox names the field.
    let err = env
        .client
        .refund(&RefundRequest::full(n.as_str()))
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), Some(400));
    assert_eq!(err.invalid_parameter_names(), vec!["transactionNumber"]);
}

#[tokio::test]
async fn open_cart_update_and_ready_for_payment() {
    let env = env().await;
    let mut req = payment(100, "U-1");
    req.ready_for_payment = Some(false);
    req.products = vec![Product::simple("Tea", 1, 100)];
    let t = env.client.init(&req).await.unwrap();
    let n = t.number().to_string();
    assert_eq!(t.raw["readyForPayment"], false);

    let mut bigger = req.clone();
    bigger.amount = Minor(350);
    bigger.products.push(Product::simple("Cake", 1, 250));
    let u = env
        .client
        .update(&n, &UpdateRequest::from_init(&bigger))
        .await
        .unwrap();
    assert_eq!(u.amount_minor().unwrap().minor, Minor(350));
    assert_eq!(u.products().unwrap().len(), 2);
    assert!(!u.product_sum_mismatch());

    let mismatch = UpdateRequest {
        amount: Some(Minor(999)),
        ..Default::default()
    };
    assert!(env
        .client
        .update(&n, &mismatch)
        .await
        .unwrap()
        .product_sum_mismatch());

    let ready = env
        .client
        .ready_for_payment(&n, &ReadyForPaymentRequest::new(Minor(350), Currency::Usd))
        .await
        .unwrap();
    assert_eq!(ready.raw["readyForPayment"], true);
    assert_eq!(ready.amount_minor().unwrap().minor, Minor(350));

    // Once paid, a PATCH is refused.
    env.post(&format!("/transactions/{n}/pay"), json!({"card": VISA}))
        .await;
    let err = env
        .client
        .update(
            &n,
            &UpdateRequest {
                reason: Some("late".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), Some(400));
}

#[tokio::test]
async fn pairing_and_dynamic_qr_devices() {
    let env = env().await;
    let admin = env.api_key_client();
    let tag = admin
        .devices_match(&MatchRequest {
            pin_code: Some("53K-HMD-786".into()),
            pos_name: Some("Till 2".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(tag.name.as_deref(), Some("Till 2"));
    assert_eq!(tag.pin_code.as_deref(), Some("53K-HMD-786"));
    assert!(!tag.device_alias_key.is_empty());
    assert_eq!(tag.client_boxes.len(), 1);
    // Pairing the same tag again answers the same device.
    let again = admin
        .devices_match(&MatchRequest {
            pin_code: Some("53K-HMD-786".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(again.device_alias_key, tag.device_alias_key);

    let qr = admin
        .devices_create(&CreateDeviceRequest {
            pos_name: "Web till".into(),
        })
        .await
        .unwrap();
    assert!(qr.pin_code.is_none());
    assert_ne!(qr.device_alias_key, tag.device_alias_key);

    // The new device ID works as credentials.
    let till = env
        .client
        .with_credentials(till_sensepass::Credentials::Device(
            qr.device_alias_key.clone(),
        ));
    let t = till.init(&payment(100, "P-1")).await.unwrap();
    assert_eq!(
        env.truth(t.number().as_str()).await["_sandbox"]["deviceId"],
        qr.device_alias_key.as_str()
    );

    // Pairing with device credentials is refused before anything is sent; a bad pin is named.
    assert!(matches!(
        env.client
            .devices_create(&CreateDeviceRequest {
                pos_name: "x".into()
            })
            .await,
        Err(Error::Config(_))
    ));
    let err = admin
        .devices_match(&MatchRequest {
            pin_code: Some("nope".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.invalid_parameter_names(), vec!["pinCode"]);
    // Unknown credentials: 401.
    let stranger = env
        .client
        .with_credentials(till_sensepass::Credentials::Device("unknown-device".into()));
    assert_eq!(
        stranger
            .init(&payment(1, "x"))
            .await
            .unwrap_err()
            .http_status(),
        Some(401)
    );
}

#[tokio::test]
async fn customer_input_answered_and_reset() {
    let env = env().await;
    let question = CustomerInputRequest {
        device_id: None,
        inputs: vec![CustomerInputQuestion {
            kind: "email".into(),
            question: "Your e-mail?".into(),
            minimum_length: Some(3),
        }],
    };
    let client = env.client.clone();
    let q = question.clone();
    let asking = tokio::spawn(async move { client.customer_input(&q).await });
    // Answer on the device once the question is pending.
    let path = format!("/devices/{}/customer-input", env.device);
    let mut answered = false;
    for _ in 0..100 {
        let (status, _) = env
            .ctl_raw(Method::POST, &path, json!({"answers": ["ann@example.com"]}))
            .await;
        if status == 200 {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(answered);
    let r = asking.await.unwrap().unwrap();
    assert_eq!(r.success, Some(true));
    assert_eq!(r.results[0].input.as_deref(), Some("ann@example.com"));
    assert_eq!(r.results[0].kind.as_deref(), Some("email"));
    assert_eq!(r.results[0].minimum_length, Some(3));

    let client = env.client.clone();
    let asking = tokio::spawn(async move { client.customer_input(&question).await });
    let mut reset = None;
    for _ in 0..100 {
        let r = env
            .client
            .customer_input_reset(&CustomerInputResetRequest::default())
            .await
            .unwrap();
        if r.extra.get("reset") == Some(&json!(true)) {
            reset = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(reset.unwrap().success, Some(true));
    let r = asking.await.unwrap().unwrap();
    assert_eq!(r.success, Some(false));
    assert!(r.results.is_empty());
}

#[tokio::test]
async fn settlements_and_multi_fetch() {
    let env = env().await;
    let a = approved(&env, 1021, "S-1").await;
    let _b = env.client.init(&payment(500, "S-2")).await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    let window = (
        now - time::Duration::hours(1),
        now + time::Duration::hours(1),
    );

    let page = env
        .client
        .settlements(&SettlementsRequest::between(
            window.0,
            window.1 + time::Duration::days(2),
        ))
        .await
        .unwrap();
    assert_eq!(page.pagination.total_records, Some(1));
    let row = &page.data[0];
    assert_eq!(row.transaction_number.as_deref(), Some(a.number().as_str()));
    assert_eq!(row.status.as_deref(), Some("settled"));
    assert_eq!(row.settlement_amount_minor(), Ok(Minor(1021)));

    let mut q = FetchTransactions::between(window.0, window.1);
    q.filter.push(Filter::eq("posData.orderId", "S-2"));
    let page = env.client.transactions(&q).await.unwrap();
    assert_eq!(page.pagination.returned_records, Some(1));
    assert_eq!(page.data[0].pos_data().unwrap()["orderId"], "S-2");
    let all = env
        .client
        .transactions(&FetchTransactions::between(window.0, window.1))
        .await
        .unwrap();
    assert_eq!(all.data.len(), 2);
    assert_eq!(all.pagination.is_partial_result, Some(false));
}

#[tokio::test]
async fn subscriptions_with_header_credentials() {
    let env = env().await;
    let mut req = payment(1500, "SUB-1");
    req.method_type = Some("subscription".into());
    req.subscription = Some(SubscriptionTerms {
        interval: Some("1month".into()),
        ..Default::default()
    });
    let t = env.client.init(&req).await.unwrap();
    let sub = t.subscription().unwrap();
    let id = sub.id.clone().unwrap();
    assert_eq!(sub.interval.as_deref(), Some("1month"));

    let fetched = env.client.subscription(&id).await.unwrap();
    assert_eq!(fetched.status_typed(), Some(SubscriptionStatus::Active));
    let paused = env
        .client
        .update_subscription(&id, SubscriptionStatus::Paused)
        .await
        .unwrap();
    assert_eq!(paused.status_typed(), Some(SubscriptionStatus::Paused));
    assert_eq!(paused.active, Some(false));
    // Location key as `branchApiKey` header.
    let by_key = env.api_key_client().subscription(&id).await.unwrap();
    assert_eq!(by_key.id.as_deref(), Some(id.as_str()));
    let canceled = env
        .client
        .update_subscription(&id, SubscriptionStatus::Canceled)
        .await
        .unwrap();
    assert_eq!(canceled.status_typed(), Some(SubscriptionStatus::Canceled));
    let err = env
        .client
        .update_subscription(&id, SubscriptionStatus::Active)
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), Some(400));
    assert_eq!(
        env.client
            .subscription("nope")
            .await
            .unwrap_err()
            .http_status(),
        Some(404)
    );
}

#[tokio::test]
async fn server_to_server_pay_tokens_credit_and_sdk_commit() {
    let env = env().await;
    let card = |number: &str| CardDetails {
        card_number: number.into(),
        security_code: "123".into(),
        card_expiration: "12/30".into(),
        social_id: None,
    };
    let pay = PayRequest {
        amount: Minor(700),
        is_cent: (),
        currency: Currency::Usd,
        credit_card_details: card(VISA),
        installments: None,
        method_type: None,
        reason: Some("Phone order".into()),
        metadata: None,
    };
    let ok = env.client.pay(&pay).await.unwrap();
    assert_eq!(ok.success, Some(true));
    assert_eq!(ok.status(), Some(Status::Approved));
    let n = ok.transaction_number.clone().unwrap();
    assert_eq!(
        env.client
            .transaction(&n)
            .await
            .unwrap()
            .amount_minor()
            .unwrap()
            .minor,
        Minor(700)
    );
    let declined = env
        .client
        .pay(&PayRequest {
            credit_card_details: card(DECLINE),
            ..pay.clone()
        })
        .await
        .unwrap();
    assert_eq!(declined.success, Some(false));
    assert_eq!(declined.status(), Some(Status::Declined));

    // Capture + tokenize, then credit that token.
    let mut req = payment(400, "TOK-1");
    req.method_type = Some("Capture+Tokenize".into());
    let t = env.client.init(&req).await.unwrap();
    env.post(
        &format!("/transactions/{}/pay", t.number()),
        json!({"card": VISA}),
    )
    .await;
    let t = env.client.transaction(t.number().as_str()).await.unwrap();
    let token = t.payment_details().unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let credit = env
        .client
        .credit(&CreditRequest {
            token,
            amount: Minor(123),
        })
        .await
        .unwrap();
    assert!(credit.is_approved(), "{credit:?}");
    assert_eq!(credit.amount.as_deref(), Some("1.23"));

    // SDK commit of an approved transaction.
    let mut commit = SdkCommitRequest::new(SdkMethodType::ManualCapture);
    commit.amount = Some(Minor(400));
    commit.currency = Some(Currency::Usd);
    let c = env
        .client
        .sdk_commit(t.number().as_str(), &commit)
        .await
        .unwrap();
    assert_eq!(c.success, Some(true));
    assert_eq!(c.transaction_status.as_deref(), Some("TransactionApproved"));
}

#[tokio::test]
async fn passthrough_forward() {
    let env = env().await;
    // A POS body as the Terminal Agent proxy receives it: no deviceId.
    let (status, body) = env
        .client
        .forward(
            Method::POST,
            "transactions/init",
            Some(json!({"amount": 250, "isCent": true, "currency": "EUR"})),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let n = body["TransactionNumber"].as_str().unwrap().to_string();
    // A forwarded GET carries no credentials (a GET body is never built for the proxy); the
    // typed status call is the one GET that sends the deviceId, to a fixed path under the base.
    let (status, _) = env
        .client
        .forward(Method::GET, &format!("transactions/{n}"), None)
        .await
        .unwrap();
    assert_ne!(status, 200, "a GET forward must not authenticate");
    let got = env.client.transaction(&n).await.unwrap();
    assert_eq!(got.get("amount").and_then(|v| v.as_str()), Some("2.5"));
    // Errors come back as answers, with every invalid field named.
    let (status, bad) = env
        .client
        .forward(
            Method::POST,
            "transactions/init",
            Some(json!({"amount": -1, "currency": "XYZ", "timeOut": 1})),
        )
        .await
        .unwrap();
    assert_eq!(status, 400);
    let names: Vec<&str> = bad["invalid_parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["parameter"].as_str().unwrap())
        .collect();
    for f in ["amount", "currency", "timeOut"] {
        assert!(names.contains(&f), "{f} in {names:?}");
    }
    // No spelling of a path leaves the SensePass base (and nothing is sent for these).
    for evil in [
        "https://evil.example/x",
        "http:evil.example/x",
        "http:127.0.0.1:9/steal",
        "\\\\evil.example\\x",
        "//evil.example/x",
        "/transactions/init",
        "%2e%2e/x",
        "transactions/%2E/refund",
        "transactions/%2f/refund",
        "../x",
        "transactions/./refund",
        "transactions//refund",
        "transactions/init?x=1",
    ] {
        assert!(
            matches!(
                env.client.forward(Method::GET, evil, None).await,
                Err(Error::Config(_))
            ),
            "{evil}"
        );
    }
    assert!(matches!(
        env.client
            .forward(Method::POST, "transactions/init", Some(json!([1])))
            .await,
        Err(Error::Config(_))
    ));
}

#[tokio::test]
async fn pos_body_validated_here_matches_what_the_sandbox_accepts() {
    let env = env().await;
    let pos = json!({
        "amount": 12.5, "isCent": false, "currency": "USD", "timeout": "900",
        "products": [{"name": "Cheese", "quantity": 1.5, "amount": 5, "vat": 0.5, "discount": 0}],
        "posData": {"orderId": "V-1"}, "clientEmail": "ann@example.com", "reason": "Deli",
        "metadata": [{"key": "genericDisplay", "value": []}]
    });
    let req = InitRequest::from_pos_json(pos).unwrap();
    assert_eq!(req.amount, Minor(1250));
    assert_eq!(req.time_out, Some(900));
    assert!(req.product_sum_mismatch(), "(500 + 50) × 1.5 = 825 ≠ 1250");
    let t = env.client.init(&req).await.unwrap();
    assert_eq!(t.amount_minor().unwrap().minor, Minor(1250));
    assert!(t.product_sum_mismatch(), "SensePass agrees");
    assert_eq!(t.products().unwrap()[0].amount, Minor(500));
    let truth = env.truth(t.number().as_str()).await;
    assert_eq!(truth["_sandbox"]["amountMinor"], 1250);
}
