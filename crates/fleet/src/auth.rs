//! Credentials: till secrets, enrolment codes and the administrator token.
//!
//! Till secrets and enrolment codes are random (256 and 80 bits); the fleet stores only their
//! SHA-256. A slow password hash buys nothing for secrets with that much entropy and would cost
//! every batch a few milliseconds of CPU.

use crate::error::ApiError;
use axum::http::HeaderMap;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// SHA-256 of a secret or code.
pub fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Compares a presented secret with a stored hash in constant time.
pub fn matches(secret: &str, stored: &[u8]) -> bool {
    hash(secret).ct_eq(stored).into()
}

/// A new till secret: 32 random bytes, hex.
pub fn new_secret() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// A new enrolment code: 10 random bytes as four groups of base32-like characters without the
/// easily confused ones, e.g. `K7PQ-M2XR-...`, short enough to type at a till.
pub fn new_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    let chars: Vec<char> = (0..16)
        .map(|_| ALPHABET[(rng.next_u32() as usize) % ALPHABET.len()] as char)
        .collect();
    chars.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

/// Normalises a typed code: upper case, separators and spaces removed, then regrouped.
pub fn normalise_code(code: &str) -> String {
    let clean: Vec<char> = code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect();
    clean.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

/// The bearer token of a request.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

/// The till credentials of a request: `Authorization: Bearer <till_id>.<secret>`.
pub fn till_credentials(headers: &HeaderMap) -> Result<(Uuid, &str), ApiError> {
    let token = bearer(headers).ok_or_else(|| ApiError::Unauthorized("till credentials required".into()))?;
    let (id, secret) = token.split_once('.').ok_or_else(|| ApiError::Unauthorized("malformed till credentials".into()))?;
    let id = Uuid::parse_str(id).map_err(|_| ApiError::Unauthorized("malformed till credentials".into()))?;
    Ok((id, secret))
}

/// Checks the administrator token (dashboard and reports).
pub fn require_admin(headers: &HeaderMap, admin_token: &str) -> Result<(), ApiError> {
    let given = bearer(headers).ok_or_else(|| ApiError::Unauthorized("administrator token required".into()))?;
    if bool::from(given.as_bytes().ct_eq(admin_token.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized("wrong administrator token".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_normalise_and_secrets_match_only_themselves() {
        let code = new_code();
        assert_eq!(code.len(), 19);
        assert_eq!(normalise_code(&code.to_lowercase().replace('-', " ")), code);
        let s = new_secret();
        assert!(matches(&s, &hash(&s)));
        assert!(!matches(&new_secret(), &hash(&s)));
    }
}
