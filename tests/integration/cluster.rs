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
    let db = TestDb::create("cluster").await;
    let url = db.url.clone();
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
    let admin = db.client().await;
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
    db.drop().await;
}

/// A database of the test's own, dropped at the end.
struct TestDb {
    name: String,
    url: String,
}

impl TestDb {
    async fn create(what: &str) -> TestDb {
        let unique = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("isobar_{what}_{unique}");
        crate::common::pg_admin(&format!("CREATE DATABASE {name}")).await;
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        TestDb { name, url }
    }

    async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }

    async fn drop(self) {
        crate::common::pg_admin(&format!("DROP DATABASE {} WITH (FORCE)", self.name)).await;
    }
}

/// A broker and a database of the test's own, the readings topic made
/// with 12 partitions.
async fn cluster_of(what: &str) -> (PrivateKafka, String, TestDb) {
    let kafka = PrivateKafka::start();
    let brokers = kafka.brokers();
    let db = TestDb::create(what).await;
    ensure_topic(&brokers, "readings", 12, 1).await.unwrap();
    (kafka, brokers, db)
}

/// A config file holding the alert rules (`hot` above 30 °C, silent
/// after 6 s), in a directory kept as long as the returned handle, and
/// its path.
fn alerts_config() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("isobar.toml");
    std::fs::write(&config, crate::common::alert_rules("6s")).unwrap();
    let path = config.to_str().unwrap().to_owned();
    (dir, path)
}

/// A worker of the cluster on `brokers` and `db`, named `name`.
fn worker(name: &str, brokers: &str, db: &TestDb, more: &[(&str, &str)]) -> crate::common::Daemon {
    worker_with(name, brokers, db, more, &[])
}

fn worker_with(
    name: &str,
    brokers: &str,
    db: &TestDb,
    more: &[(&str, &str)],
    args: &[&str],
) -> crate::common::Daemon {
    let mut env = vec![
        ("ISOBAR__CLUSTER__ROLE", "worker"),
        ("ISOBAR__CLUSTER__BROKERS", brokers),
        ("ISOBAR__CLUSTER__TOPIC", "readings"),
        ("ISOBAR__CLUSTER__PARTITIONS", "12"),
        ("ISOBAR__CLUSTER__INSTANCE", name),
        ("ISOBAR__STORAGE__BACKEND", "postgres"),
        ("ISOBAR__STORAGE__POSTGRES_URL", db.url.as_str()),
    ];
    env.extend_from_slice(more);
    crate::common::Daemon::start_with_env(args, &env)
}

/// What a worker's supervision view says: the partitions it owns, the
/// live members it sees, whether it leads, and its stations' actors.
struct Seen {
    owned: Vec<i64>,
    members: Vec<String>,
    leader: bool,
    stations: Vec<String>,
}

