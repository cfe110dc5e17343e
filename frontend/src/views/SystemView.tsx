import { useRef } from 'react';
import { ClusterPanel } from '../components/ClusterPanel';
import { usePolled } from '../hooks';
import { fetchMetrics, fetchQuarantine, fetchSupervision } from '../lib/api';
import { formatRelativeTime } from '../lib/format';
import { parseMetrics, rate, sumOf, type Sample } from '../lib/metrics';
import type { StationsState } from '../lib/stations';
import type { SupervisedChild, SupervisionGroup } from '../lib/types';

interface Props {
  state: StationsState;
  now: number;
}

const POLL_MS = 5000;

interface Scrape {
  at: number;
  samples: Sample[];
}

interface PipelineRow {
  label: string;
  metric: string;
  kind: 'rate' | 'gauge';
  unit: string;
  where?: Record<string, string>;
}

const PIPELINE: readonly PipelineRow[] = [
  { label: 'MQTT messages received', metric: 'isobar_messages_received_total', kind: 'rate', unit: '/s' },
  { label: 'Readings accepted', metric: 'isobar_readings_accepted_total', kind: 'rate', unit: '/s' },
  { label: 'Readings stored', metric: 'isobar_readings_stored_total', kind: 'rate', unit: '/s' },
  { label: 'Quarantined', metric: 'isobar_quarantined_total', kind: 'rate', unit: '/s' },
  { label: 'Readings rolled up', metric: 'isobar_readings_rolled_up_total', kind: 'rate', unit: '/s' },
  { label: 'Live updates dropped', metric: 'isobar_live_dropped_total', kind: 'rate', unit: '/s' },
  { label: 'Store errors', metric: 'isobar_store_errors_total', kind: 'rate', unit: '/s' },
  { label: 'Processing lag', metric: 'isobar_processing_lag_seconds', kind: 'gauge', unit: 's' },
  { label: 'Messages not yet stored', metric: 'isobar_mqtt_unacknowledged', kind: 'gauge', unit: '' },
  { label: 'Live clients', metric: 'isobar_live_clients', kind: 'gauge', unit: '' },
  { label: 'Stations supervised', metric: 'isobar_stations_supervised', kind: 'gauge', unit: '' },
];

function fmt(v: number | null, unit: string): string {
  if (v === null) return '—';
  const digits = Math.abs(v) >= 100 || Number.isInteger(v) ? 0 : Math.abs(v) >= 10 ? 1 : 2;
  return `${v.toFixed(digits)}${unit === '' ? '' : unit === '/s' ? ' /s' : ` ${unit}`}`;
}

