use super::*;

// Shaped like a narinfo cache.nixos.org serves (field order, References, Deriver, Sig).
const HELLO: &str = "StorePath: /nix/store/7wwqvmv5mcg3a8ijq8ymr8vmpxnx1yvw-hello-2.12.1
URL: nar/1r8ggiq1xr5ksxamjc95kxp7v4c6fmbxmiycxxp0vnn3bsdmbmcm.nar.xz
Compression: xz
FileHash: sha256:1r8ggiq1xr5ksxamjc95kxp7v4c6fmbxmiycxxp0vnn3bsdmbmcm
FileSize: 50264
NarHash: sha256:1cyvb4cp8vx7ppfw0r31ilcdxksl7sgyccz6kwxcnl9h1z6ipn5x
NarSize: 226552
References: 7wwqvmv5mcg3a8ijq8ymr8vmpxnx1yvw-hello-2.12.1 jwm6b7hj8jvd5jscjsw3jgj8yh6zpp9s-glibc-2.35-224
Deriver: 35h3fhw3z2ppq9i67r5m6jnqz1ra1jh9-hello-2.12.1.drv
Sig: cache.nixos.org-1:oX9sCj8gLr/sVxW5vpmbEKZl8KO/nGSD0G1uWnBk+V1NdM7ETlHEC1cxlJfwTbRfD1a7mxAm3b9w8tH2AK4JAg==
";

#[test]
fn parses_and_writes_canonically() {
    let sd = StoreDir::nix();
    let info = NarInfo::parse(HELLO, &sd).unwrap();
    assert_eq!(info.nar_size, 226552);
    assert_eq!(info.references.len(), 2);
    assert_eq!(info.to_text(&sd), HELLO);
    assert_eq!(
        info.fingerprint(&sd).unwrap(),
        "1;/nix/store/7wwqvmv5mcg3a8ijq8ymr8vmpxnx1yvw-hello-2.12.1;sha256:1cyvb4cp8vx7ppfw0r31ilcdxksl7sgyccz6kwxcnl9h1z6ipn5x;226552;/nix/store/7wwqvmv5mcg3a8ijq8ymr8vmpxnx1yvw-hello-2.12.1,/nix/store/jwm6b7hj8jvd5jscjsw3jgj8yh6zpp9s-glibc-2.35-224"
    );
}

#[test]
fn lenient_but_checked() {
    let sd = StoreDir::nix();
    let extra = format!("{HELLO}Unknown: field\n\n  \n");
    assert!(NarInfo::parse(&extra, &sd).is_ok());
    let bad = HELLO.replace("NarSize: 226552", "NarSize: lots");
    let e = NarInfo::parse(&bad, &sd).unwrap_err().to_string();
    assert!(e.contains("line 7") && e.contains("NarSize"), "{e}");
    let missing = HELLO.replace("NarHash", "NotNarHash");
    assert!(matches!(
        NarInfo::parse(&missing, &sd),
        Err(NarInfoError::Missing("NarHash"))
    ));
    assert!(NarInfo::parse("garbage without colon", &sd).is_err());
}

#[test]
fn sign_and_verify() {
    let sd = StoreDir::nix();
    let mut info = NarInfo::parse(HELLO, &sd).unwrap();
    let key = SecretKey::from_seed("test-1", &[1u8; 32]).unwrap();
    assert!(!info.verify(&sd, &key.public()).unwrap());
    info.sign(&sd, &key).unwrap();
    assert!(info.verify(&sd, &key.public()).unwrap());
    info.nar_size += 1;
    assert!(!info.verify(&sd, &key.public()).unwrap());
}

fn guix_info() -> (StoreDir, NarInfo) {
    let sd = StoreDir::new("/gnu/store").unwrap();
    let text = HELLO.replace("/nix/store", "/gnu/store");
    let info = NarInfo::parse(&text, &sd).unwrap();
    (sd, info)
}

#[test]
fn guix_dialect_signs_the_text_above_its_signature() {
    let (sd, mut info) = guix_info();
    info.files.push(NarFile {
        url: "nar/x.nar".into(),
        compression: Some("none".into()),
        file_hash: Some(info.nar_hash.clone()),
        file_size: Some(226552),
    });
    let key = SecretKey::from_seed("guixie-1", &[3u8; 32]).unwrap();
    let text = info.to_guix_text(&sd, Some((&key, "builder"))).unwrap();
    let signature_at = text.find("Signature: 1;builder;").unwrap();
    assert!(text[..signature_at]
        .ends_with("Deriver: 35h3fhw3z2ppq9i67r5m6jnqz1ra1jh9-hello-2.12.1.drv\n"));
    assert!(text[signature_at..].contains("URL: nar/x.nar\nCompression: none\nFileHash: sha256:"));
    let back = NarInfo::parse(&text, &sd).unwrap();
    // Every download comes back whole, its FileHash included.
    assert_eq!(back.files, info.files);
    assert_eq!(back.file_in(&["none"]).unwrap().url, "nar/x.nar");
    assert!(back.verify(&sd, &key.public()).unwrap());
    // The Nix signature it held (by another key) rides along, unsigned by Guix's.
    assert_eq!(back.signatures, info.signatures);

    // Positive controls: one changed byte above the signature, another key.
    let tampered = text.replace("NarSize: 226552", "NarSize: 226553");
    let t = NarInfo::parse(&tampered, &sd).unwrap();
    assert!(!t.verify(&sd, &key.public()).unwrap());
    let other = SecretKey::from_seed("other", &[4u8; 32]).unwrap();
    assert!(!back.verify(&sd, &other.public()).unwrap());
    // The downloads below the signature may change without re-signing.
    let moved = text.replace("URL: nar/x.nar", "URL: nar/y.nar");
    assert!(NarInfo::parse(&moved, &sd)
        .unwrap()
        .verify(&sd, &key.public())
        .unwrap());
}

#[test]
fn identity_fields_below_a_guix_signature_or_twice_are_refused() {
    let (sd, info) = guix_info();
    let key = SecretKey::from_seed("guixie-1", &[3u8; 32]).unwrap();
    let text = info.to_guix_text(&sd, Some((&key, "builder"))).unwrap();
    let evil = "References: 7wwqvmv5mcg3a8ijq8ymr8vmpxnx1yvw-hello-2.12.1\n";
    let e = NarInfo::parse(&format!("{text}{evil}"), &sd).unwrap_err();
    assert!(
        matches!(e, NarInfoError::Unsigned { ref field, .. } if field == "References"),
        "{e}"
    );
    let twice = HELLO.replace("NarSize: 226552\n", "NarSize: 226552\nNarSize: 1\n");
    let e = NarInfo::parse(&twice, &StoreDir::nix()).unwrap_err();
    assert!(matches!(e, NarInfoError::Repeated { line: 8, .. }), "{e}");
    for bad in ["2;h;AAAA", "1;h", "1;h;!!!", "1;h;KGE="] {
        let t = text.replace(
            text.lines().find(|l| l.starts_with("Signature:")).unwrap(),
            &format!("Signature: {bad}"),
        );
        let e = NarInfo::parse(&t, &sd).unwrap_err().to_string();
        assert!(e.contains("Signature:"), "{bad}: {e}");
    }
}
