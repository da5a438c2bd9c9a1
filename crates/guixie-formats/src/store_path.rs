//! Store paths: `<store dir>/<nix32 of 160-bit digest>-<name>`, and the fingerprints Nix
//! hashes to compute them. The store directory is a parameter (`/nix/store`, `/gnu/store`, …).

use std::fmt;

use thiserror::Error;

use crate::hash::{compress, Hash, HashAlgo};
use crate::nixbase32;

pub const DIGEST_LEN: usize = 20;
pub const HASH_PART_LEN: usize = 32;
pub const MAX_NAME_LEN: usize = 211;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum StorePathError {
    #[error("store path {path:?} is not inside the store directory {store_dir}")]
    NotInStore { path: String, store_dir: String },
    #[error("store path base name {0:?} is too short (need 32 hash characters, '-', a name)")]
    TooShort(String),
    #[error("store path base name {base:?} has no '-' after the hash")]
    MissingDash { base: String },
    #[error("invalid hash part in store path {base:?}: {source}")]
    BadHash {
        base: String,
        source: nixbase32::Nix32Error,
    },
    #[error("invalid store path name {name:?}: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error("store directory {0:?} must be an absolute path without trailing '/'")]
    BadStoreDir(String),
}

/// Validates the name part of a store path, following Nix 2.8's rules.
pub fn validate_name(name: &str) -> Result<(), StorePathError> {
    let bad = |reason| {
        Err(StorePathError::BadName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("name is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("name is longer than 211 characters");
    }
    if name.starts_with('.') {
        return bad("name starts with '.'");
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"+-._?=".contains(&c))
    {
        return bad("name has a character outside [A-Za-z0-9+-._?=]");
    }
    Ok(())
}

/// The logical store directory, e.g. `/nix/store`. It is part of every store path hash.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoreDir(String);

impl StoreDir {
    pub fn new(dir: impl Into<String>) -> Result<Self, StorePathError> {
        let dir = dir.into();
        if !dir.starts_with('/') || (dir.len() > 1 && dir.ends_with('/')) || dir.contains("//") {
            return Err(StorePathError::BadStoreDir(dir));
        }
        Ok(StoreDir(dir))
    }

    pub fn nix() -> Self {
        StoreDir("/nix/store".into())
    }

    pub fn gnu() -> Self {
        StoreDir("/gnu/store".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses an absolute store path, also one with a sub-path after it (returned separately).
    pub fn parse_path_with_rest<'a>(
        &self,
        path: &'a str,
    ) -> Result<(StorePath, &'a str), StorePathError> {
        let not_in_store = || StorePathError::NotInStore {
            path: path.to_owned(),
            store_dir: self.0.clone(),
        };
        let rest = path
            .strip_prefix(self.0.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(not_in_store)?;
        let (base, sub) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        Ok((StorePath::from_base_name(base)?, sub))
    }

    pub fn parse_path(&self, path: &str) -> Result<StorePath, StorePathError> {
        match self.parse_path_with_rest(path)? {
            (p, "") => Ok(p),
            _ => Err(StorePathError::NotInStore {
                path: path.to_owned(),
                store_dir: self.0.clone(),
            }),
        }
    }

    pub fn display(&self, path: &StorePath) -> String {
        format!("{}/{}", self.0, path)
    }

    /// Nix's `makeStorePath`: sha256 of `type:sha256:<hex>:<store dir>:<name>`, folded to 160 bits.
    pub fn make_store_path(
        &self,
        path_type: &str,
        inner: &Hash,
        name: &str,
    ) -> Result<StorePath, StorePathError> {
        validate_name(name)?;
        let fingerprint = format!(
            "{path_type}:{}:{}:{name}",
            inner.to_typed_string(crate::hash::Encoding::Base16),
            self.0
        );
        let digest = Hash::digest_of(HashAlgo::Sha256, fingerprint.as_bytes());
        Ok(StorePath::from_digest(
            &compress(digest.digest(), DIGEST_LEN),
            name.to_owned(),
        ))
    }

    fn type_with_refs<'a>(
        &self,
        mut ty: String,
        refs: impl IntoIterator<Item = &'a StorePath>,
    ) -> String {
        let mut refs: Vec<String> = refs.into_iter().map(|r| self.display(r)).collect();
        refs.sort();
        for r in refs {
            ty.push(':');
            ty.push_str(&r);
        }
        ty
    }

    /// Path of a text file added with `builtins.toFile` / `add-text-to-store` (e.g. `.drv` files).
    pub fn make_text_path<'a>(
        &self,
        name: &str,
        content_sha256: &Hash,
        refs: impl IntoIterator<Item = &'a StorePath>,
    ) -> Result<StorePath, StorePathError> {
        let ty = self.type_with_refs("text".into(), refs);
        self.make_store_path(&ty, content_sha256, name)
    }

    /// Path of a NAR-hashed (recursive sha256) source, as `nix-store --add` computes it.
    pub fn make_source_path<'a>(
        &self,
        name: &str,
        nar_sha256: &Hash,
        refs: impl IntoIterator<Item = &'a StorePath>,
        self_ref: bool,
    ) -> Result<StorePath, StorePathError> {
        let mut ty = self.type_with_refs("source".into(), refs);
        if self_ref {
            ty.push_str(":self");
        }
        self.make_store_path(&ty, nar_sha256, name)
    }

    /// Path of an input-addressed derivation output.
    pub fn make_output_path(
        &self,
        output: &str,
        drv_hash_modulo: &Hash,
        drv_name: &str,
    ) -> Result<StorePath, StorePathError> {
        let name = output_path_name(drv_name, output);
        self.make_store_path(&format!("output:{output}"), drv_hash_modulo, &name)
    }

    /// Path of a fixed-output (content-addressed) output: flat or recursive, any algorithm.
    pub fn make_fixed_output_path(
        &self,
        name: &str,
        recursive: bool,
        hash: &Hash,
    ) -> Result<StorePath, StorePathError> {
        if recursive && hash.algo() == HashAlgo::Sha256 {
            self.make_source_path(name, hash, [], false)
        } else {
            let inner = format!(
                "fixed:out:{}{}:",
                if recursive { "r:" } else { "" },
                hash.to_typed_string(crate::hash::Encoding::Base16)
            );
            let inner = Hash::digest_of(HashAlgo::Sha256, inner.as_bytes());
            self.make_store_path("output:out", &inner, name)
        }
    }
}

/// `hello` for `out`, `hello-dev` for `dev`.
pub fn output_path_name(drv_name: &str, output: &str) -> String {
    if output == "out" {
        drv_name.to_owned()
    } else {
        format!("{drv_name}-{output}")
    }
}

/// A store path without its store directory: 160-bit digest and name. Ordered as Nix orders
/// them, by base name (the printed hash, then the name), so sorted sets of paths serialise in
/// the order `.drv` files and Nix's tools use.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorePath {
    /// The Nix32 hash part, ASCII.
    hash: [u8; HASH_PART_LEN],
    name: String,
}

