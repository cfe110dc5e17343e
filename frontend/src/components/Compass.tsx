import { compassPoint } from '../lib/format';

interface Props {
  /** Where the wind comes from, degrees; null when unknown. */
  degrees: number | null;
  size?: number;
}

/** A compass rose with an arrow pointing the way the wind blows. */
export function Compass({ degrees, size = 96 }: Props) {
  const label = degrees === null ? 'Wind direction unknown' : `Wind from ${compassPoint(degrees)} (${Math.round(degrees)}°)`;
  return (
    <svg className="compass" width={size} height={size} viewBox="-50 -50 100 100" role="img" aria-label={label}>
      <circle r={46} className="compass-ring" />
      {['N', 'E', 'S', 'W'].map((p, i) => (
        <text key={p} className="compass-label" x={Math.sin((i * Math.PI) / 2) * 36} y={-Math.cos((i * Math.PI) / 2) * 36 + 4}>
          {p}
        </text>
      ))}
      {degrees !== null && (
        <g transform={`rotate(${degrees + 180})`}>
          <path className="compass-arrow" d="M0,-30 L8,10 L0,4 L-8,10 Z" />
        </g>
      )}
    </svg>
  );
}
