//! Guix's narinfo signatures: `Signature: 1;<host>;<base64 S-expression>` over the SHA-256 of
//! the narinfo text above it, as libgcrypt makes them for Guix's keys.
//!
//! Guix generates its keys with `(genkey (ecdsa (curve Ed25519) (flags rfc6979)))`, so its
//! signatures are **ECDSA on the Ed25519 curve** (`(sig-val (ecdsa (r …) (s …)))`), not EdDSA:
//! the hash is the message's SHA-256 cut to the group order's 253 bits, and `r` is the affine
//! x coordinate of `k·G` modulo the order. A guixie key serves both dialects: its Ed25519
//! scalar `a` (with `a·G` its public key) is the ECDSA secret, so Guix's `q` and Nix's public
//! key are the same 32 bytes. The ECDSA nonce is derived as EdDSA derives its own (a hash of
//! the key's secret prefix and the message) under a label of its own, so no nonce is shared
//! between the two schemes.

pub mod sexp;

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use num_bigint::BigUint;
use sha2::{Digest, Sha512};

use crate::signing::{PublicKey, SecretKey};
pub use sexp::{Sexp, SexpError, MAX_SEXP_BYTES};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GuixSignatureError {
    #[error("{0}")]
    Sexp(#[from] SexpError),
    #[error("the signature has no {0}")]
    Missing(&'static str),
    #[error("the signature is over hash {signed}, the narinfo's is {actual}")]
    HashMismatch { signed: String, actual: String },
    #[error("the signature names the key q={0}, not the one checked against")]
    OtherKey(String),
    #[error("the signature is {0}, not ECDSA on Ed25519 (what Guix's keys make)")]
    Unsupported(String),
    #[error("the signature does not verify")]
    Invalid,
}

/// `(public-key (ecc (curve Ed25519) (q #…#)))`: the key as Guix's ACL and
/// `/signing-key.pub` carry it.
pub fn public_key_sexp(key: &PublicKey) -> Sexp {
    list(vec![
        atom("public-key"),
        list(vec![
            atom("ecc"),
            list(vec![atom("curve"), atom("Ed25519")]),
            list(vec![atom("q"), Sexp::atom(key.as_bytes().to_vec())]),
        ]),
    ])
}

/// The `(signature (data …) (sig-val …) (public-key …))` of `digest`, as Guix's `signature-sexp`
/// writes it.
pub fn sign(key: &SecretKey, digest: &[u8; 32]) -> Sexp {
    let signing = key.dalek();
    let d = signing.to_scalar();
    let prefix = &Sha512::digest(signing.to_bytes())[32..];
    let e = hash_scalar(digest);
    // r and s are zero with negligible probability (about 2^-252); a counter makes the loop
    // total anyway.
    let (r, s) = (0u8..)
        .find_map(|attempt| {
            let mut h = Sha512::new();
            h.update(b"guixie: ECDSA-on-Ed25519 nonce for Guix signatures\0");
            h.update([attempt]);
            h.update(prefix);
            h.update(digest);
            let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
            let r = x_mod_order(&EdwardsPoint::mul_base(&k));
            let s = k.invert() * (e + r * d);
            (k != Scalar::ZERO && r != Scalar::ZERO && s != Scalar::ZERO).then_some((r, s))
        })
        .expect("a nonzero nonce within 256 tries");
    list(vec![
        atom("signature"),
        data_sexp(digest),
        list(vec![
            atom("sig-val"),
            list(vec![
                atom("ecdsa"),
                list(vec![atom("r"), Sexp::atom(scalar_to_mpi(&r))]),
                list(vec![atom("s"), Sexp::atom(scalar_to_mpi(&s))]),
            ]),
        ]),
        public_key_sexp(&key.public()),
    ])
}

/// Checks a Guix `(signature …)` as Guix's `%signature-status` does: it must sign `digest`,
/// name `key`, and verify with it.
pub fn verify(
    signature: &Sexp,
    digest: &[u8; 32],
    key: &PublicKey,
) -> Result<(), GuixSignatureError> {
    let data = signature
        .find("data")
        .ok_or(GuixSignatureError::Missing("(data …)"))?;
    let hash = data
        .find("hash")
        .ok_or(GuixSignatureError::Missing("(hash …)"))?;
    let signed = hash
        .nth_atom(2)
        .ok_or(GuixSignatureError::Missing("hash value"))?;
    if hash.nth_atom(1) != Some(b"sha256") || signed != digest {
        return Err(GuixSignatureError::HashMismatch {
            signed: format!(
                "{}:{}",
                String::from_utf8_lossy(hash.nth_atom(1).unwrap_or(b"?")),
                data_encoding::HEXLOWER.encode(signed)
            ),
            actual: format!("sha256:{}", data_encoding::HEXLOWER.encode(digest)),
        });
    }
    let q = signature
        .find("public-key")
        .and_then(|k| k.find("q"))
        .and_then(|q| q.nth_atom(1))
        .ok_or(GuixSignatureError::Missing("(public-key … (q …))"))?;
    // libgcrypt accepts the point with or without its 0x40 "compressed" prefix.
    let q = match q {
        [0x40, rest @ ..] if rest.len() == 32 => rest,
        q => q,
    };
    if q != key.as_bytes() {
        return Err(GuixSignatureError::OtherKey(
            data_encoding::HEXUPPER.encode(q),
        ));
    }
    let sig_val = signature
        .find("sig-val")
        .ok_or(GuixSignatureError::Missing("(sig-val …)"))?;
    let ecdsa = sig_val.find("ecdsa").ok_or_else(|| {
        GuixSignatureError::Unsupported(
            match sig_val {
                Sexp::List(items) => items.get(1).and_then(|i| i.name()),
                Sexp::Atom(_) => None,
            }
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_else(|| "empty".into()),
        )
    })?;
    let component = |name: &'static str| {
        ecdsa
            .find(name)
            .and_then(|c| c.nth_atom(1))
            .and_then(mpi_to_scalar)
            .ok_or(GuixSignatureError::Invalid)
    };
    let (r, s) = (component("r")?, component("s")?);
    let q_point = CompressedEdwardsY(*key.as_bytes())
        .decompress()
        .ok_or(GuixSignatureError::Invalid)?;
    let w = s.invert();
    let p = EdwardsPoint::vartime_double_scalar_mul_basepoint(
        &(r * w),
        &q_point,
        &(hash_scalar(digest) * w),
    );
    if p == EdwardsPoint::default() || x_mod_order(&p) != r {
        return Err(GuixSignatureError::Invalid);
    }
    Ok(())
}

fn atom(s: &str) -> Sexp {
    Sexp::atom(s.as_bytes().to_vec())
}

fn list(items: Vec<Sexp>) -> Sexp {
    Sexp::List(items)
}

/// `(data (flags rfc6979) (hash sha256 #…#))`, as guile-gcrypt's `bytevector->hash-data`.
fn data_sexp(digest: &[u8; 32]) -> Sexp {
    list(vec![
        atom("data"),
        list(vec![atom("flags"), atom("rfc6979")]),
        list(vec![
            atom("hash"),
            atom("sha256"),
            Sexp::atom(digest.to_vec()),
        ]),
    ])
}

/// The hash as libgcrypt's ECDSA takes it: big-endian, cut to the order's 253 bits.
fn hash_scalar(digest: &[u8; 32]) -> Scalar {
    let e = BigUint::from_bytes_be(digest) >> 3u32;
    Scalar::from_bytes_mod_order(le32(&e))
}

/// An MPI as libgcrypt prints it: big-endian without leading zeros.
fn scalar_to_mpi(s: &Scalar) -> Vec<u8> {
    let be: Vec<u8> = s.to_bytes().iter().rev().copied().collect();
    let first = be.iter().position(|&b| b != 0).unwrap_or(be.len() - 1);
    be[first..].to_vec()
}

/// A big-endian MPI in `1..order`, else `None`.
fn mpi_to_scalar(be: &[u8]) -> Option<Scalar> {
    let digits = &be[be.iter().position(|&b| b != 0)?..];
    if digits.len() > 32 {
        return None;
    }
    let mut le = [0u8; 32];
    for (i, b) in digits.iter().rev().enumerate() {
        le[i] = *b;
    }
    Option::from(Scalar::from_canonical_bytes(le))
}

fn le32(n: &BigUint) -> [u8; 32] {
    let mut out = [0u8; 32];
    let bytes = n.to_bytes_le();
    out[..bytes.len().min(32)].copy_from_slice(&bytes[..bytes.len().min(32)]);
    out
}

/// The affine x coordinate of `p` modulo the group order, recovered from its encoding (y and
/// the sign of x) as RFC 8032 §5.1.3 decodes a point. Only public points pass through here.
fn x_mod_order(p: &EdwardsPoint) -> Scalar {
    let enc = p.compress().to_bytes();
    let sign = enc[31] >> 7;
    let mut y_bytes = enc;
    y_bytes[31] &= 0x7f;
    let prime = (BigUint::from(1u8) << 255u32) - BigUint::from(19u8);
    let y = BigUint::from_bytes_le(&y_bytes);
    let inverse = |v: &BigUint| v.modpow(&(&prime - BigUint::from(2u8)), &prime);
    let d = ((&prime - BigUint::from(121665u32)) * inverse(&BigUint::from(121666u32))) % &prime;
    let y2 = (&y * &y) % &prime;
    let u = (&y2 + &prime - BigUint::from(1u8)) % &prime;
    let v = (&d * &y2 + BigUint::from(1u8)) % &prime;
    let x2 = (u * inverse(&v)) % &prime;
    let mut x = x2.modpow(&((&prime + BigUint::from(3u8)) >> 3u32), &prime);
    if (&x * &x) % &prime != x2 {
        let sqrt_m1 = BigUint::from(2u8).modpow(&((&prime - BigUint::from(1u8)) >> 2u32), &prime);
        x = (x * sqrt_m1) % &prime;
    }
    if x.bit(0) != (sign == 1) {
        x = (&prime - x) % &prime;
    }
    Scalar::from_bytes_mod_order(le32(&x))
}

#[cfg(test)]
mod tests;
