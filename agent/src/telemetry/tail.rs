//! Following the game's log: [`DirTail`] tails the newest file matching a pattern in a
//! directory and delivers parsed lines in batches over a bounded channel.
//!
//! Every log source looks the same from here: when the game logs to its console the
//! supervisor appends stdout/stderr to a new `console_<start time>.log` per start;
//! games that write their own files (Arma on Windows: a new `.rpt` per start) name
//! them with their start time too. So the tailer follows *the newest matching file*
//! (as the game adapter's [`LogFilePattern`] ranks them) and moves on when a newer one
//! appears.
//!
//! Design:
//! * Polling, no inotify: read 64 KiB chunks while data flows; at end of file check
//!   for truncation and for a newer file, then sleep [`TailConfig::poll_interval`].
//! * One blocking task (`spawn_blocking`) does the reads and the parsing, so a log
//!   spamming 50k lines/s never occupies an async worker.
//! * Back-pressure: batches go through a bounded `mpsc` channel; a full channel makes the
//!   tailer wait (stoppable).
//!   A slow consumer makes the tailer wait, and the file is the buffer, so memory is
//!   bounded by about `(channel_capacity + 1) × batch size + chunk + max line`.
//! * Lines are cut by a `LineSplitter` (1 MiB cap; longer lines come as pieces with
//!   [`LogLine::continued`]) and parsed by the game adapter's [`LineParser`] (the
//!   tail knows no game's log format); invalid UTF-8 is decoded lossily, never an
//!   error.
//! * Every batch carries the byte offset just past its last line, so a consumer that
//!   persists [`LogBatch::position`] after storing the batch can [`DirTail::resume`]
//!   exactly there after a restart: no line lost, none repeated.
//!
//! Limitation: truncation is detected by the size dropping below the read offset; a
//! file truncated and refilled beyond the old offset between two polls is not noticed.

use std::fs::{File, Metadata};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

pub use self::parse::{LineDate, LineParser, LineTime, ParsedLine, PlainLines};
use super::RateLimitedLog;
use languard_shared::lines::{LineSplitter, SplitLine};
use languard_shared::wire::LogLevel as Level;

mod parse;

/// Which files in the directory belong to the log.
#[derive(Debug, Clone)]
pub enum LogFilePattern {
    /// `<prefix>…<extension>` (both case-sensitive), e.g. `console_` + `.log`. The
    /// newest is the one with the greatest name: the names embed a zero-padded start
    /// time (`console_YYYY-MM-DD_HH-MM-SS.log`), so name order is start order.
    PrefixExt { prefix: String, extension: String },
    /// A game's own naming scheme ([`LogFileRanking`]): ranked by the start time the
    /// game puts in the name, then modification time, then name.
    Ranked(Arc<dyn LogFileRanking>),
}

/// A game's log file names: which belong to the log and when each was started.
pub trait LogFileRanking: Send + Sync + std::fmt::Debug {
    /// Does a file name belong to the log?
    fn matches(&self, name: &str) -> bool;
    /// The start time the name carries, as any number that grows with it (e.g.
    /// `YYYYMMDDhhmmss`); `None` ranks below every stamped name.
    fn start_stamp(&self, name: &str) -> Option<u64>;
}

/// Patterns are equal when they select and rank the same files; rankings are plain
/// configuration values, so their `Debug` text identifies them.
impl PartialEq for LogFilePattern {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                Self::PrefixExt { prefix, extension },
                Self::PrefixExt {
                    prefix: p,
                    extension: e,
                },
            ) => prefix == p && extension == e,
            (Self::Ranked(a), Self::Ranked(b)) => format!("{a:?}") == format!("{b:?}"),
            _ => false,
        }
    }
}

impl Eq for LogFilePattern {}

impl LogFilePattern {
    /// The supervisor's captured console output: `console_*.log`.
    pub fn console() -> Self {
        Self::PrefixExt {
            prefix: "console_".to_owned(),
            extension: ".log".to_owned(),
        }
    }

