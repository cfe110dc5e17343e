import { describe, expect, it } from 'vitest';
import { alert, reading } from './fixtures';
import {
  parseAlertsResponse,
  parseQuarantineResponse,
  parseReadingsResponse,
  parseRollupsResponse,
  parseServerMessage,
  parseStationsPage,
  parseStationsResponse,
  parseSupervisionResponse,
} from './protocol';

const example = {
  station_id: 'WS001',
  observed_at: '2025-01-13T10:00:00Z',
  received_at: '2025-01-13T10:00:00.120Z',
  latitude: 40.7589,
  longitude: -73.9851,
  elevation_m: 10.0,
  temperature_c: 22.5,
  humidity_pct: 65.2,
  pressure_hpa: 1013.8,
  wind_speed_ms: 12.3,
  wind_direction_deg: 225.0,
  wind_gust_ms: null,
  dew_point_c: 15.8,
  heat_index_c: null,
  wind_chill_c: null,
  feels_like_c: 22.5,
  sea_level_pressure_hpa: 1015.0,
  qc: { status: 'pass' },
};

describe('parseServerMessage', () => {
  it('decodes a reading message from the documented example', () => {
    const msg = parseServerMessage(JSON.stringify({ type: 'reading', reading: example }));
    expect(msg).toEqual({ type: 'reading', reading: reading() });
  });

  it('decodes a snapshot with stations and a null latest', () => {
    const msg = parseServerMessage(
      JSON.stringify({
        type: 'snapshot',
        stations: [
          { station_id: 'WS002', latitude: 1, longitude: 2, first_seen: 'a', last_seen: 'b', latest: null },
          { station_id: 'WS001', latitude: 40.7589, longitude: -73.9851, first_seen: 'c', last_seen: 'd', latest: example },
        ],
      }),
    );
    expect(msg?.type).toBe('snapshot');
    if (msg?.type !== 'snapshot') return;
    expect(msg.stations.map((s) => s.station_id)).toEqual(['WS002', 'WS001']);
    expect(msg.stations[0]?.latest).toBeNull();
    expect(msg.stations[1]?.latest?.temperature_c).toBe(22.5);
    expect(msg.stations[1]?.last_seen).toBe('d');
    // A server before `complete` sent every station.
    expect(msg.complete).toBe(true);
  });

  it('decodes a partial snapshot and a page of the station list', () => {
    const msg = parseServerMessage(JSON.stringify({ type: 'snapshot', complete: false, total: 5000, stations: [] }));
    expect(msg).toEqual({ type: 'snapshot', stations: [], complete: false });
    expect(parseStationsPage({ stations: [{ station_id: 'WS001' }], next_after: 'WS001', total: 2 }).nextAfter).toBe('WS001');
    expect(parseStationsPage({ stations: [], next_after: null }).nextAfter).toBeNull();
    expect(parseStationsPage('x')).toEqual({ stations: [], nextAfter: null });
  });

  it('decodes station names, status and station_status messages', () => {
    const msg = parseServerMessage(
      JSON.stringify({
        type: 'snapshot',
        protocol: 1,
        stations: [{ station_id: 'WS001', name: 'Central Park', status: 'silent', latest: null }],
      }),
    );
    if (msg?.type !== 'snapshot') throw new Error('not a snapshot');
    expect(msg.stations[0]?.name).toBe('Central Park');
    expect(msg.stations[0]?.status).toBe('silent');
    expect(
      parseServerMessage('{"type":"station_status","station_id":"WS001","status":"reporting","last_seen":"2025-01-13T10:00:00Z","at":"x"}'),
    ).toEqual({ type: 'station_status', station_id: 'WS001', status: 'reporting', last_seen: '2025-01-13T10:00:00Z' });
    expect(parseServerMessage('{"type":"station_status","station_id":"WS001","status":"asleep","last_seen":"x"}')).toBeNull();
    // A status the dashboard does not know is no status, not an error.
    const odd = parseServerMessage(JSON.stringify({ type: 'snapshot', stations: [{ station_id: 'WS002', status: 'asleep' }] }));
    expect(odd?.type === 'snapshot' && odd.stations[0]?.status).toBeNull();
  });

  it('decodes overflow counts', () => {
    expect(parseServerMessage('{"type":"overflow","dropped":17}')).toEqual({ type: 'overflow', dropped: 17 });
    expect(parseServerMessage('{"type":"overflow","dropped":-1}')).toBeNull();
    expect(parseServerMessage('{"type":"overflow"}')).toBeNull();
  });

  it('ignores unknown message types and malformed known ones', () => {
    expect(parseServerMessage('{"type":"forecast","stations":[]}')).toBeNull();
    expect(parseServerMessage('{"type":"rollup","window":"1m","stations":[]}')).toBeNull();
    expect(parseServerMessage('{"type":"alert","level":"warn"}')).toBeNull();
    expect(parseServerMessage('{"type":"supervision","event":{"group":"root"}}')).toBeNull();
    expect(parseServerMessage('{"reading":{}}')).toBeNull();
  });

  it('decodes the QC object with its findings and lateness', () => {
    const qc = {
      status: 'suspect',
      variables: {
        temperature_c: {
          flag: 'suspect',
          findings: [{ check: 'step', flag: 'suspect', detail: 'changed 9.4 °C in 60 s' }, { flag: 'odd' }],
        },
        humidity_pct: { flag: 'unknown' },
      },
      late: 'older than the newest',
    };
    const msg = parseServerMessage(JSON.stringify({ type: 'reading', reading: { ...example, qc } }));
    if (msg?.type !== 'reading') throw new Error('not a reading');
    expect(msg.reading.qc).toEqual({
      status: 'suspect',
      variables: {
        temperature_c: { flag: 'suspect', findings: [{ check: 'step', flag: 'suspect', detail: 'changed 9.4 °C in 60 s' }] },
      },
      late: 'older than the newest',
    });
  });

  it('decodes rollup messages as documented', () => {
    const msg = parseServerMessage(
      JSON.stringify({
        type: 'rollup',
        station_id: 'WS001',
        resolution: '1m',
        rollup: {
          bucket: '2025-01-13T10:00:00Z',
          variables: {
            temperature_c: { count: 12, min: 21.9, max: 22.5, mean: 22.2, last: 22.5 },
            humidity_pct: { count: 'x' },
          },
        },
      }),
    );
    expect(msg).toEqual({
      type: 'rollup',
      station_id: 'WS001',
      resolution: '1m',
      rollup: {
        bucket: '2025-01-13T10:00:00Z',
        variables: { temperature_c: { count: 12, min: 21.9, max: 22.5, mean: 22.2, last: 22.5 } },
      },
    });
    expect(
      parseServerMessage('{"type":"rollup","station_id":"WS001","resolution":"1d","rollup":{"bucket":"2025-01-13T10:00:00Z"}}'),
    ).toBeNull();
  });

  it('decodes alert and supervision messages', () => {
    expect(parseServerMessage(JSON.stringify({ type: 'alert', alert: alert() }))).toEqual({ type: 'alert', alert: alert() });
    const pipeline = alert({ id: null, rule: 'processing_lag', scope: 'pipeline', station_id: null, value: 6.4 });
    expect(parseServerMessage(JSON.stringify({ type: 'alert', alert: pipeline }))).toEqual({ type: 'alert', alert: pipeline });
    const event = {
      group: 'pipeline',
      child: 'persister',
      reason: 'store failed',
      attempt: 2,
      delay_ms: 200,
      with: ['hub'],
      at: '2025-01-13T10:01:00Z',
    };
    expect(parseServerMessage(JSON.stringify({ type: 'supervision', event }))).toEqual({ type: 'supervision', event });
  });

  it('rejects frames that are not JSON objects', () => {
    expect(parseServerMessage('not json')).toBeNull();
    expect(parseServerMessage('[1,2]')).toBeNull();
    expect(parseServerMessage('null')).toBeNull();
    expect(parseServerMessage('"reading"')).toBeNull();
  });

  it('rejects readings without a station id or a valid observed_at', () => {
    expect(parseServerMessage(JSON.stringify({ type: 'reading', reading: { ...example, station_id: '' } }))).toBeNull();
    expect(parseServerMessage(JSON.stringify({ type: 'reading', reading: { ...example, observed_at: 'yesterday' } }))).toBeNull();
    expect(parseServerMessage(JSON.stringify({ type: 'reading' }))).toBeNull();
  });

  it('turns missing or non-numeric measurements into null', () => {
    const { temperature_c: _t, ...noTemp } = example;
    const msg = parseServerMessage(
      JSON.stringify({ type: 'reading', reading: { ...noTemp, humidity_pct: '65', pressure_hpa: null } }),
    );
    expect(msg).toEqual({
      type: 'reading',
      reading: reading({ temperature_c: null, humidity_pct: null, pressure_hpa: null }),
    });
  });

  it('ignores extra fields added by newer servers', () => {
    const msg = parseServerMessage(JSON.stringify({ type: 'reading', seq: 9, reading: { ...example, uv_index: 3 } }));
    expect(msg).toEqual({ type: 'reading', reading: reading() });
  });
});

