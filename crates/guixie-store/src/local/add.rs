//! Adding paths. Every way in (a file system tree, a NAR, a text) goes through the same steps:
//! restore into a temporary entry inside the store directory (same file system, name starting
//! with `.` so it is never a valid store path), canonicalise and fsync, take the path's lock,
//! rename into place, fsync the directory, register in one transaction.

use std::collections::BTreeSet;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use guixie_formats::hash::{HashAlgo, Hasher};
use guixie_formats::nar;
use guixie_formats::refscan::RefScanner;
use guixie_formats::{Hash, StorePath};

use super::locks::FileLock;
use super::texts::TextItem;
use super::LocalStore;
use crate::canonical::{canonicalise, sync_dir};
use crate::error::{io_err, StoreError};
use crate::safe_fs::remove_tree;
use crate::PathInfo;

/// While alive, nobody else builds the path (see [`LocalStore::build_lock`]).
pub struct BuildLock(#[allow(dead_code)] FileLock);

/// While alive, garbage collection waits (see [`LocalStore::gc_guard`]).
pub struct GcGuard(#[allow(dead_code)] FileLock);

/// A NAR restored and checked (hash and size) into a temporary entry of the store, made
/// durable, not yet valid: [`LocalStore::register_staged`] makes it valid once its references
/// are. Garbage collection waits while one is alive; dropped, it is removed.
pub struct StagedImport {
    /// `None`: the path was valid already.
    temp: Option<TempEntry>,
    info: PathInfo,
    _gc: Option<FileLock>,
}

impl StagedImport {
    pub fn info(&self) -> &PathInfo {
        &self.info
    }
}

/// Temporary entries in the store directory start with this; GC removes stale ones.
pub(super) const TEMP_PREFIX: &str = ".tmp-";

pub(super) static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary entry that is removed on drop unless it was moved into place.
pub(super) struct TempEntry(Option<PathBuf>);

impl TempEntry {
    pub(super) fn path(&self) -> &Path {
        self.0.as_deref().expect("temp entry still owned")
    }

    /// Takes the entry over: it is no longer removed on drop.
    pub(super) fn keep(&mut self) -> PathBuf {
        self.0.take().expect("temp entry still owned")
    }
}

impl Drop for TempEntry {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = remove_tree(&p);
        }
    }
}

/// Hashes, counts and optionally reference-scans the NAR stream as it is read.
struct Observed<R> {
    inner: R,
    hasher: Hasher,
    size: u64,
    scanner: Option<RefScanner>,
}

impl<R: Read> Read for Observed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        if let Some(s) = &mut self.scanner {
            s.scan(&buf[..n]);
        }
        Ok(n)
    }
}

impl LocalStore {
    pub(super) fn temp_entry(&self) -> Result<TempEntry, StoreError> {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let p = self
            .real_store
            .join(format!("{TEMP_PREFIX}{}-{n}", std::process::id()));
        // A leftover of a dead process that had our pid; nobody else can own it while we live.
        remove_tree(&p)?;
        Ok(TempEntry(Some(p)))
    }

    pub(super) fn gc_lock_shared(&self) -> Result<FileLock, StoreError> {
        FileLock::shared(&self.state.join("gc.lock"))
    }

    /// Held while building `path`: another process building it waits, then finds it valid.
    /// (A lock file of its own: `finalize` takes the path's registration lock meanwhile.)
    pub fn build_lock(&self, path: &StorePath) -> Result<BuildLock, StoreError> {
        Ok(BuildLock(FileLock::exclusive(
            &self
                .state
                .join("locks")
                .join(format!("{}.build", path.hash_part())),
        )?))
    }

    /// Keeps GC away (from inputs and build areas) while the guard lives; builds hold one.
    pub fn gc_guard(&self) -> Result<GcGuard, StoreError> {
        Ok(GcGuard(self.gc_lock_shared()?))
    }

    pub(super) fn gc_lock_exclusive(&self) -> Result<FileLock, StoreError> {
        FileLock::exclusive(&self.state.join("gc.lock"))
    }

    fn path_lock(&self, path: &StorePath) -> Result<FileLock, StoreError> {
        FileLock::exclusive(
            &self
                .state
                .join("locks")
                .join(format!("{}.lock", path.hash_part())),
        )
    }

    /// Adds the tree at `src` as a NAR-hashed (recursive sha256) source path, as
    /// `nix-store --add` does. With `scan_references`, store paths that are valid here and
    /// whose hashes occur in the contents become references (and part of the path's hash).
    pub fn add_path(
        &self,
        src: &Path,
        name: &str,
        scan_references: bool,
    ) -> Result<PathInfo, StoreError> {
        self.add_path_excluding(src, name, scan_references, nar::Excluded::new())
    }

