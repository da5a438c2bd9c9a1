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
    /// Every source (builders, and the local store where it counts) gives the same NAR hash.
    Identical,
    /// Sources give different NAR hashes: not reproducible, or someone lies.
    Differing,
    /// A single builder attested it: nothing to compare.
    OnlyOneBuilder,
    /// Nobody attested it.
    Unknown,
}

impl Verdict {
    /// As `guix challenge` counts them.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Identical => "identical",
            Verdict::Differing => "differing",
            Verdict::OnlyOneBuilder => "only one builder",
            Verdict::Unknown => "unknown",
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
                (_, 1) => Verdict::Identical,
                _ => Verdict::Differing,
            };
            Finding {
                path,
                verdict,
                attestations,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use guixie_attest::{BuildPredicate, DerivationRef, OutputRef, Statement};
    use guixie_formats::signing::SecretKey;

    const DRV: &str = "/gnu/store/00000000000000000000000000000000-x.drv";
    const OUT: &str = "/gnu/store/11111111111111111111111111111111-x";
    const SAME: &str = "sha256:1lz94v6gx3xz1mn5fxyzw9c4flh0n79d6mw138nm9iprzh6vj9lg";
    const OTHER: &str = "sha256:0000000000000000000000000000000000000000000000000000";

    fn statement(builder: &SecretKey, nar_hash: &str) -> Statement {
        Statement::build(BuildPredicate {
            derivation: DerivationRef {
                path: DRV.into(),
                hash_modulo: "ab".repeat(32),
            },
            outputs: BTreeMap::from([(
                "out".to_owned(),
                OutputRef {
                    path: OUT.into(),
                    nar_hash: nar_hash.into(),
                    nar_size: 8,
                    blake3: None,
                    references: None,
                },
            )]),
            builder: builder.public().to_string(),
            time: 0,
            sandbox: "full".into(),
            evidence: vec![],
        })
        .unwrap()
    }

    fn log_with(dir: &std::path::Path, entries: &[String]) -> FileLog {
        let mut log = FileLog::open(dir).unwrap();
        log.append_batch(entries).unwrap();
        log
    }

    #[test]
    fn builders_agree_differ_and_forgeries_do_not_count() {
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let (a, b, c) = (
            SecretKey::from_seed("a", &[1; 32]).unwrap(),
            SecretKey::from_seed("b", &[2; 32]).unwrap(),
            SecretKey::from_seed("c", &[3; 32]).unwrap(),
        );
        let sign = |k: &SecretKey, h: &str| Envelope::sign(&statement(k, h), k).to_json();
        // c's statement signed by a: it names c, so it must not count for c (or for a).
        let forged = Envelope::sign(&statement(&c, OTHER), &a).to_json();
        let logs = vec![
            log_with(dirs[0].path(), &[sign(&a, SAME), forged]),
            log_with(dirs[1].path(), &[sign(&b, SAME), "not json".into()]),
        ];
        let found = challenge(&logs, &[DRV.to_owned()]).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, OUT);
        assert_eq!(found[0].verdict, Verdict::Identical);
        assert_eq!(found[0].attestations.len(), 2);
        // Positive control: a third, honest builder that disagrees is caught.
        let mut logs = logs;
        logs.push(log_with(dirs[2].path(), &[sign(&c, OTHER)]));
        let found = challenge(&logs, &[OUT.to_owned()]).unwrap();
        assert_eq!(found[0].verdict, Verdict::Differing);
        assert_eq!(found[0].attestations.len(), 3);
        let only = challenge(&logs[2..], &[OUT.to_owned()]).unwrap();
        assert_eq!(only[0].verdict, Verdict::OnlyOneBuilder);
        assert!(challenge(&logs, &["/gnu/store/nothing".to_owned()])
            .unwrap()
            .is_empty());
    }
}
