//! The websocket hub: fans each stored reading, each changed rollup, each
//! alert, restart and change of a station's status out to the connected
//! live clients. Each message is serialised once. Every client has a
//! bounded queue; a client that falls behind loses the newest messages
//! (counted, logged, and announced to it with an `overflow` message) and
//! never slows ingestion. Rollups go to a lane of their own beside the
//! queue, holding the newest rollup of each period and sent when the queue
//! is empty: a roll-up of thousands of periods every few seconds never
//! crowds out a reading. A rollup is serialised by the first client task
//! that sends it, not by the hub, so the hub is never busy with a roll-up
//! while readings wait behind it.
//!
//! The hub also knows when each station was last heard, seeded from the
//! store at start, and announces a station becoming `reporting` or
//! `silent` (see [`crate::storage::StationStatus`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;
use tokio::sync::mpsc;

use chrono::{DateTime, Utc};

use crate::domain::{Reading, StationId};
use crate::storage::StationStatus;

/// The version of the live protocol, in the snapshot and in the
/// websocket subprotocol `isobar.v1`. Adding message types or fields keeps
/// it; changing or removing one makes a new version.
pub const PROTOCOL_VERSION: u32 = 1;

pub enum HubMsg {
    Subscribe(LiveClient),
    /// Newly stored readings, with the traces of the messages they came in.
    Publish(Arc<[Reading]>, Vec<tracing::Span>),
    /// Rollup periods that changed.
    Rollups(Vec<StationRollup>),
    /// Time to look for stations gone silent.
    CheckStatus,
    /// A supervised actor is being restarted.
    Restart(RestartEvent),
    /// An alert fired or resolved.
    Alert(crate::storage::AlertRecord),
    ClientCount(RpcReplyPort<usize>),
}

/// One connected websocket client, as the hub sees it.
pub struct LiveClient {
    pub id: u64,
    /// Only these stations, or all when `None`.
    pub stations: Option<HashSet<StationId>>,
    pub queue: mpsc::Sender<Arc<str>>,
    /// Messages dropped since the client last caught up.
    pub dropped: Arc<AtomicU64>,
    /// Rollup messages waiting to be sent, the newest of each period.
    pub rollups: Arc<RollupLane>,
}

impl LiveClient {
    /// Whether the client asked for this station's messages.
    fn follows(&self, station: &StationId) -> bool {
        self.stations.as_ref().is_none_or(|s| s.contains(station))
    }
}

/// A period of a station's rollups: what a newer `rollup` message replaces.
type PeriodKey = (StationId, crate::domain::Resolution, DateTime<Utc>);

/// A rollup waiting in the lanes of the clients that follow its station,
/// serialised once, by the first client task that sends it.
#[derive(Debug)]
struct PendingRollup {
    rollup: StationRollup,
    json: std::sync::OnceLock<Arc<str>>,
}

impl PendingRollup {
    fn json(&self) -> Arc<str> {
        self.json
            .get_or_init(|| {
                LiveMessage::Rollup {
                    rollup: &self.rollup,
                }
                .to_json()
            })
            .clone()
    }
}

/// A client's rollups waiting to be sent, at most one per period (a newer
/// one replaces it), and at most `capacity` periods.
#[derive(Debug)]
pub struct RollupLane {
    pending: Mutex<BTreeMap<PeriodKey, Arc<PendingRollup>>>,
    capacity: usize,
    /// Signalled when a message is added.
    pub ready: tokio::sync::Notify,
}

impl RollupLane {
    pub fn new(capacity: usize) -> Self {
        Self {
            pending: Mutex::new(BTreeMap::new()),
            capacity: capacity.max(1),
            ready: tokio::sync::Notify::new(),
        }
    }

