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

use crate::actors::station::{StationActor, StationArgs, StationMsg};
use crate::config::SharedSupervision;
use crate::delivery::{Delivery, DeliveryContext};
use crate::domain::{QcConfig, StationId};
use crate::supervisor::{Decision, RestartIntensity, RestartPolicy};

pub enum StationsMsg {
    Route(Delivery),
    /// A restart's backoff has passed.
    Restart(StationId),
    /// Replies once every station has handed on what it was sent before.
    Drain(RpcReplyPort<()>),
    Status(RpcReplyPort<Vec<ChildStatus>>),
}

/// What the supervisor knows of one station actor.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChildStatus {
    pub station_id: StationId,
    pub running: bool,
    pub restarts: u32,
    pub last_failure: Option<String>,
    pub last_failure_at: Option<DateTime<Utc>>,
}

pub struct StationsSupervisor;

pub struct StationsArgs {
    pub context: Arc<DeliveryContext>,
    /// The stations policy and its per-station overrides (reloadable).
    pub supervision: SharedSupervision,
    pub qc: Arc<QcConfig>,
}

pub struct StationsState {
    context: Arc<DeliveryContext>,
    supervision: SharedSupervision,
    qc: Arc<QcConfig>,
    children: HashMap<StationId, Child>,
    by_actor: HashMap<ActorId, StationId>,
}

struct Child {
    actor: Option<ActorRef<StationMsg>>,
    /// Messages that arrived while the actor was waiting to restart.
    pending: VecDeque<Delivery>,
    intensity: RestartIntensity,
    restarts: u32,
    last_failure: Option<(String, DateTime<Utc>)>,
}

impl Actor for StationsSupervisor {
    type Msg = StationsMsg;
    type State = StationsState;
    type Arguments = StationsArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: StationsArgs,
    ) -> Result<StationsState, ActorProcessingErr> {
        Ok(StationsState {
            context: args.context,
            supervision: args.supervision,
            qc: args.qc,
            children: HashMap::new(),
            by_actor: HashMap::new(),
        })
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
            StationsMsg::Drain(reply) => {
                // Stations waiting out a restart backoff start now, so what
                // waits for them is handed on too.
                let waiting: Vec<StationId> = state
                    .children
                    .iter()
                    .filter(|(_, c)| c.actor.is_none())
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
            StationsMsg::Status(reply) => {
                let mut status: Vec<_> = state
                    .children
                    .iter()
                    .map(|(id, c)| ChildStatus {
                        station_id: id.clone(),
                        running: c.actor.is_some(),
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
                    && !state.context.is_stopping()
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
            self.children.insert(
                id.clone(),
                Child {
                    actor: None,
                    pending: VecDeque::new(),
                    intensity: RestartIntensity::default(),
                    restarts: 0,
                    last_failure: None,
                },
            );
            metrics::gauge!("isobar_stations_supervised").set(self.children.len() as f64);
            self.spawn(myself, &id).await?;
        }
        let child = self.children.get_mut(&id).expect("inserted above");
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

    /// Starts the station's actor and hands it what waited. A failure to
    /// start counts as a failure of the child.
    async fn spawn(
        &mut self,
        myself: &ActorRef<StationsMsg>,
        id: &StationId,
    ) -> Result<(), ActorProcessingErr> {
        let args = StationArgs {
            station_id: id.clone(),
            context: self.context.clone(),
            qc: self.qc.clone(),
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
                    self.context.to_stations(delivery);
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
                .announce(&self.context.names.hub);
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
