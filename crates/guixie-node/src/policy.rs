//! A node's trust policy, as a JSON file:
//! `{"k": 2, "builders": [{"name": "alice", "attestation_key": "alice-1:…",
//! "log_key": "<note verifier key>", "witnesses": ["<verifier key>"], "witness_threshold": 0}]}`.

use serde::Deserialize;
use thiserror::Error;

use guixie_formats::signing::PublicKey;
use guixie_log::note::VerifierKey;
use guixie_trust::rule::{check_policy, PolicyError};
use guixie_trust::votes::Builder;

#[derive(Clone, Debug)]
pub struct Policy {
    pub k: u64,
    pub builders: Vec<Builder>,
}

#[derive(Debug, Error)]
pub enum PolicyFileError {
    #[error("trust policy: {0}")]
    Json(#[from] serde_json::Error),
    #[error("trust policy, builder {builder:?}: {message}")]
    Key { builder: String, message: String },
    #[error("trust policy: {0}")]
    Unusable(#[from] PolicyError),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyJson {
    k: u64,
    builders: Vec<BuilderJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BuilderJson {
    name: String,
    attestation_key: String,
    log_key: String,
    #[serde(default)]
    witnesses: Vec<String>,
    #[serde(default)]
    witness_threshold: usize,
}

impl Policy {
    pub fn parse(text: &str) -> Result<Self, PolicyFileError> {
        let json: PolicyJson = serde_json::from_str(text)?;
        let mut builders = Vec::new();
        for b in json.builders {
            let key_err = |message: String| PolicyFileError::Key {
                builder: b.name.clone(),
                message,
            };
            let witnesses = b
                .witnesses
                .iter()
                .map(|w| VerifierKey::parse(w).map_err(|e| key_err(format!("witness: {e}"))))
                .collect::<Result<Vec<_>, _>>()?;
            if b.witness_threshold > witnesses.len() {
                return Err(key_err(format!(
                    "witness_threshold {} is more than its {} witnesses",
                    b.witness_threshold,
                    witnesses.len()
                )));
            }
            builders.push(Builder {
                attestation_key: PublicKey::parse(&b.attestation_key)
                    .map_err(|e| key_err(format!("attestation_key: {e}")))?,
                log_key: VerifierKey::parse(&b.log_key)
                    .map_err(|e| key_err(format!("log_key: {e}")))?,
                witnesses,
                witness_threshold: b.witness_threshold,
                name: b.name,
            });
        }
        let mut origins = std::collections::BTreeSet::new();
        for b in &builders {
            if !origins.insert(b.log_key.name.clone()) {
                return Err(PolicyFileError::Key {
                    builder: b.name.clone(),
                    message: format!(
                        "its log's origin {:?} is another builder's too: each log needs its own",
                        b.log_key.name
                    ),
                });
            }
        }
        let names: Vec<String> = builders.iter().map(|b| b.name.clone()).collect();
        check_policy(&names, json.k)?;
        Ok(Policy {
            k: json.k,
            builders,
        })
    }

    /// The builder whose log has this origin.
    pub fn builder_by_log(&self, origin: &str) -> Option<&Builder> {
        self.builders.iter().find(|b| b.log_key.name == origin)
    }
}
