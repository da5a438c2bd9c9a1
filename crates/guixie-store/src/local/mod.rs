//! The embedded local store. Layout under its root directory, like Nix's `--store /root`:
//! `<root><store dir>/` holds the paths (so `/nix/store` and `/gnu/store` can live anywhere),
//! `<root>/var/guixie/` holds `db.sqlite`, `gcroots/`, `locks/` and `gc.lock`.

mod add;
mod built;
mod db;
mod gc;
mod locks;
mod texts;
mod verify;

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use guixie_env::Clock;
use guixie_formats::{StoreDir, StorePath};

pub use add::{BuildLock, GcGuard, StagedImport};
pub use gc::GcReport;
pub use texts::TextItem;
pub use verify::VerifyProblem;

use crate::error::{io_err, StoreError};
use crate::{NarSink, NarSource, PathInfo, PathInfoQuery};

/// Where a local store lives and what it calls itself.
#[derive(Clone)]
pub struct StoreConfig {
    /// Physical root; the store directory lives at `root` + `store_dir`.
    pub root: PathBuf,
    /// Logical store directory, part of every path's hash.
    pub store_dir: StoreDir,
    /// Registration timestamps come from here.
    pub clock: Arc<dyn Clock>,
}

impl StoreConfig {
    pub fn new(root: impl Into<PathBuf>, store_dir: StoreDir, clock: Arc<dyn Clock>) -> Self {
        StoreConfig {
            root: root.into(),
            store_dir,
            clock,
        }
    }
}

/// Most connections open at once; more callers wait for one to come back.
const MAX_CONNECTIONS: usize = 16;

/// The connections not in use, and how many are open in all.
struct Pool {
    idle: Vec<db::Db>,
    open: usize,
}

pub struct LocalStore {
    store_dir: StoreDir,
    real_store: PathBuf,
    state: PathBuf,
    db_path: PathBuf,
    /// Each operation takes its own connection, so concurrent readers (a cache server's
    /// requests) do not wait for each other; SQLite's WAL lets them read while one writes.
    pool: Mutex<Pool>,
    returned: Condvar,
    clock: Arc<dyn Clock>,
}

/// A connection taken from the pool, returned to it when dropped.
struct PooledDb<'s> {
    db: Option<db::Db>,
    store: &'s LocalStore,
}

impl std::ops::Deref for PooledDb<'_> {
    type Target = db::Db;
    fn deref(&self) -> &db::Db {
        self.db.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for PooledDb<'_> {
    fn deref_mut(&mut self) -> &mut db::Db {
        self.db.as_mut().expect("held until dropped")
    }
}

impl Drop for PooledDb<'_> {
    fn drop(&mut self) {
        let mut pool = self.store.pool.lock().unwrap_or_else(|p| p.into_inner());
        pool.idle.extend(self.db.take());
        self.store.returned.notify_one();
    }
}

impl LocalStore {
    /// Opens the store at `config.root`, creating it if needed.
    pub fn open(config: StoreConfig) -> Result<Self, StoreError> {
        let real_store = config
            .root
            .join(config.store_dir.as_str().trim_start_matches('/'));
        let state = config.root.join("var/guixie");
        for dir in [&real_store, &state.join("gcroots"), &state.join("locks")] {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let db_path = state.join("db.sqlite");
        // Processes opening a new store at once would race to set WAL mode and create the
        // schema (SQLite answers "database is locked" to some of them without waiting).
        let db = {
            let _schema = locks::FileLock::exclusive(&state.join("db.lock"))?;
            db::Db::open(&db_path, &config.store_dir, &config.root)?
        };
        Ok(LocalStore {
            store_dir: config.store_dir,
            real_store,
            state,
            db_path,
            pool: Mutex::new(Pool {
                idle: vec![db],
                open: 1,
            }),
            returned: Condvar::new(),
            clock: config.clock,
        })
    }
    /// Where the store directory physically is.
    pub fn real_store_dir(&self) -> &Path {
        &self.real_store
    }

    /// `<root>/var/guixie`: the database, GC roots, locks, build logs.
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// Physical location of a store path's contents.
    pub fn real_path(&self, path: &StorePath) -> PathBuf {
        self.real_store.join(path.to_string())
    }

    /// Parses a path given on a command line: a logical store path, a physical one inside
    /// this store, or a bare `<hash>-<name>`.
    pub fn parse_user_path(&self, s: &str) -> Result<StorePath, StoreError> {
        let real_prefix = self.real_store.to_string_lossy();
        if let Some(rest) = s
            .strip_prefix(real_prefix.as_ref())
            .and_then(|r| r.strip_prefix('/'))
        {
            let base = rest.split('/').next().unwrap_or_default();
            return Ok(StorePath::from_base_name(base)?);
        }
        if s.starts_with('/') {
            return Ok(self.store_dir.parse_path_with_rest(s)?.0);
        }
        Ok(StorePath::from_base_name(s)?)
    }

    /// The outputs each valid `.drv` declares, as recorded when it was added (`None` where
    /// nothing is recorded); one query, no file read.
    pub fn derivation_outputs(
        &self,
        drvs: &[StorePath],
    ) -> Result<Vec<Option<std::collections::BTreeMap<String, StorePath>>>, StoreError> {
        self.db()?.derivation_outputs(&self.store_dir, drvs)
    }

    pub fn valid_paths(&self) -> Result<Vec<StorePath>, StoreError> {
        self.db()?.valid_paths(&self.store_dir)
    }

    fn db(&self) -> Result<PooledDb<'_>, StoreError> {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(db) = pool.idle.pop() {
                return Ok(PooledDb {
                    db: Some(db),
                    store: self,
                });
            }
            if pool.open < MAX_CONNECTIONS {
                pool.open += 1;
                break;
            }
            pool = self.returned.wait(pool).unwrap_or_else(|p| p.into_inner());
        }
        drop(pool);
        // The schema was made in `open`.
        match db::Db::connect(&self.db_path) {
            Ok(db) => Ok(PooledDb {
                db: Some(db),
                store: self,
            }),
            Err(e) => {
                self.pool.lock().unwrap_or_else(|p| p.into_inner()).open -= 1;
                self.returned.notify_one();
                Err(e)
            }
        }
    }

    fn now(&self) -> i64 {
        self.clock.unix_seconds()
    }
}

