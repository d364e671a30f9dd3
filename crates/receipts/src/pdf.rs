//! The PDF receipt: an 80 mm thermal-roll page laid out from a [`Receipt`].
//!
//! Layout happens in two steps. First the receipt becomes a list of *blocks* (the header, one
//! block per line, totals, each refund, the QR code…) whose heights are known because every
//! string is measured with the embedded font's real glyph widths. Then the blocks are poured
//! into pages: one page that grows with the receipt, split only when it would pass
//! [`MAX_PAGE_H`] (a 60-line receipt still fits on one page), and a block is never cut in two.
//!
//! The fonts are DejaVu Sans and DejaVu Sans Bold, embedded (subset) into every PDF so that
//! currency symbols and accented names print the same on every viewer and printer. They are
//! parsed once per process.

use crate::model::{mask_card, Receipt, ReceiptLine};
use crate::qr::{self, Matrix, QUIET_ZONE};
use crate::ReceiptError;
use printpdf::{
    Color, DateTime, FontId, Greyscale, Line, LinePoint, Mm, Op, PaintMode, ParsedFont,
    PdfDocument, PdfFontHandle, PdfPage, PdfSaveOptions, Point, Polygon, PolygonRing, Pt, TextItem,
    WindingOrder,
};
use std::collections::BTreeSet;
use std::sync::OnceLock;
use till_core::{Minor, Money};

const REGULAR_TTF: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");
const BOLD_TTF: &[u8] = include_bytes!("../fonts/DejaVuSans-Bold.ttf");

/// Roll width: the common 80 mm thermal paper.
const PAGE_W: f32 = 80.0;
/// Left and right margin; 72 mm is the printable width of an 80 mm thermal head.
const MARGIN_X: f32 = 4.0;
/// Width available to text.
const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN_X;
/// Blank paper above the first and below the last block of a page.
const MARGIN_Y: f32 = 5.0;
/// The tallest page before the receipt is split. A roll has no natural page length, but
/// viewers and printer drivers cope badly with pages metres long; 900 mm holds 60 lines with
/// room to spare.
const MAX_PAGE_H: f32 = 900.0;
/// Indent of detail rows and sub-lines under their line.
const INDENT: f32 = 3.0;
/// Horizontal gap kept between a left text and a right-aligned amount.
const GAP: f32 = 2.0;
/// Side of the printed QR code, quiet zone included.
const QR_SIDE: f32 = 36.0;

/// Millimetres in one typographic point.
const MM_PER_PT: f32 = 25.4 / 72.0;

/// Font sizes (points).
const TITLE: Style = Style {
    bold: true,
    size: 12.0,
};
const BODY: Style = Style {
    bold: false,
    size: 8.0,
};
const BODY_BOLD: Style = Style {
    bold: true,
    size: 8.0,
};
const SMALL: Style = Style {
    bold: false,
    size: 6.5,
};
const TOTAL: Style = Style {
    bold: true,
    size: 10.0,
};
/// Smallest size an identifier is shrunk to before it is wrapped instead.
const MIN_ID_SIZE: f32 = 5.0;

/// A font face and size.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Style {
    bold: bool,
    size: f32,
}

impl Style {
    /// Height of a row of this style: 1.3 × the font size, in millimetres.
    fn line_height(self) -> f32 {
        self.size * 1.3 * MM_PER_PT
    }
}

/// The two embedded faces, parsed once.
struct Fonts {
    regular: ParsedFont,
    bold: ParsedFont,
}

impl Fonts {
    fn face(&self, bold: bool) -> &ParsedFont {
        if bold {
            &self.bold
        } else {
            &self.regular
        }
    }

    /// Width of `text` in millimetres, computed exactly as the PDF viewer will: each glyph's
    /// advance in whole thousandths of an em (the PDF `/W` array), no kerning.
    fn width(&self, text: &str, style: Style) -> f32 {
        let font = self.face(style.bold);
        let upm = f32::from(font.pdf_font_metrics.units_per_em.max(1));
        let thousandths: i64 = text
            .chars()
            .map(|c| {
                let gid = font.lookup_glyph_index(c as u32).unwrap_or(0);
                font.get_glyph_width(gid)
                    .map(|w| (f32::from(w) * 1000.0 / upm) as i64)
                    .unwrap_or(0)
            })
            .sum();
        thousandths as f32 / 1000.0 * style.size * MM_PER_PT
    }

