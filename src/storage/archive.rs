//! The data lake: every stored reading also goes to objects of compressed
//! JSON lines, partitioned as
//! `readings/date=YYYY-MM-DD/station=<id>/<content hash>.jsonl.gz`, in S3
//! (or any S3-compatible store) in production and in a local directory with
//! the same layout by default.
//!
//! Readings are first appended to a spool on local disk; a spool segment is
//! closed by size or age and uploaded, one object per partition, then
//! deleted. So while the archive is unreachable nothing waits in memory and
//! nothing is dropped: segments pile up on disk and go out when it is back.
//! An object's key is the hash of its content, so uploading a segment again
//! (after a crash between upload and delete) overwrites instead of
//! duplicating.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use crate::domain::Reading;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("archive I/O on {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("s3 {operation} s3://{bucket}/{key}: {reason}")]
    S3 {
        operation: &'static str,
        bucket: String,
        key: String,
        reason: String,
    },
}

/// Where archive objects go.
#[async_trait]
pub trait Archive: Send + Sync + 'static {
    /// Writes one object, replacing any with the same key.
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), ArchiveError>;
    /// Whether the archive answers, for `/ready`.
    async fn ping(&self) -> Result<(), String>;
}

/// The embedded archive: a directory with the S3 layout.
pub struct LocalArchive {
    root: PathBuf,
}

impl LocalArchive {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
}

fn io_error(path: &Path, e: std::io::Error) -> ArchiveError {
    ArchiveError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

#[async_trait]
impl Archive for LocalArchive {
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), ArchiveError> {
        let path = self.root.join(key);
        tokio::task::spawn_blocking(move || {
            let dir = path.parent().expect("keys have a directory");
            std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
            // Write aside and rename, so a reader never sees half an object.
            let partial = path.with_extension("partial");
            std::fs::write(&partial, &body).map_err(|e| io_error(&partial, e))?;
            std::fs::rename(&partial, &path).map_err(|e| io_error(&path, e))
        })
        .await
        .map_err(|e| ArchiveError::Io {
            path: key.to_owned(),
            reason: e.to_string(),
        })?
    }

    async fn ping(&self) -> Result<(), String> {
        tokio::fs::create_dir_all(&self.root)
            .await
            .map_err(|e| e.to_string())
    }
}

/// S3, or any S3-compatible store (MinIO, Ceph, moto...).
pub struct S3Archive {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Archive {
    /// Credentials and region come from the standard AWS chain
    /// (environment, profile, ECS task role, instance metadata);
    /// `endpoint` points at an S3-compatible store instead of AWS.
    pub async fn new(
        bucket: &str,
        region: Option<&str>,
        endpoint: Option<&str>,
        path_style: bool,
    ) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = region {
            loader = loader.region(aws_config::Region::new(region.to_owned()));
        }
        if let Some(endpoint) = endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let shared = loader.load().await;
        let config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(path_style)
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(30))
                    .connect_timeout(Duration::from_secs(3))
                    .build(),
            )
            .build();
        Self {
            client: aws_sdk_s3::Client::from_conf(config),
            bucket: bucket.to_owned(),
        }
    }
}

#[async_trait]
impl Archive for S3Archive {
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), ArchiveError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/x-ndjson")
            .content_encoding("gzip")
            .body(body.into())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| ArchiveError::S3 {
                operation: "put",
                bucket: self.bucket.clone(),
                key: key.to_owned(),
                reason: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
            })
    }

    async fn ping(&self) -> Result<(), String> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("s3: {}", aws_sdk_s3::error::DisplayErrorContext(&e)))
    }
}

/// One object to write: its key and gzip-compressed body.
#[derive(Debug, PartialEq)]
pub struct Object {
    pub key: String,
    pub body: Vec<u8>,
}

/// Appends a reading to a spool as one line: its partition (UTC date and
/// station), its time in Unix microseconds, and its JSON, tab-separated.
/// So the uploader groups and orders lines without parsing the JSON, which
/// is written once, here.
pub fn spool_line(r: &Reading, out: &mut Vec<u8>) {
    use std::io::Write as _;
    write!(
        out,
        "{}\t{}\t{}\t",
        r.observed_at.date_naive(),
        r.station_id.as_str(),
        r.observed_at.timestamp_micros()
    )
    .expect("writing to memory");
    serde_json::to_writer(&mut *out, r).expect("readings always serialise");
    out.push(b'\n');
}

