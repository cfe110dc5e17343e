//! Assembles the daemon from its settings: store, cache, broker, the actor
//! tree, the simulator and the web server; runs it until a shutdown signal
//! or until the root supervisor gives up, then stops it in order.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use ractor::ActorRef;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::actors::hub::HubMsg;
use crate::actors::ingest::IngestMsg;
use crate::actors::persister::PersisterMsg;
use crate::actors::pipeline::Pipeline;
use crate::actors::root::Intake;
use crate::actors::root::{RootArgs, TreeRecords};
use crate::actors::stations::StationsMsg;
use crate::broker::{BrokerError, InternalLogin};
use crate::config::{ArchiveTarget, CacheTarget, ConfigError, Settings, SharedSupervision};
use crate::health::Health;
use crate::storage::archive::{Archive, LocalArchive, S3Archive};
use crate::storage::{LatestCache, MemoryCache, RedisCache, StoreError};
use crate::supervisor::tree::SupervisorMsg;
use crate::web::{self, WebContext};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(
        "cannot listen for HTTP on {addr}: {reason}. Choose another address with web.listen, \
         ISOBAR__WEB__LISTEN or --listen"
    )]
    WebBind { addr: SocketAddr, reason: String },
    #[error("cannot set up the cache: {0}")]
    Cache(String),
    #[error(transparent)]
    Kafka(#[from] crate::cluster::KafkaError),
    #[error("cannot start the actor tree: {0}")]
    Actors(String),
    #[error("invalid configuration: {0}")]
    Auth(String),
    /// The settings are checked before the daemon starts; this is what
    /// building it makes of them, should they not have been.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the root supervisor gave up: {0}")]
    GaveUp(String),
}

pub struct App {
    settings: Settings,
    supervision: SharedSupervision,
    station_meta: crate::config::SharedStations,
    web_addr: SocketAddr,
    /// The MQTT broker ingest uses; none for a cluster worker.
    mqtt_addr: Option<(String, u16)>,
    root: ActorRef<SupervisorMsg>,
    pipeline: Arc<Pipeline>,
    fatal: mpsc::UnboundedReceiver<String>,
    simulator: Option<tokio::task::JoinHandle<()>>,
    /// Sources inside the daemon (the simulator, replayed files), told to
    /// stop first.
    sources: CancellationToken,
    replays: Vec<tokio::task::JoinHandle<crate::replay::ReplayReport>>,
}

/// This process among the instances that share a cache.
fn instance_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_default();
    format!("{host}-{}-{}", std::process::id(), rand::random::<u32>())
}

/// The process-wide Prometheus recorder (metrics allows one per process).
fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            use metrics_exporter_prometheus::Matcher;
            // Latencies as histograms (aggregatable across instances),
            // from half a millisecond to ten seconds.
            const SECONDS: [f64; 14] = [
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
            ];
            const SIZES: [f64; 10] = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full("isobar_batch_size".into()), &SIZES)
                })
                .ok()?
                .install_recorder()
                .ok()
        })
        .clone()
}

impl App {
    /// Builds everything, binds every port and starts the supervision tree:
    /// from here on the daemon takes readings and serves HTTP. [`App::run`]
    /// waits for the end and stops it in order.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        crate::config::install_crypto_provider();
        static INSTANCES: AtomicU64 = AtomicU64::new(0);
        let instance = format!("isobar{}", INSTANCES.fetch_add(1, Ordering::Relaxed));
        let pipeline = Pipeline::new(&instance, settings.persister.quarantine_max_bytes);
        let metrics = metrics_handle();

