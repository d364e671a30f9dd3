//! `till-desktop`: the desktop app of Till Agent.
//!
//! What it is for: the till PC's Till Agent with a face. It runs the agent service in-process —
//! the very library the headless `till-agent run` uses (`till_agent::start`, and
//! `till_agent::embedded::start` for `--sandbox`), on one tokio runtime shared with Tauri — and
//! shows the web UI (the repository's `ui/` folder, served by the agent) in a native window (Tauri 2:
//! WebKitGTK on Linux, WebView2 on Windows). A tray icon tells whether the till is paired and
//! online and how many operations are queued; closing the window hides it to the tray, a second
//! launch brings the running one to the front, and "Start at login" is a tray setting.
//!
//! What it is not: a second agent. It has no payment logic, no SQL and no SensePass calls of its
//! own; the page in the window talks to the agent over the same local HTTP API the POS uses, so the
//! UI behaves identically here and in a browser.
//!
//! Start-up order matters: the single-instance check runs first (while the app is built), so a
//! second launch never tries to open the journal or the port; then the agent starts and binds its
//! port; only then is the window created, with the agent's actual address injected into the page
//! as `window.TILL_AGENT_URL` (the address differs from `127.0.0.1:8003` under `--listen`).
//!
//! Configuration: the one `tauri.conf.json` at the repository root, read at compile time by
//! `build.rs` and by [`tauri::generate_context!`] below (see docs/DESKTOP.md).

// Release builds on Windows should not open a console window next to the app.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod cli;
mod customer;
mod status;
mod tray;
mod updates;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser as _;
use tauri::{Manager, RunEvent, WebviewWindowBuilder, WindowEvent};
use till_agent::config::Config;
use till_agent::RunningAgent;
use till_sandbox::SandboxHandle;

use crate::cli::Cli;

/// Label of the main window, as declared in `tauri.conf.json` (`app.windows[0].label`). The
/// configuration says `"create": false`: the window is built in [`setup`] once the agent's address
/// is known.
pub const MAIN_WINDOW: &str = "main";

/// Exit status when there is no graphical display (use the headless `till-agent` there).
const EXIT_NO_DISPLAY: u8 = 2;
/// Exit status when the agent cannot start (bad configuration, port taken, journal unreadable).
const EXIT_AGENT: u8 = 3;

