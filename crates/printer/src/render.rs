//! The ESC/POS receipt: the same [`Receipt`] the PDF is drawn from, laid out in fixed columns.
//!
//! The byte stream is written here rather than through the `escpos` crate (0.20): its command
//! builder (`Protocol`) is private to it and only reachable through its `Printer`, which owns the
//! I/O; a character outside the selected page goes out as raw UTF-8 (garbage on paper); and it has
//! no table for WPC1255 (`₪`). What we need is a pure function from a receipt to bytes, with the
//! per-character page switching and fallback of [`crate::codepage`], and the dozen fixed command
//! sequences below (Epson's ESC/POS reference) are all a receipt uses.
//!
//! Labels and the order of sections follow the PDF (`till-receipts`' `pdf.rs`), so the paper and
//! the PDF of one payment say the same things.

use crate::codepage::{encode_into, printable, CodePage};
use crate::PrinterError;
use till_core::{Minor, Money};
use till_receipts::{mask_card, Receipt, ReceiptLine};

/// `ESC @`: initialise (clears styles, selects the printer's default page).
pub const INIT: &[u8] = &[0x1B, 0x40];
/// `ESC p 0 25 250`: a 50 ms pulse on drawer pin 2, then 500 ms off — opens the cash drawer
/// wired to the printer's DK port.
pub const DRAWER_KICK: &[u8] = &[0x1B, 0x70, 0x00, 0x19, 0xFA];
/// `GS V 66 3`: feed three lines (so the last text clears the cutter), then a partial cut.
pub const CUT: &[u8] = &[0x1D, 0x56, 0x42, 0x03];

/// How wide the paper is, in characters of the printer's font A.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Columns(u8);

impl Columns {
    /// 58 mm paper: 32 columns.
    pub const NARROW: Columns = Columns(32);
    /// 80 mm paper on printers with a 512-dot head: 42 columns.
    pub const MEDIUM: Columns = Columns(42);
    /// 80 mm paper on printers with a 576-dot head (most): 48 columns.
    pub const WIDE: Columns = Columns(48);

    /// 32, 42 or 48; anything else is refused.
    pub fn new(n: u8) -> Result<Columns, PrinterError> {
        match n {
            32 | 42 | 48 => Ok(Columns(n)),
            other => Err(PrinterError::Columns(other)),
        }
    }

    /// The default width of a paper size in millimetres (58 → 32, 80 → 48).
    pub fn for_paper_mm(mm: u16) -> Result<Columns, PrinterError> {
        match mm {
            58 => Ok(Columns::NARROW),
            80 => Ok(Columns::WIDE),
            other => Err(PrinterError::Paper(other)),
        }
    }

    /// The number of characters on one line.
    pub fn get(self) -> usize {
        usize::from(self.0)
    }
}

/// What the renderer needs to know about the printer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Characters per line.
    pub columns: Columns,
    /// The code pages the printer has, preferred first; never empty (see [`Layout::new`]).
    pub code_pages: Vec<CodePage>,
}

impl Layout {
    /// A layout; an empty page list means the default, `[wpc1252]`.
    pub fn new(columns: Columns, mut code_pages: Vec<CodePage>) -> Layout {
        if code_pages.is_empty() {
            code_pages.push(CodePage::Wpc1252);
        }
        Layout { columns, code_pages }
    }
}

/// Which copy of a receipt is printed; the copy is named at the top, so the store's copy can
/// never be handed out as the customer's, nor the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Copy {
    /// The customer's copy.
    Customer,
    /// The store's copy, kept with the day's takings.
    Merchant,
}

impl Copy {
    /// `customer` / `merchant`.
    pub fn name(self) -> &'static str {
        match self {
            Copy::Customer => "customer",
            Copy::Merchant => "merchant",
        }
    }

    /// Parses `customer` / `merchant`.
    pub fn parse(text: &str) -> Option<Copy> {
        match text {
            "customer" => Some(Copy::Customer),
            "merchant" => Some(Copy::Merchant),
            _ => None,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Copy::Customer => "CUSTOMER COPY",
            Copy::Merchant => "MERCHANT COPY",
        }
    }
}

/// Horizontal alignment of a line (`ESC a n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// `ESC a 0`.
    Left,
    /// `ESC a 1`.
    Center,
    /// `ESC a 2`.
    Right,
}

