//! The durable, bounded on-disk outbox of events awaiting acknowledgement by the
//! controller (DESIGN.md, "Controller <-> agent link").
//!
//! Every record gets a per-agent sequence number (starting at 1, never reused, also not
//! across restarts or after everything was acknowledged) and is written to disk before
//! [`Outbox::append`] returns. It leaves the outbox only when [`Outbox::ack`] covers its
//! seq, or when it is a [`EventClass::Log`] record evicted because the outbox hit its
//! bound. The outbox stores opaque payload bytes; it knows nothing of event types.
//!
//! # Layout and format
//! The directory holds append-only segment files `seg-<first seq, 20 digits>.log`, an
//! `acked` watermark file and a `LOCK` file (an exclusive advisory lock held while open,
//! so two agents cannot share a directory). See [`format`] for the byte layout. A new
//! segment is started when the current one reaches `segment_bytes`; one batch is one
//! `write` syscall and may overshoot a segment.
//!
//! # Durability
//! After `append` returns `Ok`, the records are in the OS page cache and survive a
//! `kill -9` of the agent. Surviving power loss depends on [`FsyncPolicy`]:
//! `Always` fdatasyncs every batch; `Interval(d)` syncs when a batch finds the last sync
//! older than `d` (and [`OutboxHandle`] also syncs when `d` elapses after the last
//! unsynced write; a bare [`Outbox`] user calls [`Outbox::sync_if_due`]); `Never` leaves it
//! to the OS. With `Never`/`Interval`, a power loss can drop the newest records and their
//! seqs may then be issued again; the `acked` watermark still prevents reuse of any seq the
//! controller acknowledged. If an fsync fails, `append` returns the error although the
//! records are in the outbox (they will be sent).
//!
//! # Recovery ([`Outbox::open`])
//! Every segment is scanned and every record's CRC checked. At the first invalid record
//! of a segment the file is truncated at that record: at the end of a file this is the
//! torn tail of a crash (counted in `torn_tail_bytes`); anywhere else it is corruption,
//! logged with `warn!`, listed in [`RecoveryReport::corrupt`] and counted in
//! `corrupt_records`. **Records after a corrupt record in the same segment are dropped**
//! (there is no resynchronisation inside a segment; later segments are unaffected). A
//! segment with a foreign magic is renamed to `*.corrupt` and skipped; an unknown format
//! version is an error (refuse to touch a newer agent's data). Leftover `*.tmp` files
//! from an interrupted rewrite are removed. The next seq is `max(newest seq on disk,
//! acked watermark) + 1`.
//!
//! # Acknowledgement
//! `ack(upto)` acknowledges every seq ≤ `upto`. Acks at or below the watermark are
//! ignored (stale or duplicate acks from a reconnect); an ack beyond the newest assigned
//! seq is an error ([`OutboxError::AckBeyondNewest`]) and changes nothing. Sealed
//! segments whose records are all acknowledged are deleted; the segment being written
//! is deleted once it is full and rolled over.
//!
//! # Bound
//! When an append would take the bytes on disk above `max_bytes`, the outbox evicts the
//! unacknowledged `Log` records of the oldest sealed segments (all of a segment's at a
//! time, oldest first, and at least `max_bytes / 16` per round, so rewrites and gap
//! records stay rare) until the append fits, and appends one
//! `Critical` gap record built by the gap encoder from a [`Gap`] (its own seq, written
//! before the batch). The gap is written *before* the old segments are rewritten
//! (temp file + rename), so a crash in between at worst keeps lines the gap already
//! reported, it never loses lines silently. `Critical` records are never evicted: when
//! they alone exceed the bound, appends still succeed, the bound is exceeded, a warning is
//! logged once per episode and `over_bound_appends` counts them. The gap counts records
//! that were unacknowledged when evicted; some may already have been sent. A `Log` record
//! appended without [`LogMeta`] counts as one line at its record time.

pub mod format;
mod handle;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub use format::{MAX_PAYLOAD_BYTES, RECORD_OVERHEAD};
pub use handle::OutboxHandle;
use tracing::{debug, info, warn};

use self::format::{Decoded, HeaderError, RawLogMeta};

/// Whether a record may be evicted when the outbox is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventClass {
    /// Log lines: the oldest are evicted first under pressure (and reported by a gap).
    Log,
    /// Status, player, audit, gap events: never evicted.
    Critical,
}

impl EventClass {
    fn to_byte(self) -> u8 {
        match self {
            EventClass::Log => 0,
            EventClass::Critical => 1,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(EventClass::Log),
            1 => Some(EventClass::Critical),
            _ => None,
        }
    }
}

/// What a `Log` record carries: how many lines and which time range (for gap events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogMeta {
    pub lines: u32,
    pub first: SystemTime,
    pub last: SystemTime,
}

impl LogMeta {
    fn raw(self) -> RawLogMeta {
        RawLogMeta {
            lines: self.lines,
            first_ms: format::to_ms(self.first),
            last_ms: format::to_ms(self.last),
        }
    }

    fn from_raw(r: RawLogMeta) -> Self {
        LogMeta {
            lines: r.lines,
            first: format::from_ms(r.first_ms),
            last: format::from_ms(r.last_ms),
        }
    }
}

