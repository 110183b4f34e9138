//! Reassembly of multi-part command answers and de-duplication of server messages:
//! the two places where UDP's reordering and the server's resends are absorbed.

use crate::arma::rcon::packet::Part;
use std::collections::VecDeque;

use super::*;

/// Collects the parts of one multi-part command response.
///
/// Parts may arrive in any order and more than once (the server resends the whole
/// answer when we retransmit). Bytes are joined in index order before any decoding,
/// so a UTF-8 character split across two parts survives. A part announcing a different
/// total than the ones before it means the server produced a new answer (e.g. it ran
/// the command again): the old parts are discarded and collection restarts.
/// Public so benchmarks and other transports can use it.
///
/// At most [`MAX_ANSWER_BYTES`] (or the [`Reassembly::with_limit`] limit) are
/// held: a server announcing 255 parts of ~64 KiB each could otherwise make us
/// buffer 16 MiB per command, 4 GiB across all seqs.
#[derive(Debug, Clone)]
pub struct Reassembly {
    pub(super) parts: Vec<Option<Vec<u8>>>,
    pub(super) missing: usize,
    /// Bytes held in `parts`.
    pub(super) bytes: usize,
    pub(super) limit: usize,
}

/// Largest multi-part answer buffered for one command (1 MiB). Real answers
/// (`players`, `bans` with thousands of entries) stay well below.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Largest total of partial answers one client buffers across all pending
/// commands (8 MiB); a part that would exceed it discards its answer.
pub const MAX_CLIENT_BUFFERED: usize = 8 << 20;

/// True when buffering `add` more bytes would take a client holding `total`
/// bytes of partial answers over [`MAX_CLIENT_BUFFERED`].
pub(super) fn client_budget_exceeded(total: usize, add: usize) -> bool {
    total.saturating_add(add) > MAX_CLIENT_BUFFERED
}

impl Default for Reassembly {
    fn default() -> Self {
        Self::with_limit(MAX_ANSWER_BYTES)
    }
}

/// What [`Reassembly::push`] made of a part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// All parts are in: the joined answer.
    Complete(Vec<u8>),
    /// Stored; more parts are needed.
    Incomplete,
    /// An index already stored; ignored.
    Duplicate,
    /// The total differed from earlier parts; earlier parts were discarded.
    Restarted,
    /// Storing the part would exceed the byte limit: every part was discarded
    /// and the answer should be given up.
    TooLarge,
}

impl Reassembly {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty collector holding at most `limit` bytes of parts.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            parts: Vec::new(),
            missing: 0,
            bytes: 0,
            limit,
        }
    }

    /// Bytes of parts currently held.
    pub fn buffered(&self) -> usize {
        self.bytes
    }

    fn clear(&mut self) {
        self.parts.clear();
        self.missing = 0;
        self.bytes = 0;
    }

    /// Adds one response packet's part header and body. `None` means a single-packet
    /// answer, which completes at once.
    pub fn push(&mut self, part: Option<Part>, body: Vec<u8>) -> PushOutcome {
        let Some(Part { total, index }) = part else {
            self.clear();
            return PushOutcome::Complete(body);
        };
        let (total, index) = (usize::from(total), usize::from(index));
        if total == 0 || index >= total {
            return PushOutcome::Duplicate;
        }
        let mut restarted = false;
        if self.parts.len() != total {
            restarted = !self.parts.is_empty();
            self.clear();
            self.parts.resize(total, None);
            self.missing = total;
        }
        if self.parts[index].is_some() {
            return PushOutcome::Duplicate;
        }
        if self.bytes.saturating_add(body.len()) > self.limit {
            self.clear();
            return PushOutcome::TooLarge;
        }
        self.bytes += body.len();
        self.parts[index] = Some(body);
        self.missing -= 1;
        if self.missing > 0 {
            return if restarted {
                PushOutcome::Restarted
            } else {
                PushOutcome::Incomplete
            };
        }
        let parts = std::mem::take(&mut self.parts);
        self.bytes = 0;
        let len = parts.iter().flatten().map(Vec::len).sum();
        let mut joined = Vec::with_capacity(len);
        for p in parts.into_iter().flatten() {
            joined.extend_from_slice(&p);
        }
        PushOutcome::Complete(joined)
    }
}

/// Remembers the most recent server-message seqs to drop resends.
pub(super) struct MessageDedup {
    pub(super) seen: [bool; SEQ_SPACE],
    pub(super) order: VecDeque<u8>,
}

impl Default for MessageDedup {
    fn default() -> Self {
        Self {
            seen: [false; SEQ_SPACE],
            order: VecDeque::with_capacity(MESSAGE_DEDUP_WINDOW),
        }
    }
}

impl MessageDedup {
    /// True when `seq` is new (and records it).
    pub(super) fn insert(&mut self, seq: u8) -> bool {
        if self.seen[usize::from(seq)] {
            return false;
        }
        if self.order.len() == MESSAGE_DEDUP_WINDOW
            && let Some(old) = self.order.pop_front()
        {
            self.seen[usize::from(old)] = false;
        }
        self.order.push_back(seq);
        self.seen[usize::from(seq)] = true;
        true
    }
}
