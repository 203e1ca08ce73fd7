//! SQL from a handler's side, for tests/all/sql.rs.
//!
//! - `POST /raw/query` and `/raw/exec`: run `sql` (any text, through the raw bindings, which
//!   tests may use: the SDK takes only `&'static str`) on `db` with `p`, a JSON list of tagged
//!   values (all from a JSON body), and answer the result or the error as JSON;
//! - `/todos/add`, `/todos`: the typed SDK (`params!`, `query_as` into a struct);
//! - `/tx/<how>`: transactions that commit, roll back, are dropped, are left open at the end of
//!   the request, or end in a trap;
//! - `/probe`: looks for the database file through WASI (this component has no files grant).

use flagon_sdk::bindings::flagon::app::sql as raw;
use flagon_sdk::sql::{self, SqlError, Value, params};
use flagon_sdk::{Error, Handler, Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

struct Db;

#[derive(Debug, Serialize, Deserialize)]
struct Todo {
    id: i64,
    title: String,
    done: bool,
    note: Option<String>,
}

/// `{"null":true}`, `{"int":1}`, `{"real":"NaN"}`, `{"text":"x"}`, `{"blob":[1,2]}`,
/// `{"bool":true}`. Reals travel as text so that NaN and infinities survive JSON.
fn to_value(j: &Json) -> Value {
    let (tag, v) = j
        .as_object()
        .and_then(|o| o.iter().next())
        .expect("a tagged value");
    match tag.as_str() {
        "null" => Value::Null,
        "int" => Value::Integer(v.as_i64().expect("int")),
        "real" => Value::Real(v.as_str().expect("real as text").parse().expect("f64")),
        "text" => Value::Text(v.as_str().expect("text").to_owned()),
        "blob" => Value::Blob(
            v.as_array()
                .expect("blob")
                .iter()
                .map(|b| b.as_u64().expect("byte") as u8)
                .collect(),
        ),
        "bool" => Value::Boolean(v.as_bool().expect("bool")),
        other => panic!("unknown tag {other}"),
    }
}

fn from_value(v: &Value) -> Json {
    match v {
        Value::Null => json!({"null": true}),
        Value::Integer(i) => json!({"int": i}),
        Value::Real(f) => json!({"real": f.to_string()}),
        Value::Text(s) => json!({"text": s}),
        Value::Blob(b) => json!({"blob": b}),
        Value::Boolean(b) => json!({"bool": b}),
    }
}

fn error(e: &SqlError) -> Json {
    match e {
        SqlError::ConstraintViolation(c) => json!({
            "kind": "constraint",
            "constraint_kind": match c.kind {
                sql::ConstraintKind::Unique => "unique",
                sql::ConstraintKind::PrimaryKey => "primary-key",
                sql::ConstraintKind::ForeignKey => "foreign-key",
                sql::ConstraintKind::NotNull => "not-null",
                sql::ConstraintKind::Check => "check",
                sql::ConstraintKind::Other => "other",
            },
            "constraint": c.constraint,
            "message": c.message,
        }),
        SqlError::NoSuchTable(t) => json!({"kind": "no-such-table", "detail": t}),
        SqlError::NoSuchColumn(c) => json!({"kind": "no-such-column", "detail": c}),
        SqlError::Syntax(m) => json!({"kind": "syntax", "detail": m}),
        SqlError::Timeout => json!({"kind": "timeout"}),
        SqlError::TooManyRows(n) => json!({"kind": "too-many-rows", "detail": n}),
        SqlError::TooLarge(n) => json!({"kind": "too-large", "detail": n}),
        SqlError::ConnectionLost => json!({"kind": "connection-lost"}),
        SqlError::NotGranted(m) => json!({"kind": "not-granted", "detail": m}),
        SqlError::Other(m) => json!({"kind": "other", "detail": m}),
    }
}

fn answer<T>(result: Result<T, SqlError>, ok: impl FnOnce(T) -> Json) -> Response {
    match result {
        Ok(v) => Response::json(&json!({ "ok": ok(v) })),
        Err(e) => Response::json(&json!({ "err": error(&e) })),
    }
}

fn rows_json(rows: flagon_sdk::bindings::flagon::app::sql_types::Rows) -> Json {
    json!({
        "columns": rows.columns,
        "rows": rows.rows.iter().map(|r| r.iter().map(from_value).collect::<Vec<_>>()).collect::<Vec<_>>(),
    })
}

fn outcome_json(o: sql::Outcome) -> Json {
    json!({"rows_affected": o.rows_affected, "last_insert_id": o.last_insert_id})
}

impl Handler for Db {
    fn handle(req: Request) -> Result<Response, Error> {
        let query: Vec<(String, String)> = req.query().unwrap_or_default();
        let q = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        // Raw calls: a JSON body `{"db": .., "sql": .., "p": [tagged values]}`.
        let body: Json = serde_json::from_slice(req.body()).unwrap_or(Json::Null);
        let params = || -> Vec<Value> {
            body["p"]
                .as_array()
                .map(|list| list.iter().map(to_value).collect())
                .unwrap_or_default()
        };
        let db = body["db"].as_str().unwrap_or("main").to_owned();
        let statement = body["sql"].as_str().unwrap_or_default().to_owned();
        let main = sql::database("main");
        match req.route() {
            Some("raw-query") => Ok(answer(raw::query(&db, &statement, &params()), rows_json)),
            Some("raw-exec") => Ok(answer(
                raw::execute(&db, &statement, &params()),
                outcome_json,
            )),
            Some("todos-add") => {
                let note = q("note");
                let note = (!note.is_empty()).then_some(note);
                let outcome = main.execute(
                    "INSERT INTO todos (title, note) VALUES ($1, $2)",
                    params![q("title"), note],
                )?;
                Ok(Response::json(&json!({ "id": outcome.last_insert_id })))
            }
            Some("todos") => {
                let todos: Vec<Todo> = main.query_as(
                    "SELECT id, title, done, note FROM todos ORDER BY id",
                    params![],
                )?;
                Ok(Response::json(&todos))
            }
            Some("tx") => {
                let tx = main.transaction()?;
                tx.execute("INSERT INTO todos (title) VALUES ($1)", params![q("title")])?;
                let inside: Option<i64> = tx.query_one("SELECT count(*) FROM todos", params![])?;
                match q("how").as_str() {
                    "commit" => tx.commit()?,
                    "rollback" => tx.rollback()?,
                    "drop" => drop(tx),
                    // Still open when the handler returns: the host rolls it back.
                    "open" => std::mem::forget(tx),
                    "trap" => panic!("the handler traps inside a transaction"),
                    other => return Err(Error::bad_request(format!("unknown how `{other}`"))),
                }
                Ok(Response::json(&json!({ "inside": inside })))
            }
            Some("probe") => {
                let found = ["/data", "/", "."]
                    .iter()
                    .filter(|p| std::fs::read_dir(p).is_ok())
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>();
                Ok(Response::json(&json!({ "readable": found })))
            }
            _ => Err(Error::not_found()),
        }
    }
}

flagon_sdk::export!(Db);
