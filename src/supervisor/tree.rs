//! A supervisor of a fixed list of children, as an actor: it starts them in
//! order, and when one fails it applies the policy in force at that moment
//! (strategy, restart type, intensity, backoff). Past the intensity it gives
//! up: it fails itself, so its own supervisor decides (escalation), or, for
//! the root, it reports why so the process can end. What it knows of each
//! child (state, restarts, last failure) lives in a [`GroupRecord`] that
//! outlives the supervisor's own restarts, so the history stays visible.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use serde::Serialize;

use super::{Decision, RestartIntensity, RestartPolicy};

/// How long a child has to stop when its supervisor stops it.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// One child of a supervisor: its name and how to start it.
#[async_trait::async_trait]
pub trait ChildSpec: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// Starts the child linked to `supervisor`. `None`: this child is not
    /// part of this configuration (it is shown as `off`).
    async fn start(&self, supervisor: ActorCell) -> Result<Option<ActorCell>, ActorProcessingErr>;
}

/// A restart about to happen.
#[derive(Debug, Clone)]
pub struct RestartNotice<'a> {
    pub group: &'static str,
    pub child: &'static str,
    pub reason: &'a str,
    /// Restarts within the policy's window, this one included.
    pub attempt: u32,
    pub delay: Duration,
    /// The siblings the strategy restarts with it.
    pub with: &'a [&'static str],
}

/// What the rest of the system hears from its supervisors.
pub trait Observer: Send + Sync + 'static {
    /// A child is about to be restarted.
    fn restarting(&self, notice: &RestartNotice<'_>);
    /// True once the system is shutting down: children that stop then are
    /// not failures.
    fn stopping(&self) -> bool;
}

/// A child as its supervisor last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChildState {
    Running,
    /// Waiting out its backoff, or stopped along with a sibling that failed.
    Restarting,
    /// Ended, and its restart type keeps it so.
    Stopped,
    /// Not part of this configuration.
    Off,
    /// A station's actor asleep after `supervision.hibernate_after` without
    /// a message; its next message starts it again.
    Hibernating,
}

/// One child in a [`GroupRecord`].
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChildRecord {
    pub name: &'static str,
    pub group: &'static str,
    pub state: ChildState,
    /// Every restart since the process started, including those a strategy
    /// made along with a failing sibling.
    pub restarts: u32,
    pub last_failure: Option<String>,
    pub last_failure_at: Option<DateTime<Utc>>,
}

/// The children of one supervisor, in start order, shared with whoever
/// shows them.
#[derive(Debug)]
pub struct GroupRecord {
    pub group: &'static str,
    children: Mutex<Vec<ChildRecord>>,
}

impl GroupRecord {
    pub fn new(group: &'static str, names: impl IntoIterator<Item = &'static str>) -> Arc<Self> {
        Arc::new(Self {
            group,
            children: Mutex::new(
                names
                    .into_iter()
                    .map(|name| ChildRecord {
                        name,
                        group,
                        state: ChildState::Restarting,
                        restarts: 0,
                        last_failure: None,
                        last_failure_at: None,
                    })
                    .collect(),
            ),
        })
    }

    pub fn children(&self) -> Vec<ChildRecord> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ChildRecord>> {
        self.children.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, child: usize, f: impl FnOnce(&mut ChildRecord)) {
        if let Some(c) = self.lock().get_mut(child) {
            f(c);
        }
    }
}

pub enum SupervisorMsg {
    /// A backoff has passed: start these children again, in start order.
    Restart(Vec<usize>),
}

pub struct SupervisorArgs {
    pub group: &'static str,
    /// In start order; restarted siblings start again in this order.
    pub children: Arc<[Arc<dyn ChildSpec>]>,
    /// Read at each failure, so a reloaded policy applies from the next.
    pub policy: Arc<dyn Fn() -> RestartPolicy + Send + Sync>,
    pub observer: Arc<dyn Observer>,
    pub record: Arc<GroupRecord>,
    /// For the root: told why it gave up, instead of failing (it has no
    /// supervisor to escalate to).
    pub give_up: Option<tokio::sync::mpsc::UnboundedSender<String>>,
}

pub struct Supervisor;

