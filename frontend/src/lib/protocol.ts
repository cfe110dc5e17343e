import type { Reading, ServerMessage, Station, StationStatus } from './types';

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function str(v: unknown): string | null {
  return typeof v === 'string' && v.length > 0 ? v : null;
}

/**
 * Validates a reading coming from the network. Returns null when the
 * identifying fields are missing; malformed measurements become null.
 */
export function normalizeReading(v: unknown): Reading | null {
  if (!isObject(v)) return null;
  const station_id = str(v.station_id);
  const observed_at = str(v.observed_at);
  if (station_id === null || observed_at === null || Number.isNaN(Date.parse(observed_at))) {
    return null;
  }
  return {
    station_id,
    observed_at,
    received_at: str(v.received_at),
    latitude: num(v.latitude),
    longitude: num(v.longitude),
    temperature_c: num(v.temperature_c),
    humidity_pct: num(v.humidity_pct),
    pressure_hpa: num(v.pressure_hpa),
    wind_speed_ms: num(v.wind_speed_ms),
    wind_direction_deg: num(v.wind_direction_deg),
    dew_point_c: num(v.dew_point_c),
    heat_index_c: num(v.heat_index_c),
    wind_chill_c: num(v.wind_chill_c),
  };
}

function stationStatus(v: unknown): StationStatus | null {
  return v === 'reporting' || v === 'silent' ? v : null;
}

export function normalizeStation(v: unknown): Station | null {
  if (!isObject(v)) return null;
  const station_id = str(v.station_id);
  if (station_id === null) return null;
  let latest = v.latest == null ? null : normalizeReading(v.latest);
  if (latest !== null && latest.station_id !== station_id) latest = null;
  return {
    station_id,
    name: str(v.name),
    status: stationStatus(v.status),
    latitude: num(v.latitude) ?? latest?.latitude ?? null,
    longitude: num(v.longitude) ?? latest?.longitude ?? null,
    first_seen: str(v.first_seen),
    last_seen: str(v.last_seen),
    latest,
  };
}

export function normalizeStationList(v: unknown): Station[] {
  if (!Array.isArray(v)) return [];
  const out: Station[] = [];
  for (const item of v) {
    const s = normalizeStation(item);
    if (s !== null) out.push(s);
  }
  return out;
}

/** Body of `GET /api/v1/stations`. */
export function parseStationsResponse(body: unknown): Station[] {
  return isObject(body) ? normalizeStationList(body.stations) : [];
}

/** Body of `GET /api/v1/stations/{id}/readings`. */
export function parseReadingsResponse(body: unknown): Reading[] {
  if (!isObject(body) || !Array.isArray(body.readings)) return [];
  const out: Reading[] = [];
  for (const item of body.readings) {
    const r = normalizeReading(item);
    if (r !== null) out.push(r);
  }
  return out;
}

/**
 * Decodes one websocket text frame. Returns null for frames that are not
 * JSON, are malformed, or carry a `type` this version does not know
 * (the protocol is expected to grow).
 */
export function parseServerMessage(text: string): ServerMessage | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isObject(v)) return null;
  switch (v.type) {
    case 'snapshot':
      if (!Array.isArray(v.stations)) return null;
      return { type: 'snapshot', stations: normalizeStationList(v.stations) };
    case 'reading': {
      const reading = normalizeReading(v.reading);
      return reading === null ? null : { type: 'reading', reading };
    }
    case 'station_status': {
      const station_id = str(v.station_id);
      const status = stationStatus(v.status);
      const last_seen = str(v.last_seen);
      return station_id === null || status === null || last_seen === null
        ? null
        : { type: 'station_status', station_id, status, last_seen };
    }
    case 'overflow': {
      const dropped = num(v.dropped);
      return dropped === null || dropped < 0 ? null : { type: 'overflow', dropped: Math.floor(dropped) };
    }
    default:
      return null;
  }
}