/// A spool line's parts.
pub struct SpoolLine<'a> {
    /// The partition: UTC date and station.
    pub partition: (&'a [u8], &'a [u8]),
    /// Unix microseconds.
    pub at: i64,
    pub json: &'a [u8],
}

/// A spool line's parts; `None` for a line that is not one (cut by a power
/// loss).
pub fn parse_spool_line(line: &[u8]) -> Option<SpoolLine<'_>> {
    let mut parts = line.splitn(4, |b| *b == b'\t');
    let date = parts.next()?;
    let station = parts.next()?;
    let at = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let json = parts.next()?;
    // A cut line ends before its JSON does.
    (json.first() == Some(&b'{') && json.last() == Some(&b'}')).then_some(SpoolLine {
        partition: (date, station),
        at,
        json,
    })
}

/// Reads a byte range of a spool segment: its file, or memory.
pub trait ReadAt {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()>;
}

impl ReadAt for std::fs::File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let range = usize::try_from(offset)
            .ok()
            .and_then(|at| self.get(at..at.checked_add(buf.len())?))
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(range);
        Ok(())
    }
}

/// Where each partition's lines are in a spool segment, from one pass over
/// it: some 20 bytes a line. So a segment (up to `archive.segment_bytes`)
/// is cut into objects without ever being in memory whole; read whole, it
/// was a peak of several times its size that the allocator kept long
/// after.
pub struct SegmentIndex {
    /// `date\tstation` (so the order is by date, then station) -> where
    /// its lines' JSON is, in the segment's order.
    partitions: BTreeMap<Box<[u8]>, Vec<LineAt>>,
    /// Lines that are not spool lines (cut by a power loss).
    pub skipped: usize,
}

struct LineAt {
    /// Unix microseconds.
    at: i64,
    offset: u64,
    len: u32,
}

impl SegmentIndex {
    /// One pass over a segment's lines.
    pub fn read(mut spool: impl std::io::BufRead) -> std::io::Result<Self> {
        let mut index = Self {
            partitions: BTreeMap::new(),
            skipped: 0,
        };
        let mut line = Vec::new();
        let mut offset = 0u64;
        loop {
            line.clear();
            let n = spool.read_until(b'\n', &mut line)?;
            if n == 0 {
                return Ok(index);
            }
            let start = offset;
            offset += n as u64;
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            if text.is_empty() {
                continue;
            }
            let Some(parsed) = parse_spool_line(text) else {
                index.skipped += 1;
                continue;
            };
            let (date, station) = parsed.partition;
            let key = &text[..date.len() + 1 + station.len()];
            let json_from = parsed.json.as_ptr() as usize - text.as_ptr() as usize;
            let Ok(len) = u32::try_from(parsed.json.len()) else {
                index.skipped += 1;
                continue;
            };
            let at = LineAt {
                at: parsed.at,
                offset: start + json_from as u64,
                len,
            };
            match index.partitions.get_mut(key) {
                Some(rows) => rows.push(at),
                None => {
                    index.partitions.insert(key.into(), vec![at]);
                }
            }
        }
    }

    /// The objects for the segment's lines: one per (UTC date, station),
    /// lines in time order, one per time, keyed by the hash of their
    /// content; made one at a time, reading each line's JSON from `spool`.
    pub fn into_objects<'a, R: ReadAt + ?Sized>(
        self,
        prefix: &'a str,
        spool: &'a R,
    ) -> impl Iterator<Item = std::io::Result<Object>> + 'a {
        self.partitions.into_iter().map(move |(key, mut rows)| {
            // Stable: of lines with the same time, the first written stays.
            rows.sort_by_key(|row| row.at);
            rows.dedup_by_key(|row| row.at);
            let mut lines = Vec::with_capacity(rows.iter().map(|row| row.len as usize + 1).sum());
            for row in rows {
                let from = lines.len();
                lines.resize(from + row.len as usize, 0);
                spool.read_exact_at(&mut lines[from..], row.offset)?;
                lines.push(b'\n');
            }
            // The fastest level: it runs for every reading, and repetitive
            // JSON lines compress well at any level.
            let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
            gz.write_all(&lines).expect("writing to memory");
            let body = gz.finish().expect("writing to memory");
            // The same lines compress to the same bytes (the gzip header
            // carries no time), so hashing the smaller body keys the object
            // by its content just as well.
            let hash = hex::encode(&Sha256::digest(&body)[..16]);
            let (date, station) = key.split_at(
                key.iter()
                    .position(|b| *b == b'\t')
                    .expect("keys hold a tab"),
            );
            Ok(Object {
                key: format!(
                    "{prefix}readings/date={}/station={}/{hash}.jsonl.gz",
                    String::from_utf8_lossy(date),
                    String::from_utf8_lossy(&station[1..])
                ),
                body,
            })
        })
    }
}

