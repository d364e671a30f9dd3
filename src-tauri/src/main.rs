//! `till-desktop`: the desktop shell of Till Agent.
//!
//! What it is for: a native window (Tauri 2, WebKitGTK on Linux, WebView2 on Windows) that shows the
//! static web UI from the repository's `ui/` folder, plus a tray icon, so a cashier or store manager
//! has an app to open on the till PC.
//!
//! What it is not: the agent. Payments, the journal, the local HTTP API on `127.0.0.1:8003` and the
//! SensePass connection all live in the headless `till-agent` library (`crates/agent`), which runs and
//! is tested without a display. The shell stays thin on purpose: a later step starts that service
//! in-process from here (sharing one tokio runtime with Tauri); until then the page talks to a
//! separately started agent over the same HTTP API the POS uses, exactly as it would in a browser.
//!
//! Configuration: the one `tauri.conf.json` at the repository root, read at compile time by
//! `build.rs` and by [`tauri::generate_context!`] below (see docs/DESKTOP.md).

// Release builds on Windows should not open a console window next to the app.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod tray;

use std::process::ExitCode;

use tauri::Manager;
use tracing_subscriber::EnvFilter;

/// Label of the main window, as declared in `tauri.conf.json` (`app.windows[0].label`).
pub const MAIN_WINDOW: &str = "main";

fn main() -> ExitCode {
    init_logging();
    if let Err(reason) = check_display() {
        tracing::error!("{reason}");
        return ExitCode::from(2);
    }
    // Tauri's Linux backend panics (rather than returning an error) when GTK cannot start, e.g. a
    // DISPLAY pointing at a dead X server; turn that into a logged failure and a non-zero exit too.
    match std::panic::catch_unwind(run) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(error)) => {
            tracing::error!(%error, "till-desktop stopped with an error");
            ExitCode::FAILURE
        }
        Err(payload) => {
            let reason = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            tracing::error!(%reason, "till-desktop stopped on a panic (usually: GTK could not start)");
            ExitCode::FAILURE
        }
    }
}

/// On Linux and the BSDs the window needs an X11 or Wayland display. Without one GTK cannot start,
/// so say so plainly instead of failing deep inside the toolkit.
#[cfg(all(unix, not(target_os = "macos")))]
fn check_display() -> Result<(), &'static str> {
    let set = |name: &str| std::env::var_os(name).is_some_and(|value| !value.is_empty());
    if set("DISPLAY") || set("WAYLAND_DISPLAY") {
        Ok(())
    } else {
        Err(
            "no graphical display (DISPLAY and WAYLAND_DISPLAY are unset); \
             on a machine without a desktop run the headless `till-agent` instead",
        )
    }
}

/// Windows and macOS always have a window system for a logged-in user.
#[cfg(not(all(unix, not(target_os = "macos"))))]
fn check_display() -> Result<(), &'static str> {
    Ok(())
}

/// Human-readable logs to stderr, filtered by `RUST_LOG` (default `info`), so a failure to open the
/// window or the webview is visible when the app is started from a terminal or a script.
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // `try_init` only fails if a global subscriber is already set; logging then goes there.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Builds and runs the Tauri application until the last window closes or the tray's Quit is chosen.
///
/// Returns Tauri's error (no display, webview cannot start, …) instead of panicking, so `main` can
/// log it and exit non-zero.
fn run() -> Result<(), tauri::Error> {
    tauri::Builder::default()
        .setup(|app| {
            // The tray is a convenience; the window works without it, so a failure is only logged.
            if let Err(error) = tray::install(app.handle()) {
                tracing::warn!(error = format!("{error:#}"), "tray icon unavailable");
            }
            if app.get_webview_window(MAIN_WINDOW).is_none() {
                tracing::warn!(
                    label = MAIN_WINDOW,
                    "main window missing from tauri.conf.json"
                );
            }
            tracing::info!(
                version = env!("CARGO_PKG_VERSION"),
                "Till Agent desktop started"
            );
            Ok(())
        })
        .run(tauri::generate_context!("../tauri.conf.json"))
}

/// Brings the main window back to the front (from the tray, or when it was minimised).
///
/// Errors are logged, not returned: there is nothing better to do with them in a menu callback.
pub fn show_main_window<R: tauri::Runtime>(app: &tauri::AppHandle<R>) {
    let Some(window) = app.get_webview_window(MAIN_WINDOW) else {
        tracing::warn!(label = MAIN_WINDOW, "no main window to show");
        return;
    };
    let shown = window
        .unminimize()
        .and_then(|()| window.show())
        .and_then(|()| window.set_focus());
    if let Err(error) = shown {
        tracing::warn!(%error, "could not bring the main window to the front");
    }
}
