//! Small pieces the HTML handlers share.

use flagon_sdk::{Error, Request, Response};
use serde::{Deserialize, Serialize};

/// The signed-in user's id: the identity's subject. On the session it is what
/// `session::sign_in` stored at login; on the API, the owner column of the key's row.
///
/// Every route that calls this has `auth = "required"`, so the host has already answered
/// 401 (or redirected to the login page) when there is no identity. Getting here without one
/// means the manifest lost its `auth`: fail loudly rather than serve anyone's data.
pub fn user_id(req: &Request) -> Result<&str, Error> {
    req.identity().map(|i| i.subject.as_str()).ok_or_else(|| {
        Error::internal("no identity on a route that needs one: check `auth` in flagon.toml")
    })
}

/// An empty 404, which the host turns into the app's error page (`[errors]`).
pub fn not_found() -> Response {
    Response::status(404)
}

/// Render `template` with a status other than 200 (a form with errors is a 422).
pub fn render_with<C: Serialize>(status: u16, template: &str, ctx: &C) -> Result<Response, Error> {
    Ok(Response::render(template, ctx)?.with_status(status))
}

/// A page number from a query or a form: a positive integer, else `None`.
pub fn page_number(raw: Option<&str>) -> Option<i64> {
    raw.and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|&n| n >= 1)
        .map(i64::from)
}

/// Where the user was in the list (search and page), carried through the edit, toggle and
/// delete forms as hidden fields so that they land back there.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct ListPosition {
    #[serde(default)]
    pub q: String,
    pub page: Option<String>,
}

impl ListPosition {
    /// `/todos`, with `?q=...&page=...` for what is set. Built here, from our own path and
    /// encoded values, so it always passes the host's redirect check.
    pub fn url(&self) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        let q = self.q.trim();
        if !q.is_empty() {
            pairs.push(("q", q.to_owned()));
        }
        if let Some(page) = page_number(self.page.as_deref()).filter(|&p| p > 1) {
            pairs.push(("page", page.to_string()));
        }
        match serde_urlencoded::to_string(&pairs) {
            Ok(query) if !query.is_empty() => format!("/todos?{query}"),
            _ => "/todos".to_owned(),
        }
    }
}
