-- The change feed: one row per insert, update or delete of a replicated row, written by triggers
-- in the same transaction as the change itself, so no change can be committed without its feed
-- entry (and none can be recorded for a change that rolled back).
--
-- `seq` is the till's sequence number for replication to the fleet server. AUTOINCREMENT, not
-- a plain rowid: acknowledged entries are pruned, and a plain rowid would hand out the number of
-- a pruned tail again, which the fleet would take for a replay.
--
-- Only the row's identity is recorded; the shipper reads the row's state as of its batch
-- snapshot. A row changed five times between two batches is shipped once, in its newest state.
CREATE TABLE changes (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    tbl    TEXT    NOT NULL CHECK (tbl IN ('transactions', 'status_events', 'operations')),
    row_id INTEGER NOT NULL
) STRICT;

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

-- A journal that existed before the feed: everything it holds is one change each, oldest first,
-- payments before their events and operations so the fleet sees parents first.
INSERT INTO changes (tbl, row_id) SELECT 'transactions', id FROM transactions ORDER BY id;
INSERT INTO changes (tbl, row_id) SELECT 'status_events', id FROM status_events ORDER BY id;
INSERT INTO changes (tbl, row_id) SELECT 'operations', id FROM operations ORDER BY id;
