//! A bridge's front door (`cluster.role = "bridge"`): every arrival, an
//! MQTT publish or an upload, goes to the cluster's readings topic keyed
//! by its station id instead of to the station actors, and its source
//! hears that it is done only once Kafka has it. The producer is
//! idempotent with `acks=all` and never gives up on a record
//! (`message.timeout.ms = 0`), so a station's records reach the topic
//! once each and in the order they came, through broker restarts; while
//! Kafka is away, acknowledgements wait, and the MQTT in-flight window
//! holds the stations back.
//!
//! The record carries what a worker needs to handle it as if it had
//! arrived there: the payload as sent, the MQTT topic or upload route
//! (`mqtt_topic`), the payload's format (`format`), why no station could
//! be named (`reject`, on a record without a key), and the time of
//! arrival as the record's timestamp.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use crate::actors::kafka_ingest::{FORMAT_HEADER, REJECT_HEADER, TOPIC_HEADER};
use crate::cluster::{KafkaError, client_config, ensure_topic_on};
use crate::config::ClusterSettings;
use crate::delivery::{Ack, Arrival, Verdict};

pub struct Bridge {
    producer: ThreadedProducer<Delivered>,
    topic: String,
    brokers: String,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("topic", &self.topic)
            .field("brokers", &self.brokers)
            .finish()
    }
}

/// A record on its way to Kafka: who hears when Kafka has it, and since
/// when it is on its way. (librdkafka wants the opaque `Sync`; the mutex
/// makes it so, and is never contended: one thread at a time holds it.)
struct Pending {
    ack: std::sync::Mutex<Ack>,
    source: String,
    sent: Instant,
}

/// Passes each of Kafka's acknowledgements on to its record's source, on
/// the producer's polling thread (acknowledging is a send on a channel).
struct Delivered;

impl ClientContext for Delivered {}

impl ProducerContext for Delivered {
    type DeliveryOpaque = Box<Pending>;

    fn delivery(&self, result: &DeliveryResult<'_>, pending: Box<Pending>) {
        let Pending { ack, source, sent } = *pending;
        let ack = ack.into_inner().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(_) => {
                metrics::histogram!("isobar_bridge_produce_seconds")
                    .record(sent.elapsed().as_secs_f64());
                metrics::counter!("isobar_bridge_forwarded_total").increment(1);
                ack.send(Verdict::Forwarded);
            }
            // Only what no retry mends (a record too large, a topic it may
            // not write), or a purge at shutdown: its source may send it
            // again, and is told nothing was kept.
            Err((e, _)) => {
                metrics::counter!("isobar_bridge_errors_total").increment(1);
                tracing::error!(error = %e, source = %crate::domain::Name(&source),
                    "bridge: Kafka refused a record");
                ack.abandon();
            }
        }
    }
}

impl Bridge {
    /// Makes the topic if it is missing and the producer.
    pub async fn start(cluster: &ClusterSettings) -> Result<Arc<Self>, KafkaError> {
        let config = client_config(cluster)?;
        ensure_topic_on(
            &config,
            &cluster.topic,
            cluster.partitions,
            cluster.replication,
        )
        .await?;
        let producer: ThreadedProducer<Delivered> = config
            .clone()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // Kafka's Java clients' partitioner: a station lands where
            // every other producer puts it.
            .set("partitioner", "murmur2_random")
            // Never given up on: the source waits for its acknowledgement.
            .set("message.timeout.ms", "0")
            .set("linger.ms", "5")
            .set("compression.type", "lz4")
            .create_with_context(Delivered)
            .map_err(|e| KafkaError::Client {
                brokers: cluster.brokers.clone(),
                reason: e.to_string(),
            })?;
        tracing::info!(brokers = %cluster.brokers, topic = %cluster.topic,
            "bridge: arrivals go to Kafka");
        Ok(Arc::new(Self {
            producer,
            topic: cluster.topic.clone(),
            brokers: cluster.brokers.clone(),
        }))
    }

    /// Sends the arrival to the topic now (so a station's records keep
    /// their order) and acknowledges it once Kafka has it.
    pub fn forward(&self, arrival: Arrival) {
        let Arrival {
            station,
            source,
            payload,
            format,
            ack,
            received_at: _,
        } = arrival;
        let mut headers = OwnedHeaders::new()
            .insert(Header {
                key: TOPIC_HEADER,
                value: Some(source.as_bytes()),
            })
            .insert(Header {
                key: FORMAT_HEADER,
                value: Some(format.name().as_bytes()),
            });
        let key = match &station {
            Ok(id) => Some(id.as_str().as_bytes()),
            Err(reason) => {
                let reason = reason.to_string();
                headers = headers.insert(Header {
                    key: REJECT_HEADER,
                    value: Some(reason.as_bytes()),
                });
                None
            }
        };
        let pending = Box::new(Pending {
            ack: std::sync::Mutex::new(ack),
            source,
            sent: Instant::now(),
        });
        let mut record =
            BaseRecord::<[u8], [u8], Box<Pending>>::with_opaque_to(&self.topic, pending)
                .payload(&payload[..])
                .headers(headers)
                .timestamp(chrono::Utc::now().timestamp_millis());
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Err((e, record)) = self.producer.send(record) {
            metrics::counter!("isobar_bridge_errors_total").increment(1);
            tracing::warn!(error = %e, "bridge: could not queue a record for Kafka; \
                its source sends it again");
            let ack = record.delivery_opaque.ack;
            ack.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .abandon();
        }
    }

    /// Waits up to `within` for every record queued to reach Kafka.
    pub async fn flush(self: &Arc<Self>, within: Duration) {
        let this = self.clone();
        let flushed = tokio::task::spawn_blocking(move || this.producer.flush(within)).await;
        if !matches!(flushed, Ok(Ok(()))) {
            tracing::warn!(
                queued = self.producer.in_flight_count(),
                "bridge: records still on their way to Kafka at stop; their sources send them again"
            );
        }
    }
}
