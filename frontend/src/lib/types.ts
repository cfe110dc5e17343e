/** Quality-control flag of a variable, or a reading's worst one. */
export type QcFlag = 'pass' | 'suspect' | 'fail';

export interface QcFinding {
  check: string;
  flag: QcFlag;
  detail: string;
}

/** The `qc` object of a reading (docs/qc.md). */
export interface Qc {
  status: QcFlag;
  /** The variables that did not pass, with their findings. */
  variables: Readonly<Record<string, { flag: QcFlag; findings: readonly QcFinding[] }>>;
  /** Why the reading counts as late, if it does. */
  late: string | null;
}

/** One stored observation, as served by the daemon. Missing measurements are null. */
export interface Reading {
  station_id: string;
  /** RFC 3339 time the station took the measurement. */
  observed_at: string;
  /** RFC 3339 time the daemon received it (server clock). */
  received_at: string | null;
  latitude: number | null;
  longitude: number | null;
  elevation_m: number | null;
  temperature_c: number | null;
  humidity_pct: number | null;
  pressure_hpa: number | null;
  sea_level_pressure_hpa: number | null;
  wind_speed_ms: number | null;
  wind_gust_ms: number | null;
  wind_direction_deg: number | null;
  dew_point_c: number | null;
  heat_index_c: number | null;
  wind_chill_c: number | null;
  feels_like_c: number | null;
  qc: Qc | null;
}

/** The numeric measurements of a reading, by field name. */
export type ReadingVariable =
  | 'temperature_c'
  | 'humidity_pct'
  | 'pressure_hpa'
  | 'sea_level_pressure_hpa'
  | 'wind_speed_ms'
  | 'wind_gust_ms'
  | 'wind_direction_deg'
  | 'dew_point_c'
  | 'heat_index_c'
  | 'wind_chill_c'
  | 'feels_like_c';

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
  elevation_m: number | null;
  first_seen: string | null;
  last_seen: string | null;
  latest: Reading | null;
}

/** `count`, `min`, `max`, `mean` and `last` of one variable over a period. */
export interface RollupStats {
  count: number;
  min: number;
  max: number;
  mean: number;
  last: number;
}

export type Resolution = '1m' | '1h';

/** One period of `GET …/rollups` and of the `rollup` message. */
export interface Rollup {
  /** RFC 3339 start of the period. */
  bucket: string;
  variables: Readonly<Record<string, RollupStats>>;
}

export type AlertState = 'firing' | 'resolved';

/** An item of `GET /api/v1/alerts` and of the `alert` message. */
export interface Alert {
  /** Null until the store has recorded it. */
  id: number | null;
  rule: string;
  scope: 'station' | 'pipeline';
  station_id: string | null;
  state: AlertState;
  value: number | null;
  message: string;
  fired_at: string;
  resolved_at: string | null;
}

/** A supervised actor being restarted. */
export interface SupervisionEvent {
  group: string;
  child: string;
  reason: string;
  attempt: number;
  delay_ms: number;
  with: readonly string[];
  at: string;
}

export interface SnapshotMessage {
  type: 'snapshot';
  stations: Station[];
  /** False when the server sent only the stations heard from last. */
  complete: boolean;
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

export interface RollupMessage {
  type: 'rollup';
  station_id: string;
  resolution: Resolution;
  rollup: Rollup;
}

export interface AlertMessage {
  type: 'alert';
  alert: Alert;
}

export interface SupervisionMessage {
  type: 'supervision';
  event: SupervisionEvent;
}

/** Websocket messages the dashboard understands; anything else is ignored. */
export type ServerMessage =
  | SnapshotMessage
  | ReadingMessage
  | OverflowMessage
  | StationStatusMessage
  | RollupMessage
  | AlertMessage
  | SupervisionMessage;

/** One supervised child in `GET /api/v1/supervision`. */
export interface SupervisedChild {
  /** The actor's name, or the station id in the station group. */
  name: string;
  state: string;
  restarts: number;
  last_failure: string | null;
  last_failure_at: string | null;
}

export interface SupervisionGroup {
  policy: Readonly<Record<string, unknown>> | null;
  children: readonly SupervisedChild[];
}

export interface SupervisionTree {
  root: SupervisionGroup;
  pipeline: SupervisionGroup;
  stations: SupervisionGroup;
  /** For a member of a cluster: the instances and their partitions; null for a single instance. */
  cluster?: ClusterState | null;
}

/** A live member of a cluster, as it last said. */
export interface ClusterMember {
  instance: string;
  web: string | null;
  partitions: number[];
  /** The station actors it runs, as of its last heartbeat. */
  stations: number;
  leader: boolean;
  started_at: string;
  seen_at: string;
}

/** The cluster as the instance answering sees it. */
export interface ClusterState {
  instance: string;
  topic: string;
  partitions: number;
  owned: number[];
  leader: boolean;
  rebalances: number;
  members: ClusterMember[];
}

/** One check's count in a station's QC report. */
export interface QcCheckCount {
  variable: string;
  check: string;
  flag: QcFlag;
  count: number;
  /** Share of the readings counted, 0 to 1. */
  rate: number;
}

/** `GET /api/v1/stations/{id}/qc`: how a station's readings fared in QC. */
export interface StationQcReport {
  from: string;
  to: string;
  readings: number;
  suspect: number;
  fail: number;
  late: number;
  truncated: boolean;
  checks: QcCheckCount[];
  /** What its QC has learned; null for a station without an actor. */
  learned: { cadence_s: number | null; resolution: Record<string, number> } | null;
}

/** An item of `GET /api/v1/quarantine`. */
export interface QuarantineItem {
  id: number;
  received_at: string;
  source: string;
  station_id: string | null;
  reason_code: string;
  reason: string;
  payload: string;
  payload_bytes: number;
  truncated: boolean;
}
