//! Accepting TCP connections and serving HTTP/1.1 on them, with the bounds `axum::serve` does
//! not set: a cap on open connections (HTTP and WebSocket together), a time limit on reading a
//! request's head, and one on an idle keep-alive connection.
//!
//! hyper's own header timer also runs while a keep-alive connection waits for its next request,
//! so it cannot give an idle connection longer than a request's head; the two timers are kept
//! here instead, on the connection's byte stream ([`Guarded`]), told by the service when a
//! request's head was read and when its response is ready. A connection upgraded to a WebSocket
//! leaves both timers behind (the socket has its own idle timeout and write timeout) and keeps
//! its place among the open connections until it closes.
//!
//! With TLS (`TLS_CERT`), the handshake comes first and must finish within the header timeout;
//! the timers then run on the decrypted stream.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt as _;

use crate::domain::bounds::STOP_WAIT;
use crate::routes::tls::Tls;
use crate::telemetry::metrics;

/// How long accepting pauses after an error such as running out of file descriptors, so the
/// loop does not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The bounds on every connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Open TCP connections at most, HTTP and WebSocket together; past it a new connection is
    /// closed at once, unanswered.
    pub max_connections: usize,
    /// How long a request's head may take, from the connection's start or the first byte of a
    /// request on a kept-alive connection.
    pub header_timeout: Duration,
    /// How long a kept-alive connection may wait, silent, for its next request.
    pub keepalive_timeout: Duration,
}

/// Serves `router` on `listener` until `stop` turns true; then stops accepting, lets requests
/// in flight finish (connections close after their current response), and returns once every
/// HTTP connection has closed (or [`STOP_WAIT`] has passed). Upgraded WebSockets are closed by
/// their sessions.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    tls: Option<Tls>,
    mut stop: watch::Receiver<bool>,
) {
    let places = Arc::new(Semaphore::new(limits.max_connections));
    let (open_tx, mut all_closed) = mpsc::channel::<()>(1);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopping| *stopping) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(error = %err, "cannot accept a connection");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        // Past the cap the stream is dropped here: the peer sees its connection closed.
        let Ok(place) = places.clone().try_acquire_owned() else { continue };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
        let open = open_tx.clone();
        let (router, stop) = (router.clone(), stop.clone());
        let place = Place::new(place);
        let acceptor = tls.as_ref().map(Tls::acceptor);
        tokio::spawn(async move {
            match acceptor {
                None => serve_connection(Guarded::new(stream, place, limits), peer, router, stop).await,
                Some(acceptor) => {
                    // A handshake that stalls or fails closes the connection, unanswered.
                    let handshake = tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await;
                    if let Ok(Ok(stream)) = handshake {
                        serve_connection(Guarded::new(stream, place, limits), peer, router, stop).await;
                    }
                }
            }
            drop(open);
        });
    }
    drop(open_tx);
    if tokio::time::timeout(STOP_WAIT, all_closed.recv()).await.is_err() {
        tracing::warn!("stopping with HTTP requests still open after {STOP_WAIT:?}");
    }
}

/// A connection's place under the cap, counted in the open-connections gauge while it lasts.
struct Place {
    _permit: OwnedSemaphorePermit,
}

impl Place {
    fn new(permit: OwnedSemaphorePermit) -> Self {
        metrics::gauge!(metrics::CONNECTIONS_OPEN).increment(1.0);
        Self { _permit: permit }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        metrics::gauge!(metrics::CONNECTIONS_OPEN).decrement(1.0);
    }
}

/// One connection: HTTP/1.1 with upgrades, closed gracefully when the server stops.
async fn serve_connection<S>(io: Guarded<S>, peer: SocketAddr, router: Router, mut stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let phase = io.phase.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        phase.set(Phase::Serving);
        request.extensions_mut().insert(ConnectInfo(peer));
        let (router, phase) = (router.clone(), phase.clone());
        async move {
            let response = router.oneshot(request).await;
            if let Ok(response) = &response {
                phase.set(if response.status() == hyper::StatusCode::SWITCHING_PROTOCOLS {
                    Phase::Upgraded
                } else {
                    Phase::Idle(Instant::now())
                });
            }
            response
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // The timers are the stream's own (see the module's comment).
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    let stopped = tokio::select! {
        _ = connection.as_mut() => false,
        _ = stop.wait_for(|stopping| *stopping) => true,
    };
    if stopped {
        connection.as_mut().graceful_shutdown();
        let _ = connection.await;
    }
}

/// Where a connection is in its request/response cycle, which says which timer runs.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Reading a request's head, since then (the connection's start, or the request's first byte).
    Head(Instant),
    /// A request is being served: no timer (the response's writing keeps the peer busy).
    Serving,
    /// Kept alive after a response, silent since then.
    Idle(Instant),
    /// Upgraded to a WebSocket: its session keeps its own time.
    Upgraded,
}

