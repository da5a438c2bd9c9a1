//! The log on disk: append-only flat files. `entries` holds the entry bytes, `index` the end
//! offset of each entry (u64 LE), `level-NN` the 32-byte roots of the complete subtrees of
//! 2^NN leaves, left to right. `size` holds the durable tree size. It is replaced (write,
//! fsync, rename) only after everything it covers is fsynced. On open, anything beyond it is
//! truncated, so after a crash the log reopens at the last durable size. Memory use is the
//! right frontier of the tree (≤ 64 hashes), whatever the log's size.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::merkle::{self, leaf_hash, node_hash, Hash, NodeSource};

/// Entries larger than this are refused (attestations are a few KiB).
pub const MAX_ENTRY_BYTES: usize = 1 << 20;

#[derive(Debug, Error)]
pub enum LogError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("log at {path} is damaged: {message}")]
    Damaged { path: PathBuf, message: String },
    #[error("entry {index} does not exist (the log has {size} entries)")]
    NoSuchEntry { index: u64, size: u64 },
    #[error("size {requested} is beyond the log's size {size}")]
    BeyondSize { requested: u64, size: u64 },
    #[error("entry of {0} bytes is larger than the 1 MiB allowed")]
    EntryTooLarge(usize),
    #[error("sizes must satisfy 0 < size1 <= size2 (got {size1} and {size2})")]
    BadSizes { size1: u64, size2: u64 },
    #[error("log at {0} was opened read-only")]
    ReadOnly(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.to_owned(),
        source,
    }
}

pub struct FileLog {
    dir: PathBuf,
    size: u64,
    entries: File,
    entries_len: u64,
    index: File,
    levels: Vec<File>,
    read_only: bool,
    /// frontier[l]: the last complete node of level l when that level has an odd count.
    frontier: Vec<Option<Hash>>,
}

fn open_ro(path: &Path) -> Result<File, LogError> {
    File::open(path).map_err(io_err(path))
}

fn open_rw(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_err(path))
}

impl FileLog {
    /// Opens the log for reading (and appending). Files may be longer than the durable size
    /// (an append in progress elsewhere, or a crash): only the durable prefix is used, and only
    /// a writer holding the lock truncates the rest.
    pub fn open(dir: &Path) -> Result<Self, LogError> {
        Self::load(dir, false)
    }

    /// Opens another builder's log for reading only: nothing is created, truncated or locked,
    /// so a read-only copy works, and appending fails.
    pub fn open_read_only(dir: &Path) -> Result<Self, LogError> {
        if !dir.join("index").is_file() {
            return Err(LogError::Damaged {
                path: dir.to_owned(),
                message: "not a transparency log (no index file)".into(),
            });
        }
        let mut log = Self::load_with(dir, false, open_ro)?;
        log.read_only = true;
        Ok(log)
    }

