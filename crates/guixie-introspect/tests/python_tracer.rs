//! The Python tracer as it is shipped ([`guixie_introspect::python::TRACER`]), loaded by
//! Debian's python3 the way `guixie run --trace=python` loads it (a `.pth` file of the user
//! site), on a script with a thread, a fork and an exception; its files checked by
//! [`parse_trace`].

use std::process::Command;

use guixie_introspect::python::{depths, parse_trace, Process, TRACER, TRACER_MODULE};

const SCRIPT: &str = r#"
import os, threading

def parse(word):
    if not word.isalpha():
        raise ValueError(word)
    return word

def plan(words):
    out = []
    for w in words.split():
        try:
            out.append(parse(w))
        except ValueError:
            out.append("?")
    return out

t = threading.Thread(target=plan, args=("in a thread",))
t.start(); t.join()
pid = os.fork()
if pid == 0:
    plan("child 1")
else:
    os.waitpid(pid, 0)
    print(plan("main 42 words"))
"#;

fn traced() -> Vec<Process> {
    let dir = tempfile::tempdir().unwrap();
    let minor = Command::new("/usr/bin/python3")
        .args(["-c", "import sys; print(sys.version_info[1])"])
        .output()
        .expect("python3 (Debian's package python3)");
    let minor = String::from_utf8(minor.stdout).unwrap();
    let site = dir
        .path()
        .join(format!("user/lib/python3.{}/site-packages", minor.trim()));
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join(format!("{TRACER_MODULE}.py")), TRACER).unwrap();
    std::fs::write(site.join("t.pth"), format!("import {TRACER_MODULE}\n")).unwrap();
    let script = dir.path().join("plan.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let out = Command::new("/usr/bin/python3")
        .arg(&script)
        .env("PYTHONUSERBASE", dir.path().join("user"))
        .env("GUIXIE_PYTRACE_DIR", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "['main', '?', 'words']\n"
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut processes: Vec<Process> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            name.starts_with("pytrace-")
                .then(|| parse_trace(&std::fs::read(e.path()).unwrap()).unwrap())
        })
        .collect();
    processes.sort_by_key(|p| p.pid);
    processes
}

#[test]
fn the_shipped_tracer_follows_threads_forks_and_exceptions() {
    let processes = traced();
    assert_eq!(processes.len(), 2, "{processes:?}");
    let (parent, child) = (&processes[0], &processes[1]);
    assert_eq!(child.ppid, parent.pid);
    let count = |p: &Process, name: &str| {
        p.functions
            .iter()
            .find(|f| f.name == name)
            .map(|f| (f.calls, f.exceptions))
    };
    // Three words in the thread, three in the main thread: one of them raises.
    assert_eq!(count(parent, "parse").map(|c| c.0), Some(6));
    assert_eq!(parent.threads, 2);
    // The child's record starts at the fork: only its own plan's two words.
    assert_eq!(count(child, "parse").map(|c| c.0), Some(2));
    let depth = depths(&parent.calls);
    let raised: Vec<(usize, String)> = parent
        .calls
        .iter()
        .zip(depth)
        .filter(|(c, _)| c.exception.is_some())
        .map(|(c, d)| (d, parent.functions[c.function as usize].name.clone()))
        .collect();
    assert_eq!(raised, [(1, "plan".to_owned()), (2, "parse".to_owned())]);
    // Nothing of the standard library (threading, os) is among the calls.
    assert!(parent.functions.iter().all(|f| f.file.ends_with("plan.py")));
}
