#![no_main]
//! Arbitrary bytes through the S-expression reader of Guix signatures: never panics; the
//! printed form reads back equal; checking a signature never panics.
use guixie_formats::guix_signature::{verify, Sexp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sexp) = Sexp::parse(data) {
        let again = Sexp::parse(sexp.to_advanced().as_bytes()).expect("printed form reads");
        assert_eq!(again, sexp);
        let key = guixie_formats::signing::SecretKey::from_seed("f", &[1; 32]).unwrap().public();
        let _ = verify(&sexp, &[0; 32], &key);
    }
});
