//! The consumer side: a self-contained HTML payment page per transaction (what the QR code
//! opens), with one button per test card, a 3-D Secure challenge step and a decline button.
//! Forms post back to the sandbox; no scripts, no external assets.

use crate::app::Shared;
use crate::model::{find_card, FlowError, PayStep, Txn, BUSINESS_NAME, TEST_CARDS};
use axum::extract::{Path, Query, State as AxState};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use std::collections::HashMap;
use std::sync::Arc;
use till_core::money::minor_to_major_string;
use till_core::{Money, Product, Status};

type Sh = AxState<Arc<Shared>>;

/// Pay pages, client boxes and the page assets.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/pay/{n}", get(show))
        .route("/pay/{n}/card", post(pay_card))
        .route("/pay/{n}/3ds", post(complete_3ds))
        .route("/pay/{n}/decline", post(decline))
        .route("/assets/card.svg", get(card_svg))
        .route("/{client_box}", get(client_box))
        .with_state(shared)
}

/// Escapes text for HTML.
fn esc(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem;color:#222}\
h1{font-size:1.2rem;margin:0}.pos{color:#666;font-size:.9rem}.amount{font-size:2.4rem;font-weight:700;margin:1rem 0}\
table{width:100%;border-collapse:collapse;margin:1rem 0}td{padding:.3rem 0;border-bottom:1px solid #eee}td.r{text-align:right}\
button{display:block;width:100%;padding:.8rem;margin:.4rem 0;font-size:1rem;border-radius:.5rem;border:1px solid #888;background:#f6f6f6;cursor:pointer}\
button.primary{background:#1a7f37;color:#fff;border-color:#1a7f37}button.danger{background:#fff;color:#b42318;border-color:#b42318}\
.status{padding:.6rem;border-radius:.4rem;background:#f0f4ff}.ok{background:#e6f4ea}.bad{background:#fdecea}\
.note{color:#666;font-size:.85rem}.small header{display:none}";

fn page(title: &str, body: &str, refresh: bool, view: &str) -> Html<String> {
    let meta = if refresh { "<meta http-equiv=\"refresh\" content=\"2\">" } else { "" };
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">{meta}\
<title>{}</title><style>{STYLE}</style></head><body class=\"{}\">{body}\
<p class=\"note\">SensePass sandbox — no real money moves.</p></body></html>",
        esc(title),
        esc(view)
    ))
}

fn not_found() -> Response {
    let body = "<h1>Payment not found</h1><p>This payment link is unknown or has expired.</p>";
    (StatusCode::NOT_FOUND, page("Payment not found", body, false, "")).into_response()
}

fn items_html(txn: &Txn) -> String {
    let Some((_, products)) = &txn.products else { return String::new() };
    let mut rows = String::new();
    for p in products {
        rows.push_str(&item_row(p, txn, ""));
        for sub in &p.sub_products {
            rows.push_str(&item_row(sub, txn, "&nbsp;&nbsp;+ "));
        }
    }
    format!("<table>{rows}</table>")
}

fn item_row(p: &Product, txn: &Txn, indent: &str) -> String {
    let total = p.line_total().map(|m| minor_to_major_string(m, txn.currency)).unwrap_or_default();
    format!(
        "<tr><td>{indent}{} × {}</td><td class=\"r\">{}</td></tr>",
        p.quantity,
        esc(&p.name),
        esc(&total)
    )
}

fn header_html(txn: &Txn) -> String {
    let amount = Money { minor: txn.amount, currency: txn.currency }.display();
    let reason =
        txn.reason.as_ref().map(|r| format!("<p>{}</p>", esc(r))).unwrap_or_default();
    format!(
        "<header><h1>{}</h1><div class=\"pos\">{}</div></header>\
<div class=\"amount\" id=\"amount\">{}</div>{reason}{}",
        esc(BUSINESS_NAME),
        esc(&txn.pos),
        esc(&amount),
        items_html(txn)
    )
}

fn status_html(status: Status) -> String {
    let (class, text) = match status {
        Status::Approved => ("ok", "Payment approved. Thank you!"),
        Status::Declined => ("bad", "Your card was declined."),
        Status::Failed => ("bad", "The payment failed."),
        Status::Timeout => ("bad", "This payment request has expired."),
        Status::Cancelled => ("bad", "The merchant cancelled this payment."),
        Status::Refunded | Status::PartiallyRefunded | Status::ProcessingRefund => {
            ("ok", "This payment was made and has since been refunded.")
        }
        Status::UserDeclined => ("bad", "You declined this payment."),
        _ => ("", "Waiting for payment."),
    };
    format!(
        "<p class=\"status {class}\" id=\"status\" data-status=\"{}\">{}</p>",
        status.code(),
        esc(text)
    )
}

/// The body of the page for the transaction's current state.
fn render(txn: &Txn, view: &str, message: Option<&str>) -> Html<String> {
    let n = &txn.number;
    let mut body = header_html(txn);
    if let Some(m) = message {
        body.push_str(&format!("<p class=\"status bad\" id=\"message\">{}</p>", esc(m)));
    }
    let mut refresh = false;
    if txn.status.is_open() && !txn.ready_for_payment {
        body.push_str(
            "<p class=\"status\" id=\"status\" data-status=\"not-ready\">The merchant is still \
preparing your order. It is not ready for payment yet; this page refreshes by itself.</p>",
        );
        refresh = true;
    } else if txn.status.is_open() && txn.three_ds_pending.is_some() {
        return render_challenge(txn, view);
    } else if txn.status.is_open() {
        if txn.status == Status::UserDeclined {
            body.push_str(&status_html(txn.status));
        }
        body.push_str("<h2>Pay with a test card</h2>");
        for card in TEST_CARDS {
            body.push_str(&format!(
                "<form method=\"post\" action=\"/pay/{n}/card\"><input type=\"hidden\" name=\"card\" \
value=\"{}\"><button class=\"primary\" type=\"submit\" name=\"submit\" value=\"{}\">{} •••• {}<br>\
<small>{}</small></button></form>",
                card.number,
                card.number,
                esc(card.brand),
                &card.number[card.number.len() - 4..],
                esc(card.label)
            ));
        }
        body.push_str(&format!(
            "<form method=\"post\" action=\"/pay/{n}/decline\"><button class=\"danger\" \
type=\"submit\">Decline</button></form>"
        ));
    } else {
        body.push_str(&status_html(txn.status));
    }
    page(&format!("Pay {}", BUSINESS_NAME), &body, refresh, view)
}

fn render_challenge(txn: &Txn, view: &str) -> Html<String> {
    let n = &txn.number;
    let amount = Money { minor: txn.amount, currency: txn.currency }.display();
    let body = format!(
        "<header><h1>3-D Secure</h1><div class=\"pos\">Sandbox Bank</div></header>\
<p id=\"challenge\">Your bank asks you to confirm a payment of <strong>{}</strong> to {}.</p>\
<form method=\"post\" action=\"/pay/{n}/3ds\"><button class=\"primary\" type=\"submit\">\
Complete authentication</button></form>\
<form method=\"post\" action=\"/pay/{n}/decline\"><button class=\"danger\" type=\"submit\">\
Decline</button></form>",
        esc(&amount),
        esc(BUSINESS_NAME)
    );
    page("3-D Secure", &body, false, view)
}

fn view_mode(q: &HashMap<String, String>) -> String {
    match q.get("viewMode").map(String::as_str) {
        Some("medium") => "medium".into(),
        Some("small") => "small".into(),
        _ => "regular".into(),
    }
}

async fn show(
    AxState(sh): Sh,
    Path(n): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut st = sh.state();
    let Some(txn) = st.txns.get(&n) else { return not_found() };
    // Watching a cart that is not ready yet is not a tap: the POS may still update it.
    if txn.ready_for_payment && txn.three_ds_pending.is_none() {
        let _ = st.tap(&n);
    }
    match st.txns.get(&n) {
        Some(txn) => render(txn, &view_mode(&q), None).into_response(),
        None => not_found(),
    }
}

fn after_step(sh: &Shared, n: &str, result: Result<PayStep, FlowError>) -> Response {
    let st = sh.state();
    let Some(txn) = st.txns.get(n) else { return not_found() };
    match result {
        Ok(_) => render(txn, "regular", None).into_response(),
        Err(FlowError::NotFound) => not_found(),
        Err(FlowError::Conflict(m)) => {
            (StatusCode::CONFLICT, render(txn, "regular", Some(&m))).into_response()
        }
    }
}

async fn pay_card(
    AxState(sh): Sh,
    Path(n): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(card) = form.get("card").and_then(|c| find_card(c)) else {
        let st = sh.state();
        return match st.txns.get(&n) {
            Some(txn) => (StatusCode::BAD_REQUEST, render(txn, "regular", Some("Unknown test card")))
                .into_response(),
            None => not_found(),
        };
    };
    let result = sh.state().consumer_pay(&n, card, false);
    after_step(&sh, &n, result)
}

async fn complete_3ds(AxState(sh): Sh, Path(n): Path<String>) -> Response {
    let result = sh.state().complete_3ds(&n);
    after_step(&sh, &n, result)
}

async fn decline(AxState(sh): Sh, Path(n): Path<String>) -> Response {
    let result = sh.state().consumer_decline(&n).map(|_| PayStep::Declined);
    after_step(&sh, &n, result)
}

/// A device's client box (`/c_XXXX`): sends the consumer to the device's pending payment.
async fn client_box(AxState(sh): Sh, Path(code): Path<String>) -> Response {
    if !code.starts_with("c_") {
        return not_found();
    }
    let st = sh.state();
    let Some(device) = st.devices.values().find(|d| d.client_box == code) else {
        return not_found();
    };
    match st.latest_pending(&device.id) {
        Some(n) => Redirect::to(&format!("/pay/{n}")).into_response(),
        None => {
            let body = format!(
                "<header><h1>{}</h1><div class=\"pos\">{}</div></header>\
<p class=\"status\" id=\"status\" data-status=\"idle\">No payment is waiting at this register. \
This page refreshes by itself.</p>",
                esc(BUSINESS_NAME),
                esc(&device.name)
            );
            page(BUSINESS_NAME, &body, true, "regular").into_response()
        }
    }
}

async fn index() -> Html<String> {
    page(
        "SensePass sandbox",
        "<h1>SensePass sandbox</h1><p>REST API under <code>/api/</code>, Socket.IO at \
<code>/socket.io/</code>, payment pages under <code>/pay/&lt;transaction&gt;</code>.</p>",
        false,
        "regular",
    )
}

async fn card_svg() -> Response {
    let svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"48\" height=\"32\" viewBox=\"0 0 48 32\">\
<rect width=\"48\" height=\"32\" rx=\"4\" fill=\"#1a56db\"/><rect y=\"8\" width=\"48\" height=\"6\" fill=\"#111\"/></svg>";
    ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response()
}
