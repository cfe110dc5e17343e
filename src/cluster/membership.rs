//! Who owns which partition of the readings topic: the workers agree
//! through the store they share, not through Kafka's group coordinator,
//! so that ownership works alike on every Kafka-compatible broker and
//! moves the moment a worker dies.
//!
//! Each worker keeps one PostgreSQL session of its own. In it, it holds
//! an advisory lock naming itself (so the live members are the sessions
//! holding such a lock: PostgreSQL frees a session's locks as soon as it
//! ends, kill -9 included), one lock per partition it owns (so no two
//! workers ever own one partition), and, in one of them, the leader's
//! lock (for the duties done once across the cluster). Each worker wants
//! the partitions [`wanted`] gives it among the live members (rendezvous
//! hashing with bounded loads); it gives a partition up only once what it
//! read of it is stored and committed, and takes one only when its lock
//! is free.
//! A member row per worker says where it answers and what it owns, and
//! carries its heartbeat: the leader ends the session of a member whose
//! heartbeat stopped while its session stayed open (a frozen process),
//! which frees its partitions.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::storage::StoreError;

use super::murmur2;

/// A live member of the cluster, as it last said.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Member {
    /// Its `cluster.instance`.
    pub instance: String,
    /// Where its HTTP API listens, as it bound it.
    pub web: Option<String>,
    /// The partitions of the readings topic it owns.
    pub partitions: Vec<i32>,
    /// The station actors it runs (running or asleep), as of its last
    /// heartbeat.
    pub stations: i32,
    /// It does the cluster-wide duties.
    pub leader: bool,
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub seen_at: DateTime<Utc>,
}

/// SQL: the member row `m` is live, its session (`m.pid`) holding its
/// lock under the cluster's key (`$2`) in this database.
macro_rules! holds_member_lock {
    () => {
        "EXISTS (SELECT 1 FROM pg_locks l
                 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                   AND l.database = (SELECT oid FROM pg_database
                                     WHERE datname = current_database())
                   AND l.classid = $2::int4::oid AND l.objid = m.lock_key::oid
                   AND l.pid = m.pid)"
    };
}

/// The second half of the leader's lock: above every partition (at most
/// 10,000), below every member.
const LEADER: i32 = 1_000_000;
const _: () = assert!(LEADER > 10_000 && LEADER < 1 << 30);

/// The first half of every lock of the cluster `group` reading `topic`.
fn cluster_key(group: &str, topic: &str) -> i32 {
    (murmur2(format!("isobar\0{group}\0{topic}").as_bytes()) & 0x7fff_ffff) as i32
}

/// The second half of the lock naming `instance`: in [2^30, 2^31), apart
/// from partitions and the leader.
fn member_key(instance: &str) -> i32 {
    ((1 << 30) | (murmur2(instance.as_bytes()) & 0x3fff_ffff)) as i32
}

/// The partitions `instance` wants among `partitions`, given the live
/// members' names: rendezvous hashing with bounded loads. Each partition,
/// in order, goes to the member that weighs highest for it
/// (`murmur2(member, partition)`) among those holding fewer than their
/// share (`partitions / members`, and one more for `partitions % members`
/// of them). Every member computes the same from the same names. When a
/// member leaves, the others keep what they had, give or take a few the
/// bound moves, and take its share; when one joins, it takes about its
/// share from the others. (Dealing by rank, `p % members`, moved 8 of 12
/// partitions when 3 members became 2.)
pub fn wanted(live: &[&str], instance: &str, partitions: u32) -> BTreeSet<i32> {
    let mut names: Vec<&str> = live.to_vec();
    names.sort_unstable();
    names.dedup();
    if !names.contains(&instance) {
        return BTreeSet::new();
    }
    // Each member's share is `floor` partitions, and `extra` of them may
    // take one more.
    let floor = partitions as usize / names.len();
    let extra = partitions as usize % names.len();
    let mut load = vec![0usize; names.len()];
    let mut above = 0;
    let mut mine = BTreeSet::new();
    for p in 0..partitions {
        let weight = |name: &str| murmur2(format!("{name}\0{p}").as_bytes());
        let owner = (0..names.len())
            .filter(|&i| load[i] < floor || (load[i] == floor && above < extra))
            .max_by_key(|&i| (weight(names[i]), std::cmp::Reverse(names[i])))
            .expect("the members' shares cover every partition");
        load[owner] += 1;
        if load[owner] > floor {
            above += 1;
        }
        if names[owner] == instance {
            mine.insert(p as i32);
        }
    }
    mine
}

