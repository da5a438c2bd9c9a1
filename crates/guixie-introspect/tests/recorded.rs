//! The parser on traces strace recorded here (with guixie's own options, `STRACE_ARGS`),
//! of a shell run in a PID namespace of its own, as a build is: the process tree, what it
//! read, wrote and deleted, its failed probes and connects, and the hermeticity verdict.

use guixie_introspect::hermetic::{violations, Allowed};
use guixie_introspect::strace::{parse, Exit, TraceOptions};

const SHELL: &str = include_str!("traces/shell.strace");

// The script: cd work && mkdir out && echo hi > out/a && mv out/a out/b && cat out/b
// > /dev/null && rm out/b && cat /proc/cpuinfo >/dev/null; cat "/no/such \"file\"";
// (ls . > /dev/null); busybox nc 127.0.0.1 9; exit 3

fn report() -> guixie_introspect::StraceReport {
    parse(
        SHELL,
        TraceOptions {
            root_exec: Some("/usr/bin/sh".into()),
            initial_cwd: "/tmp/fx".into(),
        },
    )
}

#[test]
fn the_process_tree_starts_at_the_root_program() {
    let r = report();
    assert_eq!(r.unparsed_lines, 0, "{r:#?}");
    // The launcher (unshare) and the shell's failed PATH search before it are left out.
    let root = r.processes.iter().find(|p| p.parent.is_none()).unwrap();
    assert_eq!(root.argv[0], "sh");
    assert_eq!(root.exit, Some(Exit::Code(3)));
    assert!(r.processes.iter().filter(|p| p.parent.is_none()).count() == 1);
    let programs: Vec<&str> = r.execs.iter().map(|e| e.path.as_str()).collect();
    for p in [
        "/usr/bin/sh",
        "/usr/bin/mkdir",
        "/usr/bin/mv",
        "/usr/bin/cat",
        "/usr/bin/rm",
    ] {
        assert!(programs.contains(&p), "{p} in {programs:?}");
    }
    // Every exec'd child hangs under the shell, by the pids strace saw (not the namespace's).
    for e in &r.execs[1..] {
        let p = r.processes.iter().find(|p| p.pid == e.pid).unwrap();
        assert_eq!(p.parent, Some(root.pid), "{e:?}");
    }
    let cat = r
        .processes
        .iter()
        .find(|p| p.argv.first().map(String::as_str) == Some("cat") && p.argv[1].starts_with("/no"))
        .unwrap();
    assert_eq!(cat.exit, Some(Exit::Code(1)));
    assert!(!r
        .failed_probes
        .keys()
        .any(|p| p.starts_with("/root/.cargo")));
}

#[test]
fn files_resolve_against_the_working_directory() {
    let r = report();
    assert!(r.written.contains("/tmp/fx/work/out"), "{:?}", r.written);
    // out/a was written, renamed to out/b, which was removed: both are left deleted.
    assert!(!r.written.contains("/tmp/fx/work/out/a"));
    assert!(r.deleted.contains("/tmp/fx/work/out/b"), "{:?}", r.deleted);
    assert!(r.deleted.contains("/tmp/fx/work/out/a"));
    assert!(r.read.contains("/tmp/fx/work/out/b"));
    assert!(r.read.contains("/proc/cpuinfo"));
    assert_eq!(
        r.failed_probes.get("/no/such \"file\"").map(String::as_str),
        Some("ENOENT")
    );
    assert_eq!(r.connects.len(), 1);
    assert_eq!(r.connects[0].address, "127.0.0.1:9");
    assert_eq!(r.connects[0].result, "ECONNREFUSED");
}

#[test]
fn reading_the_hosts_cpu_description_is_a_violation_and_the_rest_is_not() {
    let r = report();
    let allowed = Allowed {
        dirs: vec![
            "/usr".into(),
            "/lib".into(),
            "/etc".into(),
            "/tmp/fx".into(),
        ],
    }
    .with_sandbox_fixed();
    let found = violations(&r, &allowed);
    assert_eq!(
        found
            .iter()
            .map(|v| (v.how.as_str(), v.path.as_str()))
            .collect::<Vec<_>>(),
        [("read", "/proc/cpuinfo")]
    );
    // Without /usr declared, the programs run from it are violations too.
    let narrow = Allowed {
        dirs: vec!["/tmp/fx".into()],
    }
    .with_sandbox_fixed();
    assert!(violations(&r, &narrow)
        .iter()
        .any(|v| v.how == "exec" && v.path == "/usr/bin/cat"));
}

