//! Who may call: API keys and JWTs (HS256 with a shared secret, or RS256
//! with a public key; no other algorithm, so `alg: none` is refused).
//! Uploads need a credential that may ingest once any credential is
//! configured; reads need one that may read when `web.auth.protect_reads`
//! is on. A credential comes in `Authorization: Bearer …` or `X-API-Key`,
//! or, for devices that cannot set headers, as the upload's own password
//! (`PASSWORD` of Weather Underground) or an `api_key` query parameter.

use std::sync::Arc;

use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;
use warp::http::StatusCode;
use warp::{Filter, Rejection};

use super::ApiError;
use crate::config::{AuthKeys, AuthSettings, ConfigError, Secret};

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Ingest,
    Read,
}

impl Access {
    fn name(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Read => "read",
        }
    }
}

/// The credentials in force.
pub struct Auth {
    /// May ingest and read.
    ingest_keys: Vec<Secret>,
    /// May read only.
    read_keys: Vec<Secret>,
    jwt: Option<(DecodingKey, Validation)>,
    protect_reads: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("ingest_keys", &self.ingest_keys.len())
            .field("read_keys", &self.read_keys.len())
            .field("jwt", &self.jwt.as_ref().map(|(_, v)| &v.algorithms))
            .field("protect_reads", &self.protect_reads)
            .finish()
    }
}

/// A token's claims that isobar reads. `exp` is required and checked by
/// the decoder.
#[derive(Debug, Deserialize)]
struct Claims {
    /// Space-separated: `ingest`, `read`. Absent: both.
    #[serde(default)]
    scope: Option<String>,
}

impl Auth {
    /// From the settings, reading the key files; a bad one names its key.
    pub fn from_settings(s: &AuthSettings) -> Result<Self, ConfigError> {
        s.parse().map(Self::new)
    }

    /// With the credentials the settings gave.
    pub fn new(keys: AuthKeys) -> Self {
        let jwt = keys.jwt.map(|jwt| {
            // One algorithm only: a token that names another, `none`
            // included, is refused.
            let mut validation = Validation::new(jwt.algorithm);
            // A claim that is checked must be there: a token without the
            // configured issuer or audience is refused, not waved through.
            let mut required = vec!["exp"];
            if let Some(issuer) = &jwt.issuer {
                validation.set_issuer(&[issuer]);
                required.push("iss");
            }
            match &jwt.audience {
                Some(audience) => {
                    validation.set_audience(&[audience]);
                    required.push("aud");
                }
                None => validation.validate_aud = false,
            }
            validation.set_required_spec_claims(&required);
            // A token not valid yet is refused, with the same minute of
            // leeway as its expiry.
            validation.validate_nbf = true;
            (jwt.key, validation)
        });
        Self {
            ingest_keys: keys.ingest_keys,
            read_keys: keys.read_keys,
            jwt,
            protect_reads: keys.protect_reads,
        }
    }

    /// No credential configured: uploads are open (the embedded default).
    pub fn is_open(&self) -> bool {
        self.ingest_keys.is_empty() && self.jwt.is_none()
    }

    /// Reads need a credential: `protect_reads`, which the settings only
    /// take with some credential that may read (read keys alone will do).
    pub fn protects_reads(&self) -> bool {
        self.protect_reads
    }

