//! The FlexFactor client against the sandbox's FlexFactor simulator, over real sockets (every
//! port is 0). Ground truth comes from the simulator's control API, never from the client.

use serde_json::{json, Value};
use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use till_core::{Currency, Money};
use till_flexfactor::wire::{CreditCard, TokenizePaymentMethod, TokenizeRequest};
use till_flexfactor::{Client, Config, Error, FlexFactor};
use till_gateway::{
    DeclineCategory, DeclineReason, DeclineRecovery, GatewayError, Opaque, RecoveryCard,
    RecoveryRefund, RecoveryRequest, RecoveryState,
};
use till_sandbox::{SandboxConfig, SandboxHandle};

const APPROVE: &str = "4000002760003184";
const CHALLENGE: &str = "4111111111111111";
const DECLINE: &str = "4000300011112220";
const SUBMIT_APPROVE: &str = "4000000000000077";
const SUBMIT_DECLINE: &str = "4000000000000085";
const ALL_CARDS: [&str; 5] = [APPROVE, CHALLENGE, DECLINE, SUBMIT_APPROVE, SUBMIT_DECLINE];

// --- captured logs -------------------------------------------------------------------------

/// Everything any test of this binary logs, at every level (client, reqwest, hyper, sandbox).
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(|| Capture)
            .try_init();
    });
}

fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

// --- harness -------------------------------------------------------------------------------

struct Env {
    sandbox: SandboxHandle,
    http: reqwest::Client,
}

async fn env() -> Env {
    capture_logs();
    let sandbox = till_sandbox::start(SandboxConfig::default()).await.unwrap();
    Env {
        sandbox,
        http: reqwest::Client::new(),
    }
}

impl Env {
    fn config(&self) -> Config {
        let mut c = Config::new(
            self.sandbox.flexfactor_url(),
            till_sandbox::FLEXFACTOR_APP_KEY,
            till_sandbox::FLEXFACTOR_APP_SECRET,
            till_sandbox::FLEXFACTOR_MID,
            till_sandbox::FLEXFACTOR_SITE_ID,
            till_sandbox::FLEXFACTOR_TOKENIZE_ENVIRONMENT,
        );
        // short: a lost answer must turn into "outcome unknown" quickly
        c.timeout = Duration::from_secs(2);
        c
    }

    fn flex(&self) -> FlexFactor {
        FlexFactor::new(Client::new(self.config()).unwrap())
    }

    async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/{path}", self.sandbox.flexfactor_control_url());
        let mut r = self.http.request(method, url);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let response = r.send().await.unwrap();
        assert!(
            response.status().is_success(),
            "control {path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    async fn state(&self) -> Value {
        self.control(reqwest::Method::GET, "state", None).await
    }

    async fn faults(&self, body: Value) {
        self.control(reqwest::Method::POST, "faults", Some(body))
            .await;
    }

    async fn settings(&self, body: Value) {
        self.control(reqwest::Method::POST, "settings", Some(body))
            .await;
    }
}

fn card(number: &str) -> TokenizeRequest {
    TokenizeRequest {
        payment_method: TokenizePaymentMethod {
            email: None,
            sense_key: None,
            credit_card: CreditCard {
                first_name: "Cure".into(),
                last_name: "Tester".into(),
                number: number.into(),
                verification_value: "999".into(),
                month: "09".into(),
                year: "2031".into(),
            },
        },
    }
}

async fn vault(ff: &FlexFactor, number: &str) -> Opaque {
    ff.client().tokenize(&card(number)).await.unwrap().token
}

fn request(order_id: &str, minor: i64, token: Opaque) -> RecoveryRequest {
    RecoveryRequest {
        order_id: order_id.into(),
        amount: Money::new(minor, Currency::Usd),
        card_token: token,
        card: RecoveryCard {
            bin: Some("400000".into()),
            last4: Some("3184".into()),
            expiry: till_gateway::CardExpiry::new(2031, 9),
            holder_name: Some("Cure Tester".into()),
            scheme: Some("VISA".into()),
        },
        decline: DeclineReason {
            category: DeclineCategory::Declined,
            provider_code: Some("5".into()),
            message: Some("Card declined".into()),
        },
        declined_by: "connect-e".into(),
        declined_transaction: Some("ce-tx-1".into()),
        declined_at: time::OffsetDateTime::now_utc(),
        customer_ip: "127.0.0.1".into(),
        sense_key: None,
        card_not_present: true,
    }
}

