-- Readings stored but not yet in the data lake's spool. Written in the
-- same transaction as the reading, so a reading that is stored reaches the
-- lake even if the daemon dies right after the commit.
CREATE TABLE archive_outbox (
    seq          bigserial   PRIMARY KEY,
    station_id   text        NOT NULL,
    observed_at  timestamptz NOT NULL
);
