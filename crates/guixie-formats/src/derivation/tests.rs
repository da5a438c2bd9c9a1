use super::*;
use proptest::prelude::*;

const SIMPLE_TEMPLATE: &[u8] = br#"Derive([("dev","/nix/store/0hm2f1psjpcwg8fijsmr4wwxrx59s092-foo-dev","",""),("out","/nix/store/4q0pg5zpfmznxscq3avycvf9xdvx50n3-foo","","")],[("/nix/store/0hm2f1psjpcwg8fijsmr4wwxrx59s092-bar.drv",["dev","out"])],["/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-src"],"x86_64-linux","/bin/sh",["-c","echo \"hi\\there\"\n\ttab\r"],[("builder","/bin/sh"),("dev","/nix/store/0hm2f1psjpcwg8fijsmr4wwxrx59s092-foo-dev"),("name","foo"),("out","/nix/store/4q0pg5zpfmznxscq3avycvf9xdvx50n3-foo"),("unicode","UNICODE")])"#;

/// Non-UTF-8 and non-ASCII bytes appear raw in `.drv` files.
fn simple() -> Vec<u8> {
    let t = String::from_utf8(SIMPLE_TEMPLATE.to_vec()).unwrap();
    let (a, b) = t.split_once("UNICODE").unwrap();
    [a.as_bytes(), b"h\xc3\xa9llo \xff", b.as_bytes()].concat()
}

#[test]
fn round_trips_byte_for_byte() {
    let simple = simple();
    let drv = Derivation::parse(&simple).unwrap();
    assert_eq!(drv.outputs.len(), 2);
    assert_eq!(drv.args[1], b"echo \"hi\\there\"\n\ttab\r");
    assert_eq!(drv.env[b"unicode".as_slice()], b"h\xc3\xa9llo \xff");
    assert_eq!(drv.to_aterm(), simple);
}

fn err_at(input: &[u8]) -> AtermError {
    Derivation::parse(input).unwrap_err()
}

