import { formatRelativeTime } from '../lib/format';
import type { ClusterState } from '../lib/types';

/** Partitions as ranges: 0–3, 6, 8–9. */
export function partitionRanges(partitions: number[]): string {
  const sorted = [...partitions].sort((a, b) => a - b);
  const runs: [number, number][] = [];
  for (const p of sorted) {
    const last = runs[runs.length - 1];
    if (last !== undefined && p === last[1] + 1) last[1] = p;
    else runs.push([p, p]);
  }
  return runs.length === 0 ? 'none' : runs.map(([a, b]) => (a === b ? `${a}` : `${a}–${b}`)).join(', ');
}

/** The instances of a cluster, the partitions and stations each has, and which one leads. */
export function ClusterPanel({ cluster, now }: { cluster: ClusterState; now: number }) {
  const owned = new Set(cluster.members.flatMap((m) => m.partitions));
  const orphans = Array.from({ length: cluster.partitions }, (_, p) => p).filter((p) => !owned.has(p));
  return (
    <section className="panel" aria-labelledby="cluster-heading">
      <div className="panel-head">
        <h2 id="cluster-heading">Cluster</h2>
        <span className="muted small">
          topic {cluster.topic}, {cluster.partitions} partitions; this is {cluster.instance}
        </span>
      </div>
      <table className="table" data-testid="cluster-members">
        <thead>
          <tr>
            <th scope="col">Instance</th>
            <th scope="col">Partitions</th>
            <th scope="col" className="num">Stations</th>
            <th scope="col">API</th>
            <th scope="col">Heartbeat</th>
          </tr>
        </thead>
        <tbody>
          {cluster.members.map((m) => (
            <tr key={m.instance}>
              <td>
                {m.instance}
                {m.instance === cluster.instance && <span className="muted small"> (this one)</span>}
                {m.leader && <span className="badge ok">leader</span>}
              </td>
              <td>
                {partitionRanges(m.partitions)} <span className="muted small">({m.partitions.length})</span>
              </td>
              <td className="num">{m.stations.toLocaleString('en-US')}</td>
              <td className="muted">{m.web ?? '—'}</td>
              <td>{formatRelativeTime(m.seen_at, now)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {orphans.length > 0 && (
        <p className="badge silent" data-testid="cluster-orphans">
          Not read by any instance: {partitionRanges(orphans)}
        </p>
      )}
      <p className="muted small">{cluster.rebalances} partition moves by this instance since it started.</p>
    </section>
  );
}
