//! # till-receipts
//!
//! What a customer and a store manager take away from a payment: the dynamic QR code the
//! customer scans at the till, and the PDF receipt of the transaction.
//!
//! - [`qr_svg`] draws the payment URL as a scalable SVG for the cashier screen (a `viewBox` and
//!   no fixed size, so the page decides how big it is; crisp edges; the standard quiet zone).
//! - [`qr_png`] draws the same code as a PNG with whole-pixel modules, for places that need a
//!   bitmap (printing, e-mail, other documents).
//! - [`render_pdf`] lays out a [`Receipt`] on an 80 mm thermal-roll page: merchant header, lines
//!   with quantity × unit price, VAT and discount, totals, status, approval details (card
//!   masked to its last four digits), refunds (queued ones marked pending), the net after
//!   refunds and the transaction's QR code. Fonts are embedded (DejaVu Sans), so `€ £ ₪ ₽` and
//!   names such as "José Núñez" print everywhere.
//!
//! What this crate is not: it performs no I/O (everything is returned as bytes or strings), it
//! does not parse SensePass JSON (the agent maps its journal records into [`Receipt`]), and it
//! does not decide amounts: totals, VAT and refunds arrive already computed in minor units and are
//! only formatted here, through `till_core`'s money formatting.

mod model;
mod pdf;
mod qr;

pub use model::{mask_card, Approval, Merchant, Receipt, ReceiptLine, RefundLine};
pub use pdf::{render_pdf, render_pdf_at};
pub use qr::{qr_png, qr_svg};

/// Why a QR code or a receipt could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    /// The data does not fit in a QR code (longer than about 2,300 bytes) or is otherwise
    /// unencodable. Payment URLs are far shorter; this guards against garbage input.
    #[error("cannot encode a QR code: {0}")]
    Qr(String),
    /// A PNG module size of zero, or so large that the bitmap would be unreasonably big.
    #[error("QR module size must be 1..={max} pixels, got {got}")]
    ModuleSize {
        /// The size that was asked for.
        got: u32,
        /// The largest size accepted.
        max: u32,
    },
    /// The PNG encoder failed (out of memory, in practice).
    #[error("cannot encode PNG: {0}")]
    Png(String),
    /// An amount on the receipt overflowed while being summed (e.g. the net after refunds).
    #[error("amount error: {0}")]
    Money(#[from] till_core::MoneyError),
    /// The embedded font could not be parsed. It ships inside the binary, so this means a
    /// broken build rather than bad input.
    #[error("embedded font unusable: {0}")]
    Font(String),
}
