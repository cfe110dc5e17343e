//! The websocket hub: fans each stored reading out to the connected live
//! clients. Each reading is serialised once. Every client has a bounded
//! queue; a client that falls behind loses the newest messages (counted,
//! logged, and announced to it with an `overflow` message) and never slows
//! ingestion.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::domain::{Reading, StationId};

pub enum HubMsg {
    Subscribe(LiveClient),
    Publish(Arc<[Reading]>),
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

/// Messages the server sends on `/api/v1/live`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveMessage<'a> {
    Snapshot {
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
}

impl LiveMessage<'_> {
    pub fn to_json(&self) -> Arc<str> {
        serde_json::to_string(self)
            .expect("live messages always serialise")
            .into()
    }
}

pub struct Hub;

#[derive(Default)]
pub struct HubState {
    clients: HashMap<u64, LiveClient>,
}

impl Actor for Hub {
    type Msg = HubMsg;
    type State = HubState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        _args: (),
    ) -> Result<HubState, ActorProcessingErr> {
        Ok(HubState::default())
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
            HubMsg::Publish(readings) => state.publish(&readings),
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

impl HubState {
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
        let before = self.clients.len();
        self.clients.retain(|_, c| !c.queue.is_closed());
        if self.clients.len() != before {
            metrics::gauge!("isobar_live_clients").set(self.clients.len() as f64);
        }
        if self.clients.is_empty() {
            return;
        }
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
