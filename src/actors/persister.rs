//! The persister: gathers readings and quarantine records into batches,
//! writes each batch in one transaction, and only then acknowledges the
//! deliveries, updates the latest-reading cache and tells the hub. A store
//! failure keeps the batch and retries it with backoff; nothing is acked that
//! is not stored, so the broker holds the rest (backpressure).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::actors::hub::HubMsg;
use crate::delivery::{Delivery, Verdict};
use crate::domain::Reading;
use crate::storage::{LatestCache, QuarantineRecord, Store, WriteBatch};
use crate::supervisor::Backoff;

pub enum PersisterMsg {
    /// What one delivery produced: readings, quarantine records, or both
    /// (a batch with some bad elements). Acknowledged once all are stored.
    Write(Box<Outcome>, Delivery),
    /// Periodic: write a batch whose oldest item has waited long enough.
    Tick,
    /// Write everything held now; reply when it is stored (or the store
    /// refused it).
    Flush(RpcReplyPort<Result<(), String>>),
}

pub struct Persister;

/// What a delivery produced.
#[derive(Debug, Default)]
pub struct Outcome {
    pub readings: Vec<Reading>,
    pub quarantine: Vec<QuarantineRecord>,
}

impl PersisterMsg {
    pub fn store(reading: Reading, delivery: Delivery) -> Self {
        Self::Write(
            Box::new(Outcome {
                readings: vec![reading],
                quarantine: vec![],
            }),
            delivery,
        )
    }

    pub fn quarantine(record: QuarantineRecord, delivery: Delivery) -> Self {
        Self::Write(
            Box::new(Outcome {
                readings: vec![],
                quarantine: vec![record],
            }),
            delivery,
        )
    }
}

pub struct PersisterArgs {
    pub store: Arc<dyn Store>,
    pub cache: Arc<dyn LatestCache>,
    pub hub: String,
    /// Whether stored readings also go to the data lake's archiver.
    pub archive: bool,
    pub context: Arc<crate::delivery::DeliveryContext>,
    pub batch_size: usize,
    pub flush_interval: Duration,
}

pub struct PersisterState {
    args: PersisterArgs,
    readings: Vec<Reading>,
    quarantine: Vec<QuarantineRecord>,
    deliveries: Vec<(Delivery, Verdict)>,
    oldest: Option<Instant>,
    failures: u32,
    retry_at: Option<Instant>,
}

/// Backoff between attempts while the store is failing.
const STORE_RETRY: Backoff = Backoff {
    initial: Duration::from_millis(100),
    max: Duration::from_secs(5),
    factor: 2.0,
    jitter: 0.2,
};

impl Actor for Persister {
    type Msg = PersisterMsg;
    type State = PersisterState;
    type Arguments = PersisterArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: PersisterArgs,
    ) -> Result<PersisterState, ActorProcessingErr> {
        let tick = (args.flush_interval / 2).max(Duration::from_millis(5));
        myself.send_interval(tick, || PersisterMsg::Tick);
        Ok(PersisterState {
            readings: Vec::with_capacity(args.batch_size),
            quarantine: Vec::new(),
            deliveries: Vec::with_capacity(args.batch_size),
            oldest: None,
            failures: 0,
            retry_at: None,
            args,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: PersisterMsg,
        state: &mut PersisterState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PersisterMsg::Write(outcome, delivery) => {
                let Outcome {
                    readings,
                    quarantine,
                } = *outcome;
                let verdict = match quarantine.first() {
                    Some(first) if readings.is_empty() => Verdict::Rejected {
                        code: first.reason_code,
                        message: first.reason.clone(),
                    },
                    _ => Verdict::Stored {
                        readings: readings.len(),
                        rejected: quarantine.len(),
                    },
                };
                state.readings.extend(readings);
                state.quarantine.extend(quarantine);
                state.hold(delivery, verdict);
            }
            PersisterMsg::Tick => {}
            PersisterMsg::Flush(reply) => {
                let result = state.write().await;
                let _ = reply.send(result);
                return Ok(());
            }
        }
        if state.due() {
            // A failure is logged and retried; it never stops the actor.
            let _ = state.write().await;
        }
        Ok(())
    }
}

impl PersisterState {
    fn hold(&mut self, delivery: Delivery, verdict: Verdict) {
        self.oldest.get_or_insert_with(Instant::now);
        self.deliveries.push((delivery, verdict));
    }

    fn due(&self) -> bool {
        let Some(oldest) = self.oldest else {
            return false;
        };
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return false;
        }
        self.deliveries.len() >= self.args.batch_size
            || oldest.elapsed() >= self.args.flush_interval
            || self.retry_at.is_some()
    }

    async fn write(&mut self) -> Result<(), String> {
        if self.deliveries.is_empty() {
            return Ok(());
        }
        let batch = Arc::new(WriteBatch {
            readings: std::mem::take(&mut self.readings),
            quarantine: std::mem::take(&mut self.quarantine),
            archive: self.args.archive,
        });
        let started = Instant::now();
        let result = self.args.store.write_batch(batch.clone()).await;
        metrics::histogram!("isobar_store_write_seconds").record(started.elapsed().as_secs_f64());
        let batch = Arc::try_unwrap(batch).unwrap_or_else(|shared| WriteBatch {
            readings: shared.readings.clone(),
            quarantine: shared.quarantine.clone(),
            archive: shared.archive,
        });
        match result {
            Ok(outcome) => {
                self.failures = 0;
                self.retry_at = None;
                self.oldest = None;
                metrics::histogram!("isobar_batch_size").record(self.deliveries.len() as f64);
                metrics::counter!("isobar_quarantined_total")
                    .increment(batch.quarantine.len() as u64);
                let new: Vec<Reading> = batch
                    .readings
                    .into_iter()
                    .zip(outcome.inserted)
                    .filter_map(|(r, inserted)| inserted.then_some(r))
                    .collect();
                metrics::counter!("isobar_readings_stored_total").increment(new.len() as u64);
                let deliveries = std::mem::take(&mut self.deliveries);
                for (delivery, verdict) in deliveries {
                    delivery.acknowledge(verdict);
                }
                if !new.is_empty() {
                    let new: Arc<[Reading]> = new.into();
                    // In the background: a slow or absent cache (Redis down)
                    // never holds up ingestion; it only ever keeps newer.
                    let cache = self.args.cache.clone();
                    let for_cache = new.clone();
                    tokio::spawn(async move { cache.put_newer(&for_cache).await });
                    if self.args.archive {
                        // The outbox has them; tell the archiver not to wait
                        // for its next poll.
                        self.args.context.nudge_archiver();
                    }
                    if let Some(hub) = ActorRef::<HubMsg>::where_is(self.args.hub.clone()) {
                        let _ = hub.cast(HubMsg::Publish(new));
                    }
                }
                Ok(())
            }
            Err(e) => {
                self.readings = batch.readings;
                self.quarantine = batch.quarantine;
                let delay = STORE_RETRY.delay(self.failures, rand::random::<f64>());
                self.failures = self.failures.saturating_add(1);
                self.retry_at = Some(Instant::now() + delay);
                metrics::counter!("isobar_store_errors_total").increment(1);
                tracing::error!(error = %e, held = self.deliveries.len(),
                    retry_ms = delay.as_millis() as u64, "batch write failed; will retry");
                Err(e.to_string())
            }
        }
    }
}