    /// Adds a period's rollup, replacing an older one of the same period.
    /// False when the lane is full and the period is not in it.
    fn offer(&self, key: PeriodKey, rollup: Arc<PendingRollup>) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.len() >= self.capacity && !pending.contains_key(&key) {
            return false;
        }
        pending.insert(key, rollup);
        drop(pending);
        self.ready.notify_one();
        true
    }

    /// Takes up to `max` messages, oldest period first; `more` says whether
    /// any are left. Each is serialised here, outside the lane's lock, the
    /// first time any client takes it.
    pub fn take(&self, max: usize) -> (Vec<Arc<str>>, bool) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let mut taken = Vec::with_capacity(max.min(pending.len()));
        while taken.len() < max {
            let Some((_, rollup)) = pending.pop_first() else {
                break;
            };
            taken.push(rollup);
        }
        let more = !pending.is_empty();
        drop(pending);
        (taken.iter().map(|r| r.json()).collect(), more)
    }
}

/// A restart, as live clients see it.
#[derive(Debug, Clone, Serialize)]
pub struct RestartEvent {
    /// `pipeline` or `stations`.
    pub group: &'static str,
    /// The actor: a pipeline child's name, or a station id.
    pub child: String,
    pub reason: String,
    /// Restarts of this child within its policy's window, this one included.
    pub attempt: u32,
    pub delay_ms: u64,
    /// Siblings restarted along with it (its strategy's doing).
    pub with: Vec<&'static str>,
    pub at: chrono::DateTime<chrono::Utc>,
}

impl RestartEvent {
    /// Tells the hub, if it is running.
    pub fn announce(self, hub: &crate::actors::pipeline::Address<HubMsg>) {
        hub.notify(HubMsg::Restart(self));
    }
}

/// One station's rollup of one period, as live clients see it.
#[derive(Debug, Clone, Serialize)]
pub struct StationRollup {
    pub station_id: StationId,
    pub resolution: crate::domain::Resolution,
    pub rollup: crate::domain::Rollup,
}

/// A station's status changed.
#[derive(Debug, Clone, Serialize)]
pub struct StatusChange {
    pub station_id: StationId,
    pub status: crate::storage::StationStatus,
    pub last_seen: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

/// Messages the server sends on `/api/v1/live`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveMessage<'a> {
    /// The stations heard from last, at most `web.snapshot_max`;
    /// `complete` when that is all of them (`total`).
    Snapshot {
        protocol: u32,
        complete: bool,
        total: usize,
        stations: &'a [crate::storage::StationView],
    },
    Reading {
        reading: &'a Reading,
    },
    Overflow {
        dropped: u64,
    },
    Supervision {
        event: &'a RestartEvent,
    },
    Alert {
        alert: &'a crate::storage::AlertRecord,
    },
    Rollup {
        #[serde(flatten)]
        rollup: &'a StationRollup,
    },
    StationStatus {
        #[serde(flatten)]
        change: &'a StatusChange,
    },
}

impl LiveMessage<'_> {
    pub fn to_json(&self) -> Arc<str> {
        serde_json::to_string(self)
            .expect("live messages always serialise")
            .into()
    }
}

pub struct Hub;

pub struct HubArgs {
    /// Where the stations' last-seen times come from at start.
    pub store: Arc<dyn crate::storage::ReadingStore>,
    /// How often to look for stations gone silent.
    pub check_every: std::time::Duration,
}

impl HubArgs {
    /// Looking for stations gone silent every 5 s.
    pub fn new(store: Arc<dyn crate::storage::ReadingStore>) -> Self {
        Self {
            store,
            check_every: std::time::Duration::from_secs(5),
        }
    }
}

#[derive(Default)]
pub struct HubState {
    clients: HashMap<u64, LiveClient>,
    /// Each station's newest observation time, and its status as last
    /// announced.
    seen: HashMap<StationId, (DateTime<Utc>, StationStatus)>,
}

