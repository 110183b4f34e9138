//! The Arma 3 server's RPT (console) log: line parsing, the timestamp prefixes the
//! server writes, RPT file names, and a bounded line splitter for tailing.
//!
//! The agent tails this log (a `.rpt` file on Windows, captured stdout on Linux) at
//! whatever rate the server writes it, so the parser is hand-rolled and allocation
//! free for valid UTF-8 lines. It never fails: anything that does not look like a
//! timestamped line is a line without a timestamp, and invalid UTF-8 is decoded
//! lossily rather than rejected (mods write Latin-1 into the log).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// The server's `timeStampFormat` setting (server.cfg), i.e. which prefix each RPT
/// entry carries: `None` (no prefix), `Short` (` H:MM:SS `, hour space-padded to two
/// characters; also what startup entries use before server.cfg is read) or `Full`
/// (`YYYY/MM/DD, HH:MM:SS `). The config model owns the type; this alias is the name
/// the RPT code uses for it.
pub use crate::arma::config::TimeStampFormat;

/// Alias of [`TimeStampFormat`], so RPT users need not reach into the config module.
pub type RptTimestampFormat = TimeStampFormat;

/// A calendar date as printed by the `full` format (server local time, no zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RptDate {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

/// The timestamp of one RPT line. `date` is only present for the `full` format. It is
/// local wall-clock time with no zone, so it is kept as printed instead of being
/// converted to an instant; the consumer knows the server's zone, we do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RptTime {
    pub date: Option<RptDate>,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

/// A full local date and time, as used in RPT file names. Ordered chronologically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RptDateTime {
    pub date: RptDate,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

/// Severity guessed from the message text; the RPT itself has no level field. The
/// game-neutral level of the wire protocol, under the name the RPT code uses.
///
/// Heuristic (case-sensitive, after skipping leading spaces/tabs of the message so
/// indented continuation lines such as ` Error position: <…>` count too):
/// - starts with `Error` or `ERROR` → [`Level::Error`] (covers `Error:`,
///   `ErrorMessage:`, `Error in expression`, `Error Undefined variable…`);
/// - starts with `Warning` or `WARNING` → [`Level::Warn`] (covers
///   `Warning Message:` and `Warning: Could not parse squad.xml…`);
/// - everything else → [`Level::Info`]. (RPT lines are never [`Level::Debug`].)
pub use crate::wire::LogLevel as Level;

/// One parsed RPT line.
///
/// `message` is everything after the prefix *minus exactly one separator space*, so a
/// message that starts with its own space keeps it (`2022/11/13, 11:52:47  Mission
/// world: x` → `" Mission world: x"`); printing `format_prefix(..) + message` gives the
/// original line back. It borrows from the input when the input is valid UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RptLine<'a> {
    pub time: Option<RptTime>,
    pub level: Level,
    pub message: Cow<'a, str>,
}

impl RptLine<'_> {
    /// Detach from the input buffer (copies the message if it was borrowed).
    pub fn into_owned(self) -> RptLine<'static> {
        RptLine {
            time: self.time,
            level: self.level,
            message: Cow::Owned(self.message.into_owned()),
        }
    }
}

/// Parse one line (with or without its trailing `\n` / `\r\n`).
///
/// Accepted prefix, equivalent to `^(?:(\d{4}/\d{2}/\d{2}), )?\s?(\d{1,2}:\d{2}:\d{2})( |$)`
/// with range checks (month 1–12, day 1–31, hour ≤ 23, minute/second ≤ 59); `\s` is a
/// single space or tab. A time at the very end of a line is accepted with an empty
/// message. Anything else is a line without a timestamp (the header block, untimed
/// entries such as `Waiting for next game.`, the `none` format). Never fails, never
/// panics, allocates only when the line is not valid UTF-8.
///
/// This is the tolerant guess for when the server's `timeStampFormat` is unknown:
/// with format `none`, a message that itself begins with `12:00:00 ` is misread as
/// timestamped. Use [`parse_line_with`] when the format is known.
pub fn parse_line(line: &[u8]) -> RptLine<'_> {
    parse_line_as(line, Some(true))
}

