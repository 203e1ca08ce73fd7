//! The Wasm runtime: the engine and its precompiled cache, the one `bindgen!`, handler
//! instances and the part of every `Store` the runtime owns, and guest output as log lines.
//!
//! It knows nothing of sessions, templates or routes. What a request carries reaches it
//! through the `T` of [`Handler<T>`], which gives the runtime its [`RuntimeCtx`] through
//! [`RuntimeView`] (the way wasmtime-wasi reaches its context through `WasiView`). It imports no
//! other folder of the host.

pub mod bindings;
pub mod componentize;
pub mod engine;
pub mod extension;
pub mod guest_log;
pub mod instance;
pub mod wasi_http;

pub use engine::{EngineSettings, FlagonEngine, Origin};
pub use extension::{AuthOutcome, Authenticator, Middleware, MiddlewareInstance};
pub use instance::{Failure, Handler, RuntimeCtx, RuntimeView, classify_error, guard_store};
pub use wasi_http::{ProxyResponse, WasiHttpHandler};
