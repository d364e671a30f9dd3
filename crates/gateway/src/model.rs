//! What a payment is to Till Agent, whichever provider carries it.
//!
//! A [`Payment`] is the agent's record; providers report [`Observation`]s of it, which
//! [`Payment::observe`] merges with the one transition rule of [`crate::state`]. Money-out
//! (capture, refund, void) is checked against the payment by [`Payment::check`] and its outcome
//! recorded by [`Payment::record`], so the bounds ("at most what was authorised", "at most what
//! was captured") are written once, here.

use crate::gateway::{Operation, OperationOutcome};
use crate::redact::Opaque;
use crate::state::PaymentState;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use till_core::{Currency, Minor, Money, Transition};
use time::OffsetDateTime;

/// Which provider carries a payment. A closed set: adding a provider is adding a variant, its
/// crate and its `Gateway` implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ProviderId {
    /// SensePass (QR payments on the consumer's phone).
    #[serde(rename = "sensepass")]
    SensePass,
    /// Paymentsense Connect-E (keyed card at the till, card on file).
    #[serde(rename = "connect-e")]
    ConnectE,
    /// Acquired.com (Components checkout driven by payment sessions).
    #[serde(rename = "acquired")]
    Acquired,
    /// FlexFactor decline recovery: not a tender (see [`ProviderId::is_tender`]), but the
    /// provider that took the money of a recovered payment and that refunds it.
    #[serde(rename = "flexfactor")]
    FlexFactor,
}

impl ProviderId {
    /// Every provider.
    pub const ALL: [ProviderId; 4] = [
        ProviderId::SensePass,
        ProviderId::ConnectE,
        ProviderId::Acquired,
        ProviderId::FlexFactor,
    ];

    /// True for providers a POS may ask to take a payment; false for FlexFactor, which only
    /// ever rescues a payment another provider declined ([`crate::DeclineRecovery`]).
    pub fn is_tender(self) -> bool {
        !matches!(self, ProviderId::FlexFactor)
    }

    /// The wire and journal name: `sensepass`, `connect-e`, `acquired`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderId::SensePass => "sensepass",
            ProviderId::ConnectE => "connect-e",
            ProviderId::Acquired => "acquired",
            ProviderId::FlexFactor => "flexfactor",
        }
    }

    /// The name people read on screens and receipts.
    pub fn display_name(self) -> &'static str {
        match self {
            ProviderId::SensePass => "SensePass",
            ProviderId::ConnectE => "Paymentsense Connect-E",
            ProviderId::Acquired => "Acquired.com",
            ProviderId::FlexFactor => "FlexFactor",
        }
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a known provider (a 400 naming `provider` at the local API).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider `{0}`")]
pub struct UnknownProvider(pub String);

impl FromStr for ProviderId {
    type Err = UnknownProvider;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProviderId::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownProvider(s.to_string()))
    }
}

/// The provider's own handle of a payment: SensePass's transaction number, Connect-E's access
/// token. Opaque because for some providers it is also a capability (whoever holds a Connect-E
/// access token can complete the payment).
pub type ProviderRef = Opaque;

/// Sale (money taken at once) or pre-authorisation (money held, collected later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentKind {
    /// Authorise and capture in one step.
    Sale,
    /// Authorise only; a capture (collection) or void follows.
    #[serde(rename = "preauth")]
    PreAuth,
}

impl PaymentKind {
    /// The wire and journal name: `sale`, `preauth`.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentKind::Sale => "sale",
            PaymentKind::PreAuth => "preauth",
        }
    }
}

/// The amounts of a payment, in minor units of its currency. Each only grows: a later
/// observation can add to them, never take away (see [`Amounts::merge`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amounts {
    /// Held or taken with the customer's approval (a sale's amount once approved).
    pub authorized: Minor,
    /// Taken: a sale's amount, or what a collection took of an authorisation.
    pub captured: Minor,
    /// Given back by refunds, summed.
    pub refunded: Minor,
}

