//! The OpenAPI document of the whole local API, built with utoipa from [`ROUTES`].
//!
//! Served at `/api/agent/openapi.json` and checked into `docs/openapi.json`; a test fails when
//! the checked-in copy differs from what the code generates, or when a route is missing.

use axum::response::IntoResponse;
use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::{
    ContentBuilder, HttpMethod, InfoBuilder, OpenApi, OpenApiBuilder, PathItem, PathsBuilder, Required,
    ResponseBuilder, ServerBuilder,
};

/// One documented route.
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path template with `{param}` placeholders, as routed.
    pub path: &'static str,
    /// Tag: `sensepass` (compatible with the vendor's agent) or `agent` (extensions).
    pub tag: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    /// Longer description: behaviour, errors, safety.
    pub description: &'static str,
    /// Whether it takes a JSON body.
    pub body: bool,
}

/// Every route of the local API.
pub const ROUTES: &[Route] = &[
    Route { method: "POST", path: "/api/transactions/init", tag: "sensepass", body: true,
        summary: "Create a payment request",
        description: "Same body as SensePass POST /transactions/init (spec §4.1); deviceId is added. Journaled before it is sent. A retry with the same posData.orderId or Idempotency-Key returns the existing payment. 409 busy when another payment is open; 400 with invalid_parameters naming every invalid field." },
    Route { method: "POST", path: "/api/transactions/init/sync", tag: "sensepass", body: true,
        summary: "Create a payment and wait for its final status",
        description: "Holds the response until approved, declined, failed, timed out or cancelled, then returns the Transaction entity. Closing the connection first cancels the pending payment. 504 outcome_unknown when SensePass cannot tell within the grace period; ask /api/transactions/last." },
    Route { method: "GET", path: "/api/transactions/last", tag: "sensepass", body: false,
        summary: "The last payment",
        description: "Answered from the journal, refreshed from SensePass when not final. 404 when there is none." },
    Route { method: "GET", path: "/api/transactions/{number}", tag: "sensepass", body: false,
        summary: "One transaction by TransactionNumber",
        description: "From the journal (refreshed when not final), else asked of SensePass." },
    Route { method: "PATCH", path: "/api/transactions/{number}", tag: "sensepass", body: true,
        summary: "Update an open-cart transaction",
        description: "Needs the POS token. reason, posData, metadata, clientPhoneNumber and clientEmail are forwarded to SensePass PATCH /transactions/{n} (spec §4.9); amount, currency, isCent, products and timeOut are accepted only for this till's open cart and go through the journaled cart update; any other field is refused (400, each named)." },
    Route { method: "POST", path: "/api/transactions/cancel/{number}", tag: "sensepass", body: false,
        summary: "Cancel a pending transaction",
        description: "Journaled, then sent. 501 during consumer activity (SensePass's answer). Cancelling an approved transaction needs the POS token." },
    Route { method: "POST", path: "/api/transactions/cancelByDeviceId/{device}", tag: "sensepass", body: false,
        summary: "Cancel the device's last pending transaction",
        description: "404 when nothing is pending." },
    Route { method: "POST", path: "/api/transactions/refund", tag: "sensepass", body: true,
        summary: "Refund (full or partial)",
        description: "Needs Authorization: Bearer <POS token>. Journaled in the outbox under the refund cap (approved + queued ≤ captured), then sent; 202 {status: queued, refundId} when SensePass is unreachable. refundAmount is in major units, or minor units with isCent: true. Idempotency-Key makes retries safe." },
    Route { method: "POST", path: "/api/transactions/credit", tag: "sensepass", body: true,
        summary: "Credit by token",
        description: "Needs the POS token. Forwarded to SensePass POST /transactions/credit." },
    Route { method: "POST", path: "/api/transactions/products/update", tag: "sensepass", body: true,
        summary: "Live cart update",
        description: "Creates or updates the device's Setup transaction (readyForPayment: false) so the customer sees the cart; the next init is linked to it." },
    Route { method: "GET", path: "/api/devices", tag: "sensepass", body: false,
        summary: "The paired device id",
        description: "{deviceId}; 503 not_paired when the till is not paired." },
    Route { method: "GET", path: "/api/agent/health", tag: "agent", body: false,
        summary: "Health",
        description: "Pairing, socket state, SensePass reachability (offlineSince), open payments, queued operations, whether the POS token is waived, and recovering while start-up reconciliation runs." },
    Route { method: "GET", path: "/api/agent/events", tag: "agent", body: false,
        summary: "Event stream (server-sent events)",
        description: "Events `status` (every journaled status change), `connectivity` and `operation` (outbox)." },
    Route { method: "GET", path: "/api/agent/transactions", tag: "agent", body: false,
        summary: "Journal query",
        description: "Filters: orderId, status (keys or codes, comma-separated), from/to (RFC 3339 or unix ms), minAmount/maxAmount (minor units), currency; limit (≤ 500) and offset." },
    Route { method: "GET", path: "/api/agent/transactions/{id}", tag: "agent", body: false,
        summary: "One journal entry with its status timeline",
        description: "By local id or TransactionNumber; includes events, refunded and queued refund totals." },
    Route { method: "GET", path: "/api/agent/outbox", tag: "agent", body: false,
        summary: "Outbox operations",
        description: "Commits, cancels and refunds: pending, in_flight, delivered or failed with the reason." },
    Route { method: "GET", path: "/api/agent/qr.svg", tag: "agent", body: false,
        summary: "A QR code as SVG",
        description: "Query `data` (1–1024 characters): what the code encodes, normally the transaction's transactionPage.qrURL." },
    Route { method: "GET", path: "/api/agent/transactions/{id}/receipt.pdf", tag: "agent", body: false,
        summary: "PDF receipt",
        description: "Merchant, lines with quantity, VAT and discounts, totals, approval, refunds (queued ones marked pending) and the transaction's QR; embedded font for €, £, ₪, ₽. `?download=1` for an attachment." },
    Route { method: "GET", path: "/api/agent/transactions.csv", tag: "agent", body: false,
        summary: "Journal as CSV", description: "The same filters as /api/agent/transactions; up to 10,000 rows." },
    Route { method: "GET", path: "/api/agent/summary", tag: "agent", body: false,
        summary: "End-of-day summary",
        description: "Per currency for [from, to) (default: today UTC): counts by status, approved, refunded and net amounts." },
    Route { method: "GET", path: "/api/agent/manager", tag: "agent", body: false,
        summary: "Whether a manager PIN is set", description: "{pinSet}" },
    Route { method: "POST", path: "/api/agent/manager/pin", tag: "agent", body: true,
        summary: "Change the manager PIN",
        description: "{pin (4–12 digits), currentPin}. The first PIN is set on the till (`till-agent manager set-pin`): 409 while none is set. currentPin counts as a login attempt. Ends every manager session." },
    Route { method: "POST", path: "/api/agent/manager/login", tag: "agent", body: true,
        summary: "Manager login",
        description: "{pin} → {token, expiresAt, idleSeconds}: a session for `Authorization: Bearer` that ends after 15 minutes unused (8 hours at most) or on logout. From the fifth wrong PIN in a row logins lock for 1 minute, doubling with each further failure (at most 1 hour); the count survives restarts." },
    Route { method: "POST", path: "/api/agent/manager/logout", tag: "agent", body: false,
        summary: "Manager logout", description: "Ends the session named by `Authorization: Bearer`." },
    Route { method: "GET", path: "/api/agent/settings", tag: "agent", body: false,
        summary: "Settings (manager)", description: "The POS token, the SensePass URLs, the listen address, whether the token is waived." },
    Route { method: "POST", path: "/api/agent/pairing", tag: "agent", body: true,
        summary: "Pair (manager)",
        description: "{method: pin|create|device, pin, apiKey, posName, deviceId, environment}: devices/match, devices/create, or a known device id." },
    Route { method: "DELETE", path: "/api/agent/pairing", tag: "agent", body: false,
        summary: "Unpair (manager)", description: "Forgets the paired device." },
    Route { method: "GET", path: "/api/agent/openapi.json", tag: "agent", body: false,
        summary: "This document", description: "OpenAPI 3.1 of the local API." },
];

