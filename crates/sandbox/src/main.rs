//! `till-sandbox`: runs the SensePass (and Connect-E) simulator until Ctrl-C (or SIGTERM).
//!
//! Prints the REST base, Socket.IO URL, control URL and API key as `key=value` lines on stdout
//! (easy for scripts and tests to read); logs go to stderr (`RUST_LOG` adjusts the level).

use anyhow::Context;
use clap::Parser;
use std::io::Write;
use std::net::SocketAddr;
use till_sandbox::{start, SandboxConfig};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(name = "till-sandbox", version, about = "A SensePass simulator for local development and tests")]
struct Args {
    /// Main API address: REST (/api/), Socket.IO and payment pages. Port 0 = any free port.
    #[arg(long, env = "TILL_SANDBOX_LISTEN", default_value = "127.0.0.1:8700")]
    listen: SocketAddr,
    /// Control API address (/_sandbox). Defaults to the main port + 1 (or any free port when the
    /// main port is 0).
    #[arg(long, env = "TILL_SANDBOX_CONTROL_LISTEN")]
    control_listen: Option<SocketAddr>,
    /// Base URL put into payment links (qrURL, commitLink); defaults to http://<listen>.
    #[arg(long, env = "TILL_SANDBOX_PUBLIC_URL")]
    public_url: Option<String>,
    /// Connect-E simulator address (REST /v1/, client.js). Defaults to the main port + 2 (or any
    /// free port when the main port is 0).
    #[arg(long, env = "TILL_SANDBOX_CONNECT_E_LISTEN")]
    connect_e_listen: Option<SocketAddr>,
    /// Keep devices, transactions and refunds in this JSON file across restarts.
    #[arg(long, env = "TILL_SANDBOX_STATE_FILE")]
    state_file: Option<std::path::PathBuf>,
    /// Acquired simulator API address (/v1/login, /v1/payment-sessions, …). Defaults to the main
    /// port + 3 (or any free port when the main port is 0).
    #[arg(long, env = "TILL_SANDBOX_ACQUIRED_LISTEN")]
    acquired_listen: Option<SocketAddr>,
    /// Acquired Components host address (acquired.js, card entry, 3-D Secure emulator). Defaults
    /// to the main port + 4 (or any free port when the main port is 0).
    #[arg(long, env = "TILL_SANDBOX_ACQUIRED_COMPONENTS_LISTEN")]
    acquired_components_listen: Option<SocketAddr>,
    /// FlexFactor simulator address (REST /v1/). Defaults to the main port + 5 (or any free
    /// port when the main port is 0).
    #[arg(long, env = "TILL_SANDBOX_FLEXFACTOR_LISTEN")]
    flexfactor_listen: Option<SocketAddr>,
    /// Pay every new transaction automatically after this many milliseconds.
    #[arg(long)]
    autopilot_ms: Option<u64>,
    /// Test card the autopilot pays with.
    #[arg(long, default_value = "4111111111111111")]
    autopilot_card: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let control_listen = args.control_listen.unwrap_or_else(|| {
        let port = if args.listen.port() == 0 { 0 } else { args.listen.port().saturating_add(1) };
        SocketAddr::new(args.listen.ip(), port)
    });
    let connect_e_listen = args.connect_e_listen.unwrap_or_else(|| {
        let port = if args.listen.port() == 0 { 0 } else { args.listen.port().saturating_add(2) };
        SocketAddr::new(args.listen.ip(), port)
    });
    let offset = |given: Option<SocketAddr>, by: u16| {
        given.unwrap_or_else(|| {
            let port = if args.listen.port() == 0 { 0 } else { args.listen.port().saturating_add(by) };
            SocketAddr::new(args.listen.ip(), port)
        })
    };
    let acquired_listen = offset(args.acquired_listen, 3);
    let acquired_components_listen = offset(args.acquired_components_listen, 4);
    let flexfactor_listen = offset(args.flexfactor_listen, 5);
    let config = SandboxConfig {
        listen: args.listen,
        control_listen,
        public_url: args.public_url,
        connect_e_listen,
        state_file: args.state_file,
        acquired_listen,
        acquired_components_listen,
        flexfactor_listen,
    };
    let sandbox = start(config).await.context("starting the sandbox")?;
    if let Some(ms) = args.autopilot_ms {
        sandbox
            .set_autopilot(Some((ms, &args.autopilot_card)))
            .context("configuring the autopilot")?;
        tracing::info!("autopilot pays every new transaction after {ms} ms");
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "api_base={}", sandbox.api_base())?;
        writeln!(out, "socket_url={}", sandbox.socket_url())?;
        writeln!(out, "control_url={}", sandbox.control_url())?;
        writeln!(out, "api_key={}", sandbox.api_key())?;
        writeln!(out, "connect_e_url={}", sandbox.connect_e_url())?;
        writeln!(out, "connect_e_control_url={}", sandbox.connect_e_control_url())?;
        writeln!(out, "connect_e_api_key={}", sandbox.connect_e_api_key())?;
        writeln!(out, "connect_e_merchant_url={}", sandbox.connect_e_merchant_url())?;
        writeln!(out, "acquired_url={}", sandbox.acquired_url())?;
        writeln!(out, "acquired_components_url={}", sandbox.acquired_components_url())?;
        writeln!(out, "acquired_control_url={}", sandbox.acquired_control_url())?;
        writeln!(out, "acquired_app_id={}", sandbox.acquired_app_id())?;
        writeln!(out, "acquired_app_key={}", sandbox.acquired_app_key())?;
        writeln!(out, "flexfactor_url={}", sandbox.flexfactor_url())?;
        writeln!(out, "flexfactor_control_url={}", sandbox.flexfactor_control_url())?;
        writeln!(out, "flexfactor_app_key={}", till_sandbox::FLEXFACTOR_APP_KEY)?;
        writeln!(out, "flexfactor_mid={}", till_sandbox::FLEXFACTOR_MID)?;
        writeln!(out, "flexfactor_site_id={}", till_sandbox::FLEXFACTOR_SITE_ID)?;
        out.flush()?;
    }
    wait_for_signal().await;
    tracing::info!("stopping");
    sandbox.shutdown().await;
    Ok(())
}

/// Resolves on Ctrl-C, or SIGTERM on Unix.
async fn wait_for_signal() {
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
