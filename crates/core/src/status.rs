//! The SensePass transaction status codes (spec §3.1) and the transitions the agent accepts.
//!
//! Status events reach the agent from three places — the API response, the Socket.IO `message`
//! stream and status polls — and none of them promises order or uniqueness. [`Status::transition`]
//! is the single rule that decides whether an observed status moves a transaction forward, is a
//! harmless repeat, or is stale and must be ignored. The rule (docs/DECISIONS.md):
//!
//! - Pre-payment statuses advance by rank: Initialize → WaitingForTap → TapDetected/UserDeclined →
//!   UserApproved → ProcessingPayment. A lower rank arriving later is stale. TapDetected and
//!   UserDeclined share a rank (another consumer may tap after one declined).
//! - Any pre-payment status may end in Approved, Declined, Failed, Timeout or Cancel.
//! - Declined, Failed, Timeout, Cancel and Refunded are terminal: nothing moves them.
//! - After approval only the refund statuses follow: Approved → ProcessingRefund →
//!   PartiallyRefunded / Refunded; PartiallyRefunded → ProcessingRefund / Refunded; a refund the
//!   processor declines returns ProcessingRefund to Approved or PartiallyRefunded.

use serde::{Deserialize, Serialize};

/// A SensePass transaction status. The numeric code is the wire value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// 0 — created.
    Initialize,
    /// 1 — a consumer tapped the tag.
    TapDetected,
    /// 2 — a consumer approved the details; the gateway has not answered yet.
    UserApproved,
    /// 3 — a consumer declined the details; other consumers may still pay.
    UserDeclined,
    /// 4 — the gateway is processing (spelled `ProccessingPayment` by SensePass).
    ProcessingPayment,
    /// 5 — approved: money captured.
    Approved,
    /// 6 — declined by the provider.
    Declined,
    /// 7 — failed.
    Failed,
    /// 8 — not paid within `timeOut` seconds.
    Timeout,
    /// 9 — cancelled.
    Cancelled,
    /// 10 — waiting for a tap.
    WaitingForTap,
    /// 11 — fully refunded.
    Refunded,
    /// 12 — a refund is in progress.
    ProcessingRefund,
    /// 13 — partially refunded.
    PartiallyRefunded,
}

/// What an observed status means for a transaction currently in some status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The status moves forward; apply it.
    Advance,
    /// Same status again: apply its data (new confirmations), the status does not change.
    Same,
    /// Stale or impossible from here; ignore it.
    Ignore,
}

impl Status {
    /// Every status, in code order.
    pub const ALL: [Status; 14] = [
        Status::Initialize,
        Status::TapDetected,
        Status::UserApproved,
        Status::UserDeclined,
        Status::ProcessingPayment,
        Status::Approved,
        Status::Declined,
        Status::Failed,
        Status::Timeout,
        Status::Cancelled,
        Status::WaitingForTap,
        Status::Refunded,
        Status::ProcessingRefund,
        Status::PartiallyRefunded,
    ];

    /// The numeric wire code.
    pub fn code(self) -> u8 {
        match self {
            Status::Initialize => 0,
            Status::TapDetected => 1,
            Status::UserApproved => 2,
            Status::UserDeclined => 3,
            Status::ProcessingPayment => 4,
            Status::Approved => 5,
            Status::Declined => 6,
            Status::Failed => 7,
            Status::Timeout => 8,
            Status::Cancelled => 9,
            Status::WaitingForTap => 10,
            Status::Refunded => 11,
            Status::ProcessingRefund => 12,
            Status::PartiallyRefunded => 13,
        }
    }

    /// From the numeric wire code.
    pub fn from_code(code: i64) -> Option<Status> {
        Status::ALL.into_iter().find(|s| i64::from(s.code()) == code)
    }