    /// Breaks `text` into lines no wider than `max_w`, at spaces where possible and inside a
    /// word only when the word alone is too wide. Always returns at least one line.
    fn wrap(&self, text: &str, style: Style, max_w: f32) -> Vec<String> {
        let mut lines = Vec::new();
        let mut current = String::new();
        for word in text.split_whitespace() {
            let candidate = if current.is_empty() {
                word.to_string()
            } else {
                format!("{current} {word}")
            };
            if self.width(&candidate, style) <= max_w {
                current = candidate;
                continue;
            }
            if !current.is_empty() {
                lines.push(std::mem::take(&mut current));
            }
            if self.width(word, style) <= max_w {
                current = word.to_string();
            } else {
                // A word wider than the roll (a URL, an ID): cut it by characters.
                for c in word.chars() {
                    current.push(c);
                    if self.width(&current, style) > max_w && current.chars().count() > 1 {
                        current.pop();
                        lines.push(std::mem::take(&mut current));
                        current.push(c);
                    }
                }
            }
        }
        if !current.is_empty() || lines.is_empty() {
            lines.push(current);
        }
        lines
    }
}

/// A copy of `face` reduced to the glyphs of `chars` (plus `.notdef`), named with the PDF
/// subset tag. printpdf (without its heavy text-layout feature) embeds fonts whole, which
/// would put 1.4 MB of DejaVu into every receipt; the subset is a few kilobytes and keeps
/// the same glyph advances, so the layout measured on the full face stays exact.
fn subset(
    full_bytes: &[u8],
    face: &ParsedFont,
    chars: &BTreeSet<char>,
    name: &str,
) -> Result<ParsedFont, ReceiptError> {
    use allsorts::binary::read::ReadScope;
    use allsorts::font_data::FontData;
    use allsorts::subset::{CmapTarget, SubsetProfile};

    let font_err = |e: &dyn std::fmt::Display| ReceiptError::Font(format!("{name}: {e}"));
    // Glyph 0 first and no duplicates, as allsorts requires: a BTreeSet with 0 gives both.
    let mut ids: BTreeSet<u16> = chars
        .iter()
        .filter_map(|c| face.lookup_glyph_index(*c as u32))
        .collect();
    ids.insert(0);
    let ids: Vec<u16> = ids.into_iter().collect();
    let file = ReadScope::new(full_bytes)
        .read::<FontData<'_>>()
        .map_err(|e| font_err(&e))?;
    let provider = file.table_provider(0).map_err(|e| font_err(&e))?;
    let bytes = allsorts::subset::subset(&provider, &ids, &SubsetProfile::Pdf, CmapTarget::Unicode)
        .map_err(|e| font_err(&e))?;
    let mut font = ParsedFont::from_bytes(&bytes, 0, &mut Vec::new())
        .ok_or_else(|| ReceiptError::Font(format!("{name}: subset does not parse")))?;
    // ISO 32000-1 §9.6.4: a subset's name starts with six upper-case letters and `+`; derive
    // them from the glyph set so equal subsets get equal names.
    let mut tag = String::with_capacity(7);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for id in &ids {
        h = (h ^ u64::from(*id)).wrapping_mul(0x0100_0000_01b3);
    }
    for _ in 0..6 {
        tag.push(char::from(b'A' + (h % 26) as u8));
        h /= 26;
    }
    font.font_name = Some(format!("{tag}+{name}"));
    Ok(font)
}

/// The fonts, parsed on first use. Parsing takes milliseconds; receipts take far less.
fn fonts() -> Result<&'static Fonts, ReceiptError> {
    static FONTS: OnceLock<Result<Fonts, String>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            let parse = |bytes: &[u8], name: &str| {
                ParsedFont::from_bytes(bytes, 0, &mut Vec::new())
                    .ok_or_else(|| format!("{name} does not parse"))
            };
            Ok(Fonts {
                regular: parse(REGULAR_TTF, "DejaVuSans.ttf")?,
                bold: parse(BOLD_TTF, "DejaVuSans-Bold.ttf")?,
            })
        })
        .as_ref()
        .map_err(|e| ReceiptError::Font(e.clone()))
}

/// Horizontal anchoring of a text: `x` is its left edge, right edge or centre.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Align {
    Left,
    Right,
    Center,
}

/// Something drawn inside a block; `y` values are millimetres below the block's top.
enum Item {
    /// A run of text on one baseline.
    Text {
        x: f32,
        baseline: f32,
        text: String,
        style: Style,
        align: Align,
    },
    /// A thin horizontal rule across the content width.
    Rule { y: f32 },
    /// A QR code whose top-left corner (quiet zone included) is at `x`, `top`.
    Qr {
        x: f32,
        top: f32,
        module: f32,
        matrix: Matrix,
    },
}

/// A piece of the receipt that is never split across pages.
struct Block {
    height: f32,
    items: Vec<Item>,
}

/// Builds one block top to bottom, row by row.
struct BlockBuilder<'f> {
    fonts: &'f Fonts,
    y: f32,
    items: Vec<Item>,
}

impl<'f> BlockBuilder<'f> {
    fn new(fonts: &'f Fonts) -> Self {
        BlockBuilder {
            fonts,
            y: 0.0,
            items: Vec::new(),
        }
    }

