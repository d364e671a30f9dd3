//! [`FlexFactor`]: the [`DeclineRecovery`] implementation.
//!
//! - **One rescue per payment.** `orderId` and `idempotencyKey` are both our payment id, so a
//!   repeated evaluate (lost answer, 5xx, a restart between decline and evaluate) answers the
//!   order FlexFactor already opened.
//! - **One refund per refund.** FlexFactor promises that a repeated refund call does not refund
//!   twice, without saying how partial refunds are told apart (§8). We make every refund's body
//!   unique and stable: `refundMessage` starts with our refund id, so a retry is an exact repeat
//!   (deduplicated) and two genuine partial refunds of the same amount differ (docs/DECISIONS.md).
//! - Errors become [`GatewayError`] with the same "certainly not performed" split.

use crate::client::Client;
use crate::error::Error;
use crate::wire::{
    major_amount, not_recovered_reason, EvaluatePaymentMethod, EvaluateRequest,
    EvaluateTransaction, RefundRequest, WebhookEvent,
};
use till_gateway::{
    DeclineRecovery, GatewayError, ProviderId, RecoveryEvent, RecoveryOutcome, RecoveryRefund,
    RecoveryRequest, RecoveryState,
};
use time::format_description::well_known::Rfc3339;

const P: ProviderId = ProviderId::FlexFactor;

/// FlexFactor as a decline-recovery service.
#[derive(Debug, Clone)]
pub struct FlexFactor {
    /// The REST client (and its token cache).
    client: Client,
}

impl FlexFactor {
    /// Wraps a client.
    pub fn new(client: Client) -> FlexFactor {
        FlexFactor { client }
    }

    /// The client, for tokenize URLs and direct calls.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The `/evaluate` body for a declined payment (public so that tests and the agent's
    /// journal can see exactly what is sent).
    pub fn evaluate_request(&self, r: &RecoveryRequest) -> Result<EvaluateRequest, GatewayError> {
        let config = self.client.config();
        if r.order_id.trim().is_empty() || !r.amount.minor.is_positive() {
            return Err(GatewayError::Invalid {
                provider: P,
                detail: "order id and a positive amount are required".into(),
            });
        }
        let timestamp = r
            .declined_at
            .to_offset(time::UtcOffset::UTC)
            .replace_nanosecond(0)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default();
        Ok(EvaluateRequest {
            site_id: config.site_id.clone(),
            mid: config.mid.clone(),
            is_declined: true,
            order_id: r.order_id.clone(),
            idempotency_key: r.order_id.clone(),
            sense_key: r.sense_key.clone(),
            transaction_type: "Purchase".into(),
            is_mit: false,
            is_recurring: false,
            customer_ip: r.customer_ip.clone(),
            transaction: EvaluateTransaction {
                id: r
                    .declined_transaction
                    .clone()
                    .unwrap_or_else(|| r.order_id.clone()),
                timestamp,
                timezone_utc_offset: "0".into(),
                amount: r.amount.minor.0,
                currency: r.amount.currency.code().to_string(),
                response_code: r.decline.provider_code.clone().unwrap_or_default(),
                response_code_source: r.declined_by.clone(),
                avs_result_code: String::new(),
                cvv_result_code: String::new(),
                cavv_result_code: String::new(),
                card_not_present: r.card_not_present,
            },
            payment_method: EvaluatePaymentMethod {
                holder_name: r.card.holder_name.clone(),
                card_brand: r.card.scheme.clone(),
                expiration_month: r.card.expiry.map(|e| e.month),
                expiration_year: r.card.expiry.map(|e| e.year),
                card_bin_number: r.card.bin.clone(),
                card_last4_digits: r.card.last4.clone(),
                card_number: r.card_token.clone(),
                token: true,
            },
        })
    }

