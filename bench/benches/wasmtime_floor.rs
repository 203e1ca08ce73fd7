//! The floor under Flagon's per-request cost: wasmtime alone, with no Flagon code, creating a
//! store, instantiating the benchmark's hello component, calling it and dropping the store.
//! Same engine settings as `host/src/engine.rs`, a no-op `log`, WASI from `wasmtime-wasi`.
//!
//! Needs the benchmark guests (`flagon-bench` builds them, or
//! `cargo build --release --target wasm32-wasip2` in `bench/guests`), then:
//! `cargo bench -p flagon-bench --bench wasmtime_floor`. Compare with
//! `cargo bench -p flagon --bench per_request` to see what Flagon adds.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "flagon:app/handler",
    exports: { default: async },
    imports: {
        "flagon:app/crypto.hash-password": async,
        "flagon:app/crypto.verify-password": async,
        "flagon:app/kv": async,
        "flagon:app/outbound-http": async,
    },
});

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

impl flagon::app::log::Host for State {
    fn log(&mut self, _level: flagon::app::log::Level, _message: String) {}
}

impl flagon::app::types::Host for State {}

/// The settings `host/src/engine.rs` uses for a pool of 2048 instances and 64 MiB memories.
fn engine() -> Engine {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(2048)
        .total_core_instances(8192)
        .total_memories(4096)
        .total_tables(8192)
        .total_stacks(2048)
        .max_memories_per_component(2)
        .max_memory_size(64 << 20)
        .max_unused_warm_slots(100)
        .linear_memory_keep_resident(2 << 20)
        .table_keep_resident(64 << 10)
        .pagemap_scan(wasmtime::Enabled::Auto);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .max_wasm_stack(512 * 1024)
        .async_stack_size(2 * 1024 * 1024)
        .memory_init_cow(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).expect("engine")
}

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
    let wasm = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("guests/target/wasm32-wasip2/release/bench_hello.wasm");
    if !wasm.exists() {
        eprintln!(
            "{} is missing: run `cargo build --release --target wasm32-wasip2` in bench/guests first",
            wasm.display()
        );
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let engine = engine();
    let component = Component::from_file(&engine, &wasm).expect("compile");
    let mut linker = Linker::<State>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    flagon::app::types::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).unwrap();
    flagon::app::log::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).unwrap();
    let pre = HandlerPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
    let request = Request {
        method: flagon::app::types::Method::Get,
        path: "/".into(),
        params: vec![],
        query: String::new(),
        headers: vec![("host".into(), "bench".into())],
        body: vec![],
        client: "127.0.0.1:1".into(),
        request_id: "0123456789abcdef".into(),
        route: Some("index".into()),
        form: vec![],
    };

    c.bench_function("wasmtime_store_new_drop", |b| {
        b.iter(|| drop(black_box(new_store(&engine))))
    });
    c.bench_function("wasmtime_instantiate_drop", |b| {
        b.to_async(&rt).iter(|| async {
            let mut store = new_store(&engine);
            black_box(pre.instantiate_async(&mut store).await.unwrap());
        })
    });
    c.bench_function("wasmtime_instantiate_call_drop", |b| {
        b.to_async(&rt).iter(|| async {
            let mut store = new_store(&engine);
            let handler = pre.instantiate_async(&mut store).await.unwrap();
            black_box(handler.call_handle(&mut store, &request).await.unwrap())
        })
    });
}

criterion_group!(benches, floor);
criterion_main!(benches);
