//! The store manager's PIN and sessions.
//!
//! The PIN (4–12 digits, set at first run) is stored only as an Argon2id hash in the journal's
//! settings. Logging in exchanges it for a random session token (12 hours), which the UI sends as
//! `Authorization: Bearer …` for money-out operations, pairing and settings. Five wrong PINs in a
//! row lock logins for 60 seconds, so the 10⁴–10¹² PIN space cannot be walked over the local API.
//!
//! Sessions live in memory (a restart logs everyone out) behind a `std::sync::Mutex`: the critical
//! sections are a map lookup or insert, never across an `.await`.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a manager session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Wrong PINs in a row before logins are locked.
const MAX_FAILURES: u32 = 5;
/// How long logins stay locked.
const LOCKOUT: Duration = Duration::from_secs(60);
/// Settings key of the PIN hash.
pub const PIN_SETTING: &str = "manager_pin_hash";

/// Errors of PIN handling.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManagerError {
    /// The PIN is not 4–12 digits.
    #[error("the PIN must be 4 to 12 digits")]
    BadFormat,
    /// Wrong PIN.
    #[error("wrong PIN")]
    Wrong,
    /// Too many wrong PINs; retry later.
    #[error("too many wrong PINs; try again in {0} seconds")]
    Locked(u64),
    /// Hashing failed (should not happen).
    #[error("PIN hashing failed: {0}")]
    Hash(String),
}

/// Sessions and the failure counter.
#[derive(Default)]
pub struct Manager {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Session token → expiry.
    sessions: HashMap<String, Instant>,
    /// Consecutive wrong PINs.
    failures: u32,
    /// Logins refused until then.
    locked_until: Option<Instant>,
}

/// Checks the PIN's format.
pub fn valid_pin(pin: &str) -> bool {
    (4..=12).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit())
}

/// Hashes a PIN for storage.
pub fn hash_pin(pin: &str) -> Result<String, ManagerError> {
    if !valid_pin(pin) {
        return Err(ManagerError::BadFormat);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(pin.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ManagerError::Hash(e.to_string()))
}

/// True when `pin` matches the stored hash.
pub fn verify_pin(pin: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| Argon2::default().verify_password(pin.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

impl Manager {
    /// Checks `pin` against `hash` with the lockout rule; on success opens a session.
    pub fn login(&self, pin: &str, hash: &str) -> Result<(String, Duration), ManagerError> {
        {
            let state = self.lock();
            if let Some(until) = state.locked_until {
                let now = Instant::now();
                if until > now {
                    return Err(ManagerError::Locked((until - now).as_secs() + 1));
                }
            }
        }
        // Verify outside the lock: Argon2 takes tens of milliseconds.
        let ok = verify_pin(pin, hash);
        let mut state = self.lock();
        if !ok {
            state.failures += 1;
            if state.failures >= MAX_FAILURES {
                state.failures = 0;
                state.locked_until = Some(Instant::now() + LOCKOUT);
            }
            return Err(ManagerError::Wrong);
        }
        state.failures = 0;
        state.locked_until = None;
        let bytes: [u8; 32] = rand::random();
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        state.sessions.retain(|_, exp| *exp > now);
        state.sessions.insert(token.clone(), now + SESSION_TTL);
        Ok((token, SESSION_TTL))
    }

    /// True when `token` is a live session.
    pub fn check(&self, token: &str) -> bool {
        let state = self.lock();
        state.sessions.get(token).map(|exp| *exp > Instant::now()).unwrap_or(false)
    }

    /// Ends every session (after a PIN change).
    pub fn logout_all(&self) {
        self.lock().sessions.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere mid-update of plain data; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_rules_sessions_and_lockout() {
        assert!(valid_pin("1234") && valid_pin("123456789012"));
        assert!(!valid_pin("123") && !valid_pin("12a4") && !valid_pin("1234567890123"));
        let hash = hash_pin("2468").unwrap();
        assert!(!hash.contains("2468"));
        let m = Manager::default();
        let (token, _) = m.login("2468", &hash).unwrap();
        assert!(m.check(&token));
        assert!(!m.check("nope"));
        for _ in 0..4 {
            assert_eq!(m.login("0000", &hash), Err(ManagerError::Wrong));
        }
        assert_eq!(m.login("0000", &hash), Err(ManagerError::Wrong));
        assert!(matches!(m.login("2468", &hash), Err(ManagerError::Locked(_))), "locked even for the right PIN");
        m.logout_all();
        assert!(!m.check(&token));
    }
}
