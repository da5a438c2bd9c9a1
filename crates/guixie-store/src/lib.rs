//! guixie's store layer: the [`Store`] trait that builders, caches and the network program
//! against, and [`LocalStore`], the embedded implementation (a store directory plus a SQLite
//! database, no daemon).
//!
//! Invariants of a local store:
//! - a path is valid (in the database) only after its files are complete, canonical and
//!   durable; a crash at any point leaves either nothing or a valid path;
//! - every reference of a valid path is valid (closure property), so GC never breaks one;
//! - adders hold the GC lock shared and a per-path lock exclusive; GC holds it exclusive.

mod canonical;
mod error;
mod local;
mod path_info;
pub mod safe_fs;

pub use error::StoreError;
pub use local::{BuildLock, GcGuard, GcReport, LocalStore, StoreConfig, TextItem, VerifyProblem};
pub use path_info::PathInfo;

use std::io::Write;

use guixie_formats::{StoreDir, StorePath};

/// What any store — local, a binary cache, a peer — offers to the layers above.
pub trait Store {
    fn store_dir(&self) -> &StoreDir;
    fn path_info(&self, path: &StorePath) -> Result<Option<PathInfo>, StoreError>;
    fn is_valid(&self, path: &StorePath) -> Result<bool, StoreError> {
        Ok(self.path_info(path)?.is_some())
    }
    /// Streams the NAR serialisation of a valid path.
    fn nar(&self, path: &StorePath, out: &mut dyn Write) -> Result<(), StoreError>;
    /// Imports a path from its NAR; the NAR must hash to `info.nar_hash` and all references
    /// must already be valid.
    fn import_nar(&self, info: &PathInfo, nar: &mut dyn std::io::Read) -> Result<(), StoreError>;
}
