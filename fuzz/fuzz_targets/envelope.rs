#![no_main]
//! Arbitrary bytes as a DSSE envelope: never panics; the statement and a verification are
//! attempted on whatever parses.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = guixie_attest::Envelope::parse(data) {
        let _ = env.statement();
        let key = guixie_formats::signing::PublicKey::parse("k:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=").unwrap();
        let _ = env.verify(&[key], 1);
        let again = guixie_attest::Envelope::parse(env.to_json().as_bytes()).unwrap();
        assert_eq!(again, env);
    }
});
