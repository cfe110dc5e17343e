//! A worker's ingest: reads the cluster's readings topic instead of MQTT
//! and hands each record to the pipeline, as ingest does a publish. A
//! record's key is its station id, its value the reading as a station
//! sent it. Offsets are committed to the consumer group only once the
//! records before them are stored (`cluster::Offsets`), so a worker that
//! dies loses nothing: what it had not stored is read again, by it or by
//! the next, and the store keeps a reading once.
//!
//! It reads only the partitions it owns (`cluster::membership`): every
//! second it looks at the live members, gives up the partitions it no
//! longer wants (stops reading them, waits until what it read of them is
//! stored, commits, stops their stations' actors, then lets their locks
//! go) and takes those it wants whose locks are free. A worker whose
//! session with the store ends gives up everything at once, then joins
//! again.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::{ClientContext, Statistics};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::task::JoinHandle;

use crate::actors::alerter::AlerterMsg;
use crate::actors::ingest::{IngestMsg, reporting_panics};
use crate::actors::pipeline::Pipeline;
use crate::actors::stations::StationsMsg;
use crate::cluster::membership::{JoinError, Membership, wanted};
use crate::cluster::{ClusterView, Offsets, client_config, ensure_topic_on, partition_of};
use crate::config::{ClusterSettings, PostgresTls, Secret};
use crate::delivery::{Ack, Acknowledge, Arrival, Format, Verdict};
use crate::domain::{RejectReason, StationId};

pub struct KafkaIngest;

pub struct KafkaIngestArgs {
    pub cluster: ClusterSettings,
    /// This instance's name among the members.
    pub instance: String,
    pub pipeline: Arc<Pipeline>,
    /// Ingest's part of `/ready` (`mqtt`: for a worker, its topic); a
    /// combined instance leaves it to its MQTT ingest.
    pub health: Option<Arc<crate::health::Health>>,
    /// The store the members share, where they agree on who owns what.
    pub postgres: (Secret, PostgresTls),
    /// What the API shows of the cluster, kept up to date here.
    pub view: Arc<ClusterView>,
    /// Where this instance's API answers, for the other members.
    pub web: Option<String>,
}

pub struct KafkaIngestState {
    consumer: Arc<Reader>,
    offsets: Arc<Offsets>,
    paused: Arc<AtomicBool>,
    /// The reader and the committer.
    tasks: Vec<Task>,
    /// Ownership: stopped last, so its locks go after the last commit.
    owner: Option<Task>,
    topic: String,
}

/// The worker's consumer.
type Reader = StreamConsumer<Lag>;

/// Sets `isobar_cluster_consumer_lag{partition}` from librdkafka's
/// statistics (every 5 s, while the worker reads): the records of each
/// partition it reads not yet handed in (the partition's end less the
/// position read to); a partition given up reads 0.
struct Lag {
    topic: String,
}

impl ClientContext for Lag {
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        // Partition -1 is librdkafka's own, for records not yet placed.
        for p in topic.partitions.values().filter(|p| p.partition >= 0) {
            let lag = if !p.desired {
                0
            } else if p.hi_offset < 0 {
                continue;
            } else {
                // Nothing read yet: all from the low watermark on.
                let from = match (p.app_offset, p.lo_offset) {
                    (read, _) if read >= 0 => read,
                    (_, low) if low >= 0 => low,
                    _ => continue,
                };
                (p.hi_offset - from).max(0)
            };
            metrics::gauge!("isobar_cluster_consumer_lag", "partition" => p.partition.to_string())
                .set(lag as f64);
        }
    }
}

impl ConsumerContext for Lag {}

/// A task of the actor's; aborted with it.
struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Records handed in and not yet stored, past which the worker stops
/// reading until some are stored: the pipeline's bound, as a broker's
/// in-flight window is for MQTT.
const MAX_OPEN: usize = 10_000;

/// How often stored offsets are committed.
const COMMIT_EVERY: Duration = Duration::from_millis(500);

