import { describe, expect, it } from 'vitest';
import { backoffDelay } from './backoff';

describe('backoffDelay', () => {
  it('starts at 1 s and doubles up to 30 s', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((n) => backoffDelay(n))).toEqual([
      1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000,
    ]);
  });

  it('stays capped for very large attempt counts', () => {
    expect(backoffDelay(10_000)).toBe(30000);
  });

  it('treats negative attempts as the first', () => {
    expect(backoffDelay(-3)).toBe(1000);
  });
});
