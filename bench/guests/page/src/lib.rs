//! The benchmark page rendered inside the guest with minijinja (auto-escaping on for `.html`).

use flagon_sdk::{Error, Handler, Request, Response};

include!("../../../page/data.rs");

struct PageHandler;

impl Handler for PageHandler {
    fn handle(_req: Request) -> Result<Response, Error> {
        // A fresh instance per request: the environment is built (and the template parsed) every
        // time, exactly the cost a guest-side renderer pays.
        Ok(Response::html(render(&environment())))
    }
}

flagon_sdk::export!(PageHandler);
