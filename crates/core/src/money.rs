//! Money: integer minor units tied to a currency, and exact decimal conversion.
//!
//! Why integers: a float cannot hold 0.10 exactly, and a till that is off by one cent on a refund
//! is wrong in a way a store manager will find. Every amount inside Till Agent is an `i64` count of
//! the currency's minor unit (cents, agorot, kopecks). Providers use other formats on the wire —
//! SensePass answers `amount` as a major-unit string (`"12.5"` for 1250 cents) — and those
//! conversions happen here, exactly, by string arithmetic, never through `f64`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Errors from money arithmetic and conversion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The result does not fit in an `i64` of minor units.
    #[error("amount overflow")]
    Overflow,
    /// Two amounts of different currencies were combined.
    #[error("currency mismatch: {0} vs {1}")]
    CurrencyMismatch(Currency, Currency),
    /// A currency code we do not support.
    #[error("unknown currency `{0}`")]
    UnknownCurrency(String),
    /// A decimal string that is not a plain decimal number (`12`, `12.5`, `-0.05`).
    #[error("not a decimal amount: `{0}`")]
    InvalidDecimal(String),
    /// More fractional digits than the currency has minor-unit digits (e.g. `1.234` USD).
    #[error("`{0}` has more decimals than {1} allows")]
    TooPrecise(String, Currency),
}

/// An amount in minor units (cents for USD). Signed so that differences and refunds can be
/// expressed; validation decides where negatives are allowed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Minor(pub i64);

impl Minor {
    /// Zero minor units.
    pub const ZERO: Minor = Minor(0);

    /// Checked addition.
    pub fn checked_add(self, other: Minor) -> Result<Minor, MoneyError> {
        self.0.checked_add(other.0).map(Minor).ok_or(MoneyError::Overflow)
    }

    /// Checked subtraction.
    pub fn checked_sub(self, other: Minor) -> Result<Minor, MoneyError> {
        self.0.checked_sub(other.0).map(Minor).ok_or(MoneyError::Overflow)
    }

    /// Checked multiplication by an integer factor.
    pub fn checked_mul(self, factor: i64) -> Result<Minor, MoneyError> {
        self.0.checked_mul(factor).map(Minor).ok_or(MoneyError::Overflow)
    }

    /// Checked sum of many amounts.
    pub fn checked_sum<I: IntoIterator<Item = Minor>>(items: I) -> Result<Minor, MoneyError> {
        items.into_iter().try_fold(Minor::ZERO, Minor::checked_add)
    }

    /// True when strictly positive.
    pub fn is_positive(self) -> bool {
        self.0 > 0
    }
}

impl fmt::Display for Minor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The ISO 4217 currencies Till Agent handles. SensePass documents USD, CAD, ILS, EUR and RUB;
/// GBP is here for the Paymentsense gateway. Adding one is adding a variant and its facts below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Currency {
    /// US dollar.
    Usd,
    /// Canadian dollar.
    Cad,
    /// Israeli new shekel.
    Ils,
    /// Euro.
    Eur,
    /// Russian ruble.
    Rub,
    /// Pound sterling.
    Gbp,
}

/// Bound of a single amount in major units (see [`Currency::max_amount`]); docs/DECISIONS.md.
pub const MAX_AMOUNT_MAJOR: i64 = 10_000_000;

impl Currency {
    /// Every supported currency, for listings and tests.
    pub const ALL: [Currency; 6] =
        [Currency::Usd, Currency::Cad, Currency::Ils, Currency::Eur, Currency::Rub, Currency::Gbp];

    /// The ISO 4217 alphabetic code, e.g. `"USD"`.
    pub fn code(self) -> &'static str {
        match self {
            Currency::Usd => "USD",
            Currency::Cad => "CAD",
            Currency::Ils => "ILS",
            Currency::Eur => "EUR",
            Currency::Rub => "RUB",
            Currency::Gbp => "GBP",
        }
    }

    /// Number of minor-unit digits (ISO 4217 "exponent"): 2 for all currencies supported today.
    pub fn exponent(self) -> u32 {
        match self {
            Currency::Usd
            | Currency::Cad
            | Currency::Ils
            | Currency::Eur
            | Currency::Rub
            | Currency::Gbp => 2,
        }
    }

    /// Display symbol for receipts and the cashier screen.
    pub fn symbol(self) -> &'static str {
        match self {
            Currency::Usd => "$",
            Currency::Cad => "CA$",
            Currency::Ils => "₪",
            Currency::Eur => "€",
            Currency::Rub => "₽",
            Currency::Gbp => "£",
        }
    }

    /// Parses an ISO code. Exact upper case only: what we send must be canonical, and what the POS
    /// sends in another case is rejected by validation with a clear reason rather than guessed at.
    pub fn from_code(code: &str) -> Result<Currency, MoneyError> {
        Currency::ALL
            .into_iter()
            .find(|c| c.code() == code)
            .ok_or_else(|| MoneyError::UnknownCurrency(code.to_string()))
    }

    /// The largest single amount the agent accepts in this currency: [`MAX_AMOUNT_MAJOR`] major
    /// units (10,000,000.00 for a two-digit currency). Far below `i64::MAX`, so that totals of
    /// millions of payments cannot overflow and a typo of extra zeros is refused.
    pub fn max_amount(self) -> Minor {
        Minor(MAX_AMOUNT_MAJOR * self.scale())
    }

    /// `10^exponent`, the number of minor units in one major unit.
    fn scale(self) -> i64 {
        10_i64.pow(self.exponent())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::from_code(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Currency::from_code(&s).map_err(serde::de::Error::custom)
    }
}

