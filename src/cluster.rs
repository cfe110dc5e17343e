//! Several isobar instances as one service on a Kafka log: the readings
//! topic, keyed by station, so that every reading of one station is in one
//! partition, in order, whoever produced it.
//!
//! What lives here knows Kafka and no actor: where a station's readings
//! go (the partition Java's clients pick, so producers outside isobar,
//! such as an IoT Core rule or Kafka Connect, put a station where isobar
//! does), the topic itself, and which offsets a consumer may commit.

pub mod membership;

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::ClusterSettings;

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

/// A client of the cluster's brokers as `cluster` says to connect:
/// `bootstrap.servers`, and TLS and a SASL login when set.
pub fn client_config(cluster: &ClusterSettings) -> Result<ClientConfig, KafkaError> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &cluster.brokers);
    let properties = cluster
        .connection_properties()
        .map_err(|e| KafkaError::Client {
            brokers: cluster.brokers.clone(),
            reason: format!("{}: {}", e.key, e.reason),
        })?;
    for (key, value) in properties {
        config.set(key, value);
    }
    Ok(config)
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
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    ensure_topic_on(&config, topic, partitions, replication).await
}

/// [`ensure_topic`], through a client configured as `config` says.
pub async fn ensure_topic_on(
    config: &ClientConfig,
    topic: &str,
    partitions: u32,
    replication: u16,
) -> Result<u32, KafkaError> {
    let brokers = config.get("bootstrap.servers").unwrap_or_default();
    let client_error = |e: rdkafka::error::KafkaError| KafkaError::Client {
        brokers: brokers.to_owned(),
        reason: e.to_string(),
    };
    let admin: AdminClient<DefaultClientContext> = config.create().map_err(client_error)?;
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

/// What this instance knows of the cluster it is a member of, for the API
/// and for the duties only the leader does.
#[derive(Debug)]
pub struct ClusterView {
    state: Mutex<ClusterState>,
    /// The station actors this instance supervises, for its heartbeat.
    stations: AtomicUsize,
}

/// The cluster as one instance sees it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct ClusterState {
    /// This instance's `cluster.role`: `worker`, `combined` or `api`.
    pub role: String,
    /// This instance's `cluster.instance`.
    pub instance: String,
    /// The readings topic.
    pub topic: String,
    /// The topic's partitions.
    pub partitions: u32,
    /// The partitions this instance owns.
    pub owned: Vec<i32>,
    /// This instance does the cluster-wide duties.
    pub leader: bool,
    /// Partitions this instance took or gave up since it started.
    pub rebalances: u64,
    /// The live members, this one included, by name.
    pub members: Vec<membership::Member>,
}

impl ClusterView {
    pub fn new(role: &str, instance: &str, topic: &str) -> Self {
        Self {
            state: Mutex::new(ClusterState {
                role: role.to_owned(),
                instance: instance.to_owned(),
                topic: topic.to_owned(),
                ..ClusterState::default()
            }),
            stations: AtomicUsize::new(0),
        }
    }

    /// Whether this instance does the cluster-wide duties now.
    pub fn leads(&self) -> bool {
        self.state().leader
    }

    pub fn snapshot(&self) -> ClusterState {
        self.state().clone()
    }

    pub fn update(&self, change: impl FnOnce(&mut ClusterState)) {
        change(&mut self.state());
    }

    /// The station actors this instance supervises now.
    pub fn set_stations(&self, n: usize) {
        self.stations.store(n, Ordering::Relaxed);
    }

