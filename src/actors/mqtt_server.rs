//! The embedded MQTT server: stations connect to the daemon itself and
//! publish their readings (MQTT 3.1.1, QoS 0, 1 or 2). It does not route
//! messages between clients, so it is no broker: it takes publishes, and a
//! subscription is refused (readings are read over the API and the
//! websocket). What it gains by that is the acknowledgement: a QoS 1
//! publish gets its PUBACK (a QoS 2 one its PUBREC) only once its reading,
//! or its quarantine record, is committed to the store. A station whose
//! PUBACK did not come resends the message, so neither a crash nor a
//! shutdown loses a reading a station was told was taken.
//!
//! The wire format is rumqttc's MQTT codec; this module is the connection
//! handling around it: login (users file), access control (ACL file),
//! keep-alive, client-id takeover, a bound on unacknowledged publishes per
//! connection (past it, the connection is not read until acknowledgements
//! make room, so a fast station is slowed, not buffered), and a clean stop.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use rumqttc::mqttbytes::{self, QoS};
use rumqttc::{
    ConnAck, ConnectReturnCode, Packet, PubComp, PubRec, SubAck, SubscribeReasonCode, UnsubAck,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::actors::ingest::{IngestMsg, Router, reporting_panics};
use crate::actors::pipeline::Pipeline;
use crate::broker::InternalLogin;
use crate::config::acl::Acl;
use crate::config::users::Users;
use crate::delivery::{AckSequencer, AckSink};
use crate::domain::{Name, RejectReason, StationId};
use crate::health::Health;

/// The largest packet taken: larger than any accepted payload, so an
/// oversized reading reaches quarantine instead of breaking the
/// connection.
pub const MAX_PACKET: usize = 1024 * 1024;

/// What one connection's held publishes (read past the in-flight bound)
/// may take: past it, the connection is not read. Readings are a few
/// hundred bytes, so this is 100 of them many times over; it bounds a
/// client that sends large payloads.
const MAX_HELD_BYTES: usize = 256 * 1024;

/// A connection must send CONNECT within this time.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client that does not take what is written to it for this long is
/// disconnected.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection's read buffer starts at this size, and is given back to
/// it after a larger packet.
const READ_BUFFER: usize = 4 * 1024;

pub struct MqttServer;

pub struct MqttServerArgs {
    pub listen: SocketAddr,
    /// The TLS listener, if any.
    pub tls: Option<crate::config::ServerTls>,
    /// The subscription filter of readings topics; its `+` level is the
    /// station id.
    pub topic: String,
    /// Unacknowledged publishes read per connection.
    pub max_inflight: usize,
    pub max_connections: usize,
    pub access: Access,
    pub pipeline: Arc<Pipeline>,
    pub health: Arc<Health>,
}

/// Who may connect, and publish where.
#[derive(Clone, Default)]
pub struct Access {
    /// With users, every client logs in.
    pub users: Option<Users>,
    /// With an ACL, a publish must be allowed by it.
    pub acl: Option<Acl>,
    /// The daemon's own clients (the simulator).
    pub internal: Option<InternalLogin>,
}

impl MqttServerArgs {
    /// From `[mqtt]`; the users and ACL files are read again at each
    /// start, so a restart of the server takes up changes.
    pub fn from_settings(
        mqtt: &crate::config::MqttSettings,
        listen: SocketAddr,
        login: &InternalLogin,
        pipeline: Arc<Pipeline>,
        health: Arc<Health>,
    ) -> Result<Self, crate::config::ConfigError> {
        Ok(Self {
            listen,
            tls: mqtt.server_tls()?,
            topic: mqtt.topic.clone(),
            max_inflight: mqtt.effective_inflight(),
            max_connections: crate::health::within_open_files(
                "mqtt.max_connections",
                mqtt.max_connections.get(),
                4,
            ),
            access: Access {
                users: mqtt.users()?,
                acl: mqtt.acl()?,
                internal: Some(login.clone()),
            },
            pipeline,
            health,
        })
    }
}

/// What every connection shares.
struct Shared {
    router: Router,
    access: Access,
    max_inflight: usize,
    /// Stop reading: the daemon is stopping.
    paused: CancellationToken,
    /// Close every connection now (after writing what is queued).
    closing: CancellationToken,
    /// The connection holding each client id; a new one takes it over.
    clients: Mutex<HashMap<String, (u64, CancellationToken)>>,
    next_id: AtomicU64,
    connections: TaskTracker,
    slots: Arc<tokio::sync::Semaphore>,
    open: metrics::Gauge,
    /// The server actor: a connection that panics fails it, so its
    /// supervisor decides (a panic is a bug, not a station's doing).
    server: ActorRef<IngestMsg>,
}

pub struct MqttServerState {
    shared: Arc<Shared>,
    /// Stops the accept loop and every connection when the actor goes,
    /// however it goes (ractor skips `post_stop` after a failure).
    _stop: tokio_util::sync::DropGuard,
}

impl Actor for MqttServer {
    type Msg = IngestMsg;
    type State = MqttServerState;
    type Arguments = MqttServerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: MqttServerArgs,
    ) -> Result<MqttServerState, ActorProcessingErr> {
        let listener = bind(args.listen).await?;
        let tls = match &args.tls {
            Some(tls) => Some((
                bind(tls.listen).await?,
                rumqttc::tokio_rustls::TlsAcceptor::from(tls.config.clone()),
            )),
            None => None,
        };
        let stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            router: Router::new(&args.topic, args.pipeline.clone()),
            access: args.access,
            max_inflight: args.max_inflight.max(1),
            paused: stop.child_token(),
            closing: stop.child_token(),
            clients: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            connections: TaskTracker::new(),
            slots: Arc::new(tokio::sync::Semaphore::new(args.max_connections)),
            open: metrics::gauge!("isobar_mqtt_connections"),
            server: myself.clone(),
        });
        let accepting = shared.clone();
        tokio::spawn(reporting_panics(
            shared.server.clone(),
            accept(listener, None, accepting),
        ));
        if let Some((listener, acceptor)) = tls {
            let accepting = shared.clone();
            tokio::spawn(reporting_panics(
                shared.server.clone(),
                accept(listener, Some(acceptor), accepting),
            ));
        }
        args.health.set_mqtt_subscribed(true);
        let auth = match (&shared.access.users, &shared.access.acl) {
            (Some(_), Some(_)) => "users and ACL",
            (Some(_), None) => "users",
            (None, Some(_)) => "ACL",
            (None, None) => "none",
        };
        tracing::info!(addr = %args.listen, tls = ?args.tls.as_ref().map(|t| t.listen), auth,
            max_inflight = shared.max_inflight, "embedded MQTT server listening");
        Ok(MqttServerState {
            shared,
            _stop: stop.drop_guard(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: IngestMsg,
        state: &mut MqttServerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            IngestMsg::Pause(reply) => {
                // The listener closes and no connection is read from
                // again: what stations send from now on stays with them.
                state.shared.paused.cancel();
                let _ = reply.send(());
            }
            IngestMsg::Disconnect(reply) => {
                state.shared.paused.cancel();
                state.shared.closing.cancel();
                state.shared.connections.close();
                let _ =
                    tokio::time::timeout(Duration::from_secs(3), state.shared.connections.wait())
                        .await;
                let _ = reply.send(());
            }
            IngestMsg::PollerFailed(why) => {
                return Err(format!("the MQTT server's poller panicked: {why}").into());
            }
        }
        Ok(())
    }
}

