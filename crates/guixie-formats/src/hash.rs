//! Cryptographic hashes as Nix names and prints them: `sha256:<nix32>`, base16, base64 and SRI.

use std::fmt;
use std::io::{self, Write};

use data_encoding::{BASE64, HEXLOWER_PERMISSIVE};
use sha2::Digest;
use thiserror::Error;

use crate::nixbase32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashAlgo {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl HashAlgo {
    pub const fn digest_len(self) -> usize {
        match self {
            HashAlgo::Md5 => 16,
            HashAlgo::Sha1 => 20,
            HashAlgo::Sha256 => 32,
            HashAlgo::Sha512 => 64,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            HashAlgo::Md5 => "md5",
            HashAlgo::Sha1 => "sha1",
            HashAlgo::Sha256 => "sha256",
            HashAlgo::Sha512 => "sha512",
        }
    }

    pub fn parse(name: &str) -> Result<Self, HashError> {
        match name {
            "md5" => Ok(HashAlgo::Md5),
            "sha1" => Ok(HashAlgo::Sha1),
            "sha256" => Ok(HashAlgo::Sha256),
            "sha512" => Ok(HashAlgo::Sha512),
            other => Err(HashError::UnknownAlgo(other.to_owned())),
        }
    }
}

impl fmt::Display for HashAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Base16,
    Nix32,
    Base64,
    Sri,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum HashError {
    #[error("unknown hash algorithm {0:?} (expected md5, sha1, sha256 or sha512)")]
    UnknownAlgo(String),
    #[error("hash {0:?} names no algorithm; prefix it with `sha256:` or pass a type")]
    MissingAlgo(String),
    #[error("hash has {len} characters, which is no encoding of a {algo} digest (base16 {b16}, nix32 {n32}, base64 {b64})")]
    BadLength {
        algo: HashAlgo,
        len: usize,
        b16: usize,
        n32: usize,
        b64: usize,
    },
    #[error("invalid {encoding} in {algo} hash: {reason}")]
    BadEncoding {
        algo: HashAlgo,
        encoding: &'static str,
        reason: String,
    },
    #[error("hash says {found} but {expected} was expected")]
    AlgoMismatch { expected: HashAlgo, found: HashAlgo },
}

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash {
    algo: HashAlgo,
    digest: Vec<u8>,
}

impl Hash {
    pub fn new(algo: HashAlgo, digest: &[u8]) -> Result<Self, HashError> {
        if digest.len() != algo.digest_len() {
            return Err(HashError::BadLength {
                algo,
                len: digest.len(),
                b16: algo.digest_len() * 2,
                n32: nixbase32::encoded_len(algo.digest_len()),
                b64: base64_len(algo.digest_len()),
            });
        }
        Ok(Hash {
            algo,
            digest: digest.to_vec(),
        })
    }

    pub fn digest_of(algo: HashAlgo, data: &[u8]) -> Self {
        let mut h = Hasher::new(algo);
        h.update(data);
        h.finish()
    }

    pub fn algo(&self) -> HashAlgo {
        self.algo
    }

    pub fn digest(&self) -> &[u8] {
        &self.digest
    }

    /// Parses `algo:digest` (any of base16/Nix32/base64) or SRI `algo-base64`.
    /// `default_algo` is used for a bare digest; if the string names an algorithm and
    /// `default_algo` is given, they must agree.
    pub fn parse(s: &str, default_algo: Option<HashAlgo>) -> Result<Self, HashError> {
        let (algo, rest, sri) = if let Some((a, rest)) = s.split_once(':') {
            (HashAlgo::parse(a)?, rest, false)
        } else if let Some((a, rest)) = s
            .split_once('-')
            .filter(|(a, _)| HashAlgo::parse(a).is_ok())
        {
            (HashAlgo::parse(a)?, rest, true)
        } else {
            let algo = default_algo.ok_or_else(|| HashError::MissingAlgo(s.to_owned()))?;
            (algo, s, false)
        };
        if let Some(expected) = default_algo {
            if expected != algo {
                return Err(HashError::AlgoMismatch {
                    expected,
                    found: algo,
                });
            }
        }
        if sri {
            return Self::decode_base64(algo, rest);
        }
        Self::parse_digest(algo, rest)
    }

    /// Decodes a bare digest, choosing the encoding by its length as Nix does.
    pub fn parse_digest(algo: HashAlgo, s: &str) -> Result<Self, HashError> {
        let n = algo.digest_len();
        let bad = |encoding: &'static str, reason: String| HashError::BadEncoding {
            algo,
            encoding,
            reason,
        };
        if s.len() == n * 2 {
            let digest = HEXLOWER_PERMISSIVE
                .decode(s.as_bytes())
                .map_err(|e| bad("base16", e.to_string()))?;
            Self::new(algo, &digest)
        } else if s.len() == nixbase32::encoded_len(n) {
            let digest = nixbase32::decode_exact(s.as_bytes(), n)
                .map_err(|e| bad("nix32", e.to_string()))?;
            Self::new(algo, &digest)
        } else if s.len() == base64_len(n) {
            Self::decode_base64(algo, s)
        } else {
            Err(HashError::BadLength {
                algo,
                len: s.len(),
                b16: n * 2,
                n32: nixbase32::encoded_len(n),
                b64: base64_len(n),
            })
        }
    }

    fn decode_base64(algo: HashAlgo, s: &str) -> Result<Self, HashError> {
        let digest = BASE64
            .decode(s.as_bytes())
            .map_err(|e| HashError::BadEncoding {
                algo,
                encoding: "base64",
                reason: e.to_string(),
            })?;
        Self::new(algo, &digest)
    }

    /// The digest alone in `encoding` (SRI includes the algorithm by definition).
    pub fn encode(&self, encoding: Encoding) -> String {
        match encoding {
            Encoding::Base16 => data_encoding::HEXLOWER.encode(&self.digest),
            Encoding::Nix32 => nixbase32::encode(&self.digest),
            Encoding::Base64 => BASE64.encode(&self.digest),
            Encoding::Sri => self.to_sri(),
        }
    }

    /// `algo:digest` in `encoding`; SRI is `algo-base64`.
    pub fn to_typed_string(&self, encoding: Encoding) -> String {
        match encoding {
            Encoding::Sri => self.to_sri(),
            _ => format!("{}:{}", self.algo, self.encode(encoding)),
        }
    }

    pub fn to_sri(&self) -> String {
        format!("{}-{}", self.algo, BASE64.encode(&self.digest))
    }

    pub fn to_hex(&self) -> String {
        self.encode(Encoding::Base16)
    }

    pub fn to_nix32(&self) -> String {
        self.encode(Encoding::Nix32)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_typed_string(Encoding::Base16))
    }
}

