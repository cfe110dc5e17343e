//! The archiver: moves stored readings to a spool on local disk, and
//! uploads closed spool segments to the archive (S3 or a local directory),
//! one object per (date, station), deleting a segment once all its objects
//! are written. Each stored batch leaves an entry in the store's archive
//! outbox in its own transaction, and once it commits the persister hands
//! its new readings to the archiver in memory; every second the archiver
//! appends what it holds to the spool, syncs it, and only then deletes the
//! entries. Entries nobody holds (a crash or a restart came in between)
//! have their readings read back from the store. A segment is removed only
//! once it is uploaded. So a crash, a full disk or the archive being down
//! delays the lake but never loses a reading in it.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::task::JoinHandle;

use crate::domain::Reading;
use crate::storage::archive::{Archive, Object, SegmentIndex, spool_line};
use crate::storage::{ArchiveOutbox, HeldBatches, Leftovers, StoredBatch};
use crate::supervisor::Backoff;

pub enum ArchiverMsg {
    /// A batch committed: its new readings.
    Stored(StoredBatch),
    /// Move what is held, and what was left over, into the spool (every
    /// second).
    Poll,
    /// Periodic: close the open segment once it is old enough.
    Tick,
    /// Close the open segment now (shutdown); replies when closed.
    Close(RpcReplyPort<()>),
}

pub struct Archiver;

pub struct ArchiverArgs {
    pub store: Arc<dyn ArchiveOutbox>,
    pub archive: Arc<dyn Archive>,
    pub spool_dir: PathBuf,
    /// Prefix of every object key.
    pub prefix: String,
    /// A segment is closed (and uploaded) at this age ...
    pub segment_age: Duration,
    /// ... or this size, whichever comes first.
    pub segment_bytes: u64,
}

impl ArchiverArgs {
    /// From `[archive]`; the spool is in the data directory.
    pub fn from_settings(
        settings: &crate::config::Settings,
        store: Arc<dyn ArchiveOutbox>,
        archive: Arc<dyn Archive>,
    ) -> Self {
        Self {
            store,
            archive,
            spool_dir: settings.storage.data_dir.join("spool"),
            prefix: settings.archive.prefix.clone(),
            segment_age: settings.archive.segment_age,
            segment_bytes: settings.archive.segment_bytes,
        }
    }
}

pub struct ArchiverState {
    store: Arc<dyn ArchiveOutbox>,
    /// Handed over, not yet in the spool.
    held: HeldBatches,
    /// In the spool, their outbox entries not yet deleted.
    spooled: Vec<i64>,
    /// After a failure (store or disk), no poll before this.
    retry_at: Option<Instant>,
    failures: u32,
    segment_age: Duration,
    /// Here between writes; a write takes it to the blocking pool.
    spool: Option<Spool>,
    _uploader: Uploader,
}

