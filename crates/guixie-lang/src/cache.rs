//! The evaluation cache. Evaluation is pure: a file's derivations depend only on its text,
//! the package modules it loads, the local files it adds, the bootstrap toolchain (the
//! host's packages) and guixie's own modules. When none of those changed and every `.drv`
//! it gave is still valid, the previous result is the result, as with Nix's evaluation
//! cache. Entries live in `var/guixie/eval-cache/`, one JSON file per key.
//!
//! Files are compared by content hash; local trees, which may be large, by a fingerprint of
//! every entry's metadata (type, mode, size, mtime, ctime, inode), as Git's index does: a
//! change to a file's contents changes its ctime.

use std::path::{Path, PathBuf};

use guixie_formats::{Hash, HashAlgo};
use serde::{Deserialize, Serialize};

use crate::Evaluated;

#[derive(Serialize, Deserialize)]
pub struct Entry {
    /// (file, sha256 of its contents): the evaluated file and every package module loaded.
    pub files: Vec<(PathBuf, String)>,
    /// (directory or file, metadata fingerprint, what `select?` left out of it): sources
    /// added with `local-file`.
    pub trees: Vec<(PathBuf, String, guixie_formats::nar::Excluded)>,
    /// The dpkg database's fingerprint, when the toolchain was used.
    pub dpkg: Option<String>,
    pub results: Vec<Evaluated>,
}

pub struct EvalCache {
    dir: PathBuf,
}

impl EvalCache {
    pub fn new(state_dir: &Path) -> Self {
        EvalCache {
            dir: state_dir.join("eval-cache"),
        }
    }

    /// The cached results for `key`, if every recorded input is unchanged.
    pub fn lookup(&self, key: &str) -> Option<Vec<Evaluated>> {
        let bytes = std::fs::read(self.dir.join(format!("{key}.json"))).ok()?;
        let entry: Entry = serde_json::from_slice(&bytes).ok()?;
        for (file, hash) in &entry.files {
            if content_hash(file)? != *hash {
                return None;
            }
        }
        for (tree, fingerprint, excluded) in &entry.trees {
            if tree_fingerprint(tree, excluded)? != *fingerprint {
                return None;
            }
        }
        if let Some(dpkg) = &entry.dpkg {
            if guixie_trust_root::host_packages_fingerprint()? != *dpkg {
                return None;
            }
        }
        Some(entry.results)
    }

    /// Records an evaluation's inputs and results; a cache that cannot be written is only a
    /// cache that misses next time.
    pub fn store(&self, key: &str, entry: &Entry) {
        let _ = std::fs::create_dir_all(&self.dir);
        let target = self.dir.join(format!("{key}.json"));
        let temp = self.dir.join(format!(".{key}.{}.tmp", std::process::id()));
        let Ok(bytes) = serde_json::to_vec(entry) else {
            return;
        };
        if std::fs::write(&temp, bytes).is_ok() {
            let _ = std::fs::rename(&temp, &target);
        }
    }
}

pub fn content_hash(file: &Path) -> Option<String> {
    let bytes = std::fs::read(file).ok()?;
    Some(Hash::digest_of(HashAlgo::Sha256, &bytes).to_hex())
}

/// A hash of the metadata of `path` and, for a directory, of everything under it (sorted).
pub fn tree_fingerprint(path: &Path, excluded: &guixie_formats::nar::Excluded) -> Option<String> {
    let mut h = guixie_formats::hash::Hasher::new(HashAlgo::Sha256);
    fingerprint_into(path, Path::new(""), excluded, &mut h).ok()?;
    Some(h.finish().to_hex())
}

fn fingerprint_into(
    path: &Path,
    relative: &Path,
    excluded: &guixie_formats::nar::Excluded,
    h: &mut guixie_formats::hash::Hasher,
) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path)?;
    h.write_all(relative.as_os_str().as_bytes())?;
    h.write_all(
        format!(
            "\0{}:{}:{}:{}.{}:{}.{}:{}\n",
            m.mode(),
            m.size(),
            m.ino(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
            m.dev()
        )
        .as_bytes(),
    )?;
    if m.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        for n in names {
            let entry = path.join(&n);
            if !excluded.contains(&entry) {
                fingerprint_into(&entry, &relative.join(&n), excluded, h)?;
            }
        }
    }
    Ok(())
}
