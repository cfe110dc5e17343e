import { describe, expect, it } from 'vitest';
import { reading } from '../lib/fixtures';
import { withinWindow } from './HistoryPanel';

describe('a live history window', () => {
  const at = (s: number) => reading({ observed_at: new Date(Date.UTC(2025, 0, 13, 10, 0, s)).toISOString() });
  const readings = [0, 10, 20, 30, 40].map(at);

  it('drops what fell out of the window', () => {
    const since = Date.UTC(2025, 0, 13, 10, 0, 15);
    expect(withinWindow(readings, since, 100).map((r) => r.observed_at)).toEqual(
      [20, 30, 40].map((s) => at(s).observed_at),
    );
  });

  it('keeps the newest when over the limit, and the same array when nothing goes', () => {
    expect(withinWindow(readings, 0, 2).map((r) => r.observed_at)).toEqual([30, 40].map((s) => at(s).observed_at));
    expect(withinWindow(readings, 0, 10)).toBe(readings);
  });
});
