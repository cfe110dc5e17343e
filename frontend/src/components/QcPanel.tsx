import { useEffect, useState } from 'react';
import { ApiError, fetchQcReport } from '../lib/api';
import { isReadingVariable, VARIABLES } from '../lib/units';
import type { StationQcReport } from '../lib/types';

/** How often the report is read again while the page is open. */
const REFRESH_MS = 60_000;

function label(variable: string): string {
  return isReadingVariable(variable) ? VARIABLES[variable].label : variable;
}

function percent(rate: number): string {
  const p = rate * 100;
  return `${p < 1 && p > 0 ? p.toFixed(2) : p.toFixed(1)} %`;
}

function cadence(seconds: number): string {
  if (seconds % 3600 === 0) return `every ${seconds / 3600} h`;
  if (seconds % 60 === 0) return `every ${seconds / 60} min`;
  return `every ${seconds} s`;
}

/** The report as markup: exported for tests. */
export function QcReportView({ report }: { report: StationQcReport }) {
  const resolutions = Object.entries(report.learned?.resolution ?? {});
  return (
    <>
      <p className="small" data-testid="qc-totals">
        {report.readings} readings · {report.suspect} suspect · {report.fail} failed · {report.late} late
        {report.truncated && ' (the first 100,000 of the window)'}
      </p>
      {report.checks.length === 0 ? (
        <p className="empty">No check flagged anything in this window.</p>
      ) : (
        <table className="table" aria-label="Flags by check">
          <thead>
            <tr>
              <th scope="col">Variable</th>
              <th scope="col">Check</th>
              <th scope="col">Flag</th>
              <th scope="col">Readings</th>
              <th scope="col">Rate</th>
            </tr>
          </thead>
          <tbody>
            {report.checks.map((c) => (
              <tr key={`${c.variable}-${c.check}-${c.flag}`} className={`qc-${c.flag}`}>
                <td>{label(c.variable)}</td>
                <td>{c.check}</td>
                <td>
                  <span className={`badge qc-${c.flag}`}>{c.flag}</span>
                </td>
                <td>{c.count}</td>
                <td>{percent(c.rate)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <p className="muted small" data-testid="qc-learned">
        {report.learned === null
          ? 'Cadence and resolution not learned yet (no reading since the daemon started).'
          : [
              report.learned.cadence_s === null ? 'cadence not known yet' : `reports ${cadence(report.learned.cadence_s)}`,
              ...resolutions.map(([v, r]) => `${label(v)} in steps of ${r}`),
            ].join(' · ')}
      </p>
    </>
  );
}

/**
 * A station's quality control over the day up to its newest reading: how
 * often each check flagged it, and the cadence and resolutions its checks
 * judge it by.
 */
export function QcPanel({ stationId }: { stationId: string }) {
  const [report, setReport] = useState<StationQcReport | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let ac: AbortController | null = null;
    const load = () => {
      ac?.abort();
      const current = new AbortController();
      ac = current;
      fetchQcReport(stationId, current.signal).then(
        (r) => {
          setReport(r);
          setError(null);
        },
        (err: unknown) => {
          if (current.signal.aborted) return;
          // A station that has not reported yet has no report: not an error.
          if (err instanceof ApiError && err.status === 404) setError(null);
          else setError(err instanceof Error ? err.message : String(err));
        },
      );
    };
    load();
    const timer = setInterval(load, REFRESH_MS);
    return () => {
      clearInterval(timer);
      ac?.abort();
    };
  }, [stationId]);

  return (
    <section className="panel" aria-labelledby="qc-heading">
      <div className="panel-head">
        <h2 id="qc-heading">Quality control</h2>
        <span className="muted small">
          {report !== null
            ? `${new Date(report.from).toLocaleString()} – ${new Date(report.to).toLocaleString()}`
            : 'the day up to its newest reading'}
        </span>
      </div>
      {error !== null && <p className="banner" role="alert">QC report unavailable ({error})</p>}
      {report === null ? error === null && <p className="empty">No readings yet.</p> : <QcReportView report={report} />}
    </section>
  );
}
