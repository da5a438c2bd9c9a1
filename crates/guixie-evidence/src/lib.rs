//! Evidence about builds, for library users as much as for the CLI:
//! - [`keys`]: the builder's, the log's and witnesses' signing keys, made from an injected
//!   randomness source and kept in files only their owner can read;
//! - [`attest`]: a signed in-toto statement of what a derivation produced, appended to the
//!   local transparency log;
//! - [`checkpoint`]: the log's signed size and root;
//! - [`challenge`]: what independent builders' logs say about the same outputs.

pub mod attest;
pub mod challenge;
pub mod keys;

use std::path::{Path, PathBuf};

use thiserror::Error;

pub use attest::{attest_builds, statements_for, BuildRecord};
pub use challenge::{challenge, Finding, Verdict};

#[derive(Debug, Error)]
pub enum EvidenceError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret key {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error(transparent)]
    Store(#[from] guixie_store::StoreError),
    #[error(transparent)]
    Log(#[from] guixie_log::LogError),
    #[error(transparent)]
    Attest(#[from] guixie_attest::AttestError),
    #[error(transparent)]
    Checkpoint(#[from] guixie_log::checkpoint::CheckpointError),
    #[error(transparent)]
    Derivation(#[from] guixie_formats::derivation::DerivationError),
    #[error("{0} is not valid in the store")]
    NotValid(String),
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> EvidenceError + '_ {
    move |source| EvidenceError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where a store keeps its transparency log.
pub fn log_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("log")
}

/// A signed checkpoint of the log's durable entries.
pub fn checkpoint(
    log: &guixie_log::FileLog,
    key: &guixie_log::note::SignerKey,
) -> Result<String, EvidenceError> {
    let cp = guixie_log::checkpoint::Checkpoint {
        origin: key.name.clone(),
        size: log.size(),
        root: log.root(log.size())?,
        extensions: vec![],
    };
    Ok(cp.sign(key)?)
}

/// Indices, in log order, of the signed statements whose derivation or an output has the
/// store path hash part `hash_part` (entries that are not statements are passed over; no
/// signature is checked here: whoever reads them checks what they need).
pub fn entries_about(
    log: &guixie_log::FileLog,
    hash_part: &str,
) -> Result<Vec<u64>, guixie_log::LogError> {
    let names = |p: &str| {
        p.rsplit('/')
            .next()
            .and_then(|base| base.strip_prefix(hash_part))
            .is_some_and(|rest| rest.starts_with('-'))
    };
    let mut found = Vec::new();
    for index in 0..log.size() {
        let entry = log.entry(index)?;
        let Ok(st) = guixie_attest::Envelope::parse(&entry).and_then(|e| e.statement()) else {
            continue;
        };
        if names(&st.predicate.derivation.path)
            || st.predicate.outputs.values().any(|o| names(&o.path))
        {
            found.push(index);
        }
    }
    Ok(found)
}
