//! REST handlers under `/api/v1`.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use warp::{Filter, Rejection, Reply};

use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ErrorBody, StationView, WebContext, with};
use crate::domain::rollup::NetworkSummary;
use crate::domain::{Resolution, StationId};
use crate::storage::{HistoryQuery, RollupQuery};

/// Readings returned when `limit` is not given, and the most allowed.
pub const DEFAULT_LIMIT: usize = 1_000;
pub const MAX_LIMIT: usize = 10_000;
/// Quarantine records per page.
pub const MAX_QUARANTINE_PAGE: usize = 500;

pub fn routes(
    ctx: Arc<WebContext>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let stations = warp::path!("stations")
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .and(with(ctx.clone()))
        .and_then(list_stations);
    let station = warp::path!("stations" / String)
        .and(warp::get())
        .and(with(ctx.clone()))
        .and_then(station);
    let latest_all = warp::path!("latest")
        .and(warp::get())
        .and(with(ctx.clone()))
        .and_then(latest_all);
    let export = warp::path!("stations" / String / "readings.csv")
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .and(with(ctx.clone()))
        .and_then(super::export::readings_csv);
    let latest = warp::path!("stations" / String / "latest")
        .and(warp::get())
        .and(with(ctx.clone()))
        .and_then(latest);
    let readings = warp::path!("stations" / String / "readings")
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .and(with(ctx.clone()))
        .and_then(readings);
    let rollups = warp::path!("stations" / String / "rollups")
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .and(with(ctx.clone()))
        .and_then(rollups);
    let alerts = warp::path!("alerts")
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .and(with(ctx.clone()))
        .and_then(alerts);
    let summary = warp::path!("summary")
        .and(warp::get())
        .and(with(ctx.clone()))
        .and_then(summary);
    let quarantine = warp::path!("quarantine")
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .and(with(ctx.clone()))
        .and_then(quarantine);
    let supervision = warp::path!("supervision")
        .and(warp::get())
        .and(with(ctx.clone()))
        .and_then(supervision);
    stations
        .or(station)
        .or(latest_all)
        .or(latest)
        .or(readings)
        .or(export)
        .or(rollups)
        .or(summary)
        .or(alerts)
        .or(quarantine)
        .or(supervision)
        .or(super::quality::route(ctx))
}

pub(super) fn station_id(raw: &str) -> Result<StationId, Rejection> {
    StationId::parse(raw)
        .map_err(|e| warp::reject::custom(ApiError::bad_request(format!("station id: {e}"))))
}

/// 404 unless the store knows the station.
pub(super) async fn known_station(ctx: &WebContext, id: &StationId) -> Result<(), Rejection> {
    match ctx.data.store.station(id).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(reject(ApiError::not_found(format!("no station {id}")))),
        Err(e) => Err(reject(ApiError::internal(e))),
    }
}

fn reject(e: ApiError) -> Rejection {
    warp::reject::custom(e)
}

/// A station's newest reading: from the latest-reading cache, else the store.
async fn latest_of(
    ctx: &WebContext,
    id: &StationId,
) -> Result<Option<crate::domain::Reading>, ApiError> {
    match ctx.data.cache.get(id).await {
        Some(r) => Ok(Some(r)),
        None => ctx.data.store.latest(id).await.map_err(ApiError::internal),
    }
}

/// A store query, timed into `isobar_store_query_seconds{query}`.
pub(super) async fn timed<T>(query: &'static str, f: impl std::future::Future<Output = T>) -> T {
    let start = std::time::Instant::now();
    let out = f.await;
    metrics::histogram!("isobar_store_query_seconds", "query" => query)
        .record(start.elapsed().as_secs_f64());
    out
}

/// Stations per page of `GET /api/v1/stations` at most, and by default.
pub const MAX_STATIONS_PAGE: usize = 10_000;
pub const STATIONS_PAGE: usize = 1_000;

/// Which stations of the store to show.
pub enum Pick<'a> {
    /// In station-id order, after this id, at most this many.
    Page {
        after: Option<StationId>,
        limit: usize,
    },
    /// Those heard from last, at most this many (the live snapshot).
    Latest {
        limit: usize,
        only: Option<&'a std::collections::HashSet<StationId>>,
    },
}

