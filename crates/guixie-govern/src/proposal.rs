//! Proposals and votes: DSSE-signed statements naming the instance, the proposal's index and
//! (for votes) the proposal's digest, so that none counts anywhere else.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use guixie_dsse::Envelope;
use serde::{Deserialize, Serialize};

use crate::key::{check_name, MemberKey};
use crate::{
    GovError, MAX_BUILDERS, MAX_FIELD_BYTES, MAX_PROPOSAL_BYTES, MAX_VOTE_BYTES,
    PROPOSAL_PAYLOAD_TYPE, VOTE_PAYLOAD_TYPE,
};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proposal {
    pub instance: String,
    /// Proposals of an instance are numbered 0, 1, 2, …; an index is used once.
    pub index: u64,
    /// The governance version whose members vote on it, and the digest of that state: a
    /// proposal counts only in the instance whose state it names.
    pub governance_version: u64,
    pub state: String,
    pub change: Change,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Change {
    /// Run guixie built from `source` (the NAR hash of its source tree), whose build must
    /// have the NAR hash `nar_hash`. An older `version` than the current one is refused
    /// unless `downgrade` says the quorum means it.
    Upgrade {
        version: String,
        source: String,
        nar_hash: String,
        #[serde(default)]
        downgrade: bool,
    },
    /// A new governance state (the signed envelope, as JSON), signed by its own quorum.
    Membership { state: String },
    /// Add (with the package's source and expected output) or remove a Guile extension.
    Extension {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        add: Option<ExtensionBuild>,
    },
    /// The builders and the k the substituter and the node accept.
    TrustPolicy(TrustPolicy),
}

/// A trust policy in the JSON of a node's policy file (`guixie node --policy`), so that an
/// approved one is used as it was signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustPolicy {
    pub k: u32,
    pub builders: Vec<PolicyBuilder>,
}

/// One builder of a trust policy: the key its attestations are signed with (`name:base64`),
/// its log's note verifier key, and the witnesses whose cosignatures its checkpoints need.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyBuilder {
    pub name: String,
    pub attestation_key: String,
    pub log_key: String,
    #[serde(default)]
    pub witnesses: Vec<String>,
    #[serde(default)]
    pub witness_threshold: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtensionBuild {
    pub source: String,
    pub nar_hash: String,
}

/// A member's vote. An aye on a change that is built (upgrade, added extension) carries the
/// voter's own rebuild: the NAR hash it got and the digest of the attestation it signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vote {
    pub instance: String,
    pub index: u64,
    /// SHA-256 of the proposal's signed bytes.
    pub proposal: String,
    pub aye: bool,
    /// Greater than the round of the voter's previous vote on this proposal (the CLI takes the
    /// voter's clock): a vote replayed after the voter switched is refused.
    pub round: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebuild: Option<Rebuild>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rebuild {
    pub nar_hash: String,
    /// SHA-256 of the attestation envelope's JSON as it was appended to the voter's log.
    pub attestation: String,
}

/// A proposer taking back an undecided proposal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Withdrawal {
    pub instance: String,
    pub index: u64,
    /// SHA-256 of the proposal's signed bytes.
    pub proposal: String,
}

impl Withdrawal {
    pub fn to_envelope(&self) -> Envelope {
        Envelope::new(
            crate::WITHDRAWAL_PAYLOAD_TYPE,
            serde_json::to_vec(self).expect("withdrawals serialise"),
        )
    }

    /// Reads a signed withdrawal (the signatures are the caller's to check).
    pub fn parse(bytes: &[u8]) -> Result<(Withdrawal, Envelope), GovError> {
        let envelope = parse_envelope(
            bytes,
            "withdrawal",
            MAX_VOTE_BYTES,
            crate::WITHDRAWAL_PAYLOAD_TYPE,
        )?;
        let doc: Withdrawal = parse_payload(&envelope, "withdrawal")?;
        Ok((doc, envelope))
    }
}

/// A proposal as received: the document, its envelope and its digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedProposal {
    pub doc: Proposal,
    pub envelope: Envelope,
    pub digest: String,
}

impl SignedProposal {
    pub fn parse(bytes: &[u8]) -> Result<Self, GovError> {
        let envelope =
            parse_envelope(bytes, "proposal", MAX_PROPOSAL_BYTES, PROPOSAL_PAYLOAD_TYPE)?;
        let doc: Proposal = parse_payload(&envelope, "proposal")?;
        doc.validate()?;
        Ok(SignedProposal {
            digest: crate::sha256_hex(&envelope.signed_message()),
            doc,
            envelope,
        })
    }
}

/// A vote as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedVote {
    pub doc: Vote,
    pub envelope: Envelope,
}

impl SignedVote {
    pub fn parse(bytes: &[u8]) -> Result<Self, GovError> {
        let envelope = parse_envelope(bytes, "vote", MAX_VOTE_BYTES, VOTE_PAYLOAD_TYPE)?;
        let doc: Vote = parse_payload(&envelope, "vote")?;
        check_field("vote's proposal digest", &doc.proposal)?;
        if let Some(r) = &doc.rebuild {
            check_field("vote's rebuild NAR hash", &r.nar_hash)?;
            let hex = r.attestation.len() == 64
                && r.attestation
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !hex {
                return Err(GovError::Invalid(format!(
                    "vote's attestation digest {:?}: 64 lowercase hex digits (SHA-256)",
                    r.attestation.chars().take(80).collect::<String>()
                )));
            }
        }
        Ok(SignedVote { doc, envelope })
    }
}