/// How long Quit waits for the agent's tasks to stop before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The receipt printer's URL from --printer / TILL_AGENT_PRINTER, as `till-agent run` takes it.
    let config = match Config::load(cli.config.as_deref(), cli.overrides())
        .and_then(|c| c.with_printer_url(cli.printer.clone()))
    {
        Ok(config) => config,
        Err(error) => {
            // Logging is not set up yet (its directory comes from the configuration).
            eprintln!("till-desktop: {error}");
            return ExitCode::from(EXIT_AGENT);
        }
    };
    let _log_guard = init_logging(&config);
    if let Err(reason) = check_display() {
        tracing::error!("{reason}");
        return ExitCode::from(EXIT_NO_DISPLAY);
    }
    // Tauri's Linux backend panics (rather than returning an error) when GTK cannot start, e.g. a
    // DISPLAY pointing at a dead X server; turn that into a logged failure and a non-zero exit too.
    match std::panic::catch_unwind(move || run(cli, config)) {
        Ok(Ok(code)) => code,
        Ok(Err(Failure::Agent(error))) => {
            tracing::error!(error = format!("{error:#}"), "the agent could not start");
            ExitCode::from(EXIT_AGENT)
        }
        Ok(Err(Failure::Desktop(error))) => {
            tracing::error!(
                error = format!("{error:#}"),
                "till-desktop stopped with an error"
            );
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

/// Why [`run`] gave up, so `main` can pick the exit status.
enum Failure {
    /// The agent did not start: the window would show nothing useful.
    Agent(anyhow::Error),
    /// Tauri, the webview or the runtime failed.
    Desktop(anyhow::Error),
}

/// What the window and the tray need from start-up, kept as Tauri state for [`setup`].
struct Shell {
    /// The agent's local API, e.g. `http://127.0.0.1:8003`: injected into the page.
    agent_url: String,
    /// The in-process agent, for the tray's status lines.
    agent: till_agent::Agent,
    /// `--hidden`: start in the tray (honoured only when the tray exists).
    start_hidden: bool,
    /// Whether the tray icon was created; without it closing the window must quit the app.
    tray_installed: AtomicBool,
}

/// Builds the app, starts the agent, runs the window until Quit, then stops the agent.
fn run(cli: Cli, mut config: Config) -> Result<ExitCode, Failure> {
    // One multi-threaded tokio runtime for the agent and for Tauri's async tasks. Tauri must be
    // told before it creates its own.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("till-agent")
        .build()
        .context("starting the async runtime")
        .map_err(Failure::Desktop)?;
    tauri::async_runtime::set(runtime.handle().clone());

    let app = tauri::Builder::default()
        // First plugin: a second launch hands its arguments to this process and exits while the
        // app is being built, before it could touch the journal or the port.
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            tracing::info!("Till Agent was launched again: showing the running window");
            show_main_window(app);
        }))
        .plugin(
            tauri_plugin_autostart::Builder::new()
                .args(cli.autostart_args())
                .build(),
        )
        .plugin(tauri_plugin_updater::Builder::new().build())
        .setup(setup)
        .build(tauri::generate_context!("../tauri.conf.json"))
        .context("building the Tauri app")
        .map_err(Failure::Desktop)?;

    let (running, sandbox) = runtime
        .block_on(start_agent(&mut config, cli.sandbox, cli.autopilot_ms))
        .map_err(Failure::Agent)?;
    let agent_url = format!("http://{}", running.addr);
    // The same machine-readable line as `till-agent run`, for scripts and tests.
    println!("till-agent listening on {agent_url}");
    if let Some(sandbox) = &sandbox {
        println!("sandbox SensePass API: {}", sandbox.api_base());
        println!("sandbox control API:   {}", sandbox.control_url());
        println!("try: curl -s -X POST {agent_url}/api/transactions/init -H 'Content-Type: application/json' \\");
        println!("       -d '{{\"amount\":1250,\"currency\":\"USD\",\"posData\":{{\"orderId\":\"A-1\"}}}}'");
        println!("the payment appears in the window; open its transactionPage.qrURL in a browser and pay with 4111111111111111");
    }
    app.manage(Shell {
        agent_url,
        agent: running.agent.clone(),
        start_hidden: cli.hidden,
        tray_installed: AtomicBool::new(false),
    });

    // SIGINT/SIGTERM (or the agent stopping by itself) end the app like Quit does, so the agent
    // below is always shut down cleanly.
    let stopper = runtime.spawn({
        let app = app.handle().clone();
        let agent_stopped = running.agent.shutdown_token().clone();
        async move {
            tokio::select! {
                _ = shutdown_signal() => tracing::info!("stop signal received"),
                _ = agent_stopped.cancelled() => tracing::info!("the agent stopped"),
            }
            app.exit(0);
        }
    });

    let code = app.run_return(on_event);
    stopper.abort();

    tracing::info!("stopping the agent");
    runtime.block_on(async {
        let stop = async {
            running.shutdown().await;
            if let Some(sandbox) = sandbox {
                sandbox.shutdown().await;
            }
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, stop).await.is_err() {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "the agent did not stop in time; exiting anyway");
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    tracing::info!(code, "Till Agent desktop stopped");
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// Starts the embedded sandbox (with `--sandbox`) and the agent: the same two calls, in the same
/// order, as `till-agent run`.
async fn start_agent(
    config: &mut Config,
    sandbox: bool,
    autopilot_ms: Option<u64>,
) -> anyhow::Result<(RunningAgent, Option<SandboxHandle>)> {
    let sandbox = if sandbox {
        Some(till_agent::embedded::start(config, autopilot_ms).await?)
    } else {
        None
    };
    match till_agent::start(config.clone()).await {
        Ok(running) => Ok((running, sandbox)),
        Err(error) => {
            if let Some(sandbox) = sandbox {
                sandbox.shutdown().await;
            }
            Err(error.into())
        }
    }
}

/// Runs once the event loop is up: the tray, then the main window pointed at the agent.
///
/// Failures are handled here rather than returned: Tauri panics on a setup error, inside the GUI
/// toolkit's loop. Without a window the app is useless, so that failure exits with status 1.
fn setup(app: &mut tauri::App) -> Result<(), Box<dyn std::error::Error>> {
    let shell = app.state::<Shell>();
    let tray = match tray::install(app.handle()) {
        Ok(tray) => Some(tray),
        Err(error) => {
            tracing::warn!(
                error = format!("{error:#}"),
                "tray icon unavailable; closing the window will quit Till Agent"
            );
            None
        }
    };
    shell.tray_installed.store(tray.is_some(), Ordering::SeqCst);
    let hidden = shell.start_hidden && tray.is_some() && tray::host_present();
    if shell.start_hidden && !hidden {
        tracing::info!("no tray to start hidden in: showing the window");
    }
    if let Some(tray) = tray {
        tauri::async_runtime::spawn(tray::follow(tray, shell.agent.clone()));
    }
    // The customer display on a second monitor, when Settings want it and one exists.
    tauri::async_runtime::spawn(customer::follow(app.handle().clone(), shell.agent.clone(), shell.agent_url.clone()));
    tauri::async_runtime::spawn(updates::follow(app.handle().clone(), shell.agent.clone()));
    if let Err(error) = open_main_window(app, &shell.agent_url, hidden) {
        tracing::error!(error = format!("{error:#}"), "cannot open the main window");
        app.handle().exit(1);
        return Ok(());
    }
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        agent = %shell.agent_url,
        hidden,
        "Till Agent desktop started"
    );
    Ok(())
}

/// Creates the main window from its `tauri.conf.json` entry, showing the UI the agent serves at
/// its own address. Served from there, the page is same-origin with the API: its images, receipt
/// frames and downloads pass the agent's Sec-Fetch-Site check like those of a browser tab on the
/// agent, and the webview gets no Tauri IPC (the page calls none; see src-tauri/capabilities/).
fn open_main_window(app: &tauri::App, agent_url: &str, hidden: bool) -> anyhow::Result<()> {
    let mut config = app
        .config()
        .app
        .windows
        .iter()
        .find(|w| w.label == MAIN_WINDOW)
        .cloned()
        .with_context(|| format!("no window labelled `{MAIN_WINDOW}` in tauri.conf.json"))?;
    config.url = tauri::WebviewUrl::External(
        format!("{}/", agent_url.trim_end_matches('/'))
            .parse()
            .with_context(|| format!("the agent's address `{agent_url}` is not a URL"))?,
    );
    let visible = config.visible && !hidden;
    WebviewWindowBuilder::from_config(app.handle(), &config)?
        .initialization_script(agent_url_script(agent_url))
        .visible(visible)
        .build()?;
    Ok(())
}

/// The page script that tells the UI where the agent listens: `window.TILL_AGENT_URL`, read-only.
/// It runs before the page's own scripts on every load of the main frame.
pub(crate) fn agent_url_script(agent_url: &str) -> String {
    // A JSON string is a valid JavaScript string literal, quotes and backslashes escaped.
    let literal = serde_json::Value::String(agent_url.to_string()).to_string();
    format!(
        "try {{ Object.defineProperty(window, \"TILL_AGENT_URL\", \
         {{ value: {literal}, enumerable: true }}); }} catch (_) {{}}"
    )
}

/// Window and app events: closing the window hides it to the tray (when there is one).
fn on_event(app: &tauri::AppHandle, event: RunEvent) {
    if let RunEvent::WindowEvent {
        label,
        event: WindowEvent::CloseRequested { api, .. },
        ..
    } = event
    {
        if label != MAIN_WINDOW {
            return;
        }
        // Asked at every close: a tray host may have started (or stopped) since the app did.
        let tray = app
            .try_state::<Shell>()
            .is_some_and(|shell| shell.tray_installed.load(Ordering::SeqCst))
            && tray::host_present();
        if !tray {
            tracing::info!("window closed and no tray to hide it in: quitting");
            // The customer display alone must not keep the app running.
            if let Some(customer) = app.get_webview_window(customer::CUSTOMER_WINDOW) {
                let _ = customer.destroy();
            }
            return;
        }
        api.prevent_close();
        if let Some(window) = app.get_webview_window(MAIN_WINDOW) {
            if let Err(error) = window.hide() {
                tracing::warn!(%error, "could not hide the window");
            }
        }
        tracing::info!("window hidden; Till Agent keeps running in the tray");
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
             on a machine without a desktop run the headless `till-agent run` instead",
        )
    }
}

