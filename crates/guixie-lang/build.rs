//! Compiles guixie's own Scheme modules (host side and build side) with `guild compile -O1`
//! at build time, so that their unbound variables, arity mismatches and format errors fail
//! the build instead of surfacing in a user's evaluation or build.
//!
//! Compiling needs `(guixie primitives)` to resolve; its procedures are Rust, defined at run
//! time, so the compiler sees a stub module with the same exports.

use std::path::PathBuf;
use std::process::Command;

const MODULES: &[&str] = &[
    "guixie/derivations",
    "guixie/gexp",
    "guixie/licenses",
    "guixie/packages",
    "guixie/build-systems",
    "guixie/loader",
    "guixie/build/utils",
    "guixie/build/gnu-build-system",
    "guixie/build/origin",
    "guixie/build/copy-build-system",
    "guixie/build/cmake-build-system",
    "guixie/build/perl-build-system",
    "guixie/build/python-build-system",
    "guixie/build/pyproject-build-system",
    "guixie/build/cargo-build-system",
];
include!("src/primitive_names.rs");

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let scheme = manifest.join("scheme");
    let stub_dir = out.join("stub");
    std::fs::create_dir_all(stub_dir.join("guixie")).unwrap();
    let defs: String = PRIMITIVE_NAMES
        .iter()
        .map(|p| format!("(define ({p} . args) (error \"stub\"))\n"))
        .collect();
    std::fs::write(
        stub_dir.join("guixie/primitives.scm"),
        format!(
            "(define-module (guixie primitives) #:export ({}))\n{defs}",
            PRIMITIVE_NAMES.join(" ")
        ),
    )
    .unwrap();
    for m in MODULES {
        let src = scheme.join(format!("{m}.scm"));
        let go = out.join(format!("{}.go", m.replace('/', "-")));
        let output = Command::new("guild")
            .args([
                "compile",
                "-O1",
                "-Wunbound-variable",
                "-Warity-mismatch",
                "-Wformat",
            ])
            .arg("-L")
            .arg(&scheme)
            .arg("-L")
            .arg(&stub_dir)
            .arg("-o")
            .arg(&go)
            .arg(&src)
            .env("GUILE_AUTO_COMPILE", "0")
            .output()
            .unwrap_or_else(|e| panic!("running guild (Debian: guile-3.0-dev): {e}"));
        let messages = String::from_utf8_lossy(&output.stderr);
        // Warnings (unbound variables, arity mismatches) are bugs in our own modules.
        assert!(
            output.status.success() && !messages.contains("warning"),
            "guild compile {} failed:\n{messages}",
            src.display()
        );
        println!("cargo:rerun-if-changed={}", src.display());
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/primitive_names.rs");
}