    /// Whether `credential` may do `access`; the error says why not.
    pub fn check(&self, access: Access, credential: Option<&str>) -> Result<(), ApiError> {
        let required = match access {
            Access::Ingest => !self.is_open(),
            Access::Read => self.protects_reads(),
        };
        if !required {
            return Ok(());
        }
        let Some(credential) = credential.filter(|c| !c.is_empty()) else {
            return Err(unauthorized(format!(
                "{} needs an API key or a token (Authorization: Bearer …)",
                access.name()
            )));
        };
        if self.ingest_keys.iter().any(|k| k.matches(credential)) {
            return Ok(());
        }
        if self.read_keys.iter().any(|k| k.matches(credential)) {
            return match access {
                Access::Read => Ok(()),
                Access::Ingest => Err(forbidden("this API key may read, not ingest")),
            };
        }
        let looks_like_jwt = credential.split('.').count() == 3;
        let Some((key, validation)) = self.jwt.as_ref().filter(|_| looks_like_jwt) else {
            return Err(unauthorized("the API key is not known".into()));
        };
        let claims = jsonwebtoken::decode::<Claims>(credential, key, validation)
            .map_err(|e| unauthorized(format!("the token is refused: {e}")))?
            .claims;
        let allowed = match claims.scope.as_deref() {
            None => true,
            Some(scope) => scope
                .split_whitespace()
                .any(|s| s == access.name() || (access == Access::Read && s == "ingest")),
        };
        if allowed {
            Ok(())
        } else {
            Err(forbidden(&format!(
                "the token's scope does not include {}",
                access.name()
            )))
        }
    }
}

fn unauthorized(message: String) -> ApiError {
    ApiError {
        status: StatusCode::UNAUTHORIZED,
        code: "unauthorized",
        message,
    }
}

fn forbidden(message: &str) -> ApiError {
    ApiError {
        status: StatusCode::FORBIDDEN,
        code: "forbidden",
        message: message.to_owned(),
    }
}

/// The credential a request carries in its headers: a bearer token (the
/// scheme's name in any case, as RFC 9110 has it) or an `X-API-Key`. A
/// header that is not text carries none.
fn from_headers(headers: &warp::http::HeaderMap) -> Option<String> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    text("authorization")
        .and_then(|h| {
            let (scheme, token) = h.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        })
        .or_else(|| text("x-api-key").map(str::to_owned))
}