async fn seen(worker: &crate::common::Daemon) -> Seen {
    let (status, body) = worker.get("/api/v1/supervision").await;
    assert_eq!(status, 200, "{body}");
    let cluster = &body["cluster"];
    Seen {
        owned: cluster["owned"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_i64().unwrap())
            .collect(),
        members: cluster["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["instance"].as_str().unwrap().to_owned())
            .collect(),
        leader: cluster["leader"].as_bool().unwrap(),
        stations: body["stations"]["children"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["station_id"].as_str().unwrap().to_owned())
            .collect(),
    }
}

/// Waits until `workers` own the 12 partitions between them, each its
/// share, each seeing all of them as members, and one of them leads.
async fn balanced(workers: &[&crate::common::Daemon]) {
    crate::common::eventually(Duration::from_secs(30), "partitions shared", || async {
        let mut owned = Vec::new();
        let mut leaders = 0;
        for w in workers {
            let s = seen(w).await;
            if s.members.len() != workers.len() || s.owned.len() != 12 / workers.len() {
                return None;
            }
            leaders += usize::from(s.leader);
            owned.extend(s.owned);
        }
        owned.sort_unstable();
        (owned == (0..12).collect::<Vec<_>>() && leaders == 1).then_some(())
    })
    .await;
}

/// Produces `rounds` readings of each of `stations`, one round every
/// `every`, minute `first + round` of a day a month ago, with values
/// that vary every reading.
async fn steady(
    brokers: String,
    stations: Vec<String>,
    first: i64,
    rounds: i64,
    every: Duration,
) -> i64 {
    let producer = producer(&brokers);
    let start = chrono::Utc::now() - chrono::TimeDelta::days(30);
    let mut sent = Vec::new();
    for minute in first..first + rounds {
        let at = (start + chrono::TimeDelta::minutes(minute)).to_rfc3339();
        for (i, station) in stations.iter().enumerate() {
            let t = 8.0 + (minute % 11) as f64 * 0.3 + i as f64 * 0.01;
            let body = crate::common::reading(station, &at, t);
            sent.push(
                producer
                    .send_result(FutureRecord::to("readings").key(station).payload(&body))
                    .map_err(|(e, _)| e)
                    .unwrap(),
            );
        }
        tokio::time::sleep(every).await;
    }
    for delivery in &mut sent {
        delivery.await.unwrap().unwrap();
    }
    sent.len() as i64
}

/// Every station's readings were handed in in the order they were
/// observed: along observed_at, received_at never goes back.
async fn in_order(db: &TestDb) {
    let client = db.client().await;
    let out_of_order: i64 = client
        .query_one(
            "SELECT count(*) FROM (
                 SELECT received_at < lag(received_at) OVER w AS back
                 FROM observations
                 WINDOW w AS (PARTITION BY station_id ORDER BY observed_at)) t
             WHERE back",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(out_of_order, 0, "readings handed in out of order");
}

/// Three workers share the topic's partitions, one leading. Under steady
/// load one is killed with -9: its partitions move to the other two,
/// nothing is lost or stored twice, every station's readings go in in
/// order, and each station's actor then runs on exactly one worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_share_the_partitions_and_a_killed_ones_move_without_loss() {
    let (_kafka, brokers, db) = cluster_of("three").await;
    let w1 = worker("w1", &brokers, &db, &[]);
    let w2 = worker("w2", &brokers, &db, &[]);
    let w3 = worker("w3", &brokers, &db, &[]);
    balanced(&[&w1, &w2, &w3]).await;
    let stations: Vec<String> = (0..40).map(|i| format!("CL{i:03}")).collect();
    let load = tokio::spawn(steady(
        brokers.clone(),
        stations.clone(),
        0,
        200,
        Duration::from_millis(40),
    ));
    // Killed while the load goes on, once it has stored some.
    crate::common::eventually(Duration::from_secs(30), "readings stored", || async {
        (count_stored(&db.url).await > 2_000).then_some(())
    })
    .await;
    let before = seen(&w2).await;
    assert_eq!(before.owned.len(), 4);
    assert!(!before.stations.is_empty(), "w2 ran station actors");
    let kept = (seen(&w1).await.owned, seen(&w3).await.owned);
    w2.kill();
    balanced(&[&w1, &w3]).await;
    // The survivors split w2's partitions and keep nearly all of theirs
    // (at most 2 move between them; dealing by rank moved 4 here).
    let (now1, now3) = (seen(&w1).await.owned, seen(&w3).await.owned);
    let lost = kept.0.iter().filter(|p| !now1.contains(p)).count()
        + kept.1.iter().filter(|p| !now3.contains(p)).count();
    assert!(
        lost <= 2,
        "{lost} partitions moved between survivors: {kept:?} became {now1:?} and {now3:?}"
    );
    let total = load.await.unwrap();
    assert_eq!(total, 40 * 200);
    crate::common::eventually(Duration::from_secs(60), "every reading stored", || async {
        (count_stored(&db.url).await == total).then_some(())
    })
    .await;
    in_order(&db).await;
    // Each station's actor on one worker, and every station on one.
    let (a, b) = (seen(&w1).await, seen(&w3).await);
    let both: Vec<&String> = a
        .stations
        .iter()
        .filter(|s| b.stations.contains(s))
        .collect();
    assert!(both.is_empty(), "stations on both workers: {both:?}");
    let mut all: Vec<String> = a.stations.iter().chain(&b.stations).cloned().collect();
    all.sort();
    assert_eq!(all, stations);
    // Each member's heartbeat tells the others how many station actors it
    // runs: w3's view of the cluster says what w1 and w3 say of themselves.
    crate::common::eventually(Duration::from_secs(10), "station counts shared", || async {
        let (_, body) = w3.get("/api/v1/supervision").await;
        let counts: BTreeMap<String, usize> = body["cluster"]["members"]
            .as_array()?
            .iter()
            .map(|m| {
                let n = m["stations"].as_u64().unwrap() as usize;
                (m["instance"].as_str().unwrap().to_owned(), n)
            })
            .collect();
        let want = BTreeMap::from([
            ("w1".to_owned(), a.stations.len()),
            ("w3".to_owned(), b.stations.len()),
        ]);
        (counts == want).then_some(())
    })
    .await;
    for (w, s) in [(&w1, &a), (&w3, &b)] {
        for station in &s.stations {
            let p = partition_of(station.as_bytes(), 12) as i64;
            assert!(
                s.owned.contains(&p),
                "{station} of partition {p} on {}",
                w.web
            );
        }
        // Everything read: each owned partition's lag comes down to 0.
        crate::common::eventually(Duration::from_secs(20), "no lag", || async {
            let metrics = w.metrics().await;
            let lags: Vec<f64> = s
                .owned
                .iter()
                .filter_map(|p| {
                    let line = format!("isobar_cluster_consumer_lag{{partition=\"{p}\"}} ");
                    metrics
                        .lines()
                        .find_map(|l| l.strip_prefix(&line).and_then(|v| v.parse().ok()))
                })
                .collect();
            (lags.len() == s.owned.len() && lags.iter().all(|l| *l == 0.0)).then_some(())
        })
        .await;
    }
    assert_eq!(w1.terminate(), Some(0));
    assert_eq!(w3.terminate(), Some(0));
    db.drop().await;
}

