import { useMemo, useState } from 'react';
import { formatRelativeTime } from '../lib/format';
import { stationHref } from '../lib/route';
import { sortedAlerts, type StationsState } from '../lib/stations';
import type { Alert } from '../lib/types';

type Filter = 'all' | 'firing' | 'resolved';

interface Props {
  state: StationsState;
  now: number;
  loadError: string | null;
}

function duration(a: Alert, now: number): string {
  const end = a.resolved_at === null ? now : Date.parse(a.resolved_at);
  const s = Math.max(0, Math.round((end - Date.parse(a.fired_at)) / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d`;
}

/** Alerts, firing first, then the resolved ones, newest first; live. */
export function AlertsView({ state, now, loadError }: Props) {
  const [filter, setFilter] = useState<Filter>('all');
  const all = useMemo(() => sortedAlerts(state.alerts), [state.alerts]);
  const firing = all.filter((a) => a.state === 'firing');
  const resolved = all.filter((a) => a.state === 'resolved');
  const shown = filter === 'firing' ? firing : filter === 'resolved' ? resolved : [...firing, ...resolved];

  return (
    <div className="page">
      <section className="panel" aria-labelledby="alerts-heading">
        <div className="panel-head">
          <h2 id="alerts-heading">Alerts</h2>
          <div className="segmented" role="group" aria-label="Show">
            {(
              [
                ['all', `All (${all.length})`],
                ['firing', `Firing (${firing.length})`],
                ['resolved', `Resolved (${resolved.length})`],
              ] as const
            ).map(([f, label]) => (
              <button key={f} type="button" aria-pressed={filter === f} onClick={() => setFilter(f)}>
                {label}
              </button>
            ))}
          </div>
        </div>
        {loadError !== null && (
          <p className="banner" role="alert">
            Could not load past alerts: {loadError}
          </p>
        )}
        {shown.length === 0 ? (
          <p className="empty">{filter === 'resolved' ? 'No resolved alerts.' : 'No alerts are firing.'}</p>
        ) : (
          <div className="table-wrap">
            <table className="alerts" data-testid="alerts-table">
              <caption className="visually-hidden">Alerts, firing first, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">State</th>
                  <th scope="col">Rule</th>
                  <th scope="col">Station</th>
                  <th scope="col">Message</th>
                  <th scope="col">Fired</th>
                  <th scope="col">Lasted</th>
                </tr>
              </thead>
              <tbody>
                {shown.map((a) => (
                  <tr key={`${a.rule}|${a.station_id ?? ''}|${a.fired_at}`} className={`alert-${a.state}`} data-rule={a.rule}>
                    <td>
                      <span className={`badge ${a.state === 'firing' ? 'firing' : 'ok'}`}>{a.state}</span>
                    </td>
                    <td>{a.rule}</td>
                    <td>
                      {a.station_id === null ? (
                        <span className="muted">pipeline</span>
                      ) : (
                        <a href={stationHref(a.station_id)}>{a.station_id}</a>
                      )}
                    </td>
                    <td>{a.message}</td>
                    <td>
                      <time dateTime={a.fired_at} title={new Date(a.fired_at).toLocaleString()}>
                        {formatRelativeTime(a.fired_at, now)}
                      </time>
                    </td>
                    <td>
                      {duration(a, now)}
                      {a.state === 'firing' && <span className="muted small"> so far</span>}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </div>
  );
}
