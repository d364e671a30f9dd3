//! [`ConnectE`]: Connect-E behind the [`Gateway`] seam.
//!
//! - **create** mints a `SALE`/`PREAUTH` access token; the payment is pending with a
//!   [`CashierScreen::ScriptCheckout`] (client.js, the token, a full card form or CV2 only for a
//!   card on file).
//! - **fetch** reads `GET /v1/payments/{token}` and maps it with the one status mapping of
//!   [`StatusCode::neutral`]. A 404 means the token was never used: still pending until it
//!   expires (30 minutes), expired after.
//! - **find** after a lost create answers `None`: a token whose id we never learned is never shown
//!   to a card form, so it can take no money and lapses unused.
//! - **capture / refund / void** are cross-reference payments with a fresh token of type
//!   `COLLECTION` / `REFUND` / `VOID`, minted by **prepare** so the agent journals it first.
//! - **reconcile** (Connect-E has no idempotency keys; the single-use token is the key): look the
//!   token up; if it was used, its details are the outcome; if not, revoke it — after a 200 it can
//!   never execute, so sending a new one is safe; if the revoke says it was consumed meanwhile,
//!   look again. docs/DECISIONS.md ("Connect-E") has the reasoning.
//! - **cancel** revokes the payment's token (status 90 if the cardholder was in 3-D Secure);
//!   **resume** continues a wait-pre-execute payment; **acknowledge** is a no-op; there is no
//!   event stream (webhooks are notices to fetch, arriving at the agent's own HTTP).

use crate::client::Client;
use crate::error::Error;
use crate::wire::{
    AccessTokenRequest, CrossReferencePaymentRequest, StatusCode, StatusResult, TransactionType,
    CURRENCY_LIST,
};
use till_core::{Minor, Money};
use till_gateway::{
    Capabilities, CashierScreen, CheckoutForm, CreatePayment, DeclineCategory, DeclineReason,
    Gateway, GatewayError, Observation, Operation, OperationOutcome, OperationTicket, Payment,
    PaymentKind, PaymentState, ProviderId, Reconciled,
};
use time::OffsetDateTime;

const PROVIDER: ProviderId = ProviderId::ConnectE;

/// Connect-E as a [`Gateway`].
#[derive(Debug, Clone)]
pub struct ConnectE {
    client: Client,
    /// Where Connect-E should post completion notices (the agent's webhook URL), if anywhere.
    webhook_url: Option<String>,
}

impl ConnectE {
    /// Wraps a client. `webhook_url` is sent as `webHookUrl` with every card-entry token unless a
    /// request names its own.
    pub fn new(client: Client, webhook_url: Option<String>) -> ConnectE {
        ConnectE {
            client,
            webhook_url,
        }
    }

    /// The REST client underneath.
    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn mint(
        &self,
        request: &AccessTokenRequest,
    ) -> Result<crate::wire::AccessToken, GatewayError> {
        let token = self
            .client
            .create_access_token(request)
            .await
            .map_err(to_gateway)?;
        if token.id.is_empty() {
            return Err(GatewayError::OutcomeUnknown {
                provider: PROVIDER,
                detail: "empty access token id".into(),
            });
        }
        Ok(token)
    }

    async fn cross_reference(
        &self,
        payment: &Payment,
        ticket: &OperationTicket,
    ) -> Result<OperationOutcome, GatewayError> {
        let token = ticket
            .provider_ref
            .as_ref()
            .ok_or_else(|| invalid("the ticket has no access token; prepare it first"))?;
        let cross_reference = on_file(payment)?;
        let body = CrossReferencePaymentRequest {
            cross_reference,
            cv2: None,
        };
        let result = self
            .client
            .cross_reference_payment(token, &body)
            .await
            .map_err(to_gateway)?;
        outcome(&result)
    }
}

fn invalid(detail: &str) -> GatewayError {
    GatewayError::Invalid {
        provider: PROVIDER,
        detail: detail.to_string(),
    }
}

/// The cross reference of the payment's card, which every money-out call needs.
fn on_file(payment: &Payment) -> Result<till_gateway::Opaque, GatewayError> {
    payment
        .card
        .as_ref()
        .and_then(|c| c.on_file.clone())
        .ok_or_else(|| invalid("the payment has no cross reference yet (fetch it first)"))
}

