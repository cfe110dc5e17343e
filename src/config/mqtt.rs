//! `[mqtt]`: the embedded MQTT server, or the external one ingest connects to.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MqttMode {
    /// Run the MQTT broker inside the daemon.
    Embedded,
    /// Subscribe to a broker that runs elsewhere.
    External,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttSettings {
    pub mode: MqttMode,
    /// Where the embedded MQTT server listens.
    pub listen: SocketAddr,
    /// `host:port` of the external broker.
    pub broker: String,
    /// Fixed client id, so the broker keeps our session across restarts.
    pub client_id: String,
    /// Subscription filter; its single `+` level is the station id.
    pub topic: String,
    #[serde(with = "humantime_serde")]
    pub keep_alive: Duration,
    /// The in-flight window: for an external broker, how many QoS 1
    /// messages it sends isobar before waiting for acknowledgements (set it
    /// to that broker's `max_inflight_messages`); on the embedded server,
    /// how many unacknowledged publishes it reads from one connection (at
    /// most 100).
    pub max_inflight: u16,
    /// For an external broker that asks for them.
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The password, from a file (a mounted secret); trailing space cut.
    pub password_file: Option<PathBuf>,
    /// TLS to the external broker (rustls): the broker's CA from `ca_file`
    /// (PEM), or the system's roots without one.
    pub tls: bool,
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key (PEM), for brokers that ask for one
    /// (AWS IoT Core); they need `ca_file`.
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    /// The embedded MQTT server's users, in Mosquitto's password-file format
    /// (`mosquitto_passwd` writes it). With it, every client logs in, and
    /// none but the daemon itself may take its client id.
    pub users_file: Option<PathBuf>,
    /// Let the embedded MQTT server listen beyond loopback with no users file:
    /// anyone who can reach it may then publish readings, for any station.
    pub allow_anonymous: bool,
    /// Who may publish where on the embedded server, in Mosquitto's ACL
    /// format (`pattern write weather/%u/observations`: each station its
    /// own topic). Without it, every client that may connect may publish
    /// for any station.
    pub acl_file: Option<PathBuf>,
    /// Connections the embedded server holds at most (lowered to a
    /// quarter of the open-file limit); one more is closed at once.
    pub max_connections: Bounded<usize, 1, 1_000_000>,
    /// A TLS listener of the embedded server (MQTT over TLS, usually port
    /// 8883), beside `listen`, with the server's certificate chain and
    /// key (PEM).
    pub tls_listen: Option<SocketAddr>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
}

/// The embedded server's TLS listener, ready to accept.
#[derive(Clone)]
pub struct ServerTls {
    pub listen: SocketAddr,
    pub config: std::sync::Arc<rustls::ServerConfig>,
}

/// The embedded server reads at most this many unacknowledged publishes
/// from one connection, whatever `max_inflight` says: the station waits
/// for acknowledgements past it.
pub const EMBEDDED_INFLIGHT_CAP: u16 = 100;

impl MqttSettings {
    /// The in-flight window the broker will actually use.
    pub fn effective_inflight(&self) -> usize {
        let window = match self.mode {
            MqttMode::Embedded => self.max_inflight.min(EMBEDDED_INFLIGHT_CAP),
            MqttMode::External => self.max_inflight,
        };
        usize::from(window)
    }
}

/// A file's bytes, or why not, named by its setting.
pub(crate) fn read_file(key: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path)
        .map_err(|e| ConfigError::new(key, format!("cannot read {}: {e}", path.display())))
}

