//! HTTP, before and around the app: the accept loop and connection limits ([`server`]), the
//! route table ([`router`]), request ids, and reading and decoding bodies ([`body`],
//! [`forms`]). Nothing here knows of Wasm; the app plugs in as a [`server::Service`].

pub mod body;
pub mod forms;
pub mod request_id;
pub mod router;
pub mod server;
pub mod write_timeout;

use bytes::Bytes;
use http_body_util::Full;

/// The response body type the host sends.
pub type Body = Full<Bytes>;

pub use server::{Server, Service, shutdown_signal};
