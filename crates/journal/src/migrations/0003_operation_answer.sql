-- The first definite answer the POS got for an operation it asked for (a refund): replayed
-- unchanged, status and body, when the POS retries with the same Idempotency-Key.
-- JSON `{"status": <HTTP status>, "body": <JSON body>}`; NULL until there is one.
ALTER TABLE operations ADD COLUMN answer TEXT;