pub struct SupervisorState {
    args: SupervisorArgs,
    running: Vec<Option<ActorCell>>,
    intensity: Vec<RestartIntensity>,
    /// Set once the root has given up: nothing is restarted any more.
    given_up: bool,
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let n = args.children.len();
        let mut state = SupervisorState {
            args,
            running: vec![None; n],
            intensity: vec![RestartIntensity::default(); n],
            given_up: false,
        };
        for i in 0..n {
            if let Err(e) = state.start(&myself, i).await {
                // Whatever started is stopped again: the supervisor did not.
                state.stop_all().await;
                return Err(format!("{} did not start: {e}", state.name(i)).into());
            }
        }
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        state.stop_all().await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Restart(mut children) => {
                children.sort_unstable();
                for i in children {
                    if state.given_up
                        || state.running[i].is_some()
                        || state.args.observer.stopping()
                    {
                        continue;
                    }
                    if let Err(e) = state.start(&myself, i).await {
                        // A child that cannot start has failed again.
                        state
                            .on_failure(&myself, i, None, format!("start failed: {e}"), true)
                            .await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, reason, failed) = match event {
            SupervisionEvent::ActorFailed(cell, err) => (cell, err.to_string(), true),
            SupervisionEvent::ActorTerminated(cell, _, reason)
                if !state.args.observer.stopping() =>
            {
                (
                    cell,
                    format!("stopped: {}", reason.unwrap_or_default()),
                    false,
                )
            }
            _ => return Ok(()),
        };
        // Children the supervisor stopped itself (siblings taken down by the
        // strategy) are no longer listed, so their ends are not failures.
        let id = cell.get_id();
        let Some(i) = state
            .running
            .iter()
            .position(|c| c.as_ref().is_some_and(|c| c.get_id() == id))
        else {
            return Ok(());
        };
        state.running[i] = None;
        state
            .on_failure(&myself, i, Some(cell), reason, failed)
            .await
    }
}

impl SupervisorState {
    fn name(&self, i: usize) -> &'static str {
        self.args.children[i].name()
    }

    async fn start(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        i: usize,
    ) -> Result<(), ActorProcessingErr> {
        let spec = self.args.children[i].clone();
        let started = spec.start(myself.get_cell()).await?;
        let state = if started.is_some() {
            ChildState::Running
        } else {
            ChildState::Off
        };
        self.args.record.update(i, |c| c.state = state);
        self.running[i] = started;
        Ok(())
    }

    /// Stops every running child, last started first.
    async fn stop_all(&mut self) {
        for i in (0..self.running.len()).rev() {
            if let Some(cell) = self.running[i].take() {
                stop(&cell, None).await;
            }
        }
    }

    /// Decides about one more failure of child `i` (whose actor, if it
    /// started at all, is `cell`). `Err` escalates.
    async fn on_failure(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        i: usize,
        cell: Option<ActorCell>,
        reason: String,
        failed: bool,
    ) -> Result<(), ActorProcessingErr> {
        let group = self.args.group;
        let child = self.name(i);
        // A failed actor's own children outlive it in ractor; stop them so
        // the restarted one starts clean (and can take their names).
        if let Some(cell) = &cell {
            cell.stop_children_and_wait(None, Some(STOP_TIMEOUT)).await;
        }
        let policy = (self.args.policy)();
        let at = Utc::now();
        let record = &self.args.record;
        record.update(i, |c| {
            c.last_failure = Some(reason.clone());
            c.last_failure_at = Some(at);
        });
        if !policy.restart.restarts(failed) {
            record.update(i, |c| c.state = ChildState::Stopped);
            tracing::warn!(group, child, restart = ?policy.restart, reason = %reason,
                "supervised actor ended; its restart type keeps it stopped");
            return Ok(());
        }
        let decision = self.intensity[i].on_failure(&policy, Instant::now(), rand::random::<f64>());
        let (after, attempt) = match decision {
            Decision::Restart { after, attempt } => (after, attempt),
            Decision::GiveUp { restarts } => {
                let why = format!(
                    "{group}: {child} failed {} times within {:?}; last failure: {reason}",
                    restarts + 1,
                    policy.within
                );
                tracing::error!(group, child, restarts, reason = %reason,
                    "supervised actor exceeded its restart intensity; escalating");
                record.update(i, |c| c.state = ChildState::Stopped);
                return match &self.args.give_up {
                    Some(tell) => {
                        tracing::error!(reason = %why, "root supervisor gave up");
                        self.given_up = true;
                        let _ = tell.send(why);
                        Ok(())
                    }
                    None => Err(why.into()),
                };
            }
        };
        record.update(i, |c| {
            c.state = ChildState::Restarting;
            c.restarts += 1;
        });
        metrics::counter!("isobar_actor_restarts_total", "group" => group, "child" => child)
            .increment(1);
        // The siblings the strategy takes down with it: stopped now, last
        // started first, and started again with it, in start order.
        let affected: Vec<usize> = policy
            .strategy
            .affected(self.running.len(), i)
            .filter(|&s| s == i || self.running[s].is_some())
            .collect();
        let with: Vec<&'static str> = affected
            .iter()
            .filter(|&&s| s != i)
            .map(|&s| self.name(s))
            .collect();
        tracing::warn!(group, child, attempt, delay_ms = after.as_millis() as u64,
            strategy = ?policy.strategy, with = ?with, reason = %reason,
            "supervised actor failed; restarting");
        self.args.observer.restarting(&RestartNotice {
            group,
            child,
            reason: &reason,
            attempt,
            delay: after,
            with: &with,
        });
        for &s in affected.iter().rev().filter(|&&s| s != i) {
            if let Some(cell) = self.running[s].take() {
                let sibling = self.name(s);
                record.update(s, |c| {
                    c.state = ChildState::Restarting;
                    c.restarts += 1;
                });
                metrics::counter!("isobar_actor_restarts_total", "group" => group, "child" => sibling)
                    .increment(1);
                stop(&cell, Some(format!("restarting with {child}"))).await;
            }
        }
        myself.send_after(after, move || SupervisorMsg::Restart(affected));
        Ok(())
    }
}

