//! `[storage]`, `[cache]` and `[archive]`: where readings are kept, and the
//! backend each section chooses, parsed into what it needs.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// A SQLite file in `data_dir`: no server needed.
    Sqlite,
    /// PostgreSQL at `postgres_url`.
    Postgres,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    pub backend: StoreBackend,
    /// Directory for the SQLite database.
    pub data_dir: PathBuf,
    /// `postgres://user:password@host:port/database`; set it from the
    /// environment (ISOBAR__STORAGE__POSTGRES_URL), it holds a password.
    pub postgres_url: Option<Secret>,
    /// Connections in the PostgreSQL pool.
    pub postgres_pool: Bounded<usize, 1, 1000>,
    /// Apply pending migrations when the daemon starts.
    pub migrate_on_start: bool,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            backend: StoreBackend::Sqlite,
            data_dir: PathBuf::from("data"),
            postgres_url: None,
            postgres_pool: Bounded::new(16).expect("within its bounds"),
            migrate_on_start: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheBackend {
    /// A map in the daemon's memory.
    Memory,
    /// Redis at `redis_url`; also relays readings between instances.
    Redis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    pub backend: CacheBackend,
    /// `redis://[:password@]host:port/db`; set it from the environment
    /// (ISOBAR__CACHE__REDIS_URL) when it holds a password.
    pub redis_url: Option<Secret>,
    /// Prefix of every key and channel, so instances of different networks
    /// can share a Redis.
    pub key_prefix: String,
    /// With `rediss://`, the CA certificates (PEM) the server's certificate
    /// must be signed by; without it, the system's.
    pub redis_ca_file: Option<PathBuf>,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            backend: CacheBackend::Memory,
            redis_url: None,
            key_prefix: "isobar:".into(),
            redis_ca_file: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArchiveBackend {
    /// A directory with the data lake's layout (`dir`).
    Local,
    /// An S3 bucket, on AWS or any S3-compatible endpoint.
    S3,
    /// No data lake.
    Off,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArchiveSettings {
    pub backend: ArchiveBackend,
    /// Local archive directory; `<storage.data_dir>/archive` when unset.
    pub dir: Option<PathBuf>,
    pub bucket: Option<String>,
    /// Prefix of every object key, such as `isobar/`.
    pub prefix: String,
    /// AWS region; from the AWS environment or profile when unset.
    pub region: Option<String>,
    /// An S3-compatible endpoint (MinIO, Ceph, ...) instead of AWS.
    pub endpoint_url: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), which most
    /// S3-compatible stores need.
    pub path_style: bool,
    /// A spool segment is uploaded at this age or size, whichever first.
    /// Each segment becomes one object per (date, station) it holds, so
    /// larger segments mean fewer, larger objects: cheaper to write, and
    /// what the lake's query engines read best.
    #[serde(with = "humantime_serde")]
    pub segment_age: Duration,
    pub segment_bytes: u64,
}

impl Default for ArchiveSettings {
    fn default() -> Self {
        Self {
            backend: ArchiveBackend::Local,
            dir: None,
            bucket: None,
            prefix: String::new(),
            region: None,
            endpoint_url: None,
            path_style: false,
            segment_age: Duration::from_secs(300),
            segment_bytes: 64 * 1024 * 1024,
        }
    }
}

impl ArchiveSettings {
    pub fn local_dir(&self, storage: &StorageSettings) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| storage.data_dir.join("archive"))
    }
}

impl StorageSettings {
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("isobar.sqlite3")
    }
}

/// The store the settings choose, with what it needs.
#[derive(Debug, Clone)]
pub enum StoreTarget {
    Sqlite,
    Postgres {
        /// The URL for the driver: `sslmode` as it knows it, without
        /// `sslrootcert`.
        url: Secret,
        tls: PostgresTls,
    },
}

/// `sslmode`, as libpq reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if the server offers it, its certificate unchecked (the
    /// default, as in libpq).
    Prefer,
    /// TLS, the certificate unchecked.
    Require,
    /// TLS, the certificate signed by a CA of `sslrootcert`.
    VerifyCa,
    /// As `verify-ca`, and issued for the host connected to.
    VerifyFull,
}

/// TLS to PostgreSQL: the mode, and the CA certificates (PEM) read from
/// `sslrootcert`.
#[derive(Debug, Clone)]
pub struct PostgresTls {
    pub mode: SslMode,
    pub ca: Option<Vec<u8>>,
}

/// Takes libpq's `sslmode` and `sslrootcert` out of a PostgreSQL URL (or
/// key=value string): the URL left, with the `sslmode` the driver knows
/// (`disable`, `prefer` or `require`), the mode and the CA file.
pub fn split_postgres_tls(url: &str) -> Result<(String, SslMode, Option<PathBuf>), String> {
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let (head, params): (&str, Vec<&str>) = if is_url {
        match url.split_once('?') {
            Some((head, query)) => (head, query.split('&').filter(|p| !p.is_empty()).collect()),
            None => (url, Vec::new()),
        }
    } else {
        ("", url.split_whitespace().collect())
    };
    let mut mode = SslMode::Prefer;
    let mut root = None;
    let mut kept = Vec::new();
    for param in params {
        match param.split_once('=') {
            Some(("sslmode", value)) => {
                mode = match value {
                    "disable" => SslMode::Disable,
                    "allow" | "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(format!(
                            "sslmode={other:?} is none of disable, prefer, require, verify-ca, verify-full"
                        ));
                    }
                }
            }
            Some(("sslrootcert", value)) => root = Some(PathBuf::from(value)),
            _ => kept.push(param),
        }
    }
    if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && root.is_none() {
        return Err(
            "sslmode=verify-ca and verify-full need sslrootcert=FILE, the server's CA certificates (PEM)"
                .into(),
        );
    }
    kept.push(match mode {
        SslMode::Disable => "sslmode=disable",
        SslMode::Prefer => "sslmode=prefer",
        _ => "sslmode=require",
    });
    let rest = if is_url {
        format!("{head}?{}", kept.join("&"))
    } else {
        kept.join(" ")
    };
    Ok((rest, mode, root))
}

