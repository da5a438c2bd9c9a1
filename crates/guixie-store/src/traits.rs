//! The seams between guixie's layers and its stores. Each trait is small and object safe, so
//! the builder, the evaluator, a binary cache server or a peer can hold `&dyn …` of whatever
//! store they are given: [`crate::LocalStore`] (a directory and SQLite), [`crate::MemoryStore`]
//! (tests, the simulator) or, later, a remote cache.

use std::collections::BTreeSet;
use std::io::{Read, Write};

use guixie_formats::derivation::Derivation;
use guixie_formats::nar::{self, NarHandler};
use guixie_formats::{StoreDir, StorePath};

use crate::{PathInfo, StoreError};

/// The largest `.drv` file read from any store (the largest real ones are a few MiB).
pub const MAX_DERIVATION_SIZE: u64 = 64 << 20;

/// What a store knows of its valid paths.
pub trait PathInfoQuery: Send + Sync {
    fn store_dir(&self) -> &StoreDir;

    fn path_info(&self, path: &StorePath) -> Result<Option<PathInfo>, StoreError>;

    fn is_valid(&self, path: &StorePath) -> Result<bool, StoreError> {
        Ok(self.path_info(path)?.is_some())
    }

    /// Which of `paths` are valid, checked together (one query where the store can).
    fn are_valid(&self, paths: &[StorePath]) -> Result<Vec<bool>, StoreError> {
        paths.iter().map(|p| self.is_valid(p)).collect()
    }

    /// The valid path whose hash part (32 Nix32 characters) is `hash_part`, as a binary
    /// cache's `<hash>.narinfo` asks.
    fn path_by_hash_part(&self, hash_part: &str) -> Result<Option<StorePath>, StoreError>;

    /// A valid path whose NAR serialisation has hash `nar_hash`, as a binary cache's
    /// `nar/<hash>.nar` asks.
    fn path_by_nar_hash(
        &self,
        nar_hash: &guixie_formats::Hash,
    ) -> Result<Option<StorePath>, StoreError>;

    /// The closure of `paths` under references; invalid paths are left out.
    fn closure(&self, paths: &[StorePath]) -> Result<BTreeSet<StorePath>, StoreError> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<StorePath> = paths.to_vec();
        while let Some(p) = todo.pop() {
            if seen.contains(&p) {
                continue;
            }
            if let Some(info) = self.path_info(&p)? {
                todo.extend(info.references.into_iter().filter(|r| !seen.contains(r)));
                seen.insert(p);
            }
        }
        Ok(seen)
    }
}

/// Reads valid paths as NAR streams.
pub trait NarSource: Send + Sync {
    /// Streams the NAR serialisation of a valid path; memory does not grow with its size.
    fn write_nar(&self, path: &StorePath, out: &mut dyn Write) -> Result<(), StoreError>;

    /// The size of the NAR `write_nar` would write now, found as cheaply as the store can
    /// (here by writing it to nowhere). A size that is not the recorded one means the path's
    /// copy is damaged: a server says so before it promises any byte.
    fn nar_size(&self, path: &StorePath) -> Result<u64, StoreError> {
        let mut counting = guixie_formats::hash::CountingWriter::new(std::io::sink());
        self.write_nar(path, &mut counting)?;
        Ok(counting.count)
    }

