//! `challenge`: what independent builders' logs say about the same outputs. Only statements
//! signed by the builder they name count; a builder counts once per output (its latest
//! statement in log order wins).

use std::collections::{BTreeMap, BTreeSet};

use guixie_attest::Envelope;
use guixie_formats::signing::PublicKey;
use guixie_log::FileLog;

use crate::EvidenceError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A single builder attested it: nothing to compare.
    OnlyOneBuilder,
    /// Every builder that attested it gives the same NAR hash.
    Agree,
    /// Builders give different NAR hashes: not reproducible, or someone lies.
    Differ,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::OnlyOneBuilder => "only one builder",
            Verdict::Agree => "agree",
            Verdict::Differ => "differ",
        }
    }
}

/// What the logs say about one output path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub path: String,
    pub verdict: Verdict,
    /// Builder public key (`name:base64`) → the NAR hash it attested.
    pub attestations: BTreeMap<String, String>,
}

/// Compares, across `logs`, the attestations of outputs whose path or derivation path is one
/// of `targets`. Entries that are not valid signed statements are skipped.
pub fn challenge(logs: &[FileLog], targets: &[String]) -> Result<Vec<Finding>, EvidenceError> {
    let mut by_path: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for log in logs {
        for i in 0..log.size() {
            let Ok(env) = Envelope::parse(&log.entry(i)?) else {
                continue;
            };
            let Ok(st) = env.statement() else { continue };
            let Ok(builder) = PublicKey::parse(&st.predicate.builder) else {
                continue;
            };
            if env.verify(std::slice::from_ref(&builder), 1).is_err() {
                continue;
            }
            let p = &st.predicate;
            for out in p.outputs.values() {
                if targets
                    .iter()
                    .any(|t| *t == p.derivation.path || *t == out.path)
                {
                    by_path
                        .entry(out.path.clone())
                        .or_default()
                        .insert(builder.to_string(), out.nar_hash.clone());
                }
            }
        }
    }
    Ok(by_path
        .into_iter()
        .map(|(path, attestations)| {
            let distinct: BTreeSet<&String> = attestations.values().collect();
            let verdict = match (attestations.len(), distinct.len()) {
                (1, _) => Verdict::OnlyOneBuilder,
                (_, 1) => Verdict::Agree,
                _ => Verdict::Differ,
            };
            Finding {
                path,
                verdict,
                attestations,
            }
        })
        .collect())
}
