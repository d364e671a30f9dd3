//! Optional persistence of the sandbox's world to one JSON file, so that a sandbox restarted on
//! the same file (`till-agent run --sandbox` after a crash or a restart) still knows its devices,
//! transactions, refunds and tokens. Faults, the autopilot and waiting customer-input calls are
//! not kept: they belong to a running process.
//!
//! The file is rewritten whole (temporary file + rename, so a crash never leaves half a file)
//! after every request that reached the sandbox and on a short timer for changes made by its own
//! timers. A sandbox is small; simplicity beats an incremental format here.

use crate::model::{find_card, Device, Method, Settings, State, Subscription, TestCard, TokenInfo, Txn};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// What is written: the durable part of [`State`], borrowed.
#[derive(Serialize)]
struct SnapshotRef<'a> {
    txns: &'a HashMap<String, Txn>,
    order: &'a Vec<String>,
    devices: &'a HashMap<String, Device>,
    device_order: &'a Vec<String>,
    pins: &'a HashMap<String, String>,
    subscriptions: &'a HashMap<String, Subscription>,
    tokens: &'a HashMap<String, TokenInfo>,
    calls: &'a BTreeMap<String, u64>,
    settings: &'a Settings,
}

/// What is read back.
#[derive(Deserialize)]
struct Snapshot {
    txns: HashMap<String, Txn>,
    order: Vec<String>,
    devices: HashMap<String, Device>,
    device_order: Vec<String>,
    pins: HashMap<String, String>,
    subscriptions: HashMap<String, Subscription>,
    tokens: HashMap<String, TokenInfo>,
    calls: BTreeMap<String, u64>,
    settings: Settings,
}

/// The state as the bytes of the file.
pub(crate) fn encode(st: &State) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&SnapshotRef {
        txns: &st.txns,
        order: &st.order,
        devices: &st.devices,
        device_order: &st.device_order,
        pins: &st.pins,
        subscriptions: &st.subscriptions,
        tokens: &st.tokens,
        calls: &st.calls,
        settings: &st.settings,
    })
}

/// Loads `path` into `st` (nothing happens when the file does not exist yet).
pub(crate) fn load(path: &Path, st: &mut State) -> std::io::Result<bool> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let snap: Snapshot = serde_json::from_slice(&bytes)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))?;
    st.txns = snap.txns;
    st.order = snap.order;
    st.devices = snap.devices;
    st.device_order = snap.device_order;
    st.pins = snap.pins;
    st.subscriptions = snap.subscriptions;
    st.tokens = snap.tokens;
    st.calls = snap.calls;
    st.settings = snap.settings;
    Ok(true)
}

/// Writes `bytes` to `path` atomically (temporary file in the same directory, then rename).
pub(crate) fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// `Status` as its numeric code.
pub(crate) mod status_code {
    use serde::{Deserialize, Deserializer, Serializer};
    use till_core::Status;

    pub fn serialize<S: Serializer>(s: &Status, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_i64(i64::from(s.code()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Status, D::Error> {
        let code = i64::deserialize(d)?;
        Status::from_code(code).ok_or_else(|| serde::de::Error::custom(format!("unknown status {code}")))
    }
}

/// `Method` as its numeric code.
pub(crate) mod method_code {
    use super::Method;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(m: &Method, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_u8(m.code())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Method, D::Error> {
        let code = u8::deserialize(d)?;
        Method::from_code(code).ok_or_else(|| serde::de::Error::custom(format!("unknown methodType {code}")))
    }
}

/// A pending 3-D Secure test card as its number (test cards are public sandbox numbers).
pub(crate) mod opt_card {
    use super::{find_card, TestCard};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(c: &Option<TestCard>, ser: S) -> Result<S::Ok, S::Error> {
        match c {
            Some(card) => ser.serialize_some(card.number),
            None => ser.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<TestCard>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.and_then(|n| find_card(&n)))
    }
}

/// The status history as `[code, time]` pairs.
pub(crate) mod history {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use till_core::Status;
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(h: &[(Status, OffsetDateTime)], ser: S) -> Result<S::Ok, S::Error> {
        let pairs: Vec<(i64, OffsetDateTime)> = h.iter().map(|(s, t)| (i64::from(s.code()), *t)).collect();
        pairs.serialize(ser)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(Status, OffsetDateTime)>, D::Error> {
        let pairs = Vec::<(i64, OffsetDateTime)>::deserialize(d)?;
        pairs
            .into_iter()
            .map(|(c, t)| {
                Status::from_code(c)
                    .map(|s| (s, t))
                    .ok_or_else(|| serde::de::Error::custom(format!("unknown status {c}")))
            })
            .collect()
    }
}
