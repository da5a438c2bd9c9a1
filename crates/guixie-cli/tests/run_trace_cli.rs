//! `guixie run --trace=valgrind|gdb` (issue 14): C programs compiled by a guixie build with
//! debugging information run in the sandbox under the tool; the reports, store items, are
//! judged from outside: memcheck's bad read and leak with their source lines and callgrind's
//! instruction count; gdb's signal and backtrace naming the functions; the sandbox's
//! denials holding under each tool, with the unsandboxed run as the positive control.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    work: PathBuf,
    /// A host file outside everything the sandbox shows.
    secret: PathBuf,
    bin: String,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "host only").unwrap();
    let buggy = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/buggy.scm");
    let out = ok_str(
        guixie()
            .arg("--store")
            .arg(&root)
            .args(["build", "-q", buggy]),
    );
    Setup {
        bin: format!("{}/bin", out.trim()),
        _dir: dir,
        root,
        work,
        secret,
    }
}

impl Setup {
    fn guixie(&self) -> Command {
        let mut c = guixie();
        c.arg("--store").arg(&self.root).current_dir(&self.work);
        c
    }

    /// Runs `guixie run --trace=TOOL program args`: (status, stdout, the report's JSON).
    fn traced(&self, tool: &str, program: &str, args: &[&str]) -> (i32, String, serde_json::Value) {
        let (status, stdout, json, _) = self.traced_at(tool, program, args);
        (status, stdout, json)
    }

    /// [`Setup::traced`], with the report's store path.
    fn traced_at(
        &self,
        tool: &str,
        program: &str,
        args: &[&str],
    ) -> (i32, String, serde_json::Value, String) {
        let out = self
            .guixie()
            .arg("run")
            .arg(format!("--trace={tool}"))
            .arg(format!("{}/{program}", self.bin))
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let report = stderr
            .lines()
            .find_map(|l| l.strip_prefix("report: "))
            .unwrap_or_else(|| panic!("no report printed: {stderr}"));
        let json = ok(self.guixie().args(["report", "json", report]));
        // The report is a store item of its own, valid in the store and a GC root.
        let info = ok_str(self.guixie().args(["store", "info", report]));
        assert!(info.contains(report), "{info}");
        let roots = ok_str(self.guixie().args(["store", "roots"]));
        assert!(roots.contains(report), "{roots}");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            serde_json::from_slice(&json).unwrap(),
            report.to_owned(),
        )
    }
}

fn frames(stack: &serde_json::Value) -> Vec<String> {
    stack
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}:{}:{}",
                f["function"].as_str().unwrap_or("?"),
                Path::new(f["file"].as_str().unwrap_or("?"))
                    .file_name()
                    .unwrap()
                    .to_string_lossy(),
                f["line"]
            )
        })
        .collect()
}

#[test]
fn valgrind_reports_the_bad_read_and_the_leak_with_their_lines() {
    let s = setup();
    let (status, stdout, r) = s.traced("valgrind", "leak", &[]);
    assert_eq!(status, 0);
    // The program ran twice (memcheck, then callgrind), its output the user's both times.
    assert_eq!(stdout, "read past the end\nread past the end\n");
    assert_eq!(r["schema"], "guixie.valgrind-report/1");
    assert_eq!(r["exit_code"], 0);
    let errors = r["memcheck"]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{r}");
    assert_eq!(errors[0]["kind"], "InvalidRead");
    assert_eq!(frames(&errors[0]["stack"]), ["main:leak.c:11"]);
    // Where the block read past was allocated: make(), called at line 8.
    let alloc = frames(&errors[0]["aux"][0]["stack"]);
    assert_eq!(alloc[1..], ["make:leak.c:5", "main:leak.c:8"], "{r}");
    let leaks = r["memcheck"]["leaks"].as_array().unwrap();
    assert_eq!(leaks.len(), 1, "{r}");
    assert_eq!(leaks[0]["kind"], "Leak_DefinitelyLost");
    assert_eq!(leaks[0]["leaked_bytes"], 16);
    // callgrind's count is deterministic: the same program gives the same figure again.
    let instructions = r["instructions"].as_u64().unwrap();
    assert!(instructions > 10_000, "{r}");
    let (_, _, again, path) = s.traced_at("valgrind", "leak", &[]);
    assert_eq!(again["instructions"].as_u64(), Some(instructions));
    let shown = ok_str(s.guixie().args(["report", "show", &path]));
    assert!(
        shown.contains("Invalid read of size 4") && shown.contains("make (leak.c:5)"),
        "{shown}"
    );
}

