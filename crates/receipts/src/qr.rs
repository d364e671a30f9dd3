//! The dynamic QR code: the payment URL a customer scans at the till.
//!
//! Error correction level M (15 % of the code may be damaged or glared) is what phone cameras
//! read fastest at a till's distance; a SensePass payment URL fits in a version 4–6 code.
//! Both renderings keep the 4-module quiet zone the QR standard asks for: without it scanners
//! miss codes drawn next to other content.

use crate::ReceiptError;
use image::{ImageBuffer, Luma};
use qrcode::{Color, EcLevel, QrCode};
use std::fmt::Write;

/// Width of the light margin around the code, in modules (ISO/IEC 18004).
pub(crate) const QUIET_ZONE: usize = 4;

/// The largest PNG module size accepted: 64 px per module already makes a version-10 code
/// about 4,000 pixels wide.
const MAX_MODULE_PX: u32 = 64;

/// A QR code as rows of dark (`true`) and light modules, without the quiet zone.
pub(crate) struct Matrix {
    /// Modules per side.
    pub width: usize,
    /// `width × width` modules, row by row from the top.
    pub dark: Vec<bool>,
}

impl Matrix {
    /// True when the module at column `x`, row `y` is dark.
    pub fn is_dark(&self, x: usize, y: usize) -> bool {
        self.dark.get(y * self.width + x).copied().unwrap_or(false)
    }

    /// Horizontal runs of dark modules as `(row, first column, length)`: drawing runs instead
    /// of single modules keeps SVG and PDF small and avoids hairline seams between modules.
    pub fn dark_runs(&self) -> Vec<(usize, usize, usize)> {
        let mut runs = Vec::new();
        for y in 0..self.width {
            let mut x = 0;
            while x < self.width {
                if self.is_dark(x, y) {
                    let start = x;
                    while x < self.width && self.is_dark(x, y) {
                        x += 1;
                    }
                    runs.push((y, start, x - start));
                } else {
                    x += 1;
                }
            }
        }
        runs
    }
}

/// Encodes `data` with error correction M.
fn code(data: &str) -> Result<QrCode, ReceiptError> {
    QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M)
        .map_err(|e| ReceiptError::Qr(e.to_string()))
}

/// The module matrix of `data`, for renderers of this crate (the PDF draws it as vectors).
pub(crate) fn matrix(data: &str) -> Result<Matrix, ReceiptError> {
    let code = code(data)?;
    let width = code.width();
    let dark = code
        .to_colors()
        .into_iter()
        .map(|c| c == Color::Dark)
        .collect();
    Ok(Matrix { width, dark })
}

/// Draws `data` (the payment URL) as an SVG document for the cashier screen.
///
/// The SVG has a `viewBox` of one unit per module and no `width`/`height`, so it fills whatever
/// box the page gives it and stays sharp at any size; `shape-rendering="crispEdges"` stops
/// browsers from anti-aliasing module edges into grey. The quiet zone is part of the drawing
/// (white background), so the code scans even on a dark page.
pub fn qr_svg(data: &str) -> Result<String, ReceiptError> {
    let m = matrix(data)?;
    let size = m.width + 2 * QUIET_ZONE;
    let mut svg = String::with_capacity(64 + m.width * m.width * 4);
    // Writing into a String cannot fail; the results are ignored deliberately.
    let _ = write!(
        svg,
        concat!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {s} {s}" "#,
            r#"shape-rendering="crispEdges" role="img" aria-label="Payment QR code">"#,
            r##"<rect width="{s}" height="{s}" fill="#fff"/><path fill="#000" d=""##
        ),
        s = size
    );
    for (y, x, len) in m.dark_runs() {
        let _ = write!(
            svg,
            "M{} {}h{}v1h-{}z",
            x + QUIET_ZONE,
            y + QUIET_ZONE,
            len,
            len
        );
    }
    svg.push_str(r#""/></svg>"#);
    Ok(svg)
}

/// Draws `data` as a grey-scale PNG with `module_px` pixels per module, quiet zone included.
///
/// Whole-pixel modules are what keeps a bitmap QR code scannable after printing; scale the
/// module size rather than the image. `module_px` must be 1..=64.
pub fn qr_png(data: &str, module_px: u32) -> Result<Vec<u8>, ReceiptError> {
    if module_px == 0 || module_px > MAX_MODULE_PX {
        return Err(ReceiptError::ModuleSize {
            got: module_px,
            max: MAX_MODULE_PX,
        });
    }
    let code = code(data)?;
    let img: ImageBuffer<Luma<u8>, Vec<u8>> = code
        .render::<Luma<u8>>()
        .quiet_zone(true)
        .module_dimensions(module_px, module_px)
        .build();
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| ReceiptError::Png(e.to_string()))?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_size_bounds() {
        assert!(matches!(
            qr_png("x", 0),
            Err(ReceiptError::ModuleSize { got: 0, .. })
        ));
        assert!(matches!(
            qr_png("x", 65),
            Err(ReceiptError::ModuleSize { got: 65, .. })
        ));
        assert!(qr_png("x", 1).is_ok());
    }

    #[test]
    fn too_long_is_an_error() {
        let long = "x".repeat(5000);
        assert!(matches!(qr_svg(&long), Err(ReceiptError::Qr(_))));
        assert!(matches!(qr_png(&long, 4), Err(ReceiptError::Qr(_))));
    }

    #[test]
    fn runs_cover_every_dark_module() {
        let m = matrix("https://example.invalid/pay/abc").unwrap();
        let from_runs: usize = m.dark_runs().iter().map(|r| r.2).sum();
        assert_eq!(from_runs, m.dark.iter().filter(|d| **d).count());
        // Finder pattern: the top-left 7×7 corner starts with a full dark row.
        assert!((0..7).all(|x| m.is_dark(x, 0)));
    }
}
