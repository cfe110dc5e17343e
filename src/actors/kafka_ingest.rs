//! A worker's ingest: reads the cluster's readings topic instead of MQTT
//! and hands each record to the pipeline, as ingest does a publish. A
//! record's key is its station id, its value the reading as a station
//! sent it. Offsets are committed to the consumer group only once the
//! records before them are stored (`cluster::Offsets`), so a worker that
//! dies loses nothing: what it had not stored is read again, by it or by
//! the next, and the store keeps a reading once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::task::JoinHandle;

use crate::actors::ingest::{IngestMsg, reporting_panics};
use crate::actors::pipeline::Pipeline;
use crate::cluster::{Offsets, ensure_topic};
use crate::config::ClusterSettings;
use crate::delivery::{Ack, Acknowledge, Arrival, Format, Verdict};
use crate::domain::{RejectReason, StationId};

pub struct KafkaIngest;

pub struct KafkaIngestArgs {
    pub cluster: ClusterSettings,
    pub pipeline: Arc<Pipeline>,
    /// Ingest's part of `/ready` (`mqtt`: for a worker, its topic).
    pub health: Arc<crate::health::Health>,
}

pub struct KafkaIngestState {
    consumer: Arc<StreamConsumer>,
    offsets: Arc<Offsets>,
    paused: Arc<AtomicBool>,
    tasks: Vec<Task>,
    topic: String,
}

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

/// The header a bridge puts the MQTT topic in, for quarantine records.
pub const TOPIC_HEADER: &str = "mqtt_topic";

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
        let partitions = ensure_topic(&c.brokers, &c.topic, c.partitions, c.replication).await?;
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &c.brokers)
            .set("group.id", &c.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // A partition no worker has committed is read from its start.
            .set("auto.offset.reset", "earliest")
            // What librdkafka fetches ahead of the pipeline: 16 MiB, not
            // its 64 MiB default, as memory goes.
            .set("queued.max.messages.kbytes", "16384")
            .create()?;
        let consumer = Arc::new(consumer);
        // Every partition, from the group's committed offsets.
        let mut assignment = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            assignment.add_partition_offset(&c.topic, p, Offset::Stored)?;
        }
        consumer.assign(&assignment)?;
        args.health.set_mqtt_subscribed(true);
        let offsets = Arc::new(Offsets::default());
        let paused = Arc::new(AtomicBool::new(false));
        let reading = read(
            consumer.clone(),
            offsets.clone(),
            paused.clone(),
            args.pipeline.clone(),
            args.health.clone(),
        );
        let committing = commit_forever(consumer.clone(), offsets.clone(), c.topic.clone());
        tracing::info!(brokers = %c.brokers, topic = %c.topic, group = %c.group, partitions,
            "ingest reading Kafka");
        Ok(KafkaIngestState {
            consumer,
            offsets,
            paused,
            tasks: vec![
                Task(tokio::spawn(reporting_panics(myself.clone(), reading))),
                Task(tokio::spawn(reporting_panics(myself, committing))),
            ],
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
    consumer: Arc<StreamConsumer>,
    offsets: Arc<Offsets>,
    paused: Arc<AtomicBool>,
    pipeline: Arc<Pipeline>,
    health: Arc<crate::health::Health>,
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
                health.set_mqtt_subscribed(true);
                message
            }
            Err(e) => {
                health.set_mqtt_subscribed(false);
                tracing::warn!(error = %e, "kafka: reading the readings topic");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        received.increment(1);
        let (partition, offset) = (message.partition(), message.offset());
        offsets.handed_in(partition, offset);
        pipeline.submit(Arrival {
            station: station_of(&message),
            source: source_of(&message),
            payload: bytes::Bytes::copy_from_slice(message.payload().unwrap_or_default()),
            format: Format::Mqtt,
            ack: Ack::new(RecordAck {
                offsets: offsets.clone(),
                partition,
                offset,
            }),
        });
    }
}

/// The station a record is keyed by, or why it names none.
fn station_of(message: &BorrowedMessage<'_>) -> Result<StationId, RejectReason> {
    let key = message.key().unwrap_or_default();
    let key = String::from_utf8_lossy(key);
    StationId::parse(&key).map_err(|e| RejectReason::InvalidStationId {
        value: key.chars().take(64).collect(),
        reason: if key.is_empty() {
            "the Kafka record has no key".into()
        } else {
            e.to_string()
        },
    })
}

/// Where a record came from, for a quarantine record: the MQTT topic the
/// bridge heard it on, or the record's place in the log.
fn source_of(message: &BorrowedMessage<'_>) -> String {
    message
        .headers()
        .and_then(|headers| {
            headers
                .iter()
                .find(|h| h.key == TOPIC_HEADER)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        })
        .unwrap_or_else(|| {
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

async fn commit_forever(consumer: Arc<StreamConsumer>, offsets: Arc<Offsets>, topic: String) {
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
    consumer: &StreamConsumer,
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
