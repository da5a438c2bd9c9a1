//! What the quorum accepted, kept in `node/accepted.json` (path → the builders who attested
//! it), and the store as the node's binary cache shows it: only accepted paths, so a client of
//! that cache (guixie, Nix) gets nothing the trust policy did not let in.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use guixie_formats::{StoreDir, StorePath};
use guixie_store::{LocalStore, NarSink, NarSource, PathInfo, PathInfoQuery, StoreError};

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct AcceptedSet {
    /// Base name → builders that attested it.
    pub paths: BTreeMap<String, Vec<String>>,
}

impl AcceptedSet {
    pub fn file(node_dir: &Path) -> PathBuf {
        node_dir.join("accepted.json")
    }

    pub fn load(node_dir: &Path) -> std::io::Result<Self> {
        match std::fs::read(Self::file(node_dir)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e),
        }
    }

    /// Written whole under a temporary name, then renamed.
    pub fn save(&self, node_dir: &Path) -> std::io::Result<()> {
        let path = Self::file(node_dir);
        let tmp = path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(self).expect("serialisable"))?;
        f.sync_all()?;
        std::fs::rename(tmp, path)
    }
}

/// The store, showing only accepted paths. Read-only.
pub struct AcceptedView {
    pub store: Arc<LocalStore>,
    pub accepted: Arc<RwLock<BTreeSet<StorePath>>>,
}

impl AcceptedView {
    fn shows(&self, path: &StorePath) -> bool {
        self.accepted.read().expect("not poisoned").contains(path)
    }
}

impl PathInfoQuery for AcceptedView {
    fn store_dir(&self) -> &StoreDir {
        self.store.store_dir()
    }

    fn path_info(&self, path: &StorePath) -> Result<Option<PathInfo>, StoreError> {
        if !self.shows(path) {
            return Ok(None);
        }
        self.store.path_info(path)
    }

    fn path_by_hash_part(&self, hash_part: &str) -> Result<Option<StorePath>, StoreError> {
        Ok(self
            .store
            .path_by_hash_part(hash_part)?
            .filter(|p| self.shows(p)))
    }

    fn path_by_nar_hash(
        &self,
        nar_hash: &guixie_formats::Hash,
    ) -> Result<Option<StorePath>, StoreError> {
        Ok(self
            .store
            .path_by_nar_hash(nar_hash)?
            .filter(|p| self.shows(p)))
    }
}

impl NarSource for AcceptedView {
    fn write_nar(&self, path: &StorePath, out: &mut dyn Write) -> Result<(), StoreError> {
        if !self.shows(path) {
            return Err(StoreError::NotValid {
                path: self.store.store_dir().display(path),
            });
        }
        self.store.write_nar(path, out)
    }
}

impl NarSink for AcceptedView {
    fn import_nar(&self, info: &PathInfo, _: &mut dyn Read) -> Result<(), StoreError> {
        Err(StoreError::NotValid {
            path: format!(
                "{} (the node's cache is read-only)",
                self.store.store_dir().display(&info.path)
            ),
        })
    }
}
