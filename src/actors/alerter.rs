//! The alerter: runs the alert rules over every newly stored reading,
//! periodically over every station's last-seen time, and every few seconds
//! over the pipeline's health (the store answering, the share of messages
//! quarantined, the oldest message waiting to be stored). Records each alert
//! as it fires and resolves, and pushes it to the live clients and the
//! webhook. Alerts firing when it starts (after a restart of it or of the
//! daemon) are loaded from the store, so they are not fired again.
//!
//! An alert the store cannot take (the store unreachable is an alert
//! itself) is pushed at once, without an id, and recorded, in order, once
//! the store answers again.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::actors::hub::HubMsg;
use crate::actors::pipeline::Address;
use crate::config::AlertSettings;
use crate::delivery::DeliveryContext;
use crate::domain::alerts::{AlertEngine, AlertRules, Change, PipelineSample};
use crate::domain::{Reading, StationId};
use crate::storage::{AlertRecord, AlertStore, NewAlert, ReadingStore, StoreError};

pub enum AlerterMsg {
    /// Readings just stored (new ones only).
    Readings(Arc<[Reading]>),
    /// Time to look for silent stations.
    Check,
    /// Time to check the pipeline's health.
    CheckPipeline,
    /// Another instance of the cluster may have fired or resolved alerts:
    /// take the firing ones from the store. Replies once done.
    Resync(ractor::RpcReplyPort<()>),
}

pub struct Alerter;

pub struct AlerterArgs {
    /// Where alerts are recorded.
    pub alerts: Arc<dyn AlertStore>,
    /// Pinged for health; its stations seed who was heard from when.
    pub readings: Arc<dyn ReadingStore>,
    pub settings: AlertSettings,
    pub hub: Address<HubMsg>,
    /// Where the pipeline's flow is counted.
    pub context: Arc<DeliveryContext>,
    /// The cluster this instance is a member of, if any: silent stations
    /// and the pipeline's health are then judged by its leader alone.
    pub cluster: Option<Arc<crate::cluster::ClusterView>>,
}

pub struct AlerterState {
    alerts: Arc<dyn AlertStore>,
    readings: Arc<dyn ReadingStore>,
    engine: AlertEngine,
    hub: Address<HubMsg>,
    context: Arc<DeliveryContext>,
    webhook: Option<tokio::sync::mpsc::Sender<AlertRecord>>,
    /// Changes announced but not yet recorded, oldest first.
    unrecorded: VecDeque<Change>,
    /// Each station's newest stored reading this process has seen: the
    /// store's `last_seen` follows with the roll-up, seconds later, which
    /// is too late for a short `silent_after`.
    heard: std::collections::HashMap<StationId, DateTime<Utc>, foldhash::fast::RandomState>,
    cluster: Option<Arc<crate::cluster::ClusterView>>,
}

/// The time, to the microsecond the stores keep, so that an alert pushed
/// before it is recorded reads the same as the recorded one.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Changes kept while the store is unreachable; beyond, the oldest are
/// dropped (they were announced) and counted.
const MAX_UNRECORDED: usize = 10_000;
/// How long the store has to answer a health check.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Alerts on their way to the store's delivery queue; beyond, new ones
/// are dropped and counted (the alerts table has them all).
const WEBHOOK_QUEUE: usize = 1_000;
/// Posts per alert, 1 s apart and doubling, before it is given up.
const WEBHOOK_ATTEMPTS: i32 = 5;

