//! The supervision tree of the daemon, built from the generic supervisor
//! ([`crate::supervisor::tree::Supervisor`]):
//!
//! ```text
//! root      [supervision.root]      pipeline, stations, [reader,] ingest, web
//! pipeline  [supervision.pipeline]  archiver, aggregator, alerter, persister, hub
//! stations  [supervision.stations]  one actor per station (its own supervisor)
//! ```
//!
//! Children start in the order listed: sinks before the sources that feed
//! them. A group whose children fail past its intensity fails itself, and
//! the root's policy decides; the root giving up ends the daemon with a
//! non-zero exit. Restarts are logged, counted and announced to live
//! clients.

use std::sync::Arc;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};
use tokio::sync::mpsc;

use crate::actors::aggregator::{Aggregator, AggregatorArgs, AggregatorMsg};
use crate::actors::alerter::{Alerter, AlerterArgs, AlerterMsg};
use crate::actors::archiver::{Archiver, ArchiverArgs, ArchiverMsg};
use crate::actors::http::{HttpArgs, HttpServer, Serve};
use crate::actors::hub::{Hub, HubArgs, HubMsg, RestartEvent};
use crate::actors::ingest::{Ingest, IngestArgs};
use crate::actors::kafka_ingest::{KafkaIngest, KafkaIngestArgs};
use crate::actors::mqtt_server::{MqttServer, MqttServerArgs};
use crate::actors::persister::{Persister, PersisterArgs};
use crate::actors::pipeline::{Pipeline, Stored, StoredPort};
use crate::actors::stations::{Admission, StationsArgs, StationsSupervisor};
use crate::config::{Settings, SharedSupervision};
use crate::health::Health;
use crate::storage::archive::Archive;
use crate::storage::{LatestCache, Store};
use crate::supervisor::RestartPolicy;
use crate::supervisor::tree::{
    ChildSpec, GroupRecord, Observer, RestartNotice, Supervisor, SupervisorArgs, SupervisorMsg,
};

/// How readings arrive.
#[derive(Clone)]
pub enum Intake {
    /// Ingest subscribes at an external broker (`host`, `port`).
    External(String, u16),
    /// The embedded server listens here; the daemon's own clients (the
    /// simulator) log in with `login`.
    Embedded {
        listen: std::net::SocketAddr,
        login: crate::broker::InternalLogin,
    },
    /// Not MQTT: a cluster worker reads the readings topic of `[cluster]`.
    Kafka,
    /// No readings at all: an API instance of a cluster.
    None,
}

/// Everything needed to (re)start any part of the tree.
pub struct RootArgs {
    pub settings: Settings,
    /// The restart policies in force (reloadable).
    pub supervision: SharedSupervision,
    /// `[stations.<id>]` in force (reloadable).
    pub station_meta: crate::config::SharedStations,
    pub store: Arc<dyn Store>,
    pub cache: Arc<dyn LatestCache>,
    pub pipeline: Arc<Pipeline>,
    /// Where readings come from: the external broker ingest connects
    /// to, the embedded server's address, or a worker's Kafka topic.
    pub intake: Intake,
    /// A combined instance: a `reader` child also reads the readings
    /// topic that its ingest hands MQTT and uploads to.
    pub reader: bool,
    pub health: Arc<Health>,
    /// The data lake, when one is configured.
    pub archive: Option<Arc<dyn Archive>>,
    /// The HTTP listener, bound before the tree starts.
    pub listener: Arc<std::net::TcpListener>,
    /// What the web server serves on it.
    pub serve: Serve,
    /// The tree as the API shows it.
    pub records: Arc<TreeRecords>,
    /// Told why, when the root gives up.
    pub fatal: mpsc::UnboundedSender<String>,
}

impl RootArgs {
    /// What a reader of the readings topic needs: a worker's ingest, or
    /// a combined instance's reader (which leaves `/ready`'s `mqtt` to
    /// its MQTT ingest).
    fn kafka_reader(
        &self,
        health: Option<Arc<Health>>,
    ) -> Result<KafkaIngestArgs, ActorProcessingErr> {
        let crate::config::StoreTarget::Postgres { url, tls } = self.settings.storage.target()?
        else {
            return Err("a cluster worker needs storage.backend = \"postgres\"".into());
        };
        let view = self
            .pipeline
            .cluster
            .get()
            .ok_or("a cluster worker without its cluster view")?
            .clone();
        Ok(KafkaIngestArgs {
            cluster: self.settings.cluster.clone(),
            instance: self.settings.cluster.instance_name(),
            pipeline: self.pipeline.clone(),
            health,
            postgres: (url, tls),
            view,
            web: self.listener.local_addr().ok().map(|a| a.to_string()),
        })
    }
}

/// What each static supervisor knows of its children, kept across its
/// restarts. The stations supervisor keeps its own.
#[derive(Debug)]
pub struct TreeRecords {
    pub root: Arc<GroupRecord>,
    pub pipeline: Arc<GroupRecord>,
}

