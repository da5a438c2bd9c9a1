//! NAR (Nix ARchive): the canonical serialisation of a file system tree that Nix hashes and
//! ships. Strings are `u64 LE length ‖ bytes ‖ zero padding to 8`. Writing and reading both
//! stream: memory stays bounded by the buffer size and the tree's depth, not by file sizes.

mod reader;
mod restore;
mod writer;

pub use reader::{parse, parse_to_end, NarError, NarErrorKind, NarHandler, NarListing, NodeKind};
pub use restore::{restore, RestoreError};
pub use writer::{
    dump_path, dump_path_excluding, hash_path, hash_path_excluding, hash_regular_file,
    nar_size_of_path, DumpError, Excluded, NarEncoder,
};

pub(crate) const MAGIC: &[u8] = b"nix-archive-1";
/// Largest name, symlink target or token accepted while reading; Linux allows at most 4096
/// bytes for a path, so anything longer cannot be restored anyway.
pub(crate) const MAX_STRING: u64 = 4096;
/// Deepest directory nesting accepted while reading (protects the parser's stack).
pub(crate) const MAX_DEPTH: usize = 256;
/// Buffer size for file contents while writing and reading.
pub(crate) const COPY_BUFFER: usize = 256 * 1024;

pub(crate) fn padding(len: u64) -> usize {
    ((8 - (len % 8)) % 8) as usize
}

#[cfg(test)]
mod tests;