/** The supervision tree, the pipeline's rates and the quarantine. */
export function SystemView({ state, now }: Props) {
  // Reloaded on each restart event too (the list is capped, so its identity, not its length).
  const tree = usePolled(fetchSupervision, POLL_MS, [state.events]);
  const prev = useRef<Scrape | null>(null);
  const last = useRef<Scrape | null>(null);
  const metrics = usePolled(
    async (signal) => {
      const samples = parseMetrics(await fetchMetrics(signal));
      prev.current = last.current;
      last.current = { at: Date.now(), samples };
      return last.current;
    },
    POLL_MS,
    [],
  );
  const quarantine = usePolled((signal) => fetchQuarantine(50, signal), POLL_MS * 2, []);

  const before = prev.current;
  const after = metrics.value;
  const seconds = before !== null && after !== null ? (after.at - before.at) / 1000 : 0;

  return (
    <div className="page">
      <section className="panel" aria-labelledby="tree-heading">
        <div className="panel-head">
          <h2 id="tree-heading">Supervision</h2>
          {tree.error !== null && <span className="badge fail">{tree.error}</span>}
        </div>
        {tree.value === null ? (
          <p className="empty">{tree.error ?? 'Loading…'}</p>
        ) : (
          <div className="tree" data-testid="supervision-tree">
            <Group title="root" group={tree.value.root} now={now} />
            <div className="tree-children">
              <Group title="pipeline" group={tree.value.pipeline} now={now} />
              <Group title="stations" group={tree.value.stations} now={now} collapsed={tree.value.stations.children.length > 30} />
            </div>
          </div>
        )}
      </section>
      {tree.value?.cluster != null && <ClusterPanel cluster={tree.value.cluster} now={now} />}
      <div className="two-col">
        <section className="panel" aria-labelledby="pipeline-heading">
          <div className="panel-head">
            <h2 id="pipeline-heading">Pipeline</h2>
            <span className="muted small">from /metrics every {POLL_MS / 1000} s</span>
          </div>
          <table className="kv" data-testid="pipeline-rates">
            <tbody>
              {PIPELINE.map((row) => {
                const a = after === null ? null : sumOf(after.samples, row.metric, row.where);
                // A counter appears with its first increment: none yet is zero.
                const counter = (x: number | null) => (x === null && after !== null ? 0 : x);
                const v =
                  row.kind === 'gauge'
                    ? a
                    : before === null
                      ? null
                      : rate(counter(sumOf(before.samples, row.metric, row.where)), counter(a), seconds);
                return (
                  <tr key={row.metric}>
                    <th scope="row">{row.label}</th>
                    <td className="num">{fmt(v, row.unit)}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          {metrics.error !== null && <p className="muted small">Metrics unavailable: {metrics.error}</p>}
        </section>
        <section className="panel" aria-labelledby="events-heading">
          <div className="panel-head">
            <h2 id="events-heading">Restarts</h2>
            <span className="muted small">live, since this page opened</span>
          </div>
          {state.events.length === 0 ? (
            <p className="empty">No restarts since this page opened.</p>
          ) : (
            <ul className="events">
              {state.events.map((e, i) => (
                <li key={`${e.at}-${i}`}>
                  <strong>
                    {e.group}/{e.child}
                  </strong>{' '}
                  attempt {e.attempt}, in {e.delay_ms} ms{e.with.length > 0 && ` with ${e.with.join(', ')}`}:{' '}
                  <span className="muted">{e.reason}</span> <span className="muted small">{formatRelativeTime(e.at, now)}</span>
                </li>
              ))}
            </ul>
          )}
        </section>
      </div>
      <section className="panel" aria-labelledby="quarantine-heading">
        <div className="panel-head">
          <h2 id="quarantine-heading">Quarantine</h2>
          <span className="muted small">newest 50</span>
        </div>
        {quarantine.value === null || quarantine.value.length === 0 ? (
          <p className="empty">{quarantine.error ?? (quarantine.value === null ? 'Loading…' : 'Nothing quarantined.')}</p>
        ) : (
          <div className="table-wrap">
            <table className="quarantine" data-testid="quarantine-table">
              <thead>
                <tr>
                  <th scope="col">Received</th>
                  <th scope="col">Source</th>
                  <th scope="col">Reason</th>
                  <th scope="col">Payload</th>
                </tr>
              </thead>
              <tbody>
                {quarantine.value.map((q) => (
                  <tr key={q.id}>
                    <td>
                      <time dateTime={q.received_at}>{formatRelativeTime(q.received_at, now)}</time>
                    </td>
                    <td>{q.source}</td>
                    <td>
                      <span className="badge fail">{q.reason_code}</span> <span className="muted small">{q.reason}</span>
                    </td>
                    <td>
                      <code className="payload">{q.payload.length > 120 ? `${q.payload.slice(0, 120)}…` : q.payload}</code>
                      {q.truncated && <span className="muted small"> (truncated, {q.payload_bytes} bytes)</span>}
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

function Group({
  title,
  group,
  now,
  collapsed = false,
}: {
  title: string;
  group: SupervisionGroup;
  now: number;
  collapsed?: boolean;
}) {
  const strategy = typeof group.policy?.strategy === 'string' ? group.policy.strategy : null;
  const restarts = group.children.reduce((n, c) => n + c.restarts, 0);
  const children = collapsed
    ? [...group.children].sort((a, b) => b.restarts - a.restarts || (a.name < b.name ? -1 : 1)).slice(0, 30)
    : group.children;
  return (
    <div className="tree-group" data-group={title}>
      <h3>
        {title} <span className="muted small">{strategy ?? ''} · {group.children.length} children · {restarts} restarts</span>
      </h3>
      <ul>
        {children.map((c) => (
          <Child key={c.name} child={c} now={now} />
        ))}
      </ul>
      {collapsed && <p className="muted small">The 30 with the most restarts of {group.children.length}.</p>}
    </div>
  );
}

function Child({ child, now }: { child: SupervisedChild; now: number }) {
  return (
    <li className={`tree-child state-${child.state}`} data-child={child.name}>
      <span className={`dot state-${child.state}`} aria-hidden="true" />
      <strong>{child.name}</strong> <span className="muted small">{child.state}</span>
      <span className="restarts">{child.restarts} restarts</span>
      {child.last_failure !== null && (
        <span className="muted small last-failure" title={child.last_failure}>
          last failure {child.last_failure_at === null ? '' : formatRelativeTime(child.last_failure_at, now)}:{' '}
          {child.last_failure.length > 100 ? `${child.last_failure.slice(0, 100)}…` : child.last_failure}
        </span>
      )}
    </li>
  );
}
