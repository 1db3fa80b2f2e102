//! The listeners' connections, served by hyper-util's auto builder (HTTP/1.1 and h2) under
//! limits no client can outlast: an unfinished request, a 1-byte-a-second trickle or a pile of
//! idle keep-alive connections once held file descriptors until the process had none left
//! ("Too many open files" for every normal request).
//!
//! - **Headers**: once the first byte of a request (or of a TLS handshake) arrives, the
//!   request must be dispatched within `header_read_timeout`, however slowly it trickles.
//! - **Body**: the whole request body must arrive within `body_read_timeout` of its headers; a
//!   late body fails the read, so the dialect answers with its own invalid-parameter error and
//!   the connection closes.
//! - **Idle**: a connection with no request in flight and no bytes arriving is closed after
//!   `idle_timeout`.
//! - **Cap**: at most `max_connections` are open (set below the open-file limit, which start-up
//!   raises to its hard maximum). A connection beyond the cap closes the longest-idle open one
//!   (idle or still sending headers), so a normal request is served even when idle clients
//!   hold every slot; when every connection is busy it waits for one to finish.
//!
//! hyper's own `header_read_timeout` is not used: it also runs while a keep-alive connection
//! waits for its next request, which would make the idle timeout the header timeout.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::Router;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tower::ServiceExt;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long connections may take and how many may be open (config keys of the same names).
#[derive(Clone, Debug)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// How long a stopping server lets its connections finish the requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// File descriptors kept out of the connection cap, for the database, job files and chunks:
/// an eighth of the limit, from 64 to 1 024.
fn reserved_fds(limit: u64) -> u64 {
    (limit / 8).clamp(64, 1024)
}

/// The connection cap for an open-file limit: what the operator asked for (or 10 000), but
/// never so many that connections alone exhaust the limit.
pub fn connection_cap(asked: Option<usize>, nofile: u64) -> usize {
    let room = nofile.saturating_sub(reserved_fds(nofile)).max(16) as usize;
    match asked {
        Some(n) if n > room => {
            tracing::warn!(
                max_connections = n,
                open_file_limit = nofile,
                "max_connections is above what the open-file limit allows; serving at most {room}"
            );
            room
        }
        Some(n) => n.max(1),
        None => room.min(10_000),
    }
}

/// Raise the soft open-file limit to the hard one (the usual soft 1 024 is far below what a
/// server needs); returns the soft limit in force afterwards.
pub fn raise_open_file_limit() -> u64 {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 1024;
        }
        // RLIM_INFINITY is refused for RLIMIT_NOFILE (fs.nr_open bounds it): ask for 2^20.
        let want = if r.rlim_max == libc::RLIM_INFINITY { 1 << 20 } else { r.rlim_max };
        if r.rlim_cur < want {
            let before = r.rlim_cur;
            let raised = libc::rlimit { rlim_cur: want, rlim_max: r.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                tracing::info!(from = before, to = want, "raised the open-file limit to its hard maximum");
                return want;
            }
            tracing::warn!(soft = before, hard = r.rlim_max, "could not raise the open-file limit");
        }
        r.rlim_cur
    }
}

/// What the watchdog of one connection needs to know, updated by its reads and requests.
struct ConnState {
    /// Requests dispatched whose response has not been fully sent.
    in_flight: AtomicUsize,
    /// When (ms after `Conns::epoch`) the connection last had nothing in flight.
    idle_since: AtomicU64,
    /// When (ms after `epoch`, plus 1; 0 = not) bytes of a next request started arriving.
    reading_since: AtomicU64,
    /// Asked to close because a new connection needs its slot.
    shed: Notify,
    /// One of the above changed: the watchdog's deadline may have moved.
    changed: Notify,
}

