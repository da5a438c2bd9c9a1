//! `.narinfo` files of binary caches: a lenient parser (unknown keys ignored, as Nix does) and
//! a canonical writer; signatures over the fingerprint `1;path;narHash;narSize;refs`.

use std::fmt::Write as _;

use thiserror::Error;

use crate::hash::{Encoding, Hash, HashAlgo};
use crate::signing::{KeyError, PublicKey, SecretKey, Signature};
use crate::store_path::{StoreDir, StorePath, StorePathError};

/// Larger narinfo files are refused before parsing.
pub const MAX_NARINFO_BYTES: usize = 1 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NarInfo {
    pub store_path: StorePath,
    pub url: Option<String>,
    pub compression: Option<String>,
    pub file_hash: Option<Hash>,
    pub file_size: Option<u64>,
    pub nar_hash: Hash,
    pub nar_size: u64,
    pub references: Vec<StorePath>,
    pub deriver: Option<StorePath>,
    pub system: Option<String>,
    pub signatures: Vec<Signature>,
    pub ca: Option<String>,
}

#[derive(Debug, Error)]
pub enum NarInfoError {
    #[error("narinfo is {0} bytes, more than the 1 MiB allowed")]
    TooLarge(usize),
    #[error("narinfo line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("narinfo has no {0} field")]
    Missing(&'static str),
    #[error("narinfo NarHash must be sha256 to be signed or verified")]
    NotSha256,
}

fn line_err(line: usize, message: impl Into<String>) -> NarInfoError {
    NarInfoError::Line {
        line,
        message: message.into(),
    }
}

impl NarInfo {
    pub fn parse(text: &str, store_dir: &StoreDir) -> Result<Self, NarInfoError> {
        if text.len() > MAX_NARINFO_BYTES {
            return Err(NarInfoError::TooLarge(text.len()));
        }
        let mut store_path = None;
        let (mut url, mut compression, mut file_hash, mut file_size) = (None, None, None, None);
        let (mut nar_hash, mut nar_size) = (None, None);
        let (mut references, mut deriver, mut system, mut ca) = (Vec::new(), None, None, None);
        let mut signatures = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim_end();
            if line.is_empty() {
                continue;
            }
            let (key, value) = line
                .split_once(':')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or_else(|| line_err(n, format!("{line:?} is not `Key: value`")))?;
            let path_err = |e: StorePathError| line_err(n, format!("{key}: {e}"));
            let hash =
                |v: &str| Hash::parse(v, None).map_err(|e| line_err(n, format!("{key}: {e}")));
            let number = |v: &str| {
                v.parse::<u64>()
                    .map_err(|e| line_err(n, format!("{key}: {v:?}: {e}")))
            };
            match key {
                "StorePath" => store_path = Some(store_dir.parse_path(value).map_err(path_err)?),
                "URL" => url = Some(value.to_owned()),
                "Compression" => compression = Some(value.to_owned()),
                "FileHash" => file_hash = Some(hash(value)?),
                "FileSize" => file_size = Some(number(value)?),
                "NarHash" => nar_hash = Some(hash(value)?),
                "NarSize" => nar_size = Some(number(value)?),
                "References" => {
                    references = value
                        .split_whitespace()
                        .map(StorePath::from_base_name)
                        .collect::<Result<_, _>>()
                        .map_err(path_err)?
                }
                "Deriver" if value != "unknown-deriver" && !value.is_empty() => {
                    deriver = Some(StorePath::from_base_name(value).map_err(path_err)?)
                }
                "System" => system = Some(value.to_owned()),
                "Sig" => signatures
                    .push(Signature::parse(value).map_err(|e| line_err(n, format!("Sig: {e}")))?),
                "CA" => ca = Some(value.to_owned()),
                _ => {}
            }
        }
        Ok(NarInfo {
            store_path: store_path.ok_or(NarInfoError::Missing("StorePath"))?,
            url,
            compression,
            file_hash,
            file_size,
            nar_hash: nar_hash.ok_or(NarInfoError::Missing("NarHash"))?,
            nar_size: nar_size.ok_or(NarInfoError::Missing("NarSize"))?,
            references,
            deriver,
            system,
            signatures,
            ca,
        })
    }

    /// The canonical text, fields in the order Nix writes them.
    pub fn to_text(&self, store_dir: &StoreDir) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "StorePath: {}", store_dir.display(&self.store_path));
        if let Some(u) = &self.url {
            let _ = writeln!(s, "URL: {u}");
        }
        if let Some(c) = &self.compression {
            let _ = writeln!(s, "Compression: {c}");
        }
        if let Some(h) = &self.file_hash {
            let _ = writeln!(s, "FileHash: {}", h.to_typed_string(Encoding::Nix32));
        }
        if let Some(n) = self.file_size {
            let _ = writeln!(s, "FileSize: {n}");
        }
        let _ = writeln!(
            s,
            "NarHash: {}",
            self.nar_hash.to_typed_string(Encoding::Nix32)
        );
        let _ = writeln!(s, "NarSize: {}", self.nar_size);
        let refs: Vec<String> = self.references.iter().map(|r| r.to_string()).collect();
        let _ = writeln!(s, "References: {}", refs.join(" "));
        if let Some(d) = &self.deriver {
            let _ = writeln!(s, "Deriver: {d}");
        }
        if let Some(sys) = &self.system {
            let _ = writeln!(s, "System: {sys}");
        }
        for sig in &self.signatures {
            let _ = writeln!(s, "Sig: {sig}");
        }
        if let Some(ca) = &self.ca {
            let _ = writeln!(s, "CA: {ca}");
        }
        s
    }

    /// `1;<path>;<sha256:nix32 NAR hash>;<NAR size>;<comma-separated absolute references>`.
    pub fn fingerprint(&self, store_dir: &StoreDir) -> Result<String, NarInfoError> {
        fingerprint(
            store_dir,
            &self.store_path,
            &self.nar_hash,
            self.nar_size,
            &self.references,
        )
    }

    /// Adds (or replaces) this key's signature.
    pub fn sign(&mut self, store_dir: &StoreDir, key: &SecretKey) -> Result<(), NarInfoError> {
        let sig = key.sign(self.fingerprint(store_dir)?.as_bytes());
        self.signatures.retain(|s| s.name() != key.name());
        self.signatures.push(sig);
        Ok(())
    }

    /// Whether any signature verifies with `key`.
    pub fn verify(&self, store_dir: &StoreDir, key: &PublicKey) -> Result<bool, NarInfoError> {
        let fp = self.fingerprint(store_dir)?;
        Ok(self.signatures.iter().any(|s| key.verify(fp.as_bytes(), s)))
    }
}