/// The TLS files of an MQTT connection, read.
#[derive(Debug, Clone, Default)]
pub struct MqttTlsFiles {
    pub ca: Option<Vec<u8>>,
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl MqttSettings {
    /// The username and password to connect with, if any.
    pub fn credentials(&self) -> Result<Option<(String, Secret)>, ConfigError> {
        let password = match (&self.password, &self.password_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "mqtt.password_file",
                    "give password or password_file, not both",
                ));
            }
            (Some(p), None) => Some(p.clone()),
            (None, Some(path)) => {
                let bytes = read_file("mqtt.password_file", path)?;
                Some(Secret::new(String::from_utf8_lossy(&bytes).trim_end()))
            }
            (None, None) => None,
        };
        match (&self.username, password) {
            (Some(user), password) => Ok(Some((
                user.clone(),
                password.unwrap_or_else(|| Secret::new("")),
            ))),
            (None, Some(_)) => Err(ConfigError::new(
                "mqtt.username",
                "a password needs a username",
            )),
            (None, None) => Ok(None),
        }
    }

    /// The TLS files, read, when TLS is on; `None` when it is off.
    pub fn tls_files(&self) -> Result<Option<MqttTlsFiles>, ConfigError> {
        let given = self.ca_file.is_some()
            || self.client_cert_file.is_some()
            || self.client_key_file.is_some();
        if !self.tls {
            if given {
                return Err(ConfigError::new(
                    "mqtt.tls",
                    "ca_file and client certificates need tls = true",
                ));
            }
            return Ok(None);
        }
        if self.mode == MqttMode::Embedded {
            return Err(ConfigError::new(
                "mqtt.tls",
                "TLS is for an external broker (mqtt.mode = \"external\")",
            ));
        }
        let ca = self
            .ca_file
            .as_deref()
            .map(|p| read_file("mqtt.ca_file", p))
            .transpose()?;
        let client = match (&self.client_cert_file, &self.client_key_file) {
            (Some(cert), Some(key)) => {
                if ca.is_none() {
                    return Err(ConfigError::new(
                        "mqtt.ca_file",
                        "a client certificate needs the broker's CA in ca_file",
                    ));
                }
                Some((
                    read_file("mqtt.client_cert_file", cert)?,
                    read_file("mqtt.client_key_file", key)?,
                ))
            }
            (None, None) => None,
            _ => {
                return Err(ConfigError::new(
                    "mqtt.client_key_file",
                    "give client_cert_file and client_key_file together",
                ));
            }
        };
        Ok(Some(MqttTlsFiles { ca, client }))
    }
}