impl PathInfoQuery for LocalStore {
    fn store_dir(&self) -> &StoreDir {
        &self.store_dir
    }

    fn path_info(&self, path: &StorePath) -> Result<Option<PathInfo>, StoreError> {
        self.db()?.path_info(&self.store_dir, path)
    }

    fn is_valid(&self, path: &StorePath) -> Result<bool, StoreError> {
        self.db()?.is_valid(&self.store_dir, path)
    }

    fn are_valid(&self, paths: &[StorePath]) -> Result<Vec<bool>, StoreError> {
        self.db()?.are_valid(&self.store_dir, paths)
    }

    fn path_by_hash_part(&self, hash_part: &str) -> Result<Option<StorePath>, StoreError> {
        if hash_part.len() != guixie_formats::store_path::HASH_PART_LEN
            || guixie_formats::nixbase32::decode_exact(hash_part.as_bytes(), 20).is_err()
        {
            return Ok(None);
        }
        self.db()?.path_by_hash_part(&self.store_dir, hash_part)
    }

    fn path_by_nar_hash(
        &self,
        nar_hash: &guixie_formats::Hash,
    ) -> Result<Option<StorePath>, StoreError> {
        self.db()?.path_by_nar_hash(&self.store_dir, nar_hash)
    }

    fn closure(
        &self,
        paths: &[StorePath],
    ) -> Result<std::collections::BTreeSet<StorePath>, StoreError> {
        self.db()?.closure(&self.store_dir, paths)
    }
}

impl NarSource for LocalStore {
    fn write_nar(&self, path: &StorePath, out: &mut dyn std::io::Write) -> Result<(), StoreError> {
        if !self.is_valid(path)? {
            return Err(StoreError::NotValid {
                path: self.store_dir.display(path),
            });
        }
        guixie_formats::nar::dump_path(&self.real_path(path), out)?;
        Ok(())
    }

    fn nar_size(&self, path: &StorePath) -> Result<u64, StoreError> {
        if !self.is_valid(path)? {
            return Err(StoreError::NotValid {
                path: self.store_dir.display(path),
            });
        }
        // From the tree's metadata: every file is opened, none is read.
        Ok(guixie_formats::nar::nar_size_of_path(
            &self.real_path(path),
        )?)
    }

    fn read_file(&self, path: &StorePath, limit: u64) -> Result<Vec<u8>, StoreError> {
        use std::io::Read;
        if !self.is_valid(path)? {
            return Err(StoreError::NotValid {
                path: self.store_dir.display(path),
            });
        }
        let real = self.real_path(path);
        let not_a_file = |message: String| StoreError::NotAFile {
            path: self.store_dir.display(path),
            message,
        };
        // Not following links: a valid path that is a symlink is not a file.
        let f = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&real)
            .map_err(|e| not_a_file(e.to_string()))?;
        let meta = f.metadata().map_err(io_err(&real))?;
        if !meta.is_file() {
            return Err(not_a_file("it is not a regular file".into()));
        }
        if meta.len() > limit {
            return Err(not_a_file(format!(
                "it has {} bytes, more than the {limit} allowed",
                meta.len()
            )));
        }
        let mut buf = Vec::with_capacity(meta.len() as usize);
        f.take(limit).read_to_end(&mut buf).map_err(io_err(&real))?;
        Ok(buf)
    }
}

impl NarSink for LocalStore {
    fn import_nar(&self, info: &PathInfo, nar: &mut dyn std::io::Read) -> Result<(), StoreError> {
        self.import(info, nar)
    }

    fn import_nars(
        &self,
        infos: &[PathInfo],
        open: &mut crate::OpenNar<'_>,
    ) -> Result<(), StoreError> {
        self.import_batch(infos, open)
    }
}

#[cfg(test)]
mod tests;
