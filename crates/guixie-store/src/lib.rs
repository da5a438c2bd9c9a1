//! guixie's store layer: the traits that builders, caches and the network program against
//! ([`PathInfoQuery`], [`NarSource`], [`NarSink`]; [`Store`] is all three), [`LocalStore`],
//! the embedded implementation (a store directory plus a SQLite database, no daemon), and
//! [`MemoryStore`], which keeps everything in memory.
//!
//! Invariants of a local store:
//! - a path is valid (in the database) only after its files are complete, canonical and
//!   durable; a crash at any point leaves either nothing or a valid path;
//! - every reference of a valid path is valid (closure property), so GC never breaks one;
//! - adders hold the GC lock shared and a per-path lock exclusive; GC holds it exclusive.

mod canonical;
mod error;
mod local;
mod memory;
mod path_info;
pub mod safe_fs;
mod traits;

pub use error::StoreError;
pub use local::{
    BuildLock, GcGuard, GcReport, LocalStore, StagedImport, StoreConfig, TextItem, VerifyProblem,
};
pub use memory::MemoryStore;
pub use path_info::PathInfo;
pub use traits::{
    parse_nar, read_derivation, NarSink, NarSource, OpenNar, PathInfoQuery, Store, Substituter,
    MAX_DERIVATION_SIZE,
};

#[cfg(test)]
mod conformance;
