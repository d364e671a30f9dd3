-- Payments a decline-recovery service (FlexFactor) approved after the card tender declined:
-- who took the money. The day report counts them apart ("declines and recoveries").
ALTER TABLE payments ADD COLUMN recovered_by text;
