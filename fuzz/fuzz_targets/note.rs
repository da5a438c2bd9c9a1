#![no_main]
//! Arbitrary bytes as a signed note: never panics; a parsed note re-serialises to the input.
use libfuzzer_sys::fuzz_target;

const KEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";

fuzz_target!(|data: &[u8]| {
    if let Ok(note) = guixie_log::note::Note::parse(data) {
        assert_eq!(note.to_text().as_bytes(), data);
        let key = guixie_log::note::VerifierKey::parse(KEY).unwrap();
        let _ = note.verify(&[key]);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = guixie_log::note::VerifierKey::parse(text);
        let _ = guixie_log::note::SignerKey::parse(text);
    }
});
