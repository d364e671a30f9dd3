//! Code pages: how text that is not ASCII reaches a printer that knows no Unicode.
//!
//! An ESC/POS printer prints bytes through a *code page* chosen with `ESC t n`; the byte 0x80 is
//! `€` in one page and `Ç` in another. A store names the pages its printer has (`code_pages` in
//! the `[printer]` settings, e.g. `["wpc1252", "wpc1255"]`); the renderer then, for every
//! character:
//!
//! 1. prints ASCII as it is;
//! 2. prints the character from the page already selected when that page has it, or selects the
//!    first configured page that has it (`ESC t n`, switching mid-line is allowed);
//! 3. otherwise prints a readable fallback, the *clear fallback* of the receipt: a currency sign
//!    becomes its ISO code (`€` → `EUR`, `£` → `GBP`, `₪` → `ILS`, `₽` → `RUB` — no Epson page has
//!    `₽` at all), a letter loses its accent (`é` → `e`, through Unicode decomposition), typographic
//!    punctuation becomes its ASCII look-alike, and anything else becomes `?`.
//!
//! The fallback is applied *before* layout ([`printable`]), so that a column count is a byte count
//! on paper and amounts stay right-aligned.
//!
//! The byte tables are encoding_rs's (the WHATWG single-byte encodings), so no table is typed by
//! hand here; the page numbers are Epson's `ESC t` numbers, which the common clones share.

use encoding_rs::Encoding;
use unicode_normalization::UnicodeNormalization;

/// A code page a printer can be switched to with `ESC t n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CodePage {
    /// Windows-1252, Western European: `€ £` and the accented Latin letters. The default: the
    /// page almost every ESC/POS printer has.
    Wpc1252,
    /// ISO-8859-15, Western European with `€` at 0xA4.
    Iso885915,
    /// Windows-1250, Central European (`ő ł č`), with `€`.
    Wpc1250,
    /// Windows-1251, Cyrillic, with `€` (but no `₽`).
    Wpc1251,
    /// IBM866, DOS Cyrillic.
    Pc866,
    /// Windows-1255, Hebrew: `₪` and `€`.
    Wpc1255,
}

impl CodePage {
    /// Every page this crate knows, in the order they are documented.
    pub const ALL: [CodePage; 6] = [
        CodePage::Wpc1252,
        CodePage::Iso885915,
        CodePage::Wpc1250,
        CodePage::Wpc1251,
        CodePage::Pc866,
        CodePage::Wpc1255,
    ];

    /// The setting's spelling (`wpc1252`, `pc866`, …).
    pub fn name(self) -> &'static str {
        match self {
            CodePage::Wpc1252 => "wpc1252",
            CodePage::Iso885915 => "iso885915",
            CodePage::Wpc1250 => "wpc1250",
            CodePage::Wpc1251 => "wpc1251",
            CodePage::Pc866 => "pc866",
            CodePage::Wpc1255 => "wpc1255",
        }
    }

    /// Parses a setting: case, `-` and `_` do not matter (`WPC-1252`, `iso8859_15`,
    /// `cp1255`/`windows-1255` are accepted too).
    pub fn parse(text: &str) -> Option<CodePage> {
        let key: String = text
            .chars()
            .filter(|c| !matches!(c, '-' | '_' | ' '))
            .collect::<String>()
            .to_ascii_lowercase();
        let key = key
            .strip_prefix("windows")
            .map(|n| format!("wpc{n}"))
            .or_else(|| key.strip_prefix("cp").map(|n| if n == "866" { "pc866".to_string() } else { format!("wpc{n}") }))
            .unwrap_or(key);
        CodePage::ALL.into_iter().find(|p| p.name() == key || (key == "iso885915" && *p == CodePage::Iso885915))
    }

    /// Epson's `ESC t n` number of this page.
    pub fn escpos_number(self) -> u8 {
        match self {
            CodePage::Wpc1252 => 16,
            CodePage::Pc866 => 17,
            CodePage::Iso885915 => 40,
            CodePage::Wpc1250 => 45,
            CodePage::Wpc1251 => 46,
            CodePage::Wpc1255 => 49,
        }
    }

    /// The page `ESC t n` selects, if it is one of ours.
    pub fn from_escpos_number(n: u8) -> Option<CodePage> {
        CodePage::ALL.into_iter().find(|p| p.escpos_number() == n)
    }

    fn encoding(self) -> &'static Encoding {
        match self {
            CodePage::Wpc1252 => encoding_rs::WINDOWS_1252,
            CodePage::Iso885915 => encoding_rs::ISO_8859_15,
            CodePage::Wpc1250 => encoding_rs::WINDOWS_1250,
            CodePage::Wpc1251 => encoding_rs::WINDOWS_1251,
            CodePage::Pc866 => encoding_rs::IBM866,
            CodePage::Wpc1255 => encoding_rs::WINDOWS_1255,
        }
    }

    /// The byte of `c` in this page, if it has one (ASCII included).
    pub fn encode(self, c: char) -> Option<u8> {
        let mut buf = [0u8; 4];
        let (bytes, _, unmappable) = self.encoding().encode(c.encode_utf8(&mut buf));
        match (unmappable, bytes.as_ref()) {
            (false, [b]) => Some(*b),
            _ => None,
        }
    }

    /// The character byte `b` stands for in this page.
    pub fn decode(self, b: u8) -> char {
        let byte = [b];
        let (text, _) = self.encoding().decode_without_bom_handling(&byte);
        text.chars().next().unwrap_or('?')
    }
}

