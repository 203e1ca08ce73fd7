//! `flagon-sqlite`: SQLite as a Flagon DB adapter (`adapter = "sqlite"`).
//!
//! One instance is one connection. The host gives it one preopened directory (the database's
//! data directory) and nothing else: no sockets, no other files, no environment. SQLite runs
//! inside the sandbox with these settings on every connection:
//!
//! - `foreign_keys = ON`, so `REFERENCES` is enforced; defensive mode on, the schema untrusted;
//! - `SQLITE_LIMIT_ATTACHED = 0`, so `ATTACH` cannot open another file (the sandbox would refuse
//!   a path outside the directory anyway); extension loading is not compiled in under WASI;
//! - the `unix-none` VFS: WASI has no file locks, so the host serializes every connection to a
//!   database file (one instance per file, and an OS lock against a second process);
//! - `locking_mode = EXCLUSIVE`: this connection is the only one on the file, so the page cache
//!   is kept between statements;
//! - rollback journal with `synchronous = FULL`: a commit that returned is on disk (fsync of
//!   the journal and the database), and a half-written transaction is rolled back from the
//!   journal by the next connection, even after `kill -9`.
//!
//! Settings (from `[databases.<name>]`, passed by the host): `path`, the database file inside
//! the preopened directory; `busy_timeout_ms`.

use std::cell::RefCell;

use rusqlite::config::DbConfig;
use rusqlite::limits::Limit;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags};

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "flagon:app/sql-adapter",
    });
}

use bindings::exports::flagon::app::sql_driver::{Guest, Limits};
use bindings::flagon::app::sql_types::{
    ConstraintKind, ConstraintViolation, Outcome, Rows, SqlError, Value,
};

struct Sqlite;

/// Applied at connect and by every `reset`, so that no statement a handler ran can leave them
/// changed for the next request.
/// The last insert rowid before a statement runs: an explicit `INSERT ... (rowid) VALUES
/// (-9223372036854775808)` is the only insert that gives it, and reports no id.
const UNSET_ROWID: i64 = i64::MIN;

const SETTINGS: &str = "PRAGMA foreign_keys = ON; PRAGMA journal_mode = DELETE; \
     PRAGMA synchronous = FULL; PRAGMA locking_mode = EXCLUSIVE;";

thread_local! {
    /// The instance's one connection, opened by `connect`.
    static CONN: RefCell<Option<Connection>> = const { RefCell::new(None) };
}

fn with_conn<T>(f: impl FnOnce(&Connection) -> Result<T, SqlError>) -> Result<T, SqlError> {
    CONN.with_borrow(|conn| match conn {
        Some(conn) => f(conn),
        None => Err(SqlError::Other("not connected".into())),
    })
}

impl Guest for Sqlite {
    fn connect(settings: Vec<(String, String)>) -> Result<(), SqlError> {
        let setting = |name: &str| {
            settings
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let path = setting("path").ok_or_else(|| SqlError::Other("no `path` setting".into()))?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_EXRESCODE;
        let conn = Connection::open_with_flags_and_vfs(path, flags, c"unix-none")
            .map_err(|e| error(&e))?;
        conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)
            .map_err(|e| error(&e))?;
        // Defensive: no statement can corrupt the file (writable_schema, some pragmas); the
        // schema is not trusted to call functions with side effects.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
            .map_err(|e| error(&e))?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)
            .map_err(|e| error(&e))?;
        let busy = setting("busy_timeout_ms")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        conn.busy_timeout(std::time::Duration::from_millis(busy))
            .map_err(|e| error(&e))?;
        conn.execute_batch(SETTINGS).map_err(|e| error(&e))?;
        CONN.with_borrow_mut(|c| *c = Some(conn));
        Ok(())
    }

    fn query(statement: String, params: Vec<Value>, limits: Limits) -> Result<Rows, SqlError> {
        with_conn(|conn| {
            let mut stmt = conn.prepare(&statement).map_err(|e| error(&e))?;
            let columns: Vec<String> = stmt.column_names().map(str::to_string).collect();
            let width = columns.len();
            let mut rows = stmt
                .query(rusqlite::params_from_iter(params.iter().map(Param)))
                .map_err(|e| error(&e))?;
            let mut out = Vec::new();
            let mut bytes: u64 = 0;
            while let Some(row) = rows.next().map_err(|e| error(&e))? {
                if out.len() as u64 >= limits.max_rows {
                    return Err(SqlError::TooManyRows(limits.max_rows));
                }
                let mut values = Vec::with_capacity(width);
                for i in 0..width {
                    let value = row.get_ref(i).map_err(|e| error(&e))?;
                    bytes += match value {
                        ValueRef::Text(t) | ValueRef::Blob(t) => t.len() as u64,
                        _ => 8,
                    };
                    if bytes > limits.max_bytes {
                        return Err(SqlError::TooLarge(limits.max_bytes));
                    }
                    values.push(to_value(value)?);
                }
                out.push(values);
            }
            Ok(Rows { columns, rows: out })
        })
    }

    fn execute(statement: String, params: Vec<Value>, limits: Limits) -> Result<Outcome, SqlError> {
        with_conn(|conn| {
            // SQLite's counters keep the last INSERT/UPDATE/DELETE's values across other
            // statements, so the outcome is what changed during this one. The last insert id is
            // set to a value no insert gives first: comparing with the previous id instead
            // misses an insert whose rowid happens to equal it (the first row of a new table
            // after a migration's first row elsewhere, both 1).
            let changes_before = conn.total_changes();
            // SAFETY: `handle` is this open connection's own pointer, used on this thread
            // while `conn` is borrowed; setting the last insert rowid has no other effect.
            unsafe { rusqlite::ffi::sqlite3_set_last_insert_rowid(conn.handle(), UNSET_ROWID) };
            let mut stmt = conn.prepare(&statement).map_err(|e| error(&e))?;
            let mut rows = stmt
                .query(rusqlite::params_from_iter(params.iter().map(Param)))
                .map_err(|e| error(&e))?;
            // Step to the end (a statement with RETURNING yields rows; they are dropped here,
            // but still bounded).
            let mut seen: u64 = 0;
            while rows.next().map_err(|e| error(&e))?.is_some() {
                seen += 1;
                if seen > limits.max_rows {
                    return Err(SqlError::TooManyRows(limits.max_rows));
                }
            }
            drop(rows);
            drop(stmt);
            let changed = conn.total_changes() != changes_before;
            let inserted = conn.last_insert_rowid();
            Ok(Outcome {
                rows_affected: if changed { conn.changes() } else { 0 },
                last_insert_id: (inserted != UNSET_ROWID).then_some(inserted),
            })
        })
    }

    fn begin() -> Result<(), SqlError> {
        with_conn(|conn| conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| error(&e)))
    }

    fn commit() -> Result<(), SqlError> {
        with_conn(|conn| conn.execute_batch("COMMIT").map_err(|e| error(&e)))
    }

    fn rollback() -> Result<(), SqlError> {
        with_conn(|conn| conn.execute_batch("ROLLBACK").map_err(|e| error(&e)))
    }

    fn run_script(script: String) -> Result<(), SqlError> {
        with_conn(|conn| conn.execute_batch(&script).map_err(|e| error(&e)))
    }

    fn reset() -> Result<(), SqlError> {
        with_conn(|conn| {
            if !conn.is_autocommit() {
                conn.execute_batch("ROLLBACK").map_err(|e| error(&e))?;
            }
            // Settings a statement may have changed for the rest of the connection's life.
            conn.execute_batch(SETTINGS).map_err(|e| error(&e))
        })
    }
}

