use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;

use guixie_formats::StoreDir;

use super::*;

fn open(root: &Path) -> LocalStore {
    let clock = std::sync::Arc::new(guixie_env::FakeClock::new(1_700_000_000));
    LocalStore::open(StoreConfig::new(root, StoreDir::gnu(), clock)).unwrap()
}

fn tree(dir: &Path, content: &str) -> PathBuf {
    let t = dir.join(format!("src-{}", content.len()));
    fs::create_dir_all(t.join("sub")).unwrap();
    fs::write(t.join("sub/file"), content).unwrap();
    fs::write(t.join("exe"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(t.join("exe"), fs::Permissions::from_mode(0o4755)).unwrap();
    t
}

#[test]
fn add_is_canonical_and_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("root"));
    let src = tree(dir.path(), "hello");
    let info = store.add_path(&src, "hello-src", false).unwrap();
    assert_eq!(info.registration_time, 1_700_000_000);
    let real = store.real_path(&info.path);
    assert!(real.starts_with(dir.path().join("root/gnu/store")));
    let exe = fs::metadata(real.join("exe")).unwrap();
    assert_eq!(
        exe.permissions().mode() & 0o7777,
        0o555,
        "setuid dropped, read-only"
    );
    assert_eq!(std::os::unix::fs::MetadataExt::mtime(&exe), 1);
    assert_eq!(
        fs::metadata(real.join("sub")).unwrap().permissions().mode() & 0o777,
        0o555
    );
    // The path only depends on contents and name.
    let again = store.add_path(&src, "hello-src", false).unwrap();
    assert_eq!(again, info);
    assert_eq!(store.valid_paths().unwrap(), vec![info.path.clone()]);
    // Nothing left behind but the path itself.
    let entries: Vec<_> = fs::read_dir(store.real_store_dir()).unwrap().collect();
    assert_eq!(entries.len(), 1);
    let (checked, problems) = store.verify().unwrap();
    assert_eq!((checked, problems.len()), (1, 0));
}

#[test]
fn store_dir_is_remembered() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let clock = std::sync::Arc::new(guixie_env::FakeClock::new(0));
    let err = LocalStore::open(StoreConfig::new(dir.path(), StoreDir::nix(), clock))
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::StoreDirMismatch { .. }), "{err}");
}

#[test]
fn failed_add_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("root"));
    let fifo = dir.path().join("src");
    fs::create_dir(&fifo).unwrap();
    let c = std::ffi::CString::new(fifo.join("pipe").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let err = store.add_path(&fifo, "x", false).unwrap_err();
    assert!(err.to_string().contains("neither a regular file"), "{err}");
    assert_eq!(fs::read_dir(store.real_store_dir()).unwrap().count(), 0);
    assert!(store.valid_paths().unwrap().is_empty());
    assert!(store.add_path(&fifo, ".bad", false).is_err());
}

#[test]
fn references_gc_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("root"));
    let lib = store
        .add_path(&tree(dir.path(), "library"), "lib", false)
        .unwrap();
    let lib_abs = store.store_dir().display(&lib.path);
    let user_src = dir.path().join("user");
    fs::create_dir(&user_src).unwrap();
    fs::write(user_src.join("conf"), format!("path={lib_abs}/sub/file\n")).unwrap();
    let user = store.add_path(&user_src, "user", true).unwrap();
    assert_eq!(user.references, BTreeSet::from([lib.path.clone()]));
    let garbage = store
        .add_text("note.txt", b"unreferenced", &BTreeSet::new())
        .unwrap();
    fs::create_dir(
        store
            .real_store_dir()
            .join("00000000000000000000000000000000-stray"),
    )
    .unwrap();

    store.add_root("user", &user.path).unwrap();
    let dry = store.gc(true).unwrap();
    assert_eq!(dry.deleted, vec![store.store_dir().display(&garbage.path)]);
    assert!(store.is_valid(&garbage.path).unwrap());
    let report = store.gc(false).unwrap();
    assert_eq!(report.deleted.len(), 1);
    assert_eq!(
        report.stray,
        vec!["00000000000000000000000000000000-stray".to_owned()]
    );
    assert!(!store.is_valid(&garbage.path).unwrap());
    assert!(!store.real_path(&garbage.path).exists());
    assert!(
        store.is_valid(&lib.path).unwrap(),
        "reference of a root survives"
    );

    // Corrupt the library: verify names it.
    let f = store.real_path(&lib.path).join("sub/file");
    fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&f, "tampered").unwrap();
    let (_, problems) = store.verify().unwrap();
    assert_eq!(problems.len(), 1);
    assert!(matches!(&problems[0], VerifyProblem::Modified { path, .. } if *path == lib_abs));
    fs::remove_file(store.real_path(&user.path).join("conf")).unwrap();
    let (_, problems) = store.verify().unwrap();
    assert_eq!(problems.len(), 2);
}

