//! Where the pipeline's actors are, typed: one [`Address`] per actor, held
//! by everyone who sends to it. A supervisor restarting an actor spawns it
//! through its address, which then points at the new incarnation; senders
//! keep the same address across restarts and never look an actor up by
//! name. A message of the wrong type for an address does not compile.
//! Stored readings go out once, on a [`StoredPort`], to whoever subscribed.

use std::sync::Arc;

pub use crate::supervisor::address::Address;

use crate::actors::aggregator::AggregatorMsg;
use crate::actors::alerter::AlerterMsg;
use crate::actors::archiver::ArchiverMsg;
use crate::actors::http::HttpMsg;
use crate::actors::hub::HubMsg;
use crate::actors::ingest::IngestMsg;
use crate::actors::persister::PersisterMsg;
use crate::actors::stations::StationsMsg;
use crate::domain::Reading;
use crate::storage::StoredBatch;

/// The addresses of one running pipeline: every actor a part of the daemon
/// sends to. The supervisors that group them (`root`, `pipeline`) are
/// only named.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub root: String,
    pub pipeline: String,
    pub http: Address<HttpMsg>,
    pub ingest: Address<IngestMsg>,
    pub stations: Address<StationsMsg>,
    pub persister: Address<PersisterMsg>,
    pub hub: Address<HubMsg>,
    pub archiver: Address<ArchiverMsg>,
    pub aggregator: Address<AggregatorMsg>,
    pub alerter: Address<AlerterMsg>,
}

impl Pipeline {
    /// The addresses of a pipeline whose actors are named after
    /// `instance` (`<instance>.persister`, ...), none running yet.
    pub fn new(instance: &str) -> Self {
        Self {
            root: format!("{instance}.root"),
            pipeline: format!("{instance}.pipeline"),
            http: Address::new(format!("{instance}.web")),
            ingest: Address::new(format!("{instance}.ingest")),
            stations: Address::new(format!("{instance}.stations")),
            persister: Address::new(format!("{instance}.persister")),
            hub: Address::new(format!("{instance}.hub")),
            archiver: Address::new(format!("{instance}.archiver")),
            aggregator: Address::new(format!("{instance}.aggregator")),
            alerter: Address::new(format!("{instance}.alerter")),
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