/// What one eviction round dropped; handed to the gap encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// Number of records evicted.
    pub records: u64,
    /// Sum of their log lines.
    pub lines: u64,
    /// Lowest and highest evicted seq (other seqs in between may have been kept).
    pub first_seq: u64,
    pub last_seq: u64,
    /// Earliest and latest line time of the evicted records.
    pub first_time: SystemTime,
    pub last_time: SystemTime,
}

/// Builds the payload of a gap record (the link's own event encoding).
pub type GapEncoder = Box<dyn Fn(&Gap) -> Vec<u8> + Send>;

/// A record read back from the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub class: EventClass,
    /// When the record was appended.
    pub time: SystemTime,
    pub log_meta: Option<LogMeta>,
    pub payload: Vec<u8>,
}

/// A record to append (owned; used by batches and by [`OutboxHandle`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    pub class: EventClass,
    pub payload: Vec<u8>,
    pub log_meta: Option<LogMeta>,
}

/// When segment writes are flushed to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    Never,
    Always,
    Interval(Duration),
}

/// Outbox settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxConfig {
    pub dir: PathBuf,
    /// Soft bound on bytes on disk (default 256 MiB). Only `Critical` records exceed it.
    pub max_bytes: u64,
    /// Roll to a new segment at this size (default 4 MiB; clamped to `max_bytes / 4`).
    pub segment_bytes: u64,
    pub fsync: FsyncPolicy,
}

impl OutboxConfig {
    pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;
    pub const DEFAULT_SEGMENT_BYTES: u64 = 4 * 1024 * 1024;

    /// Defaults with `FsyncPolicy::Interval(1s)`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        OutboxConfig {
            dir: dir.into(),
            max_bytes: Self::DEFAULT_MAX_BYTES,
            segment_bytes: Self::DEFAULT_SEGMENT_BYTES,
            fsync: FsyncPolicy::Interval(Duration::from_secs(1)),
        }
    }
}

/// Outbox errors. Cloneable so a failed group commit can answer every waiter.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox I/O error ({context}): {source}")]
    Io {
        context: String,
        #[source]
        source: Arc<io::Error>,
    },
    #[error("payload of {size} bytes exceeds the record limit of {max} bytes")]
    PayloadTooLarge { size: usize, max: usize },
    #[error("ack {upto} is beyond the newest sequence number {newest}")]
    AckBeyondNewest { upto: u64, newest: u64 },
    #[error("outbox directory {0} is in use by another process")]
    Locked(PathBuf),
    #[error("segment {path} has unsupported format version {version}")]
    UnsupportedVersion { path: PathBuf, version: u32 },
    #[error("invalid outbox configuration: {0}")]
    Config(String),
    #[error("the outbox worker has stopped")]
    Closed,
}

impl OutboxError {
    fn io(context: impl Into<String>, source: io::Error) -> Self {
        OutboxError::Io {
            context: context.into(),
            source: Arc::new(source),
        }
    }
}

type Result<T, E = OutboxError> = std::result::Result<T, E>;

trait IoContext<T> {
    fn ctx(self, what: &str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, what: &str, path: &Path) -> Result<T> {
        self.map_err(|e| OutboxError::io(format!("{what} {}", path.display()), e))
    }
}

/// Counters and gauges. Eviction/corruption counters count since [`Outbox::open`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Unacknowledged records held.
    pub records: u64,
    /// Bytes of segment files on disk (including acknowledged records not yet deleted).
    pub bytes: u64,
    pub segments: usize,
    /// Oldest unacknowledged seq.
    pub oldest_seq: Option<u64>,
    /// Newest seq ever assigned (0 before the first append).
    pub newest_seq: u64,
    /// Acknowledged watermark.
    pub acked: u64,
    pub evicted_records: u64,
    pub evicted_lines: u64,
    pub gaps: u64,
    /// Corrupt records found (at open, during eviction or when reading).
    pub corrupt_records: u64,
    /// Bytes of torn tails truncated at open.
    pub torn_tail_bytes: u64,
    /// Appends that left the outbox above `max_bytes` (Critical records alone too big).
    pub over_bound_appends: u64,
}

/// One corruption found while opening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    pub segment: PathBuf,
    pub offset: u64,
    /// Bytes dropped from `offset` to the end of the segment.
    pub dropped_bytes: u64,
    pub reason: String,
}

/// What [`Outbox::open`] found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments: usize,
    pub records: u64,
    pub torn_tail_bytes: u64,
    pub corrupt: Vec<Corruption>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    seq: u64,
    offset: u64,
    len: u32,
    class: EventClass,
    /// Evicted in memory; physically removed by the next rewrite of its segment.
    evicted: bool,
}

#[derive(Debug)]
struct Segment {
    base: u64,
    path: PathBuf,
    bytes: u64,
    entries: Vec<Entry>,
    /// Log entries not evicted (acknowledged ones included).
    live_log: usize,
    /// Bytes of evicted entries still in the file.
    dead_bytes: u64,
}

impl Segment {
    fn last_seq(&self) -> Option<u64> {
        self.entries.last().map(|e| e.seq)
    }

    fn first_seq(&self) -> Option<u64> {
        self.entries.first().map(|e| e.seq)
    }

    fn recount(&mut self) {
        self.live_log = self
            .entries
            .iter()
            .filter(|e| !e.evicted && e.class == EventClass::Log)
            .count();
        self.dead_bytes = self
            .entries
            .iter()
            .filter(|e| e.evicted)
            .map(|e| u64::from(e.len))
            .sum();
    }
}

