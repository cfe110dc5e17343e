//! Checks that every store must pass, run against each backend by the
//! tests of that backend.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use isobar::domain::{Observation, QcConfig, Reading, Resolution, StationId, StationQc};
use isobar::storage::{Leftovers, RolledUp, RollupQuery, Store, StoredBatch, WriteBatch};

/// Every outbox entry, whatever its age, read back from the store.
pub const ALL_LEFT: Leftovers = Leftovers {
    older_than: std::time::Duration::ZERO,
    limit: 100,
};

/// None read back: only what is handed over counts.
pub const NONE_LEFT: Leftovers = Leftovers {
    older_than: std::time::Duration::from_secs(3600),
    limit: 100,
};

/// Rolls up everything the outbox holds.
pub async fn roll_up_all(store: &dyn Store, changes: bool) -> RolledUp {
    store.roll_up(&[], ALL_LEFT, changes).await.unwrap()
}

fn reading(station: &str, at: &str, t: f64) -> Reading {
    let at: DateTime<Utc> = at.parse().unwrap();
    let mut obs = Observation::new(StationId::parse(station).unwrap(), at);
    obs.temperature_c = Some(t);
    obs.humidity_pct = Some(60.0);
    let qc = StationQc::default().check(&obs, at, &QcConfig::default());
    Reading::new(obs, at, qc)
}

/// What a roll-up returns for live clients is each changed period as the
/// store then holds it, including what earlier roll-ups added to it.
pub async fn a_roll_up_returns_the_periods_it_changed_as_stored(store: &dyn Store) {
    let write = |readings: Vec<Reading>| {
        store.write_batch(Arc::new(WriteBatch {
            archive: false,
            readings,
            quarantine: vec![],
        }))
    };
    write(vec![reading("WS001", "2025-01-13T10:00:10Z", 1.0)])
        .await
        .unwrap();
    assert!(roll_up_all(store, false).await.changed.is_empty());
    write(vec![
        reading("WS001", "2025-01-13T10:00:40Z", 3.0),
        reading("WS002", "2025-01-13T11:30:00Z", 7.0),
    ])
    .await
    .unwrap();
    let done = roll_up_all(store, true).await;
    assert_eq!(done.readings, 2);
    let keys: Vec<(String, Resolution, String)> = done
        .changed
        .iter()
        .map(|(s, r, p)| (s.to_string(), *r, p.bucket.to_rfc3339()))
        .collect();
    let key = |s: &str, r, b: &str| (s.to_owned(), r, b.to_owned());
    assert_eq!(
        keys,
        [
            key("WS001", Resolution::Minute, "2025-01-13T10:00:00+00:00"),
            key("WS001", Resolution::Hour, "2025-01-13T10:00:00+00:00"),
            key("WS002", Resolution::Minute, "2025-01-13T11:30:00+00:00"),
            key("WS002", Resolution::Hour, "2025-01-13T11:00:00+00:00"),
        ]
    );
    for (station, resolution, period) in &done.changed {
        let stored = store
            .rollups(RollupQuery {
                station_id: station.clone(),
                resolution: *resolution,
                from: period.bucket,
                to: period.bucket + resolution.period(),
                limit: 1,
            })
            .await
            .unwrap();
        assert_eq!(stored, std::slice::from_ref(period));
    }
    // Both readings of WS001's minute, the first rolled up before.
    let t = done.changed[0].2.variables["temperature_c"];
    assert_eq!((t.count, t.min, t.max, t.last), (2, 1.0, 3.0, 3.0));
}

/// A stored batch's readings, handed over in memory, count once in the
/// rollups however often they are handed over; a batch nobody holds is read
/// back from the store; the archive outbox keeps each batch until it is
/// cleared.
pub async fn each_stored_batch_counts_once(store: &dyn Store) {
    let write = |readings: Vec<Reading>| {
        store.write_batch(Arc::new(WriteBatch {
            archive: true,
            readings,
            quarantine: vec![],
        }))
    };
    let a_readings = vec![
        reading("WS001", "2025-01-13T10:00:10Z", 1.0),
        reading("WS001", "2025-01-13T10:00:20Z", 2.0),
    ];
    let b_readings = vec![reading("WS001", "2025-01-13T10:00:30Z", 4.0)];
    let a = write(a_readings.clone())
        .await
        .unwrap()
        .seq
        .expect("new readings");
    let b = write(b_readings.clone())
        .await
        .unwrap()
        .seq
        .expect("new readings");
    assert_ne!(a, b);
    // A redelivery has nothing new, and no entry.
    assert_eq!(write(a_readings.clone()).await.unwrap().seq, None);
    let held = |seq, readings: &[Reading]| StoredBatch {
        seq,
        readings: readings.to_vec().into(),
    };

    let done = store
        .roll_up(&[held(a, &a_readings)], NONE_LEFT, false)
        .await
        .unwrap();
    assert_eq!((done.readings, done.leftovers), (2, 0));
    // Handed over again (a restarted actor): the entry is gone, so nothing.
    let again = store
        .roll_up(&[held(a, &a_readings)], NONE_LEFT, false)
        .await
        .unwrap();
    assert_eq!(again.readings, 0);
    // B was never handed over: read back, with its readings as stored.
    let left = store.roll_up(&[], ALL_LEFT, true).await.unwrap();
    assert_eq!((left.readings, left.leftovers), (1, 1));
    let t = left.changed[0].2.variables["temperature_c"];
    assert_eq!((t.count, t.min, t.max, t.last), (3, 1.0, 4.0, 4.0));
    // And once it was, it is not counted again.
    let late = store
        .roll_up(&[held(b, &b_readings)], ALL_LEFT, false)
        .await
        .unwrap();
    assert_eq!((late.readings, late.leftovers), (0, 0));

    // The archive outbox: both batches, oldest first, until cleared.
    let pending = store.archive_leftovers(ALL_LEFT).await.unwrap();
    let seqs: Vec<i64> = pending.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, [a, b]);
    assert_eq!(&*pending[0].readings, a_readings.as_slice());
    assert_eq!(&*pending[1].readings, b_readings.as_slice());
    assert!(store.archive_leftovers(NONE_LEFT).await.unwrap().is_empty());
    assert_eq!(
        store.archive_present(&[b, a, b + 100]).await.unwrap(),
        [a, b]
    );
    store.archive_done(&[a]).await.unwrap();
    assert_eq!(store.archive_present(&[a, b]).await.unwrap(), [b]);
    let pending = store.archive_leftovers(ALL_LEFT).await.unwrap();
    assert_eq!(pending.iter().map(|p| p.seq).collect::<Vec<_>>(), [b]);
    store.archive_done(&[b]).await.unwrap();
    assert!(store.archive_leftovers(ALL_LEFT).await.unwrap().is_empty());
}

