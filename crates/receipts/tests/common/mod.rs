//! Helpers shared by the receipt tests: finding the external checkers (poppler-utils,
//! zbar-tools), running them, and the folder where rendered pages are left for review.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// True when `tool` is an executable on PATH. Tests that need it print why they skip when it
/// is missing; scripts/setup.sh installs all of them (poppler-utils, zbar-tools).
pub fn have(tool: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| dir.join(tool).is_file())
}

/// Returns false (and says so on stderr) when any of `tools` is missing.
pub fn require(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !have(t)).collect();
    if missing.is_empty() {
        return true;
    }
    eprintln!(
        "SKIPPED {test}: {} not installed (apt-get install -y poppler-utils zbar-tools)",
        missing.join(", ")
    );
    false
}

/// `target/test-artifacts/`, created on demand: rendered receipts land here for people to
/// look at after a run.
pub fn artifacts() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp for integration tests.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|target| target.join("test-artifacts"))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("test-artifacts"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every symbol zbarimg decodes from an image file, as raw text.
pub fn zbar(image: &Path) -> Vec<String> {
    let out = Command::new("zbarimg")
        .args(["--raw", "-q"])
        .arg(image)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "zbarimg found no code in {}: {:?}",
        image.display(),
        out
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// `pdftotext -layout` of a PDF file, all pages.
pub fn pdftotext(pdf: &Path) -> String {
    let out = Command::new("pdftotext")
        .arg("-layout")
        .arg(pdf)
        .arg("-")
        .output()
        .unwrap();
    assert!(out.status.success(), "pdftotext failed: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Number of pages according to `pdfinfo` (poppler-utils).
pub fn page_count(pdf: &Path) -> usize {
    let out = Command::new("pdfinfo").arg(pdf).output().unwrap();
    assert!(out.status.success(), "pdfinfo failed: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("pdfinfo prints the page count")
}

/// Renders page 1 of `pdf` at 150 dpi to `<stem>.png` next to it and returns that path.
pub fn pdftoppm_page1(pdf: &Path, stem: &Path) -> PathBuf {
    let out = Command::new("pdftoppm")
        .args(["-png", "-r", "150", "-f", "1", "-l", "1", "-singlefile"])
        .arg(pdf)
        .arg(stem)
        .output()
        .unwrap();
    assert!(out.status.success(), "pdftoppm failed: {out:?}");
    stem.with_extension("png")
}