impl TreeRecords {
    /// The records of a tree with a `reader` child, or without.
    pub fn new(reader: bool) -> Self {
        Self {
            root: GroupRecord::new("root", root_parts(reader).iter().map(|p| p.name())),
            pipeline: GroupRecord::new("pipeline", PIPELINE.iter().map(|p| p.name())),
        }
    }
}

impl Default for TreeRecords {
    fn default() -> Self {
        Self::new(false)
    }
}

/// One part of the daemon under a static supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Pipeline,
    Stations,
    Reader,
    Ingest,
    Web,
    Archiver,
    Aggregator,
    Alerter,
    Persister,
    Hub,
}

const ROOT: [Part; 4] = [Part::Pipeline, Part::Stations, Part::Ingest, Part::Web];

/// The root's children: a combined instance's reader starts after the
/// stations it feeds and before the ingest that feeds its topic.
fn root_parts(reader: bool) -> Vec<Part> {
    if reader {
        vec![
            Part::Pipeline,
            Part::Stations,
            Part::Reader,
            Part::Ingest,
            Part::Web,
        ]
    } else {
        ROOT.to_vec()
    }
}
const PIPELINE: [Part; 5] = [
    Part::Archiver,
    Part::Aggregator,
    Part::Alerter,
    Part::Persister,
    Part::Hub,
];

impl Part {
    fn name(self) -> &'static str {
        match self {
            Self::Pipeline => "pipeline",
            Self::Stations => "stations",
            Self::Reader => "reader",
            Self::Ingest => "ingest",
            Self::Web => "web",
            Self::Archiver => "archiver",
            Self::Aggregator => "aggregator",
            Self::Alerter => "alerter",
            Self::Persister => "persister",
            Self::Hub => "hub",
        }
    }
}

/// A part with what it needs to start.
struct PartSpec {
    part: Part,
    args: Arc<RootArgs>,
}

/// Restarts as the rest of the daemon hears of them.
struct TreeObserver {
    pipeline: Arc<Pipeline>,
}

impl Observer for TreeObserver {
    fn restarting(&self, n: &RestartNotice<'_>) {
        RestartEvent {
            group: n.group,
            child: n.child.to_owned(),
            reason: n.reason.to_owned(),
            attempt: n.attempt,
            delay_ms: n.delay.as_millis() as u64,
            with: n.with.to_vec(),
            at: chrono::Utc::now(),
        }
        .announce(&self.pipeline.hub);
    }

    fn stopping(&self) -> bool {
        self.pipeline.is_stopping()
    }
}

/// The policy of a group, read from the settings in force at each failure.
fn policy_of(
    supervision: &SharedSupervision,
    group: fn(&crate::config::SupervisionSettings) -> RestartPolicy,
) -> Arc<dyn Fn() -> RestartPolicy + Send + Sync> {
    let supervision = supervision.clone();
    Arc::new(move || group(&supervision.read().unwrap_or_else(|e| e.into_inner())))
}

fn specs(parts: &[Part], args: &Arc<RootArgs>) -> Arc<[Arc<dyn ChildSpec>]> {
    parts
        .iter()
        .map(|&part| {
            Arc::new(PartSpec {
                part,
                args: args.clone(),
            }) as Arc<dyn ChildSpec>
        })
        .collect()
}

