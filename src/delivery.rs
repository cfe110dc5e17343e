//! A message received from the broker together with the duty to acknowledge
//! it. A `Delivery` is acknowledged only once its reading (or quarantine
//! record) is durably stored. One that is dropped unacknowledged while the
//! daemon runs is never forgotten: it is routed again, and quarantined if it
//! keeps failing. Acknowledgements leave in the order messages came, so a
//! forgotten delivery would hold back every one after it.

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use rumqttc::{AsyncClient, Publish, QoS};

use crate::actors::persister::PersisterMsg;
use crate::actors::pipeline::{Address, Pipeline};
use crate::actors::stations::StationsMsg;
use crate::domain::{RejectReason, StationId};
use crate::storage::QuarantineRecord;

/// Times a delivery is routed again after being dropped unprocessed (its
/// actor died with it) before it is quarantined. Waiting for a restarting
/// actor does not count.
pub const MAX_ATTEMPTS: u32 = 10;

/// Shared by every delivery of one pipeline.
#[derive(Debug)]
pub struct DeliveryContext {
    pub pipeline: Pipeline,
    pub quarantine_max_bytes: usize,
    pub flow: Flow,
    stopping: AtomicBool,
}

/// How messages move through the pipeline, as its health alerts read it.
#[derive(Debug, Default)]
pub struct Flow {
    processed: AtomicU64,
    rejected: AtomicU64,
    /// The current MQTT connection's acknowledgements.
    acks: Mutex<Weak<AckSequencer>>,
}

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

    pub fn watch(&self, acks: &Arc<AckSequencer>) {
        *self.acks.lock().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(acks);
    }

    /// How long the oldest MQTT message not yet acknowledged (that is, not
    /// yet stored) has waited; zero when none waits.
    pub fn lag(&self) -> Duration {
        self.acks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .upgrade()
            .map_or(Duration::ZERO, |acks| acks.oldest_wait())
    }
}

impl DeliveryContext {
    pub fn new(pipeline: Pipeline, quarantine_max_bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            pipeline,
            quarantine_max_bytes,
            flow: Flow::default(),
            stopping: AtomicBool::new(false),
        })
    }

    /// From now on, dropped deliveries are left to the broker to redeliver.
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
        let kept = payload.len().min(self.quarantine_max_bytes);
        QuarantineRecord {
            received_at,
            source: source.to_owned(),
            station_id,
            reason_code: reason.code(),
            reason: reason.to_string(),
            payload: payload[..kept].to_vec(),
            payload_bytes: payload.len(),
        }
    }
}

/// How to acknowledge a delivery to whoever sent it.
#[derive(Debug)]
pub enum Ack {
    /// PUBACK to the broker (QoS 1), in the order the messages came.
    Mqtt {
        acks: Arc<AckSequencer>,
        ticket: Ticket,
        qos: QoS,
        pkid: u16,
    },
    /// The HTTP request that carried it, waiting for the verdict.
    Http(tokio::sync::oneshot::Sender<Verdict>),
    /// Nothing to acknowledge (QoS 0, or a test).
    None,
}

/// What became of a delivery, for a sender that waits to hear it (HTTP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Stored: this many readings, and this many parts quarantined.
    Stored { readings: usize, rejected: usize },
    /// Quarantined as a whole.
    Rejected { code: &'static str, message: String },
}

/// A delivery's place in its connection's order of receipt.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    epoch: u64,
    seq: u64,
}

