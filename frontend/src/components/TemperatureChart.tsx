import { useEffect, useRef, useState } from 'react';
import uPlot from 'uplot';
import { fetchReadings } from '../lib/api';
import { formatTemperature } from '../lib/format';
import { FrameBatcher } from '../lib/frame';
import { PointRing } from '../lib/ring';
import { HISTORY_LIMIT, MAX_POINTS, historyRange, temperaturePoint } from '../lib/series';
import type { StationStore } from '../lib/store';
import type { Reading } from '../lib/types';
import { csvPath } from '../lib/urls';

interface Props {
  store: StationStore;
  stationId: string | null;
  latest: Reading | null;
}

type LoadState = 'idle' | 'loading' | 'ready' | 'error';

const AXIS = '#9da7b3';
const GRID = 'rgba(157, 167, 179, 0.15)';
const LINE = '#4cc2ff';

function chartHeight(): number {
  return window.matchMedia('(max-width: 640px)').matches ? 220 : 300;
}

function chartOptions(width: number, height: number): uPlot.Options {
  const axis: uPlot.Axis = {
    stroke: AXIS,
    grid: { stroke: GRID, width: 1 },
    ticks: { stroke: GRID, width: 1 },
    font: '12px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
  };
  return {
    width,
    height,
    scales: { x: { time: true } },
    series: [
      {},
      {
        label: 'Temperature',
        stroke: LINE,
        width: 2,
        fill: 'rgba(76, 194, 255, 0.08)',
        points: { show: false },
        spanGaps: false,
        value: (_u, v) => (v == null ? '—' : formatTemperature(v)),
      },
    ],
    axes: [axis, { ...axis, size: 56, values: (_u, ticks) => ticks.map((t) => `${t} °C`) }],
    cursor: { drag: { x: false, y: false } },
    legend: { live: true },
  };
}

/**
 * Live temperature of one station: the last 15 minutes from REST, then
 * readings from the websocket. The plot is redrawn at most once per frame.
 */
export function TemperatureChart({ store, stationId, latest }: Props) {
  const hostRef = useRef<HTMLDivElement>(null);
  const plotRef = useRef<uPlot | null>(null);
  const [load, setLoad] = useState<LoadState>('idle');
  const [error, setError] = useState<string | null>(null);
  const [hasPoints, setHasPoints] = useState(false);

  useEffect(() => {
    const host = hostRef.current;
    if (host === null) return;
    const plot = new uPlot(chartOptions(Math.max(200, host.clientWidth), chartHeight()), [[], []], host);
    plotRef.current = plot;
    let lastWidth = host.clientWidth;
    const ro = new ResizeObserver(() => {
      const w = Math.max(200, host.clientWidth);
      if (w === lastWidth) return;
      lastWidth = w;
      plot.setSize({ width: w, height: chartHeight() });
    });
    ro.observe(host);
    return () => {
      ro.disconnect();
      plot.destroy();
      plotRef.current = null;
    };
  }, []);

  useEffect(() => {
    plotRef.current?.setData([[], []]);
    setHasPoints(false);
    setError(null);
    if (stationId === null) {
      setLoad('idle');
      return;
    }

    const ring = new PointRing(MAX_POINTS);
    let shown = false;
    const batcher = new FrameBatcher(() => {
      plotRef.current?.setData(ring.toData());
      if (!shown && ring.length > 0) {
        shown = true;
        setHasPoints(true);
      }
    });

    // Subscribe before asking for history so nothing falls in between;
    // the ring orders and de-duplicates points by time.
    const off = store.onReading((r) => {
      if (r.station_id !== stationId) return;
      const p = temperaturePoint(r);
      if (p === null) return;
      ring.push(p[0], p[1]);
      batcher.schedule();
    });

    let ac: AbortController | null = null;
    const loadHistory = () => {
      ac?.abort();
      const current = new AbortController();
      ac = current;
      setLoad('loading');
      const { from, to } = historyRange(Date.now());
      fetchReadings(stationId, from, to, HISTORY_LIMIT, current.signal).then(
        (readings) => {
          for (const r of readings) {
            if (r.station_id !== stationId) continue;
            const p = temperaturePoint(r);
            if (p !== null) ring.push(p[0], p[1]);
          }
          batcher.schedule();
          setError(null);
          setLoad('ready');
        },
        (err: unknown) => {
          if (current.signal.aborted) return;
          setError(err instanceof Error ? err.message : String(err));
          setLoad('error');
        },
      );
    };

    // After a reconnect, fill in what was missed while the feed was down.
    const offSnapshot = store.onSnapshot((count) => {
      if (count > 1) loadHistory();
    });
    loadHistory();

    return () => {
      off();
      offSnapshot();
      ac?.abort();
      batcher.cancel();
    };
  }, [store, stationId]);

  const title = stationId === null ? 'Temperature' : `Temperature — ${stationId}`;
  let note: string | null = null;
  if (stationId === null) note = 'Waiting for a station to report.';
  else if (load === 'error') note = `History unavailable (${error ?? 'error'}); showing live readings.`;
  else if (load === 'loading' && !hasPoints) note = 'Loading the last 15 minutes…';
  else if (!hasPoints) note = 'No temperature readings in the last 15 minutes yet.';

  return (
    <section className="panel chart-panel" aria-labelledby="chart-heading">
      <div className="panel-head">
        <h2 id="chart-heading">{title}</h2>
        {latest !== null && latest.station_id === stationId && (
          <span className="chart-now">{formatTemperature(latest.temperature_c)}</span>
        )}
        {stationId !== null && (
          <a className="csv-link" href={csvPath(stationId)} download aria-label={`Download the last day of ${stationId} as CSV`}>
            CSV
          </a>
        )}
      </div>
      <div
        className="chart"
        ref={hostRef}
        role="img"
        aria-label={
          stationId === null
            ? 'Temperature chart, no station selected'
            : `Temperature chart for station ${stationId}: last 15 minutes and live readings`
        }
      />
      {note !== null && (
        <p className="chart-note muted" role="status">
          {note}
        </p>
      )}
    </section>
  );
}
