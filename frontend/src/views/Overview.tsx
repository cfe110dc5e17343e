import { useMemo, useState } from 'react';
import { StationMap, type MapColouring } from '../components/StationMap';
import { StationTable } from '../components/StationTable';
import { usePrefs } from '../hooks';
import { formatTemperature } from '../lib/format';
import { networkTiles } from '../lib/overview';
import { sortedStations, type StationsState } from '../lib/stations';
import type { Station } from '../lib/types';

interface Props {
  state: StationsState;
  rate: number;
  now: number;
  waiting: boolean;
}

/** The map of the network and its live tiles, above the station list. */
export function Overview({ state, rate, now, waiting }: Props) {
  const { units } = usePrefs();
  const [colourBy, setColourBy] = useState<MapColouring>('temperature');
  const [filter, setFilter] = useState('');
  const [showAll, setShowAll] = useState(false);
  const stations = useMemo(() => sortedStations(state.stations), [state.stations]);
  const matching = useMemo(() => filterStations(stations, filter), [stations, filter]);
  const shown = showAll ? matching : matching.slice(0, TABLE_ROWS);
  const tiles = useMemo(() => networkTiles(state.stations.values(), state.alerts.values()), [state.stations, state.alerts]);

  return (
    <div className="page">
      <section className="tiles" aria-label="The network now">
        <Tile label="Stations" value={tiles.stations.toLocaleString()} testId="tile-stations" />
        <Tile
          label="Reporting"
          value={tiles.reporting.toLocaleString()}
          detail={tiles.silent > 0 ? `${tiles.silent} silent` : 'none silent'}
          tone={tiles.silent > 0 ? 'warn' : 'ok'}
        />
        <Tile label="Readings / s" value={rate.toFixed(rate < 10 ? 1 : 0)} detail="live, last 10 s" testId="tile-rate" />
        <Tile
          label="Alerts firing"
          value={tiles.firing.toLocaleString()}
          tone={tiles.firing > 0 ? 'bad' : 'ok'}
          href="#/alerts"
          testId="tile-alerts"
        />
        <Tile
          label="Temperature"
          value={tiles.temperature === null ? '—' : formatTemperature(tiles.temperature.mean, units)}
          detail={
            tiles.temperature === null
              ? 'no readings'
              : `mean · ${formatTemperature(tiles.temperature.min, units)} to ${formatTemperature(tiles.temperature.max, units)}`
          }
        />
        <Tile
          label="Latest QC"
          value={`${tiles.qc.pass.toLocaleString()} pass`}
          detail={`${tiles.qc.suspect} suspect · ${tiles.qc.fail} fail`}
          tone={tiles.qc.fail > 0 ? 'bad' : tiles.qc.suspect > 0 ? 'warn' : 'ok'}
        />
      </section>
      <StationMap stations={stations} colourBy={colourBy} onColourBy={setColourBy} />
      <section className="panel" aria-labelledby="stations-heading">
        <div className="panel-head">
          <h2 id="stations-heading">Stations</h2>
          <input
            type="search"
            className="filter"
            placeholder="Find a station"
            aria-label="Find a station by id or name"
            value={filter}
            onChange={(e) => setFilter(e.target.value)}
          />
          <span className="muted">
            {waiting
              ? 'Loading…'
              : filter === ''
                ? `${stations.length} total`
                : `${matching.length} of ${stations.length}`}
          </span>
        </div>
        {stations.length === 0 ? (
          <p className="empty">{waiting ? 'Loading stations…' : 'No stations have reported yet.'}</p>
        ) : matching.length === 0 ? (
          <p className="empty">No station matches “{filter}”.</p>
        ) : (
          <>
            <StationTable stations={shown} now={now} />
            {matching.length > TABLE_ROWS && (
              <button type="button" className="more" onClick={() => setShowAll(!showAll)}>
                {showAll ? `Show the first ${TABLE_ROWS}` : `Show all ${matching.length.toLocaleString()}`}
              </button>
            )}
          </>
        )}
      </section>
    </div>
  );
}

/**
 * Rows listed before "Show all": a network of a thousand stations keeps
 * the page light, and the filter finds any of them.
 */
export const TABLE_ROWS = 100;

/** Stations whose id or name contains `text` (case-insensitive). */
export function filterStations(stations: readonly Station[], text: string): readonly Station[] {
  const q = text.trim().toLowerCase();
  if (q === '') return stations;
  return stations.filter((s) => s.station_id.toLowerCase().includes(q) || (s.name?.toLowerCase().includes(q) ?? false));
}

interface TileProps {
  label: string;
  value: string;
  detail?: string;
  tone?: 'ok' | 'warn' | 'bad';
  href?: string;
  testId?: string;
}

function Tile({ label, value, detail, tone, href, testId }: TileProps) {
  const body = (
    <>
      <span className="tile-label">{label}</span>
      <span className="tile-value">{value}</span>
      {detail !== undefined && <span className="tile-detail muted small">{detail}</span>}
    </>
  );
  const className = `tile${tone !== undefined ? ` tone-${tone}` : ''}`;
  return href !== undefined ? (
    <a className={className} href={href} data-testid={testId}>
      {body}
    </a>
  ) : (
    <div className={className} data-testid={testId}>
      {body}
    </div>
  );
}