    fn load(dir: &Path, truncate: bool) -> Result<Self, LogError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        Self::load_with(dir, truncate, open_rw)
    }

    fn load_with(
        dir: &Path,
        truncate: bool,
        open: fn(&Path) -> Result<File, LogError>,
    ) -> Result<Self, LogError> {
        let size_path = dir.join("size");
        let size = match fs::read(&size_path) {
            Ok(b) if b.len() == 8 => u64::from_le_bytes(b.try_into().expect("8 bytes")),
            Ok(b) => {
                return Err(LogError::Damaged {
                    path: size_path,
                    message: format!("size file has {} bytes", b.len()),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_err(&size_path)(e)),
        };
        let index_path = dir.join("index");
        let index = open(&index_path)?;
        let index_len = index.metadata().map_err(io_err(&index_path))?.len();
        if index_len < size * 8 {
            return Err(LogError::Damaged {
                path: index_path,
                message: format!("index covers {} entries, size says {size}", index_len / 8),
            });
        }
        if truncate {
            index.set_len(size * 8).map_err(io_err(&index_path))?;
        }
        let entries_len = if size == 0 {
            0
        } else {
            read_u64(&index, &index_path, size - 1)?
        };
        let entries_path = dir.join("entries");
        let entries = open(&entries_path)?;
        if entries.metadata().map_err(io_err(&entries_path))?.len() < entries_len {
            return Err(LogError::Damaged {
                path: entries_path,
                message: "entries file is shorter than its index".into(),
            });
        }
        if truncate {
            entries
                .set_len(entries_len)
                .map_err(io_err(&entries_path))?;
        }
        let mut log = FileLog {
            dir: dir.to_owned(),
            size,
            entries,
            entries_len,
            index,
            levels: Vec::new(),
            read_only: false,
            frontier: Vec::new(),
        };
        let mut level = 0u32;
        while level == 0 || (size >> level) > 0 {
            let path = log.level_path(level);
            let f = open(&path)?;
            let want = (size >> level) * 32;
            if f.metadata().map_err(io_err(&path))?.len() < want {
                return Err(LogError::Damaged {
                    path,
                    message: "level file is shorter than the tree size needs".into(),
                });
            }
            if truncate {
                f.set_len(want).map_err(io_err(&path))?;
            }
            log.levels.push(f);
            level += 1;
        }
        for l in 0..log.levels.len() as u32 {
            let count = size >> l;
            log.frontier.push(if count % 2 == 1 {
                Some(log.perfect(l, count - 1)?)
            } else {
                None
            });
        }
        Ok(log)
    }

    fn level_path(&self, level: u32) -> PathBuf {
        self.dir.join(format!("level-{level:02}"))
    }

    /// The durable tree size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends entries and makes them durable; returns the index of the first. Writers in
    /// other processes are excluded by a lock on the log directory, and the state is
    /// re-read under it (another process may have appended since this one opened the log).
    pub fn append_batch<E: AsRef<[u8]>>(&mut self, batch: &[E]) -> Result<u64, LogError> {
        if self.read_only {
            return Err(LogError::ReadOnly(self.dir.clone()));
        }
        let lock_path = self.dir.join("lock");
        let lock = open_rw(&lock_path)?;
        lock.lock().map_err(io_err(&lock_path))?;
        *self = FileLog::load(&self.dir, true)?;
        let result = self.append_locked(batch);
        drop(lock);
        result
    }

    fn append_locked<E: AsRef<[u8]>>(&mut self, batch: &[E]) -> Result<u64, LogError> {
        let first = self.size;
        if batch.is_empty() {
            return Ok(first);
        }
        let mut data = Vec::new();
        let mut offsets = Vec::with_capacity(batch.len() * 8);
        let mut new_nodes: Vec<Vec<u8>> = vec![Vec::new(); self.levels.len() + 1];
        let mut count = self.size;
        let mut end = self.entries_len;
        for e in batch {
            let e = e.as_ref();
            if e.len() > MAX_ENTRY_BYTES {
                return Err(LogError::EntryTooLarge(e.len()));
            }
            data.extend_from_slice(e);
            end += e.len() as u64;
            offsets.extend_from_slice(&end.to_le_bytes());
            // Add the leaf and every complete node it finishes.
            let mut h = leaf_hash(e);
            let mut level = 0usize;
            let mut n = count;
            loop {
                if new_nodes.len() <= level {
                    new_nodes.push(Vec::new());
                }
                new_nodes[level].extend_from_slice(&h);
                if self.frontier.len() <= level {
                    self.frontier.push(None);
                }
                if n.is_multiple_of(2) {
                    self.frontier[level] = Some(h);
                    break;
                }
                let left = self.frontier[level]
                    .take()
                    .expect("odd count has a frontier node");
                h = node_hash(&left, &h);
                level += 1;
                n >>= 1;
            }
            count += 1;
        }
        let entries_path = self.dir.join("entries");
        self.entries
            .write_all_at(&data, self.entries_len)
            .map_err(io_err(&entries_path))?;
        let index_path = self.dir.join("index");
        self.index
            .write_all_at(&offsets, self.size * 8)
            .map_err(io_err(&index_path))?;
        for (level, bytes) in new_nodes.iter().enumerate() {
            if bytes.is_empty() {
                continue;
            }
            if self.levels.len() <= level {
                let p = self.level_path(level as u32);
                self.levels.push(open_rw(&p)?);
            }
            let p = self.level_path(level as u32);
            let at = (self.size >> level) * 32;
            self.levels[level]
                .write_all_at(bytes, at)
                .map_err(io_err(&p))?;
        }
        // Contents first, then the size that covers them.
        self.entries.sync_data().map_err(io_err(&entries_path))?;
        self.index.sync_data().map_err(io_err(&index_path))?;
        for (i, f) in self.levels.iter().enumerate() {
            f.sync_data()
                .map_err(io_err(&self.dir.join(format!("level-{i:02}"))))?;
        }
        self.write_size(count)?;
        self.size = count;
        self.entries_len = end;
        Ok(first)
    }

    fn write_size(&self, size: u64) -> Result<(), LogError> {
        let tmp = self.dir.join("size.tmp");
        let path = self.dir.join("size");
        let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(&size.to_le_bytes()).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir))
    }

    pub fn entry(&self, index: u64) -> Result<Vec<u8>, LogError> {
        if index >= self.size {
            return Err(LogError::NoSuchEntry {
                index,
                size: self.size,
            });
        }
        let index_path = self.dir.join("index");
        let end = read_u64(&self.index, &index_path, index)?;
        let start = if index == 0 {
            0
        } else {
            read_u64(&self.index, &index_path, index - 1)?
        };
        let mut buf = vec![0u8; (end - start) as usize];
        self.entries
            .read_exact_at(&mut buf, start)
            .map_err(io_err(&self.dir.join("entries")))?;
        Ok(buf)
    }

    fn check_size(&self, size: u64) -> Result<(), LogError> {
        if size > self.size {
            return Err(LogError::BeyondSize {
                requested: size,
                size: self.size,
            });
        }
        Ok(())
    }

    pub fn root(&self, size: u64) -> Result<Hash, LogError> {
        self.check_size(size)?;
        merkle::root(self, size)
    }

    pub fn leaf_hash(&self, index: u64) -> Result<Hash, LogError> {
        if index >= self.size {
            return Err(LogError::NoSuchEntry {
                index,
                size: self.size,
            });
        }
        self.perfect(0, index)
    }

    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, LogError> {
        self.check_size(size)?;
        if index >= size {
            return Err(LogError::NoSuchEntry { index, size });
        }
        merkle::inclusion_proof(self, index, size)
    }

    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Hash>, LogError> {
        self.check_size(size2)?;
        if size1 == 0 || size1 > size2 {
            return Err(LogError::BadSizes { size1, size2 });
        }
        merkle::consistency_proof(self, size1, size2)
    }
}

fn read_u64(f: &File, path: &Path, i: u64) -> Result<u64, LogError> {
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, i * 8).map_err(io_err(path))?;
    Ok(u64::from_le_bytes(b))
}

impl NodeSource for FileLog {
    type Error = LogError;
    fn perfect(&self, level: u32, index: u64) -> Result<Hash, LogError> {
        let mut h = [0u8; 32];
        let f = self
            .levels
            .get(level as usize)
            .ok_or_else(|| LogError::Damaged {
                path: self.level_path(level),
                message: "missing level file".into(),
            })?;
        f.read_exact_at(&mut h, index * 32)
            .map_err(io_err(&self.level_path(level)))?;
        Ok(h)
    }
}
