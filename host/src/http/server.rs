//! The HTTP server: accept loop, connection limits, HTTP/1.1 and HTTP/2, graceful shutdown.
//! It serves any [`Service`]; the app is one.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::Body;
use super::write_timeout::WriteTimeout;
use crate::manifest::ServerSection;
use crate::text::log_safe;

/// What the server hands every parsed request to.
pub trait Service: Send + Sync + 'static {
    /// Answer one request. Never fails: every problem is an HTTP error response.
    fn call(
        &self,
        req: http::Request<hyper::body::Incoming>,
        client: SocketAddr,
    ) -> impl Future<Output = http::Response<Body>> + Send;

    /// The listener's limits and timeouts.
    fn limits(&self) -> &ServerSection;
}

/// The HTTP/2 connection preface; a connection that starts with it speaks HTTP/2.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Concurrent streams per HTTP/2 connection: enough for a browser, small enough that a few
/// connections cannot claim the whole instance pool.
const MAX_H2_STREAMS: u32 = 64;

pub struct Server<S> {
    app: Arc<S>,
    listener: TcpListener,
}

impl<S: Service> Server<S> {
    /// Bind `addr` (port 0 picks a free port; see [`Server::local_addr`]).
    pub async fn bind(app: Arc<S>, addr: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        Ok(Self { app, listener })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serve until `shutdown` resolves, then stop accepting and let in-flight requests finish
    /// (up to `shutdown_grace`).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let settings = self.app.limits().clone();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(settings.header_read_timeout.0)
            .max_buf_size(usize::try_from(settings.max_header_bytes.0).unwrap_or(usize::MAX))
            .max_headers(settings.max_headers)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(settings.max_header_bytes.0).unwrap_or(u32::MAX))
            .max_concurrent_streams(MAX_H2_STREAMS)
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(20));
        let builder = Arc::new(builder);
        // Set to true at shutdown: every connection finishes what it is doing and closes.
        let (stopping, stop_rx) = tokio::sync::watch::channel(false);
        // Connection tasks, so that any still running after the grace period can be stopped.
        let mut tasks = tokio::task::JoinSet::new();
        let connections = Arc::new(Semaphore::new(settings.max_connections));
        let sniff_timeout = settings.header_read_timeout.0;
        let write_timeout = settings.write_timeout.0;
        let idle_timeout = settings.idle_timeout.0;

        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                () = &mut shutdown => break,
                permit = connections.clone().acquire_owned() => permit.expect("semaphore is never closed"),
            };
            let (stream, peer) = tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Usually out of file descriptors: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            // Reap finished connection tasks as we go.
            while tasks.try_join_next().is_some() {}
            let _ = stream.set_nodelay(true);
            let app = self.app.clone();
            let builder = builder.clone();
            let mut stop = stop_rx.clone();
            tasks.spawn(async move {
                let _permit = permit;
                if !first_bytes_in_time(&stream, sniff_timeout).await {
                    return;
                }
                let activity = Arc::new(Activity::default());
                let seen = activity.clone();
                let service = service_fn(move |req| {
                    let app = app.clone();
                    let busy = seen.start();
                    async move {
                        let response = app.call(req, peer).await;
                        drop(busy);
                        Ok::<_, Infallible>(response)
                    }
                });
                let stream = WriteTimeout::new(stream, write_timeout);
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                let mut conn = std::pin::pin!(conn.into_owned());
                let mut closing = false;
                let result = loop {
                    tokio::select! {
                        result = conn.as_mut() => break result,
                        // Shutdown: finish in-flight requests, then close (GOAWAY on HTTP/2).
                        changed = stop.changed(), if !closing => {
                            let _ = changed;
                            closing = true;
                            conn.as_mut().graceful_shutdown();
                        }
                        // No request for `idle_timeout`: close, so idle connections (HTTP/2
                        // ones are kept alive by pings) do not hold slots forever.
                        () = activity.idle_for(idle_timeout), if !closing => {
                            closing = true;
                            conn.as_mut().graceful_shutdown();
                        }
                    }
                };
                if let Err(e) = result {
                    tracing::debug!(client = %peer, "connection ended: {}", log_safe(&e.to_string()));
                }
            });
        }

        drop(self.listener);
        while tasks.try_join_next().is_some() {}
        tracing::info!(
            connections = tasks.len(),
            grace = %settings.shutdown_grace,
            "shutting down: finishing in-flight requests"
        );
        let _ = stopping.send(true);
        let drained = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(settings.shutdown_grace.0, drained)
            .await
            .is_err()
        {
            tracing::warn!("shutdown grace period over; closing remaining connections");
            tasks.abort_all();
        }
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}

/// Requests in flight on one connection, and when the last one ended.
#[derive(Default)]
struct Activity {
    in_flight: std::sync::atomic::AtomicUsize,
    /// Bumped when a request starts or ends, to restart the idle clock.
    epoch: std::sync::atomic::AtomicU64,
    changed: tokio::sync::Notify,
}

/// Held while a request is answered.
struct Busy(Arc<Activity>);

impl Activity {
    fn start(self: &Arc<Self>) -> Busy {
        use std::sync::atomic::Ordering::SeqCst;
        self.in_flight.fetch_add(1, SeqCst);
        self.epoch.fetch_add(1, SeqCst);
        self.changed.notify_waiters();
        Busy(self.clone())
    }

    /// Resolves once no request has been in flight for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        use std::sync::atomic::Ordering::SeqCst;
        loop {
            // Registered before the state is read, so no change in between is missed.
            let mut changed = std::pin::pin!(self.changed.notified());
            changed.as_mut().enable();
            let epoch = self.epoch.load(SeqCst);
            if self.in_flight.load(SeqCst) > 0 {
                changed.await;
                continue;
            }
            tokio::select! {
                () = &mut changed => {}
                () = tokio::time::sleep(timeout) => {
                    if self.epoch.load(SeqCst) == epoch && self.in_flight.load(SeqCst) == 0 {
                        return;
                    }
                }
            }
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.0.in_flight.fetch_sub(1, SeqCst);
        self.0.epoch.fetch_add(1, SeqCst);
        self.0.changed.notify_waiters();
    }
}

/// Wait until the client has sent enough to tell HTTP/1 from HTTP/2, within `timeout`.
///
/// hyper's header-read timeout starts only once a protocol is chosen, and choosing one waits
/// for bytes; without this, a client that connects and sends nothing (or half the HTTP/2
/// preface) would hold a connection slot forever.
async fn first_bytes_in_time(stream: &TcpStream, timeout: Duration) -> bool {
    let sniff = async {
        let mut buf = [0u8; H2_PREFACE.len()];
        let mut backoff = Duration::from_millis(1);
        loop {
            let n = match stream.peek(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => n,
            };
            if buf[..n] != H2_PREFACE[..n] || n == H2_PREFACE.len() {
                return true;
            }
            // A partial HTTP/2 preface: the rest is normally in the next packet. Back off so a
            // client that stops mid-preface costs few wake-ups until the deadline.
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }
    };
    tokio::time::timeout(timeout, sniff).await.unwrap_or(false)
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when it
/// is first polled, so a signal that comes meanwhile (while the app loads) is not lost, nor
/// does it kill the process by its default action. Call it inside the runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let int = signal(SignalKind::interrupt());
        let term = signal(SignalKind::terminate());
        async move {
            let wait = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
                match s {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(int) => tracing::info!("received SIGINT"),
                () = wait(term) => tracing::info!("received SIGTERM"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("received Ctrl-C");
    }
}
