import type { Reading } from './types';
import { convert, unitDigits, unitSymbol, type Quantity, type Units } from './units';

/** Shown where a measurement is missing. */
export const MISSING = '—';

function fixed(v: number | null | undefined, digits: number): string | null {
  if (v == null || !Number.isFinite(v)) return null;
  const s = v.toFixed(digits);
  // Avoid "-0.0" for values that round to zero.
  return Number(s) === 0 ? (0).toFixed(digits) : s;
}

function withUnit(v: number | null | undefined, digits: number, unit: string): string {
  const s = fixed(v, digits);
  return s === null ? MISSING : `${s} ${unit}`;
}

/** An SI value shown in `units`: "71.6 °F"; the placeholder when missing. */
export function formatQuantity(q: Quantity, si: number | null | undefined, units: Units = 'metric'): string {
  if (si == null || !Number.isFinite(si)) return MISSING;
  return withUnit(convert(q, si, units), unitDigits(q, units), unitSymbol(q, units));
}

export function formatTemperature(c: number | null | undefined, units: Units = 'metric'): string {
  return formatQuantity('temperature', c, units);
}

export function formatHumidity(pct: number | null | undefined): string {
  return formatQuantity('humidity', pct);
}

export function formatPressure(hpa: number | null | undefined, units: Units = 'metric'): string {
  return formatQuantity('pressure', hpa, units);
}

export function formatWindSpeed(ms: number | null | undefined, units: Units = 'metric'): string {
  return formatQuantity('speed', ms, units);
}

const COMPASS = [
  'N', 'NNE', 'NE', 'ENE', 'E', 'ESE', 'SE', 'SSE',
  'S', 'SSW', 'SW', 'WSW', 'W', 'WNW', 'NW', 'NNW',
] as const;

/** 16-point compass name of a bearing in degrees (any range). */
export function compassPoint(deg: number): string {
  const norm = ((deg % 360) + 360) % 360;
  return COMPASS[Math.round(norm / 22.5) % 16] as string;
}

/** "SW 225°", or the placeholder when the direction is missing. */
export function formatWindDirection(deg: number | null | undefined): string {
  if (deg == null || !Number.isFinite(deg)) return MISSING;
  const norm = ((deg % 360) + 360) % 360;
  return `${compassPoint(norm)} ${Math.round(norm) % 360}°`;
}

/** "12.3 m/s SW 225°"; either part may be missing. */
export function formatWind(
  speedMs: number | null | undefined,
  deg: number | null | undefined,
  units: Units = 'metric',
): string {
  const speed = formatWindSpeed(speedMs, units);
  const dir = formatWindDirection(deg);
  if (speed === MISSING) return dir === MISSING ? MISSING : dir;
  return dir === MISSING ? speed : `${speed} ${dir}`;
}

export interface FeelsLike {
  kind: 'heat index' | 'wind chill';
  celsius: number;
}

/** Heat index or wind chill when the server computed one. */
export function feelsLike(r: Reading | null | undefined): FeelsLike | null {
  if (r == null) return null;
  if (r.heat_index_c !== null) return { kind: 'heat index', celsius: r.heat_index_c };
  if (r.wind_chill_c !== null) return { kind: 'wind chill', celsius: r.wind_chill_c };
  return null;
}

/**
 * "3 s ago", "5 min ago", "2 h ago", "4 d ago". Times slightly in the future
 * (server and browser clocks differ) read as "just now".
 */
export function formatRelativeTime(iso: string | null | undefined, nowMs: number): string {
  if (iso == null) return 'never';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return MISSING;
  const sec = Math.floor(Math.max(0, nowMs - t) / 1000);
  if (sec < 1) return 'just now';
  if (sec < 60) return `${sec} s ago`;
  const min = Math.floor(sec / 60);
  if (min < 60) return `${min} min ago`;
  const h = Math.floor(min / 60);
  if (h < 24) return `${h} h ago`;
  return `${Math.floor(h / 24)} d ago`;
}
