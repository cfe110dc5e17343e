import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import { reading, station } from '../lib/fixtures';
import { parseQcReport } from '../lib/protocol';
import { sortedStations } from '../lib/stations';
import { ClusterPanel, partitionRanges } from './ClusterPanel';
import { Header } from './Header';
import { QcReportView } from './QcPanel';
import { StationTable } from './StationTable';

const now = Date.parse('2025-01-13T10:00:03.200Z');

describe('StationTable', () => {
  const stations = sortedStations(
    new Map([
      ['WS002', station('WS002', reading({ station_id: 'WS002', wind_chill_c: -4.25, temperature_c: -1 }))],
      ['WS001', station('WS001', reading({ heat_index_c: 24.1 }))],
      ['WS003', station('WS003', null)],
    ]),
  );
  const html = renderToStaticMarkup(<StationTable stations={stations} now={now} />);

  it('has column headers and one row per station in id order', () => {
    expect(html.match(/<th scope="col"/g)).toHaveLength(8);
    const ids = [...html.matchAll(/<a href="#\/stations\/([^"]+)">/g)].map((m) => m[1]);
    expect(ids).toEqual(['WS001', 'WS002', 'WS003']);
  });

  it('shows formatted latest values and relative last-seen time', () => {
    expect(html).toContain('22.5 °C');
    expect(html).toContain('65 %');
    expect(html).toContain('1013.8 hPa');
    expect(html).toContain('12.3 m/s SW 225°');
    expect(html).toContain('15.8 °C');
    expect(html).toContain('24.1 °C <span class="muted small">heat index</span>');
    expect(html).toContain('-4.3 °C <span class="muted small">wind chill</span>');
    expect(html).toContain('3 s ago');
    expect(html).toContain('never');
  });

  it('links each station to its page', () => {
    expect(html).toContain('<a href="#/stations/WS002">WS002</a>');
  });
});

describe('StationTable names and status', () => {
  it('shows a station\'s name and marks it silent', () => {
    const html = renderToStaticMarkup(
      <StationTable
        stations={[station('WS001', reading(), { name: 'Central Park', status: 'silent' })]}
        now={now}
      />,
    );
    expect(html).toContain('<span class="station-name muted small">Central Park</span>');
    expect(html).toContain('class="badge silent"');
    expect(html).toMatch(/<tr class="stale"/);
  });
});

const headerProps = {
  route: { view: 'overview' } as const,
  prefs: { units: 'metric', theme: 'dark' } as const,
  onPrefs: () => {},
  firing: 0,
};

describe('Header', () => {
  it('shows the connection state', () => {
    const live = renderToStaticMarkup(<Header status={{ state: 'live', attempt: 0, retryAt: null }} dropped={0} now={0} {...headerProps} />);
    expect(live).toContain('conn-live');
    expect(live).toContain('>Live<');
    expect(live).not.toContain('skipped');
  });

  it('shows the retry countdown and the dropped-update counter', () => {
    const html = renderToStaticMarkup(
      <Header status={{ state: 'reconnecting', attempt: 3, retryAt: 10_000 }} dropped={1234} now={5_500} {...headerProps} />,
    );
    expect(html).toContain('Reconnecting');
    expect(html).toContain('in 5 s');
    expect(html).toContain('updates skipped');
  });
});

describe('QcReportView', () => {
  const report = parseQcReport({
    station_id: 'WS001',
    from: '2025-01-12T10:00:01Z',
    to: '2025-01-13T10:00:01Z',
    readings: 1440,
    suspect: 3,
    fail: 1,
    late: 0,
    truncated: false,
    checks: [
      { variable: 'temperature_c', check: 'outlier', flag: 'suspect', count: 2, rate: 2 / 1440 },
      { variable: 'humidity_pct', check: 'range', flag: 'fail', count: 1, rate: 1 / 1440 },
    ],
    learned: { cadence_s: 60, resolution: { temperature_c: 0.1, pressure_hpa: 1 } },
  });

  it('parses the report, and refuses what is not one', () => {
    expect(report?.checks.map((c) => [c.variable, c.check, c.flag, c.count])).toEqual([
      ['temperature_c', 'outlier', 'suspect', 2],
      ['humidity_pct', 'range', 'fail', 1],
    ]);
    expect(parseQcReport({ readings: 1 })).toBeNull();
    expect(parseQcReport('nope')).toBeNull();
  });

  it('shows totals, each check with its rate, and what was learned', () => {
    if (report === null) throw new Error('no report');
    const html = renderToStaticMarkup(<QcReportView report={report} />);
    expect(html).toContain('1440 readings · 3 suspect · 1 failed · 0 late');
    expect(html).toContain('<td>Temperature</td><td>outlier</td>');
    expect(html).toContain('<td>2</td><td>0.14 %</td>');
    expect(html).toContain('<td>Humidity</td><td>range</td>');
    expect(html).toContain('reports every 1 min · Temperature in steps of 0.1 · Pressure in steps of 1');
  });

  it('says when nothing was flagged or learned', () => {
    const quiet = { ...report!, checks: [], learned: null };
    const html = renderToStaticMarkup(<QcReportView report={quiet} />);
    expect(html).toContain('No check flagged anything in this window.');
    expect(html).toContain('not learned yet');
  });
});

describe('KeyPrompt', () => {
  it('asks for a read key, and says when the one given was refused', async () => {
    const { KeyPrompt } = await import('./KeyPrompt');
    const first = renderToStaticMarkup(<KeyPrompt refused={false} onSave={() => {}} />);
    expect(first).toContain('need a key that may read');
    expect(first).toContain('type="password"');
    expect(first).toMatch(/<label>Read key/);
    const again = renderToStaticMarkup(<KeyPrompt refused={true} onSave={() => {}} />);
    expect(again).toContain('was refused');
  });
});

describe('ClusterPanel', () => {
  const cluster = {
    instance: 'w1',
    topic: 'isobar.readings',
    partitions: 12,
    owned: [0, 2, 4, 6, 8, 10],
    leader: true,
    rebalances: 8,
    members: [
      { instance: 'w1', web: '10.0.0.1:8080', partitions: [0, 2, 4, 6, 8, 10], stations: 1520, leader: true, started_at: '2025-01-13T09:00:00Z', seen_at: '2025-01-13T10:00:02Z' },
      { instance: 'w2', web: null, partitions: [1, 3, 5, 7], stations: 0, leader: false, started_at: '2025-01-13T09:00:00Z', seen_at: '2025-01-13T10:00:01Z' },
    ],
  };
  const html = renderToStaticMarkup(<ClusterPanel cluster={cluster} now={now} />);

  it('lists each member with its partitions as ranges and marks the leader', () => {
    expect(html).toContain('w1<span class="muted small"> (this one)</span><span class="badge ok">leader</span>');
    expect(html).toContain('0, 2, 4, 6, 8, 10 <span class="muted small">(6)</span>');
    expect(html).toContain('1, 3, 5, 7 <span class="muted small">(4)</span>');
    expect(html).toContain('2 s ago');
  });

  it('shows how many station actors each member runs', () => {
    expect(html).toContain('<td class="num">1,520</td>');
    expect(html).toContain('<td class="num">0</td>');
  });

  it('names the partitions no member reads', () => {
    expect(html).toContain('Not read by any instance: 9, 11');
  });

  it('writes runs of partitions as ranges', () => {
    expect(partitionRanges([3, 0, 1, 2, 6, 8, 9])).toBe('0–3, 6, 8–9');
    expect(partitionRanges([])).toBe('none');
  });
});
