import { describe, expect, it } from 'vitest';
import {
  apiLocation,
  apiUrl,
  csvPath,
  liveUrl,
  parseApiOrigin,
  readingsPath,
  rollupsPath,
  setApiOrigin,
  withCursor,
} from './urls';

describe('liveUrl', () => {
  it('uses ws: for pages served over http', () => {
    expect(liveUrl({ protocol: 'http:', host: '127.0.0.1:8080' })).toBe('ws://127.0.0.1:8080/api/v1/live');
  });

  it('uses wss: for pages served over https', () => {
    expect(liveUrl({ protocol: 'https:', host: 'weather.example.org' })).toBe('wss://weather.example.org/api/v1/live');
  });

  it('keeps IPv6 hosts and ports from the location', () => {
    expect(liveUrl({ protocol: 'http:', host: '[::1]:3000' })).toBe('ws://[::1]:3000/api/v1/live');
  });

  it('adds an encoded station filter when given', () => {
    expect(liveUrl({ protocol: 'http:', host: 'h' }, ['WS001', 'WS002'])).toBe('ws://h/api/v1/live?stations=WS001,WS002');
    expect(liveUrl({ protocol: 'http:', host: 'h' }, ['a b', 'c,d'])).toBe('ws://h/api/v1/live?stations=a%20b,c%2Cd');
    expect(liveUrl({ protocol: 'http:', host: 'h' }, [])).toBe('ws://h/api/v1/live');
  });
});

describe('readingsPath', () => {
  it('builds a root-relative history query', () => {
    const path = readingsPath('WS 1/x', new Date('2025-01-13T09:45:00Z'), new Date('2025-01-13T10:00:00Z'), 10000);
    const url = new URL(path, 'http://localhost');
    expect(url.pathname).toBe('/api/v1/stations/WS%201%2Fx/readings');
    expect(url.searchParams.get('from')).toBe('2025-01-13T09:45:00.000Z');
    expect(url.searchParams.get('to')).toBe('2025-01-13T10:00:00.000Z');
    expect(url.searchParams.get('limit')).toBe('10000');
  });
});

describe('csvPath', () => {
  it('names the station and, when given, the range', () => {
    expect(csvPath('WS 1')).toBe('/api/v1/stations/WS%201/readings.csv');
    const url = new URL(csvPath('WS1', new Date('2025-01-13T00:00:00Z'), new Date('2025-01-14T00:00:00Z')), 'http://h');
    expect(url.pathname).toBe('/api/v1/stations/WS1/readings.csv');
    expect(url.searchParams.get('from')).toBe('2025-01-13T00:00:00.000Z');
    expect(url.searchParams.get('to')).toBe('2025-01-14T00:00:00.000Z');
  });
});

describe('the configured API origin', () => {
  it('accepts an origin and normalises it', () => {
    expect(parseApiOrigin(undefined)).toBe('');
    expect(parseApiOrigin('')).toBe('');
    expect(parseApiOrigin('https://API.example.net')).toBe('https://api.example.net');
    expect(parseApiOrigin('http://127.0.0.1:8080/')).toBe('http://127.0.0.1:8080');
  });

  it('names what is wrong with anything else', () => {
    expect(() => parseApiOrigin(42)).toThrow(/must be a string/);
    expect(() => parseApiOrigin('api.example.net')).toThrow(/not a URL/);
    expect(() => parseApiOrigin('ftp://example.net')).toThrow(/http: or https:/);
    expect(() => parseApiOrigin('https://example.net/api')).toThrow(/origin only/);
  });

  it('sends REST calls and the websocket there when set', () => {
    try {
      setApiOrigin('https://api.example.net');
      expect(apiUrl('/api/v1/stations')).toBe('https://api.example.net/api/v1/stations');
      expect(csvPath('WS001')).toBe('https://api.example.net/api/v1/stations/WS001/readings.csv');
      expect(liveUrl(apiLocation({ protocol: 'http:', host: 'dash.example.net' }))).toBe(
        'wss://api.example.net/api/v1/live',
      );
    } finally {
      setApiOrigin('');
    }
    expect(apiUrl('/api/v1/stations')).toBe('/api/v1/stations');
    expect(apiLocation({ protocol: 'http:', host: 'h' })).toEqual({ protocol: 'http:', host: 'h' });
  });

  it('pages with a cursor in place of the range', () => {
    const first = readingsPath('WS001', new Date('2025-01-13T00:00:00Z'), new Date('2025-01-14T00:00:00Z'), 500);
    expect(withCursor(first, 'abc+/=')).toBe('/api/v1/stations/WS001/readings?limit=500&cursor=abc%2B%2F%3D');
    expect(rollupsPath('WS001', '1h', new Date(0), new Date(1000), 10)).toContain('resolution=1h');
  });
});
