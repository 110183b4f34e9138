//! RPT parse rate, single thread: `cargo bench -p languard-shared --bench rpt_parse`.
//!
//! Generates ~1M realistic lines (short / full / no timestamp, ~5% with invalid UTF-8,
//! a few long ones) into one buffer, then measures `parse_line` on pre-split lines,
//! the line splitter alone (64 KiB reads), splitter + `parse_line`, and the
//! BattlEye-message path (`strip_rpt_prefix` + `parse_server_message`). Prints figures;
//! asserts nothing.

use std::hint::black_box;
use std::time::{Duration, Instant};

use languard_shared::arma::rcon::parse::{ServerEvent, parse_server_message, strip_rpt_prefix};
use languard_shared::arma::rpt::{
    Level, RptDate, RptLineSplitter, RptTime, RptTimestampFormat, format_prefix, parse_line,
};

const LINES: usize = 1_000_000;
const READ_CHUNK: usize = 64 * 1024;
const ROUNDS: usize = 5;

const MESSAGES: &[&str] = &[
    "SteamAPI initialization failed. Steam features won't be accessible!",
    "Initializing stats manager.",
    "sessionID: 1e0073fd0516f42cfe685085423755bd247568c7",
    "Unsupported language English in stringtable",
    " ➥ Context: vet\\unflipping\\stringtable.xml",
    "Updating base class RscShortcutButton->RscButton, by a3\\editor_f\\config.bin/RscDisplayEditObject/Controls/B_OK/ (original bin\\config.bin)",
    "InitSound - complete",
    "Dedicated host created.",
    "BattlEye Server: Initialized (v1.217)",
    "Game Port: 2302, Steam Query Port: 2303",
    " Mission world: Altis",
    "Player Celis connecting.",
    "BEServer: registering a new player #989446346",
    "BattlEye Server: Player #36 Master (88.196.232.197:2304) connected",
    "Player Fritz connected (id=76561198017145527).",
    "BattlEye Server: Player #38 Fritz - GUID: 54333f4dbe1d3c73b227c8a3ed7b663c",
    "BattlEye Server: Verified GUID (2854515fa6c84ca6657cd55fa8c145cb) of player #8 Sgt. Gonzalez",
    "BattlEye Server: (Side) Matt Fox: m",
    "BattlEye Server: (Global) Максим: привет всем",
    "BattlEye Server: RCon admin #0 (90.92.59.82:59806) logged in",
    "BattlEye Server: Player #4 Ztppp disconnected",
    "NetServer: trying to send a too large non-guaranteed message (len=1348/1364) to 1104393217",
    "Server: Object 2:15953 not found (message Type_120)",
    "Warning: Could not parse squad.xml for Player[Fritz], Squad[https://example.invalid/squad.xml]",
    "ErrorMessage: Cannot open file '/arma3/@RHSUSF\\addons\\rhsusf_editorpreviews'",
    "Error in expression <_unit setDamage _dmg>",
    "  Error position: <setDamage _dmg>",
    "Script userconfig\\cba\\settings.sqf not found",
    "Game started.",
];

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The log as one buffer, plus each line's range (without the newline).
fn generate() -> (Vec<u8>, Vec<(usize, usize)>) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut buf = Vec::with_capacity(LINES * 80);
    let mut ranges = Vec::with_capacity(LINES);
    let mut secs: u32 = 11 * 3600;
    for i in 0..LINES {
        secs += u32::from(rng.below(3) == 0);
        let time = RptTime {
            date: Some(RptDate {
                year: 2022,
                month: 11,
                day: 13,
            }),
            hour: ((secs / 3600) % 24) as u8,
            minute: ((secs / 60) % 60) as u8,
            second: (secs % 60) as u8,
        };
        let format = match rng.below(100) {
            0..40 => RptTimestampFormat::Short,
            40..85 => RptTimestampFormat::Full,
            _ => RptTimestampFormat::None,
        };
        let start = buf.len();
        buf.extend_from_slice(format_prefix(format, &time).as_bytes());
        let msg = MESSAGES[rng.below(MESSAGES.len() as u64) as usize];
        buf.extend_from_slice(msg.as_bytes());
        if rng.below(100) < 5 {
            // Latin-1 from a mod: invalid UTF-8.
            buf.extend_from_slice(b" caf\xe9 \xfc\xdf");
        }
        if i % 1000 == 7 {
            // A long line (call stack / config dump), 4-20 KiB.
            let n = 4096 + rng.below(16 * 1024) as usize;
            buf.extend(std::iter::repeat_n(b'x', n));
        }
        let end = buf.len();
        if rng.below(2) == 0 {
            buf.extend_from_slice(b"\r\n"); // the Windows server writes CRLF
        } else {
            buf.push(b'\n');
        }
        ranges.push((start, end));
    }
    (buf, ranges)
}

