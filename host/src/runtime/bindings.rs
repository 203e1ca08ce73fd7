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
        "flagon:app/sql": async,
    },
});

/// The `sql-adapter` world a DB adapter component exports. Its types are the handler world's
/// (`flagon:app/sql-types`, `flagon:app/log`), so values pass between the two without
/// conversion.
pub mod adapter {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "flagon:app/sql-adapter",
        exports: { default: async },
        with: {
            "flagon:app/sql-types": super::flagon::app::sql_types,
            "flagon:app/log": super::flagon::app::log,
        },
    });
}

pub use self::flagon::app::types::{FormField, Method, UploadedFile};
