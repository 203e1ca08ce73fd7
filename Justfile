# Developer shortcuts. Every recipe is a plain command that also works without `just`.

# Run the example app, examples/todo (builds its component first).
todo:
    cargo run -- serve examples/todo --build --dev

# Run the smallest app, examples/hello.
hello:
    cargo run -- serve examples/hello --build --dev

# The full test suite: installs what the tests need if missing, builds the guest test programs,
# then runs `cargo test --locked`.
test:
    bash tests/run

# The side-by-side benchmark suite (needs wrk; see docs/performance.md).
bench:
    cargo run --release -p flagon-bench -- --scaling

# Everything CI runs: fmt, tests, clippy, cargo-deny.
ci:
    bash .ci/run

# Format the host and every guest workspace.
fmt:
    cargo fmt --all
    cd sdk/rust && cargo fmt
    cd tests/programs && cargo fmt
    cd examples/hello && cargo fmt
    cd examples/todo && cargo fmt
    cd bench/guests && cargo fmt

# Lint the host and every guest workspace.
clippy:
    cargo clippy --all-targets -- -D warnings
    cd sdk/rust && cargo clippy --target wasm32-wasip2 -- -D warnings
    cd tests/programs && cargo clippy --target wasm32-wasip2 -- -D warnings
    cd examples/hello && cargo clippy --target wasm32-wasip2 -- -D warnings
    cd examples/todo && cargo clippy --target wasm32-wasip2 -- -D warnings
    cd bench/guests && cargo clippy --target wasm32-wasip2 -- -D warnings