/// Builds the byte stream line by line, keeping track of the printer's state so that each
/// command is sent only when something changes.
struct Doc<'l> {
    layout: &'l Layout,
    out: Vec<u8>,
    page: Option<CodePage>,
    align: Align,
    bold: bool,
    double: bool,
}

impl<'l> Doc<'l> {
    fn new(layout: &'l Layout) -> Self {
        let mut out = INIT.to_vec();
        let first = layout.code_pages[0];
        out.extend_from_slice(&[0x1B, b't', first.escpos_number()]);
        Doc { layout, out, page: Some(first), align: Align::Left, bold: false, double: false }
    }

    fn cols(&self) -> usize {
        let c = self.layout.columns.get();
        if self.double {
            c / 2
        } else {
            c
        }
    }

    fn style(&mut self, align: Align, bold: bool, double: bool) {
        if align != self.align {
            let n = match align {
                Align::Left => 0,
                Align::Center => 1,
                Align::Right => 2,
            };
            self.out.extend_from_slice(&[0x1B, b'a', n]);
            self.align = align;
        }
        if bold != self.bold {
            self.out.extend_from_slice(&[0x1B, b'E', u8::from(bold)]);
            self.bold = bold;
        }
        if double != self.double {
            self.out.extend_from_slice(&[0x1D, b'!', if double { 0x11 } else { 0x00 }]);
            self.double = double;
        }
    }

    /// One printed line (already printable and no wider than the paper).
    fn raw_line(&mut self, text: &str) {
        let pages = self.layout.code_pages.clone();
        encode_into(text, &pages, &mut self.page, &mut self.out);
        self.out.push(b'\n');
    }

    /// A paragraph, wrapped at spaces (words longer than a line are cut).
    fn para(&mut self, text: &str, align: Align, bold: bool, double: bool) {
        self.style(align, bold, double);
        let text = printable(text.trim(), &self.layout.code_pages);
        for line in wrap(&text, self.cols()) {
            self.raw_line(&line);
        }
    }

    /// Short phrases (`2 × €3.50`, `VAT €1.00`…) packed onto indented lines, two spaces apart,
    /// broken between phrases rather than inside one where they fit.
    fn phrases(&mut self, phrases: &[String], indent: usize) {
        self.style(Align::Left, false, false);
        let width = self.cols().saturating_sub(indent).max(8);
        let pad = " ".repeat(self.cols() - width);
        let mut lines: Vec<String> = Vec::new();
        let mut current = String::new();
        for p in phrases {
            let p = printable(p.trim(), &self.layout.code_pages);
            let (used, len) = (current.chars().count(), p.chars().count());
            if used > 0 && used + 2 + len <= width {
                current.push_str("  ");
                current.push_str(&p);
                continue;
            }
            if used > 0 {
                lines.push(std::mem::take(&mut current));
            }
            if len <= width {
                current = p;
            } else {
                let mut parts = wrap(&p, width);
                current = parts.pop().unwrap_or_default();
                lines.extend(parts);
            }
        }
        if !current.is_empty() {
            lines.push(current);
        }
        for line in lines {
            self.raw_line(&format!("{pad}{line}"));
        }
    }

    /// `label ........ value`, the value right-aligned; on two lines when both do not fit.
    fn label_value(&mut self, label: &str, value: &str, bold: bool, double: bool) {
        self.style(Align::Left, bold, double);
        let cols = self.cols();
        let label = printable(label.trim(), &self.layout.code_pages);
        let value = printable(value.trim(), &self.layout.code_pages);
        let (lw, vw) = (label.chars().count(), value.chars().count());
        if lw + 1 + vw <= cols {
            let line = format!("{label}{}{value}", " ".repeat(cols - lw - vw));
            self.raw_line(&line);
        } else {
            for line in wrap(&label, cols) {
                self.raw_line(&line);
            }
            for line in wrap(&value, cols) {
                let pad = cols.saturating_sub(line.chars().count());
                self.raw_line(&format!("{}{line}", " ".repeat(pad)));
            }
        }
    }

    fn rule(&mut self) {
        self.style(Align::Left, false, false);
        let line = "-".repeat(self.cols());
        self.raw_line(&line);
    }

