//! The todo example: a multi-user todo app in one handler component.
//!
//! - accounts: sign up, log in and out (`accounts`), with argon2id passwords and the cookie
//!   session read back by the `auth-session` plugin;
//! - todos per user in SQL (`todos` for the pages, `store` for the queries), with search and
//!   pagination;
//! - API keys a user makes for scripts (`keys`), checked by the `auth-apikey-sql` plugin;
//! - the same todos as a JSON API (`api`);
//! - an admin page listing the users (`admin`).
//!
//! The manifest (flagon.toml) decides who may reach each route: the host authenticates the
//! request and checks roles before this component runs. The handlers still scope every query
//! to the signed-in user, which is what keeps one user's todos from another.

mod accounts;
mod admin;
mod api;
mod db;
mod keys;
mod store;
mod todos;
mod web;

use flagon_sdk::{Error, Handler, Method, Request, Response};

struct App;

impl Handler for App {
    /// Dispatch on the route's `name` in flagon.toml. Only `signup` and `login` answer two
    /// methods; every other route has one, which the host has already matched.
    fn handle(req: Request) -> Result<Response, Error> {
        let post = matches!(req.method(), Method::Post);
        match req.route().unwrap_or_default() {
            "index" => accounts::index(&req),
            "signup" if post => accounts::signup(&req),
            "signup" => accounts::signup_page(&req),
            "login" if post => accounts::login(&req),
            "login" => accounts::login_page(&req),
            "logout" => accounts::logout(&req),

            "todos" => todos::list(&req),
            "todo_create" => todos::create(&req),
            "todo_edit" => todos::edit_page(&req),
            "todo_update" => todos::update(&req),
            "todo_toggle" => todos::toggle(&req),
            "todo_delete" => todos::delete(&req),

            "keys" => keys::list(&req),
            "key_create" => keys::create(&req),
            "key_revoke" => keys::revoke(&req),

            "admin_users" => admin::users(&req),

            route if route.starts_with("api_") => api::handle(&req),

            // A route added to the manifest but not here: the app's 404 page.
            _ => Ok(web::not_found()),
        }
    }
}

flagon_sdk::export!(App);
