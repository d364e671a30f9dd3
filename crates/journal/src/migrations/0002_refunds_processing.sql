-- Payments with a refund in progress (status 12) are re-read periodically; this small partial
-- index keeps finding them instant however large the journal grows.
CREATE INDEX transactions_refund_processing ON transactions (created_at, id) WHERE status = 12;