    /// The `/refund` body: major units, our refund id first in the message.
    pub fn refund_request(refund: &RecoveryRefund) -> Result<RefundRequest, GatewayError> {
        let amount = major_amount(refund.amount.minor, refund.amount.currency).map_err(|e| {
            GatewayError::Invalid {
                provider: P,
                detail: e.to_string(),
            }
        })?;
        let message = match &refund.reason {
            Some(r) => format!("{}: {r}", refund.id),
            None => refund.id.clone(),
        };
        Ok(RefundRequest {
            amount_to_refund: amount,
            refund_message: Some(message),
        })
    }
}

/// The client's error in the seam's terms.
pub fn gateway_error(e: Error) -> GatewayError {
    match e {
        Error::NotSent(detail) => GatewayError::Unreachable {
            provider: P,
            detail,
        },
        Error::Config(detail) => GatewayError::Invalid {
            provider: P,
            detail,
        },
        e @ (Error::Validation { .. } | Error::Unauthorized) => GatewayError::Refused {
            provider: P,
            status: e.http_status().unwrap_or(400),
            message: e.to_string(),
        },
        Error::Rejected { code, message } if code.as_deref() == Some("404") => {
            let _ = message;
            GatewayError::NotFound { provider: P }
        }
        e @ Error::Rejected { .. } => GatewayError::Refused {
            provider: P,
            status: 200,
            message: e.to_string(),
        },
        Error::Http { status, body } if (400..500).contains(&status) => GatewayError::Refused {
            provider: P,
            status,
            message: body,
        },
        e @ (Error::Http { .. } | Error::Uncertain(_) | Error::Decode(_)) => {
            GatewayError::OutcomeUnknown {
                provider: P,
                detail: e.to_string(),
            }
        }
    }
}

#[async_trait::async_trait]
impl DeclineRecovery for FlexFactor {
    fn display_name(&self) -> &'static str {
        P.display_name()
    }

    async fn evaluate(&self, request: &RecoveryRequest) -> Result<RecoveryOutcome, GatewayError> {
        let body = self.evaluate_request(request)?;
        let answer = self.client.evaluate(&body).await.map_err(gateway_error)?;
        let status = answer.status();
        let state = status.state();
        let rescue_id = answer.rescue_id().map(str::to_string);
        if state != RecoveryState::NotRecovered && rescue_id.is_none() {
            // approved or pending without an order id: we could neither refund nor poll it
            return Err(GatewayError::OutcomeUnknown {
                provider: P,
                detail: "evaluate answered without an orderSessionKey".into(),
            });
        }
        let provider_status = answer.envelope.status.clone().unwrap_or_default();
        tracing::info!(order = %request.order_id, status = %provider_status, "flexfactor evaluated a decline");
        Ok(RecoveryOutcome {
            state,
            rescue_id,
            decline: (state == RecoveryState::NotRecovered)
                .then(|| not_recovered_reason(&provider_status)),
            provider_status,
        })
    }

    async fn status(&self, rescue_id: &str) -> Result<RecoveryOutcome, GatewayError> {
        let order = self.client.order(rescue_id).await.map_err(gateway_error)?;
        let state = order.status.state();
        let provider_status = order
            .status_name
            .clone()
            .unwrap_or_else(|| order.status.code().to_string());
        Ok(RecoveryOutcome {
            state,
            rescue_id: Some(rescue_id.to_string()),
            decline: (state == RecoveryState::NotRecovered)
                .then(|| not_recovered_reason(&provider_status)),
            provider_status,
        })
    }

    async fn refund(&self, refund: &RecoveryRefund) -> Result<(), GatewayError> {
        let body = Self::refund_request(refund)?;
        self.client
            .refund(&refund.rescue_id, &body)
            .await
            .map_err(gateway_error)?;
        tracing::info!(refund = %refund.id, "flexfactor refunded");
        Ok(())
    }

    fn parse_event(&self, body: &[u8]) -> Option<RecoveryEvent> {
        let e = WebhookEvent::parse(body)?;
        Some(RecoveryEvent {
            state: e.state(),
            name: e.event,
            rescue_id: e.order_id,
        })
    }
}
