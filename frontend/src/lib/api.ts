import {
  nextCursor,
  parseAlertsResponse,
  parseQcReport,
  parseQuarantineResponse,
  parseReadingsResponse,
  parseRollupsResponse,
  parseStationsPage,
  parseSupervisionResponse,
} from './protocol';
import type {
  Alert,
  QuarantineItem,
  Reading,
  Resolution,
  Rollup,
  Station,
  StationQcReport,
  SupervisionTree,
} from './types';
import { authHeaders } from './credential';
import {
  LIVE_TICKET_PATH,
  METRICS_PATH,
  STATIONS_PATH,
  SUPERVISION_PATH,
  alertsPath,
  apiUrl,
  qcPath,
  quarantinePath,
  readingsPath,
  rollupsPath,
  withCursor,
} from './urls';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

async function get(path: string, accept: string, signal?: AbortSignal): Promise<Response> {
  return checked(
    await fetch(apiUrl(path), {
      headers: { Accept: accept, ...authHeaders() },
      ...(signal ? { signal } : {}),
    }),
  );
}

/** A ticket to open the websocket with, bought with the read key. */
export async function fetchLiveTicket(): Promise<string> {
  const res = await checked(
    await fetch(apiUrl(LIVE_TICKET_PATH), {
      method: 'POST',
      headers: { Accept: 'application/json', ...authHeaders() },
    }),
  );
  const body: unknown = await res.json();
  if (typeof body === 'object' && body !== null && 'ticket' in body && typeof body.ticket === 'string') {
    return body.ticket;
  }
  throw new ApiError(res.status, 'the ticket answer has no ticket');
}

async function checked(res: Response): Promise<Response> {
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`.trim();
    try {
      const body: unknown = await res.json();
      if (typeof body === 'object' && body !== null && 'message' in body && typeof body.message === 'string') {
        message = body.message;
      }
    } catch {
      // Not JSON; keep the status line.
    }
    throw new ApiError(res.status, message);
  }
  return res;
}

async function getJson(path: string, signal?: AbortSignal): Promise<unknown> {
  return (await get(path, 'application/json', signal)).json();
}

/**
 * Every station, a page of 1,000 at a time (`next_after`), so a large
 * network is read in pieces rather than one answer of megabytes.
 */
export async function fetchStations(signal?: AbortSignal): Promise<Station[]> {
  const stations: Station[] = [];
  let after: string | null = null;
  do {
    const query: string = after === null ? '' : `&after=${encodeURIComponent(after)}`;
    const page = parseStationsPage(await getJson(`${STATIONS_PATH}?limit=1000${query}`, signal));
    stations.push(...page.stations);
    // A page that adds nothing ends it, whatever it says.
    after = page.stations.length > 0 ? page.nextAfter : null;
  } while (after !== null);
  return stations;
}

/** A history query's result; `truncated` when more than `max` items matched. */
export interface Paged<T> {
  items: T[];
  truncated: boolean;
}

/** Follows `next_cursor` until the range is read or `max` items are in. */
async function allPages<T>(
  first: string,
  max: number,
  parse: (body: unknown) => T[],
  signal?: AbortSignal,
): Promise<Paged<T>> {
  const items: T[] = [];
  let path: string | null = first;
  while (path !== null) {
    const body = await getJson(path, signal);
    items.push(...parse(body));
    const cursor = nextCursor(body);
    if (cursor === null) return { items, truncated: false };
    if (items.length >= max) return { items: items.slice(0, max), truncated: true };
    path = withCursor(first, cursor);
  }
  return { items, truncated: false };
}

const PAGE = 10_000;

export function fetchReadingHistory(
  stationId: string,
  from: Date,
  to: Date,
  max: number,
  signal?: AbortSignal,
): Promise<Paged<Reading>> {
  return allPages(readingsPath(stationId, from, to, Math.min(PAGE, max)), max, parseReadingsResponse, signal);
}

export function fetchRollupHistory(
  stationId: string,
  resolution: Resolution,
  from: Date,
  to: Date,
  max: number,
  signal?: AbortSignal,
): Promise<Paged<Rollup>> {
  return allPages(
    rollupsPath(stationId, resolution, from, to, Math.min(PAGE, max)),
    max,
    (b) => parseRollupsResponse(b).rollups,
    signal,
  );
}

export async function fetchAlerts(limit: number, signal?: AbortSignal): Promise<Alert[]> {
  return parseAlertsResponse(await getJson(alertsPath(limit), signal));
}

export async function fetchSupervision(signal?: AbortSignal): Promise<SupervisionTree> {
  return parseSupervisionResponse(await getJson(SUPERVISION_PATH, signal));
}

/** A station's QC report; null when the answer is not one. */
export async function fetchQcReport(stationId: string, signal?: AbortSignal): Promise<StationQcReport | null> {
  return parseQcReport(await getJson(qcPath(stationId), signal));
}

export async function fetchQuarantine(limit: number, signal?: AbortSignal): Promise<QuarantineItem[]> {
  return parseQuarantineResponse(await getJson(quarantinePath(limit), signal));
}

/** The Prometheus text of `GET /metrics`. */
export async function fetchMetrics(signal?: AbortSignal): Promise<string> {
  return (await get(METRICS_PATH, 'text/plain', signal)).text();
}
