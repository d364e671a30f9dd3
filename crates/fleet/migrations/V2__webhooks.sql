-- Provider webhooks received on behalf of a till, kept until the till has fetched them (and
-- after, for audit). Connect-E and FlexFactor payloads carry no signature: a stored webhook is
-- only a hint, and the till confirms with the provider's REST API before anything changes.
-- `dedupe_key` is the provider's identity of the notice; the provider's retries of one notice
-- are stored once.
CREATE TABLE webhooks (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider    text        NOT NULL,
    till_id     uuid        NOT NULL REFERENCES tills (id),
    dedupe_key  text        NOT NULL,
    payload     jsonb       NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, till_id, dedupe_key)
);
CREATE INDEX webhooks_till ON webhooks (till_id, id);
