//! # till-agent
//!
//! The Till Agent service: what POS software talks to on `127.0.0.1:8003`.
//!
//! It is a drop-in replacement for the SensePass Terminal Agent (same paths and bodies) that adds
//! what serious payments software needs: every intent journaled before the network call
//! (`till-journal`), idempotent payment creation per order, one payment at a time per device,
//! live status from Socket.IO with polling as a safety net, payment commits and refunds delivered
//! through a durable outbox, and a local API that refuses foreign browsers.
//!
//! Map of the crate:
//! - [`config`]: where settings come from (TOML file, environment, flags) and platform paths.
//! - [`service`]: the orchestrator and composition root. [`service::Agent`] owns the journal, the
//!   SensePass client and the event bus; its methods, one module per concern (payments,
//!   observation and recovery, money-out, health), read like the flows in the SensePass docs
//!   (create → wait → commit).
//! - [`live`]: background task following the device's Socket.IO stream and re-reading open
//!   transactions after reconnects and while the socket is down.
//! - [`outbox`]: background task delivering payment commits and refunds with back-off; it sees
//!   the agent only through its narrow [`outbox::OutboxHost`] trait.
//! - [`journal_task`]: journal calls on the blocking pool.
//! - [`tender`]: payments of the providers behind the `till-gateway` seam (Paymentsense
//!   Connect-E): `/api/agent/payments`, the checkout page's data, polling and money-out.
//! - [`api`]: the axum router (SensePass-compatible paths plus `/api/agent/*` extensions) and its
//!   safety layers (loopback Host, Origin allow-list, JSON-only POSTs, POS token for money-out).
//! - [`embedded`]: `run --sandbox`: the SensePass sandbox started in-process and paired.
//! - [`printer`]: the print queue worker (receipts on the thermal printer, the cash drawer).
//! - [`fleet`]: enrolment with the fleet server and replication of the journal's change feed.
//! - [`updater`]: signed automatic updates of the headless agent (schedule, download, idle wait).
//!
//! What this crate is not: it holds no SQL (that is `till-journal`), no SensePass wire formats
//! (that is `till-sensepass`) and no window (that is the Tauri shell, which embeds [`run`]).

pub mod api;
pub mod config;
pub mod credit;
pub mod embedded;
pub mod error;
pub mod events;
pub mod failpoints;
pub mod fleet;
pub mod journal_task;
pub mod live;
pub mod manager;
pub mod outbox;
pub mod printer;
pub mod recovery;
pub mod relay;
pub mod renew;
pub mod run;
pub mod service;
pub mod tender;
pub mod updater;

pub use config::Config;
pub use run::{start, RunningAgent};
pub use service::Agent;
