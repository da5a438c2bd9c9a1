//! One suite of behaviour every [`Store`] must show, run against each implementation.

use std::collections::BTreeSet;
use std::io::Read;
use std::sync::Arc;

use guixie_env::FakeClock;
use guixie_formats::hash::{HashAlgo, Hasher};
use guixie_formats::{StoreDir, StorePath};

use crate::{LocalStore, MemoryStore, PathInfo, Store, StoreConfig, StoreError};

const NOW: i64 = 1_750_000_000;

/// A store under test and what keeps it alive.
struct Subject {
    store: Box<dyn Store>,
    _dir: Option<tempfile::TempDir>,
}

fn local() -> Subject {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig::new(dir.path(), StoreDir::gnu(), Arc::new(FakeClock::new(NOW)));
    Subject {
        store: Box::new(LocalStore::open(cfg).unwrap()),
        _dir: Some(dir),
    }
}

fn memory() -> Subject {
    Subject {
        store: Box::new(MemoryStore::new(
            StoreDir::gnu(),
            Arc::new(FakeClock::new(NOW)),
        )),
        _dir: None,
    }
}

/// A NAR of a tree made by `make` in a fresh directory, and the info to import it as `name`.
fn nar_of(
    sd: &StoreDir,
    name: &str,
    refs: &[&PathInfo],
    make: impl FnOnce(&std::path::Path),
) -> (PathInfo, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("x");
    make(&root);
    let mut nar = Vec::new();
    guixie_formats::nar::dump_path(&root, &mut nar).unwrap();
    let mut h = Hasher::new(HashAlgo::Sha256);
    h.update(&nar);
    let nar_hash = h.finish();
    let references: BTreeSet<StorePath> = refs.iter().map(|r| r.path.clone()).collect();
    let path = sd
        .make_source_path(name, &nar_hash, &references, false)
        .unwrap();
    let info = PathInfo {
        path,
        nar_hash,
        nar_size: nar.len() as u64,
        references,
        deriver: None,
        signatures: Vec::new(),
        registration_time: 0,
        ca: None,
    };
    (info, nar)
}

fn file(contents: &'static [u8]) -> impl FnOnce(&std::path::Path) {
    move |p| std::fs::write(p, contents).unwrap()
}

fn import(s: &dyn Store, info: &PathInfo, nar: &[u8]) -> Result<(), StoreError> {
    s.import_nar(info, &mut &nar[..])
}

/// Every test of the suite, run against a fresh store from `make`.
fn suite(make: fn() -> Subject) {
    imports_and_serves_a_path(make().store.as_ref());
    refuses_what_does_not_match(make().store.as_ref());
    never_reads_past_the_declared_size(make().store.as_ref());
    needs_references_first(make().store.as_ref());
    reads_single_files_only(make().store.as_ref());
    finds_paths_by_hash_part(make().store.as_ref());
    serves_readers_concurrently(make().store.as_ref());
    imports_batches_all_or_nothing(make().store.as_ref());
}

fn imports_batches_all_or_nothing(s: &dyn Store) {
    let sd = s.store_dir().clone();
    let (dep, dep_nar) = nar_of(&sd, "dep", &[], file(b"dependency"));
    let (top, top_nar) = nar_of(&sd, "top", &[&dep], file(b"uses dep"));
    let nars = |info: &PathInfo| -> Vec<u8> {
        if info.path == dep.path {
            dep_nar.clone()
        } else {
            top_nar.clone()
        }
    };
    // One NAR of the batch is wrong: the batch is refused, and nothing of it is left valid
    // that depends on what was refused.
    let bad = PathInfo {
        nar_hash: guixie_formats::Hash::digest_of(HashAlgo::Sha256, b"other"),
        ..top.clone()
    };
    let e = s
        .import_nars(&[dep.clone(), bad], &mut |i| {
            Ok(Box::new(std::io::Cursor::new(nars(i))))
        })
        .unwrap_err();
    assert!(matches!(e, StoreError::HashMismatch { .. }), "{e}");
    assert!(!s.is_valid(&top.path).unwrap());
    s.import_nars(&[dep.clone(), top.clone()], &mut |i| {
        Ok(Box::new(std::io::Cursor::new(nars(i))))
    })
    .unwrap();
    assert!(s.is_valid(&dep.path).unwrap() && s.is_valid(&top.path).unwrap());
    let got = s.path_info(&top.path).unwrap().unwrap();
    assert_eq!(got.references, BTreeSet::from([dep.path.clone()]));
    let mut out = Vec::new();
    s.write_nar(&top.path, &mut out).unwrap();
    assert_eq!(out, top_nar);
    // References first: a batch whose first item lacks its reference is refused.
    let (lone, lone_nar) = nar_of(&sd, "lone", &[&dep], file(b"other dep user"));
    let (ghost, _) = nar_of(&sd, "ghost", &[], file(b"never given"));
    let lone = PathInfo {
        references: BTreeSet::from([ghost.path.clone()]),
        ..lone
    };
    assert!(s
        .import_nars(std::slice::from_ref(&lone), &mut |_| Ok(Box::new(
            std::io::Cursor::new(lone_nar.clone())
        )))
        .is_err());
    assert!(!s.is_valid(&lone.path).unwrap());
}