#[test]
fn rejects_malformed() {
    let e = err_at(b"Derive([],[],[],\"s\",\"b\",[],[])x");
    assert!(e.message.contains("trailing"), "{e}");
    assert_eq!(e.offset, 30);
    let e = err_at(br#"Derive([],[],[],"s","b",["\a"],[])"#);
    assert!(e.message.contains("bad escape"), "{e}");
    let e = err_at(br#"Derive([],[],[],"s","b",[],[("a","1"),("a","2")])"#);
    assert!(e.message.contains("duplicate"), "{e}");
    let e = err_at(br#"Derive([],[],[],"s","b",[],[("b","1"),("a","2")])"#);
    assert!(e.message.contains("out of order"), "{e}");
    let e = err_at(br#"Derive([],[],["/nix/store/b","/nix/store/a"],"s","b",[],[])"#);
    assert!(e.message.contains("out-of-order"), "{e}");
    let e = err_at(b"Derive([],[],[],\"s\",\"b\",[\"a\nb\"],[])");
    assert!(e.message.contains("raw control"), "{e}");
    let simple = simple();
    for truncated in 0..simple.len() {
        assert!(Derivation::parse(&simple[..truncated]).is_err());
    }
    assert!(err_at(b"Derive([],[],[],\"s\",\"b\",[],[]")
        .message
        .contains("end of input"));
}

#[test]
fn fixed_output_paths() {
    let sd = StoreDir::nix();
    // `nix-hash --type sha256 --flat` of an empty file; flat sha256 FOD.
    let empty = Hash::digest_of(HashAlgo::Sha256, b"");
    let mut drv = Derivation::default();
    drv.env.insert(b"name".to_vec(), b"empty".to_vec());
    drv.outputs.insert(
        "out".into(),
        Output {
            path: String::new(),
            hash_algo: "sha256".into(),
            hash: empty.to_hex(),
        },
    );
    drv.fill_output_paths(&sd, InputCollision::Merge, &mut |_| unreachable!())
        .unwrap();
    let flat = drv.outputs["out"].path.clone();
    drv.outputs.get_mut("out").unwrap().hash_algo = "r:sha256".into();
    drv.fill_output_paths(&sd, InputCollision::Merge, &mut |_| unreachable!())
        .unwrap();
    let rec = drv.outputs["out"].path.clone();
    assert_ne!(flat, rec);
    // Recursive sha256 FODs share their path with `nix-store --add` of the same NAR hash.
    assert_eq!(
        rec,
        sd.display(&sd.make_source_path("empty", &empty, [], false).unwrap())
    );
}

#[test]
fn fixed_output_must_be_single_out() {
    let mut drv = Derivation::default();
    drv.outputs.insert(
        "dev".into(),
        Output {
            path: String::new(),
            hash_algo: "sha256".into(),
            hash: "00".repeat(32),
        },
    );
    assert!(matches!(
        drv.fixed_output(),
        Err(DerivationError::FixedOutputShape { .. })
    ));
}

#[test]
fn collision_modes_differ_only_on_collisions() {
    let mut drv = Derivation::default();
    drv.env.insert(b"name".to_vec(), b"x".to_vec());
    drv.outputs.insert(
        "out".into(),
        Output {
            path: String::new(),
            hash_algo: String::new(),
            hash: String::new(),
        },
    );
    drv.input_drvs.insert(
        "/nix/store/a.drv".into(),
        BTreeSet::from(["out".to_owned()]),
    );
    drv.input_drvs.insert(
        "/nix/store/b.drv".into(),
        BTreeSet::from(["dev".to_owned()]),
    );
    let same = Hash::digest_of(HashAlgo::Sha256, b"same");
    let merge = drv
        .hash_modulo(true, InputCollision::Merge, &mut |_| Ok(same.clone()))
        .unwrap();
    let last = drv
        .hash_modulo(true, InputCollision::LastWins, &mut |_| Ok(same.clone()))
        .unwrap();
    assert_ne!(merge, last);
    let mut distinct = |p: &str| Ok(Hash::digest_of(HashAlgo::Sha256, p.as_bytes()));
    let merge = drv
        .hash_modulo(true, InputCollision::Merge, &mut distinct)
        .unwrap();
    let last = drv
        .hash_modulo(true, InputCollision::LastWins, &mut distinct)
        .unwrap();
    assert_eq!(merge, last);
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..24)
}

fn ident() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9]{0,8}"
}

prop_compose! {
    fn arb_drv()(
        outputs in proptest::collection::btree_map(ident(), ("[/a-z0-9.-]{0,20}", "(r:)?(sha256)?", "[0-9a-f]{0,6}"), 0..4),
        input_drvs in proptest::collection::btree_map("[/a-z0-9.-]{1,20}", proptest::collection::btree_set(ident(), 0..3), 0..4),
        input_srcs in proptest::collection::btree_set("[/a-z0-9.-]{1,20}", 0..4),
        system in bytes(), builder in bytes(),
        args in proptest::collection::vec(bytes(), 0..4),
        env in proptest::collection::btree_map(bytes(), bytes(), 0..6),
    ) -> Derivation {
        Derivation {
            outputs: outputs.into_iter().map(|(k, (path, hash_algo, hash))| (k, Output { path, hash_algo, hash })).collect(),
            input_drvs, input_srcs, system, builder, args, env,
        }
    }
}

proptest! {
    #[test]
    fn aterm_round_trip(drv in arb_drv()) {
        let text = drv.to_aterm();
        let parsed = Derivation::parse(&text).unwrap();
        prop_assert_eq!(&parsed, &drv);
        prop_assert_eq!(parsed.to_aterm(), text);
    }

    #[test]
    fn parser_never_panics(input in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Derivation::parse(&input);
    }
}
