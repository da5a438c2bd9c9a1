//! Build users for builds run as root. Each build gets a host uid and gid of its own, from a
//! range no account uses, held by a lock for as long as the build runs (as Nix's
//! auto-allocated uids): the builder never is, or maps to, host root, concurrent builds are
//! different users, and `RLIMIT_NPROC` bounds each build even without a `pids` cgroup.

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::path::Path;

/// The first build uid (and gid): above the ranges systemd gives to containers
/// (524288–1879048191) and to dynamic users.
pub const FIRST_BUILD_ID: u32 = 0x7000_0000;
/// How many builds can run as root at once, machine-wide.
pub const BUILD_IDS: u32 = 4096;
/// Where the locks live: one directory for the machine, whatever store a build is for.
pub const LOCK_DIR: &str = "/run/guixie/build-users";

pub struct BuildUser {
    pub uid: u32,
    pub gid: u32,
    _lock: File,
}

/// Ids that accounts or groups of this machine use (they are skipped); read once per process.
fn taken_ids() -> &'static BTreeSet<u32> {
    static TAKEN: std::sync::OnceLock<BTreeSet<u32>> = std::sync::OnceLock::new();
    TAKEN.get_or_init(read_taken_ids)
}

fn read_taken_ids() -> BTreeSet<u32> {
    let mut ids = BTreeSet::new();
    for db in ["/etc/passwd", "/etc/group"] {
        for line in std::fs::read_to_string(db).unwrap_or_default().lines() {
            if let Some(id) = line.split(':').nth(2).and_then(|f| f.parse().ok()) {
                ids.insert(id);
            }
        }
    }
    ids
}

impl BuildUser {
    /// Takes the first free build id.
    pub fn acquire() -> io::Result<BuildUser> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = Path::new(LOCK_DIR);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
        let taken = taken_ids();
        for slot in 0..BUILD_IDS {
            let id = FIRST_BUILD_ID + slot;
            if taken.contains(&id) {
                continue;
            }
            let path = dir.join(slot.to_string());
            let lock = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            match lock.try_lock() {
                Ok(()) => {
                    return Ok(BuildUser {
                        uid: id,
                        gid: id,
                        _lock: lock,
                    })
                }
                Err(std::fs::TryLockError::WouldBlock) => continue,
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("all {BUILD_IDS} build users are busy"),
        ))
    }
}

/// Whether guixie runs as root (and so must build as a build user).
pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}