/// The objects for spool lines in memory, and how many lines were skipped.
#[cfg(test)]
pub fn partition_spool(prefix: &str, spool: &[u8]) -> (Vec<Object>, usize) {
    let index = SegmentIndex::read(spool).expect("reading memory");
    let skipped = index.skipped;
    let objects = index
        .into_objects(prefix, spool)
        .collect::<std::io::Result<_>>()
        .expect("reading memory");
    (objects, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Observation, QcReport, StationId};
    use std::io::Read;

    /// The objects for a set of readings, spooled then partitioned.
    fn partition(prefix: &str, readings: &[Reading]) -> Vec<Object> {
        let mut spool = Vec::new();
        for r in readings {
            spool_line(r, &mut spool);
        }
        partition_spool(prefix, &spool).0
    }

    fn reading(station: &str, at: &str) -> Reading {
        let at = at.parse().unwrap();
        let mut obs = Observation::new(StationId::parse(station).unwrap(), at);
        obs.temperature_c = Some(1.5);
        Reading::new(obs, at, QcReport::default())
    }

    fn gunzip(body: &[u8]) -> String {
        let mut out = String::new();
        flate2::read::GzDecoder::new(body)
            .read_to_string(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn objects_are_partitioned_by_date_and_station_and_keyed_by_content() {
        let readings = [
            reading("WS002", "2025-01-13T23:59:00Z"),
            reading("WS001", "2025-01-14T00:01:00Z"),
            reading("WS001", "2025-01-13T10:00:00Z"),
            reading("WS001", "2025-01-13T09:00:00Z"),
            reading("WS001", "2025-01-13T09:00:00Z"),
        ];
        let objects = partition("lake/", &readings);
        let keys: Vec<&str> = objects
            .iter()
            .map(|o| o.key.rsplit_once('/').unwrap().0)
            .collect();
        assert_eq!(
            keys,
            [
                "lake/readings/date=2025-01-13/station=WS001",
                "lake/readings/date=2025-01-13/station=WS002",
                "lake/readings/date=2025-01-14/station=WS001",
            ]
        );
        let lines: Vec<String> = gunzip(&objects[0].body)
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(lines.len(), 2, "one line per reading, duplicates once");
        assert!(lines[0].contains("2025-01-13T09:00:00Z") && lines[1].contains("10:00:00Z"));
        assert_eq!(
            serde_json::from_str::<Reading>(&lines[0]).unwrap(),
            readings[3],
            "each line is the reading as JSON"
        );
        // The same content gives the same key, whatever the input order.
        let mut shuffled = readings.to_vec();
        shuffled.reverse();
        assert_eq!(partition("lake/", &shuffled), objects);
    }

    #[test]
    fn a_cut_spool_line_is_skipped() {
        let mut spool = Vec::new();
        spool_line(&reading("WS001", "2025-01-13T10:00:00Z"), &mut spool);
        spool_line(&reading("WS001", "2025-01-13T11:00:00Z"), &mut spool);
        // Cut by a power loss in the middle of the last line.
        spool.truncate(spool.len() - 10);
        let (objects, skipped) = partition_spool("", &spool);
        assert_eq!((objects.len(), skipped), (1, 1));
        assert_eq!(gunzip(&objects[0].body).lines().count(), 1);
    }

    #[tokio::test]
    async fn the_local_archive_writes_whole_objects() {
        let dir = tempfile::tempdir().unwrap();
        let archive = LocalArchive::new(dir.path());
        archive
            .put(
                "readings/date=2025-01-13/station=WS1/abc.jsonl.gz",
                b"x".to_vec(),
            )
            .await
            .unwrap();
        let path = dir
            .path()
            .join("readings/date=2025-01-13/station=WS1/abc.jsonl.gz");
        assert_eq!(std::fs::read(path).unwrap(), b"x");
        archive.ping().await.unwrap();
    }
}
