use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};

use super::*;
use crate::hash::HashAlgo;

fn sample_tree(root: &std::path::Path) {
    fs::create_dir(root).unwrap();
    fs::write(root.join("b.txt"), b"hello").unwrap();
    fs::write(root.join("exe"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(root.join("exe"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir(root.join("a-dir")).unwrap();
    fs::create_dir(root.join("empty")).unwrap();
    fs::write(root.join("a-dir/empty-file"), b"").unwrap();
    symlink("../b.txt", root.join("a-dir/link")).unwrap();
}

fn nar_of(path: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    dump_path(path, &mut out).unwrap();
    out
}

/// A NAR built token by token, so tests can make malformed ones.
fn tokens(ts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in ts {
        out.extend_from_slice(&(t.len() as u64).to_le_bytes());
        out.extend_from_slice(t);
        out.extend(std::iter::repeat_n(0u8, padding(t.len() as u64)));
    }
    out
}

#[test]
fn dump_restore_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    sample_tree(&dir.path().join("t"));
    let nar = nar_of(&dir.path().join("t"));
    restore(nar.as_slice(), &dir.path().join("r")).unwrap();
    assert_eq!(nar_of(&dir.path().join("r")), nar);
    let mut listing = NarListing::default();
    parse_to_end(nar.as_slice(), &mut listing).unwrap();
    let names: Vec<_> = listing
        .entries
        .iter()
        .map(|(p, _)| String::from_utf8_lossy(p).into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "",
            "a-dir",
            "a-dir/empty-file",
            "a-dir/link",
            "b.txt",
            "empty",
            "exe"
        ]
    );
    assert_eq!(
        listing.entries[6].1,
        NodeKind::Regular {
            executable: true,
            size: 10
        }
    );
}

#[test]
fn single_file_nar_matches_known_hash() {
    // `nix-hash --type sha256 --base32` of a file containing "hello" (no newline).
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("f"), b"hello").unwrap();
    let expected = tokens(&[
        b"nix-archive-1",
        b"(",
        b"type",
        b"regular",
        b"contents",
        b"hello",
        b")",
    ]);
    assert_eq!(nar_of(&dir.path().join("f")), expected);
    let (h, size) = hash_path(&dir.path().join("f"), HashAlgo::Sha256).unwrap();
    assert_eq!(size, expected.len() as u64);
    assert_eq!(h, crate::Hash::digest_of(HashAlgo::Sha256, &expected));
}

fn rejects(nar: &[u8], what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let err = restore(nar, &dest).unwrap_err().to_string();
    assert!(err.contains(what), "expected {what:?} in {err:?}");
    assert!(
        fs::symlink_metadata(&dest).is_err(),
        "failed restore left {dest:?} behind"
    );
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

fn dir_with(entries: &[(&[u8], &[&[u8]])]) -> Vec<u8> {
    let mut ts: Vec<&[u8]> = vec![b"nix-archive-1", b"(", b"type", b"directory"];
    for (name, node) in entries {
        ts.extend_from_slice(&[b"entry", b"(", b"name", name, b"node"]);
        ts.extend_from_slice(node);
        ts.push(b")");
    }
    ts.push(b")");
    tokens(&ts)
}

const FILE: &[&[u8]] = &[b"(", b"type", b"regular", b"contents", b"x", b")"];

#[test]
fn rejects_malformed_archives() {
    rejects(&tokens(&[b"nix-archive-2"]), "not a NAR");
    rejects(&dir_with(&[(b"b", FILE), (b"a", FILE)]), "must be sorted");
    rejects(&dir_with(&[(b"a", FILE), (b"a", FILE)]), "must be sorted");
    rejects(&dir_with(&[(b".", FILE)]), "are not allowed");
    rejects(&dir_with(&[(b"..", FILE)]), "are not allowed");
    rejects(&dir_with(&[(b"a/b", FILE)]), "contains '/'");
    rejects(&dir_with(&[(b"a\0b", FILE)]), "contains NUL");
    rejects(&dir_with(&[(b"", FILE)]), "empty");
    rejects(
        &tokens(&[b"nix-archive-1", b"(", b"type", b"fifo", b")"]),
        "expected \"regular, symlink or directory\"",
    );
    rejects(
        &tokens(&[
            b"nix-archive-1",
            b"(",
            b"type",
            b"symlink",
            b"target",
            b"",
            b")",
        ]),
        "empty symlink",
    );

    let good = dir_with(&[(b"a", FILE)]);
    for cut in 0..good.len() {
        rejects(&good[..cut], "");
    }
    let mut trailing = good.clone();
    trailing.push(0);
    rejects(&trailing, "after the end");

    // Bad padding after "x" in the file contents.
    let mut bad_pad = good.clone();
    let pos = bad_pad.windows(2).position(|w| w == b"x\0").unwrap() + 1;
    bad_pad[pos] = 1;
    rejects(&bad_pad, "padding");

    // An absurd string length must not allocate it.
    let mut absurd = tokens(&[b"nix-archive-1", b"("]);
    absurd.extend_from_slice(&u64::MAX.to_le_bytes());
    rejects(&absurd, "longer than the 4096");

    // An absurd file size is a truncation, not an allocation.
    let mut huge = tokens(&[b"nix-archive-1", b"(", b"type", b"regular", b"contents"]);
    huge.extend_from_slice(&(1u64 << 60).to_le_bytes());
    huge.extend_from_slice(b"abc");
    rejects(&huge, "ends early");

    let mut deep: Vec<&[u8]> = vec![b"nix-archive-1"];
    for _ in 0..300 {
        deep.extend_from_slice(&[
            b"(",
            b"type",
            b"directory",
            b"entry",
            b"(",
            b"name",
            b"d",
            b"node",
        ]);
    }
    rejects(&tokens(&deep), "nested deeper");
}

#[test]
fn restore_never_follows_or_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("exists")).unwrap();
    let nar = dir_with(&[(b"a", FILE)]);
    assert!(matches!(
        restore(nar.as_slice(), &dir.path().join("exists")),
        Err(RestoreError::TargetExists(_))
    ));
    assert!(fs::read_dir(dir.path().join("exists"))
        .unwrap()
        .next()
        .is_none());
}

