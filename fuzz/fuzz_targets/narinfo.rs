#![no_main]
//! Arbitrary text through the narinfo parser: never panics; both dialects' canonical output
//! parses back to what it holds.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let sd = guixie_formats::StoreDir::nix();
    if let Ok(info) = guixie_formats::narinfo::NarInfo::parse(text, &sd) {
        // Nix's text: one download, no Guix signature.
        let mut nix = info.clone();
        nix.guix_signature = None;
        nix.files.truncate(1);
        let again = guixie_formats::narinfo::NarInfo::parse(&info.to_text(&sd), &sd).expect("canonical form parses");
        assert_eq!(again, nix);
        let _ = info.fingerprint(&sd);
        // Guix's, unsigned: every download, no System.
        let mut guix = info.clone();
        guix.guix_signature = None;
        guix.system = None;
        let text = info.to_guix_text(&sd, None).expect("unsigned text");
        let again = guixie_formats::narinfo::NarInfo::parse(&text, &sd).expect("Guix form parses");
        assert_eq!(again, guix);
        if let Some(g) = &info.guix_signature {
            let _ = g.verify(&guixie_formats::signing::SecretKey::from_seed("f", &[1; 32]).unwrap().public());
        }
    }
});