/// Binds `addr`. A restarted server may find its old socket not yet
/// closed: it tries again for two seconds.
async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ActorProcessingErr> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(format!("cannot listen on {addr}: {e}").into()),
        }
    }
}

async fn accept(
    listener: tokio::net::TcpListener,
    tls: Option<rumqttc::tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
) {
    loop {
        let accepted = tokio::select! {
            () = shared.paused.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((socket, peer)) => {
                let Ok(permit) = shared.slots.clone().try_acquire_owned() else {
                    metrics::counter!("isobar_mqtt_refused_total", "reason" => "max_connections")
                        .increment(1);
                    tracing::debug!(%peer, "refused a connection: mqtt.max_connections reached");
                    continue;
                };
                let _ = socket.set_nodelay(true);
                let shared2 = shared.clone();
                let server = shared.server.clone();
                let tls = tls.clone();
                shared
                    .connections
                    .spawn(reporting_panics(server, async move {
                        let _slot = Slot::take(permit, shared2.open.clone());
                        match tls {
                            None => serve(socket, peer, &shared2).await,
                            Some(acceptor) => handshake(acceptor, socket, peer, &shared2).await,
                        }
                    }));
            }
            Err(e) => {
                // Out of file descriptors, most likely: wait for some back.
                tracing::warn!(error = %e, "the MQTT server could not accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One of `mqtt.max_connections`, counted in `isobar_mqtt_connections`
/// while held, given back however the connection ends.
struct Slot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    open: metrics::Gauge,
}

impl Slot {
    fn take(permit: tokio::sync::OwnedSemaphorePermit, open: metrics::Gauge) -> Self {
        open.increment(1.0);
        Self {
            _permit: permit,
            open,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.decrement(1.0);
    }
}

/// A TLS connection: the handshake, within the CONNECT timeout, then
/// MQTT over it.
async fn handshake(
    acceptor: rumqttc::tokio_rustls::TlsAcceptor,
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    shared: &Arc<Shared>,
) {
    let why = match tokio::time::timeout(CONNECT_TIMEOUT, acceptor.accept(socket)).await {
        Ok(Ok(stream)) => return serve(stream, peer, shared).await,
        Ok(Err(e)) => e.to_string(),
        Err(_) => "no handshake within 10 s".to_owned(),
    };
    metrics::counter!("isobar_mqtt_refused_total", "reason" => "tls").increment(1);
    tracing::info!(%peer, reason = %Name(&why), "MQTT TLS handshake failed");
}

/// What a connection writes, in order.
enum Out {
    Packet(Packet),
    /// The acknowledgement of a stored message.
    Ack(QoS, u16),
}

/// A connection's acknowledgements go to its writer.
struct ToWriter(mpsc::UnboundedSender<Out>);

impl AckSink for ToWriter {
    fn send(&self, qos: QoS, pkid: u16) -> Result<(), String> {
        self.0
            .send(Out::Ack(qos, pkid))
            .map_err(|_| "the connection is closed".to_owned())
    }
}

/// Why a connection ended, for the log.
#[derive(Debug)]
enum End {
    /// The client disconnected, cleanly or not.
    Gone,
    TakenOver,
    Stopping,
    KeepAlive,
    Protocol(String),
}

/// Reads the next packet into `buf`, reading from `reader` as needed.
/// Cancel-safe: what was read stays in `buf`.
async fn read_packet<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
) -> Result<Packet, End> {
    loop {
        match Packet::read(buf, MAX_PACKET) {
            Ok(packet) => return Ok(packet),
            Err(mqttbytes::Error::InsufficientBytes(more)) => {
                buf.reserve(more.max(READ_BUFFER));
                match reader.read_buf(buf).await {
                    Ok(0) | Err(_) => return Err(End::Gone),
                    Ok(_) => {}
                }
            }
            Err(e) => return Err(End::Protocol(e.to_string())),
        }
    }
}

/// The CONNECT's answer: who the client is, or the code it is refused
/// with.
fn admit(access: &Access, connect: &rumqttc::Connect) -> Result<Option<String>, ConnectReturnCode> {
    let login = connect.login.as_ref();
    if let (Some(login), Some(internal)) = (login, &access.internal)
        && login.username == internal.username
    {
        return if internal.password.matches(&login.password) {
            Ok(Some(login.username.clone()))
        } else {
            Err(ConnectReturnCode::BadUserNamePassword)
        };
    }
    match (&access.users, login) {
        (Some(users), Some(login)) => {
            if users.check(&login.username, login.password.as_bytes()) {
                Ok(Some(login.username.clone()))
            } else {
                Err(ConnectReturnCode::BadUserNamePassword)
            }
        }
        (Some(_), None) => Err(ConnectReturnCode::NotAuthorized),
        // Without users, a username proves nothing: everyone is anonymous.
        (None, _) => Ok(None),
    }
}

async fn serve<S>(socket: S, peer: SocketAddr, shared: &Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut reader, writer) = tokio::io::split(socket);
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    let first = async {
        // Something else than MQTT is told apart by its first byte.
        while buf.is_empty() {
            match reader.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return Err(End::Gone),
                Ok(_) => {}
            }
        }
        if buf[0] != 0x10 {
            return Err(End::Protocol("the first packet is not CONNECT".into()));
        }
        read_packet(&mut reader, &mut buf).await
    };
    let connect = tokio::select! {
        () = shared.paused.cancelled() => return,
        read = tokio::time::timeout(CONNECT_TIMEOUT, first) => read,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let done = CancellationToken::new();
    let writing = tokio::spawn(write(writer, rx, done.clone()));
    let end = match connect {
        Ok(Ok(Packet::Connect(connect))) => {
            session(connect, &mut reader, &mut buf, &tx, &done, peer, shared).await
        }
        Ok(Ok(_)) => End::Protocol("the first packet is not CONNECT".into()),
        Ok(Err(end)) => end,
        Err(_) => End::Protocol("no CONNECT within 10 s".into()),
    };
    // Whatever is queued (the acknowledgements of stored messages) goes
    // out before the connection closes.
    done.cancel();
    let _ = writing.await;
    match end {
        End::Protocol(why) => {
            metrics::counter!("isobar_mqtt_refused_total", "reason" => "protocol").increment(1);
            tracing::info!(%peer, reason = %Name(&why), "MQTT connection closed: protocol error");
        }
        other => tracing::debug!(%peer, end = ?other, "MQTT connection closed"),
    }
}

/// A connected client, from its CONNECT to its end.
async fn session<R: AsyncRead + Unpin>(
    connect: rumqttc::Connect,
    reader: &mut R,
    buf: &mut BytesMut,
    tx: &mpsc::UnboundedSender<Out>,
    done: &CancellationToken,
    peer: SocketAddr,
    shared: &Arc<Shared>,
) -> End {
    let refuse = |code: ConnectReturnCode, why: &'static str| {
        metrics::counter!("isobar_mqtt_refused_total", "reason" => why).increment(1);
        let _ = tx.send(Out::Packet(Packet::ConnAck(ConnAck::new(code, false))));
    };
    if connect.protocol != rumqttc::Protocol::V4 {
        refuse(ConnectReturnCode::RefusedProtocolVersion, "protocol");
        return End::Protocol("only MQTT 3.1.1 is spoken".into());
    }
    let user = match admit(&shared.access, &connect) {
        Ok(user) => user,
        Err(code) => {
            refuse(code, "login");
            tracing::warn!(%peer, client_id = %Name(&connect.client_id),
                username = %Name(connect.login.as_ref().map_or("", |l| l.username.as_str())),
                "refused an MQTT login");
            return End::Gone;
        }
    };
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let client_id = if connect.client_id.is_empty() {
        if !connect.clean_session {
            refuse(ConnectReturnCode::BadClientId, "client_id");
            return End::Protocol("an empty client id needs a clean session".into());
        }
        format!("isobar-anonymous-{id}")
    } else {
        connect.client_id.clone()
    };
    let internal = shared
        .access
        .internal
        .as_ref()
        .is_some_and(|i| user.as_deref() == Some(i.username.as_str()));
    // Where this client may publish, worked out once: `None`, anywhere
    // (no ACL, or the daemon's own client).
    let grants = match &shared.access.acl {
        Some(acl) if !internal => Some(acl.grants(user.as_deref(), &client_id)),
        _ => None,
    };
    // MQTT: a new connection with a client id takes it over from the old.
    let kicked = CancellationToken::new();
    if let Some((_, old)) = shared
        .clients
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(client_id.clone(), (id, kicked.clone()))
    {
        old.cancel();
    }
    // A session here holds nothing but the client's unacknowledged
    // publishes, which the client keeps: every client id has one, never
    // expiring, so a client that asks to resume is told it is there, and
    // resends what was not acknowledged (a client told otherwise drops
    // it). A clean session is new, as MQTT says.
    let _ = tx.send(Out::Packet(Packet::ConnAck(ConnAck::new(
        ConnectReturnCode::Success,
        !connect.clean_session,
    ))));
    metrics::counter!("isobar_mqtt_connections_total").increment(1);
    tracing::debug!(%peer, client_id = %Name(&client_id), "MQTT client connected");

    let acks = AckSequencer::new(ToWriter(tx.clone()));
    shared.router.pipeline.deliveries.flow.watch(&acks);
    // MQTT 3.1.1 §3.1.2.10: one and a half keep-alives without a packet.
    let keep_alive = (connect.keep_alive > 0)
        .then(|| Duration::from_millis(u64::from(connect.keep_alive) * 1500));
    let mut last_heard = tokio::time::Instant::now();
    let mut told_no_subscriptions = false;
    let cap = shared.max_inflight;
    // Publishes read past the in-flight bound, waiting for room, in
    // order. The connection is still read (so a waiting station's pings
    // are answered and its connection kept through a store outage) until
    // as many again wait; then it is not read until acknowledgements make
    // room: the station waits, its messages with it.
    let mut held: VecDeque<(rumqttc::Publish, Result<StationId, RejectReason>)> = VecDeque::new();
    let mut held_bytes = 0usize;
    let end = loop {
        while acks.open() < cap as u64
            && let Some((publish, station)) = held.pop_front()
        {
            held_bytes -= publish.payload.len() + publish.topic.len();
            shared.router.hand_in(&acks, publish, station);
        }
        let full = held.len() >= cap || held_bytes >= MAX_HELD_BYTES;
        let read = tokio::select! {
            biased;
            () = kicked.cancelled() => break End::TakenOver,
            () = shared.paused.cancelled() => break End::Stopping,
            () = done.cancelled() => break End::Gone,
            () = acks.acknowledged(), if !held.is_empty() => continue,
            read = async {
                match keep_alive {
                    Some(limit) => tokio::time::timeout_at(last_heard + limit, read_packet(reader, buf))
                        .await
                        .unwrap_or(Err(End::KeepAlive)),
                    None => read_packet(reader, buf).await,
                }
            }, if !full => read,
        };
        last_heard = tokio::time::Instant::now();
        // A large packet's buffer is not kept for the small ones after.
        if buf.is_empty() && buf.capacity() > 16 * READ_BUFFER {
            *buf = BytesMut::with_capacity(READ_BUFFER);
        }
        let packet = match read {
            Ok(packet) => packet,
            Err(end) => break end,
        };
        match packet {
            Packet::Publish(publish) => {
                let allowed = grants
                    .as_ref()
                    .is_none_or(|g| g.may_publish(&publish.topic));
                let station = if allowed {
                    shared.router.station_of(&publish.topic)
                } else {
                    metrics::counter!("isobar_mqtt_refused_total", "reason" => "acl").increment(1);
                    Err(RejectReason::NotAuthorized {
                        user: user.clone(),
                        topic: publish.topic.clone(),
                    })
                };
                if held.is_empty() && acks.open() < cap as u64 {
                    shared.router.hand_in(&acks, publish, station);
                } else {
                    held_bytes += publish.payload.len() + publish.topic.len();
                    held.push_back((publish, station));
                }
            }
            Packet::PubRel(rel) => {
                // QoS 2: the message was stored before its PUBREC.
                let _ = tx.send(Out::Packet(Packet::PubComp(PubComp::new(rel.pkid))));
            }
            Packet::Subscribe(subscribe) => {
                if !told_no_subscriptions {
                    told_no_subscriptions = true;
                    tracing::info!(%peer, client_id = %Name(&client_id),
                        "refused a subscription: the embedded server takes readings; \
                         read them over the API or the websocket");
                }
                let codes = vec![SubscribeReasonCode::Failure; subscribe.filters.len()];
                let _ = tx.send(Out::Packet(Packet::SubAck(SubAck::new(
                    subscribe.pkid,
                    codes,
                ))));
            }
            Packet::Unsubscribe(unsubscribe) => {
                let _ = tx.send(Out::Packet(Packet::UnsubAck(UnsubAck::new(
                    unsubscribe.pkid,
                ))));
            }
            Packet::PingReq => {
                let _ = tx.send(Out::Packet(Packet::PingResp));
            }
            Packet::Disconnect => break End::Gone,
            other => {
                break End::Protocol(format!(
                    "a client may not send {} here",
                    packet_name(&other)
                ));
            }
        }
    };
    // The client id is free again, unless another connection has it now.
    {
        let mut clients = shared.clients.lock().unwrap_or_else(|e| e.into_inner());
        if clients
            .get(&client_id)
            .is_some_and(|(owner, _)| *owner == id)
        {
            clients.remove(&client_id);
        }
    }
    if matches!(end, End::Stopping) {
        // Stopping: what was read is stored and acknowledged before the
        // connection closes (when the daemon says so, after its drain).
        tokio::select! {
            () = shared.closing.cancelled() => {}
            () = done.cancelled() => {}
        }
    }
    end
}

fn packet_name(packet: &Packet) -> &'static str {
    match packet {
        Packet::Connect(_) => "CONNECT",
        Packet::ConnAck(_) => "CONNACK",
        Packet::Publish(_) => "PUBLISH",
        Packet::PubAck(_) => "PUBACK",
        Packet::PubRec(_) => "PUBREC",
        Packet::PubRel(_) => "PUBREL",
        Packet::PubComp(_) => "PUBCOMP",
        Packet::Subscribe(_) => "SUBSCRIBE",
        Packet::SubAck(_) => "SUBACK",
        Packet::Unsubscribe(_) => "UNSUBSCRIBE",
        Packet::UnsubAck(_) => "UNSUBACK",
        Packet::PingReq => "PINGREQ",
        Packet::PingResp => "PINGRESP",
        Packet::Disconnect => "DISCONNECT",
    }
}

/// Writes what the connection sends, in order, a burst at a time. Once
/// `done`, it writes what is queued and closes the connection; a failed
/// or stalled write ends the connection (`done`).
async fn write<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut queue: mpsc::UnboundedReceiver<Out>,
    done: CancellationToken,
) {
    let mut buf = BytesMut::with_capacity(256);
    let encode = |out: Out, buf: &mut BytesMut| {
        let packet = match out {
            Out::Packet(packet) => packet,
            Out::Ack(QoS::ExactlyOnce, pkid) => Packet::PubRec(PubRec::new(pkid)),
            Out::Ack(_, pkid) => Packet::PubAck(rumqttc::PubAck::new(pkid)),
        };
        let _ = packet.write(buf, MAX_PACKET);
    };
    loop {
        let next = tokio::select! {
            out = queue.recv() => out,
            () = done.cancelled() => None,
        };
        let finishing = next.is_none();
        if let Some(out) = next {
            encode(out, &mut buf);
        }
        while buf.len() < 64 * 1024
            && let Ok(out) = queue.try_recv()
        {
            encode(out, &mut buf);
        }
        if !buf.is_empty() {
            let wrote = tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(&buf)).await;
            if !matches!(wrote, Ok(Ok(()))) {
                done.cancel();
                return;
            }
            buf.clear();
            if buf.capacity() > 64 * 1024 {
                buf = BytesMut::with_capacity(256);
            }
        }
        if finishing && queue.is_empty() {
            let _ = tokio::time::timeout(Duration::from_secs(1), writer.shutdown()).await;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// Whatever a client sends, the codec answers with a packet or an
        /// error, never a panic (which would fail the server and close
        /// every station's connection).
        #[test]
        fn no_bytes_make_the_codec_panic(
            kind in 0u8..16,
            flags in 0u8..16,
            body in proptest::collection::vec(any::<u8>(), 0..96),
        ) {
            let mut bytes = vec![(kind << 4) | flags, body.len() as u8];
            bytes.extend_from_slice(&body);
            let mut buf = BytesMut::from(&bytes[..]);
            let _ = Packet::read(&mut buf, MAX_PACKET);
        }
    }
}
