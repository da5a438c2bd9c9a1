use std::io::{self, Read};

use thiserror::Error;

use super::{padding, MAGIC, MAX_DEPTH, MAX_STRING};

/// What went wrong, where in the archive (byte offset) and at which node path.
#[derive(Debug, Error)]
#[error("invalid NAR at byte {offset}{}: {kind}", if path.is_empty() { String::new() } else { format!(" (in {path:?})") })]
pub struct NarError {
    pub offset: u64,
    pub path: String,
    pub kind: NarErrorKind,
}

#[derive(Debug, Error)]
pub enum NarErrorKind {
    #[error("archive ends early")]
    Truncated,
    #[error("read failed: {0}")]
    Io(io::Error),
    #[error("not a NAR (magic {0:?} instead of \"nix-archive-1\")")]
    BadMagic(String),
    #[error("expected {expected:?}, found {found:?}")]
    UnexpectedToken {
        expected: &'static str,
        found: String,
    },
    #[error("string of {0} bytes is longer than the 4096 allowed")]
    StringTooLong(u64),
    #[error("non-zero padding byte")]
    NonZeroPadding,
    #[error("entry {name:?} is not after {prev:?} (entries must be sorted and unique)")]
    Unsorted { prev: String, name: String },
    #[error("bad entry name {name:?}: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error("empty symlink target")]
    EmptySymlink,
    #[error("directories nested deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("unexpected data after the end of the archive")]
    TrailingData,
    #[error("{0}")]
    Handler(io::Error),
}

/// A node as seen while listing or restoring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Regular { executable: bool, size: u64 },
    Directory,
    Symlink { target: Vec<u8> },
}

/// Receives the nodes of an archive in order. `path` is relative to the root and empty for
/// the root itself; components are joined with `/` and were validated (no `.`, `..`, `/`,
/// NUL, empty names).
pub trait NarHandler {
    fn directory(&mut self, path: &[u8]) -> io::Result<()>;
    fn symlink(&mut self, path: &[u8], target: &[u8]) -> io::Result<()>;
    /// `contents` yields exactly `size` bytes; whatever the handler leaves unread is skipped.
    fn file(
        &mut self,
        path: &[u8],
        executable: bool,
        size: u64,
        contents: &mut dyn Read,
    ) -> io::Result<()>;
}

/// Collects every node with its kind (`guixie nar ls`, tests).
#[derive(Default, Debug)]
pub struct NarListing {
    pub entries: Vec<(Vec<u8>, NodeKind)>,
}

impl NarHandler for NarListing {
    fn directory(&mut self, path: &[u8]) -> io::Result<()> {
        self.entries.push((path.to_vec(), NodeKind::Directory));
        Ok(())
    }
    fn symlink(&mut self, path: &[u8], target: &[u8]) -> io::Result<()> {
        self.entries.push((
            path.to_vec(),
            NodeKind::Symlink {
                target: target.to_vec(),
            },
        ));
        Ok(())
    }
    fn file(
        &mut self,
        path: &[u8],
        executable: bool,
        size: u64,
        _: &mut dyn Read,
    ) -> io::Result<()> {
        self.entries
            .push((path.to_vec(), NodeKind::Regular { executable, size }));
        Ok(())
    }
}

struct Parser<R> {
    r: R,
    pos: u64,
    path: Vec<u8>,
}

/// Parses one archive from `r`, calling `handler` per node. Returns the archive's size.
/// Bytes after the archive are left unread.
pub fn parse(r: impl Read, handler: &mut dyn NarHandler) -> Result<u64, NarError> {
    let mut p = Parser {
        r,
        pos: 0,
        path: Vec::new(),
    };
    let magic = p.read_str()?;
    if magic != MAGIC {
        return Err(p.err(NarErrorKind::BadMagic(lossy(&magic))));
    }
    p.node(handler, 0)?;
    Ok(p.pos)
}

