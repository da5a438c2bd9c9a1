//! Outputs a build produced: the private build areas builds run in, and registering what a
//! build left in one (checked against a fixed-output hash, references scanned while hashing).

use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;

use guixie_formats::hash::{HashAlgo, Hasher};
use guixie_formats::nar;
use guixie_formats::refscan::RefScanner;
use guixie_formats::{Hash, StorePath};

use super::add::TEMP_COUNTER;
use super::LocalStore;
use crate::error::{io_err, StoreError};
use crate::safe_fs::remove_tree;
use crate::PathInfo;

impl LocalStore {
    /// A directory for building, on the store's file system (so results can be renamed in).
    pub fn build_area(&self) -> Result<std::path::PathBuf, StoreError> {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = self
            .state
            .join("builds")
            .join(format!("{}-{n}", std::process::id()));
        remove_tree(&dir)?;
        // Private to guixie: no other local user reaches a build's files through it.
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let builds = self.state.join("builds");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&builds)
            .map_err(io_err(&builds))?;
        std::fs::set_permissions(&builds, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err(&builds))?;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(io_err(&dir))?;
        Ok(dir)
    }

    /// Registers `tree` (a build result on the store's file system) as `path`: canonicalises it,
    /// finds its references among `candidates` (itself included), computes its NAR hash and
    /// moves it into place atomically. `expected` (a fixed-output hash) is checked before.
    pub fn register_built(
        &self,
        tree: &Path,
        path: &StorePath,
        candidates: &[StorePath],
        deriver: Option<StorePath>,
        expected: Option<(&Hash, bool)>,
    ) -> Result<PathInfo, StoreError> {
        let _gc = self.gc_lock_shared()?;
        // `finalize` canonicalises; modes and times do not enter the NAR hash computed here.
        if let Some((hash, recursive)) = expected {
            let actual = if recursive {
                nar::hash_path(tree, hash.algo())?.0
            } else {
                let mut h = Hasher::new(hash.algo());
                let mut f = std::fs::File::open(tree).map_err(io_err(tree))?;
                std::io::copy(&mut f, &mut h).map_err(io_err(tree))?;
                h.finish()
            };
            if actual != *hash {
                return Err(StoreError::FixedOutputMismatch {
                    path: self.store_dir.display(path),
                    expected: hash.to_string(),
                    actual: actual.to_string(),
                });
            }
        }
        let mut all: Vec<StorePath> = candidates.to_vec();
        all.push(path.clone());
        let mut counting = guixie_formats::hash::CountingWriter::new(Hasher::new(HashAlgo::Sha256));
        let mut scanner = RefScanner::new(&all);
        {
            let mut tee = Tee(&mut counting, &mut scanner);
            nar::dump_path(tree, &mut tee)?;
        }
        let info = PathInfo {
            path: path.clone(),
            nar_hash: counting.inner.finish(),
            nar_size: counting.count,
            references: scanner.into_found(),
            deriver,
            signatures: Vec::new(),
            registration_time: self.now(),
            ca: None,
        };
        let temp = self.temp_entry()?;
        std::fs::rename(tree, temp.path()).map_err(io_err(temp.path()))?;
        self.finalize(temp, info)
    }
}

/// Writes to two sinks (NAR hashing and reference scanning in one pass).
struct Tee<'a, A, B>(&'a mut A, &'a mut B);

impl<A: std::io::Write, B: std::io::Write> std::io::Write for Tee<'_, A, B> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_all(buf)?;
        self.1.write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
