import { describe, expect, it } from 'vitest';
import { alert, reading, station } from './fixtures';
import { StationStore } from './store';
import { manualFrames } from './testing';
import type { Reading } from './types';

describe('StationStore', () => {
  it('publishes a burst of readings once, on the next frame', () => {
    const frames = manualFrames();
    const store = new StationStore(frames.scheduler);
    let notified = 0;
    store.subscribe(() => notified++);
    const initial = store.getSnapshot();

    for (let i = 0; i < 300; i++) {
      const id = `WS${String(i % 3).padStart(3, '0')}`;
      store.ingest({ type: 'reading', reading: reading({ station_id: id, observed_at: new Date(Date.UTC(2025, 0, 13, 10, 0, i)).toISOString(), temperature_c: i }) });
    }
    // Nothing visible until the frame runs.
    expect(store.getSnapshot()).toBe(initial);
    expect(notified).toBe(0);

    frames.run();
    expect(notified).toBe(1);
    const s = store.getSnapshot();
    expect(s.stations.size).toBe(3);
    expect(s.stations.get('WS000')?.latest?.temperature_c).toBe(297);
    expect(s.stations.get('WS002')?.latest?.temperature_c).toBe(299);
  });

  it('keeps the published snapshot stable between frames', () => {
    const frames = manualFrames();
    const store = new StationStore(frames.scheduler);
    store.ingest({ type: 'reading', reading: reading() });
    frames.run();
    const a = store.getSnapshot();
    expect(store.getSnapshot()).toBe(a);
    store.ingest({ type: 'overflow', dropped: 5 });
    expect(store.getSnapshot()).toBe(a);
    frames.run();
    expect(store.getSnapshot().dropped).toBe(5);
    expect(a.dropped).toBe(0);
  });

  it('passes readings to reading listeners immediately', () => {
    const frames = manualFrames();
    const store = new StationStore(frames.scheduler);
    const seen: Reading[] = [];
    const off = store.onReading((r) => seen.push(r));
    store.ingest({ type: 'reading', reading: reading({ temperature_c: 1 }) });
    store.ingest({ type: 'overflow', dropped: 1 });
    expect(seen.map((r) => r.temperature_c)).toEqual([1]);
    off();
    store.ingest({ type: 'reading', reading: reading({ temperature_c: 2 }) });
    expect(seen).toHaveLength(1);
  });

  it('uses the REST list for first paint but not after the websocket snapshot', () => {
    const frames = manualFrames();
    const store = new StationStore(frames.scheduler);
    store.loadStations([station('REST1')]);
    frames.run();
    expect([...store.getSnapshot().stations.keys()]).toEqual(['REST1']);

    store.ingest({ type: 'snapshot', stations: [station('WS1')], complete: true });
    store.loadStations([station('REST2')]);
    frames.run();
    expect([...store.getSnapshot().stations.keys()]).toEqual(['WS1']);
  });

  it('stops notifying an unsubscribed listener', () => {
    const frames = manualFrames();
    const store = new StationStore(frames.scheduler);
    let n = 0;
    const off = store.subscribe(() => n++);
    off();
    store.ingest({ type: 'reading', reading: reading() });
    frames.run();
    expect(n).toBe(0);
  });

  it('counts snapshots so listeners can tell a reconnect from the first connect', () => {
    const frames = manualFrames();
    const store = new StationStore(frames.scheduler);
    const counts: number[] = [];
    const off = store.onSnapshot((n) => counts.push(n));
    store.ingest({ type: 'snapshot', stations: [], complete: true });
    store.ingest({ type: 'reading', reading: reading() });
    store.ingest({ type: 'snapshot', stations: [], complete: true });
    off();
    store.ingest({ type: 'snapshot', stations: [], complete: true });
    expect(counts).toEqual([1, 2]);
  });

  it('counts live readings per second over the last ten whole seconds', () => {
    const frames = manualFrames();
    const store = new StationStore(frames.scheduler);
    const t0 = Date.UTC(2025, 0, 13, 10, 0, 0);
    for (let sec = 0; sec < 5; sec++) {
      for (let i = 0; i < 20; i++) store.ingest({ type: 'reading', reading: reading() }, t0 + sec * 1000 + i);
    }
    // The second still running does not count yet.
    expect(store.readingRate(t0 + 4500)).toBe(8);
    expect(store.readingRate(t0 + 5000)).toBe(10);
    // Old seconds fall out of the window.
    expect(store.readingRate(t0 + 14_000)).toBe(2);
    expect(store.readingRate(t0 + 60_000)).toBe(0);
  });

  it('keeps one alert across firing, recording and resolving, live over REST', () => {
    const frames = manualFrames();
    const store = new StationStore(frames.scheduler);
    const unrecorded = alert({ id: null });
    store.ingest({ type: 'alert', alert: unrecorded });
    store.loadAlerts([alert({ id: 7 }), alert({ id: 3, rule: 'gusts', state: 'resolved', resolved_at: '2025-01-13T09:00:00Z' })]);
    frames.run();
    let alerts = [...store.getSnapshot().alerts.values()];
    expect(alerts).toHaveLength(2);
    // What the stream said wins over the REST list it raced with.
    expect(alerts.find((a) => a.rule === 'heat')?.id).toBeNull();
    store.ingest({ type: 'alert', alert: alert({ id: null, state: 'resolved', resolved_at: '2025-01-13T10:30:00Z' }) });
    // A stale copy of the firing does not undo the resolution.
    store.ingest({ type: 'alert', alert: alert({ id: 7 }) });
    frames.run();
    alerts = [...store.getSnapshot().alerts.values()];
    expect(alerts).toHaveLength(2);
    expect(alerts.find((a) => a.rule === 'heat')?.state).toBe('resolved');
  });

  it('passes rollups to their listeners and keeps supervision events newest first', () => {
    const frames = manualFrames();
    const store = new StationStore(frames.scheduler);
    const got: string[] = [];
    const off = store.onRollup((m) => got.push(m.rollup.bucket));
    const rollup = { type: 'rollup' as const, station_id: 'WS001', resolution: '1m' as const, rollup: { bucket: 'b1', variables: {} } };
    store.ingest(rollup);
    off();
    store.ingest({ ...rollup, rollup: { bucket: 'b2', variables: {} } });
    expect(got).toEqual(['b1']);
    const event = (child: string) => ({ group: 'pipeline', child, reason: 'x', attempt: 1, delay_ms: 100, with: [], at: 't' });
    store.ingest({ type: 'supervision', event: event('persister') });
    store.ingest({ type: 'supervision', event: event('hub') });
    frames.run();
    expect(store.getSnapshot().events.map((e) => e.child)).toEqual(['hub', 'persister']);
  });
});