/// Alerts recorded, per rule and station: how many times each fired.
async fn fired(db: &TestDb) -> BTreeMap<(String, String), i64> {
    db.client()
        .await
        .query(
            "SELECT rule, station_id, count(*) FROM alerts GROUP BY 1, 2",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect()
}

/// One reading of `station` observed now, keyed by it.
async fn now_reading(producer: &FutureProducer, station: &str, temperature: f64) {
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let body = crate::common::reading(station, &at, temperature);
    producer
        .send(
            FutureRecord::to("readings").key(station).payload(&body),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
}

/// Across a failover an alert fires once per rule and station: the
/// worker that takes a station over knows what its last owner fired, and
/// the leader's duties (silent stations) move to a survivor, which knows
/// what the last leader fired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_once_across_a_failover_and_the_leaders_duties_move() {
    let (_kafka, brokers, db) = cluster_of("alerts").await;
    let (_dir, config) = alerts_config();
    let args = ["--config", config.as_str()];
    let w1 = worker_with("w1", &brokers, &db, &[], &args);
    let w2 = worker_with("w2", &brokers, &db, &[], &args);
    balanced(&[&w1, &w2]).await;
    let (leader, other) = if seen(&w1).await.leader {
        (w1, w2)
    } else {
        (w2, w1)
    };
    // A hot station the leader owns, so one kill moves both.
    let owned = seen(&leader).await.owned;
    let hot = (0..)
        .map(|i| format!("HOT{i}"))
        .find(|s| owned.contains(&(partition_of(s.as_bytes(), 12) as i64)))
        .unwrap();
    let producer = producer(&brokers);
    now_reading(&producer, "QUIET1", 12.0).await;
    let feeding = |until: Duration| {
        let producer = producer.clone();
        let (hot, quiet2) = (hot.clone(), "QUIET2");
        async move {
            let start = Instant::now();
            while start.elapsed() < until {
                now_reading(&producer, &hot, 33.0).await;
                now_reading(&producer, quiet2, 11.0).await;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    // The hot station fires on its owner, the quiet one on the leader.
    let feed = tokio::spawn(feeding(Duration::from_secs(10)));
    crate::common::eventually(Duration::from_secs(30), "both alerts", || async {
        let f = fired(&db).await;
        (f.contains_key(&("hot".into(), hot.clone()))
            && f.contains_key(&("station_silent".into(), "QUIET1".into())))
        .then_some(())
    })
    .await;
    leader.kill();
    balanced(&[&other]).await;
    assert!(seen(&other).await.leader, "the survivor leads");
    feed.await.unwrap();
    // QUIET2 goes quiet after the failover: the new leader fires it; then
    // the hot station stops, and fires as silent too.
    crate::common::eventually(
        Duration::from_secs(30),
        "silence after the move",
        || async {
            let f = fired(&db).await;
            (f.contains_key(&("station_silent".into(), "QUIET2".into()))
                && f.contains_key(&("station_silent".into(), hot.clone())))
            .then_some(())
        },
    )
    .await;
    // A few more checks by the new leader, then: once each.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let f = fired(&db).await;
    for key in [
        ("hot".to_owned(), hot.clone()),
        ("station_silent".to_owned(), "QUIET1".to_owned()),
        ("station_silent".to_owned(), "QUIET2".to_owned()),
        ("station_silent".to_owned(), hot.clone()),
    ] {
        assert_eq!(f.get(&key), Some(&1), "{key:?} in {f:?}");
    }
    assert_eq!(other.terminate(), Some(0));
    db.drop().await;
}

/// Under steady load, every worker is restarted in turn (stopped with
/// SIGTERM, started again under its name), then the broker is restarted:
/// nothing is lost or stored twice, and at the end the group has
/// committed every record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_and_a_broker_restart_lose_nothing() {
    let (mut kafka, brokers, db) = cluster_of("rolling").await;
    let w1 = worker("w1", &brokers, &db, &[]);
    let w2 = worker("w2", &brokers, &db, &[]);
    balanced(&[&w1, &w2]).await;
    let stations: Vec<String> = (0..30).map(|i| format!("RR{i:03}")).collect();
    let load = tokio::spawn(steady(
        brokers.clone(),
        stations.clone(),
        0,
        300,
        Duration::from_millis(40),
    ));
    let stored_more = |than: i64| {
        let url = db.url.clone();
        async move {
            crate::common::eventually(Duration::from_secs(30), "more stored", || async {
                (count_stored(&url).await > than).then_some(())
            })
            .await;
        }
    };
    stored_more(1_000).await;
    assert_eq!(w1.terminate(), Some(0));
    let w1 = worker("w1", &brokers, &db, &[]);
    balanced(&[&w1, &w2]).await;
    stored_more(count_stored(&db.url).await).await;
    assert_eq!(w2.terminate(), Some(0));
    let w2 = worker("w2", &brokers, &db, &[]);
    balanced(&[&w1, &w2]).await;
    stored_more(count_stored(&db.url).await).await;
    kafka.restart();
    let total = load.await.unwrap();
    assert_eq!(total, 30 * 300);
    crate::common::eventually(Duration::from_secs(90), "every reading stored", || async {
        (count_stored(&db.url).await == total).then_some(())
    })
    .await;
    in_order(&db).await;
    assert_eq!(w1.terminate(), Some(0));
    assert_eq!(w2.terminate(), Some(0));
    assert_eq!(committed_total(&brokers, "readings", 12), total);
    db.drop().await;
}

/// A bridge takes readings over MQTT (its embedded server) and HTTP and
/// hands each to the topic keyed by station; a worker stores them all.
/// A publish is acknowledged only once Kafka has it: with the broker
/// away, its PUBACK waits until the broker is back. A message naming no
/// station reaches the worker's quarantine with the bridge's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_acknowledges_only_what_kafka_has_and_a_worker_stores_it() {
    let (mut kafka, brokers, db) = cluster_of("bridge").await;
    let bridge = crate::common::Daemon::start_with_env(
        &[],
        &[
            ("ISOBAR__CLUSTER__ROLE", "bridge"),
            ("ISOBAR__CLUSTER__BROKERS", brokers.as_str()),
            ("ISOBAR__CLUSTER__TOPIC", "readings"),
            ("ISOBAR__CLUSTER__PARTITIONS", "12"),
        ],
    );
    let w1 = worker("w1", &brokers, &db, &[]);
    balanced(&[&w1]).await;
    let publisher = crate::common::Publisher::connect(&bridge, "bridge-station").await;
    let start = chrono::Utc::now() - chrono::TimeDelta::days(2);
    let stations: Vec<String> = (0..10).map(|i| format!("BR{i:02}")).collect();
    for minute in 0..50 {
        let at = (start + chrono::TimeDelta::minutes(minute)).to_rfc3339();
        for (i, station) in stations.iter().enumerate() {
            publisher
                .reading(station, &at, 5.0 + (minute % 9) as f64 + i as f64 * 0.1)
                .await;
        }
    }
    // Uploads too: isobar JSON and Weather Underground's form.
    let http = reqwest::Client::new();
    let upload = http
        .post(bridge.url("/api/v1/ingest/BR99"))
        .header("content-type", "application/json")
        .body(crate::common::reading("BR99", &start.to_rfc3339(), 7.5))
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 202);
    let body: serde_json::Value = upload.json().await.unwrap();
    assert_eq!(body["forwarded"], true);
    let wu = http
        .get(bridge.url(
            "/weatherstation/updateweatherstation.php?ID=BR98&PASSWORD=x&dateutc=now&tempf=50.0&action=updateraw",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(wu.status(), 200);
    assert_eq!(wu.text().await.unwrap(), "success\n");
    // A topic naming no station: the worker quarantines it, with why.
    publisher
        .publish("weather/not a station/observations", "{}")
        .await;
    crate::common::eventually(Duration::from_secs(60), "all stored", || async {
        (count_stored(&db.url).await == 502).then_some(())
    })
    .await;
    in_order(&db).await;
    let quarantined = crate::common::eventually(Duration::from_secs(30), "quarantined", || async {
        let (_, body) = w1.get("/api/v1/quarantine").await;
        body["items"].as_array().and_then(|r| r.first().cloned())
    })
    .await;
    assert_eq!(
        quarantined["reason_code"], "invalid_station_id",
        "{quarantined}"
    );
    assert_eq!(
        quarantined["source"], "weather/not a station/observations",
        "{quarantined}"
    );
    // Kafka away: no PUBACK; back: the PUBACK comes, and the reading is
    // stored.
    kafka.stop();
    let mut options = rumqttc::MqttOptions::new("bridge-late", &bridge.mqtt_host, bridge.mqtt_port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
    let reading = crate::common::reading("BR50", &chrono::Utc::now().to_rfc3339(), 9.0);
    client
        .publish(
            "weather/BR50/observations",
            rumqttc::QoS::AtLeastOnce,
            false,
            reading,
        )
        .await
        .unwrap();
    let mut puback = async || loop {
        if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) = eventloop.poll().await {
            return;
        }
    };
    assert!(
        tokio::time::timeout(Duration::from_secs(3), puback())
            .await
            .is_err(),
        "acknowledged with Kafka away"
    );
    kafka.start_again();
    tokio::time::timeout(Duration::from_secs(60), puback())
        .await
        .expect("acknowledged once Kafka is back");
    crate::common::eventually(
        Duration::from_secs(60),
        "stored once Kafka is back",
        || async { (count_stored(&db.url).await == 503).then_some(()) },
    )
    .await;
    assert_eq!(w1.terminate(), Some(0));
    assert_eq!(bridge.terminate(), Some(0));
    db.drop().await;
}

/// The webhook's queue is the cluster's, in the store: an alert a worker
/// fired and could not post (the webhook refusing) is posted by the next
/// leader once that worker is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_post_a_dead_worker_left_is_made_by_the_next_leader() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (_kafka, brokers, db) = cluster_of("hooks").await;
    let accept = std::sync::Arc::new(AtomicBool::new(false));
    let (port, mut received) = crate::common::webhook_receiver(accept.clone()).await;
    let url = format!("http://127.0.0.1:{port}/hook");
    let (_dir, config) = alerts_config();
    let args = ["--config", config.as_str()];
    let hook = [("ISOBAR__ALERTS__WEBHOOK_URL", url.as_str())];
    let w1 = worker_with("w1", &brokers, &db, &hook, &args);
    balanced(&[&w1]).await;
    now_reading(&producer(&brokers), "HOOK1", 34.0).await;
    // w1 tries, and is refused.
    let refused = tokio::time::timeout(Duration::from_secs(30), received.recv())
        .await
        .expect("w1 posted")
        .unwrap();
    assert_eq!(refused["alert"]["rule"], "hot", "{refused}");
    w1.kill();
    accept.store(true, Ordering::SeqCst);
    while received.try_recv().is_ok() {}
    let w2 = worker_with("w2", &brokers, &db, &hook, &args);
    balanced(&[&w2]).await;
    let posted = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let body = received.recv().await.unwrap();
            if body["alert"]["rule"] == "hot" {
                return body;
            }
        }
    })
    .await
    .expect("the next leader posted the hot alert");
    assert_eq!(posted["alert"]["station_id"], "HOOK1", "{posted}");
    assert_eq!(posted["alert"]["state"], "firing", "{posted}");
    assert_eq!(
        fired(&db).await.get(&("hot".into(), "HOOK1".into())),
        Some(&1)
    );
    assert_eq!(w2.terminate(), Some(0));
    db.drop().await;
}

