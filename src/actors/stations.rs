//! The station supervisor: routes each delivery to its station's actor,
//! spawning the actor on a station's first message, and restarts a station
//! actor that fails according to its restart policy (one_for_one: one
//! station's failure never touches another). Past its restart intensity it
//! escalates by failing itself.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use serde::Serialize;

use crate::actors::persister::PersisterMsg;
use crate::actors::pipeline::Pipeline;
use crate::actors::station::{StationActor, StationArgs, StationMsg};
use crate::config::{AdmissionPolicy, AdmissionSettings, SharedStations, SharedSupervision};
use crate::delivery::Delivery;
use crate::domain::qc::Learned;
use crate::domain::{QcConfig, RejectReason, StationId, StationQc};
use crate::storage::ReadingStore;
use crate::supervisor::{Decision, RestartIntensity, RestartPolicy};

pub enum StationsMsg {
    Route(Delivery),
    /// A restart's backoff has passed.
    Restart(StationId),
    /// Replies once every station has handed on what it was sent before.
    Drain(RpcReplyPort<()>),
    Status(RpcReplyPort<Vec<ChildStatus>>),
    /// Time to put idle station actors to sleep.
    Sweep,
    /// What a station's quality control has learned of how it reports:
    /// `None` for a station without an actor or memory (unknown, or
    /// waiting to restart, which starts its checks afresh).
    Learned(StationId, RpcReplyPort<Option<Learned>>),
    /// Stops the actors of the stations `which` picks and forgets them
    /// (their readings now go to another instance); replies with how many.
    Release(StationFilter, RpcReplyPort<usize>),
}

/// Picks stations.
pub type StationFilter = Box<dyn Fn(&StationId) -> bool + Send>;

/// Actors put to sleep in one sweep at most, so that a whole network going
/// quiet at once does not hold up routing; the next sweep follows at once.
const MAX_PER_SWEEP: usize = 1_000;

/// What the supervisor knows of one station actor.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChildStatus {
    pub station_id: StationId,
    /// Its actor is running.
    pub running: bool,
    /// Its actor is asleep, idle for `supervision.hibernate_after`; its
    /// next reading starts it again.
    pub hibernating: bool,
    pub restarts: u32,
    pub last_failure: Option<String>,
    pub last_failure_at: Option<DateTime<Utc>>,
}

pub struct StationsSupervisor;

pub struct StationsArgs {
    pub pipeline: Arc<Pipeline>,
    /// For a member of a cluster: where a station seen for the first time
    /// has its last readings, to warm its quality control with (it may
    /// have been handled by another instance until now).
    pub warm_from: Option<Arc<dyn ReadingStore>>,
    /// The stations policy and its per-station overrides (reloadable).
    pub supervision: SharedSupervision,
    pub qc: Arc<QcConfig>,
    pub admission: Admission,
}

/// Which stations get an actor: the policy, and the stations configured
/// (`[stations.<id>]`, reloadable) for `registered`.
pub struct Admission {
    pub settings: AdmissionSettings,
    pub registered: SharedStations,
}

impl Admission {
    /// Why a station seen for the first time gets no actor, if it does not.
    fn refuses(&self, station: &StationId, supervised: usize) -> Option<RejectReason> {
        match self.settings.policy {
            AdmissionPolicy::Registered => {
                let registered = self.registered.read().unwrap_or_else(|e| e.into_inner());
                (!registered.contains_key(station.as_str())).then(|| {
                    RejectReason::StationNotRegistered {
                        station: station.clone(),
                    }
                })
            }
            AdmissionPolicy::Open => {
                let max = self.settings.max_stations.get();
                (supervised >= max).then(|| RejectReason::TooManyStations {
                    station: station.clone(),
                    max,
                })
            }
        }
    }
}

