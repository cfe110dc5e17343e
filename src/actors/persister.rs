//! The persister: gathers readings and quarantine records into batches,
//! writes each batch in one transaction, and only then acknowledges the
//! deliveries, updates the latest-reading cache and publishes the new
//! readings on its [`StoredPort`] (the pipeline's builder subscribes the
//! consumers: the aggregator, the archiver, the alerter, the hub). A store
//! failure keeps the batch and retries it with backoff; nothing is acked that
//! is not stored, so the broker holds the rest (backpressure).
//!
//! A batch is cut as soon as a writer is free (group commit): at low load a
//! reading waits for one commit, and under load what arrives while the
//! writers are busy becomes the next batch, so batches grow with the load
//! by themselves. Up to `writers` batches are written at once, so one
//! batch commits while the next is sent, and the store's commits overlap.
//! Batches are finished (acknowledged, cached, published) strictly in the
//! order they were cut, whatever order their transactions end in.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::task::JoinHandle;

use crate::actors::pipeline::{Stored, StoredPort};
use crate::delivery::{Delivery, Verdict};
use crate::domain::{Reading, RejectReason};
use crate::storage::{
    LatestCache, QuarantineRecord, ReadingStore, StoreError, StoredBatch, WriteBatch, WriteOutcome,
};
use crate::supervisor::Backoff;

pub enum PersisterMsg {
    /// What one delivery produced: readings, quarantine records, or both
    /// (a batch with some bad elements). Acknowledged once all are stored.
    Write(Box<Outcome>, Delivery),
    /// Periodic: write a batch whose oldest item has waited long enough,
    /// retry a failed one whose backoff has passed.
    Tick,
    /// A batch write ended; finish what can be finished.
    Written,
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
                ..Outcome::default()
            }),
            delivery,
        )
    }

    pub fn quarantine(record: QuarantineRecord, delivery: Delivery) -> Self {
        Self::Write(
            Box::new(Outcome {
                quarantine: vec![record],
                ..Outcome::default()
            }),
            delivery,
        )
    }
}

pub struct PersisterArgs {
    pub store: Arc<dyn ReadingStore>,
    pub cache: Arc<dyn LatestCache>,
    /// Whether stored readings also go to the data lake's archiver (the
    /// store keeps them in the outbox for it).
    pub archive: bool,
    /// Where the new readings of each committed batch are published.
    pub stored: Arc<StoredPort>,
    pub context: Arc<crate::delivery::DeliveryContext>,
    pub batch_size: usize,
    /// How long a batch may wait to fill while a writer is free.
    pub flush_interval: Duration,
    /// Batches written at the same time.
    pub writers: usize,
}

impl PersisterArgs {
    /// From `[persister]`.
    pub fn from_settings(
        settings: &crate::config::PersisterSettings,
        store: Arc<dyn ReadingStore>,
        cache: Arc<dyn LatestCache>,
        archive: bool,
        stored: Arc<StoredPort>,
        context: Arc<crate::delivery::DeliveryContext>,
    ) -> Self {
        Self {
            store,
            cache,
            archive,
            stored,
            context,
            batch_size: settings.batch_size.get(),
            flush_interval: settings.flush_interval,
            writers: settings.writers.get(),
        }
    }
}

/// A delivery waiting for its batch, with how many of the batch's readings
/// and quarantine records are its own (they follow in delivery order).
struct Held {
    delivery: Delivery,
    verdict: Verdict,
    readings: usize,
    quarantine: usize,
    /// From when the persister took it to its acknowledgement.
    span: tracing::Span,
}

/// A batch cut from what was held, with the deliveries it acknowledges.
struct Batch {
    batch: Arc<WriteBatch>,
    deliveries: Vec<Held>,
    /// The write under way; `None` while it waits to be retried.
    write: Option<Write>,
    started: Instant,
}

/// A batch's write under way: its task, and where the task leaves its
/// result before it sends `Written`. So when that message is handled the
/// result is there, even if the task has not quite ended.
struct Write {
    task: JoinHandle<()>,
    result: Arc<std::sync::Mutex<Option<WriteResult>>>,
}

