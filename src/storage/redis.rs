//! The production cache: Redis (or Valkey, ElastiCache) through fred.
//!
//! - `<prefix>latest` is a hash of station id → its newest reading (JSON),
//!   and `<prefix>latest_at` the same station → that reading's time, so a
//!   late reading never replaces a newer one (one Lua script, atomic).
//! - `<prefix>readings` is a pub/sub channel of stored readings, so that
//!   several isobar instances behind a load balancer all feed their own
//!   websocket clients with every reading ([`RedisCache::relay`]).
//!
//! Redis down never blocks ingest: commands time out quickly, the client
//! reconnects in the background, and readers fall back to the store.

use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::*;
use fred::types::Message;
use serde::{Deserialize, Serialize};

use super::LatestCache;
use crate::domain::{Reading, StationId};

/// Keeps a reading only if it is newer than the one held for its station.
const PUT_NEWER: &str = r#"
for i = 1, #ARGV, 3 do
  local id, at, json = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local held = tonumber(redis.call('HGET', KEYS[2], id))
  if not held or held < at then
    redis.call('HSET', KEYS[2], id, ARGV[i + 1])
    redis.call('HSET', KEYS[1], id, json)
  end
end
return 0
"#;

/// How long a cache command may take before it counts as failed.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

pub struct RedisCache {
    client: Client,
    config: Config,
    latest: String,
    latest_at: String,
    channel: String,
    /// Identifies this instance's own messages on the channel.
    origin: String,
}

/// What goes over the readings channel.
#[derive(Serialize, Deserialize)]
struct Announcement {
    origin: String,
    readings: Vec<Reading>,
}

#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct RedisError(String);

impl RedisCache {
    /// A client for the Redis at `url` (`redis://[:password@]host:port/db`),
    /// keys under `prefix`. It connects in the background and keeps
    /// reconnecting; until it is connected, the cache answers nothing.
    /// `tls`: with `rediss://`, the CA certificates (PEM) to trust, or
    /// the system's (`None` inside).
    pub fn connect(
        url: &str,
        prefix: &str,
        origin: &str,
        tls: Option<Option<Vec<u8>>>,
    ) -> Result<Self, RedisError> {
        let mut config = Config::from_url(url).map_err(|e| RedisError(e.to_string()))?;
        if let Some(ca) = tls {
            let client = super::tls::client_config(ca.as_deref(), super::tls::Verify::Full)
                .map_err(|e| RedisError(format!("cache.redis_ca_file: {e}")))?;
            config.tls = Some(fred::types::config::TlsConnector::from(client).into());
        }
        let client = builder(&config)
            .build()
            .map_err(|e| RedisError(e.to_string()))?;
        keep_connected(client.clone());
        Ok(Self {
            client,
            config,
            latest: format!("{prefix}latest"),
            latest_at: format!("{prefix}latest_at"),
            channel: format!("{prefix}readings"),
            origin: origin.to_owned(),
        })
    }

    /// Forwards readings that other instances announce to `deliver` (this
    /// instance's hub), resubscribing after reconnects. Runs until the
    /// process ends.
    pub fn relay(&self, deliver: impl Fn(Vec<Reading>) + Send + 'static) -> Result<(), RedisError> {
        let subscriber = builder(&self.config)
            .build_subscriber_client()
            .map_err(|e| RedisError(e.to_string()))?;
        let channel = self.channel.clone();
        let origin = self.origin.clone();
        tokio::spawn(async move {
            let mut messages = subscriber.message_rx();
            keep_connected(subscriber.clone());
            // A task of its own: it resubscribes after every reconnect.
            drop(subscriber.manage_subscriptions());
            while let Err(e) = subscriber.subscribe(channel.clone()).await {
                tracing::warn!(error = %e, "redis subscribe failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            loop {
                let message: Message = match messages.recv().await {
                    Ok(m) => m,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        metrics::counter!("isobar_relay_dropped_total").increment(n);
                        continue;
                    }
                    Err(_) => break,
                };
                let Some(text) = message.value.as_str() else {
                    continue;
                };
                match serde_json::from_str::<Announcement>(&text) {
                    Ok(a) if a.origin != origin => deliver(a.readings),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "unreadable message on the readings channel")
                    }
                }
            }
        });
        Ok(())
    }

    fn failed(&self, what: &str, e: &Error) {
        metrics::counter!("isobar_cache_errors_total").increment(1);
        tracing::warn!(operation = what, error = %e, "redis cache unavailable; falling back");
    }
}

