//! A survey of one output path: what each configured builder attests about it, side by side,
//! as `guixie challenge` shows it. It asks exactly as a lookup does (every claimant of each
//! builder's log, proofs checked against the accepted checkpoints) but waits for every builder
//! and fetches nothing.

use guixie_attest::OutputRef;
use guixie_trust::Decision;
use serde::Serialize;

use super::lookup::{is_hash_part, Lookup, Phase};
use super::{Local, Node, Output};

/// What the configured builders said about one output path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Survey {
    pub hash_part: String,
    /// The k-of-n rule's decision on what was collected.
    pub decision: Decision,
    /// In the policy's order.
    pub builders: Vec<BuilderAnswer>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BuilderAnswer {
    pub name: String,
    /// Whether some connected peer said it keeps this builder's log.
    pub reached: bool,
    /// Whether every peer asked replied before the deadline (an answer, a refusal or a
    /// failure: a builder that refused says nothing either way).
    pub answered: bool,
    /// Outputs attested with an inclusion proof that checked, by NAR hash.
    pub outputs: Vec<OutputRef>,
    /// Attestations whose proof did not check (they count for nothing).
    pub unproven: usize,
}

impl<L: Local> Node<L> {
    /// Asks every configured builder about the output path with `hash_part`; the answer is an
    /// [`Output::Surveyed`], once all answered or at the deadline. A path being fetched is
    /// surveyed once its fetch ends.
    pub fn survey(&mut self, hash_part: &str, now_ms: u64) {
        if !is_hash_part(hash_part) {
            self.out.push_back(Output::Failed {
                hash_part: hash_part.to_owned(),
                reason: "not a store path hash part".into(),
            });
            return;
        }
        match self.lookups.get_mut(hash_part) {
            Some(Lookup {
                phase: Phase::Collecting { .. },
                survey,
                ..
            }) => *survey = true,
            Some(_) => {
                self.queued_surveys.insert(hash_part.to_owned());
            }
            None => self.start_lookup(hash_part, false, true, now_ms),
        }
    }

    /// A lookup is over: a survey that waited for it starts.
    pub(super) fn end_lookup(&mut self, hash_part: &str, now_ms: u64) {
        self.lookups.remove(hash_part);
        if self.queued_surveys.remove(hash_part) {
            self.start_lookup(hash_part, false, true, now_ms);
        }
    }

    pub(super) fn survey_report(&self, hash_part: &str, decision: &Decision) -> Survey {
        let mut builders = Vec::new();
        if let Some(Lookup {
            phase:
                Phase::Collecting {
                    asked,
                    awaiting,
                    votes,
                    outputs,
                    ..
                },
            ..
        }) = self.lookups.get(hash_part)
        {
            for b in &self.cfg.policy.builders {
                let mine = |(name, _): &&(String, String)| *name == b.name;
                builders.push(BuilderAnswer {
                    name: b.name.clone(),
                    reached: asked.iter().any(|p| mine(&p)),
                    answered: !awaiting.iter().any(|p| mine(&p)),
                    outputs: outputs
                        .iter()
                        .filter(|((name, _), _)| *name == b.name)
                        .map(|(_, o)| o.clone())
                        .collect(),
                    unproven: votes
                        .iter()
                        .filter(|v| v.builder == b.name && !v.proof_ok)
                        .count(),
                });
            }
        }
        Survey {
            hash_part: hash_part.to_owned(),
            decision: decision.clone(),
            builders,
        }
    }
}
