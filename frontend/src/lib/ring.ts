/** x is seconds since the Unix epoch (uPlot's time unit); y may be a gap. */
export type Point = readonly [x: number, y: number | null];

/**
 * Fixed-capacity series of chart points kept sorted by x. Appending in order
 * is O(1); a point older than the newest is inserted in place; a point with
 * an x already present replaces its y. When full, the oldest point goes.
 */
export class PointRing {
  readonly capacity: number;
  private readonly xs: Float64Array;
  private readonly ys: (number | null)[];
  private head = 0;
  private len = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    }
    this.capacity = capacity;
    this.xs = new Float64Array(capacity);
    this.ys = new Array<number | null>(capacity).fill(null);
  }

  get length(): number {
    return this.len;
  }

  clear(): void {
    this.head = 0;
    this.len = 0;
  }

  private slot(i: number): number {
    return (this.head + i) % this.capacity;
  }

  private xAt(i: number): number {
    return this.xs[this.slot(i)] as number;
  }

  /** First logical index whose x is >= x. */
  private lowerBound(x: number): number {
    let lo = 0;
    let hi = this.len;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.xAt(mid) < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  push(x: number, y: number | null): void {
    if (!Number.isFinite(x)) return;
    const yy = y !== null && Number.isFinite(y) ? y : null;
    const cap = this.capacity;

    if (this.len === 0 || x > this.xAt(this.len - 1)) {
      const s = this.slot(this.len);
      this.xs[s] = x;
      this.ys[s] = yy;
      if (this.len === cap) this.head = (this.head + 1) % cap;
      else this.len++;
      return;
    }

    let pos = this.lowerBound(x);
    if (pos < this.len && this.xAt(pos) === x) {
      this.ys[this.slot(pos)] = yy;
      return;
    }
    if (this.len === cap) {
      // Older than everything kept: it would be evicted at once.
      if (pos === 0) return;
      this.head = (this.head + 1) % cap;
      this.len--;
      pos--;
    }
    for (let i = this.len; i > pos; i--) {
      const to = this.slot(i);
      const from = this.slot(i - 1);
      this.xs[to] = this.xs[from] as number;
      this.ys[to] = this.ys[from] ?? null;
    }
    const s = this.slot(pos);
    this.xs[s] = x;
    this.ys[s] = yy;
    this.len++;
  }

  pushMany(points: Iterable<Point>): void {
    for (const [x, y] of points) this.push(x, y);
  }

  /** Copies out the series in the column layout uPlot expects. */
  toData(): [number[], (number | null)[]] {
    const xs = new Array<number>(this.len);
    const ys = new Array<number | null>(this.len);
    for (let i = 0; i < this.len; i++) {
      const s = this.slot(i);
      xs[i] = this.xs[s] as number;
      ys[i] = this.ys[s] ?? null;
    }
    return [xs, ys];
  }

  /** Newest point, if any. */
  last(): Point | undefined {
    if (this.len === 0) return undefined;
    const s = this.slot(this.len - 1);
    return [this.xs[s] as number, this.ys[s] ?? null];
  }
}