    /// Starts a row of `style` and returns its baseline: the text is centred vertically in the
    /// row using DejaVu's ascent (0.928 em) and descent (0.236 em).
    fn row(&mut self, style: Style) -> f32 {
        let lh = style.line_height();
        let em = style.size * MM_PER_PT;
        let baseline = self.y + (lh - 1.164 * em) / 2.0 + 0.928 * em;
        self.y += lh;
        baseline
    }

    fn gap(&mut self, mm: f32) {
        self.y += mm;
    }

    fn text(&mut self, x: f32, baseline: f32, text: &str, style: Style, align: Align) {
        if text.is_empty() {
            return;
        }
        self.items.push(Item::Text {
            x,
            baseline,
            text: text.to_string(),
            style,
            align,
        });
    }

    /// A separator rule with a little air above and below.
    fn rule(&mut self) {
        self.y += 1.2;
        self.items.push(Item::Rule { y: self.y });
        self.y += 1.6;
    }

    /// Centred text, wrapped to the content width.
    fn centered(&mut self, text: &str, style: Style) {
        for line in self.fonts.wrap(text, style, CONTENT_W) {
            let b = self.row(style);
            self.text(PAGE_W / 2.0, b, &line, style, Align::Center);
        }
    }

    /// Left-aligned text at `indent`, wrapped to the remaining width.
    fn paragraph(&mut self, text: &str, style: Style, indent: f32) {
        for line in self.fonts.wrap(text, style, CONTENT_W - indent) {
            let b = self.row(style);
            self.text(MARGIN_X + indent, b, &line, style, Align::Left);
        }
    }

    /// `label ........ value` on one row; when both do not fit, the label wraps first (it is
    /// usually a name), and a value too wide for the roll moves to its own right-aligned rows.
    fn label_value(&mut self, label: &str, value: &str, label_style: Style, value_style: Style) {
        let value_w = self.fonts.width(value, value_style);
        let style = if value_style.size >= label_style.size {
            value_style
        } else {
            label_style
        };
        if value_w <= CONTENT_W * 0.6 {
            let label_lines = self
                .fonts
                .wrap(label, label_style, CONTENT_W - value_w - GAP);
            for (i, line) in label_lines.iter().enumerate() {
                let b = self.row(if i == 0 { style } else { label_style });
                self.text(MARGIN_X, b, line, label_style, Align::Left);
                if i == 0 {
                    self.text(MARGIN_X + CONTENT_W, b, value, value_style, Align::Right);
                }
            }
        } else {
            self.paragraph(label, label_style, 0.0);
            self.wrapped_value(value, value_style);
        }
    }

    /// A value on rows of its own under its label: right-aligned like every other value when
    /// it fits one row, else wrapped and left-aligned at the indent so the pieces read in order.
    fn wrapped_value(&mut self, value: &str, style: Style) {
        let lines = self.fonts.wrap(value, style, CONTENT_W - INDENT);
        let single = lines.len() == 1;
        for line in lines {
            let b = self.row(style);
            if single {
                self.text(MARGIN_X + CONTENT_W, b, &line, style, Align::Right);
            } else {
                self.text(MARGIN_X + INDENT, b, &line, style, Align::Left);
            }
        }
    }

    /// An identifier (a 56-character transaction number) under its label, on one row when
    /// it fits at no less than [`MIN_ID_SIZE`] points, so it can be read and copied whole.
    fn identifier(&mut self, label: &str, id: &str) {
        let at_body = self.fonts.width(id, BODY);
        let label_w = self.fonts.width(label, BODY);
        if label_w + GAP + at_body <= CONTENT_W {
            self.label_value(label, id, BODY, BODY);
            return;
        }
        let b = self.row(BODY);
        self.text(MARGIN_X, b, label, BODY, Align::Left);
        let fitted = (BODY.size * (CONTENT_W - INDENT) / at_body).max(MIN_ID_SIZE);
        let style = Style {
            bold: false,
            size: fitted.min(BODY.size),
        };
        self.wrapped_value(id, style);
    }

    /// Packs short phrases (`2 × €2.50`, `VAT €0.80`) into rows at `indent`, separated by
    /// middle dots, starting a new row when the next one does not fit.
    fn phrases(&mut self, phrases: &[String], style: Style, indent: f32) {
        let max_w = CONTENT_W - indent;
        let mut rows: Vec<String> = Vec::new();
        let mut current = String::new();
        for phrase in phrases {
            let candidate = if current.is_empty() {
                phrase.clone()
            } else {
                format!("{current} · {phrase}")
            };
            if current.is_empty() || self.fonts.width(&candidate, style) <= max_w {
                current = candidate;
            } else {
                rows.push(std::mem::replace(&mut current, phrase.clone()));
            }
        }
        if !current.is_empty() {
            rows.push(current);
        }
        for row in rows {
            self.paragraph(&row, style, indent);
        }
    }

    fn finish(self) -> Block {
        Block {
            height: self.y,
            items: self.items,
        }
    }
}

