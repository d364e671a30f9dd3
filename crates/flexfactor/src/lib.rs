//! # till-flexfactor
//!
//! Everything Till Agent knows about talking to FlexFactor, the decline-recovery ("rescue")
//! service by Flex, and the only place besides the independent sandbox where its wire format is
//! written down (fact sheet: `flexfactor.md`, decisions: `docs/DECISIONS.md`, "FlexFactor").
//!
//! FlexFactor is not a tender. After a card tender (Connect-E, Acquired) declines, the
//! orchestrator may ask FlexFactor to evaluate the decline; FlexFactor can approve and charge
//! the card itself. This crate implements [`till_gateway::DeclineRecovery`] for it.
//!
//! - [`wire`]: request and response bodies of `/oauth2/token`, `/tokenize`, `/evaluate`,
//!   `/orders/{id}` and `/orders/{id}/refund`, the §2 envelope and both 400 shapes, the
//!   statuses of §6.3 and §7.1 and their one mapping to [`till_gateway::RecoveryState`],
//!   webhook bodies (§10) read from raw bytes whatever their content type.
//! - [`client`]: the REST client with the access-token cache (reused until it expires or a
//!   401, renewal single-flight), whose [`Error`] separates "certainly not performed" from
//!   "outcome unknown".
//! - [`recovery`]: [`FlexFactor`], the `DeclineRecovery` implementation: idempotency key per
//!   order, minor units in, major units for refunds out, our refund id in `refundMessage`.
//!
//! What this crate is not: it keeps no state but the access token and retries nothing but the
//! one re-send after a 401; journaling, polling and deciding when to evaluate live in the
//! agent. It does not handle card numbers in the agent's flow: the keyed-entry page posts the
//! card to [`Client::tokenize_endpoint`] itself and the agent only sees the vault token.
//! ([`Client::tokenize`] exists for tools and tests; its [`wire::CreditCard`] never prints the
//! number.)

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod error;
pub mod recovery;
pub mod wire;

pub use client::{Client, Config};
pub use error::Error;
pub use recovery::FlexFactor;
pub use wire::{EvaluateStatus, OrderStatus, WebhookEvent};
