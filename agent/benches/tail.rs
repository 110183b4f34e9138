//! Log tailer throughput: lines/s from file bytes to batched, parsed `LogLine`s on the
//! consumer side of the channel. Plain `main` (harness = false); run with
//! `cargo bench -p languard-agent --bench tail`. Optional argument: number of lines
//! (default 2 000 000).

use std::error::Error;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use languard_agent::games::arma::log::RptParser;
use languard_agent::telemetry::metrics::MetricsSampler;
use languard_agent::telemetry::tail::{DirTail, LogBatch, LogFilePattern, TailConfig};
use languard_shared::arma::rpt::TimeStampFormat;
use tokio::sync::mpsc;

type Res<T> = Result<T, Box<dyn Error>>;

/// Lines shaped like a busy modded server's RPT (short timestamps).
fn rpt_line(i: usize, out: &mut String) {
    use std::fmt::Write as _;
    let (h, m, s) = ((i / 3600) % 24, (i / 60) % 60, i % 60);
    let _ = write!(out, "{h:>2}:{m:02}:{s:02} ");
    let _ = match i % 6 {
        0 => writeln!(
            out,
            "Warning Message: No entry 'bin\\config.bin/CfgVehicles/B_Soldier_{i}.scope'."
        ),
        1 => writeln!(
            out,
            "BattlEye Server: Player #{} Player{} (10.0.{}.{}:2304) connected",
            i % 100,
            i,
            i % 250,
            i % 200
        ),
        2 => writeln!(
            out,
            "Error in expression <_unit setDamage 1;> Error position: <setDamage 1;> {i}"
        ),
        3 => writeln!(
            out,
            "\"[ACE] (medical) INFO: unit {i} treated, 3 wounds left\""
        ),
        4 => writeln!(
            out,
            "Server: Object {}:{} not found (message Type_{})",
            i % 7,
            i,
            i % 120
        ),
        _ => writeln!(out, "Mission id: 9f2c1b8e{i:08x}"),
    };
}

fn write_lines(path: &Path, from: usize, to: usize) -> Res<u64> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut buf = String::with_capacity(1 << 20);
    let mut bytes = 0u64;
    for i in from..to {
        rpt_line(i, &mut buf);
        if buf.len() >= 64 * 1024 {
            f.write_all(buf.as_bytes())?;
            bytes += buf.len() as u64;
            buf.clear();
        }
    }
    f.write_all(buf.as_bytes())?;
    bytes += buf.len() as u64;
    Ok(bytes)
}

async fn consume(rx: &mut mpsc::Receiver<LogBatch>, lines: usize) -> Res<(usize, usize)> {
    let (mut got, mut batches) = (0usize, 0usize);
    while got < lines {
        let b = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await?
            .ok_or("tailer ended")?;
        got += b.lines.len();
        batches += 1;
    }
    Ok((got, batches))
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn config(dir: &Path) -> TailConfig {
    TailConfig::new(
        dir,
        LogFilePattern::console(),
        std::sync::Arc::new(RptParser::new(TimeStampFormat::Short)),
    )
}

fn main() -> Res<()> {
    let lines: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;

    // 1. A file written beforehand.
    let path = dir.path().join("console_2024-05-01_10-00-00.log");
    let t = Instant::now();
    let bytes = write_lines(&path, 0, lines)?;
    println!(
        "prepared {lines} lines, {:.1} MB in {:.2?}",
        bytes as f64 / 1e6,
        t.elapsed()
    );
    rt.block_on(async {
        let start = Instant::now();
        let (handle, mut rx) = DirTail::new(config(dir.path())).spawn();
        let (got, batches) = consume(&mut rx, lines).await?;
        let secs = start.elapsed().as_secs_f64();
        println!(
            "existing file: {got} lines in {secs:.3} s = {:.0} lines/s, {:.0} MB/s, {batches} batches",
            got as f64 / secs,
            bytes as f64 / 1e6 / secs
        );
        handle.shutdown().await;
        Res::Ok(())
    })?;
    std::fs::remove_file(&path)?;

    // 2. Appended concurrently, as fast as the writer can.
    let path = dir.path().join("console_2024-05-01_11-00-00.log");
    std::fs::write(&path, b"")?;
    rt.block_on(async {
        let mut c = config(dir.path());
        c.poll_interval = Duration::from_millis(10);
        let (handle, mut rx) = DirTail::new(c).spawn();
        let writer_path = path.clone();
        let start = Instant::now();
        let writer = std::thread::spawn(move || {
            let r = write_lines(&writer_path, 0, lines).map_err(|e| e.to_string());
            (r, start.elapsed())
        });
        let (got, batches) = consume(&mut rx, lines).await?;
        let secs = start.elapsed().as_secs_f64();
        let (written, wrote_in) = writer.join().map_err(|_| "writer panicked")?;
        written?;
        println!(
            "concurrent append: {got} lines in {secs:.3} s = {:.0} lines/s \
             (writer alone took {:.3} s), {batches} batches",
            got as f64 / secs,
            wrote_in.as_secs_f64()
        );
        handle.shutdown().await;
        Res::Ok(())
    })?;
    println!("peak RSS of the bench process: {:?} KiB", peak_rss_kib());

    // 3. One metrics sample (host + own process), steady state.
    let mut sampler = MetricsSampler::new().map_err(|e| e.to_string())?;
    let me = std::process::id();
    let _ = sampler.sample(&[me]);
    std::thread::sleep(Duration::from_millis(250));
    let n = 20;
    let start = Instant::now();
    for _ in 0..n {
        let _ = sampler.sample(&[me]);
    }
    println!(
        "metrics sample: {:.2?} each (mean of {n})",
        start.elapsed() / n
    );
    Ok(())
}
