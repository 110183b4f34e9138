use std::io::Write;
use std::time::Duration;

use tokio::time::timeout;

use super::*;

fn config(dir: &Path) -> TailConfig {
    let mut c = TailConfig::new(dir, LogFilePattern::console(), Arc::new(PlainLines));
    c.poll_interval = Duration::from_millis(10);
    c
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

/// Receives batches until `n` lines arrived (fails after 20 s).
async fn recv_lines(rx: &mut mpsc::Receiver<LogBatch>, n: usize) -> (Vec<LogLine>, Vec<LogBatch>) {
    let mut lines = Vec::new();
    let mut batches = Vec::new();
    while lines.len() < n {
        let b = timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out after {} of {n} lines", lines.len()))
            .expect("tailer ended");
        lines.extend(b.lines.iter().cloned());
        batches.push(b);
    }
    (lines, batches)
}

fn texts(lines: &[LogLine]) -> Vec<&str> {
    lines.iter().map(|l| l.text.as_str()).collect()
}

/// Asserts nothing with lines arrives within `d`; returns notice-only batches.
async fn expect_no_lines(rx: &mut mpsc::Receiver<LogBatch>, d: Duration) {
    let deadline = tokio::time::Instant::now() + d;
    while let Ok(Some(b)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        assert!(b.lines.is_empty(), "unexpected lines: {:?}", b.lines);
    }
}

#[tokio::test]
async fn tail_partial_lines_arrive_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("console_2024-05-01_10-00-00.log");
    append(&path, b"");
    let (handle, mut rx) = DirTail::new(config(dir.path())).spawn();
    append(&path, b" 9:15:02 hel");
    expect_no_lines(&mut rx, Duration::from_millis(100)).await;
    append(&path, b"lo world\r\n12:00:01 Warning Message: x");
    let (lines, _) = recv_lines(&mut rx, 1).await;
    // The plain parser keeps the whole line; games' parsers are tested with them.
    assert_eq!(texts(&lines), [" 9:15:02 hello world"]);
    assert_eq!(lines[0].time, None);
    expect_no_lines(&mut rx, Duration::from_millis(100)).await;
    append(&path, b" more\nError: boom\n");
    let (lines, batches) = recv_lines(&mut rx, 2).await;
    assert_eq!(
        texts(&lines),
        ["12:00:01 Warning Message: x more", "Error: boom"]
    );
    assert_eq!(lines[1].level, Level::Info);
    let size = std::fs::metadata(&path).unwrap().len();
    assert_eq!(batches.last().unwrap().next_offset, size);
    handle.shutdown().await;
}

/// A parser that marks every line starting with `!` as an error: the tail hands the
/// parser each whole line once and keeps the first piece's level for continuations.
#[derive(Debug)]
struct Bang;

impl LineParser for Bang {
    fn parse<'a>(&self, line: &'a [u8]) -> ParsedLine<'a> {
        let text = String::from_utf8_lossy(line);
        match text {
            std::borrow::Cow::Borrowed(t) if t.starts_with('!') => ParsedLine {
                time: Some(LineTime {
                    date: None,
                    hour: 1,
                    minute: 2,
                    second: 3,
                }),
                level: Level::Error,
                text: std::borrow::Cow::Borrowed(&t[1..]),
            },
            text => ParsedLine {
                time: None,
                level: Level::Info,
                text,
            },
        }
    }
}

#[tokio::test]
async fn tail_uses_the_games_parser_for_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("console_2024-05-01_10-00-00.log");
    let mut c = config(dir.path());
    c.parser = Arc::new(Bang);
    c.max_line_len = 4;
    append(&path, b"!boom\nfine\n");
    let (handle, mut rx) = DirTail::new(c).spawn();
    let (lines, _) = recv_lines(&mut rx, 3).await;
    // "!boom" is cut after 4 bytes: the parser sees the first piece, the rest keeps
    // its level and has no time.
    assert_eq!(texts(&lines), ["boo", "m", "fine"]);
    let levels: Vec<_> = lines.iter().map(|l| l.level).collect();
    assert_eq!(levels, [Level::Error, Level::Error, Level::Info]);
    assert_eq!(lines[0].time.map(|t| t.second), Some(3));
    assert_eq!(lines[1].time, None);
    assert!(lines[0].continued && !lines[1].continued);
    handle.shutdown().await;
}

