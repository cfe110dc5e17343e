//! The HTTP side: REST under `/api/v1`, the live websocket, `/health`,
//! `/metrics` and the dashboard's static files. Every error is a JSON body
//! `{"error": code, "message": text}` with a 4xx or 5xx status.

mod api;
pub mod auth;
pub mod dashboard;
mod export;
mod ingest;
pub mod limits;
mod live;
pub mod openapi;
mod quality;
pub mod server;
pub mod tickets;

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use crate::config::{ConfigError, WebSettings};
use crate::health::Health;
use crate::storage::{LatestCache, Store};
pub use crate::storage::{StationStatus, StationView};

/// What the handlers share.
pub struct WebContext {
    /// The actors' addresses, and the front door uploads come in by.
    pub pipeline: Arc<crate::actors::pipeline::Pipeline>,
    /// What requests read.
    pub data: Data,
    /// The daemon itself, as the system view and the probes show it.
    pub system: System,
    /// Who may call, from where and how often.
    pub guard: Guard,
    /// How the websocket and the dashboard are served.
    pub serving: Serving,
}

/// What requests read: history, the latest readings, the data lake.
pub struct Data {
    pub store: Arc<dyn Store>,
    pub cache: Arc<dyn LatestCache>,
    pub archive: Option<Arc<dyn crate::storage::archive::Archive>>,
    /// The last answer of `GET /api/v1/latest`, with the cache version it
    /// was built from.
    pub latest_body: std::sync::Mutex<Option<(u64, bytes::Bytes)>>,
}

/// The daemon itself: its supervision tree, policies, health and metrics.
pub struct System {
    /// What the static supervisors know of their children.
    pub tree: Arc<crate::actors::root::TreeRecords>,
    /// The restart policies in force.
    pub supervision: crate::config::SharedSupervision,
    /// `[stations.<id>]`: names and surveyed positions.
    pub station_meta: crate::config::SharedStations,
    pub health: Arc<Health>,
    pub metrics: Option<PrometheusHandle>,
}

/// Who may call, from where and how often.
pub struct Guard {
    /// Who may upload and read.
    pub auth: Arc<auth::Auth>,
    /// Requests per client.
    pub limiter: Arc<limits::Limiter>,
    /// Origins besides the daemon's own that may open the websocket.
    pub allowed_origins: Vec<String>,
    /// Origins whose pages may call the API (CORS).
    pub cors_origins: Vec<String>,
    /// Uploads being processed at once; beyond, new ones are refused (503)
    /// so that waiting uploads cannot grow memory without bound.
    pub upload_slots: Arc<tokio::sync::Semaphore>,
    /// Websocket tickets issued to read credentials.
    pub tickets: Arc<tickets::Tickets>,
}

/// How the websocket and the dashboard are served.
pub struct Serving {
    /// Messages queued for one websocket client before it is dropped.
    pub client_queue: usize,
    /// Stations in the websocket's snapshot at most.
    pub snapshot_max: usize,
    /// How often the websocket pings its clients.
    pub heartbeat: std::time::Duration,
    /// The dashboard's files on disk, instead of those in the binary.
    pub static_dir: Option<PathBuf>,
    /// What HTTP connections may hold.
    pub connections: server::ConnectionLimits,
}

/// HTTP uploads processed at once (each holds at most 64 KiB).
const MAX_CONCURRENT_UPLOADS: usize = 256;

impl Guard {
    /// From `[web]`, reading the key files; a bad one names its key.
    pub fn from_settings(web: &WebSettings) -> Result<Self, ConfigError> {
        let auth = auth::Auth::from_settings(&web.auth)?;
        if auth.is_open() {
            tracing::warn!("HTTP uploads are open: no API key or token is configured (web.auth)");
        }
        Ok(Self {
            auth: Arc::new(auth),
            limiter: Arc::new(limits::Limiter::new(&web.rate_limit)),
            allowed_origins: web.allowed_origins.clone(),
            cors_origins: web.cors_origins.clone(),
            upload_slots: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_UPLOADS)),
            tickets: Arc::default(),
        })
    }
}

