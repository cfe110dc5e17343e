//! Where the embedded MQTT server listens, and the daemon's own login to
//! it (the server itself is the actor `actors::mqtt_server`).

use std::net::{SocketAddr, TcpListener};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(
        "cannot start the embedded MQTT server: {addr} is already in use. \
         Either give it another port (mqtt.listen, ISOBAR__MQTT__LISTEN or \
         --mqtt-listen, for example 127.0.0.1:1884), or use the broker that is \
         already there with mqtt.mode = \"external\" (ISOBAR__MQTT__MODE=external)"
    )]
    PortTaken { addr: SocketAddr },
    #[error("cannot start the embedded MQTT server on {addr}: {reason}")]
    Start { addr: SocketAddr, reason: String },
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

/// Checks that `listen` is free, so a taken port is a clear error at
/// start, and resolves port 0 to a free port.
pub fn probe(listen: SocketAddr) -> Result<SocketAddr, BrokerError> {
    match TcpListener::bind(listen) {
        Ok(probe) => probe.local_addr().map_err(|e| BrokerError::Start {
            addr: listen,
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            Err(BrokerError::PortTaken { addr: listen })
        }
        Err(e) => Err(BrokerError::Start {
            addr: listen,
            reason: e.to_string(),
        }),
    }
}
