//! Random identifiers shaped like SensePass's: 56-hex transaction numbers, long lowercase device
//! IDs, `c_` client boxes with 32 uppercase alphanumerics, 256-character tokens.

use rand::distributions::{Alphanumeric, Uniform};
use rand::Rng;

const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

fn pick(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::thread_rng();
    let dist = Uniform::from(0..alphabet.len());
    (0..len).map(|_| char::from(alphabet[rng.sample(dist)])).collect()
}

/// A transaction number: 56 lowercase hex characters.
pub(crate) fn transaction_number() -> String {
    let bytes: [u8; 28] = rand::thread_rng().gen();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A device ID (`deviceAliasKey`): 64 lowercase alphanumerics.
pub(crate) fn device_id() -> String {
    pick(LOWER_ALNUM, 64)
}

/// Uppercase alphanumerics (client boxes, confirmation codes).
pub(crate) fn upper_alnum(len: usize) -> String {
    pick(UPPER_ALNUM, len)
}

/// Decimal digits (confirmation, auth and reference numbers).
pub(crate) fn digits(len: usize) -> String {
    pick(b"0123456789", len)
}

/// A payment token: 256 mixed-case alphanumerics.
pub(crate) fn token() -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(256).map(char::from).collect()
}

/// A random UUID (v4) string.
pub(crate) fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}