impl Amounts {
    /// Merges what a provider reported: each amount becomes the larger of the two, and what was
    /// captured counts as authorised. Monotone, so stale or repeated reports are harmless.
    pub fn merge(
        &mut self,
        authorized: Option<Minor>,
        captured: Option<Minor>,
        refunded: Option<Minor>,
    ) {
        if let Some(a) = authorized {
            self.authorized = self.authorized.max(a);
        }
        if let Some(c) = captured {
            self.captured = self.captured.max(c);
        }
        if let Some(r) = refunded {
            self.refunded = self.refunded.max(r);
        }
        self.authorized = self.authorized.max(self.captured);
    }

    /// What can still be refunded: captured minus refunded (never negative).
    pub fn refundable(&self) -> Minor {
        Minor((self.captured.0 - self.refunded.0).max(0))
    }
}

/// How much of a captured payment was given back; derived from [`Amounts`], never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundProgress {
    /// Nothing refunded.
    None,
    /// Some, not all, of the captured amount refunded.
    Partial,
    /// Everything captured was refunded.
    Full,
}

/// Why a payment or an operation did not succeed, in neutral words plus the provider's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeclineReason {
    /// The neutral category, for the cashier screen and reports.
    pub category: DeclineCategory,
    /// The provider's code as text (e.g. Connect-E `"5"`), for support.
    pub provider_code: Option<String>,
    /// The provider's message, if any. Providers' messages carry no card data.
    pub message: Option<String>,
}

/// Categories of a decline the cashier can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeclineCategory {
    /// The issuer or acquirer declined: ask for another card.
    Declined,
    /// The issuer wants to talk to the cardholder ("referred").
    Referred,
    /// The provider saw a duplicate transaction.
    Duplicate,
    /// The provider failed to execute it.
    Error,
    /// Stopped by the merchant (revoked, cancelled).
    Cancelled,
    /// A time window lapsed.
    Expired,
}

/// A card's expiry month, as printed on it. The card works until the end of that month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CardExpiry {
    /// Four-digit year.
    pub year: u16,
    /// Month 1–12.
    pub month: u8,
}

impl CardExpiry {
    /// A valid expiry, or `None` for a month outside 1–12.
    pub fn new(year: u16, month: u8) -> Option<CardExpiry> {
        (1..=12)
            .contains(&month)
            .then_some(CardExpiry { year, month })
    }

    /// True once the expiry month is over on `today`. The one rule that hides stored cards.
    pub fn is_expired_on(self, today: time::Date) -> bool {
        let (y, m) = (today.year(), today.month() as u8);
        (y, m) > (i32::from(self.year), self.month)
    }

    /// `MM/YY`, as printed on cards.
    pub fn mm_yy(self) -> String {
        format!("{:02}/{:02}", self.month, self.year % 100)
    }
}

/// What we know of the card used: never the full number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardSummary {
    /// Scheme as the provider names it (`VISA`, `MASTERCARD`).
    pub scheme: Option<String>,
    /// The masked number as the provider masks it; the agent's one mask format is applied
    /// when it is shown.
    pub masked: Option<String>,
    /// Expiry, for hiding stored cards once expired.
    pub expiry: Option<CardExpiry>,
    /// A card-on-file reference (Connect-E cross reference) to charge it again. Opaque: with
    /// the merchant's key it moves money.
    pub on_file: Option<Opaque>,
}

/// Which form the checkout page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckoutForm {
    /// Card number, expiry and CV2.
    CardDetails,
    /// Only the CV2 of a card on file (repeat payment).
    Cv2Only,
}

/// What the cashier screen needs to let the customer pay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CashierScreen {
    /// A QR code the customer scans (SensePass).
    Qr {
        /// The URL the code encodes.
        url: String,
    },
    /// A page that loads the provider's script for keyed entry (Connect-E `client.js`).
    ScriptCheckout {
        /// Where the provider's script lives.
        script_url: String,
        /// The token the script needs (Connect-E `paymentToken`).
        payment_token: Opaque,
        /// Full card form or CV2 only.
        form: CheckoutForm,
    },
}

/// Something the payment waits for beyond the customer's card entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Awaiting {
    /// Authenticated and paused before execution; the merchant must resume it (Connect-E
    /// wait pre-execute) before `until`, if the provider says when.
    Resume {
        /// Last moment a resume is accepted, when known.
        #[serde(with = "time::serde::rfc3339::option")]
        until: Option<OffsetDateTime>,
    },
    /// The cardholder is in a 3-D Secure step.
    Authentication,
}

