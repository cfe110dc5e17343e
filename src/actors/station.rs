//! One actor per station: parses and validates each message for its
//! station, derives metrics and hands the reading to the persister. A bad
//! message becomes a quarantine record, never a crash. A message that makes
//! the processing panic (a bug) is quarantined on its own, then the actor
//! fails so its supervisor restarts it with fresh state.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::actors::persister::{Outcome, PersisterMsg};
use crate::actors::pipeline::Pipeline;
use crate::delivery::{Delivery, Format};
use crate::domain::formats::{self, Parsed};
use crate::domain::qc::Learned;
use crate::domain::{QcConfig, QcFlag, Reading, RejectReason, StationId, StationQc};
use crate::storage::{HistoryQuery, ReadingStore, StoreError};

pub enum StationMsg {
    Observe(Delivery),
    /// Replies once every message sent before it has been handed on.
    Barrier(RpcReplyPort<()>),
    /// Hands its quality-control memory to its supervisor and stops; the
    /// station's next message starts a new actor with that memory.
    Hibernate(RpcReplyPort<Box<StationQc>>),
    /// What its quality control has learned of how the station reports
    /// (always `Some`: the port is the one its supervisor was asked on).
    Learned(RpcReplyPort<Option<Learned>>),
}

pub struct StationActor;

pub struct StationArgs {
    pub station_id: StationId,
    pub pipeline: Arc<Pipeline>,
    pub qc: Arc<QcConfig>,
    /// The memory of a hibernated actor of this station, if any.
    pub memory: Option<Box<StationQc>>,
    /// Where to read the station's last readings from, to learn them
    /// before its first check: for a station another instance of a
    /// cluster handled until now.
    pub warm_from: Option<Arc<dyn ReadingStore>>,
}

/// How far back from a station's newest stored reading its quality control
/// is warmed, and with at most how many readings: enough for its cadence,
/// steps, outlier window and a flat run.
const WARM_SPAN: chrono::TimeDelta = chrono::TimeDelta::hours(6);
const WARM_READINGS: usize = 2_000;

pub struct StationState {
    station_id: StationId,
    pipeline: Arc<Pipeline>,
    qc_config: Arc<QcConfig>,
    /// What quality control remembers of this station's recent readings.
    qc: StationQc,
    /// `isobar_readings_accepted_total` by QC status (pass, suspect, fail).
    accepted: [metrics::Counter; 3],
    /// Taken by `post_start`.
    warm_from: Option<Arc<dyn ReadingStore>>,
}

impl Actor for StationActor {
    type Msg = StationMsg;
    type State = StationState;
    type Arguments = StationArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: StationArgs,
    ) -> Result<StationState, ActorProcessingErr> {
        tracing::debug!(station_id = %args.station_id, "station actor started");
        Ok(StationState {
            station_id: args.station_id,
            pipeline: args.pipeline,
            qc_config: args.qc,
            qc: args.memory.map(|m| *m).unwrap_or_default(),
            accepted: [QcFlag::Pass, QcFlag::Suspect, QcFlag::Fail].map(
                |flag| metrics::counter!("isobar_readings_accepted_total", "qc" => flag.as_str()),
            ),
            warm_from: args.warm_from,
        })
    }

    /// Before its first message: learns the station's last stored
    /// readings, so a station that moved here from another instance is
    /// judged as it was there. A store that does not answer leaves the
    /// checks to start afresh, as for a new station.
    async fn post_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut StationState,
    ) -> Result<(), ActorProcessingErr> {
        let Some(store) = state.warm_from.take() else {
            return Ok(());
        };
        match recent(store.as_ref(), &state.station_id).await {
            Ok(readings) => {
                for r in &readings {
                    let obs = r.observation();
                    state.qc.check(&obs, r.received_at, &state.qc_config);
                }
                metrics::counter!("isobar_stations_warmed_total").increment(1);
                tracing::debug!(station_id = %state.station_id, readings = readings.len(),
                    "station's quality control warmed from the store");
            }
            Err(e) => tracing::warn!(station_id = %state.station_id, error = %e,
                "could not read the station's last readings; its checks start afresh"),
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: StationMsg,
        state: &mut StationState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            StationMsg::Observe(delivery) => state.observe(delivery)?,
            StationMsg::Barrier(reply) => {
                let _ = reply.send(());
            }
            StationMsg::Learned(reply) => {
                let _ = reply.send(Some(state.qc.learned()));
            }
            StationMsg::Hibernate(reply) => {
                let mut memory = Box::new(std::mem::take(&mut state.qc));
                memory.shrink_to_fit();
                match reply.send(memory) {
                    Ok(()) => myself.stop(Some("hibernated".into())),
                    // The supervisor stopped waiting: stay awake.
                    Err(ractor::MessagingErr::SendErr(memory)) => state.qc = *memory,
                    Err(_) => {}
                }
            }
        }
        Ok(())
    }
}

