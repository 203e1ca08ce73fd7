//! The admin's page: every user, with how many todos they have.

use flagon_sdk::sql::params;
use flagon_sdk::{Error, Request, Response};
use serde::{Deserialize, Serialize};

use crate::db::{self, db};

/// The most users one page lists; the page says when there are more. (The database refuses
/// results past `max_rows` anyway, so an unbounded list would fail once the app grew.)
const SHOWN_MAX: i64 = 500;

#[derive(Deserialize)]
struct UserRow {
    username: String,
    created_at: i64,
    todos: i64,
}

#[derive(Serialize)]
struct UserView {
    username: String,
    created: String,
    created_iso: String,
    todos: i64,
}

#[derive(Serialize)]
struct UsersPage {
    users: Vec<UserView>,
    total: i64,
}

/// `GET /admin/users`. The route's `roles = ["admin"]` makes the host answer 403 to anyone
/// else before this runs; the check here is a second lock in case the manifest loses it.
pub fn users(req: &Request) -> Result<Response, Error> {
    if !req.has_role("admin") {
        return Ok(Response::status(403));
    }
    // Every selected column is grouped, as Postgres requires.
    let rows: Vec<UserRow> = db().query_as(
        "SELECT u.username, u.created_at, COUNT(t.id) AS todos
         FROM users u LEFT JOIN todos t ON t.user_id = u.id
         GROUP BY u.id, u.username, u.created_at
         ORDER BY u.username
         LIMIT $1",
        params![SHOWN_MAX],
    )?;
    let total: Option<i64> = db().query_one("SELECT COUNT(*) AS n FROM users", params![])?;
    let users = rows
        .into_iter()
        .map(|u| UserView {
            created: db::display_time(u.created_at),
            created_iso: db::iso_time(u.created_at),
            username: u.username,
            todos: u.todos,
        })
        .collect();
    Response::render(
        "admin_users.html",
        &UsersPage {
            users,
            total: total.unwrap_or(0),
        },
    )
}
