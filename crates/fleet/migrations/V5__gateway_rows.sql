-- Payments and operations of the providers behind the gateway seam (Connect-E, Acquired). A till
-- journals them in tables of their own, so their row ids are their own: `gateway` is part of the
-- key, and a till's SensePass payment 7 and its Connect-E payment 7 are two rows.
--
-- `state` is a gateway payment's neutral state (SensePass payments have `status` instead);
-- `captured` and `refunded` are what a gateway payment collected and gave back (a
-- pre-authorisation may be collected in part). Reports classify each row with one rule
-- (`reports::Outcome`).
ALTER TABLE payments ADD COLUMN gateway boolean NOT NULL DEFAULT false;
ALTER TABLE payments ADD COLUMN state text;
ALTER TABLE payments ADD COLUMN captured bigint;
ALTER TABLE payments ADD COLUMN refunded bigint;
ALTER TABLE payments DROP CONSTRAINT payments_pkey;
ALTER TABLE payments ADD PRIMARY KEY (till_id, gateway, row_id, created_at);

ALTER TABLE operations ADD COLUMN gateway boolean NOT NULL DEFAULT false;
ALTER TABLE operations DROP CONSTRAINT operations_pkey;
ALTER TABLE operations ADD PRIMARY KEY (till_id, gateway, row_id);
