import type {
  Alert,
  QcFlag,
  QcCheckCount,
  QcFinding,
  Qc,
  QuarantineItem,
  Reading,
  Resolution,
  Rollup,
  RollupStats,
  ServerMessage,
  Station,
  StationQcReport,
  StationStatus,
  SupervisedChild,
  SupervisionEvent,
  SupervisionGroup,
  SupervisionTree,
} from './types';

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** The items of `v` that `item` accepts; nothing when `v` is not an array. */
function listOf<T>(v: unknown, item: (x: unknown) => T | null): T[] {
  if (!Array.isArray(v)) return [];
  const out: T[] = [];
  for (const x of v) {
    const t = item(x);
    if (t !== null) out.push(t);
  }
  return out;
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
    elevation_m: num(v.elevation_m),
    temperature_c: num(v.temperature_c),
    humidity_pct: num(v.humidity_pct),
    pressure_hpa: num(v.pressure_hpa),
    sea_level_pressure_hpa: num(v.sea_level_pressure_hpa),
    wind_speed_ms: num(v.wind_speed_ms),
    wind_gust_ms: num(v.wind_gust_ms),
    wind_direction_deg: num(v.wind_direction_deg),
    dew_point_c: num(v.dew_point_c),
    heat_index_c: num(v.heat_index_c),
    wind_chill_c: num(v.wind_chill_c),
    feels_like_c: num(v.feels_like_c),
    qc: normalizeQc(v.qc),
  };
}

function qcFlag(v: unknown): QcFlag | null {
  return v === 'pass' || v === 'suspect' || v === 'fail' ? v : null;
}

/** The `qc` object; unknown checks are kept, malformed entries dropped. */
export function normalizeQc(v: unknown): Qc | null {
  if (!isObject(v)) return null;
  const status = qcFlag(v.status) ?? 'pass';
  const variables: Record<string, { flag: QcFlag; findings: QcFinding[] }> = {};
  if (isObject(v.variables)) {
    for (const [name, entry] of Object.entries(v.variables)) {
      if (!isObject(entry)) continue;
      const flag = qcFlag(entry.flag);
      if (flag === null) continue;
      const findings = listOf(entry.findings, (f): QcFinding | null => {
        if (!isObject(f)) return null;
        const ff = qcFlag(f.flag);
        const check = str(f.check);
        return ff === null || check === null ? null : { check, flag: ff, detail: str(f.detail) ?? '' };
      });
      variables[name] = { flag, findings };
    }
  }
  return { status, variables, late: str(v.late) };
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
    elevation_m: num(v.elevation_m) ?? latest?.elevation_m ?? null,
    first_seen: str(v.first_seen),
    last_seen: str(v.last_seen),
    latest,
  };
}

export function normalizeStationList(v: unknown): Station[] {
  return listOf(v, normalizeStation);
}

/** Body of `GET /api/v1/stations`. */
export function parseStationsResponse(body: unknown): Station[] {
  return parseStationsPage(body).stations;
}

/** A page of `GET /api/v1/stations`, and the id to read the next after. */
export function parseStationsPage(body: unknown): { stations: Station[]; nextAfter: string | null } {
  if (!isObject(body)) return { stations: [], nextAfter: null };
  return {
    stations: normalizeStationList(body.stations),
    nextAfter: typeof body.next_after === 'string' ? body.next_after : null,
  };
}

/** Body of `GET /api/v1/stations/{id}/readings`. */
export function parseReadingsResponse(body: unknown): Reading[] {
  return isObject(body) ? listOf(body.readings, normalizeReading) : [];
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
      // A server before `complete` sent every station.
      return {
        type: 'snapshot',
        stations: normalizeStationList(v.stations),
        complete: v.complete !== false,
      };
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
    case 'rollup': {
      const station_id = str(v.station_id);
      const resolution = resolutionOf(v.resolution);
      const rollup = normalizeRollup(v.rollup);
      return station_id === null || resolution === null || rollup === null
        ? null
        : { type: 'rollup', station_id, resolution, rollup };
    }
    case 'alert': {
      const alert = normalizeAlert(v.alert);
      return alert === null ? null : { type: 'alert', alert };
    }
    case 'supervision': {
      const event = normalizeSupervisionEvent(v.event);
      return event === null ? null : { type: 'supervision', event };
    }
    case 'overflow': {
      const dropped = num(v.dropped);
      return dropped === null || dropped < 0 ? null : { type: 'overflow', dropped: Math.floor(dropped) };
    }
    default:
      return null;
  }
}

function resolutionOf(v: unknown): Resolution | null {
  return v === '1m' || v === '1h' ? v : null;
}

function stats(v: unknown): RollupStats | null {
  if (!isObject(v)) return null;
  const count = num(v.count);
  const min = num(v.min);
  const max = num(v.max);
  const mean = num(v.mean);
  const last = num(v.last);
  if (count === null || min === null || max === null || mean === null || last === null) return null;
  return { count, min, max, mean, last };
}

export function normalizeRollup(v: unknown): Rollup | null {
  if (!isObject(v)) return null;
  const bucket = str(v.bucket);
  if (bucket === null || Number.isNaN(Date.parse(bucket))) return null;
  const variables: Record<string, RollupStats> = {};
  if (isObject(v.variables)) {
    for (const [name, value] of Object.entries(v.variables)) {
      const s = stats(value);
      if (s !== null) variables[name] = s;
    }
  }
  return { bucket, variables };
}

