import { describe, expect, it } from 'vitest';
import { HISTORY_WINDOW_MS, historyRange } from './series';

describe('historyRange', () => {
  it('covers the last 15 minutes', () => {
    const now = Date.parse('2025-01-13T10:00:00Z');
    const { from, to } = historyRange(now);
    expect(from.toISOString()).toBe('2025-01-13T09:45:00.000Z');
    expect(to.getTime()).toBeGreaterThanOrEqual(now);
    expect(HISTORY_WINDOW_MS).toBe(900_000);
  });
});