/// Windows and macOS always have a window system for a logged-in user.
#[cfg(not(all(unix, not(target_os = "macos"))))]
fn check_display() -> Result<(), &'static str> {
    Ok(())
}

/// Resolves on Ctrl-C, or SIGTERM on Unix (a service manager or `kill` stopping the app).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Logs as `till-agent run` writes them: human-readable to stderr and rotated daily JSON files in
/// `<data-dir>/logs` (the base data directory, also under `--sandbox`), filtered by
/// `TILL_AGENT_LOG` (or `RUST_LOG`; default `info`). Returns the guard that flushes the file
/// writer on drop; without a writable log directory only stderr is used.
fn init_logging(config: &Config) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::EnvFilter;
    let filter = || {
        EnvFilter::try_from_env("TILL_AGENT_LOG")
            .or_else(|_| EnvFilter::try_from_default_env())
            .unwrap_or_else(|_| EnvFilter::new("info"))
    };
    // Colours only for a person at a terminal, not in a script's or a service manager's log file.
    let stderr = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .with_filter(filter());
    let dir = config.log_dir();
    if let Err(error) = std::fs::create_dir_all(&dir) {
        // `try_init` only fails if a global subscriber is already set; logging then goes there.
        let _ = tracing_subscriber::registry().with(stderr).try_init();
        tracing::warn!(%error, dir = %dir.display(), "no log files: cannot create the log directory");
        return None;
    }
    let appender = tracing_appender::rolling::daily(&dir, "till-agent.json");
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let files = tracing_subscriber::fmt::layer()
        .json()
        .with_writer(writer)
        .with_filter(filter());
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(files)
        .try_init();
    Some(guard)
}

/// Brings the main window back to the front (from the tray, a second launch, or when it was
/// minimised).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_injected_script_names_the_agent_and_escapes_it() {
        let script = agent_url_script("http://127.0.0.1:8123");
        assert!(script.contains("\"TILL_AGENT_URL\""), "{script}");
        assert!(
            script.contains("value: \"http://127.0.0.1:8123\""),
            "{script}"
        );
        let odd = agent_url_script("http://x/\"</script>\\");
        assert!(odd.contains(r#"value: "http://x/\"</script>\\""#), "{odd}");
    }
}
