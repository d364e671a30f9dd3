-- Decline recovery (FlexFactor) of a gateway payment, as one JSON document per payment:
-- whether the payment may be recovered (the per-payment opt-out), the card's vault token and
-- non-sensitive facts the keyed-entry page handed over (never a card number), the held decline,
-- the evaluate intent and its outcome (the rescue's id, `orderSessionKey`), and the polling
-- schedule. NULL for payments without recovery. The agent (crates/agent/src/recovery.rs) owns
-- its shape; the journal stores it with the row so that the payment's state and its recovery
-- change in one transaction.
ALTER TABLE gateway_payments ADD COLUMN recovery_json TEXT;
-- The card's vault token at the recovery service (FlexFactor `/tokenize`): a capability the
-- evaluation needs after a restart, so kept as a plain column like `provider_ref` and
-- `cross_reference` (JSON columns are redacted and would drop it). Never a card number.
ALTER TABLE gateway_payments ADD COLUMN recovery_ref TEXT;
