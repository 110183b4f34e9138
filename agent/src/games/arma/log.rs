//! Arma 3's log as the tail reads it: RPT lines (a time prefix in the server's
//! `timeStampFormat`, a severity guessed from the message) and, on Windows, the
//! `<exe>_<start time>.rpt` files the server starts anew on every launch.

use languard_shared::arma::rpt::{RptTime, TimeStampFormat, parse_line_with, parse_rpt_file_name};

use crate::telemetry::tail::{LineDate, LineParser, LineTime, LogFileRanking, ParsedLine};

/// RPT lines written with a known `timeStampFormat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RptParser {
    format: TimeStampFormat,
}

impl RptParser {
    /// A parser for the server's `timeStampFormat`.
    pub fn new(format: TimeStampFormat) -> Self {
        Self { format }
    }
}

fn line_time(t: RptTime) -> LineTime {
    LineTime {
        date: t.date.map(|d| LineDate {
            year: d.year,
            month: d.month,
            day: d.day,
        }),
        hour: t.hour,
        minute: t.minute,
        second: t.second,
    }
}

impl LineParser for RptParser {
    fn parse<'a>(&self, line: &'a [u8]) -> ParsedLine<'a> {
        let parsed = parse_line_with(line, self.format);
        ParsedLine {
            time: parsed.time.map(line_time),
            level: parsed.level,
            text: parsed.message,
        }
    }
}

/// Any `*.rpt` (case-insensitive), ranked by the start time in the name
/// (`arma3server_x64_2022-11-13_11-52-47.rpt`), as the shared `find_newest_rpt` does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RptFiles;

impl LogFileRanking for RptFiles {
    fn matches(&self, name: &str) -> bool {
        std::path::Path::new(name)
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("rpt"))
    }

    fn start_stamp(&self, name: &str) -> Option<u64> {
        let (_, t) = parse_rpt_file_name(name)?;
        let d = t.date;
        Some(
            [
                u64::from(d.month),
                u64::from(d.day),
                u64::from(t.hour),
                u64::from(t.minute),
                u64::from(t.second),
            ]
            .into_iter()
            .fold(u64::from(d.year), |acc, part| acc * 100 + part),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use languard_shared::wire::LogLevel as Level;
    use tokio::sync::mpsc;
    use tokio::time::timeout;

    use super::*;
    use crate::telemetry::tail::{DirTail, LogBatch, LogFilePattern, LogLine, TailConfig};

    fn config(dir: &Path, format: TimeStampFormat) -> TailConfig {
        let mut c = TailConfig::new(
            dir,
            LogFilePattern::console(),
            Arc::new(RptParser::new(format)),
        );
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

    async fn recv_lines(
        rx: &mut mpsc::Receiver<LogBatch>,
        n: usize,
    ) -> (Vec<LogLine>, Vec<LogBatch>) {
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

    async fn expect_no_lines(rx: &mut mpsc::Receiver<LogBatch>, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        while let Ok(Some(b)) = tokio::time::timeout_at(deadline, rx.recv()).await {
            assert!(b.lines.is_empty(), "unexpected lines: {:?}", b.lines);
        }
    }

    #[tokio::test]
    async fn rpt_lines_arrive_whole_with_time_and_level() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console_2024-05-01_10-00-00.log");
        append(&path, b"");
        let (handle, mut rx) = DirTail::new(config(dir.path(), TimeStampFormat::Short)).spawn();
        append(&path, b" 9:15:02 hel");
        expect_no_lines(&mut rx, Duration::from_millis(100)).await;
        append(&path, b"lo world\r\n12:00:01 Warning Message: x");
        let (lines, _) = recv_lines(&mut rx, 1).await;
        assert_eq!(texts(&lines), ["hello world"]);
        assert_eq!(
            lines[0].time,
            Some(LineTime {
                date: None,
                hour: 9,
                minute: 15,
                second: 2
            })
        );
        expect_no_lines(&mut rx, Duration::from_millis(100)).await;
        append(&path, b" more\nError: boom\n");
        let (lines, batches) = recv_lines(&mut rx, 2).await;
        assert_eq!(texts(&lines), ["Warning Message: x more", "Error: boom"]);
        assert_eq!(lines[0].level, Level::Warn);
        assert_eq!(lines[1].level, Level::Error);
        let size = std::fs::metadata(&path).unwrap().len();
        assert_eq!(batches.last().unwrap().next_offset, size);
        handle.shutdown().await;
    }

    #[tokio::test]
    async fn the_tail_follows_the_newest_rpt() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("arma3server_x64_2024-05-01_10-00-00.rpt");
        let b = dir.path().join("arma3server_x64_2024-05-02_09-00-00.RPT");
        append(&a, b"2024/05/01, 10:00:01 a1\n");
        append(
            &dir.path().join("console_2099-01-01_00-00-00.log"),
            b"not rpt\n",
        );
        let mut c = config(dir.path(), TimeStampFormat::Full);
        c.pattern = LogFilePattern::Ranked(Arc::new(RptFiles));
        let (handle, mut rx) = DirTail::new(c).spawn();
        let (lines, _) = recv_lines(&mut rx, 1).await;
        assert_eq!(texts(&lines), ["a1"]);
        assert_eq!(lines[0].time.and_then(|t| t.date).map(|d| d.day), Some(1));
        append(&b, b" 9:00:00 b1\n");
        let (lines, batches) = recv_lines(&mut rx, 1).await;
        assert_eq!(texts(&lines), ["b1"]);
        assert_eq!(batches.last().unwrap().file, b);
        handle.shutdown().await;
    }

    #[test]
    fn rpt_names_match_and_rank_by_start_time() {
        let p = LogFilePattern::Ranked(Arc::new(RptFiles));
        assert!(p.matches("a.RPT"));
        assert!(!p.matches("a.rpt.gz"));
        let stamp = |n| RptFiles.start_stamp(n);
        assert_eq!(
            stamp("arma3server_x64_2022-11-13_11-52-47.rpt"),
            Some(20221113115247)
        );
        assert!(
            stamp("arma3server_x64_2022-11-13_11-52-47.rpt")
                < stamp("arma3server_2022-11-14_00-00-00.rpt")
        );
        assert_eq!(stamp("server.rpt"), None);
    }
}
