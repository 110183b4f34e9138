//! Multi-part answer reassembly (`shared/src/arma/rcon/client/reassembly.rs`), the
//! state a server (or anyone spoofing its address) drives with every response packet.
//!
//! Two properties:
//! - Hostile pushes (any part headers, bodies, limit): never panics, never holds more
//!   than its limit, and every outcome agrees with a small reference model.
//! - An honest server's answer, delivered in any order with any duplicates: completes
//!   exactly once, when the last missing part arrives, with the original bytes.
#![no_main]

use arbitrary::Arbitrary;
use languard_shared::arma::rcon::Part;
use languard_shared::arma::rcon::client::{PushOutcome, Reassembly};
use languard_shared::arma::rcon::{ServerPacket, split_response};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Push {
    part: Option<(u8, u8)>,
    body: Vec<u8>,
}

#[derive(Debug, Arbitrary)]
enum Input {
    Hostile {
        limit: u16,
        pushes: Vec<Push>,
    },
    Honest {
        body: Vec<u8>,
        max_body: u8,
        order: Vec<u8>,
        limit: u16,
    },
}

/// The documented behaviour, written as plainly as possible.
#[derive(Default)]
struct Model {
    parts: Vec<Option<Vec<u8>>>,
}

impl Model {
    fn push(&mut self, part: Option<Part>, body: Vec<u8>, limit: usize) -> PushOutcome {
        let Some(Part { total, index }) = part else {
            self.parts.clear();
            return PushOutcome::Complete(body);
        };
        let (total, index) = (usize::from(total), usize::from(index));
        if total == 0 || index >= total {
            return PushOutcome::Duplicate;
        }
        let restarted = self.parts.len() != total && !self.parts.is_empty();
        if self.parts.len() != total {
            self.parts = vec![None; total];
        }
        if self.parts[index].is_some() {
            return PushOutcome::Duplicate;
        }
        if self.held() + body.len() > limit {
            self.parts.clear();
            return PushOutcome::TooLarge;
        }
        self.parts[index] = Some(body);
        if self.parts.iter().all(Option::is_some) {
            let joined = self.parts.drain(..).flatten().flatten().collect();
            return PushOutcome::Complete(joined);
        }
        if restarted {
            PushOutcome::Restarted
        } else {
            PushOutcome::Incomplete
        }
    }

    fn held(&self) -> usize {
        self.parts.iter().flatten().map(Vec::len).sum()
    }
}

fuzz_target!(|input: Input| {
    match input {
        Input::Hostile { limit, pushes } => {
            let limit = usize::from(limit);
            let mut r = Reassembly::with_limit(limit);
            let mut model = Model::default();
            for Push { part, body } in pushes {
                let part = part.map(|(total, index)| Part { total, index });
                let got = r.push(part, body.clone());
                let want = model.push(part, body, limit);
                assert_eq!(got, want, "part {part:?}");
                assert!(r.buffered() <= limit);
                assert_eq!(r.buffered(), model.held());
            }
        }
        Input::Honest {
            body,
            max_body,
            order,
            limit,
        } => {
            let parts = split_response(1, &body, usize::from(max_body));
            let limit = usize::from(limit);
            let mut r = Reassembly::with_limit(limit);
            let mut delivered = vec![false; parts.len()];
            // Deliver in the fuzzer's order (with repeats), then whatever is left.
            let sequence = order
                .iter()
                .map(|&i| usize::from(i) % parts.len())
                .chain(0..parts.len());
            let mut completed = false;
            // A one-packet answer without a part header completes whatever its size.
            let multipart = matches!(
                parts[0],
                ServerPacket::CommandResponse { part: Some(_), .. }
            );
            let overflows = multipart && body.len() > limit;
            for i in sequence {
                let ServerPacket::CommandResponse {
                    part, body: chunk, ..
                } = parts[i].clone()
                else {
                    unreachable!("split_response only makes command responses");
                };
                let outcome = r.push(part, chunk);
                if overflows {
                    // Some part must overflow the limit before all are in.
                    if outcome == PushOutcome::TooLarge {
                        return;
                    }
                    assert!(
                        matches!(outcome, PushOutcome::Incomplete | PushOutcome::Duplicate),
                        "{outcome:?}"
                    );
                    continue;
                }
                let first_time = !delivered[i];
                delivered[i] = true;
                match outcome {
                    PushOutcome::Complete(joined) => {
                        assert!(delivered.iter().all(|&d| d), "completed early");
                        assert_eq!(joined, body);
                        completed = true;
                        break;
                    }
                    PushOutcome::Incomplete => assert!(first_time),
                    PushOutcome::Duplicate => assert!(!first_time),
                    other => panic!("honest delivery gave {other:?}"),
                }
            }
            assert!(completed, "never completed");
        }
    }
});
