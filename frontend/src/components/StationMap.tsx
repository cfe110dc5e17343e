import { memo } from 'react';
import { usePrefs } from '../hooks';
import { formatTemperature } from '../lib/format';
import { LEGEND_STOPS, fitView, project, temperatureColour, worldPaths } from '../lib/geo';
import { stationHref } from '../lib/route';
import type { Station } from '../lib/types';

export type MapColouring = 'temperature' | 'status';

interface Props {
  stations: readonly Station[];
  colourBy: MapColouring;
  onColourBy: (c: MapColouring) => void;
}

function located(s: Station): s is Station & { latitude: number; longitude: number } {
  return s.latitude !== null && s.longitude !== null;
}

/**
 * Every located station on a world map (drawn from shipped outlines), each
 * a link to its page, coloured by its latest temperature or by whether it
 * reports. The view fits the stations.
 */
export function StationMap({ stations, colourBy, onColourBy }: Props) {
  const { units } = usePrefs();
  const paths = worldPaths();
  const placed = stations.filter(located);
  const unplaced = stations.length - placed.length;
  // One pass over the positions: cheaper than any key to memoise it by.
  const view = fitView(placed.map((s) => [s.latitude, s.longitude] as const));
  const r = Math.max(0.35, view.width / 180);
  const silent = placed.filter((s) => s.status === 'silent').length;

  return (
    <section className="panel map-panel" aria-labelledby="map-heading">
      <div className="panel-head">
        <h2 id="map-heading">Station map</h2>
        <div className="segmented" role="group" aria-label="Colour stations by">
          {(['temperature', 'status'] as const).map((c) => (
            <button key={c} type="button" aria-pressed={colourBy === c} onClick={() => onColourBy(c)}>
              {c === 'temperature' ? 'Temperature' : 'Status'}
            </button>
          ))}
        </div>
      </div>
      <svg
        className="map"
        viewBox={`${view.x} ${view.y} ${view.width} ${view.height}`}
        preserveAspectRatio="xMidYMid meet"
        role="group"
        aria-label={`Map of ${placed.length} stations${silent > 0 ? `, ${silent} silent` : ''}`}
        data-testid="station-map"
      >
        <rect className="map-sea" x={0} y={0} width={360} height={180} />
        <path className="map-land" d={paths.land} />
        <path className="map-borders" d={paths.borders} strokeWidth={view.width / 1200} />
        {placed.map((s) => (
          <StationDot key={s.station_id} station={s} r={r} colourBy={colourBy} units={units} />
        ))}
      </svg>
      <div className="map-foot">
        {colourBy === 'temperature' ? (
          <div className="legend" aria-label="Temperature colours">
            {LEGEND_STOPS.map((c) => (
              <span key={c} className="legend-item">
                <span className="swatch" style={{ background: temperatureColour(c) }} aria-hidden="true" />
                {formatTemperature(c, units).replace('.0', '')}
              </span>
            ))}
          </div>
        ) : (
          <div className="legend" aria-label="Status colours">
            <span className="legend-item">
              <span className="swatch status-reporting" aria-hidden="true" />
              reporting
            </span>
            <span className="legend-item">
              <span className="swatch status-silent" aria-hidden="true" />
              silent
            </span>
          </div>
        )}
        {unplaced > 0 && (
          <span className="muted small">
            {unplaced} {unplaced === 1 ? 'station has' : 'stations have'} no position
          </span>
        )}
      </div>
    </section>
  );
}

interface DotProps {
  station: Station & { latitude: number; longitude: number };
  r: number;
  colourBy: MapColouring;
  units: 'metric' | 'imperial';
}

const StationDot = memo(function StationDot({ station, r, colourBy, units }: DotProps) {
  const [x, y] = project(station.latitude, station.longitude);
  const t = station.latest?.temperature_c ?? null;
  const isSilent = station.status === 'silent';
  const label = `${station.station_id}${station.name !== null ? ` ${station.name}` : ''}: ${formatTemperature(t, units)}${
    isSilent ? ', silent' : ''
  }`;
  let className = 'map-dot';
  let fill: string | undefined;
  if (colourBy === 'status') className += isSilent ? ' status-silent' : ' status-reporting';
  else if (t === null) className += ' no-value';
  else fill = temperatureColour(t);
  if (isSilent) className += ' silent';
  return (
    <a href={stationHref(station.station_id)} aria-label={label} data-station={station.station_id}>
      <circle className={className} cx={x} cy={y} r={r} style={fill !== undefined ? { fill } : undefined}>
        <title>{label}</title>
      </circle>
    </a>
  );
});