/// The phase, shared by the stream and the service, with the waker of the last read that
/// found nothing: hyper does not read again after answering until woken, and the idle timer must
/// be armed by a read, so a response that ends a request wakes that read.
#[derive(Clone)]
struct SharedPhase(Arc<Mutex<(Phase, Option<Waker>)>>);

impl SharedPhase {
    fn new(phase: Phase) -> Self {
        Self(Arc::new(Mutex::new((phase, None))))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Phase, Option<Waker>)> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self) -> Phase {
        self.lock().0
    }

    fn set(&self, phase: Phase) {
        let waiting = {
            let mut state = self.lock();
            state.0 = phase;
            state.1.take()
        };
        if let Some(waker) = waiting {
            waker.wake();
        }
    }

    fn reading(&self, waker: &Waker) {
        self.lock().1 = Some(waker.clone());
    }
}

/// A connection's stream (TCP, or TLS over TCP) that holds its place under the cap, and fails a
/// read once its phase's time is up, which makes hyper close the connection.
struct Guarded<S> {
    stream: S,
    phase: SharedPhase,
    limits: ConnectionLimits,
    /// Armed by the first read that waits, dropped once upgraded: an idle WebSocket keeps none.
    timer: Option<Pin<Box<Sleep>>>,
    /// Seen upgraded: the phase no longer changes, so reads and writes pass straight through
    /// without the shared phase's lock (every frame of a WebSocket's life goes this way).
    upgraded: bool,
    _place: Place,
}

impl<S> Guarded<S> {
    fn new(stream: S, place: Place, limits: ConnectionLimits) -> Self {
        let now = Instant::now();
        Self { stream, phase: SharedPhase::new(Phase::Head(now)), limits, timer: None, upgraded: false, _place: place }
    }

    /// The current phase (once upgraded, without asking the shared one again).
    fn phase(&mut self) -> Phase {
        if self.upgraded {
            return Phase::Upgraded;
        }
        let phase = self.phase.get();
        if let Phase::Upgraded = phase {
            self.upgraded = true;
            self.timer = None;
        }
        phase
    }

    /// When the current phase's time is up, if a timer runs in it.
    fn deadline(&mut self) -> Option<Instant> {
        match self.phase() {
            Phase::Head(since) => Some(since + self.limits.header_timeout),
            Phase::Idle(since) => Some(since + self.limits.keepalive_timeout),
            Phase::Serving | Phase::Upgraded => None,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.upgraded {
            return Pin::new(&mut this.stream).poll_read(cx, buf);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                // A request's first byte on a kept-alive connection starts its head's timer.
                if buf.filled().len() > before {
                    if let Phase::Idle(_) = this.phase() {
                        this.phase.set(Phase::Head(Instant::now()));
                    }
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                this.phase.reading(cx.waker());
                // The deadline may have moved since the timer was armed (a response written
                // meanwhile): only a deadline that has passed ends the connection.
                loop {
                    // None while serving (no timer runs), and once upgraded (the timer is gone).
                    let Some(deadline) = this.deadline() else {
                        return Poll::Pending;
                    };
                    let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                    if timer.deadline() != deadline {
                        timer.as_mut().reset(deadline);
                    }
                    ready!(timer.as_mut().poll(cx));
                    if this.deadline().is_some_and(|deadline| deadline <= Instant::now()) {
                        return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = ready!(Pin::new(&mut this.stream).poll_write(cx, buf));
        // A response still being written after its head keeps the connection from idling out.
        if let Phase::Idle(_) = this.phase() {
            this.phase.set(Phase::Idle(Instant::now()));
        }
        Poll::Ready(written)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = ready!(Pin::new(&mut this.stream).poll_write_vectored(cx, bufs));
        if let Phase::Idle(_) = this.phase() {
            this.phase.set(Phase::Idle(Instant::now()));
        }
        Poll::Ready(written)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
