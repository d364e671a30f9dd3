-- Till Agent journal, schema version 1.
--
-- Conventions: money is INTEGER minor units, currency its ISO 4217 code, statuses the SensePass
-- numeric code, timestamps INTEGER unix milliseconds, JSON is TEXT. Tables are STRICT so a wrong
-- type is an error instead of a silent conversion.

-- One row per payment attempt (and per "Setup" cart transaction). `local_id` is our key from the
-- moment the intent is journaled; `number` is the SensePass TransactionNumber once known.
CREATE TABLE transactions (
    id                   INTEGER PRIMARY KEY,
    local_id             TEXT    NOT NULL UNIQUE,
    number               TEXT    UNIQUE,
    device_id            TEXT    NOT NULL,
    order_id             TEXT,
    idempotency_key      TEXT,
    amount               INTEGER NOT NULL,
    currency             TEXT    NOT NULL,
    phase                TEXT    NOT NULL
        CHECK (phase IN ('intent', 'created', 'create_failed', 'create_unknown')),
    status               INTEGER CHECK (status BETWEEN 0 AND 13),
    -- 1 while the payment still needs an outcome (phase intent/create_unknown, or created with a
    -- pre-payment status). Written by the crate from Phase + Status so the rule has one home
    -- (till_core::Status::is_open); indexed below for the busy check.
    is_open              INTEGER NOT NULL CHECK (is_open IN (0, 1)),
    request_json         TEXT    NOT NULL,
    entity_json          TEXT,
    product_sum_mismatch INTEGER NOT NULL DEFAULT 0 CHECK (product_sum_mismatch IN (0, 1)),
    setup                INTEGER NOT NULL DEFAULT 0 CHECK (setup IN (0, 1)),
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    final_at             INTEGER,
    commit_link          TEXT,
    committed_at         INTEGER,
    failure              TEXT
) STRICT;

-- "Which transaction belongs to this order?" (POS recovery by order ID).
CREATE INDEX transactions_order ON transactions (order_id, created_at, id)
    WHERE order_id IS NOT NULL;
-- `GET /api/transactions/last` for one device, and the journal listing by device.
CREATE INDEX transactions_device_last ON transactions (device_id, setup, created_at, id);
-- `last()` across devices and the manager's date-range queries (setup rows excluded).
CREATE INDEX transactions_last ON transactions (setup, created_at, id);
-- Date-range queries that include setup rows.
CREATE INDEX transactions_created ON transactions (created_at, id);
-- The busy check and the reconciler: only open rows are in this index, so it stays tiny.
CREATE INDEX transactions_open ON transactions (device_id, created_at, id) WHERE is_open = 1;
-- Captured payments still waiting for their payment commit; small in normal operation.
CREATE INDEX transactions_uncommitted ON transactions (created_at, id)
    WHERE committed_at IS NULL AND status IN (5, 11, 12, 13);

-- Every status observation, applied or not: the audit trail of a payment.
CREATE TABLE status_events (
    id             INTEGER PRIMARY KEY,
    transaction_id INTEGER NOT NULL REFERENCES transactions (id),
    status         INTEGER NOT NULL CHECK (status BETWEEN 0 AND 13),
    source         TEXT    NOT NULL CHECK (source IN ('api', 'socket', 'poll', 'local')),
    transition     TEXT    NOT NULL CHECK (transition IN ('advance', 'same', 'ignore')),
    applied        INTEGER NOT NULL CHECK (applied IN (0, 1)),
    at             INTEGER NOT NULL,
    entity_json    TEXT
) STRICT;
CREATE INDEX status_events_transaction ON status_events (transaction_id, id);

-- Idempotency records: an order ID or an Idempotency-Key maps to the transaction it started,
-- for 31 days. Scope is the whole journal (all devices): one order is never charged twice.
CREATE TABLE idempotency (
    scope          TEXT    NOT NULL CHECK (scope IN ('order', 'key')),
    value          TEXT    NOT NULL,
    transaction_id INTEGER NOT NULL REFERENCES transactions (id),
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    PRIMARY KEY (scope, value)
) STRICT, WITHOUT ROWID;
CREATE INDEX idempotency_expires ON idempotency (expires_at);

-- The outbox: money movements and acknowledgements to deliver to SensePass, each with a stable
-- key, retried until delivered or permanently failed.
CREATE TABLE operations (
    id             INTEGER PRIMARY KEY,
    op_key         TEXT    NOT NULL UNIQUE,
    kind           TEXT    NOT NULL CHECK (kind IN ('refund', 'credit', 'cancel', 'commit')),
    transaction_id INTEGER REFERENCES transactions (id),
    amount         INTEGER,
    payload        TEXT    NOT NULL,
    state          TEXT    NOT NULL
        CHECK (state IN ('pending', 'in_flight', 'delivered', 'failed')),
    attempts       INTEGER NOT NULL DEFAULT 0,
    next_at        INTEGER NOT NULL,
    last_error     TEXT,
    result         TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    finished_at    INTEGER
) STRICT;
CREATE INDEX operations_due ON operations (state, next_at, id);
CREATE INDEX operations_transaction ON operations (transaction_id, kind, state);

-- The paired device: at most one row.
CREATE TABLE pairing (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    device_id      TEXT    NOT NULL,
    pos_name       TEXT    NOT NULL,
    environment    TEXT    NOT NULL,
    api_base       TEXT    NOT NULL,
    socket_url     TEXT    NOT NULL,
    client_box_url TEXT,
    paired_at      INTEGER NOT NULL
) STRICT;

-- Small key/value settings that must survive restarts with the journal (not the config file).
CREATE TABLE settings (
    key   TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;
