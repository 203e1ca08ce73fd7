//! The floor under Flagon's per-request cost: wasmtime alone, without the host's request path,
//! creating a store, instantiating the benchmark's hello component, calling it and dropping the
//! store; for both builds of hello (`wasip2`, and `lean`: the `wasm32-unknown-unknown` core
//! module made a component as the host does at load). The engine comes from `flagon::runtime::engine` and the bindings from `flagon::runtime::bindings`, so
//! the settings and types are the host's own; the store holds only WASI and a no-op `log`.
//!
//! Needs the benchmark guests (`flagon-bench` builds them, or
//! `cargo build --release --target wasm32-wasip2` and `--target wasm32-unknown-unknown -p
//! bench-hello` in `bench/guests`), then:
//! `cargo bench -p flagon-bench --bench wasmtime_floor`. Compare with
//! `cargo bench -p flagon --bench per_request` to see what Flagon adds.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use flagon::runtime::bindings::flagon::app::{log, types};
use flagon::runtime::bindings::{HandlerPre, Method, Request};
use flagon::runtime::engine::{EngineSettings, FlagonEngine};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

struct State {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl log::Host for State {
    fn log(&mut self, _level: log::Level, _message: String) {}
}

impl types::Host for State {}

fn new_store(engine: &Engine) -> Store<State> {
    let mut store = Store::new(
        engine,
        State {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        },
    );
    store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Continue(1)));
    store.set_epoch_deadline(1);
    store
}

fn floor(c: &mut Criterion) {
    let guests = Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/target");
    let builds = [
        (
            "wasip2",
            guests.join("wasm32-wasip2/release/bench_hello.wasm"),
        ),
        (
            "lean",
            guests.join("wasm32-unknown-unknown/release/bench_hello.wasm"),
        ),
    ];
    if let Some((_, missing)) = builds.iter().find(|(_, w)| !w.exists()) {
        eprintln!(
            "{} is missing: build bench/guests for wasm32-wasip2 and wasm32-unknown-unknown first",
            missing.display()
        );
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The pool the benchmark app uses (`max_instances = 2048`, 64 MiB memories).
    let flagon_engine = FlagonEngine::new(&EngineSettings {
        max_instances: 2048,
        max_memory: 64 << 20,
    })
    .expect("engine");
    let engine = &flagon_engine.engine;
    let mut linker = Linker::<State>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    types::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).unwrap();
    log::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).unwrap();
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

    c.bench_function("wasmtime_store_new_drop", |b| {
        b.iter(|| drop(black_box(new_store(engine))))
    });
    for (build, wasm) in &builds {
        let bytes = std::fs::read(wasm).unwrap();
        let bytes = flagon::runtime::componentize::to_component(&bytes).expect("componentize");
        let component = Component::new(engine, &bytes).expect("compile");
        let pre = HandlerPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
        c.bench_function(&format!("wasmtime_instantiate_drop/{build}"), |b| {
            b.to_async(&rt).iter(|| async {
                let mut store = new_store(engine);
                black_box(pre.instantiate_async(&mut store).await.unwrap());
            })
        });
        c.bench_function(&format!("wasmtime_instantiate_call_drop/{build}"), |b| {
            b.to_async(&rt).iter(|| async {
                let mut store = new_store(engine);
                let handler = pre.instantiate_async(&mut store).await.unwrap();
                black_box(handler.call_handle(&mut store, &request).await.unwrap())
            })
        });
    }
}

criterion_group!(benches, floor);
criterion_main!(benches);
