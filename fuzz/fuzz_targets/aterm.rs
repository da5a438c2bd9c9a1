#![no_main]
//! Arbitrary bytes through the `.drv` parser: never panics, and whatever parses re-serialises
//! to the same bytes.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let sd = guixie_formats::StoreDir::nix();
    if let Ok(drv) = guixie_formats::derivation::Derivation::parse(data, &sd) {
        assert_eq!(drv.to_aterm(&sd), data);
        let _ = drv.fixed_output();
        let _ = drv.to_json(&sd);
    }
});