/// Parse one line written with the known `timeStampFormat`:
///
/// * `None`: never a timestamp; the whole line is the message.
/// * `Short`: only the short prefix (` H:MM:SS `); a line starting with a date is
///   a message.
/// * `Full`: the full prefix, or the short one, since the server writes start-up
///   lines (before server.cfg is read) with the short prefix.
///
/// Same guarantees as [`parse_line`] otherwise.
pub fn parse_line_with(line: &[u8], format: RptTimestampFormat) -> RptLine<'_> {
    let allow_date = match format {
        RptTimestampFormat::None => None,
        RptTimestampFormat::Short => Some(false),
        RptTimestampFormat::Full => Some(true),
    };
    parse_line_as(line, allow_date)
}

/// `allow_date`: `None` parses no prefix at all, `Some(d)` the time prefix with
/// an optional date when `d`.
fn parse_line_as(line: &[u8], allow_date: Option<bool>) -> RptLine<'_> {
    let line = strip_eol(line);
    let prefix = match allow_date {
        None => None,
        Some(allow_date) => parse_prefix(line, allow_date),
    };
    let (time, start) = match prefix {
        Some((time, len)) => (Some(time), len),
        None => (None, 0),
    };
    let message = String::from_utf8_lossy(line.get(start..).unwrap_or_default());
    let level = classify(&message);
    RptLine {
        time,
        level,
        message,
    }
}

fn strip_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Classify a message; see [`Level`] for the rules.
pub fn classify(message: &str) -> Level {
    let t = message.trim_start_matches([' ', '\t']);
    if t.starts_with("Error") || t.starts_with("ERROR") {
        Level::Error
    } else if t.starts_with("Warning") || t.starts_with("WARNING") {
        Level::Warn
    } else {
        Level::Info
    }
}

#[inline]
fn digit(b: &[u8], i: usize) -> Option<u8> {
    match b.get(i) {
        Some(&c) if c.is_ascii_digit() => Some(c - b'0'),
        _ => None,
    }
}

#[inline]
fn two_digits(b: &[u8], i: usize) -> Option<u8> {
    Some(digit(b, i)? * 10 + digit(b, i + 1)?)
}

fn parse_date(b: &[u8]) -> Option<RptDate> {
    // "YYYY/MM/DD, "
    if b.len() < 12 || b[4] != b'/' || b[7] != b'/' || b[10] != b',' || b[11] != b' ' {
        return None;
    }
    let year = u16::from(two_digits(b, 0)?) * 100 + u16::from(two_digits(b, 2)?);
    let month = two_digits(b, 5)?;
    let day = two_digits(b, 8)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    Some(RptDate { year, month, day })
}