    /// Does a file name belong to the log?
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Self::PrefixExt { prefix, extension } => {
                name.len() >= prefix.len() + extension.len()
                    && name.starts_with(prefix.as_str())
                    && name.ends_with(extension.as_str())
            }
            Self::Ranked(r) => r.matches(name),
        }
    }

    /// The newest matching regular file directly in `dir`. Directories and entries
    /// that vanish while scanning are ignored; errors only if `dir` cannot be read.
    pub fn newest(&self, dir: &Path) -> io::Result<Option<PathBuf>> {
        type Key = (Option<u64>, SystemTime, String);
        let mut best: Option<(Key, PathBuf)> = None;
        for entry in std::fs::read_dir(dir)? {
            let Ok(entry) = entry else { continue };
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !self.matches(&name) {
                continue;
            }
            if let Self::PrefixExt { .. } = self
                && best.as_ref().is_some_and(|((_, _, b), _)| *b >= name)
            {
                // Name order is start order: no need to look at this one.
                continue;
            }
            let path = entry.path();
            // Follows symlinks, so a link to a log counts and a link to a dir does not.
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let key = self.rank(&name, meta.modified().unwrap_or(SystemTime::UNIX_EPOCH));
            if best.as_ref().is_none_or(|(k, _)| key > *k) {
                best = Some((key, path));
            }
        }
        Ok(best.map(|(_, p)| p))
    }

    /// Rank of a file for "newer than" comparisons (greater is newer).
    fn rank(&self, name: &str, mtime: SystemTime) -> (Option<u64>, SystemTime, String) {
        match self {
            Self::PrefixExt { .. } => (None, SystemTime::UNIX_EPOCH, name.to_owned()),
            Self::Ranked(r) => (r.start_stamp(name), mtime, name.to_owned()),
        }
    }
}

/// Settings of one [`DirTail`]. [`TailConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct TailConfig {
    /// Directory holding the log files; it may not exist yet.
    pub dir: PathBuf,
    pub pattern: LogFilePattern,
    /// The game's line format (timestamp prefix, severity).
    pub parser: Arc<dyn LineParser>,
    /// Sleep at end of file before looking again. Default 100 ms; while the log stays
    /// quiet the sleep doubles up to [`TailConfig::max_idle_interval`], and the first
    /// new data resets it, so an idle server costs few wake-ups and a busy one none.
    pub poll_interval: Duration,
    /// Longest sleep at end of file. Default 400 ms.
    pub max_idle_interval: Duration,
    /// How often, at most, an idle tailer lists the folder to look for a newer file.
    /// Default 1 s.
    pub rotation_check_interval: Duration,
    /// Read size. Default 64 KiB.
    pub read_chunk: usize,
    /// Longer lines are delivered in pieces. Default 1 MiB.
    pub max_line_len: usize,
    /// A batch is sent when it holds this many lines… Default 1000.
    pub batch_max_lines: usize,
    /// …or this many bytes of text… Default 256 KiB.
    pub batch_max_bytes: usize,
    /// …or its first line is this old (checked per chunk; at end of file a batch is
    /// sent at once). Default 50 ms.
    pub batch_max_latency: Duration,
    /// Batches the channel holds before the tailer waits. Default 8.
    pub channel_capacity: usize,
}

impl TailConfig {
    pub fn new(
        dir: impl Into<PathBuf>,
        pattern: LogFilePattern,
        parser: Arc<dyn LineParser>,
    ) -> Self {
        Self {
            dir: dir.into(),
            pattern,
            parser,
            poll_interval: Duration::from_millis(100),
            max_idle_interval: Duration::from_millis(400),
            rotation_check_interval: Duration::from_secs(1),
            read_chunk: 64 * 1024,
            max_line_len: LineSplitter::DEFAULT_MAX_LINE,
            batch_max_lines: 1000,
            batch_max_bytes: 256 * 1024,
            batch_max_latency: Duration::from_millis(50),
            channel_capacity: 8,
        }
    }
}

/// Identity of a file independent of its name (device and inode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    #[cfg(unix)]
    pub fn of(meta: &Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    /// Without inode numbers every file looks the same; resume then relies on the name
    /// and size alone.
    #[cfg(not(unix))]
    pub fn of(_meta: &Metadata) -> Self {
        Self::default()
    }
}

