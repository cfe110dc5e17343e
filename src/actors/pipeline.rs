//! Where the pipeline's actors are, typed: one [`Address`] per actor, held
//! by everyone who sends to it. A supervisor restarting an actor spawns it
//! through its address, which then points at the new incarnation; senders
//! keep the same address across restarts and never look an actor up by
//! name. A message of the wrong type for an address does not compile.
//! Stored readings go out once, on a [`StoredPort`], to whoever subscribed.
//!
//! The pipeline is also the one front door every source uses,
//! [`Pipeline::submit`], and it decides what becomes of a delivery that
//! comes back unacknowledged ([`crate::delivery`]).

use std::sync::{Arc, Weak};
use std::time::Duration;

pub use crate::supervisor::address::Address;

use crate::actors::aggregator::AggregatorMsg;
use crate::actors::alerter::AlerterMsg;
use crate::actors::archiver::ArchiverMsg;
use crate::actors::http::HttpMsg;
use crate::actors::hub::HubMsg;
use crate::actors::ingest::IngestMsg;
use crate::actors::persister::PersisterMsg;
use crate::actors::stations::StationsMsg;
use crate::delivery::{Arrival, Delivery, DeliveryContext, MAX_ATTEMPTS, Returned};
use crate::domain::{Name, Reading, RejectReason, StationId};
use crate::storage::StoredBatch;

/// The addresses of one running pipeline: every actor a part of the daemon
/// sends to. The supervisors that group them (`root`, `pipeline`) are
/// only named.
#[derive(Debug)]
pub struct Pipeline {
    pub root: String,
    pub pipeline: String,
    pub http: Address<HttpMsg>,
    pub ingest: Address<IngestMsg>,
    /// A combined instance's reader of the readings topic (its `ingest`
    /// takes MQTT and hands it to the topic).
    pub reader: Address<IngestMsg>,
    pub stations: Address<StationsMsg>,
    pub persister: Address<PersisterMsg>,
    pub hub: Address<HubMsg>,
    pub archiver: Address<ArchiverMsg>,
    pub aggregator: Address<AggregatorMsg>,
    pub alerter: Address<AlerterMsg>,
    /// What its deliveries share: flow counters, the stop flag, the way
    /// back.
    pub deliveries: Arc<DeliveryContext>,
    /// The cluster this instance is a member of (`cluster.role`), set
    /// once at start; unset for a single instance.
    pub cluster: std::sync::OnceLock<Arc<crate::cluster::ClusterView>>,
    /// On a bridge (`cluster.role = "bridge"` or `"combined"`): where
    /// every arrival submitted goes instead of the station actors, set
    /// once at start.
    pub bridge: std::sync::OnceLock<Arc<crate::actors::bridge::Bridge>>,
}

