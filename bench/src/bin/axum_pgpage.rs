//! Native baseline: axum + tokio-postgres serving the database page, 20 rows read from Postgres
//! on every request over a pool of 4 connections (as Flagon's Postgres adapter keeps 4), each
//! with the query prepared once, rendered with minijinja.
//! Usage: PG_URL='host=127.0.0.1 port=5432 user=.. password=.. dbname=..' axum-pgpage 127.0.0.1:PORT

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::response::Html;
use axum::routing::get;

include!("../../page/data.rs");
include!("../../page/db.rs");

const POOL: usize = 4;

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8084".into());
    let url = std::env::var("PG_URL").expect("PG_URL names the database");
    let mut pool = Vec::new();
    for i in 0..POOL {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        if i == 0 {
            client
                .batch_execute(&format!("DROP TABLE IF EXISTS items; {}", seed_sql()))
                .await
                .expect("seed");
        }
        let statement = client.prepare(DB_QUERY).await.expect("prepare");
        pool.push((client, statement));
    }
    let pool = Arc::new(pool);
    let next = Arc::new(AtomicUsize::new(0));
    let env = Arc::new(environment());
    let app = axum::Router::new().route(
        "/db-page",
        get(move || {
            let (env, pool, next) = (env.clone(), pool.clone(), next.clone());
            async move {
                let (client, statement) = &pool[next.fetch_add(1, Ordering::Relaxed) % POOL];
                let rows: Vec<DbItem> = client
                    .query(statement, &[])
                    .await
                    .expect("query")
                    .iter()
                    .map(|r| DbItem {
                        id: r.get::<_, i32>(0) as u32,
                        name: r.get(1),
                        price: r.get(2),
                        tags: r.get(3),
                    })
                    .collect();
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
