-- Wind direction gets a rollup: the sums of the directions' unit vectors
-- (east and north components; their mean is the vector-mean direction, its
-- length how steady the wind was), how many directions were counted and
-- how many were suspect, and the direction reported with the period's
-- strongest gust. Periods rolled up before this migration have none.
ALTER TABLE rollups ADD COLUMN wind_direction_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollups ADD COLUMN wind_direction_suspect INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollups ADD COLUMN wind_direction_east REAL NOT NULL DEFAULT 0;
ALTER TABLE rollups ADD COLUMN wind_direction_north REAL NOT NULL DEFAULT 0;
ALTER TABLE rollups ADD COLUMN wind_gust_direction_deg REAL;