/// With `cluster.rejoin_grace`, a worker restarted under its name takes
/// back the partitions it had, and the other takes none of them while it
/// is away: a restart moves nothing. One that stays away past the grace
/// loses them to the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_worker_gets_its_partitions_back_within_the_grace() {
    let (_kafka, brokers, db) = cluster_of("grace").await;
    let grace = [("ISOBAR__CLUSTER__REJOIN_GRACE", "10s")];
    let w1 = worker("w1", &brokers, &db, &grace);
    let w2 = worker("w2", &brokers, &db, &grace);
    balanced(&[&w1, &w2]).await;
    let before = (seen(&w1).await.owned, seen(&w2).await.owned);
    let moves = async |w: &crate::common::Daemon| {
        let (_, body) = w.get("/api/v1/supervision").await;
        body["cluster"]["rebalances"].as_u64().unwrap()
    };
    let moved = moves(&w1).await;
    assert_eq!(w2.terminate(), Some(0));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(seen(&w1).await.owned, before.0, "w1 took w2's partitions");
    let w2 = worker("w2", &brokers, &db, &grace);
    balanced(&[&w1, &w2]).await;
    assert_eq!((seen(&w1).await.owned, seen(&w2).await.owned), before);
    assert_eq!(moves(&w1).await, moved, "w1 moved partitions");
    // Away for good: w1 waits out the grace, then reads them all.
    w2.kill();
    let gone = Instant::now();
    balanced(&[&w1]).await;
    assert!(
        gone.elapsed() >= Duration::from_secs(7),
        "w2's partitions moved after {:?}, within the grace",
        gone.elapsed()
    );
    assert_eq!(w1.terminate(), Some(0));
    db.drop().await;
}

