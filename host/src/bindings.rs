//! The one place the host generates bindings for `wit/`; everything else imports from here.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "flagon:app/handler",
    exports: { default: async },
});

pub use self::flagon::app::types::Method;
