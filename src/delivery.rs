//! A message received from a source together with the duty to acknowledge
//! it. A `Delivery` is acknowledged only once its reading (or quarantine
//! record) is durably stored. One that is dropped unacknowledged is never
//! forgotten: it reports back, and the pipeline decides what becomes of it
//! (routed again, quarantined if it keeps failing, or, once the daemon is
//! stopping, handed back to its source unacknowledged, for the broker to
//! redeliver or the HTTP client to hear it was not stored).
//! Acknowledgements leave in the order messages came, so a forgotten
//! delivery would hold back every one after it.
//!
//! This module knows no actor: the pipeline (`actors::pipeline`)
//! routes deliveries and receives those that come back.

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use rumqttc::{AsyncClient, Publish, QoS};

use crate::domain::{RejectReason, StationId};
use crate::storage::QuarantineRecord;

/// Times a delivery is routed again after being dropped unprocessed (its
/// actor died with it) before it is quarantined. Waiting for a restarting
/// actor does not count.
pub const MAX_ATTEMPTS: u32 = 10;

/// Shared by every delivery of one pipeline.
#[derive(Debug)]
pub struct DeliveryContext {
    pub quarantine_max_bytes: usize,
    pub flow: Flow,
    stopping: AtomicBool,
    /// Where a delivery dropped unacknowledged reports back.
    returned: tokio::sync::mpsc::UnboundedSender<Delivery>,
}

/// Deliveries dropped unacknowledged, for the pipeline to decide on.
pub type Returned = tokio::sync::mpsc::UnboundedReceiver<Delivery>;

/// How messages move through the pipeline, as its health alerts read it.
#[derive(Debug, Default)]
pub struct Flow {
    processed: AtomicU64,
    rejected: AtomicU64,
    /// The acknowledgements of each MQTT connection (ingest's to an
    /// external broker, or each station's to the embedded server).
    acks: Mutex<Vec<Weak<AckSequencer>>>,
    /// What the external broker says it dropped.
    broker: Mutex<BrokerDrops>,
}

/// The messages an external broker reports it dropped (Mosquitto's
/// `$SYS/broker/publish/messages/dropped`: publishes it had no room to
/// queue), as isobar has heard them.
#[derive(Debug, Default)]
struct BrokerDrops {
    /// The broker's count since it started, as last reported.
    reported: Option<u64>,
    /// When the count last rose.
    rose_at: Option<std::time::Instant>,
}

/// The `$SYS` topic of an external broker's count of dropped messages.
pub const BROKER_DROPPED_TOPIC: &str = "$SYS/broker/publish/messages/dropped";

impl Flow {
    /// A message reached the persister, quarantined (whole or in part) or
    /// not.
    pub fn processed(&self, rejected: bool) {
        self.processed.fetch_add(1, Ordering::Relaxed);
        if rejected {
            self.rejected.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Messages processed, and of those rejected, since the start.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.processed.load(Ordering::Relaxed),
            self.rejected.load(Ordering::Relaxed),
        )
    }

    /// The broker reports its count of dropped messages; a rise after the
    /// first report counts as dropping now (see `alerts::broker_rise`).
    pub fn broker_dropped(&self, total: u64) {
        let mut b = self.broker.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(dropped) = crate::domain::alerts::broker_rise(b.reported, total) {
            b.rose_at = Some(std::time::Instant::now());
            metrics::counter!("isobar_broker_messages_dropped_total").increment(dropped);
            tracing::warn!(
                dropped,
                total,
                "the broker dropped messages it had no room to queue (see docs/architecture.md)"
            );
        }
        b.reported = Some(total);
        metrics::gauge!("isobar_broker_messages_dropped").set(total as f64);
    }

    /// The broker's count of dropped messages, if it reports one.
    pub fn broker_drops(&self) -> Option<u64> {
        self.broker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reported
    }

    /// Whether the broker's count rose within `within`.
    pub fn broker_dropping(&self, within: Duration) -> bool {
        self.broker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .rose_at
            .is_some_and(|at| at.elapsed() <= within)
    }

    /// Follows a connection's acknowledgements for [`Flow::lag`], as long
    /// as the connection lives.
    pub fn watch(&self, acks: &Arc<AckSequencer>) {
        let mut watched = self.acks.lock().unwrap_or_else(|e| e.into_inner());
        // Forget closed connections now and then: at most half the list is
        // dead, so this costs O(1) per connection on average.
        if watched.len() >= 16 && watched.len().is_power_of_two() {
            watched.retain(|w| w.strong_count() > 0);
        }
        watched.push(Arc::downgrade(acks));
    }

