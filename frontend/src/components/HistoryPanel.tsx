import { useEffect, useMemo, useState } from 'react';
import { usePrefs } from '../hooks';
import { ApiError, fetchLiveTicket, fetchReadingHistory, fetchRollupHistory } from '../lib/api';
import { formatQuantity } from '../lib/format';
import { CHART_GROUPS, chartSeries, readingColumns, rollupColumns, upsertRollup, type ChartGroup } from '../lib/history';
import type { StationStore } from '../lib/store';
import type { Reading, Resolution, Rollup } from '../lib/types';
import { VARIABLES } from '../lib/units';
import { csvPath } from '../lib/urls';
import { readKey, withTicket } from '../lib/credential';
import { TimeChart } from './TimeChart';

type Preset = '1h' | '6h' | '24h' | '7d' | 'custom';
type Source = 'readings' | Resolution;

const PRESETS: Record<Exclude<Preset, 'custom'>, { label: string; ms: number; source: Source }> = {
  '1h': { label: '1 hour', ms: 3600_000, source: 'readings' },
  '6h': { label: '6 hours', ms: 6 * 3600_000, source: 'readings' },
  '24h': { label: '24 hours', ms: 24 * 3600_000, source: '1m' },
  '7d': { label: '7 days', ms: 7 * 24 * 3600_000, source: '1h' },
};

/** Most readings or periods drawn; the CSV has them all. */
const MAX_ITEMS = 20_000;
/** Rows of the readings table. */
const TABLE_ROWS = 50;
/** The CSV export's longest range. */
const CSV_MAX_MS = 31 * 24 * 3600_000;

/**
 * The readings observed at or after `since`, and at most `max` of them
 * (the newest): a live range keeps its window and its size.
 */
export function withinWindow(readings: Reading[], since: number, max: number): Reading[] {
  let start = 0;
  while (start < readings.length && Date.parse((readings[start] as Reading).observed_at) < since) start++;
  const kept = start === 0 ? readings : readings.slice(start);
  return kept.length > max ? kept.slice(kept.length - max) : kept;
}

