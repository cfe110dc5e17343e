import type uPlot from 'uplot';
import { FrameBatcher, animationFrame, type FrameScheduler } from './frame';
import { TimeRing } from './ring';
import type { Reading, ReadingVariable, Rollup } from './types';
import { VARIABLES, convert, type Quantity, type Units } from './units';

/** Epoch seconds of an RFC 3339 time, or NaN. */
export function epochSeconds(iso: string): number {
  return Date.parse(iso) / 1000;
}

/** The charts of a station page: which variables each one plots. */
export interface ChartGroup {
  id: 'temperature' | 'humidity' | 'pressure' | 'wind' | 'direction';
  title: string;
  quantity: Quantity;
  variables: readonly ReadingVariable[];
}

export const CHART_GROUPS: readonly ChartGroup[] = [
  { id: 'temperature', title: 'Temperature', quantity: 'temperature', variables: ['temperature_c', 'dew_point_c', 'feels_like_c'] },
  { id: 'humidity', title: 'Humidity', quantity: 'humidity', variables: ['humidity_pct'] },
  { id: 'pressure', title: 'Pressure', quantity: 'pressure', variables: ['pressure_hpa', 'sea_level_pressure_hpa'] },
  { id: 'wind', title: 'Wind', quantity: 'speed', variables: ['wind_speed_ms', 'wind_gust_ms'] },
  { id: 'direction', title: 'Wind direction', quantity: 'direction', variables: ['wind_direction_deg'] },
];

export interface ChartSeries {
  label: string;
  /** A CSS custom property (`--series-1`) or a colour. */
  colour: string;
  /** Dots instead of a line (wind direction). */
  points?: boolean;
  dash?: number[];
}

const SERIES_COLOURS = ['--series-1', '--series-2', '--series-3'] as const;

/** How a chart of `group` draws each variable: the first solid, the others dashed. */
export function chartSeries(group: ChartGroup): ChartSeries[] {
  return group.variables.map((v, i) => ({
    label: VARIABLES[v].label,
    colour: SERIES_COLOURS[i % SERIES_COLOURS.length] as string,
    ...(group.id === 'direction' ? { points: true } : {}),
    ...(i > 0 && group.id !== 'direction' ? { dash: [6, 4] } : {}),
  }));
}

/** A value of a reading in display units; a failed value is left out (a gap). */
export function displayValue(r: Reading, v: ReadingVariable, units: Units): number | null {
  const si = r[v];
  if (si === null) return null;
  if (r.qc?.variables[v]?.flag === 'fail') return null;
  return convert(VARIABLES[v].quantity, si, units);
}

export function readingExtractors(group: ChartGroup, units: Units): ((r: Reading) => number | null)[] {
  return group.variables.map((v) => (r: Reading) => displayValue(r, v, units));
}

/** uPlot columns of readings (any order; sorted and de-duplicated by time here). */
export function readingColumns(readings: readonly Reading[], group: ChartGroup, units: Units): uPlot.AlignedData {
  const ring = new TimeRing<Reading>(Math.max(1, readings.length));
  for (const r of readings) ring.insert(epochSeconds(r.observed_at), r);
  return ring.columns(readingExtractors(group, units)) as uPlot.AlignedData;
}

/**
 * uPlot columns of rollups for one variable: mean, then max and min (for a
 * band between them). Periods without the variable are gaps.
 */
export function rollupColumns(rollups: readonly Rollup[], variable: ReadingVariable, units: Units): uPlot.AlignedData {
  const sorted = [...rollups].sort((a, b) => Date.parse(a.bucket) - Date.parse(b.bucket));
  const q = VARIABLES[variable].quantity;
  const xs: number[] = [];
  const mean: (number | null)[] = [];
  const max: (number | null)[] = [];
  const min: (number | null)[] = [];
  for (const r of sorted) {
    xs.push(epochSeconds(r.bucket));
    const s = r.variables[variable];
    mean.push(s === undefined ? null : convert(q, s.mean, units));
    max.push(s === undefined ? null : convert(q, s.max, units));
    min.push(s === undefined ? null : convert(q, s.min, units));
  }
  return [xs, mean, max, min];
}

/** Replaces or adds one period (a live `rollup` message). */
export function upsertRollup(rollups: readonly Rollup[], next: Rollup): Rollup[] {
  const at = Date.parse(next.bucket);
  const out = rollups.filter((r) => Date.parse(r.bucket) !== at);
  out.push(next);
  return out;
}

/** Points kept per live chart: an hour of one reading per second. */
export const LIVE_POINTS = 3600;

/**
 * The live readings of one station, kept in time order, feeding any number
 * of charts; each chart is redrawn at most once per frame.
 */
export class LiveSeries {
  private readonly ring: TimeRing<Reading>;
  private readonly listeners = new Set<() => void>();
  private readonly batcher: FrameBatcher;

  constructor(capacity = LIVE_POINTS, scheduler: FrameScheduler = animationFrame) {
    this.ring = new TimeRing(capacity);
    this.batcher = new FrameBatcher(() => {
      for (const l of this.listeners) l();
    }, scheduler);
  }

  get length(): number {
    return this.ring.length;
  }

  add(r: Reading): void {
    const x = epochSeconds(r.observed_at);
    if (!Number.isFinite(x)) return;
    this.ring.insert(x, r);
    this.batcher.schedule();
  }

  /** The newest reading held. */
  newest(): Reading | undefined {
    return this.ring.newest()?.[1];
  }

  /** A feed for a chart: sends the columns now and after each change. */
  feed(extract: readonly ((r: Reading) => number | null)[]): (setData: (d: uPlot.AlignedData) => void) => () => void {
    return (setData) => {
      const l = () => setData(this.ring.columns(extract) as uPlot.AlignedData);
      this.listeners.add(l);
      l();
      return () => {
        this.listeners.delete(l);
      };
    };
  }

  close(): void {
    this.batcher.cancel();
    this.listeners.clear();
  }
}
