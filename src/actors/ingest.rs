//! The ingest actor: holds the MQTT session (QoS 1, persistent, manual
//! acks), turns each message into a `Delivery` and routes it to the station
//! supervisor. Reconnects with backoff; the broker keeps unacknowledged
//! messages for the session, so a reconnect loses nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use tokio::task::JoinHandle;

use crate::actors::pipeline::Pipeline;
use crate::delivery::{AckSequencer, Arrival, BROKER_DROPPED_TOPIC, Format};
use crate::domain::{RejectReason, StationId};
use crate::health::Health;

pub enum IngestMsg {
    /// Stop taking new messages (they stay with the broker), keep the
    /// connection so acknowledgements still go out.
    Pause(RpcReplyPort<()>),
    /// Disconnect cleanly; replies when the connection is closed.
    Disconnect(RpcReplyPort<()>),
    /// The task polling the connection panicked: the actor fails with it,
    /// so its supervisor starts a new connection.
    PollerFailed(String),
}

pub struct Ingest;

/// Acknowledgements wait in the client's request queue until the event loop
/// writes them, one per turn, while a turn of reading takes up to ten
/// messages; so under a broker that sends past its window they can outpace
/// the writes for a while. About 40 bytes each: 1 Mi of them is 40 MiB at
/// most, and a full queue costs a redelivery, not a reading.
const ACK_QUEUE: usize = 1 << 20;

pub struct IngestArgs {
    /// Also follow the broker's count of dropped messages (`$SYS`, an
    /// external broker's).
    pub broker_stats: bool,
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub topic: String,
    /// Subscribe in this shared-subscription group (`$share/<group>/<topic>`,
    /// a bridge's): the broker deals the messages among the group's
    /// members.
    pub share: Option<String>,
    pub keep_alive: Duration,
    /// Received messages in the pipeline unacknowledged, past which ingest
    /// holds what it reads until some are acknowledged.
    pub max_open: usize,
    pub pipeline: Arc<Pipeline>,
    pub health: Arc<Health>,
    /// Username and password, for a broker that asks.
    pub credentials: Option<(String, crate::config::Secret)>,
    /// TLS to the broker, when on.
    pub tls: Option<crate::config::MqttTlsFiles>,
}

impl IngestArgs {
    /// From `[mqtt]`, to connect to the external `broker`. The
    /// credential and TLS files are read again at each start, so a renewed
    /// certificate is taken up by a restart.
    pub fn from_settings(
        mqtt: &crate::config::MqttSettings,
        broker: &(String, u16),
        pipeline: Arc<Pipeline>,
        health: Arc<Health>,
    ) -> Result<Self, crate::config::ConfigError> {
        Ok(Self {
            broker_stats: mqtt.mode == crate::config::MqttMode::External,
            host: broker.0.clone(),
            port: broker.1,
            client_id: mqtt.client_id.clone(),
            topic: mqtt.topic.clone(),
            share: None,
            keep_alive: mqtt.keep_alive,
            // Twice the window: never reached under a broker that keeps
            // to it.
            max_open: 2 * mqtt.effective_inflight(),
            pipeline,
            health,
            credentials: mqtt.credentials()?,
            tls: mqtt.tls_files()?,
        })
    }
}

pub struct IngestState {
    client: AsyncClient,
    paused: Arc<AtomicBool>,
    poller: Option<Poller>,
}

/// The task that drives the MQTT connection. Aborted when dropped, so it
/// never outlives its actor (ractor skips `post_stop` after a failure, and
/// a stray poller would fight the restarted one for the session).
struct Poller(JoinHandle<()>);

