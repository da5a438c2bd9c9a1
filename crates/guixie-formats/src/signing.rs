//! Ed25519 keys and signatures in Nix's `name:base64` text form, compatible with
//! `nix-store --generate-binary-cache-key` (secret key = 32-byte seed ‖ 32-byte public key).

use std::fmt;

use data_encoding::BASE64;
use ed25519_dalek::Signer;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("{what} {text:?} is not of the form NAME:BASE64")]
    NoName { what: &'static str, text: String },
    #[error("{what} named {name:?}: the name is empty or contains ':' or whitespace")]
    BadName { what: &'static str, name: String },
    #[error("{what} named {name:?} is not valid base64: {reason}")]
    BadBase64 {
        what: &'static str,
        name: String,
        reason: String,
    },
    #[error("{what} named {name:?} has {len} bytes, expected {expected}")]
    BadLength {
        what: &'static str,
        name: String,
        len: usize,
        expected: usize,
    },
    #[error("secret key {name:?}: its public half does not belong to its seed")]
    Mismatch { name: String },
    #[error("public key {name:?} is not a valid Ed25519 point")]
    BadPoint { name: String },
}

fn split<'a>(
    what: &'static str,
    text: &'a str,
    expected: usize,
) -> Result<(&'a str, Vec<u8>), KeyError> {
    let text = text.trim();
    let (name, b64) = text.split_once(':').ok_or_else(|| KeyError::NoName {
        what,
        text: text.chars().take(80).collect(),
    })?;
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return Err(KeyError::BadName {
            what,
            name: name.to_owned(),
        });
    }
    let bytes = BASE64
        .decode(b64.as_bytes())
        .map_err(|e| KeyError::BadBase64 {
            what,
            name: name.to_owned(),
            reason: e.to_string(),
        })?;
    if bytes.len() != expected {
        return Err(KeyError::BadLength {
            what,
            name: name.to_owned(),
            len: bytes.len(),
            expected,
        });
    }
    Ok((name, bytes))
}

#[derive(Clone)]
pub struct SecretKey {
    name: String,
    key: ed25519_dalek::SigningKey,
}

impl SecretKey {
    /// A new key from 32 secret random bytes (the caller's randomness source gives them).
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, KeyError> {
        if name.is_empty() || name.contains(':') || name.chars().any(char::is_whitespace) {
            return Err(KeyError::BadName {
                what: "secret key",
                name: name.to_owned(),
            });
        }
        let key = ed25519_dalek::SigningKey::from_bytes(seed);
        Ok(SecretKey {
            name: name.to_owned(),
            key,
        })
    }

    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let (name, bytes) = split("secret key", text, 64)?;
        let keypair: [u8; 64] = bytes.try_into().expect("length checked");
        let key = ed25519_dalek::SigningKey::from_keypair_bytes(&keypair).map_err(|_| {
            KeyError::Mismatch {
                name: name.to_owned(),
            }
        })?;
        Ok(SecretKey {
            name: name.to_owned(),
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn public(&self) -> PublicKey {
        PublicKey {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature {
            name: self.name.clone(),
            bytes: self.sign_raw(message),
        }
    }

    /// The Ed25519 key itself, for the schemes that use its scalar (Guix's signatures).
    pub(crate) fn dalek(&self) -> &ed25519_dalek::SigningKey {
        &self.key
    }

    /// The bare 64-byte Ed25519 signature (for formats that carry the key name apart, e.g. DSSE).
    pub fn sign_raw(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}",
            self.name,
            BASE64.encode(&self.key.to_keypair_bytes())
        )
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({}:…)", self.name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    name: String,
    key: ed25519_dalek::VerifyingKey,
}

impl PublicKey {
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let (name, bytes) = split("public key", text, 32)?;
        let raw: [u8; 32] = bytes.try_into().expect("length checked");
        let key =
            ed25519_dalek::VerifyingKey::from_bytes(&raw).map_err(|_| KeyError::BadPoint {
                name: name.to_owned(),
            })?;
        Ok(PublicKey {
            name: name.to_owned(),
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// True when `sig` is by this key's name and verifies over `message`.
    pub fn verify(&self, message: &[u8], sig: &Signature) -> bool {
        sig.name == self.name && self.verify_raw(message, &sig.bytes)
    }

    /// True when the bare Ed25519 signature `sig` verifies over `message` with this key.
    pub fn verify_raw(&self, message: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = <[u8; 64]>::try_from(sig) else {
            return false;
        };
        self.key
            .verify_strict(message, &ed25519_dalek::Signature::from_bytes(&sig))
            .is_ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, BASE64.encode(self.key.as_bytes()))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    name: String,
    bytes: [u8; 64],
}

impl Signature {
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let (name, bytes) = split("signature", text, 64)?;
        Ok(Signature {
            name: name.to_owned(),
            bytes: bytes.try_into().expect("length checked"),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, BASE64.encode(&self.bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_round_trip() {
        let sk = SecretKey::from_seed("cache.example.org-1", &[1u8; 32]).unwrap();
        let sk2 = SecretKey::parse(&sk.to_string()).unwrap();
        let pk = PublicKey::parse(&sk2.public().to_string()).unwrap();
        let sig = Signature::parse(&sk2.sign(b"hello").to_string()).unwrap();
        assert!(pk.verify(b"hello", &sig));
        assert!(!pk.verify(b"hellO", &sig));
        let other = SecretKey::from_seed("other", &[2u8; 32]).unwrap();
        assert!(!other.public().verify(b"hello", &sig));
    }

    #[test]
    fn rejects_malformed_keys() {
        assert!(matches!(
            PublicKey::parse("nocolon"),
            Err(KeyError::NoName { .. })
        ));
        assert!(matches!(
            PublicKey::parse(":AAAA"),
            Err(KeyError::BadName { .. })
        ));
        assert!(matches!(
            PublicKey::parse("k:!!!"),
            Err(KeyError::BadBase64 { .. })
        ));
        assert!(matches!(
            PublicKey::parse("k:AAAA"),
            Err(KeyError::BadLength { len: 3, .. })
        ));
        // A secret key whose public half was swapped for another key's.
        let a = SecretKey::from_seed("k", &[3u8; 32])
            .unwrap()
            .key
            .to_keypair_bytes();
        let b = SecretKey::from_seed("k", &[4u8; 32])
            .unwrap()
            .key
            .to_keypair_bytes();
        let mut mixed = a;
        mixed[32..].copy_from_slice(&b[32..]);
        let text = format!("k:{}", BASE64.encode(&mixed));
        assert!(matches!(
            SecretKey::parse(&text),
            Err(KeyError::Mismatch { .. })
        ));
    }
}
