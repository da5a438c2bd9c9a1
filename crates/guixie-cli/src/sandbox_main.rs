//! `guixie-sandbox SPEC`: the sandbox helper as its own small executable (no Guile, no
//! SQLite), so starting one per build costs little. See `guixie_build::sandbox`.
fn main() {
    let spec = std::env::args_os().nth(1).unwrap_or_default();
    guixie_build::sandbox::helper_main(&spec);
}
