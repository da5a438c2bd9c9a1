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

pub use instance::{Counted, Effect, Instance};
pub use key::MemberKey;
pub use motion::{Motion, Status};
pub use proposal::{Change, PolicyBuilder, Proposal, Rebuild, TrustPolicy, Vote};
pub use state::{GovState, State};

/// Payload types of the kinds of signed documents.
pub const STATE_PAYLOAD_TYPE: &str = "application/vnd.guixie.governance.state.v1+json";
pub const PROPOSAL_PAYLOAD_TYPE: &str = "application/vnd.guixie.governance.proposal.v1+json";
pub const VOTE_PAYLOAD_TYPE: &str = "application/vnd.guixie.governance.vote.v1+json";
pub const WITHDRAWAL_PAYLOAD_TYPE: &str = "application/vnd.guixie.governance.withdrawal.v1+json";

/// Caps on every input, checked before anything in it is trusted.
pub const MAX_STATE_BYTES: usize = 64 << 10;
pub const MAX_PROPOSAL_BYTES: usize = 128 << 10;
pub const MAX_VOTE_BYTES: usize = 16 << 10;
pub const MAX_MEMBERS: usize = 64;
pub const MAX_NAME_BYTES: usize = 64;
pub const MAX_FIELD_BYTES: usize = 256;
pub const MAX_BUILDERS: usize = 64;
/// Most undecided proposals one member may have made at a time.
pub const MAX_OPEN_PROPOSALS_PER_MEMBER: usize = 8;
/// Most proposals one member may make under one governance version that were not applied
/// (withdrawn, disapproved, open): a member cannot grow the journal without bound.
pub const MAX_UNAPPLIED_PROPOSALS_PER_MEMBER: usize = 32;
/// Most votes one member may cast on one proposal (switching included).
pub const MAX_VOTES_PER_MEMBER: u32 = 16;

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

/// Checks a guixie version: dotted numbers ("0.2.0"), so that which is newer is never in doubt.
pub fn check_version(version: &str) -> Result<(), GovError> {
    let ok = !version.is_empty()
        && version.len() <= 64
        && version
            .split('.')
            .all(|c| !c.is_empty() && c.len() <= 9 && c.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(GovError::Invalid(alloc::format!(
            "version {:?}: dotted numbers, as 0.2.0",
            version.chars().take(80).collect::<String>()
        )))
    }
}

/// Compares versions of dotted numbers component by component, a missing component being 0
/// ("1.10" > "1.9", "1.0" = "1.0.0"). Versions are checked by [`check_version`] first; a
/// component that is not a number counts as 0.
pub fn compare_versions(a: &str, b: &str) -> core::cmp::Ordering {
    let parts = |v: &str| -> alloc::vec::Vec<u64> {
        let mut p: alloc::vec::Vec<u64> = v.split('.').map(|c| c.parse().unwrap_or(0)).collect();
        while p.last() == Some(&0) {
            p.pop();
        }
        p
    };
    parts(a).cmp(&parts(b))
}

#[cfg(test)]
mod tests;
