//! Compiles guixie's own Scheme modules to Guile bytecode at build time (`guild compile -O1`),
//! so they run compiled instead of interpreted and cost nothing to expand at start-up. The
//! `.go` objects are embedded in the binary and loaded from memory.
//!
//! Compiling needs `(guixie primitives)` to resolve; its procedures are Rust, defined at run
//! time, so the compiler sees a stub module with the same exports.

use std::path::PathBuf;
use std::process::Command;

const MODULES: &[&str] = &["guixie/derivations", "guixie/loader"];
const PRIMITIVES: &[&str] = &["%derivation", "%store-dir", "%text-file"];

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let scheme = manifest.join("scheme");
    let stub_dir = out.join("stub");
    std::fs::create_dir_all(stub_dir.join("guixie")).unwrap();
    let defs: String = PRIMITIVES
        .iter()
        .map(|p| format!("(define ({p} . args) (error \"stub\"))\n"))
        .collect();
    std::fs::write(
        stub_dir.join("guixie/primitives.scm"),
        format!(
            "(define-module (guixie primitives) #:export ({}))\n{defs}",
            PRIMITIVES.join(" ")
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
}
