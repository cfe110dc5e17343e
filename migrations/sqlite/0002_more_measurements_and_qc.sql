-- Gusts, elevation and sea-level pressure; "feels like"; quality-control
-- flags per reading (JSON: variable -> {flag, checks}) and the worst flag.

ALTER TABLE observations ADD COLUMN wind_gust_ms REAL;
ALTER TABLE observations ADD COLUMN elevation_m REAL;
ALTER TABLE observations ADD COLUMN sea_level_pressure_hpa REAL;
ALTER TABLE observations ADD COLUMN feels_like_c REAL;
ALTER TABLE observations ADD COLUMN qc_status TEXT NOT NULL DEFAULT 'pass';
ALTER TABLE observations ADD COLUMN qc TEXT NOT NULL DEFAULT '{}';

ALTER TABLE stations ADD COLUMN elevation_m REAL;
