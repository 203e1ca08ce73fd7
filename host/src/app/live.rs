//! The app being served, swapped whole on reload.
//!
//! A request takes the current [`App`] when it starts and keeps it (an `Arc`) until it ends, so
//! a reload never changes an app under a request in flight: requests already running finish on
//! the old app, which is dropped when the last of them ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use bytes::Bytes;

use super::App;
use crate::http::{Body, Service};
use crate::manifest::ServerSection;

/// The app being served, and whether the process is draining (shutting down).
pub struct Live {
    app: ArcSwap<App>,
    /// The listener's settings, taken from the first app: changing them needs a restart.
    server: ServerSection,
    draining: AtomicBool,
}

impl Live {
    pub fn new(app: Arc<App>) -> Self {
        Self {
            server: app.server_settings().clone(),
            app: ArcSwap::new(app),
            draining: AtomicBool::new(false),
        }
    }

    /// The app new requests go to.
    pub fn current(&self) -> Arc<App> {
        self.app.load_full()
    }

    /// Serve `app` from now on; requests in flight finish on the one they started on.
    pub fn swap(&self, app: Arc<App>) -> Arc<App> {
        self.app.swap(app)
    }

    /// True once shutdown has begun: `/readyz` fails so balancers stop sending requests.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Answer one request on the current app.
    pub async fn handle<B>(&self, req: http::Request<B>, client: SocketAddr) -> http::Response<Body>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let app = self.current();
        let response = app.handle(req, client).await;
        // The last request on an app a reload replaced drops it: its engine, pools and
        // connections. That is slow work; do it off this request's path. (`Live` itself holds
        // the current app, so a count of one means it was swapped out.)
        if Arc::strong_count(&app) == 1 {
            tokio::task::spawn_blocking(move || drop(app));
        }
        response
    }
}

impl Service for Live {
    fn call(
        &self,
        req: http::Request<hyper::body::Incoming>,
        client: SocketAddr,
    ) -> impl Future<Output = http::Response<Body>> + Send {
        self.handle(req, client)
    }

    fn limits(&self) -> &ServerSection {
        &self.server
    }
}
