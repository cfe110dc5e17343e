//! The root supervisor: starts the pipeline (archiver, aggregator, alerter,
//! persister, hub, station supervisor, ingest, in that order) and restarts a child that
//! fails by the pipeline's policy (`[supervision.pipeline]`): its strategy
//! says which siblings go down and come back with it, its restart type
//! whether it comes back at all, and its intensity and backoff how often and
//! when. When a child fails more often than the policy allows, the root
//! gives up: it reports the reason and the daemon exits non-zero.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::mpsc;

use crate::actors::aggregator::{Aggregator, AggregatorArgs};
use crate::actors::alerter::{Alerter, AlerterArgs};
use crate::actors::archiver::{Archiver, ArchiverArgs};
use crate::actors::hub::Hub;
use crate::actors::ingest::{Ingest, IngestArgs};
use crate::actors::persister::{Persister, PersisterArgs};
use crate::actors::stations::{StationsArgs, StationsSupervisor};
use crate::config::{Settings, SharedSupervision};
use crate::delivery::DeliveryContext;
use crate::health::Health;
use crate::storage::archive::Archive;
use crate::storage::{LatestCache, Store};
use crate::supervisor::{Decision, RestartIntensity};

pub enum RootMsg {
    /// Start these children again, in start order.
    Restart(Vec<ChildKind>),
    /// The pipeline's children, in start order, for the API.
    Status(ractor::RpcReplyPort<Vec<PipelineChild>>),
}

/// One of the pipeline's actors as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PipelineChild {
    pub name: &'static str,
    /// `running`, `restarting` (waiting out its backoff, or stopped with a
    /// sibling that failed), or `stopped` (its restart type keeps it so).
    pub state: &'static str,
    pub restarts: u32,
    pub last_failure: Option<String>,
    pub last_failure_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// What the root remembers of a child across its restarts.
#[derive(Debug, Default)]
struct History {
    restarts: u32,
    last_failure: Option<(String, chrono::DateTime<chrono::Utc>)>,
    stopped_for_good: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChildKind {
    Aggregator,
    Alerter,
    Persister,
    Hub,
    Archiver,
    Stations,
    Ingest,
}

impl ChildKind {
    /// Start order: sinks before the sources that feed them.
    pub const ALL: [ChildKind; 7] = [
        Self::Archiver,
        Self::Aggregator,
        Self::Alerter,
        Self::Persister,
        Self::Hub,
        Self::Stations,
        Self::Ingest,
    ];

    fn position(self) -> usize {
        Self::ALL
            .iter()
            .position(|k| *k == self)
            .expect("every kind is in ALL")
    }

    fn name(self) -> &'static str {
        match self {
            Self::Aggregator => "aggregator",
            Self::Alerter => "alerter",
            Self::Persister => "persister",
            Self::Hub => "hub",
            Self::Archiver => "archiver",
            Self::Stations => "stations",
            Self::Ingest => "ingest",
        }
    }
}

/// Everything needed to (re)start any child.
pub struct RootArgs {
    pub settings: Settings,
    /// The restart policies in force (reloadable).
    pub supervision: SharedSupervision,
    pub store: Arc<dyn Store>,
    pub cache: Arc<dyn LatestCache>,
    pub context: Arc<DeliveryContext>,
    /// Where ingest connects: the embedded broker or the external one.
    pub broker: (String, u16),
    pub health: Arc<Health>,
    /// The data lake, when one is configured.
    pub archive: Option<Arc<dyn Archive>>,
    /// Told why, when the root gives up.
    pub fatal: mpsc::UnboundedSender<String>,
}

pub struct Root;

pub struct RootState {
    args: RootArgs,
    children: HashMap<ActorId, ChildKind>,
    running: HashMap<ChildKind, ActorCell>,
    intensity: HashMap<ChildKind, RestartIntensity>,
    history: HashMap<ChildKind, History>,
}

