//! Property tests: money arithmetic never panics and conversions never drift.

use proptest::prelude::*;
use till_core::money::{minor_to_major_string, parse_major};
use till_core::{Currency, Minor, Money, Product, Quantity};

fn currency() -> impl Strategy<Value = Currency> {
    prop::sample::select(Currency::ALL.to_vec())
}

proptest! {
    /// Minor → major string → minor is the identity for every i64 and currency.
    #[test]
    fn major_string_round_trip(v in any::<i64>(), c in currency()) {
        let s = minor_to_major_string(Minor(v), c);
        prop_assert_eq!(parse_major(&s, c), Ok(Minor(v)));
        let fixed = Money::new(v, c).to_major_string_fixed();
        prop_assert_eq!(parse_major(&fixed, c), Ok(Minor(v)));
    }

    /// Checked arithmetic returns an error on overflow instead of panicking or wrapping.
    #[test]
    fn checked_ops_never_panic(a in any::<i64>(), b in any::<i64>(), k in any::<i64>()) {
        let sum = Minor(a).checked_add(Minor(b));
        prop_assert_eq!(sum.ok().map(|m| m.0), a.checked_add(b));
        let diff = Minor(a).checked_sub(Minor(b));
        prop_assert_eq!(diff.ok().map(|m| m.0), a.checked_sub(b));
        let prod = Minor(a).checked_mul(k);
        prop_assert_eq!(prod.ok().map(|m| m.0), a.checked_mul(k));
    }

    /// Splitting an amount into many small additions yields the same total: no rounding drift.
    #[test]
    fn no_drift_when_summing(parts in prop::collection::vec(0i64..1_000_000, 0..200)) {
        let total = Minor::checked_sum(parts.iter().copied().map(Minor)).unwrap();
        prop_assert_eq!(total.0, parts.iter().sum::<i64>());
        // The same through the wire format: sum of parsed strings equals parsed sum.
        let via_wire: i64 = parts.iter()
            .map(|p| parse_major(&minor_to_major_string(Minor(*p), Currency::Usd), Currency::Usd).unwrap().0)
            .sum();
        prop_assert_eq!(via_wire, total.0);
    }

    /// Parsing arbitrary text never panics.
    #[test]
    fn parse_never_panics(s in "\\PC{0,40}", c in currency()) {
        let _ = parse_major(&s, c);
        let _ = Quantity::parse(&s);
    }

    /// Line totals of whole quantities are exact; any input yields a value or an error, never a panic.
    #[test]
    fn line_totals_exact_or_error(amount in any::<i64>(), vat in any::<i64>(), discount in any::<i64>(), q in 1i64..10_000) {
        let mut p = Product::simple("x", q, 0);
        p.amount = Minor(amount);
        p.vat = Minor(vat);
        p.discount = Minor(discount);
        let expected = (amount as i128 + vat as i128 - discount as i128) * q as i128;
        match p.line_total() {
            Ok(total) => prop_assert_eq!(total.0 as i128, expected),
            Err(_) => prop_assert!(
                expected > i64::MAX as i128 || expected < i64::MIN as i128
                || (amount as i128 + vat as i128) > i64::MAX as i128
                || (amount as i128 + vat as i128) < i64::MIN as i128
                || (amount as i128 + vat as i128 - discount as i128) > i64::MAX as i128
                || (amount as i128 + vat as i128 - discount as i128) < i64::MIN as i128
            ),
        }
    }
}