/// A checkpoint: "everything before `offset` of this file has been stored".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TailPosition {
    /// File name inside [`TailConfig::dir`].
    pub file: String,
    pub dev: u64,
    pub ino: u64,
    pub offset: u64,
}

/// One line (or piece of an over-long line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// When the tailer read it (one reading per chunk).
    pub received: SystemTime,
    /// The time printed at the start of the line, if the game's format has one.
    pub time: Option<LineTime>,
    pub level: Level,
    /// The message after the timestamp prefix, without the line ending (see
    /// [`ParsedLine`]).
    pub text: String,
    /// The physical line was longer than [`TailConfig::max_line_len`]; the next line(s)
    /// continue it. Continuation pieces have no `time` and the first piece's `level`.
    pub continued: bool,
}

/// Something the consumer should know besides the lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TailNotice {
    /// Started reading `file` at `offset`: the first file, a resumed one, or a newer
    /// one after the previous file was read to its end.
    Opened { file: PathBuf, offset: u64 },
    /// The file shrank below what was read; reading restarted at 0. Lines before were
    /// all delivered already (a pending partial line was flushed).
    Truncated { file: PathBuf, previous_offset: u64 },
    /// The checkpoint could not be honoured; the tailer started the newest file (or,
    /// for [`ResumeFailure::Shrank`], the same file) from 0. Lines may have been lost.
    ResumeFailed {
        position: TailPosition,
        reason: ResumeFailure,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResumeFailure {
    /// No file of that name any more.
    Missing,
    /// A file of that name exists but is a different file (other inode).
    Replaced,
    /// Same file, but now shorter than the checkpoint offset.
    Shrank,
}

/// Lines from one file, in file order. May be empty when it only carries notices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogBatch {
    pub file: PathBuf,
    pub file_id: FileId,
    pub lines: Vec<LogLine>,
    /// Offset just past the last line of this batch (a held-back partial line is not
    /// included). Persist [`LogBatch::position`] after storing the batch.
    pub next_offset: u64,
    /// Usually empty; delivered before `lines` in meaning.
    pub notices: Vec<TailNotice>,
}

impl LogBatch {
    /// The checkpoint to persist once this batch is stored.
    pub fn position(&self) -> TailPosition {
        TailPosition {
            file: self
                .file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            dev: self.file_id.dev,
            ino: self.file_id.ino,
            offset: self.next_offset,
        }
    }
}

/// Counters of a running tailer (monotonic).
#[derive(Debug, Default)]
pub struct TailStats {
    /// Bytes read from files (all files; restarts at truncation are not subtracted).
    pub bytes_read: AtomicU64,
    /// Lines (pieces) handed to the channel.
    pub lines_sent: AtomicU64,
    /// Batches handed to the channel.
    pub batches_sent: AtomicU64,
}

/// Where a [`DirTail`] starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailStart {
    /// The newest file from its beginning (a freshly started server).
    Beginning,
    /// The newest file from its current end (only new lines).
    End,
    /// A checkpoint from [`LogBatch::position`].
    Resume(TailPosition),
}

/// Follows the newest matching log file of a directory. Build it, then [`spawn`].
///
/// [`spawn`]: DirTail::spawn
#[derive(Debug, Clone)]
pub struct DirTail {
    config: TailConfig,
    start: TailStart,
}

impl DirTail {
    /// Start at the beginning of the newest file (waiting for one to appear).
    pub fn new(config: TailConfig) -> Self {
        Self::with_start(config, TailStart::Beginning)
    }

    /// Continue exactly after a persisted checkpoint. If that file is gone or is a
    /// different file now, the newest file is read from 0 and the first batch carries
    /// [`TailNotice::ResumeFailed`].
    pub fn resume(config: TailConfig, position: TailPosition) -> Self {
        Self::with_start(config, TailStart::Resume(position))
    }

    pub fn with_start(config: TailConfig, start: TailStart) -> Self {
        Self { config, start }
    }