/// Stations picked from all the store knows, with their metadata, status
/// and latest reading (from the cache, else the store); and how many there
/// were to pick from.
pub async fn station_views(
    ctx: &WebContext,
    pick: Pick<'_>,
) -> Result<(Vec<StationView>, usize), ApiError> {
    let mut stations = timed("stations", ctx.data.store.stations())
        .await
        .map_err(ApiError::internal)?;
    let mut total = stations.len();
    match pick {
        Pick::Page { after, limit } => {
            stations.sort_by(|a, b| a.station_id.cmp(&b.station_id));
            if let Some(after) = after {
                stations.retain(|s| s.station_id > after);
            }
            stations.truncate(limit);
        }
        Pick::Latest { limit, only } => {
            if let Some(only) = only {
                stations.retain(|s| only.contains(&s.station_id));
                total = stations.len();
            }
            stations.sort_by_key(|s| std::cmp::Reverse(s.last_seen));
            stations.truncate(limit);
        }
    }
    let ids: Vec<StationId> = stations.iter().map(|s| s.station_id.clone()).collect();
    let mut cached: HashMap<StationId, crate::domain::Reading> = ctx
        .data
        .cache
        .many(&ids)
        .await
        .into_iter()
        .map(|r| (r.station_id.clone(), r))
        .collect();
    let mut with_latest = Vec::with_capacity(stations.len());
    for station in stations {
        let latest = match cached.remove(&station.station_id) {
            Some(r) => Some(r),
            None => ctx
                .data
                .store
                .latest(&station.station_id)
                .await
                .map_err(ApiError::internal)?,
        };
        with_latest.push((station, latest));
    }
    let now = Utc::now();
    let meta = ctx
        .system
        .station_meta
        .read()
        .unwrap_or_else(|e| e.into_inner());
    Ok((
        with_latest
            .into_iter()
            .map(|(station, latest)| view(&meta, station, latest, now))
            .collect(),
        total,
    ))
}

/// A station as served: the operator's metadata (`[stations.<id>]`) over
/// what it reported.
fn view(
    meta: &std::collections::BTreeMap<String, crate::config::StationMeta>,
    mut station: crate::storage::Station,
    latest: Option<crate::domain::Reading>,
    now: DateTime<Utc>,
) -> StationView {
    let meta = meta.get(station.station_id.as_str());
    if let Some(m) = meta {
        if let (Some(lat), Some(lon)) = (m.latitude, m.longitude) {
            station.latitude = Some(lat);
            station.longitude = Some(lon);
        }
        if m.elevation_m.is_some() {
            station.elevation_m = m.elevation_m;
        }
    }
    StationView {
        name: meta.and_then(|m| m.name.clone()),
        status: super::StationStatus::of(station.last_seen, now),
        station,
        latest,
    }
}

/// A page of stations, in station-id order.
#[derive(Serialize, ToSchema)]
pub struct StationList {
    pub stations: Vec<StationView>,
    /// Pass as `after` for the next page; null on the last.
    pub next_after: Option<StationId>,
    /// Stations the store knows, on every page.
    pub total: usize,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct StationsQuery {
    /// At most this many, from 1 to 10,000; default 1,000.
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
    /// Only stations whose id sorts after this one: the previous page's
    /// `next_after`.
    after: Option<String>,
}

/// The path parameter of the per-station routes.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct StationPath {
    /// 1 to 64 characters from `A-Z a-z 0-9 _ -`.
    id: crate::domain::StationId,
}

/// The stations with their position, first and last seen, and latest
/// reading (from the cache), a page at a time in station-id order.
#[utoipa::path(get, path = "/api/v1/stations", tag = "stations", params(StationsQuery),
    responses((status = 200, body = StationList),
        (status = 400, description = "a bad parameter", body = ErrorBody),
        (status = 500, body = ErrorBody)))]
