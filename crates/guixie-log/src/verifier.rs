//! What a client remembers about each log it follows: the last checkpoint it accepted. A
//! newer checkpoint is accepted only with a valid consistency proof. Two validly signed
//! checkpoints of one size with different roots, a shrinking tree, or a failed consistency
//! proof are kept as evidence, and the log is marked untrusted from then on.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::checkpoint::{self, Checkpoint, CheckpointError};
use crate::merkle::{verify_consistency, Hash, ProofError};
use crate::note::VerifierKey;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClientState {
    pub logs: BTreeMap<String, LogView>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogView {
    pub size: u64,
    pub root_hex: String,
    /// The signed note last accepted, kept verbatim as evidence.
    pub checkpoint: String,
    pub untrusted: bool,
    pub evidence: Vec<Evidence>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Evidence {
    /// `equivocation`, `shrink` or `inconsistent`.
    pub kind: String,
    /// The accepted checkpoint and the conflicting one, both validly signed.
    pub accepted: String,
    pub conflicting: String,
    pub detail: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Accepted {
    FirstSeen { size: u64 },
    Unchanged { size: u64 },
    Advanced { from: u64, to: u64 },
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum Rejected {
    #[error(transparent)]
    Invalid(#[from] CheckpointError),
    #[error("log {0} is marked untrusted: it has shown conflicting checkpoints before")]
    Untrusted(String),
    #[error("log {origin} equivocated: two checkpoints of size {size} with different roots (kept as evidence)")]
    Equivocation { origin: String, size: u64 },
    #[error("log {origin} shrank from {from} to {to} (kept as evidence)")]
    Shrink { origin: String, from: u64, to: u64 },
    #[error("log {origin}: the checkpoint of size {to} is not consistent with the accepted one of size {from}: {reason} (kept as evidence)")]
    Inconsistent {
        origin: String,
        from: u64,
        to: u64,
        reason: String,
    },
    #[error("cannot get a consistency proof from {from} to {to}: {0}", from = .1, to = .2)]
    NoProof(String, u64, u64),
}

impl ClientState {
    pub fn load(path: &Path) -> std::io::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ClientState::default()),
            Err(e) => Err(e),
        }
    }

    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).expect("serialisable"))?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)
    }

    /// Verifies `note` (log signature, `required` witness cosignatures) and accepts it if it
    /// extends what was accepted before. `prove(from, to)` supplies the consistency proof.
    pub fn accept(
        &mut self,
        note: &[u8],
        log_key: &VerifierKey,
        witnesses: &[VerifierKey],
        required: usize,
        prove: impl FnOnce(u64, u64) -> Result<Vec<Hash>, String>,
    ) -> Result<Accepted, Rejected> {
        let verified = self.verify_or_split(note, log_key, witnesses, required)?;
        let cp: Checkpoint = verified.checkpoint;
        let note_text = String::from_utf8_lossy(note).into_owned();
        let root_hex = data_encoding::HEXLOWER.encode(&cp.root);
        let Some(view) = self.logs.get_mut(&cp.origin) else {
            self.logs.insert(
                cp.origin.clone(),
                LogView {
                    size: cp.size,
                    root_hex,
                    checkpoint: note_text,
                    untrusted: false,
                    evidence: vec![],
                },
            );
            return Ok(Accepted::FirstSeen { size: cp.size });
        };
        if view.untrusted {
            return Err(Rejected::Untrusted(cp.origin));
        }
        let keep = |kind: &str, detail: String, view: &mut LogView| {
            view.evidence.push(Evidence {
                kind: kind.into(),
                accepted: view.checkpoint.clone(),
                conflicting: note_text.clone(),
                detail,
            });
            view.untrusted = true;
        };
        if cp.size == view.size {
            if root_hex == view.root_hex {
                return Ok(Accepted::Unchanged { size: cp.size });
            }
            keep(
                "equivocation",
                format!(
                    "size {} with roots {} and {root_hex}",
                    cp.size, view.root_hex
                ),
                view,
            );
            return Err(Rejected::Equivocation {
                origin: cp.origin,
                size: cp.size,
            });
        }
        if cp.size < view.size {
            keep("shrink", format!("from {} to {}", view.size, cp.size), view);
            return Err(Rejected::Shrink {
                origin: cp.origin,
                from: view.size,
                to: cp.size,
            });
        }
        let from = view.size;
        if from == 0 {
            // Every tree extends the empty one: there is nothing to prove.
            view.size = cp.size;
            view.root_hex = root_hex;
            view.checkpoint = note_text;
            return Ok(Accepted::Advanced { from, to: cp.size });
        }
        let old_root: Hash = data_encoding::HEXLOWER
            .decode(view.root_hex.as_bytes())
            .ok()
            .and_then(|r| r.try_into().ok())
            .expect("stored root is 32 hex bytes");
        let proof = prove(from, cp.size).map_err(|e| Rejected::NoProof(e, from, cp.size))?;
        // A growing tree always needs at least one hash; an empty proof is a missing proof,
        // which says nothing against the log.
        if proof.is_empty() {
            return Err(Rejected::NoProof(
                "the proof is empty".into(),
                from,
                cp.size,
            ));
        }
        if let Err(e) = verify_consistency(from, cp.size, &old_root, &cp.root, &proof) {
            let reason = match e {
                ProofError::RootMismatch => "the proof does not connect the two roots".to_owned(),
                other => other.to_string(),
            };
            keep("inconsistent", reason.clone(), view);
            return Err(Rejected::Inconsistent {
                origin: cp.origin,
                from,
                to: cp.size,
                reason,
            });
        }
        view.size = cp.size;
        view.root_hex = root_hex;
        view.checkpoint = note_text;
        Ok(Accepted::Advanced { from, to: cp.size })
    }
}