impl Actor for Hub {
    type Msg = HubMsg;
    type State = HubState;
    type Arguments = HubArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: HubArgs,
    ) -> Result<HubState, ActorProcessingErr> {
        let mut state = HubState::default();
        // A store that does not answer leaves the hub to learn stations
        // from their next readings; it is not worth failing the hub for.
        match tokio::time::timeout(std::time::Duration::from_secs(2), args.store.stations()).await {
            Ok(Ok(stations)) => {
                let now = Utc::now();
                state.seen = stations
                    .into_iter()
                    .map(|s| {
                        let status = StationStatus::of(s.last_seen, now);
                        (s.station_id, (s.last_seen, status))
                    })
                    .collect();
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "hub: station status unknown until readings arrive")
            }
            Err(_) => tracing::warn!(
                "hub: the store did not answer; station status unknown until readings arrive"
            ),
        }
        myself.send_interval(args.check_every, || HubMsg::CheckStatus);
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: HubMsg,
        state: &mut HubState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            HubMsg::Subscribe(client) => {
                state.clients.insert(client.id, client);
                metrics::gauge!("isobar_live_clients").set(state.clients.len() as f64);
            }
            HubMsg::Publish(readings, traces) => {
                let clients = state.clients.len();
                let _hub: Vec<tracing::Span> = traces
                    .iter()
                    .map(|parent| {
                        tracing::info_span!(target: crate::telemetry::TRACE_TARGET,
                            parent: parent, "hub", clients = clients as i64, readings = readings.len() as i64)
                    })
                    .collect();
                state.publish(&readings);
                state.heard(&readings, Utc::now());
                metrics::counter!("isobar_readings_published_total")
                    .increment(readings.len() as u64);
            }
            HubMsg::Rollups(rollups) => state.offer_rollups(rollups),
            HubMsg::CheckStatus => state.check_silence(Utc::now()),
            HubMsg::Restart(event) => state.announce(&event),
            HubMsg::Alert(alert) => {
                let json = LiveMessage::Alert { alert: &alert }.to_json();
                // The pipeline's own alerts go to every client.
                state.send_to_followers(alert.station_id.as_deref().unwrap_or(""), &json);
            }
            HubMsg::ClientCount(reply) => {
                let _ = reply.send(state.clients.len());
            }
        }
        Ok(())
    }
}

/// The station's status at `now`, as a change to announce if it differs
/// from the one last announced (which it then becomes).
fn transition(
    id: &StationId,
    (last_seen, announced): &mut (DateTime<Utc>, StationStatus),
    now: DateTime<Utc>,
) -> Option<StatusChange> {
    let status = StationStatus::of(*last_seen, now);
    (status != *announced).then(|| {
        *announced = status;
        StatusChange {
            station_id: id.clone(),
            status,
            last_seen: *last_seen,
            at: now,
        }
    })
}

impl HubState {
    /// Notes when stations were heard; one that was silent, or new, is
    /// announced as reporting.
    fn heard(&mut self, readings: &[Reading], now: DateTime<Utc>) {
        for r in readings {
            // Most readings come from a station already known: no key to
            // copy for them.
            let entry = match self.seen.get_mut(&r.station_id) {
                Some(entry) => entry,
                None => self
                    .seen
                    .entry(r.station_id.clone())
                    .or_insert((r.observed_at, StationStatus::Silent)),
            };
            entry.0 = entry.0.max(r.observed_at);
            if let Some(change) = transition(&r.station_id, entry, now) {
                self.announce_status(&change);
            }
        }
    }

    /// Announces the stations that have gone silent since the last check.
    fn check_silence(&mut self, now: DateTime<Utc>) {
        let changes: Vec<StatusChange> = self
            .seen
            .iter_mut()
            .filter_map(|(id, entry)| transition(id, entry, now))
            .collect();
        for change in &changes {
            self.announce_status(change);
        }
    }

    fn announce_status(&self, change: &StatusChange) {
        metrics::counter!("isobar_station_status_changes_total", "status" => change.status.as_str())
            .increment(1);
        let json = LiveMessage::StationStatus { change }.to_json();
        self.send_to_followers(change.station_id.as_str(), &json);
    }