impl StorePath {
    pub fn from_base_name(base: &str) -> Result<Self, StorePathError> {
        if base.len() < HASH_PART_LEN + 2 {
            return Err(StorePathError::TooShort(base.to_owned()));
        }
        if base.as_bytes()[HASH_PART_LEN] != b'-' {
            return Err(StorePathError::MissingDash {
                base: base.to_owned(),
            });
        }
        // Decoding checks the alphabet and that no bits lie beyond 160.
        nixbase32::decode_exact(&base.as_bytes()[..HASH_PART_LEN], DIGEST_LEN).map_err(
            |source| StorePathError::BadHash {
                base: base.to_owned(),
                source,
            },
        )?;
        let name = &base[HASH_PART_LEN + 1..];
        validate_name(name)?;
        let mut hash = [0u8; HASH_PART_LEN];
        hash.copy_from_slice(&base.as_bytes()[..HASH_PART_LEN]);
        Ok(StorePath {
            hash,
            name: name.to_owned(),
        })
    }

    fn from_digest(digest: &[u8], name: String) -> Self {
        let mut hash = [0u8; HASH_PART_LEN];
        hash.copy_from_slice(nixbase32::encode(digest).as_bytes());
        StorePath { hash, name }
    }

    pub fn digest(&self) -> [u8; DIGEST_LEN] {
        let d = nixbase32::decode_exact(&self.hash, DIGEST_LEN).expect("checked when made");
        let mut out = [0u8; DIGEST_LEN];
        out.copy_from_slice(&d);
        out
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 32-character Nix32 hash part, which reference scanning looks for.
    pub fn hash_part(&self) -> &str {
        std::str::from_utf8(&self.hash).expect("Nix32 is ASCII")
    }
}

/// The base name, `<hash>-<name>`.
impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.hash_part(), self.name)
    }
}

