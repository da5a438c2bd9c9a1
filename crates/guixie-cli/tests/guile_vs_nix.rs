//! The same derivations written as a Nix expression and as a guixie Scheme file must give
//! byte-identical `.drv` files: a varied hand-written set, and the synthetic package graph of
//! `bench/gen-graph.py` (its `nix` and `scm` forms).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use common::*;

const NIX: &str = r#"
let
  mk = attrs: derivation ({ system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo > $out" ]; } // attrs);
  src = builtins.toFile "input.txt" "some source\n";
  base = mk { name = "base"; };
  multi = mk { name = "multi"; outputs = [ "out" "dev" "lib" ]; dep = base; };
  fodFlat = mk { name = "fod-flat"; outputHashMode = "flat"; outputHashAlgo = "sha256"; outputHash = "1lz94v6gx3xz1mn5fxyzw9c4flh0n79d6mw138nm9iprzh6vj9lg"; };
  fodSha1 = mk { name = "fod-sha1"; outputHashMode = "flat"; outputHashAlgo = "sha1"; outputHash = "0000000000000000000000000000000000000000"; };
  fodRec = mk { name = "fod-rec"; outputHashMode = "recursive"; outputHashAlgo = "sha256"; outputHash = "1lz94v6gx3xz1mn5fxyzw9c4flh0n79d6mw138nm9iprzh6vj9lg"; };
  fodSha512 = mk { name = "fod-sha512"; outputHashMode = "recursive"; outputHashAlgo = "sha512"; outputHash = "sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg=="; };
in {
  inherit base multi fodFlat fodSha1 fodRec fodSha512;
  strings = mk {
    name = "strings";
    quotes = "say \"hi\" and 'bye'";
    backslashes = "a\\b\\\\c";
    newlines = "line1\nline2\r\nline3\ttabbed";
    unicode = "héllo wörld ☃ 𝄞 日本語";
    empty = "";
    flag = true;
    off = false;
    number = 42;
    list = [ "a" 1 base ];
  };
  withSrc = mk { name = "with-src"; inherit src; args = [ "-c" "cat ${src} > $out" ]; };
  chain = mk { name = "chain"; a = multi.dev; b = multi.lib; c = base; d = fodRec; e = fodFlat; };
  otherSystem = derivation { name = "other"; system = "aarch64-linux"; builder = "/bin/sh"; args = [ ]; };
}
"#;

const SCHEME: &str = r#"
(define (mk . attrs)
  (builtins-derivation
   (append attrs
           '((system . "x86_64-linux") (builder . "/bin/sh") (args "-c" "echo > $out")))))
(define src (text-file "input.txt" "some source\n"))
(define base (mk '(name . "base")))
(define multi (mk '(name . "multi") '(outputs "out" "dev" "lib") `(dep . ,base)))
(define fod-flat (mk '(name . "fod-flat") '(outputHashMode . "flat") '(outputHashAlgo . "sha256")
                     '(outputHash . "1lz94v6gx3xz1mn5fxyzw9c4flh0n79d6mw138nm9iprzh6vj9lg")))
(define fod-sha1 (mk '(name . "fod-sha1") '(outputHashMode . "flat") '(outputHashAlgo . "sha1")
                     '(outputHash . "0000000000000000000000000000000000000000")))
(define fod-rec (mk '(name . "fod-rec") '(outputHashMode . "recursive") '(outputHashAlgo . "sha256")
                    '(outputHash . "1lz94v6gx3xz1mn5fxyzw9c4flh0n79d6mw138nm9iprzh6vj9lg")))
(define fod-sha512 (mk '(name . "fod-sha512") '(outputHashMode . "recursive") '(outputHashAlgo . "sha512")
                       '(outputHash . "sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==")))
(define strings
  (mk '(name . "strings")
      '(quotes . "say \"hi\" and 'bye'")
      '(backslashes . "a\\b\\\\c")
      '(newlines . "line1\nline2\r\nline3\ttabbed")
      '(unicode . "héllo wörld ☃ 𝄞 日本語")
      '(empty . "")
      '(flag . #t)
      '(off . #f)
      '(number . 42)
      `(list "a" 1 ,base)))
(define with-src
  (builtins-derivation
   `((name . "with-src") (src . ,src) (system . "x86_64-linux") (builder . "/bin/sh")
     (args "-c" ,(string-append "cat " (store-item-path src) " > $out")))))
(define chain (mk '(name . "chain") `(a . ,(derivation-output multi "dev")) `(b . ,(derivation-output multi "lib"))
                  `(c . ,base) `(d . ,fod-rec) `(e . ,fod-flat)))
(define other-system
  (builtins-derivation '((name . "other") (system . "aarch64-linux") (builder . "/bin/sh") (args))))
(list base multi fod-flat fod-sha1 fod-rec fod-sha512 strings with-src chain other-system)
"#;

/// Every file in a store directory, by name, with its bytes.
fn store_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                fs::read(&p).unwrap(),
            )
        })
        .collect()
}

fn instantiate_both(
    dir: &Path,
    store_dir: &str,
    nix_src: &Path,
    scm_src: &Path,
) -> (Vec<String>, Vec<String>) {
    let nix_root = dir.join(format!("nix{}", store_dir.replace('/', "-")));
    let ours_root = dir.join(format!("guixie{}", store_dir.replace('/', "-")));
    let mut theirs: Vec<String> = ok_str(
        nix("nix-instantiate")
            .args(["--store", &nix_store_uri(&nix_root, store_dir)])
            .arg(nix_src),
    )
    .lines()
    .map(str::to_owned)
    .collect();
    let mut ours: Vec<String> = ok_str(
        guixie()
            .args(["--store-dir", store_dir, "--store"])
            .arg(&ours_root)
            .arg("eval")
            .arg(scm_src),
    )
    .lines()
    .map(str::to_owned)
    .collect();
    // Every file either side wrote (.drv files, toFile sources, and their dependencies) is
    // the same, byte for byte.
    let nix_files = store_files(&nix_real_store(&nix_root, store_dir));
    let our_files = store_files(&ours_root.join(store_dir.trim_start_matches('/')));
    assert_eq!(
        our_files.keys().collect::<Vec<_>>(),
        nix_files.keys().collect::<Vec<_>>(),
        "{store_dir}: store contents differ"
    );
    for (name, bytes) in &nix_files {
        assert!(our_files[name] == *bytes, "{store_dir}: {name} differs");
    }
    theirs.sort();
    ours.sort();
    (ours, theirs)
}

#[test]
fn varied_derivations_are_byte_identical_to_nix_instantiate() {
    if !nix_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (nix_src, scm_src) = (dir.path().join("set.nix"), dir.path().join("set.scm"));
    fs::write(&nix_src, NIX).unwrap();
    fs::write(&scm_src, SCHEME).unwrap();
    for store_dir in ["/nix/store", "/gnu/store"] {
        let (ours, theirs) = instantiate_both(dir.path(), store_dir, &nix_src, &scm_src);
        assert_eq!(ours.len(), 10);
        assert_eq!(ours, theirs, "{store_dir}");
    }
}

#[test]
fn synthetic_graph_of_300_packages_matches_nix() {
    if !nix_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nix_src = dir.path().join("graph.nix");
    let scm_src = dir.path().join("graph.scm");
    write_synthetic_graph("nix", 300, &nix_src);
    write_synthetic_graph("scm", 300, &scm_src);
    let (ours, theirs) = instantiate_both(dir.path(), "/nix/store", &nix_src, &scm_src);
    assert_eq!(ours.len(), 300);
    assert_eq!(ours, theirs);
}