type WriteResult = Result<WriteOutcome, StoreError>;

impl Write {
    fn ended(&self) -> bool {
        self.result
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }
}

impl Batch {
    /// Holds nothing but quarantine records: nothing left to set aside.
    fn only_quarantine(&self) -> bool {
        self.batch.readings.is_empty()
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        // A persister that dies takes its batches' deliveries with it, and
        // they are routed again; a write still running would only store
        // what the redelivery stores again (writes are idempotent), but
        // there is no reason to let it.
        if let Some(write) = &self.write {
            write.task.abort();
        }
    }
}

pub struct PersisterState {
    args: PersisterArgs,
    myself: ActorRef<PersisterMsg>,
    readings: Vec<Reading>,
    quarantine: Vec<QuarantineRecord>,
    deliveries: Vec<Held>,
    oldest: Option<Instant>,
    /// Batches being written, oldest first.
    writing: VecDeque<Batch>,
    failures: u32,
    retry_at: Option<Instant>,
    /// `isobar_queue_depth{queue="persister"}`, set after every message.
    depth: metrics::Gauge,
    /// When the last delivery came in, until the memory its burst took is
    /// handed back (see [`PersisterState::quiet`]); `None` before the
    /// first and once handed back.
    last_busy: Option<Instant>,
}

/// How long no reading must come before the memory a burst took is
/// handed back.
pub const QUIET: Duration = Duration::from_secs(5);

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
        // Retries of a failed batch, and batches waiting out the flush
        // interval, are looked at on each tick.
        let tick =
            (args.flush_interval / 2).clamp(Duration::from_millis(5), Duration::from_millis(50));
        myself.send_interval(tick, || PersisterMsg::Tick);
        Ok(PersisterState {
            readings: Vec::with_capacity(args.batch_size),
            quarantine: Vec::new(),
            deliveries: Vec::with_capacity(args.batch_size),
            oldest: None,
            writing: VecDeque::with_capacity(args.writers),
            failures: 0,
            retry_at: None,
            depth: metrics::gauge!("isobar_queue_depth", "queue" => "persister"),
            last_busy: None,
            myself,
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
                if !outcome.readings.is_empty() {
                    crate::faults::at_persister(&delivery.payload);
                }
                let Outcome {
                    readings,
                    quarantine,
                    ..
                } = *outcome;
                state.args.context.flow.processed(!quarantine.is_empty());
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
                let span = tracing::info_span!(target: crate::telemetry::TRACE_TARGET,
                    parent: &delivery.span, "persist",
                    readings = readings.len() as i64, quarantined = quarantine.len() as i64,
                    batch = tracing::field::Empty);
                let held = Held {
                    delivery,
                    verdict,
                    readings: readings.len(),
                    quarantine: quarantine.len(),
                    span,
                };
                state.readings.extend(readings);
                state.quarantine.extend(quarantine);
                state.hold(held);
                state.last_busy = Some(Instant::now());
            }
            PersisterMsg::Tick => {
                state.retry();
                state.quiet();
            }
            PersisterMsg::Written => state.finish_ready().await,
            PersisterMsg::Flush(reply) => {
                let result = state.flush().await;
                let _ = reply.send(result);
                return Ok(());
            }
        }
        while state.due() {
            state.cut();
        }
        let writing: usize = state.writing.iter().map(|b| b.deliveries.len()).sum();
        state.depth.set((state.deliveries.len() + writing) as f64);
        Ok(())
    }
}

impl PersisterState {
    /// Once everything is written and nothing has come for [`QUIET`]
    /// (once per quiet spell): the store hands back its caches and the
    /// allocators what the burst freed, so that the resident memory goes
    /// back down to what the daemon holds between bursts.
    fn quiet(&mut self) {
        if self.last_busy.is_none_or(|at| at.elapsed() < QUIET)
            || !self.deliveries.is_empty()
            || !self.writing.is_empty()
        {
            return;
        }
        self.last_busy = None;
        let store = self.args.store.clone();
        tokio::spawn(async move {
            store.release_memory().await;
            crate::memory::give_back();
        });
    }