/// One worker's membership: its session and the locks held in it.
/// Dropping it ends the session, and with it every lock.
pub struct Membership {
    client: tokio_postgres::Client,
    cluster: String,
    key: i32,
    instance: String,
    owned: BTreeSet<i32>,
    leader: bool,
    /// When the leader last forgot the members gone for a day.
    swept: Option<std::time::Instant>,
}

/// How often the leader forgets the members gone for a day.
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// Why a worker could not join.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("another live instance is named {0:?} (cluster.instance must differ per instance)")]
    NameTaken(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Membership {
    /// Joins the cluster `group` on `topic` as `instance`, in `client`'s
    /// session, answering at `web`.
    pub async fn join(
        client: tokio_postgres::Client,
        group: &str,
        topic: &str,
        instance: &str,
        web: Option<String>,
    ) -> Result<Self, JoinError> {
        let key = cluster_key(group, topic);
        let me = member_key(instance);
        let row = client
            .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&key, &me])
            .await
            .map_err(StoreError::from)?;
        if !row.get::<_, bool>(0) {
            return Err(JoinError::NameTaken(instance.to_owned()));
        }
        client
            .execute(
                "INSERT INTO cluster_members
                     (cluster, instance, lock_key, pid, web, started_at, seen_at)
                 VALUES ($1, $2, $3, pg_backend_pid(), $4, now(), now())
                 ON CONFLICT (cluster, instance) DO UPDATE SET
                     lock_key = EXCLUDED.lock_key, pid = EXCLUDED.pid,
                     web = EXCLUDED.web, started_at = now(), seen_at = now(),
                     partitions = '{}', leader = false, stations = 0",
                &[&group, &instance, &me, &web],
            )
            .await
            .map_err(StoreError::from)?;
        Ok(Self {
            client,
            cluster: group.to_owned(),
            key,
            instance: instance.to_owned(),
            owned: BTreeSet::new(),
            leader: false,
            swept: None,
        })
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The partitions whose locks it holds.
    pub fn owned(&self) -> &BTreeSet<i32> {
        &self.owned
    }

    pub fn is_leader(&self) -> bool {
        self.leader
    }

    /// The live members, by name (those whose session holds their lock),
    /// and the names of those not live whose last heartbeat is younger
    /// than `grace` (gone, perhaps only to restart; never this one).
    pub async fn roster(&self, grace: Duration) -> Result<(Vec<Member>, Vec<String>), StoreError> {
        let mut live = Vec::new();
        let mut away = Vec::new();
        for (member, is_live) in member_rows(&self.client, &self.cluster, self.key, grace).await? {
            if is_live {
                live.push(member);
            } else if member.instance != self.instance {
                away.push(member.instance);
            }
        }
        Ok((live, away))
    }

    /// Takes `partition` if no other member holds it; true if it now
    /// owns it.
    pub async fn take(&mut self, partition: i32) -> Result<bool, StoreError> {
        if self.owned.contains(&partition) {
            return Ok(true);
        }
        let row = self
            .client
            .query_one(
                "SELECT pg_try_advisory_lock($1, $2)",
                &[&self.key, &partition],
            )
            .await?;
        let taken: bool = row.get(0);
        if taken {
            self.owned.insert(partition);
        }
        Ok(taken)
    }

    /// Lets `partition` go, for another member to take.
    pub async fn give_up(&mut self, partition: i32) -> Result<(), StoreError> {
        if self.owned.remove(&partition) {
            self.client
                .execute(
                    "SELECT pg_advisory_unlock($1, $2)",
                    &[&self.key, &partition],
                )
                .await?;
        }
        Ok(())
    }

    /// Becomes the leader if none is; true while it is.
    pub async fn lead(&mut self) -> Result<bool, StoreError> {
        if !self.leader {
            let row = self
                .client
                .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&self.key, &LEADER])
                .await?;
            self.leader = row.get(0);
        }
        Ok(self.leader)
    }

    /// Its heartbeat, with what it owns now and the station actors it
    /// runs.
    pub async fn beat(&self, stations: usize) -> Result<(), StoreError> {
        let owned: Vec<i32> = self.owned.iter().copied().collect();
        let stations = i32::try_from(stations).unwrap_or(i32::MAX);
        self.client
            .execute(
                "UPDATE cluster_members SET seen_at = now(), partitions = $3, leader = $4,
                     stations = $5
                 WHERE cluster = $1 AND instance = $2",
                &[
                    &self.cluster,
                    &self.instance,
                    &owned,
                    &self.leader,
                    &stations,
                ],
            )
            .await?;
        Ok(())
    }

    /// The leader's part: ends the sessions of live members whose
    /// heartbeat is older than `stalled` (their locks go with them), and,
    /// every `SWEEP_EVERY`, forgets members gone for a day. Returns the
    /// members ended.
    pub async fn fence_stalled(&mut self, stalled: Duration) -> Result<Vec<String>, StoreError> {
        let seconds = stalled.as_secs_f64();
        let rows = self
            .client
            .query(
                concat!(
                    "SELECT m.instance, pg_terminate_backend(m.pid)
                     FROM cluster_members m
                     WHERE m.cluster = $1 AND m.instance <> $3
                       AND m.seen_at < now() - make_interval(secs => $4) AND ",
                    holds_member_lock!()
                ),
                &[&self.cluster, &self.key, &self.instance, &seconds],
            )
            .await?;
        if self.swept.is_none_or(|at| at.elapsed() >= SWEEP_EVERY) {
            self.client
                .execute(
                    "DELETE FROM cluster_members
                     WHERE cluster = $1 AND seen_at < now() - interval '1 day'",
                    &[&self.cluster],
                )
                .await?;
            self.swept = Some(std::time::Instant::now());
        }
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

/// The members of the cluster under `key`, by name, each with whether
/// it is live: the live ones, and those whose heartbeat is younger than
/// `grace`.
async fn member_rows(
    client: &tokio_postgres::Client,
    cluster: &str,
    key: i32,
    grace: Duration,
) -> Result<Vec<(Member, bool)>, StoreError> {
    let rows = client
        .query(
            concat!(
                "SELECT * FROM (
                     SELECT m.instance, m.web, m.partitions, m.leader, m.started_at, m.seen_at,
                         m.stations, ",
                holds_member_lock!(),
                " AS live
                     FROM cluster_members m WHERE m.cluster = $1) r
                 WHERE r.live OR r.seen_at > now() - make_interval(secs => $3)
                 ORDER BY r.instance"
            ),
            &[&cluster, &key, &grace.as_secs_f64()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let member = Member {
                instance: r.get(0),
                web: r.get(1),
                partitions: r.get(2),
                leader: r.get(3),
                started_at: r.get(4),
                seen_at: r.get(5),
                stations: r.get(6),
            };
            (member, r.get(7))
        })
        .collect())
}

