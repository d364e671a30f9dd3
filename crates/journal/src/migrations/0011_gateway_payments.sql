-- Providers besides SensePass (Paymentsense Connect-E first), in the neutral terms of
-- till-gateway: provider, provider reference, kind, neutral state, authorised / captured /
-- refunded minor amounts, expiry. And cards on file, per customer.
--
-- SensePass payments stay in `transactions` (their 14 statuses, commit links and the cart are
-- theirs); the new `provider` column names the provider of every row there, so every existing
-- row is a SensePass payment. Payments of the other providers live in `gateway_payments`, whose
-- columns are the neutral model itself; money-out on them in `gateway_operations`.

ALTER TABLE transactions ADD COLUMN provider TEXT NOT NULL DEFAULT 'sensepass'
    CHECK (provider IN ('sensepass', 'connect-e', 'acquired', 'flexfactor'));

-- Cards on file: what the provider handed back to charge a card again (Connect-E's cross
-- reference) and what a cashier needs to recognise it. Never a card number or a CV2: `masked`
-- must contain a mask character and no run of more than six digits (first six + last four
-- is the widest mask a provider shows).
CREATE TABLE cards_on_file (
    id              INTEGER PRIMARY KEY,
    provider        TEXT    NOT NULL CHECK (provider IN ('sensepass', 'connect-e', 'acquired', 'flexfactor')),
    customer_id     TEXT    NOT NULL,
    cross_reference TEXT    NOT NULL,
    card_type       TEXT,
    masked          TEXT    NOT NULL CHECK (masked GLOB '*[*xX•]*'
                                            AND masked NOT GLOB '*[0-9][0-9][0-9][0-9][0-9][0-9][0-9]*'),
    expiry_year     INTEGER NOT NULL CHECK (expiry_year BETWEEN 2000 AND 2199),
    expiry_month    INTEGER NOT NULL CHECK (expiry_month BETWEEN 1 AND 12),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    -- One row per card of a customer; a newer payment on it replaces the cross reference.
    UNIQUE (provider, customer_id, masked, expiry_year, expiry_month)
) STRICT;

-- One row per provider payment (one access token, for Connect-E). `local_id` is ours from the
-- intent; `provider_ref` the provider's handle once known.
CREATE TABLE gateway_payments (
    id               INTEGER PRIMARY KEY,
    local_id         TEXT    NOT NULL UNIQUE,
    provider         TEXT    NOT NULL CHECK (provider IN ('sensepass', 'connect-e', 'acquired', 'flexfactor')),
    provider_ref     TEXT    UNIQUE,
    kind             TEXT    NOT NULL CHECK (kind IN ('sale', 'preauth')),
    order_id         TEXT    NOT NULL,
    amount           INTEGER NOT NULL CHECK (amount > 0),
    currency         TEXT    NOT NULL,
    phase            TEXT    NOT NULL
        CHECK (phase IN ('intent', 'created', 'create_failed', 'create_unknown')),
    state            TEXT    NOT NULL
        CHECK (state IN ('pending', 'authorized', 'captured', 'declined', 'cancelled', 'expired', 'failed')),
    authorized       INTEGER NOT NULL DEFAULT 0 CHECK (authorized >= 0),
    captured         INTEGER NOT NULL DEFAULT 0 CHECK (captured >= 0 AND captured <= authorized),
    refunded         INTEGER NOT NULL DEFAULT 0 CHECK (refunded >= 0 AND refunded <= captured),
    expires_at       INTEGER,
    moto             INTEGER NOT NULL DEFAULT 0 CHECK (moto IN (0, 1)),
    wait_pre_execute INTEGER NOT NULL DEFAULT 0 CHECK (wait_pre_execute IN (0, 1)),
    customer_id      TEXT,
    -- The card on file this payment charges again (a repeat payment asks only for the CV2).
    card_id          INTEGER REFERENCES cards_on_file (id),
    card_type        TEXT,
    card_masked      TEXT,
    card_expiry      TEXT,
    cross_reference  TEXT,
    auth_code        TEXT,
    -- Redacted JSON: decline reason, what a pending payment awaits, the provider's raw status.
    detail_json      TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    final_at         INTEGER
) STRICT;
-- "The previous token of this order" (one live token per order).
CREATE INDEX gateway_payments_order ON gateway_payments (order_id, id);
-- The poller's work list: payments still waiting for their outcome.
CREATE INDEX gateway_payments_open ON gateway_payments (id)
    WHERE state = 'pending' OR phase IN ('intent', 'create_unknown');
CREATE INDEX gateway_payments_created ON gateway_payments (created_at, id);

-- Money-out on a gateway payment: collection, refund, void. Journaled before anything is sent;
-- `ticket_ref` (the provider's single-use token for it) before it is sent; the outcome after.
-- `prepared` means "may have been sent": it is reconciled with the provider before anything
-- is sent again.
CREATE TABLE gateway_operations (
    id          INTEGER PRIMARY KEY,
    op_key      TEXT    NOT NULL UNIQUE,
    payment_id  INTEGER NOT NULL REFERENCES gateway_payments (id),
    kind        TEXT    NOT NULL CHECK (kind IN ('capture', 'refund', 'void')),
    amount      INTEGER NOT NULL CHECK (amount >= 0),
    state       TEXT    NOT NULL
        CHECK (state IN ('pending', 'prepared', 'approved', 'declined', 'failed')),
    ticket_ref  TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     INTEGER NOT NULL,
    last_error  TEXT,
    outcome_json TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    finished_at INTEGER
) STRICT;
CREATE INDEX gateway_operations_payment ON gateway_operations (payment_id, kind, state);
CREATE INDEX gateway_operations_due ON gateway_operations (next_at, id)
    WHERE state IN ('pending', 'prepared');