async fn list_stations(
    params: HashMap<String, String>,
    ctx: Arc<WebContext>,
) -> Result<impl Reply, Rejection> {
    only(&params, &["limit", "after"]).map_err(reject)?;
    let limit = limit(&params, STATIONS_PAGE, MAX_STATIONS_PAGE).map_err(reject)?;
    let after = match params.get("after") {
        None => None,
        Some(raw) => Some(StationId::parse(raw).map_err(|e| {
            reject(ApiError::bad_request(format!(
                "after must be a station id: {e}"
            )))
        })?),
    };
    let (stations, total) = station_views(&ctx, Pick::Page { after, limit })
        .await
        .map_err(reject)?;
    let next_after = if stations.len() == limit {
        stations.last().map(|s| s.station.station_id.clone())
    } else {
        None
    };
    Ok(warp::reply::json(&StationList {
        stations,
        next_after,
        total,
    }))
}

/// One station: position, name, status, first and last seen, and its
/// latest reading.
#[utoipa::path(get, path = "/api/v1/stations/{id}", tag = "stations", params(StationPath),
    responses((status = 200, body = StationView),
        (status = 400, description = "not a station id", body = ErrorBody),
        (status = 404, description = "no such station", body = ErrorBody),
        (status = 500, body = ErrorBody)))]
async fn station(raw_id: String, ctx: Arc<WebContext>) -> Result<impl Reply, Rejection> {
    let id = station_id(&raw_id)?;
    let Some(station) = ctx
        .data
        .store
        .station(&id)
        .await
        .map_err(|e| reject(ApiError::internal(e)))?
    else {
        return Err(reject(ApiError::not_found(format!("no station {id}"))));
    };
    let latest = latest_of(&ctx, &id).await.map_err(reject)?;
    let meta = ctx
        .system
        .station_meta
        .read()
        .unwrap_or_else(|e| e.into_inner());
    Ok(warp::reply::json(&view(&meta, station, latest, Utc::now())))
}

#[derive(Serialize, ToSchema)]
pub struct LatestReadings {
    /// One per station, sorted by station id.
    pub readings: Vec<crate::domain::Reading>,
}

/// The latest reading of every station, from the latest-reading cache
/// (no store query): what a wall display polls.
#[utoipa::path(get, path = "/api/v1/latest", tag = "stations",
    responses((status = 200, body = LatestReadings)))]
async fn latest_all(ctx: Arc<WebContext>) -> Result<impl Reply, Rejection> {
    // Read before the cache, so that a change made meanwhile makes the
    // next request build the answer again.
    let version = ctx.data.cache.version();
    let held = ctx
        .data
        .latest_body
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let body = match (version, held) {
        (Some(v), Some((held_version, body))) if held_version == v => body,
        _ => {
            let mut readings = ctx.data.cache.all().await;
            readings.sort_unstable_by(|a, b| a.station_id.cmp(&b.station_id));
            let body = bytes::Bytes::from(
                serde_json::to_vec(&LatestReadings { readings })
                    .map_err(|e| reject(ApiError::internal(e)))?,
            );
            if let Some(v) = version {
                *ctx.data
                    .latest_body
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some((v, body.clone()));
            }
            body
        }
    };
    Ok(warp::reply::with_header(
        warp::http::Response::new(body),
        warp::http::header::CONTENT_TYPE,
        "application/json",
    ))
}

/// The station's newest reading.
#[utoipa::path(get, path = "/api/v1/stations/{id}/latest", tag = "stations", params(StationPath),
    responses((status = 200, body = crate::domain::Reading),
        (status = 400, description = "not a station id", body = ErrorBody),
        (status = 404, description = "no reading from this station", body = ErrorBody),
        (status = 500, body = ErrorBody)))]
async fn latest(raw_id: String, ctx: Arc<WebContext>) -> Result<impl Reply, Rejection> {
    let id = station_id(&raw_id)?;
    match latest_of(&ctx, &id).await.map_err(reject)? {
        Some(r) => Ok(warp::reply::json(&r)),
        None => Err(reject(ApiError::not_found(format!(
            "station {id} has no readings"
        )))),
    }
}

/// Parsed query of the history endpoint.
#[derive(Debug, PartialEq)]
pub(super) struct HistoryParams {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub limit: usize,
}

