use super::*;

fn predicate(builder: &SecretKey) -> BuildPredicate {
    BuildPredicate {
        derivation: DerivationRef {
            path: "/gnu/store/00000000000000000000000000000000-hello.drv".into(),
            hash_modulo: "ab".repeat(32),
        },
        outputs: BTreeMap::from([(
            "out".to_owned(),
            OutputRef {
                path: "/gnu/store/11111111111111111111111111111111-hello".into(),
                nar_hash: "sha256:1lz94v6gx3xz1mn5fxyzw9c4flh0n79d6mw138nm9iprzh6vj9lg".into(),
                nar_size: 1224,
                blake3: None,
                references: None,
            },
        )]),
        builder: builder.public().to_string(),
        time: 1_700_000_000,
        sandbox: "full".into(),
        evidence: vec![EvidenceRef {
            kind: "build-log".into(),
            sha256: "cd".repeat(32),
        }],
    }
}

#[test]
fn sign_round_trip_and_threshold() {
    let (a, b, c) = (
        SecretKey::from_seed("a", &[1u8; 32]).unwrap(),
        SecretKey::from_seed("b", &[2u8; 32]).unwrap(),
        SecretKey::from_seed("c", &[3u8; 32]).unwrap(),
    );
    let st = Statement::build(predicate(&a)).unwrap();
    assert_eq!(st.subject[0].digest["sha256"].len(), 64);
    let mut env = Envelope::sign(&st, &a);
    env.add_signature(&b);
    let parsed = Envelope::parse(env.to_json().as_bytes()).unwrap();
    assert_eq!(parsed, env);
    let trusted = [a.public(), b.public(), c.public()];
    let (back, signers) = parsed.verify(&trusted, 2).unwrap();
    assert_eq!(back, st);
    assert_eq!(signers.len(), 2);
    assert_eq!(
        parsed.verify(&trusted, 3),
        Err(AttestError::BelowThreshold {
            required: 3,
            found: 2
        })
    );
}

#[test]
fn a_key_counts_once_whatever_it_claims() {
    let (a, b) = (
        SecretKey::from_seed("a", &[4u8; 32]).unwrap(),
        SecretKey::from_seed("b", &[5u8; 32]).unwrap(),
    );
    let st = Statement::build(predicate(&a)).unwrap();
    let mut env = Envelope::sign(&st, &a);
    env.add_signature(&a);
    // A signature by `a` claiming to be `b`'s does not make `b` a signer.
    let (_, sig) = env.signatures[0].clone();
    env.signatures.push(("b".into(), sig));
    let trusted = [a.public(), b.public(), a.public()];
    assert_eq!(
        env.verify(&trusted, 2),
        Err(AttestError::BelowThreshold {
            required: 2,
            found: 1
        })
    );
    assert!(env.verify(&trusted, 1).is_ok());
}

#[test]
fn tampering_and_wrong_types_are_rejected() {
    let a = SecretKey::from_seed("a", &[6u8; 32]).unwrap();
    let st = Statement::build(predicate(&a)).unwrap();
    let env = Envelope::sign(&st, &a);
    let mut tampered = env.clone();
    tampered.payload = String::from_utf8(tampered.payload)
        .unwrap()
        .replace("1224", "1225")
        .into_bytes();
    assert!(matches!(
        tampered.verify(&[a.public()], 1),
        Err(AttestError::BelowThreshold { .. })
    ));
    let mut retyped = env.clone();
    retyped.payload_type = "application/json".into();
    assert!(matches!(
        retyped.verify(&[a.public()], 1),
        Err(AttestError::WrongPayloadType(_))
    ));
    // A signature made for another payload type does not carry over.
    let mut other = Envelope {
        payload_type: "application/json".into(),
        payload: env.payload.clone(),
        signatures: vec![],
    };
    other.add_signature(&a);
    let swapped = Envelope {
        signatures: other.signatures.clone(),
        ..env.clone()
    };
    assert!(swapped.verify(&[a.public()], 1).is_err());
}

#[test]
fn malformed_envelopes_get_clear_errors() {
    for (input, what) in [
        ("not json", "malformed"),
        (
            r#"{"payloadType":"application/vnd.in-toto+json","payload":"!!","signatures":[]}"#,
            "payload",
        ),
        (
            r#"{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"sig":"%%"}]}"#,
            "signature 1",
        ),
        (
            r#"{"payloadType":"application/vnd.in-toto+json","signatures":[]}"#,
            "missing field",
        ),
        (
            r#"{"payloadType":"x","payload":"e30=","signatures":[],"extra":1}"#,
            "unknown field",
        ),
        (
            r#"{"payloadType":"x","payloadType":"y","payload":"e30=","signatures":[]}"#,
            "duplicate field",
        ),
    ] {
        let e = Envelope::parse(input.as_bytes()).unwrap_err().to_string();
        assert!(e.contains(what), "{input}: {e}");
    }
    assert!(matches!(
        Envelope::parse(&vec![b' '; MAX_ENVELOPE_BYTES + 1]),
        Err(AttestError::TooLarge(_))
    ));
    let empty = Envelope::parse(
        br#"{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}"#,
    )
    .unwrap();
    assert!(matches!(empty.statement(), Err(AttestError::Invalid(_))));
}

#[test]
fn pae_matches_the_dsse_spec_example() {
    // From the DSSE protocol document.
    assert_eq!(
        pae("http://example.com/HelloWorld", b"hello world"),
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
    );
}
