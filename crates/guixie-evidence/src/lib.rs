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

/// Which statements of a log are about which store paths, kept up to date as the log grows:
/// each entry is read once.
#[derive(Default)]
pub struct LogIndex {
    indexed: u64,
    by_hash_part: std::collections::BTreeMap<String, Vec<u64>>,
}

impl LogIndex {
    /// Reads the entries appended since the last update; returns the statements among them
    /// (signatures unchecked), for a caller that indexes more.
    pub fn update(
        &mut self,
        log: &guixie_log::FileLog,
    ) -> Result<Vec<(u64, guixie_attest::Statement)>, guixie_log::LogError> {
        let mut new = Vec::new();
        for index in self.indexed..log.size() {
            let entry = log.entry(index)?;
            self.indexed = index + 1;
            let Ok(st) = guixie_attest::Envelope::parse(&entry).and_then(|e| e.statement()) else {
                continue;
            };
            let paths = std::iter::once(&st.predicate.derivation.path)
                .chain(st.predicate.outputs.values().map(|o| &o.path));
            for p in paths {
                let hash_part = p.rsplit('/').next().and_then(|b| b.split_once('-'));
                if let Some((h, _)) = hash_part {
                    let list = self.by_hash_part.entry(h.to_owned()).or_default();
                    if list.last() != Some(&index) {
                        list.push(index);
                    }
                }
            }
            new.push((index, st));
        }
        Ok(new)
    }

    /// Indices, in log order, of the statements whose derivation or an output has this hash
    /// part (as of the last update).
    pub fn about(&self, hash_part: &str) -> &[u64] {
        self.by_hash_part
            .get(hash_part)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

/// Indices, in log order, of the signed statements whose derivation or an output has the
/// store path hash part `hash_part` (entries that are not statements are passed over; no
/// signature is checked here: whoever reads them checks what they need).
pub fn entries_about(
    log: &guixie_log::FileLog,
    hash_part: &str,
) -> Result<Vec<u64>, guixie_log::LogError> {
    let mut index = LogIndex::default();
    index.update(log)?;
    Ok(index.about(hash_part).to_vec())
}