impl ConnState {
    /// When this connection is due to close if nothing changes; None while a request is in
    /// flight (the handler and the body deadline bound those).
    fn due(&self, epoch: Instant, limits: &Limits) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let reading = self.reading_since.load(Ordering::Acquire);
        Some(if reading > 0 {
            epoch + Duration::from_millis(reading - 1) + limits.header_read_timeout
        } else {
            epoch + Duration::from_millis(self.idle_since.load(Ordering::Acquire)) + limits.idle_timeout
        })
    }

    /// The time the connection has been idle or sending headers from, for picking which to shed.
    fn quiet_since(&self) -> Option<u64> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        match self.reading_since.load(Ordering::Acquire) {
            0 => Some(self.idle_since.load(Ordering::Acquire)),
            r => Some(r - 1),
        }
    }
}

/// Every open connection of the process (both listeners share the cap).
pub struct Conns {
    epoch: Instant,
    limits: Limits,
    permits: Arc<Semaphore>,
    open: Mutex<HashMap<u64, Arc<ConnState>>>,
    next_id: AtomicU64,
}

impl Conns {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Conns {
            epoch: Instant::now(),
            permits: Arc::new(Semaphore::new(limits.max_connections)),
            limits,
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ask the connection quiet the longest to close.
    fn shed_one(&self) {
        let open = self.open();
        if let Some(c) = open.values().filter_map(|c| c.quiet_since().map(|t| (t, c))).min_by_key(|(t, _)| *t) {
            c.1.shed.notify_one();
        }
    }

    /// Accept on `listener` (TLS when `tls` is given) until `stop`, serving `app`.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        app: Router,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            let (tcp, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of descriptors (EMFILE) despite the cap: free one and retry.
                        tracing::warn!(error = %e, "accept failed");
                        self.shed_one();
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = stop.wait_for(|s| *s) => return,
            };
            let permit = match self.permits.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => loop {
                    self.shed_one();
                    tokio::select! {
                        p = self.permits.clone().acquire_owned() => break p.expect("the semaphore is never closed"),
                        // The one asked to go was busy by then: ask the next.
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            tokio::spawn(self.clone().connection(tcp, peer, tls.clone(), app.clone(), permit, stop.clone()));
        }
    }

    /// Wait (at most the shutdown grace and a little) until every connection has ended.
    pub async fn drained(&self) {
        let deadline = Instant::now() + SHUTDOWN_GRACE + Duration::from_secs(1);
        while !self.open().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn connection(
        self: Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
        tls: Option<tokio_rustls::TlsAcceptor>,
        app: Router,
        _permit: OwnedSemaphorePermit,
        stop: watch::Receiver<bool>,
    ) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let st = Arc::new(ConnState {
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(self.now_ms()),
            reading_since: AtomicU64::new(0),
            shed: Notify::new(),
            changed: Notify::new(),
        });
        self.open().insert(id, st.clone());
        let _registered = Registered { conns: &self, id };
        let io = Tracked { inner: tcp, st: st.clone(), conns: self.clone() };
        match tls {
            None => self.drive(TokioIo::new(io), peer, &st, app, stop).await,
            Some(acceptor) => {
                // The handshake is the start of the first request: the header deadline bounds it.
                let handshake = tokio::time::timeout(self.limits.header_read_timeout, acceptor.accept(io));
                let stream = tokio::select! {
                    r = handshake => match r {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    },
                    _ = st.shed.notified() => return,
                };
                self.drive(TokioIo::new(stream), peer, &st, app, stop).await
            }
        }
    }

