-- Each store's IANA time zone (`Europe/London`, `America/New_York`): a store's day — its day
-- totals, "today" — runs from its own local midnight to the next, not UTC's. Checked against
-- PostgreSQL's own list (`pg_timezone_names`) when set; existing stores keep UTC.
ALTER TABLE stores ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC';
