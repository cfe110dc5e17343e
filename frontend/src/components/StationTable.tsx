import { memo } from 'react';
import { usePrefs } from '../hooks';
import {
  MISSING,
  feelsLike,
  formatHumidity,
  formatPressure,
  formatRelativeTime,
  formatTemperature,
  formatWind,
} from '../lib/format';
import { stationHref } from '../lib/route';
import type { Station } from '../lib/types';
import type { Units } from '../lib/units';

interface Props {
  stations: readonly Station[];
  now: number;
}

/** Rows older than this are dimmed. */
const STALE_MS = 5 * 60 * 1000;

export function StationTable({ stations, now }: Props) {
  const { units } = usePrefs();
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
            <StationRow key={s.station_id} station={s} now={now} units={units} />
          ))}
        </tbody>
      </table>
    </div>
  );
}

interface RowProps {
  station: Station;
  now: number;
  units: Units;
}

const StationRow = memo(function StationRow({ station, now, units }: RowProps) {
  const r = station.latest;
  const feels = feelsLike(r);
  const lastSeenMs = station.last_seen === null ? Number.NaN : Date.parse(station.last_seen);
  const stale = station.status === 'silent' || (!Number.isNaN(lastSeenMs) && now - lastSeenMs > STALE_MS);
  const dir = r?.wind_direction_deg ?? null;
  const qc = r?.qc?.status ?? 'pass';

  return (
    <tr className={stale ? 'stale' : undefined} data-station={station.station_id}>
      <th scope="row" className="station-id">
        <a href={stationHref(station.station_id)}>{station.station_id}</a>
        {station.name !== null && <span className="station-name muted small">{station.name}</span>}
        {station.status === 'silent' && <span className="badge silent" title="Not heard from for 10 minutes">silent</span>}
        {qc !== 'pass' && <span className={`badge qc-${qc}`} title={`Latest reading: QC ${qc}`}>{qc}</span>}
      </th>
      <td data-label="Temperature" className="num temp">{formatTemperature(r?.temperature_c, units)}</td>
      <td data-label="Humidity" className="num">{formatHumidity(r?.humidity_pct)}</td>
      <td data-label="Pressure" className="num">{formatPressure(r?.pressure_hpa, units)}</td>
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
          {formatWind(r?.wind_speed_ms, dir, units)}
        </span>
      </td>
      <td data-label="Dew point" className="num">{formatTemperature(r?.dew_point_c, units)}</td>
      <td data-label="Feels like" className="num">
        {feels === null ? (
          MISSING
        ) : (
          <span>
            {formatTemperature(feels.celsius, units)} <span className="muted small">{feels.kind}</span>
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
