//! The web server as a supervised actor: it serves the REST API, the
//! websocket, the dashboard and the probes on the listener bound at start,
//! and fails if the server ends without being asked, so its supervisor
//! starts it again on the same socket. Stopping it lets requests in flight
//! finish (for up to five seconds).

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::oneshot;

/// Serves HTTP on a listener until the signal comes: the routes the
/// daemon gives it (`web::server`).
pub type Serve = Arc<
    dyn Fn(
            tokio::net::TcpListener,
            oneshot::Receiver<()>,
        ) -> futures_util::future::BoxFuture<'static, ()>
        + Send
        + Sync,
>;

pub enum HttpMsg {
    /// The server ended by itself, or is to be taken for failed: a
    /// failure, for this reason.
    Ended(String),
}

pub struct HttpServer;

pub struct HttpArgs {
    /// Bound once, when the daemon starts; every start serves a clone of it,
    /// so a restart keeps the address (port 0 included).
    pub listener: Arc<std::net::TcpListener>,
    pub serve: Serve,
}

pub struct HttpState {
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// How long requests in flight have to finish when the server stops.
const GRACE: Duration = Duration::from_secs(5);

impl Actor for HttpServer {
    type Msg = HttpMsg;
    type State = HttpState;
    type Arguments = HttpArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: HttpArgs,
    ) -> Result<HttpState, ActorProcessingErr> {
        let listener = args.listener.try_clone()?;
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let server = (args.serve)(listener, stopped);
        let server = tokio::spawn(async move {
            server.await;
            // Only a stop asked for by post_stop ends it quietly; the
            // message then finds no actor.
            let _ = myself.cast(HttpMsg::Ended("the web server stopped".into()));
        });
        Ok(HttpState {
            stop: Some(stop),
            server: Some(server),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: HttpMsg,
        _state: &mut HttpState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            HttpMsg::Ended(why) => Err(why.into()),
        }
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut HttpState,
    ) -> Result<(), ActorProcessingErr> {
        state.shut_down().await;
        Ok(())
    }
}

impl HttpState {
    async fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let abort = server.abort_handle();
            if tokio::time::timeout(GRACE, server).await.is_err() {
                // Connections that outlast the grace (websockets) are cut.
                abort.abort();
            }
        }
    }
}

impl Drop for HttpState {
    /// A failed actor gets no post_stop: the server must not outlive it,
    /// or the restarted one would share its socket with a ghost.
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}
