-- isobar schema for PostgreSQL. A reading is identified by
-- (station_id, observed_at); every write is idempotent on that key.

CREATE TABLE stations (
    station_id   text PRIMARY KEY,
    latitude     double precision,
    longitude    double precision,
    elevation_m  double precision,
    first_seen   timestamptz NOT NULL,
    last_seen    timestamptz NOT NULL
);

CREATE TABLE observations (
    station_id              text             NOT NULL,
    observed_at             timestamptz      NOT NULL,
    received_at             timestamptz      NOT NULL,
    latitude                double precision,
    longitude               double precision,
    elevation_m             double precision,
    temperature_c           double precision,
    humidity_pct            double precision,
    pressure_hpa            double precision,
    wind_speed_ms           double precision,
    wind_direction_deg      double precision,
    wind_gust_ms            double precision,
    dew_point_c             double precision,
    heat_index_c            double precision,
    wind_chill_c            double precision,
    feels_like_c            double precision,
    sea_level_pressure_hpa  double precision,
    qc_status               text             NOT NULL DEFAULT 'pass',
    qc                      jsonb            NOT NULL DEFAULT '{}',
    -- Serves history (one station, a time range) and latest (newest first).
    PRIMARY KEY (station_id, observed_at)
);

CREATE TABLE quarantine (
    id             bigserial PRIMARY KEY,
    received_at    timestamptz NOT NULL,
    source         text        NOT NULL,
    station_id     text,
    reason_code    text        NOT NULL,
    reason         text        NOT NULL,
    payload        bytea       NOT NULL,
    payload_bytes  integer     NOT NULL
);

CREATE INDEX quarantine_by_time ON quarantine (received_at);
