//! Removal of card data and other secrets from JSON before it is stored or logged.
//!
//! One rule for every provider: a request or answer can carry a card number, a CVV, an expiry date,
//! a national (social) ID or a provider token (SensePass `paymentDetails.creditCard`,
//! `creditCardDetails`, Paymentsense/Acquired card objects, …). PCI DSS forbids keeping the CVV at
//! all and requires the card number to be masked; the others are personal data or credentials we
//! have no use for after the call. The journal calls [`redacted`] on every JSON it writes, so no
//! provider crate can forget it; logs never print request bodies.
//!
//! Matching is on the key's name, case-insensitively and ignoring `_`/`-`, because providers
//! spell these fields many ways (`cardNumber`, `card_number`, `pan`, `cvv2`, `securityCode`, …).
//! Written here rather than taken from a crate: the list of names is the policy, and it is ours.

use serde_json::{Map, Value};

/// What is written in place of a removed value.
pub const REMOVED: &str = "[redacted]";

/// Keys whose values are dropped entirely (secrets with no use after the call).
const SECRET_KEYS: &[&str] = &[
    "cvv", "cvv2", "cvc", "cvc2", "cid", "securitycode", "cardsecuritycode", "csc", "cardverificationvalue",
    "cardexpiration", "expiration", "expiry", "expirydate", "expirationdate", "expdate", "expmonth", "expyear",
    "expirymonth", "expiryyear", "socialid", "nationalid", "ssn", "idnumber", "pin", "pinblock", "track1",
    "track2", "trackdata", "cardtoken", "paymenttoken", "token", "accesstoken", "refreshtoken", "apikey",
    "merchantapikey", "secret", "password", "cardholderauthentication", "cavv", "threedsecuredata",
];

/// Keys whose values are card numbers: kept masked (first 6, last 4 digits), as receipts show them.
const PAN_KEYS: &[&str] = &["cardnumber", "pan", "primaryaccountnumber", "accountnumber", "ccnumber", "creditcardnumber"];

/// Keys whose whole value (an object of card fields) is card data; every leaf inside is redacted
/// by the rules above, and any leaf not recognised is dropped too.
const CARD_OBJECTS: &[&str] = &["creditcard", "creditcarddetails", "carddetails", "card", "paymentcard"];

fn canonical(key: &str) -> String {
    key.chars().filter(|c| *c != '_' && *c != '-').flat_map(char::to_lowercase).collect()
}

/// True when a key names a value that must never be stored.
pub fn is_sensitive_key(key: &str) -> bool {
    let k = canonical(key);
    SECRET_KEYS.contains(&k.as_str()) || PAN_KEYS.contains(&k.as_str()) || CARD_OBJECTS.contains(&k.as_str())
}

/// A card number masked to its first six and last four digits (`411111******1111`); shorter
/// numbers (or non-numbers) are removed entirely.
pub fn mask_pan(text: &str) -> String {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 13 {
        return REMOVED.to_string();
    }
    let (head, tail) = (&digits[..6], &digits[digits.len() - 4..]);
    format!("{head}{}{tail}", "*".repeat(digits.len() - 10))
}

/// A copy of `value` with every sensitive field removed or masked, at any depth.
pub fn redacted(value: &Value) -> Value {
    let mut v = value.clone();
    redact_in_place(&mut v);
    v
}

/// Redacts `value` in place (see [`redacted`]).
pub fn redact_in_place(value: &mut Value) {
    match value {
        Value::Object(map) => redact_map(map, false),
        Value::Array(items) => items.iter_mut().for_each(redact_in_place),
        _ => {}
    }
}

fn redact_map(map: &mut Map<String, Value>, inside_card: bool) {
    for (key, v) in map.iter_mut() {
        let k = canonical(key);
        if PAN_KEYS.contains(&k.as_str()) {
            *v = match v {
                Value::String(s) => Value::String(mask_pan(s)),
                Value::Number(n) => Value::String(mask_pan(&n.to_string())),
                _ => Value::String(REMOVED.into()),
            };
        } else if SECRET_KEYS.contains(&k.as_str()) {
            if !v.is_null() {
                *v = Value::String(REMOVED.into());
            }
        } else if CARD_OBJECTS.contains(&k.as_str()) || inside_card {
            match v {
                Value::Object(inner) => redact_map(inner, true),
                Value::Array(items) => {
                    for item in items.iter_mut() {
                        match item {
                            Value::Object(inner) => redact_map(inner, true),
                            Value::Null => {}
                            other => *other = Value::String(REMOVED.into()),
                        }
                    }
                }
                Value::Null => {}
                // A leaf of a card object we do not know (holder name, brand, …): dropped too,
                // except a few harmless descriptors receipts use.
                other if inside_card && !matches!(k.as_str(), "brand" | "type" | "cardtype" | "last4" | "mask" | "cardmask") => {
                    *other = Value::String(REMOVED.into())
                }
                Value::String(s) if !inside_card => *s = REMOVED.into(),
                _ => {}
            }
        } else {
            redact_in_place(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn card_fields_are_removed_or_masked_at_any_depth() {
        let body = json!({
            "amount": 125, "currency": "USD",
            "paymentDetails": { "creditCard": { "cardNumber": "4111 1111 1111 1111", "cvv": "123",
                "expiration": "12/29", "socialID": "123456782", "holderName": "A B" } },
            "creditCardDetails": { "cardNumber": "5555555555554444", "securityCode": "999", "cardExpiration": "01/30" },
            "lines": [ { "card_number": 4000056655665556u64, "CVC": 1 } ],
            "posData": { "orderId": "A-1" },
        });
        let r = redacted(&body);
        let text = r.to_string();
        for secret in ["4111111111111111", "4111 1111", "123456782", "\"123\"", "12/29", "999", "01/30", "A B", "4000056655665556"] {
            assert!(!text.contains(secret), "{secret} survived: {text}");
        }
        assert_eq!(r["paymentDetails"]["creditCard"]["cardNumber"], "411111******1111");
        assert_eq!(r["creditCardDetails"]["cardNumber"], "555555******4444");
        assert_eq!(r["amount"], 125);
        assert_eq!(r["posData"]["orderId"], "A-1");
        assert_eq!(mask_pan("4111"), REMOVED);
        assert!(is_sensitive_key("Security_Code") && !is_sensitive_key("orderId"));
    }
}
