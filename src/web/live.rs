//! `/api/v1/live`: the websocket, protocol version 1 (`isobar.v1`). A
//! client gets a snapshot of every station on connect, then each new
//! reading, rollup, alert, restart and station status change, optionally
//! only for the stations it names (`?stations=WS001,WS002`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use warp::ws::{Message, WebSocket};
use warp::{Filter, Rejection, Reply};

use super::{ApiError, WebContext, api, with};
use crate::actors::hub::{HubMsg, LiveClient, LiveMessage, RollupLane};
use crate::domain::StationId;

/// Largest message accepted from a client; clients only send pings.
const MAX_CLIENT_MESSAGE: usize = 4 * 1024;

/// A client that accepts nothing for this long is disconnected (a
/// half-open connection would otherwise hold its task forever).
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Rollup messages sent in one turn of a client's loop.
const ROLLUPS_PER_TURN: usize = 32;

async fn send(sink: &mut SplitSink<WebSocket, Message>, text: &str) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::text(text))).await,
        Ok(Ok(()))
    )
}

/// The websocket subprotocol of this version of the live protocol.
pub const SUBPROTOCOL: &str = "isobar.v1";

/// The websocket, protocol version 1: a `snapshot` on connect, then
/// `reading`, `rollup`, `alert`, `station_status`, `supervision` and
/// `overflow` messages as JSON text frames (see docs/api.md).
#[utoipa::path(get, path = "/api/v1/live", tag = "live",
    params(("stations" = Option<String>, Query,
        description = "only these stations, comma-separated"),
        ("ticket" = Option<String>, Query,
        description = "a ticket from `POST /api/v1/live/ticket`, instead of a credential header (browsers)"),
        ("Sec-WebSocket-Protocol" = Option<String>, Header,
        description = "`isobar.v1`, or absent for version 1")),
    responses((status = 101, description = "switching to the websocket protocol"),
        (status = 400, description = "not a websocket upgrade, a bad parameter, or no protocol version the server speaks", body = super::ErrorBody),
        (status = 401, description = "reads are protected and neither a read credential nor a good ticket came", body = super::ErrorBody),
        (status = 403, description = "a page from an origin not allowed", body = super::ErrorBody)))]
#[allow(dead_code)]
fn live() {}

pub fn route(
    ctx: Arc<WebContext>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("live")
        .and(super::read_guard(&ctx))
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("host"))
        .and(warp::header::optional::<String>("sec-websocket-protocol"))
        .and(warp::ws())
        .and(with(ctx))
        .and_then(
            |mut params: HashMap<String, String>,
             origin: Option<String>,
             host: Option<String>,
             protocols: Option<String>,
             ws: warp::ws::Ws,
             ctx: Arc<WebContext>| async move {
                // Checked by the read guard.
                params.remove("ticket");
                if let Some(origin) = origin
                    && !origin_allowed(&origin, host.as_deref(), &ctx.guard.allowed_origins)
                {
                    return Err(warp::reject::custom(ApiError {
                        status: warp::http::StatusCode::FORBIDDEN,
                        code: "forbidden_origin",
                        message: format!(
                            "pages from {origin} may not open the websocket; add it to web.allowed_origins"
                        ),
                    }));
                }
                let stations = parse_filter(&params).map_err(warp::reject::custom)?;
                let echo = negotiate(protocols.as_deref()).map_err(warp::reject::custom)?;
                let ws = ws
                    .max_message_size(MAX_CLIENT_MESSAGE)
                    .max_frame_size(MAX_CLIENT_MESSAGE);
                let mut reply = ws
                    .on_upgrade(move |socket| serve(socket, stations, ctx))
                    .into_response();
                if echo {
                    reply.headers_mut().insert(
                        "sec-websocket-protocol",
                        warp::http::HeaderValue::from_static(SUBPROTOCOL),
                    );
                }
                Ok::<_, Rejection>(reply)
            },
        )
}

/// `POST /api/v1/live/ticket`: a ticket to open the websocket with, for a
/// caller that may read (browsers cannot set headers on a websocket).
pub fn ticket_route(
    ctx: Arc<WebContext>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("live" / "ticket")
        .and(warp::post())
        .and(with(ctx))
        .and_then(ticket)
}

/// A websocket ticket and how long it is good for.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Ticket {
    /// Give it as `?ticket=` when opening `/api/v1/live`, or on one read
    /// such as a CSV download; good once.
    pub ticket: String,
    pub expires_in_s: u64,
}

#[utoipa::path(post, path = "/api/v1/live/ticket", tag = "live",
    responses((status = 200, body = Ticket),
        (status = 401, description = "no credential that may read (with reads protected)", body = super::ErrorBody),
        (status = 503, description = "too many tickets outstanding", body = super::ErrorBody)))]
pub async fn ticket(ctx: Arc<WebContext>) -> Result<warp::reply::Response, Rejection> {
    let Some(ticket) = ctx.guard.tickets.issue() else {
        return Err(warp::reject::custom(ApiError {
            status: warp::http::StatusCode::SERVICE_UNAVAILABLE,
            code: "busy",
            message: "too many websocket tickets outstanding; try again shortly".into(),
        }));
    };
    let body = Ticket {
        ticket,
        expires_in_s: super::tickets::TICKET_TTL.as_secs(),
    };
    Ok(warp::reply::json(&body).into_response())
}