    /// Native QR (`GS ( k`, model 2, error correction M), centred.
    fn qr(&mut self, data: &str) -> Result<(), PrinterError> {
        let bytes = data.as_bytes();
        // The printer's QR store holds at most 7,089 bytes; payment URLs are ~100.
        if bytes.is_empty() || bytes.len() > 7_089 {
            return Err(PrinterError::Qr(bytes.len()));
        }
        self.style(Align::Center, false, false);
        let module = if self.layout.columns == Columns::NARROW { 5 } else { 6 };
        let o = &mut self.out;
        o.extend_from_slice(&[0x1D, 0x28, 0x6B, 0x04, 0x00, 0x31, 0x41, 0x32, 0x00]); // model 2
        o.extend_from_slice(&[0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x43, module]); // module size
        o.extend_from_slice(&[0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x45, 0x31]); // level M
        let len = bytes.len() + 3;
        o.extend_from_slice(&[0x1D, 0x28, 0x6B, (len & 0xFF) as u8, (len >> 8) as u8, 0x31, 0x50, 0x30]);
        o.extend_from_slice(bytes);
        o.extend_from_slice(&[0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x51, 0x30]); // print
        o.push(b'\n');
        Ok(())
    }

    fn finish(mut self) -> Vec<u8> {
        self.style(Align::Left, false, false);
        self.out.extend_from_slice(CUT);
        self.out
    }
}

/// Breaks `text` into lines of at most `width` characters, at spaces where possible.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut current = String::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let used = current.chars().count();
            let room = if used == 0 { width } else { width.saturating_sub(used + 1) };
            if word.len() <= room {
                if used > 0 {
                    current.push(' ');
                }
                current.extend(word.iter());
                break;
            }
            if used > 0 {
                lines.push(std::mem::take(&mut current));
                continue;
            }
            // A word longer than a line: cut it.
            let rest = word.split_off(width);
            lines.push(word.iter().collect());
            word = rest;
        }
    }
    if !current.is_empty() || lines.is_empty() {
        lines.push(current);
    }
    lines
}

/// The receipt as ESC/POS bytes: initialise, code page, header, lines, totals, approval,
/// refunds, the payment's QR code, cut.
pub fn render_receipt(r: &Receipt, layout: &Layout, copy: Copy) -> Result<Vec<u8>, PrinterError> {
    let money = |m: Minor| Money { minor: m, currency: r.currency }.display();
    let mut d = Doc::new(layout);

    // Header.
    if !r.merchant.name.trim().is_empty() {
        d.para(&r.merchant.name, Align::Center, true, true);
    }
    for extra in [&r.merchant.address, &r.merchant.phone].into_iter().flatten() {
        if !extra.trim().is_empty() {
            d.para(extra, Align::Center, false, false);
        }
    }
    d.para(copy.title(), Align::Center, true, false);
    if !r.paid {
        d.para("NOT PAID", Align::Center, true, true);
        d.para("No money was taken for this transaction.", Align::Center, false, false);
    }
    d.rule();
    if !r.date.trim().is_empty() {
        d.label_value("Date", &r.date, false, false);
    }
    if let Some(order) = r.order_id.as_deref().filter(|s| !s.trim().is_empty()) {
        d.label_value("Order", order, false, false);
    }
    if let Some(number) = r.transaction_number.as_deref().filter(|s| !s.trim().is_empty()) {
        d.label_value("Transaction", number, false, false);
    }
    d.rule();

    // Lines.
    for line in &r.lines {
        let name = if line.name.trim().is_empty() { "Item" } else { &line.name };
        d.label_value(name, &money(line.total), false, false);
        d.phrases(&details(line, &money), 2);
        sub_lines(&mut d, &line.sub_lines, &money, 1);
    }

    // Totals.
    if !r.lines.is_empty() {
        d.rule();
    }
    d.label_value("Subtotal", &money(r.total.checked_sub(r.vat_total)?), false, false);
    d.label_value("VAT", &money(r.vat_total), false, false);
    d.label_value(if r.paid { "TOTAL" } else { "TOTAL (NOT CHARGED)" }, &money(r.total), true, true);
    if let Some(note) = r.note.as_deref().filter(|s| !s.trim().is_empty()) {
        d.para(&format!("Note: {note}"), Align::Left, false, false);
    }

    // Status and approval.
    d.rule();
    if !r.status.trim().is_empty() {
        d.label_value("Status", &r.status, true, false);
    }
    if let Some(a) = &r.approval {
        let fields = [
            ("Payment method", a.payment_method.clone()),
            ("Card", a.card_mask.as_deref().map(mask_card)),
            ("Auth. code", a.auth_number.clone()),
            ("Confirmation", a.confirmation.clone()),
            ("Approved at", a.approved_at.clone()),
        ];
        for (label, value) in fields {
            if let Some(value) = value.filter(|v| !v.trim().is_empty()) {
                d.label_value(label, &value, false, false);
            }
        }
    }

    // Refunds and the net.
    if !r.refunds.is_empty() {
        d.rule();
        d.para("Refunds", Align::Left, true, false);
        let mut refunded = Minor::ZERO;
        for refund in &r.refunds {
            refunded = refunded.checked_add(refund.amount)?;
            let at = if refund.at.trim().is_empty() { "Refund" } else { &refund.at };
            d.label_value(at, &money(Minor::ZERO.checked_sub(refund.amount)?), false, false);
            if refund.queued {
                d.phrases(&["pending: queued, sent when the network is back".to_string()], 2);
            } else if let Some(c) = refund.confirmation.as_deref().filter(|s| !s.trim().is_empty()) {
                d.phrases(&[format!("Confirmation {c}")], 2);
            }
        }
        let label = if r.refunds.iter().any(|x| x.queued) { "Net after refunds (incl. pending)" } else { "Net after refunds" };
        d.label_value(label, &money(r.total.checked_sub(refunded)?), true, false);
    }

    // The payment's QR code.
    if let Some(data) = r.qr_data.as_deref().filter(|s| !s.is_empty()) {
        d.rule();
        d.qr(data)?;
        d.para("Scan to view this payment", Align::Center, false, false);
    }
    Ok(d.finish())
}