/// Where a request's credential may come from besides its headers, for
/// clients that cannot set them.
#[derive(Clone)]
pub enum Also {
    Nothing,
    /// A query parameter that carries the credential (a device's upload:
    /// `api_key`, Weather Underground's `PASSWORD`).
    QueryKey(&'static str),
    /// A one-time ticket in `?ticket=`, from `POST /api/v1/live/ticket` (a
    /// browser's websocket or download link).
    Ticket(Arc<super::tickets::Tickets>),
}

/// Passes a request that may do `access`, rejecting it with 401 or 403
/// otherwise; the credential comes in the headers, or as `also` says.
pub fn require(
    auth: Arc<Auth>,
    access: Access,
    also: Also,
) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::headers_cloned()
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and_then(move |headers: warp::http::HeaderMap, query: String| {
            let auth = auth.clone();
            let also = also.clone();
            async move {
                let param = |name: &str| {
                    form_urlencoded::parse(query.as_bytes())
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.into_owned())
                };
                let mut credential = from_headers(&headers);
                match &also {
                    Also::Nothing => {}
                    Also::QueryKey(name) => credential = credential.or_else(|| param(name)),
                    Also::Ticket(tickets) => {
                        if param("ticket").is_some_and(|t| tickets.redeem(&t)) {
                            return Ok(());
                        }
                    }
                }
                auth.check(access, credential.as_deref())
                    .map_err(warp::reject::custom)
            }
        })
        .untuple_one()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};

    const SECRET: &str = "an-hs256-secret-of-at-least-32-characters";

    fn auth(protect_reads: bool) -> Auth {
        Auth::from_settings(&AuthSettings {
            api_keys: vec![Secret::new("ingest-key-0123456789")],
            read_keys: vec![Secret::new("read-key-0123456789")],
            jwt_secret: Some(Secret::new(SECRET)),
            protect_reads,
            ..AuthSettings::default()
        })
        .unwrap()
    }

    fn token(alg: Algorithm, scope: Option<&str>, exp_in: i64) -> String {
        let mut claims = serde_json::json!({
            "sub": "station-uploader",
            "exp": chrono::Utc::now().timestamp() + exp_in,
        });
        if let Some(scope) = scope {
            claims["scope"] = scope.into();
        }
        jsonwebtoken::encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    fn status(r: Result<(), ApiError>) -> u16 {
        r.map_or_else(|e| e.status.as_u16(), |()| 200)
    }

    #[test]
    fn keys_say_what_they_may_do() {
        let a = auth(true);
        assert_eq!(status(a.check(Access::Ingest, None)), 401);
        assert_eq!(status(a.check(Access::Ingest, Some("nope"))), 401);
        assert_eq!(
            status(a.check(Access::Ingest, Some("read-key-0123456789"))),
            403
        );
        assert_eq!(
            status(a.check(Access::Read, Some("read-key-0123456789"))),
            200
        );
        assert_eq!(
            status(a.check(Access::Ingest, Some("ingest-key-0123456789"))),
            200
        );
        assert_eq!(
            status(a.check(Access::Read, Some("ingest-key-0123456789"))),
            200
        );
        // Reads are open unless protected.
        assert_eq!(status(auth(false).check(Access::Read, None)), 200);
    }

    #[test]
    fn tokens_are_checked_for_algorithm_expiry_and_scope() {
        let a = auth(true);
        let ok = token(Algorithm::HS256, None, 60);
        assert_eq!(status(a.check(Access::Ingest, Some(&ok))), 200);
        let read = token(Algorithm::HS256, Some("read"), 60);
        assert_eq!(status(a.check(Access::Read, Some(&read))), 200);
        assert_eq!(status(a.check(Access::Ingest, Some(&read))), 403);
        let expired = token(Algorithm::HS256, None, -3600);
        assert_eq!(status(a.check(Access::Ingest, Some(&expired))), 401);
        // Another HMAC than the one configured.
        let hs512 = token(Algorithm::HS512, None, 60);
        assert_eq!(status(a.check(Access::Ingest, Some(&hs512))), 401);
    }

    fn signed(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    /// With an issuer and an audience configured, a token must carry both,
    /// matching; a token not valid yet (`nbf` ahead) is refused.
    #[test]
    fn configured_issuer_and_audience_are_required_and_nbf_is_checked() {
        let a = Auth::from_settings(&AuthSettings {
            jwt_secret: Some(Secret::new(SECRET)),
            jwt_issuer: Some("https://id.example.org".into()),
            jwt_audience: Some("isobar".into()),
            ..AuthSettings::default()
        })
        .unwrap();
        let now = chrono::Utc::now().timestamp();
        let check = |claims: serde_json::Value| {
            a.check(Access::Ingest, Some(&signed(claims)))
                .map_err(|e| (e.status.as_u16(), e.message))
        };
        let iss = "https://id.example.org";
        assert_eq!(
            check(serde_json::json!({"exp": now + 60, "iss": iss, "aud": "isobar"})),
            Ok(())
        );
        for (claims, why) in [
            (
                serde_json::json!({"exp": now + 60}),
                "Missing required claim",
            ),
            (
                serde_json::json!({"exp": now + 60, "aud": "isobar"}),
                "Missing required claim: iss",
            ),
            (
                serde_json::json!({"exp": now + 60, "iss": iss}),
                "Missing required claim: aud",
            ),
            (
                serde_json::json!({"exp": now + 60, "iss": "https://other", "aud": "isobar"}),
                "InvalidIssuer",
            ),
            (
                serde_json::json!({"exp": now + 60, "iss": iss, "aud": "other"}),
                "InvalidAudience",
            ),
            (
                serde_json::json!({"exp": now + 3600, "nbf": now + 600, "iss": iss, "aud": "isobar"}),
                "ImmatureSignature",
            ),
        ] {
            let (status, message) = check(claims.clone()).unwrap_err();
            assert_eq!(status, 401, "{claims}");
            assert!(message.contains(why), "{claims}: {message}");
        }
        // A token valid from a moment ago is taken.
        assert_eq!(
            check(
                serde_json::json!({"exp": now + 60, "nbf": now - 5, "iss": iss, "aud": "isobar"})
            ),
            Ok(())
        );
    }

    /// The scheme's name is case-insensitive; a header that is not text
    /// carries no credential.
    #[test]
    fn a_bearer_token_is_found_whatever_the_scheme_case() {
        use warp::http::{HeaderMap, HeaderValue};
        let with = |value: HeaderValue| {
            let mut headers = HeaderMap::new();
            headers.insert("authorization", value);
            from_headers(&headers)
        };
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            assert_eq!(
                with(HeaderValue::from_str(&format!("{scheme} tok")).unwrap()).as_deref(),
                Some("tok")
            );
        }
        assert_eq!(with(HeaderValue::from_static("Basic dXNlcjpwYXNz")), None);
        assert_eq!(
            with(HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap()),
            None
        );
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", HeaderValue::from_static("key"));
        assert_eq!(from_headers(&headers).as_deref(), Some("key"));
    }

    #[test]
    fn an_unsigned_token_is_refused() {
        use base64::Engine;
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let exp = chrono::Utc::now().timestamp() + 60;
        let none = format!(
            "{}.{}.",
            b64(serde_json::json!({"alg": "none", "typ": "JWT"})),
            b64(serde_json::json!({"sub": "x", "exp": exp}))
        );
        let err = auth(true).check(Access::Ingest, Some(&none)).unwrap_err();
        assert_eq!(err.status.as_u16(), 401, "{}", err.message);
    }

    #[test]
    fn no_credential_configured_leaves_uploads_open() {
        let open = Auth::from_settings(&AuthSettings::default()).unwrap();
        assert!(open.is_open());
        assert_eq!(status(open.check(Access::Ingest, None)), 200);
        assert_eq!(status(open.check(Access::Read, None)), 200);
        // Protected reads with nothing that could read: refused, not
        // silently open.
        let nothing = AuthSettings {
            protect_reads: true,
            ..AuthSettings::default()
        };
        assert_eq!(
            Auth::from_settings(&nothing).unwrap_err().key,
            "web.auth.protect_reads"
        );
    }

    /// Read keys alone protect reads, and leave uploads open.
    #[test]
    fn read_keys_alone_protect_reads() {
        let a = Auth::from_settings(&AuthSettings {
            read_keys: vec![Secret::new("read-key-0123456789")],
            protect_reads: true,
            ..AuthSettings::default()
        })
        .unwrap();
        assert!(a.is_open());
        assert_eq!(status(a.check(Access::Ingest, None)), 200);
        assert_eq!(status(a.check(Access::Read, None)), 401);
        assert_eq!(
            status(a.check(Access::Read, Some("read-key-0123456789"))),
            200
        );
    }

    #[test]
    fn bad_settings_name_their_key() {
        let short = AuthSettings {
            api_keys: vec![Secret::new("short")],
            ..AuthSettings::default()
        };
        assert_eq!(
            Auth::from_settings(&short).unwrap_err().key,
            "web.auth.api_keys"
        );
        let weak = AuthSettings {
            jwt_secret: Some(Secret::new("too short")),
            ..AuthSettings::default()
        };
        assert_eq!(
            Auth::from_settings(&weak).unwrap_err().key,
            "web.auth.jwt_secret"
        );
        let missing = AuthSettings {
            jwt_public_key_file: Some("/nonexistent/key.pem".into()),
            ..AuthSettings::default()
        };
        assert_eq!(
            Auth::from_settings(&missing).unwrap_err().key,
            "web.auth.jwt_public_key_file"
        );
    }

    #[test]
    fn debug_shows_no_key() {
        let shown = format!("{:?}", auth(true));
        assert!(!shown.contains("0123456789"), "{shown}");
        assert!(!shown.contains(SECRET), "{shown}");
    }
}
