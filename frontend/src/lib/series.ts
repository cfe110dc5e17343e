import type { Point } from './ring';
import type { Reading } from './types';

/** History loaded when a station is selected. */
export const HISTORY_WINDOW_MS = 15 * 60 * 1000;
/** Points kept per chart series. */
export const MAX_POINTS = 3600;
/** Largest page the readings endpoint serves. */
export const HISTORY_LIMIT = 10_000;

/** Chart point for a reading: x in epoch seconds, y the temperature (null = gap). */
export function temperaturePoint(r: Reading): Point | null {
  const t = Date.parse(r.observed_at);
  if (Number.isNaN(t)) return null;
  return [t / 1000, r.temperature_c];
}

/** The [from, to] range of the history request made at `nowMs`. */
export function historyRange(nowMs: number): { from: Date; to: Date } {
  // `to` sits a minute ahead so a browser clock running behind the
  // server's does not cut off the newest stored readings.
  return { from: new Date(nowMs - HISTORY_WINDOW_MS), to: new Date(nowMs + 60_000) };
}