    /// How long the oldest MQTT message not yet acknowledged (that is, not
    /// yet stored), on any connection, has waited; zero when none waits.
    pub fn lag(&self) -> Duration {
        let mut watched = self.acks.lock().unwrap_or_else(|e| e.into_inner());
        let mut oldest = Duration::ZERO;
        watched.retain(|w| match w.upgrade() {
            Some(acks) => {
                oldest = oldest.max(acks.oldest_wait());
                true
            }
            None => false,
        });
        oldest
    }
}

impl DeliveryContext {
    /// The context, and where its deliveries dropped unacknowledged come
    /// back.
    pub fn new(quarantine_max_bytes: usize) -> (Arc<Self>, Returned) {
        let (returned, back) = tokio::sync::mpsc::unbounded_channel();
        let context = Arc::new(Self {
            quarantine_max_bytes,
            flow: Flow::default(),
            stopping: AtomicBool::new(false),
            returned,
        });
        (context, back)
    }

    /// From now on, dropped deliveries go back to their source
    /// unacknowledged: the broker redelivers them to the next start.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Builds the quarantine record for a rejected message.
    pub fn quarantine_record(
        &self,
        source: &str,
        station_id: Option<StationId>,
        payload: &[u8],
        received_at: DateTime<Utc>,
        reason: &RejectReason,
    ) -> QuarantineRecord {
        // A credential a station put in its payload is not kept. The size
        // is the redacted payload's, so that `truncated` (stored size <
        // size) speaks of the cut alone.
        let redacted = crate::domain::secrets::redact(payload);
        let kept = redacted.len().min(self.quarantine_max_bytes);
        QuarantineRecord {
            received_at,
            source: source.to_owned(),
            station_id,
            reason_code: reason.code(),
            reason: reason.to_string(),
            payload: redacted[..kept].to_vec(),
            payload_bytes: redacted.len(),
        }
    }
}

/// How a source hears what became of a message it handed in: each source
/// implements it its own way (a PUBACK, an HTTP answer, a replayed file's
/// progress), and the pipeline needs to know none of them. A new source is
/// one more implementation.
pub trait Acknowledge: Send + 'static {
    /// What the message carried is durably stored (or quarantined).
    fn stored(self: Box<Self>, verdict: Verdict);

    /// Given up on unprocessed, because the daemon is stopping: whether it
    /// is sent again is the source's business. By default nothing is sent
    /// (an MQTT broker redelivers what was not acknowledged).
    fn abandoned(self: Box<Self>) {}
}

/// A delivery's acknowledgement: what its source gave to hear the outcome.
pub struct Ack(Option<Box<dyn Acknowledge>>);

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Ack" } else { "Ack(none)" })
    }
}

impl Ack {
    pub fn new(ack: impl Acknowledge) -> Self {
        Self(Some(Box::new(ack)))
    }

    /// Nothing to acknowledge (MQTT QoS 0, or a test).
    pub fn none() -> Self {
        Self(None)
    }

    /// What it carried is durably kept: its source hears the verdict.
    pub fn send(self, verdict: Verdict) {
        if let Some(ack) = self.0 {
            ack.stored(verdict);
        }
    }

    /// Nothing was done with it: the source hears so its own way.
    pub fn abandon(self) {
        if let Some(ack) = self.0 {
            ack.abandoned();
        }
    }
}

/// An HTTP request waiting for its answer. Abandoned, the channel closes
/// and the request answers that the upload was not stored.
impl Acknowledge for tokio::sync::oneshot::Sender<Verdict> {
    fn stored(self: Box<Self>, verdict: Verdict) {
        // The client may have gone; what it sent is stored anyway.
        let _ = (*self).send(verdict);
    }
}

/// PUBACK to the broker (QoS 1), in the order the messages came.
struct MqttAck {
    acks: Arc<AckSequencer>,
    ticket: Ticket,
    qos: QoS,
    pkid: u16,
}

impl Acknowledge for MqttAck {
    fn stored(self: Box<Self>, _verdict: Verdict) {
        self.acks.complete(self.ticket, self.qos, self.pkid);
    }
}

/// What became of a delivery, for a sender that waits to hear it (HTTP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Stored: this many readings, and this many parts quarantined.
    Stored { readings: usize, rejected: usize },
    /// Quarantined as a whole.
    Rejected { code: &'static str, message: String },
    /// Handed on whole to the cluster's readings topic (a bridge), where
    /// a worker stores it.
    Forwarded,
}

/// A delivery's place in its connection's order of receipt.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    epoch: u64,
    seq: u64,
}