        let store = crate::storage::open(
            &settings.storage,
            settings.storage.migrate_on_start,
            Duration::from_secs(30),
        )
        .await?;
        let cache: Arc<dyn LatestCache> = match settings.cache.target()? {
            CacheTarget::Memory => Arc::new(MemoryCache::default()),
            CacheTarget::Redis { url, tls } => {
                let redis = RedisCache::connect(
                    url.expose(),
                    &settings.cache.key_prefix,
                    &instance_id(),
                    tls,
                )
                .map_err(|e| StartupError::Cache(e.to_string()))?;
                let hub = pipeline.hub.clone();
                // Readings stored by other instances reach this one's clients.
                redis
                    .relay(move |readings| {
                        hub.notify(HubMsg::Publish(readings.into(), Vec::new()));
                    })
                    .map_err(|e| StartupError::Cache(e.to_string()))?;
                tracing::info!(prefix = %settings.cache.key_prefix, "cache: redis");
                Arc::new(redis)
            }
        };

        use crate::config::ClusterRole;
        let role = settings.cluster.role;
        if role.bridges() {
            let bridge = crate::actors::bridge::Bridge::start(&settings.cluster).await?;
            let _ = pipeline.bridge.set(bridge);
        }
        // An API instance never leads: the cluster-wide duties are the
        // workers'.
        if role.works() || role == ClusterRole::Api {
            let _ = pipeline
                .cluster
                .set(Arc::new(crate::cluster::ClusterView::new(
                    role.name(),
                    &settings.cluster.instance_name(),
                    &settings.cluster.topic,
                )));
        }
        let endpoint = match role {
            ClusterRole::Api => Intake::None,
            ClusterRole::Worker => Intake::Kafka,
            ClusterRole::Off | ClusterRole::Bridge | ClusterRole::Combined => {
                match settings.mqtt.external_broker()? {
                    Some((host, port)) => Intake::External(host, port),
                    None => {
                        let listen = settings.mqtt.listen;
                        // The server logs how clients log in when it listens.
                        if settings.mqtt.users_file.is_none() && !listen.ip().is_loopback() {
                            tracing::warn!(%listen,
                                "embedded MQTT server: anyone who can reach it may publish (mqtt.allow_anonymous)");
                        }
                        Intake::Embedded {
                            listen: crate::broker::probe(listen)?,
                            login: InternalLogin::new(),
                        }
                    }
                }
            }
        };
        let mqtt_addr = match &endpoint {
            Intake::External(host, port) => Some((host.clone(), *port)),
            Intake::Embedded { listen, .. } => Some((listen.ip().to_string(), listen.port())),
            Intake::Kafka | Intake::None => None,
        };

        let listener = tokio::net::TcpListener::bind(settings.web.listen)
            .await
            .map_err(|e| StartupError::WebBind {
                addr: settings.web.listen,
                reason: e.to_string(),
            })?;
        let web_addr = listener.local_addr().map_err(|e| StartupError::WebBind {
            addr: settings.web.listen,
            reason: e.to_string(),
        })?;
        let listener = Arc::new(listener.into_std().map_err(|e| StartupError::WebBind {
            addr: settings.web.listen,
            reason: e.to_string(),
        })?);