/// The fingerprint Nix signs for a store path.
pub fn fingerprint(
    store_dir: &StoreDir,
    path: &StorePath,
    nar_hash: &Hash,
    nar_size: u64,
    references: &[StorePath],
) -> Result<String, NarInfoError> {
    if nar_hash.algo() != HashAlgo::Sha256 {
        return Err(NarInfoError::NotSha256);
    }
    let refs: Vec<String> = references.iter().map(|r| store_dir.display(r)).collect();
    Ok(format!(
        "1;{};{};{};{}",
        store_dir.display(path),
        nar_hash.to_typed_string(Encoding::Nix32),
        nar_size,
        refs.join(",")
    ))
}

impl From<KeyError> for NarInfoError {
    fn from(e: KeyError) -> Self {
        line_err(0, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shaped like a narinfo cache.nixos.org serves (field order, References, Deriver, Sig).
    const HELLO: &str = "StorePath: /nix/store/7wwqvmv5mcg3a8ijq8ymr8vmpxnx1yvw-hello-2.12.1
URL: nar/1r8ggiq1xr5ksxamjc95kxp7v4c6fmbxmiycxxp0vnn3bsdmbmcm.nar.xz
Compression: xz
FileHash: sha256:1r8ggiq1xr5ksxamjc95kxp7v4c6fmbxmiycxxp0vnn3bsdmbmcm
FileSize: 50264
NarHash: sha256:1cyvb4cp8vx7ppfw0r31ilcdxksl7sgyccz6kwxcnl9h1z6ipn5x
NarSize: 226552
References: 7wwqvmv5mcg3a8ijq8ymr8vmpxnx1yvw-hello-2.12.1 jwm6b7hj8jvd5jscjsw3jgj8yh6zpp9s-glibc-2.35-224
Deriver: 35h3fhw3z2ppq9i67r5m6jnqz1ra1jh9-hello-2.12.1.drv
Sig: cache.nixos.org-1:oX9sCj8gLr/sVxW5vpmbEKZl8KO/nGSD0G1uWnBk+V1NdM7ETlHEC1cxlJfwTbRfD1a7mxAm3b9w8tH2AK4JAg==
";

    #[test]
    fn parses_and_writes_canonically() {
        let sd = StoreDir::nix();
        let info = NarInfo::parse(HELLO, &sd).unwrap();
        assert_eq!(info.nar_size, 226552);
        assert_eq!(info.references.len(), 2);
        assert_eq!(info.to_text(&sd), HELLO);
        assert_eq!(
            info.fingerprint(&sd).unwrap(),
            "1;/nix/store/7wwqvmv5mcg3a8ijq8ymr8vmpxnx1yvw-hello-2.12.1;sha256:1cyvb4cp8vx7ppfw0r31ilcdxksl7sgyccz6kwxcnl9h1z6ipn5x;226552;/nix/store/7wwqvmv5mcg3a8ijq8ymr8vmpxnx1yvw-hello-2.12.1,/nix/store/jwm6b7hj8jvd5jscjsw3jgj8yh6zpp9s-glibc-2.35-224"
        );
    }

    #[test]
    fn lenient_but_checked() {
        let sd = StoreDir::nix();
        let extra = format!("{HELLO}Unknown: field\n\n  \n");
        assert!(NarInfo::parse(&extra, &sd).is_ok());
        let bad = HELLO.replace("NarSize: 226552", "NarSize: lots");
        let e = NarInfo::parse(&bad, &sd).unwrap_err().to_string();
        assert!(e.contains("line 7") && e.contains("NarSize"), "{e}");
        let missing = HELLO.replace("NarHash", "NotNarHash");
        assert!(matches!(
            NarInfo::parse(&missing, &sd),
            Err(NarInfoError::Missing("NarHash"))
        ));
        assert!(NarInfo::parse("garbage without colon", &sd).is_err());
    }

    #[test]
    fn sign_and_verify() {
        let sd = StoreDir::nix();
        let mut info = NarInfo::parse(HELLO, &sd).unwrap();
        let key = SecretKey::from_seed("test-1", &[1u8; 32]).unwrap();
        assert!(!info.verify(&sd, &key.public()).unwrap());
        info.sign(&sd, &key).unwrap();
        assert!(info.verify(&sd, &key.public()).unwrap());
        info.nar_size += 1;
        assert!(!info.verify(&sd, &key.public()).unwrap());
    }
}
