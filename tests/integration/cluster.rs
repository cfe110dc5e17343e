//! The Kafka log under the cluster mode, against a broker of the test's
//! own (tansu, a Kafka-compatible broker).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use isobar::cluster::{ensure_topic, partition_of};
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::common::kafka::PrivateKafka;

/// The topic is made once with the partitions asked for; asking again
/// leaves it as it is. A station's readings, produced keyed by its id
/// with librdkafka's Java-compatible partitioner, all land in the
/// partition `partition_of` names, in the order they were produced, and
/// a restart of the broker keeps them.
#[tokio::test]
async fn a_stations_readings_land_in_the_partition_java_clients_pick() {
    let mut kafka = PrivateKafka::start();
    let brokers = kafka.brokers();
    assert_eq!(ensure_topic(&brokers, "readings", 6, 1).await.unwrap(), 6);
    assert_eq!(
        ensure_topic(&brokers, "readings", 12, 1).await.unwrap(),
        6,
        "an existing topic is left as it is"
    );
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();
    let stations: Vec<String> = (0..24).map(|i| format!("WS{i:03}")).collect();
    for n in 0..5 {
        for station in &stations {
            let body = format!("{station}:{n}");
            producer
                .send(
                    FutureRecord::to("readings").key(station).payload(&body),
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
        }
    }
    kafka.restart();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "check")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = rdkafka::TopicPartitionList::new();
    for p in 0..6 {
        assignment
            .add_partition_offset("readings", p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut seen: BTreeMap<String, Vec<(i32, String)>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut count = 0;
    while count < stations.len() * 5 {
        assert!(
            Instant::now() < deadline,
            "read {count} of {}",
            stations.len() * 5
        );
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message.unwrap();
        let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
        let body = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
        seen.entry(key)
            .or_default()
            .push((message.partition(), body));
        count += 1;
    }
    for station in &stations {
        let expected = partition_of(station.as_bytes(), 6) as i32;
        let got = &seen[station];
        let order: Vec<String> = (0..5).map(|n| format!("{station}:{n}")).collect();
        assert_eq!(
            got.iter().map(|(_, b)| b.clone()).collect::<Vec<_>>(),
            order,
            "{station}: every reading once, in order"
        );
        assert!(
            got.iter().all(|(p, _)| *p == expected),
            "{station}: partitions {got:?}, Java's partitioner says {expected}"
        );
    }
    let used: std::collections::BTreeSet<i32> = seen.values().flatten().map(|(p, _)| *p).collect();
    assert!(used.len() > 1, "24 stations spread over the partitions");
}