/// One provider report about a payment: what an answer, an event or a poll said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The neutral state the provider's status maps to.
    pub state: PaymentState,
    /// Amounts the report implies, if it implies any.
    pub authorized: Option<Minor>,
    /// Captured amount implied.
    pub captured: Option<Minor>,
    /// Refunded amount implied.
    pub refunded: Option<Minor>,
    /// Why it failed, for unsuccessful states.
    pub decline: Option<DeclineReason>,
    /// The card, once known.
    pub card: Option<CardSummary>,
    /// The issuer's authorisation code, once approved.
    pub auth_code: Option<String>,
    /// What a pending payment waits for.
    pub awaiting: Option<Awaiting>,
    /// The provider's raw status as text (e.g. `"99"`), for diagnostics.
    pub provider_status: Option<String>,
}

impl Observation {
    /// An observation of `state` and nothing else.
    pub fn of(state: PaymentState) -> Observation {
        Observation {
            state,
            authorized: None,
            captured: None,
            refunded: None,
            decline: None,
            card: None,
            auth_code: None,
            awaiting: None,
            provider_status: None,
        }
    }
}

/// A money-out request the payment cannot take; the agent answers 409 with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperationRefused {
    /// Not allowed in the payment's state (e.g. refunding a declined payment).
    #[error("cannot {operation} a payment that is {state}")]
    WrongState {
        /// `capture`, `refund` or `void`.
        operation: &'static str,
        /// The payment's state.
        state: PaymentState,
    },
    /// Capture and void apply to pre-authorisations only.
    #[error("cannot {operation} a {kind} payment")]
    WrongKind {
        /// `capture` or `void`.
        operation: &'static str,
        /// The payment's kind.
        kind: &'static str,
    },
    /// Amounts must be positive.
    #[error("amount must be positive")]
    NotPositive,
    /// More than is available (authorised for captures, captured minus refunded for refunds).
    #[error("{asked} is more than the {available} available")]
    Exceeds {
        /// What was asked.
        asked: Minor,
        /// What is left.
        available: Minor,
    },
}

/// The agent's record of a payment, in neutral terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// Who carries it.
    pub provider: ProviderId,
    /// The provider's handle of it.
    pub reference: ProviderRef,
    /// Sale or pre-authorisation.
    pub kind: PaymentKind,
    /// The merchant's order reference (one live provider payment per order).
    pub order_id: String,
    /// What was asked for.
    pub amount: Money,
    /// Where it stands.
    pub state: PaymentState,
    /// What moved.
    pub amounts: Amounts,
    /// When the customer's window closes (Connect-E token expiry, SensePass `timeOut`).
    pub expires_at: Option<OffsetDateTime>,
    /// What the cashier screen shows while pending.
    pub screen: Option<CashierScreen>,
    /// Why it did not succeed.
    pub decline: Option<DeclineReason>,
    /// The card used, once known.
    pub card: Option<CardSummary>,
    /// The issuer's authorisation code.
    pub auth_code: Option<String>,
    /// What a pending payment waits for.
    pub awaiting: Option<Awaiting>,
}

impl Payment {
    /// A new pending payment as a gateway's `create` returns it.
    pub fn pending(
        provider: ProviderId,
        reference: ProviderRef,
        kind: PaymentKind,
        order_id: impl Into<String>,
        amount: Money,
    ) -> Payment {
        Payment {
            provider,
            reference,
            kind,
            order_id: order_id.into(),
            amount,
            state: PaymentState::Pending,
            amounts: Amounts::default(),
            expires_at: None,
            screen: None,
            decline: None,
            card: None,
            auth_code: None,
            awaiting: None,
        }
    }

    /// The currency of every amount of this payment.
    pub fn currency(&self) -> Currency {
        self.amount.currency
    }

