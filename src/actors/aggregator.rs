//! The aggregator: rolls new readings up into 1-minute and 1-hour rollups.
//! The persister leaves each new reading in the store's rollup outbox, in
//! the reading's own transaction; every few seconds the aggregator takes what is
//! there, adds it to the rollups and clears it, in one transaction. So
//! rollups are off the ingest path, exact under redelivery and crashes, and
//! at most a few seconds behind the readings (5 s, the interval the root gives it).

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

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
}

pub struct AggregatorState {
    store: Arc<dyn Store>,
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
        Ok(AggregatorState { store: args.store })
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
        loop {
            match self.store.roll_up(CHUNK).await {
                Ok(n) => {
                    metrics::counter!("isobar_readings_rolled_up_total").increment(n as u64);
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