fn parse_history(
    params: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> Result<HistoryParams, ApiError> {
    parse_range(params, now, &["from", "to", "limit", "cursor"])
}

/// 400 for a parameter the route does not take.
pub(super) fn only(params: &HashMap<String, String>, allowed: &[&str]) -> Result<(), ApiError> {
    match params.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => Err(ApiError::bad_request(format!(
            "unknown parameter {unknown:?}; expected {}",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

/// `limit`: `default` when absent, 1 to `max` when given.
fn limit(params: &HashMap<String, String>, default: usize, max: usize) -> Result<usize, ApiError> {
    match params.get("limit") {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(format!(
                "limit: {v:?} is not a whole number from 1 to {max}"
            ))),
        },
    }
}

/// `from`, `to` and `limit`, or `cursor` and `limit`, with `allowed` the
/// parameters the route takes.
pub(super) fn parse_range(
    params: &HashMap<String, String>,
    now: DateTime<Utc>,
    allowed: &[&str],
) -> Result<HistoryParams, ApiError> {
    only(params, allowed)?;
    let limit = limit(params, DEFAULT_LIMIT, MAX_LIMIT)?;
    if let Some(raw) = params.get("cursor") {
        if params.contains_key("from") || params.contains_key("to") {
            return Err(ApiError::bad_request(
                "cursor: it carries its own range; send it without from and to",
            ));
        }
        let cursor = Cursor::decode(raw)?;
        return Ok(HistoryParams {
            from: cursor.after + TimeDelta::microseconds(1),
            to: cursor.to,
            limit,
        });
    }
    let (from, to) = parse_times(params, now)?;
    Ok(HistoryParams { from, to, limit })
}

/// `from` and `to`: `to` defaults to now (plus a second, so that what was
/// just stored is in), `from` to a day before `to`.
pub(super) fn parse_times(
    params: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let time = |name: &str| -> Result<Option<DateTime<Utc>>, ApiError> {
        params
            .get(name)
            .map(|v| {
                DateTime::parse_from_rfc3339(v)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| {
                        ApiError::bad_request(format!(
                            "{name}: {v:?} is not an RFC 3339 date-time (2025-01-13T10:00:00Z)"
                        ))
                    })
            })
            .transpose()
    };
    let to = time("to")?.unwrap_or(now + TimeDelta::seconds(1));
    let from = time("from")?.unwrap_or(to - TimeDelta::hours(24));
    if from >= to {
        return Err(ApiError::bad_request(format!(
            "from ({from}) must be before to ({to})"
        )));
    }
    Ok((from, to))
}

/// Where the next page of a time-ordered listing starts: just after
/// `after`, up to the original `to`. Clients pass it back as it came; its
/// form is not part of the API.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Cursor {
    pub after: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Cursor {
    pub fn encode(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            "v1:{}:{}",
            self.after.timestamp_micros(),
            self.to.timestamp_micros()
        ))
    }

    pub fn decode(raw: &str) -> Result<Self, ApiError> {
        use base64::Engine;
        let bad = || {
            ApiError::bad_request(
                "cursor: not a cursor this API gave (pass next_cursor as it came)",
            )
        };
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(bad)?;
        let mut parts = text.split(':');
        let (Some("v1"), Some(after), Some(to), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let time = |v: &str| {
            v.parse::<i64>()
                .ok()
                .and_then(DateTime::<Utc>::from_timestamp_micros)
                .ok_or_else(bad)
        };
        let (after, to) = (time(after)?, time(to)?);
        if after >= to {
            return Err(bad());
        }
        Ok(Self { after, to })
    }
}

/// Keeps the first `limit` of `rows` (the store was asked for one more)
/// and gives the cursor of the next page when there is one. A page with
/// rows shows the station exists; only an empty one needs asking (404 for
/// an unknown station).
async fn page<T>(
    ctx: &WebContext,
    id: &StationId,
    mut rows: Vec<T>,
    limit: usize,
    to: DateTime<Utc>,
    at: impl Fn(&T) -> DateTime<Utc>,
) -> Result<(Vec<T>, Option<String>), Rejection> {
    if rows.is_empty() {
        known_station(ctx, id).await?;
    }
    if rows.len() <= limit {
        return Ok((rows, None));
    }
    rows.truncate(limit);
    let next = rows.last().map(|last| {
        Cursor {
            after: at(last),
            to,
        }
        .encode()
    });
    Ok((rows, next))
}

/// `from` and `to` of the history routes.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct RangeQuery {
    /// Start, inclusive (RFC 3339); default 24 hours before `to`.
    from: Option<DateTime<Utc>>,
    /// End, exclusive (RFC 3339); default now.
    to: Option<DateTime<Utc>>,
    /// At most this many, from 1 to 10000; default 1000.
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
    /// The previous page's `next_cursor`, instead of `from` and `to`.
    cursor: Option<String>,
}

