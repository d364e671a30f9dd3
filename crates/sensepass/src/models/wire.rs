//! Lenient readers for the type inconsistencies of SensePass payloads.
//!
//! The documentation's own examples disagree on types (`amount` as string and number,
//! `businessId` as number and string, numbers quoted as strings). Everything we *receive* goes
//! through these helpers, which accept every documented variant; everything we *send* uses
//! exact types. Nothing here guesses at money: amounts are converted by `till_core::money`.

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use till_core::money::{major_json_number_to_minor, parse_major};
use till_core::{Currency, Minor};

/// A scalar as text: strings as they are, numbers and booleans in their JSON spelling.
/// `None` for null, arrays and objects.
pub(crate) fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An integer from a JSON integer, a float with no fraction (`5.0`) or a numeric string (`"5"`).
pub(crate) fn lenient_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            // Whole floats only; the cast is exact below 2^53, which every count we read is.
            (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A boolean from a JSON bool or the strings `"true"`/`"false"`.
pub(crate) fn lenient_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A major-unit amount (`"12.5"` or `12.5`) as minor units of `currency`, exactly.
pub(crate) fn major_amount(v: &Value, currency: Currency) -> Result<Minor, String> {
    match v {
        Value::String(s) => parse_major(s, currency).map_err(|e| e.to_string()),
        Value::Number(n) => major_json_number_to_minor(n, currency).map_err(|e| e.to_string()),
        other => Err(format!("expected a decimal string or number, got {other}")),
    }
}

/// First present, non-null value among several spellings of one field (`timeOut`/`timeout`,
/// `messsage`/`message`).
pub(crate) fn first_of<'a>(obj: &'a Value, names: &[&str]) -> Option<&'a Value> {
    names
        .iter()
        .filter_map(|n| obj.get(*n))
        .find(|v| !v.is_null())
}

/// `deserialize_with` for `Option<String>` fields that may arrive as a number or bool.
pub(crate) fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(v.as_ref().and_then(scalar_string))
}

/// `deserialize_with` for `Option<i64>` fields that may arrive as a numeric string.
pub(crate) fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(v.as_ref().and_then(lenient_i64))
}

/// `deserialize_with` for `Option<bool>` fields that may arrive as `"true"`/`"false"`.
pub(crate) fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(v.as_ref().and_then(lenient_bool))
}

/// `deserialize_with` for lists that may be null or absent.
pub(crate) fn vec_or_null<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// Serde's `skip_serializing_if` for `serde_json::Map` fields.
pub(crate) fn map_is_empty(m: &serde_json::Map<String, Value>) -> bool {
    m.is_empty()
}

/// Serialises the constant `true`: the `isCent` flag of every amount we send, because every
/// amount we send is an integer count of minor units.
pub(crate) fn always_true<S: serde::Serializer, T>(_: &T, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bool(true)
}

/// Percent-encodes one URL path segment (transaction numbers, device IDs), leaving RFC 3986
/// unreserved characters as they are.
pub fn path_segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lenient_readers() {
        assert_eq!(lenient_i64(&json!(5)), Some(5));
        assert_eq!(lenient_i64(&json!(5.0)), Some(5));
        assert_eq!(lenient_i64(&json!("5")), Some(5));
        assert_eq!(lenient_i64(&json!(5.5)), None);
        assert_eq!(scalar_string(&json!(123)), Some("123".into()));
        assert_eq!(lenient_bool(&json!("true")), Some(true));
        assert_eq!(major_amount(&json!("12.5"), Currency::Usd), Ok(Minor(1250)));
        assert_eq!(major_amount(&json!(12.5), Currency::Usd), Ok(Minor(1250)));
        assert!(major_amount(&json!(true), Currency::Usd).is_err());
        assert_eq!(path_segment("ab/c d"), "ab%2Fc%20d");
    }
}
