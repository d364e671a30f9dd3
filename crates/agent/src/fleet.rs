//! The till's side of the fleet server: enrolment (`till-agent enrol`) and replication of the
//! journal's change feed.
//!
//! Replication runs as its own task on its own journal connection, reading committed changes
//! only: a payment never waits for it, and a fleet that is down, slow or unreachable only makes
//! the till fall behind ("fleet: n changes behind" in health), never stop selling. It ships at
//! most [`BATCH`] changes at a time (bounded memory), resumes from the fleet's cursor after any
//! restart or refusal, and records the acknowledged sequence number in the journal so health can
//! say how far behind it is while the fleet is unreachable. The contract with the fleet (gaps
//! and replays refused) is in `till-fleet-protocol`.
//!
//! The identity lives in `fleet.json` beside the journal it replicates (so a sandbox journal
//! and a production journal are never shipped under one identity), mode 0600 like the POS
//! token: it holds the till's secret.

use crate::config::Config;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use till_fleet_protocol as proto;
use till_journal::{Change, ChangeRow, ChangeTable, GatewayOpRecord, GatewayPaymentRecord, Journal, Operation, PaymentRecord};
use tokio_util::sync::CancellationToken;

/// Most changes per batch.
pub const BATCH: usize = 500;
/// How often an idle till looks for new changes.
const IDLE: Duration = Duration::from_millis(500);
/// How often an idle till tells the fleet it is alive.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// Longest wait between attempts while the fleet is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Acknowledged feed entries deleted per pass.
const PRUNE: usize = 5000;

/// The file name of the identity, in the journal's directory.
pub const IDENTITY_FILE: &str = "fleet.json";

/// Errors of enrolment and replication.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The fleet could not be reached or answered garbage.
    #[error("fleet unreachable: {0}")]
    Http(#[from] reqwest::Error),
    /// The fleet refused (enrolment code, credentials, revoked).
    #[error("fleet refused: {status} {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The fleet's message.
        message: String,
    },
    /// The identity file could not be read or written.
    #[error("identity file {0}: {1}")]
    File(PathBuf, String),
    /// The journal failed.
    #[error("journal: {0}")]
    Journal(#[from] till_journal::JournalError),
    /// A blocking task failed.
    #[error("task: {0}")]
    Task(String),
}

/// Who this till is at the fleet.
#[derive(Clone, Serialize, Deserialize)]
pub struct Identity {
    /// The fleet's base URL.
    pub fleet_url: String,
    /// The till's id there.
    pub till_id: uuid::Uuid,
    /// Its store.
    pub store: String,
    /// Its name in the store.
    pub till_name: String,
    /// Its secret (never logged; `Debug` leaves it out).
    pub secret: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("fleet_url", &self.fleet_url)
            .field("till_id", &self.till_id)
            .field("store", &self.store)
            .field("till_name", &self.till_name)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// The identity stored in `dir`, if this journal was enrolled.
    pub fn load(dir: &Path) -> Result<Option<Identity>, FleetError> {
        let path = dir.join(IDENTITY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| FleetError::File(path, e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(FleetError::File(path, e.to_string())),
        }
    }

    /// Writes the identity to `dir` with mode 0600 (atomically: a temporary file renamed).
    pub fn save(&self, dir: &Path) -> Result<(), FleetError> {
        let path = dir.join(IDENTITY_FILE);
        let err = |e: std::io::Error| FleetError::File(path.clone(), e.to_string());
        std::fs::create_dir_all(dir).map_err(err)?;
        let tmp = dir.join(format!("{IDENTITY_FILE}.tmp"));
        let text = serde_json::to_string_pretty(self).map_err(|e| FleetError::File(path.clone(), e.to_string()))?;
        {
            use std::io::Write;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp).map_err(err)?;
            f.write_all(text.as_bytes()).map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        std::fs::rename(&tmp, &path).map_err(err)?;
        Ok(())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.fleet_url.trim_end_matches('/'))
    }

    fn bearer(&self) -> String {
        format!("{}.{}", self.till_id, self.secret)
    }
}

fn http() -> Result<reqwest::Client, FleetError> {
    Ok(reqwest::Client::builder().timeout(Duration::from_secs(30)).connect_timeout(Duration::from_secs(5)).build()?)
}