/// A page of a station's readings, oldest first.
#[derive(Serialize, ToSchema)]
pub struct ReadingPage {
    pub station_id: StationId,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub readings: Vec<crate::domain::Reading>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// A station's readings in `[from, to)`, oldest first.
#[utoipa::path(get, path = "/api/v1/stations/{id}/readings", tag = "history",
    params(StationPath, RangeQuery),
    responses((status = 200, body = ReadingPage),
        (status = 400, description = "a bad parameter, named in the message", body = ErrorBody),
        (status = 404, description = "no such station", body = ErrorBody),
        (status = 500, body = ErrorBody)))]
async fn readings(
    raw_id: String,
    params: HashMap<String, String>,
    ctx: Arc<WebContext>,
) -> Result<impl Reply, Rejection> {
    let id = station_id(&raw_id)?;
    let p = parse_history(&params, Utc::now()).map_err(reject)?;
    let rows = timed(
        "readings",
        ctx.data.store.readings(HistoryQuery {
            station_id: id.clone(),
            from: p.from,
            to: p.to,
            limit: p.limit + 1,
        }),
    )
    .await
    .map_err(|e| reject(ApiError::internal(e)))?;
    let (readings, next_cursor) = page(&ctx, &id, rows, p.limit, p.to, |r| r.observed_at).await?;
    Ok(warp::reply::json(&ReadingPage {
        station_id: id,
        from: p.from,
        to: p.to,
        readings,
        next_cursor,
    }))
}

/// Alerts per page, by default and at most.
const DEFAULT_ALERTS: usize = 100;
const MAX_ALERTS: usize = 1_000;

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct AlertQuery {
    /// Only firing or only resolved alerts; default both.
    state: Option<AlertState>,
    /// At most this many, from 1 to 1000; default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub(crate) enum AlertState {
    Firing,
    Resolved,
}

#[derive(Serialize, ToSchema)]
pub struct AlertList {
    pub alerts: Vec<crate::storage::AlertRecord>,
}

/// Alerts, newest first.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", params(AlertQuery),
    responses((status = 200, body = AlertList),
        (status = 400, description = "a bad parameter", body = ErrorBody),
        (status = 500, body = ErrorBody)))]
async fn alerts(
    params: HashMap<String, String>,
    ctx: Arc<WebContext>,
) -> Result<impl Reply, Rejection> {
    only(&params, &["state", "limit"]).map_err(reject)?;
    let firing = match params.get("state").map(String::as_str) {
        None => None,
        Some("firing") => Some(true),
        Some("resolved") => Some(false),
        Some(other) => {
            return Err(reject(ApiError::bad_request(format!(
                "state: {other:?} is not firing or resolved"
            ))));
        }
    };
    let limit = limit(&params, DEFAULT_ALERTS, MAX_ALERTS).map_err(reject)?;
    let alerts = ctx
        .data
        .store
        .alerts(firing, limit)
        .await
        .map_err(|e| reject(ApiError::internal(e)))?;
    Ok(warp::reply::json(&AlertList { alerts }))
}

/// The network at a glance: stations reporting or silent, QC of their
/// latest readings, and the spread of their latest values.
#[utoipa::path(get, path = "/api/v1/summary", tag = "stations",
    responses((status = 200, body = NetworkSummary), (status = 500, body = ErrorBody)))]
