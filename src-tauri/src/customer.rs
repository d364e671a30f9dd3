//! The customer display: a second window, on the second monitor, showing what the customer may
//! see — the agent's `?view=customer` page (the live cart, the total, the QR or the card checkout,
//! the outcome), never the journal or manager controls.
//!
//! Chosen in Settings (`display.customer` in the journal, `second_screen` by default, or `off`).
//! A task re-reads the setting and the monitors every two seconds and opens or closes the window,
//! so plugging in a screen or changing the setting needs no restart. The window covers the whole
//! monitor that the main window is not on, without decorations (a customer has nothing to move).

use std::time::Duration;
use tauri::{Manager, WebviewUrl, WebviewWindowBuilder};

/// The customer window's label.
pub const CUSTOMER_WINDOW: &str = "customer";

/// How often the setting and the monitors are looked at.
const FOLLOW_EVERY: Duration = Duration::from_secs(2);

/// Runs for the app's lifetime: keeps the customer window open exactly when it is wanted and a
/// second monitor exists.
pub async fn follow(app: tauri::AppHandle, agent: till_agent::Agent, agent_url: String) {
    loop {
        let wanted = match till_agent::api::display::current(&agent).await {
            Ok(choice) => choice != "off",
            Err(error) => {
                tracing::warn!(%error, "cannot read the customer display setting");
                false
            }
        };
        let target = if wanted { second_monitor(&app) } else { None };
        let open = app.get_webview_window(CUSTOMER_WINDOW);
        match (target, open) {
            (Some(monitor), None) => {
                if let Err(error) = open_window(&app, &agent_url, &monitor) {
                    tracing::warn!(error = format!("{error:#}"), "cannot open the customer display");
                }
            }
            (None, Some(window)) => {
                tracing::info!("closing the customer display");
                let _ = window.destroy();
            }
            _ => {}
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

/// A monitor other than the one the main window is on (the first monitor when that is unknown).
fn second_monitor(app: &tauri::AppHandle) -> Option<tauri::Monitor> {
    let monitors = app.available_monitors().ok()?;
    if monitors.len() < 2 {
        return None;
    }
    let main = app
        .get_webview_window(crate::MAIN_WINDOW)
        .and_then(|w| w.current_monitor().ok().flatten())
        .or_else(|| monitors.first().cloned())?;
    monitors.into_iter().find(|m| m.position() != main.position())
}

fn open_window(app: &tauri::AppHandle, agent_url: &str, monitor: &tauri::Monitor) -> anyhow::Result<()> {
    let url = format!("{}/?view=customer", agent_url.trim_end_matches('/')).parse()?;
    let scale = monitor.scale_factor();
    let (pos, size) = (monitor.position(), monitor.size());
    tracing::info!(monitor = monitor.name().map(String::as_str).unwrap_or("?"), "opening the customer display");
    WebviewWindowBuilder::new(app, CUSTOMER_WINDOW, WebviewUrl::External(url))
        .title("Till Agent — customer display")
        .initialization_script(crate::agent_url_script(agent_url))
        .decorations(false)
        .position(f64::from(pos.x) / scale, f64::from(pos.y) / scale)
        .inner_size(f64::from(size.width) / scale, f64::from(size.height) / scale)
        .focused(false)
        .build()?;
    Ok(())
}