/// `sha256:<nix32>`, the form Nix uses in narinfo and its database.
impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_typed_string(Encoding::Nix32))
    }
}

const fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// Incremental hasher for any supported algorithm; also an `io::Write` sink.
pub enum Hasher {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn new(algo: HashAlgo) -> Self {
        match algo {
            HashAlgo::Md5 => Hasher::Md5(md5::Md5::new()),
            HashAlgo::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            HashAlgo::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            HashAlgo::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Hash {
        let (algo, digest) = match self {
            Hasher::Md5(h) => (HashAlgo::Md5, h.finalize().to_vec()),
            Hasher::Sha1(h) => (HashAlgo::Sha1, h.finalize().to_vec()),
            Hasher::Sha256(h) => (HashAlgo::Sha256, h.finalize().to_vec()),
            Hasher::Sha512(h) => (HashAlgo::Sha512, h.finalize().to_vec()),
        };
        Hash { algo, digest }
    }
}

impl Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Counts bytes on the way to an inner writer (NAR size beside NAR hash).
pub struct CountingWriter<W> {
    pub inner: W,
    pub count: u64,
}

impl<W: Write> CountingWriter<W> {
    pub fn new(inner: W) -> Self {
        CountingWriter { inner, count: 0 }
    }
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Nix's "compressHash": XOR-fold a digest into `len` bytes.
pub fn compress(digest: &[u8], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    for (i, b) in digest.iter().enumerate() {
        out[i % len] ^= b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC_SHA256_HEX: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn all_forms_parse_to_the_same_hash() {
        let h = Hash::digest_of(HashAlgo::Sha256, b"abc");
        assert_eq!(h.to_hex(), ABC_SHA256_HEX);
        for form in [
            format!("sha256:{ABC_SHA256_HEX}"),
            h.to_typed_string(Encoding::Nix32),
            h.to_typed_string(Encoding::Base64),
            h.to_sri(),
        ] {
            assert_eq!(Hash::parse(&form, None).unwrap(), h, "{form}");
        }
        assert_eq!(
            Hash::parse(ABC_SHA256_HEX, Some(HashAlgo::Sha256)).unwrap(),
            h
        );
        assert_eq!(
            h.to_sri(),
            "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
    }

    #[test]
    fn sha1_and_sha512() {
        let h = Hash::digest_of(HashAlgo::Sha1, b"abc");
        assert_eq!(h.to_hex(), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(h.to_nix32(), "kpcd173cq987hw957sx6m0868wv3x6d9");
        let h = Hash::digest_of(HashAlgo::Sha512, b"abc");
        assert_eq!(Hash::parse(&h.to_sri(), None).unwrap(), h);
        assert_eq!(
            Hash::parse(&h.to_typed_string(Encoding::Nix32), None).unwrap(),
            h
        );
    }

    #[test]
    fn rejects_bad_hashes() {
        assert!(matches!(
            Hash::parse("sha256:abc", None),
            Err(HashError::BadLength { .. })
        ));
        assert!(matches!(
            Hash::parse("blake9:abc", None),
            Err(HashError::UnknownAlgo(_))
        ));
        assert!(matches!(
            Hash::parse("abc", None),
            Err(HashError::MissingAlgo(_))
        ));
        let bad_hex = "z".repeat(64);
        assert!(matches!(
            Hash::parse(&format!("sha256:{bad_hex}"), None),
            Err(HashError::BadEncoding { .. })
        ));
        assert!(matches!(
            Hash::parse(&format!("sha1:{ABC_SHA256_HEX}"), Some(HashAlgo::Sha256)),
            Err(HashError::AlgoMismatch { .. })
        ));
    }
}
