//! HTTP ingest, for stations that upload instead of publishing over MQTT:
//! - the Weather Underground protocol at its usual path,
//!   `GET /weatherstation/updateweatherstation.php?ID=…&dateutc=now&tempf=…`;
//! - Ecowitt's customized upload, `POST /api/v1/ingest/ecowitt/{station_id}`
//!   (a form body);
//! - isobar JSON, one object or an array, `POST /api/v1/ingest/{station_id}`.
//!
//! An upload goes through the same station actor and persister as an MQTT
//! message, and the answer waits until it is stored: 200 once stored, 400
//! with the reason if it was quarantined.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use super::{ApiError, WebContext, with};
use crate::delivery::{Ack, Arrival, Format, Verdict};
use crate::domain::{MAX_PAYLOAD_BYTES, RejectReason, StationId, secrets};

/// An upload, once stored.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Stored {
    /// Readings stored (a redelivered one counts, though stored once).
    pub stored: usize,
    /// Parts of the upload quarantined (in a JSON array, each element
    /// stands alone).
    pub quarantined: usize,
}

/// An upload taken by a bridge: handed to the cluster's readings topic,
/// where a worker stores it (or quarantines it).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Forwarded {
    pub forwarded: bool,
}

/// Uploads answer once stored; these are their documented forms (the
/// routes below are closures).
#[utoipa::path(post, path = "/api/v1/ingest/{id}", tag = "ingest",
    security((), ("api_key" = []), ("bearer" = [])),
    params(("id" = String, Path, description = "the station id")),
    request_body(content = serde_json::Value, content_type = "application/json",
        description = "a reading in the isobar JSON format, or an array of them"),
    responses((status = 200, body = Stored),
        (status = 202, description = "on a bridge: handed to the cluster's readings topic", body = Forwarded),
        (status = 400, description = "rejected and quarantined, with the reason", body = super::ErrorBody),
        (status = 411, body = super::ErrorBody),
        (status = 401, description = "no credential, or one not known", body = super::ErrorBody),
        (status = 403, description = "a credential that may not ingest", body = super::ErrorBody),
        (status = 413, body = super::ErrorBody),
        (status = 500, body = super::ErrorBody),
        (status = 503, description = "busy, or not stored in time: sending again is safe", body = super::ErrorBody)))]
#[allow(dead_code)]
fn ingest_json() {}

#[utoipa::path(post, path = "/api/v1/ingest/ecowitt/{id}", tag = "ingest",
    security((), ("api_key" = []), ("bearer" = [])),
    params(("id" = String, Path, description = "the station id")),
    request_body(content = std::collections::HashMap<String, String>,
        content_type = "application/x-www-form-urlencoded",
        description = "Ecowitt's customized upload form (its passkey is never stored)"),
    responses((status = 200, body = Stored),
        (status = 202, description = "on a bridge: handed to the cluster's readings topic", body = Forwarded),
        (status = 400, body = super::ErrorBody),
        (status = 411, body = super::ErrorBody),
        (status = 401, description = "no credential, or one not known", body = super::ErrorBody),
        (status = 403, description = "a credential that may not ingest", body = super::ErrorBody),
        (status = 413, body = super::ErrorBody),
        (status = 500, body = super::ErrorBody),
        (status = 503, body = super::ErrorBody)))]
#[allow(dead_code)]
fn ingest_ecowitt() {}

/// The Weather Underground upload's parameters, in imperial units. Others
/// a console sends (`action`, `softwaretype`, indoor values, …) are
/// accepted and ignored.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, non_snake_case)]
struct WundergroundQuery {
    /// The station id.
    ID: String,
    /// The station's key, when `web.auth` asks for one; never stored.
    PASSWORD: Option<String>,
    /// `YYYY-MM-DD HH:MM:SS` in UTC, or `now`.
    dateutc: String,
    /// Air temperature, °F.
    tempf: Option<f64>,
    /// Relative humidity, %.
    humidity: Option<f64>,
    /// Dew point, °F (isobar computes its own).
    dewptf: Option<f64>,
    /// Sea-level pressure, inHg.
    baromin: Option<f64>,
    /// Station pressure, inHg.
    absbaromin: Option<f64>,
    /// Wind speed, mph.
    windspeedmph: Option<f64>,
    /// Wind gust, mph.
    windgustmph: Option<f64>,
    /// Wind direction, degrees.
    winddir: Option<f64>,
}

/// The Weather Underground upload protocol: `ID`, `PASSWORD` (never stored),
/// `dateutc` and the measurements in imperial units, in the query.
#[utoipa::path(get, path = "/weatherstation/updateweatherstation.php", tag = "ingest",
    security((), ("api_key" = []), ("bearer" = [])),
    params(WundergroundQuery),
    responses((status = 200, content_type = "text/plain", body = String, description = "`success` (stored, or on a bridge handed to the cluster's readings topic)"),
        (status = 400, body = super::ErrorBody),
        (status = 401, description = "no credential, or one not known", body = super::ErrorBody),
        (status = 403, description = "a credential that may not ingest", body = super::ErrorBody),
        (status = 413, body = super::ErrorBody),
        (status = 500, body = super::ErrorBody),
        (status = 503, body = super::ErrorBody)))]
