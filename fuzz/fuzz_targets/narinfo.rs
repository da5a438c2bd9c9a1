#![no_main]
//! Arbitrary text through the narinfo parser: never panics; canonical output parses back equal.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let sd = guixie_formats::StoreDir::nix();
    if let Ok(info) = guixie_formats::narinfo::NarInfo::parse(text, &sd) {
        let again = guixie_formats::narinfo::NarInfo::parse(&info.to_text(&sd), &sd).expect("canonical form parses");
        assert_eq!(again, info);
        let _ = info.fingerprint(&sd);
    }
});