/// Sends PUBACKs in the order the publishes were received, whatever order
/// they complete in. MQTT 3.1.1 (§4.6) asks for acknowledgements in order,
/// and some brokers (rumqttd) drop a client that acknowledges out of order;
/// batches from many station actors complete out of order.
#[derive(Debug)]
pub struct AckSequencer {
    client: AsyncClient,
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

impl AckSequencer {
    pub fn new(client: AsyncClient) -> Arc<Self> {
        Arc::new(Self {
            client,
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
        let epoch = s.epoch + 1;
        *s = SequencerState {
            epoch,
            ..SequencerState::default()
        };
    }

    /// Takes a place in line for a message just received.
    pub fn ticket(self: &Arc<Self>, publish: &Publish) -> Ack {
        if publish.qos == QoS::AtMostOnce {
            return Ack::None;
        }
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let ticket = Ticket {
            epoch: s.epoch,
            seq: s.next_seq,
        };
        s.next_seq += 1;
        s.received.push_back(std::time::Instant::now());
        self.unacknowledged.set((s.next_seq - s.next_ack) as f64);
        Ack::Mqtt {
            acks: self.clone(),
            ticket,
            qos: publish.qos,
            pkid: publish.pkid,
        }
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
            let mut publish = Publish::new("", qos, Vec::new());
            publish.pkid = pkid;
            // Sent while holding the lock so acknowledgements leave in order.
            if let Err(e) = self.client.try_ack(&publish) {
                // The connection is gone (the broker redelivers to the next
                // session and the store ignores the duplicate), or the request
                // queue is full, which its size (the packet-id space) makes
                // impossible.
                tracing::warn!(pkid, error = %e, "acknowledgement not sent");
            }
        }
        self.unacknowledged.set((s.next_seq - s.next_ack) as f64);
        self.acked.notify_one();
    }
}

impl Ack {
    fn send(self, verdict: Verdict) {
        match self {
            Self::Mqtt {
                acks,
                ticket,
                qos,
                pkid,
            } => acks.complete(ticket, qos, pkid),
            Self::Http(reply) => {
                // The client may have gone; what it sent is stored anyway.
                let _ = reply.send(verdict);
            }
            Self::None => {}
        }
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
            messaging.source = %source,
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

    fn take_for_retry(&mut self) -> Option<Delivery> {
        let ack = self.ack.take()?;
        Some(Delivery {
            station_id: self.station_id.clone(),
            source: std::mem::take(&mut self.source),
            payload: std::mem::take(&mut self.payload),
            format: self.format,
            received_at: self.received_at,
            attempts: self.attempts + 1,
            ack: Some(ack),
            context: self.context.clone(),
            span: self.span.clone(),
        })
    }
}

thread_local! {
    /// Set while a dropped delivery is being routed again on this thread.
    static REROUTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if self.ack.is_none() || self.context.is_stopping() {
            return;
        }
        // Routing it again can drop it again at once: a task spawned on a
        // runtime that is shutting down is dropped inside `spawn`. Then it
        // is left to the broker to redeliver, instead of recursing.
        if REROUTING.with(|r| r.replace(true)) {
            return;
        }
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                REROUTING.with(|r| r.set(false));
            }
        }
        let _reset = Reset;
        // Dropped unacknowledged while running: the actor holding it died
        // with it in its mailbox or batch. Route it again from the start;
        // after MAX_ATTEMPTS, or without a station to route to, quarantine it.
        let Some(retry) = self.take_for_retry() else {
            return;
        };
        let context = self.context.clone();
        if retry.attempts > MAX_ATTEMPTS || retry.station_id.is_none() {
            let reason = RejectReason::ProcessingFailed {
                attempts: retry.attempts,
            };
            metrics::counter!("isobar_poison_messages_total").increment(1);
            tracing::error!(station_id = ?retry.station_id, source = %retry.source,
                reason = reason.code(), "quarantining a message that could not be processed");
            let record = retry.quarantine_record(&reason);
            context.to_persister(PersisterMsg::quarantine(record, retry));
        } else {
            context.to_stations(retry);
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
}

impl DeliveryContext {
    /// The one front door of the pipeline: every source (MQTT, HTTP
    /// uploads) hands its messages in here. A message for a station goes
    /// to that station's actor; one that names none is quarantined with
    /// the reason. Either way it is acknowledged once what it carried is
    /// stored.
    pub fn submit(self: &Arc<Self>, arrival: Arrival) {
        let Arrival {
            station,
            source,
            payload,
            format,
            ack,
        } = arrival;
        let delivery = Delivery::new(
            station.as_ref().ok().cloned(),
            source,
            payload,
            format,
            ack,
            self.clone(),
        );
        let _ingest = tracing::info_span!(target: crate::telemetry::TRACE_TARGET,
            parent: &delivery.span, "ingest", source = %delivery.source)
        .entered();
        match station {
            // Waits in the background if the supervisor is restarting.
            Ok(_) => self.to_stations(delivery),
            Err(reason) => {
                tracing::info!(source = %delivery.source, reason = reason.code(),
                    "message quarantined");
                let record = delivery.quarantine_record(&reason);
                self.to_persister(PersisterMsg::quarantine(record, delivery));
            }
        }
    }

    /// Sends a delivery to the station supervisor. While it is not running
    /// (being restarted) the delivery waits in the background and is sent
    /// when it is back: it is never dropped, and waiting is not an attempt.
    pub fn to_stations(self: &Arc<Self>, delivery: Delivery) {
        self.send_or_wait(self.pipeline.stations.clone(), StationsMsg::Route(delivery));
    }

    /// Sends to the persister, waiting for it likewise.
    pub fn to_persister(self: &Arc<Self>, msg: PersisterMsg) {
        self.send_or_wait(self.pipeline.persister.clone(), msg);
    }

    fn send_or_wait<M: ractor::Message>(self: &Arc<Self>, to: Address<M>, msg: M) {
        let Err(msg) = to.cast(msg) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let context = self.clone();
        runtime.spawn(async move {
            let mut msg = msg;
            let mut delay = Duration::from_millis(20);
            loop {
                tokio::time::sleep(delay).await;
                // Once stopping, dropping it leaves it to the broker.
                if context.is_stopping() {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A delivery dropped while its runtime shuts down is left to the
    /// broker: routing it again spawns a task that the runtime drops at
    /// once, which would route it again, without end.
    #[test]
    fn a_delivery_dropped_during_shutdown_is_left_to_the_broker() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let context = DeliveryContext::new(Pipeline::new("shutdown-test"), 1024);
        let (tx, rx) = tokio::sync::oneshot::channel();
        runtime.block_on(async {
            let delivery = Delivery::new(
                Some(StationId::parse("WS001").unwrap()),
                "test".into(),
                Bytes::from_static(b"{}"),
                Format::Json,
                Ack::Http(tx),
                context.clone(),
            );
            // No station supervisor is running: it waits in a task.
            drop(delivery);
        });
        drop(runtime);
        // Never acknowledged, and the process is still here.
        assert!(rx.blocking_recv().is_err());
    }
}
