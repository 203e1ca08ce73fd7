//! Native baseline: axum + minijinja rendering the benchmark page (environment built once, as a
//! native app would). Usage: axum-page 127.0.0.1:PORT

use std::sync::Arc;

use axum::response::Html;
use axum::routing::get;

include!("../../page/data.rs");

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8082".into());
    let env = Arc::new(environment());
    let app = axum::Router::new().route(
        "/page",
        get(move || {
            let env = env.clone();
            async move { Html(render(&env)) }
        }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    eprintln!("listening on http://{}", listener.local_addr().unwrap());
    axum::serve(listener, app).await.expect("serve");
}