/// Slack reserved for the gap record when making room.
const GAP_RESERVE: u64 = (RECORD_OVERHEAD + 256) as u64;
const MIN_SEGMENT_BYTES: u64 = 512;

/// The outbox. Not shared: wrap it in an [`OutboxHandle`] for async use.
pub struct Outbox {
    cfg: OutboxConfig,
    gap_encoder: GapEncoder,
    segments: VecDeque<Segment>,
    /// Append handle of `segments.back()`, if that segment is open for writing.
    active: Option<File>,
    next_seq: u64,
    acked: u64,
    total_bytes: u64,
    dirty: bool,
    last_sync: Instant,
    over_bound: bool,
    stats: OutboxStats,
    corrupt_reads: std::sync::atomic::AtomicU64,
    recovery: RecoveryReport,
    _lock: File,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("dir", &self.cfg.dir)
            .field("next_seq", &self.next_seq)
            .field("acked", &self.acked)
            .field("total_bytes", &self.total_bytes)
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// Opens (creating if needed) the outbox in `cfg.dir` and recovers its contents.
    pub fn open(mut cfg: OutboxConfig, gap_encoder: GapEncoder) -> Result<Self> {
        if cfg.max_bytes == 0 {
            return Err(OutboxError::Config("max_bytes must be > 0".into()));
        }
        let cap = (cfg.max_bytes / 4).max(MIN_SEGMENT_BYTES);
        if cfg.segment_bytes > cap || cfg.segment_bytes < MIN_SEGMENT_BYTES {
            let clamped = cfg.segment_bytes.clamp(MIN_SEGMENT_BYTES, cap);
            warn!(
                segment_bytes = cfg.segment_bytes,
                clamped, "outbox segment size clamped"
            );
            cfg.segment_bytes = clamped;
        }
        let dir = cfg.dir.clone();
        fs::create_dir_all(&dir).ctx("create", &dir)?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .ctx("open", &lock_path)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(OutboxError::Locked(dir)),
            Err(fs::TryLockError::Error(e)) => return Err(OutboxError::io("lock outbox", e)),
        }

