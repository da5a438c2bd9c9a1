use super::*;
use crate::signing::SecretKey;
use sha2::Sha256;

fn hex(s: &str) -> Vec<u8> {
    data_encoding::HEXUPPER.decode(s.as_bytes()).unwrap()
}

fn public(q: &[u8]) -> PublicKey {
    PublicKey::parse(&format!("k:{}", data_encoding::BASE64.encode(q))).unwrap()
}

/// A key libgcrypt 1.10 generated with Guix's parameters, `(genkey (ecdsa (curve Ed25519)
/// (flags rfc6979)))`, and its signature of SHA-256("hello") through guile-gcrypt.
const Q: &str = "EBF1840729819D9406DC12F0415E2D4DED6B31D600FC131B9CC486559160C786";
const D: &str = "70E5278300F678D61648E9BCC280ECB0B7A6E0F6E00FE9F497BB247BD222BD88";
const R: &str = "070B2321603833C716E087BD0A705B737AE25946F12AD7DC0A5E36580E150772";
const S: &str = "023D9054B3D7F16F0B8B5F86DD6F09553E43E1AEF116E22DF675082CA6550A6F";

fn libgcrypt_signature(digest: &[u8; 32], r: &str) -> Sexp {
    let text = format!(
        "(signature (data (flags rfc6979) (hash sha256 #{}#)) \
         (sig-val (ecdsa (r #{r}#) (s #{S}#))) \
         (public-key (ecc (curve Ed25519) (q #{Q}#))))",
        data_encoding::HEXUPPER.encode(digest)
    );
    Sexp::parse(text.as_bytes()).unwrap()
}

#[test]
fn guix_keys_are_ecdsa_scalars_of_the_ed25519_base_point() {
    let mut le: Vec<u8> = hex(D);
    le.reverse();
    let d = Scalar::from_bytes_mod_order(le.try_into().unwrap());
    assert_eq!(
        EdwardsPoint::mul_base(&d).compress().to_bytes().to_vec(),
        hex(Q)
    );
}

#[test]
fn verifies_what_libgcrypt_signed() {
    let digest: [u8; 32] = Sha256::digest(b"hello").into();
    let key = public(&hex(Q));
    verify(&libgcrypt_signature(&digest, R), &digest, &key).unwrap();
    // Positive controls: another message, another r, another key.
    let other: [u8; 32] = Sha256::digest(b"hellp").into();
    let mut forged = libgcrypt_signature(&other, R);
    assert!(matches!(
        verify(&forged, &digest, &key),
        Err(GuixSignatureError::HashMismatch { .. })
    ));
    assert_eq!(
        verify(&forged, &other, &key),
        Err(GuixSignatureError::Invalid)
    );
    let mut r = hex(R);
    r[31] ^= 1;
    forged = libgcrypt_signature(&digest, &data_encoding::HEXUPPER.encode(&r));
    assert_eq!(
        verify(&forged, &digest, &key),
        Err(GuixSignatureError::Invalid)
    );
    let stranger = SecretKey::from_seed("x", &[7; 32]).unwrap().public();
    assert!(matches!(
        verify(&libgcrypt_signature(&digest, R), &digest, &stranger),
        Err(GuixSignatureError::OtherKey(_))
    ));
}

#[test]
fn signs_what_it_verifies_with_the_nix_public_key() {
    let key = SecretKey::from_seed("cache-1", &[42; 32]).unwrap();
    let digest: [u8; 32] = Sha256::digest(b"StorePath: /gnu/store/...\n").into();
    let sig = sign(&key, &digest);
    verify(&sig, &digest, &key.public()).unwrap();
    // Deterministic, and the printed form reads back.
    assert_eq!(sig, sign(&key, &digest));
    let reread = Sexp::parse(sig.to_advanced().as_bytes()).unwrap();
    verify(&reread, &digest, &key.public()).unwrap();
    let other: [u8; 32] = Sha256::digest(b"other").into();
    assert!(verify(&sig, &other, &key.public()).is_err());
}

#[test]
fn eddsa_signatures_are_named_as_unsupported() {
    let digest = [1u8; 32];
    let text = format!(
        "(signature (data (flags rfc6979) (hash sha256 #{}#)) (sig-val (eddsa (r #01#) (s #02#))) \
         (public-key (ecc (curve Ed25519) (q #{Q}#))))",
        data_encoding::HEXUPPER.encode(&digest)
    );
    let sig = Sexp::parse(text.as_bytes()).unwrap();
    assert_eq!(
        verify(&sig, &digest, &public(&hex(Q))),
        Err(GuixSignatureError::Unsupported("eddsa".into()))
    );
}