/// The webhook's poster: each alert announced goes to the store's delivery
/// queue (or, if the store cannot take it, is posted at once), and the
/// queue is posted to `url` in order, the oldest first, each retried with
/// backoff. The queue outlives the process: what one instance queued and
/// could not post, the next posts. In a cluster only the leader posts (the
/// others queue). Ends when the alerter goes.
fn webhook(
    url: String,
    store: Arc<dyn AlertStore>,
    cluster: Option<Arc<crate::cluster::ClusterView>>,
) -> tokio::sync::mpsc::Sender<AlertRecord> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<AlertRecord>(WEBHOOK_QUEUE);
    tokio::spawn(async move {
        let client = match reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "alert webhook client could not be built");
                return;
            }
        };
        let post = Poster { client, url };
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                alert = rx.recv() => {
                    let Some(alert) = alert else { return };
                    let body = serde_json::json!({ "alert": alert }).to_string();
                    if let Err(e) = store.queue_delivery(&body).await {
                        tracing::warn!(error = %e, alert = ?alert.id,
                            "alert webhook: the store cannot queue the alert; posting it now");
                        post.now(&body).await;
                    }
                }
                _ = tick.tick() => {}
            }
            if cluster.as_ref().is_none_or(|c| c.leads()) {
                deliver_due(store.as_ref(), &post).await;
            }
        }
    });
    tx
}

/// Where alerts are posted.
struct Poster {
    client: reqwest::Client,
    url: String,
}

impl Poster {
    /// One post of `body`; true once the webhook took it.
    async fn post(&self, body: &str) -> bool {
        let outcome = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await;
        match outcome {
            Ok(r) if r.status().is_success() => true,
            // Not the URL: it may carry a token.
            Ok(r) => {
                tracing::warn!(
                    status = r.status().as_u16(),
                    "alert webhook refused the alert"
                );
                false
            }
            Err(e) => {
                tracing::warn!(error = %e.without_url(), "alert webhook unreachable");
                false
            }
        }
    }

    /// Posts `body` until it is taken or the attempts are spent.
    async fn now(&self, body: &str) {
        let mut delay = Duration::from_secs(1);
        for attempt in 1..=WEBHOOK_ATTEMPTS {
            if self.post(body).await {
                return;
            }
            if attempt < WEBHOOK_ATTEMPTS {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
        metrics::counter!("isobar_webhook_failures_total").increment(1);
        tracing::error!("alert webhook gave up on the alert");
    }
}

/// Posts the queued alerts that are due, oldest first, until one fails
/// (it waits its backoff, and the later ones with it, so they arrive in
/// order) or none is due.
async fn deliver_due(store: &dyn AlertStore, poster: &Poster) {
    loop {
        let queued = match store.next_delivery(Utc::now()).await {
            Ok(Some(queued)) => queued,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "alert webhook: the delivery queue is out of reach");
                return;
            }
        };
        let done = if poster.post(&queued.body).await {
            true
        } else if queued.attempts + 1 >= WEBHOOK_ATTEMPTS {
            metrics::counter!("isobar_webhook_failures_total").increment(1);
            tracing::error!(
                attempts = WEBHOOK_ATTEMPTS,
                "alert webhook gave up on the alert"
            );
            true
        } else {
            let backoff = Duration::from_secs(1 << queued.attempts);
            let next = Utc::now() + chrono::TimeDelta::from_std(backoff).unwrap_or_default();
            if let Err(e) = store.delivery_failed(queued.id, next).await {
                tracing::warn!(error = %e, "alert webhook: could not schedule the next post");
            }
            return;
        };
        if done && let Err(e) = store.delivery_done(queued.id).await {
            tracing::warn!(error = %e, "alert webhook: could not mark the alert posted");
            return;
        }
    }
}

/// Firing alerts loaded at start, at most.
const MAX_FIRING: usize = 100_000;

/// The alerts firing in the store: rule, station and since when.
async fn firing(
    alerts: &dyn AlertStore,
) -> Result<Vec<(String, Option<StationId>, DateTime<Utc>)>, StoreError> {
    Ok(alerts
        .alerts(Some(true), MAX_FIRING)
        .await?
        .into_iter()
        .filter_map(|alert| {
            let station = match &alert.station_id {
                None => None,
                Some(id) => Some(StationId::parse(id).ok()?),
            };
            Some((alert.rule, station, alert.fired_at))
        })
        .collect())
}