/// An amount with its currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// The amount in minor units of `currency`.
    pub minor: Minor,
    /// The currency.
    pub currency: Currency,
}

impl Money {
    /// Builds an amount from minor units.
    pub fn new(minor: i64, currency: Currency) -> Money {
        Money { minor: Minor(minor), currency }
    }

    /// Checked addition; both amounts must share a currency.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        Ok(Money { minor: self.minor.checked_add(other.minor)?, currency: self.currency })
    }

    /// Checked subtraction; both amounts must share a currency.
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        Ok(Money { minor: self.minor.checked_sub(other.minor)?, currency: self.currency })
    }

    fn same_currency(self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(self.currency, other.currency))
        }
    }

    /// The shortest exact major-unit decimal, as SensePass writes it: 200 → `"2"`,
    /// 150 → `"1.5"`, 123456 → `"1234.56"`, -5 → `"-0.05"`.
    pub fn to_major_string(self) -> String {
        minor_to_major_string(self.minor, self.currency)
    }

    /// The major-unit decimal with all minor digits, for people: 200 → `"2.00"`.
    pub fn to_major_string_fixed(self) -> String {
        let exp = self.currency.exponent() as usize;
        let (sign, int, frac) = split(self.minor, self.currency);
        if exp == 0 {
            format!("{sign}{int}")
        } else {
            format!("{sign}{int}.{frac:0exp$}")
        }
    }

    /// Amount with symbol for receipts and screens, e.g. `€12.50`, `-£0.05`.
    pub fn display(self) -> String {
        let fixed = self.to_major_string_fixed();
        match fixed.strip_prefix('-') {
            Some(rest) => format!("-{}{}", self.currency.symbol(), rest),
            None => format!("{}{}", self.currency.symbol(), fixed),
        }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_major_string_fixed(), self.currency)
    }
}

/// Splits an amount into sign, integer part and fractional minor digits.
fn split(minor: Minor, currency: Currency) -> (&'static str, u64, u64) {
    let scale = currency.scale().unsigned_abs();
    let abs = minor.0.unsigned_abs();
    let sign = if minor.0 < 0 { "-" } else { "" };
    (sign, abs / scale, abs % scale)
}

/// The shortest exact major-unit decimal for `minor` in `currency` (see [`Money::to_major_string`]).
pub fn minor_to_major_string(minor: Minor, currency: Currency) -> String {
    let exp = currency.exponent() as usize;
    let (sign, int, frac) = split(minor, currency);
    if frac == 0 {
        return format!("{sign}{int}");
    }
    let digits = format!("{frac:0exp$}");
    format!("{sign}{int}.{}", digits.trim_end_matches('0'))
}

/// Parses a major-unit decimal string (`"12"`, `"12.5"`, `"12.50"`, `"-0.05"`) into minor units,
/// exactly. Extra fractional digits are accepted only when they are zeros (`"1.500"`).
pub fn parse_major(text: &str, currency: Currency) -> Result<Minor, MoneyError> {
    let invalid = || MoneyError::InvalidDecimal(text.to_string());
    let trimmed = text.trim();
    let (negative, body) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed),
    };
    let (int_part, frac_part) = match body.split_once('.') {
        Some((i, f)) => (i, f),
        None => (body, ""),
    };
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int_part.is_empty() || !digits_only(int_part) || !digits_only(frac_part) {
        return Err(invalid());
    }
    if body.contains('.') && frac_part.is_empty() {
        return Err(invalid());
    }
    let exp = currency.exponent() as usize;
    let (kept, extra) = if frac_part.len() > exp { frac_part.split_at(exp) } else { (frac_part, "") };
    if extra.bytes().any(|b| b != b'0') {
        return Err(MoneyError::TooPrecise(text.to_string(), currency));
    }
    // Accumulate in i128 so that huge inputs are reported as overflow, never wrapped.
    let mut value: i128 = 0;
    for b in int_part.bytes() {
        value = value * 10 + i128::from(b - b'0');
        if value > i128::from(i64::MAX) + 1 {
            return Err(MoneyError::Overflow);
        }
    }
    let mut frac_value: i128 = 0;
    for b in kept.bytes() {
        frac_value = frac_value * 10 + i128::from(b - b'0');
    }
    frac_value *= 10_i128.pow((exp - kept.len()) as u32);
    let magnitude = value * i128::from(currency.scale()) + frac_value;
    let signed = if negative { -magnitude } else { magnitude };
    i64::try_from(signed).map(Minor).map_err(|_| MoneyError::Overflow)
}

