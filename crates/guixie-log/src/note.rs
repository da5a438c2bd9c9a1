//! C2SP signed notes (as Go's `golang.org/x/mod/sumdb/note`): a UTF-8 text ending in a
//! newline, a blank line, then lines `— <name> <base64(key id ‖ signature)>`. Keys are
//! Ed25519, named `name+<8 hex key id>+<base64(type ‖ public key)>`; the key id is the first
//! four bytes of SHA-256(name ‖ "\n" ‖ type ‖ public key). Type 0x01 signs the note text;
//! type 0x04 is a `tlog-cosignature/v1` witness key (see [`crate::checkpoint`]).

use data_encoding::{BASE64, HEXLOWER_PERMISSIVE};
use ed25519_dalek::{Signer, Verifier};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Largest note accepted.
pub const MAX_NOTE_BYTES: usize = 1 << 20;
/// Most signature lines accepted on one note.
pub const MAX_SIGNATURES: usize = 100;

pub const ALG_ED25519: u8 = 0x01;
pub const ALG_COSIGNATURE_V1: u8 = 0x04;

const SIG_PREFIX: &str = "\u{2014} ";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NoteError {
    #[error("note is {0} bytes, more than the 1 MiB allowed")]
    TooLarge(usize),
    #[error("malformed note: {0}")]
    Malformed(String),
    #[error("malformed key {key:?}: {reason}")]
    BadKey { key: String, reason: String },
    #[error("signature by {name} (key id {id:08x}) does not verify")]
    BadSignature { name: String, id: u32 },
    #[error("two signatures by {name} (key id {id:08x})")]
    DuplicateSignature { name: String, id: u32 },
    #[error("no signature by a trusted key (signed by: {0})")]
    NoTrustedSignature(String),
}

fn malformed(msg: impl Into<String>) -> NoteError {
    NoteError::Malformed(msg.into())
}

/// Standard base64, accepted only in its canonical form (what encoding the bytes gives back),
/// so that every note has exactly one spelling.
pub fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let raw = BASE64.decode(s.as_bytes()).ok()?;
    (BASE64.encode(&raw) == s).then_some(raw)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

pub fn key_id(name: &str, alg: u8, public: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([alg]);
    h.update(public);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// A public key that verifies note signatures (`name+id+base64(type ‖ key)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierKey {
    pub name: String,
    pub id: u32,
    pub alg: u8,
    key: ed25519_dalek::VerifyingKey,
}

impl VerifierKey {
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let bad = |reason: &str| NoteError::BadKey {
            key: text.chars().take(120).collect(),
            reason: reason.into(),
        };
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(id_hex), Some(b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected name+keyid+base64"));
        };
        if !valid_name(name) {
            return Err(bad("bad name"));
        }
        if id_hex.len() != 8 {
            return Err(bad("key id must be 8 hex digits"));
        }
        let id_bytes = HEXLOWER_PERMISSIVE
            .decode(id_hex.as_bytes())
            .map_err(|_| bad("key id is not hex"))?;
        let id = u32::from_be_bytes(id_bytes.try_into().expect("4 bytes"));
        let raw = decode_base64(b64).ok_or_else(|| bad("key is not canonical base64"))?;
        let (&alg, key) = raw.split_first().ok_or_else(|| bad("empty key"))?;
        if alg != ALG_ED25519 && alg != ALG_COSIGNATURE_V1 {
            return Err(bad(&format!("unsupported key type 0x{alg:02x}")));
        }
        let key: [u8; 32] = key
            .try_into()
            .map_err(|_| bad("Ed25519 keys are 32 bytes"))?;
        if key_id(name, alg, &key) != id {
            return Err(bad("key id does not match the key"));
        }
        let key = ed25519_dalek::VerifyingKey::from_bytes(&key)
            .map_err(|_| bad("not an Ed25519 point"))?;
        Ok(VerifierKey {
            name: name.to_owned(),
            id,
            alg,
            key,
        })
    }

    pub fn verify_raw(&self, message: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = <[u8; 64]>::try_from(sig) else {
            return false;
        };
        self.key
            .verify(message, &ed25519_dalek::Signature::from_bytes(&sig))
            .is_ok()
    }
}

impl std::fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut raw = vec![self.alg];
        raw.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.id, BASE64.encode(&raw))
    }
}

/// A private key (`PRIVATE+KEY+name+id+base64(type ‖ seed)`).
#[derive(Clone)]
pub struct SignerKey {
    pub name: String,
    pub id: u32,
    pub alg: u8,
    key: ed25519_dalek::SigningKey,
}