#[test]
fn import_checks_hash_and_references() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(&dir.path().join("a"));
    let b = open(&dir.path().join("b"));
    let info = a
        .add_path(&tree(dir.path(), "payload"), "p", false)
        .unwrap();
    let mut nar = Vec::new();
    a.write_nar(&info.path, &mut nar).unwrap();
    let mut wrong = info.clone();
    wrong.nar_size += 1;
    assert!(matches!(
        b.import_nar(&wrong, &mut nar.as_slice()),
        Err(StoreError::HashMismatch { .. })
    ));
    assert_eq!(fs::read_dir(b.real_store_dir()).unwrap().count(), 0);
    let mut dangling = info.clone();
    dangling
        .references
        .insert(StorePath::from_base_name("00000000000000000000000000000000-gone").unwrap());
    assert!(matches!(
        b.import_nar(&dangling, &mut nar.as_slice()),
        Err(StoreError::MissingReference { .. })
    ));
    b.import_nar(&info, &mut nar.as_slice()).unwrap();
    assert_eq!(
        b.path_info(&info.path).unwrap().unwrap().nar_hash,
        info.nar_hash
    );
}

#[test]
fn a_staged_import_is_checked_first_and_valid_only_once_registered() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(&dir.path().join("a"));
    let b = open(&dir.path().join("b"));
    let dep = a.add_path(&tree(dir.path(), "dep"), "dep", false).unwrap();
    let mut info = a
        .add_path(&tree(dir.path(), "payload"), "p", false)
        .unwrap();
    info.references.insert(dep.path.clone());
    let nar_of = |p: &StorePath| {
        let mut nar = Vec::new();
        a.write_nar(p, &mut nar).unwrap();
        nar
    };
    let nar = nar_of(&info.path);
    // A wrong hash is refused while staging, and leaves nothing.
    let mut wrong = info.clone();
    wrong.nar_size += 1;
    assert!(matches!(
        b.stage_import(&wrong, &mut nar.as_slice()),
        Err(StoreError::HashMismatch { .. })
    ));
    assert_eq!(fs::read_dir(b.real_store_dir()).unwrap().count(), 0);
    // Staged before its reference: checked, on disk in a temporary entry, not valid.
    let staged = b.stage_import(&info, &mut nar.as_slice()).unwrap();
    assert!(!b.is_valid(&info.path).unwrap());
    let entries = || fs::read_dir(b.real_store_dir()).unwrap().count();
    assert_eq!(entries(), 1);
    // Dropped, it is gone.
    drop(staged);
    assert_eq!(entries(), 0);
    let staged = b.stage_import(&info, &mut nar.as_slice()).unwrap();
    b.import_nar(&dep, &mut nar_of(&dep.path).as_slice())
        .unwrap();
    b.register_staged(staged).unwrap();
    assert_eq!(
        b.path_info(&info.path).unwrap().unwrap().nar_hash,
        info.nar_hash
    );
    assert!(b.verify().unwrap().1.is_empty());
    // Staging a valid path reads nothing, and registering it does nothing.
    let again = b.stage_import(&info, &mut [].as_slice()).unwrap();
    b.register_staged(again).unwrap();
}

