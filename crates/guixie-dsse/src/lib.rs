//! DSSE envelopes (<https://github.com/secure-systems-lab/dsse>): a payload, its type, and
//! Ed25519 signatures over the pre-authentication encoding of both. The JSON form is the
//! standard one, so DSSE tooling reads what guixie writes. No I/O and no `std`: the
//! governance core builds on this in `no_std` environments.
//!
//! A signature's key id is a claim, never trusted: whoever counts signers checks each
//! signature against the keys it trusts and counts each key once.

#![no_std]

extern crate alloc;

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use data_encoding::BASE64;
use serde::{Deserialize, Serialize};

/// Most signatures accepted on one envelope.
pub const MAX_SIGNATURES: usize = 64;
/// Longest payload type accepted.
pub const MAX_PAYLOAD_TYPE_BYTES: usize = 256;
/// Longest key id accepted.
pub const MAX_KEYID_BYTES: usize = 256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DsseError {
    #[error("envelope is {len} bytes, more than the {max} allowed")]
    TooLarge { len: usize, max: usize },
    #[error("malformed envelope: {0}")]
    Malformed(String),
}

/// A DSSE envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub payload_type: String,
    pub payload: Vec<u8>,
    /// (claimed key id, signature bytes)
    pub signatures: Vec<(String, Vec<u8>)>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvelopeJson {
    #[serde(rename = "payloadType")]
    payload_type: String,
    payload: String,
    signatures: Vec<SignatureJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureJson {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    keyid: String,
    sig: String,
}

/// DSSE's pre-authentication encoding: `DSSEv1 <len> <type> <len> <body>`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

impl Envelope {
    pub fn new(payload_type: &str, payload: Vec<u8>) -> Self {
        Envelope {
            payload_type: payload_type.to_owned(),
            payload,
            signatures: Vec::new(),
        }
    }

    /// The bytes every signature is over.
    pub fn signed_message(&self) -> Vec<u8> {
        pae(&self.payload_type, &self.payload)
    }

    pub fn push_signature(&mut self, keyid: &str, signature: [u8; 64]) {
        self.signatures.push((keyid.to_owned(), signature.to_vec()));
    }

    /// Parses the JSON form; refuses more than `max_bytes`, more than [`MAX_SIGNATURES`]
    /// signatures, and over-long type or key id strings before trusting any of it.
    pub fn parse(bytes: &[u8], max_bytes: usize) -> Result<Self, DsseError> {
        if bytes.len() > max_bytes {
            return Err(DsseError::TooLarge {
                len: bytes.len(),
                max: max_bytes,
            });
        }
        let json: EnvelopeJson =
            serde_json::from_slice(bytes).map_err(|e| DsseError::Malformed(e.to_string()))?;
        if json.payload_type.len() > MAX_PAYLOAD_TYPE_BYTES {
            return Err(DsseError::Malformed(format!(
                "payloadType of {} bytes, at most {MAX_PAYLOAD_TYPE_BYTES}",
                json.payload_type.len()
            )));
        }
        let payload = BASE64
            .decode(json.payload.as_bytes())
            .map_err(|e| DsseError::Malformed(format!("payload: {e}")))?;
        if json.signatures.len() > MAX_SIGNATURES {
            return Err(DsseError::Malformed(format!(
                "{} signatures, at most {MAX_SIGNATURES}",
                json.signatures.len()
            )));
        }
        let mut signatures = Vec::new();
        for (i, s) in json.signatures.into_iter().enumerate() {
            if s.keyid.len() > MAX_KEYID_BYTES {
                return Err(DsseError::Malformed(format!(
                    "signature {}: key id of {} bytes, at most {MAX_KEYID_BYTES}",
                    i + 1,
                    s.keyid.len()
                )));
            }
            let sig = BASE64
                .decode(s.sig.as_bytes())
                .map_err(|e| DsseError::Malformed(format!("signature {}: {e}", i + 1)))?;
            signatures.push((s.keyid, sig));
        }
        Ok(Envelope {
            payload_type: json.payload_type,
            payload,
            signatures,
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(&EnvelopeJson {
            payload_type: self.payload_type.clone(),
            payload: BASE64.encode(&self.payload),
            signatures: self
                .signatures
                .iter()
                .map(|(k, s)| SignatureJson {
                    keyid: k.clone(),
                    sig: BASE64.encode(s),
                })
                .collect(),
        })
        .expect("envelopes serialise")
    }

    /// Keeps only signatures that verify with one of `keys`, one for each key (the canonical
    /// form to keep: no junk signatures, no duplicates).
    pub fn retain_signed_by(&mut self, keys: &[[u8; 32]]) {
        let message = self.signed_message();
        let mut kept: Vec<(String, Vec<u8>)> = Vec::new();
        for key in keys {
            let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(key) else {
                continue;
            };
            let by_key = self.signatures.iter().find(|(_, sig)| {
                <[u8; 64]>::try_from(sig.as_slice()).is_ok_and(|sig| {
                    vk.verify_strict(&message, &ed25519_dalek::Signature::from_bytes(&sig))
                        .is_ok()
                })
            });
            if let Some(s) = by_key {
                kept.push(s.clone());
            }
        }
        self.signatures = kept;
    }

    /// True when some signature, whatever key id it claims, verifies (strictly) with `key`.
    pub fn is_signed_by(&self, key: &[u8; 32]) -> bool {
        let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(key) else {
            return false;
        };
        let message = self.signed_message();
        self.signatures.iter().any(|(_, sig)| {
            <[u8; 64]>::try_from(sig.as_slice()).is_ok_and(|sig| {
                key.verify_strict(&message, &ed25519_dalek::Signature::from_bytes(&sig))
                    .is_ok()
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn signed(seed: u8, payload: &[u8]) -> (Envelope, [u8; 32]) {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let mut env = Envelope::new("application/x-test", payload.to_vec());
        env.push_signature("k", key.sign(&env.signed_message()).to_bytes());
        (env, key.verifying_key().to_bytes())
    }

    #[test]
    fn pae_matches_the_dsse_specification_example() {
        // The DSSE protocol document's test vector.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn round_trips_and_checks_signatures_by_key_not_by_claimed_id() {
        let (env, key) = signed(1, b"{\"a\":1}");
        let parsed = Envelope::parse(env.to_json().as_bytes(), 1 << 16).unwrap();
        assert_eq!(parsed, env);
        assert!(parsed.is_signed_by(&key));
        let (_, other) = signed(2, b"x");
        assert!(!parsed.is_signed_by(&other));
        let mut tampered = parsed.clone();
        tampered.payload = b"{\"a\":2}".to_vec();
        assert!(!tampered.is_signed_by(&key));
        let mut retyped = parsed;
        retyped.payload_type = "application/x-other".into();
        assert!(!retyped.is_signed_by(&key));
    }

    #[test]
    fn refuses_oversized_and_malformed_input() {
        let (env, _) = signed(1, b"p");
        let json = env.to_json();
        assert!(matches!(
            Envelope::parse(json.as_bytes(), 10),
            Err(DsseError::TooLarge { .. })
        ));
        for bad in [
            "",
            "{}",
            "{\"payloadType\":\"t\",\"payload\":\"!!\",\"signatures\":[]}",
            "{\"payloadType\":\"t\",\"payload\":\"\",\"signatures\":[],\"extra\":1}",
            "{\"payloadType\":\"t\",\"payload\":\"\",\"signatures\":[{\"sig\":\"%%\"}]}",
        ] {
            assert!(
                matches!(
                    Envelope::parse(bad.as_bytes(), 1 << 16),
                    Err(DsseError::Malformed(_))
                ),
                "{bad}"
            );
        }
        let many = format!(
            "{{\"payloadType\":\"t\",\"payload\":\"\",\"signatures\":[{}]}}",
            alloc::vec!["{\"sig\":\"\"}"; MAX_SIGNATURES + 1].join(",")
        );
        assert!(Envelope::parse(many.as_bytes(), 1 << 16).is_err());
    }
}