/// Starts the whole tree under its root, registered as `name`.
pub async fn start(name: String, args: RootArgs) -> Result<ActorRef<SupervisorMsg>, String> {
    let args = Arc::new(args);
    let (root, _) = Actor::spawn(
        Some(name),
        Supervisor,
        SupervisorArgs {
            group: "root",
            children: specs(&root_parts(args.reader), &args),
            policy: policy_of(&args.supervision, |s| s.root.policy()),
            observer: Arc::new(TreeObserver {
                pipeline: args.pipeline.clone(),
            }),
            record: args.records.root.clone(),
            give_up: Some(args.fatal.clone()),
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(root)
}

/// Who hears of stored readings: the aggregator and the archiver through
/// the batch's outbox entry, the alerter and the hub.
fn stored_port(p: &Pipeline, archive: bool) -> StoredPort {
    let mut port = StoredPort::default();
    let aggregator = p.aggregator.clone();
    port.subscribe(move |s: &Stored| {
        if let Some(batch) = &s.batch {
            aggregator.notify(AggregatorMsg::Stored(batch.clone()));
        }
    });
    if archive {
        let archiver = p.archiver.clone();
        port.subscribe(move |s: &Stored| {
            if let Some(batch) = &s.batch {
                archiver.notify(ArchiverMsg::Stored(batch.clone()));
            }
        });
    }
    let alerter = p.alerter.clone();
    port.subscribe(move |s: &Stored| alerter.notify(AlerterMsg::Readings(s.readings.clone())));
    let hub = p.hub.clone();
    port.subscribe(move |s: &Stored| {
        hub.notify(HubMsg::Publish(s.readings.clone(), s.traces.clone()))
    });
    port
}

#[async_trait::async_trait]
impl ChildSpec for PartSpec {
    fn name(&self) -> &'static str {
        self.part.name()
    }

    async fn start(&self, supervisor: ActorCell) -> Result<Option<ActorCell>, ActorProcessingErr> {
        let a = &*self.args;
        let p = &a.pipeline;
        let cell = match self.part {
            Part::Pipeline => Actor::spawn_linked(
                Some(p.pipeline.clone()),
                Supervisor,
                SupervisorArgs {
                    group: "pipeline",
                    children: specs(&PIPELINE, &self.args),
                    policy: policy_of(&a.supervision, |s| s.pipeline.policy()),
                    observer: Arc::new(TreeObserver {
                        pipeline: a.pipeline.clone(),
                    }),
                    record: a.records.pipeline.clone(),
                    give_up: None,
                },
                supervisor,
            )
            .await?
            .0
            .get_cell(),
            Part::Persister => {
                let args = PersisterArgs::from_settings(
                    &a.settings.persister,
                    a.store.clone(),
                    a.cache.clone(),
                    a.archive.is_some(),
                    Arc::new(stored_port(p, a.archive.is_some())),
                    p.deliveries.clone(),
                );
                p.persister
                    .spawn_linked(Persister, args, supervisor)
                    .await?
            }
            Part::Aggregator => {
                let args = AggregatorArgs::new(a.store.clone(), p.hub.clone());
                p.aggregator
                    .spawn_linked(Aggregator, args, supervisor)
                    .await?
            }
            Part::Alerter => {
                let args = AlerterArgs {
                    alerts: a.store.clone(),
                    readings: a.store.clone(),
                    settings: a.settings.alerts.clone(),
                    hub: p.hub.clone(),
                    context: p.deliveries.clone(),
                    cluster: a.pipeline.cluster.get().cloned(),
                };
                p.alerter.spawn_linked(Alerter, args, supervisor).await?
            }
            Part::Hub => {
                let args = HubArgs::new(a.store.clone());
                p.hub.spawn_linked(Hub, args, supervisor).await?
            }
            Part::Archiver => {
                let Some(archive) = a.archive.clone() else {
                    return Ok(None);
                };
                let args = ArchiverArgs::from_settings(&a.settings, a.store.clone(), archive);
                p.archiver.spawn_linked(Archiver, args, supervisor).await?
            }
            Part::Stations => {
                let admission = Admission {
                    settings: a.settings.admission.clone(),
                    registered: a.station_meta.clone(),
                };
                let mut args = StationsArgs::new(
                    a.pipeline.clone(),
                    a.supervision.clone(),
                    &a.settings.qc,
                    admission,
                );
                if a.pipeline.cluster.get().is_some() {
                    let store: Arc<dyn crate::storage::ReadingStore> = a.store.clone();
                    args.warm_from = Some(store);
                }
                p.stations
                    .spawn_linked(StationsSupervisor, args, supervisor)
                    .await?
            }
            Part::Ingest => match &a.intake {
                Intake::External(host, port) => {
                    let mut args = IngestArgs::from_settings(
                        &a.settings.mqtt,
                        &(host.clone(), *port),
                        a.pipeline.clone(),
                        a.health.clone(),
                    )?;
                    let cluster = &a.settings.cluster;
                    if cluster.role.bridges() {
                        // Bridges share the subscription, each with a
                        // session of its own.
                        args.client_id = format!("{}-{}", args.client_id, cluster.instance_name());
                        args.share = Some(cluster.group.clone());
                    }
                    p.ingest.spawn_linked(Ingest, args, supervisor).await?
                }
                Intake::Embedded { listen, login } => {
                    let args = MqttServerArgs::from_settings(
                        &a.settings.mqtt,
                        *listen,
                        login,
                        a.pipeline.clone(),
                        a.health.clone(),
                    )?;
                    p.ingest.spawn_linked(MqttServer, args, supervisor).await?
                }
                Intake::None => return Ok(None),
                Intake::Kafka => {
                    let args = a.kafka_reader(Some(a.health.clone()))?;
                    p.ingest.spawn_linked(KafkaIngest, args, supervisor).await?
                }
            },
            Part::Reader => {
                let args = a.kafka_reader(None)?;
                p.reader.spawn_linked(KafkaIngest, args, supervisor).await?
            }
            Part::Web => {
                p.http
                    .spawn_linked(
                        HttpServer,
                        HttpArgs {
                            listener: a.listener.clone(),
                            serve: a.serve.clone(),
                        },
                        supervisor,
                    )
                    .await?
            }
        };
        Ok(Some(cell))
    }
}
