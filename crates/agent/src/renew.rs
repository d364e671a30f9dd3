//! A fresh checkout for a payment whose checkout is about to expire, without a second charge.
//!
//! An Acquired payment session lives 10 minutes (payment-sessions §3.5). A customer who is still
//! reading the screen, or whose cart kept changing, would otherwise meet an expired form. The
//! checkout page asks for a fresh session shortly before the end
//! (`POST /api/agent/payments/{id}/renew`), **only while the customer has not pressed Pay**, and
//! reloads itself on the new one; a customer who pressed Pay finishes on the old session, whose
//! outcome arrives as always.
//!
//! Why no second charge:
//! - renewal is refused unless the payment is still pending, its provider says nothing was paid
//!   on the old checkout ([`till_gateway::Gateway::can_renew`]: an Acquired session with no
//!   transaction) and the old one ends within [`RENEW_WITHIN_MS`];
//! - the new checkout is for the same order and amount, and the payment keeps its one id: the POS
//!   still sees one payment with one outcome, and whichever session's outcome comes back (the
//!   redirect and the webhook name the order) settles that one payment;
//! - the old checkout can no longer be paid through the till: the only page that showed its form
//!   has moved on to the new one, and the provider ends it minutes later.
//!
//! Journal first: the renewal is noted on the payment before the call. A crash between the call
//! and the journal leaves a session nobody knows the id of — it can take no money and expires on
//! its own — so the next page asks again.

use crate::error::AgentError;
use crate::service::Agent;
use crate::tender::{gateway_error, payment_of};
use serde_json::{json, Value};
use till_gateway::{CreatePayment, GatewayError, PaymentState};
use till_journal::Phase;

/// How long before its end a checkout may be renewed.
pub const RENEW_WITHIN_MS: i64 = 120_000;

impl Agent {
    /// `POST /api/agent/payments/{id}/renew`: a fresh checkout for the same order and amount.
    pub async fn renew_gateway_checkout(&self, local_id: &str) -> Result<Value, AgentError> {
        let id = local_id.to_string();
        let rec = self
            .journal(move |j| j.gateway_payment(&id))
            .await?
            .ok_or_else(|| AgentError::NotFound(format!("payment {local_id}")))?;
        let p = payment_of(&rec)?;
        let gw = self.tender().gateway(p.provider)?.clone();
        if rec.phase != Phase::Created || p.state != PaymentState::Pending {
            return Err(AgentError::Conflict(format!("the payment is {}: its checkout is over", p.state.as_str())));
        }
        if !gw.can_renew(&p) {
            return Err(AgentError::Conflict(format!(
                "this {} checkout cannot be renewed (the provider does not renew checkouts, or it was already paid on)",
                p.provider.display_name()
            )));
        }
        let now = self.now_ms();
        let Some(expires) = rec.expires_at else {
            return Err(AgentError::Conflict("this checkout does not expire".into()));
        };
        if expires - now > RENEW_WITHIN_MS {
            return Err(AgentError::Conflict(format!(
                "the checkout is valid for {} more seconds; it is renewed only in its last {} seconds",
                (expires - now) / 1000,
                RENEW_WITHIN_MS / 1000
            )));
        }
        // One money-affecting call at a time per till, as for amount changes and money out.
        let _one_at_a_time = self.tender().delivering.lock().await;
        // The intent, noted before the call (the next observation of the payment rewrites `detail`).
        let id = rec.local_id.clone();
        self.journal(move |j| {
            j.update_gateway_payment(&id, |r| {
                let mut d = r.detail.clone().unwrap_or_else(|| json!({}));
                d["renewing"] = json!(now);
                r.detail = Some(d);
            })
        })
        .await?;
        let request = CreatePayment {
            id: rec.local_id.clone(),
            kind: p.kind,
            amount: p.amount,
            order_id: p.order_id.clone(),
            description: None,
            moto: rec.moto,
            wait_pre_execute: rec.wait_pre_execute,
            customer_id: rec.customer_id.clone(),
            stored_card: None,
            webhook_url: self.fleet_webhook_url(p.provider),
            return_url: Some(self.return_url(p.provider)),
        };
        let fresh = match gw.create(&request).await {
            Ok(fresh) => fresh,
            Err(e) => {
                tracing::warn!(local_id, error = %e, "checkout not renewed");
                return Err(match e {
                    e @ GatewayError::OutcomeUnknown { .. } => AgentError::Uncertain(format!(
                        "{} did not answer the renewal ({e}); the old checkout stands, ask again",
                        p.provider.display_name()
                    )),
                    e => gateway_error(e),
                });
            }
        };
        let (id, new_ref, new_expiry) = (rec.local_id.clone(), fresh.reference.expose().to_string(), fresh.expires_at);
        let (renewed, ()) = self
            .journal(move |j| {
                j.update_gateway_payment(&id, |r| {
                    r.provider_ref = Some(new_ref.clone());
                    r.expires_at = new_expiry.map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64);
                    if let Some(o) = r.detail.as_mut().and_then(Value::as_object_mut) {
                        o.remove("renewing");
                    }
                    r.updated_at = now;
                })
            })
            .await?;
        tracing::info!(local_id, "checkout renewed before it expired");
        self.gateway_changed(&renewed).await;
        self.gateway_view(&renewed).await
    }
}