#[tokio::test]
async fn tail_waits_for_dir_and_file() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("logs");
    let (handle, mut rx) = DirTail::new(config(&dir)).spawn();
    expect_no_lines(&mut rx, Duration::from_millis(60)).await;
    std::fs::create_dir(&dir).unwrap();
    append(&dir.join("other.txt"), b"ignored\n");
    append(&dir.join("console_2024-05-01_10-00-00.log"), b"first\n");
    let (lines, batches) = recv_lines(&mut rx, 1).await;
    assert_eq!(texts(&lines), ["first"]);
    assert!(matches!(
        batches[0].notices.as_slice(),
        [TailNotice::Opened { offset: 0, .. }]
    ));
    handle.shutdown().await;
}

#[tokio::test]
async fn tail_truncation_restarts_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("console_2024-05-01_10-00-00.log");
    append(&path, b"a\nb\n");
    let (handle, mut rx) = DirTail::new(config(dir.path())).spawn();
    let (lines, _) = recv_lines(&mut rx, 2).await;
    assert_eq!(texts(&lines), ["a", "b"]);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    append(&path, b"c\n");
    let (lines, batches) = recv_lines(&mut rx, 1).await;
    assert_eq!(texts(&lines), ["c"]);
    let notices: Vec<_> = batches.iter().flat_map(|b| b.notices.clone()).collect();
    assert!(
        notices.iter().any(|n| matches!(
            n,
            TailNotice::Truncated {
                previous_offset: 4,
                ..
            }
        )),
        "{notices:?}"
    );
    assert_eq!(batches.last().unwrap().next_offset, 2);
    expect_no_lines(&mut rx, Duration::from_millis(50)).await;
    handle.shutdown().await;
}

#[tokio::test]
async fn tail_rotation_reads_old_file_to_end_first() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("console_2024-05-01_10-00-00.log");
    let new = dir.path().join("console_2024-05-01_11-30-00.log");
    append(&old, b"1\n2\n3");
    let (handle, mut rx) = DirTail::new(config(dir.path())).spawn();
    let (lines, _) = recv_lines(&mut rx, 2).await;
    assert_eq!(texts(&lines), ["1", "2"]);
    // The old writer's last words and the new file appear between two polls.
    append(&old, b"\n4\n5 no newline");
    append(&new, b"6\n");
    let (lines, batches) = recv_lines(&mut rx, 4).await;
    assert_eq!(texts(&lines), ["3", "4", "5 no newline", "6"]);
    let last = batches.last().unwrap();
    assert_eq!(last.file, new);
    assert!(
        last.notices
            .iter()
            .any(|n| matches!(n, TailNotice::Opened { file, offset: 0 } if *file == new))
    );
    // An older file appearing later is ignored.
    append(
        &dir.path().join("console_2023-01-01_00-00-00.log"),
        b"old\n",
    );
    append(&new, b"7\n");
    let (lines, _) = recv_lines(&mut rx, 1).await;
    assert_eq!(texts(&lines), ["7"]);
    handle.shutdown().await;
}

#[tokio::test]
async fn tail_ranked_pattern_follows_the_newest_stamp() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("game_20240501100000.txt");
    let b = dir.path().join("game_20240502090000.txt");
    let unstamped = dir.path().join("game_latest.txt");
    append(&unstamped, b"unstamped\n");
    append(&a, b"a1\n");
    append(
        &dir.path().join("console_2099-01-01_00-00-00.log"),
        b"not ours\n",
    );
    let mut c = config(dir.path());
    c.pattern = LogFilePattern::Ranked(Arc::new(Stamped));
    let (handle, mut rx) = DirTail::new(c).spawn();
    let (lines, _) = recv_lines(&mut rx, 1).await;
    assert_eq!(texts(&lines), ["a1"]);
    append(&b, b"b1\n");
    let (lines, batches) = recv_lines(&mut rx, 1).await;
    assert_eq!(texts(&lines), ["b1"]);
    assert_eq!(batches.last().unwrap().file, b);
    handle.shutdown().await;
}