/// Replaces control characters (newlines, tabs) with spaces: a receipt row is one line.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// Lays the receipt out as blocks.
fn blocks(r: &Receipt, fonts: &Fonts) -> Result<Vec<Block>, ReceiptError> {
    let money = |m: Minor| {
        Money {
            minor: m,
            currency: r.currency,
        }
        .display()
    };
    let mut out = Vec::new();

    // Header: merchant and the identifiers of the transaction.
    let mut b = BlockBuilder::new(fonts);
    let name = clean(&r.merchant.name);
    if !name.is_empty() {
        b.centered(&name, TITLE);
    }
    if let Some(address) = r
        .merchant
        .address
        .as_deref()
        .map(clean)
        .filter(|s| !s.is_empty())
    {
        b.centered(&address, BODY);
    }
    if let Some(phone) = r
        .merchant
        .phone
        .as_deref()
        .map(clean)
        .filter(|s| !s.is_empty())
    {
        b.centered(&phone, BODY);
    }
    if !r.paid {
        b.gap(1.0);
        b.centered("NOT PAID", TITLE);
        b.centered("No money was taken for this transaction.", SMALL);
        b.gap(0.6);
    }
    if b.y > 0.0 {
        b.rule();
    }
    let before_meta = b.y;
    let date = clean(&r.date);
    if !date.is_empty() {
        b.label_value("Date", &date, BODY, BODY);
    }
    if let Some(order) = r.order_id.as_deref().map(clean).filter(|s| !s.is_empty()) {
        b.identifier("Order", &order);
    }
    if let Some(number) = r
        .transaction_number
        .as_deref()
        .map(clean)
        .filter(|s| !s.is_empty())
    {
        b.identifier("Transaction", &number);
    }
    if b.y > before_meta {
        b.rule();
    }
    out.push(b.finish());

    // One block per line, so a line and its details stay on one page.
    for line in &r.lines {
        let mut b = BlockBuilder::new(fonts);
        line_rows(&mut b, line, &money);
        b.gap(0.8);
        out.push(b.finish());
    }

    // Totals.
    let mut b = BlockBuilder::new(fonts);
    if !r.lines.is_empty() {
        b.rule();
    }
    b.label_value(
        "Subtotal",
        &money(r.total.checked_sub(r.vat_total)?),
        BODY,
        BODY,
    );
    b.label_value("VAT", &money(r.vat_total), BODY, BODY);
    b.gap(0.6);
    b.label_value(if r.paid { "TOTAL" } else { "TOTAL (NOT CHARGED)" }, &money(r.total), TOTAL, TOTAL);
    if let Some(note) = r.note.as_deref().map(clean).filter(|s| !s.is_empty()) {
        b.gap(0.8);
        b.paragraph(&format!("Note: {note}"), SMALL, 0.0);
    }
    out.push(b.finish());

    // Status and how the payment was approved.
    let mut b = BlockBuilder::new(fonts);
    b.rule();
    let after_rule = b.y;
    let status = clean(&r.status);
    if !status.is_empty() {
        b.label_value("Status", &status, BODY, BODY_BOLD);
    }
    if let Some(provider) = r.provider.as_deref().map(clean).filter(|p| !p.is_empty()) {
        b.label_value("Paid with", &provider, BODY, BODY);
    }
    if let Some(a) = &r.approval {
        let fields = [
            ("Payment method", a.payment_method.as_deref().map(clean)),
            ("Card", a.card_mask.as_deref().map(mask_card)),
            ("Auth. code", a.auth_number.as_deref().map(clean)),
            ("Confirmation", a.confirmation.as_deref().map(clean)),
            ("Approved at", a.approved_at.as_deref().map(clean)),
        ];
        for (label, value) in fields {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                b.label_value(label, &value, BODY, BODY);
            }
        }
    }
    if b.y > after_rule {
        out.push(b.finish());
    }

    // Refunds, each its own block, then the net.
    if !r.refunds.is_empty() {
        let mut b = BlockBuilder::new(fonts);
        b.rule();
        let row = b.row(BODY_BOLD);
        b.text(MARGIN_X, row, "Refunds", BODY_BOLD, Align::Left);
        out.push(b.finish());
        let mut refunded = Minor::ZERO;
        for refund in &r.refunds {
            refunded = refunded.checked_add(refund.amount)?;
            let mut b = BlockBuilder::new(fonts);
            let at = clean(&refund.at);
            let negated = Minor::ZERO.checked_sub(refund.amount)?;
            b.label_value(
                if at.is_empty() { "Refund" } else { &at },
                &money(negated),
                BODY,
                BODY,
            );
            if refund.queued {
                b.paragraph(
                    "pending: queued, sent when the network is back",
                    SMALL,
                    INDENT,
                );
            } else if let Some(c) = refund
                .confirmation
                .as_deref()
                .map(clean)
                .filter(|s| !s.is_empty())
            {
                b.paragraph(&format!("Confirmation {c}"), SMALL, INDENT);
            }
            b.gap(0.5);
            out.push(b.finish());
        }
        let mut b = BlockBuilder::new(fonts);
        let label = if r.refunds.iter().any(|x| x.queued) {
            "Net after refunds (incl. pending)"
        } else {
            "Net after refunds"
        };
        b.gap(0.6);
        b.label_value(
            label,
            &money(r.total.checked_sub(refunded)?),
            BODY_BOLD,
            BODY_BOLD,
        );
        out.push(b.finish());
    }

    // The transaction's QR code, centred at the bottom.
    if let Some(data) = r.qr_data.as_deref().filter(|s| !s.is_empty()) {
        let matrix = qr::matrix(data)?;
        let mut b = BlockBuilder::new(fonts);
        b.rule();
        let module = QR_SIDE / (matrix.width + 2 * QUIET_ZONE) as f32;
        let top = b.y;
        b.items.push(Item::Qr {
            x: (PAGE_W - QR_SIDE) / 2.0,
            top,
            module,
            matrix,
        });
        b.gap(QR_SIDE);
        b.centered("Scan to view this payment", SMALL);
        out.push(b.finish());
    }
    Ok(out)
}

