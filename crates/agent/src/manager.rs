//! The store manager's PIN and sessions.
//!
//! The PIN (4–12 digits) is stored only as an Argon2id hash in the journal's settings. The first
//! PIN is set on the till itself (`till-agent manager set-pin`, or by the installer), never through
//! the local API: whoever reached the page first would otherwise own the till. Logging in exchanges
//! the PIN for a random session token that the UI sends as `Authorization: Bearer …` for money-out
//! operations, pairing and settings. A session ends after [`SESSION_IDLE`] without use, after
//! [`SESSION_MAX`] in any case, on `POST /api/agent/manager/logout`, and on a PIN change.
//!
//! Guessing is bounded: every attempt is *reserved* (counted as a failure) under the lock before
//! the PIN is verified, so parallel guesses cannot slip past the count; from the fifth failure in a
//! row logins are locked for a back-off that doubles with each further failure (one minute, two,
//! four, … at most [`MAX_LOCKOUT`]). The count and the lock are persisted in the journal, so a
//! restart does not reset them. Only one Argon2 verification runs at a time (19 MiB each), on the
//! blocking pool, so a flood of logins cannot exhaust the till's memory.
//!
//! Sessions live in memory (a restart logs everyone out) behind a `std::sync::Mutex`: the critical
//! sections are a map lookup or insert, never across an `.await`.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A session ends after this long without a request.
pub const SESSION_IDLE: Duration = Duration::from_secs(15 * 60);
/// A session ends this long after login, however busy.
pub const SESSION_MAX: Duration = Duration::from_secs(8 * 3600);
/// Wrong PINs in a row before logins are locked.
pub const MAX_FAILURES: u32 = 5;
/// The first lock's length; each further failure doubles it.
const FIRST_LOCKOUT: Duration = Duration::from_secs(60);
/// The longest lock.
pub const MAX_LOCKOUT: Duration = Duration::from_secs(3600);
/// Settings key of the PIN hash.
pub const PIN_SETTING: &str = "manager_pin_hash";
/// Settings key of the failure count and lock (`<failures>:<locked until, unix ms>`).
pub const FAILURES_SETTING: &str = "manager_pin_failures";

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

/// Sessions, the failure counter and the one-verification-at-a-time gate.
pub struct Manager {
    state: Mutex<State>,
    /// One Argon2 verification at a time (each takes ~19 MiB and tens of milliseconds).
    verify_gate: tokio::sync::Semaphore,
    /// One write of the failure count at a time. Each write takes [`Manager::failures`] *under
    /// this gate*, so the last write is always the newest state: parallel attempts whose writes
    /// landed in another order than their reservations would otherwise leave an older count
    /// (an unlocked till after a restart) in the journal.
    persist_gate: tokio::sync::Mutex<()>,
}

impl Default for Manager {
    fn default() -> Self {
        Manager {
            state: Mutex::new(State::default()),
            verify_gate: tokio::sync::Semaphore::new(1),
            persist_gate: tokio::sync::Mutex::new(()),
        }
    }
}

#[derive(Default)]
struct State {
    /// Session token → (idle expiry, absolute expiry).
    sessions: HashMap<String, (Instant, Instant)>,
    /// Consecutive wrong PINs, attempts in progress included.
    failures: u32,
    /// Logins refused until then (unix ms, so that it survives a restart).
    locked_until_ms: i64,
}

/// The failure count and lock to persist after a reservation or a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failures {
    /// Consecutive failures (reserved attempts included).
    pub count: u32,
    /// Locked until (unix ms; 0 when not locked).
    pub locked_until_ms: i64,
}

impl Failures {
    /// The settings text (`count:locked_until_ms`).
    pub fn to_setting(self) -> String {
        format!("{}:{}", self.count, self.locked_until_ms)
    }

    /// Parses [`Failures::to_setting`]; anything unreadable counts as no failures.
    pub fn from_setting(text: &str) -> Failures {
        let mut parts = text.split(':');
        let count = parts.next().and_then(|c| c.trim().parse().ok()).unwrap_or(0);
        let locked_until_ms = parts.next().and_then(|c| c.trim().parse().ok()).unwrap_or(0);
        Failures { count, locked_until_ms }
    }
}

/// Checks the PIN's format.
pub fn valid_pin(pin: &str) -> bool {
    (4..=12).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit())
}

/// Hashes a PIN for storage (Argon2: call it on a blocking thread).
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