/// Where a connection's acknowledgements go out: the MQTT client's request
/// queue (ingest from an external broker), or the writer of a station's
/// connection to the embedded server.
pub trait AckSink: Send + Sync + 'static {
    /// Sends the acknowledgement of the publish `pkid` received with `qos`
    /// (PUBACK for QoS 1, PUBREC for QoS 2). An error means the connection
    /// is gone, and the sender resends the message to the next one.
    fn send(&self, qos: QoS, pkid: u16) -> Result<(), String>;
}

impl AckSink for AsyncClient {
    fn send(&self, qos: QoS, pkid: u16) -> Result<(), String> {
        let mut publish = Publish::new("", qos, Vec::new());
        publish.pkid = pkid;
        self.try_ack(&publish).map_err(|e| e.to_string())
    }
}

/// Sends PUBACKs in the order the publishes were received, whatever order
/// they complete in. MQTT 3.1.1 (§4.6) asks for acknowledgements in order,
/// and some brokers drop a client that acknowledges out of order;
/// batches from many station actors complete out of order.
pub struct AckSequencer {
    sink: Box<dyn AckSink>,
    state: Mutex<SequencerState>,
    /// Signalled whenever acknowledgements go out.
    acked: tokio::sync::Notify,
    /// `isobar_mqtt_unacknowledged`, looked up once rather than per message.
    unacknowledged: metrics::Gauge,
}

#[derive(Debug, Default)]
struct SequencerState {
    /// Bumped on every new connection: tickets of an older one are void (the
    /// broker redelivers those messages to the new connection).
    epoch: u64,
    next_seq: u64,
    next_ack: u64,
    /// Completed, waiting for an earlier delivery to complete.
    done: BTreeMap<u64, (QoS, u16)>,
    /// When each message not yet acknowledged came, oldest first.
    received: VecDeque<std::time::Instant>,
}

impl std::fmt::Debug for AckSequencer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckSequencer")
            .field("open", &self.open())
            .finish()
    }
}

impl AckSequencer {
    pub fn new(sink: impl AckSink) -> Arc<Self> {
        Arc::new(Self {
            sink: Box::new(sink),
            state: Mutex::new(SequencerState::default()),
            acked: tokio::sync::Notify::new(),
            unacknowledged: metrics::gauge!("isobar_mqtt_unacknowledged"),
        })
    }

    /// Messages of this connection received and not yet acknowledged.
    pub fn open(&self) -> u64 {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.next_seq - s.next_ack
    }

    /// How long the oldest message not yet acknowledged has waited.
    pub fn oldest_wait(&self) -> Duration {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.received.front().map_or(Duration::ZERO, |t| t.elapsed())
    }

    /// Waits until some acknowledgement has gone out since the last wait.
    pub async fn acknowledged(&self) {
        self.acked.notified().await;
    }

    /// A new connection: forget the old one's order.
    pub fn reset(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.unacknowledged
            .decrement((s.next_seq - s.next_ack) as f64);
        let epoch = s.epoch + 1;
        *s = SequencerState {
            epoch,
            ..SequencerState::default()
        };
    }

    /// Takes a place in line for a message just received.
    pub fn ticket(self: &Arc<Self>, publish: &Publish) -> Ack {
        if publish.qos == QoS::AtMostOnce {
            return Ack::none();
        }
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let ticket = Ticket {
            epoch: s.epoch,
            seq: s.next_seq,
        };
        s.next_seq += 1;
        s.received.push_back(std::time::Instant::now());
        self.unacknowledged.increment(1.0);
        Ack::new(MqttAck {
            acks: self.clone(),
            ticket,
            qos: publish.qos,
            pkid: publish.pkid,
        })
    }

    fn complete(&self, ticket: Ticket, qos: QoS, pkid: u16) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if ticket.epoch != s.epoch {
            return;
        }
        s.done.insert(ticket.seq, (qos, pkid));
        loop {
            let next = s.next_ack;
            let Some((qos, pkid)) = s.done.remove(&next) else {
                break;
            };
            s.next_ack += 1;
            s.received.pop_front();
            self.unacknowledged.decrement(1.0);
            // Sent while holding the lock so acknowledgements leave in order.
            if let Err(e) = self.sink.send(qos, pkid) {
                // The connection is gone (the sender resends to the next
                // connection and the store ignores the duplicate), or the
                // request queue is full, which its size (the packet-id space)
                // makes impossible.
                tracing::debug!(pkid, error = %e, "acknowledgement not sent");
            }
        }
        self.acked.notify_one();
    }
}

impl Drop for AckSequencer {
    /// What was never acknowledged leaves the gauge with it.
    fn drop(&mut self) {
        let s = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        self.unacknowledged
            .decrement((s.next_seq - s.next_ack) as f64);
    }
}