fn imports_and_serves_a_path(s: &dyn Store) {
    let sd = s.store_dir().clone();
    let (info, nar) = nar_of(&sd, "tree", &[], |p| {
        std::fs::create_dir(p).unwrap();
        std::fs::write(p.join("a"), b"hello").unwrap();
        std::os::unix::fs::symlink("a", p.join("b")).unwrap();
    });
    assert!(!s.is_valid(&info.path).unwrap());
    assert!(s.path_info(&info.path).unwrap().is_none());
    import(s, &info, &nar).unwrap();
    let got = s
        .path_info(&info.path)
        .unwrap()
        .expect("valid after import");
    assert_eq!(got.nar_hash, info.nar_hash);
    assert_eq!(got.nar_size, info.nar_size);
    assert_eq!(got.references, info.references);
    assert_eq!(got.registration_time, NOW, "the store's clock dates it");
    assert_eq!(
        s.are_valid(std::slice::from_ref(&info.path)).unwrap(),
        vec![true]
    );
    let mut out = Vec::new();
    s.write_nar(&info.path, &mut out).unwrap();
    assert_eq!(out, nar, "the NAR comes back byte for byte");
    // A second import of a valid path reads nothing.
    struct Untouchable;
    impl Read for Untouchable {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            panic!("an import of a valid path read its NAR")
        }
    }
    s.import_nar(&info, &mut Untouchable).unwrap();
}

fn refuses_what_does_not_match(s: &dyn Store) {
    let sd = s.store_dir().clone();
    let (info, nar) = nar_of(&sd, "f", &[], file(b"payload!"));
    // The same archive with other file contents: well formed, hashed otherwise.
    let mut tampered = nar.clone();
    let at = nar.windows(8).position(|w| w == b"payload!").unwrap();
    tampered[at] = b'C';
    let e = import(s, &info, &tampered).unwrap_err();
    assert!(matches!(e, StoreError::HashMismatch { .. }), "{e}");
    let e = import(s, &info, &nar[..nar.len() - 8]).unwrap_err();
    assert!(
        matches!(e, StoreError::HashMismatch { .. } | StoreError::Restore(_)),
        "{e}"
    );
    // Bytes that hash as declared but are no NAR.
    let junk = b"this is not a NAR archive at all".to_vec();
    let mut h = Hasher::new(HashAlgo::Sha256);
    h.update(&junk);
    let junk_info = PathInfo {
        nar_hash: h.finish(),
        nar_size: junk.len() as u64,
        ..info.clone()
    };
    assert!(import(s, &junk_info, &junk).is_err());
    assert!(!s.is_valid(&info.path).unwrap(), "nothing half-imported");
    import(s, &info, &nar).unwrap();
}

fn never_reads_past_the_declared_size(s: &dyn Store) {
    let sd = s.store_dir().clone();
    let (info, nar) = nar_of(&sd, "f", &[], file(b"contents"));
    // A size smaller than the archive: it is cut there, and refused.
    let short = PathInfo {
        nar_size: info.nar_size - 8,
        ..info.clone()
    };
    let e = import(s, &short, &nar).unwrap_err();
    assert!(matches!(e, StoreError::HashMismatch { .. }), "{e}");
    assert!(!s.is_valid(&info.path).unwrap());
    // A stream that never ends: the import reads exactly the declared size, no more.
    struct Counted<R>(R, u64);
    impl<R: Read> Read for Counted<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.read(buf)?;
            self.1 += n as u64;
            Ok(n)
        }
    }
    let mut endless = Counted(nar.as_slice().chain(std::io::repeat(0)), 0);
    s.import_nar(&info, &mut endless).unwrap();
    assert_eq!(endless.1, info.nar_size);
    assert!(s.is_valid(&info.path).unwrap());
}

