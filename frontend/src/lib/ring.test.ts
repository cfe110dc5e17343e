import { describe, expect, it } from 'vitest';
import { TimeRing } from './ring';

type Point = readonly [x: number, y: number | null];

/** One chart series over TimeRing: x in seconds, y a number or a gap. */
class PointRing extends TimeRing<number | null> {
  push(x: number, y: number | null): void {
    this.insert(x, y !== null && Number.isFinite(y) ? y : null);
  }

  pushMany(points: Iterable<Point>): void {
    for (const [x, y] of points) this.push(x, y);
  }

  toData(): [number[], (number | null)[]] {
    const [xs, ys] = this.columns([(y: number | null) => y]);
    return [xs, ys as (number | null)[]];
  }

  last(): Point | undefined {
    return this.newest();
  }
}

describe('PointRing', () => {
  it('rejects a non-positive capacity', () => {
    expect(() => new PointRing(0)).toThrow(RangeError);
    expect(() => new PointRing(1.5)).toThrow(RangeError);
  });

  it('returns appended points in order as uPlot columns', () => {
    const r = new PointRing(5);
    r.push(1, 10);
    r.push(2, null);
    r.push(3, 30);
    expect(r.length).toBe(3);
    expect(r.toData()).toEqual([
      [1, 2, 3],
      [10, null, 30],
    ]);
    expect(r.last()).toEqual([3, 30]);
  });

  it('drops the oldest points beyond capacity', () => {
    const r = new PointRing(3);
    for (let i = 1; i <= 7; i++) r.push(i, i * 10);
    expect(r.length).toBe(3);
    expect(r.toData()).toEqual([
      [5, 6, 7],
      [50, 60, 70],
    ]);
  });

  it('inserts a late point in time order', () => {
    const r = new PointRing(10);
    r.pushMany([
      [1, 1],
      [4, 4],
      [5, 5],
    ]);
    r.push(3, 3);
    r.push(2, 2);
    r.push(0, 0);
    expect(r.toData()[0]).toEqual([0, 1, 2, 3, 4, 5]);
    expect(r.toData()[1]).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('inserts a late point correctly after the buffer has wrapped', () => {
    const r = new PointRing(4);
    for (const x of [1, 2, 3, 4, 5, 6]) r.push(x, x);
    // Holds 3,4,5,6 with the start in the middle of the storage.
    r.push(4.5, 45);
    expect(r.toData()).toEqual([
      [4, 4.5, 5, 6],
      [4, 45, 5, 6],
    ]);
  });

  it('ignores a point older than everything in a full buffer', () => {
    const r = new PointRing(3);
    r.pushMany([
      [10, 1],
      [11, 2],
      [12, 3],
    ]);
    r.push(5, 99);
    expect(r.toData()[0]).toEqual([10, 11, 12]);
  });

  it('replaces the value of a point with the same x instead of duplicating it', () => {
    const r = new PointRing(5);
    r.pushMany([
      [1, 1],
      [2, 2],
      [3, 3],
    ]);
    r.push(2, 20);
    r.push(3, 30);
    expect(r.toData()).toEqual([
      [1, 2, 3],
      [1, 20, 30],
    ]);
  });

  it('merges history that arrives after live points', () => {
    const r = new PointRing(6);
    r.pushMany([
      [100, 1],
      [101, 2],
    ]); // live
    r.pushMany([
      [96, 0],
      [97, 0],
      [98, 0],
      [99, 0],
      [100, 1],
    ]); // history, overlapping at 100
    expect(r.toData()[0]).toEqual([96, 97, 98, 99, 100, 101]);
  });

  it('keeps only the newest points of a long history', () => {
    const r = new PointRing(3600);
    for (let i = 0; i < 10_000; i++) r.push(i, i);
    const [xs] = r.toData();
    expect(xs).toHaveLength(3600);
    expect(xs[0]).toBe(6400);
    expect(xs[3599]).toBe(9999);
  });

  it('skips non-finite x and stores non-finite y as a gap', () => {
    const r = new PointRing(3);
    r.push(Number.NaN, 1);
    r.push(1, Number.POSITIVE_INFINITY);
    expect(r.toData()).toEqual([[1], [null]]);
  });

  it('clear empties the series', () => {
    const r = new PointRing(3);
    r.push(1, 1);
    r.clear();
    expect(r.length).toBe(0);
    expect(r.toData()).toEqual([[], []]);
    expect(r.last()).toBeUndefined();
  });
});