    fn hold(&mut self, held: Held) {
        self.oldest.get_or_insert_with(Instant::now);
        self.deliveries.push(held);
    }

    /// Whether to cut a batch from what is held now.
    fn due(&self) -> bool {
        let Some(oldest) = self.oldest else {
            return false;
        };
        // While the store fails, only the failed batch is tried.
        if self.failures > 0 || self.writing.len() >= self.args.writers {
            return false;
        }
        self.deliveries.len() >= self.args.batch_size
            || oldest.elapsed() >= self.args.flush_interval
    }

    /// Starts writing the oldest `batch_size` deliveries held as one batch.
    fn cut(&mut self) {
        let n = self.deliveries.len().min(self.args.batch_size);
        let (r, q) = self.deliveries[..n]
            .iter()
            .fold((0, 0), |(r, q), h| (r + h.readings, q + h.quarantine));
        let rest = self.deliveries.split_off(n);
        let deliveries = std::mem::replace(&mut self.deliveries, rest);
        let rest = self.readings.split_off(r);
        let readings = std::mem::replace(&mut self.readings, rest);
        let rest = self.quarantine.split_off(q);
        let quarantine = std::mem::replace(&mut self.quarantine, rest);
        // What is left waits for the next free writer, from now.
        self.oldest = (!self.deliveries.is_empty()).then(Instant::now);
        let mut batch = self.batch_of(deliveries, readings, quarantine);
        self.start(&mut batch);
        self.writing.push_back(batch);
    }

    fn start(&self, batch: &mut Batch) {
        let store = self.args.store.clone();
        let data = batch.batch.clone();
        let myself = self.myself.clone();
        for held in &batch.deliveries {
            held.span.record("batch", batch.deliveries.len() as i64);
        }
        batch.started = Instant::now();
        let result = Arc::new(std::sync::Mutex::new(None));
        let slot = result.clone();
        let task = tokio::spawn(async move {
            let written = store.write_batch(data).await;
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(written);
            let _ = myself.cast(PersisterMsg::Written);
        });
        batch.write = Some(Write { task, result });
    }

    /// Starts the failed batch again once its backoff has passed.
    fn retry(&mut self) {
        if self.retry_at.is_none_or(|at| Instant::now() < at) {
            return;
        }
        self.retry_at = None;
        if let Some(mut front) = self.writing.pop_front() {
            if front.write.is_none() {
                self.start(&mut front);
            }
            self.writing.push_front(front);
        }
    }

    /// Finishes the batches at the front whose writes have ended, in order.
    async fn finish_ready(&mut self) {
        while self
            .writing
            .front()
            .is_some_and(|b| b.write.as_ref().is_some_and(Write::ended))
        {
            if self.finish_front().await.is_err() {
                return;
            }
        }
    }