#[test]
fn a_trace_cut_anywhere_or_mangled_never_panics() {
    for end in (0..SHELL.len()).step_by(97) {
        if SHELL.is_char_boundary(end) {
            let _ = parse(&SHELL[..end], TraceOptions::default());
        }
    }
    let mangled: String = SHELL
        .chars()
        .map(|c| if c == '"' { '(' } else { c })
        .collect();
    let _ = parse(&mangled, TraceOptions::default());
}

proptest::proptest! {
    #[test]
    fn hostile_lines_never_panic(lines in proptest::collection::vec("[0-9]{1,3} [ -~]{0,80}", 0..40)) {
        let _ = parse(&lines.join("\n"), TraceOptions::default());
    }
}

/// Lines as strace writes them, for what the recorded trace does not show.
fn crafted(lines: &[&str]) -> guixie_introspect::StraceReport {
    parse(
        &lines.join("\n"),
        TraceOptions {
            root_exec: Some("/bin/sh".into()),
            initial_cwd: "/build".into(),
        },
    )
}

const ROOT: &str = r#"100 execve("/bin/sh", ["sh"], 0x7ff /* 3 vars */) = 0"#;

#[test]
fn ways_to_hide_a_read_are_seen_through() {
    let r = crafted(&[
        ROOT,
        // Opened for appending, but readable.
        r#"100 openat(AT_FDCWD, "/proc/meminfo", O_RDONLY|O_APPEND) = 3"#,
        // Through a link the build made.
        r#"100 symlink("/proc/cpuinfo", "/tmp/x") = 0"#,
        r#"100 openat(AT_FDCWD, "/tmp/x", O_RDONLY) = 4"#,
        r#"100 symlink("../proc", "/build/p") = 0"#,
        r#"100 openat(AT_FDCWD, "p/version", O_RDONLY) = 5"#,
        r#"100 link("/proc/loadavg", "/build/h") = -1 EXDEV (Invalid cross-device link)"#,
        // Through the process's view of the root, or its descriptors.
        r#"100 openat(AT_FDCWD, "/proc/self/root/proc/uptime", O_RDONLY) = 6"#,
        r#"100 openat(AT_FDCWD, "/proc/1/cwd/secret", O_RDONLY) = 7"#,
        r#"100 openat(AT_FDCWD, "/proc/self/status", O_RDONLY) = 8"#,
        "100 +++ exited with 0 +++",
    ]);
    assert!(r.complete, "{r:#?}");
    assert!(
        r.read.contains("/proc/cpuinfo") && r.read.contains("/proc/version"),
        "{:?}",
        r.read
    );
    let allowed = Allowed {
        dirs: vec!["/build".into(), "/tmp".into()],
    }
    .with_sandbox_fixed();
    let found: Vec<String> = violations(&r, &allowed)
        .into_iter()
        .map(|v| v.path)
        .collect();
    for p in [
        "/proc/meminfo",
        "/proc/cpuinfo",
        "/proc/version",
        "/proc/self/root/proc/uptime",
        "/proc/1/cwd/secret",
    ] {
        assert!(found.iter().any(|f| f == p), "{p} in {found:?}");
    }
    assert!(!found.iter().any(|f| f == "/proc/self/status"), "{found:?}");
    assert!(
        !found.iter().any(|f| f.contains("loadavg")),
        "a failed link is no link"
    );
}

#[test]
fn an_exec_from_another_thread_finishes_in_the_main_one() {
    let r = crafted(&[
        ROOT,
        r#"100 clone(child_stack=0x7f, flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM) = 101"#,
        r#"101 execve("/usr/bin/go-tool", ["go-tool"], 0x7ff /* 3 vars */ <unfinished ...>"#,
        "100 +++ superseded by execve in pid 101 +++",
        "100 <... execve resumed>) = 0",
        "100 +++ exited with 0 +++",
    ]);
    assert!(r.complete, "{r:#?}");
    assert!(
        r.execs
            .iter()
            .any(|e| e.pid == 100 && e.path == "/usr/bin/go-tool"),
        "{r:#?}"
    );
}

#[test]
fn a_trace_that_misses_its_program_or_a_line_proves_nothing() {
    // The root program never seen.
    let r = crafted(&[r#"100 execve("/bin/other", ["other"], 0x7ff /* 3 vars */) = 0"#]);
    assert!(!r.complete && r.processes.is_empty());
    // A line not understood, or a path relative to an unknown descriptor.
    assert!(!crafted(&[ROOT, "100 garbage"]).complete);
    let r = crafted(&[ROOT, r#"100 openat(7, "x", O_RDONLY) = 3"#]);
    assert!(!r.complete && r.unresolved == 1);
}
