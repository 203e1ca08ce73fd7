//! `wasi:http/types` and `wasi:http/outgoing-handler` (0.2.x), for standard `wasi:http/proxy`
//! components only (`world = "wasi-http"`, or detected from their exports). A Flagon handler
//! importing them is refused at load, as before: it has `flagon:app/outbound-http`.
//!
//! Outgoing requests do not get a client of their own: every one goes through the app's
//! [`OutboundClient`] under the component's `grants.outbound`, with the same SSRF checks as
//! `outbound-http` (URL normalisation, the allow-list, public addresses only unless granted,
//! host-managed headers, size limits, the component's timeout). Without the grant every request
//! is `HTTP-request-denied`. Redirects are returned to the guest, as `wasi:http` expects; each
//! request it then makes is checked again.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use wasmtime::component::Linker;
use wasmtime_wasi_http::p2::bindings::http::{outgoing_handler, types};
use wasmtime_wasi_http::{
    Error as HttpError, RequestOptions, WasiBody, WasiHttp, WasiHttpCtx, WasiHttpCtxView,
    WasiHttpHooks, WasiHttpView,
};

use super::outbound::client::{OutboundError, OutboundPolicy, OutboundRequest};
use super::outbound::propagate;
use super::{AppSetup, Capability, ComponentCaps, ComponentSetup, HostState};
use crate::http::trace::Trace;
use crate::manifest::ComponentSection;
use crate::text::log_safe;

pub struct WasiHttpCap;

impl Capability for WasiHttpCap {
    const NAME: &'static str = "WasiHttp";
    const INTERFACES: &'static [&'static str] = &["wasi:http/types", "wasi:http/outgoing-handler"];
    /// No grant of its own: what `wasi:http` may reach is `grants.outbound`, and only
    /// `wasi-http` components may import it at all (`super::classify_in`).
    const GRANT: Option<super::Grant> = None;
    type App = ();
    /// The component's outbound policy with redirects returned, if it was granted any origin.
    type Component = Option<OutboundPolicy>;
    /// Built on first use, by `wasi-http` components only.
    type Instance = Option<Box<InstanceHttp>>;

    fn granted(_: &ComponentSection) -> bool {
        true
    }

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        let options = wasmtime_wasi_http::p2::bindings::LinkOptions::default();
        outgoing_handler::add_to_linker::<_, WasiHttp>(linker, HostState::http)?;
        types::add_to_linker::<_, WasiHttp>(linker, &options.into(), HostState::http)
    }

    async fn setup(_: &AppSetup<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    fn configure(_: &(), c: &ComponentSetup<'_>) -> anyhow::Result<Self::Component> {
        let grants = c.section.grants.outbound.iter().flatten();
        let allowed: Vec<_> = grants.filter_map(|g| g.parse().ok()).collect();
        Ok((!allowed.is_empty()).then(|| {
            OutboundPolicy::new(allowed)
                .with_timeout(c.section.limits.timeout.0)
                .returning_redirects()
        }))
    }

    fn prepare(_: &Self::Component) -> Self::Instance {
        None
    }
}

/// One instance's `wasi:http` state.
pub struct InstanceHttp {
    ctx: WasiHttpCtx,
    hooks: Hooks,
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        let HostState {
            runtime,
            request,
            component,
            instance,
        } = self;
        let state = instance.wasi_http.get_or_insert_with(|| {
            Box::new(InstanceHttp {
                ctx: WasiHttpCtx::new(),
                hooks: Hooks {
                    component: component.clone(),
                    request_id: request.request_id.clone(),
                    trace: request.trace.clone(),
                },
            })
        });
        WasiHttpCtxView {
            ctx: &mut state.ctx,
            table: &mut runtime.table,
            hooks: &mut state.hooks,
        }
    }
}

/// How `wasi:http` sends: through the app's outbound client, under the component's policy.
struct Hooks {
    component: Arc<ComponentCaps>,
    request_id: Arc<str>,
    trace: Option<Arc<Trace>>,
}

type Sent = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    HttpError,
>;

impl WasiHttpHooks for Hooks {
    /// The client sets `host` from the URL, after checking it.
    fn set_host_header(&mut self) -> bool {
        false
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = Sent> + Send> {
        let component = self.component.clone();
        let request_id = self.request_id.clone();
        let trace = self.trace.clone();
        Box::new(async move {
            let policy = component.wasi_http.as_ref();
            let (Some(policy), Some(client)) = (policy, component.app.outbound.as_ref()) else {
                tracing::info!(component = %component.id, request_id = %request_id, "outbound request refused: the component has no `grants.outbound`");
                return Err(HttpError::HttpRequestDenied);
            };
            let (parts, body) = request.into_parts();
            let max = policy.max_request_bytes();
            let body = http_body_util::Limited::new(body, max)
                .collect()
                .await
                .map_err(|_| HttpError::HttpRequestBodySize(None))?
                .to_bytes();
            let mut headers = Vec::with_capacity(parts.headers.len());
            for (name, value) in &parts.headers {
                // The client frames the body itself.
                if name == http::header::CONTENT_LENGTH {
                    continue;
                }
                let value = value.to_str().map_err(|_| {
                    HttpError::InternalError(Some(format!(
                        "the value of request header `{name}` is not UTF-8"
                    )))
                })?;
                headers.push((name.as_str().to_string(), value.to_string()));
            }
            propagate(&mut headers, &request_id, trace.as_deref());
            let req = OutboundRequest {
                method: parts.method,
                url: parts.uri.to_string(),
                headers,
                body: Vec::from(body),
            };
            let response = client.send(policy, req).await.map_err(|e| {
                tracing::info!(component = %component.id, request_id = %request_id, "outbound request failed: {}", log_safe(&e.to_string()));
                error_code(e)
            })?;
            let mut builder = http::Response::builder().status(response.status);
            for (name, value) in response.headers {
                builder = builder.header(name, value);
            }
            let body = http_body_util::Full::new(Bytes::from(response.body))
                .map_err(|never: std::convert::Infallible| match never {})
                .boxed_unsync();
            let response = builder
                .body(body)
                .map_err(|e| HttpError::InternalError(Some(e.to_string())))?;
            let done: Box<dyn Future<Output = Result<(), HttpError>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}

/// The `wasi:http` error code for an outbound failure; the message, where there is one, says
/// what to change (it never holds the URL's path or a header value).
fn error_code(e: OutboundError) -> HttpError {
    match e {
        OutboundError::NotAllowed { .. } | OutboundError::PrivateAddress { .. } => {
            HttpError::HttpRequestDenied
        }
        OutboundError::InvalidOrigin(_) | OutboundError::InvalidUrl(_) => {
            HttpError::HttpRequestUriInvalid
        }
        OutboundError::MethodNotAllowed { .. } => HttpError::HttpRequestMethodInvalid,
        OutboundError::RequestTooLarge { .. } => HttpError::HttpRequestBodySize(None),
        OutboundError::TooLarge { .. } => HttpError::HttpResponseBodySize(None),
        OutboundError::TooManyRedirects { .. } => HttpError::LoopDetected,
        OutboundError::Timeout => HttpError::ConnectionTimeout,
        OutboundError::Connect(_) => HttpError::ConnectionRefused,
        OutboundError::Tls(_) => HttpError::TlsProtocolError,
        OutboundError::Http(_) => HttpError::HttpProtocolError,
        e @ (OutboundError::ForbiddenHeader { .. }
        | OutboundError::InvalidHeaderName { .. }
        | OutboundError::InvalidHeaderValue { .. }) => {
            HttpError::InternalError(Some(e.to_string()))
        }
    }
}
