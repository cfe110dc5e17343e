import { useEffect, useMemo, useState } from 'react';
import { Compass } from '../components/Compass';
import { HistoryPanel } from '../components/HistoryPanel';
import { QcPanel } from '../components/QcPanel';
import { TimeChart } from '../components/TimeChart';
import { usePrefs } from '../hooks';
import { ApiError, fetchReadingHistory } from '../lib/api';
import { MISSING, formatQuantity, formatRelativeTime, formatWindDirection } from '../lib/format';
import { CHART_GROUPS, LiveSeries, chartSeries, readingExtractors } from '../lib/history';
import { HISTORY_LIMIT, historyRange } from '../lib/series';
import type { StationStore } from '../lib/store';
import type { QcFlag, Reading, ReadingVariable, Station } from '../lib/types';
import { VARIABLES } from '../lib/units';

interface Props {
  store: StationStore;
  stationId: string;
  station: Station | undefined;
  now: number;
}

/**
 * One station: its conditions now with their QC flags, live charts of the
 * last 15 minutes and on, and its history.
 */
export function StationPage({ store, stationId, station, now }: Props) {
  const { units } = usePrefs();
  const [series, setSeries] = useState(() => new LiveSeries());
  const [historyError, setHistoryError] = useState<string | null>(null);

  useEffect(() => {
    const live = new LiveSeries();
    setSeries(live);
    setHistoryError(null);
    // Subscribe before asking for history so nothing falls in between.
    const off = store.onReading((r) => {
      if (r.station_id === stationId) live.add(r);
    });
    let ac: AbortController | null = null;
    const load = () => {
      ac?.abort();
      const current = new AbortController();
      ac = current;
      const { from, to } = historyRange(Date.now());
      fetchReadingHistory(stationId, from, to, HISTORY_LIMIT, current.signal).then(
        ({ items }) => {
          for (const r of items) if (r.station_id === stationId) live.add(r);
          setHistoryError(null);
        },
        (err: unknown) => {
          if (current.signal.aborted) return;
          // A station that has not reported yet has no history: not an error.
          if (err instanceof ApiError && err.status === 404) setHistoryError(null);
          else setHistoryError(err instanceof Error ? err.message : String(err));
        },
      );
    };
    // After a reconnect, fill in what was missed while the feed was down.
    const offSnapshot = store.onSnapshot((count) => {
      if (count > 1) load();
    });
    load();
    return () => {
      off();
      offSnapshot();
      ac?.abort();
      live.close();
    };
  }, [store, stationId]);

  const feeds = useMemo(
    () => CHART_GROUPS.map((g) => ({ group: g, feed: series.feed(readingExtractors(g, units)) })),
    [series, units],
  );

  const latest = station?.latest ?? null;
  const title = station?.name ?? stationId;

  return (
    <div className="page">
      <div className="page-head">
        <div>
          <p className="crumbs">
            <a href="#/">Overview</a> / <span>{stationId}</span>
          </p>
          <h2 className="page-title">
            {title}
            {station?.name != null && <span className="muted"> {stationId}</span>}
            {station?.status === 'silent' && <span className="badge silent">silent</span>}
            {station?.status === 'reporting' && <span className="badge ok">reporting</span>}
          </h2>
          {station !== undefined && (
            <p className="muted small">
              {station.latitude !== null && station.longitude !== null
                ? `${station.latitude.toFixed(4)}, ${station.longitude.toFixed(4)}`
                : 'position unknown'}
              {station.elevation_m !== null && ` · ${formatQuantity('length', station.elevation_m, units)}`}
              {' · last seen '}
              {station.last_seen === null ? 'never' : formatRelativeTime(station.last_seen, now)}
            </p>
          )}
        </div>
      </div>
      {station === undefined && (
        <p className="banner" role="alert">
          Station {stationId} has not reported.
        </p>
      )}
      <Conditions reading={latest} />
      <section className="panel" aria-labelledby="live-heading">
        <div className="panel-head">
          <h2 id="live-heading">Live</h2>
          <span className="muted small">
            {historyError !== null ? `History unavailable (${historyError}); live readings only` : 'Last 15 minutes and on'}
          </span>
        </div>
        <div className="chart-grid">
          {feeds.map(({ group, feed }) => (
            <figure key={group.id} className="chart-cell" data-chart={group.id}>
              <figcaption>{group.title}</figcaption>
              <TimeChart
                quantity={group.quantity}
                series={chartSeries(group)}
                live={feed}
                height={180}
                {...(group.id === 'direction' ? { yRange: [0, 360] as const } : {})}
                ariaLabel={`${group.title} of ${stationId}, live`}
              />
            </figure>
          ))}
        </div>
      </section>
      <QcPanel stationId={stationId} />
      <HistoryPanel store={store} stationId={stationId} />
    </div>
  );
}

