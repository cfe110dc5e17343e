import { describe, expect, it } from 'vitest';
import { reading } from './fixtures';
import { HISTORY_WINDOW_MS, historyRange, temperaturePoint } from './series';

describe('temperaturePoint', () => {
  it('maps observed_at to epoch seconds and keeps missing temperatures as gaps', () => {
    expect(temperaturePoint(reading({ observed_at: '2025-01-13T10:00:00.500Z', temperature_c: 21 }))).toEqual([
      Date.UTC(2025, 0, 13, 10) / 1000 + 0.5,
      21,
    ]);
    expect(temperaturePoint(reading({ temperature_c: null }))?.[1]).toBeNull();
  });
});

describe('historyRange', () => {
  it('covers the last 15 minutes', () => {
    const now = Date.parse('2025-01-13T10:00:00Z');
    const { from, to } = historyRange(now);
    expect(from.toISOString()).toBe('2025-01-13T09:45:00.000Z');
    expect(to.getTime()).toBeGreaterThanOrEqual(now);
    expect(HISTORY_WINDOW_MS).toBe(900_000);
  });
});
