//! The formats Nix and Guix share, byte for byte: Nix32, hashes, store paths, NAR archives,
//! `.drv` ATerm derivations, narinfo files and Ed25519 signing keys.
//!
//! This crate owns formats, not policy: it reads from and writes to whatever it is handed,
//! knows nothing of a local store, a database or the network, and never depends on a higher
//! guixie crate. Anything that needs to speak Nix's formats can reuse it.

pub mod derivation;
pub mod guix_signature;
pub mod hash;
pub mod nar;
pub mod narinfo;
pub mod nixbase32;
pub mod refscan;
pub mod signing;
pub mod store_path;

pub use hash::{Encoding, Hash, HashAlgo};
pub use store_path::{StoreDir, StorePath};
