import { describe, expect, it } from 'vitest';
import { WORLD, fitView, project, temperatureColour, worldPaths } from './geo';

describe('geo', () => {
  it('projects latitude and longitude onto the 360 × 180 map', () => {
    expect(project(0, 0)).toEqual([180, 90]);
    expect(project(90, -180)).toEqual([0, 0]);
    expect(project(-90, 180)).toEqual([360, 180]);
  });

  it('draws land and borders from the shipped outlines', () => {
    const { land, borders } = worldPaths();
    expect(land.length).toBeGreaterThan(10_000);
    expect(borders.length).toBeGreaterThan(1_000);
    expect(land.startsWith('M')).toBe(true);
    // Every shape is closed, so filling never joins two far points.
    expect(land.match(/M/g)?.length).toBe(land.match(/Z/g)?.length);
    // No edge runs across the map: shapes crossing the antimeridian (Russia,
    // Fiji) are unwrapped and drawn a world away too, not cut into pieces.
    for (const d of [land, borders]) {
      let px = 0;
      let py = 0;
      for (const m of d.matchAll(/([ML])(-?[\d.]+),(-?[\d.]+)/g)) {
        const x = Number(m[2]);
        const y = Number(m[3]);
        if (m[1] === 'L') expect(Math.hypot(x - px, y - py)).toBeLessThan(10);
        expect(y >= 0 && y <= 180).toBe(true);
        px = x;
        py = y;
      }
    }
  });

  it('fits the view to the stations with a margin, in the map’s shape', () => {
    const v = fitView([
      [40, -74],
      [51.5, -0.1],
    ]);
    expect(v.width / v.height).toBeCloseTo(2, 5);
    const [x1, y1] = project(40, -74);
    const [x2, y2] = project(51.5, -0.1);
    for (const [x, y] of [
      [x1, y1],
      [x2, y2],
    ] as const) {
      expect(x).toBeGreaterThan(v.x);
      expect(x).toBeLessThan(v.x + v.width);
      expect(y).toBeGreaterThan(v.y);
      expect(y).toBeLessThan(v.y + v.height);
    }
  });

  it('shows the whole world without stations, and never more than it', () => {
    expect(fitView([])).toEqual({ x: 0, y: 0, ...WORLD });
    const wide = fitView([
      [-80, -179],
      [80, 179],
    ]);
    expect(wide).toEqual({ x: 0, y: 0, ...WORLD });
    const one = fitView([[10, 10]]);
    expect(one.width).toBe(30);
  });

  it('colours temperatures from blue to red, clamped at the ends', () => {
    expect(temperatureColour(-50)).toBe(temperatureColour(-20));
    expect(temperatureColour(60)).toBe(temperatureColour(40));
    expect(temperatureColour(-20)).toBe('rgb(49, 54, 149)');
    expect(temperatureColour(40)).toBe('rgb(165, 0, 38)');
    expect(temperatureColour(5)).not.toBe(temperatureColour(6));
  });
});