/// fred reconnects a connection it had, by its policy, but gives up when the
/// very first attempt fails (Redis not up yet when isobar starts): start
/// again until one succeeds, so Redis can come up in any order.
fn keep_connected<C: ClientLike + EventInterface + 'static>(client: C) {
    // A refused login (a wrong password in cache.redis_url, or none where
    // the server wants one, as ElastiCache with an AUTH token does) will
    // not mend itself: say so, with the server's reason. Other connection
    // errors are the outages the reconnects ride out.
    drop(client.on_error(|(e, _server)| async move {
        if *e.kind() == ErrorKind::Auth {
            tracing::warn!(error = %e, "redis refused the login: check the password in cache.redis_url");
        } else {
            tracing::debug!(error = %e, "redis connection error");
        }
        Ok(())
    }));
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(200);
        loop {
            match client.connect().await {
                // Ended by a quit.
                Ok(Ok(())) => return,
                Ok(Err(e)) => tracing::debug!(error = %e, "redis connection failed; trying again"),
                // The runtime is shutting down.
                Err(_) => return,
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    });
}

fn builder(config: &Config) -> Builder {
    let mut builder = Builder::from_config(config.clone());
    builder
        .with_performance_config(|p| p.default_command_timeout = COMMAND_TIMEOUT)
        .with_connection_config(|c| {
            c.connection_timeout = Duration::from_secs(2);
            c.internal_command_timeout = Duration::from_secs(2);
            // Commands waiting for a connection are bounded: beyond this
            // they fail at once, so an outage cannot grow memory.
            c.max_command_buffer_len = 64;
            // A connection that stops answering (a failover without a
            // reset) is closed and reconnected.
            c.unresponsive.max_timeout = Some(Duration::from_secs(2));
            c.unresponsive.interval = Duration::from_millis(500);
        })
        // Forever, from 100 ms doubling to 5 s.
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2));
    builder
}

#[async_trait]
impl LatestCache for RedisCache {
    async fn put_newer(&self, readings: &[Reading]) {
        if !self.client.is_connected() {
            // Readers fall back to the store; the next batch will bring the
            // cache up to date once Redis is back.
            metrics::counter!("isobar_cache_skipped_total").increment(1);
            return;
        }
        let mut args: Vec<String> = Vec::with_capacity(readings.len() * 3);
        for r in readings {
            args.push(r.station_id.to_string());
            args.push(r.observed_at.timestamp_micros().to_string());
            args.push(serde_json::to_string(r).expect("readings always serialise"));
        }
        let keys = vec![self.latest.clone(), self.latest_at.clone()];
        if let Err(e) = self
            .client
            .eval::<i64, _, _, _>(PUT_NEWER, keys, args)
            .await
        {
            self.failed("put_newer", &e);
            return;
        }
        let announcement = Announcement {
            origin: self.origin.clone(),
            readings: readings.to_vec(),
        };
        let json = serde_json::to_string(&announcement).expect("readings always serialise");
        if let Err(e) = self
            .client
            .publish::<i64, _, _>(self.channel.clone(), json)
            .await
        {
            self.failed("publish", &e);
        }
    }

    async fn get(&self, id: &StationId) -> Option<Reading> {
        match self
            .client
            .hget::<Option<String>, _, _>(self.latest.clone(), id.as_str())
            .await
        {
            Ok(json) => json.and_then(|j| serde_json::from_str(&j).ok()),
            Err(e) => {
                self.failed("get", &e);
                None
            }
        }
    }

    async fn many(&self, ids: &[StationId]) -> Vec<Reading> {
        if ids.is_empty() {
            return Vec::new();
        }
        let fields: Vec<&str> = ids.iter().map(StationId::as_str).collect();
        match self
            .client
            .hmget::<Vec<Option<String>>, _, _>(self.latest.clone(), fields)
            .await
        {
            Ok(values) => values
                .into_iter()
                .flatten()
                .filter_map(|j| serde_json::from_str(&j).ok())
                .collect(),
            Err(e) => {
                self.failed("many", &e);
                Vec::new()
            }
        }
    }

    async fn all(&self) -> Vec<Reading> {
        match self
            .client
            .hgetall::<std::collections::HashMap<String, String>, _>(self.latest.clone())
            .await
        {
            Ok(map) => map
                .values()
                .filter_map(|j| serde_json::from_str(j).ok())
                .collect(),
            Err(e) => {
                self.failed("all", &e);
                Vec::new()
            }
        }
    }

    async fn ping(&self) -> Result<(), String> {
        self.client
            .ping::<String>(None)
            .await
            .map(|_| ())
            .map_err(|e| format!("redis: {e}"))
    }
}
