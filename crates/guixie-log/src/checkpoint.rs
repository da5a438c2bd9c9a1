//! C2SP `tlog-checkpoint`: a signed note whose text is `<origin>\n<size>\n<base64 root>\n`
//! plus optional extension lines; and C2SP `tlog-cosignature/v1` witness cosignatures
//! (type-0x04 keys) over `cosignature/v1\ntime <t>\n<checkpoint text>`, encoded as
//! `key id ‖ 8-byte big-endian time ‖ Ed25519 signature`.

use data_encoding::BASE64;
use thiserror::Error;

use crate::merkle::Hash;
use crate::note::{
    check_text, Note, NoteError, NoteSignature, SignerKey, VerifierKey, ALG_COSIGNATURE_V1,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    pub extensions: Vec<String>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CheckpointError {
    #[error(transparent)]
    Note(#[from] NoteError),
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    #[error("checkpoint is for log {found:?}, expected {expected:?}")]
    WrongOrigin { expected: String, found: String },
    #[error("only {found} of the {required} required witness cosignatures verify")]
    NotEnoughWitnesses { required: usize, found: usize },
    #[error("cosignature by {name} does not verify")]
    BadCosignature { name: String },
}

fn malformed(msg: impl Into<String>) -> CheckpointError {
    CheckpointError::Malformed(msg.into())
}

impl Checkpoint {
    pub fn body(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(&self.root)
        );
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        s
    }

    pub fn parse_body(text: &str) -> Result<Self, CheckpointError> {
        check_text(text)?;
        let mut lines = text[..text.len() - 1].split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| malformed("empty origin line"))?;
        let size_line = lines.next().ok_or_else(|| malformed("missing size line"))?;
        if size_line.is_empty()
            || (size_line.len() > 1 && size_line.starts_with('0'))
            || !size_line.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(malformed(format!(
                "size {size_line:?} is not a canonical decimal number"
            )));
        }
        let size = size_line
            .parse::<u64>()
            .map_err(|_| malformed(format!("size {size_line:?} is too large")))?;
        let root_line = lines
            .next()
            .ok_or_else(|| malformed("missing root hash line"))?;
        let root = crate::note::decode_base64(root_line)
            .and_then(|r| <[u8; 32]>::try_from(r).ok())
            .ok_or_else(|| malformed("root hash is not base64 of 32 bytes"))?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(|e| e.is_empty()) {
            return Err(malformed("empty extension line"));
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }

    /// A signed note of this checkpoint.
    pub fn sign(&self, key: &SignerKey) -> Result<String, CheckpointError> {
        let mut note = Note {
            text: self.body(),
            signatures: vec![],
        };
        note.sign(key)?;
        Ok(note.to_text())
    }
}

/// Adds a witness cosignature (key type 0x04) made at `time` (seconds since the epoch).
pub fn cosign(note_text: &[u8], witness: &SignerKey, time: u64) -> Result<String, CheckpointError> {
    let mut note = Note::parse(note_text)?;
    Checkpoint::parse_body(&note.text)?;
    if witness.alg != ALG_COSIGNATURE_V1 {
        return Err(malformed("witness keys are of type 0x04 (cosignature/v1)"));
    }
    let msg = cosignature_message(&note.text, time);
    let mut sig = time.to_be_bytes().to_vec();
    sig.extend_from_slice(&witness.sign_raw(msg.as_bytes()));
    note.signatures.push(NoteSignature {
        name: witness.name.clone(),
        id: witness.id,
        sig,
    });
    Ok(note.to_text())
}

/// `note` (a checkpoint) with the cosignatures of `cosigned` (the same checkpoint) that verify
/// against `witnesses` added, each witness once. `log_key` signed both.
pub fn add_cosignatures(
    note: &[u8],
    cosigned: &[u8],
    log_key: &VerifierKey,
    witnesses: &[VerifierKey],
) -> Result<String, CheckpointError> {
    let mut base = Note::parse(note)?;
    let other = Note::parse(cosigned)?;
    if base.text != other.text {
        return Err(malformed("the cosigned note is of another checkpoint"));
    }
    // Every cosignature by one of `witnesses` verified, or this fails.
    verify(cosigned, log_key, witnesses, 0)?;
    for s in other.signatures {
        let ours = witnesses
            .iter()
            .any(|w| w.alg == ALG_COSIGNATURE_V1 && w.name == s.name && w.id == s.id);
        let present = base
            .signatures
            .iter()
            .any(|b| b.name == s.name && b.id == s.id);
        if ours && !present {
            base.signatures.push(s);
        }
    }
    Ok(base.to_text())
}