impl StationsArgs {
    pub fn new(
        pipeline: Arc<Pipeline>,
        supervision: SharedSupervision,
        qc: &QcConfig,
        admission: Admission,
    ) -> Self {
        Self {
            pipeline,
            warm_from: None,
            supervision,
            qc: Arc::new(qc.clone()),
            admission,
        }
    }
}

pub struct StationsState {
    pipeline: Arc<Pipeline>,
    warm_from: Option<Arc<dyn ReadingStore>>,
    supervision: SharedSupervision,
    qc: Arc<QcConfig>,
    admission: Admission,
    /// `isobar_stations_refused_total`.
    refused: metrics::Counter,
    /// The operator was told the network is full.
    told_full: bool,
    children: HashMap<StationId, Child>,
    by_actor: HashMap<ActorId, StationId>,
    /// Children whose actor is asleep.
    sleeping: usize,
}

struct Child {
    actor: Option<ActorRef<StationMsg>>,
    /// When it was last sent a message.
    last_active: Instant,
    /// The quality-control memory of its hibernated actor: `Some` while it
    /// sleeps.
    memory: Option<Box<StationQc>>,
    /// Messages that arrived while the actor was waiting to restart.
    pending: VecDeque<Delivery>,
    intensity: RestartIntensity,
    restarts: u32,
    last_failure: Option<(String, DateTime<Utc>)>,
    /// Its first actor has started (later ones start from its memory, or
    /// afresh after a failure).
    started: bool,
}