#[test]
fn concurrent_adders_agree() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let src = tree(dir.path(), "shared content");
    let store = std::sync::Arc::new(open(&root));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let src = src.clone();
            std::thread::spawn(move || store.add_path(&src, "shared", false).unwrap().path)
        })
        .collect();
    let paths: BTreeSet<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(paths.len(), 1);
    assert_eq!(fs::read_dir(store.real_store_dir()).unwrap().count(), 1);
    assert!(store.verify().unwrap().1.is_empty());
}

#[test]
fn batch_text_adds_register_in_order_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("root"));
    let first = TextItem {
        name: "a.drv".into(),
        contents: b"Derive(a)".to_vec(),
        references: BTreeSet::new(),
        derivation_outputs: Default::default(),
    };
    let a_path = store
        .store_dir()
        .make_text_path(
            "a.drv",
            &guixie_formats::Hash::digest_of(guixie_formats::HashAlgo::Sha256, b"Derive(a)"),
            [],
        )
        .unwrap();
    let second = TextItem {
        name: "b.drv".into(),
        contents: b"Derive(b)".to_vec(),
        references: BTreeSet::from([a_path.clone()]),
        derivation_outputs: Default::default(),
    };
    let paths = store.add_texts(&[first, second]).unwrap();
    assert_eq!(paths[0], a_path);
    let b = store.path_info(&paths[1]).unwrap().unwrap();
    assert_eq!(b.references, BTreeSet::from([a_path.clone()]));
    assert_eq!(fs::read(store.real_path(&paths[1])).unwrap(), b"Derive(b)");
    // Again: nothing changes; verify re-hashes the files from disk and agrees.
    let again = store
        .add_texts(&[TextItem {
            name: "a.drv".into(),
            contents: b"Derive(a)".to_vec(),
            references: BTreeSet::new(),
            derivation_outputs: Default::default(),
        }])
        .unwrap();
    assert_eq!(again[0], a_path);
    assert_eq!(store.verify().unwrap(), (2, vec![]));
    // A dangling reference fails the whole batch and leaves nothing behind.
    let bad = TextItem {
        name: "c.drv".into(),
        contents: b"c".to_vec(),
        references: BTreeSet::from([StorePath::from_base_name(
            "00000000000000000000000000000000-x",
        )
        .unwrap()]),
        derivation_outputs: Default::default(),
    };
    assert!(matches!(
        store.add_texts(&[bad]),
        Err(StoreError::MissingReference { .. })
    ));
    assert_eq!(fs::read_dir(store.real_store_dir()).unwrap().count(), 2);
}

#[test]
fn derivation_outputs_are_recorded_with_the_drv_and_go_with_it() {
    use guixie_formats::derivation::{Derivation, InputCollision, Output};
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("root"));
    let mut drv = Derivation::default();
    drv.env.insert(b"name".to_vec(), b"x".to_vec());
    for o in ["out", "dev"] {
        drv.outputs.insert(o.into(), Output::default());
    }
    drv.fill_output_paths(
        store.store_dir(),
        InputCollision::Merge,
        &mut |_| unreachable!(),
    )
    .unwrap();
    let (path, item) = TextItem::derivation("x", &drv, store.store_dir()).unwrap();
    assert_eq!(store.add_texts(&[item]).unwrap(), vec![path.clone()]);
    let info = store.path_info(&path).unwrap().unwrap();
    let other = store
        .add_text("note.txt", b"not a drv", &BTreeSet::new())
        .unwrap();
    let recorded = store
        .derivation_outputs(&[info.path.clone(), other.path.clone()])
        .unwrap();
    let outs = recorded[0].as_ref().unwrap();
    assert_eq!(Some(&outs["dev"]), drv.outputs["dev"].path.as_ref());
    assert_eq!(Some(&outs["out"]), drv.outputs["out"].path.as_ref());
    assert!(recorded[1].is_none());
    // Collected with the .drv.
    store.gc(false).unwrap();
    assert!(store.derivation_outputs(&[info.path]).unwrap()[0].is_none());
}
