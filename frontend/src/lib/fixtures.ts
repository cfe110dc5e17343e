import type { Reading, Station } from './types';

/** A complete reading; override fields per test. */
export function reading(overrides: Partial<Reading> = {}): Reading {
  return {
    station_id: 'WS001',
    observed_at: '2025-01-13T10:00:00Z',
    received_at: '2025-01-13T10:00:00.120Z',
    latitude: 40.7589,
    longitude: -73.9851,
    temperature_c: 22.5,
    humidity_pct: 65.2,
    pressure_hpa: 1013.8,
    wind_speed_ms: 12.3,
    wind_direction_deg: 225.0,
    dew_point_c: 15.8,
    heat_index_c: null,
    wind_chill_c: null,
    ...overrides,
  };
}

export function station(id: string, latest: Reading | null = null, overrides: Partial<Station> = {}): Station {
  return {
    station_id: id,
    latitude: latest?.latitude ?? null,
    longitude: latest?.longitude ?? null,
    name: null,
    status: null,
    first_seen: '2025-01-13T09:00:00Z',
    last_seen: latest?.received_at ?? null,
    latest,
    ...overrides,
  };
}