    /// Merges a provider's report with the one transition rule and answers what it meant.
    /// Amounts merge monotonically whatever the state does; the decline reason, the auth code
    /// and what a pending payment waits for are taken only from a report that is not stale.
    pub fn observe(&mut self, obs: &Observation) -> Transition {
        let t = self.state.transition(obs.state);
        self.amounts
            .merge(obs.authorized, obs.captured, obs.refunded);
        if let Some(card) = &obs.card {
            self.card = Some(merge_card(self.card.take(), card));
        }
        if t == Transition::Ignore {
            return t;
        }
        self.state = obs.state;
        if obs.auth_code.is_some() {
            self.auth_code.clone_from(&obs.auth_code);
        }
        if self.state.is_unsuccessful() && obs.decline.is_some() {
            self.decline.clone_from(&obs.decline);
        }
        self.awaiting = if self.state == PaymentState::Pending {
            obs.awaiting
        } else {
            None
        };
        if self.state != PaymentState::Pending {
            self.screen = None;
        }
        t
    }

    /// How much was refunded, derived from the amounts.
    pub fn refund_progress(&self) -> RefundProgress {
        if self.amounts.refunded.0 <= 0 {
            RefundProgress::None
        } else if self.amounts.refunded >= self.amounts.captured {
            RefundProgress::Full
        } else {
            RefundProgress::Partial
        }
    }