describe('REST bodies', () => {
  it('parses GET /api/v1/stations and skips invalid items', () => {
    const list = parseStationsResponse({
      stations: [{ station_id: 'WS001', latest: example }, { latitude: 3 }, 'junk'],
    });
    expect(list).toHaveLength(1);
    expect(list[0]?.station_id).toBe('WS001');
    // Coordinates fall back to the latest reading's.
    expect(list[0]?.latitude).toBe(40.7589);
    expect(list[0]?.first_seen).toBeNull();
  });

  it('returns no stations for an unexpected body', () => {
    expect(parseStationsResponse(null)).toEqual([]);
    expect(parseStationsResponse({ stations: 'x' })).toEqual([]);
  });

  it('parses GET /api/v1/stations/{id}/readings', () => {
    const rs = parseReadingsResponse({
      station_id: 'WS001',
      readings: [example, { ...example, observed_at: '2025-01-13T10:00:01Z', temperature_c: 22.6 }, {}],
    });
    expect(rs.map((r) => r.temperature_c)).toEqual([22.5, 22.6]);
  });
});

describe('REST bodies of the other views', () => {
  it('parses GET /api/v1/alerts, skipping items without a rule, state or time', () => {
    const list = parseAlertsResponse({ alerts: [alert(), { rule: 'x', state: 'odd', fired_at: 'y' }, { state: 'firing' }] });
    expect(list).toEqual([alert()]);
  });

  it('parses GET …/rollups with its cursor', () => {
    const body = {
      rollups: [{ bucket: '2025-01-13T10:00:00Z', variables: {} }, { bucket: 'nope' }],
      next_cursor: 'abc',
    };
    expect(parseRollupsResponse(body)).toEqual({
      rollups: [{ bucket: '2025-01-13T10:00:00Z', variables: {} }],
      next_cursor: 'abc',
    });
  });

  it('parses GET /api/v1/supervision, naming station children by id', () => {
    const tree = parseSupervisionResponse({
      root: {
        policy: { strategy: 'one_for_one' },
        children: [{ name: 'pipeline', state: 'running', restarts: 1, last_failure: 'boom', last_failure_at: 't' }],
      },
      pipeline: { children: [{ name: 'persister', state: 'restarting', restarts: 6 }] },
      stations: { children: [{ station_id: 'WS001', state: 'running', restarts: 0 }, { state: 'running' }] },
    });
    expect(tree.root.policy).toEqual({ strategy: 'one_for_one' });
    expect(tree.root.children[0]).toEqual({
      name: 'pipeline',
      state: 'running',
      restarts: 1,
      last_failure: 'boom',
      last_failure_at: 't',
    });
    expect(tree.pipeline.children[0]?.state).toBe('restarting');
    expect(tree.stations.children.map((c) => c.name)).toEqual(['WS001']);
    expect(parseSupervisionResponse(null).root.children).toEqual([]);
  });

  it('parses GET /api/v1/quarantine', () => {
    const items = parseQuarantineResponse({
      items: [
        {
          id: 3,
          received_at: '2025-01-13T10:00:00Z',
          source: 'weather/WS001/observations',
          station_id: 'WS001',
          reason_code: 'malformed_json',
          reason: 'expected value at line 1',
          payload: '{oops',
          payload_bytes: 5,
          truncated: false,
        },
        { id: 'x' },
      ],
      next_before: null,
    });
    expect(items).toHaveLength(1);
    expect(items[0]?.reason_code).toBe('malformed_json');
    expect(items[0]?.station_id).toBe('WS001');
  });
});
