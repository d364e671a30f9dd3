//! What every handler shares: the world ([`State`]), the injected faults, the autopilot, pending
//! customer-input calls and the main listener's switch.

use crate::model::{State, TestCard};
use crate::server::{ConnRegistry, MainServer};
use serde_json::{json, Value};
use socketioxide::SocketIo;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// Faults injected through the control API (docs in the crate README).
#[derive(Debug, Clone, Default)]
pub(crate) struct Faults {
    /// The main listener is closed.
    pub offline: bool,
    /// The next `count` `/api` calls answer `status` without doing anything.
    pub fail_next: Option<(u32, u16)>,
    /// Delay before every `/api` call.
    pub latency_ms: u64,
    /// Kinds (`init`, `refund`, `cancel`, `commit`) whose next response is never sent.
    pub lose_next: Vec<String>,
}

impl Faults {
    pub(crate) fn json(&self) -> Value {
        json!({
            "offline": self.offline,
            "failNext": self.fail_next.map(|(count, status)| json!({"count": count, "status": status})),
            "latencyMs": self.latency_ms,
            "loseNextResponse": self.lose_next,
        })
    }
}

/// Pays every new transaction after a delay.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Autopilot {
    pub approve_after_ms: u64,
    pub card: TestCard,
}

/// How a waiting customer-input call ends.
#[derive(Debug)]
pub(crate) enum InputOutcome {
    Answered(Vec<Value>),
    Reset,
    Replaced,
}

/// A customer-input call waiting for answers.
pub(crate) struct PendingInput {
    pub id: u64,
    pub inputs: Vec<Value>,
    pub tx: oneshot::Sender<InputOutcome>,
}

/// Shared by the REST handlers, the pay pages, Socket.IO and the control API.
pub(crate) struct Shared {
    state: Mutex<State>,
    faults: Mutex<Faults>,
    autopilot: Mutex<Option<Autopilot>>,
    inputs: Mutex<HashMap<String, PendingInput>>,
    input_seq: AtomicU64,
    epoch: Mutex<CancellationToken>,
    /// Cancelled when the sandbox shuts down; background tasks watch it.
    pub shutdown: CancellationToken,
    /// The Socket.IO server.
    pub io: SocketIo,
    /// Connections of the main listener.
    pub registry: Arc<ConnRegistry>,
    /// The main listener (set once started).
    pub main: tokio::sync::Mutex<Option<MainServer>>,
    /// Base of every URL the sandbox hands out.
    pub public_url: String,
    /// Where the world is kept across restarts (`None`: in memory only), and the bytes last
    /// written there — the mutex also keeps two writers from interleaving.
    persist: Option<(std::path::PathBuf, Mutex<Vec<u8>>)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub(crate) fn new(
        state: State,
        io: SocketIo,
        registry: Arc<ConnRegistry>,
        public_url: String,
        state_file: Option<std::path::PathBuf>,
    ) -> Shared {
        Shared {
            state: Mutex::new(state),
            faults: Mutex::new(Faults::default()),
            autopilot: Mutex::new(None),
            inputs: Mutex::new(HashMap::new()),
            input_seq: AtomicU64::new(1),
            epoch: Mutex::new(CancellationToken::new()),
            shutdown: CancellationToken::new(),
            io,
            registry,
            main: tokio::sync::Mutex::new(None),
            public_url,
            persist: state_file.map(|p| (p, Mutex::new(Vec::new()))),
        }
    }

    /// Writes the world to the state file if it changed since the last write (no-op without a
    /// state file). Errors are logged: a sandbox that cannot save keeps running.
    pub(crate) fn persist(&self) {
        let Some((path, last)) = &self.persist else { return };
        let mut last = lock(last);
        let bytes = match crate::persist::encode(&self.state()) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("sandbox state not saved: {e}");
                return;
            }
        };
        if *last == bytes {
            return;
        }
        match crate::persist::write(path, &bytes) {
            Ok(()) => *last = bytes,
            Err(e) => tracing::warn!("sandbox state not saved to {}: {e}", path.display()),
        }
    }

    /// The world, locked. Never held across an `.await`.
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    pub(crate) fn faults(&self) -> MutexGuard<'_, Faults> {
        lock(&self.faults)
    }

    pub(crate) fn autopilot(&self) -> Option<Autopilot> {
        *lock(&self.autopilot)
    }

    pub(crate) fn set_autopilot(&self, autopilot: Option<Autopilot>) {
        *lock(&self.autopilot) = autopilot;
    }

    /// Takes one "lose the next response" fault of `kind`, if set.
    pub(crate) fn take_lose(&self, kind: &str) -> bool {
        let mut faults = self.faults();
        match faults.lose_next.iter().position(|k| k == kind) {
            Some(i) => {
                faults.lose_next.remove(i);
                true
            }
            None => false,
        }
    }

    /// Never answers: waits until the listener goes offline or the sandbox stops (the socket is
    /// cut then, so nothing reaches the client either way).
    pub(crate) async fn hang(&self) {
        let epoch = lock(&self.epoch).clone();
        tokio::select! {
            _ = epoch.cancelled() => {}
            _ = self.shutdown.cancelled() => {}
        }
    }

    /// Ends every hanging request (the listener went offline).
    pub(crate) fn new_epoch(&self) {
        let mut epoch = lock(&self.epoch);
        epoch.cancel();
        *epoch = CancellationToken::new();
    }

    /// Registers a customer-input call for `device`, ending any earlier one.
    pub(crate) fn add_input(
        &self,
        device: &str,
        inputs: Vec<Value>,
    ) -> (u64, oneshot::Receiver<InputOutcome>) {
        let id = self.input_seq.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let old = lock(&self.inputs).insert(device.to_string(), PendingInput { id, inputs, tx });
        if let Some(old) = old {
            let _ = old.tx.send(InputOutcome::Replaced);
        }
        (id, rx)
    }

    /// Removes the pending call `id` of `device` if it is still the current one.
    pub(crate) fn drop_input(&self, device: &str, id: u64) {
        let mut inputs = lock(&self.inputs);
        if inputs.get(device).map(|p| p.id) == Some(id) {
            inputs.remove(device);
        }
    }

    /// Takes the pending call of `device`.
    pub(crate) fn take_input(&self, device: &str) -> Option<PendingInput> {
        lock(&self.inputs).remove(device)
    }

    /// The questions pending on `device`, for inspection.
    pub(crate) fn pending_inputs(&self, device: &str) -> Option<Vec<Value>> {
        lock(&self.inputs).get(device).map(|p| p.inputs.clone())
    }

    /// Ends every pending customer-input call (reset).
    pub(crate) fn clear_inputs(&self) {
        let drained: Vec<PendingInput> = lock(&self.inputs).drain().map(|(_, p)| p).collect();
        for p in drained {
            let _ = p.tx.send(InputOutcome::Reset);
        }
    }

    /// Puts the payload back in the pending slot (answers were invalid).
    pub(crate) fn restore_input(&self, device: &str, pending: PendingInput) {
        lock(&self.inputs).insert(device.to_string(), pending);
    }
}
