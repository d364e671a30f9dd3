//! Build script of the desktop shell.
//!
//! Tauri's configuration lives at the repository root (`../tauri.conf.json`), not beside this crate,
//! so `tauri-build` is pointed at it explicitly. Every relative path inside that file
//! (`build.frontendDist = "ui"`, `bundle.icon = ["icons/…"]`) then resolves against the repository
//! root, where `ui/` and `icons/` live. `src/main.rs` passes the same path to
//! `tauri::generate_context!`; the two must stay in step (see docs/DESKTOP.md).

use std::process::ExitCode;

/// The one Tauri configuration the build uses, relative to this crate's directory.
const CONFIG_PATH: &str = "../tauri.conf.json";

fn main() -> ExitCode {
    // The web UI and the icons are embedded into the binary at compile time; a change to either
    // must rebuild it. Cargo scans these directories recursively.
    println!("cargo:rerun-if-changed={CONFIG_PATH}");
    println!("cargo:rerun-if-changed=../ui");
    println!("cargo:rerun-if-changed=../icons");

    let attributes = tauri_build::Attributes::new().config_path(CONFIG_PATH);
    match tauri_build::try_build(attributes) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Cargo shows a build script's stderr when it fails; `{:#}` keeps anyhow's context chain.
            eprintln!(
                "till-desktop: tauri-build failed for {CONFIG_PATH} (relative to {}): {error:#}",
                env!("CARGO_MANIFEST_DIR")
            );
            ExitCode::FAILURE
        }
    }
}
