//! A test authenticator driven by request headers, to exercise every answer the host must
//! handle. Its `settings` give it a `scheme` (default `Test`): `Authorization: <scheme> <what>`.
//!
//! - `user:<subject>[:<role>,<role>...]` is that identity (claims: `scheme`);
//! - `invalid` is invalid credentials, `unavailable` an unavailable store;
//! - `trap` panics, `loop` never returns, `empty-subject` returns an identity without a subject;
//! - no header, or another scheme, is no identity (the next authenticator is asked).
//!
//! With `{"from_session": true}` it ignores headers and is the session's `user` (role `user`),
//! after checking that it cannot write the session.
//!
//! `check-settings` refuses `{"refuse": true}`.

mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "flagon:app/authenticator",
    });
}

use bindings::exports::flagon::app::authenticate::{AuthError, Guest};
use bindings::flagon::app::types::{Identity, RequestHead};
use bindings::flagon::app::{log, session, settings};

struct Authn;

fn settings() -> serde_json::Value {
    serde_json::from_str(&settings::get()).expect("the host passes a JSON object")
}

fn identity(subject: &str, roles: &[&str], scheme: &str) -> Identity {
    Identity {
        subject: subject.into(),
        display_name: Some(format!("User {subject}")),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        claims: vec![("scheme".into(), scheme.into())],
        // The host sets this; a lie here must not survive.
        authenticator: "forged".into(),
    }
}

impl Guest for Authn {
    fn check_settings() -> Result<(), String> {
        match settings().get("refuse") {
            Some(serde_json::Value::Bool(true)) => Err("`refuse` is set".into()),
            _ => Ok(()),
        }
    }

    fn authenticate(head: RequestHead) -> Result<Option<Identity>, AuthError> {
        let settings = settings();
        let scheme = settings
            .get("scheme")
            .and_then(|s| s.as_str())
            .unwrap_or("Test")
            .to_string();
        if settings.get("from_session") == Some(&serde_json::Value::Bool(true)) {
            let user = session::get("user");
            // Read-only: these must fail and change nothing.
            if session::set("user", "mallory").is_ok() {
                panic!("an authenticator could write the session");
            }
            session::clear();
            log::log(log::Level::Info, "session authenticator ran");
            return Ok(user.map(|u| identity(&u, &["user"], &scheme)));
        }
        let Some((_, value)) = head.headers.iter().find(|(k, _)| k == "authorization") else {
            return Ok(None);
        };
        let Some(what) = value.strip_prefix(&format!("{scheme} ")) else {
            return Ok(None);
        };
        match what {
            "invalid" => Err(AuthError::Invalid("the test token is invalid".into())),
            "unavailable" => Err(AuthError::Unavailable("the test store is down".into())),
            "trap" => panic!("the authenticator panics"),
            "loop" => loop {
                std::hint::black_box(0);
            },
            "empty-subject" => Ok(Some(identity("", &[], &scheme))),
            other => match other.strip_prefix("user:") {
                Some(rest) => {
                    let (subject, roles) = rest.split_once(':').unwrap_or((rest, ""));
                    let roles: Vec<&str> = roles.split(',').filter(|r| !r.is_empty()).collect();
                    Ok(Some(identity(subject, &roles, &scheme)))
                }
                None => Err(AuthError::Invalid("unknown test credentials".into())),
            },
        }
    }
}

bindings::export!(Authn with_types_in bindings);