    /// Starts the tailer on the blocking pool (needs a tokio runtime). It runs until
    /// [`TailHandle::stop`] or until the receiver is dropped.
    pub fn spawn(self) -> (TailHandle, mpsc::Receiver<LogBatch>) {
        let (tx, rx) = mpsc::channel(self.config.channel_capacity.max(1));
        let stop = Arc::new(Stop::new());
        let stats = Arc::new(TailStats::default());
        let sink = Sink {
            tx,
            rt: tokio::runtime::Handle::current(),
            stop: Arc::clone(&stop),
            stats: Arc::clone(&stats),
            closed: false,
            max_lines: self.config.batch_max_lines.max(1),
            max_bytes: self.config.batch_max_bytes.max(1),
        };
        let tailer = Tailer::new(self.config, self.start, sink, Arc::clone(&stop));
        let task = tokio::task::spawn_blocking(move || tailer.run());
        (TailHandle { stop, stats, task }, rx)
    }
}

/// Control of a running tailer.
#[derive(Debug)]
pub struct TailHandle {
    stop: Arc<Stop>,
    stats: Arc<TailStats>,
    task: tokio::task::JoinHandle<()>,
}

impl TailHandle {
    /// Asks the tailer to end, also while it waits for channel space. Batches not yet
    /// received are dropped; resume from the last stored position.
    pub fn stop(&self) {
        self.stop.set();
    }

    pub fn stats(&self) -> &TailStats {
        &self.stats
    }

    /// Stops the tailer and waits for it to end.
    pub async fn shutdown(self) {
        self.stop.set();
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "log tailer task failed");
        }
    }
}

/// The stop request, observable by blocking sleeps (condvar) and by the async send
/// (watch).
#[derive(Debug)]
struct Stop {
    flag: Mutex<bool>,
    cv: Condvar,
    watch: tokio::sync::watch::Sender<bool>,
}

impl Stop {
    fn new() -> Self {
        Self {
            flag: Mutex::new(false),
            cv: Condvar::new(),
            watch: tokio::sync::watch::Sender::new(false),
        }
    }

    fn set(&self) {
        *self.flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
        self.watch.send_replace(true);
    }

    fn is_set(&self) -> bool {
        *self.flag.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps up to `d`; true if stopped.
    fn sleep(&self, d: Duration) -> bool {
        let guard = self.flag.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = self
            .cv
            .wait_timeout_while(guard, d, |stopped| !*stopped)
            .unwrap_or_else(|e| e.into_inner());
        *guard
    }
}

/// The file being read.
struct Current {
    path: PathBuf,
    name: String,
    file: File,
    id: FileId,
    /// Offset of the next byte to read.
    read_offset: u64,
}

/// Line-level state, reset per file.
struct LineState {
    splitter: LineSplitter,
    /// Offset just past the last emitted line or piece.
    emitted_offset: u64,
    /// The last piece was `continued`; the next one belongs to the same line.
    in_continuation: bool,
    continuation_level: Level,
}

impl LineState {
    fn new(max_line_len: usize, offset: u64) -> Self {
        Self {
            splitter: LineSplitter::new(max_line_len),
            emitted_offset: offset,
            in_continuation: false,
            continuation_level: Level::Info,
        }
    }
}

/// Lines collected for the next batch.
#[derive(Default)]
struct Pending {
    lines: Vec<LogLine>,
    bytes: usize,
    first_at: Option<Instant>,
    notices: Vec<TailNotice>,
}

/// Sends batches; remembers when the receiver is gone (or a stop interrupted a send).
struct Sink {
    tx: mpsc::Sender<LogBatch>,
    /// To wait for channel space from the blocking thread while staying stoppable.
    rt: tokio::runtime::Handle,
    stop: Arc<Stop>,
    stats: Arc<TailStats>,
    closed: bool,
    max_lines: usize,
    max_bytes: usize,
}

impl Sink {
    fn full(&self, p: &Pending) -> bool {
        p.lines.len() >= self.max_lines || p.bytes >= self.max_bytes
    }