impl SignerKey {
    /// A new key from 32 secret random bytes (the caller's randomness source gives them).
    pub fn from_seed(name: &str, alg: u8, seed: &[u8; 32]) -> Result<Self, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::BadKey {
                key: name.into(),
                reason: "bad name".into(),
            });
        }
        let key = ed25519_dalek::SigningKey::from_bytes(seed);
        let id = key_id(name, alg, key.verifying_key().as_bytes());
        Ok(SignerKey {
            name: name.to_owned(),
            id,
            alg,
            key,
        })
    }

    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let bad = |reason: &str| NoteError::BadKey {
            key: "PRIVATE+KEY+…".into(),
            reason: reason.into(),
        };
        let rest = text
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| bad("must start with PRIVATE+KEY+"))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected PRIVATE+KEY+name+keyid+base64"));
        };
        if !valid_name(name) {
            return Err(bad("bad name"));
        }
        let raw = decode_base64(b64).ok_or_else(|| bad("key is not canonical base64"))?;
        let (&alg, seed) = raw.split_first().ok_or_else(|| bad("empty key"))?;
        if alg != ALG_ED25519 && alg != ALG_COSIGNATURE_V1 {
            return Err(bad(&format!("unsupported key type 0x{alg:02x}")));
        }
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| bad("Ed25519 seeds are 32 bytes"))?;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let id = key_id(name, alg, key.verifying_key().as_bytes());
        if format!("{id:08x}") != id_hex.to_ascii_lowercase() {
            return Err(bad("key id does not match the key"));
        }
        Ok(SignerKey {
            name: name.to_owned(),
            id,
            alg,
            key,
        })
    }

    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            id: self.id,
            alg: self.alg,
            key: self.key.verifying_key(),
        }
    }

    pub fn sign_raw(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

impl std::fmt::Display for SignerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut raw = vec![self.alg];
        raw.extend_from_slice(&self.key.to_bytes());
        write!(
            f,
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.id,
            BASE64.encode(&raw)
        )
    }
}

/// One signature line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub id: u32,
    /// The bytes after the key id.
    pub sig: Vec<u8>,
}

impl NoteSignature {
    fn line(&self) -> String {
        let mut raw = self.id.to_be_bytes().to_vec();
        raw.extend_from_slice(&self.sig);
        format!("{SIG_PREFIX}{} {}\n", self.name, BASE64.encode(&raw))
    }
}

/// A note as read, before any signature is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub text: String,
    pub signatures: Vec<NoteSignature>,
}

pub fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(malformed("text must end with a newline"));
    }
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(malformed("text contains a control character"));
    }
    Ok(())
}

impl Note {
    pub fn parse(input: &[u8]) -> Result<Note, NoteError> {
        if input.len() > MAX_NOTE_BYTES {
            return Err(NoteError::TooLarge(input.len()));
        }
        let s = std::str::from_utf8(input)
            .map_err(|e| malformed(format!("not UTF-8 at byte {}", e.valid_up_to())))?;
        let split = s
            .rfind("\n\n")
            .ok_or_else(|| malformed("no blank line before the signatures"))?;
        let (text, sigs) = (&s[..split + 1], &s[split + 2..]);
        check_text(text)?;
        if sigs.is_empty() || !sigs.ends_with('\n') {
            return Err(malformed(
                "signature block must be non-empty and end with a newline",
            ));
        }
        let mut signatures = Vec::new();
        for (i, line) in sigs[..sigs.len() - 1].split('\n').enumerate() {
            let bad = |why: &str| malformed(format!("signature line {}: {why}", i + 1));
            if signatures.len() == MAX_SIGNATURES {
                return Err(bad("too many signatures"));
            }
            let rest = line
                .strip_prefix(SIG_PREFIX)
                .ok_or_else(|| bad("does not start with \"— \""))?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or_else(|| bad("expected \"— name signature\""))?;
            if !valid_name(name) {
                return Err(bad("bad key name"));
            }
            let raw = decode_base64(b64).ok_or_else(|| bad("signature is not canonical base64"))?;
            if raw.len() < 5 {
                return Err(bad("signature is too short"));
            }
            signatures.push(NoteSignature {
                name: name.to_owned(),
                id: u32::from_be_bytes(raw[..4].try_into().expect("4 bytes")),
                sig: raw[4..].to_vec(),
            });
        }
        Ok(Note {
            text: text.to_owned(),
            signatures,
        })
    }

    pub fn to_text(&self) -> String {
        let mut s = self.text.clone();
        s.push('\n');
        for sig in &self.signatures {
            s.push_str(&sig.line());
        }
        s
    }

    /// Signs the text with an Ed25519 (type 0x01) key and appends the signature.
    pub fn sign(&mut self, key: &SignerKey) -> Result<(), NoteError> {
        check_text(&self.text)?;
        let sig = key.sign_raw(self.text.as_bytes()).to_vec();
        self.signatures.push(NoteSignature {
            name: key.name.clone(),
            id: key.id,
            sig,
        });
        Ok(())
    }

