import type { ReadingVariable } from './types';

/** The unit system the dashboard shows values in; the API always speaks SI. */
export type Units = 'metric' | 'imperial';

export type Quantity = 'temperature' | 'humidity' | 'pressure' | 'speed' | 'direction' | 'length';

interface UnitDef {
  symbol: string;
  digits: number;
  from: (si: number) => number;
}

const identity = (v: number): number => v;

/** A quantity both systems show alike (humidity in %, bearings in °). */
function same(symbol: string, digits: number): Record<Units, UnitDef> {
  const def = { symbol, digits, from: identity };
  return { metric: def, imperial: def };
}

const UNITS: Record<Quantity, Record<Units, UnitDef>> = {
  temperature: {
    metric: { symbol: '°C', digits: 1, from: identity },
    imperial: { symbol: '°F', digits: 1, from: (c) => (c * 9) / 5 + 32 },
  },
  humidity: same('%', 0),
  pressure: {
    metric: { symbol: 'hPa', digits: 1, from: identity },
    // 1 inHg = 33.8639 hPa (at 0 °C).
    imperial: { symbol: 'inHg', digits: 2, from: (hpa) => hpa / 33.8639 },
  },
  speed: {
    metric: { symbol: 'm/s', digits: 1, from: identity },
    imperial: { symbol: 'mph', digits: 1, from: (ms) => ms / 0.44704 },
  },
  direction: same('°', 0),
  length: {
    metric: { symbol: 'm', digits: 0, from: identity },
    imperial: { symbol: 'ft', digits: 0, from: (m) => m / 0.3048 },
  },
};

/** Converts an SI value (as the API sends it) to `units`. */
export function convert(q: Quantity, si: number, units: Units): number {
  return UNITS[q][units].from(si);
}

export function unitSymbol(q: Quantity, units: Units): string {
  return UNITS[q][units].symbol;
}

export function unitDigits(q: Quantity, units: Units): number {
  return UNITS[q][units].digits;
}

/** What each reading variable is, for labels and units. */
export const VARIABLES: Record<ReadingVariable, { label: string; quantity: Quantity }> = {
  temperature_c: { label: 'Temperature', quantity: 'temperature' },
  humidity_pct: { label: 'Humidity', quantity: 'humidity' },
  pressure_hpa: { label: 'Pressure', quantity: 'pressure' },
  sea_level_pressure_hpa: { label: 'Sea-level pressure', quantity: 'pressure' },
  wind_speed_ms: { label: 'Wind speed', quantity: 'speed' },
  wind_gust_ms: { label: 'Wind gust', quantity: 'speed' },
  wind_direction_deg: { label: 'Wind direction', quantity: 'direction' },
  dew_point_c: { label: 'Dew point', quantity: 'temperature' },
  heat_index_c: { label: 'Heat index', quantity: 'temperature' },
  wind_chill_c: { label: 'Wind chill', quantity: 'temperature' },
  feels_like_c: { label: 'Feels like', quantity: 'temperature' },
};

export function isReadingVariable(name: string): name is ReadingVariable {
  return Object.hasOwn(VARIABLES, name);
}