/** `<input type="datetime-local">` value of a time, in the browser's zone. */
function localInput(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

interface Range {
  from: number;
  to: number;
  /**
   * Follows now: live rollups and readings are added, and what falls out
   * of the window is dropped, so a page left open all day stays the same
   * size. The window's length in ms; 0 for a fixed range.
   */
  live: number;
}

function presetRange(p: Exclude<Preset, 'custom'>, now: number): Range {
  return { from: now - PRESETS[p].ms, to: now + 60_000, live: PRESETS[p].ms };
}

type Loaded =
  | { kind: 'readings'; readings: Reading[]; truncated: boolean }
  | { kind: 'rollups'; resolution: Resolution; rollups: Rollup[]; truncated: boolean };

/**
 * A station's history over a chosen range: raw readings, or 1-minute or
 * 1-hour rollups (mean with the min–max band), with a CSV download.
 */
export function HistoryPanel({ store, stationId }: { store: StationStore; stationId: string }) {
  const { units } = usePrefs();
  const [preset, setPreset] = useState<Preset>('1h');
  const [source, setSource] = useState<Source>('readings');
  const [groupId, setGroupId] = useState<ChartGroup['id']>('temperature');
  const [range, setRange] = useState<Range>(() => presetRange('1h', Date.now()));
  const [custom, setCustom] = useState(() => ({ from: localInput(Date.now() - 3600_000), to: localInput(Date.now()) }));
  const [loaded, setLoaded] = useState<Loaded | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const group = CHART_GROUPS.find((g) => g.id === groupId) ?? (CHART_GROUPS[0] as ChartGroup);

  useEffect(() => {
    const ac = new AbortController();
    setLoading(true);
    setError(null);
    const from = new Date(range.from);
    const to = new Date(range.to);
    const request: Promise<Loaded> =
      source === 'readings'
        ? fetchReadingHistory(stationId, from, to, MAX_ITEMS, ac.signal).then((p) => ({
            kind: 'readings' as const,
            readings: p.items,
            truncated: p.truncated,
          }))
        : fetchRollupHistory(stationId, source, from, to, MAX_ITEMS, ac.signal).then((p) => ({
            kind: 'rollups' as const,
            resolution: source,
            rollups: p.items,
            truncated: p.truncated,
          }));
    request.then(
      (l) => {
        setLoaded(l);
        setLoading(false);
      },
      (err: unknown) => {
        if (ac.signal.aborted) return;
        if (err instanceof ApiError && err.status === 404) {
          // A station that has not reported yet: no history, and live readings to come.
          setLoaded(
            source === 'readings'
              ? { kind: 'readings', readings: [], truncated: false }
              : { kind: 'rollups', resolution: source, rollups: [], truncated: false },
          );
        } else {
          setError(err instanceof Error ? err.message : String(err));
        }
        setLoading(false);
      },
    );
    return () => ac.abort();
  }, [stationId, source, range]);

  // A range ending now grows with the live stream.
  useEffect(() => {
    const windowMs = range.live;
    if (windowMs === 0) return;
    const since = () => Date.now() - windowMs;
    const offRollup = store.onRollup((m) => {
      if (m.station_id !== stationId) return;
      setLoaded((l) =>
        l !== null && l.kind === 'rollups' && l.resolution === m.resolution
          ? { ...l, rollups: upsertRollup(l.rollups, m.rollup).filter((b) => Date.parse(b.bucket) >= since()) }
          : l,
      );
    });
    const offReading = store.onReading((r) => {
      if (r.station_id !== stationId) return;
      setLoaded((l) =>
        l !== null && l.kind === 'readings'
          ? { ...l, readings: withinWindow([...l.readings, r], since(), MAX_ITEMS) }
          : l,
      );
    });
    return () => {
      offRollup();
      offReading();
    };
  }, [store, stationId, range.live]);

  const rollupVariable = group.variables[0] ?? 'temperature_c';
  const data = useMemo(() => {
    if (loaded === null) return undefined;
    return loaded.kind === 'readings'
      ? readingColumns(loaded.readings, group, units)
      : rollupColumns(loaded.rollups, rollupVariable, units);
  }, [loaded, group, units, rollupVariable]);

  const choosePreset = (p: Preset) => {
    setPreset(p);
    if (p === 'custom') return;
    setRange(presetRange(p, Date.now()));
    setSource(PRESETS[p].source);
  };

  const applyCustom = () => {
    const from = Date.parse(custom.from);
    const to = Date.parse(custom.to);
    if (Number.isNaN(from) || Number.isNaN(to)) {
      setError('Both times are needed.');
      return;
    }
    if (to <= from) {
      setError('The end must be after the start.');
      return;
    }
    setRange({ from, to, live: 0 });
  };

  const count = loaded === null ? 0 : loaded.kind === 'readings' ? loaded.readings.length : loaded.rollups.length;
  const csvFrom = Math.max(range.from, range.to - CSV_MAX_MS);
  const seriesFor =
    loaded?.kind === 'rollups'
      ? [
          { label: `${VARIABLES[rollupVariable].label} (mean)`, colour: '--series-1' },
          { label: 'max', colour: '--series-2', dash: [4, 4] },
          { label: 'min', colour: '--series-3', dash: [4, 4] },
        ]
      : chartSeries(group);

  return (
    <section className="panel" aria-labelledby="history-heading" data-testid="history">
      <div className="panel-head">
        <h2 id="history-heading">History</h2>
        <a
          className="csv-link"
          href={csvPath(stationId, new Date(csvFrom), new Date(range.to))}
          onClick={(e) => {
            // With a read key, the link buys a one-time ticket: a download
            // cannot carry the key's header.
            if (readKey() === null) return;
            e.preventDefault();
            const href = e.currentTarget.href;
            fetchLiveTicket().then(
              (ticket) => window.location.assign(withTicket(href, ticket)),
              () => window.location.assign(href),
            );
          }}
          download
          aria-label={`Download the readings of ${stationId} in this range as CSV`}
        >
          CSV
        </a>
      </div>
      <div className="controls">
        <div className="segmented" role="group" aria-label="Range">
          {(['1h', '6h', '24h', '7d', 'custom'] as const).map((p) => (
            <button key={p} type="button" aria-pressed={preset === p} onClick={() => choosePreset(p)}>
              {p === 'custom' ? 'Custom' : PRESETS[p].label}
            </button>
          ))}
        </div>
        <label>
          Data{' '}
          <select value={source} onChange={(e) => setSource(e.target.value as Source)}>
            <option value="readings">Raw readings</option>
            <option value="1m">1-minute rollups</option>
            <option value="1h">1-hour rollups</option>
          </select>
        </label>
        <label>
          Variable{' '}
          <select value={groupId} onChange={(e) => setGroupId(e.target.value as ChartGroup['id'])}>
            {CHART_GROUPS.filter((g) => source === 'readings' || g.id !== 'direction').map((g) => (
              <option key={g.id} value={g.id}>
                {g.title}
              </option>
            ))}
          </select>
        </label>
      </div>
      {preset === 'custom' && (
        <div className="controls">
          <label>
            From{' '}
            <input type="datetime-local" value={custom.from} onChange={(e) => setCustom({ ...custom, from: e.target.value })} />
          </label>
          <label>
            To <input type="datetime-local" value={custom.to} onChange={(e) => setCustom({ ...custom, to: e.target.value })} />
          </label>
          <button type="button" onClick={applyCustom}>
            Show
          </button>
        </div>
      )}
      <TimeChart
        quantity={group.quantity}
        series={seriesFor}
        {...(data !== undefined ? { data } : {})}
        {...(loaded?.kind === 'rollups' ? { band: [2, 3] as const } : {})}
        {...(group.id === 'direction' ? { yRange: [0, 360] as const } : {})}
        height={260}
        ariaLabel={`${group.title} history of ${stationId}`}
      />
      <p className="muted small" role="status">
        {error !== null
          ? `Could not load history: ${error}`
          : loading
            ? 'Loading…'
            : `${count.toLocaleString()} ${loaded?.kind === 'rollups' ? 'periods' : 'readings'}${
                loaded?.truncated === true ? ` (the first ${MAX_ITEMS.toLocaleString()}; choose rollups or a shorter range)` : ''
              }`}
      </p>
      {loaded?.kind === 'readings' && loaded.readings.length > 0 && <ReadingsTable readings={loaded.readings} group={group} />}
    </section>
  );
}

function ReadingsTable({ readings, group }: { readings: readonly Reading[]; group: ChartGroup }) {
  const { units } = usePrefs();
  const rows = [...readings]
    .sort((a, b) => Date.parse(b.observed_at) - Date.parse(a.observed_at))
    .slice(0, TABLE_ROWS);
  return (
    <details className="readings-details">
      <summary>Newest {rows.length} readings of the range, with their QC flags</summary>
      <div className="table-wrap">
        <table className="readings">
          <caption className="visually-hidden">The newest readings of the range, with their quality-control flags</caption>
          <thead>
            <tr>
              <th scope="col">Observed</th>
              {group.variables.map((v) => (
                <th key={v} scope="col" className="num">
                  {VARIABLES[v].label}
                </th>
              ))}
              <th scope="col">QC</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.observed_at}>
                <td>
                  <time dateTime={r.observed_at}>{new Date(r.observed_at).toLocaleString()}</time>
                </td>
                {group.variables.map((v) => (
                  <td key={v} className={`num qc-${r.qc?.variables[v]?.flag ?? 'pass'}`}>
                    {formatQuantity(VARIABLES[v].quantity, r[v], units)}
                  </td>
                ))}
                <td>
                  <span className={`badge qc-${r.qc?.status ?? 'pass'}`}>{r.qc?.status ?? 'pass'}</span>{' '}
                  <span className="muted small">
                    {Object.entries(r.qc?.variables ?? {})
                      .map(([v, q]) => `${v}=${q.flag}`)
                      .join('; ')}
                  </span>
                  {r.qc?.late != null && <span className="badge suspect">late</span>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </details>
  );
}
