//! # till-core
//!
//! The domain vocabulary of Till Agent, with no I/O: every other crate speaks in these types.
//!
//! - [`money`]: amounts as integer minor units ([`Minor`]) tied to an ISO 4217 [`Currency`]
//!   ([`Money`]), with checked arithmetic and exact conversion to and from the major-unit decimal
//!   strings that providers put on the wire. Floats never touch money.
//! - [`product`]: cart lines ([`Product`]) with exact fractional quantities ([`Quantity`]) and the
//!   SensePass line total `(amount + vat − discount) × quantity`, sub-products included.
//! - [`status`]: the 14 SensePass transaction status codes ([`Status`]) and the transitions the
//!   agent accepts, so that duplicated or reordered events never move a transaction backwards.
//! - [`invalid`]: the `invalid_parameters` error shape used by every 400 the project returns.
//! - [`redact`]: the one rule that removes card numbers, CVVs, expiry dates, social IDs and
//!   tokens from JSON before anything is journaled or logged.
//!
//! What this crate is not: it knows nothing of HTTP, SQLite, JSON wire formats of a particular
//! provider, or time. Provider crates convert at their boundary using the helpers here.

pub mod invalid;
pub mod money;
pub mod product;
pub mod redact;
pub mod status;

pub use invalid::{InvalidParameter, InvalidParameters};
pub use money::{Currency, Minor, Money, MoneyError};
pub use product::{Product, Quantity};
pub use status::{Status, Transition};
