//! Several isobar instances as one service on a Kafka log: the readings
//! topic, keyed by station, so that every reading of one station is in one
//! partition, in order, whoever produced it.
//!
//! What lives here knows Kafka and no actor: where a station's readings
//! go (the partition Java's clients pick, so producers outside isobar,
//! such as an IoT Core rule or Kafka Connect, put a station where isobar
//! does) and the topic itself.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

/// The partition of `key` among `partitions`, as Kafka's Java clients
/// choose it (`Utils.toPositive(Utils.murmur2(key)) % partitions`), and
/// librdkafka with `partitioner=murmur2_random`.
pub fn partition_of(key: &[u8], partitions: u32) -> u32 {
    assert!(partitions > 0, "a topic has at least one partition");
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// Kafka's murmur2 (the 32-bit MurmurHash2 with Kafka's seed), as in
/// `org.apache.kafka.common.utils.Utils.murmur2`.
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes(chunk.try_into().expect("four bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() == 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if let Some(first) = rest.first() {
        h ^= u32::from(*first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// What went wrong talking to Kafka, with what was asked.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("kafka at {brokers}: {reason}")]
    Client { brokers: String, reason: String },
    #[error("kafka topic {topic}: {reason}")]
    Topic { topic: String, reason: String },
}

/// Creates `topic` with `partitions` partitions (replicated `replication`
/// times) unless it exists; an existing topic is left as it is, whatever
/// its partition count. Returns its partition count.
pub async fn ensure_topic(
    brokers: &str,
    topic: &str,
    partitions: u32,
    replication: u16,
) -> Result<u32, KafkaError> {
    let client_error = |e: rdkafka::error::KafkaError| KafkaError::Client {
        brokers: brokers.to_owned(),
        reason: e.to_string(),
    };
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(client_error)?;
    let new = NewTopic::new(
        topic,
        partitions as i32,
        TopicReplication::Fixed(i32::from(replication)),
    );
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics([&new], &options)
        .await
        .map_err(client_error)?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => {
                return Err(KafkaError::Topic {
                    topic: topic.to_owned(),
                    reason: code.to_string(),
                });
            }
        }
    }
    let metadata = admin
        .inner()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(client_error)?;
    let found = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .ok_or_else(|| KafkaError::Topic {
            topic: topic.to_owned(),
            reason: "not in the cluster's metadata after creating it".into(),
        })?;
    Ok(found.partitions().len() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values of Kafka's own test of `Utils.murmur2`.
    #[test]
    fn murmur2_is_kafkas() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, expected) in cases {
            assert_eq!(
                murmur2(key) as i32,
                expected,
                "{}",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn a_partition_is_the_positive_hash_modulo_the_count() {
        // murmur2("foobar") is negative as Java reads it: its sign bit goes.
        let h = murmur2(b"foobar");
        assert!(h & 0x8000_0000 != 0);
        assert_eq!(partition_of(b"foobar", 12), (h & 0x7fff_ffff) % 12);
        assert_eq!(partition_of(b"foobar", 1), 0);
        for n in 1..50 {
            assert!(partition_of(format!("WS{n}").as_bytes(), 7) < 7);
        }
    }
}
