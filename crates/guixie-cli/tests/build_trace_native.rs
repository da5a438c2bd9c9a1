//! `guixie build --trace=valgrind|gdb` (issue 14): builds from `examples/buggy.scm` whose
//! builder is a shell that runs buggy's C programs. memcheck follows the shell into the
//! program and names the bad read and the leak by line; gdb follows it into the program
//! that crashes, in a build that fails, and names its functions; the sandbox's denials hold
//! under both, judged by the traced run's output against the untraced build's.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

const BUGGY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/buggy.scm");

struct Store {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Store {
    fn new() -> Store {
        let dir = tempfile::tempdir().unwrap();
        Store {
            root: dir.path().join("store"),
            _dir: dir,
        }
    }

    fn guixie(&self) -> Command {
        let mut c = guixie();
        c.arg("--store").arg(&self.root);
        c
    }

    /// `guixie build --trace=TOOL -A ATTR examples/buggy.scm`: its output and the report.
    fn traced(&self, tool: &str, attr: &str) -> (Output, serde_json::Value) {
        let out = self
            .guixie()
            .args(["build", &format!("--trace={tool}"), "-A", attr, BUGGY])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let report = stdout
            .lines()
            .last()
            .unwrap_or_else(|| panic!("no report: {}", String::from_utf8_lossy(&out.stderr)))
            .to_owned();
        let json = ok(self.guixie().args(["report", "json", &report]));
        let roots = ok_str(self.guixie().args(["store", "roots"]));
        assert!(roots.contains(&report), "{roots}");
        (out, serde_json::from_slice(&json).unwrap())
    }

    fn built(&self, attr: &str) -> String {
        let out = ok_str(self.guixie().args(["build", "-q", "-A", attr, BUGGY]));
        let path = out.trim();
        std::fs::read_to_string(self.root.join(path.trim_start_matches('/'))).unwrap()
    }
}

fn frames(stack: &serde_json::Value) -> Vec<String> {
    stack
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let file = f["file"].as_str().unwrap_or("?");
            let file = Path::new(file).file_name().unwrap().to_string_lossy();
            format!(
                "{}:{file}:{}",
                f["function"].as_str().unwrap_or("?"),
                f["line"]
            )
        })
        .collect()
}

#[test]
fn memcheck_follows_the_builder_into_the_program_that_leaks() {
    let s = Store::new();
    let (out, r) = s.traced("valgrind", "leaky-build");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(r["schema"], "guixie.valgrind-report/1");
    assert!(r["program"].as_str().unwrap().ends_with("-leaky-build.drv"));
    assert_eq!(r["build"]["outputs_equal"], true, "{r}");
    let processes = r["processes"].as_array().unwrap();
    // The builder's shell, then the program it started.
    assert_eq!(processes[0]["program"], "/bin/sh", "{r}");
    let leak = processes
        .iter()
        .find(|p| p["program"].as_str().unwrap().ends_with("/bin/leak"))
        .unwrap_or_else(|| panic!("{r}"));
    let memcheck = &leak["memcheck"];
    let read = &memcheck["errors"][0];
    assert_eq!(read["kind"], "InvalidRead", "{r}");
    assert_eq!(frames(&read["stack"])[0], "main:leak.c:11", "{r}");
    let lost = &memcheck["leaks"][0];
    assert_eq!(lost["kind"], "Leak_DefinitelyLost", "{r}");
    assert_eq!(lost["leaked_bytes"], 16);
    assert!(
        frames(&lost["stack"]).contains(&"make:leak.c:5".to_owned()),
        "{r}"
    );
    // The shell itself is clean.
    assert_eq!(processes[0]["memcheck"]["errors"], serde_json::json!([]));
    let shown = ok_str(
        s.guixie()
            .args(["report", "show"])
            .arg(String::from_utf8_lossy(&out.stdout).trim()),
    );
    assert!(shown.contains("Invalid read of size 4"), "{shown}");
    assert!(shown.contains("main (leak.c:11)"), "{shown}");
}

#[test]
fn gdb_follows_a_failing_build_into_the_program_that_crashes() {
    let s = Store::new();
    let (out, r) = s.traced("gdb", "crashing-build");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The build fails, untraced and traced; the report says where.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("exit status 139"), "{stderr}");
    assert_eq!(r["schema"], "guixie.gdb-report/1");
    assert_eq!(r["ending"]["signal"]["name"], "SIGSEGV", "{r}");
    assert!(r["crashed"]["program"]
        .as_str()
        .unwrap()
        .ends_with("/bin/crash"));
    let functions: Vec<&str> = r["threads"][0]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["function"].as_str().unwrap())
        .collect();
    assert_eq!(functions, ["deref", "follow", "main"], "{r}");
    assert_eq!(r["build"]["outputs_equal"], false);
    assert!(r["build"]["error"]
        .as_str()
        .unwrap()
        .contains("exit status 139"));
    // Positive control: a build that ends well ends well under gdb, with equal outputs.
    let (out, r) = s.traced("gdb", "leaky-build");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        r["ending"],
        serde_json::json!({"exited": {"code": 0}}),
        "{r}"
    );
    assert_eq!(r["build"]["outputs_equal"], true, "{r}");
}

#[test]
fn the_sandbox_holds_under_valgrind_and_gdb() {
    let s = Store::new();
    // Positive control: the host file the probe asks for is readable outside.
    let host = std::fs::read_to_string("/var/lib/dpkg/status").unwrap();
    assert!(host.contains("Package: "));
    let untraced = s.built("probing-build");
    assert!(
        untraced.starts_with("file: unreachable\nnetwork: unreachable\ninterface: lo\n"),
        "{untraced}"
    );
    assert!(
        untraced.contains("ptrace: Operation not permitted"),
        "{untraced}"
    );
    // The traced runs saw just what the build saw (gdb already traces the probe: its
    // PTRACE_TRACEME fails as the filter's refusal does).
    for tool in ["valgrind", "gdb"] {
        let (out, r) = s.traced(tool, "probing-build");
        assert!(out.status.success(), "{tool}: {r}");
        assert_eq!(r["build"]["outputs_equal"], true, "{tool}: {r}");
    }
    // A build that swaps memcheck's file for a link to the host file gets an error, never
    // the file's contents.
    let out = s
        .guixie()
        .args(["build", "--trace=valgrind", "-A", "planting-build", BUGGY])
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("memcheck.1.xml"), "{said}");
    assert!(!said.contains("Package: "), "{said}");
}