/// A browser names the page's origin: the daemon's own (the dashboard), or
/// one the operator allowed. Any other page could otherwise read the live
/// stream with the visitor's network position (cross-site websocket
/// hijacking); programs send no Origin and are not concerned.
fn origin_allowed(origin: &str, host: Option<&str>, allowed: &[String]) -> bool {
    let origin = origin.trim_end_matches('/');
    let own = host.is_some_and(|host| {
        origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            == Some(host)
    });
    own || super::origin_listed(origin, allowed)
}

/// Whether to answer with the subprotocol: a client that names none
/// speaks version 1; one that names some must name `isobar.v1`.
fn negotiate(offered: Option<&str>) -> Result<bool, ApiError> {
    let Some(offered) = offered else {
        return Ok(false);
    };
    if offered.split(',').any(|p| p.trim() == SUBPROTOCOL) {
        Ok(true)
    } else {
        Err(ApiError::bad_request(format!(
            "Sec-WebSocket-Protocol: {offered:?} names no protocol this server speaks; it speaks {SUBPROTOCOL}"
        )))
    }
}

fn parse_filter(params: &HashMap<String, String>) -> Result<Option<HashSet<StationId>>, ApiError> {
    if let Some(unknown) = params.keys().find(|k| k.as_str() != "stations") {
        return Err(ApiError::bad_request(format!(
            "unknown parameter {unknown:?}; expected stations"
        )));
    }
    let Some(list) = params.get("stations") else {
        return Ok(None);
    };
    list.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| StationId::parse(s).map_err(|e| ApiError::bad_request(format!("stations: {e}"))))
        .collect::<Result<HashSet<_>, _>>()
        .map(Some)
}

async fn serve(socket: WebSocket, stations: Option<HashSet<StationId>>, ctx: Arc<WebContext>) {
    let id = next_client_id();
    let (queue_tx, mut queue) = mpsc::channel::<Arc<str>>(ctx.serving.client_queue);
    let dropped = Arc::new(AtomicU64::new(0));
    // Room for the periods of one roll-up of many stations: each period
    // holds only its newest message.
    let rollups = Arc::new(RollupLane::new(ctx.serving.client_queue.max(1024) * 4));
    // Subscribe before taking the snapshot so nothing falls between them.
    let Some(hub) = ctx.pipeline.hub.get() else {
        return;
    };
    let client = LiveClient {
        id,
        stations: stations.clone(),
        queue: queue_tx,
        dropped: dropped.clone(),
        rollups: rollups.clone(),
    };
    if hub.cast(HubMsg::Subscribe(client)).is_err() {
        return;
    }
    let (mut sink, mut incoming) = socket.split();
    let pick = api::Pick::Latest {
        limit: ctx.serving.snapshot_max,
        only: stations.as_ref(),
    };
    let snapshot = match api::station_views(&ctx, pick).await {
        Ok((views, total)) => LiveMessage::Snapshot {
            protocol: crate::actors::hub::PROTOCOL_VERSION,
            complete: views.len() >= total,
            total,
            stations: &views,
        }
        .to_json(),
        Err(e) => {
            tracing::warn!(client = id, error = e.message, "live snapshot failed");
            return;
        }
    };
    if !send(&mut sink, &snapshot).await {
        return;
    }
    tracing::debug!(client = id, "live client connected");
    // A ping every heartbeat; a client silent (no pong, no message) for
    // two of them is gone, and its connection is closed.
    let heartbeat = ctx.serving.heartbeat;
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    let mut heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            // Readings first; rollups when none wait.
            biased;
            _ = ticks.tick() => {
                if heard.elapsed() > 2 * heartbeat {
                    tracing::debug!(client = id, "live client missed its heartbeats; closing");
                    metrics::counter!("isobar_live_heartbeat_timeouts_total").increment(1);
                    let _ = tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::close())).await;
                    break;
                }
                let ping = tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::ping(b"isobar".to_vec())));
                if !matches!(ping.await, Ok(Ok(()))) {
                    break;
                }
            }
            next = queue.recv() => {
                let Some(json) = next else { break };
                let missed = dropped.swap(0, Ordering::Relaxed);
                if missed > 0 {
                    let notice = LiveMessage::Overflow { dropped: missed }.to_json();
                    if !send(&mut sink, &notice).await {
                        break;
                    }
                }
                if !send(&mut sink, &json).await {
                    break;
                }
            }
            () = rollups.ready.notified() => {
                // A few at a time, so a reading that arrives meanwhile
                // waits for at most these.
                let (batch, more) = rollups.take(ROLLUPS_PER_TURN);
                let mut sent = true;
                for json in &batch {
                    sent = send(&mut sink, json).await;
                    if !sent {
                        break;
                    }
                }
                if !sent {
                    break;
                }
                if more {
                    rollups.ready.notify_one();
                }
            }
            msg = incoming.next() => match msg {
                // Pongs (and the client's own pings, which the library
                // answers) show it is there; anything else is ignored.
                Some(Ok(m)) if !m.is_close() => heard = tokio::time::Instant::now(),
                _ => break,
            },
        }
    }
    tracing::debug!(client = id, "live client disconnected");
}

/// Ids of live clients, unique in the process.
fn next_client_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