    /// Sends what is pending (if anything) as a batch of `cur` ending at `offset`.
    fn flush(&mut self, p: &mut Pending, cur: &Current, offset: u64) {
        if self.closed || (p.lines.is_empty() && p.notices.is_empty()) {
            return;
        }
        let lines = std::mem::take(&mut p.lines);
        let n = lines.len() as u64;
        let batch = LogBatch {
            file: cur.path.clone(),
            file_id: cur.id,
            lines,
            next_offset: offset,
            notices: std::mem::take(&mut p.notices),
        };
        p.bytes = 0;
        p.first_at = None;
        let sent = match self.tx.try_send(batch) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Closed(_)) => false,
            Err(mpsc::error::TrySendError::Full(batch)) => {
                // Back-pressure: wait for the consumer, but not past a stop request.
                let tx = &self.tx;
                let mut stop = self.stop.watch.subscribe();
                self.rt.block_on(async move {
                    tokio::select! {
                        r = tx.send(batch) => r.is_ok(),
                        _ = stop.wait_for(|s| *s) => false,
                    }
                })
            }
        };
        if !sent {
            self.closed = true;
            return;
        }
        self.stats.lines_sent.fetch_add(n, Ordering::Relaxed);
        self.stats.batches_sent.fetch_add(1, Ordering::Relaxed);
    }
}

struct Tailer {
    cfg: TailConfig,
    start: Option<TailStart>,
    stop: Arc<Stop>,
    sink: Sink,
    cur: Option<Current>,
    lines: LineState,
    pending: Pending,
    buf: Vec<u8>,
    errors: RateLimitedLog,
    /// When the folder was last listed for a newer file.
    last_rotation_check: Option<std::time::Instant>,
}

impl Tailer {
    fn new(cfg: TailConfig, start: TailStart, sink: Sink, stop: Arc<Stop>) -> Self {
        Self {
            lines: LineState::new(cfg.max_line_len, 0),
            buf: vec![0; cfg.read_chunk.max(1)],
            start: Some(start),
            stop,
            sink,
            cur: None,
            pending: Pending::default(),
            errors: RateLimitedLog::new(Duration::from_secs(60)),
            last_rotation_check: None,
            cfg,
        }
    }

    fn done(&self) -> bool {
        self.sink.closed || self.sink.tx.is_closed() || self.stop.is_set()
    }

    fn run(mut self) {
        let mut idle = self.cfg.poll_interval;
        while !self.done() {
            match self.step() {
                Ok(true) => idle = self.cfg.poll_interval,
                Ok(false) => {
                    if self.stop.sleep(idle) {
                        break;
                    }
                    idle = (idle * 2).min(self.cfg.max_idle_interval.max(self.cfg.poll_interval));
                }
                Err(e) => {
                    if let Some(suppressed) = self.errors.failure() {
                        tracing::warn!(dir = %self.cfg.dir.display(), error = %e, suppressed, "log tailer error");
                    }
                    if self.stop.sleep(self.cfg.poll_interval) {
                        break;
                    }
                }
            }
        }
    }

    /// One unit of work; `Ok(true)` when it made progress (no sleep needed).
    fn step(&mut self) -> io::Result<bool> {
        if self.cur.is_none() && !self.open_initial()? {
            return Ok(false);
        }
        if self.read_chunk()? {
            if self
                .pending
                .first_at
                .is_some_and(|t| t.elapsed() >= self.cfg.batch_max_latency)
            {
                self.flush();
            }
            return Ok(true);
        }
        // End of file. Listing the folder is the costly part of an idle poll, so a
        // newer file is looked for at most once per `rotation_check_interval`.
        if self.check_truncated()? {
            return Ok(true);
        }
        let rotation_due = self
            .last_rotation_check
            .is_none_or(|t| t.elapsed() >= self.cfg.rotation_check_interval);
        if rotation_due {
            self.last_rotation_check = Some(std::time::Instant::now());
            if self.check_rotated()? {
                return Ok(true);
            }
        }
        self.flush();
        if self.errors.recovered() {
            tracing::info!(dir = %self.cfg.dir.display(), "log tailer recovered");
        }
        Ok(false)
    }

