//! The aggregator: rolls new readings up into 1-minute and 1-hour rollups.
//! The persister leaves each new reading in the store's rollup outbox, in
//! the reading's own transaction; every few seconds the aggregator takes what is
//! there, adds it to the rollups and clears it, in one transaction. So
//! rollups are off the ingest path, exact under redelivery and crashes, and
//! at most a few seconds behind the readings (5 s, the interval the root gives it).
//! The periods a roll-up changed are read back and sent to the hub, for
//! live clients, when any is connected.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::actors::hub::{HubMsg, StationRollup};
use crate::domain::{Resolution, StationId};
use crate::storage::{RollupQuery, Store};

/// Readings rolled up per transaction.
const CHUNK: usize = 50_000;

pub enum AggregatorMsg {
    /// Roll up what is waiting.
    Tick,
    /// Roll up everything waiting now; reply when done.
    Flush(RpcReplyPort<()>),
}

pub struct Aggregator;

pub struct AggregatorArgs {
    pub store: Arc<dyn Store>,
    pub interval: Duration,
    /// The hub's registered name.
    pub hub: String,
}

pub struct AggregatorState {
    store: Arc<dyn Store>,
    hub: String,
}

impl Actor for Aggregator {
    type Msg = AggregatorMsg;
    type State = AggregatorState;
    type Arguments = AggregatorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: AggregatorArgs,
    ) -> Result<AggregatorState, ActorProcessingErr> {
        myself.send_interval(args.interval, || AggregatorMsg::Tick);
        Ok(AggregatorState {
            store: args.store,
            hub: args.hub,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: AggregatorMsg,
        state: &mut AggregatorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AggregatorMsg::Tick => state.roll_up().await,
            AggregatorMsg::Flush(reply) => {
                state.roll_up().await;
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

impl AggregatorState {
    /// Until the outbox is empty, or the store fails (tried again at the
    /// next tick; the outbox keeps everything meanwhile).
    async fn roll_up(&self) {
        loop {
            match self.store.roll_up(CHUNK).await {
                Ok(done) => {
                    let n = done.readings;
                    metrics::counter!("isobar_readings_rolled_up_total").increment(n as u64);
                    self.announce(done.periods).await;
                    if n < CHUNK {
                        return;
                    }
                }
                Err(e) => {
                    metrics::counter!("isobar_rollup_errors_total").increment(1);
                    tracing::warn!(error = %e, "rolling up failed; will retry");
                    return;
                }
            }
        }
    }
}

/// Periods of one station and resolution at most this far apart are read
/// back in one query.
const RUN_GAP: i32 = 10;

impl AggregatorState {
    /// Reads the changed periods back and sends them to the hub, if it has
    /// clients. A failed read is logged and skipped: live rollups are a
    /// convenience, the store has them.
    async fn announce(&self, periods: Vec<(StationId, Resolution, chrono::DateTime<chrono::Utc>)>) {
        if periods.is_empty() {
            return;
        }
        let Some(hub) = ActorRef::<HubMsg>::where_is(self.hub.clone()) else {
            return;
        };
        let clients = hub
            .call(HubMsg::ClientCount, Some(Duration::from_secs(1)))
            .await;
        if !matches!(clients, Ok(ractor::rpc::CallResult::Success(n)) if n > 0) {
            return;
        }
        let mut out = Vec::new();
        for (station, resolution, run) in runs(&periods) {
            let (first, last) = (run[0], run[run.len() - 1]);
            let span = ((last - first).num_seconds() / resolution.period().num_seconds()) as usize;
            let query = RollupQuery {
                station_id: station.clone(),
                resolution,
                from: first,
                to: last + chrono::TimeDelta::microseconds(1),
                limit: span + 1,
            };
            match self.store.rollups(query).await {
                Ok(rollups) => {
                    out.extend(rollups.into_iter().filter(|r| run.contains(&r.bucket)).map(
                        |rollup| StationRollup {
                            station_id: station.clone(),
                            resolution,
                            rollup,
                        },
                    ))
                }
                Err(e) => {
                    tracing::debug!(error = %e, station = %station, "reading back rollups for live clients failed");
                }
            }
        }
        if !out.is_empty() {
            let _ = hub.cast(HubMsg::Rollups(out));
        }
    }
}

/// Splits changed periods (in station, resolution, bucket order) into runs
/// of one station and resolution whose buckets are close together.
fn runs(
    periods: &[(StationId, Resolution, chrono::DateTime<chrono::Utc>)],
) -> Vec<(&StationId, Resolution, Vec<chrono::DateTime<chrono::Utc>>)> {
    let mut out: Vec<(&StationId, Resolution, Vec<chrono::DateTime<chrono::Utc>>)> = Vec::new();
    for (station, resolution, bucket) in periods {
        match out.last_mut() {
            Some((s, r, run))
                if *s == station
                    && r == resolution
                    && *bucket - run[run.len() - 1] <= resolution.period() * RUN_GAP =>
            {
                run.push(*bucket);
            }
            _ => out.push((station, *resolution, vec![*bucket])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_periods_of_a_station_are_read_back_together() {
        let ws = |id: &str| StationId::parse(id).unwrap();
        let at = |t: &str| t.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        let periods = vec![
            (ws("WS001"), Resolution::Minute, at("2025-01-13T10:00:00Z")),
            (ws("WS001"), Resolution::Minute, at("2025-01-13T10:01:00Z")),
            // A late reading, far back: a run of its own.
            (ws("WS001"), Resolution::Minute, at("2025-01-13T12:00:00Z")),
            (ws("WS001"), Resolution::Hour, at("2025-01-13T10:00:00Z")),
            (ws("WS002"), Resolution::Minute, at("2025-01-13T10:00:00Z")),
        ];
        let runs: Vec<(String, Resolution, usize)> = runs(&periods)
            .into_iter()
            .map(|(s, r, run)| (s.to_string(), r, run.len()))
            .collect();
        assert_eq!(
            runs,
            [
                ("WS001".into(), Resolution::Minute, 2),
                ("WS001".into(), Resolution::Minute, 1),
                ("WS001".into(), Resolution::Hour, 1),
                ("WS002".into(), Resolution::Minute, 1),
            ]
        );
    }
}
