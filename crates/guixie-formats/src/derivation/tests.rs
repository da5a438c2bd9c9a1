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
    let drv = Derivation::parse(&simple, &StoreDir::nix()).unwrap();
    assert_eq!(drv.outputs.len(), 2);
    assert_eq!(drv.args[1], b"echo \"hi\\there\"\n\ttab\r");
    assert_eq!(drv.env[b"unicode".as_slice()], b"h\xc3\xa9llo \xff");
    assert_eq!(drv.to_aterm(&StoreDir::nix()), simple);
}

fn err_at(input: &[u8]) -> AtermError {
    Derivation::parse(input, &StoreDir::nix()).unwrap_err()
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
    let e = err_at(
        br#"Derive([],[],["/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-b","/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-a"],"s","b",[],[])"#,
    );
    assert!(e.message.contains("out-of-order"), "{e}");
    let e =
        err_at(br#"Derive([],[],["/gnu/store/00bgd045z0d4icpbc2yyz4gx48ak44la-b"],"s","b",[],[])"#);
    assert!(e.message.contains("input source") && e.offset == 14, "{e}");
    let e = err_at(br#"Derive([("out","","sha256","AB")],[],[],"s","b",[],[])"#);
    assert!(e.message.contains("output \"out\""), "{e}");
    let e = err_at(br#"Derive([("out","","r:sha256","")],[],[],"s","b",[],[])"#);
    assert!(e.message.contains("floating"), "{e}");
    let e = err_at(
        br#"Derive([("dev","","sha256","0000000000000000000000000000000000000000000000000000000000000000")],[],[],"s","b",[],[])"#,
    );
    assert!(e.message.contains("single output"), "{e}");
    let e = err_at(b"Derive([],[],[],\"s\",\"b\",[\"a\nb\"],[])");
    assert!(e.message.contains("raw control"), "{e}");
    let simple = simple();
    for truncated in 0..simple.len() {
        assert!(Derivation::parse(&simple[..truncated], &StoreDir::nix()).is_err());
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
            path: None,
            fixed: Some(FixedOutput {
                recursive: false,
                hash: empty.clone(),
            }),
        },
    );
    drv.fill_output_paths(&sd, InputCollision::Merge, &mut |_| unreachable!())
        .unwrap();
    let flat = drv.outputs["out"].path.clone();
    drv.outputs
        .get_mut("out")
        .unwrap()
        .fixed
        .as_mut()
        .unwrap()
        .recursive = true;
    drv.fill_output_paths(&sd, InputCollision::Merge, &mut |_| unreachable!())
        .unwrap();
    let rec = drv.outputs["out"].path.clone();
    assert_ne!(flat, rec);
    // Recursive sha256 FODs share their path with `nix-store --add` of the same NAR hash.
    assert_eq!(
        rec,
        Some(sd.make_source_path("empty", &empty, [], false).unwrap())
    );
}

#[test]
fn fixed_output_must_be_single_out() {
    let mut drv = Derivation::default();
    drv.outputs.insert(
        "dev".into(),
        Output {
            path: None,
            fixed: Some(FixedOutput {
                recursive: false,
                hash: Hash::digest_of(HashAlgo::Sha256, b""),
            }),
        },
    );
    drv.env.insert(b"name".to_vec(), b"x".to_vec());
    assert!(matches!(
        drv.fill_output_paths(
            &StoreDir::nix(),
            InputCollision::Merge,
            &mut |_| unreachable!()
        ),
        Err(DerivationError::FixedOutputShape { .. })
    ));
}

#[test]
fn collision_modes_differ_only_on_collisions() {
    let mut drv = Derivation::default();
    drv.env.insert(b"name".to_vec(), b"x".to_vec());
    drv.outputs.insert("out".into(), Output::default());
    let sd = StoreDir::nix();
    for (name, out) in [("a.drv", "out"), ("b.drv", "dev")] {
        let p = sd
            .make_text_path(
                name,
                &Hash::digest_of(HashAlgo::Sha256, name.as_bytes()),
                [],
            )
            .unwrap();
        drv.input_drvs.insert(p, BTreeSet::from([out.to_owned()]));
    }
    let same = Hash::digest_of(HashAlgo::Sha256, b"same");
    let merge = drv
        .hash_modulo(&sd, true, InputCollision::Merge, &mut |_| Ok(same.clone()))
        .unwrap();
    let last = drv
        .hash_modulo(&sd, true, InputCollision::LastWins, &mut |_| {
            Ok(same.clone())
        })
        .unwrap();
    assert_ne!(merge, last);
    let mut distinct = |p: &StorePath| Ok(Hash::digest_of(HashAlgo::Sha256, p.name().as_bytes()));
    let merge = drv
        .hash_modulo(&sd, true, InputCollision::Merge, &mut distinct)
        .unwrap();
    let last = drv
        .hash_modulo(&sd, true, InputCollision::LastWins, &mut distinct)
        .unwrap();
    assert_eq!(merge, last);
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..24)
}

fn ident() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9]{0,8}"
}

fn store_path() -> impl Strategy<Value = StorePath> {
    ("[0-9a-df-np-sv-z]{32}", "[a-z0-9][a-z0-9.-]{0,12}").prop_filter_map("valid path", |(h, n)| {
        StorePath::from_base_name(&format!("{h}-{n}")).ok()
    })
}

fn fixed() -> impl Strategy<Value = Option<FixedOutput>> {
    proptest::option::of(
        (any::<bool>(), proptest::collection::vec(any::<u8>(), 32)).prop_map(|(recursive, d)| {
            FixedOutput {
                recursive,
                hash: Hash::new(HashAlgo::Sha256, &d).unwrap(),
            }
        }),
    )
}

prop_compose! {
    fn arb_drv()(
        outputs in proptest::collection::btree_map(ident(), proptest::option::of(store_path()), 0..4),
        fixed in fixed(),
        input_drvs in proptest::collection::btree_map(store_path(), proptest::collection::btree_set(ident(), 0..3), 0..4),
        input_srcs in proptest::collection::btree_set(store_path(), 0..4),
        system in bytes(), builder in bytes(),
        args in proptest::collection::vec(bytes(), 0..4),
        env in proptest::collection::btree_map(bytes(), bytes(), 0..6),
    ) -> Derivation {
        let mut outputs: BTreeMap<String, Output> = outputs.into_iter().map(|(k, path)| (k, Output { path, fixed: None })).collect();
        if fixed.is_some() {
            outputs = BTreeMap::from([("out".to_owned(), Output { path: None, fixed })]);
        }
        Derivation { outputs, input_drvs, input_srcs, system, builder, args, env }
    }
}

proptest! {
    #[test]
    fn aterm_round_trip(drv in arb_drv()) {
        let sd = StoreDir::nix();
        let text = drv.to_aterm(&sd);
        let parsed = Derivation::parse(&text, &sd).unwrap();
        prop_assert_eq!(&parsed, &drv);
        prop_assert_eq!(parsed.to_aterm(&sd), text);
    }

    #[test]
    fn parser_never_panics(input in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Derivation::parse(&input, &StoreDir::nix());
    }
}