impl Actor for Alerter {
    type Msg = AlerterMsg;
    type State = AlerterState;
    type Arguments = AlerterArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: AlerterArgs,
    ) -> Result<AlerterState, ActorProcessingErr> {
        let settings = args.settings;
        let pipeline_every = settings
            .pipeline
            .enabled
            .then_some(settings.pipeline.check_every);
        let mut engine = AlertEngine::new(AlertRules {
            thresholds: settings.thresholds,
            silent_after: settings.silent_after,
            qc_failure_rate: settings.qc_failure_rate,
            pipeline: settings.pipeline,
        });
        match firing(args.alerts.as_ref()).await {
            Ok(firing) => {
                for (rule, station, since) in firing {
                    engine.firing(&rule, station, since);
                }
            }
            // Started anyway: an alert firing already may be fired again.
            Err(e) => tracing::warn!(error = %e, "could not load firing alerts"),
        }
        // Messages that came before the alerter started are not its to judge.
        let (processed, rejected) = args.context.flow.counts();
        engine.baseline(processed, rejected, now());
        myself.send_interval(settings.check_every, || AlerterMsg::Check);
        if let Some(every) = pipeline_every {
            myself.send_interval(every, || AlerterMsg::CheckPipeline);
        }
        let webhook = settings.webhook_url.map(|url| {
            webhook(
                url.expose().to_owned(),
                args.alerts.clone(),
                args.cluster.clone(),
            )
        });
        Ok(AlerterState {
            alerts: args.alerts,
            readings: args.readings,
            engine,
            hub: args.hub,
            context: args.context,
            webhook,
            unrecorded: VecDeque::new(),
            heard: Default::default(),
            cluster: args.cluster,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: AlerterMsg,
        state: &mut AlerterState,
    ) -> Result<(), ActorProcessingErr> {
        let changes = match msg {
            AlerterMsg::Readings(readings) => {
                for r in readings.iter() {
                    let heard = state
                        .heard
                        .entry(r.station_id.clone())
                        .or_insert(r.observed_at);
                    *heard = (*heard).max(r.observed_at);
                }
                readings
                    .iter()
                    .flat_map(|r| state.engine.observe(r))
                    .collect()
            }
            AlerterMsg::Resync(reply) => {
                state.resync().await;
                let _ = reply.send(());
                Vec::new()
            }
            // In a cluster, silent stations and the pipeline's health are
            // the leader's to judge.
            AlerterMsg::Check | AlerterMsg::CheckPipeline if !state.leads() => Vec::new(),
            AlerterMsg::Check => {
                state.record_waiting().await;
                if state.cluster.is_some() {
                    state.resync().await;
                }
                match state.readings.stations().await {
                    Ok(stations) => {
                        let seen: Vec<_> = stations
                            .into_iter()
                            .map(|s| {
                                let heard = state.heard.get(&s.station_id).copied();
                                let seen = heard.map_or(s.last_seen, |h| h.max(s.last_seen));
                                (s.station_id, seen)
                            })
                            .collect();
                        state.engine.check_silence(&seen, now())
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not check for silent stations");
                        Vec::new()
                    }
                }
            }
            AlerterMsg::CheckPipeline => {
                let answered = matches!(
                    tokio::time::timeout(PING_TIMEOUT, state.readings.ping()).await,
                    Ok(Ok(()))
                );
                if answered {
                    state.record_waiting().await;
                }
                let (processed, rejected) = state.context.flow.counts();
                let sample = PipelineSample {
                    store_answered: answered,
                    processed,
                    rejected,
                    lag: state.context.flow.lag(),
                    broker_dropped: state.context.flow.broker_drops(),
                };
                metrics::gauge!("isobar_processing_lag_seconds").set(sample.lag.as_secs_f64());
                tracing::debug!(?sample, "pipeline health");
                state.engine.check_pipeline(sample, now())
            }
        };
        for change in changes {
            state.apply(change).await;
        }
        Ok(())
    }
}

impl AlerterState {
    fn leads(&self) -> bool {
        self.cluster.as_ref().is_none_or(|c| c.leads())
    }

    /// Takes the firing alerts from the store, unless changes of its own
    /// wait to be recorded (the store is behind; it tries again later).
    async fn resync(&mut self) {
        if !self.unrecorded.is_empty() {
            return;
        }
        match firing(self.alerts.as_ref()).await {
            Ok(firing) => self.engine.sync_firing(firing),
            Err(e) => tracing::warn!(error = %e, "could not load firing alerts"),
        }
    }

    async fn record(&self, change: &Change) -> Result<Option<AlertRecord>, StoreError> {
        match change.clone() {
            Change::Fire {
                rule,
                station_id,
                value,
                at,
                message,
            } => self
                .alerts
                .fire_alert(NewAlert {
                    rule,
                    station_id,
                    value,
                    message,
                    fired_at: at,
                })
                .await
                .map(Some),
            Change::Resolve {
                rule,
                station_id,
                at,
                ..
            } => {
                self.alerts
                    .resolve_alert(&rule, station_id.as_ref(), at)
                    .await
            }
        }
    }

    /// Records a change and announces it; one the store cannot take yet is
    /// announced without an id and kept to record later. Changes are
    /// recorded in order: while older ones wait, so do newer ones.
    async fn apply(&mut self, change: Change) {
        if self.unrecorded.is_empty() {
            match self.record(&change).await {
                Ok(Some(alert)) => return self.announce(alert),
                Ok(None) => return,
                Err(e) => {
                    tracing::error!(error = %e, "could not record an alert; it is kept until the store answers");
                }
            }
        }
        self.announce(unrecorded(&change));
        if self.unrecorded.len() == MAX_UNRECORDED {
            self.unrecorded.pop_front();
            metrics::counter!("isobar_alerts_unrecorded_dropped_total").increment(1);
        }
        self.unrecorded.push_back(change);
    }

    /// Records what waited for the store, oldest first, until it refuses.
    async fn record_waiting(&mut self) {
        while let Some(change) = self.unrecorded.front() {
            match self.record(change).await {
                Ok(_) => {
                    self.unrecorded.pop_front();
                }
                Err(e) => {
                    tracing::warn!(error = %e, waiting = self.unrecorded.len(),
                        "alerts still waiting for the store");
                    break;
                }
            }
        }
    }

    fn announce(&self, alert: AlertRecord) {
        metrics::counter!("isobar_alerts_total", "rule" => alert.rule.clone(), "state" => alert.state)
            .increment(1);
        tracing::warn!(rule = %alert.rule, station_id = alert.station_id.as_deref().unwrap_or(""),
            state = alert.state, detail = %alert.message, "alert");
        if let Some(webhook) = &self.webhook
            && webhook.try_send(alert.clone()).is_err()
        {
            metrics::counter!("isobar_webhook_failures_total").increment(1);
            tracing::error!(rule = %alert.rule, "alert webhook queue full; alert not sent");
        }
        self.hub.notify(HubMsg::Alert(alert));
    }
}

/// A change as clients see it before the store has it: no id yet.
fn unrecorded(change: &Change) -> AlertRecord {
    let (rule, station, value, message, fired_at, resolved_at) = match change {
        Change::Fire {
            rule,
            station_id,
            value,
            at,
            message,
        } => (rule, station_id, *value, message.clone(), *at, None),
        Change::Resolve {
            rule,
            station_id,
            fired_at,
            at,
        } => (
            rule,
            station_id,
            None,
            "resolved".to_owned(),
            *fired_at,
            Some(*at),
        ),
    };
    let mut alert = AlertRecord::new(
        0,
        rule.clone(),
        station.as_ref().map_or(String::new(), |s| s.to_string()),
        value,
        message,
        fired_at,
        resolved_at,
    );
    alert.id = None;
    alert
}