/// The header a bridge puts the MQTT topic (or an upload's route) in,
/// for quarantine records.
pub const TOPIC_HEADER: &str = "mqtt_topic";

/// The header a bridge says in why a record names no station (it has no
/// key then).
pub const REJECT_HEADER: &str = "reject";

/// The header a bridge names the payload's format in (`mqtt`, `json`,
/// `ecowitt`, `wunderground`); without it, a record is read as an MQTT
/// message.
pub const FORMAT_HEADER: &str = "format";

impl Actor for KafkaIngest {
    type Msg = IngestMsg;
    type State = KafkaIngestState;
    type Arguments = KafkaIngestArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: KafkaIngestArgs,
    ) -> Result<KafkaIngestState, ActorProcessingErr> {
        let c = &args.cluster;
        let config = client_config(c)?;
        let partitions = ensure_topic_on(&config, &c.topic, c.partitions, c.replication).await?;
        let consumer: Reader = config
            .clone()
            .set("group.id", &c.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // A partition no worker has committed is read from its start.
            .set("auto.offset.reset", "earliest")
            // What librdkafka fetches ahead of the pipeline: 16 MiB, not
            // its 64 MiB default, as memory goes.
            .set("queued.max.messages.kbytes", "16384")
            // The consumer lag per partition comes with these.
            .set("statistics.interval.ms", "5000")
            .create_with_context(Lag {
                topic: c.topic.clone(),
            })?;
        let consumer = Arc::new(consumer);
        // Nothing is read until partitions are taken: an empty assignment.
        consumer.assign(&TopicPartitionList::new())?;
        if let Some(health) = &args.health {
            health.set_mqtt_subscribed(true);
        }
        let offsets = Arc::new(Offsets::default());
        args.view.update(|v| v.partitions = partitions);
        let owner = Owner {
            consumer: consumer.clone(),
            offsets: offsets.clone(),
            topic: c.topic.clone(),
            group: c.group.clone(),
            partitions,
            instance: args.instance.clone(),
            web: args.web.clone(),
            postgres: args.postgres,
            pipeline: args.pipeline.clone(),
            view: args.view.clone(),
            rejoin_grace: c.rejoin_grace,
        };
        let paused = Arc::new(AtomicBool::new(false));
        let reading = read(
            consumer.clone(),
            offsets.clone(),
            paused.clone(),
            args.pipeline.clone(),
            args.health.clone(),
            partitions,
        );
        let committing = commit_forever(consumer.clone(), offsets.clone(), c.topic.clone());
        tracing::info!(brokers = %c.brokers, topic = %c.topic, group = %c.group, partitions,
            instance = %args.instance, "ingest reading Kafka");
        Ok(KafkaIngestState {
            consumer,
            offsets,
            paused,
            tasks: vec![
                Task(tokio::spawn(reporting_panics(myself.clone(), reading))),
                Task(tokio::spawn(reporting_panics(myself.clone(), committing))),
            ],
            owner: Some(Task(tokio::spawn(reporting_panics(myself, owner.run())))),
            topic: c.topic.clone(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: IngestMsg,
        state: &mut KafkaIngestState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            IngestMsg::Pause(reply) => {
                state.paused.store(true, Ordering::SeqCst);
                let _ = reply.send(());
            }
            IngestMsg::Disconnect(reply) => {
                // What was stored by now is committed before the consumer
                // goes; the rest is read again at the next start.
                state.paused.store(true, Ordering::SeqCst);
                state.tasks.clear();
                if let Err(e) = commit(
                    &state.consumer,
                    &state.offsets,
                    &state.topic,
                    CommitMode::Sync,
                ) {
                    tracing::warn!(error = %e, "could not commit the last offsets; \
                        their records are read again at the next start");
                }
                // Its session ends: its partitions are free for the others.
                state.owner = None;
                let _ = reply.send(());
            }
            IngestMsg::PollerFailed(why) => {
                return Err(format!("the Kafka reader panicked: {why}").into());
            }
        }
        Ok(())
    }
}

/// Reads records and hands them in, holding back while `MAX_OPEN` are
/// open or while paused.
async fn read(
    consumer: Arc<Reader>,
    offsets: Arc<Offsets>,
    paused: Arc<AtomicBool>,
    pipeline: Arc<Pipeline>,
    health: Option<Arc<crate::health::Health>>,
    partitions: u32,
) {
    let received = metrics::counter!("isobar_messages_received_total");
    loop {
        offsets.below(MAX_OPEN).await;
        if paused.load(Ordering::SeqCst) {
            // Only at shutdown, until the actor stops.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let message = match consumer.recv().await {
            Ok(message) => {
                if let Some(health) = &health {
                    health.set_mqtt_subscribed(true);
                }
                message
            }
            Err(e) => {
                if let Some(health) = &health {
                    health.set_mqtt_subscribed(false);
                }
                tracing::warn!(error = %e, "kafka: reading the readings topic");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let (partition, offset) = (message.partition(), message.offset());
        if !offsets.handed_in(partition, offset) {
            // Being given up, or fetched before it was: whoever owns it
            // reads it from the last commit.
            continue;
        }
        received.increment(1);
        let station = station_of(&message);
        if let Ok(id) = &station
            && partition_of(id.as_str().as_bytes(), partitions) as i32 != partition
        {
            misplaced(id, partition);
        }
        pipeline.process(Arrival {
            station,
            source: source_of(&message),
            payload: bytes::Bytes::copy_from_slice(message.payload().unwrap_or_default()),
            format: header(&message, FORMAT_HEADER)
                .and_then(|f| Format::parse(&f))
                .unwrap_or(Format::Mqtt),
            // When the bridge (or whoever produced it) took it: the same
            // each time the record is read.
            received_at: message
                .timestamp()
                .to_millis()
                .and_then(chrono::DateTime::from_timestamp_millis),
            ack: Ack::new(RecordAck {
                offsets: offsets.clone(),
                partition,
                offset,
            }),
        });
    }
}

/// A station's record in a partition other than the one Kafka's Java
/// partitioner gives its key: its producer partitions otherwise, so the
/// station's readings may be split between workers. Counted, and said
/// once.
fn misplaced(station: &StationId, partition: i32) {
    static SAID: AtomicBool = AtomicBool::new(false);
    metrics::counter!("isobar_cluster_misplaced_records_total").increment(1);
    if !SAID.swap(true, Ordering::Relaxed) {
        tracing::warn!(station_id = %station, partition,
            "a record is not in the partition its key hashes to (murmur2): \
             producers must partition as Kafka's Java clients do, or a station's \
             readings may be handled by two workers");
    }
}

/// The station a record is keyed by, or why it names none.
fn station_of(message: &BorrowedMessage<'_>) -> Result<StationId, RejectReason> {
    let key = message.key().unwrap_or_default();
    let key = String::from_utf8_lossy(key);
    StationId::parse(&key).map_err(|e| RejectReason::InvalidStationId {
        value: key.chars().take(64).collect(),
        reason: if key.is_empty() {
            header(message, REJECT_HEADER).unwrap_or_else(|| "the Kafka record has no key".into())
        } else {
            e.to_string()
        },
    })
}

/// A header's value, as text.
fn header(message: &BorrowedMessage<'_>, name: &str) -> Option<String> {
    message.headers().and_then(|headers| {
        headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    })
}

/// Where a record came from, for a quarantine record: the MQTT topic the
/// bridge heard it on, or the record's place in the log.
fn source_of(message: &BorrowedMessage<'_>) -> String {
    header(message, TOPIC_HEADER).unwrap_or_else(|| {
        format!(
            "kafka:{}/{}@{}",
            message.topic(),
            message.partition(),
            message.offset()
        )
    })
}

/// A record's acknowledgement: its offset counts as stored.
struct RecordAck {
    offsets: Arc<Offsets>,
    partition: i32,
    offset: i64,
}

impl Acknowledge for RecordAck {
    fn stored(self: Box<Self>, _verdict: Verdict) {
        self.offsets.stored(self.partition, self.offset);
    }
}

async fn commit_forever(consumer: Arc<Reader>, offsets: Arc<Offsets>, topic: String) {
    let mut every = tokio::time::interval(COMMIT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(e) = commit(&consumer, &offsets, &topic, CommitMode::Async) {
            tracing::warn!(error = %e, "kafka: committing offsets; trying again");
        }
    }
}

/// Commits the offsets that moved since the last commit.
fn commit(
    consumer: &Reader,
    offsets: &Offsets,
    topic: &str,
    mode: CommitMode,
) -> Result<(), rdkafka::error::KafkaError> {
    let commits = offsets.to_commit();
    if commits.is_empty() {
        return Ok(());
    }
    let mut list = TopicPartitionList::new();
    for (partition, offset) in &commits {
        list.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
    }
    let result = consumer.commit(&list, mode);
    if result.is_err() {
        // Committed next time.
        offsets.uncommit(&commits);
    }
    result
}

/// How often a worker looks at the members and rebalances.
const BALANCE_EVERY: Duration = Duration::from_secs(1);

/// How long a partition being given up may take to drain; past it, what
/// is still open is read again by the next owner (and stored once).
const DRAIN_AT_MOST: Duration = Duration::from_secs(20);

/// A member whose heartbeat is this old while its session stays open is
/// ended by the leader.
const STALLED_AFTER: Duration = Duration::from_secs(60);

/// A worker's ownership of partitions.
struct Owner {
    consumer: Arc<Reader>,
    offsets: Arc<Offsets>,
    topic: String,
    group: String,
    partitions: u32,
    instance: String,
    web: Option<String>,
    postgres: (Secret, PostgresTls),
    pipeline: Arc<Pipeline>,
    view: Arc<ClusterView>,
    /// `cluster.rejoin_grace`.
    rejoin_grace: Duration,
}

impl Owner {
    /// Joins, balances every second, and joins again whenever the
    /// session with the store is lost.
    async fn run(self) {
        let mut delay = Duration::from_millis(200);
        loop {
            let mut membership = match self.join().await {
                Ok(membership) => membership,
                Err(e) => {
                    tracing::warn!(error = %e, retry_ms = delay.as_millis() as u64,
                        "cluster: could not join");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            delay = Duration::from_millis(200);
            tracing::info!(instance = %self.instance, "cluster: joined");
            let mut every = tokio::time::interval(BALANCE_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if let Err(e) = self.balance(&mut membership).await {
                    tracing::warn!(error = %e, "cluster: lost the session with the store; \
                        giving up every partition until it is back");
                    let all = membership.owned().clone();
                    self.view.update(|v| v.leader = false);
                    self.release(&all).await;
                    self.view.update(|v| {
                        v.owned.clear();
                        v.members.clear();
                    });
                    break;
                }
            }
        }
    }

    async fn join(&self) -> Result<Membership, JoinError> {
        let session =
            crate::storage::postgres_session(self.postgres.0.expose(), &self.postgres.1).await?;
        Membership::join(
            session,
            &self.group,
            &self.topic,
            &self.instance,
            self.web.clone(),
        )
        .await
    }

    /// One round: the live members, the partitions to give up and to
    /// take, the leader's duties, the heartbeat.
    async fn balance(&self, membership: &mut Membership) -> Result<(), crate::storage::StoreError> {
        // A member away for less than the grace still counts, so its
        // partitions wait for it rather than move twice.
        let (members, away) = membership.roster(self.rejoin_grace).await?;
        let names: Vec<&str> = members
            .iter()
            .map(|m| m.instance.as_str())
            .chain(away.iter().map(String::as_str))
            .collect();
        let want = wanted(&names, &self.instance, self.partitions);
        let leaving: BTreeSet<i32> = membership.owned().difference(&want).copied().collect();
        let mut moved = 0u64;
        if !leaving.is_empty() {
            self.release(&leaving).await;
            for p in &leaving {
                membership.give_up(*p).await?;
            }
            moved += leaving.len() as u64;
            tracing::info!(partitions = ?leaving, "cluster: gave up partitions");
        }
        let missing: Vec<i32> = want.difference(membership.owned()).copied().collect();
        let mut taken = BTreeSet::new();
        for p in missing {
            if membership.take(p).await? {
                taken.insert(p);
            }
        }
        if !taken.is_empty() {
            // The alerts the last owner fired for these stations are known
            // before their readings come.
            if let Some(alerter) = self.pipeline.alerter.get() {
                let _ = alerter
                    .call(AlerterMsg::Resync, Some(Duration::from_secs(5)))
                    .await;
            }
            self.assign(&taken);
            moved += taken.len() as u64;
            tracing::info!(partitions = ?taken, "cluster: took partitions");
        }
        if moved > 0 {
            metrics::counter!("isobar_cluster_rebalances_total").increment(moved);
        }
        let was_leader = membership.is_leader();
        if membership.lead().await? {
            if !was_leader {
                tracing::info!("cluster: this instance now does the cluster-wide duties");
            }
            for ended in membership.fence_stalled(STALLED_AFTER).await? {
                tracing::warn!(instance = %ended, "cluster: ended the session of a member \
                    whose heartbeat stopped; its partitions are free");
            }
        }
        membership.beat(self.view.stations()).await?;
        let owned: Vec<i32> = membership.owned().iter().copied().collect();
        metrics::gauge!("isobar_cluster_partitions_owned").set(owned.len() as f64);
        metrics::gauge!("isobar_cluster_members").set(members.len() as f64);
        self.view.update(|v| {
            v.leader = membership.is_leader();
            v.owned = owned;
            v.rebalances += moved;
            v.members = members;
        });
        Ok(())
    }

    /// Starts reading `partitions` from the group's committed offsets.
    fn assign(&self, partitions: &BTreeSet<i32>) {
        let mut list = TopicPartitionList::new();
        for p in partitions {
            self.offsets.own(*p);
            if let Err(e) = list.add_partition_offset(&self.topic, *p, Offset::Stored) {
                tracing::warn!(error = %e, partition = p, "cluster: could not assign");
            }
        }
        if let Err(e) = self.consumer.incremental_assign(&list) {
            tracing::error!(error = %e, "cluster: could not start reading taken partitions");
        }
    }

    /// Stops reading `partitions`, waits until what was read of them is
    /// stored, commits it, and stops their stations' actors.
    async fn release(&self, partitions: &BTreeSet<i32>) {
        if partitions.is_empty() {
            return;
        }
        let mut list = TopicPartitionList::new();
        for p in partitions {
            self.offsets.stop_taking(*p);
            let _ = list.add_partition(&self.topic, *p);
        }
        if let Err(e) = self.consumer.incremental_unassign(&list) {
            tracing::warn!(error = %e, "cluster: could not stop reading given-up partitions");
        }
        let open = self.offsets.drained(partitions, DRAIN_AT_MOST).await;
        if open > 0 {
            tracing::warn!(
                open,
                "cluster: gave up partitions with records not yet stored; \
                their next owner reads them again"
            );
        }
        if let Err(e) = commit(&self.consumer, &self.offsets, &self.topic, CommitMode::Sync) {
            tracing::warn!(error = %e, "cluster: could not commit given-up partitions; \
                their next owner reads from the last commit");
        }
        for p in partitions {
            self.offsets.forget(*p);
        }
        let count = self.partitions;
        let leaving = partitions.clone();
        let which: crate::actors::stations::StationFilter = Box::new(move |id: &StationId| {
            leaving.contains(&(partition_of(id.as_str().as_bytes(), count) as i32))
        });
        if let Some(stations) = self.pipeline.stations.get() {
            match stations
                .call(
                    |reply| StationsMsg::Release(which, reply),
                    Some(Duration::from_secs(10)),
                )
                .await
            {
                Ok(ractor::rpc::CallResult::Success(n)) => {
                    tracing::debug!(stations = n, "cluster: released stations");
                }
                _ => tracing::warn!("cluster: the stations supervisor did not release stations"),
            }
        }
    }
}
