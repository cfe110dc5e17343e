-- The QC report is stored as its JSON text rather than as jsonb.
-- PostgreSQL parses every jsonb value it receives: for a report with
-- findings that was about half the cost of inserting the reading, and
-- nothing queries inside the report (the daemon reads it whole). For
-- ad-hoc queries, cast it: `qc::jsonb -> 'variables'`.
-- This rewrites the table once.
ALTER TABLE observations ALTER COLUMN qc DROP DEFAULT;
ALTER TABLE observations ALTER COLUMN qc TYPE text USING qc::text;
ALTER TABLE observations ALTER COLUMN qc SET DEFAULT '{}';
