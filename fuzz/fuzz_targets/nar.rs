#![no_main]
//! Arbitrary bytes through the NAR parser, and a restore into a scratch directory: must never
//! panic, and a failed restore must leave nothing behind.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut listing = guixie_formats::nar::NarListing::default();
    let parsed = guixie_formats::nar::parse_to_end(data, &mut listing).is_ok();
    let dir = std::env::temp_dir().join(format!("guixie-fuzz-nar-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let dest = dir.join("out");
    let restored = guixie_formats::nar::restore(data, &dest).is_ok();
    assert_eq!(parsed, restored, "parse and restore disagree");
    if !restored {
        assert!(std::fs::symlink_metadata(&dest).is_err(), "failed restore left files");
    }
    if std::fs::remove_dir_all(&dest).is_err() {
        let _ = std::fs::remove_file(&dest);
    }
});
