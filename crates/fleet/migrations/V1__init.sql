-- till-fleet schema, version 1. PostgreSQL is the only store of record of the fleet.
--
-- Conventions: money is bigint minor units with its ISO currency code; timestamps timestamptz
-- (the tills' unix milliseconds converted on ingest); a till's rows are keyed by (till_id, the
-- row's id in that till's journal), so no till can name another till's rows.

CREATE TABLE stores (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text        NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per enrolled till. `secret_hash` is SHA-256 of a 256-bit random secret (a fast hash
-- is enough for a secret with that much entropy; the secret itself is never stored).
-- `cursor` is the highest change sequence number applied: the idempotency and gap check.
CREATE TABLE tills (
    id                uuid        PRIMARY KEY,
    store_id          bigint      NOT NULL REFERENCES stores (id),
    name              text        NOT NULL,
    secret_hash       bytea       NOT NULL,
    enrolled_at       timestamptz NOT NULL DEFAULT now(),
    revoked_at        timestamptz,
    last_seen_at      timestamptz,
    version           text,
    cursor            bigint      NOT NULL DEFAULT 0,
    queued_operations integer     NOT NULL DEFAULT 0,
    changes_behind    bigint      NOT NULL DEFAULT 0,
    UNIQUE (store_id, name)
);
CREATE INDEX tills_store ON tills (store_id);

-- One-time enrolment codes: only their hash is kept; `used_at` set once, in the enrolling
-- transaction.
CREATE TABLE enrolment_codes (
    code_hash  bytea       PRIMARY KEY,
    store_id   bigint      NOT NULL REFERENCES stores (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    till_id    uuid        REFERENCES tills (id)
);

-- Payments, partitioned by month of creation: a month is one table (dropped or archived whole),
-- and every dashboard query names a time range, so the planner prunes to one or two partitions.
-- The primary key must contain the partition key; created_at never changes for a row.
CREATE TABLE payments (
    till_id      uuid        NOT NULL,
    row_id       bigint      NOT NULL,
    created_at   timestamptz NOT NULL,
    store_id     bigint      NOT NULL,
    seq          bigint      NOT NULL,
    local_id     text        NOT NULL,
    provider     text        NOT NULL,
    number       text,
    device_id    text        NOT NULL,
    order_id     text,
    amount       bigint      NOT NULL,
    currency     text        NOT NULL,
    phase        text        NOT NULL,
    status       smallint,
    is_open      boolean     NOT NULL,
    setup        boolean     NOT NULL,
    tender       text,
    last_four    text,
    updated_at   timestamptz NOT NULL,
    final_at     timestamptz,
    committed_at timestamptz,
    failure      text,
    PRIMARY KEY (till_id, row_id, created_at)
) PARTITION BY RANGE (created_at);
-- Day totals per store and per till (the dashboard's main query): index-range scans.
CREATE INDEX payments_store_time ON payments (store_id, created_at) INCLUDE (status, amount, currency);
CREATE INDEX payments_till_time ON payments (till_id, created_at) INCLUDE (status, amount, currency);
-- Search chain-wide by order id, last four digits or amount.
CREATE INDEX payments_order ON payments (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX payments_last_four ON payments (last_four, created_at) WHERE last_four IS NOT NULL;
CREATE INDEX payments_amount ON payments (amount, created_at);

-- Status history, partitioned by month of observation like payments.
CREATE TABLE status_events (
    till_id        uuid        NOT NULL,
    row_id         bigint      NOT NULL,
    at             timestamptz NOT NULL,
    store_id       bigint      NOT NULL,
    seq            bigint      NOT NULL,
    payment_row_id bigint      NOT NULL,
    status         smallint    NOT NULL,
    source         text        NOT NULL,
    transition     text        NOT NULL,
    applied        boolean     NOT NULL,
    PRIMARY KEY (till_id, row_id, at)
) PARTITION BY RANGE (at);
CREATE INDEX status_events_payment ON status_events (till_id, payment_row_id);

-- Outbox operations (refunds, credits, cancels, commits) and their delivery state. Small
-- compared with payments (one per refund or commit), so not partitioned.
CREATE TABLE operations (
    till_id          uuid        NOT NULL,
    row_id           bigint      NOT NULL,
    store_id         bigint      NOT NULL,
    seq              bigint      NOT NULL,
    op_key           text        NOT NULL,
    kind             text        NOT NULL,
    payment_local_id text,
    amount           bigint,
    state            text        NOT NULL,
    attempts         bigint      NOT NULL,
    last_error       text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    finished_at      timestamptz,
    PRIMARY KEY (till_id, row_id)
);
-- "Refunds pending": only unfinished operations are in this index, so it stays tiny.
CREATE INDEX operations_unfinished ON operations (store_id, created_at)
    WHERE state IN ('pending', 'in_flight');

-- Creates the month partitions of payments and status_events holding `month` (any instant in
-- it), if missing. Serialized by an advisory lock so concurrent ingest never races on DDL.
CREATE FUNCTION fleet_ensure_month(month timestamptz) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    start_at timestamptz := date_trunc('month', month AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    end_at   timestamptz := (date_trunc('month', month AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
    suffix   text := to_char(month AT TIME ZONE 'UTC', 'YYYY_MM');
BEGIN
    PERFORM pg_advisory_xact_lock(7301);
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF payments FOR VALUES FROM (%L) TO (%L)',
                   'payments_' || suffix, start_at, end_at);
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF status_events FOR VALUES FROM (%L) TO (%L)',
                   'status_events_' || suffix, start_at, end_at);
END $$;