    /// The enum-form name SensePass uses (with its own spelling), e.g. `TransactionApproved`.
    pub fn enum_name(self) -> &'static str {
        match self {
            Status::Initialize => "Initialize",
            Status::TapDetected => "TapDetected",
            Status::UserApproved => "UserApproved",
            Status::UserDeclined => "UserDeclined",
            Status::ProcessingPayment => "ProccessingPayment",
            Status::Approved => "TransactionApproved",
            Status::Declined => "TransactionDeclined",
            Status::Failed => "TransactionFailed",
            Status::Timeout => "TransactionTimeout",
            Status::Cancelled => "TransactionCancel",
            Status::WaitingForTap => "WaitingForTap",
            Status::Refunded => "TransactionRefund",
            Status::ProcessingRefund => "TransactionProcessingRefund",
            Status::PartiallyRefunded => "TransactionPartiallyRefunded",
        }
    }

    /// A human name, as in `statusName` ("Transaction Approved").
    pub fn display_name(self) -> &'static str {
        match self {
            Status::Initialize => "Initialize",
            Status::TapDetected => "Tap Detected",
            Status::UserApproved => "User Approved",
            Status::UserDeclined => "User Declined",
            Status::ProcessingPayment => "Processing Payment",
            Status::Approved => "Transaction Approved",
            Status::Declined => "Transaction Declined",
            Status::Failed => "Transaction Failed",
            Status::Timeout => "Transaction Timeout",
            Status::Cancelled => "Transaction Cancel",
            Status::WaitingForTap => "Waiting For Tap",
            Status::Refunded => "Transaction Refund",
            Status::ProcessingRefund => "Transaction Processing Refund",
            Status::PartiallyRefunded => "Transaction Partially Refunded",
        }
    }

    /// A short lower-case key for filters and the UI (`approved`, `timed_out`, ...).
    pub fn key(self) -> &'static str {
        match self {
            Status::Initialize => "initialized",
            Status::TapDetected => "tapped",
            Status::UserApproved => "user_approved",
            Status::UserDeclined => "user_declined",
            Status::ProcessingPayment => "processing",
            Status::Approved => "approved",
            Status::Declined => "declined",
            Status::Failed => "failed",
            Status::Timeout => "timed_out",
            Status::Cancelled => "cancelled",
            Status::WaitingForTap => "waiting",
            Status::Refunded => "refunded",
            Status::ProcessingRefund => "refund_processing",
            Status::PartiallyRefunded => "partially_refunded",
        }
    }

    /// From [`Status::key`].
    pub fn from_key(key: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.key() == key)
    }

    /// Final for the **payment**: the sync call returns, the till is free for the next sale.
    /// Approved and the refund statuses are final for payment purposes (money was captured).
    pub fn is_final(self) -> bool {
        !self.is_open()
    }

    /// Still waiting for the consumer or the gateway.
    pub fn is_open(self) -> bool {
        self.pending_rank().is_some()
    }

    /// Money was captured at some point (approved, or refunds after approval).
    pub fn was_captured(self) -> bool {
        matches!(
            self,
            Status::Approved
                | Status::ProcessingRefund
                | Status::PartiallyRefunded
                | Status::Refunded
        )
    }

    /// Rank of a pre-payment status; `None` for the rest.
    fn pending_rank(self) -> Option<u8> {
        match self {
            Status::Initialize => Some(0),
            Status::WaitingForTap => Some(1),
            Status::TapDetected | Status::UserDeclined => Some(2),
            Status::UserApproved => Some(3),
            Status::ProcessingPayment => Some(4),
            _ => None,
        }
    }

    /// Decides what observing `next` means for a transaction now in `self`.
    pub fn transition(self, next: Status) -> Transition {
        use Status::*;
        if self == next {
            return Transition::Same;
        }
        let allowed = match (self.pending_rank(), next.pending_rank()) {
            (Some(from), Some(to)) => to >= from,
            (Some(_), None) => matches!(next, Approved | Declined | Failed | Timeout | Cancelled),
            (None, Some(_)) => false,
            (None, None) => matches!(
                (self, next),
                (Approved, ProcessingRefund | PartiallyRefunded | Refunded)
                    | (ProcessingRefund, PartiallyRefunded | Refunded | Approved)
                    | (PartiallyRefunded, ProcessingRefund | Refunded)
            ),
        };
        if allowed {
            Transition::Advance
        } else {
            Transition::Ignore
        }
    }
}

impl Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.code())
    }
}

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Tolerate a numeric string ("5") as well as a number.
        let v = serde_json::Value::deserialize(d)?;
        let code = match &v {
            serde_json::Value::Number(n) => n.as_i64(),
            serde_json::Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        code.and_then(Status::from_code)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown transaction status {v}")))
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.display_name(), self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_fourteen_codes_round_trip() {
        for (i, s) in Status::ALL.iter().enumerate() {
            assert_eq!(usize::from(s.code()), i);
            assert_eq!(Status::from_code(i as i64), Some(*s));
            assert_eq!(Status::from_key(s.key()), Some(*s));
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), *s);
        }
        assert_eq!(Status::from_code(14), None);
    }

    #[test]
    fn finals() {
        let finals: Vec<u8> =
            Status::ALL.iter().filter(|s| s.is_final()).map(|s| s.code()).collect();
        assert_eq!(finals, vec![5, 6, 7, 8, 9, 11, 12, 13]);
    }

    #[test]
    fn never_backwards() {
        use Status::*;
        assert_eq!(Approved.transition(ProcessingPayment), Transition::Ignore);
        assert_eq!(TapDetected.transition(WaitingForTap), Transition::Ignore);
        assert_eq!(Timeout.transition(Approved), Transition::Ignore);
        assert_eq!(Refunded.transition(PartiallyRefunded), Transition::Ignore);
        assert_eq!(Initialize.transition(Approved), Transition::Advance);
        assert_eq!(UserDeclined.transition(TapDetected), Transition::Advance);
        assert_eq!(Approved.transition(PartiallyRefunded), Transition::Advance);
        assert_eq!(PartiallyRefunded.transition(PartiallyRefunded), Transition::Same);
    }

    /// No sequence of observations can ever leave a terminal status.
    #[test]
    fn terminal_statuses_are_absorbing() {
        use Status::*;
        for from in [Declined, Failed, Timeout, Cancelled, Refunded] {
            for to in Status::ALL {
                assert_ne!(from.transition(to), Transition::Advance, "{from:?} -> {to:?}");
            }
        }
    }
}
