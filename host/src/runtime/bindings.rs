//! The one place the host generates bindings for `wit/`; everything else imports from here.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "flagon:app/handler",
    exports: { default: async },
    // Password hashing is deliberately slow; it runs on the blocking pool, not a worker.
    imports: {
        "flagon:app/crypto.hash-password": async,
        "flagon:app/crypto.verify-password": async,
        "flagon:app/kv": async,
        "flagon:app/outbound-http": async,
    },
});

pub use self::flagon::app::types::{FormField, Method, UploadedFile};
