-- The print queue (issue 13): a receipt to print is an intent, journaled before any byte goes to
-- the printer, like every other intent. States: queued → sending (journaled just before the first
-- byte is written) → printed; a job found in `sending` after a crash becomes `may_have_printed`
-- (the journal cannot know whether the printer got it); `failed` when it can never print (the
-- transaction is gone, a drawer kick that could not be delivered at once).
CREATE TABLE print_jobs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    job_key       TEXT    NOT NULL UNIQUE,
    kind          TEXT    NOT NULL CHECK (kind IN ('receipt', 'test', 'drawer')),
    local_id      TEXT,
    copy          TEXT    CHECK (copy IN ('customer', 'merchant')),
    reason        TEXT    NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('queued', 'sending', 'printed', 'may_have_printed', 'failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    next_at       INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    finished_at   INTEGER
);
CREATE INDEX print_jobs_due ON print_jobs (state, next_at);
CREATE INDEX print_jobs_tx ON print_jobs (local_id);