/// A station's stored readings over `WARM_SPAN` up to its newest, oldest
/// first.
async fn recent(store: &dyn ReadingStore, id: &StationId) -> Result<Vec<Reading>, StoreError> {
    let Some(newest) = store.latest(id).await? else {
        return Ok(Vec::new());
    };
    store
        .readings(HistoryQuery {
            station_id: id.clone(),
            from: newest.observed_at - WARM_SPAN,
            to: newest.observed_at + chrono::TimeDelta::microseconds(1),
            limit: WARM_READINGS,
        })
        .await
}

impl StationState {
    fn observe(&mut self, delivery: Delivery) -> Result<(), ActorProcessingErr> {
        let span = tracing::info_span!(target: crate::telemetry::TRACE_TARGET,
            parent: &delivery.span, "station", station_id = %self.station_id,
            readings = tracing::field::Empty, quarantined = tracing::field::Empty);
        let _station = span.enter();
        // Catch a panic here rather than letting it unwind through the
        // actor: only this message is to blame for it, not the ones queued
        // behind it, which the restarted actor will process.
        match catch_unwind(AssertUnwindSafe(|| self.process(&delivery))) {
            Ok(outcome) => {
                span.record("readings", outcome.readings.len() as i64);
                span.record("quarantined", outcome.quarantine.len() as i64);
                self.pipeline
                    .to_persister(PersisterMsg::Write(Box::new(outcome), delivery));
                Ok(())
            }
            Err(panic) => {
                let detail = crate::actors::panic_message(panic.as_ref());
                metrics::counter!("isobar_poison_messages_total").increment(1);
                let reason = RejectReason::ProcessingPanicked {
                    detail: detail.clone(),
                };
                let record = delivery.quarantine_record(&reason);
                self.pipeline
                    .to_persister(PersisterMsg::quarantine(record, delivery));
                Err(format!("panicked while processing a message: {detail}").into())
            }
        }
    }

    /// Parses the delivery in its format, checks and enriches each
    /// observation; what cannot be a reading becomes a quarantine record.
    fn process(&mut self, delivery: &Delivery) -> Outcome {
        // `now` is when the delivery arrived, not when it is processed: a
        // redelivery or retry of an upload saying `dateutc=now` resolves to
        // the same time, and so to the same reading.
        let now = delivery.received_at;
        let mut outcome = Outcome::default();
        let parsed = match self.parse(delivery, now) {
            Ok(parsed) => parsed,
            Err(reason) => {
                self.rejected(&reason);
                outcome.quarantine.push(delivery.quarantine_record(&reason));
                return outcome;
            }
        };
        for rejected in parsed.rejected {
            self.rejected(&rejected.reason);
            outcome
                .quarantine
                .push(delivery.context().quarantine_record(
                    &delivery.source,
                    Some(self.station_id.clone()),
                    &rejected.raw,
                    delivery.received_at,
                    &rejected.reason,
                ));
        }
        if !parsed.observations.is_empty() {
            crate::faults::at_station(self.station_id.as_str(), &delivery.payload);
        }
        for observation in parsed.observations {
            let qc = self
                .qc
                .check(&observation, delivery.received_at, &self.qc_config);
            self.accepted[qc.status as usize].increment(1);
            outcome
                .readings
                .push(Reading::new(observation, delivery.received_at, qc));
        }
        outcome
    }

    fn parse(&self, delivery: &Delivery, now: DateTime<Utc>) -> Result<Parsed, RejectReason> {
        let one = |observation| Parsed {
            observations: vec![observation],
            rejected: vec![],
        };
        match delivery.format {
            Format::Mqtt | Format::Json => {
                formats::parse_mqtt(&self.station_id, &delivery.payload, now)
            }
            Format::Ecowitt => {
                formats::ecowitt::parse(&self.station_id, &delivery.payload, now).map(one)
            }
            Format::Wunderground => {
                let query = String::from_utf8_lossy(&delivery.payload);
                let observation = formats::wunderground::parse(&query, now)?;
                if observation.station_id != self.station_id {
                    return Err(RejectReason::StationMismatch {
                        topic: self.station_id.to_string(),
                        payload: observation.station_id.to_string(),
                    });
                }
                Ok(one(observation))
            }
        }
    }

    fn rejected(&self, reason: &RejectReason) {
        metrics::counter!("isobar_readings_rejected_total", "reason" => reason.code()).increment(1);
        tracing::info!(station_id = %self.station_id, reason = reason.code(), detail = %reason,
            "reading quarantined");
    }
}