        let archive: Option<Arc<dyn Archive>> = match settings.archive.target()? {
            ArchiveTarget::Off => None,
            ArchiveTarget::Local => {
                let dir = settings.archive.local_dir(&settings.storage);
                tracing::info!(dir = %dir.display(), "archive: local directory");
                Some(Arc::new(LocalArchive::new(dir)))
            }
            ArchiveTarget::S3 { bucket } => {
                let a = &settings.archive;
                tracing::info!(bucket, endpoint = ?a.endpoint_url, "archive: s3");
                Some(Arc::new(
                    S3Archive::new(
                        bucket,
                        a.region.as_deref(),
                        a.endpoint_url.as_deref(),
                        a.path_style,
                    )
                    .await,
                ))
            }
        };
        let supervision: SharedSupervision =
            Arc::new(std::sync::RwLock::new(settings.supervision.clone()));
        let station_meta: crate::config::SharedStations =
            Arc::new(std::sync::RwLock::new(settings.stations.clone()));
        let (fatal_tx, fatal) = mpsc::unbounded_channel();
        let health = Arc::new(Health::default());
        if matches!(endpoint, Intake::None) {
            health.set_no_intake();
        }
        let guard = web::Guard::from_settings(&settings.web)
            .map_err(|e| StartupError::Auth(format!("{}: {}", e.key, e.reason)))?;
        let reader = role == ClusterRole::Combined;
        let records = Arc::new(TreeRecords::new(reader));
        let web = Arc::new(WebContext {
            pipeline: pipeline.clone(),
            data: web::Data::new(store.clone(), cache.clone(), archive.clone()),
            system: web::System {
                tree: records.clone(),
                supervision: supervision.clone(),
                station_meta: station_meta.clone(),
                health: health.clone(),
                metrics,
            },
            guard,
            serving: web::Serving::from_settings(&settings.web),
        });
        let root = crate::actors::root::start(
            pipeline.root.clone(),
            RootArgs {
                settings: settings.clone(),
                supervision: supervision.clone(),
                station_meta: station_meta.clone(),
                store,
                cache,
                pipeline: pipeline.clone(),
                intake: endpoint.clone(),
                reader,
                health,
                archive,
                listener,
                serve: crate::web::server(web),
                records,
                fatal: fatal_tx,
            },
        )
        .await
        .map_err(StartupError::Actors)?;

        // The simulator and replayed files: stopped first, at shutdown.
        let sources = CancellationToken::new();
        // An API instance shows the workers as its members would.
        if let (ClusterRole::Api, Some(view)) = (role, pipeline.cluster.get())
            && let crate::config::StoreTarget::Postgres { url, tls } = settings.storage.target()?
        {
            tokio::spawn(crate::cluster::membership::observe(
                view.clone(),
                (url, tls),
                settings.cluster.group.clone(),
                settings.cluster.topic.clone(),
                sources.child_token(),
            ));
        }
        // A worker has no MQTT (its config says so at start).
        let simulator = mqtt_addr
            .clone()
            .filter(|_| settings.simulator.stations.get() > 0)
            .map(|(host, port)| {
                let sim = settings.simulator.clone();
                let token = sources.child_token();
                let login = match &endpoint {
                    Intake::Embedded { login, .. } => {
                        Some((login.username.clone(), login.password.expose().to_owned()))
                    }
                    Intake::External(..) | Intake::Kafka | Intake::None => None,
                };
                let broker = crate::publisher::Target { host, port, login };
                tokio::spawn(async move {
                    if let Err(e) = crate::simulator::publish(
                        &broker,
                        sim.stations.get(),
                        sim.interval,
                        sim.seed,
                        None,
                        token,
                    )
                    .await
                    {
                        tracing::error!(error = %e, "simulator stopped");
                    }
                })
            });
        Ok(Self {
            settings,
            supervision,
            station_meta,
            web_addr,
            mqtt_addr,
            root,
            pipeline,
            fatal,
            simulator,
            sources,
            replays: Vec::new(),
        })
    }

    /// The running pipeline, whose [`Pipeline::submit`] every source calls.
    pub fn pipeline(&self) -> Arc<Pipeline> {
        self.pipeline.clone()
    }

    /// Hands a recorded file's rows in, as a source of their own, while the
    /// daemon runs (`isobar run --replay`). The task ends, with what became
    /// of the rows, once every row handed in is stored, quarantined or,
    /// the daemon stopping first, given back.
    pub fn replay(&mut self, source: crate::replay::ReplaySource) {
        let task = tokio::spawn(source.run(self.pipeline.clone(), self.sources.child_token()));
        self.replays.push(task);
    }

    pub fn web_addr(&self) -> SocketAddr {
        self.web_addr
    }

    /// Puts what a reload may change in force: the restart policies (the
    /// supervisors read them at each failure, so they apply from the next
    /// one; nothing is restarted for it) and the station metadata (from
    /// the next request).
    pub fn reloader(&self) -> impl Fn(Settings) + Send + Sync + 'static {
        let supervision = self.supervision.clone();
        let stations = self.station_meta.clone();
        move |new| {
            *supervision.write().unwrap_or_else(|e| e.into_inner()) = new.supervision;
            *stations.write().unwrap_or_else(|e| e.into_inner()) = new.stations;
        }
    }

    /// `host:port` of the broker ingest uses (embedded or external).
    /// The settings in force at start.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// (None for a cluster worker, which reads Kafka.)
    pub fn mqtt_addr(&self) -> Option<String> {
        let (host, port) = self.mqtt_addr.as_ref()?;
        Some(format!("{host}:{port}"))
    }

    /// Serves until `shutdown` resolves (then stops gracefully and returns
    /// Ok) or the root supervisor gives up (then returns the reason).
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
        tracing::info!(web = %self.web_addr, mqtt = ?self.mqtt_addr(), cluster = ?self.settings.cluster.role,
            mode = ?self.settings.mqtt.mode, "isobar running");

        let outcome = tokio::select! {
            () = shutdown => Ok(()),
            why = self.fatal.recv() => Err(RunError::GaveUp(why.unwrap_or_default())),
        };
        tracing::info!("stopping");
        self.sources.cancel();
        if let Some(task) = self.simulator.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        drain(&self.pipeline).await;
        self.pipeline.stop();
        // What the replays handed in is stored by now, or given back.
        for replay in self.replays.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), replay).await;
        }
        // The root stops its children last started first (the web server,
        // ingest, the stations, then the pipeline), each group likewise.
        let _ = self
            .root
            .stop_and_wait(None, Some(Duration::from_secs(30)))
            .await;
        tracing::info!("stopped");
        outcome
    }
}

