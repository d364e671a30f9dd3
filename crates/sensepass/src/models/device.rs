//! Devices (spec §4.11–4.12, §7.13) and customer input on a device (§4.13, §7.4).
//!
//! A device ID (`deviceAliasKey`) is a credential: whoever holds it can create payments for
//! that register. `Debug` output therefore masks it.

use crate::models::wire::{map_is_empty, opt_bool, opt_i64, opt_string, vec_or_null};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// A secret shortened for logs: its first four characters and its length.
pub fn mask_secret(secret: &str) -> String {
    let head: String = secret.chars().take(4).collect();
    format!("{head}…({} chars)", secret.chars().count())
}

/// The body of `POST /devices/match` (§4.11): pair a SensePass tag with a register.
#[derive(Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchRequest {
    /// Tag ID printed under its QR code, `XXX-XXX-XXX`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin_code: Option<String>,
    /// Attach the tag to this existing device instead of creating one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Register name shown in dashboards.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pos_name: Option<String>,
    /// Also create an EMV terminal of this type (`Dejavoo`, `Clover`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emv_terminal_type: Option<String>,
    /// Terminal-specific settings.
    #[serde(skip_serializing_if = "map_is_empty")]
    pub agent_config: Map<String, Value>,
}

impl fmt::Debug for MatchRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MatchRequest")
            .field("pin_code", &self.pin_code)
            .field("device_id", &self.device_id.as_deref().map(mask_secret))
            .field("pos_name", &self.pos_name)
            .field("emv_terminal_type", &self.emv_terminal_type)
            .finish_non_exhaustive()
    }
}

/// The body of `POST /devices/create` (§4.12): a dynamic-QR device without a tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateDeviceRequest {
    /// Register name shown in dashboards.
    pub pos_name: String,
}

/// A device (§7.13), the answer of match and create.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// Register name.
    #[serde(
        default,
        deserialize_with = "opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
    /// The device ID to use as `deviceId` from now on.
    pub device_alias_key: String,
    /// `merchantUID`.
    #[serde(
        default,
        rename = "merchantUID",
        deserialize_with = "opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub merchant_uid: Option<String>,
    /// `branchUID`.
    #[serde(
        default,
        rename = "branchUID",
        deserialize_with = "opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub branch_uid: Option<String>,
    /// The tag's pin code (match only).
    #[serde(
        default,
        deserialize_with = "opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub pin_code: Option<String>,
    /// Consumer URLs of the device; the first is what a static QR would encode.
    #[serde(default, deserialize_with = "vec_or_null")]
    pub client_boxes: Vec<String>,
    /// Every other field, unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("name", &self.name)
            .field("device_alias_key", &mask_secret(&self.device_alias_key))
            .field("merchant_uid", &self.merchant_uid)
            .field("branch_uid", &self.branch_uid)
            .field("pin_code", &self.pin_code)
            .field("client_boxes", &self.client_boxes)
            .finish_non_exhaustive()
    }
}

/// One question for the consumer (§7.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerInputQuestion {
    /// `email`, `phone`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The question text.
    pub question: String,
    /// Shortest acceptable answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_length: Option<u32>,
}

/// The body of `POST /transactions/customer-input`.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerInputRequest {
    /// The device to ask on; the client fills it in with device credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The questions.
    pub inputs: Vec<CustomerInputQuestion>,
}

impl fmt::Debug for CustomerInputRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomerInputRequest")
            .field("device_id", &self.device_id.as_deref().map(mask_secret))
            .field("inputs", &self.inputs)
            .finish()
    }
}

/// One answered question.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerInputAnswer {
    /// Question type.
    #[serde(default, rename = "type", deserialize_with = "opt_string")]
    pub kind: Option<String>,
    /// The question text.
    #[serde(default, deserialize_with = "opt_string")]
    pub question: Option<String>,
    /// Shortest acceptable answer.
    #[serde(default, deserialize_with = "opt_i64")]
    pub minimum_length: Option<i64>,
    /// The consumer's answer.
    #[serde(default, deserialize_with = "opt_string")]
    pub input: Option<String>,
}

/// The answer of customer input.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CustomerInputResponse {
    /// Whether the consumer answered.
    #[serde(default, deserialize_with = "opt_bool")]
    pub success: Option<bool>,
    /// Error detail.
    #[serde(default)]
    pub error: Option<Value>,
    /// Answers, in question order.
    #[serde(default, deserialize_with = "vec_or_null")]
    pub results: Vec<CustomerInputAnswer>,
    /// Every other field, unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The body of `POST /transactions/customer-input/reset`.
#[derive(Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerInputResetRequest {
    /// The device; the client fills it in with device credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
}

impl fmt::Debug for CustomerInputResetRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomerInputResetRequest")
            .field("device_id", &self.device_id.as_deref().map(mask_secret))
            .finish()
    }
}

/// The answer of a customer-input reset (not documented; read leniently).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct CustomerInputResetResponse {
    /// Whether the reset worked.
    #[serde(default, deserialize_with = "opt_bool")]
    pub success: Option<bool>,
    /// Every other field, unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn device_shape_and_masking() {
        let d: Device = serde_json::from_value(json!({
            "name": "Till 1", "deviceAliasKey": "abcdefghijklmnopqrstuvwxyz0123456789",
            "merchantUID": "m-1", "branchUID": 7, "pinCode": "53K-HMD-786",
            "clientBoxes": ["https://pay.sensepass.com/c_ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"]
        }))
        .unwrap();
        assert_eq!(d.branch_uid.as_deref(), Some("7"));
        assert_eq!(d.client_boxes.len(), 1);
        let dbg = format!("{d:?}");
        assert!(
            !dbg.contains("abcdefghijklmnopqrstuvwxyz0123456789"),
            "{dbg}"
        );
        let no_pin: Device =
            serde_json::from_value(json!({"deviceAliasKey": "k", "clientBoxes": null})).unwrap();
        assert!(no_pin.pin_code.is_none() && no_pin.client_boxes.is_empty());
        assert!(serde_json::from_value::<Device>(json!({"name": "x"})).is_err());
    }

    #[test]
    fn match_and_customer_input_bodies() {
        let m = MatchRequest {
            pin_code: Some("53K-HMD-786".into()),
            pos_name: Some("Till 1".into()),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"pinCode": "53K-HMD-786", "posName": "Till 1"})
        );
        let q = CustomerInputRequest {
            device_id: None,
            inputs: vec![CustomerInputQuestion {
                kind: "email".into(),
                question: "E-mail?".into(),
                minimum_length: Some(5),
            }],
        };
        assert_eq!(
            serde_json::to_value(&q).unwrap(),
            json!({"inputs": [{"type": "email", "question": "E-mail?", "minimumLength": 5}]})
        );
        let a: CustomerInputResponse = serde_json::from_value(json!({"success": true, "error": null,
            "results": [{"type": "email", "question": "E-mail?", "minimumLength": 5, "input": "a@b.co"}]}))
        .unwrap();
        assert_eq!(a.results[0].input.as_deref(), Some("a@b.co"));
    }
}
