#![no_main]
//! Arbitrary bytes as a checkpoint note, and as a checkpoint body: never panics; a parsed
//! body re-serialises to the input.
use libfuzzer_sys::fuzz_target;

const KEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";

fuzz_target!(|data: &[u8]| {
    let key = guixie_log::note::VerifierKey::parse(KEY).unwrap();
    let _ = guixie_log::checkpoint::verify(data, &key, std::slice::from_ref(&key), 1);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(cp) = guixie_log::checkpoint::Checkpoint::parse_body(text) {
            assert_eq!(cp.body(), text);
        }
    }
});
