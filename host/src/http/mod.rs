//! HTTP, before and around the app: the accept loop and connection limits ([`server`]), the
//! route table ([`router`]), request ids and trace context ([`trace`]), and reading and decoding bodies ([`body`],
//! [`forms`]). Nothing here knows of Wasm; the app plugs in as a [`server::Service`].

pub mod body;
pub mod forms;
pub mod request_id;
pub mod response;
pub mod router;
pub mod server;
pub mod trace;
pub mod write_timeout;

pub use response::Body;

pub use server::{Server, Service, shutdown_signal};
