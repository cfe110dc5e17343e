import { describe, expect, it } from 'vitest';
import { reading, station } from './fixtures';
import {
  applyMessage,
  applyMessages,
  applyStationList,
  draftOf,
  emptyState,
  sortedStations,
  stationWithReading,
  type StationsState,
} from './stations';

function stateWith(...stations: ReturnType<typeof station>[]): StationsState {
  return applyMessages(emptyState, [{ type: 'snapshot', stations, complete: true }]);
}

describe('applyMessage / applyMessages', () => {
  it('snapshot replaces the station map and marks the state as live-synced', () => {
    const before = stateWith(station('OLD'));
    const after = applyMessages(before, [{ type: 'snapshot', stations: [station('WS001'), station('WS002')], complete: true }]);
    expect([...after.stations.keys()]).toEqual(['WS001', 'WS002']);
    expect(after.hasSnapshot).toBe(true);
  });

  it('a partial snapshot of a large network updates the stations it holds and keeps the others', () => {
    const before = stateWith(station('WS001'), station('WS002'));
    const fresh = station('WS002', reading({ station_id: 'WS002' }));
    const after = applyMessages(before, [{ type: 'snapshot', stations: [fresh, station('WS003')], complete: false }]);
    expect([...after.stations.keys()].sort()).toEqual(['WS001', 'WS002', 'WS003']);
    expect(after.stations.get('WS002')?.latest).not.toBeNull();
    // The paged station list still applies: the snapshot was not all.
    const listed = applyStationList(
      applyMessages(emptyState, [{ type: 'snapshot', stations: [fresh], complete: false }]),
      [station('WS001'), station('WS004')],
    );
    expect([...listed.stations.keys()].sort()).toEqual(['WS001', 'WS002', 'WS004']);
  });

  it('a reading updates latest and last_seen of a known station', () => {
    const s = stateWith(station('WS001', reading()));
    const r = reading({
      observed_at: '2025-01-13T10:00:05Z',
      received_at: '2025-01-13T10:00:05.050Z',
      temperature_c: 23.1,
    });
    const next = applyMessages(s, [{ type: 'reading', reading: r }]);
    const ws1 = next.stations.get('WS001');
    expect(ws1?.latest?.temperature_c).toBe(23.1);
    // As the API: the newest observation time, not the time it arrived.
    expect(ws1?.last_seen).toBe('2025-01-13T10:00:05Z');
    expect(ws1?.first_seen).toBe('2025-01-13T09:00:00Z');
  });

  it('a reading for an unknown station adds it', () => {
    const r = reading({ station_id: 'WS009', latitude: 1.5, longitude: 2.5 });
    const next = applyMessages(emptyState, [{ type: 'reading', reading: r }]);
    expect(next.stations.get('WS009')).toEqual({
      station_id: 'WS009',
      name: null,
      status: null,
      latitude: 1.5,
      longitude: 2.5,
      elevation_m: 10,
      first_seen: r.observed_at,
      last_seen: r.observed_at,
      latest: r,
    });
  });

  it('a station_status message sets a known station\'s status and ignores an unknown one', () => {
    const r = reading({ station_id: 'WS010' });
    const known = applyMessages(emptyState, [{ type: 'reading', reading: r }]);
    const next = applyMessages(known, [
      { type: 'station_status', station_id: 'WS010', status: 'silent', last_seen: r.observed_at },
      { type: 'station_status', station_id: 'WS404', status: 'reporting', last_seen: r.observed_at },
    ]);
    expect(next.stations.get('WS010')?.status).toBe('silent');
    expect(next.stations.get('WS010')?.latest).toEqual(r);
    expect(next.stations.has('WS404')).toBe(false);
  });

  it('an older reading arriving late replaces neither latest nor last_seen', () => {
    const newer = reading({ observed_at: '2025-01-13T10:00:10Z', received_at: '2025-01-13T10:00:10Z', temperature_c: 25 });
    const late = reading({ observed_at: '2025-01-13T10:00:02Z', received_at: '2025-01-13T10:00:11Z', temperature_c: 20 });
    const next = applyMessages(emptyState, [
      { type: 'reading', reading: newer },
      { type: 'reading', reading: late },
    ]);
    const s = next.stations.get('WS001');
    expect(s?.latest?.temperature_c).toBe(25);
    expect(s?.last_seen).toBe('2025-01-13T10:00:10Z');
  });

  it('compares times as instants, not as strings', () => {
    // As strings b sorts after a, but as an instant it is earlier.
    const a = reading({ observed_at: '2025-01-13T10:00:05.900Z', temperature_c: 1 });
    const b = reading({ observed_at: '2025-01-13T11:00:05+01:00', temperature_c: 2 }); // 10:00:05Z, older
    const next = applyMessages(emptyState, [
      { type: 'reading', reading: a },
      { type: 'reading', reading: b },
    ]);
    expect(next.stations.get('WS001')?.latest?.temperature_c).toBe(1);
  });

  it('falls back to observed_at when received_at is missing', () => {
    const r = reading({ received_at: null });
    const next = applyMessages(emptyState, [{ type: 'reading', reading: r }]);
    expect(next.stations.get('WS001')?.last_seen).toBe(r.observed_at);
  });

  it('overflow adds to the dropped counter', () => {
    const next = applyMessages(emptyState, [
      { type: 'overflow', dropped: 3 },
      { type: 'overflow', dropped: 4 },
    ]);
    expect(next.dropped).toBe(7);
  });

  it('does not mutate the input state', () => {
    const s = stateWith(station('WS001', reading()));
    const before = s.stations.get('WS001');
    const next = applyMessages(s, [{ type: 'reading', reading: reading({ observed_at: '2025-01-13T10:01:00Z', temperature_c: 30 }) }]);
    expect(next).not.toBe(s);
    expect(s.stations.get('WS001')).toBe(before);
    expect(s.stations.get('WS001')?.latest?.temperature_c).toBe(22.5);
  });

  it('returns the same state for an empty batch', () => {
    const s = stateWith(station('WS001'));
    expect(applyMessages(s, [])).toBe(s);
  });

  it('keeps unchanged stations by identity so rows can skip re-rendering', () => {
    const s = stateWith(station('WS001', reading()), station('WS002', reading({ station_id: 'WS002' })));
    const next = applyMessages(s, [{ type: 'reading', reading: reading({ observed_at: '2025-01-13T10:00:01Z' }) }]);
    expect(next.stations.get('WS002')).toBe(s.stations.get('WS002'));
    expect(next.stations.get('WS001')).not.toBe(s.stations.get('WS001'));
  });

  it('applies in place to a draft', () => {
    const draft = draftOf(emptyState);
    applyMessage(draft, { type: 'reading', reading: reading() });
    applyMessage(draft, { type: 'overflow', dropped: 2 });
    expect(draft.stations.size).toBe(1);
    expect(draft.dropped).toBe(2);
    expect(emptyState.stations.size).toBe(0);
  });
});

