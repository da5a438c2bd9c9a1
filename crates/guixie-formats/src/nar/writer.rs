use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use thiserror::Error;

use super::{padding, COPY_BUFFER, MAGIC};
use crate::hash::{CountingWriter, Hash, HashAlgo, Hasher};

#[derive(Debug, Error)]
pub enum DumpError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("cannot archive {path}: it is neither a regular file, a directory nor a symlink")]
    UnsupportedType { path: PathBuf },
    #[error("{path} changed while it was being archived (expected {expected} bytes)")]
    Changed { path: PathBuf, expected: u64 },
    #[error("writing the archive failed: {0}")]
    Output(io::Error),
}

/// Low-level NAR token writer; `dump_path` drives it from a file system tree, other sources
/// (a content-addressed chunk store, a test generator) can drive it directly.
pub struct NarEncoder<W: Write> {
    out: W,
}

impl<W: Write> NarEncoder<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        write_str(&mut out, MAGIC)?;
        Ok(NarEncoder { out })
    }

    pub fn token(&mut self, s: &[u8]) -> io::Result<()> {
        write_str(&mut self.out, s)
    }

    pub fn tokens(&mut self, ts: &[&[u8]]) -> io::Result<()> {
        ts.iter().try_for_each(|t| self.token(t))
    }

    pub fn symlink(&mut self, target: &[u8]) -> io::Result<()> {
        self.tokens(&[b"(", b"type", b"symlink", b"target", target, b")"])
    }

    /// Starts a regular file; the caller then writes exactly `size` bytes with
    /// `contents_mut` and calls `end_file`.
    pub fn begin_file(&mut self, executable: bool, size: u64) -> io::Result<()> {
        self.tokens(&[b"(", b"type", b"regular"])?;
        if executable {
            self.tokens(&[b"executable", b""])?;
        }
        self.token(b"contents")?;
        self.out.write_all(&size.to_le_bytes())
    }

    pub fn contents_mut(&mut self) -> &mut W {
        &mut self.out
    }

    pub fn end_file(&mut self, size: u64) -> io::Result<()> {
        self.out.write_all(&[0u8; 8][..padding(size)])?;
        self.token(b")")
    }

    pub fn begin_directory(&mut self) -> io::Result<()> {
        self.tokens(&[b"(", b"type", b"directory"])
    }

    /// Entries must come in strictly increasing byte order of `name`.
    pub fn begin_entry(&mut self, name: &[u8]) -> io::Result<()> {
        self.tokens(&[b"entry", b"(", b"name", name, b"node"])
    }

    pub fn end_entry(&mut self) -> io::Result<()> {
        self.token(b")")
    }

    pub fn end_directory(&mut self) -> io::Result<()> {
        self.token(b")")
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

fn write_str(out: &mut impl Write, s: &[u8]) -> io::Result<()> {
    // One write per token keeps small-token overhead low on unbuffered sinks like hashers.
    let mut buf = [0u8; 64];
    if s.len() + 16 <= buf.len() {
        let len = s.len();
        buf[..8].copy_from_slice(&(len as u64).to_le_bytes());
        buf[8..8 + len].copy_from_slice(s);
        let total = 8 + len + padding(len as u64);
        out.write_all(&buf[..total])
    } else {
        out.write_all(&(s.len() as u64).to_le_bytes())?;
        out.write_all(s)?;
        out.write_all(&[0u8; 8][..padding(s.len() as u64)])
    }
}

/// Serialises the tree at `path` (not following a top-level symlink) as a NAR into `out`.
pub fn dump_path(path: &Path, out: impl Write) -> Result<(), DumpError> {
    dump_path_excluding(path, &Excluded::new(), out)
}

/// Entries left out of an archived tree, by their full path under the tree's root (what
/// Guix's `local-file #:select?` rejected): a left-out directory is left out whole.
pub type Excluded = std::collections::BTreeSet<PathBuf>;

/// `dump_path`, leaving out the entries in `excluded`.
pub fn dump_path_excluding(
    path: &Path,
    excluded: &Excluded,
    out: impl Write,
) -> Result<(), DumpError> {
    let mut enc = NarEncoder::new(out).map_err(DumpError::Output)?;
    let mut buf = vec![0u8; COPY_BUFFER];
    dump_node(path, &mut enc, &mut buf, Contents::Read, excluded)?;
    enc.contents_mut().flush().map_err(DumpError::Output)
}

/// The size `dump_path` would write, from the tree's metadata: every file is opened, none is
/// read. A size that differs from the one recorded means the tree lost or gained bytes.
pub fn nar_size_of_path(path: &Path) -> Result<u64, DumpError> {
    let mut counting = CountingWriter::new(io::sink());
    let mut enc = NarEncoder::new(&mut counting).map_err(DumpError::Output)?;
    dump_node(path, &mut enc, &mut [], Contents::Skip, &Excluded::new())?;
    Ok(counting.count)
}

/// Whether file contents are read or only their sizes counted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Contents {
    Read,
    Skip,
}