async fn refused(r: reqwest::Response) -> FleetError {
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    FleetError::Refused { status, message: body["message"].as_str().unwrap_or("").to_string() }
}

/// Enrols the journal in `dir` with the fleet at `fleet_url` using a one-time `code`.
pub async fn enrol(dir: &Path, fleet_url: &str, code: &str, till_name: &str) -> Result<Identity, FleetError> {
    let req = proto::EnrolRequest { code: code.to_string(), till_name: till_name.to_string(), version: env!("CARGO_PKG_VERSION").into() };
    let r = http()?.post(format!("{}{}", fleet_url.trim_end_matches('/'), proto::ENROL_PATH)).json(&req).send().await?;
    if !r.status().is_success() {
        return Err(refused(r).await);
    }
    let e: proto::EnrolResponse = r.json().await?;
    let id = Identity { fleet_url: fleet_url.trim_end_matches('/').to_string(), till_id: e.till_id, store: e.store, till_name: e.till_name, secret: e.secret };
    id.save(dir)?;
    Ok(id)
}

/// What health shows: `None` when this journal is not enrolled.
pub fn health(dir: &Path, behind: i64) -> Option<serde_json::Value> {
    let id = Identity::load(dir).ok().flatten()?;
    Some(serde_json::json!({
        "store": id.store,
        "till": id.till_name,
        "changesBehind": behind,
        "summary": format!("fleet: {behind} changes behind"),
    }))
}

/// The replication task: runs until `shutdown`.
pub async fn run(config: Config, shutdown: CancellationToken) {
    let mut shipper = Shipper {
        dir: config.data_dir.clone(),
        journal_path: config.journal_path(),
        channel: crate::updater::channel_of(&config),
        identity: None,
        journal: None,
        cursor: None,
        last_sent: None,
        client: None,
    };
    let mut delay = Duration::ZERO;
    let mut failures: u32 = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        match shipper.step().await {
            Ok(Step::More) => {
                failures = 0;
                delay = Duration::ZERO;
            }
            Ok(Step::Idle) => {
                failures = 0;
                delay = IDLE;
            }
            Ok(Step::NotEnrolled) => delay = Duration::from_secs(2),
            Err(e) => {
                failures = failures.saturating_add(1);
                delay = crate::outbox::backoff_delay(failures).min(MAX_BACKOFF);
                // Ask the fleet where to resume next time.
                shipper.cursor = None;
                if failures <= 3 || failures.is_multiple_of(20) {
                    tracing::warn!(error = %e, "fleet replication: will retry");
                }
            }
        }
    }
}

enum Step {
    More,
    Idle,
    NotEnrolled,
}

struct Shipper {
    dir: PathBuf,
    journal_path: PathBuf,
    /// The update channel, reported with every batch.
    channel: String,
    identity: Option<Identity>,
    journal: Option<Journal>,
    cursor: Option<i64>,
    last_sent: Option<Instant>,
    client: Option<reqwest::Client>,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, till_journal::JournalError> + Send + 'static) -> Result<T, FleetError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| FleetError::Task(e.to_string()))?.map_err(FleetError::from)
}