/// Stops a child and, should it leave any, its children.
async fn stop(cell: &ActorCell, reason: Option<String>) {
    let _ = cell.stop_and_wait(reason, Some(STOP_TIMEOUT)).await;
    cell.stop_children_and_wait(None, Some(STOP_TIMEOUT)).await;
}

#[cfg(test)]
mod tests {
    //! The supervisor with real actors: children that fail on request.

    use super::*;
    use crate::supervisor::address::Address;
    use crate::supervisor::{Backoff, Restart, Strategy};
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    /// A child that fails when told to, and counts its starts.
    struct Worker;

    enum WorkerMsg {
        Fail,
        Stop,
    }

    impl Actor for Worker {
        type Msg = WorkerMsg;
        type State = ();
        type Arguments = ();
        async fn pre_start(&self, _: ActorRef<WorkerMsg>, _: ()) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
        async fn handle(
            &self,
            myself: ActorRef<WorkerMsg>,
            msg: WorkerMsg,
            _: &mut (),
        ) -> Result<(), ActorProcessingErr> {
            match msg {
                WorkerMsg::Fail => Err("told to fail".into()),
                WorkerMsg::Stop => {
                    myself.stop(Some("done".into()));
                    Ok(())
                }
            }
        }
    }

    struct WorkerSpec {
        name: &'static str,
        starts: Arc<AtomicU32>,
        refuse: Arc<AtomicBool>,
        address: Address<WorkerMsg>,
    }