/// True when `pin` matches the stored hash (Argon2: call it on a blocking thread).
pub fn verify_pin(pin: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| Argon2::default().verify_password(pin.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// How long logins lock after `failures` failures in a row (0 below [`MAX_FAILURES`]).
pub fn lockout_for(failures: u32) -> Duration {
    if failures < MAX_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (failures - MAX_FAILURES).min(16);
    FIRST_LOCKOUT.saturating_mul(1 << doublings).min(MAX_LOCKOUT)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Manager {
    /// Restores the persisted failure count and lock (at start-up).
    pub fn restore(&self, failures: Failures) {
        let mut s = self.lock();
        s.failures = failures.count;
        s.locked_until_ms = failures.locked_until_ms;
    }

    /// Reserves one login attempt: refused while locked, otherwise counted as a failure *before*
    /// the PIN is verified (a success clears it). Returns what to persist.
    pub fn reserve(&self) -> Result<Failures, ManagerError> {
        let mut s = self.lock();
        let now = now_ms();
        if s.locked_until_ms > now {
            return Err(ManagerError::Locked(((s.locked_until_ms - now) as u64).div_ceil(1000)));
        }
        s.failures = s.failures.saturating_add(1);
        let lock = lockout_for(s.failures);
        if !lock.is_zero() {
            s.locked_until_ms = now + lock.as_millis() as i64;
        }
        Ok(Failures { count: s.failures, locked_until_ms: s.locked_until_ms })
    }

    /// Verifies `pin` against `hash` for a reserved attempt, one verification at a time on the
    /// blocking pool. On success clears the failures and opens a session.
    pub async fn verify_reserved(&self, pin: String, hash: String) -> Result<Session, ManagerError> {
        let _permit = self.verify_gate.acquire().await.map_err(|e| ManagerError::Hash(e.to_string()))?;
        let ok = tokio::task::spawn_blocking(move || verify_pin(&pin, &hash))
            .await
            .map_err(|e| ManagerError::Hash(e.to_string()))?;
        if !ok {
            return Err(ManagerError::Wrong);
        }
        let mut s = self.lock();
        s.failures = 0;
        s.locked_until_ms = 0;
        let bytes: [u8; 32] = rand::random();
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        s.sessions.retain(|_, (idle, max)| *idle > now && *max > now);
        s.sessions.insert(token.clone(), (now + SESSION_IDLE, now + SESSION_MAX));
        Ok(Session { token, idle: SESSION_IDLE })
    }

    /// Held while the failure count is written (see the field's note).
    pub async fn persist_gate(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.persist_gate.lock().await
    }

    /// The failures to persist now (after a success: none).
    pub fn failures(&self) -> Failures {
        let s = self.lock();
        Failures { count: s.failures, locked_until_ms: s.locked_until_ms }
    }

    /// True when `token` is a live session; each use extends its idle expiry.
    pub fn check(&self, token: &str) -> bool {
        let mut s = self.lock();
        let now = Instant::now();
        match s.sessions.get_mut(token) {
            Some((idle, max)) if *idle > now && *max > now => {
                *idle = (now + SESSION_IDLE).min(*max);
                true
            }
            Some(_) => {
                s.sessions.remove(token);
                false
            }
            None => false,
        }
    }

    /// Ends one session (logout). True when it existed.
    pub fn logout(&self, token: &str) -> bool {
        self.lock().sessions.remove(token).is_some()
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

/// A new manager session.
#[derive(Debug)]
pub struct Session {
    /// The bearer token.
    pub token: String,
    /// How long it lasts without use.
    pub idle: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pin_rules_sessions_and_lockout() {
        assert!(valid_pin("1234") && valid_pin("123456789012"));
        assert!(!valid_pin("123") && !valid_pin("12a4") && !valid_pin("1234567890123"));
        let hash = hash_pin("2468").unwrap();
        assert!(!hash.contains("2468"));
        let m = Manager::default();
        m.reserve().unwrap();
        let s = m.verify_reserved("2468".into(), hash.clone()).await.unwrap();
        assert!(m.check(&s.token));
        assert!(!m.check("nope"));
        for _ in 0..5 {
            m.reserve().unwrap();
            assert_eq!(m.verify_reserved("0000".into(), hash.clone()).await.unwrap_err(), ManagerError::Wrong);
        }
        assert!(matches!(m.reserve(), Err(ManagerError::Locked(_))), "locked even for the right PIN");
        assert_eq!(m.failures().count, 5);
        assert!(m.logout(&s.token));
        assert!(!m.check(&s.token));
    }

    #[test]
    fn reservations_count_before_verification_and_back_off_doubles() {
        let m = Manager::default();
        // 41 parallel guesses: only MAX_FAILURES get a reservation.
        let granted = (0..41).filter(|_| m.reserve().is_ok()).count();
        assert_eq!(granted, MAX_FAILURES as usize);
        assert_eq!(lockout_for(4), Duration::ZERO);
        assert_eq!(lockout_for(5), Duration::from_secs(60));
        assert_eq!(lockout_for(6), Duration::from_secs(120));
        assert_eq!(lockout_for(50), MAX_LOCKOUT);
        let f = m.failures();
        assert_eq!(Failures::from_setting(&f.to_setting()), f);
        let restored = Manager::default();
        restored.restore(f);
        assert!(matches!(restored.reserve(), Err(ManagerError::Locked(_))), "the lock survives a restart");
    }
}
