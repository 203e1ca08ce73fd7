//! The database page: 20 rows from SQLite through the SQLite adapter, rendered by the host's
//! template engine (route `/db-page`).

use flagon_sdk::sql::{self, params};
use flagon_sdk::{Error, Handler, Request, Response};

include!("../../../page/db.rs");

struct DbPageHandler;

impl Handler for DbPageHandler {
    fn handle(_req: Request) -> Result<Response, Error> {
        let rows: Vec<DbItem> = sql::database("main").query_as(DB_QUERY, params![])?;
        Response::render("page.html", &db_page(&rows))
    }
}

flagon_sdk::export!(DbPageHandler);