impl ClientState {
    /// Verifies `note` with its witnesses; one that lacks them but is signed by the log and
    /// splits the accepted view (same size, another root) is let through, to convict the log:
    /// its own signature is the evidence, cosigned or not.
    fn verify_or_split(
        &self,
        note: &[u8],
        log_key: &VerifierKey,
        witnesses: &[VerifierKey],
        required: usize,
    ) -> Result<checkpoint::Verified, Rejected> {
        match checkpoint::verify(note, log_key, witnesses, required) {
            Ok(v) => Ok(v),
            Err(e) => match checkpoint::verify(note, log_key, &[], 0) {
                Ok(signed)
                    if self.logs.get(&signed.checkpoint.origin).is_some_and(|v| {
                        !v.untrusted
                            && v.size == signed.checkpoint.size
                            && v.root_hex != data_encoding::HEXLOWER.encode(&signed.checkpoint.root)
                    }) =>
                {
                    Ok(signed)
                }
                _ => Err(e.into()),
            },
        }
    }

    /// A checkpoint relayed by someone other than the log: without the log's consistency
    /// proof it can never advance what was accepted, and an older one says nothing; but one of
    /// the accepted size with another root, validly signed, is a split view, kept as evidence
    /// and the log marked untrusted.
    pub fn check_relayed(
        &mut self,
        note: &[u8],
        log_key: &VerifierKey,
        witnesses: &[VerifierKey],
        required: usize,
    ) -> Result<(), Rejected> {
        let verified = self.verify_or_split(note, log_key, witnesses, required)?;
        let same_size = self
            .logs
            .get(&verified.checkpoint.origin)
            .is_some_and(|v| v.size == verified.checkpoint.size);
        if !same_size {
            return Ok(());
        }
        self.accept(note, log_key, witnesses, required, |_, _| {
            Err("relayed".into())
        })
        .map(|_| ())
    }