impl Serving {
    pub fn from_settings(web: &WebSettings) -> Self {
        dashboard::log_source(web.static_dir.as_deref());
        Self {
            client_queue: web.client_queue.get(),
            snapshot_max: web.snapshot_max.get(),
            heartbeat: web.heartbeat,
            static_dir: web.static_dir.clone(),
            connections: server::ConnectionLimits {
                max_connections: crate::health::within_open_files(
                    "web.max_connections",
                    web.max_connections.get(),
                    2,
                ),
                max_connections_per_client: web.max_connections_per_client.get(),
                header_read_timeout: web.header_read_timeout,
                request_timeout: web.request_timeout,
            },
        }
    }
}

impl Data {
    pub fn new(
        store: Arc<dyn Store>,
        cache: Arc<dyn LatestCache>,
        archive: Option<Arc<dyn crate::storage::archive::Archive>>,
    ) -> Self {
        Self {
            store,
            cache,
            archive,
            latest_body: std::sync::Mutex::new(None),
        }
    }
}

/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable code: `bad_request`, `not_found`, `payload_too_large`, …
    #[schema(example = "bad_request")]
    pub error: String,
    /// What failed, and with which input.
    pub message: String,
}

/// An error answered as JSON.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
        }
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "request failed");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "the server could not complete the request".into(),
        }
    }
}

impl warp::reject::Reject for ApiError {}

impl Reply for ApiError {
    fn into_response(self) -> warp::reply::Response {
        let status = self.status;
        let body = ErrorBody {
            error: self.code.to_owned(),
            message: self.message,
        };
        let mut response =
            warp::reply::with_status(warp::reply::json(&body), status).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                "www-authenticate",
                warp::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// All routes.
/// Reads need a credential that may read when they are protected: in the
/// headers, or a ticket (browsers).
fn read_guard(ctx: &WebContext) -> impl Filter<Extract = (), Error = Rejection> + Clone + use<> {
    auth::require(
        ctx.guard.auth.clone(),
        auth::Access::Read,
        auth::Also::Ticket(ctx.guard.tickets.clone()),
    )
}

/// What the web server actor runs: the routes, served on its listener
/// until it is told to stop, within the connection limits.
pub fn server(ctx: Arc<WebContext>) -> crate::actors::http::Serve {
    Arc::new(move |listener, stop| {
        Box::pin(server::serve(
            listener,
            routes(ctx.clone()),
            ctx.serving.connections,
            stop,
        ))
    })
}

pub fn routes(
    ctx: Arc<WebContext>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone + Send + Sync + 'static {
    // Probes answer HEAD too (hyper leaves the body out), as orchestrators
    // and uptime checkers send it.
    let get_or_head = || warp::get().or(warp::head()).unify();
    let health = warp::path!("health").and(get_or_head()).map(health);
    let ready = warp::path!("ready")
        .and(get_or_head())
        .and(with(ctx.clone()))
        .and_then(ready);
    let metrics = warp::path!("metrics")
        .and(get_or_head())
        .and(with(ctx.clone()))
        .map(metrics);
    let reads = read_guard(&ctx);
    // Uploads are not reads: their own route alone answers them (so an
    // upload's error speaks of ingesting, whatever guards the reads).
    let not_an_upload = warp::path::peek()
        .and_then(|rest: warp::path::Peek| async move {
            if rest.segments().next() == Some("ingest") {
                Err(warp::reject::not_found())
            } else {
                Ok(())
            }
        })
        .untuple_one();
    // The websocket checks its own credential: a header, or a ticket.
    let api = warp::path("api").and(warp::path("v1")).and(
        openapi::route()
            .or(live::route(ctx.clone()))
            .or(not_an_upload
                .and(reads)
                .and(api::routes(ctx.clone()).or(live::ticket_route(ctx.clone())))),
    );
    // Probes are never limited: an orchestrator must always get through.
    let limited = limits::rate_limit(ctx.guard.limiter.clone()).and(
        ingest::routes(ctx.clone())
            .or(api)
            .or(faults(ctx.clone()))
            .or(dashboard::route(ctx.serving.static_dir.clone())),
    );
    let cors = Arc::new(ctx.guard.cors_origins.clone());
    let preflight_origins = cors.clone();
    // Not `warp::options()`: its refusal of other methods would outrank a
    // route's own 404 in warp's choice among rejections.
    let preflight = warp::method().and(warp::header::headers_cloned()).and_then(
        move |method: warp::http::Method, headers: warp::http::HeaderMap| {
            let allowed = preflight_origins.clone();
            async move {
                let origin = headers.get("origin").and_then(|o| o.to_str().ok());
                match origin {
                    Some(origin)
                        if method == warp::http::Method::OPTIONS
                            && headers.contains_key("access-control-request-method") =>
                    {
                        Ok(preflight(origin, &allowed))
                    }
                    _ => Err(warp::reject::not_found()),
                }
            }
        },
    );
    let answered = preflight
        .or(health)
        .or(ready)
        .or(metrics)
        .or(limited)
        .recover(recover)
        .map(Reply::into_response);
    warp::header::headers_cloned()
        .and(answered)
        .map(
            move |headers: warp::http::HeaderMap, reply: warp::reply::Response| {
                let origin = headers.get("origin").and_then(|o| o.to_str().ok());
                allow_origin(reply, origin, &cors)
            },
        )
        .with(warp::log::custom(|info| {
            tracing::debug!(method = %info.method(), path = info.path(),
                status = info.status().as_u16(), "http request");
            let route = route_label(info.path());
            metrics::counter!("isobar_http_requests_total",
                "route" => route, "status" => info.status().as_u16().to_string())
            .increment(1);
            metrics::histogram!("isobar_http_request_seconds", "route" => route)
                .record(info.elapsed().as_secs_f64());
        }))
}

/// Whether `origin` is one of `allowed` (scheme, host and port, exactly).
fn origin_listed(origin: &str, allowed: &[String]) -> bool {
    let origin = origin.trim_end_matches('/');
    allowed
        .iter()
        .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin))
}

