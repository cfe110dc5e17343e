-- Rollups count every value that did not fail quality control, suspect
-- ones included, and say how many of them were suspect. Periods rolled up
-- before this migration counted passing values only; their suspect count
-- is 0.
ALTER TABLE rollups
    ADD COLUMN temperature_c_suspect bigint NOT NULL DEFAULT 0,
    ADD COLUMN humidity_pct_suspect bigint NOT NULL DEFAULT 0,
    ADD COLUMN pressure_hpa_suspect bigint NOT NULL DEFAULT 0,
    ADD COLUMN sea_level_pressure_hpa_suspect bigint NOT NULL DEFAULT 0,
    ADD COLUMN wind_speed_ms_suspect bigint NOT NULL DEFAULT 0,
    ADD COLUMN wind_gust_ms_suspect bigint NOT NULL DEFAULT 0,
    ADD COLUMN dew_point_c_suspect bigint NOT NULL DEFAULT 0,
    ADD COLUMN feels_like_c_suspect bigint NOT NULL DEFAULT 0,
    ADD COLUMN heat_index_c_suspect bigint NOT NULL DEFAULT 0;
