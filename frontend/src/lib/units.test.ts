import { describe, expect, it } from 'vitest';
import { formatQuantity, formatTemperature, formatWind } from './format';
import { convert, isReadingVariable, unitSymbol } from './units';

describe('units', () => {
  it('converts SI values to imperial', () => {
    expect(convert('temperature', 0, 'imperial')).toBe(32);
    expect(convert('temperature', 100, 'imperial')).toBeCloseTo(212, 10);
    expect(convert('temperature', -40, 'imperial')).toBeCloseTo(-40, 10);
    expect(convert('speed', 0.44704, 'imperial')).toBeCloseTo(1, 10);
    expect(convert('pressure', 1013.25, 'imperial')).toBeCloseTo(29.92, 2);
    expect(convert('length', 0.3048, 'imperial')).toBeCloseTo(1, 10);
    expect(convert('humidity', 55, 'imperial')).toBe(55);
  });

  it('leaves metric values as the API sends them', () => {
    expect(convert('temperature', 22.5, 'metric')).toBe(22.5);
    expect(convert('pressure', 1013.8, 'metric')).toBe(1013.8);
    expect(unitSymbol('speed', 'metric')).toBe('m/s');
    expect(unitSymbol('speed', 'imperial')).toBe('mph');
  });

  it('formats with the unit system’s symbol and precision', () => {
    expect(formatTemperature(22.5, 'imperial')).toBe('72.5 °F');
    expect(formatQuantity('pressure', 1013.25, 'imperial')).toBe('29.92 inHg');
    expect(formatWind(10, 90, 'imperial')).toBe('22.4 mph E 90°');
    expect(formatQuantity('length', 100, 'imperial')).toBe('328 ft');
    expect(formatQuantity('temperature', null, 'imperial')).toBe('—');
  });

  it('knows the reading variables', () => {
    expect(isReadingVariable('temperature_c')).toBe(true);
    expect(isReadingVariable('uv_index')).toBe(false);
    expect(isReadingVariable('toString')).toBe(false);
  });
});
