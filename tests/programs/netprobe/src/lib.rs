//! A handler that tries to open a socket. Using `std::net` makes the component import
//! `wasi:sockets`, which Flagon does not offer: the host must refuse it at load.

use flagon_sdk::{Error, Handler, Request, Response};

struct NetProbe;

impl Handler for NetProbe {
    fn handle(_req: Request) -> Result<Response, Error> {
        let reached = std::net::TcpStream::connect("127.0.0.1:22").is_ok();
        Ok(Response::text(format!("reached={reached}")))
    }
}

flagon_sdk::export!(NetProbe);
