import type { Alert, Station } from './types';

/** The network at a glance, from what the dashboard holds. */
export interface NetworkTiles {
  stations: number;
  reporting: number;
  silent: number;
  firing: number;
  /** Latest temperatures that passed QC, of the stations not silent. */
  temperature: { min: number; mean: number; max: number; count: number } | null;
  /** Latest readings by worst QC flag. */
  qc: { pass: number; suspect: number; fail: number };
}

export function networkTiles(stations: Iterable<Station>, alerts: Iterable<Alert>): NetworkTiles {
  let count = 0;
  let reporting = 0;
  let silent = 0;
  let tMin = Infinity;
  let tMax = -Infinity;
  let tSum = 0;
  let tCount = 0;
  const qc = { pass: 0, suspect: 0, fail: 0 };
  for (const s of stations) {
    count++;
    if (s.status === 'silent') {
      silent++;
      continue;
    }
    if (s.status === 'reporting') reporting++;
    const r = s.latest;
    if (r === null) continue;
    if (r.qc !== null) qc[r.qc.status]++;
    const t = r.temperature_c;
    if (t !== null && r.qc?.variables.temperature_c?.flag !== 'fail') {
      tMin = Math.min(tMin, t);
      tMax = Math.max(tMax, t);
      tSum += t;
      tCount++;
    }
  }
  const firing = firingCount(alerts);
  return {
    stations: count,
    reporting,
    silent,
    firing,
    temperature: tCount === 0 ? null : { min: tMin, mean: tSum / tCount, max: tMax, count: tCount },
    qc,
  };
}

/** How many of `alerts` are firing. */
export function firingCount(alerts: Iterable<Alert>): number {
  let n = 0;
  for (const a of alerts) if (a.state === 'firing') n++;
  return n;
}