/// A CORS preflight: 204 with what may be sent, for an allowed origin;
/// 403 for any other.
fn preflight(origin: &str, allowed: &[String]) -> warp::reply::Response {
    if !origin_listed(origin, allowed) {
        return ApiError {
            status: StatusCode::FORBIDDEN,
            code: "forbidden_origin",
            message: format!("{origin} is not in web.cors_origins"),
        }
        .into_response();
    }
    let mut response = warp::reply::with_status("", StatusCode::NO_CONTENT).into_response();
    let h = response.headers_mut();
    for (name, value) in [
        ("access-control-allow-methods", "GET, POST"),
        (
            "access-control-allow-headers",
            "authorization, content-type, x-api-key",
        ),
        ("access-control-max-age", "600"),
        ("vary", "origin"),
    ] {
        h.insert(name, warp::http::HeaderValue::from_static(value));
    }
    if let Ok(origin) = warp::http::HeaderValue::from_str(origin) {
        h.insert("access-control-allow-origin", origin);
    }
    response
}

/// Lets an allowed origin's page read the answer; for any other, the
/// answer carries no CORS header and the browser keeps it from the page.
fn allow_origin(
    mut reply: warp::reply::Response,
    origin: Option<&str>,
    allowed: &[String],
) -> warp::reply::Response {
    let h = reply.headers_mut();
    h.append("vary", warp::http::HeaderValue::from_static("origin"));
    if let Some(origin) = origin.filter(|o| origin_listed(o, allowed))
        && let Ok(value) = warp::http::HeaderValue::from_str(origin)
    {
        h.insert("access-control-allow-origin", value);
        h.insert(
            "access-control-expose-headers",
            warp::http::HeaderValue::from_static("retry-after"),
        );
    }
    reply
}

/// `POST /faults/web`, only in builds with the test-only `fault-injection`
/// feature: makes the web server fail, so its supervisor restarts it.
#[cfg(feature = "fault-injection")]
fn faults(
    ctx: Arc<WebContext>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone + Send + Sync + 'static {
    warp::path!("faults" / "web")
        .and(warp::post())
        .map(move || {
            ctx.pipeline
                .http
                .notify(crate::actors::http::HttpMsg::Ended(
                    "fault injected into the web server".into(),
                ));
            warp::reply::with_status("", warp::http::StatusCode::ACCEPTED)
        })
}

