//! The receipt model: what the agent hands over to be printed.
//!
//! Every amount is already in minor units of [`Receipt::currency`]; this crate formats, it does
//! not recompute what the journal knows. The only arithmetic done here is the net after refunds
//! and the per-line VAT/discount of [`ReceiptLine::from_product`], both checked.

use crate::ReceiptError;
use serde::Serialize;
use till_core::{Currency, Minor, MoneyError, Product, Quantity};

/// The store as it appears at the top of the receipt.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Merchant {
    /// Business name, printed large and centred (e.g. "Sandbox Coffee").
    pub name: String,
    /// Street address, printed under the name when known; wrapped if long.
    pub address: Option<String>,
    /// Phone number, printed under the address when known.
    pub phone: Option<String>,
}

/// One line of the receipt, with sub-lines (add-ons) nested under it.
///
/// The amounts are what a customer reads, not SensePass's per-unit wire values: `unit` is the
/// price of one unit, while `vat`, `discount` and `total` are for the whole line. A sub-line is
/// priced per unit of its parent (DECISIONS.md, "product amount"), so its `total` is per parent
/// unit and is already included in the parent's `total`; the receipt shows sub-lines without a
/// total of their own so nothing looks counted twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptLine {
    /// Item name as the POS sent it; wrapped when longer than the roll is wide.
    pub name: String,
    /// Units sold; printed as `2` or `1.5` before the unit price.
    pub quantity: Quantity,
    /// Price of one unit before VAT and discount.
    pub unit: Minor,
    /// VAT for the whole line; printed only when non-zero.
    pub vat: Minor,
    /// Discount for the whole line, as a positive amount; printed (negated) only when non-zero.
    pub discount: Minor,
    /// What the line costs in total, VAT, discount and sub-lines included.
    pub total: Minor,
    /// Add-ons of this line (extra cheese on a burger), printed indented below it.
    pub sub_lines: Vec<ReceiptLine>,
}

impl ReceiptLine {
    /// Builds a receipt line from a SensePass cart line, so the agent can print exactly what
    /// the POS sent. VAT and discount are per unit on the wire and become line amounts here
    /// (× quantity, rounded half away from zero like [`Product::line_total`]).
    pub fn from_product(p: &Product) -> Result<ReceiptLine, ReceiptError> {
        Ok(ReceiptLine {
            name: p.name.clone(),
            quantity: p.quantity,
            unit: p.amount,
            vat: times_quantity(p.vat, p.quantity)?,
            discount: times_quantity(p.discount, p.quantity)?,
            total: p.line_total()?,
            sub_lines: p
                .sub_products
                .iter()
                .map(ReceiptLine::from_product)
                .collect::<Result<_, _>>()?,
        })
    }
}

/// `amount × quantity`, rounded half away from zero to a whole minor unit.
fn times_quantity(amount: Minor, quantity: Quantity) -> Result<Minor, MoneyError> {
    let product = i128::from(amount.0) * i128::from(quantity.milli());
    let scale = i128::from(Quantity::SCALE);
    let half = scale / 2;
    let rounded = if product >= 0 {
        (product + half) / scale
    } else {
        (product - half) / scale
    };
    i64::try_from(rounded)
        .map(Minor)
        .map_err(|_| MoneyError::Overflow)
}

/// How the payment was approved, as far as the provider told us. Every field is optional
/// because providers fill them unevenly; the receipt prints the ones present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    /// The provider's confirmation number, which a customer quotes when disputing a charge.
    pub confirmation: Option<String>,
    /// Card brand or wallet, e.g. "Visa", "Apple Pay".
    pub payment_method: Option<String>,
    /// The card as the provider masked it. Whatever arrives, only its last four digits are
    /// printed (see [`mask_card`]), so a full card number can never reach paper — nor the
    /// receipt's JSON form, which is serialised through the same function.
    #[serde(serialize_with = "serialize_mask")]
    pub card_mask: Option<String>,
    /// The acquirer's authorisation code.
    pub auth_number: Option<String>,
    /// When the payment was approved, already formatted in local time.
    pub approved_at: Option<String>,
}

/// One refund of the transaction, delivered or waiting in the offline outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundLine {
    /// Amount refunded, positive, in minor units of the receipt currency.
    pub amount: Minor,
    /// When the refund was asked for (queued) or approved, already formatted in local time.
    pub at: String,
    /// The provider's refund confirmation, once it has one.
    pub confirmation: Option<String>,
    /// True while the refund sits in the outbox because SensePass was unreachable; printed as
    /// "pending" so the customer knows the money has not moved yet.
    pub queued: bool,
}

