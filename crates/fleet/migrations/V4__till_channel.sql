-- The update channel each till follows (stable, pilot, ...), as its agent reports it with every
-- batch; NULL until a till running an agent that reports it has sent a batch.
ALTER TABLE tills ADD COLUMN update_channel text;