fn needs_references_first(s: &dyn Store) {
    let sd = s.store_dir().clone();
    let (dep, dep_nar) = nar_of(&sd, "dep", &[], file(b"dependency"));
    let (top, top_nar) = nar_of(&sd, "top", &[&dep], file(b"uses dep"));
    let e = import(s, &top, &top_nar).unwrap_err();
    assert!(matches!(e, StoreError::MissingReference { .. }), "{e}");
    assert!(!s.is_valid(&top.path).unwrap());
    import(s, &dep, &dep_nar).unwrap();
    import(s, &top, &top_nar).unwrap();
    let closure = s.closure(std::slice::from_ref(&top.path)).unwrap();
    assert_eq!(
        closure,
        BTreeSet::from([top.path.clone(), dep.path.clone()])
    );
    let closure = s.closure(std::slice::from_ref(&dep.path)).unwrap();
    assert_eq!(closure, BTreeSet::from([dep.path]));
}

fn reads_single_files_only(s: &dyn Store) {
    let sd = s.store_dir().clone();
    let (f, f_nar) = nar_of(&sd, "f.drv", &[], file(b"Derive(...)"));
    let (d, d_nar) = nar_of(&sd, "d", &[], |p| std::fs::create_dir(p).unwrap());
    import(s, &f, &f_nar).unwrap();
    import(s, &d, &d_nar).unwrap();
    assert_eq!(s.read_file(&f.path, 1024).unwrap(), b"Derive(...)");
    assert!(matches!(
        s.read_file(&f.path, 4).unwrap_err(),
        StoreError::NotAFile { .. }
    ));
    assert!(matches!(
        s.read_file(&d.path, 1024).unwrap_err(),
        StoreError::NotAFile { .. }
    ));
    let (missing, _) = nar_of(&sd, "missing", &[], file(b"never imported"));
    assert!(matches!(
        s.read_file(&missing.path, 1024).unwrap_err(),
        StoreError::NotValid { .. }
    ));
    // Not a derivation: a clear error naming it, no panic.
    let e = crate::read_derivation(s, &f.path).unwrap_err();
    assert!(e.to_string().contains("f.drv"), "{e}");
}

fn finds_paths_by_hash_part(s: &dyn Store) {
    let sd = s.store_dir().clone();
    let (info, nar) = nar_of(&sd, "f", &[], file(b"x"));
    let hash = info.path.hash_part().to_owned();
    assert_eq!(s.path_by_hash_part(&hash).unwrap(), None);
    import(s, &info, &nar).unwrap();
    assert_eq!(s.path_by_hash_part(&hash).unwrap(), Some(info.path.clone()));
    assert_eq!(
        s.path_by_nar_hash(&info.nar_hash).unwrap(),
        Some(info.path.clone())
    );
    let elsewhere = guixie_formats::Hash::digest_of(HashAlgo::Sha256, b"no such NAR");
    assert_eq!(s.path_by_nar_hash(&elsewhere).unwrap(), None);
    let other = "0".repeat(32);
    assert_eq!(s.path_by_hash_part(&other).unwrap(), None);
    assert_eq!(s.path_by_hash_part(&hash[..31]).unwrap(), None);
}

fn serves_readers_concurrently(s: &dyn Store) {
    let sd = s.store_dir().clone();
    let (info, nar) = nar_of(&sd, "f", &[], file(b"shared"));
    import(s, &info, &nar).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..50 {
                    assert!(s.path_info(&info.path).unwrap().is_some());
                    let mut out = Vec::new();
                    s.write_nar(&info.path, &mut out).unwrap();
                    assert_eq!(out, nar);
                }
            });
        }
    });
}

#[test]
fn local_store_conforms() {
    suite(local);
}

#[test]
fn memory_store_conforms() {
    suite(memory);
}