/// Two combined instances, each a bridge and a worker with its own
/// embedded MQTT server: every station publishes to one of them, and
/// whichever owns the station's partition stores it, once and in order.
/// One stops cleanly; the other then owns every partition and stores the
/// rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn combined_instances_bridge_and_work_and_one_stops_cleanly() {
    let (_kafka, brokers, db) = cluster_of("combined").await;
    let combined = |name: &str| {
        worker(
            name,
            &brokers,
            &db,
            &[("ISOBAR__CLUSTER__ROLE", "combined")],
        )
    };
    let (c1, c2) = (combined("c1"), combined("c2"));
    balanced(&[&c1, &c2]).await;
    for c in [&c1, &c2] {
        let (_, body) = c.get("/api/v1/supervision").await;
        assert_eq!(body["cluster"]["role"], "combined", "{body}");
        let running: Vec<&str> = body["root"]["children"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["state"] == "running")
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            running,
            ["pipeline", "stations", "reader", "ingest", "web"],
            "{body}"
        );
    }
    let stations: Vec<String> = (0..20).map(|i| format!("CB{i:02}")).collect();
    let publishers = [
        crate::common::Publisher::connect(&c1, "combined-a").await,
        crate::common::Publisher::connect(&c2, "combined-b").await,
    ];
    let start = chrono::Utc::now() - chrono::TimeDelta::days(3);
    let publish = async |rounds: std::ops::Range<i64>, to: &[usize]| {
        for minute in rounds {
            let at = (start + chrono::TimeDelta::minutes(minute)).to_rfc3339();
            for (i, station) in stations.iter().enumerate() {
                let via = to[i % to.len()];
                publishers[via]
                    .reading(station, &at, 6.0 + (minute % 7) as f64 + i as f64 * 0.1)
                    .await;
            }
        }
    };
    publish(0..30, &[0, 1]).await;
    crate::common::eventually(Duration::from_secs(60), "all stored", || async {
        (count_stored(&db.url).await == 600).then_some(())
    })
    .await;
    // A station's actor runs where its partition is owned, whichever
    // instance took its readings.
    let (a, b) = (seen(&c1).await, seen(&c2).await);
    for (s, other) in [(&a, &b), (&b, &a)] {
        for station in &s.stations {
            assert!(
                s.owned
                    .contains(&(partition_of(station.as_bytes(), 12) as i64))
            );
            assert!(!other.stations.contains(station), "{station} on both");
        }
    }
    assert_eq!(a.stations.len() + b.stations.len(), 20);
    // c2 stops; what it took is in Kafka and the rest goes through c1.
    assert_eq!(c2.terminate(), Some(0));
    balanced(&[&c1]).await;
    publish(30..40, &[0]).await;
    crate::common::eventually(Duration::from_secs(60), "the rest stored", || async {
        (count_stored(&db.url).await == 800).then_some(())
    })
    .await;
    in_order(&db).await;
    let mut all = seen(&c1).await.stations;
    all.sort();
    assert_eq!(all, stations);
    assert_eq!(c1.terminate(), Some(0));
    db.drop().await;
}

