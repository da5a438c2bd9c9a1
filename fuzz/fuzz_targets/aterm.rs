#![no_main]
//! Arbitrary bytes through the `.drv` parser: never panics, and whatever parses re-serialises
//! to the same bytes.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(drv) = guixie_formats::derivation::Derivation::parse(data) {
        assert_eq!(drv.to_aterm(), data);
        let _ = drv.fixed_output();
        let _ = drv.to_json();
    }
});
