//! Cart lines as SensePass models them (spec §7.3), with exact totals.
//!
//! A line's total is `(amount + vat − discount) × quantity`, where `amount`, `vat` and `discount`
//! are per-unit values in the transaction's minor units (`vat` is an absolute amount, not a rate).
//!
//! Decisions where the spec is silent (see docs/DECISIONS.md):
//! - Product money fields are in the same unit as the transaction `amount`: minor units when
//!   `isCent` is true, which is what every SensePass example sends.
//! - `quantity` may be fractional (weighed goods with a `measurementUnit`), exact to 1/1000; a
//!   fractional line total is rounded half away from zero to a whole minor unit.
//! - Sub-products (a burger's extra cheese) are priced per unit of their parent: the parent's
//!   unit price includes the sum of its sub-products' line totals, then the parent's quantity
//!   multiplies the whole.

use crate::invalid::InvalidParameters;
use crate::money::{Minor, MoneyError};
use serde::{Deserialize, Serialize};

/// A quantity with three exact decimals, stored as thousandths (`1.5` → 1500).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(i64);

impl Quantity {
    /// Thousandths in one unit.
    pub const SCALE: i64 = 1000;
    /// Exactly one.
    pub const ONE: Quantity = Quantity(Self::SCALE);

    /// A whole number of units.
    pub fn units(n: i64) -> Option<Quantity> {
        n.checked_mul(Self::SCALE).map(Quantity)
    }

    /// From thousandths of a unit.
    pub fn from_milli(milli: i64) -> Quantity {
        Quantity(milli)
    }

    /// Thousandths of a unit.
    pub fn milli(self) -> i64 {
        self.0
    }

    /// True when the quantity is a whole number.
    pub fn is_whole(self) -> bool {
        self.0 % Self::SCALE == 0
    }

    /// Parses the decimal text of a JSON number (`2`, `1.5`, `0.125`); more than three
    /// significant decimals is an error, never a silent rounding.
    pub fn parse(text: &str) -> Result<Quantity, String> {
        let (negative, body) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(int) || (body.contains('.') && !digits(frac)) {
            return Err(format!("`{text}` is not a decimal quantity"));
        }
        let frac = frac.trim_end_matches('0');
        if frac.len() > 3 {
            return Err(format!("`{text}` has more than 3 decimals"));
        }
        let int: i64 = int.parse().map_err(|_| format!("`{text}` is too large"))?;
        let frac_milli: i64 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<3}").parse().map_err(|_| format!("`{text}` is not a quantity"))?
        };
        let milli = int
            .checked_mul(Self::SCALE)
            .and_then(|v| v.checked_add(frac_milli))
            .ok_or_else(|| format!("`{text}` is too large"))?;
        Ok(Quantity(if negative { -milli } else { milli }))
    }
}

impl Default for Quantity {
    /// SensePass treats a missing quantity as one unit.
    fn default() -> Self {
        Quantity::ONE
    }
}

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let (int, frac) = (abs / 1000, abs % 1000);
        if frac == 0 {
            write!(f, "{sign}{int}")
        } else {
            let s = format!("{frac:03}");
            write!(f, "{sign}{int}.{}", s.trim_end_matches('0'))
        }
    }
}

impl Serialize for Quantity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.is_whole() {
            s.serialize_i64(self.0 / Self::SCALE)
        } else {
            // A quantity is not money: a float with ≤ 3 decimals round-trips exactly through
            // its shortest representation, which is what JSON readers will see.
            s.serialize_f64(self.0 as f64 / Self::SCALE as f64)
        }
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Accept a JSON number or a numeric string (some POS systems quote numbers).
        let v = serde_json::Value::deserialize(d)?;
        let text = match &v {
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::String(s) => s.trim().to_string(),
            other => return Err(serde::de::Error::custom(format!("expected a number, got {other}"))),
        };
        Quantity::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// One cart line (spec §7.3). Field names on the wire are SensePass's camelCase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    /// Item name shown to the consumer and on receipts.
    #[serde(default)]
    pub name: String,
    /// Units sold; may be fractional for weighed goods.
    #[serde(default)]
    pub quantity: Quantity,
    /// Price of one unit, minor units.
    #[serde(default)]
    pub amount: Minor,
    /// Discount per unit, minor units.
    #[serde(default)]
    pub discount: Minor,
    /// Tax per unit as an absolute amount, minor units.
    #[serde(default)]
    pub vat: Minor,
    /// The POS's own identifier for the item (SKU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos_identifier: Option<String>,
    /// Line number; SensePass requires it for receipt generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_number: Option<i64>,
    /// Link to the product page.
    #[serde(default, rename = "productUrl", skip_serializing_if = "Option::is_none")]
    pub product_url: Option<String>,
    /// Link to the product image.
    #[serde(default, rename = "productImageUrl", skip_serializing_if = "Option::is_none")]
    pub product_image_url: Option<String>,
    /// Unit for weighed goods, e.g. `oz`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurement_unit: Option<String>,
    /// Add-ons priced per unit of this line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sub_products: Vec<Product>,
}

