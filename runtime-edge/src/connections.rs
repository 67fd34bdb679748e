//! The connection layer under [`crate::routes`]: accepts TCP connections, serves HTTP/1.1 on each with hyper, closes
//! connections that make no progress, and drains them for a bounded time on shutdown.
//!
//! | Bound ([`Timeouts`]) | What happens |
//! |---|---|
//! | `header` | a connection whose request headers are not complete that long after the server began waiting for them (the connection opened, or its previous response was sent) is closed |
//! | `body` | `/invocations` answers 408 and closes the connection when the body has not fully arrived that long after the headers (see [`crate::routes`]) |
//! | `idle` | a connection on which no byte moved and no request was being handled for that long is closed: a kept-alive connection between requests, or a client that stopped reading its response |
//! | `drain` | on shutdown the listener closes at once, idle connections close, requests being handled may finish; connections still open that long after are closed |

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::Timeouts;

/// Serves `app` on every connection `listener` accepts until `shutdown` completes; then closes the listener, lets
/// the open connections finish their requests for at most `timeouts.drain`, closes the rest and returns.
pub(crate) async fn serve_connections(
    listener: TcpListener,
    app: Router,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()>,
) {
    let (stop, stopping) = watch::channel(());
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, app.clone(), timeouts, stopping.clone()));
                }
                Err(error) => accept_failed(error).await,
            },
            // Finished connections are reaped as they end, so the set holds only open ones.
            Some(_) = connections.join_next() => {}
        }
    }
    drop(listener);
    let _ = stop.send(());
    if connections.is_empty() {
        return;
    }
    tracing::info!(
        open = connections.len(),
        drain_timeout_s = timeouts.drain.as_secs_f64(),
        "draining connections"
    );
    let drained = tokio::time::timeout(timeouts.drain, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the drain timeout: closing them"
        );
        connections.shutdown().await;
    }
}

/// Waits out a failed `accept`: a connection that failed before it was accepted is nothing to wait for; anything
/// else (no file descriptors left, …) is logged and retried a second later.
async fn accept_failed(error: io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Serves one connection until it ends, goes idle past `timeouts.idle`, or is drained after `stopping` changes.
async fn serve_connection(
    stream: TcpStream,
    app: Router,
    timeouts: Timeouts,
    mut stopping: watch::Receiver<()>,
) {
    // Responses are written whole; no reason to hold their last segment back.
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        stream,
        activity: activity.clone(),
    });
    let routes = TowerToHyperService::new(app);
    let handled = activity.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let handling = handled.start_request();
        let response = hyper::service::Service::call(&routes, request.map(Body::new));
        async move {
            let response = response.await;
            drop(handling);
            response
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(error) = served {
                    tracing::debug!(%error, "connection closed on an error");
                }
                return;
            }
            () = activity.idle_for(timeouts.idle) => {
                tracing::debug!(idle_timeout_s = timeouts.idle.as_secs_f64(), "closing an idle connection");
                return;
            }
            // Changed, or the sender is gone: either way the server is stopping.
            _ = stopping.changed(), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// When bytes last moved on a connection, and how many of its requests are being handled.
struct Activity {
    origin: Instant,
    /// Milliseconds from `origin` to the last read or write of at least one byte, or the end of a request.
    last_millis: AtomicU64,
    requests: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Activity {
            origin: Instant::now(),
            last_millis: AtomicU64::new(0),
            requests: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let now = self.origin.elapsed().as_millis() as u64;
        self.last_millis.store(now, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let now = self.origin.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_millis.load(Ordering::Relaxed)))
    }

    /// Counts a request as being handled until the guard drops.
    fn start_request(self: &Arc<Self>) -> Handling {
        self.requests.fetch_add(1, Ordering::Relaxed);
        Handling(self.clone())
    }

    /// Completes once no request has been handled and no byte has moved for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let quiet = self.quiet_for();
            if self.requests.load(Ordering::Relaxed) == 0 && quiet >= limit {
                return;
            }
            let wait = if self.requests.load(Ordering::Relaxed) == 0 {
                limit - quiet
            } else {
                limit
            };
            tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
        }
    }
}

/// A request being handled, for [`Activity`].
struct Handling(Arc<Activity>);

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.touch();
        self.0.requests.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A TCP stream that notes in [`Activity`] every read or write that moved bytes.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, buffers);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