async fn summary(ctx: Arc<WebContext>) -> Result<impl Reply, Rejection> {
    let stations = ctx
        .data
        .store
        .stations()
        .await
        .map_err(|e| reject(ApiError::internal(e)))?;
    let last_seen: Vec<DateTime<Utc>> = stations.iter().map(|s| s.last_seen).collect();
    let latest = ctx.data.cache.all().await;
    Ok(warp::reply::json(&NetworkSummary::of(
        &last_seen,
        &latest,
        Utc::now(),
        super::StationStatus::WINDOW,
    )))
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ResolutionQuery {
    /// One minute or one hour; default `1m`.
    resolution: Option<Resolution>,
}

/// A station's rollups, oldest period first.
#[derive(Serialize, ToSchema)]
pub struct RollupPage {
    pub station_id: StationId,
    pub resolution: Resolution,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub rollups: Vec<crate::domain::Rollup>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// A station's 1-minute or 1-hour rollups over a range: count, min, max,
/// mean and last of each variable, from values that passed QC.
#[utoipa::path(get, path = "/api/v1/stations/{id}/rollups", tag = "history",
    params(StationPath, ResolutionQuery, RangeQuery),
    responses((status = 200, body = RollupPage),
        (status = 400, description = "a bad parameter, named in the message", body = ErrorBody),
        (status = 404, description = "no such station", body = ErrorBody),
        (status = 500, body = ErrorBody)))]
async fn rollups(
    raw_id: String,
    params: HashMap<String, String>,
    ctx: Arc<WebContext>,
) -> Result<impl Reply, Rejection> {
    let id = station_id(&raw_id)?;
    let p = parse_range(
        &params,
        Utc::now(),
        &["resolution", "from", "to", "limit", "cursor"],
    )
    .map_err(reject)?;
    let resolution = match params.get("resolution").map(String::as_str) {
        None => Resolution::Minute,
        Some(raw) => Resolution::parse(raw).ok_or_else(|| {
            reject(ApiError::bad_request(format!(
                "resolution: {raw:?} is not 1m or 1h"
            )))
        })?,
    };
    let rows = timed(
        "rollups",
        ctx.data.store.rollups(RollupQuery {
            station_id: id.clone(),
            resolution,
            from: p.from,
            to: p.to,
            limit: p.limit + 1,
        }),
    )
    .await
    .map_err(|e| reject(ApiError::internal(e)))?;
    let (rollups, next_cursor) = page(&ctx, &id, rows, p.limit, p.to, |r| r.bucket).await?;
    Ok(warp::reply::json(&RollupPage {
        station_id: id,
        resolution,
        from: p.from,
        to: p.to,
        rollups,
        next_cursor,
    }))
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct QuarantineQuery {
    /// At most this many, from 1 to 500; default 100.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// Only records older than this id: the previous page's `next_before`.
    before: Option<i64>,
}

/// A page of rejected messages, newest first.
#[derive(Serialize, ToSchema)]
pub struct QuarantinePage {
    pub items: Vec<crate::storage::StoredQuarantine>,
    /// Pass as `before` for the next page; null on the last.
    pub next_before: Option<i64>,
}

/// Messages rejected as readings, newest first, with the reason and the
/// raw payload.
#[utoipa::path(get, path = "/api/v1/quarantine", tag = "quarantine", params(QuarantineQuery),
    responses((status = 200, body = QuarantinePage),
        (status = 400, description = "a bad parameter", body = ErrorBody),
        (status = 500, body = ErrorBody)))]
async fn quarantine(
    params: HashMap<String, String>,
    ctx: Arc<WebContext>,
) -> Result<impl Reply, Rejection> {
    only(&params, &["limit", "before"]).map_err(reject)?;
    let limit = limit(&params, 100, MAX_QUARANTINE_PAGE).map_err(reject)?;
    let before = match params.get("before").map(|v| v.parse::<i64>()) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            return Err(reject(ApiError::bad_request(
                "before must be a quarantine record id",
            )));
        }
    };
    let items = ctx
        .data
        .store
        .quarantine(limit, before)
        .await
        .map_err(|e| reject(ApiError::internal(e)))?;
    let next_before = if items.len() == limit {
        items.last().map(|q| q.id)
    } else {
        None
    };
    Ok(warp::reply::json(&QuarantinePage { items, next_before }))
}

/// A static supervisor's children and its policy.
#[derive(Serialize, ToSchema)]
pub struct SupervisedGroup {
    pub policy: crate::config::PolicySettings,
    pub children: Vec<crate::supervisor::tree::ChildRecord>,
}

