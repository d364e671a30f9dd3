//! Starting and stopping the whole agent: journal, background workers, local API.
//!
//! Used by the `till-agent run` command and by the desktop shell, so there is one
//! implementation of "the agent" whichever way it is started.

use crate::config::Config;
use crate::service::Agent;
use std::net::SocketAddr;
use till_journal::Journal;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running agent: its address, the service, and its tasks.
pub struct RunningAgent {
    /// Where the local API listens (the real port when 0 was asked for).
    pub addr: SocketAddr,
    /// The service, for in-process callers (the desktop shell).
    pub agent: Agent,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// Errors starting the agent.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be created.
    #[error("cannot create data directory {0}: {1}")]
    DataDir(std::path::PathBuf, std::io::Error),
    /// The journal could not be opened.
    #[error("cannot open the journal: {0}")]
    Journal(#[from] till_journal::JournalError),
    /// The agent could not be built.
    #[error("{0}")]
    Agent(#[from] crate::error::AgentError),
    /// The listen address is taken or not allowed.
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
}

/// Opens the journal, starts the workers and serves the local API.
pub async fn start(config: Config) -> Result<RunningAgent, StartError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| StartError::DataDir(config.data_dir.clone(), e))?;
    crate::api::server::raise_fd_limit();
    let journal = Journal::open(config.journal_path())?;
    let shutdown = CancellationToken::new();
    let agent = Agent::new(config.clone(), journal, shutdown.clone())?;
    // Wrong-PIN count and lock survive restarts.
    if let Some(text) = agent.journal(|j| j.setting(crate::manager::FAILURES_SETTING)).await? {
        agent.manager().restore(crate::manager::Failures::from_setting(&text));
    }
    // Printer settings a manager saved in Settings override the configuration file's.
    crate::printer::load_saved(&agent).await?;
    if config.waive_pos_token {
        tracing::warn!("POS token WAIVED: refunds and cancels of approved payments are accepted without a token");
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| StartError::Listen(config.listen, e))?;
    let addr = listener.local_addr().map_err(|e| StartError::Listen(config.listen, e))?;

    agent.set_bound_addr(addr);
    let mut tasks = Vec::new();
    // Recovery first: new payments are refused (503 recovering) until it is done.
    tasks.push(tokio::spawn({
        let agent = agent.clone();
        async move { agent.recover().await }
    }));
    tasks.push(tokio::spawn(crate::live::run(agent.clone())));
    tasks.push(tokio::spawn(crate::outbox::run(agent.clone())));
    // Gateway payments (Connect-E): poll open ones, deliver due collections / refunds / voids.
    tasks.push(tokio::spawn(crate::tender::run(agent.clone())));
    tasks.push(tokio::spawn(crate::printer::run(agent.clone())));
    // Journal replication to the fleet server, when this journal is enrolled (own connection).
    tasks.push(tokio::spawn(crate::fleet::run(config.clone(), shutdown.clone())));
    // Provider webhooks the fleet received for this till, looked up at the provider.
    tasks.push(tokio::spawn(crate::relay::run(agent.clone())));
    let router = crate::api::router(agent.clone(), addr);
    tasks.push(tokio::spawn(crate::api::server::serve(listener, router, shutdown.clone())));
    tracing::info!(%addr, "till-agent listening");
    Ok(RunningAgent { addr, agent, shutdown, tasks })
}

impl RunningAgent {
    /// Stops every task and waits for them.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }

    /// Resolves when the agent was asked to stop.
    pub async fn stopped(&self) {
        self.shutdown.cancelled().await
    }
}
