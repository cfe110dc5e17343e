//! The Kafka log under the cluster mode, against a broker of the test's
//! own (tansu, a Kafka-compatible broker).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use isobar::cluster::{ensure_topic, partition_of};
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::common::count_stored;
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
    let producer = producer(&brokers);
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

/// An idempotent producer of keyed records, with the partitioner of
/// Kafka's Java clients.
fn producer(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap()
}

/// `count` readings of each of `stations`, a minute apart, keyed by
/// station; returns, for each partition, one past its last offset.
async fn produce(
    brokers: &str,
    topic: &str,
    stations: &[String],
    minutes: std::ops::Range<i64>,
) -> BTreeMap<i32, i64> {
    let producer = producer(brokers);
    let start = chrono::Utc::now() - chrono::TimeDelta::days(30);
    let mut sent = Vec::new();
    for minute in minutes {
        let at = (start + chrono::TimeDelta::minutes(minute)).to_rfc3339();
        for station in stations {
            let body = crate::common::reading(station, &at, 10.0 + (minute % 7) as f64);
            // Queued at once, so librdkafka sends them in batches; each
            // station's in order, the producer being idempotent.
            sent.push(
                producer
                    .send_result(FutureRecord::to(topic).key(station).payload(&body))
                    .map_err(|(e, _)| e)
                    .unwrap(),
            );
        }
    }
    let mut ends = BTreeMap::new();
    for delivery in sent {
        let delivered = delivery.await.unwrap().unwrap();
        let end = ends.entry(delivered.partition).or_insert(0);
        *end = (*end).max(delivered.offset + 1);
    }
    ends
}

/// Records the group has committed, over `partitions` partitions of
/// `topic` (offsets start at 0 and follow each other on a new topic).
fn committed_total(brokers: &str, topic: &str, partitions: i32) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "isobar")
        .create()
        .unwrap();
    let mut list = rdkafka::TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, partition);
    }
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .unwrap();
    committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            rdkafka::Offset::Offset(at) => at,
            _ => 0,
        })
        .sum()
}

/// A worker reads the readings topic instead of MQTT and stores every
/// reading. What it commits never covers a reading not yet stored, even
/// while the store stalls, so killed with -9 while it works, the next
/// worker of the group goes on from there and nothing is lost. Stopped
/// cleanly, it commits all it stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_stream_loses_nothing_and_commits_only_what_is_stored() {
    const PER_STATION: i64 = 1000;
    let kafka = PrivateKafka::start();
    let brokers = kafka.brokers();
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let db = format!("isobar_cluster_{unique}");
    crate::common::pg_admin(&format!("CREATE DATABASE {db}")).await;
    let url = format!("postgres://postgres@127.0.0.1:5432/{db}");
    let env = [
        ("ISOBAR__CLUSTER__ROLE", "worker"),
        ("ISOBAR__CLUSTER__BROKERS", brokers.as_str()),
        ("ISOBAR__CLUSTER__TOPIC", "readings"),
        ("ISOBAR__CLUSTER__PARTITIONS", "6"),
        ("ISOBAR__STORAGE__BACKEND", "postgres"),
        ("ISOBAR__STORAGE__POSTGRES_URL", url.as_str()),
    ];
    let stations: Vec<String> = (0..20).map(|i| format!("KW{i:03}")).collect();
    let (first, total) = (
        stations.len() as i64 * PER_STATION * 3 / 4,
        stations.len() as i64 * PER_STATION,
    );
    // A backlog waits when the worker starts.
    ensure_topic(&brokers, "readings", 6, 1).await.unwrap();
    produce(&brokers, "readings", &stations, 0..PER_STATION * 3 / 4).await;
    let worker = crate::common::Daemon::start_with_env(&[], &env);
    // The committed offsets never pass what is stored (read in that
    // order: what is stored only grows).
    let check = || async {
        let committed = committed_total(&brokers, "readings", 6);
        let stored = count_stored(&url).await;
        assert!(
            committed <= stored,
            "committed {committed} records with only {stored} stored"
        );
        (committed, stored)
    };
    // The store stalls for 3 s (a lock holds back every insert) while the
    // worker goes on reading: records wait in the pipeline, unstored.
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    admin
        .batch_execute("BEGIN; LOCK TABLE observations IN EXCLUSIVE MODE")
        .await
        .unwrap();
    let stalled = Instant::now();
    while stalled.elapsed() < Duration::from_secs(3) {
        check().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    admin.batch_execute("COMMIT").await.unwrap();
    // Killed once it has committed, before it has stored it all.
    loop {
        let (committed, stored) = check().await;
        if committed > 0 || stored == first {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker.kill();
    let ends = produce(
        &brokers,
        "readings",
        &stations,
        PER_STATION * 3 / 4..PER_STATION,
    )
    .await;
    let worker = crate::common::Daemon::start_with_env(&[], &env);
    crate::common::eventually(Duration::from_secs(90), "every reading stored", || async {
        (count_stored(&url).await == total).then_some(())
    })
    .await;
    assert_eq!(worker.terminate(), Some(0));
    // All that was stored is committed: the group is at the end of each
    // partition.
    assert_eq!(ends.values().sum::<i64>(), total);
    assert_eq!(committed_total(&brokers, "readings", 6), total);
    crate::common::pg_admin(&format!("DROP DATABASE {db} WITH (FORCE)")).await;
}