impl StorageSettings {
    /// The store chosen, or which key stands in the way and why.
    pub fn target(&self) -> Result<StoreTarget, ConfigError> {
        match self.backend {
            StoreBackend::Sqlite => Ok(StoreTarget::Sqlite),
            StoreBackend::Postgres => {
                let url = self.postgres_url.as_ref().ok_or_else(|| {
                    ConfigError::new(
                        "storage.postgres_url",
                        "required with storage.backend = \"postgres\" \
                 (set ISOBAR__STORAGE__POSTGRES_URL)",
                    )
                })?;
                let bad = |reason: String| ConfigError::new("storage.postgres_url", reason);
                let (rest, mode, root) = split_postgres_tls(url.expose()).map_err(bad)?;
                // The parser's message never quotes the URL, which holds a password.
                rest.parse::<tokio_postgres::Config>()
                    .map_err(|e| bad(format!("not a PostgreSQL URL: {e}")))?;
                let ca = match root {
                    Some(path) => Some(std::fs::read(&path).map_err(|e| {
                        bad(format!("cannot read sslrootcert {}: {e}", path.display()))
                    })?),
                    None => None,
                };
                Ok(StoreTarget::Postgres {
                    url: Secret::new(rest),
                    tls: PostgresTls { mode, ca },
                })
            }
        }
    }
}

/// The latest-reading cache the settings choose, with what it needs.
#[derive(Debug, Clone)]
pub enum CacheTarget<'a> {
    Memory,
    Redis {
        url: &'a Secret,
        /// With `rediss://`: TLS, trusting these CA certificates (PEM), or
        /// the system's without them.
        tls: Option<Option<Vec<u8>>>,
    },
}

impl CacheSettings {
    /// The cache chosen, or which key stands in the way and why.
    pub fn target(&self) -> Result<CacheTarget<'_>, ConfigError> {
        match self.backend {
            CacheBackend::Memory => Ok(CacheTarget::Memory),
            CacheBackend::Redis => {
                let url = self.redis_url.as_ref().ok_or_else(|| {
                    ConfigError::new(
                        "cache.redis_url",
                        "required with cache.backend = \"redis\" (set ISOBAR__CACHE__REDIS_URL)",
                    )
                })?;
                let tls = if url.expose().starts_with("rediss://") {
                    // The URL parser builds a TLS client.
                    install_crypto_provider();
                    Some(match &self.redis_ca_file {
                        Some(path) => Some(read_file("cache.redis_ca_file", path)?),
                        None => None,
                    })
                } else {
                    if self.redis_ca_file.is_some() {
                        return Err(ConfigError::new(
                            "cache.redis_ca_file",
                            "is for TLS: give cache.redis_url as rediss://",
                        ));
                    }
                    None
                };
                fred::prelude::Config::from_url(url.expose()).map_err(|e| {
                    ConfigError::new(
                        "cache.redis_url",
                        format!("not a Redis URL: {}", e.details()),
                    )
                })?;
                Ok(CacheTarget::Redis { url, tls })
            }
        }
    }
}

/// The data lake the settings choose, with what it needs.
#[derive(Debug, Clone, Copy)]
pub enum ArchiveTarget<'a> {
    Off,
    Local,
    S3 { bucket: &'a str },
}

impl ArchiveSettings {
    /// The archive chosen, or which key stands in the way and why.
    pub fn target(&self) -> Result<ArchiveTarget<'_>, ConfigError> {
        match self.backend {
            ArchiveBackend::Off => Ok(ArchiveTarget::Off),
            ArchiveBackend::Local => Ok(ArchiveTarget::Local),
            ArchiveBackend::S3 => match self.bucket.as_deref() {
                Some(bucket) if !bucket.is_empty() => Ok(ArchiveTarget::S3 { bucket }),
                _ => Err(ConfigError::new(
                    "archive.bucket",
                    "required with archive.backend = \"s3\"",
                )),
            },
        }
    }
}

/// Checks what types alone cannot: each backend chosen has what it needs.
pub(super) fn validate_stores(
    storage: &StorageSettings,
    cache: &CacheSettings,
    archive: &ArchiveSettings,
) -> Result<(), ConfigError> {
    storage.target()?;
    cache.target()?;
    archive.target()?;
    if archive.segment_age.is_zero() || archive.segment_bytes == 0 {
        return Err(ConfigError::new(
            "archive.segment_age",
            "segments need an age and a size above zero",
        ));
    }
    Ok(())
}
