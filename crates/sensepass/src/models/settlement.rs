//! Settlement reports (spec §4.14, §7.11): what actually reached the merchant's bank.

use crate::error::FieldError;
use crate::models::requests::{Filter, ListStatus, Pagination};
use crate::models::transaction::PageInfo;
use crate::models::wire::{major_amount, opt_string, vec_or_null};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use till_core::{Currency, Minor};

/// The body of `POST /settlements/all`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettlementsRequest {
    /// Start of the window.
    #[serde(with = "time::serde::rfc3339")]
    pub start_date: time::OffsetDateTime,
    /// End of the window.
    #[serde(with = "time::serde::rfc3339")]
    pub end_date: time::OffsetDateTime,
    /// Only this state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ListStatus>,
    /// Only this payment method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_method: Option<String>,
    /// Only this currency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<Currency>,
    /// Paging.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
    /// Sort field (default `submitDate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_by: Option<String>,
    /// Field filters.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filter: Vec<Filter>,
}

impl SettlementsRequest {
    /// Everything between two instants.
    pub fn between(start: time::OffsetDateTime, end: time::OffsetDateTime) -> SettlementsRequest {
        SettlementsRequest {
            start_date: start,
            end_date: end,
            status: None,
            payment_method: None,
            currency: None,
            pagination: None,
            order_by: None,
            filter: Vec::new(),
        }
    }
}

/// One settlement report row (§7.11). Amounts are major-unit strings, read exactly with
/// [`SettlementReport::settlement_amount_minor`].
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettlementReport {
    /// `settled`, `voided` or `expired`.
    #[serde(default, deserialize_with = "opt_string")]
    pub status: Option<String>,
    /// Payment method.
    #[serde(default, deserialize_with = "opt_string")]
    pub payment_method: Option<String>,
    /// Settled amount, major units as written.
    #[serde(default, deserialize_with = "opt_string")]
    pub settlement_amount: Option<String>,
    /// Fee, major units as written.
    #[serde(default, deserialize_with = "opt_string")]
    pub fee: Option<String>,
    /// When it was submitted.
    #[serde(default, deserialize_with = "opt_string")]
    pub submit_date: Option<String>,
    /// When it settled.
    #[serde(default, deserialize_with = "opt_string")]
    pub settlement_date: Option<String>,
    /// The transaction.
    #[serde(default, deserialize_with = "opt_string")]
    pub transaction_number: Option<String>,
    /// Processor's transaction ID.
    #[serde(default, deserialize_with = "opt_string")]
    pub pm_trans_id: Option<String>,
    /// Card brand.
    #[serde(default, deserialize_with = "opt_string")]
    pub card_type: Option<String>,
    /// Currency of the settlement.
    #[serde(default, deserialize_with = "opt_string")]
    pub settlement_currency: Option<String>,
    /// Every other field, unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl SettlementReport {
    fn currency(&self) -> Result<Currency, FieldError> {
        let code = self
            .settlement_currency
            .as_deref()
            .ok_or(FieldError::Missing("settlementCurrency"))?;
        Currency::from_code(code).map_err(|e| FieldError::Invalid {
            field: "settlementCurrency",
            reason: e.to_string(),
        })
    }

    /// `settlementAmount` as exact minor units of `settlementCurrency`.
    pub fn settlement_amount_minor(&self) -> Result<Minor, FieldError> {
        let currency = self.currency()?;
        let text = self
            .settlement_amount
            .as_deref()
            .ok_or(FieldError::Missing("settlementAmount"))?;
        major_amount(&Value::String(text.to_string()), currency).map_err(|reason| {
            FieldError::Invalid {
                field: "settlementAmount",
                reason,
            }
        })
    }

    /// `fee` as exact minor units of `settlementCurrency`.
    pub fn fee_minor(&self) -> Result<Minor, FieldError> {
        let currency = self.currency()?;
        let text = self.fee.as_deref().ok_or(FieldError::Missing("fee"))?;
        major_amount(&Value::String(text.to_string()), currency).map_err(|reason| {
            FieldError::Invalid {
                field: "fee",
                reason,
            }
        })
    }
}

/// The answer of `POST /settlements/all`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SettlementsPage {
    /// Paging facts.
    #[serde(default)]
    pub pagination: PageInfo,
    /// Report rows.
    #[serde(default, deserialize_with = "vec_or_null")]
    pub data: Vec<SettlementReport>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settlement_rows() {
        let page: SettlementsPage = serde_json::from_value(json!({
            "pagination": {"returnedRecords": 1, "totalRecords": 1, "isPartialResult": false},
            "data": [{"status": "settled", "paymentMethod": "card", "settlementAmount": "10.21",
                "fee": "0.3", "submitDate": "2024-01-01", "settlementDate": "2024-01-03",
                "transactionNumber": "n", "pmTransId": 77, "cardType": "Visa",
                "settlementCurrency": "USD"}]
        }))
        .unwrap();
        let row = &page.data[0];
        assert_eq!(row.settlement_amount_minor(), Ok(Minor(1021)));
        assert_eq!(row.fee_minor(), Ok(Minor(30)));
        assert_eq!(row.pm_trans_id.as_deref(), Some("77"));
        let start = time::macros::datetime!(2024-01-01 0:00 UTC);
        let mut q = SettlementsRequest::between(start, start);
        q.order_by = Some("submitDate".into());
        assert_eq!(
            serde_json::to_value(&q).unwrap(),
            json!({"startDate": "2024-01-01T00:00:00Z",
            "endDate": "2024-01-01T00:00:00Z", "orderBy": "submitDate"})
        );
    }
}