/// For an instance that is no member (`cluster.role = "api"`): keeps the
/// live members of the cluster `group` on `topic` in `view`, every 2 s,
/// through a session of its own, until `stop`.
pub async fn observe(
    view: std::sync::Arc<super::ClusterView>,
    postgres: (crate::config::Secret, crate::config::PostgresTls),
    group: String,
    topic: String,
    stop: tokio_util::sync::CancellationToken,
) {
    let key = cluster_key(&group, &topic);
    let watching = async {
        let mut delay = Duration::from_millis(200);
        loop {
            let client =
                match crate::storage::postgres_session(postgres.0.expose(), &postgres.1).await {
                    Ok(client) => client,
                    Err(e) => {
                        tracing::warn!(error = %e, "cluster: could not read the members");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                        continue;
                    }
                };
            delay = Duration::from_millis(200);
            loop {
                match member_rows(&client, &group, key, Duration::ZERO).await {
                    Ok(rows) => view.update(|v| {
                        v.members = rows
                            .into_iter()
                            .filter_map(|(m, live)| live.then_some(m))
                            .collect();
                    }),
                    Err(e) => {
                        tracing::warn!(error = %e, "cluster: could not read the members");
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    };
    tokio::select! {
        () = watching => {}
        () = stop.cancelled() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Who owns what among `members`.
    fn owners(members: &[&str], partitions: u32) -> Vec<String> {
        let mut owner = vec![String::new(); partitions as usize];
        for m in members {
            for p in wanted(members, m, partitions) {
                assert!(owner[p as usize].is_empty(), "{p} wanted twice");
                owner[p as usize] = (*m).to_owned();
            }
        }
        owner
    }

    #[test]
    fn live_members_share_every_partition_evenly() {
        let all: BTreeSet<i32> = (0..12).collect();
        assert_eq!(wanted(&["w1"], "w1", 12), all);
        // Each exactly once, each member its share, whatever the order.
        for members in [
            &["w1", "w2"][..],
            &["w3", "w1", "w2"],
            &["a", "b", "c", "d", "e"],
        ] {
            let owner = owners(members, 12);
            assert!(owner.iter().all(|o| !o.is_empty()), "{owner:?}");
            for m in members {
                let n = owner.iter().filter(|o| o == m).count();
                assert!(n == 12 / members.len() || n == 12usize.div_ceil(members.len()));
            }
        }
        assert_eq!(
            owners(&["w3", "w2", "w1"], 12),
            owners(&["w1", "w2", "w3"], 12)
        );
        assert!(wanted(&["w1", "w2"], "w9", 12).is_empty());
        // More members than partitions: some get none.
        let few = owners(&["a", "b", "c"], 2);
        assert_eq!(few.len(), 2);
        assert_ne!(few[0], few[1]);
    }

    /// Partitions that move between the members who stay when one of
    /// `members` (named `isobar-worker-<k>`) leaves, over 200 sets of
    /// names: the worst and the mean.
    fn extra_moves(members: usize, partitions: u32) -> (usize, f64) {
        let (mut worst, mut sum) = (0, 0);
        for k in 0..200 {
            let names: Vec<String> = (0..members)
                .map(|i| format!("isobar-worker-{}", k * members + i))
                .collect();
            let all: Vec<&str> = names.iter().map(String::as_str).collect();
            let before = owners(&all, partitions);
            let gone = all[k % members];
            let rest: Vec<&str> = all.iter().copied().filter(|n| *n != gone).collect();
            let after = owners(&rest, partitions);
            let extra = (0..partitions as usize)
                .filter(|&p| before[p] != gone && before[p] != after[p])
                .count();
            worst = worst.max(extra);
            sum += extra;
        }
        (worst, sum as f64 / 200.0)
    }

    /// When a member leaves, the others keep nearly all they had: 3
    /// members of 12 partitions becoming 2 move the leaver's 4 and at most
    /// 2 more (dealing by rank moved 8 in all); 6 of 48 becoming 5 move
    /// the leaver's 8 and a few more.
    #[test]
    fn a_member_leaving_moves_little_more_than_its_share() {
        let (worst, mean) = extra_moves(3, 12);
        assert!(
            worst <= 2 && mean < 1.0,
            "3 of 12: {worst} at worst, {mean} on average"
        );
        let (worst, mean) = extra_moves(6, 48);
        assert!(
            worst <= 8 && mean < 4.0,
            "6 of 48: {worst} at worst, {mean} on average"
        );
    }

    #[test]
    fn lock_keys_of_members_never_meet_partitions_or_the_leader() {
        for name in ["", "w", "isobar-worker-0", "a much longer instance name"] {
            let k = member_key(name);
            assert!(k >= 1 << 30, "{name}: {k}");
        }
        assert!(cluster_key("isobar", "isobar.readings") >= 0);
        assert_ne!(
            cluster_key("isobar", "isobar.readings"),
            cluster_key("isobar", "other")
        );
    }
}
