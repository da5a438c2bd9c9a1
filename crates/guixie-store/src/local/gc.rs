//! Garbage collection: roots are symlinks in `var/guixie/gcroots/` pointing at store paths;
//! everything not in their closure is invalidated, then deleted. Entries in the store
//! directory that are not valid (crash leftovers, stale temporaries) are removed too.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use guixie_formats::StorePath;

use super::LocalStore;
use crate::canonical::sync_dir;
use crate::error::{io_err, StoreError};
use crate::safe_fs::remove_tree;
use crate::PathInfoQuery;

/// Names of indirect roots (links to links outside the store) begin so.
const INDIRECT: &str = "auto-";

#[derive(Debug, Default)]
pub struct GcReport {
    /// Valid paths that were (or, in a dry run, would be) deleted.
    pub deleted: Vec<String>,
    /// Sum of the NAR sizes of `deleted`.
    pub freed_nar_bytes: u64,
    /// Store directory entries that were never valid (crash leftovers, temporaries).
    pub stray: Vec<String>,
}

impl GcReport {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "deleted": self.deleted,
            "freedNarBytes": self.freed_nar_bytes,
            "stray": self.stray,
        })
    }
}

impl LocalStore {
    fn roots_dir(&self) -> PathBuf {
        self.state.join("gcroots")
    }

    /// Registers `path` as a GC root under `name` (replacing a root of that name).
    pub fn add_root(&self, name: &str, path: &StorePath) -> Result<PathBuf, StoreError> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(StoreError::Io {
                path: self.roots_dir().join(name),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "root name must be a plain file name",
                ),
            });
        }
        let link = self.roots_dir().join(name);
        let tmp = self
            .roots_dir()
            .join(format!(".{name}.{}.tmp", std::process::id()));
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(self.store_dir.display(path), &tmp).map_err(io_err(&tmp))?;
        fs::rename(&tmp, &link).map_err(io_err(&link))?;
        Ok(link)
    }

    /// Registers `link`, a symbolic link outside the store (a profile's generation), as an
    /// indirect root: what it points at is kept for as long as it exists.
    pub fn add_indirect_root(&self, link: &std::path::Path) -> Result<PathBuf, StoreError> {
        let abs = std::path::absolute(link).map_err(io_err(link))?;
        let mut h = guixie_formats::hash::Hasher::new(guixie_formats::HashAlgo::Sha256);
        h.update(abs.as_os_str().as_encoded_bytes());
        let name: String = h.finish().to_nix32().chars().take(20).collect();
        let dir = self.roots_dir();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let root = dir.join(format!("{INDIRECT}{name}"));
        let tmp = dir.join(format!(".{INDIRECT}{name}.{}.tmp", std::process::id()));
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&abs, &tmp).map_err(io_err(&tmp))?;
        fs::rename(&tmp, &root).map_err(io_err(&root))?;
        Ok(root)
    }

    /// The store path a root's link names (a logical or a physical path, into the store).
    fn store_path_of(&self, target: &std::path::Path) -> Option<StorePath> {
        let s = target.to_string_lossy();
        if let Ok((p, _)) = self.store_dir.parse_path_with_rest(&s) {
            return Some(p);
        }
        let base = target
            .strip_prefix(&self.real_store)
            .ok()?
            .components()
            .next()?;
        StorePath::from_base_name(&base.as_os_str().to_string_lossy()).ok()
    }

    /// Every root: its name, the link outside the store for an indirect one, and the store
    /// path it keeps (a root into a sub-path keeps the whole path). Indirect roots whose link
    /// is gone are left out.
    pub fn roots_detailed(&self) -> Result<Vec<(String, Option<PathBuf>, StorePath)>, StoreError> {
        let dir = self.roots_dir();
        let mut roots = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(target) = fs::read_link(entry.path()) else {
                continue;
            };
            if let Some(p) = self.store_path_of(&target) {
                roots.push((name, None, p));
            } else if name.starts_with(INDIRECT) {
                if let Some(p) = fs::read_link(&target)
                    .ok()
                    .and_then(|t| self.store_path_of(&t))
                {
                    roots.push((name, Some(target), p));
                }
            }
        }
        roots.sort();
        Ok(roots)
    }

    /// The store paths the roots point at (a root into a sub-path keeps the whole path).
    pub fn roots(&self) -> Result<Vec<(String, StorePath)>, StoreError> {
        Ok(self
            .roots_detailed()?
            .into_iter()
            .map(|(name, _, p)| (name, p))
            .collect())
    }

    /// Indirect roots whose link no longer names a store path.
    fn remove_stale_indirect_roots(&self) -> Result<(), StoreError> {
        let dir = self.roots_dir();
        let live: BTreeSet<String> = self
            .roots_detailed()?
            .into_iter()
            .map(|(n, ..)| n)
            .collect();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(INDIRECT) && !live.contains(&name) {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    /// Deletes everything not reachable from a root (`dry_run`: only reports).
    pub fn gc(&self, dry_run: bool) -> Result<GcReport, StoreError> {
        let _gc = self.gc_lock_exclusive()?;
        if !dry_run {
            self.remove_stale_indirect_roots()?;
        }
        let roots: Vec<StorePath> = self.roots()?.into_iter().map(|(_, p)| p).collect();
        let live = self.closure(&roots)?;
        let mut report = GcReport::default();
        let mut dead = Vec::new();
        for (path, _, size) in self.db()?.all_hashes(&self.store_dir)? {
            if !live.contains(&path) {
                report.deleted.push(self.store_dir.display(&path));
                report.freed_nar_bytes += size;
                dead.push(path);
            }
        }
        let valid: BTreeSet<String> = self.valid_paths()?.iter().map(|p| p.to_string()).collect();
        for entry in fs::read_dir(&self.real_store).map_err(io_err(&self.real_store))? {
            let name = entry
                .map_err(io_err(&self.real_store))?
                .file_name()
                .to_string_lossy()
                .into_owned();
            if !valid.contains(&name) {
                report.stray.push(name);
            }
        }
        report.stray.sort();
        if dry_run {
            return Ok(report);
        }
        // Invalidate first: a crash after this leaves only stray entries, which the next GC removes.
        self.db()?.invalidate(&self.store_dir, &dead)?;
        for p in &dead {
            remove_tree(&self.real_path(p))?;
        }
        for name in &report.stray {
            remove_tree(&self.real_store.join(name))?;
        }
        sync_dir(&self.real_store)?;
        self.remove_unused_locks()?;
        // Build areas of builds that were killed: no build runs while GC holds its lock.
        let builds = self.state.join("builds");
        if let Ok(entries) = fs::read_dir(&builds) {
            for e in entries.flatten() {
                remove_tree(&e.path())?;
            }
        }
        // Session cgroups of builders that were killed (their directories are empty).
        if let Ok(entries) = fs::read_dir("/sys/fs/cgroup/pids/guixie") {
            for e in entries.flatten().filter(|e| e.path().is_dir()) {
                let _ = fs::remove_dir(e.path());
            }
        }
        Ok(report)
    }

    /// Lock files of paths that are not valid; nobody holds them while GC holds its lock.
    fn remove_unused_locks(&self) -> Result<(), StoreError> {
        let dir = self.state.join("locks");
        let valid: BTreeSet<String> = self
            .valid_paths()?
            .iter()
            .map(|p| p.hash_part().to_owned())
            .collect();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let hash = name
                .strip_suffix(".lock")
                .or_else(|| name.strip_suffix(".build"));
            if !hash.is_some_and(|h| valid.contains(h)) {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(())
    }
}