/// Vaults `number` and evaluates a decline of `minor` cents as order `order_id`.
async fn rescue(
    ff: &FlexFactor,
    order_id: &str,
    number: &str,
    minor: i64,
) -> till_gateway::RecoveryOutcome {
    let token = vault(ff, number).await;
    ff.evaluate(&request(order_id, minor, token)).await.unwrap()
}

fn refund(id: &str, rescue_id: &str, minor: i64) -> RecoveryRefund {
    RecoveryRefund {
        id: id.into(),
        rescue_id: rescue_id.into(),
        amount: Money::new(minor, Currency::Usd),
        reason: Some("Customer request".into()),
    }
}

fn order<'a>(state: &'a Value, rescue_id: &str) -> &'a Value {
    state["orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["orderSessionKey"] == rescue_id)
        .unwrap()
}

// --- tests ---------------------------------------------------------------------------------

#[tokio::test]
async fn tokenize_returns_the_vault_token_and_checks_its_query() {
    let env = env().await;
    let ff = env.flex();
    let vaulted = ff.client().tokenize(&card(APPROVE)).await.unwrap();
    assert_eq!(vaulted.token.expose().len(), 36, "a uuid");
    assert_eq!(vaulted.last_four_digits.as_deref(), Some("3184"));
    assert_eq!(vaulted.month.as_deref(), Some("9"));
    assert!(!format!("{vaulted:?}").contains(vaulted.token.expose()));
    assert_eq!(env.state().await["vaulted"], 1);

    let mut wrong = env.config();
    wrong.tokenize_environment = Opaque::new("not-the-key");
    let err = Client::new(wrong)
        .unwrap()
        .tokenize(&card(APPROVE))
        .await
        .unwrap_err();
    assert_eq!(err.invalid_fields(), ["environment"], "{err}");
    assert!(err.certainly_not_performed());
    assert_eq!(env.state().await["vaulted"], 1);
}