/// `game_<YYYYMMDDhhmmss>.txt`.
#[derive(Debug)]
struct Stamped;

impl LogFileRanking for Stamped {
    fn matches(&self, name: &str) -> bool {
        name.starts_with("game_") && name.ends_with(".txt")
    }
    fn start_stamp(&self, name: &str) -> Option<u64> {
        name.strip_prefix("game_")?
            .strip_suffix(".txt")?
            .parse()
            .ok()
    }
}

#[tokio::test]
async fn tail_invalid_utf8_and_huge_line_survive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("console_2024-05-01_10-00-00.log");
    let mut data = b"ok\xff\xfe end\n".to_vec();
    let huge = (1 << 20) + 100;
    data.extend(std::iter::repeat_n(b'x', huge));
    data.extend_from_slice(b"\nafter\n");
    append(&path, &data);
    let (handle, mut rx) = DirTail::new(config(dir.path())).spawn();
    let (lines, batches) = recv_lines(&mut rx, 4).await;
    assert_eq!(lines[0].text, "ok\u{FFFD}\u{FFFD} end");
    assert_eq!(lines[1].text.len(), 1 << 20);
    assert!(lines[1].continued);
    assert_eq!(lines[2].text.len(), 100);
    assert!(!lines[2].continued);
    assert_eq!(lines[3].text, "after");
    assert_eq!(batches.last().unwrap().next_offset, data.len() as u64);
    handle.shutdown().await;
}