    /// The trusted type-0x01 keys whose signatures verify. A signature by a trusted key that
    /// does not verify, or two by the same key, is an error; unknown keys are ignored; no
    /// verified signature at all is an error.
    pub fn verify<'k>(&self, keys: &'k [VerifierKey]) -> Result<Vec<&'k VerifierKey>, NoteError> {
        let mut verified: Vec<&VerifierKey> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for s in &self.signatures {
            let Some(k) = keys
                .iter()
                .find(|k| k.alg == ALG_ED25519 && k.name == s.name && k.id == s.id)
            else {
                continue;
            };
            if !seen.insert((s.name.clone(), s.id)) {
                return Err(NoteError::DuplicateSignature {
                    name: s.name.clone(),
                    id: s.id,
                });
            }
            if !k.verify_raw(self.text.as_bytes(), &s.sig) {
                return Err(NoteError::BadSignature {
                    name: s.name.clone(),
                    id: s.id,
                });
            }
            verified.push(k);
        }
        if verified.is_empty() {
            let names: Vec<&str> = self.signatures.iter().map(|s| s.name.as_str()).collect();
            return Err(NoteError::NoTrustedSignature(names.join(", ")));
        }
        Ok(verified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // From the documentation and tests of Go's golang.org/x/mod/sumdb/note.
    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const PETER_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
    const TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const SIGNED: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn go_example_verifies_and_signs_identically() {
        let vkey = VerifierKey::parse(PETER_VKEY).unwrap();
        assert_eq!(vkey.to_string(), PETER_VKEY);
        let note = Note::parse(SIGNED.as_bytes()).unwrap();
        assert_eq!(note.text, TEXT);
        let keys = [vkey.clone(), VerifierKey::parse(ENOCH_VKEY).unwrap()];
        assert_eq!(note.verify(&keys).unwrap(), vec![&keys[0]]);
        let skey = SignerKey::parse(PETER_SKEY).unwrap();
        assert_eq!(skey.verifier(), vkey);
        assert_eq!(skey.to_string(), PETER_SKEY);
        let mut fresh = Note {
            text: TEXT.into(),
            signatures: vec![],
        };
        fresh.sign(&skey).unwrap();
        assert_eq!(fresh.to_text(), SIGNED);
    }

    #[test]
    fn rejects_bad_notes_and_keys() {
        let keys = [VerifierKey::parse(PETER_VKEY).unwrap()];
        let tampered = SIGNED.replace("cryptography", "cryptograph!");
        assert!(matches!(
            Note::parse(tampered.as_bytes()).unwrap().verify(&keys),
            Err(NoteError::BadSignature { .. })
        ));
        let dup = format!("{SIGNED}{}", SIGNED.lines().last().unwrap()) + "\n";
        assert!(matches!(
            Note::parse(dup.as_bytes()).unwrap().verify(&keys),
            Err(NoteError::DuplicateSignature { .. })
        ));
        let enoch = [VerifierKey::parse(ENOCH_VKEY).unwrap()];
        assert!(matches!(
            Note::parse(SIGNED.as_bytes()).unwrap().verify(&enoch),
            Err(NoteError::NoTrustedSignature(_))
        ));
        for bad in [
            "no blank line\n\u{2014} PeterNeumann AAAA\n",
            "text\n\n",
            "text\n\n\u{2014} PeterNeumann !!!\n",
            "text\n\n\u{2014} PeterNeumann AAAA\n",
            "text\n\n- PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n",
            "text\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
            "te\u{7}xt\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n",
        ] {
            assert!(Note::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(matches!(
            Note::parse(&vec![b'a'; MAX_NOTE_BYTES + 1]),
            Err(NoteError::TooLarge(_))
        ));
        // Found by fuzzing: base64 with padding in the middle decodes, but is not the one
        // canonical spelling, so a note could be re-spelled without touching its signatures.
        let respelled = SIGNED.replace("AM=\n", "AM=nAM=\n");
        assert!(Note::parse(respelled.as_bytes()).is_err());
        // A key whose id was altered, a truncated key, a wrong type.
        for bad in [
            "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10",
            "PeterNeumann+c74f20a3+ApRc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20a3",
        ] {
            assert!(VerifierKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn c2sp_spec_example_parses() {
        // The example of c2sp.org/signed-note (its public key is not published, so it can
        // only be parsed): the text keeps its inner blank line, the signature its name and id.
        let note = "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned \u{e8} subito sera.\n\n\u{2014} quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n";
        let parsed = Note::parse(note.as_bytes()).unwrap();
        assert_eq!(parsed.text, "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned \u{e8} subito sera.\n");
        assert_eq!(parsed.signatures.len(), 1);
        assert_eq!(parsed.signatures[0].name, "quasimodo.example/salvatore");
        assert_eq!(parsed.signatures[0].id, 0x367ba04b);
        assert_eq!(parsed.signatures[0].sig.len(), 64);
        assert_eq!(parsed.to_text(), note);
        // transparency-dev/formats' test key, whose base64 contains a '+'.
        let plus = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6";
        assert_eq!(VerifierKey::parse(plus).unwrap().to_string(), plus);
    }

    #[test]
    fn key_id_collision_with_the_wrong_key_is_caught() {
        // An attacker signs with their own key but claims the trusted key's name and id.
        let trusted = SignerKey::from_seed("log.example", ALG_ED25519, &[1u8; 32]).unwrap();
        let attacker = SignerKey::from_seed("log.example", ALG_ED25519, &[2u8; 32]).unwrap();
        let mut note = Note {
            text: "x\n".into(),
            signatures: vec![],
        };
        note.sign(&attacker).unwrap();
        note.signatures[0].id = trusted.id;
        assert!(matches!(
            note.verify(&[trusted.verifier()]),
            Err(NoteError::BadSignature { .. })
        ));
    }
}