/// The spool on disk: closed segments, and the one being appended to.
struct Spool {
    dir: PathBuf,
    /// A segment is closed at this size.
    segment_bytes: u64,
    open: Option<Segment>,
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
        myself.send_interval(Duration::from_secs(1), || ArchiverMsg::Poll);
        let uploader = tokio::spawn(upload_forever(
            args.archive,
            args.spool_dir.clone(),
            args.prefix,
        ));
        Ok(ArchiverState {
            store: args.store,
            held: HeldBatches::new(MAX_HELD),
            spooled: Vec::new(),
            retry_at: None,
            failures: 0,
            segment_age: args.segment_age,
            spool: Some(Spool {
                dir: args.spool_dir,
                segment_bytes: args.segment_bytes,
                open: None,
            }),
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
            ArchiverMsg::Stored(batch) => state.held.push(batch),
            ArchiverMsg::Poll => state.poll(Leftovers::IN_FLIGHT).await,
            ArchiverMsg::Tick => {
                let age = state.segment_age;
                let due = state
                    .spool()
                    .open
                    .as_ref()
                    .is_some_and(|s| s.opened.elapsed() >= age);
                if due && let Err(e) = state.spool().close() {
                    state.failed("close a spool segment", &e);
                }
            }
            ArchiverMsg::Close(reply) => {
                // Whatever was committed has been handed over by now.
                state.poll(Duration::ZERO).await;
                if let Err(e) = state.spool().close() {
                    state.failed("close a spool segment", &e);
                }
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

/// Readings held at most while the spool cannot be written.
const MAX_HELD: usize = 200_000;

const SPOOL_RETRY: Backoff = Backoff {
    initial: Duration::from_millis(500),
    max: Duration::from_secs(30),
    factor: 2.0,
    jitter: 0.2,
};

impl ArchiverState {
    /// Moves what is held, then what was left over, into the spool until
    /// none is left. A failure (store unreachable, disk full) is retried
    /// later: the outbox keeps the entries meanwhile.
    async fn poll(&mut self, in_flight: Duration) {
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        if !self.held.batches().is_empty() {
            // Only batches whose entries are still there: one that waited
            // here longer than `in_flight` may have been spooled as a
            // leftover already.
            let seqs: Vec<i64> = self.held.batches().iter().map(|b| b.seq).collect();
            let present = match self.store.archive_present(&seqs).await {
                Ok(present) => present,
                Err(e) => return self.failed("read the archive outbox", &e),
            };
            let mut held = self.held.take();
            held.retain(|b| present.binary_search(&b.seq).is_ok());
            // Synced before the outbox forgets them: after a crash they are
            // either in the spool or still in the outbox (then spooled
            // again, and the object of the same content overwrites).
            if let Err((held, e)) = self.write_spool(held).await {
                for batch in held {
                    self.held.push(batch);
                }
                return self.failed("write the spool", &e);
            }
        }
        loop {
            if !self.spooled.is_empty() {
                if let Err(e) = self.store.archive_done(&self.spooled).await {
                    return self.failed("clear the archive outbox", &e);
                }
                self.spooled.clear();
            }
            let left = match self
                .store
                .archive_leftovers(Leftovers::older_than(in_flight))
                .await
            {
                Ok(left) => left,
                Err(e) => return self.failed("read the archive outbox", &e),
            };
            if left.is_empty() {
                break;
            }
            if let Err((_, e)) = self.write_spool(left).await {
                return self.failed("write the spool", &e);
            }
        }
        self.failures = 0;
        self.retry_at = None;
    }

    fn spool(&mut self) -> &mut Spool {
        self.spool
            .as_mut()
            .expect("the spool is back after every write")
    }

    /// Appends the batches' readings to the spool and syncs it, on the
    /// blocking pool (a second of readings' JSON and an fsync would
    /// otherwise hold a runtime worker and the readings queued on it); their
    /// entries are then `spooled`. On failure, the batches come back.
    async fn write_spool(
        &mut self,
        batches: Vec<StoredBatch>,
    ) -> Result<(), (Vec<StoredBatch>, std::io::Error)> {
        let mut spool = self
            .spool
            .take()
            .expect("the spool is back after every write");
        let (spool, batches, written) = tokio::task::spawn_blocking(move || {
            let written = spool.write(&batches);
            (spool, batches, written)
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        self.spool = Some(spool);
        match written {
            Ok(()) => {
                self.spooled.extend(batches.iter().map(|b| b.seq));
                Ok(())
            }
            Err(e) => Err((batches, e)),
        }
    }

    fn failed(&mut self, what: &str, error: &dyn std::fmt::Display) {
        let delay = SPOOL_RETRY.delay(self.failures, rand::random::<f64>());
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(Instant::now() + delay);
        metrics::counter!("isobar_archive_errors_total").increment(1);
        tracing::warn!(error = %error, retry_ms = delay.as_millis() as u64,
            "archiver could not {what}; the readings wait in the outbox");
    }
}

impl Spool {
    /// Appends the batches' readings and syncs them.
    fn write(&mut self, batches: &[StoredBatch]) -> std::io::Result<()> {
        for batch in batches {
            self.append(&batch.readings)?;
        }
        self.sync()
    }

    fn sync(&mut self) -> std::io::Result<()> {
        if let Some(segment) = self.open.as_mut() {
            segment.file.flush()?;
            segment.file.get_ref().sync_data()?;
        }
        Ok(())
    }

    fn append(&mut self, readings: &[Reading]) -> std::io::Result<()> {
        if self.open.is_none() {
            // Names sort by time, so segments go out in order.
            let name = format!(
                "{:020}-{:08x}.{OPEN}",
                chrono::Utc::now().timestamp_micros(),
                rand::random::<u32>()
            );
            let path = self.dir.join(name);
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
        let mut lines = Vec::with_capacity(readings.len() * 640);
        for r in readings {
            spool_line(r, &mut lines);
        }
        segment.file.write_all(&lines)?;
        segment.bytes += lines.len() as u64;
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
        let uploading = !pending.is_empty();
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
        if uploading {
            // An upload reads and compresses a whole segment (up to
            // `segment_bytes`): hand what it took back to the system.
            crate::memory::give_back();
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

/// Brings a spool segment to the current line format: one written by an
/// older version holds only each reading's JSON, and gets the keys in
/// front, line by line into a new file that then replaces it. A segment's
/// lines are appended in order, and a version only ever appends after
/// older ones, so one whose first line is current is current throughout.
fn with_keys(path: &Path) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader, Read};
    let mut first = [0u8];
    let read = std::fs::File::open(path)?.read(&mut first)?;
    if read == 0 || first[0] != b'{' {
        return Ok(());
    }
    let upgraded = path.with_extension("upgrading");
    let mut out = BufWriter::new(std::fs::File::create(&upgraded)?);
    let mut lines = BufReader::new(std::fs::File::open(path)?);
    let (mut line, mut keyed) = (Vec::new(), Vec::new());
    loop {
        line.clear();
        if lines.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        if text.is_empty() {
            continue;
        }
        // Only an older line starts with its JSON.
        let older = text
            .first()
            .filter(|b| **b == b'{')
            .and_then(|_| serde_json::from_slice::<Reading>(text).ok());
        keyed.clear();
        match older {
            Some(r) => spool_line(&r, &mut keyed),
            // A current line, or one cut by a power loss (skipped later).
            None => {
                keyed.extend_from_slice(text);
                keyed.push(b'\n');
            }
        }
        out.write_all(&keyed)?;
    }
    out.flush()?;
    out.get_ref().sync_data()?;
    std::fs::rename(&upgraded, path)
}

/// Uploads one segment's objects; returns how many. The segment is read
/// line by line for an index, then each object is made from its lines on
/// the blocking pool (compressing takes a while) and uploaded before the
/// next one is made: what is in memory is the index and an object or two,
/// never the segment.
async fn upload(archive: &dyn Archive, path: &Path, prefix: &str) -> Result<usize, String> {
    let (objects, mut made) = tokio::sync::mpsc::channel::<Object>(2);
    let (segment, prefix) = (path.to_owned(), prefix.to_owned());
    let cutting = tokio::task::spawn_blocking(move || -> std::io::Result<usize> {
        with_keys(&segment)?;
        let file = std::fs::File::open(&segment)?;
        let index = SegmentIndex::read(std::io::BufReader::new(&file))?;
        let skipped = index.skipped;
        for object in index.into_objects(&prefix, &file) {
            if objects.blocking_send(object?).is_err() {
                // An upload failed: the segment is tried again later.
                break;
            }
        }
        Ok(skipped)
    });
    let mut count = 0;
    while let Some(object) = made.recv().await {
        archive
            .put(&object.key, object.body)
            .await
            .map_err(|e| e.to_string())?;
        count += 1;
    }
    let skipped = cutting
        .await
        .map_err(|e| format!("partitioning the segment: {e}"))?
        .map_err(|e| format!("reading the segment: {e}"))?;
    if skipped > 0 {
        // Only a line cut by a power loss can be unreadable.
        tracing::warn!(segment = %path.display(), lines = skipped, "skipping cut spool lines");
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Observation, QcReport, StationId};

    fn reading(at: &str) -> Reading {
        let at = at.parse().unwrap();
        let mut obs = Observation::new(StationId::parse("WS001").unwrap(), at);
        obs.temperature_c = Some(1.5);
        Reading::new(obs, at, QcReport::default())
    }

    /// A batch spooled as a leftover (its hand-over came late) is not
    /// spooled again when the hand-over arrives: the lake holds each
    /// reading once.
    #[tokio::test]
    async fn a_batch_spooled_as_a_leftover_is_not_spooled_again() {
        use crate::storage::archive::LocalArchive;
        use crate::storage::{ReadingStore, SqliteStore, WriteBatch};
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("a.sqlite3")).unwrap());
        // Stored with an archive entry; its sequence number.
        let write = |readings: &[Reading]| {
            let store = store.clone();
            let readings = readings.to_vec();
            async move {
                let batch = WriteBatch {
                    readings,
                    quarantine: vec![],
                    archive: true,
                };
                store
                    .write_batch(Arc::new(batch))
                    .await
                    .unwrap()
                    .seq
                    .unwrap()
            }
        };
        let readings = vec![
            reading("2025-01-13T10:00:00Z"),
            reading("2025-01-13T10:01:00Z"),
        ];
        let seq = write(&readings).await;
        let lake = dir.path().join("lake");
        let (archiver, task) = Actor::spawn(
            None,
            Archiver,
            ArchiverArgs {
                store: store.clone(),
                archive: Arc::new(LocalArchive::new(&lake)),
                spool_dir: dir.path().join("spool"),
                prefix: String::new(),
                segment_age: Duration::from_secs(3600),
                segment_bytes: 1 << 30,
            },
        )
        .await
        .unwrap();
        // Closing takes every entry, however young: spooled as a leftover.
        let close = || archiver.call(ArchiverMsg::Close, Some(Duration::from_secs(10)));
        close().await.unwrap();
        // Then its hand-over arrives, with a later batch's.
        let later = vec![reading("2025-01-13T10:02:00Z")];
        let later_seq = write(&later).await;
        for (seq, readings) in [(seq, readings), (later_seq, later)] {
            archiver
                .cast(ArchiverMsg::Stored(crate::storage::StoredBatch {
                    seq,
                    readings: readings.into(),
                }))
                .unwrap();
        }
        close().await.unwrap();
        // Both segments uploaded: each reading once in all.
        let mut lines = 0;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if segments(&dir.path().join("spool"), CLOSED)
                .unwrap()
                .is_empty()
            {
                lines = objects_lines(&lake);
                break;
            }
        }
        assert_eq!(lines, 3);
        archiver.stop(None);
        task.await.unwrap();
    }

    /// An archive that fails from its `fail_from`th put on.
    struct Failing {
        puts: std::sync::atomic::AtomicUsize,
        fail_from: usize,
        inner: crate::storage::archive::LocalArchive,
    }

    #[async_trait::async_trait]
    impl Archive for Failing {
        async fn put(
            &self,
            key: &str,
            body: Vec<u8>,
        ) -> Result<(), crate::storage::archive::ArchiveError> {
            let n = self.puts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n >= self.fail_from {
                return Err(crate::storage::archive::ArchiveError::Io {
                    path: key.to_owned(),
                    reason: "unreachable".into(),
                });
            }
            self.inner.put(key, body).await
        }
        async fn ping(&self) -> Result<(), String> {
            Ok(())
        }
    }

    /// A segment is cut from its file one object at a time; an upload that
    /// fails part way stops the cutting and leaves the segment whole, and
    /// the next try writes every object, each reading once.
    #[tokio::test]
    async fn a_segment_whose_upload_fails_part_way_is_uploaded_whole_later() {
        use crate::storage::archive::LocalArchive;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.jsonl");
        let mut spool = Vec::new();
        let stations = ["WS001", "WS002", "WS003", "WS004", "WS005"];
        for (i, station) in stations.iter().enumerate() {
            for minute in 0..3 {
                let mut r = reading(&format!("2025-01-13T10:0{minute}:00Z"));
                r.station_id = StationId::parse(station).unwrap();
                spool_line(&r, &mut spool);
                if i == 0 && minute == 0 {
                    // Written twice (spooled again after a crash): once in the lake.
                    spool_line(&r, &mut spool);
                }
            }
        }
        std::fs::write(&path, &spool).unwrap();
        let lake = dir.path().join("lake");
        let failing = Failing {
            puts: Default::default(),
            fail_from: 2,
            inner: LocalArchive::new(&lake),
        };
        let error = upload(&failing, &path, "").await.unwrap_err();
        assert!(error.contains("unreachable"), "{error}");
        // Two objects written, then no more made than the channel holds.
        assert_eq!(objects_lines(&lake), 6);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            spool,
            "the segment is untouched"
        );
        let written = upload(&LocalArchive::new(&lake), &path, "").await.unwrap();
        assert_eq!(written, stations.len());
        assert_eq!(objects_lines(&lake), stations.len() * 3);
    }

    /// Lines across every object under `dir`.
    fn objects_lines(dir: &Path) -> usize {
        let mut lines = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                lines += objects_lines(&path);
            } else {
                let mut text = String::new();
                std::io::Read::read_to_string(
                    &mut flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap()),
                    &mut text,
                )
                .unwrap();
                lines += text.lines().count();
            }
        }
        lines
    }

    /// A segment spooled by an older version (bare JSON lines) is uploaded
    /// as if spooled now, mixed lines included.
    #[test]
    fn an_older_segment_gets_its_keys() {
        let (old, new) = (
            reading("2025-01-13T10:00:00Z"),
            reading("2025-01-13T11:00:00Z"),
        );
        let mut spool = serde_json::to_vec(&old).unwrap();
        spool.push(b'\n');
        spool_line(&new, &mut spool);
        let mut expected = Vec::new();
        spool_line(&old, &mut expected);
        spool_line(&new, &mut expected);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.jsonl");
        std::fs::write(&path, &spool).unwrap();
        with_keys(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected);
        // A current segment is left as it is.
        with_keys(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected);
        assert!(!path.with_extension("upgrading").exists());
    }
}
