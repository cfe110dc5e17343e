import { memo } from 'react';
import {
  MISSING,
  feelsLike,
  formatHumidity,
  formatPressure,
  formatRelativeTime,
  formatTemperature,
  formatWind,
} from '../lib/format';
import type { Station } from '../lib/types';

interface Props {
  stations: readonly Station[];
  selectedId: string | null;
  onSelect: (id: string) => void;
  now: number;
}

/** Rows older than this are dimmed. */
const STALE_MS = 5 * 60 * 1000;

export function StationTable({ stations, selectedId, onSelect, now }: Props) {
  return (
    <div className="table-wrap">
      <table className="stations">
        <caption className="visually-hidden">Stations and their latest readings, sorted by station id</caption>
        <thead>
          <tr>
            <th scope="col">Station</th>
            <th scope="col" className="num">Temperature</th>
            <th scope="col" className="num">Humidity</th>
            <th scope="col" className="num">Pressure</th>
            <th scope="col">Wind</th>
            <th scope="col" className="num">Dew point</th>
            <th scope="col" className="num">Feels like</th>
            <th scope="col">Last seen</th>
          </tr>
        </thead>
        <tbody>
          {stations.map((s) => (
            <StationRow
              key={s.station_id}
              station={s}
              selected={s.station_id === selectedId}
              onSelect={onSelect}
              now={now}
            />
          ))}
        </tbody>
      </table>
    </div>
  );
}

interface RowProps {
  station: Station;
  selected: boolean;
  onSelect: (id: string) => void;
  now: number;
}

const StationRow = memo(function StationRow({ station, selected, onSelect, now }: RowProps) {
  const r = station.latest;
  const feels = feelsLike(r);
  const lastSeenMs = station.last_seen === null ? Number.NaN : Date.parse(station.last_seen);
  const stale = station.status === 'silent' || (!Number.isNaN(lastSeenMs) && now - lastSeenMs > STALE_MS);
  const dir = r?.wind_direction_deg ?? null;
  const classes = [selected ? 'selected' : '', stale ? 'stale' : ''].filter(Boolean).join(' ');

  return (
    <tr className={classes || undefined} aria-current={selected ? 'true' : undefined} onClick={() => onSelect(station.station_id)}>
      <th scope="row" className="station-id">
        <button type="button" aria-pressed={selected} title={`Show ${station.station_id} on the chart`}>
          {station.station_id}
        </button>
        {station.name !== null && <span className="station-name muted small">{station.name}</span>}
        {station.status === 'silent' && <span className="badge silent" title="Not heard from for 10 minutes">silent</span>}
      </th>
      <td data-label="Temperature" className="num temp">{formatTemperature(r?.temperature_c)}</td>
      <td data-label="Humidity" className="num">{formatHumidity(r?.humidity_pct)}</td>
      <td data-label="Pressure" className="num">{formatPressure(r?.pressure_hpa)}</td>
      <td data-label="Wind" className="wind">
        <span>
          {dir !== null && (
            <span
              className="wind-arrow"
              aria-hidden="true"
              // Points the way the wind blows to; the bearing is where it comes from.
              style={{ transform: `rotate(${dir + 180}deg)` }}
            >
              ↑
            </span>
          )}
          {formatWind(r?.wind_speed_ms, dir)}
        </span>
      </td>
      <td data-label="Dew point" className="num">{formatTemperature(r?.dew_point_c)}</td>
      <td data-label="Feels like" className="num">
        {feels === null ? (
          MISSING
        ) : (
          <span>
            {formatTemperature(feels.celsius)} <span className="muted small">{feels.kind}</span>
          </span>
        )}
      </td>
      <td data-label="Last seen">
        {station.last_seen === null ? (
          'never'
        ) : (
          <time dateTime={station.last_seen} title={new Date(station.last_seen).toLocaleString()}>
            {formatRelativeTime(station.last_seen, now)}
          </time>
        )}
      </td>
    </tr>
  );
});
