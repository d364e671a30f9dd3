-- What a manager decided about the outbox and about stuck payments, kept with the rows they
-- concern (nothing is ever deleted).
--
-- `operations.dismissed_at`: a failed operation (certainly not performed at SensePass) the
-- manager has seen and put away; it leaves the console's default outbox list and the failure
-- count. Only failed operations can be dismissed: a pending or in-flight one may still move money.
ALTER TABLE operations ADD COLUMN dismissed_at INTEGER;

-- `transactions.resolved_at` / `resolution`: a payment that stayed open with no outcome (after a
-- restart, SensePass no longer knowing it) closed by the manager once SensePass confirmed it cannot
-- be paid. `is_open` becomes 0; the SensePass status stays as last observed, so a later observation
-- still moves it forward (an approval would show as approved).
ALTER TABLE transactions ADD COLUMN resolved_at INTEGER;
ALTER TABLE transactions ADD COLUMN resolution TEXT;
