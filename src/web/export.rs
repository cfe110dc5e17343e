//! `GET /api/v1/stations/{id}/readings.csv`: a station's history as CSV,
//! streamed page by page from the store so that a month of one-second
//! readings never sits in memory at once.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use tokio::sync::mpsc;
use warp::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use warp::{Rejection, Reply};

use super::api::{known_station, only, parse_times, station_id};
use super::{ApiError, WebContext};
use crate::domain::{Reading, StationId};
use crate::storage::HistoryQuery;

/// The longest range one export may cover.
pub const MAX_EXPORT_RANGE: TimeDelta = TimeDelta::days(31);
/// Readings read from the store at a time.
const PAGE: usize = 5_000;

/// The columns, in order: the reading's fields (units in the names), then
/// its QC status and the variables that did not pass.
pub const COLUMNS: [&str; 19] = [
    "station_id",
    "observed_at",
    "received_at",
    "latitude",
    "longitude",
    "elevation_m",
    "temperature_c",
    "humidity_pct",
    "pressure_hpa",
    "sea_level_pressure_hpa",
    "wind_speed_ms",
    "wind_gust_ms",
    "wind_direction_deg",
    "dew_point_c",
    "heat_index_c",
    "wind_chill_c",
    "feels_like_c",
    "qc_status",
    "qc_flags",
];

#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ExportQuery {
    /// Start, inclusive (RFC 3339); default 24 hours before `to`.
    from: Option<DateTime<Utc>>,
    /// End, exclusive (RFC 3339); default now. At most 31 days after `from`.
    to: Option<DateTime<Utc>>,
}

/// A station's readings in `[from, to)` as CSV, oldest first, one row per
/// reading: the columns of a reading, `qc_status`, and `qc_flags` (the
/// variables that did not pass, as `variable=flag` joined by `;`). Empty
/// cells are values the station did not send or that are undefined.
#[utoipa::path(get, path = "/api/v1/stations/{id}/readings.csv", tag = "history",
    params(("id" = String, Path, description = "1 to 64 characters from `A-Z a-z 0-9 _ -`."), ExportQuery),
    responses((status = 200, description = "the readings, with a header row", content_type = "text/csv",
            body = String),
        (status = 400, description = "a bad parameter, or a range over 31 days", body = super::ErrorBody),
        (status = 404, description = "no such station", body = super::ErrorBody),
        (status = 500, body = super::ErrorBody)))]
pub async fn readings_csv(
    raw_id: String,
    params: HashMap<String, String>,
    ctx: Arc<WebContext>,
) -> Result<impl Reply, Rejection> {
    let reject = |e: ApiError| warp::reject::custom(e);
    let id = station_id(&raw_id)?;
    // A browser's download link carries its read ticket.
    only(&params, &["from", "to", "ticket"]).map_err(reject)?;
    let (from, to) = parse_times(&params, Utc::now()).map_err(reject)?;
    if to - from > MAX_EXPORT_RANGE {
        return Err(reject(ApiError::bad_request(format!(
            "from and to are {} days apart; an export covers at most {} days",
            (to - from).num_days(),
            MAX_EXPORT_RANGE.num_days()
        ))));
    }
    known_station(&ctx, &id).await?;
    // The first page is read before answering, so that a failing store is
    // a 500 rather than a cut-off file.
    let first = super::api::timed("export", ctx.data.store.readings(query(&id, from, to)))
        .await
        .map_err(|e| reject(ApiError::internal(e)))?;
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let store = ctx.data.store.clone();
    let station = id.clone();
    tokio::spawn(async move {
        let mut chunk = header();
        let mut query = query(&station, from, to);
        let mut rows = first;
        loop {
            let next = query.next_page(&rows);
            for r in &rows {
                row(&mut chunk, r);
            }
            if tx
                .send(Ok(Bytes::from(std::mem::take(&mut chunk))))
                .await
                .is_err()
            {
                return; // the client went away
            }
            let Some(next) = next else {
                return;
            };
            query = next;
            let page = store.readings(query.clone());
            rows = match super::api::timed("export", page).await {
                Ok(rows) => rows,
                Err(e) => {
                    // The status is sent already: cut the body short, so
                    // the client sees a failed download, not a short file.
                    tracing::error!(station = %station, error = %e, "CSV export failed midway");
                    let _ = tx.send(Err(std::io::Error::other("store failed"))).await;
                    return;
                }
            };
        }
    });
    let mut rx = rx;
    let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let filename = format!(
        "{id}_{}_{}.csv",
        from.format("%Y%m%dT%H%M%SZ"),
        to.format("%Y%m%dT%H%M%SZ")
    );
    Ok(warp::reply::with_header(
        warp::reply::with_header(
            warp::reply::stream(body),
            CONTENT_TYPE,
            "text/csv; charset=utf-8",
        ),
        CONTENT_DISPOSITION,
        format!("attachment; filename=\"{filename}\""),
    ))
}