/// Builds the document.
pub fn document() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for r in ROUTES {
        let method = match r.method {
            "GET" => HttpMethod::Get,
            "POST" => HttpMethod::Post,
            "PATCH" => HttpMethod::Patch,
            "PUT" => HttpMethod::Put,
            _ => HttpMethod::Delete,
        };
        let mut op = OperationBuilder::new()
            .summary(Some(r.summary))
            .description(Some(r.description))
            .tag(r.tag)
            .response("200", ResponseBuilder::new().description("Success"))
            .response("400", ResponseBuilder::new().description("Invalid input: invalid_parameters names every invalid field"))
            .response("403", ResponseBuilder::new().description("Host not loopback, or foreign Origin"));
        for segment in r.path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                op = op.parameter(
                    ParameterBuilder::new().name(name).parameter_in(ParameterIn::Path).required(Required::True),
                );
            }
        }
        if r.body {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .content("application/json", ContentBuilder::new().build())
                    .required(Some(Required::True))
                    .build(),
            ));
        }
        paths = paths.path(r.path, PathItem::new(method, op.build()));
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Till Agent local API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The SensePass Terminal Agent compatible API (tag sensepass) plus Till Agent's extensions (tag agent). Loopback only; JSON bodies only; money-out operations need Authorization: Bearer <POS token>.",
                ))
                .build(),
        )
        .servers(Some(vec![ServerBuilder::new().url("http://127.0.0.1:8003").build()]))
        .paths(paths.build())
        .build()
}

/// The document as pretty JSON (what is checked into docs/openapi.json).
pub fn document_json() -> String {
    document().to_pretty_json().unwrap_or_else(|_| "{}".to_string())
}

/// `GET /api/agent/openapi.json`.
pub async fn serve() -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], document_json())
}

#[cfg(test)]
mod tests {
    /// The checked-in docs/openapi.json is what the code generates. To refresh it:
    /// `UPDATE_OPENAPI=1 cargo test -p till-agent openapi`.
    #[test]
    fn checked_in_document_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
        let generated = super::document_json();
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(checked_in == generated, "docs/openapi.json is stale: run UPDATE_OPENAPI=1 cargo test -p till-agent openapi");
    }
}
