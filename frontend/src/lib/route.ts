/**
 * The dashboard's views, addressed by the URL fragment (`#/stations/WS001`),
 * so that every view can be bookmarked and the built files work from any
 * static host without server-side rewrites.
 */
export type Route =
  | { view: 'overview' }
  | { view: 'station'; stationId: string }
  | { view: 'alerts' }
  | { view: 'system' };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '').replace(/^\/+/, '');
  const parts = path.split('/').filter((p) => p.length > 0);
  const [head, arg] = parts;
  if (head === 'stations' && arg !== undefined) {
    let id: string;
    try {
      id = decodeURIComponent(arg);
    } catch {
      return { view: 'overview' };
    }
    return { view: 'station', stationId: id };
  }
  if (head === 'alerts' && parts.length === 1) return { view: 'alerts' };
  if (head === 'system' && parts.length === 1) return { view: 'system' };
  return { view: 'overview' };
}

export function routeHref(route: Route): string {
  switch (route.view) {
    case 'overview':
      return '#/';
    case 'station':
      return `#/stations/${encodeURIComponent(route.stationId)}`;
    case 'alerts':
      return '#/alerts';
    case 'system':
      return '#/system';
  }
}

export function stationHref(stationId: string): string {
  return routeHref({ view: 'station', stationId });
}
