//! Paths of the guest test programs built by `build.rs` from `tests/programs`.

include!(concat!(env!("OUT_DIR"), "/programs.rs"));