    fn flush(&mut self) {
        if let Some(cur) = &self.cur {
            self.sink
                .flush(&mut self.pending, cur, self.lines.emitted_offset);
        }
    }

    /// Opens the first file according to the start mode; false if none exists yet.
    fn open_initial(&mut self) -> io::Result<bool> {
        if let Some(TailStart::Resume(pos)) = self.start.clone() {
            let path = self.cfg.dir.join(&pos.file);
            let failure = match std::fs::metadata(&path) {
                Ok(meta)
                    if meta.is_file()
                        && FileId::of(&meta)
                            == (FileId {
                                dev: pos.dev,
                                ino: pos.ino,
                            }) =>
                {
                    if meta.len() >= pos.offset {
                        self.start = None;
                        self.open(path, pos.offset)?;
                        return Ok(true);
                    }
                    self.start = None;
                    self.pending.notices.push(TailNotice::ResumeFailed {
                        position: pos,
                        reason: ResumeFailure::Shrank,
                    });
                    self.open(path, 0)?;
                    return Ok(true);
                }
                Ok(_) => ResumeFailure::Replaced,
                Err(_) => ResumeFailure::Missing,
            };
            tracing::warn!(file = %path.display(), ?failure, "log checkpoint unusable; reading the newest log from its start");
            self.pending.notices.push(TailNotice::ResumeFailed {
                position: pos,
                reason: failure,
            });
            self.start = Some(TailStart::Beginning);
        }
        let newest = match self.cfg.pattern.newest(&self.cfg.dir) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let Some(path) = newest else {
            // A file that appears later is new: read all of it.
            self.start = Some(TailStart::Beginning);
            return Ok(false);
        };
        let at_end = self.start == Some(TailStart::End);
        let offset = if at_end {
            std::fs::metadata(&path)?.len()
        } else {
            0
        };
        self.start = None;
        self.open(path, offset)?;
        Ok(true)
    }