impl Default for MqttSettings {
    fn default() -> Self {
        Self {
            mode: MqttMode::Embedded,
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            broker: "127.0.0.1:1883".into(),
            client_id: "isobar".into(),
            topic: "weather/+/observations".into(),
            keep_alive: Duration::from_secs(30),
            max_inflight: 1000,
            username: None,
            password: None,
            password_file: None,
            tls: false,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            users_file: None,
            allow_anonymous: false,
            acl_file: None,
            max_connections: Bounded::new(10_000).expect("within its bounds"),
            tls_listen: None,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

impl MqttSettings {
    /// The external broker's host and port; `None` with the embedded one.
    pub fn external_broker(&self) -> Result<Option<(String, u16)>, ConfigError> {
        match self.mode {
            MqttMode::Embedded => Ok(None),
            MqttMode::External => parse_host_port(&self.broker)
                .map(Some)
                .map_err(|reason| ConfigError::new("mqtt.broker", reason)),
        }
    }
}

impl MqttSettings {
    /// Checks what types alone cannot.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.credentials()?;
        let users = self.users()?;
        self.acl()?;
        let tls = self.server_tls()?;
        let listeners = [
            ("mqtt.listen", Some(self.listen)),
            ("mqtt.tls_listen", tls.map(|t| t.listen)),
        ];
        for (key, addr) in listeners {
            if let Some(addr) = addr
                && self.mode == MqttMode::Embedded
                && users.is_none()
                && !addr.ip().is_loopback()
                && !self.allow_anonymous
            {
                return Err(ConfigError::new(
                    key,
                    format!(
                        "the embedded server would take anyone's readings on {addr}: give it \
                         mqtt.users_file, listen on a loopback address, or set \
                         mqtt.allow_anonymous = true"
                    ),
                ));
            }
        }
        self.tls_files()?;
        let topic = &self.topic;
        let levels: Vec<&str> = topic.split('/').collect();
        if levels.iter().filter(|l| **l == "+").count() != 1 || topic.contains('#') {
            return Err(ConfigError::new(
                "mqtt.topic",
                format!("{topic:?} must have exactly one '+' level (the station id) and no '#'"),
            ));
        }
        self.external_broker()?;
        if self.client_id.is_empty() || self.client_id.len() > 64 {
            return Err(ConfigError::new(
                "mqtt.client_id",
                "must be 1 to 64 characters",
            ));
        }
        if self.max_inflight == 0 {
            return Err(ConfigError::new("mqtt.max_inflight", "must be at least 1"));
        }
        Ok(())
    }
}

impl MqttSettings {
    /// The embedded server's TLS listener, its certificate and key read
    /// and checked; `None` without `tls_listen`.
    pub fn server_tls(&self) -> Result<Option<ServerTls>, ConfigError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let Some(listen) = self.tls_listen else {
            if self.tls_cert_file.is_some() || self.tls_key_file.is_some() {
                return Err(ConfigError::new(
                    "mqtt.tls_listen",
                    "tls_cert_file and tls_key_file need tls_listen, the address of the TLS listener",
                ));
            }
            return Ok(None);
        };
        if self.mode == MqttMode::External {
            return Err(ConfigError::new(
                "mqtt.tls_listen",
                "is for the embedded server (mqtt.mode = \"embedded\")",
            ));
        }
        let (Some(cert), Some(key)) = (&self.tls_cert_file, &self.tls_key_file) else {
            return Err(ConfigError::new(
                "mqtt.tls_cert_file",
                "the TLS listener needs tls_cert_file and tls_key_file (PEM)",
            ));
        };
        let chain = CertificateDer::pem_slice_iter(&read_file("mqtt.tls_cert_file", cert)?)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                ConfigError::new("mqtt.tls_cert_file", format!("not PEM certificates: {e}"))
            })?;
        if chain.is_empty() {
            return Err(ConfigError::new(
                "mqtt.tls_cert_file",
                "holds no certificate",
            ));
        }
        let key =
            PrivateKeyDer::from_pem_slice(&read_file("mqtt.tls_key_file", key)?).map_err(|e| {
                ConfigError::new("mqtt.tls_key_file", format!("not a PEM private key: {e}"))
            })?;
        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::new("mqtt.tls_listen", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            ConfigError::new(
                "mqtt.tls_key_file",
                format!("does not fit the certificate: {e}"),
            )
        })?;
        Ok(Some(ServerTls {
            listen,
            config: std::sync::Arc::new(config),
        }))
    }

    /// The embedded server's access rules, read from `acl_file`.
    pub fn acl(&self) -> Result<Option<super::acl::Acl>, ConfigError> {
        let Some(path) = &self.acl_file else {
            return Ok(None);
        };
        if self.mode == MqttMode::External {
            return Err(ConfigError::new(
                "mqtt.acl_file",
                "is for the embedded server; an external broker has its own",
            ));
        }
        let text = read_file("mqtt.acl_file", path)?;
        super::acl::Acl::parse(&String::from_utf8_lossy(&text))
            .map(Some)
            .map_err(|e| ConfigError::new("mqtt.acl_file", e))
    }

    /// The embedded MQTT server's users, read from `users_file`.
    pub fn users(&self) -> Result<Option<users::Users>, ConfigError> {
        let Some(path) = &self.users_file else {
            return Ok(None);
        };
        let text = read_file("mqtt.users_file", path)?;
        let users = users::Users::parse(&String::from_utf8_lossy(&text))
            .map_err(|e| ConfigError::new("mqtt.users_file", e))?;
        if users.is_empty() {
            return Err(ConfigError::new("mqtt.users_file", "names no user"));
        }
        Ok(Some(users))
    }
}
