-- Gateway payments (Connect-E, Acquired) and their operations (captures, refunds, voids) join the
-- change feed, so the fleet sees every money movement of a till, whichever provider took it.
--
-- The feed's table list is a CHECK constraint, which SQLite cannot alter: the table is rebuilt
-- with its rows and its sequence high-water mark (a number must never be handed out again, or
-- the fleet would take it for a replay). The triggers that write into it are dropped first and
-- made again after, so the rebuild never sees a trigger naming a table that is momentarily gone.
DROP TRIGGER changes_transactions_insert;
DROP TRIGGER changes_transactions_update;
DROP TRIGGER changes_transactions_delete;
DROP TRIGGER changes_status_events_insert;
DROP TRIGGER changes_status_events_update;
DROP TRIGGER changes_status_events_delete;
DROP TRIGGER changes_operations_insert;
DROP TRIGGER changes_operations_update;
DROP TRIGGER changes_operations_delete;

CREATE TABLE changes_rebuilt (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    tbl    TEXT    NOT NULL CHECK (tbl IN ('transactions', 'status_events', 'operations',
                                           'gateway_payments', 'gateway_operations')),
    row_id INTEGER NOT NULL
) STRICT;
INSERT INTO changes_rebuilt (seq, tbl, row_id) SELECT seq, tbl, row_id FROM changes ORDER BY seq;
-- Keep the high-water mark even when every entry was pruned.
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'changes_rebuilt', seq FROM sqlite_sequence WHERE name = 'changes'
    AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'changes_rebuilt');
UPDATE sqlite_sequence
    SET seq = max(seq, (SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'changes'))
    WHERE name = 'changes_rebuilt';
DROP TABLE changes;
ALTER TABLE changes_rebuilt RENAME TO changes;

CREATE TRIGGER changes_transactions_insert AFTER INSERT ON transactions
BEGIN INSERT INTO changes (tbl, row_id) VALUES ('transactions', NEW.id); END;
CREATE TRIGGER changes_transactions_update AFTER UPDATE ON transactions
BEGIN INSERT INTO changes (tbl, row_id) VALUES ('transactions', NEW.id); END;
CREATE TRIGGER changes_transactions_delete AFTER DELETE ON transactions
BEGIN INSERT INTO changes (tbl, row_id) VALUES ('transactions', OLD.id); END;

CREATE TRIGGER changes_status_events_insert AFTER INSERT ON status_events
BEGIN INSERT INTO changes (tbl, row_id) VALUES ('status_events', NEW.id); END;
CREATE TRIGGER changes_status_events_update AFTER UPDATE ON status_events
BEGIN INSERT INTO changes (tbl, row_id) VALUES ('status_events', NEW.id); END;
CREATE TRIGGER changes_status_events_delete AFTER DELETE ON status_events
BEGIN INSERT INTO changes (tbl, row_id) VALUES ('status_events', OLD.id); END;

CREATE TRIGGER changes_operations_insert AFTER INSERT ON operations
BEGIN INSERT INTO changes (tbl, row_id) VALUES ('operations', NEW.id); END;
CREATE TRIGGER changes_operations_update AFTER UPDATE ON operations
BEGIN INSERT INTO changes (tbl, row_id) VALUES ('operations', NEW.id); END;
CREATE TRIGGER changes_operations_delete AFTER DELETE ON operations
BEGIN INSERT INTO changes (tbl, row_id) VALUES ('operations', OLD.id); END;

CREATE TRIGGER changes_gateway_payments_insert AFTER INSERT ON gateway_payments
BEGIN INSERT INTO changes (tbl, row_id) VALUES ('gateway_payments', NEW.id); END;
CREATE TRIGGER changes_gateway_payments_update AFTER UPDATE ON gateway_payments
BEGIN INSERT INTO changes (tbl, row_id) VALUES ('gateway_payments', NEW.id); END;
CREATE TRIGGER changes_gateway_payments_delete AFTER DELETE ON gateway_payments
BEGIN INSERT INTO changes (tbl, row_id) VALUES ('gateway_payments', OLD.id); END;

CREATE TRIGGER changes_gateway_operations_insert AFTER INSERT ON gateway_operations
BEGIN INSERT INTO changes (tbl, row_id) VALUES ('gateway_operations', NEW.id); END;
CREATE TRIGGER changes_gateway_operations_update AFTER UPDATE ON gateway_operations
BEGIN INSERT INTO changes (tbl, row_id) VALUES ('gateway_operations', NEW.id); END;
CREATE TRIGGER changes_gateway_operations_delete AFTER DELETE ON gateway_operations
BEGIN INSERT INTO changes (tbl, row_id) VALUES ('gateway_operations', OLD.id); END;

-- What the journal already holds: one change each, payments before their operations.
INSERT INTO changes (tbl, row_id) SELECT 'gateway_payments', id FROM gateway_payments ORDER BY id;
INSERT INTO changes (tbl, row_id) SELECT 'gateway_operations', id FROM gateway_operations ORDER BY id;
