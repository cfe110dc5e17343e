import type { Alert, Reading, ServerMessage, Station, SupervisionEvent } from './types';

/** Supervision events kept, newest first. */
export const MAX_EVENTS = 100;
/** Alerts kept (the firing ones are always kept). */
export const MAX_ALERTS = 500;

/** What the dashboard knows about the network. Treated as immutable once published. */
export interface StationsState {
  readonly stations: ReadonlyMap<string, Station>;
  /** Total messages the server reported dropping for this client. */
  readonly dropped: number;
  /** True once a websocket snapshot has been applied. */
  readonly hasSnapshot: boolean;
  /** Alerts by `alertKey`, from REST and the live stream. */
  readonly alerts: ReadonlyMap<string, Alert>;
  /** Restarts seen on the live stream, newest first. */
  readonly events: readonly SupervisionEvent[];
}

/** A working copy that messages are applied to in place. */
export interface StationsDraft {
  stations: Map<string, Station>;
  dropped: number;
  hasSnapshot: boolean;
  alerts: Map<string, Alert>;
  events: SupervisionEvent[];
}

export const emptyState: StationsState = {
  stations: new Map(),
  dropped: 0,
  hasSnapshot: false,
  alerts: new Map(),
  events: [],
};

export function draftOf(state: StationsState): StationsDraft {
  return {
    stations: new Map(state.stations),
    dropped: state.dropped,
    hasSnapshot: state.hasSnapshot,
    alerts: state.alerts as Map<string, Alert>,
    events: state.events as SupervisionEvent[],
  };
}

/**
 * Identifies an alert across its firing and its resolution, and across the
 * store recording it (an alert the store could not record yet comes with a
 * null id): at most one alert per rule and station fires at a time, and its
 * resolution keeps its `fired_at`.
 */
export function alertKey(a: Alert): string {
  return `${a.rule}\u0000${a.station_id ?? ''}\u0000${a.fired_at}`;
}

/** Records an alert in `alerts` (a copy the caller owns), keeping at most MAX_ALERTS. */
function putAlert(alerts: Map<string, Alert>, a: Alert): void {
  const key = alertKey(a);
  const known = alerts.get(key);
  // A resolution is final: a late copy of the firing does not undo it.
  if (known !== undefined && known.state === 'resolved' && a.state === 'firing') return;
  alerts.set(key, known !== undefined && a.id === null ? { ...a, id: known.id } : a);
  if (alerts.size > MAX_ALERTS) {
    for (const [k, v] of alerts) {
      if (alerts.size <= MAX_ALERTS) break;
      if (v.state === 'resolved') alerts.delete(k);
    }
  }
}

/** Adds alerts from `GET /api/v1/alerts`; what the live stream said wins. */
export function applyAlertList(state: StationsState, list: readonly Alert[]): StationsState {
  if (list.length === 0) return state;
  const alerts = new Map(state.alerts);
  for (const a of list) {
    if (!alerts.has(alertKey(a))) putAlert(alerts, a);
  }
  return { ...state, alerts };
}

/** Alerts newest first (by the time they fired, then resolved). */
export function sortedAlerts(alerts: ReadonlyMap<string, Alert>): Alert[] {
  return [...alerts.values()].sort(
    (a, b) => time(b.resolved_at ?? b.fired_at) - time(a.resolved_at ?? a.fired_at) || time(b.fired_at) - time(a.fired_at),
  );
}

function time(iso: string | null | undefined): number {
  if (iso == null) return Number.NEGATIVE_INFINITY;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? Number.NEGATIVE_INFINITY : t;
}

function laterOf(a: string | null, b: string | null): string | null {
  if (a === null) return b;
  if (b === null) return a;
  return time(b) > time(a) ? b : a;
}

function stationsFromList(list: readonly Station[]): Map<string, Station> {
  const map = new Map<string, Station>();
  for (const s of list) map.set(s.station_id, s);
  return map;
}

