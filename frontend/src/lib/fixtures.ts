import type { Alert, Reading, Station } from './types';

/** A complete reading; override fields per test. */
export function reading(overrides: Partial<Reading> = {}): Reading {
  return {
    station_id: 'WS001',
    observed_at: '2025-01-13T10:00:00Z',
    received_at: '2025-01-13T10:00:00.120Z',
    latitude: 40.7589,
    longitude: -73.9851,
    elevation_m: 10,
    temperature_c: 22.5,
    humidity_pct: 65.2,
    pressure_hpa: 1013.8,
    sea_level_pressure_hpa: 1015.0,
    wind_speed_ms: 12.3,
    wind_gust_ms: null,
    wind_direction_deg: 225.0,
    dew_point_c: 15.8,
    heat_index_c: null,
    wind_chill_c: null,
    feels_like_c: 22.5,
    qc: { status: 'pass', variables: {}, late: null },
    ...overrides,
  };
}

export function station(id: string, latest: Reading | null = null, overrides: Partial<Station> = {}): Station {
  return {
    station_id: id,
    latitude: latest?.latitude ?? null,
    longitude: latest?.longitude ?? null,
    elevation_m: latest?.elevation_m ?? null,
    name: null,
    status: null,
    first_seen: '2025-01-13T09:00:00Z',
    last_seen: latest?.observed_at ?? null,
    latest,
    ...overrides,
  };
}

export function alert(overrides: Partial<Alert> = {}): Alert {
  return {
    id: 7,
    rule: 'heat',
    scope: 'station',
    station_id: 'WS001',
    state: 'firing',
    value: 36.2,
    message: 'temperature_c 36.2 above 35',
    fired_at: '2025-01-13T10:00:00Z',
    resolved_at: null,
    ...overrides,
  };
}