/// The rows of one receipt line (name and total, then details), and its sub-lines indented.
fn line_rows(b: &mut BlockBuilder<'_>, line: &ReceiptLine, money: &dyn Fn(Minor) -> String) {
    let name = clean(&line.name);
    let name = if name.is_empty() {
        "Item".to_string()
    } else {
        name
    };
    b.label_value(&name, &money(line.total), BODY, BODY);
    b.phrases(&details(line, money), SMALL, INDENT);
    sub_line_rows(b, &line.sub_lines, money, INDENT);
}

/// Sub-lines: `+ name   1 × €1.00   VAT …`, indented one step per level, without totals of
/// their own (their parent's total includes them).
fn sub_line_rows(
    b: &mut BlockBuilder<'_>,
    subs: &[ReceiptLine],
    money: &dyn Fn(Minor) -> String,
    indent: f32,
) {
    for sub in subs {
        let name = clean(&sub.name);
        let mut phrases = vec![format!(
            "+ {}",
            if name.is_empty() { "Extra" } else { &name }
        )];
        phrases.extend(details(sub, money));
        b.phrases(&phrases, SMALL, indent);
        // Deeper levels stop indenting at three steps so text keeps some width.
        sub_line_rows(
            b,
            &sub.sub_lines,
            money,
            (indent + INDENT).min(3.0 * INDENT),
        );
    }
}

/// `2 × €2.50`, `VAT €0.80`, `Discount -€0.45` for one line, the last two only when non-zero.
fn details(line: &ReceiptLine, money: &dyn Fn(Minor) -> String) -> Vec<String> {
    let mut out = vec![format!("{} × {}", line.quantity, money(line.unit))];
    if line.vat != Minor::ZERO {
        out.push(format!("VAT {}", money(line.vat)));
    }
    if line.discount != Minor::ZERO {
        out.push(format!(
            "Discount {}",
            money(Minor(line.discount.0.saturating_neg()))
        ));
    }
    out
}

/// Splits blocks into pages of at most [`MAX_PAGE_H`], never cutting a block. Room is kept on
/// every page for the "continued" markers added later.
fn paginate(blocks: Vec<Block>) -> Vec<Vec<Block>> {
    let marker = SMALL.line_height() + 2.0;
    let capacity = MAX_PAGE_H - 2.0 * MARGIN_Y - 2.0 * marker;
    let mut pages: Vec<Vec<Block>> = vec![Vec::new()];
    let mut used = 0.0;
    for block in blocks {
        let needs_new =
            pages.last().is_some_and(|p| !p.is_empty()) && used + block.height > capacity;
        if needs_new {
            pages.push(Vec::new());
            used = 0.0;
        }
        used += block.height;
        if let Some(page) = pages.last_mut() {
            page.push(block);
        }
    }
    pages
}

/// A one-row block with a small centred remark ("continued on page 2").
fn marker(fonts: &Fonts, text: &str) -> Block {
    let mut b = BlockBuilder::new(fonts);
    b.gap(1.0);
    b.centered(text, SMALL);
    b.gap(1.0);
    b.finish()
}

/// Renders the receipt as PDF bytes, with the current time as the PDF creation date.
pub fn render_pdf(r: &Receipt) -> Result<Vec<u8>, ReceiptError> {
    render_with_date(r, DateTime::now())
}

/// Renders the receipt with `created_unix` (seconds since 1970, UTC) as the PDF creation date,
/// e.g. the payment time, so re-rendering a journal entry later keeps its original date.
pub fn render_pdf_at(r: &Receipt, created_unix: i64) -> Result<Vec<u8>, ReceiptError> {
    let date = DateTime::from_unix_timestamp(created_unix).unwrap_or_else(|_| DateTime::now());
    render_with_date(r, date)
}