    /// To every client: a station's restart only to those that follow it.
    fn announce(&mut self, event: &RestartEvent) {
        let json = LiveMessage::Supervision { event }.to_json();
        if event.group == "stations" {
            self.send_to_followers(&event.child, &json);
        } else {
            self.send_to_followers("", &json);
        }
    }

    /// Each rollup into the lane of every client that follows its station.
    fn offer_rollups(&self, rollups: Vec<StationRollup>) {
        if self.clients.is_empty() {
            return;
        }
        for rollup in rollups {
            let key = (
                rollup.station_id.clone(),
                rollup.resolution,
                rollup.rollup.bucket,
            );
            let pending = Arc::new(PendingRollup {
                rollup,
                json: std::sync::OnceLock::new(),
            });
            for client in self
                .clients
                .values()
                .filter(|c| c.follows(&pending.rollup.station_id))
            {
                if !client.rollups.offer(key.clone(), pending.clone()) {
                    metrics::counter!("isobar_live_dropped_total").increment(1);
                    client.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// To the clients that follow `station` (all clients for "").
    fn send_to_followers(&self, station: &str, json: &Arc<str>) {
        for client in self.clients.values() {
            let follows = station.is_empty()
                || client
                    .stations
                    .as_ref()
                    .is_none_or(|s| s.iter().any(|s| s.as_str() == station));
            if follows && client.queue.try_send(json.clone()).is_err() {
                metrics::counter!("isobar_live_dropped_total").increment(1);
                client.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn publish(&mut self, readings: &[Reading]) {
        // Forget clients that went away, whatever stations they asked for.
        // In the same pass, the deepest queue of those that stay.
        let before = self.clients.len();
        let mut deepest = 0;
        self.clients.retain(|_, c| {
            let open = !c.queue.is_closed();
            if open {
                deepest = deepest.max(c.queue.max_capacity() - c.queue.capacity());
            }
            open
        });
        if self.clients.len() != before {
            metrics::gauge!("isobar_live_clients").set(self.clients.len() as f64);
        }
        if self.clients.is_empty() {
            return;
        }
        metrics::gauge!("isobar_queue_depth", "queue" => "live_client_max").set(deepest as f64);
        for reading in readings {
            // Serialised once, and only if some client wants it.
            let mut json: Option<Arc<str>> = None;
            for client in self
                .clients
                .values()
                .filter(|c| c.follows(&reading.station_id))
            {
                let json = json.get_or_insert_with(|| LiveMessage::Reading { reading }.to_json());
                if let Err(mpsc::error::TrySendError::Full(_)) = client.queue.try_send(json.clone())
                {
                    metrics::counter!("isobar_live_dropped_total").increment(1);
                    if client.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                        tracing::warn!(
                            client = client.id,
                            "live client is too slow; dropping messages until it catches up"
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Observation, QcReport, Resolution, Rollup};

    fn client(queue: usize, lane: usize) -> (LiveClient, mpsc::Receiver<Arc<str>>) {
        let (tx, rx) = mpsc::channel(queue);
        let client = LiveClient {
            id: 1,
            stations: None,
            queue: tx,
            dropped: Arc::new(AtomicU64::new(0)),
            rollups: Arc::new(RollupLane::new(lane)),
        };
        (client, rx)
    }

    fn rollup(station: &str, minute: u32, count: i64) -> StationRollup {
        let bucket = format!("2025-01-13T10:{minute:02}:00Z").parse().unwrap();
        let stats = crate::domain::rollup::Stats {
            count,
            min: 1.0,
            max: 2.0,
            sum: 1.5 * count as f64,
            last: 2.0,
            last_at: bucket,
            suspect: 0,
        };
        StationRollup {
            station_id: StationId::parse(station).unwrap(),
            resolution: Resolution::Minute,
            rollup: Rollup {
                bucket,
                variables: [("temperature_c".to_owned(), (&stats).into())].into(),
                wind: None,
            },
        }
    }

    fn reading(station: &str) -> Reading {
        let at = "2025-01-13T10:00:00Z".parse().unwrap();
        let mut obs = Observation::new(StationId::parse(station).unwrap(), at);
        obs.temperature_c = Some(1.0);
        Reading::new(obs, at, QcReport::default())
    }

    /// A roll-up of more periods than the client's queue holds neither
    /// fills the queue nor costs the client a reading.
    #[test]
    fn rollups_never_crowd_out_readings() {
        let (client, mut queue) = client(2, 1000);
        let lane = client.rollups.clone();
        let dropped = client.dropped.clone();
        let mut hub = HubState::default();
        hub.clients.insert(client.id, client);
        let rollups: Vec<StationRollup> = (0..50).map(|m| rollup("WS001", m, 1)).collect();
        hub.offer_rollups(rollups);
        hub.publish(&[reading("WS001"), reading("WS002")]);
        assert_eq!(dropped.load(Ordering::Relaxed), 0);
        for station in ["WS001", "WS002"] {
            let json = queue.try_recv().unwrap();
            assert!(json.contains(r#""type":"reading""#), "{json}");
            assert!(json.contains(station), "{json}");
        }
        let (waiting, more) = lane.take(100);
        assert_eq!((waiting.len(), more), (50, false));
        assert!(waiting.iter().all(|j| j.contains(r#""type":"rollup""#)));
    }

    /// A period waiting to be sent is replaced by its newer totals, and a
    /// full lane still takes those while refusing new periods.
    #[test]
    fn the_lane_keeps_the_newest_message_of_each_period() {
        let (client, _queue) = client(2, 2);
        let lane = client.rollups.clone();
        let dropped = client.dropped.clone();
        let mut hub = HubState::default();
        hub.clients.insert(client.id, client);
        hub.offer_rollups(vec![rollup("WS001", 0, 1), rollup("WS001", 1, 1)]);
        hub.offer_rollups(vec![rollup("WS001", 0, 5), rollup("WS001", 2, 1)]);
        assert_eq!(dropped.load(Ordering::Relaxed), 1, "the third period");
        let (waiting, more) = lane.take(1);
        assert!(more);
        assert!(waiting[0].contains(r#""count":5"#), "{}", waiting[0]);
        assert!(waiting[0].contains("10:00:00"), "{}", waiting[0]);
        let (rest, more) = lane.take(10);
        assert!(!more);
        assert_eq!(rest.len(), 1);
        assert!(rest[0].contains("10:01:00"), "{}", rest[0]);
    }

    /// Two clients that follow a station get the same serialised rollup:
    /// it is serialised once, by whichever client takes it first.
    #[test]
    fn a_rollup_is_serialised_once_for_every_client() {
        let (first, _q1) = client(2, 100);
        let (mut second, _q2) = client(2, 100);
        second.id = 2;
        let (a, b) = (first.rollups.clone(), second.rollups.clone());
        let mut hub = HubState::default();
        hub.clients.insert(first.id, first);
        hub.clients.insert(second.id, second);
        hub.offer_rollups(vec![rollup("WS001", 0, 3)]);
        let (from_a, _) = a.take(10);
        let (from_b, _) = b.take(10);
        assert_eq!((from_a.len(), from_b.len()), (1, 1));
        assert!(Arc::ptr_eq(&from_a[0], &from_b[0]));
        assert!(from_a[0].contains(r#""count":3"#), "{}", from_a[0]);
    }

    /// A client following some stations gets only their rollups.
    #[test]
    fn rollups_follow_the_station_filter() {
        let (mut client, _queue) = client(2, 100);
        client.stations = Some([StationId::parse("WS002").unwrap()].into());
        let lane = client.rollups.clone();
        let mut hub = HubState::default();
        hub.clients.insert(client.id, client);
        hub.offer_rollups(vec![rollup("WS001", 0, 1), rollup("WS002", 0, 1)]);
        let (waiting, _) = lane.take(10);
        assert_eq!(waiting.len(), 1);
        assert!(waiting[0].contains("WS002"));
    }
}
