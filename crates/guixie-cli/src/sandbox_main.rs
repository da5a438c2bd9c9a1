//! `guixie-sandbox SPEC`: the sandbox helper as its own small executable (no Guile, no
//! SQLite), so starting one per build costs little. See `guixie_build::sandbox`. With
//! `--view`, it runs a program with the store at its logical directory (`guixie shell`).
fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == "--view") {
        guixie_build::sandbox::view_main(&args[1..]);
    }
    guixie_build::sandbox::helper_main(args.first().map(|a| a.as_os_str()).unwrap_or_default());
}
