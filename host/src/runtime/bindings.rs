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
        // Asking for more than 65536 bytes is a guest bug: it traps rather than returning.
        "flagon:app/random.bytes": trappable,
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

/// The `authenticator` and `middleware` worlds. They import what a handler may (the same host
/// functions, linked once), so only their exports are generated here.
pub mod extension {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "flagon:app/authenticator",
        exports: { default: async },
        with: {
            "flagon:app/types": super::flagon::app::types,
            "flagon:app/log": super::flagon::app::log,
            "flagon:app/config": super::flagon::app::config,
            "flagon:app/crypto": super::flagon::app::crypto,
            "flagon:app/session": super::flagon::app::session,
            "flagon:app/kv": super::flagon::app::kv,
            "flagon:app/outbound-http": super::flagon::app::outbound_http,
            "flagon:app/sql-types": super::flagon::app::sql_types,
            "flagon:app/sql": super::flagon::app::sql,
            "flagon:app/settings": super::flagon::app::settings,
        },
    });

    pub mod middleware {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "flagon:app/middleware",
            exports: { default: async },
            with: {
                "flagon:app/types": super::super::flagon::app::types,
                "flagon:app/log": super::super::flagon::app::log,
                "flagon:app/config": super::super::flagon::app::config,
                "flagon:app/crypto": super::super::flagon::app::crypto,
                "flagon:app/session": super::super::flagon::app::session,
                "flagon:app/kv": super::super::flagon::app::kv,
                "flagon:app/outbound-http": super::super::flagon::app::outbound_http,
                "flagon:app/sql-types": super::super::flagon::app::sql_types,
                "flagon:app/sql": super::super::flagon::app::sql,
                "flagon:app/settings": super::super::flagon::app::settings,
            },
        });
    }
}

pub use self::flagon::app::types::{FormField, Identity, Method, RequestHead, UploadedFile};