/// A parameter as rusqlite binds it.
struct Param<'a>(&'a Value);

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self.0 {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
            Value::Boolean(b) => ValueRef::Integer(i64::from(*b)),
        }))
    }
}

fn to_value(v: ValueRef<'_>) -> Result<Value, SqlError> {
    Ok(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(
            String::from_utf8(t.to_vec())
                .map_err(|_| SqlError::Other("a text value is not UTF-8".into()))?,
        ),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    })
}

/// A rusqlite error as the variant a handler matches.
fn error(e: &rusqlite::Error) -> SqlError {
    match e {
        rusqlite::Error::MultipleStatement => {
            SqlError::Syntax("one statement per call: stacked statements are refused".into())
        }
        rusqlite::Error::SqlInputError { error, msg, .. } => {
            // rusqlite's form of a prepare error, which quotes the statement: the variant
            // keeps SQLite's own message.
            error_from(error, msg)
        }
        rusqlite::Error::SqliteFailure(code, message) => {
            let message = message.clone().unwrap_or_else(|| code.to_string());
            error_from(code, &message)
        }
        rusqlite::Error::InvalidParameterCount(given, wanted) => SqlError::Other(format!(
            "the statement takes {wanted} parameters, {given} given"
        )),
        other => SqlError::Other(other.to_string()),
    }
}

fn error_from(code: &rusqlite::ffi::Error, message: &str) -> SqlError {
    use rusqlite::ffi;
    let message = message.to_string();
    {
        {
            let kind = match code.extended_code {
                ffi::SQLITE_CONSTRAINT_UNIQUE => Some(ConstraintKind::Unique),
                ffi::SQLITE_CONSTRAINT_PRIMARYKEY => Some(ConstraintKind::PrimaryKey),
                ffi::SQLITE_CONSTRAINT_FOREIGNKEY => Some(ConstraintKind::ForeignKey),
                ffi::SQLITE_CONSTRAINT_NOTNULL => Some(ConstraintKind::NotNull),
                ffi::SQLITE_CONSTRAINT_CHECK => Some(ConstraintKind::Check),
                _ if code.code == rusqlite::ErrorCode::ConstraintViolation => {
                    Some(ConstraintKind::Other)
                }
                _ => None,
            };
            if let Some(kind) = kind {
                // "UNIQUE constraint failed: users.email" names the columns after the colon.
                let constraint = message
                    .split_once("constraint failed: ")
                    .map(|(_, c)| c.to_string())
                    .filter(|c| !c.is_empty());
                return SqlError::ConstraintViolation(ConstraintViolation {
                    kind,
                    constraint,
                    message,
                });
            }
            if let Some(table) = message.strip_prefix("no such table: ") {
                return SqlError::NoSuchTable(table.to_string());
            }
            if let Some(column) = message.strip_prefix("no such column: ") {
                return SqlError::NoSuchColumn(column.to_string());
            }
            if message.contains("syntax error") || message.contains("incomplete input") {
                return SqlError::Syntax(message);
            }
            match code.code {
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
                    SqlError::Timeout
                }
                _ => SqlError::Other(message),
            }
        }
    }
}

bindings::export!(Sqlite with_types_in bindings);