#[allow(dead_code)]
fn ingest_wunderground() {}

/// The longest Weather Underground query taken: a real upload is well
/// under 1 KiB. (A request target over 65,534 bytes never reaches a
/// route: the HTTP library answers an empty 414.)
const MAX_QUERY_BYTES: usize = 8 * 1024;

/// How long an upload waits to hear that it is stored.
const STORE_TIMEOUT: Duration = Duration::from_secs(10);

pub fn routes(
    ctx: Arc<WebContext>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    use super::auth::{Access, Also, require};
    // Weather Underground stations can only send their password.
    let wunderground = warp::path!("weatherstation" / "updateweatherstation.php")
        .and(warp::get())
        .and(require(
            ctx.guard.auth.clone(),
            Access::Ingest,
            Also::QueryKey("PASSWORD"),
        ))
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(with(ctx.clone()))
        .and_then(wunderground);
    let body =
        || warp::body::content_length_limit(MAX_PAYLOAD_BYTES as u64).and(warp::body::bytes());
    let ecowitt = warp::path!("api" / "v1" / "ingest" / "ecowitt" / String)
        .and(warp::post())
        .and(require(
            ctx.guard.auth.clone(),
            Access::Ingest,
            Also::QueryKey("api_key"),
        ))
        .and(body())
        .and(with(ctx.clone()))
        .and_then(|station: String, body: Bytes, ctx| {
            // The passkey must not be stored, not even in quarantine.
            let body = Bytes::from(secrets::redact_form(&String::from_utf8_lossy(&body)));
            ingest(station, body, Format::Ecowitt, ctx)
        });
    let json = warp::path!("api" / "v1" / "ingest" / String)
        .and(warp::post())
        .and(require(
            ctx.guard.auth.clone(),
            Access::Ingest,
            Also::QueryKey("api_key"),
        ))
        .and(body())
        .and(with(ctx))
        .and_then(|station: String, body: Bytes, ctx| ingest(station, body, Format::Json, ctx));
    wunderground.or(ecowitt).or(json)
}

async fn wunderground(
    query: String,
    ctx: Arc<WebContext>,
) -> Result<warp::reply::Response, Rejection> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(warp::reject::custom(ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "payload_too_large",
            message: format!(
                "the query is {} bytes; the limit is {MAX_QUERY_BYTES}",
                query.len()
            ),
        }));
    }
    // The password must not be stored, not even in quarantine.
    let redacted = secrets::redact_form(&query);
    let id = form_urlencoded::parse(redacted.as_bytes())
        .find(|(k, _)| k == "ID")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let reply = ingest(id, Bytes::from(redacted), Format::Wunderground, ctx).await?;
    // Weather Underground clients look for this body.
    if reply.status().is_success() {
        return Ok(warp::reply::with_status("success\n", StatusCode::OK).into_response());
    }
    Ok(reply)
}

async fn ingest(
    raw_station: String,
    payload: Bytes,
    format: Format,
    ctx: Arc<WebContext>,
) -> Result<warp::reply::Response, Rejection> {
    if ctx.system.health.no_intake() {
        return Err(warp::reject::custom(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "no_ingest",
            message: "this instance serves the API only (cluster.role = \"api\"): \
                      send uploads to a bridge"
                .into(),
        }));
    }
    let Ok(_slot) = ctx.guard.upload_slots.clone().try_acquire_owned() else {
        return Err(warp::reject::custom(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "busy",
            message: "too many uploads in progress; try again shortly".into(),
        }));
    };
    let source = format!("http:{}", format.name());
    let (tx, rx) = oneshot::channel();
    let station = StationId::parse(&raw_station).map_err(|e| RejectReason::InvalidStationId {
        value: raw_station.clone(),
        reason: e.to_string(),
    });
    ctx.pipeline.submit(Arrival {
        station,
        source,
        payload,
        format,
        ack: Ack::new(tx),
        received_at: None,
    });
    let verdict = match tokio::time::timeout(STORE_TIMEOUT, rx).await {
        Ok(Ok(verdict)) => verdict,
        _ => {
            return Err(warp::reject::custom(ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "not_stored_yet",
                message: "the upload was not stored in time; sending it again is safe".into(),
            }));
        }
    };
    let reply = match verdict {
        Verdict::Stored { readings, rejected } => warp::reply::with_status(
            warp::reply::json(&Stored {
                stored: readings,
                quarantined: rejected,
            }),
            StatusCode::OK,
        )
        .into_response(),
        // A bridge: in the readings topic, where a worker stores it.
        Verdict::Forwarded => warp::reply::with_status(
            warp::reply::json(&Forwarded { forwarded: true }),
            StatusCode::ACCEPTED,
        )
        .into_response(),
        Verdict::Rejected { code, message } => {
            // Failing to process an upload is a bug of ours, not the client's.
            let status = match code {
                "processing_panicked" | "processing_failed" => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            };
            ApiError {
                status,
                code,
                message,
            }
            .into_response()
        }
    };
    Ok(reply)
}
