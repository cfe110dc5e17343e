-- Per station, per minute ('1m') and per hour ('1h'): count, minimum,
-- maximum, sum and last value of each variable, from values that passed
-- quality control.
CREATE TABLE rollups (
    station_id  text             NOT NULL,
    resolution  text             NOT NULL CHECK (resolution IN ('1m', '1h')),
    bucket      timestamptz      NOT NULL,
    variable    text             NOT NULL,
    count       bigint           NOT NULL,
    min         double precision NOT NULL,
    max         double precision NOT NULL,
    sum         double precision NOT NULL,
    last        double precision NOT NULL,
    last_at     timestamptz      NOT NULL,
    PRIMARY KEY (station_id, resolution, bucket, variable)
);

-- New readings not yet rolled up. Written in the same transaction as the
-- reading; the aggregator adds a set of them to the rollups and deletes
-- them in one transaction, so each reading counts exactly once, a late one
-- in the period it belongs to.
CREATE TABLE rollup_outbox (
    seq          bigserial   PRIMARY KEY,
    station_id   text        NOT NULL,
    observed_at  timestamptz NOT NULL
);
