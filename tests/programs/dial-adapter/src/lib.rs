//! A DB adapter that opens a TCP connection to its `dial` setting in `connect` and reports
//! whether it got one, to show which addresses the host lets an adapter reach (its server's,
//! and no other).

mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "flagon:app/sql-adapter",
    });
}

use bindings::exports::flagon::app::sql_driver::{Guest, Limits};
use bindings::flagon::app::sql_types::{Outcome, Rows, SqlError, Value};

struct Dial;

impl Guest for Dial {
    fn connect(settings: Vec<(String, String)>) -> Result<(), SqlError> {
        let address = settings
            .iter()
            .find(|(k, _)| k == "dial")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        std::net::TcpStream::connect(address.as_str())
            .map(drop)
            .map_err(|e| SqlError::Other(format!("dial {address} refused: {e}")))
    }

    fn query(_: String, _: Vec<Value>, _: Limits) -> Result<Rows, SqlError> {
        Ok(Rows {
            columns: vec![],
            rows: vec![],
        })
    }

    fn execute(_: String, _: Vec<Value>, _: Limits) -> Result<Outcome, SqlError> {
        Ok(Outcome {
            rows_affected: 0,
            last_insert_id: None,
        })
    }

    fn begin() -> Result<(), SqlError> {
        Ok(())
    }

    fn commit() -> Result<(), SqlError> {
        Ok(())
    }

    fn rollback() -> Result<(), SqlError> {
        Ok(())
    }

    fn run_script(_: String) -> Result<(), SqlError> {
        Ok(())
    }

    fn reset() -> Result<(), SqlError> {
        Ok(())
    }
}

bindings::export!(Dial with_types_in bindings);
