-- Rollups count every value that did not fail quality control, suspect
-- ones included, and say how many of them were suspect. Periods rolled up
-- before this migration counted passing values only; their suspect count
-- is 0.
ALTER TABLE rollups ADD COLUMN temperature_c_suspect INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollups ADD COLUMN humidity_pct_suspect INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollups ADD COLUMN pressure_hpa_suspect INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollups ADD COLUMN sea_level_pressure_hpa_suspect INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollups ADD COLUMN wind_speed_ms_suspect INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollups ADD COLUMN wind_gust_ms_suspect INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollups ADD COLUMN dew_point_c_suspect INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollups ADD COLUMN feels_like_c_suspect INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollups ADD COLUMN heat_index_c_suspect INTEGER NOT NULL DEFAULT 0;