impl fmt::Debug for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorePath({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        let sd = StoreDir::nix();
        let p = sd
            .parse_path(
                "/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-net-tools-1.60_p20170221182432",
            )
            .unwrap();
        assert_eq!(p.name(), "net-tools-1.60_p20170221182432");
        assert_eq!(
            sd.display(&p),
            "/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-net-tools-1.60_p20170221182432"
        );
        let (p2, rest) = sd
            .parse_path_with_rest("/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-x/bin/sh")
            .unwrap();
        assert_eq!((p2.name(), rest), ("x", "/bin/sh"));
    }

    #[test]
    fn rejects_bad_paths() {
        let sd = StoreDir::nix();
        for bad in [
            "/gnu/store/00bgd045z0d4icpbc2yyz4gx48ak44la-x",
            "/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la",
            "/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-",
            "/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44lae-x",
            "/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la_x",
            "/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-.x",
            "/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-a b",
            "/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-a/",
        ] {
            assert!(sd.parse_path(bad).is_err(), "{bad}");
        }
        let long = "a".repeat(212);
        assert!(validate_name(&long).is_err());
        assert!(validate_name(&long[..211]).is_ok());
        assert!(StoreDir::new("nix/store").is_err());
        assert!(StoreDir::new("/nix/store/").is_err());
    }

    #[test]
    fn text_path_matches_nix() {
        // `builtins.toFile "foo" "bar"` in Nix gives this path (snix and Nix docs).
        let sd = StoreDir::nix();
        let h = Hash::digest_of(HashAlgo::Sha256, b"bar");
        let p = sd.make_text_path("foo", &h, []).unwrap();
        assert_eq!(
            sd.display(&p),
            "/nix/store/vxjiwkjkn7x4079qvh1jkl5pn05j2aw0-foo"
        );
    }

    #[test]
    fn paths_sort_as_their_names_do() {
        let sd = StoreDir::nix();
        let mut paths: Vec<StorePath> = (0..64u8)
            .map(|i| {
                sd.make_text_path("x", &Hash::digest_of(HashAlgo::Sha256, &[i]), [])
                    .unwrap()
            })
            .collect();
        paths.sort();
        let shown: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
        let mut sorted = shown.clone();
        sorted.sort();
        assert_eq!(shown, sorted);
        let p = &paths[0];
        assert_eq!(StorePath::from_digest(&p.digest(), "x".into()), *p);
    }

    #[test]
    fn store_dir_changes_paths() {
        let h = Hash::digest_of(HashAlgo::Sha256, b"bar");
        let a = StoreDir::nix().make_text_path("foo", &h, []).unwrap();
        let b = StoreDir::gnu().make_text_path("foo", &h, []).unwrap();
        assert_ne!(a, b);
    }
}
