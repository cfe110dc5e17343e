//! One actor per station: parses and validates each message for its
//! station, derives metrics and hands the reading to the persister. A bad
//! message becomes a quarantine record, never a crash.

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::actors::persister::PersisterMsg;
use crate::delivery::Delivery;
use crate::domain::{Reading, StationId, parse_observation};

pub enum StationMsg {
    Observe(Delivery),
    /// Replies once every message sent before it has been handed on.
    Barrier(RpcReplyPort<()>),
}

pub struct StationActor;

pub struct StationArgs {
    pub station_id: StationId,
    pub persister: String,
}

pub struct StationState {
    station_id: StationId,
    persister: String,
    /// Newest observation time seen, for ordering and (later) QC windows.
    newest: Option<DateTime<Utc>>,
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
            persister: args.persister,
            newest: None,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: StationMsg,
        state: &mut StationState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            StationMsg::Observe(delivery) => state.observe(delivery),
            StationMsg::Barrier(reply) => {
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

impl StationState {
    fn observe(&mut self, delivery: Delivery) {
        let persister = ActorRef::<PersisterMsg>::where_is(self.persister.clone());
        let msg = match parse_observation(&self.station_id, &delivery.payload, Utc::now()) {
            Ok(observation) => {
                #[cfg(feature = "fault-injection")]
                if observation.fault.as_deref() == Some("panic") {
                    panic!("fault injected into station {}", self.station_id);
                }
                self.newest = self.newest.max(Some(observation.observed_at));
                metrics::counter!("isobar_readings_accepted_total").increment(1);
                let reading = Reading::from_observation(observation, delivery.received_at);
                PersisterMsg::Store(Box::new(reading), delivery)
            }
            Err(reason) => {
                metrics::counter!("isobar_readings_rejected_total", "reason" => reason.code())
                    .increment(1);
                tracing::info!(station_id = %self.station_id, reason = reason.code(),
                    detail = %reason, "reading quarantined");
                PersisterMsg::Quarantine(Box::new(delivery.quarantine_record(&reason)), delivery)
            }
        };
        // Without a persister (it is being restarted) the delivery is dropped
        // here, and its drop routes it again shortly.
        if let Some(persister) = persister {
            let _ = persister.cast(msg);
        }
    }
}
