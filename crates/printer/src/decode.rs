//! Reading an ESC/POS byte stream back: what a printer would do with it.
//!
//! Used by the tests (a fake printer records the bytes; the test decodes them and compares the
//! paper with the receipt) and by the picture of a receipt in the docs. It understands the
//! commands [`crate::render`] writes and the status queries of [`crate::transport`]; any other
//! command is reported as [`Event::Unknown`] so that a test notices it, never skipped silently.

use crate::codepage::CodePage;
use crate::render::Align;

/// One thing the printer does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A printed line of text with the style in force when it was printed.
    Line(Line),
    /// A QR code (native, `GS ( k`) holding this text.
    Qr(String),
    /// The paper is cut.
    Cut,
    /// The cash drawer is kicked (`ESC p`).
    Drawer,
    /// A real-time status query (`DLE EOT n`).
    StatusQuery(u8),
    /// `ESC @`.
    Init,
    /// A command this decoder does not know, with its first bytes.
    Unknown(Vec<u8>),
}

/// A printed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The text, decoded through the code page(s) selected while it was sent.
    pub text: String,
    /// `ESC a`.
    pub align: Align,
    /// `ESC E`.
    pub bold: bool,
    /// `GS !` with double width and height.
    pub double: bool,
}

/// Decodes a whole stream.
pub fn decode(bytes: &[u8]) -> Vec<Event> {
    let mut events = Vec::new();
    let mut page = CodePage::Wpc1252;
    let (mut align, mut bold, mut double) = (Align::Left, false, false);
    let mut text = String::new();
    let mut i = 0;
    let at = |i: usize| bytes.get(i).copied().unwrap_or(0);
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\n' => {
                events.push(Event::Line(Line { text: std::mem::take(&mut text), align, bold, double }));
                i += 1;
            }
            0x1B => match at(i + 1) {
                b'@' => {
                    events.push(Event::Init);
                    (align, bold, double) = (Align::Left, false, false);
                    page = CodePage::Wpc1252;
                    i += 2;
                }
                b't' => {
                    page = CodePage::from_escpos_number(at(i + 2)).unwrap_or(page);
                    i += 3;
                }
                b'a' => {
                    align = match at(i + 2) {
                        1 | b'1' => Align::Center,
                        2 | b'2' => Align::Right,
                        _ => Align::Left,
                    };
                    i += 3;
                }
                b'E' => {
                    bold = at(i + 2) & 1 == 1;
                    i += 3;
                }
                b'p' => {
                    events.push(Event::Drawer);
                    i += 5;
                }
                b'd' => {
                    for _ in 0..at(i + 2) {
                        events.push(Event::Line(Line { text: String::new(), align, bold, double }));
                    }
                    i += 3;
                }
                _ => {
                    events.push(Event::Unknown(bytes[i..(i + 2).min(bytes.len())].to_vec()));
                    i += 2;
                }
            },
            0x1D => match at(i + 1) {
                b'!' => {
                    double = at(i + 2) & 0x11 != 0;
                    i += 3;
                }
                b'V' => {
                    events.push(Event::Cut);
                    i += if matches!(at(i + 2), 65 | 66) { 4 } else { 3 };
                }
                0x28 if at(i + 2) == 0x6B => {
                    let len = usize::from(at(i + 3)) | (usize::from(at(i + 4)) << 8);
                    let body = bytes.get(i + 5..i + 5 + len).unwrap_or(&[]);
                    // fn 80 (store data): cn=49, fn=80, m=48, then the data.
                    if body.len() >= 3 && body[0] == 0x31 && body[1] == 0x50 {
                        events.push(Event::Qr(String::from_utf8_lossy(&body[3..]).into_owned()));
                    }
                    i += 5 + len;
                }
                _ => {
                    events.push(Event::Unknown(bytes[i..(i + 2).min(bytes.len())].to_vec()));
                    i += 2;
                }
            },
            0x10 if at(i + 1) == 0x04 => {
                events.push(Event::StatusQuery(at(i + 2)));
                i += 3;
            }
            _ => {
                text.push(page.decode(b));
                i += 1;
            }
        }
    }
    if !text.is_empty() {
        events.push(Event::Line(Line { text, align, bold, double }));
    }
    events
}

/// One piece of paper: everything printed up to a cut.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paper {
    /// The lines printed on it, in order.
    pub lines: Vec<Line>,
    /// The QR codes on it.
    pub qr: Vec<String>,
    /// Whether it ended with a cut (a job broken off mid-way has none).
    pub cut: bool,
    /// Whether the drawer was kicked while it printed.
    pub drawer: bool,
}

impl Paper {
    /// The text of every line, joined with newlines (for `contains` checks).
    pub fn text(&self) -> String {
        self.lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join("\n")
    }
}

/// Splits a stream into pieces of paper at each cut; a trailing piece without a cut is kept
/// (with `cut: false`) when anything was printed on it.
pub fn papers(bytes: &[u8]) -> Vec<Paper> {
    let mut out = Vec::new();
    let mut current = Paper::default();
    for event in decode(bytes) {
        match event {
            Event::Line(l) => current.lines.push(l),
            Event::Qr(q) => current.qr.push(q),
            Event::Drawer => current.drawer = true,
            Event::Cut => {
                current.cut = true;
                out.push(std::mem::take(&mut current));
            }
            _ => {}
        }
    }
    if !current.lines.is_empty() || !current.qr.is_empty() {
        out.push(current);
    }
    out
}

/// Splits a stream into jobs: each starts at `ESC @` and is complete when it reached its cut.
/// Where a job was cut short and the next one printed on the same paper, [`papers`] shows one
/// piece; this shows the two jobs, the first with `cut: false`.
pub fn jobs(bytes: &[u8]) -> Vec<Paper> {
    let mut out = Vec::new();
    let mut current = Paper::default();
    let mut started = false;
    for event in decode(bytes) {
        match event {
            Event::Init => {
                if started && (!current.lines.is_empty() || !current.qr.is_empty() || current.drawer) {
                    out.push(std::mem::take(&mut current));
                }
                current = Paper::default();
                started = true;
            }
            Event::Line(l) => current.lines.push(l),
            Event::Qr(q) => current.qr.push(q),
            Event::Drawer => current.drawer = true,
            Event::Cut => current.cut = true,
            _ => {}
        }
    }
    if !current.lines.is_empty() || !current.qr.is_empty() || current.drawer {
        out.push(current);
    }
    out
}
