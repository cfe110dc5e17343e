/** All API paths are root-relative: the dashboard and the API share an origin. */
export const API_BASE = '/api/v1';

export const STATIONS_PATH = `${API_BASE}/stations`;
export const LIVE_PATH = `${API_BASE}/live`;

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

/** `GET /api/v1/stations/{id}/readings?from&to&limit`, relative to the origin. */
export function readingsPath(stationId: string, from: Date, to: Date, limit: number): string {
  const q = new URLSearchParams({
    from: from.toISOString(),
    to: to.toISOString(),
    limit: String(Math.max(1, Math.floor(limit))),
  });
  return `${STATIONS_PATH}/${encodeURIComponent(stationId)}/readings?${q.toString()}`;
}

/** `GET /api/v1/stations/{id}/readings.csv`: the last day by default, or `[from, to)`. */
export function csvPath(stationId: string, from?: Date, to?: Date): string {
  const q = new URLSearchParams();
  if (from !== undefined) q.set('from', from.toISOString());
  if (to !== undefined) q.set('to', to.toISOString());
  const query = q.toString();
  return `${STATIONS_PATH}/${encodeURIComponent(stationId)}/readings.csv${query ? `?${query}` : ''}`;
}