/// Everything printed on one receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    /// The store.
    pub merchant: Merchant,
    /// SensePass's transaction number (56 hex characters); printed in full, shrunk to fit.
    pub transaction_number: Option<String>,
    /// The POS's order ID, which links the receipt to the store's own records.
    pub order_id: Option<String>,
    /// Date and time of the payment, already formatted in local time; also written into the
    /// PDF's subject. The PDF creation date is set separately (see [`crate::render_pdf_at`]).
    pub date: String,
    /// Currency of every amount on the receipt.
    pub currency: Currency,
    /// The cart lines, in POS order. May be empty (a payment without a cart).
    pub lines: Vec<ReceiptLine>,
    /// The amount charged. Printed as the total even when the lines add up to something else
    /// (then `note` should say so).
    pub total: Minor,
    /// VAT included in `total`; the subtotal printed is `total − vat_total`.
    pub vat_total: Minor,
    /// Human status of the transaction, e.g. "Approved", "Partially refunded".
    pub status: String,
    /// Whether money was taken (the payment was approved, whatever was refunded since). A
    /// receipt of a cancelled, declined, expired or never-started payment, or of a cart, is
    /// printed with a NOT PAID mark so that it can never pass for proof of payment.
    pub paid: bool,
    /// Who carried the payment, as people name it ("SensePass", "Paymentsense Connect-E"):
    /// the customer's statement shows that name, and support needs it to find the payment.
    pub provider: Option<String>,
    /// Approval details, when the payment was approved.
    pub approval: Option<Approval>,
    /// Refunds, delivered and queued, oldest first.
    pub refunds: Vec<RefundLine>,
    /// The transaction's payment URL, drawn as a QR code at the bottom.
    pub qr_data: Option<String>,
    /// A remark for the reader, e.g. "Items do not add up to the amount charged".
    pub note: Option<String>,
}

/// Serialises a card mask as [`mask_card`] prints it.
fn serialize_mask<S: serde::Serializer>(mask: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match mask {
        Some(m) => s.serialize_some(&mask_card(m)),
        None => s.serialize_none(),
    }
}

/// Reduces whatever a provider calls a card mask to `**** 1234` (its last four digits).
///
/// Providers send `532610******1234`, `************1234`, `1234` or, by mistake, a full card
/// number; all of them print as `**** 1234`. A value with no digits at all (a wallet name such
/// as "Apple Pay") is not a card number and is returned unchanged; one with fewer than four
/// digits is shown as `**** ` followed by those digits.
pub fn mask_card(mask: &str) -> String {
    let digits: Vec<char> = mask.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return mask.trim().to_string();
    }
    let last: String = digits[digits.len().saturating_sub(4)..].iter().collect();
    format!("**** {last}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_to_last_four() {
        assert_eq!(mask_card("4111111111111111"), "**** 1111");
        assert_eq!(mask_card("532610******0056"), "**** 0056");
        assert_eq!(mask_card("4111 1111 1111 1111"), "**** 1111");
        assert_eq!(mask_card("0056"), "**** 0056");
        assert_eq!(mask_card("56"), "**** 56");
        assert_eq!(mask_card(" Apple Pay "), "Apple Pay");
    }

    #[test]
    fn line_from_product() {
        let mut p = Product::simple("Coffee", 3, 250);
        p.vat = Minor(40);
        p.discount = Minor(15);
        p.sub_products.push(Product::simple("Oat milk", 1, 30));
        let line = ReceiptLine::from_product(&p).unwrap();
        assert_eq!(line.unit, Minor(250));
        assert_eq!(line.vat, Minor(120));
        assert_eq!(line.discount, Minor(45));
        assert_eq!(line.total, Minor((250 + 40 - 15 + 30) * 3));
        assert_eq!(line.sub_lines.len(), 1);
        assert_eq!(line.sub_lines[0].total, Minor(30));

        let mut weighed = Product::simple("Cheese", 1, 1000);
        weighed.quantity = Quantity::parse("0.125").unwrap();
        weighed.vat = Minor(100); // 12.5 → 13
        let line = ReceiptLine::from_product(&weighed).unwrap();
        assert_eq!(line.vat, Minor(13));
    }
}
