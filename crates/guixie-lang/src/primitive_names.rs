// The procedures `(guixie primitives)` exports. Included by `build.rs` (which compiles the
// Scheme modules against a stub with these names) and by `primitives.rs`.
pub const PRIMITIVE_NAMES: &[&str] = &[
    "%add-to-store",
    "%bootstrap-toolchain",
    "%build-side-module-source",
    "%derivation",
    "%guixie-config",
    "%query-path-info",
    "%rust-toolchain",
    "%store-dir",
    "%text-file",
];