/// Converts a JSON number in **major** units (SensePass sometimes sends `amount` as a number,
/// and `refundAmount` examples are major-unit decimals) into minor units, exactly: the number's
/// shortest decimal text is parsed, so `1.23` becomes 123 cents, never 122.
pub fn major_json_number_to_minor(
    number: &serde_json::Number,
    currency: Currency,
) -> Result<Minor, MoneyError> {
    let text = number.to_string();
    if text.contains(['e', 'E']) {
        return Err(MoneyError::InvalidDecimal(text));
    }
    parse_major(&text, currency)
}

/// Converts a JSON number that should hold an integer count of minor units (a POS's `amount`
/// with `isCent: true`). `200` and `200.0` are accepted; `200.5` is not a whole number of cents.
pub fn minor_json_number(number: &serde_json::Number) -> Result<Minor, MoneyError> {
    if let Some(i) = number.as_i64() {
        return Ok(Minor(i));
    }
    if number.as_u64().is_some() {
        return Err(MoneyError::Overflow);
    }
    let text = number.to_string();
    match text.split_once('.') {
        Some((int, frac)) if !text.contains(['e', 'E']) && frac.bytes().all(|b| b == b'0') => {
            int.parse::<i64>().map(Minor).map_err(|_| MoneyError::Overflow)
        }
        _ => Err(MoneyError::InvalidDecimal(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensepass_examples() {
        assert_eq!(Money::new(200, Currency::Usd).to_major_string(), "2");
        assert_eq!(Money::new(100, Currency::Usd).to_major_string(), "1");
        assert_eq!(Money::new(123456, Currency::Usd).to_major_string(), "1234.56");
        assert_eq!(Money::new(150, Currency::Usd).to_major_string(), "1.5");
        assert_eq!(Money::new(-5, Currency::Usd).to_major_string(), "-0.05");
        assert_eq!(parse_major("2", Currency::Usd), Ok(Minor(200)));
        assert_eq!(parse_major("10.21", Currency::Usd), Ok(Minor(1021)));
        assert_eq!(parse_major("1.500", Currency::Usd), Ok(Minor(150)));
        assert!(matches!(parse_major("1.234", Currency::Usd), Err(MoneyError::TooPrecise(..))));
        for bad in ["", "-", "1.", ".5", "1,5", "1e3", "abc", "1.2.3", "+1"] {
            assert!(parse_major(bad, Currency::Usd).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn json_numbers() {
        let n: serde_json::Number = serde_json::from_str("1.23").unwrap();
        assert_eq!(major_json_number_to_minor(&n, Currency::Usd), Ok(Minor(123)));
        let n: serde_json::Number = serde_json::from_str("200").unwrap();
        assert_eq!(minor_json_number(&n), Ok(Minor(200)));
        let n: serde_json::Number = serde_json::from_str("200.0").unwrap();
        assert_eq!(minor_json_number(&n), Ok(Minor(200)));
        let n: serde_json::Number = serde_json::from_str("200.5").unwrap();
        assert!(minor_json_number(&n).is_err());
    }

    #[test]
    fn display_and_currency_codes() {
        assert_eq!(Money::new(1250, Currency::Eur).display(), "€12.50");
        assert_eq!(Money::new(-5, Currency::Gbp).display(), "-£0.05");
        assert_eq!(Money::new(100, Currency::Ils).to_string(), "1.00 ILS");
        assert_eq!(Currency::from_code("RUB"), Ok(Currency::Rub));
        assert!(Currency::from_code("usd").is_err());
        assert!(Currency::from_code("XYZ").is_err());
        assert_eq!(serde_json::to_string(&Currency::Cad).unwrap(), "\"CAD\"");
    }

    #[test]
    fn currency_mismatch_is_an_error() {
        let a = Money::new(1, Currency::Usd);
        let b = Money::new(1, Currency::Eur);
        assert_eq!(a.checked_add(b), Err(MoneyError::CurrencyMismatch(Currency::Usd, Currency::Eur)));
    }
}