/// A page after layout: its height and the blocks on it, markers included.
struct PageLayout {
    height: f32,
    blocks: Vec<Block>,
}

/// Lays the receipt out into pages, "continued" markers included.
fn layout(r: &Receipt, fonts: &Fonts) -> Result<Vec<PageLayout>, ReceiptError> {
    let pages = paginate(blocks(r, fonts)?);
    let count = pages.len();
    let mut out = Vec::with_capacity(count);
    for (index, mut blocks) in pages.into_iter().enumerate() {
        if count > 1 {
            if index > 0 {
                let name = clean(&r.merchant.name);
                let text = format!("{name} receipt, page {} of {count}", index + 1);
                blocks.insert(0, marker(fonts, text.trim()));
            }
            if index + 1 < count {
                blocks.push(marker(fonts, &format!("continued on page {}", index + 2)));
            }
        }
        let content: f32 = blocks.iter().map(|b| b.height).sum();
        out.push(PageLayout {
            height: content + 2.0 * MARGIN_Y,
            blocks,
        });
    }
    Ok(out)
}

fn render_with_date(r: &Receipt, created: DateTime) -> Result<Vec<u8>, ReceiptError> {
    let fonts = fonts()?;
    let pages = layout(r, fonts)?;

    let title = match (&r.transaction_number, &r.order_id) {
        (_, Some(order)) if !order.is_empty() => format!("Receipt {}", clean(order)),
        (Some(number), _) if !number.is_empty() => format!("Receipt {}", clean(number)),
        _ => "Receipt".to_string(),
    };
    let mut doc = PdfDocument::new(&title);
    let info = &mut doc.metadata.info;
    info.creation_date = created;
    info.modification_date = created;
    info.metadata_date = created;
    info.creator = "Till Agent".to_string();
    info.producer = concat!("till-receipts ", env!("CARGO_PKG_VERSION")).to_string();
    info.subject = format!("{} {}", clean(&r.merchant.name), clean(&r.date))
        .trim()
        .to_string();

    // Embed only the glyphs this receipt uses.
    let (mut regular_chars, mut bold_chars) = (BTreeSet::new(), BTreeSet::new());
    for item in pages.iter().flat_map(|p| &p.blocks).flat_map(|b| &b.items) {
        if let Item::Text { text, style, .. } = item {
            if style.bold {
                &mut bold_chars
            } else {
                &mut regular_chars
            }
            .extend(text.chars());
        }
    }
    let regular = doc.add_font(&subset(
        REGULAR_TTF,
        &fonts.regular,
        &regular_chars,
        "DejaVuSans",
    )?);
    let bold = doc.add_font(&subset(
        BOLD_TTF,
        &fonts.bold,
        &bold_chars,
        "DejaVuSans-Bold",
    )?);

    let mut pdf_pages = Vec::with_capacity(pages.len());
    for page in pages {
        let mut ops = vec![
            Op::SetFillColor { col: black() },
            Op::SetOutlineColor { col: black() },
        ];
        let mut top = MARGIN_Y;
        for block in page.blocks {
            for item in block.items {
                draw(&mut ops, item, top, page.height, fonts, &regular, &bold);
            }
            top += block.height;
        }
        pdf_pages.push(PdfPage::new(Mm(PAGE_W), Mm(page.height), ops));
    }

    // printpdf's warnings concern unsupported operations and fonts; the operations used here
    // are all supported, so there is nothing to report to the caller.
    let mut warnings = Vec::new();
    let options = PdfSaveOptions {
        image_optimization: None,
        ..PdfSaveOptions::default()
    };
    Ok(doc.with_pages(pdf_pages).save(&options, &mut warnings))
}

fn black() -> Color {
    Color::Greyscale(Greyscale::new(0.0, None))
}

