//! One accepted connection: hyper (HTTP/1.1 or HTTP/2, by what the client speaks) in
//! front of the poem endpoint, watched for a header that never completes and for idleness.
//!
//! hyper's own HTTP/1 header timeout also runs while a keep-alive connection waits for its
//! next request and does not exist for HTTP/2, so both deadlines are kept here, the same
//! way for both protocols: the socket notes when bytes arrive, the service notes when a
//! request starts and when its response is done.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use poem::endpoint::BoxEndpoint;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Endpoint, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::Limits;
use super::limit::Slot;

/// "No time recorded" in the millisecond fields of [`Activity`].
const NONE: u64 = u64::MAX;

/// What the watchdog needs to know about a connection. Times are milliseconds since the
/// connection was accepted.
struct Activity {
    start: Instant,
    /// Requests whose handler runs or whose response body is still being sent.
    in_flight: AtomicUsize,
    /// When the last request finished (NONE: no request yet).
    quiet_since: AtomicU64,
    /// When bytes first arrived while no request was in flight: a header is coming.
    head_started: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            quiet_since: AtomicU64::new(NONE),
            head_started: AtomicU64::new(NONE),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn bytes_arrived(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let _ = self.head_started.compare_exchange(
                NONE,
                self.now_ms(),
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }

    fn begin_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(NONE, Ordering::Release);
        InFlight(self.clone())
    }

    /// When the connection should be closed if nothing changes; `None` while a request
    /// is in flight.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let at = |ms: u64, d: Duration| self.start + Duration::from_millis(ms) + d;
        let head = self.head_started.load(Ordering::Acquire);
        if head != NONE {
            return Some(at(head, limits.header_timeout));
        }
        match self.quiet_since.load(Ordering::Acquire) {
            // A new connection owes us its first request within the header timeout.
            NONE => Some(at(0, limits.header_timeout)),
            quiet => Some(at(quiet, limits.idle_timeout)),
        }
    }
}

/// A request in flight; dropped when its response body is done (or abandoned).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        a.quiet_since.store(a.now_ms(), Ordering::Release);
        a.head_started.store(NONE, Ordering::Release);
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The socket, noting arrivals; it also holds the connection's slot, so the slot lives
/// exactly as long as the socket, through an upgrade to WebSocket too.
struct Watched {
    io: TcpStream,
    activity: Arc<Activity>,
    _slot: Slot,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.bytes_arrived();
        }
        res
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// A response body that keeps its request counted as in flight until it is sent.
struct Counted {
    inner: BoxBody<Bytes, std::io::Error>,
    _in_flight: InFlight,
}

impl hyper::body::Body for Counted {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Why a connection ended before the client closed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    HeaderTimeout,
    Idle,
}

/// After a graceful close was asked for, how long an idle connection may take to say
/// goodbye (HTTP/2 GOAWAY) before it is dropped.
const GOODBYE: Duration = Duration::from_secs(1);

/// Serves one connection until the client closes it, a deadline passes, or `shutdown`
/// turns true (then open requests finish; the caller bounds how long).
pub(super) async fn serve(
    io: TcpStream,
    slot: Slot,
    ep: Arc<BoxEndpoint<'static, Response>>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let (Ok(local), Ok(remote)) = (io.local_addr(), io.peer_addr()) else {
        return;
    };
    let activity = Arc::new(Activity::new());
    let socket = Watched {
        io,
        activity: activity.clone(),
        _slot: slot,
    };
    let service = hyper::service::service_fn({
        let activity = activity.clone();
        move |req: hyper::Request<Incoming>| {
            let in_flight = activity.begin_request();
            let ep = ep.clone();
            async move {
                let req: poem::Request = (
                    req,
                    LocalAddr(poem::Addr::SocketAddr(local)),
                    RemoteAddr(poem::Addr::SocketAddr(remote)),
                    poem::http::uri::Scheme::HTTP,
                )
                    .into();
                let resp: hyper::Response<BoxBody<Bytes, std::io::Error>> =
                    ep.get_response(req).await.into();
                Ok::<_, Infallible>(resp.map(|inner| Counted {
                    inner,
                    _in_flight: in_flight,
                }))
            }
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .max_pending_accept_reset_streams(Some(20))
        .max_header_list_size(16 * 1024);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(socket), service);
    tokio::pin!(conn);

    let recheck = limits.header_timeout.min(limits.idle_timeout);
    let mut cut = None;
    loop {
        let wake = activity
            .deadline(&limits)
            .unwrap_or_else(|| Instant::now() + recheck);
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(%remote, error = %e, "HTTP connection ended with an error");
                }
                return;
            }
            _ = tokio::time::sleep_until(wake) => {
                if let Some(d) = activity.deadline(&limits)
                    && Instant::now() >= d
                {
                    cut = Some(if activity.head_started.load(Ordering::Acquire) != NONE
                        || activity.quiet_since.load(Ordering::Acquire) == NONE
                    {
                        Cut::HeaderTimeout
                    } else {
                        Cut::Idle
                    });
                    break;
                }
            }
            res = shutdown.wait_for(|stop| *stop) => {
                // A dropped sender also means the server is going away.
                let _ = res;
                break;
            }
        }
    }
    conn.as_mut().graceful_shutdown();
    match cut {
        Some(why) => {
            tracing::debug!(%remote, ?why, "closing HTTP connection");
            // Nothing is in flight: a short goodbye, then drop the socket.
            let _ = tokio::time::timeout(GOODBYE, conn).await;
        }
        // Server shutdown: requests in flight finish; the server bounds the wait.
        None => {
            let _ = conn.await;
        }
    }
}
