//! Subscriptions (spec §4.15–4.17, §7.12): created through `init` with
//! `methodType: "subscription"`, fetched and paused/cancelled through `/subscription/{uid}`,
//! the only endpoints that take credentials as HTTP headers.

use crate::models::wire::{opt_bool, opt_string};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The state a subscription can be put in (`PATCH /subscription/{uid}` body `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscriptionStatus {
    /// Charging on schedule.
    Active,
    /// Temporarily not charging.
    Paused,
    /// Ended for good; cannot be updated again.
    Canceled,
}

impl SubscriptionStatus {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::Paused => "paused",
            SubscriptionStatus::Canceled => "canceled",
        }
    }
}

/// The body of `PATCH /subscription/{uid}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UpdateSubscriptionRequest {
    /// The new status.
    pub status: SubscriptionStatus,
}

/// A subscription (§7.12). Read leniently; unknown fields kept in `extra`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct Subscription {
    /// UUID of the subscription, used in `/subscription/{uid}`.
    #[serde(
        default,
        deserialize_with = "opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<String>,
    /// Whether it charges.
    #[serde(
        default,
        deserialize_with = "opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub active: Option<bool>,
    /// Creation date.
    #[serde(
        default,
        deserialize_with = "opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub created: Option<String>,
    /// Last update date.
    #[serde(
        default,
        deserialize_with = "opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub updated: Option<String>,
    /// Expiry date, if any.
    #[serde(
        default,
        deserialize_with = "opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires: Option<String>,
    /// First charge date (`start_date`, snake case on the wire).
    #[serde(
        default,
        deserialize_with = "opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub start_date: Option<String>,
    /// Charge interval, e.g. `1month`.
    #[serde(
        default,
        deserialize_with = "opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub interval: Option<String>,
    /// `active`, `paused` or `canceled` (kept as text so a new value never breaks reading).
    #[serde(
        default,
        deserialize_with = "opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub status: Option<String>,
    /// The paying customer, as SensePass describes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<Value>,
    /// Every other field, unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Subscription {
    /// `status` as the typed enum, when it is one of the documented values.
    pub fn status_typed(&self) -> Option<SubscriptionStatus> {
        match self.status.as_deref()? {
            "active" => Some(SubscriptionStatus::Active),
            "paused" => Some(SubscriptionStatus::Paused),
            "canceled" | "cancelled" => Some(SubscriptionStatus::Canceled),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subscription_model() {
        let s: Subscription = serde_json::from_value(json!({
            "id": "6f1c2d3e-0000-4000-8000-000000000001", "active": true,
            "created": "2024-01-01T00:00:00Z", "updated": "2024-01-02T00:00:00Z",
            "expires": null, "start_date": "2024-02-01", "interval": "1month",
            "status": "active", "customer": {"name": "Ann"}, "plan": "gold"
        }))
        .unwrap();
        assert_eq!(s.status_typed(), Some(SubscriptionStatus::Active));
        assert_eq!(s.start_date.as_deref(), Some("2024-02-01"));
        assert_eq!(s.expires, None);
        assert_eq!(s.extra["plan"], "gold");
        let body = serde_json::to_value(UpdateSubscriptionRequest {
            status: SubscriptionStatus::Canceled,
        })
        .unwrap();
        assert_eq!(body, json!({"status": "canceled"}));
    }
}
