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

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::actors::kafka_ingest::{FORMAT_HEADER, REJECT_HEADER, TOPIC_HEADER};
use crate::cluster::{KafkaError, client_config, ensure_topic_on};
use crate::config::ClusterSettings;
use crate::delivery::{Arrival, Verdict};

pub struct Bridge {
    producer: FutureProducer,
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
        let producer: FutureProducer = config
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
            .create()
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
        let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic)
            .payload(&payload[..])
            .headers(headers)
            .timestamp(chrono::Utc::now().timestamp_millis());
        if let Some(key) = key {
            record = record.key(key);
        }
        let started = Instant::now();
        match self.producer.send_result(record) {
            Ok(delivery) => {
                tokio::spawn(async move {
                    match delivery.await {
                        Ok(Ok(_)) => {
                            metrics::histogram!("isobar_bridge_produce_seconds")
                                .record(started.elapsed().as_secs_f64());
                            metrics::counter!("isobar_bridge_forwarded_total").increment(1);
                            ack.send(Verdict::Forwarded);
                        }
                        Ok(Err((e, _))) => {
                            // Only what no retry mends (a record too large,
                            // a topic it may not write): its source may
                            // send it again, and is told nothing was kept.
                            metrics::counter!("isobar_bridge_errors_total").increment(1);
                            tracing::error!(error = %e, source = %crate::domain::Name(&source),
                                "bridge: Kafka refused a record");
                            ack.abandon();
                        }
                        // The producer is gone (shutdown).
                        Err(_) => ack.abandon(),
                    }
                });
            }
            Err((e, _)) => {
                metrics::counter!("isobar_bridge_errors_total").increment(1);
                tracing::warn!(error = %e, "bridge: could not queue a record for Kafka; \
                    its source sends it again");
                ack.abandon();
            }
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