    /// Whether `operation` may be sent now. `in_flight` is money-out of the same sort already
    /// sent and not yet resolved (refunds whose answer is outstanding), reserved against the
    /// bound so that two concurrent refunds cannot together exceed it.
    pub fn check(&self, operation: Operation, in_flight: Minor) -> Result<(), OperationRefused> {
        let name = operation.name();
        match operation {
            Operation::Capture(amount) | Operation::Refund(amount) if !amount.is_positive() => {
                Err(OperationRefused::NotPositive)
            }
            Operation::Capture(_) | Operation::Void if self.kind != PaymentKind::PreAuth => {
                Err(OperationRefused::WrongKind {
                    operation: name,
                    kind: self.kind.as_str(),
                })
            }
            Operation::Capture(_) | Operation::Void if self.state != PaymentState::Authorized => {
                Err(OperationRefused::WrongState {
                    operation: name,
                    state: self.state,
                })
            }
            Operation::Capture(amount) => {
                let available = Minor((self.amounts.authorized.0 - in_flight.0).max(0));
                if amount > available {
                    Err(OperationRefused::Exceeds {
                        asked: amount,
                        available,
                    })
                } else {
                    Ok(())
                }
            }
            Operation::Void => Ok(()),
            Operation::Refund(_) if self.state != PaymentState::Captured => {
                Err(OperationRefused::WrongState {
                    operation: name,
                    state: self.state,
                })
            }
            Operation::Refund(amount) => {
                let available = Minor((self.amounts.refundable().0 - in_flight.0).max(0));
                if amount > available {
                    Err(OperationRefused::Exceeds {
                        asked: amount,
                        available,
                    })
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Records the provider's answer to `operation`. Only an approval changes anything: a
    /// collection captures its amount, a refund adds to `refunded`, a void cancels.
    pub fn record(&mut self, operation: Operation, outcome: &OperationOutcome) -> Transition {
        if !outcome.approved {
            return Transition::Ignore;
        }
        match operation {
            Operation::Capture(amount) => {
                let captured = self.amounts.captured.0.saturating_add(amount.0);
                self.amounts.merge(None, Some(Minor(captured)), None);
                self.observe(&Observation::of(PaymentState::Captured))
            }
            Operation::Refund(amount) => {
                let refunded = self.amounts.refunded.0.saturating_add(amount.0);
                self.amounts.merge(None, None, Some(Minor(refunded)));
                Transition::Same
            }
            Operation::Void => self.observe(&Observation::of(PaymentState::Cancelled)),
        }
    }
}

/// Keeps what we knew of a card and fills the gaps from a newer report.
fn merge_card(old: Option<CardSummary>, new: &CardSummary) -> CardSummary {
    match old {
        None => new.clone(),
        Some(old) => CardSummary {
            scheme: new.scheme.clone().or(old.scheme),
            masked: new.masked.clone().or(old.masked),
            expiry: new.expiry.or(old.expiry),
            on_file: new.on_file.clone().or(old.on_file),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn gbp(minor: i64) -> Money {
        Money::new(minor, Currency::Gbp)
    }

    fn payment(kind: PaymentKind) -> Payment {
        Payment::pending(
            ProviderId::ConnectE,
            Opaque::new("tok-abcdef"),
            kind,
            "ORD-1",
            gbp(1000),
        )
    }

    fn approved() -> OperationOutcome {
        OperationOutcome {
            approved: true,
            decline: None,
            auth_code: None,
            provider_ref: None,
        }
    }

    #[test]
    fn sale_then_partial_refunds_then_over_refund_refused() {
        let mut p = payment(PaymentKind::Sale);
        let mut obs = Observation::of(PaymentState::Captured);
        obs.authorized = Some(Minor(1000));
        obs.captured = Some(Minor(1000));
        assert_eq!(p.observe(&obs), Transition::Advance);
        assert_eq!(p.amounts.authorized, Minor(1000));
        p.check(Operation::Refund(Minor(300)), Minor::ZERO).unwrap();
        p.record(Operation::Refund(Minor(300)), &approved());
        assert_eq!(p.refund_progress(), RefundProgress::Partial);
        p.record(Operation::Refund(Minor(300)), &approved());
        assert_eq!(p.amounts.refunded, Minor(600));
        assert_eq!(
            p.check(Operation::Refund(Minor(401)), Minor::ZERO),
            Err(OperationRefused::Exceeds {
                asked: Minor(401),
                available: Minor(400)
            })
        );
        assert_eq!(
            p.check(Operation::Refund(Minor(300)), Minor(200)),
            Err(OperationRefused::Exceeds {
                asked: Minor(300),
                available: Minor(200)
            })
        );
        p.record(Operation::Refund(Minor(400)), &approved());
        assert_eq!(p.refund_progress(), RefundProgress::Full);
        assert_eq!(p.state, PaymentState::Captured);
        assert!(matches!(
            p.check(Operation::Capture(Minor(1)), Minor::ZERO),
            Err(OperationRefused::WrongKind { .. })
        ));
    }

    #[test]
    fn preauth_collection_bounded_by_authorisation() {
        let mut p = payment(PaymentKind::PreAuth);
        assert!(matches!(
            p.check(Operation::Capture(Minor(10)), Minor::ZERO),
            Err(OperationRefused::WrongState {
                state: PaymentState::Pending,
                ..
            })
        ));
        let mut obs = Observation::of(PaymentState::Authorized);
        obs.authorized = Some(Minor(1000));
        p.observe(&obs);
        assert!(matches!(
            p.check(Operation::Refund(Minor(10)), Minor::ZERO),
            Err(OperationRefused::WrongState { .. })
        ));
        assert!(matches!(
            p.check(Operation::Capture(Minor(1001)), Minor::ZERO),
            Err(OperationRefused::Exceeds { .. })
        ));
        assert_eq!(
            p.check(Operation::Capture(Minor(0)), Minor::ZERO),
            Err(OperationRefused::NotPositive)
        );
        p.check(Operation::Capture(Minor(800)), Minor::ZERO)
            .unwrap();
        assert_eq!(
            p.record(Operation::Capture(Minor(800)), &approved()),
            Transition::Advance
        );
        assert_eq!(p.state, PaymentState::Captured);
        assert_eq!(p.amounts.captured, Minor(800));
        assert_eq!(p.amounts.refundable(), Minor(800));
        // a stale "authorized" poll does not undo the collection
        assert_eq!(p.observe(&obs), Transition::Ignore);
        assert_eq!(p.state, PaymentState::Captured);
    }

    #[test]
    fn refund_of_a_declined_payment_is_refused() {
        let mut p = payment(PaymentKind::Sale);
        let mut obs = Observation::of(PaymentState::Declined);
        obs.decline = Some(DeclineReason {
            category: DeclineCategory::Declined,
            provider_code: Some("5".into()),
            message: None,
        });
        p.observe(&obs);
        assert_eq!(
            p.decline.as_ref().map(|d| d.category),
            Some(DeclineCategory::Declined)
        );
        assert_eq!(
            p.check(Operation::Refund(Minor(1)), Minor::ZERO),
            Err(OperationRefused::WrongState {
                operation: "refund",
                state: PaymentState::Declined
            })
        );
    }

    #[test]
    fn void_cancels_an_authorisation_only() {
        let mut p = payment(PaymentKind::PreAuth);
        p.observe(&Observation::of(PaymentState::Authorized));
        p.check(Operation::Void, Minor::ZERO).unwrap();
        p.record(Operation::Void, &approved());
        assert_eq!(p.state, PaymentState::Cancelled);
        let declined = OperationOutcome {
            approved: false,
            ..approved()
        };
        let mut q = payment(PaymentKind::PreAuth);
        q.observe(&Observation::of(PaymentState::Authorized));
        assert_eq!(q.record(Operation::Void, &declined), Transition::Ignore);
        assert_eq!(q.state, PaymentState::Authorized);
    }

    #[test]
    fn card_expiry_rule() {
        let e = CardExpiry::new(2030, 12).unwrap();
        assert!(!e.is_expired_on(time::macros::date!(2030 - 12 - 31)));
        assert!(e.is_expired_on(time::macros::date!(2031 - 01 - 01)));
        assert_eq!(e.mm_yy(), "12/30");
        assert!(CardExpiry::new(2030, 13).is_none());
    }

    #[test]
    fn debug_hides_tokens_and_card_references() {
        let mut p = payment(PaymentKind::Sale);
        p.reference = Opaque::new("SECRET-TOKEN-VALUE-0123456789");
        p.card = Some(CardSummary {
            scheme: Some("VISA".into()),
            masked: Some("445653******1096".into()),
            expiry: CardExpiry::new(2030, 12),
            on_file: Some(Opaque::new("181025085937854101886353")),
        });
        p.screen = Some(CashierScreen::ScriptCheckout {
            script_url: "https://web.example/client.js".into(),
            payment_token: Opaque::new("SECRET-TOKEN-VALUE-0123456789"),
            form: CheckoutForm::CardDetails,
        });
        let text = format!("{p:?}");
        assert!(!text.contains("SECRET-TOKEN"), "{text}");
        assert!(!text.contains("181025085937854101886353"), "{text}");
    }

    #[test]
    fn provider_names() {
        assert_eq!("connect-e".parse::<ProviderId>(), Ok(ProviderId::ConnectE));
        assert_eq!("sensepass".parse::<ProviderId>(), Ok(ProviderId::SensePass));
        assert_eq!("acquired".parse::<ProviderId>(), Ok(ProviderId::Acquired));
        assert!("stripe".parse::<ProviderId>().is_err());
        assert_eq!(
            serde_json::to_string(&ProviderId::ConnectE).unwrap(),
            "\"connect-e\""
        );
        assert_eq!(
            serde_json::to_string(&PaymentKind::PreAuth).unwrap(),
            "\"preauth\""
        );
    }

    fn any_obs() -> impl Strategy<Value = Observation> {
        (
            prop::sample::select(PaymentState::ALL.to_vec()),
            prop::option::of(0i64..2000),
            prop::option::of(0i64..2000),
            prop::option::of(0i64..2000),
        )
            .prop_map(|(s, a, c, r)| {
                let mut o = Observation::of(s);
                o.authorized = a.map(Minor);
                o.captured = c.map(Minor);
                o.refunded = r.map(Minor);
                o
            })
    }

    proptest! {
        #[test]
        fn amounts_only_grow_and_captured_is_authorised(seen in prop::collection::vec(any_obs(), 0..30)) {
            let mut p = payment(PaymentKind::Sale);
            let mut before = p.amounts;
            for o in &seen {
                p.observe(o);
                prop_assert!(p.amounts.authorized >= before.authorized);
                prop_assert!(p.amounts.captured >= before.captured);
                prop_assert!(p.amounts.refunded >= before.refunded);
                prop_assert!(p.amounts.authorized >= p.amounts.captured);
                before = p.amounts;
            }
        }

        #[test]
        fn checked_refunds_never_exceed_the_capture(
            captured in 1i64..5000,
            asks in prop::collection::vec(1i64..3000, 0..20),
        ) {
            let mut p = payment(PaymentKind::Sale);
            let mut obs = Observation::of(PaymentState::Captured);
            obs.captured = Some(Minor(captured));
            p.observe(&obs);
            for a in asks {
                if p.check(Operation::Refund(Minor(a)), Minor::ZERO).is_ok() {
                    p.record(Operation::Refund(Minor(a)), &approved());
                }
                prop_assert!(p.amounts.refunded <= p.amounts.captured);
            }
        }
    }
}
