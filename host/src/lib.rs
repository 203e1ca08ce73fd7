//! Flagon: a web app server whose handlers and extensions are sandboxed WebAssembly components.
//!
//! The host owns sockets, parsing, routing, limits and the request context; every request is
//! answered by a fresh, limited instance of a component that can do only what the app's
//! manifest grants. See `docs/architecture.md` for how the modules fit together.

pub mod app;
pub mod bindings;
pub mod build;
pub mod capabilities;
pub mod cli;
pub mod component;
pub mod crypto;
pub mod engine;
pub mod forms;
pub mod guest_output;
pub mod kv;
pub mod manifest;
pub mod outbound;
pub mod request_id;
pub mod router;
pub mod security;
pub mod server;
pub mod session;
pub mod state;
pub mod static_files;
pub mod templates;
pub mod web;

pub use app::{App, CacheDir, LoadOptions};
pub use manifest::Manifest;
pub use server::Server;
