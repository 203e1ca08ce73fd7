//! The todo pages: the list (search, pagination, counts), and the forms that change it.
//!
//! Every change is a POST that ends in a flash and a 303 back to the list (post/redirect/get),
//! so reloading the page never repeats it.

use flagon_sdk::{Error, Request, Response, session};
use serde::{Deserialize, Serialize};

use crate::db;
use crate::store::{self, PER_PAGE, TITLE_MAX, Todo};
use crate::web::{self, ListPosition};

/// `GET /todos?q=...&page=...`. Both are optional and never an error: a page that is not a
/// positive number is page 1, and one past the end is the last page (after deleting the last
/// todo of a page, the list lands on the page before it instead of an empty one).
#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    q: String,
    page: Option<String>,
}

/// A todo as the list and edit pages show it.
#[derive(Serialize)]
struct TodoView {
    id: String,
    title: String,
    done: bool,
    created: String,
    created_iso: String,
}

impl From<Todo> for TodoView {
    fn from(t: Todo) -> Self {
        Self {
            created: db::display_time(t.created_at),
            created_iso: db::iso_time(t.created_at),
            id: t.id,
            title: t.title,
            done: t.done,
        }
    }
}

/// The context of `todos.html`.
#[derive(Serialize)]
struct ListPage {
    todos: Vec<TodoView>,
    q: String,
    page: i64,
    pages: i64,
    prev_page: Option<i64>,
    next_page: Option<i64>,
    total: i64,
    done: i64,
    open: i64,
    /// Todos matching `q` (all of them without a search).
    matching: i64,
    title_max: usize,
}

pub fn list(req: &Request) -> Result<Response, Error> {
    let user = web::user_id(req)?;
    let query: ListQuery = req.query()?;
    let q = query.q.trim().to_owned();
    let pattern = db::contains_pattern(&q);

    let matching = store::count_matching(user, &pattern)?;
    let pages = ((matching + PER_PAGE - 1) / PER_PAGE).max(1);
    let page = web::page_number(query.page.as_deref())
        .unwrap_or(1)
        .min(pages);
    let todos = store::page(user, &pattern, page)?;
    let totals = store::totals(user)?;

    Response::render(
        "todos.html",
        &ListPage {
            todos: todos.into_iter().map(TodoView::from).collect(),
            q,
            page,
            pages,
            prev_page: (page > 1).then(|| page - 1),
            next_page: (page < pages).then(|| page + 1),
            total: totals.total,
            done: totals.done,
            open: totals.total - totals.done,
            matching,
            title_max: TITLE_MAX,
        },
    )
}

#[derive(Deserialize)]
struct TitleForm {
    #[serde(default)]
    title: String,
    #[serde(flatten)]
    position: ListPosition,
}

/// `POST /todos`: add a todo, then show the first page without a search, where it is.
pub fn create(req: &Request) -> Result<Response, Error> {
    let user = web::user_id(req)?;
    let form: TitleForm = req.form()?;
    match store::clean_title(&form.title) {
        Ok(title) => {
            store::insert(user, title)?;
            session::flash("success", "Todo added.")?;
        }
        Err(message) => session::flash("error", &message)?,
    }
    Ok(Response::redirect("/todos"))
}

/// The context of `edit.html`.
#[derive(Serialize)]
struct EditPage<'a> {
    todo: TodoView,
    /// What the title field shows: the stored title, or what was typed when it was refused.
    title: &'a str,
    error: Option<&'a str>,
    position: &'a ListPosition,
    title_max: usize,
}

/// `GET /todos/{id}/edit`
pub fn edit_page(req: &Request) -> Result<Response, Error> {
    let user = web::user_id(req)?;
    let Some(todo) = find(req, user)? else {
        return Ok(web::not_found());
    };
    let position: ListPosition = req.query()?;
    let title = todo.title.clone();
    render_edit(200, todo, &title, None, &position)
}

/// `POST /todos/{id}`: a new title. A refused title re-renders the form (422) with what was
/// typed, rather than losing it in a redirect.
pub fn update(req: &Request) -> Result<Response, Error> {
    let user = web::user_id(req)?;
    let Some(id) = todo_id(req) else {
        return Ok(web::not_found());
    };
    let form: TitleForm = req.form()?;
    let title = match store::clean_title(&form.title) {
        Ok(title) => title,
        Err(message) => {
            let Some(todo) = store::get(user, id)? else {
                return Ok(web::not_found());
            };
            return render_edit(422, todo, &form.title, Some(&message), &form.position);
        }
    };
    if !store::set_title(user, id, title)? {
        return Ok(web::not_found());
    }
    session::flash("success", "Todo updated.")?;
    Ok(Response::redirect(form.position.url()))
}

#[derive(Deserialize)]
struct ToggleForm {
    /// The state the button asks for ("1" done, "0" not done). With it a double-submitted
    /// form changes nothing the second time; without it the todo is flipped.
    done: Option<String>,
    #[serde(flatten)]
    position: ListPosition,
}

/// `POST /todos/{id}/toggle`
pub fn toggle(req: &Request) -> Result<Response, Error> {
    let user = web::user_id(req)?;
    let Some(id) = todo_id(req) else {
        return Ok(web::not_found());
    };
    let form: ToggleForm = req.form()?;
    let done = match form.done.as_deref().map(str::trim) {
        Some("1") => store::set_done(user, id, true)?.then_some(true),
        Some("0") => store::set_done(user, id, false)?.then_some(false),
        None | Some("") => store::toggle(user, id)?,
        Some(_) => return Err(Error::bad_request("`done` is 1 or 0")),
    };
    let Some(done) = done else {
        return Ok(web::not_found());
    };
    let message = if done {
        "Marked as done."
    } else {
        "Marked as not done."
    };
    session::flash("success", message)?;
    Ok(Response::redirect(form.position.url()))
}

/// `POST /todos/{id}/delete`
pub fn delete(req: &Request) -> Result<Response, Error> {
    let user = web::user_id(req)?;
    let Some(id) = todo_id(req) else {
        return Ok(web::not_found());
    };
    let position: ListPosition = req.form()?;
    if !store::delete(user, id)? {
        return Ok(web::not_found());
    }
    session::flash("success", "Todo deleted.")?;
    Ok(Response::redirect(position.url()))
}

/// The `{id}` of the path, when it could be one of ours.
fn todo_id(req: &Request) -> Option<&str> {
    req.param("id").filter(|id| db::is_id(id))
}

/// The user's todo named by the path.
fn find(req: &Request, user: &str) -> Result<Option<Todo>, Error> {
    match todo_id(req) {
        Some(id) => Ok(store::get(user, id)?),
        None => Ok(None),
    }
}

fn render_edit(
    status: u16,
    todo: Todo,
    title: &str,
    error: Option<&str>,
    position: &ListPosition,
) -> Result<Response, Error> {
    let page = EditPage {
        todo: todo.into(),
        title,
        error,
        position,
        title_max: TITLE_MAX,
    };
    web::render_with(status, "edit.html", &page)
}