impl Actor for StationsSupervisor {
    type Msg = StationsMsg;
    type State = StationsState;
    type Arguments = StationsArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: StationsArgs,
    ) -> Result<StationsState, ActorProcessingErr> {
        let state = StationsState {
            pipeline: args.pipeline,
            warm_from: args.warm_from,
            supervision: args.supervision,
            qc: args.qc,
            admission: args.admission,
            refused: metrics::counter!("isobar_stations_refused_total"),
            told_full: false,
            children: HashMap::new(),
            by_actor: HashMap::new(),
            sleeping: 0,
        };
        myself.send_after(state.sweep_every(), || StationsMsg::Sweep);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: StationsMsg,
        state: &mut StationsState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            StationsMsg::Route(delivery) => state.route(&myself, delivery).await?,
            StationsMsg::Restart(id) => state.restart(&myself, id).await?,
            StationsMsg::Sweep => {
                let full = state.hibernate_idle().await;
                let next = if full {
                    Duration::ZERO
                } else {
                    state.sweep_every()
                };
                myself.send_after(next, || StationsMsg::Sweep);
            }
            StationsMsg::Drain(reply) => {
                // Stations waiting out a restart backoff start now, so what
                // waits for them is handed on too.
                let waiting: Vec<StationId> = state
                    .children
                    .iter()
                    .filter(|(_, c)| c.actor.is_none() && c.memory.is_none())
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in waiting {
                    state.spawn(&myself, &id).await?;
                }
                let running: Vec<_> = state
                    .children
                    .values()
                    .filter_map(|c| c.actor.clone())
                    .collect();
                // Answer from a task so routing goes on meanwhile.
                tokio::spawn(async move {
                    for actor in running {
                        let _ = actor
                            .call(StationMsg::Barrier, Some(Duration::from_secs(10)))
                            .await;
                    }
                    let _ = reply.send(());
                });
            }
            StationsMsg::Learned(id, reply) => match state.children.get(&id) {
                // The actor answers the caller itself: the supervisor does
                // not wait on one of its children.
                Some(Child {
                    actor: Some(actor), ..
                }) => {
                    let _ = actor.cast(StationMsg::Learned(reply));
                }
                Some(Child {
                    memory: Some(memory),
                    ..
                }) => {
                    let _ = reply.send(Some(memory.learned()));
                }
                _ => {
                    let _ = reply.send(None);
                }
            },
            StationsMsg::Release(which, reply) => {
                let _ = reply.send(state.release(&which));
            }
            StationsMsg::Status(reply) => {
                let mut status: Vec<_> = state
                    .children
                    .iter()
                    .map(|(id, c)| ChildStatus {
                        station_id: id.clone(),
                        running: c.actor.is_some(),
                        hibernating: c.memory.is_some(),
                        restarts: c.restarts,
                        last_failure: c.last_failure.as_ref().map(|(r, _)| r.clone()),
                        last_failure_at: c.last_failure.as_ref().map(|(_, t)| *t),
                    })
                    .collect();
                status.sort_by(|a, b| a.station_id.cmp(&b.station_id));
                let _ = reply.send(status);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut StationsState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                state.on_failure(&myself, cell, err.to_string(), true)
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                // A station actor only stops on shutdown; treat anything else
                // as a failure so its station keeps being served.
                if let Some(id) = state.by_actor.get(&cell.get_id()).cloned()
                    && !state.pipeline.is_stopping()
                {
                    tracing::warn!(station_id = %id, ?reason, "station actor stopped unexpectedly");
                    state.on_failure(&myself, cell, format!("stopped: {reason:?}"), false)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

impl StationsState {
    async fn route(
        &mut self,
        myself: &ActorRef<StationsMsg>,
        delivery: Delivery,
    ) -> Result<(), ActorProcessingErr> {
        let Some(id) = delivery.station_id.clone() else {
            // Ingest sends messages without a station straight to quarantine.
            debug_assert!(false, "delivery without a station routed");
            return Ok(());
        };
        if !self.children.contains_key(&id) {
            if let Some(reason) = self.admission.refuses(&id, self.children.len()) {
                // Quarantined, not lost: admitted later (registered, or
                // the cap raised), it can be replayed from there.
                self.refused.increment(1);
                if matches!(reason, RejectReason::TooManyStations { .. }) && !self.told_full {
                    // Once: a network that outgrew the cap should hear of it,
                    // not find its new stations in the quarantine by chance.
                    self.told_full = true;
                    tracing::warn!(station_id = %id, supervised = self.children.len(),
                        "admission.max_stations reached: new stations are quarantined as too_many_stations; raise it if they are real");
                }
                tracing::debug!(station_id = %id, reason = reason.code(), "station not admitted");
                let record = delivery.quarantine_record(&reason);
                self.pipeline
                    .to_persister(PersisterMsg::quarantine(record, delivery));
                return Ok(());
            }
            self.children.insert(
                id.clone(),
                Child {
                    actor: None,
                    last_active: Instant::now(),
                    memory: None,
                    pending: VecDeque::new(),
                    intensity: RestartIntensity::default(),
                    restarts: 0,
                    last_failure: None,
                    started: false,
                },
            );
            self.count_supervised();
            self.spawn(myself, &id).await?;
        }
        let child = self.children.get_mut(&id).expect("inserted above");
        child.last_active = Instant::now();
        if child.memory.is_some() {
            // Asleep: wake it with its memory.
            child.pending.push_back(delivery);
            return self.spawn(myself, &id).await;
        }
        match &child.actor {
            Some(actor) => {
                if let Err(ractor::MessagingErr::SendErr(StationMsg::Observe(d))) =
                    actor.cast(StationMsg::Observe(delivery))
                {
                    // The actor has just died; its failure event will come.
                    child.pending.push_back(d);
                }
            }
            None => child.pending.push_back(delivery),
        }
        Ok(())
    }

    /// Stops and forgets the stations `which` picks; how many.
    fn release(&mut self, which: &StationFilter) -> usize {
        let leaving: Vec<StationId> = self
            .children
            .keys()
            .filter(|id| which(id))
            .cloned()
            .collect();
        for id in &leaving {
            let Some(child) = self.children.remove(id) else {
                continue;
            };
            if child.memory.is_some() {
                self.sleeping -= 1;
            }
            if let Some(actor) = child.actor {
                // Forgotten first: its stop is not a failure.
                self.by_actor.remove(&actor.get_id());
                actor.stop(Some("released".into()));
            }
        }
        self.count_supervised();
        metrics::gauge!("isobar_stations_hibernating").set(self.sleeping as f64);
        leaving.len()
    }

    /// `isobar_stations_supervised`, and, in a cluster, the count this
    /// instance's heartbeat tells the others.
    fn count_supervised(&self) {
        metrics::gauge!("isobar_stations_supervised").set(self.children.len() as f64);
        if let Some(view) = self.pipeline.cluster.get() {
            view.set_stations(self.children.len());
        }
    }

    /// Starts the station's actor and hands it what waited. A failure to
    /// start counts as a failure of the child.
    async fn spawn(
        &mut self,
        myself: &ActorRef<StationsMsg>,
        id: &StationId,
    ) -> Result<(), ActorProcessingErr> {
        let (memory, first) = match self.children.get_mut(id) {
            Some(c) => (c.memory.take(), !std::mem::replace(&mut c.started, true)),
            None => (None, false),
        };
        if memory.is_some() {
            self.sleeping -= 1;
            metrics::gauge!("isobar_stations_hibernating").set(self.sleeping as f64);
        }
        let args = StationArgs {
            station_id: id.clone(),
            pipeline: self.pipeline.clone(),
            qc: self.qc.clone(),
            memory,
            warm_from: self.warm_from.clone().filter(|_| first),
        };
        let actor = match Actor::spawn_linked(None, StationActor, args, myself.get_cell()).await {
            Ok((actor, _)) => actor,
            Err(e) => {
                // Whatever the restart type: its readings wait for it.
                let policy = self
                    .supervision
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .station_policy(id.as_str());
                return self.restart_later(
                    myself,
                    id.clone(),
                    format!("start failed: {e}"),
                    &policy,
                );
            }
        };
        self.by_actor.insert(actor.get_id(), id.clone());
        let child = self
            .children
            .get_mut(id)
            .expect("child exists before spawn");
        while let Some(d) = child.pending.pop_front() {
            if let Err(ractor::MessagingErr::SendErr(StationMsg::Observe(d))) =
                actor.cast(StationMsg::Observe(d))
            {
                // It died already; keep the rest for the next one.
                child.pending.push_front(d);
                break;
            }
        }
        child.actor = Some(actor);
        Ok(())
    }

    /// How often idle actors are looked for: a quarter of the idle time,
    /// so an actor sleeps within 1.25 times it.
    fn sweep_every(&self) -> Duration {
        let after = self
            .supervision
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .hibernate_after;
        if after.is_zero() {
            // Off; looked at again in case a reload turns it on.
            Duration::from_secs(10)
        } else {
            (after / 4).clamp(Duration::from_millis(250), Duration::from_secs(30))
        }
    }

    /// Puts to sleep the running actors not sent a message for
    /// `supervision.hibernate_after`, up to `MAX_PER_SWEEP` of them;
    /// true if there were more.
    async fn hibernate_idle(&mut self) -> bool {
        let after = self
            .supervision
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .hibernate_after;
        if after.is_zero() || self.pipeline.is_stopping() {
            return false;
        }
        let now = Instant::now();
        let mut idle: Vec<(StationId, ActorRef<StationMsg>)> = self
            .children
            .iter()
            .filter(|(_, c)| c.pending.is_empty() && now.duration_since(c.last_active) >= after)
            .filter_map(|(id, c)| Some((id.clone(), c.actor.clone()?)))
            .take(MAX_PER_SWEEP + 1)
            .collect();
        let more = idle.len() > MAX_PER_SWEEP;
        idle.truncate(MAX_PER_SWEEP);
        // Idle actors have empty mailboxes, so each answers at once; and
        // only this supervisor sends them messages, so none arrives
        // after the request to sleep.
        let answers = futures_util::future::join_all(
            idle.iter()
                .map(|(_, actor)| actor.call(StationMsg::Hibernate, Some(Duration::from_secs(5)))),
        )
        .await;
        for ((id, actor), answer) in idle.into_iter().zip(answers) {
            let Ok(ractor::rpc::CallResult::Success(memory)) = answer else {
                // It failed meanwhile (its supervision event follows), or
                // stayed awake.
                continue;
            };
            self.by_actor.remove(&actor.get_id());
            if let Some(child) = self.children.get_mut(&id) {
                child.actor = None;
                child.memory = Some(memory);
                self.sleeping += 1;
            }
        }
        metrics::gauge!("isobar_stations_hibernating").set(self.sleeping as f64);
        more
    }

    async fn restart(
        &mut self,
        myself: &ActorRef<StationsMsg>,
        id: StationId,
    ) -> Result<(), ActorProcessingErr> {
        if self.children.get(&id).is_some_and(|c| c.actor.is_none()) {
            self.spawn(myself, &id).await?;
            tracing::info!(station_id = %id, "station actor restarted");
        }
        Ok(())
    }

    fn on_failure(
        &mut self,
        myself: &ActorRef<StationsMsg>,
        cell: ActorCell,
        reason: String,
        failed: bool,
    ) -> Result<(), ActorProcessingErr> {
        let Some(id) = self.by_actor.remove(&cell.get_id()) else {
            return Ok(());
        };
        self.handle_failure(myself, id, reason, failed)
    }

    /// Records a failure of the station's actor and restarts it after its
    /// backoff, or escalates past the policy's intensity.
    fn handle_failure(
        &mut self,
        myself: &ActorRef<StationsMsg>,
        id: StationId,
        reason: String,
        failed: bool,
    ) -> Result<(), ActorProcessingErr> {
        let policy = self
            .supervision
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .station_policy(id.as_str());
        if !policy.restart.restarts(failed) {
            // Not restarted: the station is forgotten, and its next reading
            // starts a new actor. Readings already waiting for it are
            // routed again now, so they start it at once.
            tracing::warn!(station_id = %id, restart = ?policy.restart, reason = %reason,
                "station actor ended; its restart type keeps it stopped");
            if let Some(child) = self.children.remove(&id) {
                for delivery in child.pending {
                    self.pipeline.to_stations(delivery);
                }
            }
            return Ok(());
        }
        self.restart_later(myself, id, reason, &policy)
    }

    /// Restarts the station's actor after its backoff, or escalates past
    /// the policy's intensity.
    fn restart_later(
        &mut self,
        myself: &ActorRef<StationsMsg>,
        id: StationId,
        reason: String,
        policy: &RestartPolicy,
    ) -> Result<(), ActorProcessingErr> {
        let Some(child) = self.children.get_mut(&id) else {
            return Ok(());
        };
        child.actor = None;
        child.last_failure = Some((reason.clone(), Utc::now()));
        metrics::counter!("isobar_actor_restarts_total", "group" => "stations").increment(1);
        match child
            .intensity
            .on_failure(policy, Instant::now(), rand::random::<f64>())
        {
            Decision::Restart { after, attempt } => {
                child.restarts += 1;
                tracing::warn!(station_id = %id, attempt, delay_ms = after.as_millis() as u64,
                    reason = %reason, "station actor failed; restarting");
                crate::actors::hub::RestartEvent {
                    group: "stations",
                    child: id.to_string(),
                    reason: reason.clone(),
                    attempt,
                    delay_ms: after.as_millis() as u64,
                    with: Vec::new(),
                    at: Utc::now(),
                }
                .announce(&self.pipeline.hub);
                myself.send_after(after, move || StationsMsg::Restart(id));
                Ok(())
            }
            Decision::GiveUp { restarts } => {
                tracing::error!(station_id = %id, restarts, reason = %reason,
                    "station actor exceeded its restart intensity; escalating");
                Err(format!(
                    "station {id} failed {restarts} times within {:?}: {reason}",
                    policy.within
                )
                .into())
            }
        }
    }
}