describe('stationWithReading', () => {
  it('keeps known coordinates when the reading has none', () => {
    const s = station('WS001', reading());
    const next = stationWithReading(s, reading({ observed_at: '2025-01-13T10:00:01Z', latitude: null, longitude: null }));
    expect(next.latitude).toBe(40.7589);
    expect(next.longitude).toBe(-73.9851);
  });
});

describe('applyStationList', () => {
  it('fills an empty state from REST', () => {
    const next = applyStationList(emptyState, [station('B'), station('A')]);
    expect([...next.stations.keys()].sort()).toEqual(['A', 'B']);
    expect(next.hasSnapshot).toBe(false);
  });

  it('is ignored once a websocket snapshot arrived', () => {
    const s = stateWith(station('LIVE'));
    expect(applyStationList(s, [station('REST')])).toBe(s);
  });

  it('keeps live readings that arrived before the REST response', () => {
    const live = reading({ observed_at: '2025-01-13T10:05:00Z', received_at: '2025-01-13T10:05:00Z', temperature_c: 30 });
    const s = applyMessages(emptyState, [{ type: 'reading', reading: live }]);
    const next = applyStationList(s, [station('WS001', reading()), station('WS002')]);
    expect(next.stations.get('WS001')?.latest?.temperature_c).toBe(30);
    expect(next.stations.get('WS001')?.first_seen).toBe('2025-01-13T09:00:00Z');
    expect(next.stations.has('WS002')).toBe(true);
  });
});

describe('sortedStations', () => {
  it('orders by station id', () => {
    const s = stateWith(station('WS010'), station('WS002'), station('AB1'), station('WS001'));
    expect(sortedStations(s.stations).map((x) => x.station_id)).toEqual(['AB1', 'WS001', 'WS002', 'WS010']);
  });
});
