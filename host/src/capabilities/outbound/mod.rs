//! `flagon:app/outbound-http`: HTTP requests to the origins a component is granted
//! (`grants.outbound`), through one client per app with the SSRF defences of [`client`].

pub mod client;

use wasmtime::component::Linker;

use super::{AppSetup, CapData, Capability, ComponentSetup, Cx, Grant, HostState};
use crate::http::trace::Trace;
use crate::manifest::{ComponentSection, Manifest};
use crate::runtime::bindings::flagon::app::{outbound_http, types};
use crate::text::log_safe;
use client::{OutboundClient, OutboundPolicy, OutboundRequest};

pub struct Outbound;

impl Capability for Outbound {
    const NAME: &'static str = "Outbound";
    const INTERFACES: &'static [&'static str] = &["flagon:app/outbound-http"];
    const GRANT: Option<Grant> = Some(Grant {
        key: "outbound",
        example: "grants = { outbound = [\"https://api.example.com\"] }",
    });
    /// The app's client (one connection pool for all instances), when any component is
    /// granted outbound HTTP.
    type App = Option<OutboundClient>;
    /// Where the component may send requests, if anywhere.
    type Component = Option<OutboundPolicy>;
    type Instance = ();

    fn granted(section: &ComponentSection) -> bool {
        let outbound = section.grants.outbound.as_ref();
        outbound.is_some_and(|o| !o.is_empty())
    }

    fn describe(_: &Manifest, section: &ComponentSection) -> Vec<String> {
        let Some(o) = &section.grants.outbound else {
            return Vec::new();
        };
        let origins: Vec<String> = o
            .iter()
            .map(|g| match g.parse() {
                Ok(origin) if origin.allow_private() => format!("{origin} (private allowed)"),
                Ok(origin) => origin.to_string(),
                Err(_) => "?".into(),
            })
            .collect();
        vec![format!("outbound [{}]", origins.join(", "))]
    }

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        outbound_http::add_to_linker::<_, CapData<Self>>(linker, HostState::cx::<Self>)
    }

    async fn setup(app: &AppSetup<'_>) -> anyhow::Result<Self::App> {
        if !app.manifest.components.values().any(Self::granted) {
            return Ok(None);
        }
        let client = OutboundClient::new();
        client
            .map(Some)
            .map_err(|e| anyhow::anyhow!("cannot set up the outbound HTTP client: {e}"))
    }

    fn configure(_: &Self::App, c: &ComponentSetup<'_>) -> anyhow::Result<Self::Component> {
        if !Self::granted(c.section) {
            return Ok(None);
        }
        // The manifest checked every grant when it was parsed.
        let grants = c.section.grants.outbound.iter().flatten();
        let allowed = grants.filter_map(|g| g.parse().ok()).collect();
        Ok(Some(
            OutboundPolicy::new(allowed).with_timeout(c.section.limits.timeout.0),
        ))
    }

    fn prepare(_: &Self::Component) {}
}

/// Add the request's context to a request a guest sends, unless the guest set them itself:
/// `traceparent` (the request's trace, with the request as parent) and `tracestate`, and
/// `x-request-id`, so the service called can log the id of the request that called it.
pub fn propagate(headers: &mut Vec<(String, String)>, request_id: &str, trace: Option<&Trace>) {
    let has = |headers: &[(String, String)], name: &str| {
        headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
    };
    if let Some(trace) = trace
        && !has(headers, "traceparent")
    {
        headers.push(("traceparent".to_owned(), trace.traceparent()));
        if let Some(state) = trace.state.as_ref().and_then(|s| s.to_str().ok())
            && !has(headers, "tracestate")
        {
            headers.push(("tracestate".to_owned(), state.to_owned()));
        }
    }
    if !has(headers, "x-request-id") {
        headers.push(("x-request-id".to_owned(), request_id.to_owned()));
    }
}

impl outbound_http::Host for Cx<'_, Outbound> {
    async fn send(
        &mut self,
        request: outbound_http::OutgoingRequest,
    ) -> Result<outbound_http::IncomingResponse, String> {
        let (Some(policy), Some(client)) = (self.component, self.app) else {
            return Err(
                "outbound HTTP is not granted to this component (`grants.outbound`)".into(),
            );
        };
        let method = match &request.method {
            types::Method::Get => http::Method::GET,
            types::Method::Head => http::Method::HEAD,
            types::Method::Post => http::Method::POST,
            types::Method::Put => http::Method::PUT,
            types::Method::Delete => http::Method::DELETE,
            types::Method::Patch => http::Method::PATCH,
            types::Method::Options => http::Method::OPTIONS,
            types::Method::Other(m) => http::Method::from_bytes(m.as_bytes())
                .map_err(|_| format!("invalid method `{}`", log_safe(m)))?,
        };
        let mut headers = request.headers;
        propagate(
            &mut headers,
            &self.request.request_id,
            self.request.trace.as_deref(),
        );
        let req = OutboundRequest {
            method,
            url: request.url,
            headers,
            body: request.body,
        };
        match client.send(policy, req).await {
            Ok(r) => Ok(outbound_http::IncomingResponse {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
            Err(e) => {
                tracing::info!(component = %self.guest.id, request_id = %self.request.request_id, "outbound request failed: {}", log_safe(&e.to_string()));
                Err(e.to_string())
            }
        }
    }
}