/// Stops taking messages, pushes what is in flight through the stations and
/// the persister, acknowledges it, then disconnects from the broker.
async fn drain(pipeline: &Pipeline) {
    let timeout = Some(Duration::from_secs(10));
    let ingest = pipeline.ingest.get();
    if let Some(ingest) = &ingest {
        let _ = ingest.call(IngestMsg::Pause, timeout).await;
    }
    if let Some(bridge) = pipeline.bridge.get() {
        // What the bridge took reaches Kafka, and its sources hear so.
        bridge.flush(Duration::from_secs(10)).await;
    }
    // A combined instance's reader: what it read is stored and committed
    // below; the rest of the topic waits for the next owner.
    let reader = pipeline.reader.get();
    if let Some(reader) = &reader {
        let _ = reader.call(IngestMsg::Pause, timeout).await;
    }
    if let Some(stations) = pipeline.stations.get() {
        let _ = stations.call(StationsMsg::Drain, timeout).await;
    }
    if let Some(persister) = pipeline.persister.get() {
        match persister.call(PersisterMsg::Flush, timeout).await {
            Ok(ractor::rpc::CallResult::Success(Ok(()))) => tracing::info!("persister flushed"),
            other => {
                tracing::error!(outcome = ?other.map(|_| ()), "final flush failed; the broker keeps what was not acknowledged")
            }
        }
    }
    if let Some(aggregator) = pipeline.aggregator.get() {
        // Rollups caught up with what was stored (what is left waits in
        // the outbox for the next start anyway).
        let _ = aggregator
            .call(crate::actors::aggregator::AggregatorMsg::Flush, timeout)
            .await;
    }
    if let Some(archiver) = pipeline.archiver.get() {
        // Close the open spool segment; it is uploaded now or after restart.
        let _ = archiver
            .call(crate::actors::archiver::ArchiverMsg::Close, timeout)
            .await;
    }
    if let Some(reader) = &reader {
        let _ = reader.call(IngestMsg::Disconnect, timeout).await;
    }
    if let Some(ingest) = &ingest {
        let _ = ingest.call(IngestMsg::Disconnect, timeout).await;
    }
}
