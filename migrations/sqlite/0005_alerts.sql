-- Alerts as they fire and resolve. At most one firing alert per rule and
-- station. Times are Unix microseconds (UTC).
CREATE TABLE alerts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    rule         TEXT    NOT NULL,
    station_id   TEXT    NOT NULL,
    value        REAL,
    message      TEXT    NOT NULL,
    fired_at     INTEGER NOT NULL,
    resolved_at  INTEGER
);
CREATE UNIQUE INDEX alerts_one_firing ON alerts (rule, station_id) WHERE resolved_at IS NULL;
CREATE INDEX alerts_by_time ON alerts (fired_at);
