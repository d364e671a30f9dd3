//! The tray icon: the agent's state at a glance, a way back to the window, "Start at login", Quit.
//!
//! On a till PC the window is usually hidden behind the POS software (closing it only hides it,
//! see `main.rs`), so the tray is where Till Agent lives. Its menu reads:
//!
//! ```text
//! Online · Front till (sandbox)      (disabled: state and paired till)
//! No queued operations               (disabled: refunds / payment commits waiting to be sent)
//! Printer: ready                     (disabled: the receipt printer, as health words it)
//! ──────────────
//! Show Till Agent
//! ☐ Start at login
//! ──────────────
//! Quit
//! ```
//!
//! The three status lines and the tooltip follow the agent's event bus (status, connectivity and
//! outbox events) and are refreshed every few seconds besides, because some changes (an offline
//! period growing longer, a pairing made by `till-agent pair` from a terminal, the printer
//! running out of paper) publish no event.
//!
//! The tray is optional: where the icon cannot be created, or nothing on the desktop would show it
//! ([`host_present`]), closing the window quits the app instead of hiding it.

use crate::status::TrayStatus;
use anyhow::Context as _;
use std::time::Duration;
use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{MouseButton, MouseButtonState, TrayIcon, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Manager, Runtime};
use tauri_plugin_autostart::AutoLaunchManager;
use till_agent::Agent;
use tokio::sync::broadcast::error::RecvError;

/// The 32x32 RGBA tray image (`icons/tray.png`), decoded at compile time so nothing can fail at
/// run time. The path is relative to this crate's directory.
const TRAY_ICON: Image<'static> = tauri::include_image!("../icons/tray.png");

/// Id of the tray icon (one per app).
pub const TRAY_ID: &str = "main";
/// Menu item id: show the main window.
const MENU_SHOW: &str = "show";
/// Menu item id: the "Start at login" checkbox.
const MENU_AUTOSTART: &str = "autostart";
/// Menu item id: quit the app.
const MENU_QUIT: &str = "quit";
/// Menu item ids of the three disabled status lines.
const MENU_STATUS: &str = "status";
const MENU_QUEUED: &str = "queued";
const MENU_PRINTER: &str = "printer";

/// How often the tray re-reads the agent even without events.
const REFRESH: Duration = Duration::from_secs(3);

/// The parts of the tray that change after start-up. Cheap to clone; every method may be called
/// from any thread (Tauri forwards menu and tray changes to the main thread).
#[derive(Clone)]
pub struct Tray<R: Runtime> {
    icon: TrayIcon<R>,
    status: MenuItem<R>,
    queued: MenuItem<R>,
    printer: MenuItem<R>,
}

/// Creates the tray icon with its menu.
///
/// On Linux the tray needs the ayatana-appindicator library at run time, and its loader panics
/// rather than returning an error when the library is missing; that panic is caught here and turned
/// into an error so the app still starts without a tray.
pub fn install<R: Runtime>(app: &AppHandle<R>) -> anyhow::Result<Tray<R>> {
    let build = || -> tauri::Result<Tray<R>> {
        let status = MenuItem::with_id(app, MENU_STATUS, "Starting…", false, None::<&str>)?;
        let queued = MenuItem::with_id(
            app,
            MENU_QUEUED,
            "No queued operations",
            false,
            None::<&str>,
        )?;
        let printer = MenuItem::with_id(app, MENU_PRINTER, "No printer", false, None::<&str>)?;
        let show = MenuItem::with_id(app, MENU_SHOW, "Show Till Agent", true, None::<&str>)?;
        let autostart = CheckMenuItem::with_id(
            app,
            MENU_AUTOSTART,
            "Start at login",
            true,
            autostart_enabled(app),
            None::<&str>,
        )?;
        let quit = MenuItem::with_id(app, MENU_QUIT, "Quit", true, None::<&str>)?;
        let menu = Menu::with_items(
            app,
            &[
                &status,
                &queued,
                &printer,
                &PredefinedMenuItem::separator(app)?,
                &show,
                &autostart,
                &PredefinedMenuItem::separator(app)?,
                &quit,
            ],
        )?;
        let icon = TrayIconBuilder::with_id(TRAY_ID)
            .icon(TRAY_ICON)
            .tooltip("Till Agent")
            .menu(&menu)
            .show_menu_on_left_click(false)
            .on_menu_event(move |app, event| match event.id().as_ref() {
                MENU_SHOW => crate::show_main_window(app),
                MENU_AUTOSTART => toggle_autostart(app, &autostart),
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
        Ok(Tray {
            icon,
            status,
            queued,
            printer,
        })
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(build)) {
        Ok(result) => result.context("creating the tray icon"),
        Err(_) => {
            anyhow::bail!("tray support library (libayatana-appindicator3) could not be loaded")
        }
    }
}

impl<R: Runtime> Tray<R> {
    /// Shows `status` in the menu's three status lines and the tooltip.
    pub fn show(&self, status: &TrayStatus, now_ms: i64) {
        let results = [
            self.status.set_text(status.status_line(now_ms)),
            self.queued.set_text(status.queued_line()),
            self.printer.set_text(status.printer_line()),
            self.icon.set_tooltip(Some(status.tooltip(now_ms))),
        ];
        for result in results {
            if let Err(error) = result {
                tracing::debug!(%error, "could not update the tray");
            }
        }
    }
}

/// Keeps the tray in step with the agent until the agent shuts down: on every bus event (a payment
/// status, a connectivity change, an outbox operation) and every [`REFRESH`].
pub async fn follow<R: Runtime>(tray: Tray<R>, agent: Agent) {
    let mut events = agent.bus().subscribe();
    let mut bus_open = true;
    let shutdown = agent.shutdown_token().clone();
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shown: Option<(TrayStatus, i64)> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
            event = events.recv(), if bus_open => match event {
                // A lagged receiver missed events: reading the state now catches up anyway.
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => bus_open = false,
            },
        }
        match TrayStatus::read(&agent).await {
            Ok(status) => {
                let now = till_journal::now_ms();
                // Menu text changes cost a round trip to the main thread: skip identical ones
                // (the offline minutes are the only text that changes with time alone).
                let minute = now / 60_000;
                if shown.as_ref() != Some(&(status.clone(), minute)) {
                    tray.show(&status, now);
                    shown = Some((status, minute));
                }
            }
            Err(error) => tracing::debug!(%error, "could not read the agent's state for the tray"),
        }
    }
}

