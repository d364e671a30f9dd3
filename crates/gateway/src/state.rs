//! The neutral payment state and the one rule that moves it.
//!
//! Observations of a payment reach the agent from several places — the answer to the call that
//! created it, provider events, polls, the checkout page, webhooks — and none of them promises
//! order or uniqueness. [`PaymentState::transition`] decides, once for every provider, whether
//! an observed state moves a payment forward, repeats what we know, or is stale:
//!
//! ```text
//!            ┌────────────► Captured ◄───────────┐
//!            │                                   │ (collection)
//!   Pending ─┼────────────► Authorized ──────────┤
//!            │                                   ├──► Cancelled (void)
//!            └──► Declined | Cancelled |         └──► Expired   (authorisation lapsed)
//!                 Expired  | Failed
//! ```
//!
//! - `Pending` may move to any other state.
//! - `Authorized` (a pre-authorisation holding money) may only be captured, voided (cancelled)
//!   or lapse (expired).
//! - `Captured`, `Declined`, `Cancelled`, `Expired` and `Failed` are terminal: nothing moves them.
//!
//! Refunds are not states. A captured payment stays `Captured`; what was given back is the
//! `refunded` amount (see [`crate::Amounts`] and [`crate::RefundProgress`]). Refunds are partial
//! and repeated, may fail one by one and never undo the capture, so a "refunded" state would be
//! a second, derived copy of the amounts that could disagree with them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use till_core::Transition;

/// Where a payment stands, in words every provider's statuses map onto.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentState {
    /// Created; the customer has not finished (card entry, 3-D Secure, a wait for resume, the
    /// provider still processing). No money is held yet.
    Pending,
    /// A pre-authorisation succeeded: money is held on the card, not yet taken.
    Authorized,
    /// Money taken: an approved sale, or a collected pre-authorisation.
    Captured,
    /// The issuer or acquirer said no (including "referred" and "duplicate").
    Declined,
    /// Stopped on purpose before money moved (a cancelled checkout, a revoked token, a voided
    /// authorisation).
    Cancelled,
    /// Nobody finished it in time (checkout or resume window lapsed, authorisation lapsed).
    Expired,
    /// The provider could not execute it.
    Failed,
}

impl PaymentState {
    /// Every state.
    pub const ALL: [PaymentState; 7] = [
        PaymentState::Pending,
        PaymentState::Authorized,
        PaymentState::Captured,
        PaymentState::Declined,
        PaymentState::Cancelled,
        PaymentState::Expired,
        PaymentState::Failed,
    ];

    /// The wire and journal name: `pending`, `authorized`, …
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentState::Pending => "pending",
            PaymentState::Authorized => "authorized",
            PaymentState::Captured => "captured",
            PaymentState::Declined => "declined",
            PaymentState::Cancelled => "cancelled",
            PaymentState::Expired => "expired",
            PaymentState::Failed => "failed",
        }
    }

    /// True when no observation can change the state any more.
    pub fn is_terminal(self) -> bool {
        !matches!(self, PaymentState::Pending | PaymentState::Authorized)
    }

    /// True when the customer's part is over: terminal, or authorised and waiting only for the
    /// merchant (capture or void). A `?wait` on a payment returns on this.
    pub fn is_settled_for_customer(self) -> bool {
        self != PaymentState::Pending
    }

    /// True for the outcomes in which no money was taken or held.
    pub fn is_unsuccessful(self) -> bool {
        matches!(
            self,
            PaymentState::Declined
                | PaymentState::Cancelled
                | PaymentState::Expired
                | PaymentState::Failed
        )
    }

    /// The rule (module docs): what observing `to` means for a payment now in `self`.
    pub fn transition(self, to: PaymentState) -> Transition {
        use PaymentState::*;
        if self == to {
            return Transition::Same;
        }
        match (self, to) {
            (Pending, _) => Transition::Advance,
            (Authorized, Captured | Cancelled | Expired) => Transition::Advance,
            _ => Transition::Ignore,
        }
    }
}