#[test]
fn gdb_gives_the_signal_and_the_backtrace_by_function() {
    let s = setup();
    let (status, stdout, r, crash) = s.traced_at("gdb", "crash", &[]);
    assert_eq!(stdout, "about to crash\n");
    assert_eq!(
        status,
        128 + 11,
        "the program's own status: killed by SIGSEGV"
    );
    assert_eq!(r["schema"], "guixie.gdb-report/1");
    assert_eq!(r["ending"]["signal"]["name"], "SIGSEGV", "{r}");
    let threads = r["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 1, "{r}");
    assert_eq!(
        frames(&threads[0]["frames"]),
        ["deref:crash.c:4", "follow:crash.c:6", "main:crash.c:12"]
    );
    // A program that exits: its code, and no backtrace.
    let (status, _, r, exited) = s.traced_at("gdb", "probe", &[]);
    assert_eq!(status, 0);
    assert_eq!(r["ending"]["exited"]["code"], 0, "{r}");
    assert_eq!(r["threads"], serde_json::json!([]));
    // `report diff`: the crash again does not differ; the exit does, in its ending and
    // backtraces; a report of another kind is refused.
    let (_, _, _, again) = s.traced_at("gdb", "crash", &[]);
    let same = ok_str(s.guixie().args(["report", "diff", &crash, &again]));
    assert_eq!(same.trim(), "the reports do not differ");
    let differ = s
        .guixie()
        .args(["report", "diff", &crash, &exited])
        .output()
        .unwrap();
    assert_eq!(differ.status.code(), Some(1));
    let said = String::from_utf8_lossy(&differ.stdout);
    assert!(
        said.contains("ending:")
            && said.contains("- thread 1: deref (")
            && said.contains("SIGSEGV"),
        "{said}"
    );
    let (_, _, _, memcheck) = s.traced_at("valgrind", "probe", &[]);
    let refused = fails(s.guixie().args(["report", "diff", &crash, &memcheck]));
    // As diff(1): 2 for reports that cannot be compared, not 1 as for a difference.
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("different kinds"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[test]
fn perf_counts_in_software_and_draws_the_flame_graph() {
    let s = setup();
    let (status, stdout, r, report) = s.traced_at("perf", "busy", &[]);
    assert_eq!(status, 0);
    assert_eq!(stdout, "5702887\n5702887\n");
    assert_eq!(r["schema"], "guixie.perf-report/1");
    // The report says whether hardware counters exist, as the host's perf finds them.
    let cycles = Command::new("perf")
        .args(["stat", "-x", ",", "-e", "cycles", "true"])
        .output()
        .unwrap();
    let hardware = !String::from_utf8_lossy(&cycles.stderr).contains("<not");
    assert_eq!(r["pmu"], hardware, "{r}");
    let counter = |event: &str| {
        r["counters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["event"] == event)
            .unwrap_or_else(|| panic!("{event} in {r}"))["value"]
            .as_f64()
            .unwrap()
    };
    assert!(counter("task-clock") > 1.0, "{r}");
    assert!(counter("page-faults") >= 1.0, "{r}");
    assert!(r["samples"].as_u64().unwrap() >= 5, "{r}");
    let svg = r["flamegraph"].as_str().unwrap();
    assert!(svg.ends_with("-flamegraph.svg"));
    // The graph is a store item the report references (so GC keeps it with the report).
    let info = ok_str(s.guixie().args(["store", "info", &report]));
    assert!(info.contains(&format!("reference:  {svg}")), "{info}");
    let drawn = std::fs::read_to_string(s.root.join(svg.trim_start_matches('/'))).unwrap();
    assert!(
        drawn.starts_with("<?xml") && drawn.contains("<svg"),
        "{svg}"
    );
    assert!(
        drawn.contains(">fib ("),
        "the hot function is in the graph: {svg}"
    );
}

#[test]
fn the_sandbox_holds_under_each_tool() {
    let s = setup();
    let secret = s.secret.to_str().unwrap();
    for tool in ["valgrind", "gdb", "perf"] {
        let (status, stdout, _) = s.traced(tool, "probe", &[secret]);
        assert_eq!(status, 0, "{tool}: {stdout}");
        let first = stdout.split("file:").nth(1).map(|r| format!("file:{r}"));
        let first = first.as_deref().unwrap_or(&stdout);
        assert!(
            first.starts_with("file: unreachable\nnetwork: unreachable\n"),
            "{tool}: {stdout}"
        );
        let interfaces: Vec<&str> = first
            .lines()
            .filter(|l| l.starts_with("interface:"))
            .collect();
        assert_eq!(interfaces, ["interface: lo"], "{tool}: {stdout}");
        // Only gdb's runs may ptrace (and gdb already traces the probe).
        if tool != "gdb" {
            assert!(
                first.contains("ptrace: Operation not permitted"),
                "{tool}: {stdout}"
            );
        }
    }
    // A program that swaps the tool's output for a link to a host file gets an error,
    // never the file's contents.
    let out = s
        .guixie()
        .args(["run", "--trace=valgrind"])
        .arg(format!("{}/probe", s.bin))
        .args([secret, "memcheck.xml"])
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("planted memcheck.xml: yes"), "{said}");
    assert!(said.contains("memcheck.xml"), "{said}");
    assert!(!said.contains("host only"), "{said}");
    // Positive controls: the same probe, run outside the sandbox, reads the file and may
    // ptrace; the planted link does point at it.
    let host = ok_str(
        s.guixie()
            .arg("run")
            .arg(format!("{}/probe", s.bin))
            .arg(secret),
    );
    assert!(host.contains("file: readable"), "{host}");
    assert!(host.contains("ptrace: allowed"), "{host}");
}

#[test]
fn a_build_under_perf_is_sampled_in_every_process_and_compared() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let hello = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/hello.scm");
    let store = || {
        let mut c = guixie();
        c.arg("--store").arg(&root).current_dir(dir.path());
        c
    };
    let report = ok_str(store().args(["build", "--trace=perf", hello]));
    let report = report.lines().last().unwrap();
    let r: serde_json::Value =
        serde_json::from_slice(&ok(store().args(["report", "json", report]))).unwrap();
    assert_eq!(r["schema"], "guixie.perf-report/1");
    assert_eq!(r["build"]["outputs_equal"], true, "{r}");
    assert!(r["program"].as_str().unwrap().ends_with("-hello-1.0.drv"));
    let clock = r["counters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["event"] == "task-clock")
        .and_then(|c| c["value"].as_f64())
        .unwrap();
    assert!(clock > 10.0, "{r}");
    // gcc's compiler proper, a grandchild of the builder, is among the samples.
    let svg = r["flamegraph"].as_str().unwrap();
    let drawn = std::fs::read_to_string(root.join(svg.trim_start_matches('/'))).unwrap();
    assert!(drawn.contains("<title>cc1 ("), "{svg}");
}