/// A worker reaches the brokers over TLS (`cluster.tls`, `cluster.ca_file`),
/// as it does MSK's TLS listeners: tansu stands behind a TLS front, and
/// what a producer sends over TLS is stored. A client that does not trust
/// the front's CA, or speaks plain TCP to it, gets nothing through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_reads_the_topic_over_tls() {
    let certs = tempfile::tempdir().unwrap();
    crate::common::tls::make_certificates(certs.path());
    let ca = certs.path().join("ca.pem").display().to_string();
    let kafka = PrivateKafka::start_behind_tls(certs.path());
    let brokers = format!("localhost:{}", kafka.port);
    let db = TestDb::create("tls").await;
    let w = worker(
        "w-tls",
        &brokers,
        &db,
        &[
            ("ISOBAR__CLUSTER__TLS", "true"),
            ("ISOBAR__CLUSTER__CA_FILE", ca.as_str()),
        ],
    );
    balanced(&[&w]).await;
    let tls_producer = |ca: Option<&str>, protocol: &str| -> FutureProducer {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &brokers)
            .set("security.protocol", protocol)
            .set("partitioner", "murmur2_random")
            .set("message.timeout.ms", "5000");
        if let Some(ca) = ca {
            config.set("ssl.ca.location", ca);
        }
        config.create().unwrap()
    };
    let at = (chrono::Utc::now() - chrono::TimeDelta::hours(1)).to_rfc3339();
    let send = async |producer: &FutureProducer, station: &str| {
        let body = crate::common::reading(station, &at, 11.5);
        producer
            .send(
                FutureRecord::to("readings").key(station).payload(&body),
                Duration::from_secs(5),
            )
            .await
            .map(|_| ())
            .map_err(|(e, _)| e.to_string())
    };
    let trusted = tls_producer(Some(&ca), "ssl");
    for station in ["TLS01", "TLS02", "TLS03"] {
        send(&trusted, station).await.unwrap();
    }
    crate::common::eventually(Duration::from_secs(30), "stored over TLS", || async {
        (count_stored(&db.url).await == 3).then_some(())
    })
    .await;
    // No CA to trust the front by (the system's roots do not hold it),
    // and no TLS at all: neither gets a record in.
    let untrusting = tls_producer(None, "ssl");
    assert!(
        send(&untrusting, "TLS04").await.is_err(),
        "sent without trusting the CA"
    );
    let plain = tls_producer(None, "plaintext");
    assert!(
        send(&plain, "TLS05").await.is_err(),
        "sent in the clear to TLS"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count_stored(&db.url).await, 3);
    assert_eq!(w.terminate(), Some(0));
    db.drop().await;
}