/**
 * Returns the station updated with a reading. The reading becomes `latest`
 * only if it is not older than the current one (readings may arrive out of
 * order); `last_seen` always moves forward.
 */
export function stationWithReading(existing: Station | undefined, r: Reading): Station {
  // As the API: the newest observation time.
  const seen = r.observed_at;
  if (existing === undefined) {
    return {
      station_id: r.station_id,
      name: null,
      status: null,
      latitude: r.latitude,
      longitude: r.longitude,
      elevation_m: r.elevation_m,
      first_seen: seen,
      last_seen: seen,
      latest: r,
    };
  }
  const newer = existing.latest === null || time(r.observed_at) >= time(existing.latest.observed_at);
  return {
    ...existing,
    latitude: newer && r.latitude !== null ? r.latitude : existing.latitude,
    longitude: newer && r.longitude !== null ? r.longitude : existing.longitude,
    elevation_m: newer && r.elevation_m !== null ? r.elevation_m : existing.elevation_m,
    first_seen: existing.first_seen ?? seen,
    last_seen: laterOf(existing.last_seen, seen),
    latest: newer ? r : existing.latest,
  };
}

/** Applies one websocket message to a draft in place. */
export function applyMessage(draft: StationsDraft, msg: ServerMessage): void {
  switch (msg.type) {
    case 'snapshot':
      if (msg.complete) {
        // The server's full view: it replaces ours (it also resynchronises
        // after a reconnect).
        draft.stations = stationsFromList(msg.stations);
        draft.hasSnapshot = true;
      } else {
        // The stations heard from last, of a larger network: fresher than
        // ours for those; the others come from the paged station list.
        const stations = new Map(draft.stations);
        for (const [id, s] of stationsFromList(msg.stations)) stations.set(id, s);
        draft.stations = stations;
      }
      break;
    case 'reading': {
      const r = msg.reading;
      draft.stations.set(r.station_id, stationWithReading(draft.stations.get(r.station_id), r));
      break;
    }
    case 'overflow':
      draft.dropped += msg.dropped;
      break;
    case 'station_status': {
      // A station not known yet arrives with its reading.
      const known = draft.stations.get(msg.station_id);
      if (known !== undefined) draft.stations.set(msg.station_id, { ...known, status: msg.status });
      break;
    }
    case 'alert': {
      // The draft shares the published map: alerts are rare, so copy.
      const alerts = new Map(draft.alerts);
      putAlert(alerts, msg.alert);
      draft.alerts = alerts;
      break;
    }
    case 'supervision':
      draft.events = [msg.event, ...draft.events].slice(0, MAX_EVENTS);
      break;
    case 'rollup':
      // Rollups are for the charts showing them (StationStore.onRollup).
      break;
  }
}

/** Pure batch form: returns a new state and leaves `state` untouched. */
export function applyMessages(state: StationsState, msgs: readonly ServerMessage[]): StationsState {
  if (msgs.length === 0) return state;
  const draft = draftOf(state);
  for (const m of msgs) applyMessage(draft, m);
  return draft;
}

/**
 * Applies the REST station list. It is only a first paint: once the
 * websocket snapshot has arrived it is fresher, so the list is ignored.
 */
export function applyStationList(state: StationsState, list: readonly Station[]): StationsState {
  if (state.hasSnapshot) return state;
  const stations = stationsFromList(list);
  // Keep anything live readings told us in the meantime.
  for (const [id, s] of state.stations) {
    const fromList = stations.get(id);
    if (fromList === undefined) {
      stations.set(id, s);
    } else if (s.latest !== null) {
      stations.set(id, stationWithReading(fromList, s.latest));
    }
  }
  return { ...state, stations };
}

export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Stations ordered by id (plain code-unit order, stable across locales). */
export function sortedStations(stations: ReadonlyMap<string, Station>): Station[] {
  return [...stations.values()].sort((a, b) => compareIds(a.station_id, b.station_id));
}
