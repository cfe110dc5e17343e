/** One stored observation, as served by the daemon. Missing measurements are null. */
export interface Reading {
  station_id: string;
  /** RFC 3339 time the station took the measurement. */
  observed_at: string;
  /** RFC 3339 time the daemon received it (server clock). */
  received_at: string | null;
  latitude: number | null;
  longitude: number | null;
  temperature_c: number | null;
  humidity_pct: number | null;
  pressure_hpa: number | null;
  wind_speed_ms: number | null;
  wind_direction_deg: number | null;
  dew_point_c: number | null;
  heat_index_c: number | null;
  wind_chill_c: number | null;
}

/** Whether the daemon hears from a station (within the last 10 minutes). */
export type StationStatus = 'reporting' | 'silent';

/** An item of `GET /api/v1/stations` and of the websocket snapshot. */
export interface Station {
  station_id: string;
  /** The operator's name for it (`[stations.<id>]`), if any. */
  name: string | null;
  /** As the daemon last said; null until it has. */
  status: StationStatus | null;
  latitude: number | null;
  longitude: number | null;
  first_seen: string | null;
  last_seen: string | null;
  latest: Reading | null;
}

export interface SnapshotMessage {
  type: 'snapshot';
  stations: Station[];
}

export interface ReadingMessage {
  type: 'reading';
  reading: Reading;
}

export interface OverflowMessage {
  type: 'overflow';
  dropped: number;
}

/** A station started or stopped reporting. */
export interface StationStatusMessage {
  type: 'station_status';
  station_id: string;
  status: StationStatus;
  last_seen: string;
}

/** Websocket messages the dashboard understands; anything else is ignored. */
export type ServerMessage = SnapshotMessage | ReadingMessage | OverflowMessage | StationStatusMessage;