/// NAR hash and NAR size of the tree at `path`. Reading the tree and hashing run on two
/// threads joined by a bounded queue of recycled buffers, so file I/O overlaps with hashing and
/// memory stays at a few chunks whatever the tree's size.
pub fn hash_path(path: &Path, algo: HashAlgo) -> Result<(Hash, u64), DumpError> {
    hash_path_excluding(path, algo, &Excluded::new())
}

/// `hash_path`, leaving out the entries in `excluded`.
pub fn hash_path_excluding(
    path: &Path,
    algo: HashAlgo,
    excluded: &Excluded,
) -> Result<(Hash, u64), DumpError> {
    let (full_tx, full_rx) = mpsc::sync_channel::<Vec<u8>>(PIPELINE_DEPTH);
    let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
    let hasher = thread::spawn(move || {
        let mut counting = CountingWriter::new(Hasher::new(algo));
        for chunk in full_rx {
            counting.write_all(&chunk).expect("hashing cannot fail");
            // The dumper may have finished already; then the buffer is simply dropped.
            let _ = empty_tx.send(chunk);
        }
        (counting.inner.finish(), counting.count)
    });
    let mut chunks = ChunkWriter {
        current: Vec::with_capacity(COPY_BUFFER),
        full: full_tx,
        empty: empty_rx,
    };
    let dumped = dump_path_excluding(path, excluded, &mut chunks)
        .and_then(|()| chunks.send_current().map_err(DumpError::Output));
    drop(chunks);
    let result = hasher.join().expect("hashing thread panicked");
    dumped.map(|()| result)
}

/// NAR sha256 and size of a single regular file with these contents, without touching disk.
pub fn hash_regular_file(contents: &[u8], executable: bool) -> (Hash, u64) {
    let mut counting = CountingWriter::new(Hasher::new(HashAlgo::Sha256));
    let mut enc = NarEncoder::new(&mut counting).expect("hashing cannot fail");
    enc.begin_file(executable, contents.len() as u64)
        .and_then(|()| enc.contents_mut().write_all(contents))
        .and_then(|()| enc.end_file(contents.len() as u64))
        .expect("hashing cannot fail");
    (counting.inner.finish(), counting.count)
}

/// Chunks in flight between the dumping and the hashing thread.
const PIPELINE_DEPTH: usize = 4;

struct ChunkWriter {
    current: Vec<u8>,
    full: mpsc::SyncSender<Vec<u8>>,
    empty: mpsc::Receiver<Vec<u8>>,
}

impl ChunkWriter {
    fn send_current(&mut self) -> io::Result<()> {
        if self.current.is_empty() {
            return Ok(());
        }
        let next = self
            .empty
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(COPY_BUFFER));
        let full = std::mem::replace(&mut self.current, next);
        self.full
            .send(full)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "hashing thread stopped"))?;
        self.current.clear();
        Ok(())
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = COPY_BUFFER - self.current.len();
        let n = buf.len().min(room);
        self.current.extend_from_slice(&buf[..n]);
        if self.current.len() == COPY_BUFFER {
            self.send_current()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn dump_node<W: Write>(
    path: &Path,
    enc: &mut NarEncoder<W>,
    buf: &mut [u8],
    contents: Contents,
    excluded: &Excluded,
) -> Result<(), DumpError> {
    let io_err = |source| DumpError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = fs::symlink_metadata(path).map_err(io_err)?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = fs::read_link(path).map_err(io_err)?;
        enc.symlink(target.as_os_str().as_bytes())
            .map_err(DumpError::Output)
    } else if ft.is_file() {
        let mut file = File::open(path).map_err(io_err)?;
        let size = meta.len();
        let executable = meta.permissions().mode() & 0o100 != 0;
        enc.begin_file(executable, size)
            .map_err(DumpError::Output)?;
        if contents == Contents::Skip {
            io::copy(&mut io::repeat(0).take(size), enc.contents_mut())
                .map_err(DumpError::Output)?;
            return enc.end_file(size).map_err(DumpError::Output);
        }
        let mut remaining = size;
        while remaining > 0 {
            let want = remaining.min(buf.len() as u64) as usize;
            let n = match file.read(&mut buf[..want]) {
                Ok(0) => {
                    return Err(DumpError::Changed {
                        path: path.to_owned(),
                        expected: size,
                    })
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(e)),
            };
            enc.contents_mut()
                .write_all(&buf[..n])
                .map_err(DumpError::Output)?;
            remaining -= n as u64;
        }
        enc.end_file(size).map_err(DumpError::Output)
    } else if ft.is_dir() {
        let mut names: Vec<_> = fs::read_dir(path)
            .map_err(io_err)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_err)?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        enc.begin_directory().map_err(DumpError::Output)?;
        for name in names {
            let entry = path.join(&name);
            if excluded.contains(&entry) {
                continue;
            }
            enc.begin_entry(name.as_bytes())
                .map_err(DumpError::Output)?;
            dump_node(&entry, enc, buf, contents, excluded)?;
            enc.end_entry().map_err(DumpError::Output)?;
        }
        enc.end_directory().map_err(DumpError::Output)
    } else {
        Err(DumpError::UnsupportedType {
            path: path.to_owned(),
        })
    }
}