impl Shipper {
    async fn step(&mut self) -> Result<Step, FleetError> {
        if self.identity.is_none() {
            // Picked up without a restart when `till-agent enrol` runs while the agent does.
            match Identity::load(&self.dir)? {
                Some(id) => {
                    tracing::info!(store = %id.store, till = %id.till_name, "fleet replication enabled");
                    self.identity = Some(id);
                }
                None => return Ok(Step::NotEnrolled),
            }
        }
        let id = self.identity.clone().ok_or_else(|| FleetError::Task("no identity".into()))?;
        if self.journal.is_none() {
            let path = self.journal_path.clone();
            self.journal = Some(blocking(move || Journal::open(path)).await?);
        }
        let journal = self.journal.clone().ok_or_else(|| FleetError::Task("no journal".into()))?;
        if self.client.is_none() {
            self.client = Some(http()?);
        }
        let client = self.client.clone().ok_or_else(|| FleetError::Task("no client".into()))?;
        let cursor = match self.cursor {
            Some(c) => c,
            None => {
                let r = client.get(id.url(proto::CURSOR_PATH)).bearer_auth(id.bearer()).send().await?;
                if !r.status().is_success() {
                    return Err(refused(r).await);
                }
                let c: proto::CursorResponse = r.json().await?;
                self.cursor = Some(c.cursor);
                c.cursor
            }
        };
        let (batch, queued, behind) = {
            let j = journal.clone();
            blocking(move || {
                let batch = j.changes_after(cursor, BATCH)?;
                let queued = j.counts()?.queued_operations();
                let behind = (j.last_change_seq()? - cursor).max(0);
                Ok((batch, queued, behind))
            })
            .await?
        };
        let heartbeat_due = self.last_sent.is_none_or(|t| t.elapsed() >= HEARTBEAT);
        if batch.through == cursor && !heartbeat_due {
            return Ok(Step::Idle);
        }
        let full = batch.through - batch.after >= BATCH as i64;
        let body = proto::Batch {
            till_id: id.till_id,
            after: batch.after,
            through: batch.through,
            agent: proto::AgentState {
                version: env!("CARGO_PKG_VERSION").into(),
                queued_operations: i64::try_from(queued).unwrap_or(i64::MAX),
                changes_behind: behind,
                channel: Some(self.channel.clone()).filter(|c| proto::is_valid_channel(c)),
            },
            changes: batch.changes.iter().map(to_record).collect(),
        };
        let r = client.post(id.url(proto::BATCH_PATH)).bearer_auth(id.bearer()).json(&body).send().await?;
        self.last_sent = Some(Instant::now());
        let status = r.status();
        if status == reqwest::StatusCode::CONFLICT {
            let refusal: proto::Refusal = r.json().await?;
            tracing::info!(kind = ?refusal.error, cursor = refusal.cursor, "fleet: resuming from its cursor");
            self.cursor = Some(refusal.cursor);
            if refusal.error == proto::RefusalKind::Replay {
                self.acknowledge(&journal, refusal.cursor).await?;
            }
            return Ok(Step::More);
        }
        if !status.is_success() {
            if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
                // Re-read the identity next time: the till may have been enrolled again.
                self.identity = None;
            }
            return Err(refused(r).await);
        }
        let ack: proto::BatchAck = r.json().await?;
        // The fleet has taken the batch; the till has not recorded it yet. A crash here makes the
        // next start send it again, which the fleet answers as a replay (tests/fleet.rs).
        fail::fail_point!("fleet::after_send", |_| crate::failpoints::crash("fleet::after_send"));
        self.cursor = Some(ack.cursor);
        self.acknowledge(&journal, ack.cursor).await?;
        Ok(if full { Step::More } else { Step::Idle })
    }

    /// Records the fleet's acknowledgement and prunes the acknowledged feed.
    async fn acknowledge(&self, journal: &Journal, cursor: i64) -> Result<(), FleetError> {
        let j = journal.clone();
        blocking(move || {
            j.set_changes_acked(cursor)?;
            j.prune_changes(cursor, PRUNE)?;
            Ok(())
        })
        .await
    }
}

/// One journal change in the wire format.
fn to_record(c: &Change) -> proto::ChangeRecord {
    let row = match &c.row {
        ChangeRow::Payment(p) => proto::Row::Payment(payment_row(p)),
        ChangeRow::StatusEvent { transaction_row_id, event } => proto::Row::StatusEvent(proto::StatusEventRow {
            payment_row_id: *transaction_row_id,
            status: event.status.code(),
            source: event.source.as_str().to_string(),
            transition: till_journal::transition_str(event.transition).to_string(),
            applied: event.applied,
            at_ms: event.at,
        }),
        ChangeRow::Operation(o) => proto::Row::Operation(operation_row(o)),
        ChangeRow::GatewayPayment(p) => proto::Row::GatewayPayment(gateway_payment_row(p)),
        ChangeRow::GatewayOperation(o) => proto::Row::GatewayOperation(gateway_operation_row(o)),
        ChangeRow::Gone => proto::Row::Deleted {
            of: match c.table {
                ChangeTable::Transactions => proto::Table::Payment,
                ChangeTable::StatusEvents => proto::Table::StatusEvent,
                ChangeTable::Operations => proto::Table::Operation,
                ChangeTable::GatewayPayments => proto::Table::GatewayPayment,
                ChangeTable::GatewayOperations => proto::Table::GatewayOperation,
            },
        },
    };
    proto::ChangeRecord { seq: c.seq, row_id: c.row_id, row }
}

