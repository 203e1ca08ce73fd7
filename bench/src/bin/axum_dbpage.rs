//! Native baseline: axum + rusqlite serving the database page, 20 rows read from SQLite on every
//! request over one pooled connection (as Flagon's SQLite adapter has one), rendered with
//! minijinja. Usage: axum-dbpage 127.0.0.1:PORT

use std::sync::{Arc, Mutex};

use axum::response::Html;
use axum::routing::get;

include!("../../page/data.rs");
include!("../../page/db.rs");

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8083".into());
    let dir = std::env::temp_dir().join(format!("axum-dbpage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let conn = rusqlite::Connection::open(dir.join("bench.db")).expect("open");
    conn.execute_batch(
        "PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
    )
    .expect("pragmas");
    conn.execute_batch(&seed_sql()).expect("seed");
    let conn = Arc::new(Mutex::new(conn));
    let env = Arc::new(environment());
    let app = axum::Router::new().route(
        "/db-page",
        get(move || {
            let (env, conn) = (env.clone(), conn.clone());
            async move {
                let rows: Vec<DbItem> = {
                    let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
                    let mut stmt = conn.prepare_cached(DB_QUERY).expect("prepare");
                    stmt.query_map([], |r| {
                        Ok(DbItem {
                            id: r.get(0)?,
                            name: r.get(1)?,
                            price: r.get(2)?,
                            tags: r.get(3)?,
                        })
                    })
                    .expect("query")
                    .collect::<Result<_, _>>()
                    .expect("rows")
                };
                let html = env
                    .get_template("page.html")
                    .and_then(|t| t.render(minijinja::value::Serde(db_page(&rows))))
                    .unwrap_or_else(|e| format!("render error: {e}"));
                Html(html)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    eprintln!("listening on http://{}", listener.local_addr().unwrap());
    axum::serve(listener, app).await.expect("serve");
}
