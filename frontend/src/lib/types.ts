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

/** An item of `GET /api/v1/stations` and of the websocket snapshot. */
export interface Station {
  station_id: string;
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

/** Websocket messages the dashboard understands; anything else is ignored. */
export type ServerMessage = SnapshotMessage | ReadingMessage | OverflowMessage;