impl fmt::Display for PaymentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a [`PaymentState`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown payment state `{0}`")]
pub struct UnknownState(pub String);

impl FromStr for PaymentState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PaymentState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use PaymentState::*;

    #[test]
    fn names_round_trip() {
        for s in PaymentState::ALL {
            assert_eq!(s.as_str().parse::<PaymentState>(), Ok(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert!("refunded".parse::<PaymentState>().is_err());
    }

    #[test]
    fn the_table() {
        for to in PaymentState::ALL {
            let expected = if to == Pending {
                Transition::Same
            } else {
                Transition::Advance
            };
            assert_eq!(Pending.transition(to), expected, "pending → {to}");
        }
        assert_eq!(Authorized.transition(Captured), Transition::Advance);
        assert_eq!(Authorized.transition(Cancelled), Transition::Advance);
        assert_eq!(Authorized.transition(Expired), Transition::Advance);
        assert_eq!(Authorized.transition(Pending), Transition::Ignore);
        assert_eq!(Authorized.transition(Declined), Transition::Ignore);
        assert_eq!(Authorized.transition(Failed), Transition::Ignore);
        for from in PaymentState::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in PaymentState::ALL {
                let expected = if from == to {
                    Transition::Same
                } else {
                    Transition::Ignore
                };
                assert_eq!(from.transition(to), expected, "{from} → {to}");
            }
        }
    }

    /// Applies observations with the rule, as the agent does.
    fn run(start: PaymentState, seen: &[PaymentState]) -> (PaymentState, Vec<PaymentState>) {
        let mut now = start;
        let mut path = vec![now];
        for &o in seen {
            if now.transition(o) == Transition::Advance {
                now = o;
                path.push(now);
            }
        }
        (now, path)
    }

    fn any_state() -> impl Strategy<Value = PaymentState> {
        prop::sample::select(PaymentState::ALL.to_vec())
    }

    /// A rank that only grows along allowed paths: the formal "never backwards".
    fn rank(s: PaymentState) -> u8 {
        match s {
            Pending => 0,
            Authorized => 1,
            _ => 2,
        }
    }

    proptest! {
        #[test]
        fn never_backwards(seen in prop::collection::vec(any_state(), 0..40)) {
            let (_, path) = run(Pending, &seen);
            for w in path.windows(2) {
                prop_assert!(rank(w[0]) < rank(w[1]), "{:?} → {:?}", w[0], w[1]);
            }
            // at most two real moves: pending → authorized → terminal
            prop_assert!(path.len() <= 3);
        }

        #[test]
        fn terminal_is_absorbing(seen in prop::collection::vec(any_state(), 0..40)) {
            let (end, path) = run(Pending, &seen);
            if let Some(i) = path.iter().position(|s| s.is_terminal()) {
                prop_assert_eq!(i, path.len() - 1);
                prop_assert_eq!(path[i], end);
            }
        }

        #[test]
        fn duplicates_change_nothing(seen in prop::collection::vec(any_state(), 0..20)) {
            let doubled: Vec<PaymentState> = seen.iter().flat_map(|&s| [s, s]).collect();
            prop_assert_eq!(run(Pending, &seen).0, run(Pending, &doubled).0);
        }

        #[test]
        fn a_legal_story_survives_any_reordering(
            story in prop::sample::select(vec![
                vec![Captured],
                vec![Authorized, Captured],
                vec![Authorized, Cancelled],
                vec![Authorized, Expired],
                vec![Declined], vec![Failed], vec![Expired], vec![Cancelled],
            ]),
            noise in prop::collection::vec(Just(Pending), 0..5),
            seed in any::<u64>(),
        ) {
            // The story's observations, plus stale "pending" ones, delivered in any order and
            // some twice, always end where the story ends.
            let mut seen: Vec<PaymentState> = story.iter().chain(story.iter()).copied().chain(noise).collect();
            let mut x = seed | 1;
            for i in (1..seen.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                seen.swap(i, (x % (i as u64 + 1)) as usize);
            }
            prop_assert_eq!(run(Pending, &seen).0, *story.last().unwrap());
        }
    }
}