/// A payment, provider-neutral. The card's last four digits and the tender come from the
/// provider's entity through the provider crate's own model (no provider JSON is read here).
fn payment_row(p: &PaymentRecord) -> proto::PaymentRow {
    let entity = p.entity_json.clone().and_then(|e| till_sensepass::models::Transaction::from_json(e).ok());
    let approval = entity.as_ref().and_then(|t| {
        t.confirmations().into_iter().find(|c| c.payment_type.as_deref() != Some("Refund"))
    });
    let last_four = approval
        .as_ref()
        .and_then(|c| c.last_four_digits.clone())
        .filter(|l| l.len() == 4 && l.bytes().all(|b| b.is_ascii_digit()));
    let tender = approval.as_ref().and_then(|c| c.card_type.clone().or_else(|| c.payment_method_name.clone()));
    proto::PaymentRow {
        local_id: p.local_id.clone(),
        // The journal holds SensePass payments only today; a provider column will name others.
        provider: "sensepass".into(),
        number: p.number.clone(),
        device_id: p.device_id.clone(),
        order_id: p.order_id.clone(),
        amount: p.amount.0,
        currency: p.currency.code().to_string(),
        phase: p.phase.as_str().to_string(),
        status: p.status.map(|s| s.code()),
        is_open: p.is_open(),
        setup: p.setup,
        tender,
        last_four,
        created_at_ms: p.created_at,
        updated_at_ms: p.updated_at,
        final_at_ms: p.final_at,
        committed_at_ms: p.committed_at,
        failure: p.failure.clone(),
        state: None,
        captured: None,
        refunded: None,
        recovered_by: None,
    }
}

/// A gateway payment, provider-neutral. The provider's reference is left out on purpose: for
/// Connect-E it is the access token, a capability that lets whoever holds it pay. The masked
/// card gives the last four digits and nothing more.
fn gateway_payment_row(p: &GatewayPaymentRecord) -> proto::PaymentRow {
    let state = crate::tender::payment_of(p).map(|pay| pay.state).ok();
    let last_four = p.card_masked.as_deref().and_then(|m| {
        let digits: String = m.chars().rev().take_while(char::is_ascii_digit).collect::<Vec<_>>().into_iter().rev().collect();
        (digits.len() == 4).then_some(digits)
    });
    let failure = p.detail.as_ref().and_then(|d| d.pointer("/decline/message").and_then(|m| m.as_str()).map(str::to_string));
    proto::PaymentRow {
        local_id: p.local_id.clone(),
        provider: p.provider.clone(),
        number: None,
        device_id: String::new(),
        order_id: Some(p.order_id.clone()),
        amount: p.amount.0,
        currency: p.currency.code().to_string(),
        phase: p.phase.as_str().to_string(),
        status: None,
        is_open: p.phase != till_journal::Phase::CreateFailed && state.is_none_or(|s| !s.is_terminal()),
        setup: false,
        tender: p.card_type.clone(),
        last_four,
        created_at_ms: p.created_at,
        updated_at_ms: p.updated_at,
        final_at_ms: p.final_at,
        committed_at_ms: None,
        failure,
        state: Some(p.state.clone()),
        captured: Some(p.captured.0),
        refunded: Some(p.refunded.0),
        recovered_by: crate::recovery::recovered(p).then(|| till_gateway::ProviderId::FlexFactor.as_str().to_string()),
    }
}

fn gateway_operation_row(o: &GatewayOpRecord) -> proto::OperationRow {
    proto::OperationRow {
        op_key: o.op_key.clone(),
        kind: o.kind.clone(),
        payment_local_id: Some(o.payment_local_id.clone()),
        amount: Some(o.amount.0),
        state: o.state.clone(),
        attempts: o.attempts,
        last_error: o.last_error.clone(),
        created_at_ms: o.created_at,
        updated_at_ms: o.updated_at,
        finished_at_ms: o.finished_at,
    }
}

fn operation_row(o: &Operation) -> proto::OperationRow {
    proto::OperationRow {
        op_key: o.op_key.clone(),
        kind: o.kind.as_str().to_string(),
        payment_local_id: o.transaction_local_id.clone(),
        amount: o.amount.map(|m| m.0),
        state: o.state.as_str().to_string(),
        attempts: o.attempts,
        last_error: o.last_error.clone(),
        created_at_ms: o.created_at,
        updated_at_ms: o.updated_at,
        finished_at_ms: o.finished_at,
    }
}
