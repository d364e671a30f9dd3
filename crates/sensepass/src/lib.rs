//! # till-sensepass
//!
//! Everything Till Agent knows about talking to SensePass, and the only place (besides the
//! independent sandbox) where SensePass's wire formats are written down:
//!
//! - [`models`]: typed request and response bodies of every documented endpoint. Requests are
//!   strict (exact camelCase names, integer minor units with `isCent: true`); responses are read
//!   tolerantly because SensePass's own examples disagree on types, and the original JSON of a
//!   [`Transaction`] is kept so it can be handed back to POS software unchanged.
//!   [`InitRequest::from_pos_json`] validates a POS's init body and names every invalid field.
//! - [`client`]: the REST client, whose [`Error`] tells "certainly not performed" apart from
//!   "maybe performed" — the distinction exactly-once payments and refunds rest on.
//! - [`socket`]: the Socket.IO listener for a device's `message` events, reconnecting forever
//!   with jittered exponential back-off and reporting connection changes promptly.
//!
//! What this crate is not: it keeps no state, retries no calls and decides nothing about
//! payments. Journaling, idempotency and reconciliation live in the agent.

#![warn(missing_docs)]

pub mod client;
pub mod error;
pub mod models;
pub mod socket;

pub use client::{Client, ClientConfig, Credentials};
pub use error::{Error, FieldError};
pub use models::{InitRequest, Transaction, TransactionNumber};
/// Percent-encodes one path segment (every byte but `A-Z a-z 0-9 - _ . ~`).
pub use models::wire::path_segment;
