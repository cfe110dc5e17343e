-- Alerts as they fire and resolve. At most one firing alert per rule and
-- station.
CREATE TABLE alerts (
    id           bigserial        PRIMARY KEY,
    rule         text             NOT NULL,
    station_id   text             NOT NULL,
    value        double precision,
    message      text             NOT NULL,
    fired_at     timestamptz      NOT NULL,
    resolved_at  timestamptz
);
CREATE UNIQUE INDEX alerts_one_firing ON alerts (rule, station_id) WHERE resolved_at IS NULL;
CREATE INDEX alerts_by_time ON alerts (fired_at);