/// A station actor under the stations supervisor.
#[derive(Serialize, ToSchema)]
pub struct SupervisedStation {
    #[serde(flatten)]
    pub status: crate::actors::stations::ChildStatus,
    /// Always `stations`.
    pub group: &'static str,
    /// `running`, `hibernating` or `restarting`.
    pub state: crate::supervisor::tree::ChildState,
}

#[derive(Serialize, ToSchema)]
pub struct StationsGroup {
    /// Always `one_for_one`: stations are independent.
    pub strategy: crate::supervisor::Strategy,
    pub policy: crate::config::PolicySettings,
    /// Per station, the keys that replace the stations policy's.
    pub overrides: std::collections::BTreeMap<String, crate::config::PolicyOverride>,
    pub children: Vec<SupervisedStation>,
}

/// The supervision tree, group by group.
#[derive(Serialize, ToSchema)]
pub struct SupervisionTree {
    /// The pipeline, the stations supervisor, ingest and the web server
    /// (and, on a combined cluster instance, the `reader` of the readings
    /// topic).
    pub root: SupervisedGroup,
    /// Archiver, aggregator, alerter, persister and hub.
    pub pipeline: SupervisedGroup,
    pub stations: StationsGroup,
    /// For a member of a cluster (`cluster.role`): this instance, the
    /// partitions it owns and the live members; null for a single
    /// instance.
    pub cluster: Option<crate::cluster::ClusterState>,
}

/// Every supervised actor, group by group as the tree nests them, with
/// its state, restarts, last failure and the policy in force.
#[utoipa::path(get, path = "/api/v1/supervision", tag = "supervision",
    responses((status = 200, body = SupervisionTree)))]
async fn supervision(ctx: Arc<WebContext>) -> Result<impl Reply, Rejection> {
    use crate::actors::stations::StationsMsg;
    let timeout = Some(std::time::Duration::from_secs(5));
    // While the station supervisor restarts, its children are unknown; the
    // root's record says it is restarting.
    let stations = match ctx.pipeline.stations.get() {
        Some(stations) => match stations.call(StationsMsg::Status, timeout).await {
            Ok(ractor::rpc::CallResult::Success(children)) => children,
            _ => Vec::new(),
        },
        None => Vec::new(),
    };
    let policies = ctx
        .system
        .supervision
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let children = stations
        .into_iter()
        .map(|status| SupervisedStation {
            group: "stations",
            state: if status.running {
                crate::supervisor::tree::ChildState::Running
            } else if status.hibernating {
                crate::supervisor::tree::ChildState::Hibernating
            } else {
                crate::supervisor::tree::ChildState::Restarting
            },
            status,
        })
        .collect();
    Ok(warp::reply::json(&SupervisionTree {
        root: SupervisedGroup {
            policy: policies.root,
            children: ctx.system.tree.root.children(),
        },
        pipeline: SupervisedGroup {
            policy: policies.pipeline,
            children: ctx.system.tree.pipeline.children(),
        },
        stations: StationsGroup {
            strategy: crate::supervisor::Strategy::OneForOne,
            policy: policies.stations,
            overrides: policies.station_overrides,
            children,
        },
        cluster: ctx.pipeline.cluster.get().map(|c| c.snapshot()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn now() -> DateTime<Utc> {
        "2025-01-13T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn defaults_to_the_last_day() {
        let p = parse_history(&q(&[]), now()).unwrap();
        assert_eq!(p.limit, DEFAULT_LIMIT);
        assert_eq!(p.to - p.from, TimeDelta::hours(24));
    }

    #[test]
    fn bad_parameters_say_which_and_why() {
        let msg = |pairs: &[(&str, &str)]| parse_history(&q(pairs), now()).unwrap_err().message;
        assert!(msg(&[("from", "yesterday")]).starts_with("from:"));
        assert!(msg(&[("limit", "0")]).starts_with("limit:"));
        assert!(msg(&[("limit", "10001")]).starts_with("limit:"));
        assert!(msg(&[("form", "x")]).contains("unknown parameter \"form\""));
        assert!(
            msg(&[
                ("from", "2025-01-13T11:00:00Z"),
                ("to", "2025-01-13T10:00:00Z")
            ])
            .contains("must be before")
        );
    }
}
