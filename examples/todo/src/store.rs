//! The `todos` table, shared by the HTML pages and the JSON API.
//!
//! Every statement names the owner: a todo is looked up, changed or deleted only
//! `WHERE id = ... AND user_id = ...`, so another user's id behaves exactly like an id that
//! does not exist (a 404, never a 403 that would confirm it exists).

use flagon_sdk::sql::{SqlError, params};
use serde::{Deserialize, Serialize};

use crate::db::{self, db};

/// Todos per page, on the list page and in the API.
pub const PER_PAGE: i64 = 10;
/// The longest title, in characters.
pub const TITLE_MAX: usize = 200;

/// A row of `todos`, as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Todo {
    pub id: String,
    pub title: String,
    /// INTEGER 0/1 in the table; the SDK decodes an integer or a boolean into a `bool`.
    pub done: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A title as typed, trimmed; `Err` says what is wrong, in words for the user.
pub fn clean_title(raw: &str) -> Result<&str, String> {
    let title = raw.trim();
    match title.chars().count() {
        0 => Err("A todo needs a title.".into()),
        n if n > TITLE_MAX => Err(format!(
            "A title can be at most {TITLE_MAX} characters (this one has {n})."
        )),
        _ => Ok(title),
    }
}

/// How many of the user's todos match `pattern` (see [`db::contains_pattern`]).
pub fn count_matching(user: &str, pattern: &str) -> Result<i64, SqlError> {
    let n = db().query_one(
        r"SELECT COUNT(*) AS n FROM todos WHERE user_id = $1 AND LOWER(title) LIKE $2 ESCAPE '\'",
        params![user, pattern],
    )?;
    Ok(n.unwrap_or(0))
}

/// One page (1-based) of the user's todos matching `pattern`, newest first. Times are whole
/// seconds, so todos made in the same second come in id order: arbitrary, but the same on
/// every page, which keeps pages from overlapping or skipping rows.
pub fn page(user: &str, pattern: &str, page: i64) -> Result<Vec<Todo>, SqlError> {
    let offset = (page.max(1) - 1).saturating_mul(PER_PAGE);
    db().query_as(
        r"SELECT id, title, done, created_at, updated_at FROM todos
          WHERE user_id = $1 AND LOWER(title) LIKE $2 ESCAPE '\'
          ORDER BY created_at DESC, id DESC
          LIMIT $3 OFFSET $4",
        params![user, pattern, PER_PAGE, offset],
    )
}

/// The user's totals, for the counts above the list.
#[derive(Debug, Default, Deserialize)]
pub struct Totals {
    pub total: i64,
    pub done: i64,
}

pub fn totals(user: &str) -> Result<Totals, SqlError> {
    // COUNT, not SUM: COUNT is an integer on both databases (Postgres' SUM of an integer
    // column is a bigint, of a bigint a numeric).
    let totals = db().query_one(
        "SELECT COUNT(*) AS total, COUNT(CASE WHEN done <> 0 THEN 1 END) AS done
         FROM todos WHERE user_id = $1",
        params![user],
    )?;
    Ok(totals.unwrap_or_default())
}

/// The user's todo `id`, if it exists and is theirs.
pub fn get(user: &str, id: &str) -> Result<Option<Todo>, SqlError> {
    db().query_one(
        "SELECT id, title, done, created_at, updated_at FROM todos
         WHERE id = $1 AND user_id = $2",
        params![id, user],
    )
}

/// Add a todo (title already cleaned) and return it.
pub fn insert(user: &str, title: &str) -> Result<Todo, SqlError> {
    let now = db::now();
    let todo = Todo {
        id: db::new_id(),
        title: title.to_owned(),
        done: false,
        created_at: now,
        updated_at: now,
    };
    db().execute(
        "INSERT INTO todos (id, user_id, title, done, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        params![&todo.id, user, &todo.title, db::flag(todo.done), now, now],
    )?;
    Ok(todo)
}

/// Change the title; false when there is no such todo of this user.
///
/// (In UPDATEs the new values come first, so that the placeholders appear in order.)
pub fn set_title(user: &str, id: &str, title: &str) -> Result<bool, SqlError> {
    let outcome = db().execute(
        "UPDATE todos SET title = $1, updated_at = $2 WHERE id = $3 AND user_id = $4",
        params![title, db::now(), id, user],
    )?;
    Ok(outcome.rows_affected > 0)
}

/// Mark done or not done; false when there is no such todo of this user.
pub fn set_done(user: &str, id: &str, done: bool) -> Result<bool, SqlError> {
    let outcome = db().execute(
        "UPDATE todos SET done = $1, updated_at = $2 WHERE id = $3 AND user_id = $4",
        params![db::flag(done), db::now(), id, user],
    )?;
    Ok(outcome.rows_affected > 0)
}

/// Change the fields that are `Some`, in one statement: atomic, and a client changing only
/// `done` cannot undo another's concurrent title change (COALESCE keeps the row's current
/// value, read under the UPDATE's row lock). False when there is no such todo of this user.
pub fn patch(
    user: &str,
    id: &str,
    title: Option<&str>,
    done: Option<bool>,
) -> Result<bool, SqlError> {
    let outcome = db().execute(
        "UPDATE todos SET title = COALESCE($1, title), done = COALESCE($2, done), updated_at = $3
         WHERE id = $4 AND user_id = $5",
        params![title, done.map(db::flag), db::now(), id, user],
    )?;
    Ok(outcome.rows_affected > 0)
}

/// Flip done in one statement (no read-then-write race); the new state, or `None` when there
/// is no such todo of this user. RETURNING works on SQLite (3.35+) and Postgres alike.
pub fn toggle(user: &str, id: &str) -> Result<Option<bool>, SqlError> {
    db().query_one(
        "UPDATE todos SET done = CASE WHEN done = 0 THEN 1 ELSE 0 END, updated_at = $1
         WHERE id = $2 AND user_id = $3
         RETURNING done",
        params![db::now(), id, user],
    )
}

/// Delete; false when there is no such todo of this user.
pub fn delete(user: &str, id: &str) -> Result<bool, SqlError> {
    let outcome = db().execute(
        "DELETE FROM todos WHERE id = $1 AND user_id = $2",
        params![id, user],
    )?;
    Ok(outcome.rows_affected > 0)
}