/// An API instance serves what the workers store, from the shared store
/// and cache, and pushes the workers' readings to its live clients
/// through Redis; it takes no uploads and judges no alerts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_instance_serves_what_the_workers_store() {
    let (_kafka, brokers, db) = cluster_of("api").await;
    let redis = crate::common::PrivateRedis::start();
    let redis_url = format!("redis://127.0.0.1:{}", redis.port);
    let shared = [
        ("ISOBAR__CACHE__BACKEND", "redis"),
        ("ISOBAR__CACHE__REDIS_URL", redis_url.as_str()),
    ];
    let w1 = worker("w1", &brokers, &db, &shared);
    balanced(&[&w1]).await;
    let mut env = vec![
        ("ISOBAR__CLUSTER__ROLE", "api"),
        ("ISOBAR__CLUSTER__INSTANCE", "api-1"),
        // The workers' cluster: it finds them by group and topic.
        ("ISOBAR__CLUSTER__TOPIC", "readings"),
        ("ISOBAR__STORAGE__BACKEND", "postgres"),
        ("ISOBAR__STORAGE__POSTGRES_URL", db.url.as_str()),
    ];
    env.extend_from_slice(&shared);
    let api = crate::common::Daemon::start_with_env(&[], &env);
    let (_, ready) = api.get("/ready").await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["checks"]["mqtt"], "off", "{ready}");
    let (mut live, _) = tokio_tungstenite::connect_async(format!("ws://{}/api/v1/live", api.web))
        .await
        .unwrap();
    assert_eq!(
        crate::common::next_json(&mut live).await["type"],
        "snapshot"
    );
    // Readings produced until one reaches the API's live client (its relay
    // subscribes as it starts).
    let producer = producer(&brokers);
    let deadline = Instant::now() + Duration::from_secs(30);
    let msg = loop {
        assert!(
            Instant::now() < deadline,
            "no reading pushed by the API instance"
        );
        now_reading(&producer, "AP01", 14.5).await;
        if let Ok(msg) = tokio::time::timeout(
            Duration::from_millis(500),
            crate::common::next_where(&mut live, |m| m["type"] == "reading"),
        )
        .await
        {
            break msg;
        }
    };
    assert_eq!(msg["reading"]["station_id"], "AP01");
    let (status, latest) = api.get("/api/v1/stations/AP01/latest").await;
    assert_eq!(status, 200, "{latest}");
    let (status, history) = api.get("/api/v1/stations/AP01/readings").await;
    assert_eq!(status, 200, "{history}");
    // No uploads here, and a clear word where to send them.
    let refused = reqwest::Client::new()
        .post(api.url("/api/v1/ingest/AP02"))
        .header("content-type", "application/json")
        .body(crate::common::reading(
            "AP02",
            &chrono::Utc::now().to_rfc3339(),
            3.0,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "no_ingest", "{body}");
    // It is no member: it owns nothing and does not lead.
    let (_, tree) = api.get("/api/v1/supervision").await;
    assert_eq!(tree["cluster"]["role"], "api", "{tree}");
    assert_eq!(tree["cluster"]["leader"], false, "{tree}");
    assert_eq!(tree["cluster"]["owned"], serde_json::json!([]), "{tree}");
    assert_eq!(seen(&w1).await.members, ["w1"]);
    // It shows the workers, as they say what they own.
    crate::common::eventually(Duration::from_secs(10), "the members", || async {
        (seen(&api).await.members == ["w1"]).then_some(())
    })
    .await;
    assert_eq!(api.terminate(), Some(0));
    assert_eq!(w1.terminate(), Some(0));
    db.drop().await;
}

