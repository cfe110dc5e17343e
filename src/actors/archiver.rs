//! The archiver: appends every stored reading to a spool on local disk and
//! uploads closed spool segments to the archive (S3 or a local directory),
//! one object per (date, station), deleting a segment once all its objects
//! are written. The archive being down only makes segments wait on disk;
//! they are uploaded when it is back, after a restart too.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::task::JoinHandle;

use crate::domain::Reading;
use crate::storage::archive::{Archive, partition};
use crate::supervisor::Backoff;

pub enum ArchiverMsg {
    /// Newly stored readings.
    Append(Arc<[Reading]>),
    /// Periodic: close the open segment once it is old enough.
    Tick,
    /// Close the open segment now (shutdown); replies when closed.
    Close(RpcReplyPort<()>),
}

pub struct Archiver;

pub struct ArchiverArgs {
    pub archive: Arc<dyn Archive>,
    pub spool_dir: PathBuf,
    /// Prefix of every object key.
    pub prefix: String,
    /// A segment is closed (and uploaded) at this age ...
    pub segment_age: Duration,
    /// ... or this size, whichever comes first.
    pub segment_bytes: u64,
}

pub struct ArchiverState {
    spool_dir: PathBuf,
    segment_age: Duration,
    segment_bytes: u64,
    open: Option<Segment>,
    _uploader: Uploader,
}

struct Segment {
    path: PathBuf,
    file: BufWriter<std::fs::File>,
    bytes: u64,
    opened: Instant,
}

/// The upload task; aborted with its actor.
struct Uploader(JoinHandle<()>);

impl Drop for Uploader {
    fn drop(&mut self) {
        self.0.abort();
    }
}

const OPEN: &str = "open";
const CLOSED: &str = "jsonl";

impl Actor for Archiver {
    type Msg = ArchiverMsg;
    type State = ArchiverState;
    type Arguments = ArchiverArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: ArchiverArgs,
    ) -> Result<ArchiverState, ActorProcessingErr> {
        std::fs::create_dir_all(&args.spool_dir)?;
        // A segment left open by a crash holds whole lines up to its last
        // write; close it so it is uploaded.
        for path in segments(&args.spool_dir, OPEN)? {
            std::fs::rename(&path, path.with_extension(CLOSED))?;
        }
        myself.send_interval(Duration::from_secs(1), || ArchiverMsg::Tick);
        let uploader = tokio::spawn(upload_forever(
            args.archive,
            args.spool_dir.clone(),
            args.prefix,
        ));
        Ok(ArchiverState {
            spool_dir: args.spool_dir,
            segment_age: args.segment_age,
            segment_bytes: args.segment_bytes,
            open: None,
            _uploader: Uploader(uploader),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: ArchiverMsg,
        state: &mut ArchiverState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ArchiverMsg::Append(readings) => state.append(&readings)?,
            ArchiverMsg::Tick => {
                if state
                    .open
                    .as_ref()
                    .is_some_and(|s| s.opened.elapsed() >= state.segment_age)
                {
                    state.close()?;
                }
            }
            ArchiverMsg::Close(reply) => {
                state.close()?;
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

impl ArchiverState {
    fn append(&mut self, readings: &[Reading]) -> std::io::Result<()> {
        if self.open.is_none() {
            // Names sort by time, so segments go out in order.
            let name = format!(
                "{:020}-{:08x}.{OPEN}",
                chrono::Utc::now().timestamp_micros(),
                rand::random::<u32>()
            );
            let path = self.spool_dir.join(name);
            let file = std::fs::OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)?;
            self.open = Some(Segment {
                path,
                file: BufWriter::new(file),
                bytes: 0,
                opened: Instant::now(),
            });
        }
        let segment = self.open.as_mut().expect("opened above");
        for r in readings {
            let line = serde_json::to_vec(r).expect("readings always serialise");
            segment.file.write_all(&line)?;
            segment.file.write_all(b"\n")?;
            segment.bytes += line.len() as u64 + 1;
        }
        // Into the page cache: the lines survive a crash of the process.
        segment.file.flush()?;
        if segment.bytes >= self.segment_bytes {
            self.close()?;
        }
        Ok(())
    }

    fn close(&mut self) -> std::io::Result<()> {
        if let Some(mut segment) = self.open.take() {
            segment.file.flush()?;
            segment.file.get_ref().sync_data()?;
            std::fs::rename(&segment.path, segment.path.with_extension(CLOSED))?;
        }
        Ok(())
    }
}

/// Spool segments with `extension`, oldest first.
fn segments(dir: &Path, extension: &str) -> std::io::Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    paths.sort();
    Ok(paths)
}

const UPLOAD_RETRY: Backoff = Backoff {
    initial: Duration::from_millis(500),
    max: Duration::from_secs(30),
    factor: 2.0,
    jitter: 0.2,
};

async fn upload_forever(archive: Arc<dyn Archive>, spool_dir: PathBuf, prefix: String) {
    let mut failures = 0u32;
    loop {
        let pending = segments(&spool_dir, CLOSED).unwrap_or_default();
        metrics::gauge!("isobar_archive_pending_segments").set(pending.len() as f64);
        let mut failed = false;
        for path in pending {
            match upload(&*archive, &path, &prefix).await {
                Ok(objects) => {
                    failures = 0;
                    metrics::counter!("isobar_archive_objects_total").increment(objects as u64);
                    if let Err(e) = tokio::fs::remove_file(&path).await {
                        tracing::error!(segment = %path.display(), error = %e, "cannot remove an uploaded segment");
                    }
                }
                Err(e) => {
                    metrics::counter!("isobar_archive_errors_total").increment(1);
                    tracing::warn!(segment = %path.display(), error = %e,
                        "archive upload failed; the segment stays in the spool");
                    failed = true;
                    break;
                }
            }
        }
        let pause = if failed {
            failures = failures.saturating_add(1);
            UPLOAD_RETRY.delay(failures - 1, rand::random::<f64>())
        } else {
            Duration::from_secs(1)
        };
        tokio::time::sleep(pause).await;
    }
}

/// Uploads one segment's objects; returns how many.
async fn upload(archive: &dyn Archive, path: &Path, prefix: &str) -> Result<usize, String> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| e.to_string())?;
    let mut readings = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        match serde_json::from_str::<Reading>(line) {
            Ok(r) => readings.push(r),
            // Only a line cut by a power loss can be unreadable.
            Err(e) => {
                tracing::warn!(segment = %path.display(), error = %e, "skipping a cut spool line")
            }
        }
    }
    let objects = partition(prefix, &readings);
    let count = objects.len();
    for object in objects {
        archive
            .put(&object.key, object.body)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(count)
}
