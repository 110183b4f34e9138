//! Cutting a byte stream into lines, for every log the agent tails: bounded memory
//! whatever the writer does, and the same lines however the input was chunked.

/// One line (or piece of an over-long line) from [`LineSplitter`], without its
/// `\n` and without a `\r` right before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitLine<'a> {
    pub bytes: &'a [u8],
    /// The physical line was longer than the cap and was cut here; the rest of it
    /// follows in the next piece(s). The last piece of a line has `continued == false`.
    pub continued: bool,
}

/// Turns arbitrary byte chunks (as read from a growing file or a pipe) into lines.
///
/// Partial lines are buffered across chunks, `\r\n` is treated as `\n`, and a line
/// longer than `max_line_len` bytes is emitted in pieces of at most that many bytes
/// (cut on a UTF-8 character boundary when one is within 3 bytes), so a writer that
/// never sends a newline cannot make the buffer grow without bound: it never holds more
/// than `max_line_len + 1` bytes. The pieces emitted do not depend on how the input was
/// chunked. Complete lines that arrive within one chunk are emitted straight from the
/// chunk, without copying.
#[derive(Debug, Clone)]
pub struct LineSplitter {
    buf: Vec<u8>,
    max: usize,
}

impl Default for LineSplitter {
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_LINE)
    }
}

impl LineSplitter {
    /// 1 MiB: far above any real RPT line, small enough to bound memory.
    pub const DEFAULT_MAX_LINE: usize = 1 << 20;

    /// `max_line_len` is clamped to at least 1.
    pub fn new(max_line_len: usize) -> Self {
        Self {
            buf: Vec::new(),
            max: max_line_len.max(1),
        }
    }

    pub fn max_line_len(&self) -> usize {
        self.max
    }

    /// Bytes of the current incomplete line held back.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Feed the next chunk; `emit` is called for every complete line (or piece).
    pub fn feed<F: FnMut(SplitLine<'_>)>(&mut self, chunk: &[u8], mut emit: F) {
        let mut rest = chunk;
        while let Some(i) = find_byte(rest, b'\n') {
            let (part, tail) = (&rest[..i], &rest[i + 1..]);
            if self.buf.is_empty() {
                let mut content = strip_cr(part);
                while content.len() > self.max {
                    let cut = cut_point(content, self.max);
                    emit(SplitLine {
                        bytes: &content[..cut],
                        continued: true,
                    });
                    content = &content[cut..];
                }
                emit(SplitLine {
                    bytes: content,
                    continued: false,
                });
            } else {
                self.push_partial(part, &mut emit);
                emit(SplitLine {
                    bytes: strip_cr(&self.buf),
                    continued: false,
                });
                self.buf.clear();
            }
            rest = tail;
        }
        self.push_partial(rest, &mut emit);
    }

    /// End of input: emit the unterminated last line, if any.
    pub fn finish<F: FnMut(SplitLine<'_>)>(&mut self, mut emit: F) {
        if !self.buf.is_empty() {
            emit(SplitLine {
                bytes: strip_cr(&self.buf),
                continued: false,
            });
            self.buf.clear();
        }
    }

    /// Append bytes of a not-yet-terminated line, emitting pieces whenever more than
    /// `max` content bytes are known. A trailing `\r` is not counted yet, since it may
    /// turn out to be half of a `\r\n`; that keeps the output chunking-independent.
    /// Invariant: `eff_len(buf) <= max`, hence `buf.len() <= max + 1`.
    fn push_partial<F: FnMut(SplitLine<'_>)>(&mut self, mut data: &[u8], emit: &mut F) {
        let max = self.max;
        loop {
            if self.buf.is_empty() {
                while eff_len(data) > max {
                    let cut = cut_point(data, max);
                    emit(SplitLine {
                        bytes: &data[..cut],
                        continued: true,
                    });
                    data = &data[cut..];
                }
                self.buf.extend_from_slice(data);
                return;
            }
            let last = data.last().or(self.buf.last());
            let eff = self.buf.len() + data.len() - usize::from(last == Some(&b'\r'));
            if eff <= max {
                self.buf.extend_from_slice(data);
                return;
            }
            // More than `max` content bytes pending: bring the buffer to max + 1 bytes
            // (it is at most that already) and cut one piece off the front.
            let take = (max + 1).saturating_sub(self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            let cut = cut_point(&self.buf, max);
            emit(SplitLine {
                bytes: &self.buf[..cut],
                continued: true,
            });
            self.buf.drain(..cut);
        }
    }
}

pub(crate) fn strip_cr(b: &[u8]) -> &[u8] {
    b.strip_suffix(b"\r").unwrap_or(b)
}

fn eff_len(b: &[u8]) -> usize {
    b.len() - usize::from(b.last() == Some(&b'\r'))
}

/// Where to cut `data` (longer than `max`) so the piece is ≤ `max` bytes and, if
/// possible, ends on a UTF-8 character boundary.
fn cut_point(data: &[u8], max: usize) -> usize {
    let is_cont = |i: usize| data.get(i).is_some_and(|&b| b & 0xC0 == 0x80);
    let floor = max.saturating_sub(3).max(1);
    let mut cut = max;
    while cut > floor && is_cont(cut) {
        cut -= 1;
    }
    if is_cont(cut) { max } else { cut }
}

/// First index of `needle`, scanning a word at a time (no `memchr` dependency, no
/// `unsafe`).
pub(crate) fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO * u64::from(needle);
    let mut chunks = hay.chunks_exact(8);
    let mut base = 0;
    for chunk in chunks.by_ref() {
        if let Some(word) = chunk.first_chunk::<8>() {
            let x = u64::from_le_bytes(*word) ^ pattern;
            let found = x.wrapping_sub(LO) & !x & HI;
            if found != 0 {
                // The lowest flagged byte is always a true match.
                return Some(base + (found.trailing_zeros() / 8) as usize);
            }
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == needle)
        .map(|i| base + i)
}