/// The one translation of client errors into gateway errors.
fn to_gateway(e: Error) -> GatewayError {
    match e {
        Error::NotSent(detail) => GatewayError::Unreachable {
            provider: PROVIDER,
            detail,
        },
        Error::Config(detail) => GatewayError::Invalid {
            provider: PROVIDER,
            detail,
        },
        Error::Http { status: 404, .. } => GatewayError::NotFound { provider: PROVIDER },
        Error::Http { status, body } if (400..500).contains(&status) => GatewayError::Refused {
            provider: PROVIDER,
            status,
            message: body,
        },
        e @ (Error::Http { .. } | Error::Uncertain(_) | Error::Decode(_)) => {
            GatewayError::OutcomeUnknown {
                provider: PROVIDER,
                detail: e.to_string(),
            }
        }
    }
}

/// A cross-reference or resume answer as an operation outcome. A code that is not final (or
/// missing) cannot be an outcome: the caller reconciles.
fn outcome(result: &StatusResult) -> Result<OperationOutcome, GatewayError> {
    let code = result
        .status()
        .ok_or_else(|| GatewayError::OutcomeUnknown {
            provider: PROVIDER,
            detail: "answer without statusCode".into(),
        })?;
    if !code.is_final() {
        return Err(GatewayError::OutcomeUnknown {
            provider: PROVIDER,
            detail: format!("status {} is not final", code.code()),
        });
    }
    let approved = code == StatusCode::Successful;
    Ok(OperationOutcome {
        approved,
        decline: code.decline(result.message.as_deref()),
        auth_code: result.auth_code.clone().filter(|_| approved),
        provider_ref: None,
    })
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

#[async_trait::async_trait]
impl Gateway for ConnectE {
    fn provider(&self) -> ProviderId {
        PROVIDER
    }

    /// A relayed completion notice (§7) names the payment by its access token and carries no
    /// status, by design: it matches the candidate holding that token, and [`Gateway::fetch`]
    /// then asks `GET /v1/payments/{token}` where it stands. A notice naming no token of ours
    /// matches nothing.
    async fn match_notice(&self, candidates: &[Payment], body: &[u8]) -> Result<Option<(usize, till_gateway::ProviderRef)>, GatewayError> {
        let Ok(notice) = serde_json::from_slice::<crate::WebhookNotice>(body) else {
            return Ok(None);
        };
        Ok(candidates
            .iter()
            .position(|p| p.reference.expose() == notice.id.expose())
            .map(|i| (i, candidates[i].reference.clone())))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            capture: true,
            void: true,
            partial_refund: true,
            cards_on_file: true,
            resume: true,
            cancel_pending: true,
            events: false,
            currencies: &CURRENCY_LIST,
        }
    }

    async fn create(&self, request: &CreatePayment) -> Result<Payment, GatewayError> {
        let mut body = AccessTokenRequest::new(
            self.client.config().merchant_url.clone(),
            request.amount,
            TransactionType::for_kind(request.kind),
            request.order_id.clone(),
        )
        .map_err(to_gateway)?;
        body.transaction_source = request.moto.then(|| "MOTO".to_string());
        body.order_description.clone_from(&request.description);
        body.wait_pre_execute = request.wait_pre_execute.then_some(true);
        body.customer_id.clone_from(&request.customer_id);
        body.cross_reference.clone_from(&request.stored_card);
        body.web_hook_url = request
            .webhook_url
            .clone()
            .or_else(|| self.webhook_url.clone());
        let token = self.mint(&body).await?;
        let mut payment = Payment::pending(
            PROVIDER,
            token.id.clone(),
            request.kind,
            request.order_id.clone(),
            request.amount,
        );
        payment.expires_at = token.expires();
        payment.screen = Some(CashierScreen::ScriptCheckout {
            script_url: self.client.config().client_js_url(),
            payment_token: token.id,
            form: if request.stored_card.is_some() {
                CheckoutForm::Cv2Only
            } else {
                CheckoutForm::CardDetails
            },
        });
        if let Some(stored) = &request.stored_card {
            // the repeat payment is on the stored card: keep its reference for refunds until
            // the payment's own details arrive (they carry a new one)
            payment.card = Some(till_gateway::CardSummary {
                scheme: None,
                masked: None,
                expiry: None,
                on_file: Some(stored.clone()),
            });
        }
        Ok(payment)
    }

    async fn fetch(&self, payment: &Payment) -> Result<Observation, GatewayError> {
        match self.client.payment(&payment.reference).await {
            Ok(info) => Ok(info.observation(payment.kind, payment.amount.minor, now())),
            Err(Error::Http { status: 404, .. }) => {
                // Never used (decided: an unused token has no payment yet).
                if payment.expires_at.is_some_and(|t| now() > t) {
                    let mut obs = Observation::of(PaymentState::Expired);
                    obs.decline = Some(DeclineReason {
                        category: DeclineCategory::Expired,
                        provider_code: None,
                        message: Some("access token expired unused".into()),
                    });
                    Ok(obs)
                } else {
                    Ok(Observation::of(PaymentState::Pending))
                }
            }
            Err(e) => Err(to_gateway(e)),
        }
    }

    async fn find(&self, _request: &CreatePayment) -> Result<Option<Payment>, GatewayError> {
        Ok(None)
    }

    async fn prepare(
        &self,
        payment: &Payment,
        id: &str,
        operation: Operation,
    ) -> Result<OperationTicket, GatewayError> {
        let (kind, amount) = match operation {
            Operation::Capture(a) => (TransactionType::Collection, a),
            Operation::Refund(a) => (TransactionType::Refund, a),
            Operation::Void => (
                TransactionType::Void,
                payment.amounts.authorized.max(Minor(1)),
            ),
        };
        let mut body = AccessTokenRequest::new(
            self.client.config().merchant_url.clone(),
            Money {
                minor: amount,
                currency: payment.currency(),
            },
            kind,
            payment.order_id.clone(),
        )
        .map_err(to_gateway)?;
        body.cross_reference = Some(on_file(payment)?);
        let token = self.mint(&body).await?;
        Ok(OperationTicket {
            id: id.to_string(),
            operation,
            provider_ref: Some(token.id),
        })
    }

    async fn capture(
        &self,
        payment: &Payment,
        ticket: &OperationTicket,
    ) -> Result<OperationOutcome, GatewayError> {
        if payment.kind != PaymentKind::PreAuth {
            return Err(invalid("only a pre-authorisation can be collected"));
        }
        self.cross_reference(payment, ticket).await
    }

    async fn refund(
        &self,
        payment: &Payment,
        ticket: &OperationTicket,
    ) -> Result<OperationOutcome, GatewayError> {
        self.cross_reference(payment, ticket).await
    }

    async fn void(
        &self,
        payment: &Payment,
        ticket: &OperationTicket,
    ) -> Result<OperationOutcome, GatewayError> {
        self.cross_reference(payment, ticket).await
    }

    async fn reconcile(
        &self,
        _payment: &Payment,
        ticket: &OperationTicket,
    ) -> Result<Reconciled, GatewayError> {
        let Some(token) = &ticket.provider_ref else {
            // never minted, so never sent
            return Ok(Reconciled::NotPerformed);
        };
        let look = |info: crate::wire::PaymentInfo| -> Result<Reconciled, GatewayError> {
            let result = StatusResult {
                status_code: info.status_code,
                auth_code: info.auth_code,
                message: info.message,
            };
            outcome(&result).map(Reconciled::Performed)
        };
        match self.client.payment(token).await {
            Ok(info) if info.status_code.is_some() => return look(info),
            // a 200 without a status: tolerated as "not used yet", like a 404
            Ok(_) | Err(Error::Http { status: 404, .. }) => {}
            Err(e) => return Err(to_gateway(e)),
        }
        match self.client.revoke(token).await {
            Ok(()) => Ok(Reconciled::NotPerformed),
            Err(e) if e.is_invalid_token() => Ok(Reconciled::NotPerformed),
            Err(e) if e.is_token_consumed() => match self.client.payment(token).await {
                Ok(info) if info.status_code.is_some() => look(info),
                Ok(_) | Err(Error::Http { status: 404, .. }) => Err(GatewayError::OutcomeUnknown {
                    provider: PROVIDER,
                    detail: "the token was used but its details are not available yet".into(),
                }),
                Err(e) => Err(to_gateway(e)),
            },
            Err(e) => Err(to_gateway(e)),
        }
    }

    async fn cancel(&self, payment: &Payment) -> Result<Observation, GatewayError> {
        match self.client.revoke(&payment.reference).await {
            Ok(()) => {
                // Revoked. If the cardholder was in 3-D Secure the payment now reads 90; either way
                // it can no longer take money.
                let mut obs = Observation::of(PaymentState::Cancelled);
                obs.decline = Some(DeclineReason {
                    category: DeclineCategory::Cancelled,
                    provider_code: None,
                    message: Some("access token revoked".into()),
                });
                Ok(obs)
            }
            Err(e) if e.is_token_consumed() => self.fetch(payment).await,
            Err(e) => Err(to_gateway(e)),
        }
    }

    async fn resume(&self, payment: &Payment) -> Result<Observation, GatewayError> {
        let result = self
            .client
            .resume(&payment.reference)
            .await
            .map_err(to_gateway)?;
        // a non-final answer to a resume cannot be taken as the outcome: the caller fetches
        outcome(&result)?;
        Ok(crate::wire::status_observation(
            result.status_code,
            result.auth_code.as_deref(),
            result.message.as_deref(),
            payment.kind,
            payment.amount.minor,
        ))
    }
}
