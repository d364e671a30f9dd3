//! # till-acquired
//!
//! Everything Till Agent knows about talking to Acquired.com's payment sessions (the
//! Components checkout: a session created when the cart opens, updated as the cart changes,
//! paid by the customer in Acquired's script), and the only place besides the independent
//! sandbox where Acquired's wire format is written down (fact sheet: `payment-sessions.md`,
//! decisions: `docs/DECISIONS.md`, "Acquired").
//!
//! - [`wire`]: typed request and response bodies. Strict in what it sends — the amount as a
//!   major-unit decimal converted here from our minor units, the currency in lower case — and
//!   tolerant in what it reads (amounts as numbers or strings, statuses at the top level or
//!   nested, unknown fields). The statuses of §6 and their **one** mapping to the neutral
//!   [`till_gateway::PaymentState`] live in [`wire::Status`]; the §7 error body in
//!   [`wire::ApiError`].
//! - [`client`]: the REST client. Logs in with `app_id`/`app_key`, reuses the bearer token for
//!   its hour, renews it on a 401 (one renewal at a time, however many calls wait), and
//!   classifies failures as "certainly not performed" or "outcome unknown" ([`Error`]).
//! - [`verify`]: the redirect hash (§5) and the webhook v2 HMAC-SHA256 (§8), as functions.
//! - [`reference`]: the provider reference of a payment: the session id, and the transaction id
//!   once the redirect or a webhook named it.
//! - [`gateway`]: [`Acquired`], the [`till_gateway::Gateway`] implementation, including how an
//!   answer lost on session create, update, capture or refund is reconciled before anything is
//!   sent again.
//!
//! What this crate is not: it keeps no state besides the cached access token and retries
//! nothing on its own (except the one documented re-login after a 401, which cannot repeat a
//! payment: a 401 means nothing was performed). Journaling, the customer screen and deciding
//! when to look a payment up live in the agent. It never sees card numbers: the cardholder types
//! them into Acquired's Components.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod error;
pub mod gateway;
pub mod reference;
pub mod verify;
pub mod wire;

pub use client::{Client, Config};
pub use error::Error;
pub use gateway::Acquired;
pub use reference::PaymentRef;
pub use verify::{verify_redirect, verify_webhook, Redirect, VerifyError, Webhook};
pub use wire::{ApiError, InvalidParameter, SessionRequest, SessionUpdate, Status, TransactionInfo};
