//! The acceptance rule. An output is accepted only when at least k of the n builders the
//! policy names attest it, and no other output is attested by k of them:
//! - the denominator is n, the configured builders, never the ones that happened to answer
//!   (a lone respondent is 1 of n, and k = n is reachable);
//! - a builder counts once, whatever it repeats;
//! - only attestations whose inclusion proof checked count, for anything;
//! - a configured builder that attests two different outputs is an equivocator and counts for
//!   nothing;
//! - builders the policy does not name count for nothing, however many;
//! - a shortfall, a tie, or two outputs each reaching k is a reject with its reason; nothing is
//!   decided by the order the votes arrived in.
//!
//! Pure: no I/O, no clock, no randomness; every list in the answer is sorted.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One builder's claim that the derivation produced `output` (a label: the NAR hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vote {
    pub builder: String,
    pub output: String,
    /// Whether its inclusion proof in an accepted checkpoint of the builder's log checked.
    #[serde(default = "yes")]
    pub proof_ok: bool,
}

fn yes() -> bool {
    true
}

/// A question put to the rule: `guixie trust decide CASE.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub trusted_builders: Vec<String>,
    pub k: u64,
    pub attestations: Vec<Vote>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Accept,
    Reject,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub result: Verdict,
    /// The accepted output; `null` on a reject.
    pub output: Option<String>,
    pub reason: String,
    /// Counted builders behind the accepted output (on a shortfall, behind the leading one).
    pub attesting: Vec<String>,
    /// Counted builders that attest another output.
    pub dissenting: Vec<String>,
    /// Configured builders that attest more than one output; they count for nothing.
    pub equivocating: Vec<String>,
}

/// A policy under which nothing could ever be decided safely.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PolicyError {
    #[error("k must be at least 1: with k = 0 an output nobody attests would be accepted")]
    KZero,
    #[error("k = {k} is more than the {n} trusted builders: nothing could ever be accepted")]
    KAboveN { k: u64, n: usize },
    #[error("builder {0:?} is named twice among the trusted builders")]
    Duplicate(String),
}

/// Checks a policy before it is used (a node refuses to start with one that fails).
pub fn check_policy(trusted_builders: &[String], k: u64) -> Result<(), PolicyError> {
    let mut seen = BTreeSet::new();
    for b in trusted_builders {
        if !seen.insert(b) {
            return Err(PolicyError::Duplicate(b.clone()));
        }
    }
    if k == 0 {
        return Err(PolicyError::KZero);
    }
    if k > seen.len() as u64 {
        return Err(PolicyError::KAboveN { k, n: seen.len() });
    }
    Ok(())
}

/// Decides `case`. A policy that fails [`check_policy`] is a reject naming why.
pub fn decide(case: &Case) -> Decision {
    let reject = |reason: String| Decision {
        result: Verdict::Reject,
        output: None,
        reason,
        attesting: vec![],
        dissenting: vec![],
        equivocating: vec![],
    };
    if let Err(e) = check_policy(&case.trusted_builders, case.k) {
        return reject(format!("the policy is unusable: {e}"));
    }
    let trusted: BTreeSet<&str> = case.trusted_builders.iter().map(String::as_str).collect();
    let n = trusted.len();
    let k = case.k as usize;

    // What each configured builder claims, from proven attestations only.
    let mut claims: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let (mut unknown, mut unproven) = (BTreeSet::new(), 0usize);
    for vote in &case.attestations {
        if !trusted.contains(vote.builder.as_str()) {
            unknown.insert(vote.builder.as_str());
        } else if !vote.proof_ok {
            unproven += 1;
        } else {
            claims
                .entry(vote.builder.as_str())
                .or_default()
                .insert(vote.output.as_str());
        }
    }
    let equivocating: Vec<String> = claims
        .iter()
        .filter(|(_, outputs)| outputs.len() > 1)
        .map(|(b, _)| b.to_string())
        .collect();
    let mut tally: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (builder, outputs) in &claims {
        if let [only] = outputs.iter().collect::<Vec<_>>()[..] {
            tally.entry(only).or_default().push(builder.to_string());
        }
    }
    // Most votes first; among equals, by label only so the order is total (ties are rejected
    // below, never broken by it).
    let mut ranked: Vec<(&str, Vec<String>)> = tally.into_iter().collect();
    ranked.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));

    let mut notes = Vec::new();
    if !equivocating.is_empty() {
        let counts = if equivocating.len() == 1 {
            "counts"
        } else {
            "count"
        };
        notes.push(format!(
            "{} attested more than one output and {counts} for nothing",
            equivocating.join(", ")
        ));
    }
    if !unknown.is_empty() {
        notes.push(format!(
            "{} attestation(s) from {} builder(s) outside the policy were ignored",
            case.attestations
                .iter()
                .filter(|v| unknown.contains(v.builder.as_str()))
                .count(),
            unknown.len()
        ));
    }
    if unproven > 0 {
        notes.push(format!(
            "{unproven} attestation(s) without a valid inclusion proof were ignored"
        ));
    }
    let with_notes = |head: String| {
        if notes.is_empty() {
            head
        } else {
            format!("{head}; {}", notes.join("; "))
        }
    };
    let others = |skip: usize| -> Vec<String> {
        let mut v: Vec<String> = ranked
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .flat_map(|(_, (_, bs))| bs.iter().cloned())
            .collect();
        v.sort();
        v
    };

    let Some((leader, behind)) = ranked.first() else {
        let mut d = reject(with_notes(format!(
            "no trusted builder attests an output: 0 of {n}, {k} needed"
        )));
        d.equivocating = equivocating;
        return d;
    };
    let reaching: Vec<&str> = ranked
        .iter()
        .filter(|(_, bs)| bs.len() >= k)
        .map(|(o, _)| *o)
        .collect();
    let tied = ranked
        .get(1)
        .is_some_and(|(_, bs)| bs.len() == behind.len());
    let (result, output, head, attesting) = if reaching.len() > 1 {
        (
            Verdict::Reject,
            None,
            format!(
                "conflict: {} outputs are each attested by at least k = {k} of the {n} trusted builders ({})",
                reaching.len(),
                reaching.join(", ")
            ),
            vec![],
        )
    } else if tied {
        (
            Verdict::Reject,
            None,
            format!(
                "tie: {} outputs are each attested by {} of the {n} trusted builders, {k} needed",
                ranked
                    .iter()
                    .filter(|(_, bs)| bs.len() == behind.len())
                    .count(),
                behind.len()
            ),
            vec![],
        )
    } else if behind.len() < k {
        (
            Verdict::Reject,
            None,
            format!(
                "shortfall: {} of the {n} trusted builders attest {leader}, {k} needed",
                behind.len()
            ),
            behind.clone(),
        )
    } else {
        (
            Verdict::Accept,
            Some(leader.to_string()),
            format!(
                "{} of the {n} trusted builders attest {leader} (k = {k})",
                behind.len()
            ),
            behind.clone(),
        )
    };
    let dissenting = if attesting.is_empty() {
        others(usize::MAX)
    } else {
        others(0)
    };
    let mut attesting = attesting;
    attesting.sort();
    Decision {
        result,
        output,
        reason: with_notes(head),
        attesting,
        dissenting,
        equivocating,
    }
}

#[cfg(test)]
mod tests;
