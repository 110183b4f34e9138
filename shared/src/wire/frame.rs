//! Framing for the controller ↔ agent link: each frame is a 4-byte big-endian length
//! followed by that many payload bytes, and the payload is one JSON-encoded
//! [`super::link`] message.
//!
//! The reader is the one place where bytes from a peer first become memory, so it is
//! strict: a length above the connection's maximum is refused *before* anything is
//! allocated, and the payload buffer grows with the bytes that actually arrive (never
//! beyond the announced length), so a peer that announces a large frame and then stalls
//! pins only what it really sent. Every error is typed ([`FrameError`]); the caller
//! closes the connection on any of them.
//!
//! [`FrameReader::read_frame`] / [`FrameReader::recv`] are cancel safe (all progress
//! lives in the reader, and the only await point is a cancel-safe `read`), so they can
//! sit in a `tokio::select!` next to heartbeat timers. Writes are not cancel safe (a
//! cancelled `write_all` leaves half a frame on the wire): give each connection one
//! writer task and do not cancel its sends.

use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

/// Default hard maximum of a frame's payload: 16 MiB. Both sides use it unless a
/// connection is configured otherwise.
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// Size of the length prefix.
pub const HEADER_LEN: usize = 4;

/// The first payload allocation; the buffer then doubles as bytes arrive.
const INITIAL_CHUNK: usize = 8 * 1024;

/// Why a frame could not be read or written. After any of these the caller closes the
/// connection: only [`FrameError::Decode`] leaves the byte stream in sync, and even
/// then the peer is not speaking our protocol.
#[derive(Debug, Error)]
pub enum FrameError {
    /// The length prefix (or an outgoing payload) exceeds the connection's maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The announced (or outgoing) payload length.
        len: usize,
        /// The connection's maximum.
        max: usize,
    },
    /// The transport failed.
    #[error("link I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the stream in the middle of a frame.
    #[error("stream ended in the middle of a frame")]
    Truncated,
    /// The payload is not a valid message.
    #[error("malformed message: {0}")]
    Decode(String),
    /// A message could not be encoded (should not happen for the link's types).
    #[error("cannot encode message: {0}")]
    Encode(String),
}

/// Reads one frame from `r`. `Ok(None)` means the peer closed the stream cleanly
/// between frames. Not cancel safe; use a [`FrameReader`] in a `select!` loop.
pub async fn read_frame<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    max: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    FrameReader::new(r, max).read_frame().await
}

/// Writes one frame (length prefix, payload) and flushes. Refuses payloads above
/// [`MAX_FRAME_LEN`]; use a [`FrameWriter`] for another maximum.
pub async fn write_frame<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    payload: &[u8],
) -> Result<(), FrameError> {
    write_raw(w, payload, MAX_FRAME_LEN).await
}

/// Encodes `msg` as one complete frame (prefix included), refusing it when the payload
/// exceeds `max`. Encoding straight behind a reserved prefix means a send is one
/// buffer and one `write_all`, with no copy of the payload.
pub fn encode_frame<M: Serialize + ?Sized>(msg: &M, max: usize) -> Result<Vec<u8>, FrameError> {
    let mut buf = vec![0u8; HEADER_LEN];
    serde_json::to_writer(&mut buf, msg).map_err(|e| FrameError::Encode(e.to_string()))?;
    let len = buf.len() - HEADER_LEN;
    let prefix = checked_prefix(len, max)?;
    buf[..HEADER_LEN].copy_from_slice(&prefix);
    Ok(buf)
}

/// Decodes one frame's payload.
pub fn decode<M: DeserializeOwned>(payload: &[u8]) -> Result<M, FrameError> {
    // serde_json's default recursion limit (128) keeps hostile nesting off the stack.
    serde_json::from_slice(payload).map_err(|e| FrameError::Decode(e.to_string()))
}

/// The effective maximum: the configured one, but never more than a u32 prefix holds.
fn effective_max(max: usize) -> usize {
    max.min(usize::try_from(u32::MAX).unwrap_or(usize::MAX))
}