    /// Waits for the oldest batch's write and finishes it: acknowledged and
    /// passed on if it was stored; kept to be retried if not.
    async fn finish_front(&mut self) -> Result<(), String> {
        let Some(mut batch) = self.writing.pop_front() else {
            return Ok(());
        };
        let Some(write) = batch.write.take() else {
            // Waiting for its retry.
            self.writing.push_front(batch);
            return Err("waiting to retry a failed batch write".into());
        };
        // Ended already, or (a flush) about to.
        let ended = write.task.await;
        let result = write
            .result
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_else(|| {
                Err(StoreError::Task(match ended {
                    Err(e) => format!("batch write task ended: {e}"),
                    Ok(()) => "batch write task ended without a result".into(),
                }))
            });
        metrics::histogram!("isobar_store_write_seconds")
            .record(batch.started.elapsed().as_secs_f64());
        match result {
            Ok(outcome) => {
                self.failures = 0;
                self.done(batch, outcome);
                Ok(())
            }
            Err(e) if e.is_permanent() && !batch.only_quarantine() => {
                // Retrying the same cannot help: find the delivery at fault
                // by halves, and quarantine it, so that it holds up nothing.
                metrics::counter!("isobar_store_rejections_total").increment(1);
                tracing::warn!(error = %e, held = batch.deliveries.len(),
                    "the store refused a batch; writing it in parts");
                for mut part in self.split(batch, &e).into_iter().rev() {
                    self.start(&mut part);
                    self.writing.push_front(part);
                }
                Ok(())
            }
            Err(e) => {
                let delay = STORE_RETRY.delay(self.failures, rand::random::<f64>());
                self.failures = self.failures.saturating_add(1);
                self.retry_at = Some(Instant::now() + delay);
                metrics::counter!("isobar_store_errors_total").increment(1);
                tracing::error!(error = %e, held = batch.deliveries.len(),
                    retry_ms = delay.as_millis() as u64, "batch write failed; will retry");
                self.writing.push_front(batch);
                Err(e.to_string())
            }
        }
    }

    /// A batch the store refused, in parts to write instead: its halves, or,
    /// for a single delivery, the delivery quarantined.
    fn split(&self, mut batch: Batch, error: &StoreError) -> Vec<Batch> {
        let data = std::mem::take(&mut batch.batch);
        let data = Arc::try_unwrap(data).unwrap_or_else(|shared| WriteBatch {
            readings: shared.readings.clone(),
            quarantine: shared.quarantine.clone(),
            archive: shared.archive,
        });
        let mut deliveries = std::mem::take(&mut batch.deliveries);
        if deliveries.len() == 1 {
            let held = deliveries.pop().expect("one delivery");
            let reason = RejectReason::StoreRejected {
                detail: error.to_string(),
            };
            tracing::error!(source = %crate::domain::Name(&held.delivery.source), station_id = ?held.delivery.station_id,
                reason = reason.code(), error = %error, "quarantining a message the store refused");
            let record = held.delivery.quarantine_record(&reason);
            let verdict = Verdict::Rejected {
                code: reason.code(),
                message: reason.to_string(),
            };
            return vec![self.batch_of(
                vec![Held {
                    delivery: held.delivery,
                    verdict,
                    readings: 0,
                    quarantine: 1,
                    span: held.span,
                }],
                Vec::new(),
                vec![record],
            )];
        }
        let mut readings = data.readings.into_iter();
        let mut quarantine = data.quarantine.into_iter();
        let second = deliveries.split_off(deliveries.len() / 2);
        [deliveries, second]
            .into_iter()
            .map(|part| {
                let r = part.iter().map(|h| h.readings).sum();
                let q = part.iter().map(|h| h.quarantine).sum();
                let part_readings = readings.by_ref().take(r).collect();
                let part_quarantine = quarantine.by_ref().take(q).collect();
                self.batch_of(part, part_readings, part_quarantine)
            })
            .collect()
    }

    fn batch_of(
        &self,
        deliveries: Vec<Held>,
        readings: Vec<Reading>,
        quarantine: Vec<QuarantineRecord>,
    ) -> Batch {
        Batch {
            batch: Arc::new(WriteBatch {
                readings,
                quarantine,
                archive: self.args.archive,
            }),
            deliveries,
            write: None,
            started: Instant::now(),
        }
    }