fn windy(at: &str, direction: f64, gust: f64) -> Reading {
    let at: DateTime<Utc> = at.parse().unwrap();
    let mut obs = Observation::new(StationId::parse("WS003").unwrap(), at);
    obs.wind_speed_ms = Some(5.0);
    obs.wind_direction_deg = Some(direction);
    obs.wind_gust_ms = Some(gust);
    let qc = StationQc::default().check(&obs, at, &QcConfig::default());
    Reading::new(obs, at, qc)
}

/// Wind direction rolls up as a vector mean across roll-ups, and the
/// period keeps the direction of its strongest gust, whichever roll-up
/// brought it.
pub async fn wind_direction_rolls_up_as_vectors(store: &dyn Store) {
    let write_and_roll_up = |readings: Vec<Reading>| async move {
        store
            .write_batch(Arc::new(WriteBatch {
                archive: false,
                readings,
                quarantine: vec![],
            }))
            .await
            .unwrap();
        roll_up_all(store, false).await;
    };
    write_and_roll_up(vec![
        windy("2025-01-13T10:00:00Z", 350.0, 9.0),
        windy("2025-01-13T10:10:00Z", 10.0, 8.0),
    ])
    .await;
    // A stronger gust from the east, then a weaker one from the south.
    write_and_roll_up(vec![windy("2025-01-13T10:20:00Z", 90.0, 15.0)]).await;
    write_and_roll_up(vec![windy("2025-01-13T10:30:00Z", 180.0, 6.0)]).await;
    let hour = store
        .rollups(RollupQuery {
            station_id: StationId::parse("WS003").unwrap(),
            resolution: Resolution::Hour,
            from: "2025-01-13T10:00:00Z".parse().unwrap(),
            to: "2025-01-13T11:00:00Z".parse().unwrap(),
            limit: 1,
        })
        .await
        .unwrap();
    let wind = hour[0].wind.expect("a wind rollup");
    assert_eq!((wind.count, wind.suspect), (4, 0));
    assert_eq!(wind.gust_direction_deg, Some(90.0));
    assert_eq!(hour[0].variables["wind_gust_ms"].max, 15.0);
    // 350° and 10° cancel east-west and add up northward; 180° takes one
    // unit of that back and 90° adds one eastward: the mean points about
    // north-east (45.9°), about a third of a unit long.
    let north = 2.0 * 10f64.to_radians().cos() - 1.0;
    let direction = wind.direction_deg.unwrap();
    assert!(
        (direction - 1f64.atan2(north).to_degrees()).abs() < 1e-9,
        "{direction}"
    );
    assert!((direction - 45.9).abs() < 0.1, "{direction}");
    let steadiness = 1f64.hypot(north) / 4.0;
    assert!(
        (wind.steadiness - steadiness).abs() < 1e-9,
        "{}",
        wind.steadiness
    );
}

/// The webhook's delivery queue: posts come out oldest first, one that
/// failed waits its backoff with every later one behind it, and one done
/// is gone.
pub async fn the_delivery_queue_keeps_its_order(store: &dyn Store) {
    let now = Utc::now();
    assert_eq!(store.next_delivery(now).await.unwrap(), None);
    store.queue_delivery(r#"{"alert":"a"}"#).await.unwrap();
    store.queue_delivery(r#"{"alert":"b"}"#).await.unwrap();
    let now = Utc::now();
    let a = store.next_delivery(now).await.unwrap().expect("a is due");
    assert_eq!((a.body.as_str(), a.attempts), (r#"{"alert":"a"}"#, 0));
    // a failed: neither it nor b is due before its backoff has passed.
    let later = now + chrono::TimeDelta::seconds(10);
    store.delivery_failed(a.id, later).await.unwrap();
    assert_eq!(store.next_delivery(now).await.unwrap(), None);
    let again = store.next_delivery(later).await.unwrap().expect("a again");
    assert_eq!((again.id, again.attempts), (a.id, 1));
    store.delivery_done(a.id).await.unwrap();
    let b = store.next_delivery(later).await.unwrap().expect("then b");
    assert_eq!(b.body, r#"{"alert":"b"}"#);
    store.delivery_done(b.id).await.unwrap();
    assert_eq!(store.next_delivery(later).await.unwrap(), None);
}