/// Production builds have no fault routes.
#[cfg(not(feature = "fault-injection"))]
fn faults(
    _ctx: Arc<WebContext>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone + Send + Sync + 'static {
    warp::any().and_then(|| async { Err::<String, _>(warp::reject::not_found()) })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Liveness {
    /// Always `ok`.
    pub status: &'static str,
}

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/health", tag = "probes", responses((status = 200, body = Liveness)))]
fn health() -> warp::reply::Json {
    warp::reply::json(&Liveness { status: "ok" })
}

/// Prometheus metrics, in the text format.
#[utoipa::path(get, path = "/metrics", tag = "probes",
    responses((status = 200, content_type = "text/plain", body = String)))]
fn metrics(ctx: Arc<WebContext>) -> impl Reply {
    let body = ctx
        .system
        .metrics
        .as_ref()
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    warp::reply::with_header(body, "content-type", "text/plain; version=0.0.4")
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready`, `degraded` (the cache or the archive unreachable; readings
    /// are still taken) or `not_ready`.
    pub status: &'static str,
    pub checks: ReadinessChecks,
}

/// Each dependency: `ok`, or what is wrong (the archive: `off` when none).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ReadinessChecks {
    pub mqtt: String,
    pub store: String,
    pub cache: String,
    pub archive: String,
    /// `ok`, or why the external broker is losing messages before they
    /// reach isobar.
    pub broker: String,
}

/// How long after the broker last dropped a message `/ready` says so.
const BROKER_DROPS_RECENT: std::time::Duration = std::time::Duration::from_secs(300);

/// 200 when the daemon can take readings: the MQTT subscription is in place
/// and the store answers; 503 with what is wrong otherwise.
#[utoipa::path(get, path = "/ready", tag = "probes",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
async fn ready(ctx: Arc<WebContext>) -> Result<warp::reply::Response, Infallible> {
    // Each check answers within a second, all at once: probes have deadlines.
    async fn check<F>(check: F) -> String
    where
        F: std::future::Future<Output = Result<(), String>>,
    {
        match tokio::time::timeout(std::time::Duration::from_secs(1), check).await {
            Ok(Ok(())) => "ok".to_owned(),
            Ok(Err(e)) => e,
            Err(_) => "no answer within 1 s".to_owned(),
        }
    }
    let mqtt = if ctx.system.health.no_intake() {
        // An API instance of a cluster: no readings to take.
        "off".to_owned()
    } else if ctx.system.health.mqtt_subscribed() {
        "ok".to_owned()
    } else {
        "not subscribed".to_owned()
    };
    let (store, cache, archive) = tokio::join!(
        check(async { ctx.data.store.ping().await.map_err(|e| e.to_string()) }),
        check(ctx.data.cache.ping()),
        async {
            match &ctx.data.archive {
                None => "off".to_owned(),
                Some(a) => check(a.ping()).await,
            }
        },
    );
    let broker = if ctx
        .pipeline
        .deliveries
        .flow
        .broker_dropping(BROKER_DROPS_RECENT)
    {
        "dropping: the broker dropped messages it had no room to queue in the last 5 minutes"
            .to_owned()
    } else {
        "ok".to_owned()
    };
    // The cache and the archive can be down while readings are still taken
    // and stored (the archive catches up from its outbox), and a broker
    // dropping messages loses some while the rest are taken: "degraded".
    let ok = matches!(mqtt.as_str(), "ok" | "off") && store == "ok";
    let status = match (
        ok,
        cache == "ok" && matches!(archive.as_str(), "ok" | "off") && broker == "ok",
    ) {
        (false, _) => "not_ready",
        (true, false) => "degraded",
        (true, true) => "ready",
    };
    let body = Readiness {
        status,
        checks: ReadinessChecks {
            mqtt,
            store,
            cache,
            archive,
            broker,
        },
    };
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(warp::reply::with_status(warp::reply::json(&body), code).into_response())
}

fn with<T: Clone + Send>(value: T) -> impl Filter<Extract = (T,), Error = Infallible> + Clone {
    warp::any().map(move || value.clone())
}

/// The route a request path is for, with the station left out, so that
/// the metrics have one series per route rather than per station.
fn route_label(path: &str) -> &'static str {
    // No allocation per request: the routes have at most 5 segments, so a
    // sixth stands for "more" (only the `..` patterns take it).
    let mut segments = [""; 6];
    let mut n = 0;
    for segment in path.trim_matches('/').split('/').take(segments.len()) {
        segments[n] = segment;
        n += 1;
    }
    match &segments[..n] {
        ["health"] => "/health",
        ["ready"] => "/ready",
        ["metrics"] => "/metrics",
        ["weatherstation", ..] => "/weatherstation/updateweatherstation.php",
        ["api", "v1", "stations"] => "/api/v1/stations",
        ["api", "v1", "stations", _] => "/api/v1/stations/{id}",
        ["api", "v1", "stations", _, "latest"] => "/api/v1/stations/{id}/latest",
        ["api", "v1", "stations", _, "readings"] => "/api/v1/stations/{id}/readings",
        ["api", "v1", "stations", _, "readings.csv"] => "/api/v1/stations/{id}/readings.csv",
        ["api", "v1", "stations", _, "rollups"] => "/api/v1/stations/{id}/rollups",
        ["api", "v1", "latest"] => "/api/v1/latest",
        ["api", "v1", "summary"] => "/api/v1/summary",
        ["api", "v1", "alerts"] => "/api/v1/alerts",
        ["api", "v1", "quarantine"] => "/api/v1/quarantine",
        ["api", "v1", "supervision"] => "/api/v1/supervision",
        ["api", "v1", "live"] => "/api/v1/live",
        ["api", "v1", "openapi.json"] => "/api/v1/openapi.json",
        ["api", "v1", "ingest", "ecowitt", _] => "/api/v1/ingest/ecowitt/{id}",
        ["api", "v1", "ingest", _] => "/api/v1/ingest/{id}",
        ["api", ..] => "other api",
        ["docs", ..] => "/docs/",
        _ => "dashboard",
    }
}

async fn recover(rejection: Rejection) -> Result<warp::reply::Response, Infallible> {
    if let Some(limited) = rejection.find::<limits::RateLimited>() {
        let mut response = ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "too_many_requests",
            message: format!(
                "too many requests from this client; retry in {} s",
                limited.retry_after_s
            ),
        }
        .into_response();
        response.headers_mut().insert(
            "retry-after",
            warp::http::HeaderValue::from(limited.retry_after_s),
        );
        return Ok(response);
    }
    Ok(rejection_error(&rejection).into_response())
}

fn rejection_error(rejection: &Rejection) -> ApiError {
    if let Some(e) = rejection.find::<ApiError>() {
        return ApiError {
            status: e.status,
            code: e.code,
            message: e.message.clone(),
        };
    }
    // A request rejected by several routes carries each route's reason;
    // the most specific one answers.
    if let Some(e) = rejection.find::<warp::reject::PayloadTooLarge>() {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "payload_too_large",
            message: format!(
                "{e}; the limit is {} bytes",
                crate::domain::MAX_PAYLOAD_BYTES
            ),
        }
    } else if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        ApiError::bad_request(e.to_string())
    } else if let Some(e) = rejection.find::<warp::reject::InvalidHeader>() {
        ApiError::bad_request(format!("{e}: a header must be visible ASCII text"))
    } else if let Some(e) = rejection.find::<warp::reject::LengthRequired>() {
        ApiError {
            status: StatusCode::LENGTH_REQUIRED,
            code: "length_required",
            message: e.to_string(),
        }
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "method_not_allowed",
            message: "method not allowed on this route".into(),
        }
    } else if rejection.is_not_found() {
        ApiError::not_found("no such route")
    } else {
        ApiError::bad_request(format!("the request could not be handled: {rejection:?}"))
    }
}
