import type { FeatureCollection, Geometry, MultiPolygon, Polygon, Position } from 'geojson';
import { feature, mesh } from 'topojson-client';
import type { GeometryCollection, Topology } from 'topojson-specification';
import world from 'world-atlas/countries-110m.json';

/**
 * The map is drawn in an equirectangular projection: x is the longitude
 * plus 180, y is 90 minus the latitude, so the world is 360 × 180 units.
 * Nothing is fetched: the outlines are Natural Earth's 1:110m countries,
 * shipped in the build (world-atlas).
 */
export const WORLD = { width: 360, height: 180 } as const;

export function project(lat: number, lon: number): [x: number, y: number] {
  return [lon + 180, 90 - lat];
}

function pathOf(points: readonly (readonly [number, number])[], shift: number, close: boolean): string {
  let d = '';
  for (let i = 0; i < points.length; i++) {
    const [lon, lat] = points[i] as readonly [number, number];
    const [x, y] = project(lat, lon + shift);
    d += `${i === 0 ? 'M' : 'L'}${x.toFixed(2)},${y.toFixed(2)}`;
  }
  return close ? `${d}Z` : d;
}

/**
 * A ring or line as path data. One that crosses the antimeridian is
 * unwrapped (each longitude within 180° of the one before), so it stays
 * one shape reaching past the map's edge, and drawn a second time a world
 * away for the part on the other side; the SVG clips both at the edges.
 */
function ringPath(ring: readonly Position[], close: boolean): string {
  const points: [number, number][] = [];
  let offset = 0;
  let prev: number | null = null;
  let min = Infinity;
  let max = -Infinity;
  for (const p of ring) {
    const raw = p[0] as number;
    if (prev !== null) {
      const lon = raw + offset;
      if (lon - prev > 180) offset -= 360;
      else if (lon - prev < -180) offset += 360;
    }
    const lon = raw + offset;
    points.push([lon, p[1] as number]);
    prev = lon;
    min = Math.min(min, lon);
    max = Math.max(max, lon);
  }
  let d = pathOf(points, 0, close);
  if (max > 180) d += pathOf(points, -360, close);
  if (min < -180) d += pathOf(points, 360, close);
  return d;
}

function geometryPath(g: Geometry): string {
  if (g.type === 'Polygon') return (g as Polygon).coordinates.map((r) => ringPath(r, true)).join('');
  if (g.type === 'MultiPolygon') {
    return (g as MultiPolygon).coordinates.map((poly) => poly.map((r) => ringPath(r, true)).join('')).join('');
  }
  if (g.type === 'MultiLineString') return g.coordinates.map((l) => ringPath(l, false)).join('');
  if (g.type === 'LineString') return ringPath(g.coordinates, false);
  return '';
}

let cached: { land: string; borders: string } | null = null;

/** SVG path data of the land and of the borders between countries (computed once). */
export function worldPaths(): { land: string; borders: string } {
  if (cached !== null) return cached;
  const topo = world as unknown as Topology<{ countries: GeometryCollection; land: GeometryCollection }>;
  const land = feature(topo, topo.objects.land) as unknown as FeatureCollection;
  const borders = mesh(topo, topo.objects.countries, (a, b) => a !== b);
  cached = {
    land: land.features.map((f) => geometryPath(f.geometry)).join(''),
    borders: geometryPath(borders),
  };
  return cached;
}

export interface ViewBox {
  x: number;
  y: number;
  width: number;
  height: number;
}

/**
 * The part of the world to show for stations at `points` (lat, lon): their
 * extent with a margin, at least `minSpan` degrees wide, widened to the
 * map's 2:1 shape and kept inside the world. With no points, the world.
 */
export function fitView(points: readonly (readonly [number, number])[], minSpan = 30): ViewBox {
  if (points.length === 0) return { x: 0, y: 0, ...WORLD };
  let minX = Infinity;
  let maxX = -Infinity;
  let minY = Infinity;
  let maxY = -Infinity;
  for (const [lat, lon] of points) {
    const [x, y] = project(lat, lon);
    minX = Math.min(minX, x);
    maxX = Math.max(maxX, x);
    minY = Math.min(minY, y);
    maxY = Math.max(maxY, y);
  }
  const margin = 0.15;
  let width = Math.max(minSpan, (maxX - minX) * (1 + 2 * margin));
  let height = Math.max(minSpan / 2, (maxY - minY) * (1 + 2 * margin));
  // Keep the map's shape: widen the narrower side.
  if (width < height * 2) width = height * 2;
  else height = width / 2;
  width = Math.min(width, WORLD.width);
  height = Math.min(height, WORLD.height);
  const cx = (minX + maxX) / 2;
  const cy = (minY + maxY) / 2;
  const x = Math.min(Math.max(0, cx - width / 2), WORLD.width - width);
  const y = Math.min(Math.max(0, cy - height / 2), WORLD.height - height);
  return { x, y, width, height };
}

/** Colour of a temperature (°C) on a blue–white–red scale from −20 to 40 °C. */
const STOPS: readonly [number, [number, number, number]][] = [
  [-20, [49, 54, 149]],
  [-10, [69, 117, 180]],
  [0, [116, 173, 209]],
  [10, [171, 217, 233]],
  [15, [224, 243, 248]],
  [20, [254, 224, 144]],
  [25, [253, 174, 97]],
  [30, [244, 109, 67]],
  [40, [165, 0, 38]],
];

export function temperatureColour(c: number): string {
  const first = STOPS[0] as (typeof STOPS)[number];
  const last = STOPS[STOPS.length - 1] as (typeof STOPS)[number];
  if (!Number.isFinite(c) || c <= first[0]) return rgb(first[1]);
  if (c >= last[0]) return rgb(last[1]);
  for (let i = 1; i < STOPS.length; i++) {
    const [t1, c1] = STOPS[i] as (typeof STOPS)[number];
    const [t0, c0] = STOPS[i - 1] as (typeof STOPS)[number];
    if (c <= t1) {
      const f = (c - t0) / (t1 - t0);
      return rgb([0, 1, 2].map((k) => Math.round((c0[k] as number) + f * ((c1[k] as number) - (c0[k] as number)))) as [
        number,
        number,
        number,
      ]);
    }
  }
  return rgb(last[1]);
}

function rgb([r, g, b]: readonly [number, number, number]): string {
  return `rgb(${r}, ${g}, ${b})`;
}

/** Temperatures marked on the map's legend, °C. */
export const LEGEND_STOPS = [-20, -10, 0, 10, 20, 30, 40] as const;