    /// Serve one connection until it ends, times out, is shed, or the server stops.
    async fn drive<I>(
        self: &Arc<Self>,
        io: TokioIo<I>,
        peer: SocketAddr,
        st: &Arc<ConnState>,
        app: Router,
        mut stop: watch::Receiver<bool>,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let conns = self.clone();
        let state = st.clone();
        let body_limit = self.limits.body_read_timeout;
        let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let busy = Busy::start(&state, &conns);
            let app = app.clone();
            async move {
                let mut req = req.map(|b| DeadlineBody::new(b, body_limit));
                // The peer's address, as axum's `ConnectInfo` (the console limits sign-ins by it).
                req.extensions_mut().insert(ConnectInfo(peer));
                let resp = app.oneshot(req).await.unwrap_or_else(|e: Infallible| match e {});
                Ok::<_, Infallible>(resp.map(|inner| InFlightBody { inner, _busy: busy }))
            }
        });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // Headers are timed by the watchdog below (see the module comment).
        builder.http1().timer(TokioTimer::new()).header_read_timeout(None);
        let conn = builder.serve_connection(io, svc);
        tokio::pin!(conn);
        let mut hard_stop: Option<Instant> = None;
        loop {
            let wake = match hard_stop {
                Some(t) => t,
                None => st.due(self.epoch, &self.limits).unwrap_or_else(|| Instant::now() + self.limits.idle_timeout),
            };
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = tokio::time::sleep_until(wake.into()) => {
                    if hard_stop.is_some() {
                        return;
                    }
                    if st.due(self.epoch, &self.limits).is_some_and(|d| d <= Instant::now()) {
                        return; // dropping the connection closes it
                    }
                }
                // A request started or ended, or a next one began to arrive: a new deadline.
                _ = st.changed.notified(), if hard_stop.is_none() => {}
                _ = st.shed.notified(), if hard_stop.is_none() => {
                    if st.in_flight.load(Ordering::Acquire) == 0 {
                        return;
                    }
                }
                _ = stop.wait_for(|s| *s), if hard_stop.is_none() => {
                    conn.as_mut().graceful_shutdown();
                    hard_stop = Some(Instant::now() + SHUTDOWN_GRACE);
                }
            }
        }
    }
}

/// Removes a connection from the open set when its task ends, however it ends.
struct Registered<'a> {
    conns: &'a Conns,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.conns.open().remove(&self.id);
    }
}

/// One request in flight on a connection: from dispatch until its response body is sent (or
/// dropped).
struct Busy {
    st: Arc<ConnState>,
    conns: Arc<Conns>,
}

impl Busy {
    fn start(st: &Arc<ConnState>, conns: &Arc<Conns>) -> Busy {
        st.in_flight.fetch_add(1, Ordering::AcqRel);
        st.reading_since.store(0, Ordering::Release);
        st.changed.notify_one();
        Busy { st: st.clone(), conns: conns.clone() }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if self.st.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.st.idle_since.store(self.conns.now_ms(), Ordering::Release);
            self.st.changed.notify_one();
        }
    }
}

/// The socket, noting when bytes arrive on a connection with nothing in flight: the start of a
/// request whose headers must then arrive in time.
struct Tracked<S> {
    inner: S,
    st: Arc<ConnState>,
    conns: Arc<Conns>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let st = &self.st;
            if st.in_flight.load(Ordering::Acquire) == 0 && st.reading_since.load(Ordering::Acquire) == 0 {
                st.reading_since.store(self.conns.now_ms() + 1, Ordering::Release);
                st.changed.notify_one();
            }
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A request body that fails once `limit` has passed since its headers: a total deadline, not
/// one per read (tower-http's `TimeoutBody` resets on every frame, which a trickle outlasts).
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    limit: Duration,
}

impl DeadlineBody {
    fn new(inner: Incoming, limit: Duration) -> Self {
        DeadlineBody { inner, deadline: Box::pin(tokio::time::sleep(limit)), limit }
    }
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(BoxError::from)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            let msg = format!("the request body did not arrive within {} s of its headers", self.limit.as_secs_f64());
            return Poll::Ready(Some(Err(msg.into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request counted as in flight until it is sent or dropped.
struct InFlightBody {
    inner: Body,
    _busy: Busy,
}

impl http_body::Body for InFlightBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_stays_below_the_open_file_limit() {
        assert_eq!(connection_cap(None, 1024), 896);
        assert_eq!(connection_cap(None, 128), 64);
        assert_eq!(connection_cap(None, 1 << 20), 10_000);
        assert_eq!(connection_cap(Some(5000), 1024), 896);
        assert_eq!(connection_cap(Some(50), 1024), 50);
    }
}