        let acked_path = dir.join("acked");
        let acked = match fs::read(&acked_path) {
            Ok(b) => format::decode_acked(&b).unwrap_or_else(|| {
                warn!(path = %acked_path.display(), "outbox ack watermark unreadable; replaying from the start");
                0
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(OutboxError::io("read acked watermark", e)),
        };

        let mut bases = Vec::new();
        for entry in fs::read_dir(&dir).ctx("list", &dir)? {
            let entry = entry.ctx("list", &dir)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(".tmp") {
                let p = entry.path();
                debug!(path = %p.display(), "removing leftover outbox temp file");
                fs::remove_file(&p).ctx("remove", &p)?;
            } else if let Some(base) = format::parse_segment_file_name(name) {
                bases.push(base);
            }
        }
        bases.sort_unstable();

        let mut report = RecoveryReport::default();
        let mut segments = VecDeque::new();
        let mut max_seq = 0u64;
        let count = bases.len();
        for (i, base) in bases.into_iter().enumerate() {
            let is_last = i + 1 == count;
            if let Some(seg) =
                recover_segment(&dir, base, is_last, &mut max_seq, &mut report, cfg.fsync)?
            {
                segments.push_back(seg);
            }
        }
        report.segments = segments.len();
        report.records = segments.iter().map(|s| s.entries.len() as u64).sum();

        let total_bytes = segments.iter().map(|s| s.bytes).sum();
        let stats = OutboxStats {
            corrupt_records: report.corrupt.len() as u64,
            torn_tail_bytes: report.torn_tail_bytes,
            ..OutboxStats::default()
        };
        let mut outbox = Outbox {
            next_seq: max_seq.max(acked) + 1,
            acked,
            total_bytes,
            cfg,
            gap_encoder,
            segments,
            active: None,
            dirty: false,
            last_sync: Instant::now(),
            over_bound: false,
            stats,
            corrupt_reads: std::sync::atomic::AtomicU64::new(0),
            recovery: report,
            _lock: lock,
        };
        outbox.delete_acked_segments(true)?;
        if let Some(seg) = outbox.segments.back() {
            let f = OpenOptions::new()
                .append(true)
                .open(&seg.path)
                .ctx("open", &seg.path)?;
            outbox.active = Some(f);
        }
        info!(
            dir = %outbox.cfg.dir.display(),
            segments = outbox.segments.len(),
            records = outbox.recovery.records,
            acked = outbox.acked,
            next_seq = outbox.next_seq,
            torn_tail_bytes = outbox.recovery.torn_tail_bytes,
            corrupt = outbox.recovery.corrupt.len(),
            "outbox opened"
        );
        Ok(outbox)
    }

    /// What opening found and repaired.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Newest seq assigned so far (0 if none).
    pub fn newest_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Acknowledged watermark.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Appends one record; returns its seq.
    pub fn append(
        &mut self,
        class: EventClass,
        payload: &[u8],
        log_meta: Option<LogMeta>,
    ) -> Result<u64> {
        let range = self.append_refs(&[(class, payload, log_meta)])?;
        Ok(range.start)
    }

    /// Appends records with one write; returns their seqs (contiguous, in order). A gap
    /// record written by the same call takes the seq just before the range.
    pub fn append_batch(&mut self, records: &[NewRecord]) -> Result<Range<u64>> {
        let refs: Vec<_> = records
            .iter()
            .map(|r| (r.class, r.payload.as_slice(), r.log_meta))
            .collect();
        self.append_refs(&refs)
    }

    pub(crate) fn append_refs(
        &mut self,
        items: &[(EventClass, &[u8], Option<LogMeta>)],
    ) -> Result<Range<u64>> {
        if items.is_empty() {
            return Ok(self.next_seq..self.next_seq);
        }
        for (_, payload, _) in items {
            check_payload(payload.len())?;
        }
        let mut incoming: u64 = items
            .iter()
            .map(|(_, p, _)| format::frame_len(p.len()) as u64)
            .sum();
        if self.needs_roll() {
            incoming += format::SEGMENT_HEADER_LEN;
        }
        let plan = self.plan_eviction(incoming);
        let now_ms = format::to_ms(SystemTime::now());

        let gap_payload = match plan.as_ref().and_then(|p| p.gap.as_ref()) {
            Some(gap) => {
                let payload = (self.gap_encoder)(gap);
                check_payload(payload.len())?;
                Some(payload)
            }
            None => None,
        };
        let mut buf = Vec::with_capacity(
            incoming as usize
                + gap_payload
                    .as_ref()
                    .map_or(0, |p| format::frame_len(p.len())),
        );
        let mut seq = self.next_seq;
        let mut new_entries = Vec::with_capacity(items.len() + 1);
        let mut push =
            |buf: &mut Vec<u8>, seq: u64, class, meta: Option<RawLogMeta>, payload: &[u8]| {
                let offset = buf.len() as u64;
                format::encode_frame(buf, seq, class, now_ms, meta, payload);
                new_entries.push(Entry {
                    seq,
                    offset,
                    len: (buf.len() as u64 - offset) as u32,
                    class,
                    evicted: false,
                });
            };
        if let Some(payload) = &gap_payload {
            push(&mut buf, seq, EventClass::Critical, None, payload);
            seq += 1;
        }
        let first = seq;
        for (class, payload, meta) in items {
            push(&mut buf, seq, *class, meta.map(LogMeta::raw), payload);
            seq += 1;
        }
        let base_seq = self.next_seq;
        self.write_to_active(base_seq, &buf, new_entries)?;
        self.next_seq = seq;
        let mut synced = self.after_write();
        if let Some(plan) = plan {
            // The gap record must be durable before the evicted records disappear.
            if synced.is_ok() && self.cfg.fsync != FsyncPolicy::Never {
                synced = self.sync();
            }
            if synced.is_ok() {
                self.apply_eviction(plan);
            }
        }
        synced?;
        Ok(first..seq)
    }

    /// Writes `buf` (records starting at `first_seq`) to the active segment in one write.
    fn write_to_active(
        &mut self,
        first_seq: u64,
        buf: &[u8],
        mut entries: Vec<Entry>,
    ) -> Result<()> {
        if self.needs_roll() {
            self.roll(first_seq)?;
        }
        let (Some(file), Some(seg)) = (self.active.as_mut(), self.segments.back_mut()) else {
            return Err(OutboxError::io(
                "no active segment",
                io::Error::other("roll failed"),
            ));
        };
        if let Err(e) = file.write_all(buf) {
            // Do not leave half a batch in the middle of the segment.
            if let Err(e2) = file.set_len(seg.bytes) {
                warn!(error = %e2, path = %seg.path.display(), "could not truncate a failed outbox write; it will be repaired at the next open");
                self.active = None;
            }
            return Err(OutboxError::io(format!("write {}", seg.path.display()), e));
        }
        for e in &mut entries {
            e.offset += seg.bytes;
            if e.class == EventClass::Log {
                seg.live_log += 1;
            }
        }
        seg.entries.extend(entries);
        seg.bytes += buf.len() as u64;
        self.total_bytes += buf.len() as u64;
        self.dirty = true;
        Ok(())
    }

    fn needs_roll(&self) -> bool {
        match (self.active.is_some(), self.segments.back()) {
            (true, Some(seg)) => seg.bytes >= self.cfg.segment_bytes,
            _ => true,
        }
    }

    /// Seals the current segment and starts `seg-<first_seq>.log`.
    fn roll(&mut self, first_seq: u64) -> Result<()> {
        if let Some(old) = self.active.take()
            && self.dirty
            && self.cfg.fsync != FsyncPolicy::Never
        {
            old.sync_data().ctx("sync", &self.cfg.dir)?;
        }
        let path = self.cfg.dir.join(format::segment_file_name(first_seq));
        let mut f = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .ctx("create", &path)?;
        f.write_all(&format::segment_header()).ctx("write", &path)?;
        if self.cfg.fsync != FsyncPolicy::Never {
            sync_dir(&self.cfg.dir)?;
        }
        self.segments.push_back(Segment {
            base: first_seq,
            path,
            bytes: format::SEGMENT_HEADER_LEN,
            entries: Vec::new(),
            live_log: 0,
            dead_bytes: 0,
        });
        self.total_bytes += format::SEGMENT_HEADER_LEN;
        self.active = Some(f);
        // The segment just sealed may already be fully acknowledged.
        self.delete_acked_segments(false)?;
        Ok(())
    }

    fn after_write(&mut self) -> Result<()> {
        match self.cfg.fsync {
            FsyncPolicy::Never => Ok(()),
            FsyncPolicy::Always => self.sync(),
            FsyncPolicy::Interval(d) => {
                if self.last_sync.elapsed() >= d {
                    self.sync()
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Flushes written records to stable storage now.
    pub fn sync(&mut self) -> Result<()> {
        if self.dirty {
            if let Some(f) = &self.active {
                f.sync_data().ctx("sync", &self.cfg.dir)?;
            }
            self.dirty = false;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    /// With `FsyncPolicy::Interval`, syncs if unsynced data is older than the interval.
    pub fn sync_if_due(&mut self) -> Result<()> {
        match self.sync_deadline() {
            Some(t) if t <= Instant::now() => self.sync(),
            _ => Ok(()),
        }
    }

    /// When unsynced data must be synced under `FsyncPolicy::Interval`.
    pub fn sync_deadline(&self) -> Option<Instant> {
        match self.cfg.fsync {
            FsyncPolicy::Interval(d) if self.dirty => Some(self.last_sync + d),
            _ => None,
        }
    }

    /// Unacknowledged records with seq > `after`, in seq order, at most `max_records`
    /// and about `max_bytes` of payload (always at least one record if any is pending).
    /// Records whose CRC fails at read time are skipped with an error log.
    pub fn pending(&self, after: u64, max_records: usize, max_bytes: usize) -> Result<Vec<Record>> {
        let start = after.max(self.acked);
        let mut out = Vec::new();
        let mut payload_bytes = 0usize;
        'segments: for seg in &self.segments {
            if seg.last_seq().is_none_or(|l| l <= start) {
                continue;
            }
            let from = seg.entries.partition_point(|e| e.seq <= start);
            let mut picked: Vec<&Entry> = Vec::new();
            let mut full = false;
            for e in seg.entries[from..].iter().filter(|e| !e.evicted) {
                let payload_len = e.len as usize - RECORD_OVERHEAD;
                if out.len() + picked.len() >= max_records
                    || (!(out.is_empty() && picked.is_empty())
                        && payload_bytes + payload_len > max_bytes)
                {
                    full = true;
                    break;
                }
                payload_bytes += payload_len;
                picked.push(e);
            }
            if let (Some(first), Some(last)) = (picked.first(), picked.last()) {
                let begin = first.offset;
                let end = last.offset + u64::from(last.len);
                let mut buf = vec![0u8; (end - begin) as usize];
                let mut f = File::open(&seg.path).ctx("open", &seg.path)?;
                f.seek(SeekFrom::Start(begin)).ctx("seek", &seg.path)?;
                f.read_exact(&mut buf).ctx("read", &seg.path)?;
                for e in picked {
                    let at = (e.offset - begin) as usize;
                    match format::decode_frame(&buf[at..at + e.len as usize]) {
                        Decoded::Frame(fr) if fr.seq == e.seq => out.push(Record {
                            seq: fr.seq,
                            class: fr.class,
                            time: format::from_ms(fr.time_ms),
                            log_meta: fr.log.map(LogMeta::from_raw),
                            payload: fr.payload.to_vec(),
                        }),
                        _ => {
                            self.corrupt_reads
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            tracing::error!(seq = e.seq, path = %seg.path.display(), "outbox record corrupt on disk; skipped");
                        }
                    }
                }
            }
            if full {
                break 'segments;
            }
        }
        Ok(out)
    }

    /// Continues numbering above `seq`, a sequence number the controller has committed
    /// but this outbox never assigned: the agent's state was wiped (or restored from an
    /// older backup) while the controller kept its own. Without this, the controller
    /// would drop every new event up to `seq` as a duplicate of a different event it
    /// already has.
    ///
    /// Records still pending carry such colliding seqs, so they are appended again above
    /// `seq` (in order, with their class, log meta and payload; only the record time
    /// becomes now), then everything up to `seq` is acknowledged. Returns how many
    /// records moved. Does nothing when `seq` is not above the newest seq.
    ///
    /// A crash in the middle keeps the records moved so far (twice until the next
    /// `continue_after` or ack drops the originals); records not yet moved are lost
    /// once the controller's ack covers their old seqs. Moving happens in bounded
    /// chunks so memory stays small however full the outbox is.
    pub fn continue_after(&mut self, seq: u64) -> Result<u64> {
        let old_newest = self.newest_seq();
        if seq <= old_newest {
            return Ok(0);
        }
        const CHUNK_RECORDS: usize = 1024;
        const CHUNK_BYTES: usize = 4 * 1024 * 1024;
        self.next_seq = seq + 1;
        let mut after = 0;
        let mut moved = 0u64;
        loop {
            let mut chunk = self.pending(after, CHUNK_RECORDS, CHUNK_BYTES)?;
            chunk.retain(|r| r.seq <= old_newest);
            let Some(last) = chunk.last() else { break };
            after = last.seq;
            let items: Vec<_> = chunk
                .iter()
                .map(|r| (r.class, r.payload.as_slice(), r.log_meta))
                .collect();
            self.append_refs(&items)?;
            moved += chunk.len() as u64;
        }
        self.ack(seq)?;
        info!(
            seq,
            moved, "outbox numbering continues above the controller's acknowledged seq"
        );
        Ok(moved)
    }

    /// Acknowledges every seq ≤ `upto`. Stale acks (≤ the watermark) are ignored; an ack
    /// beyond the newest seq is an error and changes nothing.
    pub fn ack(&mut self, upto: u64) -> Result<()> {
        let newest = self.newest_seq();
        if upto > newest {
            return Err(OutboxError::AckBeyondNewest { upto, newest });
        }
        if upto <= self.acked {
            debug!(upto, acked = self.acked, "stale outbox ack ignored");
            return Ok(());
        }
        let previous = std::mem::replace(&mut self.acked, upto);
        let deletes = self.count_deletable(false) > 0;
        let durable = match self.cfg.fsync {
            FsyncPolicy::Never => false,
            FsyncPolicy::Always => true,
            // The watermark must be durable before the segments holding the newest seqs go.
            FsyncPolicy::Interval(_) => deletes,
        };
        if let Err(e) = self.write_acked(durable) {
            self.acked = previous;
            return Err(e);
        }
        self.delete_acked_segments(false)
    }

    fn write_acked(&self, durable: bool) -> Result<()> {
        let tmp = self.cfg.dir.join("acked.tmp");
        let dst = self.cfg.dir.join("acked");
        let mut f = File::create(&tmp).ctx("create", &tmp)?;
        f.write_all(&format::encode_acked(self.acked))
            .ctx("write", &tmp)?;
        if durable {
            f.sync_all().ctx("sync", &tmp)?;
        }
        drop(f);
        fs::rename(&tmp, &dst).ctx("rename", &tmp)?;
        if durable {
            sync_dir(&self.cfg.dir)?;
        }
        Ok(())
    }

    /// Number of leading segments that can go: all records acknowledged or evicted.
    /// The active segment only counts when it is full (or `include_active`).
    fn count_deletable(&self, include_active: bool) -> usize {
        let n = self.segments.len();
        self.segments
            .iter()
            .enumerate()
            .take_while(|(i, s)| {
                let is_active = *i + 1 == n && self.active.is_some();
                let done = s
                    .entries
                    .iter()
                    .rev()
                    .all(|e| e.evicted || e.seq <= self.acked);
                done && (!is_active || include_active || s.bytes >= self.cfg.segment_bytes)
            })
            .count()
    }

    fn delete_acked_segments(&mut self, include_active: bool) -> Result<()> {
        let n = self.count_deletable(include_active);
        for _ in 0..n {
            let Some(seg) = self.segments.pop_front() else {
                break;
            };
            if self.segments.is_empty() {
                self.active = None;
            }
            match fs::remove_file(&seg.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(OutboxError::io(format!("remove {}", seg.path.display()), e)),
            }
            self.total_bytes -= seg.bytes;
            debug!(path = %seg.path.display(), "outbox segment deleted");
        }
        Ok(())
    }

    /// Decides what to evict so that `incoming` more bytes fit (reading the evicted
    /// records' log meta for the gap). Only sealed segments are considered.
    fn plan_eviction(&mut self, incoming: u64) -> Option<EvictionPlan> {
        let max = self.cfg.max_bytes;
        if self.total_bytes + incoming <= max {
            if self.over_bound {
                info!("outbox back under its bound");
                self.over_bound = false;
            }
            return None;
        }
        // Free at least 1/16 of the bound per round: fewer rewrites and gap records.
        let need = (self.total_bytes + incoming + GAP_RESERVE - max).max(max / 16);
        let mut freed = 0u64;
        let mut times: Option<(SystemTime, SystemTime)> = None;
        let mut plan = EvictionPlan {
            segments: Vec::new(),
            evict: Vec::new(),
            gap: None,
        };
        let sealed = self.segments.len() - usize::from(self.active.is_some());
        for seg in self.segments.iter().take(sealed) {
            if freed >= need {
                break;
            }
            let has_acked = seg.first_seq().is_some_and(|s| s <= self.acked);
            if seg.live_log == 0 && seg.dead_bytes == 0 && !has_acked {
                continue;
            }
            let victims: Vec<&Entry> = seg
                .entries
                .iter()
                .filter(|e| !e.evicted && e.seq > self.acked && e.class == EventClass::Log)
                .collect();
            let droppable: u64 = seg
                .entries
                .iter()
                .filter(|e| e.evicted || e.seq <= self.acked)
                .map(|e| u64::from(e.len))
                .sum();
            if victims.is_empty() && droppable == 0 {
                continue;
            }
            freed += droppable + victims.iter().map(|e| u64::from(e.len)).sum::<u64>();
            if !victims.is_empty() {
                let metas = read_log_meta(seg, &victims);
                let gap = plan.gap.get_or_insert(Gap {
                    records: 0,
                    lines: 0,
                    first_seq: u64::MAX,
                    last_seq: 0,
                    first_time: SystemTime::UNIX_EPOCH,
                    last_time: SystemTime::UNIX_EPOCH,
                });
                for (e, meta) in victims.iter().zip(metas) {
                    let (lines, span) = match meta {
                        VictimMeta::Log(m) => (u64::from(m.lines), Some((m.first, m.last))),
                        VictimMeta::NoMeta(t) => (1, Some((t, t))),
                        VictimMeta::Corrupt => {
                            self.corrupt_reads
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            (0, None)
                        }
                    };
                    if let Some((first, last)) = span {
                        times = Some(match times {
                            None => (first, last),
                            Some((f, l)) => (f.min(first), l.max(last)),
                        });
                    }
                    gap.records += 1;
                    gap.lines += lines;
                    gap.first_seq = gap.first_seq.min(e.seq);
                    gap.last_seq = gap.last_seq.max(e.seq);
                    plan.evict.push(e.seq);
                }
            }
            plan.segments.push(seg.base);
        }
        if let Some(gap) = plan.gap.as_mut() {
            let (first, last) = times.unwrap_or_else(|| (SystemTime::now(), SystemTime::now()));
            gap.first_time = first;
            gap.last_time = last;
        }
        if freed < need {
            self.stats.over_bound_appends += 1;
            if !self.over_bound {
                warn!(
                    bytes = self.total_bytes,
                    max_bytes = max,
                    "outbox over its bound with nothing left to evict (critical records are never dropped)"
                );
                self.over_bound = true;
            }
        }
        (!plan.segments.is_empty()).then_some(plan)
    }

    /// Marks the plan's records evicted and rewrites (or deletes) its segments. I/O
    /// errors are logged, not returned: the append already succeeded, and the evicted
    /// records stay hidden in memory until a later rewrite succeeds.
    fn apply_eviction(&mut self, plan: EvictionPlan) {
        if let Some(gap) = &plan.gap {
            self.stats.gaps += 1;
            self.stats.evicted_records += gap.records;
            self.stats.evicted_lines += gap.lines;
            warn!(
                records = gap.records,
                lines = gap.lines,
                first_seq = gap.first_seq,
                last_seq = gap.last_seq,
                "outbox full: oldest log records evicted"
            );
        }
        for base in plan.segments {
            let Some(idx) = self.segments.iter().position(|s| s.base == base) else {
                continue;
            };
            let acked = self.acked;
            let seg = &mut self.segments[idx];
            for e in &mut seg.entries {
                if plan.evict.binary_search(&e.seq).is_ok() {
                    e.evicted = true;
                }
            }
            seg.recount();
            match rewrite_segment(seg, acked, self.cfg.fsync) {
                Ok(freed) => {
                    self.total_bytes -= freed;
                    if seg.entries.is_empty() {
                        self.segments.remove(idx);
                    }
                }
                Err(e) => warn!(error = %e, "outbox segment rewrite failed; will retry"),
            }
        }
        if self.cfg.fsync != FsyncPolicy::Never
            && let Err(e) = sync_dir(&self.cfg.dir)
        {
            warn!(error = %e, "outbox directory sync failed");
        }
    }

    /// Counters and gauges.
    pub fn stats(&self) -> OutboxStats {
        let mut s = self.stats.clone();
        s.records = 0;
        s.oldest_seq = None;
        for seg in &self.segments {
            let from = seg.entries.partition_point(|e| e.seq <= self.acked);
            for e in seg.entries[from..].iter().filter(|e| !e.evicted) {
                s.records += 1;
                if s.oldest_seq.is_none() {
                    s.oldest_seq = Some(e.seq);
                }
            }
        }
        s.bytes = self.total_bytes;
        s.segments = self.segments.len();
        s.newest_seq = self.newest_seq();
        s.acked = self.acked;
        s.corrupt_records += self
            .corrupt_reads
            .load(std::sync::atomic::Ordering::Relaxed);
        s
    }
}

struct EvictionPlan {
    /// Segment bases to rewrite, oldest first.
    segments: Vec<u64>,
    /// Seqs to evict, ascending.
    evict: Vec<u64>,
    gap: Option<Gap>,
}

enum VictimMeta {
    Log(LogMeta),
    NoMeta(SystemTime),
    Corrupt,
}

fn check_payload(len: usize) -> Result<()> {
    if len > MAX_PAYLOAD_BYTES {
        return Err(OutboxError::PayloadTooLarge {
            size: len,
            max: MAX_PAYLOAD_BYTES,
        });
    }
    Ok(())
}

/// Reads the log meta of `victims` (all in `seg`); unreadable records report `Corrupt`.
fn read_log_meta(seg: &Segment, victims: &[&Entry]) -> Vec<VictimMeta> {
    let data = match fs::read(&seg.path) {
        Ok(d) => d,
        Err(e) => {
            warn!(error = %e, path = %seg.path.display(), "cannot read outbox segment for eviction");
            return victims.iter().map(|_| VictimMeta::Corrupt).collect();
        }
    };
    victims
        .iter()
        .map(|e| {
            let Some(bytes) = data.get(e.offset as usize..e.offset as usize + e.len as usize)
            else {
                return VictimMeta::Corrupt;
            };
            match format::decode_frame(bytes) {
                Decoded::Frame(f) if f.seq == e.seq => match f.log {
                    Some(m) => VictimMeta::Log(LogMeta::from_raw(m)),
                    None => VictimMeta::NoMeta(format::from_ms(f.time_ms)),
                },
                _ => VictimMeta::Corrupt,
            }
        })
        .collect()
}

/// Rewrites `seg` without its evicted and acknowledged records (temp file + rename), or
/// deletes it when nothing is left. Returns the bytes freed.
fn rewrite_segment(seg: &mut Segment, acked: u64, fsync: FsyncPolicy) -> Result<u64> {
    let keep: Vec<Entry> = seg
        .entries
        .iter()
        .filter(|e| !e.evicted && e.seq > acked)
        .copied()
        .collect();
    if keep.is_empty() {
        fs::remove_file(&seg.path).ctx("remove", &seg.path)?;
        let freed = seg.bytes;
        seg.entries.clear();
        seg.bytes = 0;
        seg.recount();
        return Ok(freed);
    }
    let data = fs::read(&seg.path).ctx("read", &seg.path)?;
    let mut out = Vec::with_capacity(data.len());
    out.extend_from_slice(&format::segment_header());
    let mut entries = Vec::with_capacity(keep.len());
    for e in keep {
        let range = e.offset as usize..e.offset as usize + e.len as usize;
        let Some(bytes) = data.get(range) else {
            return Err(OutboxError::io(
                format!("rewrite {}", seg.path.display()),
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment shorter than its index",
                ),
            ));
        };
        entries.push(Entry {
            offset: out.len() as u64,
            ..e
        });
        out.extend_from_slice(bytes);
    }
    let mut tmp = seg.path.clone().into_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = File::create(&tmp).ctx("create", &tmp)?;
    f.write_all(&out).ctx("write", &tmp)?;
    if fsync != FsyncPolicy::Never {
        f.sync_all().ctx("sync", &tmp)?;
    }
    drop(f);
    fs::rename(&tmp, &seg.path).ctx("rename", &tmp)?;
    let freed = seg.bytes - out.len() as u64;
    seg.bytes = out.len() as u64;
    seg.entries = entries;
    seg.recount();
    Ok(freed)
}

/// Scans one segment at open, truncating it at the first invalid record. Returns
/// `None` when the segment holds no records (it is then deleted) or was quarantined.
fn recover_segment(
    dir: &Path,
    base: u64,
    is_last: bool,
    max_seq: &mut u64,
    report: &mut RecoveryReport,
    fsync: FsyncPolicy,
) -> Result<Option<Segment>> {
    let path = dir.join(format::segment_file_name(base));
    let data = fs::read(&path).ctx("read", &path)?;
    match format::check_segment_header(&data) {
        Ok(()) => {}
        Err(HeaderError::Short) => {
            // A crash right after creating the file: nothing in it.
            if !is_last {
                warn!(path = %path.display(), "outbox segment without header removed");
            }
            fs::remove_file(&path).ctx("remove", &path)?;
            return Ok(None);
        }
        Err(HeaderError::BadMagic) => {
            let mut q = path.clone().into_os_string();
            q.push(".corrupt");
            warn!(path = %path.display(), "outbox segment has a foreign header; moved aside as .corrupt");
            fs::rename(&path, PathBuf::from(q)).ctx("quarantine", &path)?;
            report.corrupt.push(Corruption {
                segment: path,
                offset: 0,
                dropped_bytes: data.len() as u64,
                reason: "bad segment magic".into(),
            });
            return Ok(None);
        }
        Err(HeaderError::Version(version)) => {
            return Err(OutboxError::UnsupportedVersion { path, version });
        }
    }
    let mut entries = Vec::new();
    let mut pos = format::SEGMENT_HEADER_LEN as usize;
    let mut problem: Option<&'static str> = None;
    let mut torn = false;
    while pos < data.len() {
        match format::decode_frame(&data[pos..]) {
            Decoded::Frame(f) if f.seq <= *max_seq => {
                problem = Some("sequence number not increasing");
                break;
            }
            Decoded::Frame(f) => {
                *max_seq = f.seq;
                entries.push(Entry {
                    seq: f.seq,
                    offset: pos as u64,
                    len: f.frame_len as u32,
                    class: f.class,
                    evicted: false,
                });
                pos += f.frame_len;
            }
            Decoded::Incomplete => {
                torn = true;
                break;
            }
            Decoded::Invalid(reason) => {
                // A bad final record in the last segment is what a torn write looks like
                // after power loss (garbage or zeros in the last page).
                let ends_at_eof = {
                    let len = u32::from_le_bytes([
                        data[pos],
                        data[pos + 1],
                        data[pos + 2],
                        data[pos + 3],
                    ]) as usize;
                    pos + format::FRAME_HEADER_LEN + len == data.len()
                };
                let zeros = data[pos..].iter().all(|&b| b == 0);
                if is_last && (zeros || (ends_at_eof && reason == "CRC mismatch")) {
                    torn = true;
                } else {
                    problem = Some(reason);
                }
                break;
            }
        }
    }
    if pos < data.len() {
        let dropped = (data.len() - pos) as u64;
        if torn && problem.is_none() {
            info!(path = %path.display(), bytes = dropped, "outbox torn tail truncated");
            report.torn_tail_bytes += dropped;
        } else {
            let reason = problem.unwrap_or("truncated record");
            warn!(
                path = %path.display(),
                offset = pos,
                dropped_bytes = dropped,
                reason,
                "outbox segment corrupt; this record and all after it in the segment are dropped"
            );
            report.corrupt.push(Corruption {
                segment: path.clone(),
                offset: pos as u64,
                dropped_bytes: dropped,
                reason: reason.into(),
            });
        }
        let f = OpenOptions::new()
            .write(true)
            .open(&path)
            .ctx("open", &path)?;
        f.set_len(pos as u64).ctx("truncate", &path)?;
        if fsync != FsyncPolicy::Never {
            f.sync_all().ctx("sync", &path)?;
        }
    }
    if entries.is_empty() {
        fs::remove_file(&path).ctx("remove", &path)?;
        return Ok(None);
    }
    let mut seg = Segment {
        base,
        path,
        bytes: pos as u64,
        entries,
        live_log: 0,
        dead_bytes: 0,
    };
    seg.recount();
    Ok(Some(seg))
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx("sync directory", dir)
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<()> {
    Ok(())
}
