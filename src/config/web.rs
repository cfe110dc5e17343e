//! `[web]`: the HTTP side (credentials are in `auth.rs`).

use super::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSettings {
    pub listen: SocketAddr,
    /// A built dashboard on disk (`frontend/dist`), served instead of the
    /// one embedded in the binary: for development with `vite build --watch`.
    pub static_dir: Option<PathBuf>,
    /// Messages queued per websocket client before its overflow policy applies.
    pub client_queue: Bounded<usize, 1, { u64::MAX }>,
    /// Stations in the websocket's snapshot at most: those heard from
    /// last. A larger network's others are paged in over
    /// `GET /api/v1/stations`.
    pub snapshot_max: Bounded<usize, 1, 100_000>,
    pub auth: AuthSettings,
    pub rate_limit: RateLimitSettings,
    /// Origins (`https://wx.example.net`) besides the daemon's own whose
    /// pages may open the websocket.
    pub allowed_origins: Vec<String>,
    /// Origins whose pages may call the API from the browser (CORS): the
    /// answers carry `Access-Control-Allow-Origin` for them only.
    pub cors_origins: Vec<String>,
    /// The websocket pings each client this often, and closes the
    /// connection of one silent for two of them.
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// HTTP connections open at once; past it, new ones are closed at
    /// once. Lowered at start to half the process's file-descriptor limit.
    pub max_connections: Bounded<usize, 1, 1_000_000>,
    /// HTTP connections open at once from one client address.
    pub max_connections_per_client: Bounded<usize, 1, 1_000_000>,
    /// How long a client has to send a request's headers before its
    /// connection is closed (slow or stalled clients).
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// How long a request may take to be answered (its headers: a streamed
    /// export may take longer) before it gets a 503 `timeout`.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

/// Requests per client address, beyond the probes: a sustained rate and a
/// burst; past them, 429 with `Retry-After`. `per_second = 0` turns it off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    pub per_second: u32,
    pub burst: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            per_second: 200,
            burst: 400,
        }
    }
}

impl Default for WebSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            static_dir: None,
            client_queue: Bounded::new(1024).expect("within its bounds"),
            snapshot_max: Bounded::new(1000).expect("within its bounds"),
            auth: AuthSettings::default(),
            rate_limit: RateLimitSettings::default(),
            allowed_origins: Vec::new(),
            cors_origins: Vec::new(),
            heartbeat: Duration::from_secs(20),
            max_connections: Bounded::new(1024).expect("within its bounds"),
            max_connections_per_client: Bounded::new(64).expect("within its bounds"),
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl WebSettings {
    /// Checks what types alone cannot.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.auth.parse()?;
        if !(Duration::from_millis(100)..=Duration::from_secs(300))
            .contains(&self.header_read_timeout)
        {
            return Err(ConfigError::new(
                "web.header_read_timeout",
                "must be between 100ms and 300s",
            ));
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&self.request_timeout) {
            return Err(ConfigError::new(
                "web.request_timeout",
                "must be between 1s and 3600s",
            ));
        }
        if self.heartbeat < Duration::from_millis(100) {
            return Err(ConfigError::new("web.heartbeat", "must be at least 100ms"));
        }
        if self.rate_limit.per_second > 0 && self.rate_limit.burst == 0 {
            return Err(ConfigError::new(
                "web.rate_limit.burst",
                "must be at least 1 when per_second is set",
            ));
        }
        for (key, origin) in self
            .allowed_origins
            .iter()
            .map(|o| ("web.allowed_origins", o))
            .chain(self.cors_origins.iter().map(|o| ("web.cors_origins", o)))
        {
            let ok = is_http_url(origin)
                && !origin
                    .trim_end_matches('/')
                    .contains(|c: char| c.is_whitespace())
                && origin.splitn(4, '/').nth(3).is_none_or(str::is_empty);
            if !ok {
                return Err(ConfigError::new(
                    key,
                    format!("{origin:?} is not an origin (scheme://host[:port], no path)"),
                ));
            }
        }
        Ok(())
    }
}