impl Proposal {
    pub fn validate(&self) -> Result<(), GovError> {
        check_name("proposal's instance", &self.instance)?;
        check_field("proposal's state digest", &self.state)?;
        match &self.change {
            Change::Upgrade {
                version,
                source,
                nar_hash,
                ..
            } => {
                crate::check_version(version)?;
                check_field("upgrade's source", source)?;
                check_field("upgrade's NAR hash", nar_hash)?;
            }
            Change::Membership { state } => {
                if state.len() > crate::MAX_STATE_BYTES {
                    return Err(GovError::Invalid(format!(
                        "membership proposal: its state is {} bytes, at most {}",
                        state.len(),
                        crate::MAX_STATE_BYTES
                    )));
                }
            }
            Change::Extension { name, add } => {
                check_name("extension name", name)?;
                // `(guixie ext NAME)' names it, so NAME must read as a symbol.
                if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
                    return Err(GovError::Invalid(format!(
                        "extension name {name:?}: it starts with a letter, as (guixie ext NAME) reads it"
                    )));
                }
                if let Some(b) = add {
                    check_field("extension's source", &b.source)?;
                    check_field("extension's NAR hash", &b.nar_hash)?;
                }
            }
            Change::TrustPolicy(policy) => policy.check()?,
        }
        Ok(())
    }

    pub fn to_envelope(&self) -> Envelope {
        Envelope::new(
            PROPOSAL_PAYLOAD_TYPE,
            serde_json::to_vec(self).expect("proposals serialise"),
        )
    }

    /// What is built and must match: (source, NAR hash) for an upgrade or an added extension.
    pub fn build(&self) -> Option<(&str, &str)> {
        match &self.change {
            Change::Upgrade {
                source, nar_hash, ..
            } => Some((source, nar_hash)),
            Change::Extension { add: Some(b), .. } => Some((&b.source, &b.nar_hash)),
            _ => None,
        }
    }
}

impl Vote {
    pub fn to_envelope(&self) -> Envelope {
        Envelope::new(
            VOTE_PAYLOAD_TYPE,
            serde_json::to_vec(self).expect("votes serialise"),
        )
    }
}

fn parse_envelope(
    bytes: &[u8],
    what: &'static str,
    max: usize,
    payload_type: &'static str,
) -> Result<Envelope, GovError> {
    let envelope =
        Envelope::parse(bytes, max).map_err(|source| GovError::Envelope { what, source })?;
    if envelope.payload_type != payload_type {
        return Err(GovError::PayloadType {
            what,
            expected: payload_type,
            found: envelope.payload_type.chars().take(80).collect(),
        });
    }
    Ok(envelope)
}

fn parse_payload<T: serde::de::DeserializeOwned>(
    envelope: &Envelope,
    what: &'static str,
) -> Result<T, GovError> {
    serde_json::from_slice(&envelope.payload).map_err(|e| GovError::Malformed {
        what,
        reason: format!("{e}"),
    })
}

impl TrustPolicy {
    /// What can be checked without knowing the log's key format (the CLI parses the whole
    /// policy as a node would before it accepts one): sizes, names, distinct builders, keys
    /// and log origins, and k and each witness threshold within their counts.
    pub fn check(&self) -> Result<(), GovError> {
        let n = self.builders.len();
        if n == 0 || n > MAX_BUILDERS {
            return Err(GovError::Invalid(format!(
                "trust policy: {n} builders; 1 to {MAX_BUILDERS}"
            )));
        }
        let mut keys: Vec<[u8; 32]> = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        let mut origins: Vec<&str> = Vec::new();
        for b in &self.builders {
            check_name("trust policy builder", &b.name)?;
            let bad = |message: String| {
                GovError::Invalid(format!("trust policy, builder {:?}: {message}", b.name))
            };
            if names.contains(&b.name.as_str()) {
                return Err(bad("named twice".into()));
            }
            names.push(&b.name);
            let key = MemberKey::parse_as("attestation key", &b.attestation_key)
                .map_err(|e| bad(format!("{e}")))?;
            if keys.contains(&key.key) {
                return Err(bad(
                    "its attestation key is another builder's too: one signer would count twice"
                        .into(),
                ));
            }
            keys.push(key.key);
            check_field("log key", &b.log_key).map_err(|e| bad(format!("{e}")))?;
            let origin = b.log_key.split('+').next().unwrap_or_default();
            if origins.contains(&origin) {
                return Err(bad(format!(
                    "its log's origin {origin:?} is another builder's too"
                )));
            }
            origins.push(origin);
            if b.witnesses.len() > MAX_BUILDERS {
                return Err(bad(format!(
                    "{} witnesses, at most {MAX_BUILDERS}",
                    b.witnesses.len()
                )));
            }
            for w in &b.witnesses {
                check_field("witness key", w).map_err(|e| bad(format!("{e}")))?;
            }
            if b.witness_threshold as usize > b.witnesses.len() {
                return Err(bad(format!(
                    "witness_threshold {} is more than its {} witnesses",
                    b.witness_threshold,
                    b.witnesses.len()
                )));
            }
        }
        if self.k == 0 || self.k as usize > n {
            return Err(GovError::Invalid(format!(
                "trust policy: k = {} of {n} builders; it must be between 1 and their number",
                self.k
            )));
        }
        Ok(())
    }
}

/// Hashes and versions: short, printable, no spaces.
fn check_field(what: &str, value: &str) -> Result<(), GovError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_FIELD_BYTES
        && value.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(GovError::Invalid(format!(
            "{what} {:?}: 1 to {MAX_FIELD_BYTES} printable characters without spaces",
            value.chars().take(80).collect::<String>()
        )))
    }
}
