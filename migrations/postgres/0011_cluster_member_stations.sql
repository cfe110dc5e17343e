-- How many station actors each member runs, as its heartbeat last said,
-- so that any instance's API can show how the stations are spread.
ALTER TABLE cluster_members ADD COLUMN stations integer NOT NULL DEFAULT 0;
