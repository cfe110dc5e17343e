//! The aggregator: rolls new readings up into 1-minute and 1-hour rollups.
//! The persister leaves each new reading in the store's rollup outbox, in
//! the reading's own transaction; every few seconds the aggregator takes what is
//! there, adds it to the rollups and clears it, in one transaction. So
//! rollups are off the ingest path, exact under redelivery and crashes, and
//! at most a few seconds behind the readings (5 s, the interval the root gives it).
//! When any live client is connected, the periods a roll-up changed, as
//! the upsert returns them, go to the hub.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::actors::hub::{HubMsg, StationRollup};
use crate::storage::Store;

/// Readings rolled up per transaction.
const CHUNK: usize = 50_000;

pub enum AggregatorMsg {
    /// Roll up what is waiting.
    Tick,
    /// Roll up everything waiting now; reply when done.
    Flush(RpcReplyPort<()>),
}

pub struct Aggregator;

pub struct AggregatorArgs {
    pub store: Arc<dyn Store>,
    pub interval: Duration,
    /// The hub's registered name.
    pub hub: String,
}

pub struct AggregatorState {
    store: Arc<dyn Store>,
    hub: String,
}

impl Actor for Aggregator {
    type Msg = AggregatorMsg;
    type State = AggregatorState;
    type Arguments = AggregatorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: AggregatorArgs,
    ) -> Result<AggregatorState, ActorProcessingErr> {
        myself.send_interval(args.interval, || AggregatorMsg::Tick);
        Ok(AggregatorState {
            store: args.store,
            hub: args.hub,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: AggregatorMsg,
        state: &mut AggregatorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AggregatorMsg::Tick => state.roll_up().await,
            AggregatorMsg::Flush(reply) => {
                state.roll_up().await;
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

impl AggregatorState {
    /// Until the outbox is empty, or the store fails (tried again at the
    /// next tick; the outbox keeps everything meanwhile).
    async fn roll_up(&self) {
        // Live clients get the periods a roll-up changed, as the upsert
        // itself returns them: nothing is read back.
        let hub = ActorRef::<HubMsg>::where_is(self.hub.clone());
        let clients = match &hub {
            Some(hub) => matches!(
                hub.call(HubMsg::ClientCount, Some(Duration::from_secs(1))).await,
                Ok(ractor::rpc::CallResult::Success(n)) if n > 0
            ),
            None => false,
        };
        loop {
            match self.store.roll_up(CHUNK, clients).await {
                Ok(done) => {
                    let n = done.readings;
                    metrics::counter!("isobar_readings_rolled_up_total").increment(n as u64);
                    if let Some(hub) = &hub
                        && !done.changed.is_empty()
                    {
                        let out = done
                            .changed
                            .into_iter()
                            .map(|(station_id, resolution, rollup)| StationRollup {
                                station_id,
                                resolution,
                                rollup,
                            })
                            .collect();
                        let _ = hub.cast(HubMsg::Rollups(out));
                    }
                    if n < CHUNK {
                        return;
                    }
                }
                Err(e) => {
                    metrics::counter!("isobar_rollup_errors_total").increment(1);
                    tracing::warn!(error = %e, "rolling up failed; will retry");
                    return;
                }
            }
        }
    }
}
