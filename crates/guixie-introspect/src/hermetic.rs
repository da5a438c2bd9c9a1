//! The hermeticity check: every file a build read or executed lies in what it declared (its
//! inputs' closure), in its own build and temporary directories, or among the sandbox's fixed
//! paths. Anything else is a violation: the build depended on something no one declared.

use serde::{Deserialize, Serialize};

use crate::path::is_within;
use crate::strace::StraceReport;

/// The sandbox's own files, which every build sees (the device nodes, the few `/etc` files
/// the sandbox writes). A process's own `/proc` entries are allowed too, except those that
/// lead elsewhere: `root/…` is judged as the path it names, `cwd`, `fd/N` and `map_files`
/// are violations (the trace cannot say what they named). Other host-wide `/proc` files
/// (`/proc/cpuinfo`, `/proc/meminfo`, …) are violations: what they say differs by machine.
pub const SANDBOX_FIXED: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/pts",
    "/dev/shm",
    // Descriptors the build opened itself (traced) or was given (the log's pipe).
    "/dev/fd",
    "/dev/stdin",
    "/dev/stdout",
    "/dev/stderr",
    // What glibc and libselinux read on their own in every program (the number of CPUs,
    // malloc's overcommit policy, the filesystems the kernel knows).
    "/proc/stat",
    "/proc/sys/vm/overcommit_memory",
    "/proc/sys/kernel/ngroups_max",
    "/proc/filesystems",
    "/etc/passwd",
    "/etc/group",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/services",
];

/// Where a build may read from.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Allowed {
    /// Directories and files, by absolute path (inputs' store paths, `/build`, `/tmp`, the
    /// toolchain's view).
    pub dirs: Vec<String>,
}

impl Allowed {
    pub fn with_sandbox_fixed(mut self) -> Self {
        self.dirs
            .extend(SANDBOX_FIXED.iter().map(|s| s.to_string()));
        self
    }

    pub fn allows(&self, path: &str) -> bool {
        match proc_view(path) {
            ProcView::Through(rest) => self.allows(&rest),
            ProcView::Opaque => false,
            ProcView::Own => true,
            ProcView::Other => self.dirs.iter().any(|d| is_within(path, d)),
        }
    }
}

/// What a path under a process's `/proc` directory (`self`, `thread-self`, a pid, and their
/// `task/TID`) names.
enum ProcView {
    /// `…/root/REST`: the file `/REST` as that process sees it.
    Through(String),
    /// `…/cwd/…`, `…/fd/N…`, `…/map_files/…`: a file the trace cannot name.
    Opaque,
    /// The process's own state (status, maps, …): the build's own, in its PID namespace.
    Own,
    Other,
}

fn proc_view(path: &str) -> ProcView {
    let Some(rest) = path.strip_prefix("/proc/") else {
        return ProcView::Other;
    };
    let mut parts: Vec<&str> = rest.split('/').collect();
    let is_pid = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    match parts.first() {
        Some(&"self") | Some(&"thread-self") => {}
        Some(p) if is_pid(p) => {}
        _ => return ProcView::Other,
    }
    parts.remove(0);
    if parts.first() == Some(&"task") && parts.get(1).is_some_and(|t| is_pid(t)) {
        parts.drain(..2);
    }
    match parts.first() {
        Some(&"root") => ProcView::Through(format!("/{}", parts[1..].join("/"))),
        Some(&"cwd") | Some(&"map_files") => ProcView::Opaque,
        Some(&"fd") if parts.len() > 1 => ProcView::Opaque,
        _ => ProcView::Own,
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub path: String,
    /// `read` or `exec`.
    pub how: String,
}

/// What the report shows the build read or executed outside what it may.
pub fn violations(report: &StraceReport, allowed: &Allowed) -> Vec<Violation> {
    let mut found: Vec<Violation> = report
        .read
        .iter()
        .filter(|p| !allowed.allows(p))
        .map(|p| Violation {
            path: p.clone(),
            how: "read".into(),
        })
        .collect();
    found.extend(
        report
            .execs
            .iter()
            .filter(|e| !allowed.allows(&e.path))
            .map(|e| Violation {
                path: e.path.clone(),
                how: "exec".into(),
            }),
    );
    found.sort_by(|a, b| (&a.path, &a.how).cmp(&(&b.path, &b.how)));
    found.dedup();
    found
}