    /// A stored batch: acknowledge its deliveries, then update the cache,
    /// the archiver and the hub with the readings that were new.
    fn done(&self, mut batch: Batch, outcome: WriteOutcome) {
        metrics::histogram!("isobar_batch_size").record(batch.deliveries.len() as f64);
        for q in &batch.batch.quarantine {
            metrics::counter!("isobar_quarantined_total", "reason" => q.reason_code).increment(1);
        }
        // The write has ended, so the batch is no longer shared.
        let data = std::mem::take(&mut batch.batch);
        let readings =
            Arc::try_unwrap(data).map_or_else(|shared| shared.readings.clone(), |b| b.readings);
        let new: Vec<Reading> = readings
            .into_iter()
            .zip(outcome.inserted)
            .filter_map(|(r, inserted)| inserted.then_some(r))
            .collect();
        metrics::counter!("isobar_readings_stored_total").increment(new.len() as u64);
        // The traces go on to the hub (when anything records them).
        let mut traces = Vec::new();
        for held in std::mem::take(&mut batch.deliveries) {
            if held.readings > 0 && !held.delivery.span.is_disabled() {
                traces.push(held.delivery.span.clone());
            }
            held.delivery.acknowledge(held.verdict);
        }
        if new.is_empty() {
            return;
        }
        let new: Arc<[Reading]> = new.into();
        // In the background: a slow or absent cache (Redis down) never
        // holds up ingestion; it only ever keeps newer.
        let cache = self.args.cache.clone();
        let for_cache = new.clone();
        tokio::spawn(async move { cache.put_newer(&for_cache).await });
        // The batch's outbox entry keeps the readings for the aggregator
        // and the archiver until they have used these.
        self.args.stored.publish(&Stored {
            batch: outcome.seq.map(|seq| StoredBatch {
                seq,
                readings: new.clone(),
            }),
            readings: new,
            traces,
        });
    }