/** Body of `GET /api/v1/stations/{id}/rollups`. */
export function parseRollupsResponse(body: unknown): { rollups: Rollup[]; next_cursor: string | null } {
  if (!isObject(body)) return { rollups: [], next_cursor: null };
  return { rollups: listOf(body.rollups, normalizeRollup), next_cursor: str(body.next_cursor) };
}

/** `next_cursor` of a readings page. */
export function nextCursor(body: unknown): string | null {
  return isObject(body) ? str(body.next_cursor) : null;
}

export function normalizeAlert(v: unknown): Alert | null {
  if (!isObject(v)) return null;
  const rule = str(v.rule);
  const fired_at = str(v.fired_at);
  const state = v.state === 'firing' || v.state === 'resolved' ? v.state : null;
  if (rule === null || fired_at === null || state === null) return null;
  return {
    id: num(v.id),
    rule,
    scope: v.scope === 'pipeline' ? 'pipeline' : 'station',
    station_id: str(v.station_id),
    state,
    value: num(v.value),
    message: typeof v.message === 'string' ? v.message : '',
    fired_at,
    resolved_at: str(v.resolved_at),
  };
}

/** Body of `GET /api/v1/alerts`. */
export function parseAlertsResponse(body: unknown): Alert[] {
  return isObject(body) ? listOf(body.alerts, normalizeAlert) : [];
}

export function normalizeSupervisionEvent(v: unknown): SupervisionEvent | null {
  if (!isObject(v)) return null;
  const group = str(v.group);
  const child = str(v.child);
  const at = str(v.at);
  if (group === null || child === null || at === null) return null;
  return {
    group,
    child,
    reason: typeof v.reason === 'string' ? v.reason : '',
    attempt: num(v.attempt) ?? 0,
    delay_ms: num(v.delay_ms) ?? 0,
    with: listOf(v.with, str),
    at,
  };
}

function supervisedChild(v: unknown): SupervisedChild | null {
  if (!isObject(v)) return null;
  const name = str(v.name) ?? str(v.station_id);
  if (name === null) return null;
  return {
    name,
    state: str(v.state) ?? 'unknown',
    restarts: num(v.restarts) ?? 0,
    last_failure: str(v.last_failure),
    last_failure_at: str(v.last_failure_at),
  };
}

function supervisionGroup(v: unknown): SupervisionGroup {
  if (!isObject(v)) return { policy: null, children: [] };
  return { policy: isObject(v.policy) ? v.policy : null, children: listOf(v.children, supervisedChild) };
}

/** Body of `GET /api/v1/supervision`. */
export function parseSupervisionResponse(body: unknown): SupervisionTree {
  const b = isObject(body) ? body : {};
  return {
    root: supervisionGroup(b.root),
    pipeline: supervisionGroup(b.pipeline),
    stations: supervisionGroup(b.stations),
  };
}

/** Body of `GET /api/v1/stations/{id}/qc`; null when it is not one. */
export function parseQcReport(body: unknown): StationQcReport | null {
  if (!isObject(body)) return null;
  const from = str(body.from);
  const to = str(body.to);
  const readings = num(body.readings);
  if (from === null || to === null || readings === null) return null;
  let learned: StationQcReport['learned'] = null;
  if (isObject(body.learned)) {
    const resolution: Record<string, number> = {};
    if (isObject(body.learned.resolution)) {
      for (const [k, v] of Object.entries(body.learned.resolution)) {
        const n = num(v);
        if (n !== null) resolution[k] = n;
      }
    }
    learned = { cadence_s: num(body.learned.cadence_s), resolution };
  }
  return {
    from,
    to,
    readings,
    suspect: num(body.suspect) ?? 0,
    fail: num(body.fail) ?? 0,
    late: num(body.late) ?? 0,
    truncated: body.truncated === true,
    checks: listOf(body.checks, checkCount),
    learned,
  };
}

function checkCount(v: unknown): QcCheckCount | null {
  if (!isObject(v)) return null;
  const variable = str(v.variable);
  const check = str(v.check);
  const flag = qcFlag(v.flag);
  const count = num(v.count);
  const rate = num(v.rate);
  if (variable === null || check === null || flag === null || count === null || rate === null) return null;
  return { variable, check, flag, count, rate };
}

/** Body of `GET /api/v1/quarantine`. */
export function parseQuarantineResponse(body: unknown): QuarantineItem[] {
  return isObject(body) ? listOf(body.items, quarantineItem) : [];
}

function quarantineItem(v: unknown): QuarantineItem | null {
  if (!isObject(v)) return null;
  const id = num(v.id);
  const received_at = str(v.received_at);
  const reason_code = str(v.reason_code);
  if (id === null || received_at === null || reason_code === null) return null;
  return {
    id,
    received_at,
    source: typeof v.source === 'string' ? v.source : '',
    station_id: str(v.station_id),
    reason_code,
    reason: typeof v.reason === 'string' ? v.reason : '',
    payload: typeof v.payload === 'string' ? v.payload : '',
    payload_bytes: num(v.payload_bytes) ?? 0,
    truncated: v.truncated === true,
  };
}
