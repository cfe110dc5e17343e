//! The embedded MQTT broker (rumqttd), so isobar runs with no other server.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(
        "cannot start the embedded MQTT broker: {addr} is already in use. \
         Either give it another port (mqtt.listen, ISOBAR__MQTT__LISTEN or \
         --mqtt-listen, for example 127.0.0.1:1884), or use the broker that is \
         already there with mqtt.mode = \"external\" (ISOBAR__MQTT__MODE=external)"
    )]
    PortTaken { addr: SocketAddr },
    #[error("cannot start the embedded MQTT broker on {addr}: {reason}")]
    Start { addr: SocketAddr, reason: String },
}

/// Who may connect: the users of `mqtt.users_file`, and the daemon's own
/// clients (ingest, the simulator) with a login made for this process.
/// With it, every client logs in, and only the daemon may take its own
/// client id, so no station can take over its session.
#[derive(Clone)]
pub struct BrokerAuth {
    pub users: crate::config::users::Users,
    pub own_client_id: String,
    pub internal: InternalLogin,
}

/// The daemon's own login to its broker: a name no password file can
/// hold, and a random password, new at each start.
#[derive(Clone)]
pub struct InternalLogin {
    pub username: String,
    pub password: crate::config::Secret,
}

impl InternalLogin {
    pub fn new() -> Self {
        Self {
            username: "$isobar".into(),
            password: crate::config::Secret::new(hex::encode(rand::random::<[u8; 32]>())),
        }
    }
}

impl Default for InternalLogin {
    fn default() -> Self {
        Self::new()
    }
}

impl BrokerAuth {
    /// Whether a client may connect.
    pub fn allows(&self, client_id: &str, username: &str, password: &str) -> bool {
        if username == self.internal.username {
            return self.internal.password.matches(password);
        }
        if client_id == self.own_client_id {
            tracing::warn!(username = %crate::domain::Name(username),
                "refused a client that took the daemon's own client id");
            return false;
        }
        self.users.check(username, password.as_bytes())
    }
}

/// A running embedded broker. It lives as long as the process.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedBroker {
    addr: SocketAddr,
}

impl EmbeddedBroker {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts the broker on `listen` (port 0 picks a free port) and waits
    /// until it accepts connections.
    pub fn start(
        listen: SocketAddr,
        max_inflight: u16,
        auth: Option<BrokerAuth>,
    ) -> Result<Self, BrokerError> {
        // rumqttd only logs a bind failure from its own thread; check first
        // so a taken port is a clear error, and resolve port 0.
        let addr = match TcpListener::bind(listen) {
            Ok(probe) => probe.local_addr().map_err(|e| BrokerError::Start {
                addr: listen,
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(BrokerError::PortTaken { addr: listen });
            }
            Err(e) => {
                return Err(BrokerError::Start {
                    addr: listen,
                    reason: e.to_string(),
                });
            }
        };
        let mut config = Config {
            router: RouterConfig {
                max_connections: 10_010,
                max_outgoing_packet_count: 1_000,
                // What the broker holds for a subscriber that is not taking
                // messages (isobar's store down): 10 × 16 MiB at most.
                max_segment_size: 16 * 1024 * 1024,
                max_segment_count: 10,
                ..RouterConfig::default()
            },
            ..Config::default()
        };
        config.v4 = Some(
            [(
                "v4".to_owned(),
                ServerSettings {
                    name: "isobar-embedded".to_owned(),
                    listen: addr,
                    tls: None,
                    next_connection_delay_ms: 1,
                    connections: ConnectionSettings {
                        connection_timeout_ms: 60_000,
                        max_payload_size: 1024 * 1024,
                        max_inflight_count: usize::from(max_inflight),
                        auth: None,
                        external_auth: None,
                        dynamic_filters: true,
                    },
                },
            )]
            .into(),
        );
        if let Some(auth) = auth
            && let Some(servers) = config.v4.as_mut()
        {
            for server in servers.values_mut() {
                let auth = auth.clone();
                server.connections.set_auth_handler(
                    move |client_id: String, username: String, password: String| {
                        let allowed = auth.allows(&client_id, &username, &password);
                        async move { allowed }
                    },
                );
            }
        }
        let mut broker = Broker::new(config);
        std::thread::Builder::new()
            .name("mqtt-broker".into())
            .spawn(move || {
                if let Err(e) = broker.start() {
                    tracing::error!(error = %e, "embedded MQTT broker stopped");
                }
            })
            .map_err(|e| BrokerError::Start {
                addr,
                reason: e.to_string(),
            })?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline {
                return Err(BrokerError::Start {
                    addr,
                    reason: "it did not accept connections within 5 s".into(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::info!(%addr, "embedded MQTT broker listening");
        Ok(Self { addr })
    }
}
