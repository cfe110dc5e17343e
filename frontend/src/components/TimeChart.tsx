import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import { usePrefs } from '../hooks';
import { MISSING } from '../lib/format';
import type { ChartSeries } from '../lib/history';
import { unitDigits, unitSymbol, type Quantity } from '../lib/units';


/** Pushes new data into a mounted chart; returns a function that detaches it. */
export type LiveFeed = (setData: (data: uPlot.AlignedData) => void) => () => void;

interface Props {
  /** Values are already in the units shown. */
  quantity: Quantity;
  series: readonly ChartSeries[];
  ariaLabel: string;
  height?: number;
  /** Static data (history), replaced when it changes ... */
  data?: uPlot.AlignedData;
  /** ... or a live feed. */
  live?: LiveFeed;
  /** Fills between two series (1-based indices into the data), for a min–max band. */
  band?: readonly [upper: number, lower: number];
  /** Fixed y range (wind direction 0–360). */
  yRange?: readonly [number, number];
}

function cssVar(name: string, fallback: string): string {
  if (typeof window === 'undefined') return fallback;
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v === '' ? fallback : v;
}

function colourOf(c: string): string {
  return c.startsWith('--') ? cssVar(c, '#4cc2ff') : c;
}

/**
 * Sets the data; a lone reading (or a few seconds of them) would stretch
 * the time axis over years, so those are shown within ten minutes.
 */
function show(plot: uPlot, host: HTMLElement, data: uPlot.AlignedData): void {
  plot.setData(data);
  const xs = data[0];
  host.dataset.points = String(xs.length);
  const first = xs[0];
  const last = xs[xs.length - 1];
  if (first !== undefined && last !== undefined && last - first < 60) {
    plot.setScale('x', { min: last - 600, max: last + 30 });
  }
}

function chartHeight(requested: number): number {
  return window.matchMedia('(max-width: 640px)').matches ? Math.min(requested, 200) : requested;
}

/**
 * A time-series chart (uPlot on a canvas). Built again when the theme or
 * the units change, since both are drawn into the canvas; data changes
 * only redraw it.
 */
export function TimeChart({ quantity, series, ariaLabel, height = 220, data, live, band, yRange }: Props) {
  const hostRef = useRef<HTMLDivElement>(null);
  const plotRef = useRef<uPlot | null>(null);
  const { theme, units } = usePrefs();
  const dataRef = useRef(data);
  dataRef.current = data;
  const seriesKey = series.map((s) => s.label).join('|');

  useEffect(() => {
    const host = hostRef.current;
    if (host === null) return;
    const axisColour = cssVar('--muted', '#9da7b3');
    const grid = cssVar('--grid', 'rgba(157, 167, 179, 0.15)');
    const symbol = unitSymbol(quantity, units);
    const digits = unitDigits(quantity, units);
    const fmt = (v: number | null | undefined) => (v == null ? MISSING : `${v.toFixed(digits)} ${symbol}`);
    const axis: uPlot.Axis = {
      stroke: axisColour,
      grid: { stroke: grid, width: 1 },
      ticks: { stroke: grid, width: 1 },
      font: '12px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
    };
    const opts: uPlot.Options = {
      width: Math.max(200, host.clientWidth),
      height: chartHeight(height),
      scales: {
        x: { time: true },
        ...(yRange !== undefined ? { y: { range: [yRange[0], yRange[1]] as [number, number] } } : {}),
      },
      series: [
        {},
        ...series.map((s): uPlot.Series => {
          const stroke = colourOf(s.colour);
          return {
            label: s.label,
            stroke,
            width: s.points === true ? 0 : 2,
            // Lines show their points when there is room for them (a few readings).
            points: s.points === true ? { show: true, size: 6, fill: stroke, stroke } : { size: 6, fill: stroke, stroke },
            ...(s.dash !== undefined ? { dash: s.dash } : {}),
            spanGaps: false,
            value: (_u, v) => fmt(v),
          };
        }),
      ],
      ...(band !== undefined ? { bands: [{ series: [band[0], band[1]], fill: `${colourOf('--series-band')}` }] } : {}),
      axes: [
        axis,
        {
          ...axis,
          values: (_u, ticks) => ticks.map((t) => `${t} ${symbol}`),
          // Wide enough for the longest label ("1013.5 hPa").
          size: (_u, values) => (values == null ? 50 : Math.max(...values.map((v) => String(v).length)) * 7 + 20),
        },
      ],
      cursor: { drag: { x: true, y: false } },
      legend: { live: true },
    };
    const empty: uPlot.AlignedData = [[], ...series.map(() => [])];
    const initial = dataRef.current ?? empty;
    const plot = new uPlot(opts, empty, host);
    plotRef.current = plot;
    // `data-points`: how many points are drawn, for people and tests reading the page.
    show(plot, host, initial);
    let lastWidth = host.clientWidth;
    const ro = new ResizeObserver(() => {
      const w = Math.max(200, host.clientWidth);
      if (w === lastWidth) return;
      lastWidth = w;
      plot.setSize({ width: w, height: chartHeight(height) });
    });
    ro.observe(host);
    const detach = live?.((d) => show(plot, host, d));
    return () => {
      detach?.();
      ro.disconnect();
      plot.destroy();
      plotRef.current = null;
    };
    // `series` is described by its labels (a new array each render);
    // `live` is rebuilt with the units.
  }, [theme, units, quantity, seriesKey, height, live, band?.[0], band?.[1], yRange?.[0], yRange?.[1]]);

  useEffect(() => {
    if (data === undefined || plotRef.current === null || hostRef.current === null) return;
    show(plotRef.current, hostRef.current, data);
  }, [data]);

  return <div className="chart" ref={hostRef} role="img" aria-label={ariaLabel} />;
}