impl Pipeline {
    /// The addresses of a pipeline whose actors are named after
    /// `instance` (`<instance>.persister`, ...), none running yet. Within
    /// a tokio runtime it starts taking back the deliveries dropped
    /// unacknowledged ([`Pipeline::redeliver`]); outside one, those go
    /// back to their sources.
    pub fn new(instance: &str, quarantine_max_bytes: usize) -> Arc<Self> {
        let (deliveries, returned) = DeliveryContext::new(quarantine_max_bytes);
        let pipeline = Arc::new(Self {
            root: format!("{instance}.root"),
            pipeline: format!("{instance}.pipeline"),
            http: Address::new(format!("{instance}.web")),
            ingest: Address::new(format!("{instance}.ingest")),
            reader: Address::new(format!("{instance}.reader")),
            stations: Address::new(format!("{instance}.stations")),
            persister: Address::new(format!("{instance}.persister")),
            hub: Address::new(format!("{instance}.hub")),
            archiver: Address::new(format!("{instance}.archiver")),
            aggregator: Address::new(format!("{instance}.aggregator")),
            alerter: Address::new(format!("{instance}.alerter")),
            deliveries,
            cluster: std::sync::OnceLock::new(),
            bridge: std::sync::OnceLock::new(),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(take_back(Arc::downgrade(&pipeline), returned));
        }
        pipeline
    }

    /// From now on, deliveries dropped go back to their sources
    /// unacknowledged, and nothing waits to be sent.
    pub fn stop(&self) {
        self.deliveries.stop();
    }

    /// Whether this instance does the duties done once across a cluster
    /// (silent stations, the pipeline's health): a single instance always
    /// does, a member while it leads.
    pub fn leads(&self) -> bool {
        self.cluster.get().is_none_or(|c| c.leads())
    }

    pub fn is_stopping(&self) -> bool {
        self.deliveries.is_stopping()
    }

    /// The one front door of the pipeline: every source (MQTT, HTTP
    /// uploads, replayed files) hands its messages in here. A message for
    /// a station goes to that station's actor; one that names none is
    /// quarantined with the reason. Either way it is acknowledged once what
    /// it carried is stored.
    pub fn submit(&self, arrival: Arrival) {
        if let Some(bridge) = self.bridge.get() {
            return bridge.forward(arrival);
        }
        self.process(arrival);
    }

    /// Hands an arrival to this instance's station actors, never to a
    /// bridge: the way in for what was read from the readings topic.
    pub fn process(&self, arrival: Arrival) {
        let Arrival {
            station,
            source,
            payload,
            format,
            ack,
            received_at,
        } = arrival;
        let mut delivery = Delivery::new(
            station.as_ref().ok().cloned(),
            source,
            payload,
            format,
            ack,
            self.deliveries.clone(),
        );
        if let Some(at) = received_at {
            delivery = delivery.received(at);
        }
        let _ingest = tracing::info_span!(target: crate::telemetry::TRACE_TARGET,
            parent: &delivery.span, "ingest", source = %Name(&delivery.source))
        .entered();
        match station {
            // Waits in the background if the supervisor is restarting.
            Ok(_) => self.to_stations(delivery),
            Err(reason) => {
                tracing::info!(source = %Name(&delivery.source), reason = reason.code(),
                    "message quarantined");
                let record = delivery.quarantine_record(&reason);
                self.to_persister(PersisterMsg::quarantine(record, delivery));
            }
        }
    }

    /// Decides on a delivery that came back unacknowledged: its actor died
    /// with it in its mailbox or batch. It is routed again from the start;
    /// after [`MAX_ATTEMPTS`], or without a station to route to, it is
    /// quarantined. Once stopping, it goes back to its source.
    pub fn redeliver(&self, mut delivery: Delivery) {
        if self.is_stopping() {
            delivery.abandon();
            return;
        }
        delivery.returned_again();
        if delivery.attempts() > MAX_ATTEMPTS || delivery.station_id.is_none() {
            let reason = RejectReason::ProcessingFailed {
                attempts: delivery.attempts(),
            };
            metrics::counter!("isobar_poison_messages_total").increment(1);
            tracing::error!(station_id = ?delivery.station_id.as_ref().map(StationId::as_str),
                source = %Name(&delivery.source), reason = reason.code(),
                "quarantining a message that could not be processed");
            let record = delivery.quarantine_record(&reason);
            self.to_persister(PersisterMsg::quarantine(record, delivery));
        } else {
            self.to_stations(delivery);
        }
    }

    /// Sends a delivery to the station supervisor. While it is not running
    /// (being restarted) the delivery waits in the background and is sent
    /// when it is back: it is never dropped, and waiting is not an attempt.
    pub fn to_stations(&self, delivery: Delivery) {
        self.send_or_wait(self.stations.clone(), StationsMsg::Route(delivery));
    }

    /// Sends to the persister, waiting for it likewise.
    pub fn to_persister(&self, msg: PersisterMsg) {
        self.send_or_wait(self.persister.clone(), msg);
    }

    fn send_or_wait<M: ractor::Message>(&self, to: Address<M>, msg: M) {
        let Err(msg) = to.cast(msg) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let deliveries = self.deliveries.clone();
        runtime.spawn(async move {
            let mut msg = msg;
            let mut delay = Duration::from_millis(20);
            loop {
                tokio::time::sleep(delay).await;
                // Once stopping, dropping it hands it back to its source.
                if deliveries.is_stopping() {
                    return;
                }
                match to.cast(msg) {
                    Ok(()) => return,
                    Err(back) => msg = back,
                }
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        });
    }
}

/// Takes back the deliveries of a pipeline dropped unacknowledged, for as
/// long as the pipeline exists.
async fn take_back(pipeline: Weak<Pipeline>, mut returned: Returned) {
    while let Some(delivery) = returned.recv().await {
        match pipeline.upgrade() {
            Some(pipeline) => pipeline.redeliver(delivery),
            None => delivery.abandon(),
        }
    }
}

/// A batch of new readings just committed, as the persister publishes it.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The readings the store did not hold before.
    pub readings: Arc<[Reading]>,
    /// The batch's outbox entry, which keeps the readings for the rollups
    /// and the archive until they have used them; `None` when the store
    /// kept none.
    pub batch: Option<StoredBatch>,
    /// The traces of the deliveries that carried them (empty unless traces
    /// are recorded).
    pub traces: Vec<tracing::Span>,
}

type Subscriber = Box<dyn Fn(&Stored) + Send + Sync>;

/// Stored readings, published once to every subscriber in the order they
/// subscribed. Whoever builds the pipeline subscribes its consumers (the
/// aggregator, the archiver, the alerter, the hub); the persister names
/// none of them.
#[derive(Default)]
pub struct StoredPort {
    subscribers: Vec<Subscriber>,
}

impl std::fmt::Debug for StoredPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredPort")
            .field("subscribers", &self.subscribers.len())
            .finish()
    }
}