fn best_of<F: FnMut() -> u64>(mut f: F) -> (Duration, u64) {
    let mut best = Duration::MAX;
    let mut check = 0;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        check = black_box(f());
        best = best.min(t.elapsed());
    }
    (best, check)
}

fn report(what: &str, d: Duration, lines: usize, bytes: usize) {
    let s = d.as_secs_f64();
    println!(
        "{what:<42} {:>8.1} ms  {:>6.2} M lines/s  {:>7.1} MB/s",
        s * 1e3,
        lines as f64 / s / 1e6,
        bytes as f64 / s / 1e6
    );
}

fn level_code(l: Level) -> u64 {
    match l {
        Level::Debug => 0,
        Level::Info => 1,
        Level::Warn => 2,
        Level::Error => 3,
    }
}

fn main() {
    let (buf, ranges) = generate();
    let lines = ranges.len();
    let total = buf.len();
    let invalid = ranges
        .iter()
        .filter(|&&(a, b)| std::str::from_utf8(&buf[a..b]).is_err())
        .count();
    println!(
        "rpt_parse: {lines} lines, {:.1} MB, {invalid} non-UTF-8 lines, best of {ROUNDS}, single thread",
        total as f64 / 1e6
    );

    let (d, _) = best_of(|| {
        let mut acc = 0u64;
        for &(a, b) in &ranges {
            let l = parse_line(black_box(&buf[a..b]));
            acc += level_code(l.level) + u64::from(l.time.is_some()) + l.message.len() as u64;
        }
        acc
    });
    report("parse_line (pre-split lines)", d, lines, total);

    let (d, n) = best_of(|| {
        let mut splitter = RptLineSplitter::default();
        let mut n = 0u64;
        for chunk in buf.chunks(READ_CHUNK) {
            splitter.feed(black_box(chunk), |l| n += 1 + l.bytes.len() as u64);
        }
        splitter.finish(|l| n += 1 + l.bytes.len() as u64);
        n
    });
    report("RptLineSplitter alone (64 KiB reads)", d, lines, total);
    black_box(n);

    let (d, _) = best_of(|| {
        let mut splitter = RptLineSplitter::default();
        let mut acc = 0u64;
        let mut on_line = |bytes: &[u8]| {
            let l = parse_line(bytes);
            acc += level_code(l.level) + u64::from(l.time.is_some()) + l.message.len() as u64;
        };
        for chunk in buf.chunks(READ_CHUNK) {
            splitter.feed(black_box(chunk), |l| on_line(l.bytes));
        }
        splitter.finish(|l| on_line(l.bytes));
        acc
    });
    report("splitter + parse_line", d, lines, total);

    let (d, _) = best_of(|| {
        let mut splitter = RptLineSplitter::default();
        let mut acc = 0u64;
        let mut on_line = |bytes: &[u8]| {
            let l = parse_line(bytes);
            if let Some(msg) = strip_rpt_prefix(&l.message) {
                let ev = parse_server_message(msg);
                acc += 1 + u64::from(matches!(ev, ServerEvent::Unknown(_)));
            }
            acc += u64::from(l.time.is_some());
        };
        for chunk in buf.chunks(READ_CHUNK) {
            splitter.feed(black_box(chunk), |l| on_line(l.bytes));
        }
        splitter.finish(|l| on_line(l.bytes));
        acc
    });
    report("splitter + parse_line + BattlEye events", d, lines, total);
}