/// Sub-lines, `+ name  1 x €0.30 …`, indented one step per level (at most three).
fn sub_lines(d: &mut Doc<'_>, subs: &[ReceiptLine], money: &dyn Fn(Minor) -> String, depth: usize) {
    for sub in subs {
        let name = if sub.name.trim().is_empty() { "Extra" } else { &sub.name };
        let mut phrases = vec![format!("+ {name}")];
        phrases.extend(details(sub, money));
        d.phrases(&phrases, 2 * depth.min(3));
        sub_lines(d, &sub.sub_lines, money, depth + 1);
    }
}

/// `2 × €2.50`, `VAT €0.80`, `Discount -€0.45`, as on the PDF.
fn details(line: &ReceiptLine, money: &dyn Fn(Minor) -> String) -> Vec<String> {
    let mut out = vec![format!("{} × {}", line.quantity, money(line.unit))];
    if line.vat != Minor::ZERO {
        out.push(format!("VAT {}", money(line.vat)));
    }
    if line.discount != Minor::ZERO {
        out.push(format!("Discount {}", money(Minor(line.discount.0.saturating_neg()))));
    }
    out
}

/// A test page from Settings: the printer's width, its code pages with their special
/// characters, a QR code and a cut — what a manager checks when setting up a printer.
pub fn render_test_page(layout: &Layout, title: &str, at: &str) -> Result<Vec<u8>, PrinterError> {
    let mut d = Doc::new(layout);
    d.para(title, Align::Center, true, true);
    d.para("Printer test", Align::Center, true, false);
    d.para(at, Align::Center, false, false);
    d.rule();
    d.label_value("Columns", &layout.columns.get().to_string(), false, false);
    let pages: Vec<&str> = layout.code_pages.iter().map(|p| p.name()).collect();
    d.label_value("Code pages", &pages.join(", "), false, false);
    d.para("Currencies: € £ ₪ ₽", Align::Left, false, false);
    d.para("Accents: José Núñez, crème brûlée", Align::Left, false, false);
    let ruler: String = (0..layout.columns.get()).map(|i| char::from(b'0' + (i % 10) as u8)).collect();
    d.para(&ruler, Align::Left, false, false);
    d.para("Left", Align::Left, false, false);
    d.para("Centre", Align::Center, false, false);
    d.para("Right", Align::Right, false, false);
    d.rule();
    d.qr("till-agent printer test")?;
    Ok(d.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_words_and_cuts_long_ones() {
        assert_eq!(wrap("a bb ccc", 4), vec!["a bb", "ccc"]);
        assert_eq!(wrap("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(wrap("", 4), vec![""]);
    }

    #[test]
    fn columns_are_checked() {
        assert!(Columns::new(40).is_err());
        assert_eq!(Columns::for_paper_mm(58).unwrap().get(), 32);
        assert!(Columns::for_paper_mm(76).is_err());
    }
}