    /// Writes everything held and waits for every write under way. Gives up
    /// at the first failure (the batch stays held, to be retried).
    async fn flush(&mut self) -> Result<(), String> {
        while !self.deliveries.is_empty() {
            self.cut();
        }
        while let Some(front) = self.writing.front_mut() {
            if front.write.is_none() {
                let mut batch = self.writing.pop_front().expect("front exists");
                self.start(&mut batch);
                self.writing.push_front(batch);
            }
            self.finish_front().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use chrono::{DateTime, Utc};
    use tokio::sync::{Notify, oneshot};

    use super::*;
    use crate::delivery::{Ack, DeliveryContext, Format};
    use crate::domain::{Observation, QcReport, StationId};
    use crate::storage::{HistoryQuery, MemoryCache, QuarantineLog, SqliteStore, Station};

    /// The real SQLite store, with control over when its writes run: a
    /// write holding `hold`'s reading waits until released, and the first
    /// write holding `fail`'s reading fails.
    struct Gated {
        inner: SqliteStore,
        hold: &'static str,
        fail: Mutex<Option<&'static str>>,
        /// Every write holding this station's reading is refused.
        poison: Option<&'static str>,
        release: Notify,
        log: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl ReadingStore for Gated {
        async fn write_batch(&self, batch: Arc<WriteBatch>) -> Result<WriteOutcome, StoreError> {
            let ids: Vec<String> = batch
                .readings
                .iter()
                .map(|r| r.station_id.to_string())
                .collect();
            if let Some(poison) = self.poison
                && ids.iter().any(|id| id == poison)
            {
                self.log
                    .lock()
                    .unwrap()
                    .push(format!("refused {}", ids.join(",")));
                return Err(StoreError::Rejected(format!("{poison} cannot be stored")));
            }
            if ids.iter().any(|id| id == self.hold) {
                self.release.notified().await;
            }
            let fail = {
                let mut fail = self.fail.lock().unwrap();
                let now = fail.is_some_and(|f| ids.iter().any(|id| id == f));
                if now {
                    *fail = None;
                }
                now
            };
            if fail {
                self.log
                    .lock()
                    .unwrap()
                    .push(format!("failed {}", ids.join(",")));
                return Err(StoreError::Task("store unavailable".into()));
            }
            let outcome = self.inner.write_batch(batch).await?;
            self.log
                .lock()
                .unwrap()
                .push(format!("stored {}", ids.join(",")));
            Ok(outcome)
        }
        async fn ping(&self) -> Result<(), StoreError> {
            self.inner.ping().await
        }
        async fn stations(&self) -> Result<Vec<Station>, StoreError> {
            self.inner.stations().await
        }
        async fn station(&self, id: &StationId) -> Result<Option<Station>, StoreError> {
            self.inner.station(id).await
        }
        async fn latest(&self, id: &StationId) -> Result<Option<Reading>, StoreError> {
            self.inner.latest(id).await
        }
        async fn readings(&self, query: HistoryQuery) -> Result<Vec<Reading>, StoreError> {
            self.inner.readings(query).await
        }
    }

    fn reading(station: &str) -> Reading {
        let at: DateTime<Utc> = "2025-01-13T10:00:00Z".parse().unwrap();
        let mut obs = Observation::new(StationId::parse(station).unwrap(), at);
        obs.temperature_c = Some(10.0);
        Reading::new(obs, at, QcReport::default())
    }

    async fn persister(
        store: Arc<Gated>,
        writers: usize,
        batch_size: usize,
    ) -> (ActorRef<PersisterMsg>, Arc<DeliveryContext>) {
        persister_lingering(store, writers, batch_size, Duration::from_millis(10)).await
    }

    async fn persister_lingering(
        store: Arc<Gated>,
        writers: usize,
        batch_size: usize,
        flush_interval: Duration,
    ) -> (ActorRef<PersisterMsg>, Arc<DeliveryContext>) {
        let (context, _returned) = DeliveryContext::new(1024);
        let args = PersisterArgs {
            store,
            cache: Arc::new(MemoryCache::default()),
            archive: false,
            stored: Arc::default(),
            context: context.clone(),
            batch_size,
            flush_interval,
            writers,
        };
        let (actor, _) = Actor::spawn(None, Persister, args).await.unwrap();
        (actor, context)
    }

    /// Sends one reading as an upload would, returning where its verdict
    /// arrives.
    fn send(
        actor: &ActorRef<PersisterMsg>,
        context: &Arc<DeliveryContext>,
        station: &str,
    ) -> oneshot::Receiver<Verdict> {
        let (tx, rx) = oneshot::channel();
        let delivery = Delivery::new(
            Some(StationId::parse(station).unwrap()),
            "test".into(),
            bytes::Bytes::new(),
            Format::Json,
            Ack::new(tx),
            context.clone(),
        );
        actor
            .cast(PersisterMsg::store(reading(station), delivery))
            .unwrap();
        rx
    }

    fn gated(hold: &'static str, fail: Option<&'static str>) -> (Arc<Gated>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let inner = SqliteStore::open(&dir.path().join("t.sqlite3")).unwrap();
        let store = Arc::new(Gated {
            inner,
            hold,
            fail: Mutex::new(fail),
            poison: None,
            release: Notify::new(),
            log: Mutex::new(Vec::new()),
        });
        (store, dir)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_later_batch_that_commits_first_waits_for_the_earlier_one() {
        let (store, _dir) = gated("WS001", None);
        let (actor, context) = persister(store.clone(), 2, 1).await;
        let mut first = send(&actor, &context, "WS001");
        let mut second = send(&actor, &context, "WS002");
        // Both are being written at once: the second commits while the
        // first is held, and is not acknowledged before the first.
        tokio::time::timeout(Duration::from_secs(5), async {
            while store.log.lock().unwrap().is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the second batch is written while the first waits");
        assert_eq!(*store.log.lock().unwrap(), vec!["stored WS002"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(first.try_recv().is_err(), "the first is not stored yet");
        assert!(
            second.try_recv().is_err(),
            "the second is held back behind the first"
        );
        store.release.notify_one();
        let stored = Verdict::Stored {
            readings: 1,
            rejected: 0,
        };
        assert_eq!(first.await.unwrap(), stored);
        assert_eq!(second.await.unwrap(), stored);
        assert_eq!(
            *store.log.lock().unwrap(),
            vec!["stored WS002", "stored WS001"]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_batch_is_retried_and_nothing_is_acknowledged_before_it() {
        let (store, _dir) = gated("none", Some("WS011"));
        let (actor, context) = persister(store.clone(), 2, 1).await;
        let first = send(&actor, &context, "WS011");
        let second = send(&actor, &context, "WS012");
        let stored = Verdict::Stored {
            readings: 1,
            rejected: 0,
        };
        let both = tokio::time::timeout(Duration::from_secs(5), async {
            (first.await.unwrap(), second.await.unwrap())
        })
        .await
        .expect("both stored after the retry");
        assert_eq!(both, (stored.clone(), stored));
        let log = store.log.lock().unwrap().clone();
        assert_eq!(
            log.first().map(String::as_str),
            Some("failed WS011"),
            "{log:?}"
        );
        assert!(log.contains(&"stored WS011".to_owned()), "{log:?}");
        assert!(log.contains(&"stored WS012".to_owned()), "{log:?}");
        // Flushing finds nothing left.
        let flushed = actor
            .call(PersisterMsg::Flush, Some(Duration::from_secs(5)))
            .await
            .unwrap();
        assert!(matches!(flushed, ractor::rpc::CallResult::Success(Ok(()))));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_delivery_the_store_refuses_is_quarantined_and_holds_up_nothing() {
        let (store, _dir) = gated("none", None);
        let mut store = Arc::into_inner(store).unwrap();
        store.poison = Some("WS023");
        let store = Arc::new(store);
        let (actor, context) = persister(store.clone(), 2, 4).await;
        let verdicts = ["WS021", "WS022", "WS023", "WS024"].map(|s| send(&actor, &context, s));
        let mut got = Vec::new();
        for v in verdicts {
            got.push(
                tokio::time::timeout(Duration::from_secs(5), v)
                    .await
                    .expect("every delivery answered")
                    .unwrap(),
            );
        }
        let stored = Verdict::Stored {
            readings: 1,
            rejected: 0,
        };
        assert_eq!(got[0], stored);
        assert_eq!(got[1], stored);
        assert_eq!(got[3], stored);
        assert!(
            matches!(&got[2], Verdict::Rejected { code: "store_rejected", message }
                if message.contains("WS023 cannot be stored")),
            "{:?}",
            got[2]
        );
        // Found by halves: the whole batch, then the half holding it, then
        // the delivery alone.
        let log = store.log.lock().unwrap().clone();
        assert_eq!(log[0], "refused WS021,WS022,WS023,WS024", "{log:?}");
        assert!(log.contains(&"refused WS023,WS024".to_owned()), "{log:?}");
        assert!(log.contains(&"refused WS023".to_owned()), "{log:?}");
        let quarantined = store.inner.quarantine(10, None).await.unwrap();
        assert_eq!(quarantined.len(), 1);
        assert_eq!(quarantined[0].reason_code, "store_rejected");
        let station = StationId::parse("WS024").unwrap();
        assert!(store.latest(&station).await.unwrap().is_some());
    }

    /// Group commit: with no flush interval a batch is cut as soon as a
    /// writer is free; what arrives while the writer is busy becomes the
    /// next batch, of at most `batch_size` deliveries.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_are_cut_when_a_writer_is_free_and_grow_while_it_is_busy() {
        let (store, _dir) = gated("WS031", None);
        let (actor, context) = persister_lingering(store.clone(), 1, 2, Duration::ZERO).await;
        let first = send(&actor, &context, "WS031");
        // The one writer is busy with WS031 (held): these wait for it.
        let rest = ["WS032", "WS033", "WS034"].map(|s| send(&actor, &context, s));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(store.log.lock().unwrap().is_empty(), "WS031 is held");
        store.release.notify_one();
        let stored = Verdict::Stored {
            readings: 1,
            rejected: 0,
        };
        assert_eq!(first.await.unwrap(), stored);
        for verdict in rest {
            let verdict = tokio::time::timeout(Duration::from_secs(5), verdict)
                .await
                .expect("stored without waiting for more")
                .unwrap();
            assert_eq!(verdict, stored);
        }
        assert_eq!(
            *store.log.lock().unwrap(),
            vec!["stored WS031", "stored WS032,WS033", "stored WS034"]
        );
    }
}
