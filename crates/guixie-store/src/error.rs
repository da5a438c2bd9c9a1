use std::io;
use std::path::PathBuf;

use guixie_formats::nar::{DumpError, RestoreError};
use guixie_formats::store_path::StorePathError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("store database {path}: {source}")]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("store database {path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error(transparent)]
    Dump(#[from] DumpError),
    #[error(transparent)]
    Restore(#[from] RestoreError),
    #[error(transparent)]
    StorePath(#[from] StorePathError),
    #[error("store at {root} uses store directory {found}, not {requested}")]
    StoreDirMismatch {
        root: PathBuf,
        found: String,
        requested: String,
    },
    #[error("{path} cannot be read as a file: {message}")]
    NotAFile { path: String, message: String },
    #[error("derivation {path}: {message}")]
    BadDerivation { path: String, message: String },
    #[error("{path} is not valid in the store")]
    NotValid { path: String },
    #[error("cannot add {path}: its reference {reference} is not valid in the store")]
    MissingReference { path: String, reference: String },
    #[error("fixed-output {path}: its content hashes to {actual}, but the derivation declares {expected}")]
    FixedOutputMismatch {
        path: String,
        expected: String,
        actual: String,
    },
    #[error("NAR for {path} has hash {actual} and size {actual_size}, expected {expected} and {expected_size}")]
    HashMismatch {
        path: String,
        expected: String,
        actual: String,
        expected_size: u64,
        actual_size: u64,
    },
}

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.into();
    move |source| StoreError::Io { path, source }
}
