//! User profiles, as Guix and Nix have them: a [`Manifest`] names the packages, [`union`]
//! makes their union a store item (real directories, a symlink per file, conflicts
//! reported), and a [`Profile`] is a link switched atomically between numbered generations,
//! each an indirect GC root, so a crash leaves the old generation or the new one.

mod generations;
mod manifest;
mod union;

pub use generations::{Generation, Profile};
pub use manifest::{split_name, Entry, Manifest, SearchPath, Source, MANIFEST_FILE};
pub use union::{union, Conflict, Union};

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] guixie_store::StoreError),
    #[error("{0}")]
    Invalid(String),
}

pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ProfileError + '_ {
    move |source| ProfileError::Io {
        path: path.to_owned(),
        source,
    }
}
