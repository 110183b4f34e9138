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
#[derive(Debug, Default, Clone)]
pub struct Reassembly {
    pub(super) parts: Vec<Option<Vec<u8>>>,
    pub(super) missing: usize,
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
}

impl Reassembly {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one response packet's part header and body. `None` means a single-packet
    /// answer, which completes at once.
    pub fn push(&mut self, part: Option<Part>, body: Vec<u8>) -> PushOutcome {
        let Some(Part { total, index }) = part else {
            self.parts.clear();
            self.missing = 0;
            return PushOutcome::Complete(body);
        };
        let (total, index) = (usize::from(total), usize::from(index));
        if total == 0 || index >= total {
            return PushOutcome::Duplicate;
        }
        let mut restarted = false;
        if self.parts.len() != total {
            restarted = !self.parts.is_empty();
            self.parts.clear();
            self.parts.resize(total, None);
            self.missing = total;
        }
        let slot = &mut self.parts[index];
        if slot.is_some() {
            return PushOutcome::Duplicate;
        }
        *slot = Some(body);
        self.missing -= 1;
        if self.missing > 0 {
            return if restarted {
                PushOutcome::Restarted
            } else {
                PushOutcome::Incomplete
            };
        }
        let parts = std::mem::take(&mut self.parts);
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
