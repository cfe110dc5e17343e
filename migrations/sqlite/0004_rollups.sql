-- Per station, per minute ('1m') and per hour ('1h'): count, minimum,
-- maximum, sum and last value of each variable, from values that passed
-- quality control. Times are Unix
-- microseconds (UTC).
CREATE TABLE rollups (
    station_id  TEXT    NOT NULL,
    resolution  TEXT    NOT NULL,
    bucket      INTEGER NOT NULL,
    variable    TEXT    NOT NULL,
    count       INTEGER NOT NULL,
    min         REAL    NOT NULL,
    max         REAL    NOT NULL,
    sum         REAL    NOT NULL,
    last        REAL    NOT NULL,
    last_at     INTEGER NOT NULL,
    PRIMARY KEY (station_id, resolution, bucket, variable)
) WITHOUT ROWID;

-- New readings not yet rolled up. Written in the same transaction as the
-- reading; the aggregator adds a set of them to the rollups and deletes
-- them in one transaction, so each reading counts exactly once, a late one
-- in the period it belongs to.
CREATE TABLE rollup_outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    station_id   TEXT    NOT NULL,
    observed_at  INTEGER NOT NULL
);