#[tokio::test]
async fn tail_resume_from_checkpoint_no_gaps_no_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("console_2024-05-01_10-00-00.log");
    let mut body = String::new();
    for i in 0..100 {
        body.push_str(&format!("line {i}\n"));
    }
    append(&old, body.as_bytes());
    let mut c = config(dir.path());
    c.batch_max_lines = 7;
    let (handle, mut rx) = DirTail::new(c.clone()).spawn();
    let (_, batches) = recv_lines(&mut rx, 30).await;
    // The consumer stored up to the third batch, then the agent died.
    let checkpoint = batches[2].position();
    let stored: Vec<String> = batches[..3]
        .iter()
        .flat_map(|b| b.lines.iter().map(|l| l.text.clone()))
        .collect();
    handle.shutdown().await;
    drop(rx);
    // Meanwhile the game wrote more, half a line, then restarted into a new file.
    append(&old, b"line 100\nline 101 partial");
    let new = dir.path().join("console_2024-05-01_12-00-00.log");
    append(&new, b"line 102\n");

    let (handle, mut rx) = DirTail::resume(c.clone(), checkpoint.clone()).spawn();
    let (lines, batches) = recv_lines(&mut rx, 103 - stored.len()).await;
    let all: Vec<String> = stored
        .into_iter()
        .chain(lines.iter().map(|l| l.text.clone()))
        .collect();
    let want: Vec<String> = (0..103)
        .map(|i| {
            if i == 101 {
                "line 101 partial".to_owned()
            } else {
                format!("line {i}")
            }
        })
        .collect();
    assert_eq!(all, want);
    assert!(matches!(
        batches[0].notices.as_slice(),
        [TailNotice::Opened { offset, .. }] if *offset == checkpoint.offset
    ));
    expect_no_lines(&mut rx, Duration::from_millis(50)).await;
    handle.shutdown().await;

    // A checkpoint naming a file that was replaced: newest file from 0, reported.
    // (Created before the old one goes away, so it surely gets another inode.)
    let tmp = dir.path().join("imposter.tmp");
    append(&tmp, b"imposter\n");
    std::fs::rename(&tmp, &old).unwrap();
    let (handle, mut rx) = DirTail::resume(c, checkpoint).spawn();
    let (lines, batches) = recv_lines(&mut rx, 1).await;
    assert_eq!(texts(&lines), ["line 102"]);
    assert!(batches[0].notices.iter().any(|n| matches!(
        n,
        TailNotice::ResumeFailed {
            reason: ResumeFailure::Replaced,
            ..
        }
    )));
    handle.shutdown().await;
}

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A writer producing well over 50k lines/s for a second while the consumer is
/// deliberately slower: the tailer waits (the file is the buffer), the channel never
/// holds more than its bound, the bytes in flight stay bounded, and every line
/// arrives in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_backpressure_keeps_memory_bounded() {
    const LINES: usize = 60_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("console_2024-05-01_10-00-00.log");
    append(&path, b"");
    let c = config(dir.path());
    let cap = c.channel_capacity;
    let per_batch_bound = (c.batch_max_bytes + c.max_line_len + c.read_chunk) as u64;
    let rss_before = rss_kib();
    let (handle, mut rx) = DirTail::new(c).spawn();

    let writer_path = path.clone();
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&writer_path)
            .unwrap();
        let start = std::time::Instant::now();
        let mut line = String::new();
        for burst in 0..100 {
            let mut buf = String::new();
            for i in burst * (LINES / 100)..(burst + 1) * (LINES / 100) {
                line.clear();
                line.push_str(&format!(
                    "12:34:56 Warning Message: No entry 'bin\\config.bin/CfgVehicles/x_{i}'.\n"
                ));
                buf.push_str(&line);
            }
            f.write_all(buf.as_bytes()).unwrap();
            // Paced against the start, so sleep overshoot does not accumulate.
            let due = start + Duration::from_millis(9 * (burst as u64 + 1));
            std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
        }
        start.elapsed()
    });

    let mut next = 0usize;
    let mut max_queued = 0usize;
    let mut max_in_flight = 0u64;
    let mut max_lag = 0u64;
    while next < LINES {
        max_queued = max_queued.max(rx.len());
        let b = timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("stalled")
            .expect("ended");
        assert!(b.lines.len() <= 1000);
        for l in &b.lines {
            let want = format!(
                "12:34:56 Warning Message: No entry 'bin\\config.bin/CfgVehicles/x_{next}'."
            );
            assert_eq!(l.text, want);
            next += 1;
        }
        let consumed_bytes = b.next_offset;
        let read = handle.stats().bytes_read.load(Ordering::Relaxed);
        max_in_flight = max_in_flight.max(read.saturating_sub(consumed_bytes));
        let size = std::fs::metadata(&path).unwrap().len();
        max_lag = max_lag.max(size.saturating_sub(read));
        // Deliberately slow: ~40 batches/s, i.e. at most 40k lines/s.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let wrote_in = writer.join().unwrap();
    let rate = LINES as f64 / wrote_in.as_secs_f64();
    let rss_after = rss_kib();
    eprintln!(
        "backpressure: writer {rate:.0} lines/s, max queued {max_queued}/{cap}, \
         max bytes in flight {max_in_flight}, max file lag {max_lag}, \
         RSS {rss_before:?} -> {rss_after:?} KiB"
    );
    assert!(rate > 50_000.0, "writer too slow: {rate}");
    assert!(max_queued <= cap);
    assert!(max_in_flight <= (cap as u64 + 2) * per_batch_bound);
    assert!(max_lag > 0, "the tailer never had to wait");
    handle.shutdown().await;
}

#[tokio::test]
async fn tail_start_at_end_skips_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("console_2024-05-01_10-00-00.log");
    append(&path, b"old 1\nold 2\n");
    let (handle, mut rx) = DirTail::with_start(config(dir.path()), TailStart::End).spawn();
    tokio::time::sleep(Duration::from_millis(50)).await;
    append(&path, b"new\n");
    let (lines, _) = recv_lines(&mut rx, 1).await;
    assert_eq!(texts(&lines), ["new"]);
    handle.shutdown().await;
}

#[test]
fn tail_pattern_matching() {
    let p = LogFilePattern::console();
    assert!(p.matches("console_2024-01-01_00-00-00.log"));
    assert!(!p.matches("console_.lo"));
    assert!(!p.matches("xconsole_1.log"));
    let ranked = LogFilePattern::Ranked(Arc::new(Stamped));
    assert!(ranked.matches("game_1.txt"));
    assert!(!ranked.matches("console_2024-01-01_00-00-00.log"));
    assert_eq!(ranked, LogFilePattern::Ranked(Arc::new(Stamped)));
    assert_ne!(ranked, p);
}