    #[async_trait::async_trait]
    impl ChildSpec for WorkerSpec {
        fn name(&self) -> &'static str {
            self.name
        }
        async fn start(
            &self,
            supervisor: ActorCell,
        ) -> Result<Option<ActorCell>, ActorProcessingErr> {
            if self.refuse.load(Ordering::SeqCst) {
                return Err("refused to start".into());
            }
            self.starts.fetch_add(1, Ordering::SeqCst);
            Ok(Some(
                self.address.spawn_linked(Worker, (), supervisor).await?,
            ))
        }
    }

    struct Quiet;
    impl Observer for Quiet {
        fn restarting(&self, _: &RestartNotice<'_>) {}
        fn stopping(&self) -> bool {
            false
        }
    }

    struct Tree {
        sup: ActorRef<SupervisorMsg>,
        starts: Vec<Arc<AtomicU32>>,
        refuse: Vec<Arc<AtomicBool>>,
        record: Arc<GroupRecord>,
        addresses: Vec<Address<WorkerMsg>>,
        gave_up: tokio::sync::mpsc::UnboundedReceiver<String>,
    }

    const NAMES: [&str; 3] = ["a", "b", "c"];

    fn policy(strategy: Strategy, restart: Restart, max_restarts: u32) -> RestartPolicy {
        RestartPolicy {
            strategy,
            restart,
            max_restarts,
            within: Duration::from_secs(60),
            backoff: Backoff {
                initial: Duration::from_millis(5),
                max: Duration::from_millis(20),
                factor: 2.0,
                jitter: 0.0,
            },
        }
    }

    async fn tree(policy: RestartPolicy) -> Tree {
        static N: AtomicU32 = AtomicU32::new(0);
        let prefix = format!("tree{}", N.fetch_add(1, Ordering::SeqCst));
        let starts: Vec<_> = NAMES.iter().map(|_| Arc::new(AtomicU32::new(0))).collect();
        let refuse: Vec<_> = NAMES
            .iter()
            .map(|_| Arc::new(AtomicBool::new(false)))
            .collect();
        let addresses: Vec<Address<WorkerMsg>> = NAMES
            .iter()
            .map(|name| Address::new(format!("{prefix}.{name}")))
            .collect();
        let children: Vec<Arc<dyn ChildSpec>> = NAMES
            .iter()
            .enumerate()
            .map(|(i, name)| {
                Arc::new(WorkerSpec {
                    name,
                    starts: starts[i].clone(),
                    refuse: refuse[i].clone(),
                    address: addresses[i].clone(),
                }) as Arc<dyn ChildSpec>
            })
            .collect();
        let record = GroupRecord::new("test", NAMES);
        let (tx, gave_up) = tokio::sync::mpsc::unbounded_channel();
        let (sup, _) = Actor::spawn(
            None,
            Supervisor,
            SupervisorArgs {
                group: "test",
                children: children.into(),
                policy: Arc::new(move || policy.clone()),
                observer: Arc::new(Quiet),
                record: record.clone(),
                give_up: Some(tx),
            },
        )
        .await
        .unwrap();
        Tree {
            sup,
            starts,
            refuse,
            record,
            addresses,
            gave_up,
        }
    }

    impl Tree {
        fn tell(&self, child: &str, msg: WorkerMsg) {
            let i = NAMES.iter().position(|n| *n == child).expect("a child");
            let w = self.addresses[i].get().expect("child running");
            w.cast(msg).unwrap();
        }

        fn starts(&self) -> Vec<u32> {
            self.starts
                .iter()
                .map(|s| s.load(Ordering::SeqCst))
                .collect()
        }

        fn states(&self) -> Vec<ChildState> {
            self.record
                .children()
                .into_iter()
                .map(|c| c.state)
                .collect()
        }

        async fn until(&self, what: &str, ok: impl Fn(&Self) -> bool) {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !ok(self) {
                assert!(
                    Instant::now() < deadline,
                    "{what}: starts {:?}, states {:?}",
                    self.starts(),
                    self.states()
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    fn all_running(t: &Tree) -> bool {
        t.states().iter().all(|s| *s == ChildState::Running)
    }

    #[tokio::test]
    async fn each_strategy_restarts_exactly_its_siblings() {
        let cases = [
            (Strategy::OneForOne, [1, 2, 1]),
            (Strategy::RestForOne, [1, 2, 2]),
            (Strategy::OneForAll, [2, 2, 2]),
        ];
        for (strategy, starts) in cases {
            let t = tree(policy(strategy, Restart::Permanent, 5)).await;
            t.tell("b", WorkerMsg::Fail);
            t.until("restarted", |t| t.starts()[1] == 2 && all_running(t))
                .await;
            assert_eq!(t.starts(), starts, "{strategy:?}");
            let restarts: Vec<u32> = t.record.children().iter().map(|c| c.restarts).collect();
            assert_eq!(restarts, starts.map(|s| s - 1), "{strategy:?}");
            assert_eq!(
                t.record.children()[1].last_failure.as_deref(),
                Some("told to fail")
            );
            t.sup.stop_and_wait(None, None).await.unwrap();
        }
    }

    #[tokio::test]
    async fn restart_types_decide_what_comes_back() {
        // A transient child that stops normally stays stopped; one that
        // fails comes back.
        let t = tree(policy(Strategy::OneForOne, Restart::Transient, 5)).await;
        t.tell("a", WorkerMsg::Stop);
        t.until("a stopped", |t| t.states()[0] == ChildState::Stopped)
            .await;
        t.tell("b", WorkerMsg::Fail);
        t.until("b back", |t| {
            t.starts()[1] == 2 && t.states()[1] == ChildState::Running
        })
        .await;
        assert_eq!(t.starts()[0], 1);
        t.sup.stop_and_wait(None, None).await.unwrap();

        // A temporary child never comes back.
        let t = tree(policy(Strategy::OneForOne, Restart::Temporary, 5)).await;
        t.tell("c", WorkerMsg::Fail);
        t.until("c stopped", |t| t.states()[2] == ChildState::Stopped)
            .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(t.starts(), [1, 1, 1]);
        t.sup.stop_and_wait(None, None).await.unwrap();
    }

    #[tokio::test]
    async fn past_its_intensity_the_root_gives_up_and_says_why() {
        let mut t = tree(policy(Strategy::OneForOne, Restart::Permanent, 2)).await;
        for n in 2..=3 {
            t.tell("a", WorkerMsg::Fail);
            t.until("a restarted", |t| t.starts()[0] == n && all_running(t))
                .await;
        }
        t.tell("a", WorkerMsg::Fail);
        let why = tokio::time::timeout(Duration::from_secs(5), t.gave_up.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(why.contains("a failed 3 times within 60s"), "{why}");
        assert!(why.contains("told to fail"), "{why}");
        assert_eq!(t.states()[0], ChildState::Stopped);
        t.sup.stop_and_wait(None, None).await.unwrap();
    }

    #[tokio::test]
    async fn a_child_that_cannot_start_again_counts_as_failing_again() {
        let mut t = tree(policy(Strategy::OneForOne, Restart::Permanent, 3)).await;
        t.refuse[0].store(true, Ordering::SeqCst);
        t.tell("a", WorkerMsg::Fail);
        let why = tokio::time::timeout(Duration::from_secs(5), t.gave_up.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(why.contains("start failed: refused to start"), "{why}");
        assert_eq!(t.record.children()[0].restarts, 3);
        t.sup.stop_and_wait(None, None).await.unwrap();
    }

    /// A supervisor under a supervisor: the inner one, past its intensity,
    /// fails, and the outer one restarts it with all its children.
    #[tokio::test]
    async fn a_supervisor_past_its_intensity_escalates_to_its_parent() {
        struct Inner {
            starts: Arc<AtomicU32>,
            record: Arc<GroupRecord>,
            worker: Address<WorkerMsg>,
        }
        #[async_trait::async_trait]
        impl ChildSpec for Inner {
            fn name(&self) -> &'static str {
                "inner"
            }
            async fn start(
                &self,
                parent: ActorCell,
            ) -> Result<Option<ActorCell>, ActorProcessingErr> {
                let spec: Arc<dyn ChildSpec> = Arc::new(WorkerSpec {
                    name: "w",
                    starts: self.starts.clone(),
                    refuse: Arc::new(AtomicBool::new(false)),
                    address: self.worker.clone(),
                });
                let (s, _) = Actor::spawn_linked(
                    None,
                    Supervisor,
                    SupervisorArgs {
                        group: "inner",
                        children: vec![spec].into(),
                        policy: Arc::new(|| policy(Strategy::OneForOne, Restart::Permanent, 1)),
                        observer: Arc::new(Quiet),
                        record: self.record.clone(),
                        give_up: None,
                    },
                    parent,
                )
                .await?;
                Ok(Some(s.get_cell()))
            }
        }
        let starts = Arc::new(AtomicU32::new(0));
        let inner_record = GroupRecord::new("inner", ["w"]);
        let outer_record = GroupRecord::new("outer", ["inner"]);
        let worker = Address::<WorkerMsg>::new("escalation.w");
        let inner: Arc<dyn ChildSpec> = Arc::new(Inner {
            starts: starts.clone(),
            record: inner_record.clone(),
            worker: worker.clone(),
        });
        let (tx, _gave_up) = tokio::sync::mpsc::unbounded_channel();
        let (outer, _) = Actor::spawn(
            None,
            Supervisor,
            SupervisorArgs {
                group: "outer",
                children: vec![inner].into(),
                policy: Arc::new(|| policy(Strategy::OneForOne, Restart::Permanent, 5)),
                observer: Arc::new(Quiet),
                record: outer_record.clone(),
                give_up: Some(tx),
            },
        )
        .await
        .unwrap();
        let fail = || async {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                if worker.cast(WorkerMsg::Fail).is_ok() {
                    return;
                }
                assert!(Instant::now() < deadline, "worker never came back");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let wait = |n: u32| {
            let starts = starts.clone();
            async move {
                let deadline = Instant::now() + Duration::from_secs(5);
                while starts.load(Ordering::SeqCst) < n {
                    assert!(Instant::now() < deadline, "never started {n} times");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        };
        // First failure: the inner supervisor restarts its worker.
        fail().await;
        wait(2).await;
        assert_eq!(outer_record.children()[0].restarts, 0);
        // Second: past its intensity, it fails, and the outer restarts it.
        fail().await;
        wait(3).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while outer_record.children()[0].state != ChildState::Running
            || outer_record.children()[0].restarts != 1
        {
            assert!(Instant::now() < deadline, "{:?}", outer_record.children());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let failure = outer_record.children()[0].last_failure.clone().unwrap();
        assert!(failure.contains("inner: w failed 2 times"), "{failure}");
        // The inner group's history survived its supervisor's restart.
        assert_eq!(inner_record.children()[0].restarts, 1);
        outer.stop_and_wait(None, None).await.unwrap();
        assert!(worker.get().is_none());
    }
}
