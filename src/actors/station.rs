//! One actor per station: parses and validates each message for its
//! station, derives metrics and hands the reading to the persister. A bad
//! message becomes a quarantine record, never a crash. A message that makes
//! the processing panic (a bug) is quarantined on its own, then the actor
//! fails so its supervisor restarts it with fresh state.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use chrono::Utc;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::actors::persister::PersisterMsg;
use crate::delivery::{Delivery, DeliveryContext};
use crate::domain::{QcConfig, Reading, RejectReason, StationId, StationQc, parse_observation};

pub enum StationMsg {
    Observe(Delivery),
    /// Replies once every message sent before it has been handed on.
    Barrier(RpcReplyPort<()>),
}

pub struct StationActor;

pub struct StationArgs {
    pub station_id: StationId,
    pub context: Arc<DeliveryContext>,
    pub qc: Arc<QcConfig>,
}

pub struct StationState {
    station_id: StationId,
    context: Arc<DeliveryContext>,
    qc_config: Arc<QcConfig>,
    /// What quality control remembers of this station's recent readings.
    qc: StationQc,
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
            context: args.context,
            qc_config: args.qc,
            qc: StationQc::default(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: StationMsg,
        state: &mut StationState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            StationMsg::Observe(delivery) => state.observe(delivery)?,
            StationMsg::Barrier(reply) => {
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

impl StationState {
    fn observe(&mut self, delivery: Delivery) -> Result<(), ActorProcessingErr> {
        // Catch a panic here rather than letting it unwind through the
        // actor: only this message is to blame for it, not the ones queued
        // behind it, which the restarted actor will process.
        let outcome = catch_unwind(AssertUnwindSafe(|| self.process(&delivery)));
        let msg = match outcome {
            Ok(Ok(reading)) => {
                metrics::counter!("isobar_readings_accepted_total", "qc" => reading.qc.status.as_str())
                    .increment(1);
                PersisterMsg::store(reading, delivery)
            }
            Ok(Err(reason)) => {
                metrics::counter!("isobar_readings_rejected_total", "reason" => reason.code())
                    .increment(1);
                tracing::info!(station_id = %self.station_id, reason = reason.code(),
                    detail = %reason, "reading quarantined");
                PersisterMsg::quarantine(delivery.quarantine_record(&reason), delivery)
            }
            Err(panic) => {
                let detail = panic_message(panic.as_ref());
                metrics::counter!("isobar_poison_messages_total").increment(1);
                let reason = RejectReason::ProcessingPanicked {
                    detail: detail.clone(),
                };
                let record = delivery.quarantine_record(&reason);
                self.context
                    .to_persister(PersisterMsg::quarantine(record, delivery));
                return Err(format!("panicked while processing a message: {detail}").into());
            }
        };
        self.context.to_persister(msg);
        Ok(())
    }

    fn process(&mut self, delivery: &Delivery) -> Result<Reading, RejectReason> {
        let observation = parse_observation(&self.station_id, &delivery.payload, Utc::now())?;
        #[cfg(feature = "fault-injection")]
        if observation.fault.as_deref() == Some("panic") {
            panic!("fault injected into station {}", self.station_id);
        }
        let qc = self
            .qc
            .check(&observation, delivery.received_at, &self.qc_config);
        Ok(Reading::new(observation, delivery.received_at, qc))
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}
