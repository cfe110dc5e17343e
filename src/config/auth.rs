//! `[web.auth]`: the HTTP side's credentials, as written and as parsed.

use std::path::PathBuf;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret, read_file};

/// Credentials for the HTTP side. With none configured, uploads are open
/// (the embedded default, and the daemon says so at start); with any,
/// every upload needs one that may ingest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// API keys that may upload and read (16 characters or more).
    pub api_keys: Vec<Secret>,
    /// More of them, one per line (`#` starts a comment), e.g. a mounted
    /// secret.
    pub api_keys_file: Option<PathBuf>,
    /// API keys that may only read.
    pub read_keys: Vec<Secret>,
    /// JWTs signed with HS256 and this secret (32 characters or more) ...
    pub jwt_secret: Option<Secret>,
    pub jwt_secret_file: Option<PathBuf>,
    /// ... or with RS256 and the private half of this RSA public key (PEM).
    pub jwt_public_key_file: Option<PathBuf>,
    /// Required `iss` and `aud` claims, when set.
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    /// Reads (REST and the websocket) need a credential too.
    pub protect_reads: bool,
}

/// The credentials of `[web.auth]`, read and checked: every key long
/// enough, key files read, the JWT key decoded.
pub struct AuthKeys {
    /// May ingest and read.
    pub ingest_keys: Vec<Secret>,
    /// May read only.
    pub read_keys: Vec<Secret>,
    pub jwt: Option<JwtKey>,
    pub protect_reads: bool,
}

/// How tokens are checked: one key, one algorithm, and the `iss` and `aud`
/// claims they must carry when set.
pub struct JwtKey {
    pub key: DecodingKey,
    pub algorithm: Algorithm,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

impl std::fmt::Debug for AuthKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthKeys")
            .field("ingest_keys", &self.ingest_keys.len())
            .field("read_keys", &self.read_keys.len())
            .field("jwt", &self.jwt.as_ref().map(|j| j.algorithm))
            .field("protect_reads", &self.protect_reads)
            .finish()
    }
}

/// Shortest API key accepted: a key is a password that is never typed.
pub const MIN_KEY_LEN: usize = 16;

fn read_secret_file(key: &str, path: &std::path::Path) -> Result<String, ConfigError> {
    read_file(key, path).map(|b| String::from_utf8_lossy(&b).into_owned())
}

impl AuthSettings {
    /// The credentials in force, reading the key files; a bad one names
    /// its key.
    pub fn parse(&self) -> Result<AuthKeys, ConfigError> {
        let s = self;
        let mut ingest_keys = s.api_keys.clone();
        if let Some(path) = &s.api_keys_file {
            let text = read_secret_file("web.auth.api_keys_file", path)?;
            ingest_keys.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(Secret::new),
            );
        }
        for (key, keys) in [
            ("web.auth.api_keys", &ingest_keys),
            ("web.auth.read_keys", &s.read_keys),
        ] {
            if keys.iter().any(|k| k.expose().len() < MIN_KEY_LEN) {
                return Err(ConfigError::new(
                    key,
                    format!("every key must be at least {MIN_KEY_LEN} characters"),
                ));
            }
        }
        let secret = match (&s.jwt_secret, &s.jwt_secret_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "web.auth.jwt_secret_file",
                    "give jwt_secret or jwt_secret_file, not both",
                ));
            }
            (Some(secret), None) => Some(secret.expose().to_owned()),
            (None, Some(path)) => Some(
                read_secret_file("web.auth.jwt_secret_file", path)?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        let jwt = match (secret, &s.jwt_public_key_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "web.auth.jwt_public_key_file",
                    "HS256 (jwt_secret) or RS256 (jwt_public_key_file), not both",
                ));
            }
            (Some(secret), None) => {
                if secret.len() < 32 {
                    return Err(ConfigError::new(
                        "web.auth.jwt_secret",
                        "an HS256 secret must be at least 32 characters",
                    ));
                }
                let key = DecodingKey::from_secret(secret.as_bytes()).map_err(|e| {
                    ConfigError::new("web.auth.jwt_secret", format!("not usable: {e}"))
                })?;
                Some(JwtKey {
                    key,
                    algorithm: Algorithm::HS256,
                    issuer: s.jwt_issuer.clone(),
                    audience: s.jwt_audience.clone(),
                })
            }
            (None, Some(path)) => {
                let pem = read_secret_file("web.auth.jwt_public_key_file", path)?;
                let key = DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| {
                    ConfigError::new(
                        "web.auth.jwt_public_key_file",
                        format!("{} is not an RSA public key in PEM: {e}", path.display()),
                    )
                })?;
                Some(JwtKey {
                    key,
                    algorithm: Algorithm::RS256,
                    issuer: s.jwt_issuer.clone(),
                    audience: s.jwt_audience.clone(),
                })
            }
            (None, None) => None,
        };
        if s.protect_reads && ingest_keys.is_empty() && s.read_keys.is_empty() && jwt.is_none() {
            return Err(ConfigError::new(
                "web.auth.protect_reads",
                "no credential could read: give read_keys, api_keys or a JWT key",
            ));
        }
        Ok(AuthKeys {
            ingest_keys,
            read_keys: s.read_keys.clone(),
            jwt,
            protect_reads: s.protect_reads,
        })
    }
}