impl Product {
    /// A plain line with a name, a whole quantity and a unit price.
    pub fn simple(name: &str, quantity: i64, amount: i64) -> Product {
        Product {
            name: name.to_string(),
            quantity: Quantity::units(quantity).unwrap_or(Quantity::ONE),
            amount: Minor(amount),
            discount: Minor::ZERO,
            vat: Minor::ZERO,
            pos_identifier: None,
            item_number: None,
            product_url: None,
            product_image_url: None,
            measurement_unit: None,
            sub_products: Vec::new(),
        }
    }

    /// Price of one unit including tax, less discount, plus sub-products.
    pub fn unit_total(&self) -> Result<Minor, MoneyError> {
        let mut unit = self.amount.checked_add(self.vat)?.checked_sub(self.discount)?;
        for sub in &self.sub_products {
            unit = unit.checked_add(sub.line_total()?)?;
        }
        Ok(unit)
    }

    /// `(amount + vat − discount + sub-products) × quantity`, rounded half away from zero.
    pub fn line_total(&self) -> Result<Minor, MoneyError> {
        let unit = i128::from(self.unit_total()?.0);
        let product = unit * i128::from(self.quantity.milli());
        let scale = i128::from(Quantity::SCALE);
        let half = scale / 2;
        let rounded = if product >= 0 { (product + half) / scale } else { (product - half) / scale };
        i64::try_from(rounded).map(Minor).map_err(|_| MoneyError::Overflow)
    }

    /// Sum of the line totals of a cart.
    pub fn cart_total(products: &[Product]) -> Result<Minor, MoneyError> {
        products.iter().try_fold(Minor::ZERO, |acc, p| acc.checked_add(p.line_total()?))
    }

    /// Sum of `vat × quantity` over a cart, for receipts.
    pub fn cart_vat(products: &[Product]) -> Result<Minor, MoneyError> {
        products.iter().try_fold(Minor::ZERO, |acc, p| {
            let vat = i128::from(p.vat.0) * i128::from(p.quantity.milli()) / 1000;
            let vat = i64::try_from(vat).map_err(|_| MoneyError::Overflow)?;
            acc.checked_add(Minor(vat))
        })
    }

    /// Validates one line and its sub-products, naming fields under `path` (e.g. `products[0]`).
    pub fn validate(&self, path: &str, out: &mut InvalidParameters) {
        if self.quantity.milli() <= 0 {
            out.push(format!("{path}.quantity"), "must be greater than 0");
        }
        if self.amount.0 < 0 {
            out.push(format!("{path}.amount"), "must not be negative");
        }
        if self.vat.0 < 0 {
            out.push(format!("{path}.vat"), "must not be negative");
        }
        if self.discount.0 < 0 {
            out.push(format!("{path}.discount"), "must not be negative");
        }
        for (i, sub) in self.sub_products.iter().enumerate() {
            sub.validate(&format!("{path}.subProducts[{i}]"), out);
        }
        if self.line_total().is_err() {
            out.push(format!("{path}"), "line total overflows");
        }
    }

    /// Validates a whole cart.
    pub fn validate_all(products: &[Product], path: &str, out: &mut InvalidParameters) {
        for (i, p) in products.iter().enumerate() {
            p.validate(&format!("{path}[{i}]"), out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_total_formula() {
        let mut p = Product::simple("Coffee", 3, 250);
        p.vat = Minor(40);
        p.discount = Minor(15);
        assert_eq!(p.line_total(), Ok(Minor((250 + 40 - 15) * 3)));
    }

    #[test]
    fn sub_products_are_per_parent_unit() {
        let mut burger = Product::simple("Burger", 2, 900);
        burger.sub_products.push(Product::simple("Cheese", 1, 100));
        assert_eq!(burger.line_total(), Ok(Minor(2000)));
    }

    #[test]
    fn fractional_quantity_rounds_half_away_from_zero() {
        let mut p = Product::simple("Cheese by weight", 1, 333);
        p.quantity = Quantity::parse("1.5").unwrap();
        assert_eq!(p.line_total(), Ok(Minor(500))); // 499.5 → 500
        assert_eq!(Quantity::parse("0.125").unwrap().milli(), 125);
        assert!(Quantity::parse("0.1255").is_err());
        assert_eq!(Quantity::parse("2.500").unwrap().to_string(), "2.5");
    }

    #[test]
    fn wire_shape() {
        let json = r#"{"name":"Tea","quantity":2,"amount":190,"vat":0,"discount":0,
            "posIdentifier":"T1","itemNumber":1,"subProducts":[{"name":"Milk","amount":10}]}"#;
        let p: Product = serde_json::from_str(json).unwrap();
        assert_eq!(p.line_total(), Ok(Minor(400)));
        let back = serde_json::to_value(&p).unwrap();
        assert_eq!(back["posIdentifier"], "T1");
        assert_eq!(back["subProducts"][0]["quantity"], 1);
        assert_eq!(back["quantity"], 2);
    }

    #[test]
    fn validation_names_every_field() {
        let mut p = Product::simple("Bad", 1, -1);
        p.quantity = Quantity::from_milli(-1000);
        p.vat = Minor(-1);
        p.sub_products.push(Product::simple("Worse", 1, -5));
        let mut out = InvalidParameters::new();
        Product::validate_all(&[p], "products", &mut out);
        assert_eq!(
            out.names(),
            vec![
                "products[0].quantity",
                "products[0].amount",
                "products[0].vat",
                "products[0].subProducts[0].amount"
            ]
        );
    }
}