    pub fn stations(&self) -> usize {
        self.stations.load(Ordering::Relaxed)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ClusterState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Which offsets a consumer may commit, partition by partition: a record
/// counts once what it carried is stored, and a partition's offset may go
/// as far as the first record handed in and not yet stored (or one past
/// the last handed in, when all are). Offsets are not assumed to follow
/// each other (a compacted topic, or a transaction's markers, leave gaps):
/// only those handed in count. So a crash loses nothing: whatever is past
/// the committed offset is read again, and the store keeps a reading once.
#[derive(Debug, Default)]
pub struct Offsets {
    partitions: Mutex<HashMap<i32, PartitionOffsets>>,
    /// Records open, all partitions together: read for every record
    /// handed in, so kept rather than summed.
    open: AtomicUsize,
    /// Woken as records are stored.
    stored: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct PartitionOffsets {
    /// Records of it are handed in: it is owned and not being given up.
    taking: bool,
    /// Handed in, not yet stored.
    open: BTreeSet<i64>,
    /// The last offset handed in.
    last: Option<i64>,
    /// The offset last returned by `to_commit`.
    committed: Option<i64>,
}

impl PartitionOffsets {
    fn committable(&self) -> Option<i64> {
        match self.open.first() {
            Some(first) => Some(*first),
            None => self.last.map(|last| last + 1),
        }
        .filter(|at| self.committed.is_none_or(|c| *at > c))
    }
}

impl Offsets {
    fn partitions(&self) -> std::sync::MutexGuard<'_, HashMap<i32, PartitionOffsets>> {
        self.partitions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `partition` is this consumer's: its records are handed in from
    /// now on.
    pub fn own(&self, partition: i32) {
        self.partitions().entry(partition).or_default().taking = true;
    }

    /// `partition` is being given up: no more of its records are handed
    /// in; those open are still tracked until it is forgotten.
    pub fn stop_taking(&self, partition: i32) {
        if let Some(p) = self.partitions().get_mut(&partition) {
            p.taking = false;
        }
    }

    /// The record at `offset` of `partition` goes into the pipeline, if
    /// the partition is owned and not being given up: false if it is not
    /// to be handed in. Offsets of a partition come in increasing order,
    /// but for a consumer sent back (an offset reset): an earlier one is
    /// open again.
    pub fn handed_in(&self, partition: i32, offset: i64) -> bool {
        let mut partitions = self.partitions();
        let Some(p) = partitions.get_mut(&partition).filter(|p| p.taking) else {
            return false;
        };
        if p.open.insert(offset) {
            self.open.fetch_add(1, Ordering::Relaxed);
        }
        p.last = Some(p.last.map_or(offset, |last| last.max(offset)));
        true
    }

    /// What the record at `offset` of `partition` carried is stored (or
    /// quarantined).
    pub fn stored(&self, partition: i32, offset: i64) {
        if let Some(p) = self.partitions().get_mut(&partition)
            && p.open.remove(&offset)
        {
            self.open.fetch_sub(1, Ordering::Relaxed);
            self.stored.notify_waiters();
        }
    }

    /// Records of `partition` handed in and not yet stored.
    pub fn open(&self, partition: i32) -> usize {
        self.partitions()
            .get(&partition)
            .map_or(0, |p| p.open.len())
    }

    /// Records handed in and not yet stored, all partitions together.
    pub fn open_total(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Returns once fewer than `max` records are open.
    pub async fn below(&self, max: usize) {
        loop {
            let stored = self.stored.notified();
            if self.open_total() < max {
                return;
            }
            stored.await;
        }
    }

    /// Returns once no record of `partitions` is open, or after `within`;
    /// how many are still open.
    pub async fn drained(&self, partitions: &BTreeSet<i32>, within: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let stored = self.stored.notified();
            let open = self.open_of(partitions);
            if open == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, stored).await.is_err() {
                return self.open_of(partitions);
            }
        }
    }

    /// A commit of `commits` (from `to_commit`) failed: they are
    /// returned again by the next `to_commit`.
    pub fn uncommit(&self, commits: &[(i32, i64)]) {
        let mut partitions = self.partitions();
        for (partition, at) in commits {
            if let Some(p) = partitions.get_mut(partition)
                && p.committed == Some(*at)
            {
                p.committed = None;
            }
        }
    }

    /// The offsets to commit now, by partition: those that moved since
    /// the last call.
    pub fn to_commit(&self) -> Vec<(i32, i64)> {
        let mut commits = Vec::new();
        for (partition, p) in self.partitions().iter_mut() {
            if let Some(at) = p.committable() {
                p.committed = Some(at);
                commits.push((*partition, at));
            }
        }
        commits.sort_unstable();
        commits
    }

    /// Records of `partitions` handed in and not yet stored.
    pub fn open_of(&self, partitions: &BTreeSet<i32>) -> usize {
        let all = self.partitions();
        partitions
            .iter()
            .filter_map(|p| all.get(p))
            .map(|p| p.open.len())
            .sum()
    }

    /// Forgets `partition` (it went to another consumer).
    pub fn forget(&self, partition: i32) {
        if let Some(p) = self.partitions().remove(&partition) {
            self.open.fetch_sub(p.open.len(), Ordering::Relaxed);
            self.stored.notify_waiters();
        }
    }
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

    #[test]
    fn an_offset_is_committed_only_once_all_before_it_are_stored() {
        let offsets = Offsets::default();
        assert!(offsets.to_commit().is_empty(), "nothing handed in");
        assert!(!offsets.handed_in(0, 1), "not owned");
        offsets.own(0);
        offsets.own(1);
        // A gap (5 and 6 were compacted away).
        for at in [3, 4, 7, 8] {
            offsets.handed_in(0, at);
        }
        offsets.handed_in(1, 10);
        offsets.stored(0, 4);
        offsets.stored(0, 7);
        // 3 is not stored: partition 0 stays at 3, where it started.
        assert_eq!(offsets.to_commit(), [(0, 3), (1, 10)]);
        assert!(offsets.to_commit().is_empty(), "nothing moved");
        offsets.stored(0, 3);
        assert_eq!(offsets.to_commit(), [(0, 8)], "up to 8, not stored yet");
        assert_eq!(offsets.open(0), 1);
        offsets.stored(0, 8);
        offsets.stored(1, 10);
        assert_eq!(offsets.to_commit(), [(0, 9), (1, 11)]);
        offsets.uncommit(&[(0, 9)]);
        assert_eq!(offsets.to_commit(), [(0, 9)], "a failed commit comes again");
        assert_eq!(offsets.open_total(), 0);
        offsets.forget(0);
        assert_eq!(offsets.open(0), 0);
        offsets.stored(0, 9);
        assert!(offsets.to_commit().is_empty());
    }

    /// The count of open records follows hand-ins, stores and forgotten
    /// partitions, and `below` waits for room.
    #[tokio::test]
    async fn open_records_are_counted_and_room_is_waited_for() {
        let offsets = std::sync::Arc::new(Offsets::default());
        offsets.own(1);
        offsets.own(4);
        for at in 0..3 {
            offsets.handed_in(1, at);
        }
        offsets.handed_in(1, 2);
        offsets.handed_in(4, 0);
        assert_eq!(
            offsets.open_total(),
            4,
            "a record handed in twice is open once"
        );
        let waiting = tokio::spawn({
            let offsets = offsets.clone();
            async move { offsets.below(3).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "four open, room below three");
        offsets.stored(1, 0);
        offsets.stored(1, 0);
        assert_eq!(offsets.open_total(), 3);
        offsets.stored(4, 0);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
        offsets.forget(1);
        assert_eq!(offsets.open_total(), 0);
    }

    /// A partition being given up takes no more records, still counts
    /// those open until they are stored, and is committed as far as they
    /// go; forgotten, it is gone.
    #[test]
    fn a_partition_given_up_takes_nothing_new_and_drains() {
        let offsets = Offsets::default();
        offsets.own(3);
        offsets.own(5);
        assert!(offsets.handed_in(3, 10));
        assert!(offsets.handed_in(3, 11));
        assert!(offsets.handed_in(5, 0));
        offsets.stop_taking(3);
        assert!(!offsets.handed_in(3, 12), "given up: not handed in");
        assert_eq!(offsets.open_of(&[3].into()), 2);
        offsets.stored(3, 10);
        offsets.stored(3, 11);
        assert_eq!(offsets.open_of(&[3].into()), 0);
        assert_eq!(offsets.open_of(&[3, 5].into()), 1);
        assert_eq!(offsets.to_commit(), [(3, 12), (5, 0)]);
        offsets.forget(3);
        assert!(!offsets.handed_in(3, 12));
        offsets.own(3);
        assert!(offsets.handed_in(3, 12), "owned again");
    }

    proptest::proptest! {
        /// Whatever order records are stored in, a commit never passes a
        /// record not yet stored, never goes back, and once all are
        /// stored reaches one past the last.
        #[test]
        fn commits_never_pass_what_is_not_stored(
            gaps in proptest::collection::vec(1i64..4, 1..60),
            order in proptest::collection::vec(proptest::num::usize::ANY, 1..60),
        ) {
            let offsets = Offsets::default();
            offsets.own(2);
            let mut at = 0;
            let mut handed = Vec::new();
            for gap in gaps {
                at += gap;
                offsets.handed_in(2, at);
                handed.push(at);
            }
            let mut waiting = handed.clone();
            let mut stored = BTreeSet::new();
            let mut last_commit = i64::MIN;
            for pick in order.iter().cycle().take(handed.len()) {
                let offset = waiting.remove(pick % waiting.len());
                offsets.stored(2, offset);
                stored.insert(offset);
                for (_, commit) in offsets.to_commit() {
                    proptest::prop_assert!(commit > last_commit);
                    last_commit = commit;
                    for h in handed.iter().filter(|h| **h < commit) {
                        proptest::prop_assert!(stored.contains(h), "{commit} passes {h}");
                    }
                }
            }
            proptest::prop_assert_eq!(last_commit, handed.last().unwrap() + 1);
        }
    }
}
