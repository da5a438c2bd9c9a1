//! A store held in memory: path infos and NARs in ordered maps behind one lock. It keeps the
//! invariants of a real store (a path is valid only with all its references; an import is
//! checked against its declared hash and size and must be a well-formed NAR), so tests, a
//! cache server's tests and the simulator can run on it without a disk.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::{Arc, RwLock};

use guixie_env::Clock;
use guixie_formats::hash::Hasher;
use guixie_formats::nar::{self, NarListing};
use guixie_formats::{StoreDir, StorePath};

use crate::{NarSink, NarSource, PathInfo, PathInfoQuery, StoreError};

pub struct MemoryStore {
    store_dir: StoreDir,
    paths: RwLock<BTreeMap<StorePath, Entry>>,
    clock: Arc<dyn Clock>,
}

struct Entry {
    info: PathInfo,
    nar: Arc<[u8]>,
}

impl MemoryStore {
    /// Imported paths are registered at `clock`'s time.
    pub fn new(store_dir: StoreDir, clock: Arc<dyn Clock>) -> Self {
        MemoryStore {
            store_dir,
            paths: RwLock::new(BTreeMap::new()),
            clock,
        }
    }

    fn entry(&self, path: &StorePath) -> Option<(PathInfo, Arc<[u8]>)> {
        let paths = self.paths.read().unwrap_or_else(|p| p.into_inner());
        paths.get(path).map(|e| (e.info.clone(), e.nar.clone()))
    }

    fn not_valid(&self, path: &StorePath) -> StoreError {
        StoreError::NotValid {
            path: self.store_dir.display(path),
        }
    }
}

impl PathInfoQuery for MemoryStore {
    fn store_dir(&self) -> &StoreDir {
        &self.store_dir
    }

    fn path_info(&self, path: &StorePath) -> Result<Option<PathInfo>, StoreError> {
        Ok(self.entry(path).map(|(info, _)| info))
    }

    fn path_by_nar_hash(
        &self,
        nar_hash: &guixie_formats::Hash,
    ) -> Result<Option<StorePath>, StoreError> {
        Ok(self.find_nar_hash(nar_hash))
    }

    fn path_by_hash_part(&self, hash_part: &str) -> Result<Option<StorePath>, StoreError> {
        let paths = self.paths.read().unwrap_or_else(|p| p.into_inner());
        // Paths sort by base name, so the one with this hash part is the first at or after
        // the smallest base name with it.
        let Ok(lowest) = StorePath::from_base_name(&format!("{hash_part}-+")) else {
            return Ok(None);
        };
        Ok(paths
            .range(lowest..)
            .next()
            .map(|(p, _)| p)
            .filter(|p| p.hash_part() == hash_part)
            .cloned())
    }
}

impl MemoryStore {
    fn find_nar_hash(&self, nar_hash: &guixie_formats::Hash) -> Option<StorePath> {
        let paths = self.paths.read().unwrap_or_else(|p| p.into_inner());
        // A scan: a memory store is small.
        paths
            .values()
            .find(|e| e.info.nar_hash == *nar_hash)
            .map(|e| e.info.path.clone())
    }
}

impl NarSource for MemoryStore {
    fn write_nar(&self, path: &StorePath, out: &mut dyn Write) -> Result<(), StoreError> {
        let (_, bytes) = self.entry(path).ok_or_else(|| self.not_valid(path))?;
        out.write_all(&bytes).map_err(|source| StoreError::Io {
            path: path.to_string().into(),
            source,
        })
    }
}

impl NarSink for MemoryStore {
    fn import_nar(&self, info: &PathInfo, nar_stream: &mut dyn Read) -> Result<(), StoreError> {
        if self.is_valid(&info.path)? {
            return Ok(());
        }
        let shown = self.store_dir.display(&info.path);
        let mut bytes = Vec::new();
        nar_stream
            .take(info.nar_size)
            .read_to_end(&mut bytes)
            .map_err(|source| StoreError::Io {
                path: shown.clone().into(),
                source,
            })?;
        let mut hasher = Hasher::new(info.nar_hash.algo());
        hasher.update(&bytes);
        let actual = hasher.finish();
        if actual != info.nar_hash || bytes.len() as u64 != info.nar_size {
            return Err(StoreError::HashMismatch {
                path: shown,
                expected: info.nar_hash.to_string(),
                actual: actual.to_string(),
                expected_size: info.nar_size,
                actual_size: bytes.len() as u64,
            });
        }
        nar::parse_to_end(bytes.as_slice(), &mut NarListing::default())
            .map_err(|e| StoreError::Restore(e.into()))?;
        let mut paths = self.paths.write().unwrap_or_else(|p| p.into_inner());
        if let Some(missing) = info
            .references
            .iter()
            .find(|r| **r != info.path && !paths.contains_key(r))
        {
            return Err(StoreError::MissingReference {
                path: shown,
                reference: self.store_dir.display(missing),
            });
        }
        let mut info = info.clone();
        info.registration_time = self.clock.unix_seconds();
        paths.entry(info.path.clone()).or_insert(Entry {
            info,
            nar: bytes.into(),
        });
        Ok(())
    }
}
