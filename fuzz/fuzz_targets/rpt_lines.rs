//! The line splitter every tailed log goes through (`shared/src/lines.rs`): a game
//! server (or a mod) writes whatever it likes, in whatever pieces the OS delivers.
//!
//! Differential property: feeding the input in fuzzer-chosen chunk sizes yields exactly
//! the pieces feeding it at once does. Plus: no piece exceeds the cap, the buffer never
//! holds more than cap + 1 bytes, and each line's pieces join to the line itself (minus
//! its `\n` and one `\r` before it).
#![no_main]

use arbitrary::Arbitrary;
use languard_shared::lines::LineSplitter;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    max: u8,
    chunks: Vec<u8>,
    data: Vec<u8>,
}

fn split(max: usize, chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
    let mut s = LineSplitter::new(max);
    let mut out = Vec::new();
    for chunk in chunks {
        s.feed(chunk, |l| out.push((l.bytes.to_vec(), l.continued)));
        assert!(
            s.pending() <= s.max_line_len() + 1,
            "holds {} bytes",
            s.pending()
        );
    }
    s.finish(|l| out.push((l.bytes.to_vec(), l.continued)));
    assert_eq!(s.pending(), 0);
    out
}

fuzz_target!(|input: Input| {
    let max = usize::from(input.max).max(1);
    let data = &input.data;
    let whole = split(max, &[data]);

    let mut chunks: Vec<&[u8]> = Vec::new();
    let mut rest = &data[..];
    for &c in &input.chunks {
        let n = usize::from(c).min(rest.len());
        let (now, later) = rest.split_at(n);
        chunks.push(now);
        rest = later;
    }
    chunks.push(rest);
    assert_eq!(split(max, &chunks), whole, "chunks {:?}", input.chunks);

    let strip_cr = |l: &[u8]| l.strip_suffix(b"\r").unwrap_or(l).to_vec();
    let mut expected: Vec<Vec<u8>> = data.split(|&b| b == b'\n').map(strip_cr).collect();
    if data.is_empty() || data.last() == Some(&b'\n') {
        expected.pop();
    }
    let mut lines = Vec::new();
    let mut cur = Vec::new();
    for (bytes, continued) in &whole {
        assert!(bytes.len() <= max);
        // A cut that is not a line end never leaves a piece empty.
        assert!(!*continued || !bytes.is_empty());
        cur.extend_from_slice(bytes);
        if !continued {
            lines.push(std::mem::take(&mut cur));
        }
    }
    assert!(cur.is_empty(), "last piece marked continued");
    assert_eq!(lines, expected);
});
