import { describe, expect, it } from 'vitest';
import { alert, reading, station } from './fixtures';
import { networkTiles } from './overview';

describe('networkTiles', () => {
  it('counts stations, alerts and the spread of passing temperatures', () => {
    const failed = reading({
      station_id: 'WS003',
      temperature_c: 80,
      qc: { status: 'fail', variables: { temperature_c: { flag: 'fail', findings: [] } }, late: null },
    });
    const stations = [
      station('WS001', reading({ temperature_c: 10 }), { status: 'reporting' }),
      station('WS002', reading({ station_id: 'WS002', temperature_c: 20 }), { status: 'reporting' }),
      station('WS003', failed, { status: 'reporting' }),
      station('WS004', reading({ station_id: 'WS004', temperature_c: -30 }), { status: 'silent' }),
    ];
    const t = networkTiles(stations, [alert(), alert({ state: 'resolved', fired_at: 'x' })]);
    expect(t.stations).toBe(4);
    expect(t.reporting).toBe(3);
    expect(t.silent).toBe(1);
    expect(t.firing).toBe(1);
    expect(t.temperature).toEqual({ min: 10, mean: 15, max: 20, count: 2 });
    expect(t.qc).toEqual({ pass: 2, suspect: 0, fail: 1 });
  });

  it('has no temperature without readings', () => {
    expect(networkTiles([station('WS001')], []).temperature).toBeNull();
  });
});
