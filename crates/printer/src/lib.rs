//! # till-printer
//!
//! Receipts on the store's thermal printer. What this crate is for:
//!
//! - [`render_receipt`]: the ESC/POS byte stream of a [`till_receipts::Receipt`] — the same model
//!   the PDF is drawn from (one model, two renderers): header, lines with quantities, VAT and
//!   discounts, totals, status and approval data with the card masked to its last four digits,
//!   refunds, the payment's QR code as a *native* ESC/POS QR (`GS ( k`), the copy it is
//!   (customer / merchant), and a cut; 32, 42 or 48 columns (58 and 80 mm paper).
//! - [`codepage`]: code pages for `€ £ ₪ ₽` and accented names, switched per character, with a
//!   readable fallback where the printer has no page for a character (`₽` → `RUB`).
//! - [`transport`]: the printer behind one URL — `tcp://host:9100`, `file:///dev/usb/lp0` (device
//!   file or FIFO), `cups://queue` — with ESC/POS real-time status (`DLE EOT`) where the printer
//!   answers it, and the checks a manager's settings get (reachable host, a real device, a queue).
//! - [`decode`]: the byte stream read back (lines with alignment and style, QR data, cuts), for
//!   tests and for pictures of a receipt.
//!
//! What it is not: it keeps no queue and decides nothing about *when* to print or whether a job
//! already printed (that is the agent's print queue in the journal), it does not compute amounts
//! (they arrive in the receipt model), and it knows no provider.

#![forbid(unsafe_code)]

pub mod codepage;
pub mod decode;
pub mod render;
pub mod transport;

pub use codepage::CodePage;
pub use render::{render_receipt, render_test_page, Align, Columns, Copy, Layout, CUT, DRAWER_KICK, INIT};
pub use transport::{Connection, PrinterState, SendError, Target, Timeouts};

/// Why printer settings or a receipt were refused.
#[derive(Debug, thiserror::Error)]
pub enum PrinterError {
    /// The printer URL is malformed.
    #[error("invalid printer URL {0}")]
    Url(String),
    /// The printer URL is well formed but nothing answers there.
    #[error("printer not reachable: {0}")]
    Unreachable(String),
    /// A `file://` URL names something that is not a device file or FIFO.
    #[error("{0}")]
    NotADevice(String),
    /// A code page name this crate does not know.
    #[error("unknown code page `{0}` (known: wpc1252, iso885915, wpc1250, wpc1251, pc866, wpc1255)")]
    CodePage(String),
    /// A column count other than 32, 42 or 48.
    #[error("columns must be 32, 42 or 48, got {0}")]
    Columns(u8),
    /// A paper width other than 58 or 80 mm.
    #[error("paper must be 58 or 80 mm wide, got {0}")]
    Paper(u16),
    /// QR data empty or longer than a printer's QR store.
    #[error("QR data of {0} bytes cannot be printed (1 to 7089)")]
    Qr(usize),
    /// An amount overflowed while the net after refunds was summed.
    #[error("amount error: {0}")]
    Money(#[from] till_core::MoneyError),
}

/// Parses a list of code page names; every unknown name is reported in one error.
pub fn parse_code_pages(names: &[String]) -> Result<Vec<CodePage>, PrinterError> {
    let mut pages = Vec::new();
    let mut unknown = Vec::new();
    for n in names {
        match CodePage::parse(n) {
            Some(p) if !pages.contains(&p) => pages.push(p),
            Some(_) => {}
            None => unknown.push(n.clone()),
        }
    }
    if unknown.is_empty() {
        Ok(pages)
    } else {
        Err(PrinterError::CodePage(unknown.join("`, `")))
    }
}

#[cfg(test)]
mod tests {
    use super::decode::{decode, papers, Event};
    use super::*;
    use till_core::{Currency, Minor, Product};
    use till_receipts::{Approval, Merchant, Receipt, ReceiptLine, RefundLine};

    pub(crate) fn sample() -> Receipt {
        let mut coffee = Product::simple("Café crème", 2, 350);
        coffee.vat = Minor(50);
        coffee.discount = Minor(20);
        coffee.sub_products.push(Product::simple("Oat milk", 1, 40));
        Receipt {
            merchant: Merchant { name: "Sandbox Coffee".into(), address: Some("1 Rue de la Paix, Paris".into()), phone: None },
            provider: Some("SensePass".into()),
            transaction_number: Some("ab".repeat(28)),
            order_id: Some("ORD-1".into()),
            date: "2026-11-30 16:00 +00:00".into(),
            currency: Currency::from_code("EUR").unwrap(),
            lines: vec![ReceiptLine::from_product(&coffee).unwrap()],
            total: Minor(840),
            vat_total: Minor(100),
            status: "Partially refunded".into(),
            paid: true,
            approval: Some(Approval {
                confirmation: Some("C-77".into()),
                payment_method: Some("Visa".into()),
                card_mask: Some("4111111111111111".into()),
                auth_number: Some("A1".into()),
                approved_at: Some("2026-11-30 16:01 +00:00".into()),
            }),
            refunds: vec![RefundLine { amount: Minor(100), at: "2026-11-30 16:05 +00:00".into(), confirmation: None, queued: true }],
            qr_data: Some("https://pay.example/t/abc".into()),
            note: None,
        }
    }

    #[test]
    fn receipt_round_trips_through_the_decoder() {
        for cols in [32u8, 42, 48] {
            let layout = Layout::new(Columns::new(cols).unwrap(), vec![CodePage::Wpc1252]);
            let bytes = render_receipt(&sample(), &layout, Copy::Customer).unwrap();
            let events = decode(&bytes);
            assert!(!events.iter().any(|e| matches!(e, Event::Unknown(_))), "{events:?}");
            let p = papers(&bytes);
            assert_eq!(p.len(), 1);
            let paper = &p[0];
            assert!(paper.cut);
            assert_eq!(paper.qr, vec!["https://pay.example/t/abc".to_string()]);
            let text = paper.text();
            for needle in ["Sandbox Coffee", "CUSTOMER COPY", "Café crème", "**** 1111", "€8.40", "VAT €1.00", "Discount -€0.40", "+ Oat milk", "pending", "Net after refunds", "€7.40"] {
                assert!(text.contains(needle), "{cols} columns: {needle} missing in\n{text}");
            }
            assert!(!text.contains("4111111111111111"));
            for line in &paper.lines {
                let width = if line.double { usize::from(cols) / 2 } else { usize::from(cols) };
                assert!(line.text.chars().count() <= width, "{cols}: too wide: {:?}", line.text);
            }
            let name = paper.lines.iter().find(|l| l.text.contains("Sandbox Coffee")).unwrap();
            assert_eq!((name.align, name.bold, name.double), (Align::Center, true, true));
        }
    }

    #[test]
    fn missing_pages_fall_back_readably() {
        let mut r = sample();
        r.currency = Currency::from_code("ILS").unwrap();
        let layout = Layout::new(Columns::NARROW, vec![CodePage::Wpc1252]);
        let text = papers(&render_receipt(&r, &layout, Copy::Merchant).unwrap())[0].text();
        assert!(text.contains("ILS"), "{text}");
        assert!(!text.contains('₪'));
        let layout = Layout::new(Columns::NARROW, vec![CodePage::Wpc1252, CodePage::Wpc1255]);
        let text = papers(&render_receipt(&r, &layout, Copy::Merchant).unwrap())[0].text();
        assert!(text.contains('₪') && text.contains("Café"), "{text}");
        assert!(parse_code_pages(&["wpc1252".into(), "nope".into(), "x".into()]).unwrap_err().to_string().contains("nope`, `x"));
    }
}
