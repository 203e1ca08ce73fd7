//! The JSON API under `/api`: the same todos, for scripts.
//!
//! Requests are authenticated by API keys (`authenticators = ["apikey"]` on these routes), and
//! the identity's subject is the key owner's user id, just as on the pages. Nothing here
//! touches the session: these routes have `csrf = false`, which is safe only because no
//! cookie can authenticate them.
//!
//! Every error is `{"error": "..."}` with its status: 400 for a malformed request, 404 for a
//! todo that is not the caller's (another user's id looks like a missing one), 415 for a body
//! that is not JSON, 422 for a value that is refused.

use flagon_sdk::{Error, Request, Response, log};
use serde::{Deserialize, Serialize};

use crate::db;
use crate::store::{self, PER_PAGE, Todo};
use crate::web;

/// Answer an `api_*` route. Errors become JSON here, so `?` works in the handlers below.
pub fn handle(req: &Request) -> Result<Response, Error> {
    let result = match req.route() {
        Some("api_todos") => list(req),
        Some("api_todo_create") => create(req),
        Some("api_todo") => show(req),
        Some("api_todo_update") => update(req),
        Some("api_todo_delete") => delete(req),
        _ => Err(Error::not_found()),
    };
    Ok(result.unwrap_or_else(error_response))
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

fn error_response(e: Error) -> Response {
    let message = if e.status() >= 500 {
        // The details are for the log, not for the client.
        log::error(&format!("api: {}", e.message()));
        "internal error"
    } else {
        e.message()
    };
    Response::json(&ErrorBody { error: message }).with_status(e.status())
}

fn not_found() -> Error {
    Error::new(404, "no such todo")
}

/// `GET /api/todos?q=...&page=...`. Unlike the pages, a `page` that is not a positive integer
/// is a 400 (a script should hear about its bug), and one past the end is an empty list.
#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    q: String,
    page: Option<String>,
}

#[derive(Serialize)]
struct TodoList {
    todos: Vec<Todo>,
    page: i64,
    per_page: i64,
    /// Todos matching `q` (all of the caller's without one).
    total: i64,
}

fn list(req: &Request) -> Result<Response, Error> {
    let user = web::user_id(req)?;
    let query: ListQuery = req.query()?;
    let page = match query.page.as_deref() {
        None => 1,
        Some(raw) => web::page_number(Some(raw))
            .ok_or_else(|| Error::bad_request("`page` must be a positive integer"))?,
    };
    let pattern = db::contains_pattern(query.q.trim());
    let total = store::count_matching(user, &pattern)?;
    let todos = store::page(user, &pattern, page)?;
    Ok(Response::json(&TodoList {
        todos,
        page,
        per_page: PER_PAGE,
        total,
    }))
}

/// `POST /api/todos` with `{"title": "..."}`. Unknown fields are refused (400), so a typo
/// such as `"titel"` is not silently dropped.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTodo {
    title: String,
}

fn create(req: &Request) -> Result<Response, Error> {
    let user = web::user_id(req)?;
    let new: NewTodo = req.json()?;
    let title = store::clean_title(&new.title).map_err(|m| Error::new(422, m))?;
    let todo = store::insert(user, title)?;
    Ok(Response::json(&todo)
        .with_status(201)
        .with_header("location", format!("/api/todos/{}", todo.id)))
}

/// `GET /api/todos/{id}`
fn show(req: &Request) -> Result<Response, Error> {
    let user = web::user_id(req)?;
    let todo = store::get(user, todo_id(req)?)?.ok_or_else(not_found)?;
    Ok(Response::json(&todo))
}

/// `PATCH /api/todos/{id}` with `{"title": "...", "done": true}`, either or both.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TodoPatch {
    title: Option<String>,
    done: Option<bool>,
}

fn update(req: &Request) -> Result<Response, Error> {
    let user = web::user_id(req)?;
    let id = todo_id(req)?;
    let patch: TodoPatch = req.json()?;
    if patch.title.is_none() && patch.done.is_none() {
        return Err(Error::new(
            422,
            "nothing to change: send `title`, `done` or both",
        ));
    }
    let title = patch
        .title
        .as_deref()
        .map(store::clean_title)
        .transpose()
        .map_err(|m| Error::new(422, m))?;
    let found = store::patch(user, id, title, patch.done)?;
    if !found {
        return Err(not_found());
    }
    let todo = store::get(user, id)?.ok_or_else(not_found)?;
    Ok(Response::json(&todo))
}

/// `DELETE /api/todos/{id}`: 204.
fn delete(req: &Request) -> Result<Response, Error> {
    let user = web::user_id(req)?;
    if !store::delete(user, todo_id(req)?)? {
        return Err(not_found());
    }
    Ok(Response::status(204))
}

fn todo_id(req: &Request) -> Result<&str, Error> {
    req.param("id")
        .filter(|id| db::is_id(id))
        .ok_or_else(not_found)
}
