use super::*;
use guixie_formats::derivation::{FixedOutput, Output};
use guixie_formats::{Hash, HashAlgo};

fn path(name: &str) -> StorePath {
    StoreDir::gnu()
        .make_text_path(
            name,
            &Hash::digest_of(HashAlgo::Sha256, name.as_bytes()),
            [],
        )
        .unwrap()
}

fn drv(env: &[(&str, &str)]) -> Derivation {
    let mut d = Derivation {
        builder: b"/bin/sh".to_vec(),
        args: vec![b"-c".to_vec(), b"true".to_vec()],
        ..Default::default()
    };
    d.outputs.insert(
        "out".into(),
        Output {
            path: Some(path("out")),
            fixed: None,
        },
    );
    for (k, v) in env {
        d.env.insert(k.as_bytes().to_vec(), v.as_bytes().to_vec());
    }
    d
}

fn lay(d: &Derivation, closure: &BTreeSet<StorePath>) -> Result<Layout, String> {
    let options = BuildOptions {
        shell: Some(PathBuf::from("/host/busybox")),
        ..BuildOptions::default()
    };
    let outputs = d.output_paths().unwrap();
    let nss = [PathBuf::from("/etc/nsswitch.conf")];
    layout(&LayoutRequest {
        drv: d,
        outputs: &outputs,
        closure,
        store_dir: &StoreDir::gnu(),
        real_store: Path::new("/r/gnu/store"),
        area: Path::new("/r/builds/1"),
        options: &options,
        build_user: Some((0x7000_0000, 0x7000_0000)),
        name_service_files: &nss,
    })
}

#[test]
fn inputs_are_their_closure_at_their_logical_paths() {
    let (a, b) = (path("a"), path("b"));
    let closure = BTreeSet::from([a.clone(), b.clone()]);
    let l = lay(&drv(&[]), &closure).unwrap();
    let spec = &l.spec;
    assert_eq!(spec.root, Path::new("/r/builds/1/root"));
    for p in [&a, &b] {
        assert!(spec.inputs.contains(&(
            Path::new("/r/gnu/store").join(p.to_string()),
            PathBuf::from(StoreDir::gnu().display(p))
        )));
    }
    assert!(spec
        .inputs
        .contains(&(PathBuf::from("/host/busybox"), PathBuf::from("/bin/sh"))));
    assert_eq!(
        spec.inputs.len(),
        3,
        "nothing but the closure and the shell"
    );
    let writable: Vec<_> = l.writable_host_dirs().collect();
    assert_eq!(
        writable,
        [
            Path::new("/r/builds/1/w/store"),
            Path::new("/r/builds/1/w/build"),
            Path::new("/r/builds/1/w/tmp")
        ]
    );
    assert_eq!(spec.writable_dirs[0].1, Path::new("/gnu/store"));
    assert_eq!(l.host_store, Path::new("/r/builds/1/w/store"));
    assert_eq!(l.host_build, Path::new("/r/builds/1/w/build"));
    assert!(!spec.network, "no network for an input-addressed build");
    assert_eq!(spec.build_user, Some((0x7000_0000, 0x7000_0000)));
    assert!(spec.builtin_fetch.is_none());
}

#[test]
fn the_environment_is_nixs() {
    let l = lay(
        &drv(&[("PATH", "/mine"), ("TMPDIR", "/elsewhere")]),
        &BTreeSet::new(),
    )
    .unwrap();
    let env: BTreeMap<_, _> = l.spec.env.iter().cloned().collect();
    let get = |k: &str| String::from_utf8(env[k.as_bytes()].clone()).unwrap();
    assert_eq!(
        get("PATH"),
        "/mine",
        "the derivation's variables win over defaults"
    );
    assert_eq!(
        get("TMPDIR"),
        "/build",
        "the build directory variables win over both"
    );
    assert_eq!(get("NIX_BUILD_TOP"), "/build");
    assert_eq!(get("NIX_STORE"), "/gnu/store");
    assert_eq!(get("HOME"), "/homeless-shelter");
}

#[test]
fn the_toolchain_must_be_an_input() {
    let tc = path("toolchain");
    let shown = StoreDir::gnu().display(&tc);
    let d = drv(&[(TOOLCHAIN_ENV, &shown)]);
    let e = lay(&d, &BTreeSet::new()).unwrap_err();
    assert!(e.contains("not one of the build's inputs"), "{e}");
    let l = lay(&d, &BTreeSet::from([tc.clone()])).unwrap();
    assert!(l.spec.inputs.contains(&(
        Path::new("/r/gnu/store").join(tc.to_string()).join("usr"),
        PathBuf::from("/usr")
    )));
    assert!(l
        .spec
        .symlinks
        .contains(&(PathBuf::from("/bin"), PathBuf::from("usr/bin"))));
    assert!(
        !l.spec
            .inputs
            .iter()
            .any(|(_, inside)| inside == Path::new("/bin/sh")),
        "the toolchain replaces the static shell"
    );
}

#[test]
fn fixed_outputs_get_a_network_and_builtin_fetches() {
    let mut d = drv(&[("url", "http://example.org/f")]);
    d.builder = b"builtin:fetchurl".to_vec();
    let e = lay(&d, &BTreeSet::new()).unwrap_err();
    assert!(e.contains("fixed output"), "{e}");
    d.outputs.get_mut("out").unwrap().fixed = Some(FixedOutput {
        recursive: false,
        hash: Hash::digest_of(HashAlgo::Sha256, b""),
    });
    let l = lay(&d, &BTreeSet::new()).unwrap();
    assert!(l.spec.network);
    assert!(l.spec.inputs.contains(&(
        PathBuf::from("/etc/nsswitch.conf"),
        PathBuf::from("/etc/nsswitch.conf")
    )));
    let fetch = l.spec.builtin_fetch.unwrap();
    assert_eq!(fetch.urls, ["http://example.org/f"]);
    assert_eq!(
        fetch.out,
        PathBuf::from(StoreDir::gnu().display(&path("out")))
    );
    assert!(!fetch.unpack && !fetch.executable);
}

#[test]
fn pass_as_file_moves_variables_into_the_build_directory() {
    let l = lay(
        &drv(&[("passAsFile", "script"), ("script", "echo hi")]),
        &BTreeSet::new(),
    )
    .unwrap();
    assert_eq!(l.build_files.len(), 1);
    let (file, contents) = &l.build_files[0];
    assert!(file.starts_with(".attr-"), "{file}");
    assert_eq!(contents, b"echo hi");
    let env: BTreeMap<_, _> = l.spec.env.iter().cloned().collect();
    assert!(!env.contains_key(b"script".as_slice()));
    assert_eq!(
        env[b"scriptPath".as_slice()],
        format!("/build/{file}").into_bytes()
    );
}
