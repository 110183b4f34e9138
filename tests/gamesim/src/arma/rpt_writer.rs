//! The RPT log: stdout on Linux (line by line, flushed at once so a tailing agent sees
//! it live), or the timestamped `.rpt` file in `-profiles` in Windows mode (CRLF,
//! flushed per line). `-noLogs` turns the RPT off; console lines still go to stdout.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use super::compat::{TimeStampFormat, format_prefix, now_local, rpt_file_name};

enum Sink {
    Stdout,
    File(File),
    Off,
}

/// The RPT writer shared by every task.
pub struct Rpt {
    sink: Mutex<Sink>,
    format: AtomicU8,
    crlf: bool,
    silenced: AtomicBool,
    path: Option<PathBuf>,
}

fn fmt_to_u8(f: TimeStampFormat) -> u8 {
    match f {
        TimeStampFormat::None => 0,
        TimeStampFormat::Short => 1,
        TimeStampFormat::Full => 2,
    }
}

impl Rpt {
    /// RPT lines on stdout (Linux server).
    pub fn stdout() -> Self {
        Self::with(Sink::Stdout, false, None)
    }

    /// No RPT at all (`-noLogs`).
    pub fn off() -> Self {
        Self::with(Sink::Off, false, None)
    }

    /// Windows mode: creates `<profiles>/arma3server[_x64]_<local time>.rpt`.
    pub fn file_in(profiles: &Path, x64: bool) -> std::io::Result<Self> {
        std::fs::create_dir_all(profiles)?;
        let path = profiles.join(rpt_file_name(x64, now_local()));
        let f = File::create(&path)?;
        Ok(Self::with(Sink::File(f), true, Some(path)))
    }

    fn with(sink: Sink, crlf: bool, path: Option<PathBuf>) -> Self {
        Rpt {
            sink: Mutex::new(sink),
            format: AtomicU8::new(fmt_to_u8(TimeStampFormat::Short)),
            crlf,
            silenced: AtomicBool::new(false),
            path,
        }
    }

    /// The file being written, in Windows mode.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Switches from the startup short format to server.cfg's `timeStampFormat`.
    pub fn set_format(&self, f: TimeStampFormat) {
        self.format.store(fmt_to_u8(f), Ordering::Relaxed);
    }

    fn current_format(&self) -> TimeStampFormat {
        match self.format.load(Ordering::Relaxed) {
            0 => TimeStampFormat::None,
            1 => TimeStampFormat::Short,
            _ => TimeStampFormat::Full,
        }
    }

    /// A hung server writes nothing any more.
    pub fn silence(&self) {
        self.silenced.store(true, Ordering::SeqCst);
    }

    /// A line without any timestamp (header block).
    pub fn raw(&self, line: &str) {
        if self.silenced.load(Ordering::SeqCst) {
            return;
        }
        let mut sink = match self.sink.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        let eol = if self.crlf { "\r\n" } else { "\n" };
        match &mut *sink {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                let _ = write!(out, "{line}{eol}");
                let _ = out.flush();
            }
            Sink::File(f) => {
                let _ = write!(f, "{line}{eol}");
                let _ = f.flush();
            }
            Sink::Off => {}
        }
    }

    /// A line with the current prefix (short during startup, then server.cfg's).
    pub fn log(&self, msg: &str) {
        let prefix = format_prefix(self.current_format(), now_local());
        self.raw(&format!("{prefix}{msg}"));
    }

    /// A line always in the short format (startup entries).
    pub fn short(&self, msg: &str) {
        let prefix = format_prefix(TimeStampFormat::Short, now_local());
        self.raw(&format!("{prefix}{msg}"));
    }

    /// A console-only line: stdout in both modes, never the RPT file.
    pub fn console(&self, line: &str) {
        if self.silenced.load(Ordering::SeqCst) {
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}