/// Like [`parse`], and requires the input to end with the archive.
pub fn parse_to_end(r: impl Read, handler: &mut dyn NarHandler) -> Result<u64, NarError> {
    let mut p = Parser {
        r,
        pos: 0,
        path: Vec::new(),
    };
    let magic = p.read_str()?;
    if magic != MAGIC {
        return Err(p.err(NarErrorKind::BadMagic(lossy(&magic))));
    }
    p.node(handler, 0)?;
    let mut probe = [0u8; 1];
    loop {
        match p.r.read(&mut probe) {
            Ok(0) => return Ok(p.pos),
            Ok(_) => return Err(p.err(NarErrorKind::TrailingData)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(p.err(NarErrorKind::Io(e))),
        }
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl<R: Read> Parser<R> {
    fn err(&self, kind: NarErrorKind) -> NarError {
        NarError {
            offset: self.pos,
            path: lossy(&self.path),
            kind,
        }
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), NarError> {
        match self.r.read_exact(buf) {
            Ok(()) => {
                self.pos += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(self.err(NarErrorKind::Truncated))
            }
            Err(e) => Err(self.err(NarErrorKind::Io(e))),
        }
    }

    fn read_u64(&mut self) -> Result<u64, NarError> {
        let mut b = [0u8; 8];
        self.read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn read_padding(&mut self, len: u64) -> Result<(), NarError> {
        let mut pad = [0u8; 8];
        let n = padding(len);
        self.read_exact(&mut pad[..n])?;
        if pad[..n].iter().any(|&b| b != 0) {
            self.pos -= n as u64;
            return Err(self.err(NarErrorKind::NonZeroPadding));
        }
        Ok(())
    }

    fn read_str(&mut self) -> Result<Vec<u8>, NarError> {
        let len = self.read_u64()?;
        if len > MAX_STRING {
            self.pos -= 8;
            return Err(self.err(NarErrorKind::StringTooLong(len)));
        }
        let mut s = vec![0u8; len as usize];
        self.read_exact(&mut s)?;
        self.read_padding(len)?;
        Ok(s)
    }

    fn expect(&mut self, token: &'static str) -> Result<(), NarError> {
        let start = self.pos;
        let s = self.read_str()?;
        if s != token.as_bytes() {
            self.pos = start;
            return Err(self.err(NarErrorKind::UnexpectedToken {
                expected: token,
                found: lossy(&s),
            }));
        }
        Ok(())
    }

    fn node(&mut self, handler: &mut dyn NarHandler, depth: usize) -> Result<(), NarError> {
        if depth > MAX_DEPTH {
            return Err(self.err(NarErrorKind::TooDeep));
        }
        self.expect("(")?;
        self.expect("type")?;
        let start = self.pos;
        let ty = self.read_str()?;
        match ty.as_slice() {
            b"regular" => self.regular(handler)?,
            b"symlink" => {
                self.expect("target")?;
                let target = self.read_str()?;
                if target.is_empty() {
                    return Err(self.err(NarErrorKind::EmptySymlink));
                }
                if target.contains(&0) {
                    return Err(self.err(NarErrorKind::BadName {
                        name: lossy(&target),
                        reason: "symlink target contains NUL",
                    }));
                }
                handler
                    .symlink(&self.path, &target)
                    .map_err(|e| self.err(NarErrorKind::Handler(e)))?;
            }
            b"directory" => {
                handler
                    .directory(&self.path)
                    .map_err(|e| self.err(NarErrorKind::Handler(e)))?;
                self.directory(handler, depth)?;
                return Ok(());
            }
            other => {
                self.pos = start;
                return Err(self.err(NarErrorKind::UnexpectedToken {
                    expected: "regular, symlink or directory",
                    found: lossy(other),
                }));
            }
        }
        self.expect(")")
    }

    fn regular(&mut self, handler: &mut dyn NarHandler) -> Result<(), NarError> {
        let start = self.pos;
        let mut tok = self.read_str()?;
        let mut executable = false;
        if tok == b"executable" {
            executable = true;
            self.expect("")?;
            tok = self.read_str()?;
        }
        if tok != b"contents" {
            self.pos = start;
            return Err(self.err(NarErrorKind::UnexpectedToken {
                expected: "contents",
                found: lossy(&tok),
            }));
        }
        let size = self.read_u64()?;
        let mut contents = Contents {
            r: &mut self.r,
            remaining: size,
            failed: None,
        };
        let result = handler.file(&self.path, executable, size, &mut contents);
        let drained = io::copy(&mut contents, &mut io::sink());
        let (failed, remaining) = (contents.failed.take(), contents.remaining);
        self.pos += size - remaining;
        if let Some((kind, message)) = failed {
            return Err(self.err(if kind == io::ErrorKind::UnexpectedEof {
                NarErrorKind::Truncated
            } else {
                NarErrorKind::Io(io::Error::new(kind, message))
            }));
        }
        result.map_err(|e| self.err(NarErrorKind::Handler(e)))?;
        drained.map_err(|e| self.err(NarErrorKind::Io(e)))?;
        self.read_padding(size)
    }

    fn directory(&mut self, handler: &mut dyn NarHandler, depth: usize) -> Result<(), NarError> {
        let mut prev: Option<Vec<u8>> = None;
        loop {
            let start = self.pos;
            let tok = self.read_str()?;
            match tok.as_slice() {
                b")" => return Ok(()),
                b"entry" => {}
                other => {
                    self.pos = start;
                    return Err(self.err(NarErrorKind::UnexpectedToken {
                        expected: "entry or )",
                        found: lossy(other),
                    }));
                }
            }
            self.expect("(")?;
            self.expect("name")?;
            let name_pos = self.pos;
            let name = self.read_str()?;
            let bad = |reason| NarErrorKind::BadName {
                name: lossy(&name),
                reason,
            };
            let problem = if name.is_empty() {
                Some(bad("empty"))
            } else if name == b"." || name == b".." {
                Some(bad("'.' and '..' are not allowed"))
            } else if name.contains(&b'/') {
                Some(bad("contains '/'"))
            } else if name.contains(&0) {
                Some(bad("contains NUL"))
            } else if prev.as_ref().is_some_and(|p| *p >= name) {
                Some(NarErrorKind::Unsorted {
                    prev: lossy(prev.as_ref().unwrap()),
                    name: lossy(&name),
                })
            } else {
                None
            };
            if let Some(kind) = problem {
                self.pos = name_pos;
                return Err(self.err(kind));
            }
            self.expect("node")?;
            let parent_len = self.path.len();
            if !self.path.is_empty() {
                self.path.push(b'/');
            }
            self.path.extend_from_slice(&name);
            self.node(handler, depth + 1)?;
            self.path.truncate(parent_len);
            self.expect(")")?;
            prev = Some(name);
        }
    }
}

/// The contents of one regular file, bounded to its declared size.
struct Contents<'a, R> {
    r: &'a mut R,
    remaining: u64,
    /// What went wrong, kept for the error: the handler may report it in its own words.
    failed: Option<(io::ErrorKind, String)>,
}

impl<R: Read> Read for Contents<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(self.remaining) as usize;
        match self.r.read(&mut buf[..want]) {
            Ok(0) => {
                self.failed = Some((io::ErrorKind::UnexpectedEof, String::new()));
                Err(io::ErrorKind::UnexpectedEof.into())
            }
            Ok(n) => {
                self.remaining -= n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.failed = Some((e.kind(), e.to_string()));
                Err(e)
            }
        }
    }
}