impl Actor for Root {
    type Msg = RootMsg;
    type State = RootState;
    type Arguments = RootArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: RootArgs,
    ) -> Result<RootState, ActorProcessingErr> {
        let mut state = RootState {
            args,
            children: HashMap::new(),
            running: HashMap::new(),
            intensity: HashMap::new(),
            history: HashMap::new(),
        };
        for kind in ChildKind::ALL {
            state.spawn(&myself, kind).await?;
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: RootMsg,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RootMsg::Status(reply) => {
                let children = ChildKind::ALL
                    .iter()
                    .map(|kind| {
                        let h = state.history.get(kind);
                        PipelineChild {
                            name: kind.name(),
                            state: if state.running.contains_key(kind) {
                                "running"
                            } else if h.is_some_and(|h| h.stopped_for_good) {
                                "stopped"
                            } else {
                                "restarting"
                            },
                            restarts: h.map_or(0, |h| h.restarts),
                            last_failure: h
                                .and_then(|h| h.last_failure.as_ref().map(|f| f.0.clone())),
                            last_failure_at: h.and_then(|h| h.last_failure.as_ref().map(|f| f.1)),
                        }
                    })
                    .collect();
                let _ = reply.send(children);
            }
            RootMsg::Restart(mut kinds) => {
                kinds.sort_by_key(|k| k.position());
                for kind in kinds {
                    if state.running.contains_key(&kind) {
                        continue;
                    }
                    if let Err(e) = state.spawn(&myself, kind).await {
                        state.give_up(format!("{} could not be restarted: {e}", kind.name()));
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, reason, failed) = match event {
            SupervisionEvent::ActorFailed(cell, err) => (cell, err.to_string(), true),
            SupervisionEvent::ActorTerminated(cell, _, reason)
                if !state.args.context.is_stopping() =>
            {
                (
                    cell,
                    format!("stopped: {}", reason.unwrap_or_default()),
                    false,
                )
            }
            _ => return Ok(()),
        };
        // Children the root stopped itself (siblings taken down by the
        // strategy) are no longer listed, so their ends are not failures.
        let Some(kind) = state.children.remove(&cell.get_id()) else {
            return Ok(());
        };
        state.running.remove(&kind);
        state.on_failure(&myself, kind, cell, reason, failed).await;
        Ok(())
    }
}

impl RootState {
    async fn spawn(
        &mut self,
        myself: &ActorRef<RootMsg>,
        kind: ChildKind,
    ) -> Result<(), ActorProcessingErr> {
        let a = &self.args;
        let names = &a.context.names;
        let supervisor = myself.get_cell();
        let cell: ActorCell = match kind {
            ChildKind::Persister => {
                let args = PersisterArgs {
                    store: a.store.clone(),
                    cache: a.cache.clone(),
                    hub: names.hub.clone(),
                    archive: a.archive.is_some(),
                    context: a.context.clone(),
                    // The broker sends no more than its in-flight window of
                    // unacknowledged messages, so the batches being written
                    // and the one filling share it: a batch of that share is
                    // full, and waiting for more would wait out the flush
                    // interval.
                    batch_size: a.settings.persister.batch_size.min(
                        (a.settings.mqtt.effective_inflight() / (a.settings.persister.writers + 1))
                            .max(1),
                    ),
                    flush_interval: a.settings.persister.flush_interval,
                    writers: a.settings.persister.writers,
                };
                Actor::spawn_linked(Some(names.persister.clone()), Persister, args, supervisor)
                    .await?
                    .0
                    .get_cell()
            }
            ChildKind::Aggregator => Actor::spawn_linked(
                Some(names.aggregator.clone()),
                Aggregator,
                AggregatorArgs {
                    store: a.store.clone(),
                    interval: std::time::Duration::from_secs(5),
                },
                supervisor,
            )
            .await?
            .0
            .get_cell(),
            ChildKind::Alerter => Actor::spawn_linked(
                Some(names.alerter.clone()),
                Alerter,
                AlerterArgs {
                    store: a.store.clone(),
                    settings: a.settings.alerts.clone(),
                    hub: names.hub.clone(),
                },
                supervisor,
            )
            .await?
            .0
            .get_cell(),
            ChildKind::Hub => Actor::spawn_linked(Some(names.hub.clone()), Hub, (), supervisor)
                .await?
                .0
                .get_cell(),
            ChildKind::Archiver => {
                let Some(archive) = a.archive.clone() else {
                    return Ok(());
                };
                let args = ArchiverArgs {
                    store: a.store.clone(),
                    archive,
                    spool_dir: a.settings.storage.data_dir.join("spool"),
                    prefix: a.settings.archive.prefix.clone(),
                    segment_age: a.settings.archive.segment_age,
                    segment_bytes: a.settings.archive.segment_bytes,
                };
                Actor::spawn_linked(Some(names.archiver.clone()), Archiver, args, supervisor)
                    .await?
                    .0
                    .get_cell()
            }
            ChildKind::Stations => {
                let args = StationsArgs {
                    context: a.context.clone(),
                    supervision: a.supervision.clone(),
                    qc: Arc::new(a.settings.qc.clone()),
                };
                Actor::spawn_linked(
                    Some(names.stations.clone()),
                    StationsSupervisor,
                    args,
                    supervisor,
                )
                .await?
                .0
                .get_cell()
            }
            ChildKind::Ingest => {
                let mqtt = &a.settings.mqtt;
                let args = IngestArgs {
                    host: a.broker.0.clone(),
                    port: a.broker.1,
                    client_id: mqtt.client_id.clone(),
                    topic: mqtt.topic.clone(),
                    keep_alive: mqtt.keep_alive,
                    // Twice the window: never reached under a broker that
                    // keeps to it.
                    max_open: 2 * a.settings.mqtt.effective_inflight(),
                    context: a.context.clone(),
                    health: a.health.clone(),
                };
                Actor::spawn_linked(Some(names.ingest.clone()), Ingest, args, supervisor)
                    .await?
                    .0
                    .get_cell()
            }
        };
        self.children.insert(cell.get_id(), kind);
        self.running.insert(kind, cell);
        Ok(())
    }

    async fn on_failure(
        &mut self,
        myself: &ActorRef<RootMsg>,
        kind: ChildKind,
        cell: ActorCell,
        reason: String,
        failed: bool,
    ) {
        // A failed actor's own children outlive it in ractor; stop them so the
        // restarted one starts clean (and can take their names).
        cell.stop_children_and_wait(None, Some(Duration::from_secs(5)))
            .await;
        let policy = self
            .args
            .supervision
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .pipeline
            .policy();
        let history = self.history.entry(kind).or_default();
        history.last_failure = Some((reason.clone(), chrono::Utc::now()));
        if !policy.restart.restarts(failed) {
            history.stopped_for_good = true;
            tracing::warn!(child = kind.name(), restart = ?policy.restart, reason = %reason,
                "pipeline actor ended; its restart type keeps it stopped");
            return;
        }
        history.restarts += 1;
        metrics::counter!("isobar_actor_restarts_total", "group" => kind.name()).increment(1);
        let decision = self.intensity.entry(kind).or_default().on_failure(
            &policy,
            Instant::now(),
            rand::random::<f64>(),
        );
        let (after, attempt) = match decision {
            Decision::Restart { after, attempt } => (after, attempt),
            Decision::GiveUp { restarts } => {
                return self.give_up(format!(
                    "{} failed {restarts} times within {:?}; last failure: {reason}",
                    kind.name(),
                    policy.within
                ));
            }
        };
        // The siblings the strategy takes down with it: stopped now, and
        // started again with it, in start order.
        let affected: Vec<ChildKind> = ChildKind::ALL[policy
            .strategy
            .affected(ChildKind::ALL.len(), kind.position())]
        .to_vec();
        let siblings: Vec<&str> = affected
            .iter()
            .filter(|k| **k != kind)
            .map(|k| k.name())
            .collect();
        tracing::warn!(child = kind.name(), attempt, delay_ms = after.as_millis() as u64,
            strategy = ?policy.strategy, with = ?siblings, reason = %reason,
            "pipeline actor failed; restarting");
        crate::actors::hub::RestartEvent {
            group: "pipeline",
            child: kind.name().to_owned(),
            reason: reason.clone(),
            attempt,
            delay_ms: after.as_millis() as u64,
            with: siblings.clone(),
            at: chrono::Utc::now(),
        }
        .announce(&self.args.context.names.hub);
        for sibling in affected.iter().rev().filter(|k| **k != kind) {
            if let Some(cell) = self.running.remove(sibling) {
                self.children.remove(&cell.get_id());
                metrics::counter!("isobar_actor_restarts_total", "group" => sibling.name())
                    .increment(1);
                self.history.entry(*sibling).or_default().restarts += 1;
                cell.stop_children_and_wait(None, Some(Duration::from_secs(5)))
                    .await;
                let _ = cell
                    .stop_and_wait(
                        Some(format!("restarting with {}", kind.name())),
                        Some(Duration::from_secs(5)),
                    )
                    .await;
            }
        }
        myself.send_after(after, move || RootMsg::Restart(affected));
    }

    fn give_up(&self, why: String) {
        tracing::error!(reason = %why, "root supervisor gave up");
        let _ = self.args.fatal.send(why);
    }
}
