//! The tray icon: a way back to the window and a way to quit.
//!
//! On a till PC the window is often covered by the POS software; the tray keeps Till Agent one click
//! away. It is optional: where the desktop has no tray host the icon is simply not shown.

use anyhow::Context as _;
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem};
use tauri::tray::{MouseButton, MouseButtonState, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Runtime};

/// The 32x32 RGBA tray image (`icons/tray.png`), decoded at compile time so nothing can fail at
/// run time. The path is relative to this crate's directory.
const TRAY_ICON: Image<'static> = tauri::include_image!("../icons/tray.png");

/// Menu item id: show the main window.
const MENU_SHOW: &str = "show";
/// Menu item id: quit the app.
const MENU_QUIT: &str = "quit";

/// Creates the tray icon with its menu (Show Till Agent, Quit).
///
/// On Linux the tray needs the ayatana-appindicator library at run time, and its loader panics
/// rather than returning an error when the library is missing; that panic is caught here and turned
/// into an error so the app still starts without a tray.
pub fn install<R: Runtime>(app: &AppHandle<R>) -> anyhow::Result<()> {
    let build = || -> tauri::Result<()> {
        let show = MenuItem::with_id(app, MENU_SHOW, "Show Till Agent", true, None::<&str>)?;
        let quit = MenuItem::with_id(app, MENU_QUIT, "Quit", true, None::<&str>)?;
        let menu = Menu::with_items(app, &[&show, &quit])?;
        TrayIconBuilder::with_id("main")
            .icon(TRAY_ICON)
            .tooltip("Till Agent")
            .menu(&menu)
            .show_menu_on_left_click(false)
            .on_menu_event(|app, event| match event.id().as_ref() {
                MENU_SHOW => crate::show_main_window(app),
                MENU_QUIT => {
                    tracing::info!("quit chosen from the tray");
                    app.exit(0);
                }
                _ => {}
            })
            .on_tray_icon_event(|tray, event| {
                // A left click (where the platform reports one) brings the window back.
                if let TrayIconEvent::Click {
                    button: MouseButton::Left,
                    button_state: MouseButtonState::Up,
                    ..
                } = event
                {
                    crate::show_main_window(tray.app_handle());
                }
            })
            .build(app)?;
        Ok(())
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(build)) {
        Ok(result) => result.context("creating the tray icon"),
        Err(_) => {
            anyhow::bail!("tray support library (libayatana-appindicator3) could not be loaded")
        }
    }
}
