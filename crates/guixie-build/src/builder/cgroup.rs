//! The `pids` cgroup that bounds all builds of one `realise` together.

use std::path::{Path, PathBuf};

const PIDS_CGROUP_ROOT: &str = "/sys/fs/cgroup/pids";

/// A `pids` cgroup for one `realise` call, which this process joins so that every build it
/// starts inherits it (moving each build into a cgroup of its own costs milliseconds).
/// `pids.max` bounds all builds of the session together: a fork bomb cannot exhaust the
/// machine, even when guixie runs as root (whom `RLIMIT_NPROC` does not bind).
pub(super) struct SessionCgroup {
    path: PathBuf,
    parent_procs: PathBuf,
}

impl SessionCgroup {
    pub fn join(max: u64) -> Option<Self> {
        let root = Path::new(PIDS_CGROUP_ROOT);
        let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let current = own
            .lines()
            .find_map(|l| l.split_once(":pids:").map(|(_, p)| p.trim().to_owned()))?;
        let parent = root.join(current.trim_start_matches('/'));
        let path = root.join("guixie").join(std::process::id().to_string());
        std::fs::create_dir_all(&path).ok()?;
        std::fs::write(path.join("pids.max"), max.to_string()).ok()?;
        std::fs::write(path.join("cgroup.procs"), std::process::id().to_string()).ok()?;
        Some(SessionCgroup {
            path,
            parent_procs: parent.join("cgroup.procs"),
        })
    }
}

impl Drop for SessionCgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.parent_procs, std::process::id().to_string());
        let _ = std::fs::remove_dir(&self.path);
    }
}
