//! A DB adapter that misbehaves on request, to show that the host contains it: the statement
//! `trap` panics, `loop` never returns, `grow` allocates without end, `fail-reset` makes the
//! next reset fail; anything else returns one row holding the statement and how many calls
//! this instance has served (so a test can tell a fresh instance from a reused one).

use std::cell::Cell;

mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "flagon:app/sql-adapter",
    });
}

use bindings::exports::flagon::app::sql_driver::{Guest, Limits};
use bindings::flagon::app::sql_types::{Outcome, Rows, SqlError, Value};

struct Bad;

thread_local! {
    static CALLS: Cell<i64> = const { Cell::new(0) };
    static FAIL_RESET: Cell<bool> = const { Cell::new(false) };
}

fn misbehave(statement: &str) {
    match statement {
        "trap" => panic!("the adapter panics"),
        "loop" => loop {
            std::hint::black_box(0);
        },
        "grow" => {
            let mut v: Vec<Vec<u8>> = Vec::new();
            loop {
                v.push(vec![1; 1 << 20]);
            }
        }
        "fail-reset" => FAIL_RESET.set(true),
        _ => {}
    }
}

impl Guest for Bad {
    fn connect(settings: Vec<(String, String)>) -> Result<(), SqlError> {
        if settings.iter().any(|(k, v)| k == "refuse" && v == "yes") {
            return Err(SqlError::Other(
                "connection refused by the test adapter".into(),
            ));
        }
        Ok(())
    }

    fn query(statement: String, _params: Vec<Value>, _limits: Limits) -> Result<Rows, SqlError> {
        misbehave(&statement);
        CALLS.set(CALLS.get() + 1);
        Ok(Rows {
            columns: vec!["statement".into(), "calls".into()],
            rows: vec![vec![Value::Text(statement), Value::Integer(CALLS.get())]],
        })
    }

    fn execute(
        statement: String,
        _params: Vec<Value>,
        _limits: Limits,
    ) -> Result<Outcome, SqlError> {
        misbehave(&statement);
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

    fn run_script(script: String) -> Result<(), SqlError> {
        misbehave(&script);
        Ok(())
    }

    fn reset() -> Result<(), SqlError> {
        if FAIL_RESET.replace(false) {
            return Err(SqlError::Other("reset refused".into()));
        }
        Ok(())
    }
}

bindings::export!(Bad with_types_in bindings);