fn query(id: &StationId, from: DateTime<Utc>, to: DateTime<Utc>) -> HistoryQuery {
    HistoryQuery {
        station_id: id.clone(),
        from,
        to,
        limit: PAGE,
    }
}

fn header() -> Vec<u8> {
    let mut out = COLUMNS.join(",").into_bytes();
    out.extend_from_slice(b"\r\n");
    out
}

/// Appends one reading as a CSV row. Station ids, times, numbers and the
/// QC fields never hold a comma, a quote or a line break, so no cell needs
/// quoting.
fn row(out: &mut Vec<u8>, r: &Reading) {
    use std::io::Write;
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    let _ = write!(
        out,
        "{},{},{}",
        r.station_id,
        time(r.observed_at),
        time(r.received_at)
    );
    let d = &r.derived;
    for v in [
        r.latitude,
        r.longitude,
        r.elevation_m,
        r.temperature_c,
        r.humidity_pct,
        r.pressure_hpa,
        d.sea_level_pressure_hpa,
        r.wind_speed_ms,
        r.wind_gust_ms,
        r.wind_direction_deg,
        d.dew_point_c,
        d.heat_index_c,
        d.wind_chill_c,
        d.feels_like_c,
    ] {
        out.push(b',');
        if let Some(v) = v {
            let _ = write!(out, "{v}");
        }
    }
    let _ = write!(out, ",{},", r.qc.status.as_str());
    for (i, (variable, qc)) in r.qc.variables.iter().enumerate() {
        if i > 0 {
            out.push(b';');
        }
        let _ = write!(out, "{}={}", variable.name(), qc.flag.as_str());
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Observation, QcConfig, StationQc};

    #[test]
    fn a_row_has_every_column_and_reads_back_with_a_csv_parser() {
        let mut obs = Observation::new(
            StationId::parse("WS001").unwrap(),
            "2025-01-13T10:00:00.5Z".parse().unwrap(),
        );
        obs.temperature_c = Some(22.5);
        obs.humidity_pct = Some(65.0);
        obs.wind_speed_ms = Some(500.0); // beyond the range check: fails QC
        let received = "2025-01-13T10:00:01Z".parse().unwrap();
        let qc = StationQc::default().check(&obs, received, &QcConfig::default());
        let reading = Reading::new(obs, received, qc);
        let mut out = header();
        row(&mut out, &reading);
        let mut csv = csv::Reader::from_reader(out.as_slice());
        let headers: Vec<String> = csv.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(headers, COLUMNS);
        let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 1);
        let cell =
            |name: &str| rows[0][COLUMNS.iter().position(|c| *c == name).unwrap()].to_string();
        assert_eq!(cell("station_id"), "WS001");
        assert_eq!(cell("observed_at"), "2025-01-13T10:00:00.500Z");
        assert_eq!(cell("temperature_c"), "22.5");
        assert_eq!(cell("pressure_hpa"), "");
        assert!(!cell("dew_point_c").is_empty());
        assert_eq!(cell("qc_status"), "fail");
        assert_eq!(cell("qc_flags"), "wind_speed_ms=fail");
    }
}