/// How a delivery's payload is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An MQTT message: isobar JSON (object or array) or WeeWX JSON,
    /// told apart by content.
    Mqtt,
    /// isobar JSON uploaded over HTTP.
    Json,
    /// A Weather Underground upload's query string.
    Wunderground,
    /// An Ecowitt upload's form body.
    Ecowitt,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Self::Mqtt => "mqtt",
            Self::Json => "json",
            Self::Wunderground => "wunderground",
            Self::Ecowitt => "ecowitt",
        }
    }

    /// The format `name` names.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Mqtt, Self::Json, Self::Wunderground, Self::Ecowitt]
            .into_iter()
            .find(|f| f.name() == name)
    }
}

pub struct Delivery {
    /// The station named by the topic; `None` when the topic named none.
    pub station_id: Option<StationId>,
    pub source: String,
    pub payload: Bytes,
    pub format: Format,
    pub received_at: DateTime<Utc>,
    attempts: u32,
    ack: Option<Ack>,
    context: Arc<DeliveryContext>,
    /// The trace of this message through the pipeline: each stage opens a
    /// span beneath it (see [`crate::telemetry`]).
    pub span: tracing::Span,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("station_id", &self.station_id)
            .field("source", &self.source)
            .field("bytes", &self.payload.len())
            .field("attempts", &self.attempts)
            .finish()
    }
}

impl Delivery {
    pub fn new(
        station_id: Option<StationId>,
        source: String,
        payload: Bytes,
        format: Format,
        ack: Ack,
        context: Arc<DeliveryContext>,
    ) -> Self {
        let span = tracing::info_span!(target: crate::telemetry::TRACE_TARGET, "reading",
            otel.kind = "consumer",
            messaging.source = %crate::domain::Name(&source),
            format = format.name(),
            station_id = station_id.as_ref().map_or("", StationId::as_str),
            bytes = payload.len() as i64);
        Self {
            station_id,
            source,
            payload,
            format,
            received_at: Utc::now(),
            attempts: 0,
            ack: Some(ack),
            context,
            span,
        }
    }

    /// Received at `at` rather than now.
    pub fn received(mut self, at: DateTime<Utc>) -> Self {
        self.received_at = at;
        self
    }

    /// Times it was routed again after being dropped unprocessed.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    pub fn context(&self) -> &Arc<DeliveryContext> {
        &self.context
    }

    /// Acknowledges: call only once what it carried is durably stored.
    pub fn acknowledge(mut self, verdict: Verdict) {
        if let Some(ack) = self.ack.take() {
            ack.send(verdict);
        }
    }

    /// The quarantine record for this delivery rejected for `reason`.
    pub fn quarantine_record(&self, reason: &RejectReason) -> QuarantineRecord {
        self.context.quarantine_record(
            &self.source,
            self.station_id.clone(),
            &self.payload,
            self.received_at,
            reason,
        )
    }

    /// Once more routed after it came back unprocessed.
    pub fn returned_again(&mut self) {
        self.attempts += 1;
    }

    /// Given up on without being processed: its source hears so (see
    /// [`Acknowledge::abandoned`]).
    pub fn abandon(mut self) {
        if let Some(ack) = self.ack.take() {
            ack.abandon();
        }
    }
}

impl Drop for Delivery {
    /// Dropped unacknowledged (the actor holding it died with it in its
    /// mailbox or batch, or a message could not be sent): it reports back
    /// to the pipeline, which routes it again or gives up on it. Once the
    /// daemon stops, it goes back to its source unacknowledged.
    fn drop(&mut self) {
        let Some(ack) = self.ack.take() else {
            return;
        };
        if self.context.is_stopping() {
            ack.abandon();
            return;
        }
        let back = Delivery {
            station_id: self.station_id.take(),
            source: std::mem::take(&mut self.source),
            payload: std::mem::take(&mut self.payload),
            format: self.format,
            received_at: self.received_at,
            attempts: self.attempts,
            ack: Some(ack),
            context: self.context.clone(),
            span: self.span.clone(),
        };
        if let Err(tokio::sync::mpsc::error::SendError(back)) = self.context.returned.send(back) {
            // The pipeline is gone: no one to route it again.
            back.abandon();
        }
    }
}

/// A message as a source hands it in: the station it is for (or why it
/// names none), where it came from, what it says and how to acknowledge it.
#[derive(Debug)]
pub struct Arrival {
    pub station: Result<StationId, RejectReason>,
    /// The MQTT topic, or the upload's route (`http:<format>`).
    pub source: String,
    pub payload: Bytes,
    pub format: Format,
    pub ack: Ack,
    /// When its source received it, if not now: a Kafka record's
    /// timestamp, so that a record read again resolves `now` alike.
    pub received_at: Option<DateTime<Utc>>,
}