/// Whether the desktop would show the tray icon, i.e. whether the window can be hidden safely.
///
/// Creating the icon succeeds even where nothing displays it (GNOME without the AppIndicator
/// extension, a bare X server): hiding the window there would leave Till Agent unreachable. On
/// Linux the icon is shown by a StatusNotifier host, which owns `org.kde.StatusNotifierWatcher` on
/// the session bus; the check asks the bus (at most one second). Older XEmbed-only trays are not
/// detected: there closing the window quits, the safe side. Windows and macOS always show it.
#[cfg(target_os = "linux")]
pub fn host_present() -> bool {
    fn watcher_running() -> zbus::Result<bool> {
        let connection = zbus::blocking::Connection::session()?;
        let bus = zbus::blocking::fdo::DBusProxy::new(&connection)?;
        let name = zbus::names::BusName::try_from("org.kde.StatusNotifierWatcher")?;
        Ok(bus.name_has_owner(name)?)
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(watcher_running());
    });
    match rx.recv_timeout(Duration::from_secs(1)) {
        Ok(Ok(present)) => present,
        Ok(Err(error)) => {
            tracing::debug!(%error, "cannot ask the session bus for a tray host");
            false
        }
        Err(_) => {
            tracing::debug!("the session bus did not answer in time");
            false
        }
    }
}

/// Windows and macOS always show tray (menu bar) icons.
#[cfg(not(target_os = "linux"))]
pub fn host_present() -> bool {
    true
}

/// Whether "Start at login" is on, asked of the OS's autostart entry itself, so the checkbox
/// shows the truth even when the entry was removed by hand.
fn autostart_enabled<R: Runtime>(app: &AppHandle<R>) -> bool {
    let Some(manager) = app.try_state::<AutoLaunchManager>() else {
        return false;
    };
    match manager.is_enabled() {
        Ok(enabled) => enabled,
        Err(error) => {
            tracing::warn!(%error, "cannot read the start-at-login setting");
            false
        }
    }
}

/// Flips "Start at login" and makes the checkbox show what the OS now has (the menu toggles the
/// check mark by itself on click, before we know whether the change worked).
fn toggle_autostart<R: Runtime>(app: &AppHandle<R>, item: &CheckMenuItem<R>) {
    let Some(manager) = app.try_state::<AutoLaunchManager>() else {
        tracing::warn!("start at login is not available on this system");
        let _ = item.set_checked(false);
        return;
    };
    let want = !autostart_enabled(app);
    let result = if want {
        manager.enable()
    } else {
        manager.disable()
    };
    match result {
        Ok(()) => tracing::info!(enabled = want, "start at login changed"),
        Err(error) => tracing::warn!(%error, enabled = want, "could not change start at login"),
    }
    if let Err(error) = item.set_checked(autostart_enabled(app)) {
        tracing::debug!(%error, "could not update the start-at-login check mark");
    }
}