    /// `add_path`, leaving out the entries in `excluded` (full paths under `src`).
    pub fn add_path_excluding(
        &self,
        src: &Path,
        name: &str,
        scan_references: bool,
        excluded: nar::Excluded,
    ) -> Result<PathInfo, StoreError> {
        guixie_formats::store_path::validate_name(name)?;
        let _gc = self.gc_lock_shared()?;
        let scanner = if scan_references {
            Some(RefScanner::new(&self.valid_paths()?))
        } else {
            None
        };
        let temp = self.temp_entry()?;
        let (reader, mut writer) = io::pipe().map_err(io_err(src))?;
        let src_owned = src.to_owned();
        let dumper = std::thread::spawn(move || {
            let r = nar::dump_path_excluding(&src_owned, &excluded, &mut writer);
            drop(writer);
            r
        });
        let mut observed = Observed {
            inner: reader,
            hasher: Hasher::new(HashAlgo::Sha256),
            size: 0,
            scanner,
        };
        let restored = nar::restore(&mut observed, temp.path());
        // The dumper's error explains a broken pipe better than the restorer's.
        dumper.join().expect("NAR dumper thread panicked")?;
        restored?;
        let nar_hash = observed.hasher.finish();
        let references: BTreeSet<StorePath> =
            observed.scanner.map(|s| s.into_found()).unwrap_or_default();
        let path = self
            .store_dir
            .make_source_path(name, &nar_hash, &references, false)?;
        let info = PathInfo {
            path,
            nar_hash,
            nar_size: observed.size,
            references,
            deriver: None,
            signatures: Vec::new(),
            registration_time: self.now(),
            ca: None,
        };
        self.finalize(temp, info)
    }

    /// Adds a text file (such as a `.drv`) whose path is computed from its contents and references.
    pub fn add_text(
        &self,
        name: &str,
        contents: &[u8],
        references: &BTreeSet<StorePath>,
    ) -> Result<PathInfo, StoreError> {
        let item = TextItem::text(name, contents.to_vec(), references.clone());
        let path = self.add_texts(std::slice::from_ref(&item))?.remove(0);
        Ok(self
            .db()?
            .path_info(&self.store_dir, &path)?
            .expect("just registered"))
    }

    /// Imports a path from a NAR stream, checking it against `info`'s hash and size.
    pub(super) fn import(
        &self,
        info: &PathInfo,
        nar_stream: &mut dyn Read,
    ) -> Result<(), StoreError> {
        if self.is_valid_quick(&info.path)? {
            return Ok(());
        }
        let _gc = self.gc_lock_shared()?;
        let temp = self.temp_entry()?;
        self.restore_checked(info, nar_stream, &temp)?;
        // Registered now, whatever time the sender's info says.
        let info = PathInfo {
            registration_time: self.now(),
            ..info.clone()
        };
        self.finalize(temp, info).map(|_| ())
    }

    /// The first half of an import, for a caller that has the NAR before the path's
    /// references: restores `nar_stream` into a temporary entry, checks it against `info`'s
    /// hash and size, and makes it durable. Slow (it reads and writes the whole NAR), so it
    /// is meant for a thread of its own.
    pub fn stage_import(
        &self,
        info: &PathInfo,
        nar_stream: &mut dyn Read,
    ) -> Result<StagedImport, StoreError> {
        if self.is_valid_quick(&info.path)? {
            return Ok(StagedImport {
                temp: None,
                info: info.clone(),
                _gc: None,
            });
        }
        let gc = self.gc_lock_shared()?;
        let temp = self.temp_entry()?;
        self.restore_checked(info, nar_stream, &temp)?;
        canonicalise(temp.path())?;
        Ok(StagedImport {
            temp: Some(temp),
            info: info.clone(),
            _gc: Some(gc),
        })
    }

    /// The second half: makes a staged path valid, if every reference is.
    pub fn register_staged(&self, staged: StagedImport) -> Result<(), StoreError> {
        let Some(temp) = staged.temp else {
            return Ok(());
        };
        let info = PathInfo {
            registration_time: self.now(),
            ..staged.info
        };
        self.finalize_canonical(temp, info).map(|_| ())
    }