fn cosignature_message(text: &str, time: u64) -> String {
    format!("cosignature/v1\ntime {time}\n{text}")
}

/// A checkpoint that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub checkpoint: Checkpoint,
    /// Witnesses whose cosignatures verified, with their times.
    pub witnesses: Vec<(String, u64)>,
}

/// Verifies a checkpoint note: signed by `log_key` (whose name is the origin), and cosigned
/// by at least `required` of `witnesses`.
pub fn verify(
    note_text: &[u8],
    log_key: &VerifierKey,
    witnesses: &[VerifierKey],
    required: usize,
) -> Result<Verified, CheckpointError> {
    let note = Note::parse(note_text)?;
    note.verify(std::slice::from_ref(log_key))?;
    let checkpoint = Checkpoint::parse_body(&note.text)?;
    if checkpoint.origin != log_key.name {
        return Err(CheckpointError::WrongOrigin {
            expected: log_key.name.clone(),
            found: checkpoint.origin,
        });
    }
    let mut verified = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for s in &note.signatures {
        let Some(w) = witnesses
            .iter()
            .find(|w| w.alg == ALG_COSIGNATURE_V1 && w.name == s.name && w.id == s.id)
        else {
            continue;
        };
        if !seen.insert((w.name.clone(), w.id)) {
            return Err(NoteError::DuplicateSignature {
                name: w.name.clone(),
                id: w.id,
            }
            .into());
        }
        if s.sig.len() != 72 {
            return Err(CheckpointError::BadCosignature {
                name: s.name.clone(),
            });
        }
        let time = u64::from_be_bytes(s.sig[..8].try_into().expect("8 bytes"));
        if !w.verify_raw(
            cosignature_message(&note.text, time).as_bytes(),
            &s.sig[8..],
        ) {
            return Err(CheckpointError::BadCosignature {
                name: s.name.clone(),
            });
        }
        verified.push((w.name.clone(), time));
    }
    if verified.len() < required {
        return Err(CheckpointError::NotEnoughWitnesses {
            required,
            found: verified.len(),
        });
    }
    Ok(Verified {
        checkpoint,
        witnesses: verified,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::ALG_ED25519;

    fn sample() -> Checkpoint {
        Checkpoint {
            origin: "example.com/log".into(),
            size: 8,
            root: [7u8; 32],
            extensions: vec!["ext one".into()],
        }
    }

    #[test]
    fn sign_cosign_verify() {
        let log = SignerKey::from_seed("example.com/log", ALG_ED25519, &[1u8; 32]).unwrap();
        let w1 = SignerKey::from_seed("witness.one", ALG_COSIGNATURE_V1, &[2u8; 32]).unwrap();
        let w2 = SignerKey::from_seed("witness.two", ALG_COSIGNATURE_V1, &[3u8; 32]).unwrap();
        let signed = sample().sign(&log).unwrap();
        assert_eq!(Checkpoint::parse_body(&sample().body()).unwrap(), sample());
        let v = verify(signed.as_bytes(), &log.verifier(), &[], 0).unwrap();
        assert_eq!(v.checkpoint, sample());
        let witnesses = [w1.verifier(), w2.verifier()];
        assert!(matches!(
            verify(signed.as_bytes(), &log.verifier(), &witnesses, 1),
            Err(CheckpointError::NotEnoughWitnesses {
                required: 1,
                found: 0
            })
        ));
        let once = cosign(signed.as_bytes(), &w1, 1_700_000_000).unwrap();
        let twice = cosign(once.as_bytes(), &w2, 1_700_000_001).unwrap();
        let v = verify(twice.as_bytes(), &log.verifier(), &witnesses, 2).unwrap();
        assert_eq!(
            v.witnesses,
            vec![
                ("witness.one".into(), 1_700_000_000),
                ("witness.two".into(), 1_700_000_001)
            ]
        );
        // A cosignature moved to another checkpoint does not verify.
        let other = Checkpoint {
            size: 9,
            ..sample()
        }
        .sign(&log)
        .unwrap();
        let moved = format!("{}{}\n", other, twice.lines().last().unwrap());
        assert!(matches!(
            verify(moved.as_bytes(), &log.verifier(), &witnesses, 1),
            Err(CheckpointError::BadCosignature { .. })
        ));
        // The log's key must name the origin.
        let stranger = SignerKey::from_seed("other.log", ALG_ED25519, &[4u8; 32]).unwrap();
        let wrong = sample().sign(&stranger).unwrap();
        assert!(matches!(
            verify(wrong.as_bytes(), &stranger.verifier(), &[], 0),
            Err(CheckpointError::WrongOrigin { .. })
        ));
    }

    #[test]
    fn cosignatures_are_gathered_from_known_witnesses_only() {
        let log = SignerKey::from_seed("example.com/log", ALG_ED25519, &[1u8; 32]).unwrap();
        let w1 = SignerKey::from_seed("witness.one", ALG_COSIGNATURE_V1, &[2u8; 32]).unwrap();
        let w2 = SignerKey::from_seed("witness.two", ALG_COSIGNATURE_V1, &[3u8; 32]).unwrap();
        let stranger = SignerKey::from_seed("witness.x", ALG_COSIGNATURE_V1, &[9u8; 32]).unwrap();
        let signed = sample().sign(&log).unwrap();
        let known = [w1.verifier(), w2.verifier()];
        let by = |w: &SignerKey| cosign(signed.as_bytes(), w, 1_700_000_000).unwrap();
        let one = add_cosignatures(
            signed.as_bytes(),
            by(&w1).as_bytes(),
            &log.verifier(),
            &known,
        )
        .unwrap();
        let both =
            add_cosignatures(one.as_bytes(), by(&w2).as_bytes(), &log.verifier(), &known).unwrap();
        // Again: each witness once.
        let both =
            add_cosignatures(both.as_bytes(), by(&w1).as_bytes(), &log.verifier(), &known).unwrap();
        let v = verify(both.as_bytes(), &log.verifier(), &known, 2).unwrap();
        assert_eq!(v.witnesses.len(), 2);
        // A stranger's cosignature is not taken.
        let same = add_cosignatures(
            signed.as_bytes(),
            by(&stranger).as_bytes(),
            &log.verifier(),
            &known,
        )
        .unwrap();
        assert_eq!(same, signed);
        // A known witness's name with another key: another key id, so a stranger's.
        let impostor = SignerKey::from_seed("witness.one", ALG_COSIGNATURE_V1, &[8u8; 32]).unwrap();
        let taken = add_cosignatures(
            signed.as_bytes(),
            by(&impostor).as_bytes(),
            &log.verifier(),
            &known,
        )
        .unwrap();
        assert_eq!(taken, signed);
        // A known witness's line whose signature is damaged is refused.
        let good = by(&w1);
        let last = good.trim_end().rsplit(' ').next().unwrap().to_owned();
        let mut raw = BASE64.decode(last.as_bytes()).unwrap();
        *raw.last_mut().unwrap() ^= 1;
        let damaged = good.replace(&last, &BASE64.encode(&raw));
        assert!(add_cosignatures(
            signed.as_bytes(),
            damaged.as_bytes(),
            &log.verifier(),
            &known
        )
        .is_err());
        // Another checkpoint's cosignatures do not belong here.
        let other = Checkpoint {
            size: 9,
            ..sample()
        }
        .sign(&log)
        .unwrap();
        let theirs = cosign(other.as_bytes(), &w1, 1).unwrap();
        assert!(add_cosignatures(
            signed.as_bytes(),
            theirs.as_bytes(),
            &log.verifier(),
            &known
        )
        .is_err());
    }

    #[test]
    fn malformed_checkpoints() {
        for body in [
            "\n8\nAAAA\n",
            "o\n08\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
            "o\n-1\nBwcH\n",
            "o\n8\n",
            "o\n8\nBwcH\n",
            "o\n8\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n\n",
            "o\n99999999999999999999\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
        ] {
            assert!(Checkpoint::parse_body(body).is_err(), "{body:?}");
        }
    }
}
