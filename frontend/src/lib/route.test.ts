import { describe, expect, it } from 'vitest';
import { parseRoute, routeHref, stationHref } from './route';

describe('routes', () => {
  it('parses each view from the URL fragment', () => {
    expect(parseRoute('')).toEqual({ view: 'overview' });
    expect(parseRoute('#/')).toEqual({ view: 'overview' });
    expect(parseRoute('#/alerts')).toEqual({ view: 'alerts' });
    expect(parseRoute('#/system')).toEqual({ view: 'system' });
    expect(parseRoute('#/stations/WS001')).toEqual({ view: 'station', stationId: 'WS001' });
  });

  it('round-trips station ids that need escaping', () => {
    for (const id of ['WS 1', 'a/b', 'ü-7', '%41']) {
      expect(parseRoute(stationHref(id))).toEqual({ view: 'station', stationId: id });
    }
  });

  it('falls back to the overview for unknown or broken fragments', () => {
    expect(parseRoute('#/nowhere')).toEqual({ view: 'overview' });
    expect(parseRoute('#/stations')).toEqual({ view: 'overview' });
    expect(parseRoute('#/stations/%E0%A4%A')).toEqual({ view: 'overview' });
    expect(parseRoute('#/alerts/extra')).toEqual({ view: 'overview' });
  });

  it('writes hrefs for every view', () => {
    expect(routeHref({ view: 'overview' })).toBe('#/');
    expect(routeHref({ view: 'alerts' })).toBe('#/alerts');
    expect(routeHref({ view: 'system' })).toBe('#/system');
  });
});