    fn open(&mut self, path: PathBuf, offset: u64) -> io::Result<()> {
        let mut file = File::open(&path)?;
        let id = FileId::of(&file.metadata()?);
        if offset > 0 {
            file.seek(SeekFrom::Start(offset))?;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        tracing::debug!(file = %path.display(), offset, "tailing log file");
        self.pending.notices.push(TailNotice::Opened {
            file: path.clone(),
            offset,
        });
        self.lines = LineState::new(self.cfg.max_line_len, offset);
        self.cur = Some(Current {
            path,
            name,
            file,
            id,
            read_offset: offset,
        });
        Ok(())
    }

    /// Reads and processes one chunk; false at end of file.
    fn read_chunk(&mut self) -> io::Result<bool> {
        let Some(cur) = self.cur.as_mut() else {
            return Ok(false);
        };
        let n = match cur.file.read(&mut self.buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(true),
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(false);
        }
        let base = cur.read_offset;
        cur.read_offset += n as u64;
        self.sink
            .stats
            .bytes_read
            .fetch_add(n as u64, Ordering::Relaxed);
        process_chunk(
            &self.buf[..n],
            base,
            self.cfg.parser.as_ref(),
            cur,
            &mut self.lines,
            &mut self.pending,
            &mut self.sink,
        );
        Ok(true)
    }

    /// At end of file: did the file shrink? Then restart it at 0.
    fn check_truncated(&mut self) -> io::Result<bool> {
        let Some(cur) = self.cur.as_mut() else {
            return Ok(false);
        };
        let len = cur.file.metadata()?.len();
        if len >= cur.read_offset {
            return Ok(false);
        }
        let previous = cur.read_offset;
        tracing::info!(file = %cur.path.display(), previous, len, "log file truncated; reading from its start");
        self.finish_file();
        let Some(cur) = self.cur.as_mut() else {
            return Ok(false);
        };
        cur.file.seek(SeekFrom::Start(0))?;
        cur.read_offset = 0;
        self.lines = LineState::new(self.cfg.max_line_len, 0);
        self.pending.notices.push(TailNotice::Truncated {
            file: cur.path.clone(),
            previous_offset: previous,
        });
        Ok(true)
    }

    /// At end of file: is there a newer file (or was ours replaced)? Then read ours
    /// to its very end, flush its partial last line, and switch.
    fn check_rotated(&mut self) -> io::Result<bool> {
        let Some(cur) = self.cur.as_ref() else {
            return Ok(false);
        };
        let newest = match self.cfg.pattern.newest(&self.cfg.dir) {
            Ok(Some(n)) => n,
            Ok(None) => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let Ok(new_meta) = std::fs::metadata(&newest) else {
            return Ok(false);
        };
        if FileId::of(&new_meta) == cur.id {
            return Ok(false);
        }
        let switch = if newest == cur.path {
            true // same name, different file: replaced
        } else {
            let new_name = newest
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let cur_mtime = cur
                .file
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let new_mtime = new_meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            self.cfg.pattern.rank(&new_name, new_mtime)
                > self.cfg.pattern.rank(&cur.name, cur_mtime)
        };
        if !switch {
            return Ok(false);
        }
        // Whatever was appended since our last read still belongs to the old file.
        while self.read_chunk()? {
            if self.done() {
                return Ok(true);
            }
        }
        self.finish_file();
        self.flush();
        self.open(newest, 0)?;
        Ok(true)
    }

    /// Emits the held-back partial line of the current file and flushes the batch.
    fn finish_file(&mut self) {
        let Self {
            cfg,
            cur,
            lines,
            pending,
            sink,
            ..
        } = self;
        let Some(cur) = cur.as_ref() else { return };
        let end = cur.read_offset;
        let received = SystemTime::now();
        let parser = cfg.parser.as_ref();
        let LineState {
            splitter,
            emitted_offset,
            in_continuation,
            continuation_level,
        } = lines;
        splitter.finish(|piece| {
            push_piece(
                piece,
                received,
                parser,
                in_continuation,
                continuation_level,
                pending,
            );
            *emitted_offset = end;
        });
        sink.flush(pending, cur, *emitted_offset);
    }
}

/// Splits one chunk into lines and queues them, sending full batches on the way.
fn process_chunk(
    chunk: &[u8],
    base: u64,
    parser: &dyn LineParser,
    cur: &Current,
    lines: &mut LineState,
    pending: &mut Pending,
    sink: &mut Sink,
) {
    let received = SystemTime::now();
    let LineState {
        splitter,
        emitted_offset,
        in_continuation,
        continuation_level,
    } = lines;
    // Every complete piece the splitter emits during this feed ends at the next '\n'
    // of this chunk; a `continued` piece consumed exactly its own length.
    let mut scan = 0usize;
    splitter.feed(chunk, |piece| {
        if sink.closed {
            return;
        }
        let end = if piece.continued {
            *emitted_offset + piece.bytes.len() as u64
        } else {
            let nl = chunk
                .get(scan..)
                .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
                .map_or(chunk.len(), |i| scan + i);
            scan = nl + 1;
            base + scan as u64
        };
        push_piece(
            piece,
            received,
            parser,
            in_continuation,
            continuation_level,
            pending,
        );
        *emitted_offset = end;
        if sink.full(pending) {
            sink.flush(pending, cur, end);
        }
    });
}

fn push_piece(
    piece: SplitLine<'_>,
    received: SystemTime,
    parser: &dyn LineParser,
    in_continuation: &mut bool,
    continuation_level: &mut Level,
    pending: &mut Pending,
) {
    let (time, level, text) = if *in_continuation {
        (
            None,
            *continuation_level,
            String::from_utf8_lossy(piece.bytes).into_owned(),
        )
    } else {
        let parsed = parser.parse(piece.bytes);
        (parsed.time, parsed.level, parsed.text.into_owned())
    };
    if piece.continued && !*in_continuation {
        *continuation_level = level;
    }
    *in_continuation = piece.continued;
    if pending.first_at.is_none() {
        pending.first_at = Some(Instant::now());
    }
    pending.bytes += text.len();
    pending.lines.push(LogLine {
        received,
        time,
        level,
        text,
        continued: piece.continued,
    });
}

#[cfg(test)]
mod tests;