    /// Imports `infos` (references first) as one batch: each NAR is restored and checked into
    /// a temporary entry, one `syncfs` makes them all durable, and they are renamed into place
    /// and registered inside one database transaction (any two importers of a path write the
    /// same tree, which its NAR hash fixes, so no per-path lock is needed).
    pub(super) fn import_batch(
        &self,
        infos: &[PathInfo],
        open: &mut crate::OpenNar<'_>,
    ) -> Result<(), StoreError> {
        let mut todo = Vec::new();
        for info in infos {
            if !self.is_valid_quick(&info.path)? {
                todo.push(info);
            }
        }
        if todo.is_empty() {
            return Ok(());
        }
        let _gc = self.gc_lock_shared()?;
        let now = self.now();
        let mut temps = Vec::with_capacity(todo.len());
        let mut registered = Vec::with_capacity(todo.len());
        for info in todo {
            let temp = self.temp_entry()?;
            self.restore_checked(info, &mut open(info)?, &temp)?;
            crate::canonical::canonicalise_tree(temp.path(), crate::canonical::Durable::Later)?;
            temps.push(temp);
            registered.push(PathInfo {
                registration_time: now,
                ..info.clone()
            });
        }
        crate::local::texts::sync_filesystem(&self.real_store)?;
        let real_store = self.real_store.clone();
        let store_dir = self.store_dir.clone();
        self.db()?.register_batch(
            &store_dir,
            &registered,
            &[],
            |info, idx| {
                let dest = real_store.join(info.path.to_string());
                // Left over from a crash between rename and registration: never valid.
                remove_tree(&dest)?;
                let src = temps[idx].keep();
                std::fs::rename(&src, &dest).map_err(io_err(&dest))
            },
            || sync_dir(&real_store),
        )
    }

    /// Restores `nar_stream` into `temp`, hashed while it streams; refused unless hash and size
    /// are `info`'s. Never reads past the declared size: a stream that does not end stops there,
    /// and what follows on a framed stream is left for its reader. (The caller bounds the
    /// declared size: a narinfo's word is not a quota.)
    fn restore_checked(
        &self,
        info: &PathInfo,
        nar_stream: &mut dyn Read,
        temp: &TempEntry,
    ) -> Result<(), StoreError> {
        let mut observed = Observed {
            inner: nar_stream.take(info.nar_size),
            hasher: Hasher::new(info.nar_hash.algo()),
            size: 0,
            scanner: None,
        };
        if let Err(e) = nar::restore(&mut observed, temp.path()) {
            // An archive cut short by the declared size is a size mismatch.
            return Err(if observed.size == info.nar_size {
                self.nar_mismatch(info, observed.hasher.finish(), observed.size)
            } else {
                e.into()
            });
        }
        let actual = observed.hasher.finish();
        if actual != info.nar_hash || observed.size != info.nar_size {
            return Err(self.nar_mismatch(info, actual, observed.size));
        }
        Ok(())
    }

    fn nar_mismatch(&self, info: &PathInfo, actual: Hash, actual_size: u64) -> StoreError {
        StoreError::HashMismatch {
            path: self.store_dir.display(&info.path),
            expected: info.nar_hash.to_string(),
            actual: actual.to_string(),
            expected_size: info.nar_size,
            actual_size,
        }
    }

    fn is_valid_quick(&self, path: &StorePath) -> Result<bool, StoreError> {
        self.db()?.is_valid(&self.store_dir, path)
    }

    /// Moves a complete temporary tree into place as `info.path` and registers it. If another
    /// process registered the same path meanwhile, its copy wins and ours is discarded.
    pub(super) fn finalize(&self, temp: TempEntry, info: PathInfo) -> Result<PathInfo, StoreError> {
        canonicalise(temp.path())?;
        self.finalize_canonical(temp, info)
    }

    /// [`Self::finalize`] of a tree canonicalised (and made durable) already.
    fn finalize_canonical(
        &self,
        mut temp: TempEntry,
        info: PathInfo,
    ) -> Result<PathInfo, StoreError> {
        let _lock = self.path_lock(&info.path)?;
        if let Some(existing) = self.db()?.path_info(&self.store_dir, &info.path)? {
            return Ok(existing);
        }
        for r in &info.references {
            if *r != info.path && !self.is_valid_quick(r)? {
                return Err(StoreError::MissingReference {
                    path: self.store_dir.display(&info.path),
                    reference: self.store_dir.display(r),
                });
            }
        }
        let dest = self.real_path(&info.path);
        // Left over from a crash between rename and registration: never valid, safe to replace.
        remove_tree(&dest)?;
        let src = temp.keep();
        if let Err(e) = std::fs::rename(&src, &dest) {
            temp.0 = Some(src);
            return Err(io_err(&dest)(e));
        }
        sync_dir(&self.real_store)?;
        self.db()?.register_batch(
            &self.store_dir,
            std::slice::from_ref(&info),
            &[],
            |_, _| Ok(()),
            || Ok(()),
        )?;
        Ok(info)
    }

    /// Reference scanning of an existing tree against `candidates` (used for build outputs).
    pub fn scan_references(
        &self,
        tree: &Path,
        candidates: &[StorePath],
    ) -> Result<BTreeSet<StorePath>, StoreError> {
        let mut scanner = RefScanner::new(candidates);
        nar::dump_path(tree, &mut scanner)?;
        Ok(scanner.into_found())
    }
}
