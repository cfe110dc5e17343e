/**
 * API paths are root-relative. By default the dashboard and the API share
 * an origin (the daemon serves both); a dashboard published elsewhere (S3
 * behind CloudFront, say) names the daemon's origin in `config.js`.
 */
export const API_BASE = '/api/v1';

/**
 * Parses the configured API origin (`https://api.wx.example.net`): "" for
 * the page's own origin, the normalised origin otherwise; an unusable
 * value is an error naming it, so a mistake in `config.js` is plain.
 */
export function parseApiOrigin(value: unknown): string {
  if (value === undefined || value === null || value === '') return '';
  if (typeof value !== 'string') throw new Error('apiOrigin must be a string like "https://api.example.net"');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(`apiOrigin "${value}" is not a URL like "https://api.example.net"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`apiOrigin "${value}" must be an http: or https: URL`);
  }
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '') {
    throw new Error(`apiOrigin "${value}" must be an origin only (scheme, host and port), without a path`);
  }
  return url.origin;
}

let apiOrigin = '';

/** Set once at start from `window.isobarConfig.apiOrigin`. */
export function setApiOrigin(origin: string): void {
  apiOrigin = origin;
}

/** A root-relative API path made absolute when the API lives elsewhere. */
export function apiUrl(path: string): string {
  return apiOrigin + path;
}

/** Where the websocket connects: the configured API origin, or the page's. */
export function apiLocation(page: LocationLike): LocationLike {
  if (apiOrigin === '') return page;
  const u = new URL(apiOrigin);
  return { protocol: u.protocol, host: u.host };
}

export const STATIONS_PATH = `${API_BASE}/stations`;
export const LIVE_PATH = `${API_BASE}/live`;
export const LIVE_TICKET_PATH = `${API_BASE}/live/ticket`;

/** The parts of `window.location` the websocket URL depends on. */
export interface LocationLike {
  protocol: string;
  host: string;
}

/**
 * Websocket URL for live updates on the page's own origin: `wss:` when the
 * page came over https, `ws:` otherwise. An optional station filter is sent
 * as `?stations=A,B`.
 */
export function liveUrl(loc: LocationLike, stations?: readonly string[]): string {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  let url = `${scheme}//${loc.host}${LIVE_PATH}`;
  if (stations !== undefined && stations.length > 0) {
    url += `?stations=${stations.map(encodeURIComponent).join(',')}`;
  }
  return url;
}

function stationPath(stationId: string): string {
  return `${STATIONS_PATH}/${encodeURIComponent(stationId)}`;
}

function pageQuery(from: Date, to: Date, limit: number): URLSearchParams {
  return new URLSearchParams({
    from: from.toISOString(),
    to: to.toISOString(),
    limit: String(Math.max(1, Math.floor(limit))),
  });
}

/** `GET /api/v1/stations/{id}/readings?from&to&limit`, relative to the origin. */
export function readingsPath(stationId: string, from: Date, to: Date, limit: number): string {
  return `${stationPath(stationId)}/readings?${pageQuery(from, to, limit).toString()}`;
}

/** The next page of readings or rollups: the cursor replaces `from` and `to`. */
export function withCursor(path: string, cursor: string): string {
  const [base, query] = path.split('?', 2) as [string, string | undefined];
  const q = new URLSearchParams(query ?? '');
  q.delete('from');
  q.delete('to');
  q.set('cursor', cursor);
  return `${base}?${q.toString()}`;
}

/** `GET /api/v1/stations/{id}/rollups?resolution&from&to&limit`. */
export function rollupsPath(stationId: string, resolution: '1m' | '1h', from: Date, to: Date, limit: number): string {
  const q = pageQuery(from, to, limit);
  q.set('resolution', resolution);
  return `${stationPath(stationId)}/rollups?${q.toString()}`;
}

export function alertsPath(limit: number, state?: 'firing' | 'resolved'): string {
  const q = new URLSearchParams({ limit: String(limit) });
  if (state !== undefined) q.set('state', state);
  return `${API_BASE}/alerts?${q.toString()}`;
}

export const SUPERVISION_PATH = `${API_BASE}/supervision`;
export const METRICS_PATH = '/metrics';

/** `GET /api/v1/stations/{id}/qc`: the day up to the station's newest reading. */
export function qcPath(stationId: string): string {
  return `${stationPath(stationId)}/qc`;
}

export function quarantinePath(limit: number): string {
  return `${API_BASE}/quarantine?limit=${Math.max(1, Math.floor(limit))}`;
}

/** `GET /api/v1/stations/{id}/readings.csv`: the last day by default, or `[from, to)`. */
export function csvPath(stationId: string, from?: Date, to?: Date): string {
  const q = new URLSearchParams();
  if (from !== undefined) q.set('from', from.toISOString());
  if (to !== undefined) q.set('to', to.toISOString());
  const query = q.toString();
  return apiUrl(`${stationPath(stationId)}/readings.csv${query ? `?${query}` : ''}`);
}