/// The timestamp and the byte length of the prefix (including the separator space).
fn parse_prefix(b: &[u8], allow_date: bool) -> Option<(RptTime, usize)> {
    let mut i = 0;
    let date = if allow_date { parse_date(b) } else { None };
    if date.is_some() {
        i = 12;
    }
    if matches!(b.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    let mut hour = digit(b, i)?;
    i += 1;
    if let Some(d) = digit(b, i) {
        hour = hour * 10 + d;
        i += 1;
    }
    if b.get(i) != Some(&b':') {
        return None;
    }
    let minute = two_digits(b, i + 1)?;
    if b.get(i + 3) != Some(&b':') {
        return None;
    }
    let second = two_digits(b, i + 4)?;
    i += 6;
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let len = match b.get(i) {
        None => i,
        Some(b' ') => i + 1,
        Some(_) => return None,
    };
    Some((
        RptTime {
            date,
            hour,
            minute,
            second,
        },
        len,
    ))
}

/// Append the prefix the real server writes for `format` to `out`.
///
/// `Full` needs a date; with `time.date == None` it writes the `Short` prefix instead
/// (which is also what the server does before the configured format applies).
pub fn write_prefix(out: &mut String, format: RptTimestampFormat, time: &RptTime) {
    // Writing into a String cannot fail.
    let _ = match (format, time.date) {
        (RptTimestampFormat::None, _) => Ok(()),
        (RptTimestampFormat::Full, Some(d)) => write!(
            out,
            "{:04}/{:02}/{:02}, {:02}:{:02}:{:02} ",
            d.year, d.month, d.day, time.hour, time.minute, time.second
        ),
        (RptTimestampFormat::Short | RptTimestampFormat::Full, _) => write!(
            out,
            "{:>2}:{:02}:{:02} ",
            time.hour, time.minute, time.second
        ),
    };
}

/// The prefix the real server writes for `format` (see [`write_prefix`]):
/// `""`, `" 0:26:15 "` or `"2022/11/13, 11:52:47 "`.
pub fn format_prefix(format: RptTimestampFormat, time: &RptTime) -> String {
    let mut s = String::with_capacity(21);
    write_prefix(&mut s, format, time);
    s
}

/// `Player <name> connected (id=<steamid64>).` → `(name, steamid64)`.
///
/// This engine line is the only place the SteamID appears; with
/// [`crate::arma::guid::be_guid`] it links the RPT to RCon's GUIDs. The name is
/// anchored on the last ` connected (id=` so names with spaces/parentheses work.
pub fn parse_player_steam_id(message: &str) -> Option<(&str, u64)> {
    let body = message.strip_prefix("Player ")?.strip_suffix(").")?;
    let (name, id) = body.rsplit_once(" connected (id=")?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((name, id.parse().ok()?))
}

// ---------------------------------------------------------------------------------
// File names
// ---------------------------------------------------------------------------------

/// `<exe_stem>_YYYY-MM-DD_HH-MM-SS.rpt`, e.g. `arma3server_x64_2022-11-13_11-52-47.rpt`
/// (server local time at start-up).
pub fn rpt_file_name(exe_stem: &str, local: RptDateTime) -> String {
    let d = local.date;
    format!(
        "{exe_stem}_{:04}-{:02}-{:02}_{:02}-{:02}-{:02}.rpt",
        d.year, d.month, d.day, local.hour, local.minute, local.second
    )
}

/// Inverse of [`rpt_file_name`]: `(exe_stem, time)`. The extension is matched
/// case-insensitively; the stem may itself contain underscores.
pub fn parse_rpt_file_name(name: &str) -> Option<(&str, RptDateTime)> {
    let dot = name.len().checked_sub(4)?;
    let (base, ext) = (name.get(..dot)?, name.get(dot..)?);
    if !ext.eq_ignore_ascii_case(".rpt") {
        return None;
    }
    // "_YYYY-MM-DD_HH-MM-SS" is 20 ASCII bytes.
    let split = base.len().checked_sub(20)?;
    let (stem, stamp) = (base.get(..split)?, base.get(split..)?.as_bytes());
    let sep = |i: usize, c: u8| stamp.get(i) == Some(&c);
    if !(sep(0, b'_')
        && sep(5, b'-')
        && sep(8, b'-')
        && sep(11, b'_')
        && sep(14, b'-')
        && sep(17, b'-'))
    {
        return None;
    }
    let year = u16::from(two_digits(stamp, 1)?) * 100 + u16::from(two_digits(stamp, 3)?);
    let time = RptDateTime {
        date: RptDate {
            year,
            month: two_digits(stamp, 6)?,
            day: two_digits(stamp, 9)?,
        },
        hour: two_digits(stamp, 12)?,
        minute: two_digits(stamp, 15)?,
        second: two_digits(stamp, 18)?,
    };
    Some((stem, time))
}

/// The newest `*.rpt` file (extension case-insensitive) directly in `dir`.
///
/// Ordered by the start time in the file name; files whose name carries no timestamp
/// rank below all that do (the server always names its logs that way). Ties and
/// unparsable names are broken by modification time, then by name, so the answer is
/// deterministic. Directories and other files are ignored, as are entries that vanish
/// while scanning. Errors only if `dir` itself cannot be read.
pub fn find_newest_rpt(dir: &Path) -> io::Result<Option<PathBuf>> {
    type Key = (Option<RptDateTime>, SystemTime, std::ffi::OsString);
    let mut best: Option<(Key, PathBuf)> = None;
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        let is_rpt = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("rpt"));
        if !is_rpt {
            continue;
        }
        // Follows symlinks, so a link to a log counts and a link to a dir does not.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let file_name = entry.file_name();
        let stamp = file_name
            .to_str()
            .and_then(parse_rpt_file_name)
            .map(|(_, t)| t);
        let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let key = (stamp, mtime, file_name);
        if best.as_ref().is_none_or(|(k, _)| key > *k) {
            best = Some((key, path));
        }
    }
    Ok(best.map(|(_, p)| p))
}

