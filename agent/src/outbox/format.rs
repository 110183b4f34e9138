//! On-disk format of outbox segments and of the `acked` watermark file.
//!
//! Segment file `seg-<first seq, 20 digits>.log`:
//!
//! ```text
//! header  : magic "LGOB" | format version u32 LE (= 1)                       8 bytes
//! record* : len u32 LE | crc32 u32 LE | body                                 8 + len bytes
//! body    : seq u64 | class u8 | flags u8 | time_ms i64 | log_lines u32
//!           | log_first_ms i64 | log_last_ms i64 | payload                   38 + payload bytes
//! ```
//!
//! All integers are little-endian. `len` is the body length, `crc32` (IEEE, crc32fast)
//! covers the body. `class` is 0 = Log, 1 = Critical. `flags` bit 0 says the log fields
//! are meaningful (the record carried a [`LogMeta`](super::LogMeta)). Times are
//! milliseconds since the Unix epoch.
//!
//! `acked` file: magic "LGAK" | version u32 | acked seq u64 | crc32 u32 of the 16 bytes
//! before it. It is replaced atomically (write `acked.tmp`, rename).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::EventClass;

pub(crate) const SEGMENT_MAGIC: [u8; 4] = *b"LGOB";
pub(crate) const ACKED_MAGIC: [u8; 4] = *b"LGAK";
pub(crate) const FORMAT_VERSION: u32 = 1;
pub(crate) const SEGMENT_HEADER_LEN: u64 = 8;
pub(crate) const FRAME_HEADER_LEN: usize = 8;
pub(crate) const BODY_FIXED_LEN: usize = 38;
/// Bytes a record occupies on disk on top of its payload.
pub const RECORD_OVERHEAD: usize = FRAME_HEADER_LEN + BODY_FIXED_LEN;
/// Largest payload one record may carry (the link's frame limit).
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;
pub(crate) const ACKED_FILE_LEN: usize = 20;

const FLAG_LOG_META: u8 = 1;

/// Log fields as stored (times in ms since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawLogMeta {
    pub lines: u32,
    pub first_ms: i64,
    pub last_ms: i64,
}

/// A decoded, CRC-checked record that borrows its payload from the read buffer.
#[derive(Debug)]
pub(crate) struct Frame<'a> {
    /// Total bytes on disk (frame header + body).
    pub frame_len: usize,
    pub seq: u64,
    pub class: EventClass,
    pub time_ms: i64,
    pub log: Option<RawLogMeta>,
    pub payload: &'a [u8],
}

#[derive(Debug)]
pub(crate) enum Decoded<'a> {
    Frame(Frame<'a>),
    /// The buffer ends before the record does (a torn write at the tail).
    Incomplete,
    /// The bytes are not a valid record.
    Invalid(&'static str),
}

pub(crate) fn segment_header() -> [u8; 8] {
    let mut h = [0u8; 8];
    h[..4].copy_from_slice(&SEGMENT_MAGIC);
    h[4..].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

pub(crate) fn frame_len(payload_len: usize) -> usize {
    RECORD_OVERHEAD + payload_len
}

pub(crate) fn encode_frame(
    out: &mut Vec<u8>,
    seq: u64,
    class: EventClass,
    time_ms: i64,
    log: Option<RawLogMeta>,
    payload: &[u8],
) {
    let body_len = BODY_FIXED_LEN + payload.len();
    let start = out.len();
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&[0u8; 4]); // crc, filled in below
    let body_start = out.len();
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(class.to_byte());
    out.push(if log.is_some() { FLAG_LOG_META } else { 0 });
    out.extend_from_slice(&time_ms.to_le_bytes());
    let meta = log.unwrap_or(RawLogMeta {
        lines: 0,
        first_ms: 0,
        last_ms: 0,
    });
    out.extend_from_slice(&meta.lines.to_le_bytes());
    out.extend_from_slice(&meta.first_ms.to_le_bytes());
    out.extend_from_slice(&meta.last_ms.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[body_start..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    u64_at(b, at) as i64
}

/// Decodes the record at the start of `buf`.
pub(crate) fn decode_frame(buf: &[u8]) -> Decoded<'_> {
    if buf.len() < FRAME_HEADER_LEN {
        return Decoded::Incomplete;
    }
    let body_len = u32_at(buf, 0) as usize;
    if !(BODY_FIXED_LEN..=BODY_FIXED_LEN + MAX_PAYLOAD_BYTES).contains(&body_len) {
        return Decoded::Invalid("record length out of range");
    }
    let total = FRAME_HEADER_LEN + body_len;
    if buf.len() < total {
        return Decoded::Incomplete;
    }
    let body = &buf[FRAME_HEADER_LEN..total];
    if crc32fast::hash(body) != u32_at(buf, 4) {
        return Decoded::Invalid("CRC mismatch");
    }
    let Some(class) = EventClass::from_byte(body[8]) else {
        return Decoded::Invalid("unknown event class");
    };
    let flags = body[9];
    if flags & !FLAG_LOG_META != 0 {
        return Decoded::Invalid("unknown record flags");
    }
    let log = (flags & FLAG_LOG_META != 0).then(|| RawLogMeta {
        lines: u32_at(body, 18),
        first_ms: i64_at(body, 22),
        last_ms: i64_at(body, 30),
    });
    Decoded::Frame(Frame {
        frame_len: total,
        seq: u64_at(body, 0),
        class,
        time_ms: i64_at(body, 10),
        log,
        payload: &body[BODY_FIXED_LEN..],
    })
}

/// Checks a segment header; `Err` carries the reason.
pub(crate) fn check_segment_header(buf: &[u8]) -> Result<(), HeaderError> {
    if buf.len() < SEGMENT_HEADER_LEN as usize {
        return Err(HeaderError::Short);
    }
    if buf[..4] != SEGMENT_MAGIC {
        return Err(HeaderError::BadMagic);
    }
    let version = u32_at(buf, 4);
    if version != FORMAT_VERSION {
        return Err(HeaderError::Version(version));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderError {
    Short,
    BadMagic,
    Version(u32),
}

pub(crate) fn encode_acked(acked: u64) -> [u8; ACKED_FILE_LEN] {
    let mut b = [0u8; ACKED_FILE_LEN];
    b[..4].copy_from_slice(&ACKED_MAGIC);
    b[4..8].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    b[8..16].copy_from_slice(&acked.to_le_bytes());
    let crc = crc32fast::hash(&b[..16]);
    b[16..].copy_from_slice(&crc.to_le_bytes());
    b
}

pub(crate) fn decode_acked(b: &[u8]) -> Option<u64> {
    if b.len() != ACKED_FILE_LEN
        || b[..4] != ACKED_MAGIC
        || u32_at(b, 4) != FORMAT_VERSION
        || crc32fast::hash(&b[..16]) != u32_at(b, 16)
    {
        return None;
    }
    Some(u64_at(b, 8))
}

pub(crate) fn segment_file_name(base: u64) -> String {
    format!("seg-{base:020}.log")
}

pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("seg-")?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Milliseconds since the Unix epoch, saturating.
pub(crate) fn to_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

pub(crate) fn from_ms(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}