impl Drop for Poller {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Actor for Ingest {
    type Msg = IngestMsg;
    type State = IngestState;
    type Arguments = IngestArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: IngestArgs,
    ) -> Result<IngestState, ActorProcessingErr> {
        let mut options = MqttOptions::new(&args.client_id, &args.host, args.port);
        options
            .set_keep_alive(args.keep_alive)
            .set_clean_session(false)
            .set_manual_acks(true)
            // Larger than any accepted payload, so an oversized one reaches
            // quarantine instead of breaking the connection.
            .set_max_packet_size(1024 * 1024, 64 * 1024);
        if let Some((user, password)) = &args.credentials {
            options.set_credentials(user, password.expose());
        }
        if let Some(tls) = &args.tls {
            let config = match &tls.ca {
                Some(ca) => rumqttc::TlsConfiguration::Simple {
                    ca: ca.clone(),
                    alpn: None,
                    client_auth: tls.client.clone(),
                },
                // The system's roots.
                None => rumqttc::TlsConfiguration::default(),
            };
            options.set_transport(rumqttc::Transport::tls_with_config(config));
        }
        let (client, eventloop) = AsyncClient::new(options, ACK_QUEUE);
        let paused = Arc::new(AtomicBool::new(false));
        let route = Router::new(&args.topic, args.pipeline.clone());
        let polling = poll(
            eventloop,
            client.clone(),
            Limits {
                max_open: args.max_open as u64,
                keep_alive: args.keep_alive,
                broker_stats: args.broker_stats,
            },
            match &args.share {
                Some(group) => format!("$share/{group}/{}", args.topic),
                None => args.topic,
            },
            route,
            paused.clone(),
            args.health,
        );
        let poller = tokio::spawn(reporting_panics(myself.clone(), polling));
        tracing::info!(broker = %format!("{}:{}", args.host, args.port),
            client_id = %args.client_id, "ingest connecting");
        Ok(IngestState {
            client,
            paused,
            poller: Some(Poller(poller)),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: IngestMsg,
        state: &mut IngestState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            IngestMsg::Pause(reply) => {
                state.paused.store(true, Ordering::SeqCst);
                let _ = reply.send(());
            }
            IngestMsg::Disconnect(reply) => {
                state.paused.store(true, Ordering::SeqCst);
                let _ = state.client.disconnect().await;
                if let Some(mut poller) = state.poller.take() {
                    // Let it send the DISCONNECT; dropping it aborts it after.
                    let _ = tokio::time::timeout(Duration::from_secs(3), &mut poller.0).await;
                }
                let _ = reply.send(());
            }
            IngestMsg::PollerFailed(why) => {
                return Err(format!("the MQTT connection's poller panicked: {why}").into());
            }
        }
        Ok(())
    }
}

/// Runs `task`; a panic in it fails the ingest actor (`PollerFailed`), so
/// its supervisor decides: a panic is a bug, not a station's doing.
pub(crate) async fn reporting_panics(ingest: ActorRef<IngestMsg>, task: impl Future<Output = ()>) {
    use futures_util::FutureExt;
    if let Err(panic) = std::panic::AssertUnwindSafe(task).catch_unwind().await {
        let why = crate::actors::panic_message(panic.as_ref());
        let _ = ingest.cast(IngestMsg::PollerFailed(why));
    }
}

/// Maps topics to stations and hands each message to the pipeline, with
/// its place in its connection's order of acknowledgements. Shared by
/// ingest from an external broker and the embedded server.
pub(crate) struct Router {
    filter: String,
    /// Index of the `+` level in the subscription filter.
    station_level: usize,
    pub(crate) pipeline: Arc<Pipeline>,
    received: metrics::Counter,
}

impl Router {
    pub(crate) fn new(filter: &str, pipeline: Arc<Pipeline>) -> Self {
        let station_level = filter.split('/').position(|l| l == "+").unwrap_or(0);
        Self {
            filter: filter.to_owned(),
            station_level,
            pipeline,
            received: metrics::counter!("isobar_messages_received_total"),
        }
    }

    /// The station a readings topic names, or why it names none.
    pub(crate) fn station_of(&self, topic: &str) -> Result<StationId, RejectReason> {
        let level = topic
            .split('/')
            .nth(self.station_level)
            .filter(|_| crate::config::acl::topic_matches(&self.filter, topic))
            .ok_or_else(|| RejectReason::InvalidTopic {
                topic: topic.to_owned(),
                filter: self.filter.clone(),
            })?;
        StationId::parse(level).map_err(|e| RejectReason::InvalidStationId {
            value: level.to_owned(),
            reason: e.to_string(),
        })
    }

    fn route(&self, acks: &Arc<AckSequencer>, publish: rumqttc::Publish) {
        let station = self.station_of(&publish.topic);
        self.hand_in(acks, publish, station);
    }

    /// Hands a message in for `station` (or to quarantine, for the reason
    /// it has none).
    pub(crate) fn hand_in(
        &self,
        acks: &Arc<AckSequencer>,
        publish: rumqttc::Publish,
        station: Result<StationId, RejectReason>,
    ) {
        crate::faults::at_ingest(&publish.payload);
        self.received.increment(1);
        let ack = acks.ticket(&publish);
        self.pipeline.submit(Arrival {
            station,
            source: publish.topic,
            payload: publish.payload,
            format: Format::Mqtt,
            ack,
            received_at: None,
        });
    }
}

/// Held messages past which ingest stops reading from the broker: about
/// 200,000 readings of a typical size.
const MAX_HELD_BYTES: usize = 64 << 20;

/// Messages read past the in-flight bound, waiting for room, oldest first.
struct Held {
    messages: std::collections::VecDeque<rumqttc::Publish>,
    bytes: usize,
    /// `isobar_ingest_held`.
    gauge: metrics::Gauge,
}

impl Default for Held {
    fn default() -> Self {
        Self {
            messages: Default::default(),
            bytes: 0,
            gauge: metrics::gauge!("isobar_ingest_held"),
        }
    }
}

impl Held {
    fn size(publish: &rumqttc::Publish) -> usize {
        publish.topic.len() + publish.payload.len() + std::mem::size_of::<rumqttc::Publish>()
    }

    fn push(&mut self, publish: rumqttc::Publish) {
        if self.messages.is_empty() {
            metrics::counter!("isobar_ingest_paused_total").increment(1);
        }
        self.bytes += Self::size(&publish);
        self.messages.push_back(publish);
        self.gauge.set(self.messages.len() as f64);
    }