    /// The contents of a valid path that is one regular file of at most `limit` bytes
    /// (`NotValid` for a path that is not valid).
    fn read_file(&self, path: &StorePath, limit: u64) -> Result<Vec<u8>, StoreError> {
        let mut file = SingleFile {
            limit,
            contents: None,
        };
        parse_nar(self, path, &mut file)?.map_err(|e| StoreError::NotAFile {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        file.contents.ok_or_else(|| StoreError::NotAFile {
            path: path.to_string(),
            message: "it is not a regular file".into(),
        })
    }
}

/// Adds paths from NAR streams.
pub trait NarSink: Send + Sync {
    /// Imports `info.path` from its NAR. The stream is hashed while it is read and read no
    /// further than `info.nar_size`; the path becomes valid only if hash and size match
    /// `info`, the archive is well formed and every reference is valid. Importing a path that
    /// is already valid reads nothing and succeeds. `info` is taken as given (signatures
    /// included): deciding whether to trust it, and how large a NAR to accept, is the
    /// caller's.
    fn import_nar(&self, info: &PathInfo, nar: &mut dyn Read) -> Result<(), StoreError>;

    /// Imports many paths, each checked as by [`NarSink::import_nar`]; `infos` comes
    /// references first, and `open` gives each one's NAR stream when it is its turn. A store
    /// may make them durable and register them together; if any is refused, none of those
    /// not yet registered becomes valid.
    fn import_nars(&self, infos: &[PathInfo], open: &mut OpenNar<'_>) -> Result<(), StoreError> {
        for info in infos {
            self.import_nar(info, &mut open(info)?)?;
        }
        Ok(())
    }
}

/// A source of paths this store does not have yet (a binary cache, a peer), asked before
/// building them.
pub trait Substituter: Send + Sync {
    /// Makes `paths` and their closure valid in `store`. `Ok(false)`: no source has one of
    /// them (nothing is fetched then). An error says why a source that had them could not be
    /// used (bad signature, wrong hash, network).
    fn substitute(&self, store: &dyn Store, paths: &[StorePath]) -> Result<bool, String>;
}

/// What `import_nars` asks for: the NAR stream of one path.
pub type OpenNar<'a> = dyn FnMut(&PathInfo) -> Result<Box<dyn Read + Send>, StoreError> + 'a;

/// A store with all three faces.
pub trait Store: PathInfoQuery + NarSource + NarSink {}
impl<T: PathInfoQuery + NarSource + NarSink + ?Sized> Store for T {}

/// Streams `path`'s NAR from `store` through `handler`, the producer on one end of a pipe and
/// the parser on the other, in bounded memory. The outer error is the store's, the inner one
/// the archive's (or the handler's).
pub fn parse_nar<S: NarSource + ?Sized>(
    store: &S,
    path: &StorePath,
    handler: &mut dyn NarHandler,
) -> Result<Result<u64, nar::NarError>, StoreError> {
    let (mut reader, mut writer) = std::io::pipe().map_err(|e| io(path, e))?;
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || {
            let r = store.write_nar(path, &mut writer);
            drop(writer);
            r
        });
        let parsed = nar::parse_to_end(&mut reader, handler);
        // Whatever the parser left (after an error) must not block the producer.
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
        producer.join().expect("NAR producer panicked")?;
        Ok(parsed)
    })
}

/// Reads and parses the `.drv` at `path`, which must be valid.
pub fn read_derivation<S>(store: &S, path: &StorePath) -> Result<Derivation, StoreError>
where
    S: PathInfoQuery + NarSource + ?Sized,
{
    let shown = store.store_dir().display(path);
    let bytes = store.read_file(path, MAX_DERIVATION_SIZE)?;
    Derivation::parse(&bytes, store.store_dir()).map_err(|e| StoreError::BadDerivation {
        path: shown,
        message: e.to_string(),
    })
}

fn io(path: &StorePath, e: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_string().into(),
        source: e,
    }
}

/// Takes the contents of a NAR that is one regular file.
struct SingleFile {
    limit: u64,
    contents: Option<Vec<u8>>,
}

impl NarHandler for SingleFile {
    fn directory(&mut self, _: &[u8]) -> std::io::Result<()> {
        Err(std::io::Error::other("it is a directory, not a file"))
    }
    fn symlink(&mut self, _: &[u8], _: &[u8]) -> std::io::Result<()> {
        Err(std::io::Error::other("it is a symlink, not a file"))
    }
    fn file(
        &mut self,
        _: &[u8],
        _: bool,
        size: u64,
        contents: &mut dyn Read,
    ) -> std::io::Result<()> {
        if size > self.limit {
            return Err(std::io::Error::other(format!(
                "it has {size} bytes, more than the {} allowed",
                self.limit
            )));
        }
        let mut buf = Vec::with_capacity(size as usize);
        contents.read_to_end(&mut buf)?;
        self.contents = Some(buf);
        Ok(())
    }
}
