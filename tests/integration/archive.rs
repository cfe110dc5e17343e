//! The data lake: every stored reading lands in an object partitioned by
//! date and station, in a local directory by default and in S3 (here a real
//! local S3-compatible server, moto) in production; while S3 is down the
//! readings wait in the spool and go out when it is back.

use crate::common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Daemon, Publisher, eventually};

fn gunzip(body: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::GzDecoder::new(body)
        .read_to_string(&mut out)
        .unwrap();
    out
}

/// Every object file under `dir`, with its path relative to `dir`.
fn objects(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|e| e == "gz") {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn lines(objects: &[(String, Vec<u8>)], partition: &str) -> usize {
    objects
        .iter()
        .filter(|(key, _)| key.contains(partition))
        .map(|(_, body)| gunzip(body).lines().count())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_land_in_the_local_archive_by_date_and_station() {
    let daemon = Daemon::start_with_env(&[], &[("ISOBAR__ARCHIVE__SEGMENT_AGE", "1s")]);
    let publisher = Publisher::connect(&daemon, "archive-publisher").await;
    for (station, day) in [("WS700", "13"), ("WS700", "14"), ("WS701", "13")] {
        for minute in 0..5 {
            publisher
                .reading(station, &format!("2025-01-{day}T10:0{minute}:00Z"), 4.0)
                .await;
        }
    }
    // A redelivered reading is not archived twice.
    publisher
        .reading("WS700", "2025-01-13T10:00:00Z", 4.0)
        .await;
    let archive: PathBuf = daemon.data_dir.path().join("archive");
    let spool = daemon.data_dir.path().join("spool");
    // Everything is through once the spool is empty and 15 readings are out;
    // then exactly those 15, each once.
    let found = eventually(Duration::from_secs(30), "the lake complete", || async {
        let found = objects(&archive);
        let spool_empty = std::fs::read_dir(&spool).ok()?.count() == 0;
        (spool_empty && lines(&found, "") >= 15).then_some(found)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let found_later = objects(&archive);
    assert_eq!(found_later, found, "nothing more arrives");
    let mut keys: Vec<String> = found
        .iter()
        .flat_map(|(_, body)| gunzip(body).lines().map(str::to_owned).collect::<Vec<_>>())
        .map(|line| {
            let r: serde_json::Value = serde_json::from_str(&line).unwrap();
            format!("{}@{}", r["station_id"], r["observed_at"])
        })
        .collect();
    assert_eq!(keys.len(), 15);
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 15, "each reading once");
    for partition in [
        "readings/date=2025-01-13/station=WS700/",
        "readings/date=2025-01-14/station=WS700/",
        "readings/date=2025-01-13/station=WS701/",
    ] {
        assert_eq!(lines(&found, partition), 5, "{partition}: {found:?}");
    }
    let line = gunzip(&found[0].1).lines().next().unwrap().to_owned();
    let reading: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(reading["temperature_c"], 4.0);
}

/// moto's S3 server on a port of our own; it keeps everything in memory.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start_on(port: u16) -> Moto {
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server (pip install 'moto[server]'; scripts/services.sh does)");
        Moto { child, port }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let credentials = aws_sdk_s3::config::Credentials::new("test", "test", None, None, "test");
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(credentials)
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

async fn create_bucket(client: &aws_sdk_s3::Client) {
    eventually(
        Duration::from_secs(30),
        "moto up and the bucket created",
        || async { client.create_bucket().bucket("lake").send().await.ok() },
    )
    .await;
}

async fn s3_objects(client: &aws_sdk_s3::Client) -> Vec<(String, Vec<u8>)> {
    let Ok(list) = client.list_objects_v2().bucket("lake").send().await else {
        return vec![];
    };
    let mut out = Vec::new();
    for object in list.contents() {
        let key = object.key().unwrap().to_owned();
        let Ok(body) = client.get_object().bucket("lake").key(&key).send().await else {
            continue;
        };
        out.push((key, body.body.collect().await.unwrap().to_vec()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_down_then_back_loses_nothing() {
    let port = common::mosquitto::free_port();
    let moto = Moto::start_on(port);
    let client = s3_client(&moto.endpoint()).await;
    create_bucket(&client).await;
    let endpoint = moto.endpoint();
    let daemon = Daemon::start_with_env(
        &[],
        &[
            ("ISOBAR__ARCHIVE__BACKEND", "s3"),
            ("ISOBAR__ARCHIVE__BUCKET", "lake"),
            ("ISOBAR__ARCHIVE__PREFIX", "isobar/"),
            ("ISOBAR__ARCHIVE__ENDPOINT_URL", &endpoint),
            ("ISOBAR__ARCHIVE__PATH_STYLE", "true"),
            ("ISOBAR__ARCHIVE__SEGMENT_AGE", "1s"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
        ],
    );
    let publisher = Publisher::connect(&daemon, "s3-publisher").await;
    for minute in 0..5 {
        publisher
            .reading("WS710", &format!("2025-01-13T10:0{minute}:00Z"), 1.0)
            .await;
    }
    let found = eventually(Duration::from_secs(30), "five readings in S3", || async {
        let found = s3_objects(&client).await;
        (lines(&found, "") == 5).then_some(found)
    })
    .await;
    assert!(
        found[0]
            .0
            .starts_with("isobar/readings/date=2025-01-13/station=WS710/"),
        "{}",
        found[0].0
    );

    // S3 goes away; readings keep being stored and wait in the spool.
    drop(moto);
    for minute in 0..5 {
        publisher
            .reading("WS711", &format!("2025-01-13T11:0{minute}:00Z"), 2.0)
            .await;
    }
    eventually(
        Duration::from_secs(20),
        "the archive reported down",
        || async {
            let (status, ready) = daemon.get("/ready").await;
            (status == 200 && ready["status"] == "degraded").then_some(())
        },
    )
    .await;
    eventually(
        Duration::from_secs(20),
        "a segment waiting in the spool",
        || async {
            let spool = daemon.data_dir.path().join("spool");
            (std::fs::read_dir(spool).ok()?.count() > 0).then_some(())
        },
    )
    .await;

    // Back (empty: moto keeps nothing): the spool goes out.
    let _moto = Moto::start_on(port);
    create_bucket(&client).await;
    eventually(
        Duration::from_secs(60),
        "the spooled readings in S3",
        || async {
            let found = s3_objects(&client).await;
            (lines(&found, "station=WS711/") == 5).then_some(())
        },
    )
    .await;
}