/// Appends the PDF operations for one item of a block whose top is `top` mm below the page's.
fn draw(
    ops: &mut Vec<Op>,
    item: Item,
    top: f32,
    page_h: f32,
    fonts: &Fonts,
    regular: &FontId,
    bold: &FontId,
) {
    // PDF y grows upwards from the bottom edge.
    let y = |below_top: f32| Mm(page_h - top - below_top);
    match item {
        Item::Text {
            x,
            baseline,
            text,
            style,
            align,
        } => {
            let left = match align {
                Align::Left => x,
                Align::Right => x - fonts.width(&text, style),
                Align::Center => x - fonts.width(&text, style) / 2.0,
            };
            let font = if style.bold {
                bold.clone()
            } else {
                regular.clone()
            };
            ops.extend([
                Op::StartTextSection,
                Op::SetFont {
                    font: PdfFontHandle::External(font),
                    size: Pt(style.size),
                },
                Op::SetTextCursor {
                    pos: Point::new(Mm(left), y(baseline)),
                },
                Op::ShowText {
                    items: vec![TextItem::Text(text)],
                },
                Op::EndTextSection,
            ]);
        }
        Item::Rule { y: at } => {
            let point = |x: f32| LinePoint {
                p: Point::new(Mm(x), y(at)),
                bezier: false,
            };
            ops.extend([
                Op::SetOutlineThickness { pt: Pt(0.5) },
                Op::DrawLine {
                    line: Line {
                        points: vec![point(MARGIN_X), point(MARGIN_X + CONTENT_W)],
                        is_closed: false,
                    },
                },
            ]);
        }
        Item::Qr {
            x,
            top: qr_top,
            module,
            matrix,
        } => {
            let origin_x = x + QUIET_ZONE as f32 * module;
            let origin_y = qr_top + QUIET_ZONE as f32 * module;
            let rings = matrix
                .dark_runs()
                .into_iter()
                .map(|(row, col, len)| {
                    let left = origin_x + col as f32 * module;
                    let right = left + len as f32 * module;
                    let upper = origin_y + row as f32 * module;
                    let lower = upper + module;
                    let p = |px: f32, py: f32| LinePoint {
                        p: Point::new(Mm(px), y(py)),
                        bezier: false,
                    };
                    PolygonRing {
                        points: vec![
                            p(left, upper),
                            p(right, upper),
                            p(right, lower),
                            p(left, lower),
                        ],
                    }
                })
                .collect();
            ops.push(Op::DrawPolygon {
                polygon: Polygon {
                    rings,
                    mode: PaintMode::Fill,
                    winding_order: WindingOrder::NonZero,
                },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Approval, Merchant, RefundLine};
    use till_core::{Currency, Product};

    /// A box drawn on a page: left, top, right, bottom (mm from the page's top-left) and what.
    type Boxed = (f32, f32, f32, f32, String);

    fn boxes(page: &PageLayout, fonts: &Fonts) -> Vec<Boxed> {
        let mut out = Vec::new();
        let mut top = MARGIN_Y;
        for block in &page.blocks {
            for item in &block.items {
                match item {
                    Item::Text {
                        x,
                        baseline,
                        text,
                        style,
                        align,
                    } => {
                        let w = fonts.width(text, *style);
                        let left = match align {
                            Align::Left => *x,
                            Align::Right => x - w,
                            Align::Center => x - w / 2.0,
                        };
                        let em = style.size * MM_PER_PT;
                        let b = top + baseline;
                        out.push((left, b - 0.928 * em, left + w, b + 0.236 * em, text.clone()));
                    }
                    Item::Rule { y } => out.push((
                        MARGIN_X,
                        top + y - 0.1,
                        MARGIN_X + CONTENT_W,
                        top + y + 0.1,
                        "rule".into(),
                    )),
                    Item::Qr { x, top: t, .. } => {
                        out.push((*x, top + t, x + QR_SIDE, top + t + QR_SIDE, "qr".into()))
                    }
                }
            }
            top += block.height;
        }
        out
    }

    /// Nothing leaves the printable width or the page, and nothing overlaps anything else.
    fn assert_clean(r: &Receipt) -> usize {
        let fonts = fonts().unwrap();
        let pages = layout(r, fonts).unwrap();
        for (n, page) in pages.iter().enumerate() {
            assert!(
                page.height <= MAX_PAGE_H + 0.01,
                "page {n} is {} mm",
                page.height
            );
            let boxes = boxes(page, fonts);
            for (l, t, rt, b, what) in &boxes {
                assert!(
                    *l >= MARGIN_X - 0.01 && *rt <= PAGE_W - MARGIN_X + 0.01,
                    "{what:?} leaves the roll: {l}..{rt}"
                );
                assert!(
                    *t >= MARGIN_Y - 0.01 && *b <= page.height - MARGIN_Y + 0.01,
                    "{what:?} leaves page {n}"
                );
            }
            for (i, a) in boxes.iter().enumerate() {
                for c in &boxes[i + 1..] {
                    let apart = a.2 <= c.0 + 0.01
                        || c.2 <= a.0 + 0.01
                        || a.3 <= c.1 + 0.01
                        || c.3 <= a.1 + 0.01;
                    assert!(apart, "{:?} overlaps {:?} on page {n}", a.4, c.4);
                }
            }
        }
        pages.len()
    }

    fn receipt(lines: Vec<ReceiptLine>) -> Receipt {
        Receipt {
            merchant: Merchant {
                name: "Sandbox Coffee".into(),
                address: Some("1 Main Street, Springfield".into()),
                phone: Some("+1 555 0100".into()),
            },
            transaction_number: Some("ab".repeat(28)),
            order_id: Some("ORDER-1".into()),
            date: "2024-05-03 14:21".into(),
            currency: Currency::Eur,
            lines,
            total: Minor(123_456),
            vat_total: Minor(2_000),
            status: "Partially refunded".into(),
        paid: true,
        provider: Some("SensePass".into()),
            approval: Some(Approval {
                confirmation: Some("C".repeat(40)),
                payment_method: Some("Mastercard".into()),
                card_mask: Some("520000******0056".into()),
                auth_number: Some("123456".into()),
                approved_at: Some("2024-05-03 14:22".into()),
            }),
            refunds: vec![
                RefundLine {
                    amount: Minor(100),
                    at: "2024-05-03 15:00".into(),
                    confirmation: Some("R1".into()),
                    queued: false,
                },
                RefundLine {
                    amount: Minor(200),
                    at: "2024-05-03 15:05".into(),
                    confirmation: None,
                    queued: true,
                },
            ],
            qr_data: Some("https://pay.sandbox.invalid/pay/".to_string() + &"ab".repeat(28)),
            note: Some("Items do not add up to the amount charged".into()),
        }
    }

    fn line(name: &str, qty: i64, unit: i64) -> ReceiptLine {
        let mut p = Product::simple(name, qty, unit);
        p.vat = Minor(unit / 10);
        p.discount = Minor(unit / 20);
        p.sub_products.push(Product::simple(
            "Extra shot of something with a long name",
            1,
            50,
        ));
        ReceiptLine::from_product(&p).unwrap()
    }

    #[test]
    fn layout_is_clean_for_ordinary_and_awkward_input() {
        let ordinary: Vec<ReceiptLine> = (0..5)
            .map(|i| line(&format!("Flat white {i}"), 2, 350))
            .collect();
        assert_eq!(assert_clean(&receipt(ordinary)), 1);

        let awkward = vec![
            line(
                &"Extraordinarily long product name ".repeat(4),
                12_345,
                9_999_999,
            ),
            line(
                "NoSpacesAtAllInThisProductNameWhichIsVeryVeryVeryLongIndeedYesReally",
                1,
                1,
            ),
            line("", 1, 0),
        ];
        let mut r = receipt(awkward);
        r.merchant.name = "M".repeat(80);
        r.order_id = Some("O".repeat(150));
        r.date = "Friday, 3 May 2024 at 14:21:00 Central European Summer Time".into();
        r.status = "Refunded after a long and complicated dispute with the card issuer".into();
        assert_eq!(assert_clean(&r), 1);
    }

    #[test]
    fn long_receipts_split_without_losing_lines() {
        let lines: Vec<ReceiptLine> = (0..300)
            .map(|i| line(&format!("Item {i}"), 1, 100))
            .collect();
        let r = receipt(lines);
        let pages = assert_clean(&r);
        assert!(pages > 1);
        let fonts = fonts().unwrap();
        let all: Vec<String> = layout(&r, fonts)
            .unwrap()
            .iter()
            .flat_map(|p| boxes(p, fonts))
            .map(|b| b.4)
            .filter(|t| t.starts_with("Item "))
            .collect();
        let expected: Vec<String> = (0..300).map(|i| format!("Item {i}")).collect();
        assert_eq!(all, expected);
    }

    #[test]
    fn sixty_plain_lines_stay_on_one_page() {
        let lines: Vec<ReceiptLine> = (0..60)
            .map(|i| {
                ReceiptLine::from_product(&Product::simple(&format!("Item {i}"), 1, 100)).unwrap()
            })
            .collect();
        assert_eq!(assert_clean(&receipt(lines)), 1);
    }

    #[test]
    fn wrap_respects_the_width_and_keeps_every_word() {
        let fonts = fonts().unwrap();
        let text = "José Núñez bought a Supercalifragilisticexpialidocious-sized crème brûlée";
        for max in [10.0, 20.0, 40.0, 72.0] {
            let lines = fonts.wrap(text, BODY, max);
            for l in &lines {
                assert!(
                    fonts.width(l, BODY) <= max + 0.01 || l.chars().count() == 1,
                    "{l:?} > {max}"
                );
            }
            assert_eq!(lines.concat().replace(' ', ""), text.replace(' ', ""));
        }
        assert_eq!(fonts.wrap("", BODY, 10.0), vec![String::new()]);
    }

    #[test]
    fn subset_keeps_widths_and_is_small() {
        let fonts = fonts().unwrap();
        let chars: BTreeSet<char> = "Total €12.50 Zoë ₪₽£".chars().collect();
        let sub = subset(REGULAR_TTF, &fonts.regular, &chars, "DejaVuSans").unwrap();
        assert!(
            sub.original_bytes.len() < 40_000,
            "{} bytes",
            sub.original_bytes.len()
        );
        for c in chars {
            let full = fonts
                .regular
                .get_glyph_width(fonts.regular.lookup_glyph_index(c as u32).unwrap());
            let small = sub.get_glyph_width(sub.lookup_glyph_index(c as u32).unwrap());
            assert_eq!(full, small, "{c}");
        }
        assert!(sub.font_name.as_deref().unwrap().ends_with("+DejaVuSans"));
    }
}
