//! # till-connect-e
//!
//! Everything Till Agent knows about talking to Paymentsense Connect-E (keyed card payments,
//! pre-authorisation and collection, refunds, cards on file with CV2, wait pre-execute), and the
//! only place besides the independent sandbox where Connect-E's wire format is written down
//! (fact sheet: `paymentsense-connect-e.md`, decisions: `docs/DECISIONS.md`, "Connect-E").
//!
//! - [`wire`]: typed request and response bodies of every REST endpoint (§4). Strict in what
//!   it sends — ISO 4217 *numeric* currency codes, amounts as minor-unit digit strings — and
//!   tolerant in what it reads (several `transactionDateTime` styles, numbers as strings,
//!   unknown fields, `webHookUrl`/`webhookUrl`). The status codes of §5 and their one mapping
//!   to the neutral [`till_gateway::PaymentState`] live in [`wire::StatusCode`].
//! - [`client`]: the REST client, authenticating with `Authorization: Bearer <API key>`, whose
//!   [`Error`] separates "certainly not performed" from "outcome unknown".
//! - [`gateway`]: [`ConnectE`], the [`till_gateway::Gateway`] implementation, including how a
//!   cross-reference refund or collection whose answer was lost is reconciled before anything is
//!   sent again (Connect-E has no idempotency keys).
//!
//! What this crate is not: it keeps no state and retries nothing; journaling, the checkout page
//! and deciding when to poll live in the agent. It never sees card numbers: the cardholder types
//! them into the provider's `client.js`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod error;
pub mod gateway;
pub mod wire;

pub use client::{Client, Config};
pub use error::Error;
pub use gateway::ConnectE;
pub use wire::{
    AccessToken, AccessTokenRequest, CrossReferencePaymentRequest, PaymentInfo, PaymentMethods,
    StatusCode, StatusResult, TransactionType, WebhookNotice,
};