    /// A split view another node reports: two checkpoints of one size with different roots,
    /// each signed by the log (witnesses are not needed: the log's own signatures convict it).
    /// Checked here; when it holds, the log is marked untrusted with both notes as evidence.
    /// Returns whether this is news.
    pub fn record_split_view(
        &mut self,
        first: &[u8],
        second: &[u8],
        log_key: &VerifierKey,
    ) -> Result<bool, Rejected> {
        let a = checkpoint::verify(first, log_key, &[], 0)?.checkpoint;
        let b = checkpoint::verify(second, log_key, &[], 0)?.checkpoint;
        if a.size != b.size || a.root == b.root {
            return Err(Rejected::Invalid(CheckpointError::Malformed(format!(
                "not a split view: sizes {} and {}, {} roots",
                a.size,
                b.size,
                if a.root == b.root {
                    "equal"
                } else {
                    "different"
                }
            ))));
        }
        let view = self
            .logs
            .entry(a.origin.clone())
            .or_insert_with(|| LogView {
                size: a.size,
                root_hex: data_encoding::HEXLOWER.encode(&a.root),
                checkpoint: String::from_utf8_lossy(first).into_owned(),
                untrusted: false,
                evidence: vec![],
            });
        let news = !view.untrusted;
        view.untrusted = true;
        if !news {
            // Kept once: a replayed report adds nothing.
            return Ok(false);
        }
        view.evidence.push(Evidence {
            kind: "equivocation".into(),
            accepted: String::from_utf8_lossy(first).into_owned(),
            conflicting: String::from_utf8_lossy(second).into_owned(),
            detail: format!(
                "reported: two checkpoints of size {} with different roots",
                a.size
            ),
        });
        Ok(news)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{self as m, MemoryTree};
    use crate::note::{SignerKey, ALG_COSIGNATURE_V1, ALG_ED25519};

    fn tree(leaves: &[&[u8]]) -> MemoryTree {
        let mut t = MemoryTree::new();
        for l in leaves {
            t.push_leaf_hash(m::leaf_hash(l));
        }
        t
    }

    fn signed(key: &SignerKey, t: &MemoryTree) -> String {
        Checkpoint {
            origin: key.name.clone(),
            size: t.size(),
            root: m::root(t, t.size()).unwrap(),
            extensions: vec![],
        }
        .sign(key)
        .unwrap()
    }

    #[test]
    fn advances_only_with_consistency() {
        let key = SignerKey::from_seed("log.example", ALG_ED25519, &[1u8; 32]).unwrap();
        let honest = tree(&[b"a", b"b", b"c", b"d", b"e"]);
        let mut state = ClientState::default();
        let small = tree(&[b"a", b"b", b"c"]);
        assert_eq!(
            state.accept(
                signed(&key, &small).as_bytes(),
                &key.verifier(),
                &[],
                0,
                |_, _| unreachable!()
            ),
            Ok(Accepted::FirstSeen { size: 3 })
        );
        assert_eq!(
            state.accept(
                signed(&key, &small).as_bytes(),
                &key.verifier(),
                &[],
                0,
                |_, _| unreachable!()
            ),
            Ok(Accepted::Unchanged { size: 3 })
        );
        let r = state.accept(
            signed(&key, &honest).as_bytes(),
            &key.verifier(),
            &[],
            0,
            |a, b| Ok(m::consistency_proof(&honest, a, b).unwrap()),
        );
        assert_eq!(r, Ok(Accepted::Advanced { from: 3, to: 5 }));
        // A state file survives a round trip.
        let dir = tempfile::tempdir().unwrap();
        state.save(&dir.path().join("state.json")).unwrap();
        assert_eq!(
            ClientState::load(&dir.path().join("state.json")).unwrap(),
            state
        );
    }

    #[test]
    fn a_rewritten_history_fails_consistency_and_is_kept() {
        let key = SignerKey::from_seed("log.example", ALG_ED25519, &[2u8; 32]).unwrap();
        let mut state = ClientState::default();
        let original = tree(&[b"a", b"b", b"c"]);
        state
            .accept(
                signed(&key, &original).as_bytes(),
                &key.verifier(),
                &[],
                0,
                |_, _| unreachable!(),
            )
            .unwrap();
        // The log rewrites entry 1 and grows; its own consistency proof cannot connect the roots.
        let forked = tree(&[b"a", b"B", b"c", b"d"]);
        let r = state.accept(
            signed(&key, &forked).as_bytes(),
            &key.verifier(),
            &[],
            0,
            |a, b| Ok(m::consistency_proof(&forked, a, b).unwrap()),
        );
        assert!(
            matches!(r, Err(Rejected::Inconsistent { from: 3, to: 4, .. })),
            "{r:?}"
        );
        let view = &state.logs["log.example"];
        assert!(view.untrusted);
        assert_eq!(view.evidence[0].kind, "inconsistent");
        // From now on even honest checkpoints are refused.
        let honest = tree(&[b"a", b"b", b"c", b"d"]);
        let r = state.accept(
            signed(&key, &honest).as_bytes(),
            &key.verifier(),
            &[],
            0,
            |a, b| Ok(m::consistency_proof(&honest, a, b).unwrap()),
        );
        assert!(matches!(r, Err(Rejected::Untrusted(_))));
    }

    #[test]
    fn equivocation_and_shrinking_are_evidence() {
        let key = SignerKey::from_seed("log.example", ALG_ED25519, &[3u8; 32]).unwrap();
        let mut state = ClientState::default();
        state
            .accept(
                signed(&key, &tree(&[b"a", b"b"])).as_bytes(),
                &key.verifier(),
                &[],
                0,
                |_, _| unreachable!(),
            )
            .unwrap();
        let r = state.accept(
            signed(&key, &tree(&[b"a", b"X"])).as_bytes(),
            &key.verifier(),
            &[],
            0,
            |_, _| unreachable!(),
        );
        assert!(matches!(r, Err(Rejected::Equivocation { size: 2, .. })));
        let ev = &state.logs["log.example"].evidence[0];
        assert_eq!(ev.kind, "equivocation");
        // Both sides of the evidence are validly signed checkpoints anyone can re-check.
        for note in [&ev.accepted, &ev.conflicting] {
            checkpoint::verify(note.as_bytes(), &key.verifier(), &[], 0).unwrap();
        }
        let mut state = ClientState::default();
        state
            .accept(
                signed(&key, &tree(&[b"a", b"b", b"c"])).as_bytes(),
                &key.verifier(),
                &[],
                0,
                |_, _| unreachable!(),
            )
            .unwrap();
        let r = state.accept(
            signed(&key, &tree(&[b"a"])).as_bytes(),
            &key.verifier(),
            &[],
            0,
            |_, _| unreachable!(),
        );
        assert!(matches!(r, Err(Rejected::Shrink { from: 3, to: 1, .. })));
    }

    #[test]
    fn a_split_view_is_caught_against_a_witnessed_checkpoint() {
        let key = SignerKey::from_seed("log.example", ALG_ED25519, &[4u8; 32]).unwrap();
        let witness =
            SignerKey::from_seed("witness.example", ALG_COSIGNATURE_V1, &[5u8; 32]).unwrap();
        let public = tree(&[b"a", b"b", b"c"]);
        let private_view = tree(&[b"a", b"b", b"evil"]);
        // The witness saw (and cosigned) the public view.
        let witnessed =
            checkpoint::cosign(signed(&key, &public).as_bytes(), &witness, 1_700_000_000).unwrap();
        let mut state = ClientState::default();
        state
            .accept(
                witnessed.as_bytes(),
                &key.verifier(),
                &[witness.verifier()],
                1,
                |_, _| unreachable!(),
            )
            .unwrap();
        // A client requiring the witness convicts the log on the split view all the same: the
        // log's own signature is the evidence, cosigned or not...
        let split = signed(&key, &private_view);
        let mut strict = state.clone();
        let r = strict.accept(
            split.as_bytes(),
            &key.verifier(),
            &[witness.verifier()],
            1,
            |_, _| unreachable!(),
        );
        assert!(
            matches!(r, Err(Rejected::Equivocation { size: 3, .. })),
            "{r:?}"
        );
        assert!(strict.logs["log.example"].untrusted);
        // ...as does one that does not require it.
        let r = state.accept(
            split.as_bytes(),
            &key.verifier(),
            &[],
            0,
            |_, _| unreachable!(),
        );
        assert!(matches!(r, Err(Rejected::Equivocation { size: 3, .. })));
        // A newer note without the cosignature still does not advance a strict view.
        let mut strict = ClientState::default();
        strict
            .accept(
                witnessed.as_bytes(),
                &key.verifier(),
                &[witness.verifier()],
                1,
                |_, _| unreachable!(),
            )
            .unwrap();
        let grown = signed(&key, &tree(&[b"a", b"b", b"c", b"d"]));
        let r = strict.accept(
            grown.as_bytes(),
            &key.verifier(),
            &[witness.verifier()],
            1,
            |_, _| unreachable!(),
        );
        assert!(
            matches!(
                r,
                Err(Rejected::Invalid(
                    CheckpointError::NotEnoughWitnesses { .. }
                ))
            ),
            "{r:?}"
        );
        assert_eq!(strict.logs["log.example"].size, 3);
    }

    #[test]
    fn relayed_checkpoints_only_convict_and_reported_split_views_are_checked() {
        let key = SignerKey::from_seed("log.example", ALG_ED25519, &[1u8; 32]).unwrap();
        let (honest, fork) = (tree(&[b"a", b"b", b"c"]), tree(&[b"a", b"b", b"x"]));
        let (older, newer) = (tree(&[b"a"]), tree(&[b"a", b"b", b"c", b"d"]));
        let mut state = ClientState::default();
        state
            .accept(
                signed(&key, &honest).as_bytes(),
                &key.verifier(),
                &[],
                0,
                |_, _| unreachable!(),
            )
            .unwrap();
        // Older and newer relayed notes change nothing.
        for t in [&older, &newer, &honest] {
            state
                .check_relayed(signed(&key, t).as_bytes(), &key.verifier(), &[], 0)
                .unwrap();
        }
        assert_eq!(state.logs["log.example"].size, 3);
        assert!(!state.logs["log.example"].untrusted);
        // The fork at the same size convicts the log.
        let err = state.check_relayed(signed(&key, &fork).as_bytes(), &key.verifier(), &[], 0);
        assert!(
            matches!(err, Err(Rejected::Equivocation { size: 3, .. })),
            "{err:?}"
        );
        assert!(state.logs["log.example"].untrusted);

        // Reported by another node: both notes are checked before anything is believed.
        let mut other = ClientState::default();
        let (a, b) = (signed(&key, &honest), signed(&key, &fork));
        let mallory = SignerKey::from_seed("log.example", ALG_ED25519, &[7u8; 32]).unwrap();
        assert!(other
            .record_split_view(
                a.as_bytes(),
                signed(&mallory, &fork).as_bytes(),
                &key.verifier()
            )
            .is_err());
        assert!(other
            .record_split_view(a.as_bytes(), a.as_bytes(), &key.verifier())
            .is_err());
        assert!(other.logs.is_empty());
        assert_eq!(
            other.record_split_view(a.as_bytes(), b.as_bytes(), &key.verifier()),
            Ok(true)
        );
        assert_eq!(
            other.record_split_view(b.as_bytes(), a.as_bytes(), &key.verifier()),
            Ok(false)
        );
        assert!(other.logs["log.example"].untrusted);
    }
}