/// The readable fallback of a character no configured page has (see the module documentation).
pub fn fallback(c: char) -> String {
    match c {
        '€' => "EUR".into(),
        '£' => "GBP".into(),
        '₪' => "ILS".into(),
        '₽' => "RUB".into(),
        '$' => "$".into(),
        '¥' => "JPY".into(),
        '×' => "x".into(),
        '–' | '—' | '−' => "-".into(),
        '‘' | '’' | '‚' | '′' => "'".into(),
        '“' | '”' | '„' | '″' => "\"".into(),
        '…' => "...".into(),
        '•' | '·' => "*".into(),
        '\u{a0}' | '\u{2009}' | '\u{202f}' => " ".into(),
        'ß' => "ss".into(),
        'æ' => "ae".into(),
        'Æ' => "AE".into(),
        'ø' => "o".into(),
        'Ø' => "O".into(),
        'ł' => "l".into(),
        'Ł' => "L".into(),
        _ => {
            let base: String = c.to_string().nfd().filter(char::is_ascii).collect();
            let base: String = base.chars().filter(|c| !c.is_ascii_control()).collect();
            if base.is_empty() {
                "?".into()
            } else {
                base
            }
        }
    }
}

/// `text` with every character the configured pages cannot print replaced by its fallback and
/// control characters by spaces: what will be on paper, one character per printed column.
pub fn printable(text: &str, pages: &[CodePage]) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.push(' ');
        } else if c.is_ascii() || pages.iter().any(|p| p.encode(c).is_some()) {
            out.push(c);
        } else {
            out.push_str(&fallback(c));
        }
    }
    out
}

/// Encodes already [`printable`] text, switching pages with `ESC t n` where needed. `current`
/// is the page selected on the printer, updated as pages are switched.
pub fn encode_into(text: &str, pages: &[CodePage], current: &mut Option<CodePage>, out: &mut Vec<u8>) {
    for c in text.chars() {
        if c.is_ascii() && !c.is_ascii_control() {
            out.push(c as u8);
            continue;
        }
        if let Some(b) = current.and_then(|p| p.encode(c)) {
            out.push(b);
            continue;
        }
        match pages.iter().find_map(|p| p.encode(c).map(|b| (*p, b))) {
            Some((page, b)) => {
                out.extend_from_slice(&[0x1B, b't', page.escpos_number()]);
                *current = Some(page);
                out.push(b);
            }
            // Not printable text (the caller skipped `printable`): never send raw UTF-8.
            None => out.push(b'?'),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        assert_eq!(CodePage::parse("WPC-1252"), Some(CodePage::Wpc1252));
        assert_eq!(CodePage::parse("windows-1255"), Some(CodePage::Wpc1255));
        assert_eq!(CodePage::parse("cp866"), Some(CodePage::Pc866));
        assert_eq!(CodePage::parse("iso8859_15"), Some(CodePage::Iso885915));
        assert_eq!(CodePage::parse("klingon"), None);
    }

    #[test]
    fn currency_signs_and_accents() {
        let west = [CodePage::Wpc1252];
        assert_eq!(printable("€1 £2 ₪3 ₽4 José", &west), "€1 £2 ILS3 RUB4 José");
        let both = [CodePage::Wpc1252, CodePage::Wpc1255];
        assert_eq!(printable("₪3", &both), "₪3");
        assert_eq!(printable("Núñez ő", &west), "Núñez o");
        assert_eq!(printable("line\nbreak", &west), "line break");
        assert_eq!(printable("日本", &west), "??");

        let mut out = Vec::new();
        let mut current = Some(CodePage::Wpc1252);
        encode_into("€₪é", &both, &mut current, &mut out);
        assert_eq!(out, vec![0x80, 0x1B, b't', 49, 0xA4, 0x1B, b't', 16, 0xE9]);
        assert_eq!(current, Some(CodePage::Wpc1252));
        assert_eq!(CodePage::Wpc1255.decode(0xA4), '₪');
        assert_eq!(CodePage::Pc866.encode('Ж'), Some(0x86));
    }
}