impl StoredPort {
    /// Adds a consumer: it turns what was stored into its own message.
    pub fn subscribe(&mut self, consumer: impl Fn(&Stored) + Send + Sync + 'static) {
        self.subscribers.push(Box::new(consumer));
    }

    pub fn publish(&self, stored: &Stored) {
        for subscriber in &self.subscribers {
            subscriber(stored);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::{Ack, Format};

    /// A delivery dropped while its runtime shuts down goes back to its
    /// source unacknowledged: routing it again would spawn a task that the
    /// runtime drops at once, which would route it again, without end.
    #[test]
    fn a_delivery_dropped_during_shutdown_is_left_to_the_broker() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        runtime.block_on(async {
            let pipeline = Pipeline::new("shutdown-test", 1024);
            let delivery = Delivery::new(
                Some(StationId::parse("WS001").unwrap()),
                "test".into(),
                bytes::Bytes::from_static(b"{}"),
                Format::Json,
                Ack::new(tx),
                pipeline.deliveries.clone(),
            );
            // No station supervisor is running: it waits in a task.
            drop(delivery);
        });
        drop(runtime);
        // Never acknowledged, and the process is still here.
        assert!(rx.blocking_recv().is_err());
    }

    /// Every subscriber hears of every stored batch once, in the order
    /// they subscribed.
    #[test]
    fn stored_readings_reach_every_subscriber_once() {
        use std::sync::Mutex;
        let heard = Arc::new(Mutex::new(Vec::new()));
        let mut port = StoredPort::default();
        for name in ["first", "second"] {
            let heard = heard.clone();
            port.subscribe(move |s: &Stored| heard.lock().unwrap().push((name, s.readings.len())));
        }
        let now = chrono::Utc::now();
        let reading = crate::domain::Reading::new(
            crate::domain::Observation::new(crate::domain::StationId::parse("WS001").unwrap(), now),
            now,
            crate::domain::QcReport::default(),
        );
        for n in [1, 2] {
            port.publish(&Stored {
                readings: vec![reading.clone(); n].into(),
                batch: None,
                traces: Vec::new(),
            });
        }
        assert_eq!(
            *heard.lock().unwrap(),
            [("first", 1), ("second", 1), ("first", 2), ("second", 2)]
        );
    }
}
