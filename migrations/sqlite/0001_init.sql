-- isobar schema for the embedded SQLite store. Times are Unix microseconds
-- (UTC); a reading is identified by (station_id, observed_at).

CREATE TABLE stations (
    station_id  TEXT PRIMARY KEY,
    latitude    REAL,
    longitude   REAL,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE observations (
    station_id          TEXT    NOT NULL,
    observed_at         INTEGER NOT NULL,
    received_at         INTEGER NOT NULL,
    latitude            REAL,
    longitude           REAL,
    temperature_c       REAL,
    humidity_pct        REAL,
    pressure_hpa        REAL,
    wind_speed_ms       REAL,
    wind_direction_deg  REAL,
    dew_point_c         REAL,
    heat_index_c        REAL,
    wind_chill_c        REAL,
    PRIMARY KEY (station_id, observed_at)
) WITHOUT ROWID;

CREATE TABLE quarantine (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at     INTEGER NOT NULL,
    source          TEXT    NOT NULL,
    station_id      TEXT,
    reason_code     TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    payload         BLOB    NOT NULL,
    payload_bytes   INTEGER NOT NULL
);

CREATE INDEX quarantine_by_time ON quarantine (received_at);
