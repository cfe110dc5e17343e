//! The aggregator: rolls new readings up into 1-minute and 1-hour rollups.
//! Each stored batch leaves an entry in the store's rollup outbox, in its
//! own transaction, and once it commits the persister hands its new
//! readings to the aggregator in memory. Every few seconds (5 s), or
//! sooner when it holds many, the
//! aggregator adds what it holds to the rollups and deletes their outbox
//! entries, in one transaction; a batch whose entry is gone is not counted
//! again. Entries nobody holds (a crash or a restart came between the
//! commit and the roll-up) have their readings read back from the store.
//! So rollups are off the ingest path, exact under redelivery and crashes,
//! and read nothing back in normal running. When any live client is
//! connected, the periods a roll-up changed, as the upsert returns them,
//! go to the hub.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::actors::hub::{HubMsg, StationRollup};
use crate::actors::pipeline::Address;
use crate::storage::{HeldBatches, Leftovers, RollupStore, StoredBatch};

/// Readings held before a roll-up starts without waiting for the tick.
const CHUNK: usize = 50_000;
/// Readings held at most while the store fails.
const MAX_HELD: usize = 4 * CHUNK;

pub enum AggregatorMsg {
    /// A batch committed: its new readings.
    Stored(StoredBatch),
    /// Roll up what is held, and what was left over.
    Tick,
    /// Roll up everything waiting now; reply when done.
    Flush(RpcReplyPort<()>),
}

pub struct Aggregator;

pub struct AggregatorArgs {
    pub store: Arc<dyn RollupStore>,
    pub interval: Duration,
    /// Where live clients' rollups go.
    pub hub: Address<HubMsg>,
}

/// How often the outbox is read back for batches no one handed over (a
/// restart's leftovers).
const INTERVAL: Duration = Duration::from_secs(5);

impl AggregatorArgs {
    pub fn new(store: Arc<dyn RollupStore>, hub: Address<HubMsg>) -> Self {
        Self {
            store,
            interval: INTERVAL,
            hub,
        }
    }
}

pub struct AggregatorState {
    store: Arc<dyn RollupStore>,
    hub: Address<HubMsg>,
    held: HeldBatches,
    /// The last roll-up failed: wait for the tick rather than try again
    /// at every batch.
    failing: bool,
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
            held: HeldBatches::new(MAX_HELD),
            failing: false,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: AggregatorMsg,
        state: &mut AggregatorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AggregatorMsg::Stored(batch) => {
                state.held.push(batch);
                if state.held.readings() >= CHUNK && !state.failing {
                    state.roll_up(Leftovers::IN_FLIGHT).await;
                }
            }
            AggregatorMsg::Tick => state.roll_up(Leftovers::IN_FLIGHT).await,
            AggregatorMsg::Flush(reply) => {
                // Whatever was committed has been handed over by now.
                state.roll_up(Duration::ZERO).await;
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

impl AggregatorState {
    /// Rolls up what is held, then what was left over until none is, or
    /// the store fails (tried again at the next tick; the outbox keeps
    /// everything meanwhile).
    async fn roll_up(&mut self, in_flight: Duration) {
        // Live clients get the periods a roll-up changed, as the upsert
        // itself returns them: nothing is read back.
        let hub = self.hub.get();
        let clients = match &hub {
            Some(hub) => matches!(
                hub.call(HubMsg::ClientCount, Some(Duration::from_secs(1))).await,
                Ok(ractor::rpc::CallResult::Success(n)) if n > 0
            ),
            None => false,
        };
        loop {
            let leftovers = Leftovers::older_than(in_flight);
            match self
                .store
                .roll_up(self.held.batches(), leftovers, clients)
                .await
            {
                Ok(done) => {
                    self.failing = false;
                    self.held.take();
                    metrics::counter!("isobar_readings_rolled_up_total")
                        .increment(done.readings as u64);
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
                    if done.leftovers < leftovers.limit {
                        return;
                    }
                }
                Err(e) => {
                    self.failing = true;
                    metrics::counter!("isobar_rollup_errors_total").increment(1);
                    tracing::warn!(error = %e, "rolling up failed; will retry");
                    return;
                }
            }
        }
    }
}
