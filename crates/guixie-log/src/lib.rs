//! guixie's transparency log, the evidence layer peers and auditors check instead of trusting
//! each other:
//!
//! - [`merkle`]: RFC 6962/9162 tree hashing, inclusion and consistency proofs and their
//!   verification (pure functions);
//! - [`storage`]: the append-only log on disk, reopened at its last durable size after a crash;
//! - [`note`]: C2SP signed notes with Ed25519 keys (`name+id+key` verifier keys);
//! - [`checkpoint`]: C2SP `tlog-checkpoint`s and `tlog-cosignature` witness cosignatures;
//! - [`verifier`]: what a client remembers per log, detecting forks and equivocation.
//!
//! Clock and randomness are passed in: nothing here reads the time.

pub mod checkpoint;
pub mod merkle;
pub mod note;
pub mod storage;
pub mod verifier;

pub use storage::{FileLog, LogError};
