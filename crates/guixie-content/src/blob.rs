//! A blob's identity (BLAKE3 root and size) and its bao outboard: the hash pairs of the tree
//! above 16 KiB chunk groups, 64 bytes per group, kept beside the NAR a peer serves. The root
//! equals the plain BLAKE3 hash of the bytes; the chunk groups only set how finely a range can
//! be verified.

use std::io::{self, Read};

use bao_tree::io::outboard::PreOrderMemOutboard;
use bao_tree::io::sync::{encode_ranges_validated, outboard};
use bao_tree::{BaoTree, BlockSize, ChunkNum, ChunkRanges};
use thiserror::Error;

/// 2^4 BLAKE3 chunks of 1 KiB.
pub const BLOCK_SIZE: BlockSize = BlockSize::from_chunk_log(4);
pub const CHUNK_GROUP_BYTES: u64 = 16 << 10;

/// A NAR by content: its BLAKE3 root and its size. Both come from attestations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Blob {
    pub root: [u8; 32],
    pub size: u64,
}

#[derive(Debug, Error)]
pub enum BlobError {
    #[error("{0:?} is not `blake3:` and 64 hex digits")]
    BadRoot(String),
    #[error("the data is {found} bytes, not the {expected} expected")]
    WrongSize { expected: u64, found: u64 },
    #[error("the data is longer than the {expected} bytes expected")]
    TooLong { expected: u64 },
    #[error("the outboard is {found} bytes, not the {expected} a {size}-byte blob has")]
    WrongOutboardSize {
        expected: u64,
        found: u64,
        size: u64,
    },
    #[error("range {start}..{end} is not whole 16 KiB chunk groups of a {size}-byte blob")]
    BadRange { start: u64, end: u64, size: u64 },
    #[error("the data does not match its outboard: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl Blob {
    /// `blake3:<hex>`, as attestations carry it.
    pub fn root_string(&self) -> String {
        format!("blake3:{}", data_encoding::HEXLOWER.encode(&self.root))
    }

    pub fn parse_root(text: &str) -> Result<[u8; 32], BlobError> {
        text.strip_prefix("blake3:")
            .and_then(|hex| data_encoding::HEXLOWER.decode(hex.as_bytes()).ok())
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| BlobError::BadRoot(text.to_owned()))
    }

    pub(crate) fn tree(&self) -> BaoTree {
        BaoTree::new(self.size, BLOCK_SIZE)
    }

    /// Checks that `start..end` is whole chunk groups inside the blob (the last may be short).
    pub fn check_range(&self, start: u64, end: u64) -> Result<ChunkRanges, BlobError> {
        let aligned = |x: u64| x.is_multiple_of(CHUNK_GROUP_BYTES);
        if start >= end || end > self.size || !aligned(start) || !(aligned(end) || end == self.size)
        {
            return Err(BlobError::BadRange {
                start,
                end,
                size: self.size,
            });
        }
        Ok(chunk_ranges(start, end))
    }
}

/// 1 KiB BLAKE3 chunks covering bytes `start..end`.
pub(crate) fn chunk_ranges(start: u64, end: u64) -> ChunkRanges {
    ChunkRanges::from(ChunkNum(start / 1024)..ChunkNum(end.div_ceil(1024)))
}

/// The outboard of one blob, in memory (64 bytes per 16 KiB: 4 MiB for a 1 GiB NAR).
#[derive(Clone, Debug)]
pub struct Outboard {
    inner: PreOrderMemOutboard,
}

impl Outboard {
    /// Reads exactly `size` bytes from `data` (a NAR stream) and computes the outboard.
    pub fn compute(data: impl Read, size: u64) -> Result<Self, BlobError> {
        let tree = BaoTree::new(size, BLOCK_SIZE);
        let mut inner = PreOrderMemOutboard {
            root: blake3::Hash::from([0; 32]),
            tree,
            data: vec![0; outboard_len(size)?],
        };
        let mut counted = Counted {
            inner: data,
            read: 0,
        };
        let root = outboard((&mut counted).take(size), tree, &mut inner).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                BlobError::WrongSize {
                    expected: size,
                    found: counted.read,
                }
            } else {
                BlobError::Io(e)
            }
        })?;
        let mut probe = [0u8; 1];
        if counted.inner.read(&mut probe)? != 0 {
            return Err(BlobError::TooLong { expected: size });
        }
        inner.root = root;
        Ok(Outboard { inner })
    }

    /// An outboard kept on disk beside its NAR, for `blob`. Its hash pairs are checked against
    /// the data whenever a range is encoded.
    pub fn from_bytes(blob: Blob, bytes: Vec<u8>) -> Result<Self, BlobError> {
        let expected = outboard_len(blob.size)? as u64;
        if bytes.len() as u64 != expected {
            return Err(BlobError::WrongOutboardSize {
                expected,
                found: bytes.len() as u64,
                size: blob.size,
            });
        }
        Ok(Outboard {
            inner: PreOrderMemOutboard {
                root: blake3::Hash::from(blob.root),
                tree: blob.tree(),
                data: bytes,
            },
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.inner.data
    }

    pub fn blob(&self) -> Blob {
        Blob {
            root: *self.inner.root.as_bytes(),
            size: self.inner.tree.size(),
        }
    }

    /// The verified-streaming encoding of bytes `start..end` of `data` (the NAR file): the hash
    /// pairs from the root down, then each chunk group, each checked against the outboard
    /// before it is written, so a damaged copy is never served.
    pub fn encode(
        &self,
        data: &impl positioned_io::ReadAt,
        start: u64,
        end: u64,
    ) -> Result<Vec<u8>, BlobError> {
        let ranges = self.blob().check_range(start, end)?;
        let mut out = Vec::with_capacity((end - start) as usize + 1024);
        encode_ranges_validated(data, &self.inner, &ranges, &mut out)
            .map_err(|e| BlobError::Corrupt(e.to_string()))?;
        Ok(out)
    }
}

fn outboard_len(size: u64) -> Result<usize, BlobError> {
    usize::try_from(BaoTree::new(size, BLOCK_SIZE).outboard_size())
        .map_err(|_| BlobError::Io(io::Error::other("outboard too large for memory")))
}

struct Counted<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
