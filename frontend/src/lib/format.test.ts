import { describe, expect, it } from 'vitest';
import { reading } from './fixtures';
import {
  MISSING,
  compassPoint,
  feelsLike,
  formatHumidity,
  formatPressure,
  formatRelativeTime,
  formatTemperature,
  formatWind,
  formatWindDirection,
  formatWindSpeed,
} from './format';

describe('value formatting', () => {
  it('formats measurements with units', () => {
    expect(formatTemperature(22.5)).toBe('22.5 °C');
    expect(formatTemperature(-3.14)).toBe('-3.1 °C');
    expect(formatHumidity(65.2)).toBe('65 %');
    expect(formatPressure(1013.8)).toBe('1013.8 hPa');
    expect(formatWindSpeed(12.34)).toBe('12.3 m/s');
  });

  it('shows a placeholder for missing values', () => {
    expect(formatTemperature(null)).toBe(MISSING);
    expect(formatHumidity(undefined)).toBe(MISSING);
    expect(formatPressure(Number.NaN)).toBe(MISSING);
  });

  it('never shows negative zero', () => {
    expect(formatTemperature(-0.04)).toBe('0.0 °C');
    expect(formatTemperature(-0)).toBe('0.0 °C');
  });
});

describe('wind', () => {
  it('names compass points', () => {
    expect(compassPoint(0)).toBe('N');
    expect(compassPoint(225)).toBe('SW');
    expect(compassPoint(359)).toBe('N');
    expect(compassPoint(11.24)).toBe('N');
    expect(compassPoint(11.25)).toBe('NNE');
    expect(compassPoint(90)).toBe('E');
    expect(compassPoint(-90)).toBe('W');
    expect(compassPoint(720 + 180)).toBe('S');
  });

  it('formats direction and speed together or alone', () => {
    expect(formatWindDirection(225)).toBe('SW 225°');
    expect(formatWindDirection(359.7)).toBe('N 0°');
    expect(formatWind(12.3, 225)).toBe('12.3 m/s SW 225°');
    expect(formatWind(12.3, null)).toBe('12.3 m/s');
    expect(formatWind(null, 90)).toBe('E 90°');
    expect(formatWind(null, null)).toBe(MISSING);
  });
});

describe('feelsLike', () => {
  it('prefers heat index, then wind chill, else nothing', () => {
    expect(feelsLike(reading({ heat_index_c: 31.2 }))).toEqual({ kind: 'heat index', celsius: 31.2 });
    expect(feelsLike(reading({ wind_chill_c: -8 }))).toEqual({ kind: 'wind chill', celsius: -8 });
    expect(feelsLike(reading())).toBeNull();
    expect(feelsLike(null)).toBeNull();
  });
});

describe('formatRelativeTime', () => {
  const now = Date.parse('2025-01-13T10:00:00Z');

  it('counts seconds, minutes, hours and days', () => {
    expect(formatRelativeTime('2025-01-13T09:59:57Z', now)).toBe('3 s ago');
    expect(formatRelativeTime('2025-01-13T09:59:00.500Z', now)).toBe('59 s ago');
    expect(formatRelativeTime('2025-01-13T09:59:00Z', now)).toBe('1 min ago');
    expect(formatRelativeTime('2025-01-13T09:05:00Z', now)).toBe('55 min ago');
    expect(formatRelativeTime('2025-01-13T08:00:00Z', now)).toBe('2 h ago');
    expect(formatRelativeTime('2025-01-10T10:00:00Z', now)).toBe('3 d ago');
  });

  it('reads sub-second and slightly future times as just now', () => {
    expect(formatRelativeTime('2025-01-13T09:59:59.400Z', now)).toBe('just now');
    expect(formatRelativeTime('2025-01-13T10:00:02Z', now)).toBe('just now');
  });

  it('handles missing and invalid times', () => {
    expect(formatRelativeTime(null, now)).toBe('never');
    expect(formatRelativeTime('garbage', now)).toBe(MISSING);
  });
});
