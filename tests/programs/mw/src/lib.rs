//! A test middleware driven by request headers. Its `settings` give it a `name` (default
//! `mw`). In `before`, `x-mw: <name>=<what>` selects a behaviour:
//!
//! - `block` answers 418 itself; `trap` panics; `loop` never returns;
//! - `bad-header` answers with a header value holding a newline; `set-session` answers 200
//!   with a `Set-Cookie` for the host's session cookie; `evil-redirect` with a `Location` to
//!   another site;
//! - `after-trap` panics in `after`, `after-bad` returns an invalid status from `after`.
//!
//! Otherwise `before` continues, and `after` appends its name to `x-mw-trace` (so a test sees
//! the order), adds `x-mw-<name>-subject` with the identity's subject if there is one, and
//! `x-mw-<name>-form` with the form fields it was given (`k=v&...`) if any.
//! State kept in `before` reaches `after` of the same request only.

use std::cell::RefCell;

mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "flagon:app/middleware",
    });
}

use bindings::exports::flagon::app::intercept::{Action, Guest};
use bindings::flagon::app::settings;
use bindings::flagon::app::types::{RequestHead, Response};

struct Mw;

thread_local! {
    /// What `before` saw, for `after` of the same request.
    static SEEN: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Requests this instance has served `before` for (always 1 on a fresh instance).
    static CALLS: RefCell<u32> = const { RefCell::new(0) };
}

fn name() -> String {
    let s: serde_json::Value = serde_json::from_str(&settings::get()).expect("JSON settings");
    s.get("name")
        .and_then(|n| n.as_str())
        .unwrap_or("mw")
        .to_string()
}

fn what(head: &RequestHead, name: &str) -> Option<String> {
    head.headers
        .iter()
        .filter(|(k, _)| k == "x-mw")
        .flat_map(|(_, v)| v.split(','))
        .find_map(|v| {
            v.trim()
                .strip_prefix(&format!("{name}="))
                .map(str::to_string)
        })
}

fn respond(status: u16, headers: Vec<(&str, &str)>, body: &str) -> Action {
    Action::Respond(Response {
        status,
        headers: headers
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.as_bytes().to_vec(),
    })
}

impl Guest for Mw {
    fn check_settings() -> Result<(), String> {
        let name = name();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!("`name` must be alphanumeric, not {name:?}"));
        }
        Ok(())
    }

    fn before(head: RequestHead) -> Action {
        let name = name();
        CALLS.with_borrow_mut(|c| *c += 1);
        let what = what(&head, &name);
        SEEN.with_borrow_mut(|s| *s = what.clone().or(Some(String::new())));
        match what.as_deref() {
            Some("block") => respond(
                418,
                vec![("content-type", "text/plain"), ("x-blocked-by", &name)],
                "blocked",
            ),
            Some("trap") => panic!("the middleware panics"),
            Some("loop") => loop {
                std::hint::black_box(0);
            },
            Some("bad-header") => respond(200, vec![("x-bad", "a\nb")], ""),
            Some("set-session") => respond(
                200,
                vec![("set-cookie", "__Host-session=forged; Path=/; Secure")],
                "session",
            ),
            Some("evil-redirect") => respond(302, vec![("location", "https://evil.example/")], ""),
            _ => Action::Continue,
        }
    }

    fn after(head: RequestHead, mut response: Response) -> Response {
        let name = name();
        let seen = SEEN.with_borrow(|s| s.clone());
        assert!(seen.is_some(), "after without before on this instance");
        assert_eq!(
            CALLS.with_borrow(|c| *c),
            1,
            "an instance served two requests"
        );
        match seen.as_deref() {
            Some("after-trap") => panic!("the middleware panics in after"),
            Some("after-bad") => {
                response.status = 99;
                return response;
            }
            _ => {}
        }
        let trace = match response.headers.iter().position(|(k, _)| k == "x-mw-trace") {
            Some(i) => format!("{},{name}", response.headers.remove(i).1),
            None => name.clone(),
        };
        response.headers.push(("x-mw-trace".into(), trace));
        if !head.form.is_empty() {
            let form: Vec<String> = head.form.iter().map(|(k, v)| format!("{k}={v}")).collect();
            response
                .headers
                .push((format!("x-mw-{name}-form"), form.join("&")));
        }
        if let Some(identity) = &head.identity {
            response
                .headers
                .push((format!("x-mw-{name}-subject"), identity.subject.clone()));
        }
        response
    }
}

bindings::export!(Mw with_types_in bindings);
