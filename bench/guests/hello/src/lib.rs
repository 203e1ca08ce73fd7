//! Hello world, the smallest useful Flagon handler; also sleeps for the in-flight memory test.

use flagon_sdk::{Error, Handler, Request, Response};

struct Hello;

impl Handler for Hello {
    fn handle(req: Request) -> Result<Response, Error> {
        if req.route() == Some("sleep") {
            // Sleeps through WASI's monotonic clock: the host parks the instance, not a thread.
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
        Ok(Response::text("Hello, world!"))
    }
}

flagon_sdk::export!(Hello);
