//! Governance of a guixie instance: who its members are, and which changes they approved.
//!
//! Pure: no I/O, no clock (every check that depends on time takes `now`, seconds since the
//! epoch, from the caller), no randomness, and no `std`, so a Substrate pallet or any other
//! host can wrap it. The CLI keeps the files and the transparency log around it.
//!
//! - [`state`]: the governance state (members' Ed25519 keys, threshold, version, expiry) as a
//!   DSSE-signed document. Version N+1 is accepted after N only when at least threshold(N)
//!   distinct keys of N and threshold(N+1) distinct keys of N+1 signed it, as TUF rotates its
//!   root; a state past its expiry is refused.
//! - [`proposal`]: signed proposals (upgrade, membership, extension, trust policy) and votes.
//! - [`motion`]: the tally of one proposal, as pallet-collective counts votes.
//! - [`instance`]: the whole governance of an instance as a state machine fed signed
//!   documents.

#![no_std]

extern crate alloc;

pub mod instance;
pub mod key;
pub mod motion;
pub mod proposal;
pub mod state;

use alloc::string::String;

pub use instance::{Effect, Instance};
pub use key::MemberKey;
pub use motion::{Motion, Status};
pub use proposal::{Change, Proposal, Rebuild, Vote};
pub use state::{GovState, State};

/// Payload types of the three kinds of signed documents.
pub const STATE_PAYLOAD_TYPE: &str = "application/vnd.guixie.governance.state.v1+json";
pub const PROPOSAL_PAYLOAD_TYPE: &str = "application/vnd.guixie.governance.proposal.v1+json";
pub const VOTE_PAYLOAD_TYPE: &str = "application/vnd.guixie.governance.vote.v1+json";

/// Caps on every input, checked before anything in it is trusted.
pub const MAX_STATE_BYTES: usize = 64 << 10;
pub const MAX_PROPOSAL_BYTES: usize = 128 << 10;
pub const MAX_VOTE_BYTES: usize = 16 << 10;
pub const MAX_MEMBERS: usize = 64;
pub const MAX_NAME_BYTES: usize = 64;
pub const MAX_FIELD_BYTES: usize = 256;
pub const MAX_BUILDERS: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GovError {
    #[error("{what}: {source}")]
    Envelope {
        what: &'static str,
        source: guixie_dsse::DsseError,
    },
    #[error("{what}: payload type is {found:?}, expected {expected:?}")]
    PayloadType {
        what: &'static str,
        expected: &'static str,
        found: String,
    },
    #[error("{what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("{0}")]
    Invalid(String),
    #[error("it names instance {found:?}; this is instance {expected:?}")]
    WrongInstance { expected: String, found: String },
    #[error("version {found} cannot follow version {trusted}: versions go up one at a time")]
    NotNext { trusted: u64, found: u64 },
    #[error("{found} distinct key(s) of {whose} signed; {required} required")]
    BelowThreshold {
        whose: String,
        required: usize,
        found: usize,
    },
    #[error("governance version {version} expired at {expires} (now {now}): a quorum must sign a new version")]
    Expired {
        version: u64,
        expires: i64,
        now: i64,
    },
    #[error("{0}")]
    Refused(String),
}

/// Lowercase hex of SHA-256: how documents are named by their signed bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(bytes))
}

/// Compares dotted versions component by component, numbers numerically ("1.10" > "1.9").
pub fn compare_versions(a: &str, b: &str) -> core::cmp::Ordering {
    let mut a = a.split(['.', '-', '+']);
    let mut b = b.split(['.', '-', '+']);
    loop {
        match (a.next(), b.next()) {
            (None, None) => return core::cmp::Ordering::Equal,
            (None, Some(_)) => return core::cmp::Ordering::Less,
            (Some(_), None) => return core::cmp::Ordering::Greater,
            (Some(x), Some(y)) => {
                let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    _ => x.cmp(y),
                };
                if ord.is_ne() {
                    return ord;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