    fn pop(&mut self) -> Option<rumqttc::Publish> {
        let publish = self.messages.pop_front()?;
        self.bytes -= Self::size(&publish);
        self.gauge.set(self.messages.len() as f64);
        Some(publish)
    }

    fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The connection is gone: the broker redelivers these to the next.
    fn clear(&mut self) {
        self.messages.clear();
        self.bytes = 0;
        self.gauge.set(0.0);
    }
}

/// How far ingest reads ahead of what is stored.
struct Limits {
    max_open: u64,
    keep_alive: Duration,
    /// Subscribe to the broker's count of dropped messages.
    broker_stats: bool,
}

async fn poll(
    mut eventloop: EventLoop,
    client: AsyncClient,
    limits: Limits,
    topic: String,
    router: Router,
    paused: Arc<AtomicBool>,
    health: Arc<Health>,
) {
    let mut failures: u32 = 0;
    let acks = AckSequencer::new(client.clone());
    router.pipeline.deliveries.flow.watch(&acks);
    let mut held = Held::default();
    loop {
        // A broker keeps at most its in-flight window unacknowledged, but
        // not every broker keeps to it, nor is isobar's window always the
        // broker's. Past `max_open`, messages read are held here, in order,
        // unacknowledged, and handed on as acknowledgements make room. The
        // socket keeps being read meanwhile, so the broker's answers to
        // the keep-alive pings, queued behind the messages, still arrive and
        // a backlog of any length never costs the connection.
        if paused.load(Ordering::SeqCst) {
            // Shutting down: what is held stays with the broker.
            held.clear();
        }
        while acks.open() < limits.max_open
            && let Some(publish) = held.pop()
        {
            router.route(&acks, publish);
        }
        // A broker that ignores every window could fill memory: past this
        // bound, stop reading (the socket fills and the broker keeps the
        // rest), and resume as acknowledgements go out, or at least once
        // per half keep-alive.
        if held.bytes >= MAX_HELD_BYTES {
            let _ = tokio::time::timeout(limits.keep_alive / 2, async {
                while acks.open() >= limits.max_open {
                    acks.acknowledged().await;
                }
            })
            .await;
        }
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                failures = 0;
                acks.reset();
                held.clear();
                metrics::gauge!("isobar_mqtt_connected").set(1.0);
                tracing::info!(
                    session_present = ack.session_present,
                    "connected to the broker"
                );
                // The broker kept our subscription with the session.
                health.set_mqtt_subscribed(ack.session_present);
                if !ack.session_present {
                    // A new session (first start, or the broker lost ours):
                    // subscribe again.
                    // try_: awaiting here could wait on the queue this loop drains.
                    if let Err(e) = client.try_subscribe(topic.clone(), QoS::AtLeastOnce) {
                        tracing::error!(error = %e, "subscribe request failed");
                    }
                }
                if limits.broker_stats {
                    // At every connection: a session from before isobar
                    // followed it has no such subscription. A broker
                    // without the topic just never sends it.
                    if let Err(e) = client.try_subscribe(BROKER_DROPPED_TOPIC, QoS::AtMostOnce) {
                        tracing::warn!(error = %e, "subscribe request for the broker's drop count failed");
                    }
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                {
                    tracing::error!(topic = %topic, "the broker refused the subscription");
                } else {
                    health.set_mqtt_subscribed(true);
                    tracing::info!(topic = %topic, "subscribed");
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish)))
                if publish.topic == BROKER_DROPPED_TOPIC =>
            {
                match std::str::from_utf8(&publish.payload)
                    .ok()
                    .and_then(|text| text.trim().parse::<u64>().ok())
                {
                    Some(total) => router.pipeline.deliveries.flow.broker_dropped(total),
                    None => tracing::debug!("the broker's drop count is not a number"),
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                if paused.load(Ordering::SeqCst) {
                    // Left unacknowledged for the broker to redeliver.
                } else if held.is_empty() && acks.open() < limits.max_open {
                    router.route(&acks, publish);
                } else {
                    held.push(publish);
                }
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => {
                health.set_mqtt_subscribed(false);
                tracing::info!("disconnected from the broker");
                return;
            }
            Ok(_) => {}
            Err(e) => {
                metrics::gauge!("isobar_mqtt_connected").set(0.0);
                health.set_mqtt_subscribed(false);
                // Acks of this connection can no longer be sent; the broker
                // redelivers its messages. Completions from now on must not
                // reach the next connection, whose packet ids start over.
                acks.reset();
                held.clear();
                if paused.load(Ordering::SeqCst) && failures > 0 {
                    return;
                }
                let delay = Duration::from_millis(250)
                    .saturating_mul(2u32.saturating_pow(failures.min(7)))
                    .min(Duration::from_secs(30));
                failures += 1;
                tracing::warn!(error = %e, retry_ms = delay.as_millis() as u64,
                    "broker connection lost; reconnecting");
                tokio::time::sleep(delay).await;
            }
        }
    }
}