fn checked_prefix(len: usize, max: usize) -> Result<[u8; HEADER_LEN], FrameError> {
    let max = effective_max(max);
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let len = u32::try_from(len).map_err(|_| FrameError::TooLarge { len, max })?;
    Ok(len.to_be_bytes())
}

async fn write_raw<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    payload: &[u8],
    max: usize,
) -> Result<(), FrameError> {
    let prefix = checked_prefix(payload.len(), max)?;
    w.write_all(&prefix).await?;
    w.write_all(payload).await?;
    w.flush().await?;
    Ok(())
}

async fn read_some<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    loop {
        match r.read(buf).await {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Reads frames from one connection, keeping partial progress between calls so that
/// [`FrameReader::read_frame`] is cancel safe.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    max: usize,
    header: [u8; HEADER_LEN],
    header_filled: usize,
    body: Vec<u8>,
    body_filled: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader refusing frames longer than `max` bytes.
    pub fn new(inner: R, max: usize) -> Self {
        Self {
            inner,
            max: effective_max(max),
            header: [0; HEADER_LEN],
            header_filled: 0,
            body: Vec::new(),
            body_filled: 0,
        }
    }

    /// The configured maximum payload length.
    pub fn max(&self) -> usize {
        self.max
    }

    /// The next frame's payload; `Ok(None)` on a clean end of stream between frames.
    /// Cancel safe. After [`FrameError::TooLarge`] or [`FrameError::Truncated`] every
    /// further call fails the same way.
    pub async fn read_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        while self.header_filled < HEADER_LEN {
            let n = read_some(&mut self.inner, &mut self.header[self.header_filled..]).await?;
            if n == 0 {
                return if self.header_filled == 0 {
                    Ok(None)
                } else {
                    Err(FrameError::Truncated)
                };
            }
            self.header_filled += n;
        }
        let len = usize::try_from(u32::from_be_bytes(self.header)).unwrap_or(usize::MAX);
        // Checked before any allocation; the header stays, so the error is sticky.
        if len > self.max {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        while self.body_filled < len {
            if self.body_filled == self.body.len() {
                // Grow geometrically with what arrived, never beyond `len`.
                let target = len.min(self.body.len().saturating_mul(2).max(INITIAL_CHUNK));
                self.body.reserve_exact(target - self.body.len());
                self.body.resize(target, 0);
            }
            let n = read_some(&mut self.inner, &mut self.body[self.body_filled..]).await?;
            if n == 0 {
                return Err(FrameError::Truncated);
            }
            self.body_filled += n;
        }
        let frame = std::mem::take(&mut self.body);
        self.header_filled = 0;
        self.body_filled = 0;
        Ok(Some(frame))
    }

    /// The next message; `Ok(None)` on a clean end of stream. Cancel safe.
    pub async fn recv<M: DeserializeOwned>(&mut self) -> Result<Option<M>, FrameError> {
        match self.read_frame().await? {
            Some(payload) => decode(&payload).map(Some),
            None => Ok(None),
        }
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Gives the stream back; a partly read frame is lost.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

/// Writes frames to one connection, refusing payloads above its maximum so that we
/// never send what the peer must refuse.
#[derive(Debug)]
pub struct FrameWriter<W> {
    inner: W,
    max: usize,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// A writer refusing payloads longer than `max` bytes.
    pub fn new(inner: W, max: usize) -> Self {
        Self {
            inner,
            max: effective_max(max),
        }
    }

    /// Writes one raw frame and flushes. Not cancel safe.
    pub async fn write_frame(&mut self, payload: &[u8]) -> Result<(), FrameError> {
        write_raw(&mut self.inner, payload, self.max).await
    }

    /// Encodes and writes one message, then flushes. Nothing is written when the
    /// message is too large. Not cancel safe.
    pub async fn send<M: Serialize + ?Sized>(&mut self, msg: &M) -> Result<(), FrameError> {
        let frame = encode_frame(msg, self.max)?;
        self.inner.write_all(&frame).await?;
        self.inner.flush().await?;
        Ok(())
    }

    /// Shuts the write side down (TLS: sends close_notify).
    pub async fn shutdown(&mut self) -> Result<(), FrameError> {
        self.inner.shutdown().await?;
        Ok(())
    }

    /// Gives the stream back.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

/// Both directions of one connection, for the hello exchange; then
/// [`FramedLink::into_split`] hands the halves to a reader task and a writer task.
#[derive(Debug)]
pub struct FramedLink<T> {
    reader: FrameReader<T>,
}

impl<T: AsyncRead + AsyncWrite + Unpin> FramedLink<T> {
    /// Frames `io` with the given maximum in both directions.
    pub fn new(io: T, max: usize) -> Self {
        Self {
            reader: FrameReader::new(io, max),
        }
    }

    /// Encodes and writes one message. Not cancel safe.
    pub async fn send<M: Serialize + ?Sized>(&mut self, msg: &M) -> Result<(), FrameError> {
        let frame = encode_frame(msg, self.reader.max)?;
        let io = &mut self.reader.inner;
        io.write_all(&frame).await?;
        io.flush().await?;
        Ok(())
    }

    /// The next message; `Ok(None)` on a clean end of stream. Cancel safe.
    pub async fn recv<M: DeserializeOwned>(&mut self) -> Result<Option<M>, FrameError> {
        self.reader.recv().await
    }

    /// Splits into a reader and a writer that can live in different tasks. A partly
    /// read frame carries over to the reader.
    pub fn into_split(self) -> (FrameReader<ReadHalf<T>>, FrameWriter<WriteHalf<T>>) {
        let FrameReader {
            inner,
            max,
            header,
            header_filled,
            body,
            body_filled,
        } = self.reader;
        let (r, w) = tokio::io::split(inner);
        let reader = FrameReader {
            inner: r,
            max,
            header,
            header_filled,
            body,
            body_filled,
        };
        (reader, FrameWriter::new(w, max))
    }

    /// The underlying stream (e.g. to read the peer certificate).
    pub fn get_ref(&self) -> &T {
        self.reader.get_ref()
    }

    /// The underlying stream, for writing bytes that are not a frame (tests of how a
    /// peer handles a broken stream).
    pub fn get_mut_io(&mut self) -> &mut T {
        &mut self.reader.inner
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;
    use serde::Deserialize;
    use tokio::io::{AsyncWriteExt, duplex};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Msg {
        n: u64,
        text: String,
    }

    fn msg(n: u64) -> Msg {
        Msg {
            n,
            text: format!("message {n} ✓"),
        }
    }

    #[tokio::test]
    async fn raw_frames_round_trip() {
        let (mut a, mut b) = duplex(1024);
        write_frame(&mut a, b"hello").await.unwrap();
        write_frame(&mut a, b"").await.unwrap();
        drop(a);
        assert_eq!(
            read_frame(&mut b, MAX_FRAME_LEN).await.unwrap().unwrap(),
            b"hello"
        );
        assert_eq!(
            read_frame(&mut b, MAX_FRAME_LEN).await.unwrap().unwrap(),
            b""
        );
        assert!(read_frame(&mut b, MAX_FRAME_LEN).await.unwrap().is_none());
        // Clean EOF stays clean.
        assert!(read_frame(&mut b, MAX_FRAME_LEN).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn messages_round_trip_over_a_framed_link() {
        let (a, b) = duplex(64);
        let mut a = FramedLink::new(a, MAX_FRAME_LEN);
        let mut b = FramedLink::new(b, MAX_FRAME_LEN);
        let sender = tokio::spawn(async move {
            a.send(&msg(1)).await.unwrap();
            let back: Msg = a.recv().await.unwrap().unwrap();
            assert_eq!(back, msg(2));
        });
        let got: Msg = b.recv().await.unwrap().unwrap();
        assert_eq!(got, msg(1));
        b.send(&msg(2)).await.unwrap();
        sender.await.unwrap();
    }

    #[tokio::test]
    async fn a_hostile_length_prefix_is_refused_before_reading_the_payload() {
        let (mut a, b) = duplex(1024);
        a.write_all(&[0xFF, 0xFF, 0xFF, 0xFF]).await.unwrap();
        // `a` stays open: a reader that tried to allocate and read the payload would
        // block here, so the timeout proves the check happens on the header alone.
        let mut reader = FrameReader::new(b, MAX_FRAME_LEN);
        let err = tokio::time::timeout(Duration::from_secs(5), reader.read_frame())
            .await
            .expect("the reader must not wait for the payload")
            .unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { len: 0xFFFF_FFFF, max } if max == MAX_FRAME_LEN),
            "{err:?}"
        );
        assert_eq!(reader.body.capacity(), 0);
        // Sticky: the stream is out of sync, so it keeps failing.
        assert!(matches!(
            reader.read_frame().await,
            Err(FrameError::TooLarge { .. })
        ));
        drop(a);
    }

    #[tokio::test]
    async fn the_maximum_is_per_connection_and_inclusive() {
        let (a, b) = duplex(1024);
        let mut w = FrameWriter::new(a, 8);
        let mut r = FrameReader::new(b, 8);
        w.write_frame(b"12345678").await.unwrap();
        assert!(matches!(
            w.write_frame(b"123456789").await,
            Err(FrameError::TooLarge { len: 9, max: 8 })
        ));
        assert!(matches!(
            w.send(&msg(1)).await,
            Err(FrameError::TooLarge { max: 8, .. })
        ));
        write_frame(&mut w.into_inner(), b"123456789")
            .await
            .unwrap();
        assert_eq!(r.read_frame().await.unwrap().unwrap(), b"12345678");
        assert!(matches!(
            r.read_frame().await,
            Err(FrameError::TooLarge { len: 9, max: 8 })
        ));
    }

    #[tokio::test]
    async fn a_stream_ending_mid_frame_is_truncated() {
        // In the header.
        let (mut a, mut b) = duplex(1024);
        a.write_all(&[0, 0]).await.unwrap();
        drop(a);
        assert!(matches!(
            read_frame(&mut b, MAX_FRAME_LEN).await,
            Err(FrameError::Truncated)
        ));
        // In the payload, with a prefix announcing far more than arrives.
        let (mut a, b) = duplex(1024);
        a.write_all(&(MAX_FRAME_LEN as u32).to_be_bytes())
            .await
            .unwrap();
        a.write_all(b"only this").await.unwrap();
        drop(a);
        let mut reader = FrameReader::new(b, MAX_FRAME_LEN);
        assert!(matches!(
            reader.read_frame().await,
            Err(FrameError::Truncated)
        ));
        // The buffer grew with what arrived, not with what was announced.
        assert!(reader.body.capacity() <= INITIAL_CHUNK);
    }

    #[tokio::test]
    async fn garbage_json_is_a_decode_error_and_the_stream_stays_in_sync() {
        let (mut a, b) = duplex(1024);
        write_frame(&mut a, b"{not json").await.unwrap();
        write_frame(&mut a, br#"{"n":"wrong type","text":""}"#)
            .await
            .unwrap();
        write_frame(&mut a, &encode_frame(&msg(3), MAX_FRAME_LEN).unwrap()[4..])
            .await
            .unwrap();
        drop(a);
        let mut r = FrameReader::new(b, MAX_FRAME_LEN);
        assert!(matches!(r.recv::<Msg>().await, Err(FrameError::Decode(_))));
        assert!(matches!(r.recv::<Msg>().await, Err(FrameError::Decode(_))));
        assert_eq!(r.recv::<Msg>().await.unwrap().unwrap(), msg(3));
        assert!(r.recv::<Msg>().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn many_frames_back_to_back_in_one_write() {
        let mut bytes = Vec::new();
        for n in 0..1000 {
            bytes.extend(encode_frame(&msg(n), MAX_FRAME_LEN).unwrap());
        }
        let mut r = FrameReader::new(&bytes[..], MAX_FRAME_LEN);
        for n in 0..1000 {
            assert_eq!(r.recv::<Msg>().await.unwrap().unwrap(), msg(n));
        }
        assert!(r.recv::<Msg>().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn byte_by_byte_writes_still_decode() {
        let (mut a, b) = duplex(1);
        let big = Msg {
            n: u64::MAX,
            text: "x".repeat(3 * INITIAL_CHUNK + 17),
        };
        let mut bytes = encode_frame(&msg(1), MAX_FRAME_LEN).unwrap();
        bytes.extend(encode_frame(&big, MAX_FRAME_LEN).unwrap());
        let writer = tokio::spawn(async move {
            for byte in bytes {
                a.write_all(&[byte]).await.unwrap();
            }
        });
        let mut r = FrameReader::new(b, MAX_FRAME_LEN);
        assert_eq!(r.recv::<Msg>().await.unwrap().unwrap(), msg(1));
        assert_eq!(r.recv::<Msg>().await.unwrap().unwrap(), big);
        writer.await.unwrap();
        assert!(r.recv::<Msg>().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_cancelled_read_loses_nothing() {
        let (mut a, b) = duplex(1024);
        let frame = encode_frame(&msg(7), MAX_FRAME_LEN).unwrap();
        let (head, tail) = frame.split_at(6);
        let mut r = FrameReader::new(b, MAX_FRAME_LEN);
        a.write_all(head).await.unwrap();
        // Cancelled mid-frame (as a select! on a heartbeat timer would do).
        assert!(
            tokio::time::timeout(Duration::from_millis(20), r.recv::<Msg>())
                .await
                .is_err()
        );
        a.write_all(tail).await.unwrap();
        assert_eq!(r.recv::<Msg>().await.unwrap().unwrap(), msg(7));
    }

    #[tokio::test]
    async fn split_halves_keep_a_partly_read_frame() {
        let (mut a, b) = duplex(1024);
        let frame = encode_frame(&msg(9), MAX_FRAME_LEN).unwrap();
        let mut link = FramedLink::new(b, MAX_FRAME_LEN);
        a.write_all(&frame[..5]).await.unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(20), link.recv::<Msg>())
                .await
                .is_err()
        );
        let (mut r, mut w) = link.into_split();
        a.write_all(&frame[5..]).await.unwrap();
        assert_eq!(r.recv::<Msg>().await.unwrap().unwrap(), msg(9));
        w.send(&msg(10)).await.unwrap();
        let mut back = FrameReader::new(a, MAX_FRAME_LEN);
        assert_eq!(back.recv::<Msg>().await.unwrap().unwrap(), msg(10));
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    proptest! {
        /// Any byte stream ends in frames, a clean end, or a typed error — never a
        /// panic — and the frames never hold more bytes than arrived.
        #[test]
        fn arbitrary_streams_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            max in 0usize..300,
        ) {
            runtime().block_on(async {
                let mut r = FrameReader::new(&bytes[..], max);
                let mut seen = 0;
                loop {
                    match r.read_frame().await {
                        Ok(Some(frame)) => {
                            prop_assert!(frame.len() <= max);
                            seen += HEADER_LEN + frame.len();
                            prop_assert!(seen <= bytes.len());
                            let _ = decode::<Msg>(&frame);
                        }
                        Ok(None) => {
                            prop_assert_eq!(seen, bytes.len());
                            break;
                        }
                        Err(FrameError::TooLarge { len, .. }) => {
                            prop_assert!(len > max);
                            break;
                        }
                        Err(FrameError::Truncated) => break,
                        Err(e) => prop_assert!(false, "unexpected {e:?}"),
                    }
                }
                Ok::<(), TestCaseError>(())
            })?;
        }

        /// Whatever is written comes back, however the stream is chunked.
        #[test]
        fn written_frames_read_back(
            payloads in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 0..200), 0..8),
            capacity in 1usize..64,
        ) {
            runtime().block_on(async {
                let (mut a, b) = duplex(capacity);
                let expected = payloads.clone();
                let writer = tokio::spawn(async move {
                    for p in &payloads {
                        write_frame(&mut a, p).await.unwrap();
                    }
                });
                let mut r = FrameReader::new(b, 200);
                for p in &expected {
                    prop_assert_eq!(&r.read_frame().await.unwrap().unwrap(), p);
                }
                writer.await.unwrap();
                prop_assert!(r.read_frame().await.unwrap().is_none());
                Ok::<(), TestCaseError>(())
            })?;
        }
    }
}
