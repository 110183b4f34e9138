//! The controller ↔ agent frame reader (`shared/src/wire/frame.rs`): the first place a
//! peer's bytes become memory.
//!
//! The stream arrives in fuzzer-chosen chunk sizes, reads sometimes return `Pending`
//! (as a socket does), and the fuzzer may cancel `read_frame` at any `Pending` and call
//! it again (as a `select!` next to a heartbeat timer does). Properties: never panics;
//! the frames and the final error equal a plain reference parser's, however the input
//! was chunked or cancelled (cancel safety); every frame payload is offered to the
//! message decoders, which must not panic either.
#![no_main]

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use arbitrary::Arbitrary;
use languard_shared::wire::frame::{FrameError, FrameReader, HEADER_LEN, decode};
use languard_shared::wire::link::{AgentMessage, ControllerMessage};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, ReadBuf};

#[derive(Debug, Arbitrary)]
struct Input {
    /// The reader's maximum payload length.
    max: u16,
    /// Per read: low bits = bytes returned (0 = return `Pending` first), high bit =
    /// cancel the pending `read_frame` when it returns `Pending`.
    schedule: Vec<u8>,
    stream: Vec<u8>,
}

/// Serves `data` in the sizes `schedule` dictates.
struct Chunked<'a> {
    data: &'a [u8],
    schedule: &'a [u8],
    step: usize,
    /// Set when the last poll returned `Pending` with the cancel bit: the driver then
    /// drops the `read_frame` future instead of polling it again.
    cancel: &'a Cell<bool>,
}

impl Chunked<'_> {
    fn next_step(&mut self) -> u8 {
        let s = self.schedule.get(self.step).copied().unwrap_or(0x3F);
        self.step += 1;
        s
    }
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let step = self.next_step();
        let size = usize::from(step & 0x3F);
        if size == 0 && self.step <= self.schedule.len() {
            self.cancel.set(step & 0x80 != 0);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let n = size.max(1).min(buf.remaining()).min(self.data.len());
        let (now, later) = self.data.split_at(n);
        buf.put_slice(now);
        self.data = later;
        Poll::Ready(Ok(()))
    }
}

#[derive(Debug, PartialEq)]
enum End {
    Clean,
    TooLarge { len: usize },
    Truncated,
}

/// What the stream contains, read the obvious way.
fn reference(mut data: &[u8], max: usize) -> (Vec<Vec<u8>>, End) {
    let mut frames = Vec::new();
    loop {
        if data.is_empty() {
            return (frames, End::Clean);
        }
        let Some((header, rest)) = data.split_first_chunk::<HEADER_LEN>() else {
            return (frames, End::Truncated);
        };
        let len = u32::from_be_bytes(*header) as usize;
        if len > max {
            return (frames, End::TooLarge { len });
        }
        if rest.len() < len {
            return (frames, End::Truncated);
        }
        let (frame, rest) = rest.split_at(len);
        frames.push(frame.to_vec());
        data = rest;
    }
}

fn offer(payload: &[u8]) {
    if let Ok(m) = decode::<AgentMessage>(payload) {
        let _ = format!("{m:?}");
    }
    if let Ok(m) = decode::<ControllerMessage>(payload) {
        let _ = format!("{m:?}");
    }
}

fuzz_target!(|input: Input| {
    let max = usize::from(input.max);
    let cancel = Cell::new(false);
    let (want_frames, want_end) = reference(&input.stream, max);
    let mut reader = FrameReader::new(
        Chunked {
            data: &input.stream,
            schedule: &input.schedule,
            step: 0,
            cancel: &cancel,
        },
        max,
    );
    let mut cx = Context::from_waker(Waker::noop());
    let mut frames = Vec::new();
    let mut polls = 0usize;
    let end = 'outer: loop {
        let mut fut = std::pin::pin!(reader.read_frame());
        let result = loop {
            polls += 1;
            // Every poll either reads or consumes a schedule step: this terminates.
            assert!(polls < 1_000_000, "reader does not make progress");
            match fut.as_mut().poll(&mut cx) {
                Poll::Ready(r) => break r,
                Poll::Pending if cancel.replace(false) => continue 'outer,
                Poll::Pending => {}
            }
        };
        match result {
            Ok(Some(frame)) => {
                offer(&frame);
                frames.push(frame);
            }
            Ok(None) => break End::Clean,
            Err(FrameError::TooLarge { len, max: m }) => {
                assert_eq!(m, max);
                break End::TooLarge { len };
            }
            Err(FrameError::Truncated) => break End::Truncated,
            Err(other) => panic!("unexpected error {other}"),
        }
    };
    assert_eq!(frames, want_frames);
    assert_eq!(end, want_end);
});
