//! The websocket hub: fans each stored reading, each changed rollup, each
//! alert, restart and change of a station's status out to the connected
//! live clients. Each message is serialised once. Every client has a
//! bounded queue; a client that falls behind loses the newest messages
//! (counted, logged, and announced to it with an `overflow` message) and
//! never slows ingestion.
//!
//! The hub also knows when each station was last heard, seeded from the
//! store at start, and announces a station becoming `reporting` or
//! `silent` (see [`crate::web::StationStatus`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;
use tokio::sync::mpsc;

use chrono::{DateTime, Utc};

use crate::domain::{Reading, StationId};
use crate::web::StationStatus;

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
    /// Tells the hub registered as `hub`, if it is running.
    pub fn announce(self, hub: &str) {
        if let Some(hub) = ActorRef::<HubMsg>::where_is(hub) {
            let _ = hub.cast(HubMsg::Restart(self));
        }
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
    pub status: crate::web::StationStatus,
    pub last_seen: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

/// Messages the server sends on `/api/v1/live`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveMessage<'a> {
    Snapshot {
        protocol: u32,
        stations: &'a [crate::web::StationView],
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
    pub store: Arc<dyn crate::storage::Store>,
    /// How often to look for stations gone silent.
    pub check_every: std::time::Duration,
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
            HubMsg::Rollups(rollups) => {
                for rollup in &rollups {
                    let json = LiveMessage::Rollup { rollup }.to_json();
                    state.send_to_followers(rollup.station_id.as_str(), &json);
                }
            }
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
            for client in self.clients.values() {
                if client
                    .stations
                    .as_ref()
                    .is_some_and(|s| !s.contains(&reading.station_id))
                {
                    continue;
                }
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
