//! The alerter: runs the alert rules over every newly stored reading and,
//! periodically, over every station's last-seen time; records each alert as
//! it fires and resolves, and pushes it to the live clients. Alerts firing
//! when it starts (after a restart of it or of the daemon) are loaded from
//! the store, so they are not fired again.

use std::sync::Arc;

use chrono::Utc;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::actors::hub::HubMsg;
use crate::config::AlertSettings;
use crate::domain::Reading;
use crate::domain::alerts::{AlertEngine, Change};
use crate::storage::{AlertRecord, NewAlert, Store};

pub enum AlerterMsg {
    /// Readings just stored (new ones only).
    Readings(Arc<[Reading]>),
    /// Time to look for silent stations.
    Check,
}

pub struct Alerter;

pub struct AlerterArgs {
    pub store: Arc<dyn Store>,
    pub settings: AlertSettings,
    pub hub: String,
}

pub struct AlerterState {
    store: Arc<dyn Store>,
    engine: AlertEngine,
    hub: String,
    webhook: Option<tokio::sync::mpsc::Sender<AlertRecord>>,
}

/// Alerts waiting for the webhook; beyond, new ones are dropped and
/// counted (the alerts table has them all).
const WEBHOOK_QUEUE: usize = 1_000;
/// Attempts per alert, 1 s apart and doubling.
const WEBHOOK_ATTEMPTS: u32 = 5;

/// Posts alerts to `url` one at a time, in order, retrying each with
/// backoff. Ends when the alerter goes.
fn webhook(url: String) -> tokio::sync::mpsc::Sender<AlertRecord> {
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
        while let Some(alert) = rx.recv().await {
            let body = serde_json::json!({ "alert": alert });
            let mut delay = std::time::Duration::from_secs(1);
            for attempt in 1..=WEBHOOK_ATTEMPTS {
                let outcome = client.post(&url).json(&body).send().await;
                match outcome {
                    Ok(r) if r.status().is_success() => break,
                    // Not the URL: it may carry a token.
                    Ok(r) => tracing::warn!(
                        status = r.status().as_u16(),
                        attempt,
                        alert = alert.id,
                        "alert webhook refused the alert"
                    ),
                    Err(e) => tracing::warn!(error = %e.without_url(), attempt,
                        alert = alert.id, "alert webhook unreachable"),
                }
                if attempt == WEBHOOK_ATTEMPTS {
                    metrics::counter!("isobar_webhook_failures_total").increment(1);
                    tracing::error!(alert = alert.id, "alert webhook gave up on the alert");
                } else {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
    });
    tx
}

/// Firing alerts loaded at start, at most.
const MAX_FIRING: usize = 100_000;

impl Actor for Alerter {
    type Msg = AlerterMsg;
    type State = AlerterState;
    type Arguments = AlerterArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: AlerterArgs,
    ) -> Result<AlerterState, ActorProcessingErr> {
        let mut engine = AlertEngine::new(args.settings.thresholds, args.settings.silent_after);
        match args.store.alerts(Some(true), MAX_FIRING).await {
            Ok(firing) => {
                for alert in firing {
                    if let Ok(station) = crate::domain::StationId::parse(&alert.station_id) {
                        engine.firing(&alert.rule, station);
                    }
                }
            }
            // Started anyway: an alert firing already may be fired again.
            Err(e) => tracing::warn!(error = %e, "could not load firing alerts"),
        }
        myself.send_interval(args.settings.check_every, || AlerterMsg::Check);
        Ok(AlerterState {
            store: args.store,
            engine,
            hub: args.hub,
            webhook: args
                .settings
                .webhook_url
                .map(|url| webhook(url.expose().to_owned())),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: AlerterMsg,
        state: &mut AlerterState,
    ) -> Result<(), ActorProcessingErr> {
        let changes = match msg {
            AlerterMsg::Readings(readings) => readings
                .iter()
                .flat_map(|r| state.engine.observe(r))
                .collect(),
            AlerterMsg::Check => match state.store.stations().await {
                Ok(stations) => {
                    let seen: Vec<_> = stations
                        .into_iter()
                        .map(|s| (s.station_id, s.last_seen))
                        .collect();
                    state.engine.check_silence(&seen, Utc::now())
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not check for silent stations");
                    Vec::new()
                }
            },
        };
        for change in changes {
            state.apply(change).await;
        }
        Ok(())
    }
}

impl AlerterState {
    async fn apply(&self, change: Change) {
        let result = match change {
            Change::Fire {
                rule,
                station_id,
                value,
                at,
                message,
            } => self
                .store
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
            } => self.store.resolve_alert(&rule, &station_id, at).await,
        };
        match result {
            Ok(Some(alert)) => {
                metrics::counter!("isobar_alerts_total", "rule" => alert.rule.clone(), "state" => alert.state)
                    .increment(1);
                tracing::warn!(rule = %alert.rule, station_id = %alert.station_id,
                    state = alert.state, message = %alert.message, "alert");
                if let Some(webhook) = &self.webhook
                    && webhook.try_send(alert.clone()).is_err()
                {
                    metrics::counter!("isobar_webhook_failures_total").increment(1);
                    tracing::error!(alert = alert.id, "alert webhook queue full; alert not sent");
                }
                if let Some(hub) = ActorRef::<HubMsg>::where_is(self.hub.clone()) {
                    let _ = hub.cast(HubMsg::Alert(alert));
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "could not record an alert"),
        }
    }
}
