//! The HTTP server's own accept loop, around warp's routes: what one
//! client and all of them may hold, so a slow or hostile client cannot
//! take the server's connections or file descriptors.
//!
//! - A client has `header_read_timeout` to send a request's headers; a
//!   connection that sends nothing, or a byte at a time, is closed then.
//! - A request has `request_timeout` to be answered (its headers; a
//!   streamed body, such as an export's, may take longer), or it gets a
//!   503 `timeout`.
//! - At most `max_connections` connections are open, and at most
//!   `max_connections_per_client` from one address: past either, a new
//!   connection is closed at once (`isobar_http_connections_refused_total`),
//!   so one address cannot crowd out the others (an orchestrator's probes
//!   included).
//! - Stopping closes the listener first, then lets requests in flight
//!   finish.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};
use warp::{Filter, Reply};

/// The client a request came from, for the filters that key on it (rate
/// limits).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// What connections may hold.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
}

pub async fn serve<F, R>(
    listener: TcpListener,
    filter: F,
    limits: ConnectionLimits,
    stop: oneshot::Receiver<()>,
) where
    F: Filter<Extract = (R,), Error = std::convert::Infallible> + Clone + Send + Sync + 'static,
    R: Reply,
{
    let graceful = GracefulShutdown::new();
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let clients = Arc::new(Clients::default());
    let refused = metrics::counter!("isobar_http_connections_refused_total");
    let mut stop = std::pin::pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut stop => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, or the like: give the
                // connections in hand a moment to finish.
                tracing::warn!(error = %e, "cannot accept an HTTP connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = open.clone().try_acquire_owned() else {
            refused.increment(1);
            continue;
        };
        let Some(client) = clients.admit(peer.ip(), limits.max_connections_per_client) else {
            refused.increment(1);
            continue;
        };
        let service = TowerToHyperService::new(WithClient {
            inner: warp::service(filter.clone()),
            addr: ClientAddr(peer),
            timeout: limits.request_timeout,
        });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        let connection = graceful.watch(
            builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned(),
        );
        tokio::spawn(async move {
            let _held = (slot, client);
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTP connection ended");
            }
        });
    }
    // The listener closes here; then requests in flight finish.
    drop(listener);
    graceful.shutdown().await;
}

/// Open connections by client address.
#[derive(Debug, Default)]
struct Clients(Mutex<HashMap<IpAddr, usize>>);

/// One open connection of a client; closing it frees its place.
struct ClientSlot {
    clients: Arc<Clients>,
    ip: IpAddr,
}

impl Clients {
    fn admit(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(ip).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            clients: self.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.clients.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// warp's service, with the client's address in each request and a
/// deadline for its answer.
#[derive(Clone)]
struct WithClient<S> {
    inner: S,
    addr: ClientAddr,
    timeout: Duration,
}

impl<S, B> tower_service::Service<warp::http::Request<B>> for WithClient<S>
where
    S: tower_service::Service<
            warp::http::Request<B>,
            Response = warp::reply::Response,
            Error = std::convert::Infallible,
        >,
    S::Future: Send + 'static,
{
    type Response = warp::reply::Response;
    type Error = std::convert::Infallible;
    type Future = futures_util::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: warp::http::Request<B>) -> Self::Future {
        request.extensions_mut().insert(self.addr);
        let answer = self.inner.call(request);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, answer).await {
                Ok(answer) => answer,
                Err(_) => {
                    metrics::counter!("isobar_http_timeouts_total").increment(1);
                    Ok(timed_out(timeout))
                }
            }
        })
    }
}

/// The answer to a request not answered within `timeout`.
fn timed_out(timeout: Duration) -> warp::reply::Response {
    use warp::Reply;
    super::ApiError {
        status: warp::http::StatusCode::SERVICE_UNAVAILABLE,
        code: "timeout",
        message: format!(
            "the request was not answered within {}; try again, or ask for less",
            humantime::format_duration(timeout)
        ),
    }
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request not answered in time gets a 503 in JSON; one answered in
    /// time is passed through, with the client's address.
    #[tokio::test]
    async fn a_slow_answer_is_cut_at_the_request_timeout() {
        use tower_service::Service;
        use warp::Filter;
        let slow = warp::path!("slow").and_then(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, std::convert::Infallible>("late")
        });
        let fast = warp::path!("fast")
            .and(warp::ext::get::<ClientAddr>())
            .map(|addr: ClientAddr| addr.0.to_string());
        let routes = slow.or(fast).recover(|_| async {
            Ok::<_, std::convert::Infallible>(warp::http::StatusCode::NOT_FOUND)
        });
        let mut service = WithClient {
            inner: warp::service(routes),
            addr: ClientAddr(([127, 0, 0, 9], 4000).into()),
            timeout: Duration::from_millis(100),
        };
        let get = |path: &str| {
            warp::http::Request::get(path)
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap()
        };
        let answer = service.call(get("/fast")).await.unwrap();
        assert_eq!(answer.status(), 200);
        let body = http_body_util::BodyExt::collect(answer.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&body[..], b"127.0.0.9:4000");
        let started = std::time::Instant::now();
        let answer = service.call(get("/slow")).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(answer.status(), 503);
        let body = http_body_util::BodyExt::collect(answer.into_body())
            .await
            .unwrap()
            .to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "timeout");
    }

    #[test]
    fn a_client_holds_at_most_its_share_and_gets_it_back() {
        let clients = Arc::new(Clients::default());
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let first = clients.admit(a, 2).unwrap();
        let _second = clients.admit(a, 2).unwrap();
        assert!(clients.admit(a, 2).is_none());
        // Another address is not crowded out.
        assert!(clients.admit(b, 2).is_some());
        drop(first);
        assert!(clients.admit(a, 2).is_some());
    }
}
