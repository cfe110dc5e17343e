import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import { StationMap } from '../components/StationMap';
import { PrefsContext } from '../hooks';
import { alert, reading, station } from '../lib/fixtures';
import { emptyState, type StationsState } from '../lib/stations';
import { AlertsView } from './AlertsView';
import { Overview, TABLE_ROWS, filterStations } from './Overview';

const now = Date.parse('2025-01-13T10:05:00Z');

function stateOf(stations: ReturnType<typeof station>[], alerts = [alert()]): StationsState {
  return {
    ...emptyState,
    hasSnapshot: true,
    stations: new Map(stations.map((s) => [s.station_id, s])),
    alerts: new Map(alerts.map((a) => [`${a.rule}|${a.fired_at}`, a])),
  };
}

const stations = [
  station('WS001', reading({ temperature_c: 30 }), { status: 'reporting', name: 'Central Park' }),
  station('WS002', reading({ station_id: 'WS002', latitude: 51.5, longitude: -0.1, temperature_c: -5 }), { status: 'silent' }),
  station('WS003', null, { latitude: null, longitude: null }),
];

describe('StationMap', () => {
  it('draws a linked, labelled dot for every located station', () => {
    const html = renderToStaticMarkup(<StationMap stations={stations} colourBy="temperature" onColourBy={() => {}} />);
    const dots = [...html.matchAll(/<a href="#\/stations\/([^"]+)" aria-label="([^"]+)" data-station/g)];
    expect(dots.map((m) => m[1])).toEqual(['WS001', 'WS002']);
    expect(dots[0]?.[2]).toBe('WS001 Central Park: 30.0 °C');
    expect(dots[1]?.[2]).toBe('WS002: -5.0 °C, silent');
    expect(html).toContain('1 station has no position');
    expect(html).toContain('aria-label="Map of 2 stations, 1 silent"');
    expect(html).toContain('class="map-land"');
  });

  it('colours by status and speaks the chosen units', () => {
    const html = renderToStaticMarkup(
      <PrefsContext.Provider value={{ units: 'imperial', theme: 'light' }}>
        <StationMap stations={stations} colourBy="status" onColourBy={() => {}} />
      </PrefsContext.Provider>,
    );
    expect(html).toContain('map-dot status-reporting');
    expect(html).toContain('map-dot status-silent silent');
    expect(html).toContain('WS001 Central Park: 86.0 °F');
  });
});

describe('Overview', () => {
  it('shows the tiles, the map and the station list', () => {
    const html = renderToStaticMarkup(<Overview state={stateOf(stations)} rate={12.5} now={now} waiting={false} />);
    expect(html).toMatch(/data-testid="tile-stations"><span class="tile-label">Stations<\/span><span class="tile-value">3</);
    expect(html).toContain('<span class="tile-value">13</span>');
    expect(html).toMatch(/data-testid="tile-alerts"><span class="tile-label">Alerts firing<\/span><span class="tile-value">1</);
    expect(html).toContain('data-testid="station-map"');
    expect(html).toContain('3 total');
  });
});

describe('AlertsView', () => {
  it('lists firing alerts before resolved ones, linking stations', () => {
    const alerts = [
      alert({ rule: 'gusts', state: 'resolved', fired_at: '2025-01-13T10:01:00Z', resolved_at: '2025-01-13T10:02:00Z' }),
      alert({ rule: 'heat', fired_at: '2025-01-13T09:00:00Z' }),
      alert({ rule: 'processing_lag', scope: 'pipeline', station_id: null, fired_at: '2025-01-13T10:04:00Z' }),
    ];
    const html = renderToStaticMarkup(<AlertsView state={stateOf([], alerts)} now={now} loadError={null} />);
    const rules = [...html.matchAll(/data-rule="([^"]+)"/g)].map((m) => m[1]);
    expect(rules).toEqual(['processing_lag', 'heat', 'gusts']);
    expect(html).toContain('<a href="#/stations/WS001">WS001</a>');
    expect(html).toContain('pipeline');
    expect(html).toContain('Firing (2)');
    expect(html).toContain('1 min');
  });

  it('says so when nothing fires', () => {
    const html = renderToStaticMarkup(<AlertsView state={stateOf([], [])} now={now} loadError="503 down" />);
    expect(html).toContain('No alerts are firing.');
    expect(html).toContain('Could not load past alerts: 503 down');
  });
});

describe('the station list of a large network', () => {
  const many = Array.from({ length: 250 }, (_, i) =>
    station(`WS${String(i + 1).padStart(3, '0')}`, null, {
      name: i === 41 ? 'Harbour Pier' : null,
      latitude: (i % 160) - 80,
      longitude: i - 125,
    }),
  );

  it('lists the first rows and offers the rest', () => {
    const html = renderToStaticMarkup(<Overview state={stateOf(many, [])} rate={0} now={now} waiting={false} />);
    expect(html.match(/<tr data-station=/g)).toHaveLength(TABLE_ROWS);
    expect(html).toContain('Show all 250');
    // The map still shows every station.
    expect(html.match(/<a href="#\/stations\/[^"]+" aria-label/g)).toHaveLength(250);
  });

  it('finds stations by id or name, ignoring case', () => {
    expect(filterStations(many, 'S24').map((s) => s.station_id)).toEqual(Array.from({ length: 10 }, (_, i) => `WS24${i}`));
    expect(filterStations(many, '124').map((s) => s.station_id)).toEqual(['WS124']);
    expect(filterStations(many, ' harbour ').map((s) => s.station_id)).toEqual(['WS042']);
    expect(filterStations(many, '')).toBe(many);
  });
});
