//! Flagon: a web app server whose handlers and extensions are sandboxed WebAssembly components.
//!
//! The host owns sockets, parsing, routing, limits and the request context; every request is
//! answered by a fresh, limited instance of a component that can do only what the app's
//! manifest grants. One folder per concern, in the order a request meets them; see
//! `docs/architecture.md` for which may import which.
//!
//! - [`http`]: accept loop, limits, router, request ids, bodies and forms (no Wasm).
//! - [`runtime`]: engine, cache, the one `bindgen!`, instances, guest output (no web layer).
//! - [`capabilities`]: one module per capability a component can be granted, and the registry.
//! - [`web`]: sessions, CSRF and host policy, templates, static files, error pages, headers.
//! - [`app`]: loading an app, and the per-request pipeline.
//! - [`manifest`]: the `flagon.toml` schema, one module per section.
//! - [`cli`]: one module per command.
//! - [`plugins`]: the first-party plugins embedded in the host (a leaf).
//! - [`signature`]: signed components: signing, and the check at load (a leaf over `plugins`).
//! - [`testing`]: a test client for app authors: load an app, send it requests without a socket.
//! - [`text`]: the escaping every log line quoting untrusted text goes through (a leaf).
//! - [`metrics`]: the process-wide Prometheus registry and the handles that count into it (a
//!   leaf).

pub mod app;
pub mod capabilities;
pub mod cli;
pub mod http;
pub mod manifest;
pub mod metrics;
pub mod plugins;
pub mod runtime;
pub mod signature;
pub mod testing;
pub mod text;
pub mod web;

pub use app::{App, CacheDir, LoadOptions};
pub use http::Server;
pub use manifest::Manifest;