/// The log line splitter, under the name the RPT code has always used.
pub use crate::lines::{LineSplitter as RptLineSplitter, SplitLine};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lines::{find_byte, strip_cr};
    use proptest::prelude::*;

    fn t(hour: u8, minute: u8, second: u8) -> RptTime {
        RptTime {
            date: None,
            hour,
            minute,
            second,
        }
    }

    #[test]
    fn rpt_short_format_space_padded_hour() {
        let l = parse_line(b" 0:26:15 InitSound ...");
        assert_eq!(l.time, Some(t(0, 26, 15)));
        assert_eq!(l.message, "InitSound ...");
        assert_eq!(l.level, Level::Info);
        let l = parse_line(
            b"11:59:57 SteamAPI initialization failed. Steam features won't be accessible!\r\n",
        );
        assert_eq!(l.time, Some(t(11, 59, 57)));
        assert_eq!(
            l.message,
            "SteamAPI initialization failed. Steam features won't be accessible!"
        );
        // Unpadded single-digit hour is tolerated too.
        assert_eq!(parse_line(b"9:05:00 x").time, Some(t(9, 5, 0)));
    }

    #[test]
    fn rpt_full_format_keeps_message_leading_space() {
        let l = parse_line(b"2022/11/13, 11:52:47  Mission world: cam_lao_nam");
        assert_eq!(
            l.time,
            Some(RptTime {
                date: Some(RptDate {
                    year: 2022,
                    month: 11,
                    day: 13
                }),
                hour: 11,
                minute: 52,
                second: 47
            })
        );
        assert_eq!(l.message, " Mission world: cam_lao_nam");
        let l = parse_line(b"12:00:05  \xe2\x9e\xa5 Context: vet\\unflipping\\stringtable.xml");
        assert_eq!(l.message, " ➥ Context: vet\\unflipping\\stringtable.xml");
    }

    #[test]
    fn rpt_lines_without_timestamp() {
        for s in [
            "=====================================================================",
            "Original output filename: Arma3Retail_Server_x64",
            "Version: 2.06.148221",
            "Waiting for next game.",
            " Mission world: Altis",
            "BattlEye Server: Player #36 Master (88.196.232.197:2304) connected",
            "",
            "25:00:00 not a time",
            "11:60:00 not a time",
            "1:2:3 x",
            "11:22:33x",
            "111:22:33 x",
            "2022/13/01, 11:22:33 bad month",
            "2022/11/13,11:22:33 no space",
        ] {
            let l = parse_line(s.as_bytes());
            assert_eq!(l.time, None, "{s:?}");
            assert_eq!(l.message, s);
        }
        // A bare time is a timestamp with an empty message.
        let l = parse_line(b"11:22:33\r");
        assert_eq!((l.time, l.message.as_ref()), (Some(t(11, 22, 33)), ""));
    }

    #[test]
    fn rpt_parse_line_with_format_hint() {
        let line = b"12:00:00 Mission read from bank.\r\n";
        // The tolerant guess sees a timestamp ...
        assert_eq!(parse_line(line).time, Some(t(12, 0, 0)));
        // ... with `none` it is part of the message.
        let l = parse_line_with(line, RptTimestampFormat::None);
        assert_eq!(l.time, None);
        assert_eq!(l.message, "12:00:00 Mission read from bank.");
        let short = parse_line_with(line, RptTimestampFormat::Short);
        assert_eq!(short.time, Some(t(12, 0, 0)));
        assert_eq!(short.message, "Mission read from bank.");
        // Short never reads a date: that line is a message.
        let dated = b"2022/11/13, 11:52:47 Mission world: x";
        let l = parse_line_with(dated, RptTimestampFormat::Short);
        assert_eq!(l.time, None);
        assert_eq!(l.message, "2022/11/13, 11:52:47 Mission world: x");
        // Full reads the date, and tolerates short start-up lines.
        let l = parse_line_with(dated, RptTimestampFormat::Full);
        assert_eq!(l.time.and_then(|t| t.date).map(|d| d.day), Some(13));
        assert_eq!(l.message, "Mission world: x");
        let l = parse_line_with(b" 9:05:01 Initializing Steam", RptTimestampFormat::Full);
        assert_eq!(l.time, Some(t(9, 5, 1)));
        assert_eq!(l.message, "Initializing Steam");
        // Levels still classify the message.
        let l = parse_line_with(b"Error: 12:00:00 x", RptTimestampFormat::None);
        assert_eq!(l.level, Level::Error);
    }

    #[test]
    fn rpt_levels() {
        let cases = [
            (
                "12:00:00 Warning: Could not parse squad.xml for Player[...]",
                Level::Warn,
            ),
            (
                "12:00:00 Warning Message: No entry 'bin\\config.bin/CfgX'",
                Level::Warn,
            ),
            ("12:00:00 WARNING: something", Level::Warn),
            (
                "ErrorMessage: Cannot open file '/arma3/@RHSUSF\\addons\\x'",
                Level::Error,
            ),
            ("12:00:00 Error in expression <x = y>", Level::Error),
            ("12:00:00   Error position: <y>", Level::Error),
            ("12:00:00 Error: foo", Level::Error),
            ("12:00:00 ERROR bar", Level::Error),
            ("12:00:00 Game started.", Level::Info),
            ("12:00:00 No Error here", Level::Info),
        ];
        for (s, lvl) in cases {
            assert_eq!(parse_line(s.as_bytes()).level, lvl, "{s}");
        }
    }

    #[test]
    fn rpt_borrowed_when_utf8_lossy_otherwise() {
        let l = parse_line("12:00:00 Максим connected\r\n".as_bytes());
        assert!(matches!(l.message, Cow::Borrowed("Максим connected")));
        let l = parse_line(b"12:00:00 caf\xe9 \xff end\n");
        assert_eq!(l.time, Some(t(12, 0, 0)));
        assert!(matches!(l.message, Cow::Owned(_)));
        assert_eq!(l.message, "caf\u{fffd} \u{fffd} end");
        let owned: RptLine<'static> = l.into_owned();
        assert_eq!(owned.message, "caf\u{fffd} \u{fffd} end");
    }

    #[test]
    fn rpt_very_long_line() {
        let mut line = b"2022/11/13, 11:52:47 ".to_vec();
        line.extend(std::iter::repeat_n(b'x', 1 << 20));
        let l = parse_line(&line);
        assert!(l.time.is_some());
        assert_eq!(l.message.len(), 1 << 20);
    }

    #[test]
    fn rpt_format_prefix_exact() {
        let full = RptTime {
            date: Some(RptDate {
                year: 2022,
                month: 11,
                day: 3,
            }),
            hour: 1,
            minute: 2,
            second: 7,
        };
        assert_eq!(format_prefix(RptTimestampFormat::None, &t(0, 26, 15)), "");
        assert_eq!(
            format_prefix(RptTimestampFormat::Short, &t(0, 26, 15)),
            " 0:26:15 "
        );
        assert_eq!(
            format_prefix(RptTimestampFormat::Short, &t(11, 59, 57)),
            "11:59:57 "
        );
        assert_eq!(
            format_prefix(RptTimestampFormat::Full, &full),
            "2022/11/03, 01:02:07 "
        );
        // Full without a date falls back to short.
        assert_eq!(
            format_prefix(RptTimestampFormat::Full, &t(9, 1, 2)),
            " 9:01:02 "
        );
    }

    #[test]
    fn rpt_player_steam_id() {
        assert_eq!(
            parse_player_steam_id("Player Fritz connected (id=76561198017145527)."),
            Some(("Fritz", 76561198017145527))
        );
        assert_eq!(
            parse_player_steam_id("Player a connected (id=1). b connected (id=76561198017145527)."),
            Some(("a connected (id=1). b", 76561198017145527))
        );
        assert_eq!(parse_player_steam_id("Player Celis connecting."), None);
        assert_eq!(parse_player_steam_id("Player x connected (id=)."), None);
    }

    #[test]
    fn rpt_file_names() {
        let at = RptDateTime {
            date: RptDate {
                year: 2022,
                month: 11,
                day: 13,
            },
            hour: 11,
            minute: 52,
            second: 47,
        };
        let name = rpt_file_name("arma3server_x64", at);
        assert_eq!(name, "arma3server_x64_2022-11-13_11-52-47.rpt");
        assert_eq!(parse_rpt_file_name(&name), Some(("arma3server_x64", at)));
        assert_eq!(
            parse_rpt_file_name("ARMA3SERVER_2022-11-13_11-52-47.RPT"),
            Some(("ARMA3SERVER", at))
        );
        assert_eq!(
            parse_rpt_file_name("_2022-11-13_11-52-47.rpt"),
            Some(("", at))
        );
        for bad in [
            "arma3server_x64.rpt",
            "arma3server_x64_2022-11-13_11-52-47.log",
            "x_2022-11-13-11-52-47.rpt",
            "x_2022-1a-13_11-52-47.rpt",
            "2022-11-13_11-52-47.rpt",
            "é.rpt",
            "",
        ] {
            assert_eq!(parse_rpt_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn rpt_find_newest() -> io::Result<()> {
        use std::fs::{File, FileTimes};
        use std::time::Duration;
        let dir = tempfile::tempdir()?;
        assert_eq!(find_newest_rpt(dir.path())?, None);
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let touch = |name: &str, age_secs: u64| -> io::Result<()> {
            let f = File::create(dir.path().join(name))?;
            f.set_times(FileTimes::new().set_modified(base - Duration::from_secs(age_secs)))
        };
        // Created out of order; mtimes deliberately disagree with the names.
        touch("arma3server_x64_2022-11-13_11-52-47.rpt", 0)?;
        touch("arma3server_x64_2023-01-02_08-00-00.RPT", 500)?;
        touch("arma3server_x64_2022-12-31_23-59-59.rpt", 10)?;
        touch("server_console.rpt", 0)?; // no stamp: ranks below stamped files
        touch("arma3server_x64_2099-01-01_00-00-00.log", 0)?; // not an rpt
        std::fs::create_dir(dir.path().join("arma3server_x64_2098-01-01_00-00-00.rpt"))?;
        assert_eq!(
            find_newest_rpt(dir.path())?,
            Some(dir.path().join("arma3server_x64_2023-01-02_08-00-00.RPT"))
        );
        // Same stamp, different exe: the newer mtime wins.
        touch("arma3server_2023-01-02_08-00-00.rpt", 100)?;
        assert_eq!(
            find_newest_rpt(dir.path())?,
            Some(dir.path().join("arma3server_2023-01-02_08-00-00.rpt"))
        );
        // Only unstamped files: by mtime.
        let dir2 = tempfile::tempdir()?;
        let touch2 = |name: &str, age_secs: u64| -> io::Result<()> {
            let f = File::create(dir2.path().join(name))?;
            f.set_times(FileTimes::new().set_modified(base - Duration::from_secs(age_secs)))
        };
        touch2("b.rpt", 50)?;
        touch2("a.rpt", 5)?;
        touch2("c.txt", 0)?;
        assert_eq!(
            find_newest_rpt(dir2.path())?,
            Some(dir2.path().join("a.rpt"))
        );
        assert!(find_newest_rpt(&dir2.path().join("missing")).is_err());
        Ok(())
    }

    fn split_all(splitter: &mut RptLineSplitter, chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
        let mut out = Vec::new();
        for c in chunks {
            splitter.feed(c, |l| out.push((l.bytes.to_vec(), l.continued)));
            assert!(splitter.pending() <= splitter.max_line_len() + 1);
        }
        splitter.finish(|l| out.push((l.bytes.to_vec(), l.continued)));
        out
    }

    #[test]
    fn rpt_splitter_basics() {
        let mut s = RptLineSplitter::default();
        let out = split_all(&mut s, &[b"a\r\nbb", b"b\r", b"\n\nlast"]);
        assert_eq!(
            out,
            vec![
                (b"a".to_vec(), false),
                (b"bbb".to_vec(), false),
                (b"".to_vec(), false),
                (b"last".to_vec(), false),
            ]
        );
        // Cap at 4 bytes; the UTF-8 char "é" (2 bytes) is not cut in half.
        let mut s = RptLineSplitter::new(4);
        let out = split_all(&mut s, &["abcé12\nxy".as_bytes()]);
        assert_eq!(
            out,
            vec![
                (b"abc".to_vec(), true),
                ("é12".as_bytes().to_vec(), false),
                (b"xy".to_vec(), false),
            ]
        );
        // A writer that never sends a newline cannot grow the buffer.
        let mut s = RptLineSplitter::new(16);
        let mut pieces = 0;
        for _ in 0..1000 {
            s.feed(&[b'z'; 7], |l| {
                assert!(l.continued && l.bytes.len() == 16);
                pieces += 1;
            });
            assert!(s.pending() <= 17);
        }
        assert_eq!(pieces, 7000 / 16 - 1 + usize::from(7000 % 16 != 0));
    }

    #[test]
    fn rpt_find_byte_matches_position() {
        let hay: Vec<u8> = (0..100u8)
            .map(|i| if i % 37 == 36 { b'\n' } else { 0x8a ^ i })
            .collect();
        for start in 0..hay.len() {
            assert_eq!(
                find_byte(&hay[start..], b'\n'),
                hay[start..].iter().position(|&b| b == b'\n')
            );
        }
    }

    fn arb_time(with_date: bool) -> impl Strategy<Value = RptTime> {
        (
            1000u16..=9999,
            1u8..=12,
            1u8..=31,
            0u8..=23,
            0u8..=59,
            0u8..=59,
        )
            .prop_map(move |(year, month, day, hour, minute, second)| RptTime {
                date: with_date.then_some(RptDate { year, month, day }),
                hour,
                minute,
                second,
            })
    }

    proptest! {
        #[test]
        fn rpt_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let l = parse_line(&bytes);
            prop_assert!(l.message.len() <= bytes.len() * 3);
        }

        #[test]
        fn rpt_round_trip_short(time in arb_time(false), msg in "[^\r\n]{0,60}") {
            let line = format_prefix(RptTimestampFormat::Short, &time) + &msg;
            let l = parse_line(line.as_bytes());
            prop_assert_eq!(l.time, Some(time));
            prop_assert_eq!(l.message, msg);
        }

        #[test]
        fn rpt_round_trip_full(time in arb_time(true), msg in "[^\r\n]{0,60}") {
            let line = format_prefix(RptTimestampFormat::Full, &time) + &msg;
            let l = parse_line(line.as_bytes());
            prop_assert_eq!(l.time, Some(time));
            prop_assert_eq!(l.message, msg);
        }

        #[test]
        fn rpt_round_trip_none(time in arb_time(false), msg in "[^\r\n]{0,60}") {
            // Only messages that do not themselves look like a timestamped line.
            prop_assume!(parse_prefix(msg.as_bytes(), true).is_none());
            let line = format_prefix(RptTimestampFormat::None, &time) + &msg;
            let l = parse_line(line.as_bytes());
            prop_assert_eq!(l.time, None);
            prop_assert_eq!(l.message, msg);
        }

        #[test]
        fn rpt_with_format_round_trips(
            time in arb_time(true),
            msg in prop_oneof![
                "[^\r\n]{0,60}",
                "[ 0-9:/,]{0,30}[^\r\n]{0,10}",
                Just("12:00:00 hello".to_owned()),
                Just("2022/11/13, 11:52:47 x".to_owned()),
            ],
        ) {
            // With the format known, any message comes back exactly.
            let l = parse_line_with(msg.as_bytes(), RptTimestampFormat::None);
            prop_assert_eq!(l.time, None);
            prop_assert_eq!(&l.message, &msg);
            let short_time = RptTime { date: None, ..time };
            for (format, t) in [
                (RptTimestampFormat::Short, short_time),
                (RptTimestampFormat::Full, time),
                (RptTimestampFormat::Full, short_time),
            ] {
                let line = format_prefix(format, &t) + &msg;
                let l = parse_line_with(line.as_bytes(), format);
                prop_assert_eq!(l.time, Some(t));
                prop_assert_eq!(&l.message, &msg);
            }
        }

        #[test]
        fn rpt_parse_with_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            for format in [RptTimestampFormat::None, RptTimestampFormat::Short, RptTimestampFormat::Full] {
                let l = parse_line_with(&bytes, format);
                prop_assert!(l.message.len() <= bytes.len() * 3);
            }
        }

        #[test]
        fn rpt_splitter_chunking_independent(
            data in proptest::collection::vec(
                prop_oneof![Just(b'\n'), Just(b'\r'), Just(0xC3u8), Just(0xA9u8), Just(0xE2), Just(b'a'), any::<u8>()],
                0..300),
            max in 1usize..12,
            cuts in proptest::collection::vec(0usize..300, 0..12),
        ) {
            let whole = split_all(&mut RptLineSplitter::new(max), &[&data]);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut prev = 0;
            for c in cuts { chunks.push(&data[prev..c]); prev = c; }
            chunks.push(&data[prev..]);
            let pieces = split_all(&mut RptLineSplitter::new(max), &chunks);
            prop_assert_eq!(&pieces, &whole);
            // Reference: naive split, each line's pieces concatenate back to it.
            let mut expected: Vec<Vec<u8>> = data.split(|&b| b == b'\n').map(|l| strip_cr(l).to_vec()).collect();
            if data.last() == Some(&b'\n') || data.is_empty() { expected.pop(); }
            let mut got: Vec<Vec<u8>> = Vec::new();
            let mut cur = Vec::new();
            for (bytes, continued) in &pieces {
                prop_assert!(bytes.len() <= max);
                cur.extend_from_slice(bytes);
                if !continued { got.push(std::mem::take(&mut cur)); }
            }
            prop_assert!(cur.is_empty());
            prop_assert_eq!(got, expected);
        }
    }
}
