//! A message received from the broker together with the duty to acknowledge
//! it. A `Delivery` is acknowledged only once its reading (or quarantine
//! record) is durably stored. One that is dropped unacknowledged is never
//! silently forgotten: if it is dropped by a panic while being processed it
//! is quarantined (a poison message must not crash its station forever);
//! otherwise (its actor died with it in the mailbox) it is routed again.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use ractor::ActorRef;
use rumqttc::{AsyncClient, Publish, QoS};

use crate::domain::{RejectReason, StationId};
use crate::storage::QuarantineRecord;

/// Times a delivery is routed again after being dropped unprocessed.
pub const MAX_ATTEMPTS: u32 = 5;

/// Actor names of one running pipeline, so that several instances can live
/// in one process (tests) without clashing in ractor's registry.
#[derive(Debug)]
pub struct PipelineNames {
    pub ingest: String,
    pub stations: String,
    pub persister: String,
    pub hub: String,
}

impl PipelineNames {
    pub fn new(instance: &str) -> Self {
        Self {
            ingest: format!("{instance}.ingest"),
            stations: format!("{instance}.stations"),
            persister: format!("{instance}.persister"),
            hub: format!("{instance}.hub"),
        }
    }

    pub fn station(&self, id: &StationId) -> String {
        format!("{}.{}", self.stations, id)
    }
}

/// Shared by every delivery of one pipeline.
#[derive(Debug)]
pub struct DeliveryContext {
    pub names: PipelineNames,
    pub quarantine_max_bytes: usize,
    stopping: AtomicBool,
}

impl DeliveryContext {
    pub fn new(names: PipelineNames, quarantine_max_bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            names,
            quarantine_max_bytes,
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
    /// Nothing to acknowledge (QoS 0, or a test).
    None,
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
}

impl AckSequencer {
    pub fn new(client: AsyncClient) -> Arc<Self> {
        Arc::new(Self {
            client,
            state: Mutex::new(SequencerState::default()),
        })
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
            let mut publish = Publish::new("", qos, Vec::new());
            publish.pkid = pkid;
            // Sent while holding the lock so acknowledgements leave in order.
            if let Err(e) = self.client.try_ack(&publish) {
                // The connection is gone; the broker redelivers to the next
                // session and the store ignores the duplicate.
                tracing::debug!(pkid, error = %e, "acknowledgement not sent");
            }
        }
    }
}

impl Ack {
    fn send(self) {
        if let Self::Mqtt {
            acks,
            ticket,
            qos,
            pkid,
        } = self
        {
            acks.complete(ticket, qos, pkid);
        }
    }
}

pub struct Delivery {
    /// The station named by the topic; `None` when the topic named none.
    pub station_id: Option<StationId>,
    pub source: String,
    pub payload: Bytes,
    pub received_at: DateTime<Utc>,
    attempts: u32,
    ack: Option<Ack>,
    context: Arc<DeliveryContext>,
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
        ack: Ack,
        context: Arc<DeliveryContext>,
    ) -> Self {
        Self {
            station_id,
            source,
            payload,
            received_at: Utc::now(),
            attempts: 0,
            ack: Some(ack),
            context,
        }
    }

    pub fn context(&self) -> &Arc<DeliveryContext> {
        &self.context
    }

    /// Acknowledges: call only once what it carried is durably stored.
    pub fn acknowledge(mut self) {
        if let Some(ack) = self.ack.take() {
            ack.send();
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

    /// Gives the delivery up without acknowledging it: the broker redelivers
    /// it to the next session.
    pub fn abandon(mut self) {
        self.ack.take();
    }

    fn take_for_retry(&mut self) -> Option<Delivery> {
        let ack = self.ack.take()?;
        Some(Delivery {
            station_id: self.station_id.clone(),
            source: std::mem::take(&mut self.source),
            payload: std::mem::take(&mut self.payload),
            received_at: self.received_at,
            attempts: self.attempts + 1,
            ack: Some(ack),
            context: self.context.clone(),
        })
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if self.ack.is_none() || self.context.is_stopping() {
            return;
        }
        let panicking = std::thread::panicking();
        let Some(retry) = self.take_for_retry() else {
            return;
        };
        let context = self.context.clone();
        if panicking || retry.attempts > MAX_ATTEMPTS || retry.station_id.is_none() {
            let reason = RejectReason::ProcessingPanicked {
                detail: if panicking {
                    "the station actor panicked while processing it".to_owned()
                } else {
                    format!("dropped unprocessed {} times", retry.attempts)
                },
            };
            metrics::counter!("isobar_poison_messages_total").increment(1);
            tracing::error!(station_id = ?retry.station_id, source = %retry.source,
                reason = reason.code(), "quarantining a message that could not be processed");
            let record = retry.quarantine_record(&reason);
            use crate::actors::persister::PersisterMsg;
            match ActorRef::<PersisterMsg>::where_is(context.names.persister.clone()) {
                Some(persister) => {
                    if let Err(ractor::MessagingErr::SendErr(PersisterMsg::Quarantine(_, d))) =
                        persister.cast(PersisterMsg::Quarantine(Box::new(record), retry))
                    {
                        d.abandon();
                    }
                }
                None => retry.abandon(),
            }
            return;
        }
        // The actor holding it died; route it again once the supervisor has
        // had a moment to restart it.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let delay = Duration::from_millis(50 * u64::from(retry.attempts));
        runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            use crate::actors::stations::StationsMsg;
            match ActorRef::<StationsMsg>::where_is(context.names.stations.clone()) {
                Some(stations) => {
                    if let Err(ractor::MessagingErr::SendErr(StationsMsg::Route(d))) =
                        stations.cast(StationsMsg::Route(retry))
                    {
                        d.abandon();
                    }
                }
                None => retry.abandon(),
            }
        });
    }
}