#[tokio::test]
async fn approved_declined_and_challenge_map_once() {
    let env = env().await;
    let ff = env.flex();
    let approved = rescue(&ff, "order-approve", APPROVE, 1250).await;
    assert_eq!(approved.state, RecoveryState::Recovered);
    assert_eq!(approved.provider_status, "APPROVED");
    let declined = rescue(&ff, "order-decline", DECLINE, 1250).await;
    assert_eq!(declined.state, RecoveryState::NotRecovered);
    assert!(declined.decline.is_some());
    let challenge = rescue(&ff, "order-challenge", CHALLENGE, 1250).await;
    assert_eq!(
        challenge.state,
        RecoveryState::NotRecovered,
        "CHALLENGE is a decline"
    );
    assert_eq!(challenge.provider_status, "CHALLENGE");

    let state = env.state().await;
    let a = order(&state, approved.rescue_id.as_deref().unwrap());
    assert_eq!(
        (a["status"].as_i64(), a["rescued"].as_i64()),
        (Some(7), Some(1250))
    );
    assert_eq!(a["orderId"], "order-approve");
    assert_eq!(a["amount"], 1250, "minor units as sent");
    assert_eq!(
        order(&state, declined.rescue_id.as_deref().unwrap())["status"],
        2
    );
    assert_eq!(state["rescues"], 1);

    // the order endpoint agrees
    let s = ff
        .status(approved.rescue_id.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(s.state, RecoveryState::Recovered);
    let s = ff
        .status(declined.rescue_id.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(s.state, RecoveryState::NotRecovered);
    let missing = ff
        .status("00000000-0000-0000-0000-000000000000")
        .await
        .unwrap_err();
    assert!(
        matches!(missing, GatewayError::NotFound { .. }),
        "{missing}"
    );
}

#[tokio::test]
async fn submitted_settles_by_polling() {
    let env = env().await;
    env.settings(json!({"settleMs": 300})).await;
    let ff = env.flex();
    let later_yes = rescue(&ff, "order-s1", SUBMIT_APPROVE, 990).await;
    let later_no = rescue(&ff, "order-s2", SUBMIT_DECLINE, 990).await;
    assert_eq!(later_yes.state, RecoveryState::Pending);
    assert_eq!(later_no.state, RecoveryState::Pending);
    let (yes, no) = (later_yes.rescue_id.unwrap(), later_no.rescue_id.unwrap());
    assert_eq!(ff.status(&yes).await.unwrap().state, RecoveryState::Pending);
    let mut delay = Duration::from_millis(50);
    let mut settled = None;
    for _ in 0..12 {
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(400));
        let (a, b) = (
            ff.status(&yes).await.unwrap(),
            ff.status(&no).await.unwrap(),
        );
        if a.state.is_final() && b.state.is_final() {
            settled = Some((a, b));
            break;
        }
    }
    let (a, b) = settled.expect("settled within the polling budget");
    assert_eq!(a.state, RecoveryState::Recovered);
    assert_eq!(b.state, RecoveryState::NotRecovered);
    assert_eq!(env.state().await["rescues"], 1);
}

#[tokio::test]
async fn submitted_settles_by_a_webhook_without_a_json_content_type() {
    use axum::routing::post;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    let env = env().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Option<String>, Vec<u8>)>();
    // the endpoint fails its first delivery, so the retry schedule (time-scaled) is exercised
    let calls = Arc::new(AtomicU32::new(0));
    let app = axum::Router::new().route(
        "/flexfactor",
        post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (tx, calls) = (tx.clone(), calls.clone());
                async move {
                    if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let ct = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let _ = tx.send((ct, body.to_vec()));
                    axum::http::StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/flexfactor", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    env.settings(json!({"settleMs": 200, "webhookUrl": hook, "webhookTimeScale": 100}))
        .await;
    let mut next_event = async || {
        let (content_type, body) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a webhook")
            .unwrap();
        assert!(
            !content_type.unwrap_or_default().contains("json"),
            "sent without a JSON content type"
        );
        body
    };

    let ff = env.flex();
    let pending = rescue(&ff, "order-hook", SUBMIT_APPROVE, 2500).await;
    assert_eq!(pending.state, RecoveryState::Pending);
    let event = ff.parse_event(&next_event().await).expect("readable event");
    assert_eq!(event.name, "order.completed");
    assert_eq!(Some(event.rescue_id.as_str()), pending.rescue_id.as_deref());
    assert_eq!(event.state, Some(RecoveryState::Recovered));
    let attempts = env.state().await["webhooks"].clone();
    assert_eq!(attempts[0]["delivered"], false);
    assert_eq!(attempts[1]["delivered"], true);
    assert_eq!(attempts[1]["attempt"], 2);

    // a refund of the recovered payment: `order.refunded` says "fetch it" (it may be partial)
    let id = pending.rescue_id.unwrap();
    ff.refund(&refund("hook-r1", &id, 1000)).await.unwrap();
    let event = ff.parse_event(&next_event().await).unwrap();
    assert_eq!((event.name.as_str(), event.state), ("order.refunded", None));

    // a submitted rescue that FlexFactor then declines: `order.cancelled`
    let lost = rescue(&ff, "order-hook-2", SUBMIT_DECLINE, 2500).await;
    let event = ff.parse_event(&next_event().await).unwrap();
    assert_eq!(event.name, "order.cancelled");
    assert_eq!(Some(event.rescue_id.as_str()), lost.rescue_id.as_deref());
    assert_eq!(event.state, Some(RecoveryState::NotRecovered));
    server.abort();
}

#[tokio::test]
async fn partial_refund_then_over_refund_is_refused() {
    let env = env().await;
    let ff = env.flex();
    let outcome = rescue(&ff, "order-refund", APPROVE, 1999).await;
    let id = outcome.rescue_id.unwrap();
    ff.refund(&refund("r1", &id, 500)).await.unwrap();
    let over = ff.refund(&refund("r2", &id, 1500)).await.unwrap_err();
    assert!(matches!(over, GatewayError::Refused { .. }), "{over}");
    assert!(over.certainly_not_performed());
    assert!(
        over.to_string()
            .contains("greater than maximum refund amount"),
        "{over}"
    );
    let state = env.state().await;
    let o = order(&state, &id);
    assert_eq!(o["refunded"], 500);
    assert_eq!(o["refunds"][0]["message"], "r1: Customer request");
    // the rest, exactly: the order becomes Returned
    ff.refund(&refund("r3", &id, 1499)).await.unwrap();
    assert_eq!(ff.status(&id).await.unwrap().state, RecoveryState::Refunded);
    // a declined rescue has nothing to refund
    let declined = rescue(&ff, "order-nothing", DECLINE, 100).await;
    let err = ff
        .refund(&refund("r4", declined.rescue_id.as_deref().unwrap(), 100))
        .await
        .unwrap_err();
    assert!(matches!(err, GatewayError::Refused { .. }), "{err}");
    assert_eq!(env.state().await["refunds"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_token_is_reused_renewed_on_expiry_and_after_a_401() {
    let env = env().await;
    let ff = env.flex();
    let outcome = rescue(&ff, "order-token", APPROVE, 700).await;
    let id = outcome.rescue_id.unwrap();
    for _ in 0..3 {
        ff.status(&id).await.unwrap();
    }
    assert_eq!(env.state().await["tokensIssued"], 1, "reused");

    // the server's clock passes the 10 minutes: a 401, one login, the call succeeds
    env.control(
        reqwest::Method::POST,
        "clock",
        Some(json!({"advanceSeconds": 660})),
    )
    .await;
    ff.status(&id).await.unwrap();
    let s = env.state().await;
    assert_eq!(
        (
            s["tokensIssued"].as_u64(),
            s["counts"]["unauthorized"].as_u64()
        ),
        (Some(2), Some(1))
    );

    // a short lifetime: renewed from `expires` (milliseconds) before it dies, without a 401
    env.control(reqwest::Method::DELETE, "clock", None).await;
    env.settings(json!({"tokenLifetimeSeconds": 2})).await;
    let short = env.flex();
    short.status(&id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    short.status(&id).await.unwrap();
    let s = env.state().await;
    assert_eq!(
        (
            s["tokensIssued"].as_u64(),
            s["counts"]["unauthorized"].as_u64()
        ),
        (Some(4), Some(1))
    );

    // single flight: many concurrent calls with no token cause one login
    env.settings(json!({"tokenLifetimeSeconds": 600})).await;
    let fresh = env.flex();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let (ff, id) = (fresh.clone(), id.clone());
            tokio::spawn(async move { ff.status(&id).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(env.state().await["tokensIssued"], 5);

    // wrong credentials: refused, nothing performed
    let mut bad = env.config();
    bad.app_secret = Opaque::new("wrong");
    let err = Client::new(bad).unwrap().order(&id).await.unwrap_err();
    assert!(err.certainly_not_performed(), "{err}");
}

#[tokio::test]
async fn a_lost_evaluate_answer_and_a_5xx_burst_open_one_rescue() {
    let env = env().await;
    let ff = env.flex();
    let token = vault(&ff, APPROVE).await;
    let req = request("order-lost", 4200, token);
    env.faults(json!({"loseNextResponse": ["evaluate"]})).await;
    let err = ff.evaluate(&req).await.unwrap_err();
    assert!(!err.certainly_not_performed(), "{err}");
    env.faults(json!({"failNext": {"count": 3, "status": 503}}))
        .await;
    for _ in 0..3 {
        let err = ff.evaluate(&req).await.unwrap_err();
        assert!(matches!(err, GatewayError::OutcomeUnknown { .. }), "{err}");
    }
    let outcome = ff.evaluate(&req).await.unwrap();
    assert_eq!(outcome.state, RecoveryState::Recovered);
    let state = env.state().await;
    assert_eq!(state["orders"].as_array().unwrap().len(), 1);
    assert_eq!(state["rescues"], 1);
    assert_eq!(
        order(&state, outcome.rescue_id.as_deref().unwrap())["evaluateCalls"],
        2
    );
}

#[tokio::test]
async fn a_lost_refund_answer_and_a_5xx_burst_refund_once() {
    let env = env().await;
    let ff = env.flex();
    let outcome = rescue(&ff, "order-lost-refund", APPROVE, 3000).await;
    let id = outcome.rescue_id.unwrap();
    let r = refund("refund-1", &id, 1000);
    env.faults(json!({"loseNextResponse": ["refund"]})).await;
    let err = ff.refund(&r).await.unwrap_err();
    assert!(!err.certainly_not_performed(), "{err}");
    env.faults(json!({"failNext": {"count": 2, "status": 502}}))
        .await;
    for _ in 0..2 {
        assert!(!ff.refund(&r).await.unwrap_err().certainly_not_performed());
    }
    ff.refund(&r).await.unwrap();
    let state = env.state().await;
    assert_eq!(state["refunds"], 1);
    assert_eq!(order(&state, &id)["refunded"], 1000);
    assert_eq!(state["counts"]["refund.repeat"], 1);
    // a second refund of the same amount is a new refund, not a repeat
    ff.refund(&refund("refund-2", &id, 1000)).await.unwrap();
    assert_eq!(order(&env.state().await, &id)["refunded"], 2000);
}

#[tokio::test]
async fn offline_is_certainly_not_performed() {
    let env = env().await;
    let ff = env.flex();
    let token = vault(&ff, APPROVE).await;
    env.faults(json!({"offline": true})).await;
    let err = ff
        .evaluate(&request("order-offline", 100, token.clone()))
        .await
        .unwrap_err();
    assert!(
        err.is_unreachable() && err.certainly_not_performed(),
        "{err}"
    );
    env.faults(json!({"offline": false})).await;
    let ok = ff
        .evaluate(&request("order-offline", 100, token))
        .await
        .unwrap();
    assert_eq!(ok.state, RecoveryState::Recovered);
    assert_eq!(env.state().await["rescues"], 1);
}

#[tokio::test]
async fn both_400_shapes_name_the_missing_field() {
    let env = env().await;
    let ff = env.flex();
    let token = vault(&ff, APPROVE).await;
    let mut body = ff
        .evaluate_request(&request("order-400", 100, token))
        .unwrap();
    body.idempotency_key = String::new();
    match ff.client().evaluate(&body).await.unwrap_err() {
        Error::Validation {
            fields, trace_id, ..
        } => {
            assert_eq!(fields.keys().collect::<Vec<_>>(), ["IdempotencyKey"]);
            assert!(trace_id.is_some());
        }
        other => panic!("{other}"),
    }
    body.idempotency_key = "order-400".into();
    body.order_id = String::new();
    let err = ff.client().evaluate(&body).await.unwrap_err();
    assert_eq!(err.invalid_fields(), ["OrderId"], "{err}");
    assert!(env.state().await["orders"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn no_card_number_reaches_the_logs() {
    let env = env().await;
    let ff = env.flex();
    for (i, number) in ALL_CARDS.iter().enumerate() {
        let token = vault(&ff, number).await;
        let req = request(&format!("order-log-{i}"), 100, token);
        assert!(!format!("{req:?}").contains(number));
        let body = ff.evaluate_request(&req).unwrap();
        assert!(!format!("{body:?}").contains(req.card_token.expose()));
        ff.evaluate(&req).await.unwrap();
        assert!(!format!("{:?}", card(number)).contains(number));
    }
    let logs = logs();
    assert!(
        logs.contains("flexfactor call"),
        "the client's logs were captured"
    );
    for number in ALL_CARDS {
        assert!(!logs.contains(number), "card number {number} in the logs");
    }
    assert!(!logs.contains(till_sandbox::FLEXFACTOR_APP_SECRET));
    assert!(!logs.contains("999\""), "no CVV");
}

#[tokio::test]
async fn a_checkout_page_can_vault_the_card_itself_without_secrets() {
    let env = env().await;
    let ff = env.flex();
    // what the agent hands the keyed-entry page: a URL carrying no secret
    let url = ff.client().tokenize_endpoint().unwrap();
    assert!(!url.as_str().contains(till_sandbox::FLEXFACTOR_APP_SECRET));
    let preflight = env
        .http
        .request(reqwest::Method::OPTIONS, url.clone())
        .header("Origin", "http://127.0.0.1:8003")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert!(preflight
        .headers()
        .contains_key("access-control-allow-origin"));
    // the page's own POST: no bearer, card straight to the vault
    let answer: Value = env
        .http
        .post(url)
        .header("Origin", "http://127.0.0.1:8003")
        .json(&json!({"payment_method": {"credit_card": {
            "first_name": "Cure", "last_name": "Tester", "number": APPROVE,
            "verification_value": "", "month": "09", "year": "2031"}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = answer["transaction"]["payment_method"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    // the agent evaluates with the token alone
    let outcome = ff
        .evaluate(&request("order-page", 1500, Opaque::new(token)))
        .await
        .unwrap();
    assert_eq!(outcome.state, RecoveryState::Recovered);
    assert_eq!(
        env.state().await["tokensIssued"],
        1,
        "only the agent's evaluate logged in"
    );
}
