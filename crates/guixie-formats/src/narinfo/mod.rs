//! `.narinfo` files of binary caches: a lenient parser (unknown keys ignored, as Nix does) and
//! canonical writers in two dialects: Nix's (`Sig:` lines over the fingerprint
//! `1;path;narHash;narSize;refs`) and Guix's (`Signature:` over the text above it; see
//! [`guix`]).

use std::fmt::Write as _;

use thiserror::Error;

use crate::hash::{Encoding, Hash, HashAlgo};
use crate::signing::{KeyError, PublicKey, SecretKey, Signature};
use crate::store_path::{StoreDir, StorePath, StorePathError};

/// Larger narinfo files are refused before parsing.
pub const MAX_NARINFO_BYTES: usize = 1 << 20;

mod guix;
pub use guix::GuixSignature;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NarInfo {
    pub store_path: StorePath,
    /// Where the NAR can be downloaded, in the order offered (Nix offers one; Guix one per
    /// compression).
    pub files: Vec<NarFile>,
    pub nar_hash: Hash,
    pub nar_size: u64,
    pub references: Vec<StorePath>,
    pub deriver: Option<StorePath>,
    pub system: Option<String>,
    pub signatures: Vec<Signature>,
    /// A Guix `Signature:` and the hash of the text it signs.
    pub guix_signature: Option<GuixSignature>,
    pub ca: Option<String>,
}

/// One download of a NAR: `URL`, `Compression`, `FileHash`, `FileSize`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NarFile {
    pub url: String,
    pub compression: Option<String>,
    pub file_hash: Option<Hash>,
    pub file_size: Option<u64>,
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
    #[error("narinfo line {line}: {field} comes after Signature:, where Guix does not sign it")]
    Unsigned { line: usize, field: String },
    #[error("narinfo line {line}: a second {field}")]
    Repeated { line: usize, field: String },
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
        let mut files: Vec<NarFile> = Vec::new();
        let (mut nar_hash, mut nar_size) = (None, None);
        let (mut references, mut deriver, mut system, mut ca) = (Vec::new(), None, None, None);
        let mut signatures = Vec::new();
        let mut guix_signature = None;
        let mut seen = std::collections::BTreeSet::new();
        let mut offset = 0;
        for (i, raw) in text.split_inclusive('\n').enumerate() {
            let (n, line_start) = (i + 1, offset);
            offset += raw.len();
            let line = raw.trim_end();
            if line.is_empty() {
                continue;
            }
            let (key, value) = line
                .split_once(':')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or_else(|| line_err(n, format!("{line:?} is not `Key: value`")))?;
            // What identifies the path and its contents is read once, and, in a narinfo Guix
            // signed, only from above the signature.
            if SIGNED_FIELDS.contains(&key) {
                if guix_signature.is_some() {
                    return Err(NarInfoError::Unsigned {
                        line: n,
                        field: key.to_owned(),
                    });
                }
                if !seen.insert(key) {
                    return Err(NarInfoError::Repeated {
                        line: n,
                        field: key.to_owned(),
                    });
                }
            }
            let path_err = |e: StorePathError| line_err(n, format!("{key}: {e}"));
            let hash =
                |v: &str| Hash::parse(v, None).map_err(|e| line_err(n, format!("{key}: {e}")));
            let number = |v: &str| {
                v.parse::<u64>()
                    .map_err(|e| line_err(n, format!("{key}: {v:?}: {e}")))
            };
            // `URL` opens a file; the fields after it describe that file.
            let file = |files: &mut Vec<NarFile>| -> usize {
                if files.is_empty() {
                    files.push(NarFile::default());
                }
                files.len() - 1
            };
            match key {
                "StorePath" => store_path = Some(store_dir.parse_path(value).map_err(path_err)?),
                "URL" => {
                    if files.last().is_none_or(|f| !f.url.is_empty()) {
                        files.push(NarFile::default());
                    }
                    let last = file(&mut files);
                    files[last].url = value.to_owned();
                }
                "Compression" => {
                    let last = file(&mut files);
                    files[last].compression = Some(value.to_owned());
                }
                "FileHash" => {
                    let last = file(&mut files);
                    files[last].file_hash = Some(hash(value)?);
                }
                "FileSize" => {
                    let last = file(&mut files);
                    files[last].file_size = Some(number(value)?);
                }
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
                "Signature" => {
                    guix_signature = Some(
                        GuixSignature::parse(value, &text.as_bytes()[..line_start])
                            .map_err(|e| line_err(n, format!("Signature: {e}")))?,
                    )
                }
                "CA" => ca = Some(value.to_owned()),
                _ => {}
            }
        }
        files.retain(|f| !f.url.is_empty());
        Ok(NarInfo {
            store_path: store_path.ok_or(NarInfoError::Missing("StorePath"))?,
            files,
            nar_hash: nar_hash.ok_or(NarInfoError::Missing("NarHash"))?,
            nar_size: nar_size.ok_or(NarInfoError::Missing("NarSize"))?,
            references,
            deriver,
            system,
            signatures,
            guix_signature,
            ca,
        })
    }

    /// The first file offered in a `Compression` this reader knows.
    pub fn file_in(&self, known: &[&str]) -> Option<&NarFile> {
        self.files.iter().find(|f| {
            // Nix's default when the field is absent.
            known.contains(&f.compression.as_deref().unwrap_or("bzip2"))
        })
    }

    /// The canonical text, fields in the order Nix writes them.
    pub fn to_text(&self, store_dir: &StoreDir) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "StorePath: {}", store_dir.display(&self.store_path));
        // Nix reads one file; it is the first offered.
        if let Some(file) = self.files.first() {
            file.write(&mut s);
        }
        self.write_contents(&mut s);
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

    /// `NarHash`, `NarSize`, `References` and `Deriver`: what the path holds and came from,
    /// in the order both dialects write them.
    fn write_contents(&self, s: &mut String) {
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

    /// Whether any signature verifies with `key`: a Nix `Sig:` over the fingerprint, or a
    /// Guix `Signature:` over the text above it.
    pub fn verify(&self, store_dir: &StoreDir, key: &PublicKey) -> Result<bool, NarInfoError> {
        let fp = self.fingerprint(store_dir)?;
        let guix = self
            .guix_signature
            .as_ref()
            .is_some_and(|g| g.verify(key).is_ok());
        Ok(guix || self.signatures.iter().any(|s| key.verify(fp.as_bytes(), s)))
    }
}

/// Fields that say which path this is and what it holds (besides signatures).
const SIGNED_FIELDS: &[&str] = &[
    "StorePath",
    "NarHash",
    "NarSize",
    "References",
    "Deriver",
    "System",
    "CA",
];

impl NarFile {
    fn write(&self, s: &mut String) {
        let _ = writeln!(s, "URL: {}", self.url);
        if let Some(c) = &self.compression {
            let _ = writeln!(s, "Compression: {c}");
        }
        if let Some(h) = &self.file_hash {
            let _ = writeln!(s, "FileHash: {}", h.to_typed_string(Encoding::Nix32));
        }
        if let Some(n) = self.file_size {
            let _ = writeln!(s, "FileSize: {n}");
        }
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
mod tests;
