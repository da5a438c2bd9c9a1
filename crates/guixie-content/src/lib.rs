//! NARs addressed by their BLAKE3 root, for exchange between peers:
//! - [`blob`]: the root and the bao outboard of a NAR stream (16 KiB chunk groups), and the
//!   validated encoding of chunk ranges from a NAR file a peer serves;
//! - [`download`]: a sans-IO download of one blob from several peers at once. It is fed
//!   responses and time; each chunk group is verified against the root the caller took from
//!   attestations (never from the serving peer) before its bytes are handed out to be written;
//!   a peer that lies is dropped and its share goes to the others.

pub mod blob;
pub mod download;

pub use blob::{Blob, BlobError, Outboard, CHUNK_GROUP_BYTES};
pub use download::{Download, DownloadError, PeerId, Request, RequestId, Verified};
