//! The benchmark page, rendered two ways: inside the guest with minijinja (route `/page`), and
//! by the host's template engine from the same data (route `/page-host`, named `host`).

use flagon_sdk::{Error, Handler, Request, Response};

include!("../../../page/data.rs");

struct PageHandler;

impl Handler for PageHandler {
    fn handle(req: Request) -> Result<Response, Error> {
        if req.route() == Some("host") {
            // The host parses the template once at start; the guest sends only the data.
            return Response::render("page.html", &page());
        }
        // A fresh instance per request: the environment is built (and the template parsed) every
        // time, exactly the cost a guest-side renderer pays.
        Ok(Response::html(render(&environment())))
    }
}

flagon_sdk::export!(PageHandler);
