//! The embedded local store. Layout under its root directory, like Nix's `--store /root`:
//! `<root><store dir>/` holds the paths (so `/nix/store` and `/gnu/store` can live anywhere),
//! `<root>/var/guixie/` holds `db.sqlite`, `gcroots/`, `locks/` and `gc.lock`.

mod add;
mod db;
mod gc;
mod locks;
mod verify;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use guixie_formats::{StoreDir, StorePath};

pub use add::{BuildLock, GcGuard, TextItem};
pub use gc::GcReport;
pub use verify::VerifyProblem;

use crate::error::{io_err, StoreError};
use crate::{PathInfo, Store};

/// Where a local store lives and what it calls itself.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Physical root; the store directory lives at `root` + `store_dir`.
    pub root: PathBuf,
    /// Logical store directory, part of every path's hash.
    pub store_dir: StoreDir,
    /// Registration timestamps come from here (injected so tests and simulations are repeatable).
    pub clock: fn() -> i64,
}

impl StoreConfig {
    pub fn new(root: impl Into<PathBuf>, store_dir: StoreDir) -> Self {
        StoreConfig {
            root: root.into(),
            store_dir,
            clock: system_clock,
        }
    }
}

fn system_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub struct LocalStore {
    store_dir: StoreDir,
    real_store: PathBuf,
    state: PathBuf,
    db: Mutex<db::Db>,
    clock: fn() -> i64,
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
        // Processes opening a new store at once would race to set WAL mode and create the
        // schema (SQLite answers "database is locked" to some of them without waiting).
        let db = {
            let _schema = locks::FileLock::exclusive(&state.join("db.lock"))?;
            db::Db::open(&state.join("db.sqlite"), &config.store_dir, &config.root)?
        };
        Ok(LocalStore {
            store_dir: config.store_dir,
            real_store,
            state,
            db: Mutex::new(db),
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
        self.db().derivation_outputs(&self.store_dir, drvs)
    }

    /// Which of `paths` are valid, checked together.
    pub fn are_valid(&self, paths: &[StorePath]) -> Result<Vec<bool>, StoreError> {
        self.db().are_valid(&self.store_dir, paths)
    }

    pub fn valid_paths(&self) -> Result<Vec<StorePath>, StoreError> {
        self.db().valid_paths(&self.store_dir)
    }

    /// The closure of `paths` under references.
    pub fn closure(
        &self,
        paths: &[StorePath],
    ) -> Result<std::collections::BTreeSet<StorePath>, StoreError> {
        self.db().closure(&self.store_dir, paths)
    }

    fn db(&self) -> std::sync::MutexGuard<'_, db::Db> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll back).
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store for LocalStore {
    fn store_dir(&self) -> &StoreDir {
        &self.store_dir
    }

    fn path_info(&self, path: &StorePath) -> Result<Option<PathInfo>, StoreError> {
        self.db().path_info(&self.store_dir, path)
    }

    fn is_valid(&self, path: &StorePath) -> Result<bool, StoreError> {
        self.db().is_valid(&self.store_dir, path)
    }

    fn nar(&self, path: &StorePath, out: &mut dyn std::io::Write) -> Result<(), StoreError> {
        if !self.is_valid(path)? {
            return Err(StoreError::NotValid {
                path: self.store_dir.display(path),
            });
        }
        guixie_formats::nar::dump_path(&self.real_path(path), out)?;
        Ok(())
    }

    fn import_nar(&self, info: &PathInfo, nar: &mut dyn std::io::Read) -> Result<(), StoreError> {
        self.import(info, nar)
    }
}

#[cfg(test)]
mod tests;
