//! Build attestations. A builder states "derivation D produced outputs with these NAR hashes"
//! as an in-toto Statement (v1), signs it in a DSSE envelope with its Ed25519 key (Nix's
//! `name:base64` format), and appends the envelope to a transparency log. Standard in-toto
//! and DSSE tooling can read both.
//!
//! Verification counts distinct trusted keys: a key counts once however many signatures it
//! made and whatever key id a signature claims; the payload type must be in-toto's.

use std::collections::BTreeMap;

use guixie_formats::signing::{PublicKey, SecretKey};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://guixie.dev/attestation/build/v1";
/// Larger envelopes are refused before parsing.
pub const MAX_ENVELOPE_BYTES: usize = 1 << 20;
/// Most signatures accepted on one envelope.
pub const MAX_SIGNATURES: usize = guixie_dsse::MAX_SIGNATURES;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub type_: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: BuildPredicate,
}

/// An output path; its digest is of its NAR serialisation (`sha256`, base16).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildPredicate {
    pub derivation: DerivationRef,
    pub outputs: BTreeMap<String, OutputRef>,
    /// The builder's public key, `name:base64`.
    pub builder: String,
    /// Seconds since the epoch, from the builder's (injected) clock.
    pub time: i64,
    /// `full`: built in the sandbox (guixie has no unsandboxed builds; the field leaves room
    /// for peers that do).
    pub sandbox: String,
    #[serde(default)]
    pub evidence: Vec<EvidenceRef>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DerivationRef {
    pub path: String,
    /// `hashDerivationModulo`, base16.
    pub hash_modulo: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputRef {
    pub path: String,
    /// `sha256:<nix32>`, as in narinfo files.
    pub nar_hash: String,
    pub nar_size: u64,
    /// `blake3:<hex>`, the root peers fetch the NAR by (verified chunk group by chunk group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
    /// The store paths it refers to, as base names in store order: what a peer that fetches
    /// it by content registers, so they are attested too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<Vec<String>>,
}

/// Pointer to other evidence (a build log, a trace report) by its sha256.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceRef {
    pub kind: String,
    pub sha256: String,
}

impl Statement {
    /// A build statement; subjects are derived from `predicate.outputs`.
    pub fn build(predicate: BuildPredicate) -> Result<Self, AttestError> {
        let mut subject = Vec::new();
        for out in predicate.outputs.values() {
            let h = guixie_formats::Hash::parse(&out.nar_hash, None)
                .map_err(|e| AttestError::Invalid(format!("narHash of {}: {e}", out.path)))?;
            subject.push(Subject {
                name: out.path.clone(),
                digest: BTreeMap::from([(h.algo().name().to_owned(), h.to_hex())]),
            });
        }
        Ok(Statement {
            type_: STATEMENT_TYPE.into(),
            subject,
            predicate_type: PREDICATE_TYPE.into(),
            predicate,
        })
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AttestError {
    #[error("envelope is {0} bytes, more than the 1 MiB allowed")]
    TooLarge(usize),
    #[error("malformed envelope: {0}")]
    Malformed(String),
    #[error("payload type is {0:?}, expected \"application/vnd.in-toto+json\"")]
    WrongPayloadType(String),
    #[error("invalid statement: {0}")]
    Invalid(String),
    #[error("{found} distinct trusted key(s) signed; {required} required")]
    BelowThreshold { required: usize, found: usize },
}

/// A DSSE envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub payload_type: String,
    pub payload: Vec<u8>,
    /// (claimed key id, signature bytes)
    pub signatures: Vec<(String, Vec<u8>)>,
}

pub use guixie_dsse::pae;

impl From<guixie_dsse::Envelope> for Envelope {
    fn from(e: guixie_dsse::Envelope) -> Self {
        Envelope {
            payload_type: e.payload_type,
            payload: e.payload,
            signatures: e.signatures,
        }
    }
}

impl Envelope {
    pub fn sign(statement: &Statement, key: &SecretKey) -> Self {
        let payload = serde_json::to_vec(statement).expect("statements serialise");
        let mut env = Envelope {
            payload_type: PAYLOAD_TYPE.into(),
            payload,
            signatures: vec![],
        };
        env.add_signature(key);
        env
    }

    pub fn add_signature(&mut self, key: &SecretKey) {
        let sig = key.sign_raw(&pae(&self.payload_type, &self.payload));
        self.signatures.push((key.name().to_owned(), sig.to_vec()));
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, AttestError> {
        match guixie_dsse::Envelope::parse(bytes, MAX_ENVELOPE_BYTES) {
            Ok(e) => Ok(e.into()),
            Err(guixie_dsse::DsseError::TooLarge { len, .. }) => Err(AttestError::TooLarge(len)),
            Err(guixie_dsse::DsseError::Malformed(m)) => Err(AttestError::Malformed(m)),
        }
    }

    pub fn to_json(&self) -> String {
        guixie_dsse::Envelope {
            payload_type: self.payload_type.clone(),
            payload: self.payload.clone(),
            signatures: self.signatures.clone(),
        }
        .to_json()
    }

    /// The statement, without checking any signature (for `attest show`).
    pub fn statement(&self) -> Result<Statement, AttestError> {
        if self.payload_type != PAYLOAD_TYPE {
            return Err(AttestError::WrongPayloadType(self.payload_type.clone()));
        }
        let st: Statement = serde_json::from_slice(&self.payload)
            .map_err(|e| AttestError::Invalid(e.to_string()))?;
        if st.type_ != STATEMENT_TYPE {
            return Err(AttestError::Invalid(format!("_type is {:?}", st.type_)));
        }
        if st.predicate_type != PREDICATE_TYPE {
            return Err(AttestError::Invalid(format!(
                "predicateType is {:?}",
                st.predicate_type
            )));
        }
        Ok(st)
    }

    /// The trusted keys that signed (each once), if at least `threshold` did.
    pub fn verify<'k>(
        &self,
        trusted: &'k [PublicKey],
        threshold: usize,
    ) -> Result<(Statement, Vec<&'k PublicKey>), AttestError> {
        let statement = self.statement()?;
        let message = pae(&self.payload_type, &self.payload);
        let mut signers: Vec<&PublicKey> = Vec::new();
        for key in trusted {
            if signers.iter().any(|k| k.as_bytes() == key.as_bytes()) {
                continue;
            }
            let signed = self
                .signatures
                .iter()
                .any(|(_, sig)| key.verify_raw(&message, sig));
            if signed {
                signers.push(key);
            }
        }
        if signers.len() < threshold.max(1) {
            return Err(AttestError::BelowThreshold {
                required: threshold.max(1),
                found: signers.len(),
            });
        }
        Ok((statement, signers))
    }
}

#[cfg(test)]
mod tests;