const FLAG_TEXT: Record<QcFlag, string> = { pass: 'passed QC', suspect: 'suspect', fail: 'failed QC' };

const CONDITION_VARS: readonly ReadingVariable[] = [
  'temperature_c',
  'humidity_pct',
  'pressure_hpa',
  'sea_level_pressure_hpa',
  'wind_speed_ms',
  'wind_gust_ms',
  'dew_point_c',
  'feels_like_c',
  'heat_index_c',
  'wind_chill_c',
];

/** The latest reading, variable by variable, with QC flags and findings. */
function Conditions({ reading }: { reading: Reading | null }) {
  const { units } = usePrefs();
  const qc = reading?.qc ?? null;
  const flagged = qc === null ? [] : Object.entries(qc.variables);
  return (
    <section className="panel" aria-labelledby="now-heading">
      <div className="panel-head">
        <h2 id="now-heading">Now</h2>
        {reading !== null && (
          <span className="muted small">
            observed <time dateTime={reading.observed_at}>{new Date(reading.observed_at).toLocaleString()}</time>
          </span>
        )}
        {qc !== null && (
          <span className={`badge qc-${qc.status}`} data-testid="qc-status">
            QC {qc.status}
          </span>
        )}
        {qc?.late != null && <span className="badge suspect" title={qc.late}>late</span>}
      </div>
      {reading === null ? (
        <p className="empty">No reading yet.</p>
      ) : (
        <div className="conditions">
          <dl className="condition-grid">
            {CONDITION_VARS.map((v) => {
              const flag = qc?.variables[v]?.flag ?? 'pass';
              const value = reading[v];
              if (value === null && (v === 'heat_index_c' || v === 'wind_chill_c' || v === 'wind_gust_ms')) return null;
              return (
                <div key={v} className={`condition qc-${flag}`} data-variable={v}>
                  <dt>{VARIABLES[v].label}</dt>
                  <dd>
                    {formatQuantity(VARIABLES[v].quantity, value, units)}
                    {flag !== 'pass' && (
                      <span className={`badge qc-${flag}`} title={FLAG_TEXT[flag]}>
                        {flag}
                      </span>
                    )}
                  </dd>
                </div>
              );
            })}
            <div className="condition" data-variable="wind_direction_deg">
              <dt>Wind direction</dt>
              <dd>{reading.wind_direction_deg === null ? MISSING : formatWindDirection(reading.wind_direction_deg)}</dd>
            </div>
          </dl>
          <Compass degrees={reading.wind_direction_deg} />
        </div>
      )}
      {flagged.length > 0 && (
        <ul className="findings" aria-label="Quality-control findings">
          {flagged.map(([v, q]) =>
            q.findings.map((f, i) => (
              <li key={`${v}-${i}`} className={`qc-${f.flag}`}>
                <strong>{VARIABLES[v as ReadingVariable]?.label ?? v}</strong>: {f.check} {f.flag} — {f.detail}
              </li>
            )),
          )}
        </ul>
      )}
    </section>
  );
}
