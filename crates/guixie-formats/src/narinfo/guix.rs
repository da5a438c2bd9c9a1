//! Guix's narinfo dialect, as current `guix publish` writes it: the part that identifies the
//! path (`StorePath`, `NarHash`, `NarSize`, `References`, `Deriver`) first, then
//! `Signature: 1;<host>;<base64 S-expression>` over the SHA-256 of exactly that text, then
//! one `URL`/`Compression`/`FileHash`/`FileSize` group per download, unsigned (the NAR hash covers them).

use std::fmt::Write as _;

use data_encoding::BASE64;
use sha2::{Digest, Sha256};

use super::{NarInfo, NarInfoError};
use crate::guix_signature::{self, GuixSignatureError, Sexp};
use crate::hash::Encoding;
use crate::signing::{PublicKey, SecretKey};
use crate::store_path::StoreDir;

/// A `Signature:` field and the hash of the text above it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuixSignature {
    pub host: String,
    pub sexp: Sexp,
    pub signed_sha256: [u8; 32],
}

impl GuixSignature {
    /// `1;<host>;<base64>`, signing `above` (the narinfo's text before the field).
    pub fn parse(value: &str, above: &[u8]) -> Result<Self, String> {
        let mut parts = value.splitn(3, ';');
        let (version, host, b64) = (parts.next(), parts.next(), parts.next());
        let (Some("1"), Some(host), Some(b64)) = (version, host, b64) else {
            return Err(format!("{value:?} is not `1;<host>;<base64 signature>`"));
        };
        let bytes = BASE64
            .decode(b64.as_bytes())
            .map_err(|e| format!("bad base64: {e}"))?;
        let sexp = Sexp::parse(&bytes).map_err(|e| e.to_string())?;
        Ok(GuixSignature {
            host: host.to_owned(),
            sexp,
            signed_sha256: Sha256::digest(above).into(),
        })
    }

    pub fn verify(&self, key: &PublicKey) -> Result<(), GuixSignatureError> {
        guix_signature::verify(&self.sexp, &self.signed_sha256, key)
    }
}

impl NarInfo {
    /// The text in Guix's dialect, signed by `signer` (a key and the host name to show) when
    /// given. Nix signatures the narinfo holds follow the downloads, outside the signed part.
    pub fn to_guix_text(
        &self,
        store_dir: &StoreDir,
        signer: Option<(&SecretKey, &str)>,
    ) -> Result<String, NarInfoError> {
        let mut s = String::new();
        let _ = writeln!(s, "StorePath: {}", store_dir.display(&self.store_path));
        self.write_contents(&mut s);
        if let Some(ca) = &self.ca {
            let _ = writeln!(s, "CA: {ca}");
        }
        if let Some((key, host)) = signer {
            if host.is_empty() || host.contains([';', '\n']) {
                return Err(NarInfoError::Line {
                    line: 0,
                    message: format!("host name {host:?} cannot go in a Signature"),
                });
            }
            let digest: [u8; 32] = Sha256::digest(s.as_bytes()).into();
            let sexp = guix_signature::sign(key, &digest).to_advanced();
            let _ = writeln!(s, "Signature: 1;{host};{}", BASE64.encode(sexp.as_bytes()));
        }
        for file in &self.files {
            let _ = writeln!(s, "URL: {}", file.url);
            if let Some(c) = &file.compression {
                let _ = writeln!(s, "Compression: {c}");
            }
            // Guix reads `FileHash` as one more per-download field; nothing is dropped.
            if let Some(h) = &file.file_hash {
                let _ = writeln!(s, "FileHash: {}", h.to_typed_string(Encoding::Nix32));
            }
            if let Some(n) = file.file_size {
                let _ = writeln!(s, "FileSize: {n}");
            }
        }
        for sig in &self.signatures {
            let _ = writeln!(s, "Sig: {sig}");
        }
        Ok(s)
    }
}
