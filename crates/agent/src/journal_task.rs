//! Runs a synchronous journal call on tokio's blocking pool, so a slow disk (every commit is
//! fsynced) never stalls the async workers. One helper for the orchestrator and the outbox.

use crate::error::AgentError;
use till_journal::{Journal, JournalError};

/// Runs `f` with a clone of `journal` (a cheap handle) on the blocking pool.
pub async fn run<T, F>(journal: &Journal, f: F) -> Result<T, AgentError>
where
    T: Send + 'static,
    F: FnOnce(&Journal) -> Result<T, JournalError> + Send + 'static,
{
    let journal = journal.clone();
    tokio::task::spawn_blocking(move || f(&journal))
        .await
        .map_err(|e| AgentError::Internal(format!("journal task failed: {e}")))?
        .map_err(AgentError::from)
}