/// Bridges at an external broker share one subscription: Mosquitto deals
/// the stations' messages between them, each is produced once, and the
/// worker stores every reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridges_share_a_subscription_at_an_external_broker() {
    use rumqttc::{AsyncClient, MqttOptions, QoS};
    let (_kafka, brokers, db) = cluster_of("share").await;
    let port = crate::common::mosquitto::free_port();
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let _mosquitto = crate::common::mosquitto::PrivateMosquitto::start(port, dir, &[]);
    let address = format!("127.0.0.1:{port}");
    let bridge = |name: &str| {
        crate::common::Daemon::start_with_env(
            &[],
            &[
                ("ISOBAR__MQTT__MODE", "external"),
                ("ISOBAR__MQTT__BROKER", address.as_str()),
                ("ISOBAR__CLUSTER__ROLE", "bridge"),
                ("ISOBAR__CLUSTER__INSTANCE", name),
                ("ISOBAR__CLUSTER__BROKERS", brokers.as_str()),
                ("ISOBAR__CLUSTER__TOPIC", "readings"),
                ("ISOBAR__CLUSTER__PARTITIONS", "12"),
            ],
        )
    };
    let (b1, b2) = (bridge("b1"), bridge("b2"));
    for b in [&b1, &b2] {
        crate::common::eventually(Duration::from_secs(20), "subscribed", || async {
            let (status, _) = b.get("/ready").await;
            (status == 200).then_some(())
        })
        .await;
    }
    let w1 = worker("w1", &brokers, &db, &[]);
    balanced(&[&w1]).await;
    let mut options = MqttOptions::new("share-publisher", "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(10));
    let (publisher, mut eventloop) = AsyncClient::new(options, 100);
    let poller = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let start = chrono::Utc::now() - chrono::TimeDelta::days(3);
    for minute in 0..30 {
        let at = (start + chrono::TimeDelta::minutes(minute)).to_rfc3339();
        for i in 0..20 {
            let station = format!("SH{i:02}");
            publisher
                .publish(
                    format!("weather/{station}/observations"),
                    QoS::AtLeastOnce,
                    false,
                    crate::common::reading(&station, &at, 4.0 + i as f64 * 0.2),
                )
                .await
                .unwrap();
        }
    }
    crate::common::eventually(Duration::from_secs(60), "all stored", || async {
        (count_stored(&db.url).await == 600).then_some(())
    })
    .await;
    let forwarded =
        |text: String| crate::common::metric(&text, "isobar_bridge_forwarded_total").unwrap_or(0.0);
    let (one, two) = (forwarded(b1.metrics().await), forwarded(b2.metrics().await));
    assert!(
        one > 0.0 && two > 0.0,
        "both bridges took a share: {one} and {two}"
    );
    assert_eq!(one + two, 600.0, "each message produced once");
    poller.abort();
    assert_eq!(w1.terminate(), Some(0));
    assert_eq!(b1.terminate(), Some(0));
    assert_eq!(b2.terminate(), Some(0));
    db.drop().await;
}
