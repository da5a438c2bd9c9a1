//! Votes from evidence: what a configured builder's log says about a derivation's output,
//! counted only as far as it can be checked here. An attestation is a vote when its DSSE
//! envelope is signed by the builder's key and names that key as its builder, it is about the
//! derivation asked for, and its entry is included, by a proof checked here against a leaf hash
//! computed here, in the tree of the checkpoint the caller's [`LogView`] accepted (signed, with
//! its witnesses, consistent with every one before). Nothing the serving peer says about sizes,
//! roots or leaf hashes is taken on its word.

use serde::{Deserialize, Serialize};

use guixie_attest::{Envelope, OutputRef};
use guixie_formats::signing::PublicKey;
use guixie_log::merkle::{leaf_hash, verify_inclusion, Hash};
use guixie_log::note::VerifierKey;
use guixie_log::verifier::LogView;

use crate::rule::Vote;

/// A builder the policy names: the key its attestations are signed with and its log's keys.
#[derive(Clone, Debug)]
pub struct Builder {
    pub name: String,
    pub attestation_key: PublicKey,
    pub log_key: VerifierKey,
    pub witnesses: Vec<VerifierKey>,
    /// How many of `witnesses` must cosign a checkpoint before it is accepted.
    pub witness_threshold: usize,
}

/// What `/attestations/<hash32>` serves: entries of one log with inclusion proofs in the tree
/// of `size`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    pub size: u64,
    pub attestations: Vec<LoggedEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedEntry {
    pub index: u64,
    /// The log entry exactly as logged (a DSSE envelope's JSON text).
    pub entry: String,
    /// Hex node hashes, leaf to root.
    pub proof: Vec<String>,
}

/// A vote and the output it is for, as the statement gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ballot {
    pub vote: Vote,
    pub output: OutputRef,
}

/// Why an entry of a bundle gave no vote, or gave one whose proof failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub builder: String,
    pub index: u64,
    pub message: String,
}

/// The votes `builder`'s bundle gives for the output path whose hash part is `hash_part`
/// (which names a derivation's output: its path is computed from the derivation); the vote
/// is for the full path with its contents. `view` is what the caller
/// accepted of the builder's log (none: nothing accepted yet, so nothing is proven). An entry
/// signed by the builder whose proof fails is still returned, with `proof_ok` false, so the
/// decision can say so; entries not signed by the builder give no vote at all.
pub fn votes(
    builder: &Builder,
    view: Option<&LogView>,
    bundle: &Bundle,
    hash_part: &str,
) -> (Vec<Ballot>, Vec<Problem>) {
    let wanted = format!("{hash_part}-");
    let (mut votes, mut problems) = (Vec::new(), Vec::new());
    let mut problem = |index: u64, message: String| {
        problems.push(Problem {
            builder: builder.name.clone(),
            index,
            message,
        })
    };
    let builder_id = builder.attestation_key.to_string();
    for logged in &bundle.attestations {
        let Ok(envelope) = Envelope::parse(logged.entry.as_bytes()) else {
            problem(logged.index, "not a DSSE envelope".into());
            continue;
        };
        let statement = match envelope.verify(std::slice::from_ref(&builder.attestation_key), 1) {
            Ok((statement, _)) => statement,
            Err(e) => {
                problem(
                    logged.index,
                    format!("not signed by the builder's key: {e}"),
                );
                continue;
            }
        };
        let p = &statement.predicate;
        if p.builder != builder_id {
            problem(logged.index, format!("names {} as its builder", p.builder));
            continue;
        }
        let named = |o: &&OutputRef| {
            o.path
                .rsplit('/')
                .next()
                .is_some_and(|base| base.starts_with(&wanted))
        };
        let mut matching = p.outputs.values().filter(named);
        let Some(out) = matching.next() else {
            continue;
        };
        if matching.next().is_some() {
            problem(
                logged.index,
                format!("gives two outputs with the hash part {hash_part}"),
            );
            continue;
        }
        let proof_ok = match prove(view, bundle.size, logged) {
            Ok(()) => true,
            Err(message) => {
                problem(logged.index, message);
                false
            }
        };
        votes.push(Ballot {
            vote: Vote {
                builder: builder.name.clone(),
                output: output_label(out),
                proof_ok,
            },
            output: out.clone(),
        });
    }
    (votes, problems)
}

/// What a vote is for: the path, its NAR hash and size, and beside them, when the statement gives
/// them, the BLAKE3 root the NAR is fetched by and the references it is registered with;
/// builders that agree on one and not the others are counted as disagreeing.
pub fn output_label(out: &OutputRef) -> String {
    let mut label = format!("{} {} {}", out.path, out.nar_hash, out.nar_size);
    if let Some(root) = &out.blake3 {
        label.push(' ');
        label.push_str(root);
    }
    if let Some(refs) = &out.references {
        label.push_str(" refs:");
        label.push_str(&refs.join(","));
    }
    label
}

fn prove(view: Option<&LogView>, size: u64, logged: &LoggedEntry) -> Result<(), String> {
    let view = view.ok_or("no checkpoint of this log has been accepted")?;
    if view.untrusted {
        return Err("the log is untrusted: it has shown conflicting checkpoints".into());
    }
    if size != view.size {
        return Err(format!(
            "the proof is in a tree of size {size}; the accepted checkpoint has size {}",
            view.size
        ));
    }
    let root = parse_hash(&view.root_hex).ok_or("the accepted root is not a hash")?;
    let proof: Vec<Hash> = logged
        .proof
        .iter()
        .map(|h| parse_hash(h).ok_or_else(|| format!("proof hash {h:?} is not 32 hex bytes")))
        .collect::<Result<_, _>>()?;
    verify_inclusion(
        &leaf_hash(logged.entry.as_bytes()),
        logged.index,
        size,
        &proof,
        &root,
    )
    .map_err(|e| format!("inclusion proof: {e}"))
}

fn parse_hash(hex: &str) -> Option<Hash> {
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(hex.as_bytes())
        .ok()?
        .try_into()
        .ok()
}

#[cfg(test)]
mod tests;
