//! REST API of the sandbox over real loopback HTTP: every endpoint's happy path with exact field
//! names and types, validation, authentication, and the money/status rules of docs/DECISIONS.md.

mod common;

use common::{number, Sbx};
use serde_json::{json, Value};

fn is_hex56(s: &Value) -> bool {
    s.as_str().is_some_and(|s| s.len() == 56 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

fn is_rfc3339_utc(s: &Value) -> bool {
    s.as_str().is_some_and(|s| {
        s.ends_with('Z') && time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
    })
}

#[tokio::test]
async fn init_answers_the_full_entity() {
    let sbx = Sbx::start().await;
    let e = sbx
        .init_with(json!({
            "amount": 200,
            "timeOut": 500,
            "posData": {"orderId": "A-17", "till": 3},
            "reason": "Coffee",
            "callbackURL": "https://merchant.example/cb",
            "products": [
                {"name": "Latte", "quantity": 2, "amount": 90, "vat": 10, "posIdentifier": "L1", "itemNumber": 1},
                {"name": "Cookie", "quantity": 1, "amount": 20, "discount": 5, "subProducts": [{"name": "Icing", "amount": 5}]}
            ],
            "metadata": [{"key": "genericDisplay", "value": [{"sectionLabel": "Order", "values": [{"label": "Table", "value": "4"}]}]}],
            "clientPhoneNumber": "+15550123",
            "invoice": {"type": "pdf", "url": "https://merchant.example/i.pdf"},
        }))
        .await;
    assert!(is_hex56(&e["TransactionNumber"]), "{e}");
    assert!(is_rfc3339_utc(&e["date"]));
    assert!(is_rfc3339_utc(&e["timeoutDate"]));
    let date = time::OffsetDateTime::parse(e["date"].as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap();
    let timeout = time::OffsetDateTime::parse(e["timeoutDate"].as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap();
    assert_eq!((timeout - date).whole_seconds(), 500);
    assert_eq!(e["amount"], "2");
    assert_eq!(e["baseAmount"], "2");
    assert_eq!(e["currency"], "USD");
    assert_eq!(e["status"], 0);
    assert_eq!(e["statusName"], "Initialize");
    assert_eq!(e["methodType"], 0);
    assert_eq!(e["pos"], "Till 1");
    assert_eq!(e["businessId"], "100001");
    assert_eq!(e["businessName"], "Sandbox Coffee");
    assert_eq!(e["branchNumber"], "1");
    assert!(e["branchId"].is_string());
    for key in ["businessOwnerPhone", "businessCountry", "businessCity", "businessStreet", "businessAddress"] {
        assert!(e[key].is_string(), "{key}");
    }
    assert_eq!(e["posData"], json!({"orderId": "A-17", "till": 3}));
    assert_eq!(e["reason"], "Coffee");
    let n = number(&e);
    let base = sbx.sandbox.socket_url();
    assert_eq!(e["transactionPage"]["qrURL"], format!("{base}/pay/{n}"));
    for k in ["iOSLink", "androidLink"] {
        assert!(e["transactionPage"][k].is_string());
    }
    for k in ["regular", "medium", "small"] {
        assert!(e["transactionPage"]["consumerPage"][k].as_str().unwrap().contains(&n));
    }
    assert_eq!(e["paymentCommit"], json!({"messsage": "Payment commit is enabled for this transaction"}));
    assert_eq!(e["confirmations"], json!([]));
    // Products echoed, sums as major-unit strings: (90+10)*2 + (20-5+5)*1 = 220 cents.
    assert_eq!(e["products"][0]["posIdentifier"], "L1");
    assert_eq!(e["productsSum"]["allTotalSum"], "2.2");
    assert_eq!(e["productsSum"]["allVatSum"], "0.2");
    assert_eq!(e["productsSum"]["allDiscountSum"], "0.05");
    assert_eq!(e["productsSum"]["allTipSum"], "0");
    assert_eq!(e["productSumMismatch"], true);
    assert_eq!(e["metadata"][0]["key"], "genericDisplay");
    assert_eq!(e["SMS"], "Sent");
    assert_eq!(e["invoice"]["type"], "pdf");
    assert_eq!(e["readyForPayment"], true);

    // The same entity through GET with a JSON body.
    let (status, got) = sbx.api("GET", &format!("transactions/{n}"), sbx.auth()).await;
    assert_eq!(status, 200);
    assert_eq!(got, e);
    // And with the API key.
    let (status, got) =
        sbx.api("GET", &format!("transactions/{n}"), json!({"apiKey": "sandbox-api-key", "branchNumber": "1"})).await;
    assert_eq!(status, 200);
    assert_eq!(got["TransactionNumber"], n.as_str());
}

#[tokio::test]
async fn init_variants_receipt_tokenize_subscription_major_units() {
    let sbx = Sbx::start().await;
    let e = sbx
        .init_with(json!({"amount": 12.5, "isCent": false, "products": [{"name": "Tea", "amount": 12.5}],
            "receipt": {"mode": 2, "accountingProvider": 4}}))
        .await;
    assert_eq!(e["amount"], "12.5");
    assert_eq!(e["productSumMismatch"], false);
    assert_eq!(e["receiptPending"], true);
    let endpoint = e["posReceiptsEndpoint"].as_str().unwrap().to_string();
    assert!(endpoint.starts_with(&format!("{}/api/invoicesReceipts/receipt/save/", sbx.sandbox.socket_url())));
    // The POS uploads its receipt after payment.
    sbx.pay(&number(&e), "4111111111111111").await;
    let r = sbx.http.post(&endpoint).header("content-type", "application/pdf").body("%PDF-1.4").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let truth = sbx.truth(&number(&e)).await;
    assert_eq!(truth["receiptPending"], false);
    assert_eq!(truth["_sandbox"]["receiptUploads"][0]["contentType"], "application/pdf");

    let tok = sbx.init_with(json!({"methodType": "Tokenize", "amount": null})).await;
    assert_eq!(tok["methodType"], 1);
    assert_eq!(tok["amount"], "0");
    assert_eq!(tok["paymentDetails"], json!({"type": "Tokenize"}));
    let paid = sbx.pay(&number(&tok), "5200000000000056").await;
    assert_eq!(paid["paymentDetails"]["token"].as_str().unwrap().len(), 256);

    let ct = sbx.init_with(json!({"methodType": "Capture+Tokenize", "amount": 500})).await;
    assert_eq!(ct["paymentDetails"]["type"], "Capture+Tokenize");
    assert_eq!(ct["methodType"], 4);

    let sub = sbx
        .init_with(json!({"methodType": "subscription", "amount": 999,
            "subscription": {"interval": "1month", "dueDate": "2030-01-01", "expiration": "2031-01-01"}}))
        .await;
    assert_eq!(sub["methodType"], 5);
    let id = sub["subscription"]["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 36);
    assert_eq!(sub["subscription"]["status"], "active");
    assert_eq!(sub["subscription"]["active"], true);
    assert_eq!(sub["subscription"]["interval"], "1month");
    assert_eq!(sub["subscription"]["start_date"], "2030-01-01T00:00:00.000Z");

    // Subscription fetch/update use header credentials.
    let url = format!("{}subscription/{id}", sbx.sandbox.api_base());
    let r = sbx.http.get(&url).header("deviceId", &sbx.device).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["id"], id.as_str());
    let r = sbx.http.get(&url).header("merchantApiKey", "wrong").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = sbx.http.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = sbx.http.patch(&url).header("branchApiKey", "sandbox-api-key").json(&json!({"status": "paused"})).send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "paused");
    assert_eq!(v["active"], false);
    let r = sbx.http.patch(&url).header("deviceId", &sbx.device).json(&json!({"status": "canceled"})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = sbx.http.patch(&url).header("deviceId", &sbx.device).json(&json!({"status": "active"})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400, "a canceled subscription cannot be updated");
    let r = sbx.http.get(format!("{}subscription/nope", sbx.sandbox.api_base())).header("deviceId", &sbx.device).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[tokio::test]
async fn validation_names_every_invalid_field() {
    let sbx = Sbx::start().await;
    let (status, body) = sbx
        .api("POST", "transactions/init", json!({
            "amount": 12.5, "currency": "XYZ", "timeOut": 5, "isCent": "yes",
            "products": [{"name": "x", "quantity": -1, "amount": -3, "vat": "a"}],
            "posData": {"any": "thing"}
        }))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["status"], 400);
    assert_eq!(body["error_type"], "validation");
    assert!(body["title"].is_string());
    let names: Vec<&str> =
        body["invalid_parameters"].as_array().unwrap().iter().map(|p| p["parameter"].as_str().unwrap()).collect();
    for expected in ["deviceId", "isCent", "currency", "timeOut", "products[0].vat", "products[0].quantity", "products[0].amount"] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    for p in body["invalid_parameters"].as_array().unwrap() {
        assert!(p["reason"].as_str().is_some_and(|r| !r.is_empty()));
    }
    // isCent true and a fraction of a cent; amount 0; missing currency.
    let (status, body) = sbx.api("POST", "transactions/init", json!({"deviceId": sbx.device, "amount": 100.5})).await;
    assert_eq!(status, 400);
    let names: Vec<&str> =
        body["invalid_parameters"].as_array().unwrap().iter().map(|p| p["parameter"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["currency", "amount"]);
    let (status, body) = sbx.api("POST", "transactions/init", json!({"deviceId": sbx.device, "amount": 0, "currency": "EUR"})).await;
    assert_eq!(status, 400);
    assert_eq!(body["invalid_parameters"][0]["parameter"], "amount");
    let (status, body) = sbx.api("POST", "transactions/init", json!({"deviceId": sbx.device, "currency": "EUR"})).await;
    assert_eq!((status, body["invalid_parameters"][0]["reason"].as_str()), (400, Some("is required")));
    // Wrong types.
    let (status, body) = sbx.api("POST", "transactions/init", json!({"deviceId": 5, "amount": "100", "currency": "USD", "products": {}})).await;
    assert_eq!(status, 400);
    let names: Vec<&str> =
        body["invalid_parameters"].as_array().unwrap().iter().map(|p| p["parameter"].as_str().unwrap()).collect();
    assert!(names.contains(&"deviceId") && names.contains(&"amount") && names.contains(&"products"), "{names:?}");
    // Malformed JSON and non-object bodies.
    let (status, body) = sbx.api_raw("transactions/init", "{\"amount\": 1,").await;
    assert_eq!(status, 400);
    assert_eq!(body["invalid_parameters"][0]["parameter"], "body");
    let (status, body) = sbx.api_raw("transactions/init", "[1,2]").await;
    assert_eq!((status, &body["invalid_parameters"][0]["parameter"]), (400, &json!("body")));
    // Nothing was created by any of these.
    assert_eq!(sbx.state().await["transactions"], json!([]));
}

#[tokio::test]
async fn unknown_credentials_and_numbers() {
    let sbx = Sbx::start().await;
    let (status, body) = sbx.api("POST", "transactions/init", json!({"deviceId": "nope", "amount": 1, "currency": "USD"})).await;
    assert_eq!(status, 401);
    assert_eq!(body, json!({"status": 401, "error_type": "unauthorized", "title": "Unknown deviceId"}));
    let (status, body) = sbx.api("POST", "transactions/init", json!({"apiKey": "nope", "amount": 1, "currency": "USD"})).await;
    assert_eq!((status, body["title"].as_str()), (401, Some("Unknown apiKey")));
    let (status, body) = sbx.api("GET", &format!("transactions/{}", "0".repeat(56)), sbx.auth()).await;
    assert_eq!(status, 404);
    assert_eq!(body, json!({"status": 404, "error_type": "not_found", "title": "Transaction not found"}));
    let (status, _) = sbx.api("POST", &format!("transactions/cancel/{}", "0".repeat(56)), sbx.auth()).await;
    assert_eq!(status, 404);
    let (status, _) = sbx.api("GET", &format!("transactions/commitPayment/{}", "0".repeat(56)), json!({})).await;
    assert_eq!(status, 404);
    let (status, _) = sbx.api("POST", "no/such/endpoint", sbx.auth()).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn cancel_rules() {
    let sbx = Sbx::start().await;
    // 0 → 9.
    let n = number(&sbx.init(100).await);
    let (status, body) = sbx.api("POST", &format!("transactions/cancel/{n}"), sbx.auth()).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"status": 200, "status_message": "Transaction Was Canceled"}));
    assert_eq!(sbx.truth(&n).await["status"], 9);
    // Final → 400.
    let (status, body) = sbx.api("POST", &format!("transactions/cancel/{n}"), sbx.auth()).await;
    assert_eq!(status, 400);
    assert_eq!(body, json!({"status": 400, "status_message": "Transaction is not pending"}));
    // Consumer activity (2) → 501; 3-D Secure challenge pending on the page keeps it in 2.
    let n = number(&sbx.init(100).await);
    let page = format!("{}/pay/{n}/card", sbx.sandbox.socket_url());
    let r = sbx.http.post(&page).form(&[("card", "4456530000001096")]).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(sbx.truth(&n).await["status"], 2);
    let (status, body) = sbx.api("POST", &format!("transactions/cancel/{n}"), sbx.auth()).await;
    assert_eq!(status, 501);
    assert_eq!(body, json!({"status": 501, "status_message": "Transaction cannot be cancelled due to consumer activity"}));
    // Tapped (1) and user-declined (3) can be cancelled: by device, the most recent pending one.
    sbx.control(&format!("/transactions/{n}/expire"), json!({})).await;
    let older = number(&sbx.init(100).await);
    let newer = number(&sbx.init(200).await);
    sbx.control(&format!("/transactions/{newer}/tap"), json!({})).await;
    let path = format!("transactions/cancelByDeviceId/{}", sbx.device);
    let (status, body) = sbx.api("POST", &path, sbx.auth()).await;
    assert_eq!((status, body["status_message"].as_str()), (200, Some("Transaction Was Canceled")));
    assert_eq!(sbx.truth(&newer).await["status"], 9);
    assert_eq!(sbx.truth(&older).await["status"], 0);
    sbx.control(&format!("/transactions/{older}/abandon"), json!({})).await;
    assert_eq!(sbx.truth(&older).await["status"], 3);
    let (status, _) = sbx.api("POST", &path, sbx.auth()).await;
    assert_eq!(status, 200);
    assert_eq!(sbx.truth(&older).await["status"], 9);
    let (status, body) = sbx.api("POST", &path, sbx.auth()).await;
    assert_eq!(status, 404);
    assert_eq!(body, json!({"status": 404, "status_message": "No pending transaction"}));
}

#[tokio::test]
async fn refund_partial_then_rest_and_over_refund() {
    let sbx = Sbx::start().await;
    let n = number(&sbx.init(1000).await);
    // Not refundable before approval.
    let (status, body) = sbx.api("POST", "transactions/refund", json!({"deviceId": sbx.device, "transactionNumber": n})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["invalid_parameters"][0]["parameter"], "transactionNumber");
    sbx.pay(&n, "4111111111111111").await;
    // Partial refund needs refundAmount.
    let (status, body) = sbx.api("POST", "transactions/refund", json!({"deviceId": sbx.device, "transactionNumber": n, "isPartial": true})).await;
    assert_eq!((status, &body["invalid_parameters"][0]["parameter"]), (400, &json!("refundAmount")));
    // 2.50 of 10.00 (major units) → 13.
    let (status, body) = sbx
        .api("POST", "transactions/refund", json!({"deviceId": sbx.device, "transactionNumber": n, "isPartial": true, "refundAmount": 2.5}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["errorCode"], 0);
    assert_eq!(body["errorMessage"], Value::Null);
    assert_eq!(body["result"], "Approved");
    assert_eq!(body["amount"], "2.5");
    assert!(body["refundConfirmation"].is_string());
    assert!(is_rfc3339_utc(&body["dateApproval"]));
    assert_eq!(body["transaction"]["TransactionNumber"], n.as_str());
    assert_eq!(body["transaction"]["status"], 13);
    assert_eq!(body["transaction"]["businessId"], "100001");
    let truth = sbx.truth(&n).await;
    assert_eq!(truth["status"], 13);
    assert_eq!(truth["statusName"], "Transaction Partially Refunded");
    assert_eq!(truth["_sandbox"]["refundedMinor"], 250);
    let refund_conf = &truth["confirmations"][1];
    assert_eq!(refund_conf["paymentType"], "Refund");
    assert_eq!(refund_conf["amount"], "2.5");
    let history: Vec<u64> = truth["_sandbox"]["statusHistory"].as_array().unwrap().iter().map(|h| h["status"].as_u64().unwrap()).collect();
    assert_eq!(&history[history.len() - 2..], &[12, 13]);
    // More than the remaining 7.50 → errorCode 22, nothing changes.
    let (status, body) = sbx
        .api("POST", "transactions/refund", json!({"apiKey": "sandbox-api-key", "transactionNumber": n, "isPartial": true, "refundAmount": 7.51}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["errorCode"], 22);
    assert_eq!(body["errorMessage"], "refund operation declined by Processor");
    assert_eq!(body["result"], "Declined");
    assert_eq!(body["transaction"], Value::Null);
    assert_eq!(sbx.truth(&n).await["_sandbox"]["refundedMinor"], 250);
    // The rest, in minor units with isCent → 11.
    let (status, body) = sbx
        .api("POST", "transactions/refund", json!({"deviceId": sbx.device, "transactionNumber": n, "isPartial": true, "refundAmount": 750, "isCent": true}))
        .await;
    assert_eq!((status, &body["errorCode"]), (200, &json!(0)));
    assert_eq!(body["transaction"]["status"], 11);
    let truth = sbx.truth(&n).await;
    assert_eq!(truth["status"], 11);
    assert_eq!(truth["_sandbox"]["refundedMinor"], 1000);
    assert_eq!(truth["_sandbox"]["refunds"].as_array().unwrap().len(), 2);
    assert_eq!(truth["_sandbox"]["refunds"][1]["amountMinor"], 750);
    // A full refund (no isPartial) refunds the remaining amount.
    let m = number(&sbx.init(300).await);
    sbx.pay(&m, "5200000000000056").await;
    let (_, body) = sbx.api("POST", "transactions/refund", json!({"deviceId": sbx.device, "transactionNumber": m})).await;
    assert_eq!(body["amount"], "3");
    assert_eq!(sbx.truth(&m).await["status"], 11);
}

#[tokio::test]
async fn commit_link_and_sdk_commit() {
    let sbx = Sbx::start().await;
    let n = number(&sbx.init(250).await);
    let (status, body) = sbx.api("GET", &format!("transactions/commitPayment/{n}"), json!({})).await;
    assert_eq!(status, 400, "not approved yet: {body}");
    let paid = sbx.pay(&n, "4111111111111111").await;
    let link = paid["paymentCommit"]["commitLink"].as_str().unwrap().to_string();
    assert_eq!(link, format!("{}/api/transactions/commitPayment/{n}", sbx.sandbox.socket_url()));
    assert_eq!(paid["paymentCommit"]["isPaymentCommitted"], false);
    assert_eq!(paid["paymentCommit"]["secondsToCommit"], 7200);
    assert_eq!(paid["paymentCommit"]["messsage"], "Please Commit this payment in 7200 seconds");
    // GET, no headers, no body; idempotent.
    for _ in 0..2 {
        let r = sbx.http.get(&link).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v, json!({"status": 200, "status_message": "Payment Committed", "isPaymentCommitted": true}));
    }
    let truth = sbx.truth(&n).await;
    assert_eq!(truth["paymentCommit"]["isPaymentCommitted"], true);
    assert_eq!(truth["_sandbox"]["commitCount"], 2);
    assert_eq!(truth["_sandbox"]["commitExpired"], false);

    // JS SDK commit.
    let m = number(&sbx.init_with(json!({"methodType": "Capture+Tokenize", "amount": 400})).await);
    let (status, body) = sbx.api("POST", &format!("transactions/{m}/commit"), json!({"deviceId": sbx.device, "methodType": "tokenize"})).await;
    assert_eq!(status, 200);
    assert_eq!(body["success"], false);
    assert_eq!(body["transactionStatus"], "Initialize");
    sbx.pay(&m, "4111111111111111").await;
    let (status, body) = sbx.api("POST", &format!("transactions/{m}/commit"), json!({"deviceId": sbx.device, "methodType": "tokenize"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["transactionNumber"], m.as_str());
    assert_eq!(body["transactionStatus"], "TransactionApproved");
    assert_eq!(body["paymentDetails"]["token"].as_str().unwrap().len(), 256);
    assert_eq!(body["confirmation"]["cardMask"], "411111******1111");
    let (status, body) = sbx.api("POST", &format!("transactions/{m}/commit"), json!({"deviceId": sbx.device, "methodType": "manual_capture"})).await;
    assert_eq!((status, &body["invalid_parameters"][0]["parameter"]), (400, &json!("amount")));
    assert_eq!(sbx.truth(&m).await["_sandbox"]["commitCount"], 1);

    // An expired commit window is visible in the ground truth.
    sbx.control("/settings", json!({"secondsToCommit": 0})).await;
    let k = number(&sbx.init(100).await);
    sbx.pay(&k, "4111111111111111").await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(sbx.truth(&k).await["_sandbox"]["commitExpired"], true);
}

#[tokio::test]
async fn confirmation_fields_never_carry_the_card_number() {
    let sbx = Sbx::start().await;
    let n = number(&sbx.init(150).await);
    let paid = sbx.pay(&n, "4111111111111111").await;
    assert_eq!(paid["status"], 5);
    assert_eq!(paid["statusName"], "Transaction Approved");
    let c = &paid["confirmations"][0];
    assert_eq!(c["cardMask"], "411111******1111");
    assert_eq!(c["lastFourDigits"], "1111");
    assert_eq!(c["cardType"], "Visa");
    assert_eq!(c["paymentType"], "Regular");
    assert_eq!(c["amount"], "1.5");
    assert_eq!(c["extraDetails"]["threeDSecure"], false);
    assert_eq!(c["settlement"]["status"], 1);
    for key in ["confirmationNumber", "fullConfirmationCode", "authNumber", "referenceNumber", "providerName", "approvedBy", "requestID", "sensePassReferenceId"] {
        assert!(c[key].is_string(), "{key}");
    }
    assert!(is_rfc3339_utc(&c["dateApproval"]));
    let all = sbx.state().await.to_string();
    assert!(!all.contains("4111111111111111"), "full card number leaked");
}

#[tokio::test]
async fn server_to_server_pay_and_credit() {
    let sbx = Sbx::start().await;
    let card = |number: &str| json!({"cardNumber": number, "securityCode": "123", "cardExpiration": "12/29"});
    let (status, body) = sbx
        .api("POST", "transactions/pay", json!({"apiKey": "sandbox-api-key", "amount": 1234, "currency": "ILS", "creditCardDetails": card("5200000000000056")}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["transactionStatus"], "TransactionApproved");
    assert!(is_hex56(&body["transactionNumber"]));
    assert_eq!(body["confirmation"]["cardMask"], "520000******0056");
    assert_eq!(body["confirmation"]["cardExpiration"], "12/29");
    assert_eq!(body["confirmation"]["amount"], "12.34");
    let n = body["transactionNumber"].as_str().unwrap().to_string();
    assert_eq!(sbx.truth(&n).await["status"], 5);

    let (_, body) = sbx
        .api("POST", "transactions/pay", json!({"deviceId": sbx.device, "amount": 100, "currency": "USD", "creditCardDetails": card("4456530000001013")}))
        .await;
    assert_eq!(body["success"], false);
    assert_eq!(body["transactionStatus"], "TransactionDeclined");
    let declined = body["transactionNumber"].as_str().unwrap().to_string();
    assert_eq!(sbx.truth(&declined).await["status"], 6);

    let (_, body) = sbx
        .api("POST", "transactions/pay", json!({"deviceId": sbx.device, "amount": 100, "currency": "USD", "creditCardDetails": card("4456530000001096")}))
        .await;
    assert_eq!(body["success"], true);
    assert_eq!(body["confirmation"]["extraDetails"]["threeDSecure"], true);

    let (status, body) = sbx
        .api("POST", "transactions/pay", json!({"deviceId": sbx.device, "amount": 100, "isCent": false, "currency": "USD",
            "creditCardDetails": {"cardNumber": "4000000000000002", "securityCode": "1", "cardExpiration": "13/99"}}))
        .await;
    assert_eq!(status, 400);
    let names: Vec<&str> = body["invalid_parameters"].as_array().unwrap().iter().map(|p| p["parameter"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["isCent", "creditCardDetails.cardNumber", "creditCardDetails.securityCode", "creditCardDetails.cardExpiration"]);

    // Credit by token: the token of a tokenizing payment.
    let tok = number(&sbx.init_with(json!({"methodType": "tokenize", "amount": null})).await);
    let token = sbx.pay(&tok, "4111111111111111").await["paymentDetails"]["token"].as_str().unwrap().to_string();
    let (status, body) = sbx.api("POST", "transactions/credit", json!({"deviceId": sbx.device, "token": token, "refundAmount": 1.23})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["errorCode"], 0);
    assert_eq!(body["result"], "Approved");
    assert_eq!(body["amount"], "1.23");
    assert_eq!(body["transaction"]["amount"], "1.23");
    let (status, body) = sbx.api("POST", "transactions/credit", json!({"deviceId": sbx.device, "token": "nope", "refundAmount": 1})).await;
    assert_eq!((status, &body["invalid_parameters"][0]["parameter"]), (400, &json!("token")));
    // The stored token charges too.
    let (_, body) = sbx.api("POST", "transactions/pay", json!({"deviceId": sbx.device, "amount": 700, "currency": "USD", "token": token})).await;
    assert_eq!(body["success"], true);
}

#[tokio::test]
async fn update_and_ready_for_payment() {
    let sbx = Sbx::start().await;
    let e = sbx.init_with(json!({"amount": 100, "readyForPayment": false, "products": [{"name": "A", "amount": 100}]})).await;
    let n = number(&e);
    assert_eq!(e["readyForPayment"], false);
    // Not ready: paying is refused.
    let (status, _) = sbx.control(&format!("/transactions/{n}/pay"), json!({"card": "4111111111111111"})).await;
    assert_eq!(status, 409);
    let (status, body) = sbx
        .api("PATCH", &format!("transactions/{n}"), json!({"deviceId": sbx.device, "amount": 350, "reason": "Lunch",
            "products": [{"name": "A", "amount": 100}, {"name": "B", "amount": 250}], "posData": {"orderId": "P-1"}}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["amount"], "3.5");
    assert_eq!(body["reason"], "Lunch");
    assert_eq!(body["products"][1]["name"], "B");
    assert_eq!(body["productSumMismatch"], false);
    assert_eq!(body["posData"]["orderId"], "P-1");
    assert_eq!(body["readyForPayment"], false);
    let (status, body) = sbx.api("PATCH", &format!("transactions/{n}"), json!({"deviceId": sbx.device, "amount": -1})).await;
    assert_eq!((status, &body["invalid_parameters"][0]["parameter"]), (400, &json!("amount")));
    // Legacy readyForPayment call.
    let (status, body) = sbx
        .api("POST", &format!("transactions/{n}/readyForPayment"), json!({"deviceId": sbx.device, "amount": 400, "currency": "USD", "isCent": true}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["readyForPayment"], true);
    assert_eq!(body["amount"], "4");
    // PATCH readyForPayment false → true.
    let (_, body) = sbx.api("PATCH", &format!("transactions/{n}"), json!({"deviceId": sbx.device, "readyForPayment": true})).await;
    assert_eq!(body["readyForPayment"], true);
    sbx.pay(&n, "4111111111111111").await;
    let (status, body) = sbx.api("PATCH", &format!("transactions/{n}"), json!({"deviceId": sbx.device, "amount": 1})).await;
    assert_eq!(status, 400);
    assert_eq!(body["status_message"], "Transaction cannot be updated in its current status");
}

#[tokio::test]
async fn multi_fetch_with_filters_and_pagination() {
    let sbx = Sbx::start().await;
    let mut numbers = Vec::new();
    for (i, cents) in [100, 200, 300, 400].iter().enumerate() {
        let e = sbx.init_with(json!({"amount": cents, "posData": {"orderId": format!("O-{i}")}})).await;
        numbers.push(number(&e));
    }
    sbx.pay(&numbers[1], "4111111111111111").await;
    sbx.control(&format!("/transactions/{}/expire", numbers[2]), json!({})).await;
    let window = json!({"startDate": "2000-01-01T00:00:00Z", "endDate": "2100-01-01"});
    let fetch = |extra: Value| {
        let mut body = json!({"deviceId": sbx.device});
        for (k, v) in window.as_object().unwrap().iter().chain(extra.as_object().unwrap()) {
            body[k] = v.clone();
        }
        body
    };
    let (status, body) = sbx.api("POST", "transactions", fetch(json!({}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["pagination"], json!({"returnedRecords": 4, "totalRecords": 4, "isPartialResult": false}));
    assert_eq!(body["data"][0]["TransactionNumber"], numbers[0].as_str());
    let (_, body) = sbx.api("POST", "transactions", fetch(json!({"filter[]": [{"posData.orderId": "O-3", "operator": "="}]}))).await;
    assert_eq!(body["pagination"]["totalRecords"], 1);
    assert_eq!(body["data"][0]["TransactionNumber"], numbers[3].as_str());
    let (_, body) = sbx.api("POST", "transactions", fetch(json!({"filter": [{"amount": 2, "operator": ">="}]}))).await;
    assert_eq!(body["pagination"]["totalRecords"], 3);
    let (_, body) = sbx.api("POST", "transactions", fetch(json!({"status": "settled"}))).await;
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    assert_eq!(body["data"][0]["TransactionNumber"], numbers[1].as_str());
    let (_, body) = sbx.api("POST", "transactions", fetch(json!({"status": "expired"}))).await;
    assert_eq!(body["data"][0]["TransactionNumber"], numbers[2].as_str());
    let (_, body) = sbx.api("POST", "transactions", fetch(json!({"pagination": {"limit": 2, "offset": 1}, "orderBy": "-amount"}))).await;
    assert_eq!(body["pagination"], json!({"returnedRecords": 2, "totalRecords": 4, "isPartialResult": true}));
    assert_eq!(body["data"][0]["amount"], "3");
    assert_eq!(body["data"][1]["amount"], "2");
    let (_, body) = sbx.api("POST", "transactions", fetch(json!({"currency": "EUR"}))).await;
    assert_eq!(body["pagination"]["totalRecords"], 0);
    let (status, body) = sbx
        .api("POST", "transactions", json!({"deviceId": sbx.device, "startDate": "yesterday", "pagination": {"limit": 0}, "filter[]": [{"a": 1, "operator": "~"}]}))
        .await;
    assert_eq!(status, 400);
    let names: Vec<&str> = body["invalid_parameters"].as_array().unwrap().iter().map(|p| p["parameter"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["startDate", "endDate", "pagination.limit", "filter[][0].operator"]);
}

#[tokio::test]
async fn settlements_report_rows() {
    let sbx = Sbx::start().await;
    let a = number(&sbx.init(1021).await);
    let b = number(&sbx.init(500).await);
    let _open = number(&sbx.init(700).await);
    sbx.pay(&a, "4111111111111111").await;
    sbx.pay(&b, "5200000000000056").await;
    sbx.api("POST", "transactions/refund", json!({"deviceId": sbx.device, "transactionNumber": b})).await;
    let body = json!({"apiKey": "sandbox-api-key", "startDate": "2000-01-01", "endDate": "2100-01-01", "orderBy": "settlementAmount"});
    let (status, report) = sbx.api("POST", "settlements/all", body.clone()).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["pagination"], json!({"returnedRecords": 2, "totalRecords": 2, "isPartialResult": false}));
    let row = &report["data"][1];
    assert_eq!(row["transactionNumber"], a.as_str());
    assert_eq!(row["status"], "settled");
    assert_eq!(row["settlementAmount"], "10.21");
    assert_eq!(row["settlementCurrency"], "USD");
    assert_eq!(row["cardType"], "Visa");
    for key in ["paymentMethod", "fee", "submitDate", "settlementDate", "pmTransId"] {
        assert!(row[key].is_string(), "{key}");
    }
    assert_eq!(report["data"][0]["status"], "voided");
    let mut only_settled = body.clone();
    only_settled["status"] = json!("settled");
    let (_, report) = sbx.api("POST", "settlements/all", only_settled).await;
    assert_eq!(report["pagination"]["totalRecords"], 1);
    let mut bad = body;
    bad["orderBy"] = json!("nope");
    let (status, _) = sbx.api("POST", "settlements/all", bad).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn devices_match_and_create() {
    let sbx = Sbx::start().await;
    let (status, d) = sbx.api("POST", "devices/match", json!({"apiKey": "sandbox-api-key", "pinCode": "53K-HMD-786", "posName": "Front"})).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["name"], "Front");
    assert_eq!(d["pinCode"], "53K-HMD-786");
    let id = d["deviceAliasKey"].as_str().unwrap();
    assert!(id.len() >= 50 && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()), "{id}");
    for key in ["merchantUID", "branchUID"] {
        assert!(d[key].is_string());
    }
    let boxes = d["clientBoxes"].as_array().unwrap();
    let url = boxes[0].as_str().unwrap();
    let code = url.strip_prefix(&format!("{}/c_", sbx.sandbox.socket_url())).unwrap();
    assert!(code.len() == 32 && code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()), "{url}");
    // The same PIN again gives the same device.
    let (_, again) = sbx.api("POST", "devices/match", json!({"apiKey": "sandbox-api-key", "pinCode": "53K-HMD-786"})).await;
    assert_eq!(again["deviceAliasKey"], d["deviceAliasKey"]);
    // The new device id works as credentials.
    let (status, _) = sbx.api("POST", "transactions/init", json!({"deviceId": id, "amount": 1, "currency": "USD"})).await;
    assert_eq!(status, 200);
    let (status, body) = sbx.api("POST", "devices/match", json!({"apiKey": "sandbox-api-key", "pinCode": "12345"})).await;
    assert_eq!((status, &body["invalid_parameters"][0]["parameter"]), (400, &json!("pinCode")));
    let (status, _) = sbx.api("POST", "devices/match", json!({"apiKey": "wrong", "pinCode": "ABC-DEF-123"})).await;
    assert_eq!(status, 401);
    let (status, body) = sbx.api("POST", "devices/create", json!({"apiKey": "sandbox-api-key"})).await;
    assert_eq!((status, &body["invalid_parameters"][0]["parameter"]), (400, &json!("posName")));
    let (status, d) = sbx.api("POST", "devices/create", json!({"apiKey": "sandbox-api-key", "posName": "Drive-thru"})).await;
    assert_eq!(status, 200);
    assert_eq!(d["name"], "Drive-thru");
    assert!(d.get("pinCode").is_none());
    // Control API can create devices directly.
    let (status, d) = sbx.control("/devices", json!({"posName": "Direct"})).await;
    assert_eq!(status, 200);
    assert_eq!(d["name"], "Direct");
    assert_eq!(sbx.state().await["devices"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn customer_input_blocks_until_answered_or_reset() {
    let sbx = Sbx::start().await;
    let body = json!({"deviceId": sbx.device, "inputs": [{"type": "email", "question": "Your e-mail?", "minimumLength": 3}]});
    let api = sbx.sandbox.api_base();
    let http = sbx.http.clone();
    let ask = {
        let (http, api, body) = (http.clone(), api.clone(), body.clone());
        tokio::spawn(async move { http.post(format!("{api}transactions/customer-input")).json(&body).send().await.unwrap().json::<Value>().await.unwrap() })
    };
    // Wait until the question is pending, then answer it through the control API.
    let path = format!("/devices/{}/customer-input", sbx.device);
    let mut answered = false;
    for _ in 0..100 {
        let (status, reply) = sbx.control(&path, json!({"answers": ["a@b.c"]})).await;
        if status == 200 {
            assert_eq!(reply["delivered"], true);
            answered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(answered);
    let result = ask.await.unwrap();
    assert_eq!(result["success"], true);
    assert_eq!(result["error"], Value::Null);
    assert_eq!(result["results"], json!([{"type": "email", "question": "Your e-mail?", "minimumLength": 3, "input": "a@b.c"}]));

    // Reset ends a waiting call with success:false.
    let ask = {
        let (http, api, body) = (http.clone(), api.clone(), body.clone());
        tokio::spawn(async move { http.post(format!("{api}transactions/customer-input")).json(&body).send().await.unwrap().json::<Value>().await.unwrap() })
    };
    let mut reset = false;
    for _ in 0..100 {
        let state = sbx.state().await;
        if state["devices"][0]["pendingCustomerInput"].is_array() {
            let (status, r) = sbx.api("POST", "transactions/customer-input/reset", sbx.auth()).await;
            assert_eq!((status, &r["success"]), (200, &json!(true)));
            reset = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(reset);
    let result = ask.await.unwrap();
    assert_eq!(result["success"], false);
    assert_eq!(result["results"], json!([]));
    // Nothing pending: control answers 404; validation names fields.
    let (status, _) = sbx.control(&path, json!({"answers": ["x"]})).await;
    assert_eq!(status, 404);
    let (status, body) = sbx.api("POST", "transactions/customer-input", json!({"inputs": [{"type": "email"}]})).await;
    assert_eq!(status, 400);
    let names: Vec<&str> = body["invalid_parameters"].as_array().unwrap().iter().map(|p| p["parameter"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["deviceId", "inputs[0].question"]);
    // A short wait configured for tests ends unanswered calls.
    sbx.control("/settings", json!({"customerInputWaitMs": 100})).await;
    let (status, body) = sbx.api("POST", "transactions/customer-input", json!({"deviceId": sbx.device, "inputs": [{"type": "phone", "question": "Phone?"}]})).await;
    assert_eq!((status, &body["success"]), (200, &json!(false)));
}

#[tokio::test]
async fn unpaid_transaction_times_out() {
    let sbx = Sbx::start().await;
    let (status, body) = sbx.api("POST", "transactions/init", json!({"deviceId": sbx.device, "amount": 1, "currency": "USD", "timeOut": 2})).await;
    assert_eq!(status, 400, "below the 10 s minimum: {body}");
    let (_, settings) = sbx.control("/settings", json!({"minTimeOutSeconds": 1})).await;
    assert_eq!(settings["minTimeOutSeconds"], 1);
    let n = number(&sbx.init_with(json!({"timeOut": 1})).await);
    let paid_in_time = number(&sbx.init_with(json!({"timeOut": 1})).await);
    sbx.pay(&paid_in_time, "4111111111111111").await;
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    let truth = sbx.truth(&n).await;
    assert_eq!(truth["status"], 8);
    assert_eq!(truth["statusName"], "Transaction Timeout");
    assert_eq!(sbx.truth(&paid_in_time).await["status"], 5);
}

#[tokio::test]
async fn control_actions_and_reset() {
    let sbx = Sbx::start().await;
    let n = number(&sbx.init(100).await);
    let (status, t) = sbx.control(&format!("/transactions/{n}/tap"), json!({})).await;
    assert_eq!((status, &t["status"]), (200, &json!(1)));
    let (_, t) = sbx.control(&format!("/transactions/{n}/approve"), json!({})).await;
    assert_eq!(t["status"], 5);
    assert_eq!(t["confirmations"][0]["cardMask"], "411111******1111");
    let (status, _) = sbx.control(&format!("/transactions/{n}/expire"), json!({})).await;
    assert_eq!(status, 409, "approved cannot time out");
    let m = number(&sbx.init(100).await);
    let (_, t) = sbx.control(&format!("/transactions/{m}/decline"), json!({})).await;
    assert_eq!(t["status"], 6);
    let k = number(&sbx.init(100).await);
    let (_, t) = sbx.control(&format!("/transactions/{k}/pay"), json!({"card": "4456530000001013"})).await;
    assert_eq!(t["status"], 6);
    let (status, _) = sbx.control(&format!("/transactions/{k}/pay"), json!({"card": "1234"})).await;
    assert_eq!(status, 400);
    let (status, _) = sbx.control("/transactions/nope/tap", json!({})).await;
    assert_eq!(status, 404);
    let state = sbx.state().await;
    assert_eq!(state["calls"]["init"], 3);
    let (status, _) = sbx.control("/reset", json!({})).await;
    assert_eq!(status, 200);
    let state = sbx.state().await;
    assert_eq!(state["transactions"], json!([]));
    assert_eq!(state["devices"], json!([]));
    let (status, _) = sbx.api("POST", "transactions/init", json!({"deviceId": sbx.device, "amount": 1, "currency": "USD"})).await;
    assert_eq!(status, 401, "devices are gone after reset");
}

#[tokio::test]
async fn autopilot_pays_new_transactions() {
    let sbx = Sbx::start().await;
    let (status, a) = sbx.control("/autopilot", json!({"approveAfterMs": 50, "card": "5200000000000056"})).await;
    assert_eq!((status, &a["enabled"]), (200, &json!(true)));
    let n = number(&sbx.init(100).await);
    let not_ready = number(&sbx.init_with(json!({"readyForPayment": false})).await);
    let mut done = false;
    for _ in 0..100 {
        if sbx.truth(&n).await["status"] == 5 {
            done = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(done, "autopilot paid");
    assert_eq!(sbx.truth(&n).await["confirmations"][0]["cardType"], "MasterCard");
    assert_eq!(sbx.truth(&not_ready).await["status"], 0, "waits for readyForPayment");
    sbx.api("PATCH", &format!("transactions/{not_ready}"), json!({"deviceId": sbx.device, "readyForPayment": true})).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(sbx.truth(&not_ready).await["status"], 5);
    let (_, a) = sbx.control_delete("/autopilot").await;
    assert_eq!(a["enabled"], false);
    let m = number(&sbx.init(100).await);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(sbx.truth(&m).await["status"], 0);
}

#[tokio::test]
async fn created_count_reveals_duplicate_orders() {
    let sbx = Sbx::start().await;
    let a = number(&sbx.init_with(json!({"posData": {"orderId": "DUP"}})).await);
    assert_eq!(sbx.truth(&a).await["_sandbox"]["createdCount"], 1);
    sbx.init_with(json!({"posData": {"orderId": "DUP"}})).await;
    assert_eq!(sbx.truth(&a).await["_sandbox"]["createdCount"], 2);
}

// ---------------------------------------------------------------------------------------------
// Pay page

async fn page(sbx: &Sbx, path: &str) -> (u16, String) {
    let r = sbx.http.get(format!("{}{path}", sbx.sandbox.socket_url())).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn post_form(sbx: &Sbx, path: &str, form: &[(&str, &str)]) -> (u16, String) {
    let r = sbx.http.post(format!("{}{path}", sbx.sandbox.socket_url())).form(form).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn pay_page_shows_the_order_and_walks_the_cards() {
    let sbx = Sbx::start().await;
    let e = sbx.init_with(json!({"amount": 1250, "currency": "EUR", "products": [{"name": "Croissant <fresh>", "quantity": 2, "amount": 625}]})).await;
    let n = number(&e);
    let qr = e["transactionPage"]["qrURL"].as_str().unwrap();
    let r = sbx.http.get(qr).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = r.text().await.unwrap();
    assert!(html.contains("Sandbox Coffee"));
    assert!(html.contains("€12.50"));
    assert!(html.contains("Croissant &lt;fresh&gt;"), "names are escaped");
    for card in ["5200000000000056", "4111111111111111", "4456530000001013", "4456530000001096"] {
        assert!(html.contains(card), "{card} button");
    }
    assert!(html.contains("Decline"));
    assert!(!html.contains("http://") && !html.contains("https://"), "no external assets");
    assert_eq!(sbx.truth(&n).await["status"], 1, "opening the page is a tap");

    // Approve with a card.
    let (status, html) = post_form(&sbx, &format!("/pay/{n}/card"), &[("card", "4111111111111111")]).await;
    assert_eq!(status, 200);
    assert!(html.contains("Payment approved"));
    assert_eq!(sbx.truth(&n).await["status"], 5);
    let (_, html) = page(&sbx, &format!("/pay/{n}")).await;
    assert!(html.contains("Payment approved") && !html.contains("4456530000001013"));

    // Declining card.
    let m = number(&sbx.init(100).await);
    let (_, html) = post_form(&sbx, &format!("/pay/{m}/card"), &[("card", "4456530000001013")]).await;
    assert!(html.contains("declined"));
    assert_eq!(sbx.truth(&m).await["status"], 6);

    // 3-D Secure: challenge page, then approval.
    let k = number(&sbx.init(100).await);
    let (_, html) = post_form(&sbx, &format!("/pay/{k}/card"), &[("card", "4456530000001096")]).await;
    assert!(html.contains("Complete authentication"));
    assert_eq!(sbx.truth(&k).await["status"], 2);
    let (_, html) = page(&sbx, &format!("/pay/{k}")).await;
    assert!(html.contains("Complete authentication"), "reloading shows the challenge again");
    let (_, html) = post_form(&sbx, &format!("/pay/{k}/3ds"), &[]).await;
    assert!(html.contains("Payment approved"));
    let truth = sbx.truth(&k).await;
    assert_eq!(truth["status"], 5);
    assert_eq!(truth["confirmations"][0]["extraDetails"]["threeDSecure"], true);
    let history: Vec<u64> = truth["_sandbox"]["statusHistory"].as_array().unwrap().iter().map(|h| h["status"].as_u64().unwrap()).collect();
    assert_eq!(history, vec![0, 1, 2, 4, 5]);

    // The consumer declines (3, not final: another consumer may still pay).
    let j = number(&sbx.init(100).await);
    let (_, html) = post_form(&sbx, &format!("/pay/{j}/decline"), &[]).await;
    assert!(html.contains("You declined"));
    assert_eq!(sbx.truth(&j).await["status"], 3);
    let (_, html) = post_form(&sbx, &format!("/pay/{j}/card"), &[("card", "5200000000000056")]).await;
    assert!(html.contains("Payment approved"));

    // Not ready yet: no buttons, no tap, auto refresh.
    let w = number(&sbx.init_with(json!({"readyForPayment": false})).await);
    let (_, html) = page(&sbx, &format!("/pay/{w}")).await;
    assert!(html.contains("not ready for payment yet") && html.contains("http-equiv=\"refresh\""));
    assert!(!html.contains("4111111111111111"));
    assert_eq!(sbx.truth(&w).await["status"], 0);
    let (status, _) = post_form(&sbx, &format!("/pay/{w}/card"), &[("card", "4111111111111111")]).await;
    assert_eq!(status, 409);

    // Unknown transaction and unknown card.
    let (status, _) = page(&sbx, "/pay/nope").await;
    assert_eq!(status, 404);
    let (status, _) = post_form(&sbx, &format!("/pay/{w}/card"), &[("card", "1")]).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn client_box_leads_to_the_pending_payment() {
    let sbx = Sbx::start().await;
    let state = sbx.state().await;
    let url = state["devices"][0]["clientBoxes"][0].as_str().unwrap().to_string();
    let no_redirect = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = no_redirect.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().await.unwrap().contains("No payment is waiting"));
    let n = number(&sbx.init(100).await);
    let r = no_redirect.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], format!("/pay/{n}").as_str());
}
