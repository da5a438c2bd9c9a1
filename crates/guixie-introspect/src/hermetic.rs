//! The hermeticity check: every file a build read or executed lies in what it declared (its
//! inputs' closure), in its own build and temporary directories, or among the sandbox's fixed
//! paths. Anything else is a violation: the build depended on something no one declared.

use serde::{Deserialize, Serialize};

use crate::path::is_within;
use crate::strace::StraceReport;

/// The sandbox's own files, which every build sees (the device nodes, the process's own
/// `/proc` entries, the few `/etc` files the sandbox writes). Other host-wide `/proc` files
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
    "/dev/fd",
    "/dev/stdin",
    "/dev/stdout",
    "/dev/stderr",
    "/proc/self",
    "/proc/thread-self",
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
        self.dirs.iter().any(|d| is_within(path, d)) || own_proc_entry(path)
    }
}

/// `/proc/PID/…` is the process's own view of itself (`/proc/self` under another name).
fn own_proc_entry(path: &str) -> bool {
    path.strip_prefix("/proc/")
        .and_then(|r| r.split('/').next())
        .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
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
