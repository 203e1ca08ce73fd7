//! A standard `wasi:http/proxy` component (one written for `wasmtime serve` or Spin): linked
//! once into a `ProxyPre`, instantiated fresh for every request, exactly as a [`Handler`] is.
//!
//! The host has already routed, limited and read the request; the component gets it as a
//! `wasi:http` incoming request with its body in memory, and its response (head and streamed
//! body) is read back into memory, up to a limit, so that the host's response checks and
//! security headers apply to it as to any handler's.
//!
//! [`Handler`]: super::Handler

use std::pin::pin;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use wasmtime::component::InstancePre;
use wasmtime::{Engine, Store};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::instance::{Failure, RuntimeView, bounded, guard_store};

/// The interface a `wasi:http/proxy` component exports, without its version.
pub const INCOMING_HANDLER: &str = "wasi:http/incoming-handler";

/// What the component answered, its body read in full.
#[derive(Debug)]
pub struct ProxyResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// A component exporting `wasi:http/incoming-handler`.
pub struct WasiHttpHandler<T: 'static> {
    pre: ProxyPre<T>,
    /// Time one request may spend in the guest, its response body included.
    timeout: Duration,
}

impl<T: RuntimeView + WasiHttpView> WasiHttpHandler<T> {
    /// Wrap a pre-linked component; fails if it does not export `wasi:http/incoming-handler`.
    pub fn new(pre: InstancePre<T>, timeout: Duration) -> wasmtime::Result<Self> {
        Ok(Self {
            pre: ProxyPre::new(pre)?,
            timeout,
        })
    }

    /// Run one request through a fresh instance whose `Store` holds `data`, reading at most
    /// `max_body` bytes of the response body. The `Store` comes back with the outcome; drop it
    /// then.
    pub fn call<'a>(
        &'a self,
        engine: &Engine,
        mut data: T,
        request: http::Request<Bytes>,
        https: bool,
        max_body: usize,
    ) -> impl Future<Output = (Result<ProxyResponse, Failure>, Store<T>)> + 'a {
        let started = Instant::now();
        data.runtime().set_deadline(Some(started + self.timeout));
        let guest = data.runtime().metrics().cloned();
        let mut store = Store::new(engine, data);
        guard_store(&mut store);

        async move {
            let result = bounded(started, self.timeout, guest.as_deref(), async {
                let scheme = if https { Scheme::Https } else { Scheme::Http };
                let request = request.map(http_body_util::Full::new);
                let (sender, mut receiver) = tokio::sync::oneshot::channel();
                let (request, out) = {
                    let mut http = store.data_mut().http();
                    (
                        http.new_incoming_request(scheme, request)?,
                        http.new_response_outparam(sender)?,
                    )
                };
                let proxy = self.pre.instantiate_async(&mut store).await?;
                store.data_mut().runtime().instantiated();
                let mut call = pin!(
                    proxy
                        .wasi_http_incoming_handler()
                        .call_handle(&mut store, request, out)
                );
                // Drive the guest until it sets the response (or returns without one).
                let mut returned = None;
                let head = tokio::select! {
                    biased;
                    head = &mut receiver => Some(head),
                    done = &mut call => {
                        returned = Some(done);
                        None
                    }
                };
                let head = match head {
                    Some(head) => head.ok(),
                    None => receiver.try_recv().ok(),
                };
                let Some(head) = head else {
                    returned.transpose()?;
                    wasmtime::bail!("the component returned without setting a response");
                };
                let response = head.map_err(|code| {
                    wasmtime::format_err!(
                        "the component answered with an error: {}",
                        describe(&code)
                    )
                })?;
                let (parts, body) = response.into_parts();
                // The guest may still be writing the body: read it while the call runs on.
                let body = match returned {
                    Some(done) => {
                        done?;
                        read_body(body, max_body).await?
                    }
                    None => {
                        let (done, body) = tokio::join!(call, read_body(body, max_body));
                        done?;
                        body?
                    }
                };
                Ok(ProxyResponse {
                    status: parts.status.as_u16(),
                    headers: parts.headers,
                    body,
                })
            })
            .await;
            (result, store)
        }
    }
}

/// The response body, up to `max` bytes; trailers are dropped.
async fn read_body(body: HyperOutgoingBody, max: usize) -> wasmtime::Result<Bytes> {
    let mut body = pin!(body);
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| wasmtime::format_err!("the response body failed: {e:?}"))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > max {
                wasmtime::bail!("the response body is larger than the limit of {max} bytes");
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// An error code as a log line shows it (the variant, not the guest's free text).
fn describe(code: &ErrorCode) -> String {
    let debug = format!("{code:?}");
    debug
        .split(['(', ' ', '{'])
        .next()
        .unwrap_or("error")
        .to_string()
}
