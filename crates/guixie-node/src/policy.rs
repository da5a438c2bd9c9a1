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
        let mut keys = std::collections::BTreeSet::new();
        for b in &builders {
            if !keys.insert(*b.attestation_key.as_bytes()) {
                return Err(PolicyFileError::Key {
                    builder: b.name.clone(),
                    message: "its attestation key is another builder's too: one signer would \
                              count twice"
                        .into(),
                });
            }
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
    pub fn builder(&self, name: &str) -> Option<&Builder> {
        self.builders.iter().find(|b| b.name == name)
    }

    pub fn builder_by_log(&self, origin: &str) -> Option<&Builder> {
        self.builders.iter().find(|b| b.log_key.name == origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, seed: u8, log_seed: u8) -> serde_json::Value {
        let key = guixie_formats::signing::SecretKey::from_seed(name, &[seed; 32]).unwrap();
        let log = guixie_log::note::SignerKey::from_seed(
            &format!("{name}.example/log"),
            guixie_log::note::ALG_ED25519,
            &[log_seed; 32],
        )
        .unwrap();
        serde_json::json!({"name": name, "attestation_key": key.public().to_string(),
                           "log_key": log.verifier().to_string()})
    }

    #[test]
    fn policies_that_would_count_wrong_are_refused() {
        let good = serde_json::json!({"k": 2, "builders": [entry("a", 1, 11), entry("b", 2, 12)]});
        let p = Policy::parse(&good.to_string()).unwrap();
        assert_eq!(p.builder_by_log("b.example/log").unwrap().name, "b");
        let refuse = |v: serde_json::Value, why: &str| {
            let e = Policy::parse(&v.to_string()).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        };
        refuse(
            serde_json::json!({"k": 3, "builders": [entry("a", 1, 11), entry("b", 2, 12)]}),
            "k = 3",
        );
        let mut same_key = entry("b", 1, 12);
        same_key["name"] = "b".into();
        refuse(
            serde_json::json!({"k": 1, "builders": [entry("a", 1, 11), same_key]}),
            "attestation key",
        );
        let mut same_log = entry("b", 2, 11);
        same_log["log_key"] = entry("a", 1, 11)["log_key"].clone();
        refuse(
            serde_json::json!({"k": 1, "builders": [entry("a", 1, 11), same_log]}),
            "origin",
        );
        let mut witnessed = entry("a", 1, 11);
        witnessed["witness_threshold"] = 1.into();
        refuse(
            serde_json::json!({"k": 1, "builders": [witnessed]}),
            "more than its 0 witnesses",
        );
        refuse(
            serde_json::json!({"k": 1, "builders": [], "n": 3}),
            "unknown field",
        );
        let mut bad_key = entry("a", 1, 11);
        bad_key["attestation_key"] = "nope".into();
        refuse(
            serde_json::json!({"k": 1, "builders": [bad_key]}),
            "builder \"a\"",
        );
    }
}
