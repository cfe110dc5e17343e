//! `GET /api/v1/stations/{id}/qc`: how a station's readings fared in
//! quality control over a window, check by check, and what its quality
//! control has learned of how it reports (cadence and resolutions).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use warp::{Filter, Rejection, Reply};

use super::api::{known_station, only, parse_times, station_id, timed};
use super::{ApiError, ErrorBody, WebContext};
use crate::domain::StationId;
use crate::domain::qc::{CheckCount, Learned, QcTally};
use crate::storage::HistoryQuery;

/// Readings read from the store per query, and at most in all: a window
/// holding more is counted from its start up to this many.
const PAGE: usize = 5_000;
const MAX_READINGS: usize = 100_000;

/// A station's quality control over a window.
#[derive(Serialize, ToSchema)]
pub struct QcSummary {
    pub station_id: StationId,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Readings observed in `[from, to)` that were counted.
    pub readings: usize,
    /// Of those, readings whose worst flag is suspect, and fail.
    pub suspect: usize,
    pub fail: usize,
    /// Readings marked late.
    pub late: usize,
    /// The window held more readings than are counted (100,000): the
    /// counts are of its first ones.
    pub truncated: bool,
    /// Per variable and check, how many readings it flagged and their
    /// share of `readings`; most often first.
    pub checks: Vec<CheckCount>,
    /// The station's cadence and resolutions as its quality control has
    /// learned them; absent when it has no running or sleeping actor (not
    /// heard from since the daemon started, or waiting to restart).
    pub learned: Option<Learned>,
}

pub fn route(
    ctx: Arc<WebContext>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("stations" / String / "qc")
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::any().map(move || ctx.clone()))
        .and_then(qc_summary)
}

/// How the station's readings fared in quality control over `[from, to)`:
/// by default the 24 hours up to its newest reading.
#[utoipa::path(get, path = "/api/v1/stations/{id}/qc", tag = "stations",
    params(("id" = String, Path, description = "Station id"),
        ("from" = Option<String>, Query, description = "RFC 3339; default a day before `to`"),
        ("to" = Option<String>, Query, description = "RFC 3339; default just after the station's newest reading")),
    responses((status = 200, body = QcSummary), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(super) async fn qc_summary(
    raw_id: String,
    params: HashMap<String, String>,
    ctx: Arc<WebContext>,
) -> Result<impl Reply, Rejection> {
    let id = station_id(&raw_id)?;
    only(&params, &["from", "to"]).map_err(warp::reject::custom)?;
    known_station(&ctx, &id).await?;
    let newest = timed("latest", ctx.data.store.latest(&id))
        .await
        .map_err(|e| warp::reject::custom(ApiError::internal(e)))?
        .map_or_else(Utc::now, |r| r.observed_at);
    let (from, to) = parse_times(&params, newest).map_err(warp::reject::custom)?;
    let mut tally = QcTally::default();
    let mut query = HistoryQuery {
        station_id: id.clone(),
        from,
        to,
        limit: PAGE,
    };
    let truncated = loop {
        let page = timed("readings", ctx.data.store.readings(query.clone()))
            .await
            .map_err(|e| warp::reject::custom(ApiError::internal(e)))?;
        for r in &page {
            tally.add(&r.qc);
        }
        match query.next_page(&page) {
            Some(_) if tally.readings >= MAX_READINGS => break true,
            Some(next) => query = next,
            None => break false,
        }
    };
    Ok(warp::reply::json(&QcSummary {
        station_id: id.clone(),
        from,
        to,
        readings: tally.readings,
        suspect: tally.suspect,
        fail: tally.fail,
        late: tally.late,
        truncated,
        checks: tally.checks(),
        learned: learned(&ctx, &id).await,
    }))
}

/// What the station's actor (or its sleeping memory) has learned.
async fn learned(ctx: &WebContext, id: &StationId) -> Option<Learned> {
    use crate::actors::stations::StationsMsg;
    let stations = ctx.pipeline.stations.get()?;
    let ask = |reply| StationsMsg::Learned(id.clone(), reply);
    match stations
        .call(ask, Some(std::time::Duration::from_secs(5)))
        .await
    {
        Ok(ractor::rpc::CallResult::Success(learned)) => learned,
        _ => None,
    }
}
