//! Links libguile-3.0 (found with pkg-config; Debian: `guile-3.0-dev`) and compiles the shim
//! that turns the header macros into functions against the installed headers.
fn main() {
    let lib = pkg_config::Config::new()
        .atleast_version("3.0")
        .probe("guile-3.0")
        .unwrap_or_else(|e| {
            panic!("libguile-3.0 not found ({e}); install Debian's guile-3.0-dev (scripts/test.sh does)")
        });
    let mut build = cc::Build::new();
    build.file("src/shim.c");
    for dir in &lib.include_paths {
        build.include(dir);
    }
    build.compile("guile_shim");
    println!("cargo:rerun-if-changed=src/shim.c");
}
