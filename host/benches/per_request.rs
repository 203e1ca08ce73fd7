//! Micro-benchmarks of the per-request path: instantiate + call of a trivial handler, the whole
//! host path without a socket, routing, session load + verify, and the host's template render
//! of the benchmark page beside plain minijinja. Run with `cargo bench -p flagon`.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use flagon::http::router::Router;
use flagon::runtime::bindings::{Method, Request};
use flagon::{App, CacheDir, LoadOptions, Manifest};
use http_body_util::Full;

async fn app(text: &str) -> App {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flagon.toml");
    std::fs::write(&path, text).unwrap();
    let manifest = Manifest::load(&path).unwrap();
    App::load(
        &manifest,
        &LoadOptions {
            cache: CacheDir::Disabled,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

fn hello_manifest() -> String {
    format!(
        "[app]\nname = \"bench\"\n[components.hello]\nsource = {:?}\ngrants = {{ variables = [], crypto = true, outbound = [\"http://127.0.0.1:9\"] }}\n\
         [[routes]]\npath = \"/\"\ncomponent = \"hello\"\nname = \"index\"\n",
        // Any component exporting the handler world can stand in for the test suite's hello,
        // e.g. the benchmark's (fewer imports): FLAGON_BENCH_COMPONENT=path/to/component.wasm
        std::env::var("FLAGON_BENCH_COMPONENT")
            .ok()
            .filter(|path| !path.is_empty())
            .unwrap_or_else(|| flagon_test_artifacts::HELLO.to_string())
    )
}

fn per_request(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let app = Arc::new(rt.block_on(app(&hello_manifest())));

    let component = &app.components()[0];
    let request = Request {
        method: Method::Get,
        path: "/".into(),
        params: vec![],
        query: String::new(),
        headers: vec![("host".into(), "bench".into())],
        body: vec![],
        client: "127.0.0.1:1".into(),
        request_id: "0123456789abcdef".into(),
        route: Some("index".into()),
        form: vec![],
        identity: None,
    };
    let id: Arc<str> = Arc::from("0123456789abcdef");
    c.bench_function("instantiate_and_call_hello", |b| {
        b.to_async(&rt).iter(|| async {
            let (r, _ctx) = component
                .call(app.engine(), &request, component.request_ctx(id.clone()))
                .await;
            black_box(r.is_ok())
        })
    });

    let client = "127.0.0.1:1".parse().unwrap();
    c.bench_function("app_handle_hello_no_socket", |b| {
        b.to_async(&rt).iter(|| async {
            let req = http::Request::get("/")
                .header("host", "bench")
                .body(Full::new(Bytes::new()))
                .unwrap();
            black_box(app.handle(req, client).await.status())
        })
    });
}

fn routing(c: &mut Criterion) {
    let mut text = String::from("[app]\nname = \"r\"\n[components.c]\nsource = \"c.wasm\"\n");
    for p in [
        "/",
        "/about",
        "/users",
        "/users/{id}",
        "/users/{id}/posts",
        "/users/{id}/posts/{post}",
        "/posts",
        "/posts/{id}",
        "/posts/{id}/comments",
        "/static/{*path}",
        "/api/v1/items",
        "/api/v1/items/{id}",
        "/api/v1/orders",
        "/api/v1/orders/{id}",
        "/login",
        "/logout",
        "/search",
        "/tags/{tag}",
        "/feed.xml",
        "/img-{id}.png",
    ] {
        text.push_str(&format!("[[routes]]\npath = \"{p}\"\ncomponent = \"c\"\n"));
    }
    let manifest = Manifest::parse(Path::new("flagon.toml"), &text).unwrap();
    let router = Router::new(&manifest).unwrap();
    let get = http::Method::GET;
    c.bench_function("route_20_routes", |b| {
        b.iter(|| {
            black_box(matches!(
                router.at(&get, black_box("/users/42/posts/7")),
                flagon::http::router::Match::Found { .. }
            ));
            black_box(matches!(
                router.at(&get, black_box("/static/css/site.css")),
                flagon::http::router::Match::Found { .. }
            ));
        })
    });
}

mod page {
    include!("../../bench/page/data.rs");
}

fn templates(c: &mut Criterion) {
    use flagon::web::templates::{RequestGlobals, Templates, UrlMap};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("page.html"), page::TEMPLATE).unwrap();
    let templates = Templates::load(dir.path(), Arc::new(UrlMap::default()), false).unwrap();
    let json = serde_json::to_string(&page::page()).unwrap();
    c.bench_function("template_render_page_host", |b| {
        b.iter(|| {
            black_box(
                templates
                    .render_json("page.html", black_box(&json), RequestGlobals::default())
                    .unwrap()
                    .len(),
            )
        })
    });
    let env = page::environment();
    c.bench_function("template_render_page_native_minijinja", |b| {
        b.iter(|| black_box(page::render(&env).len()))
    });
}

fn session(c: &mut Criterion) {
    use flagon::web::session::{Session, SessionConfig, SessionKeys};
    use std::time::SystemTime;
    let keys = SessionKeys::new(&[7u8; 48], &[vec![9u8; 48]]).unwrap();
    let cfg = SessionConfig::default();
    let mut s = Session::new(&cfg);
    s.set("user", "ada").unwrap();
    s.set("cart", "[1,2,3,4,5,6,7,8,9,10]").unwrap();
    let token = s.csrf_token();
    let set_cookie = s.set_cookie(&keys, &cfg, SystemTime::now()).unwrap();
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let header = format!("theme=dark; {cookie}; other=1");
    c.bench_function("session_load_and_verify_csrf", |b| {
        b.iter(|| {
            let s = Session::load(
                &keys,
                &cfg,
                [black_box(header.as_bytes())],
                SystemTime::now(),
            );
            black_box(s.verify_csrf(&token))
        })
    });
}

/// One SQL call through the SQLite adapter, as a handler's `query` makes it: lease an instance,
/// run the statement in the guest, `reset`, put it back. A one-row `SELECT 1`, and the 20 rows of
/// the benchmark's database page.
fn sql(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flagon.toml");
    std::fs::write(
        &path,
        "[app]\nname = \"bench\"\n[databases.main]\nadapter = \"sqlite\"\n",
    )
    .unwrap();
    let manifest = Manifest::load(&path).unwrap();
    let app = rt
        .block_on(App::load(
            &manifest,
            &LoadOptions {
                cache: CacheDir::Disabled,
                ..Default::default()
            },
        ))
        .unwrap();
    let pool = app.capabilities().sql["main"].clone();
    rt.block_on(async {
        let mut lease = pool.lease().await.unwrap();
        lease
            .execute(
                "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price TEXT NOT NULL, tags TEXT NOT NULL)",
                &[],
            )
            .await
            .unwrap();
        for i in 1..=20 {
            lease
                .execute(
                    "INSERT INTO items VALUES (?1, 'Widget <b>', '3.07', 'new,<script>,sale')",
                    &[flagon::runtime::bindings::flagon::app::sql_types::Value::Integer(i)],
                )
                .await
                .unwrap();
        }
        lease.release().await;
    });
    for (name, statement) in [
        ("sql_select_1", "SELECT 1"),
        (
            "sql_20_rows",
            "SELECT id, name, price, tags FROM items ORDER BY id LIMIT 20",
        ),
    ] {
        c.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let mut lease = pool.lease().await.unwrap();
                let rows = lease.query(statement, &[]).await.unwrap();
                lease.release().await;
                black_box(rows)
            })
        });
    }
    drop(app);
    drop(dir);
}

criterion_group!(benches, per_request, routing, templates, session, sql);
criterion_main!(benches);
