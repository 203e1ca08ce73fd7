//! Integration tests: real HTTP over a socket to a real host serving real components built from
//! `tests/programs` (see `tests/artifacts/build.rs`).

mod admin;
mod auth;
mod auth_jwt;
mod auth_plugins;
mod browser;
mod cli;
mod example;
mod grants;
mod harness;
mod hello_c;
mod hello_js;
mod hello_py;
mod hostile;
mod layout;
mod lean;
mod limits;
mod middleware_plugins;
mod plugins;
mod postgres;
mod reload;
mod request_context;
mod routing;
mod scaleout;
mod signing;
mod sql;
mod testing;
mod todo;
mod tutorial;
mod wasi_http;
mod web;

use flagon_test_artifacts as programs;

/// Every guest test program must have a test module named after it that exercises it.
macro_rules! assert_test_exists {
    ($name:ident) => {
        #[allow(unused_imports)]
        use crate::program_tests::$name as _;
    };
}

/// One module per test program, pointing at the tests that use it.
mod program_tests {
    pub(crate) use crate::auth as authn;
    pub(crate) use crate::auth as mw;
    pub(crate) use crate::grants as netprobe;
    pub(crate) use crate::hostile;
    pub(crate) use crate::lean;
    pub(crate) use crate::postgres as dial_adapter;
    pub(crate) use crate::routing as hello;
    pub(crate) use crate::sql as db;
    pub(crate) use crate::sql as bad_adapter;
    pub(crate) use crate::wasi_http;
    pub(crate) use crate::web;
}

flagon_test_artifacts::foreach_program!(assert_test_exists);

/// The standard test app: `hello` with a variable grant, and `hostile` with tight limits.
pub fn app_manifest(server: &str) -> String {
    format!(
        r#"
[app]
name = "test"

[server]
header_read_timeout = "1s"
{server}

[components.hello]
source = {hello}
grants = {{ variables = ["greeting"], crypto = true, outbound = ["http://127.0.0.1:9"] }}

[components.hostile]
source = {hostile}
limits = {{ memory = "32MiB", timeout = "1s" }}

[variables]
greeting = {{ default = "howdy" }}
secret_token = {{ default = "s3cr3t", secret = true }}
pem_key = {{ default = "-----BEGIN TEST KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASC\nAT8wggE7AgEAAkEAq7BFUpkGp3+\n-----END TEST KEY-----\n", secret = true }}

[[routes]]
path = "/"
component = "hello"
name = "index"

[[routes]]
path = "/greet/{{name}}"
component = "hello"
name = "greet"

[[routes]]
path = "/files/{{*path}}"
component = "hello"
name = "files"

[[routes]]
path = "/search"
component = "hello"
name = "search"

[[routes]]
path = "/echo"
methods = ["POST", "PUT"]
component = "hello"
name = "echo-json"

[[routes]]
path = "/form"
methods = ["POST"]
component = "hello"
name = "form"
max_body = "16KiB"

[[routes]]
path = "/inspect"
methods = ["GET", "POST", "DELETE", "PATCH"]
component = "hello"
name = "inspect"

[[routes]]
path = "/config"
component = "hello"
name = "config"

[[routes]]
path = "/crypto"
component = "hello"
name = "crypto"

[[routes]]
path = "/redirect"
component = "hello"
name = "redirect"

[[routes]]
path = "/counter"
component = "hello"
name = "counter"

[[routes]]
path = "/slow"
component = "hello"
name = "slow"

[[routes]]
path = "/teapot"
component = "hello"
name = "teapot"

[[routes]]
path = "/fetch"
component = "hello"
name = "fetch"

[[routes]]
path = "/fail"
component = "hello"
name = "fail"

[[routes]]
path = "/h/{{name}}"
component = "hostile"
"#,
        hello = harness::program(programs::HELLO),
        hostile = harness::program(programs::HOSTILE),
    )
}