proptest::proptest! {
    #[test]
    fn parser_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
        let mut with_magic = tokens(&[b"nix-archive-1"]);
        with_magic.extend_from_slice(&bytes);
        let _ = parse_to_end(with_magic.as_slice(), &mut NarListing::default());
        let _ = parse_to_end(bytes.as_slice(), &mut NarListing::default());
    }
}

/// A random tree as NAR-writable nodes (names sorted and unique, as a directory gives them).
#[derive(Debug, Clone)]
enum Node {
    File { exec: bool, data: Vec<u8> },
    Link(Vec<u8>),
    Dir(std::collections::BTreeMap<Vec<u8>, Node>),
}

fn arb_node() -> impl proptest::strategy::Strategy<Value = Node> {
    use proptest::prelude::*;
    let name = proptest::collection::vec(
        any::<u8>().prop_filter("no / or NUL", |b| *b != b'/' && *b != 0),
        1..12,
    )
    .prop_filter("not . or ..", |n| n != b"." && n != b"..");
    let leaf = prop_oneof![
        (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(exec, data)| Node::File { exec, data }),
        proptest::collection::vec(1u8..=255, 1..30).prop_map(Node::Link),
    ];
    leaf.prop_recursive(4, 40, 6, move |inner| {
        proptest::collection::btree_map(name.clone(), inner, 0..6).prop_map(Node::Dir)
    })
}

fn encode(node: &Node, enc: &mut NarEncoder<&mut Vec<u8>>) {
    match node {
        Node::File { exec, data } => {
            enc.begin_file(*exec, data.len() as u64).unwrap();
            std::io::Write::write_all(enc.contents_mut(), data).unwrap();
            enc.end_file(data.len() as u64).unwrap();
        }
        Node::Link(target) => enc.symlink(target).unwrap(),
        Node::Dir(entries) => {
            enc.begin_directory().unwrap();
            for (name, child) in entries {
                enc.begin_entry(name).unwrap();
                encode(child, enc);
                enc.end_entry().unwrap();
            }
            enc.end_directory().unwrap();
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Encoder → restore to disk → dump from disk gives the same bytes.
    #[test]
    fn encoded_trees_restore_and_dump_identically(node in arb_node()) {
        let mut nar = Vec::new();
        let mut enc = NarEncoder::new(&mut nar).unwrap();
        encode(&node, &mut enc);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("t");
        restore(nar.as_slice(), &dest).unwrap();
        proptest::prop_assert_eq!(nar_of(&dest), nar);
    }
}
