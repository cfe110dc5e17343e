/**
 * Fixed-capacity series of values kept sorted by x. Appending in order is
 * O(1); a value older than the newest is inserted in place; a value with
 * an x already present replaces the old one. When full, the oldest goes.
 */
export class TimeRing<T> {
  readonly capacity: number;
  private readonly xs: Float64Array;
  private readonly vs: (T | undefined)[];
  private head = 0;
  private len = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    }
    this.capacity = capacity;
    this.xs = new Float64Array(capacity);
    this.vs = new Array<T | undefined>(capacity).fill(undefined);
  }

  get length(): number {
    return this.len;
  }

  clear(): void {
    this.head = 0;
    this.len = 0;
    this.vs.fill(undefined);
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

  insert(x: number, v: T): void {
    if (!Number.isFinite(x)) return;
    const cap = this.capacity;

    if (this.len === 0 || x > this.xAt(this.len - 1)) {
      const s = this.slot(this.len);
      this.xs[s] = x;
      this.vs[s] = v;
      if (this.len === cap) this.head = (this.head + 1) % cap;
      else this.len++;
      return;
    }

    let pos = this.lowerBound(x);
    if (pos < this.len && this.xAt(pos) === x) {
      this.vs[this.slot(pos)] = v;
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
      this.vs[to] = this.vs[from];
    }
    const s = this.slot(pos);
    this.xs[s] = x;
    this.vs[s] = v;
    this.len++;
  }

  /** The x column and one column per extractor, in the layout uPlot expects. */
  columns<Y>(extract: readonly ((v: T) => Y)[]): [number[], ...Y[][]] {
    const xs = new Array<number>(this.len);
    const cols = extract.map(() => new Array<Y>(this.len));
    for (let i = 0; i < this.len; i++) {
      const s = this.slot(i);
      xs[i] = this.xs[s] as number;
      const v = this.vs[s] as T;
      for (let k = 0; k < extract.length; k++) (cols[k] as Y[])[i] = (extract[k] as (v: T) => Y)(v);
    }
    return [xs, ...cols];
  }

  /** Newest x and value, if any. */
  newest(): [number, T] | undefined {
    if (this.len === 0) return undefined;
    const s = this.slot(this.len - 1);
    return [this.xs[s] as number, this.vs[s] as T];
  }
}
