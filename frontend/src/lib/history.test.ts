import { describe, expect, it } from 'vitest';
import { reading } from './fixtures';
import { CHART_GROUPS, LiveSeries, displayValue, readingColumns, rollupColumns, upsertRollup } from './history';
import { manualFrames } from './testing';
import type { Rollup } from './types';

const temperature = CHART_GROUPS.find((g) => g.id === 'temperature')!;

describe('history columns', () => {
  it('orders readings by time and converts units', () => {
    const rs = [
      reading({ observed_at: '2025-01-13T10:00:02Z', temperature_c: 20 }),
      reading({ observed_at: '2025-01-13T10:00:01Z', temperature_c: 10 }),
    ];
    const [xs, t] = readingColumns(rs, temperature, 'imperial');
    expect(xs).toEqual([Date.parse('2025-01-13T10:00:01Z') / 1000, Date.parse('2025-01-13T10:00:02Z') / 1000]);
    expect(t).toEqual([50, 68]);
  });

  it('leaves a value that failed QC out of the chart', () => {
    const r = reading({
      temperature_c: 99,
      qc: { status: 'fail', variables: { temperature_c: { flag: 'fail', findings: [] } }, late: null },
    });
    expect(displayValue(r, 'temperature_c', 'metric')).toBeNull();
    expect(displayValue(r, 'humidity_pct', 'metric')).toBe(65.2);
  });

  it('gives rollups as mean, max and min with gaps', () => {
    const rollups: Rollup[] = [
      { bucket: '2025-01-13T10:01:00Z', variables: {} },
      { bucket: '2025-01-13T10:00:00Z', variables: { temperature_c: { count: 2, min: 10, max: 12, mean: 11, last: 12 } } },
    ];
    const [xs, mean, max, min] = rollupColumns(rollups, 'temperature_c', 'metric');
    expect(xs).toHaveLength(2);
    expect(mean).toEqual([11, null]);
    expect(max).toEqual([12, null]);
    expect(min).toEqual([10, null]);
  });

  it('replaces a period a live rollup updates', () => {
    const a: Rollup = { bucket: '2025-01-13T10:00:00Z', variables: {} };
    const b: Rollup = {
      bucket: '2025-01-13T10:00:00.000Z',
      variables: { temperature_c: { count: 1, min: 1, max: 1, mean: 1, last: 1 } },
    };
    expect(upsertRollup([a], b)).toEqual([b]);
    expect(upsertRollup([a], { ...b, bucket: '2025-01-13T10:01:00Z' })).toHaveLength(2);
  });
});

describe('LiveSeries', () => {
  it('feeds charts once per frame with the readings in time order', () => {
    const frames = manualFrames();
    const live = new LiveSeries(10, frames.scheduler);
    const seen: number[][] = [];
    const detach = live.feed([(r) => r.temperature_c])((d) => seen.push(d[1] as number[]));
    expect(seen).toEqual([[]]);
    live.add(reading({ observed_at: '2025-01-13T10:00:02Z', temperature_c: 2 }));
    live.add(reading({ observed_at: '2025-01-13T10:00:01Z', temperature_c: 1 }));
    live.add(reading({ observed_at: '2025-01-13T10:00:02Z', temperature_c: 3 }));
    expect(frames.pending()).toBe(1);
    frames.run();
    expect(seen).toEqual([[], [1, 3]]);
    expect(live.newest()?.temperature_c).toBe(3);
    detach();
    live.add(reading({ observed_at: '2025-01-13T10:00:03Z' }));
    frames.run();
    expect(seen).toHaveLength(2);
  });
});
