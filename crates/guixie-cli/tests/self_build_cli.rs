//! `guixie self build` and `guixie self check` (issue 13), on stand-ins for the next guixie:
//! a shell script built from a source tree's `guixie.scm` that hands its arguments to the
//! guixie under test, so the checker's three verdicts are tested without compiling guixie
//! (`scripts/self-check.sh` runs the real self-build in CI).
//!
//! - an honest stand-in evaluates the recipe to the same `.drv` and rebuilds it bit for bit:
//!   fixpoint;
//! - a stand-in that answers another `.drv` when evaluating: refused;
//! - a stand-in whose build writes random bytes: the rebuild differs, refused.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn at(root: &Path) -> Command {
    let mut c = guixie();
    c.arg("--store").arg(root);
    c
}

/// A source tree whose recipe builds `bin/guixie`: a script running `body`, or, without one,
/// the guixie under test with the script's arguments.
fn stand_in(dir: &Path, name: &str, body: Option<&str>, noise: bool) -> PathBuf {
    let src = dir.join(name);
    fs::create_dir_all(src.join("src")).unwrap();
    let guixie = env!("CARGO_BIN_EXE_guixie");
    let body = body.map_or(format!("exec {guixie} \"$@\""), str::to_owned);
    fs::write(src.join("src/guixie"), format!("#!/bin/sh\n{body}\n")).unwrap();
    let noise = if noise { NOISY_INSTALL } else { "" };
    fs::write(
        src.join("src/Makefile"),
        format!(
            "install:\n\tmkdir -p $(PREFIX)/bin\n\tcp guixie $(PREFIX)/bin/\n\tchmod 555 $(PREFIX)/bin/guixie\n{noise}"
        ),
    )
    .unwrap();
    fs::write(
        src.join("guixie.scm"),
        "(use-modules (guix packages) (guix gexp) (guix build-system gnu))\n\
         (package (name \"guixie\") (version \"0.9.0\")\n\
           (source (local-file \"src\" \"guixie-src\" #:recursive? #t))\n\
           (build-system gnu-build-system)\n\
           (arguments (list #:tests? #f #:phases '(modify-phases %standard-phases (delete 'build))\n\
                            #:make-flags #~(list (string-append \"PREFIX=\" #$output))))\n\
           (synopsis \"next\") (description \"The next guixie.\") (license #f) (home-page #f))\n",
    )
    .unwrap();
    src
}

fn check_json(store: &Path, source: &Path) -> (bool, serde_json::Value, String) {
    let out = at(store)
        .arg("--json")
        .args(["self", "check", "--source"])
        .arg(source)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (
        out.status.success(),
        report,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn self_check_finds_the_fixpoint_and_refuses_what_is_not_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = d.join("store");

    // `self build` prints the output; a second run builds nothing and prints the same.
    let honest = stand_in(d, "honest", None, false);
    let built = ok_str(at(&store).args(["self", "build", "--source"]).arg(&honest));
    let built = built.trim();
    assert!(
        built.starts_with("/gnu/store/") && built.ends_with("-guixie-0.9.0"),
        "{built}"
    );
    let again = ok_str(at(&store).args(["self", "build", "--source"]).arg(&honest));
    assert_eq!(again.trim(), built);

    let (passed, report, e) = check_json(&store, &honest);
    assert!(passed, "{report}\n{e}");
    assert_eq!(report["fixpoint"], true, "{report}");
    assert_eq!(report["stage1"]["output"], built, "{report}");
    assert_eq!(report["stage2"]["drv"], report["stage1"]["drv"], "{report}");
    assert_eq!(report["stage2"]["rebuilt_identically"], true, "{report}");
    assert!(e.contains("fixpoint"), "{e}");

    // A next guixie that evaluates the recipe to another derivation is not a fixpoint.
    let liar = stand_in(
        d,
        "liar",
        Some("echo /gnu/store/00000000000000000000000000000000-guixie-0.9.0.drv"),
        false,
    );
    let (passed, report, e) = check_json(&store, &liar);
    assert!(!passed, "{report}");
    assert_eq!(report["fixpoint"], false, "{report}");
    assert_eq!(report["stage2"]["same_drv"], false, "{report}");
    assert!(e.contains("does not reach a fixpoint"), "{e}");

    // Nor one that answers stage 1's `.drv` without evaluating it: it is told to use a new
    // store, ignores it and finds the `.drv` in stage 1's (the positive control for that
    // store being new).
    let cheat = format!(
        "shift 2; exec {} --store {} \"$@\"",
        env!("CARGO_BIN_EXE_guixie"),
        store.display()
    );
    let cheater = stand_in(d, "cheater", Some(&cheat), false);
    let (passed, report, e) = check_json(&store, &cheater);
    assert!(!passed, "{report}");
    assert_eq!(report["stage2"]["drv"], report["stage1"]["drv"], "{report}");
    assert_eq!(report["stage2"]["same_drv"], false, "{report}");
    assert!(e.contains("its store holds no such .drv"), "{e}");

    // Nor is one whose rebuild differs from its build.
    let noisy = stand_in(d, "noisy", None, true);
    let (passed, report, e) = check_json(&store, &noisy);
    assert!(!passed, "{report}");
    assert_eq!(report["stage2"]["same_drv"], true, "{report}");
    assert_eq!(report["stage2"]["rebuilt_identically"], false, "{report}");
    assert!(e.contains("does not rebuild itself bit for bit"), "{e}");

    // A tree without a recipe is named as such.
    let e = String::from_utf8_lossy(
        &fails(at(&store).args(["self", "build", "--source"]).arg(d)).stderr,
    )
    .into_owned();
    assert!(e.contains("the source has no guixie.scm"), "{e}");
}

#[test]
fn local_file_select_leaves_out_what_it_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tree = d.join("tree");
    fs::create_dir_all(tree.join("keep/deep")).unwrap();
    fs::create_dir_all(tree.join("target/debug")).unwrap();
    fs::write(tree.join("keep/deep/a"), "a").unwrap();
    fs::write(tree.join("target/debug/huge"), "build products").unwrap();
    fs::write(tree.join("b"), "b").unwrap();
    let recipe = d.join("p.scm");
    fs::write(
        &recipe,
        "(use-modules (guix packages) (guix gexp) (guix build-system trivial))\n\
         (package (name \"selected\") (version \"1\") (source #f)\n\
           (inputs (list (local-file \"tree\" \"selected\" #:recursive? #t\n\
                     #:select? (lambda (file stat) (not (string-suffix? \"/target\" file))))))\n\
           (build-system trivial-build-system) (arguments (list #:builder #~(mkdir #$output)))\n\
           (synopsis \"x\") (description \"x\") (license #f) (home-page #f))\n",
    )
    .unwrap();
    let store = d.join("store");
    // The selected tree is the derivation's input source named `selected`.
    let source_of = |drv: &str| -> PathBuf {
        let shown: serde_json::Value =
            serde_json::from_str(&ok_str(at(&store).args(["drv", "show"]).arg(drv.trim())))
                .unwrap();
        let srcs = shown[drv.trim()]["inputSrcs"].as_array().unwrap().clone();
        let src = srcs
            .iter()
            .filter_map(|s| s.as_str())
            .find(|s| s.ends_with("-selected"))
            .unwrap_or_else(|| panic!("no selected source in {srcs:?}"))
            .to_owned();
        store.join(src.trim_start_matches('/'))
    };
    let path = ok_str(at(&store).arg("eval").arg(&recipe));
    let real = source_of(&path);
    assert!(real.join("keep/deep/a").is_file(), "{}", real.display());
    assert!(real.join("b").is_file());
    assert!(!real.join("target").exists(), "select? rejected target/");

    // Its hash is the hash of the tree without target/, as `nix-store --add` of that tree.
    fs::remove_dir_all(tree.join("target")).unwrap();
    let hash = |p: &Path| ok_str(guixie().args(["hash", "path"]).arg(p));
    assert_eq!(hash(&real), hash(&tree));

    // A change under a rejected directory leaves the source as it was; one elsewhere changes
    // it.
    fs::create_dir_all(tree.join("target")).unwrap();
    fs::write(tree.join("target/new"), "x").unwrap();
    assert_eq!(ok_str(at(&store).arg("eval").arg(&recipe)), path);
    fs::write(tree.join("b"), "changed").unwrap();
    let changed = ok_str(at(&store).arg("eval").arg(&recipe));
    assert_ne!(changed, path);
    assert_eq!(
        fs::read_to_string(source_of(&changed).join("b")).unwrap(),
        "changed"
    );
}

#[test]
fn cargo_lock_crates_reads_registry_crates_and_refuses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = d.join("store");
    let package = |name: &str, source: Option<&str>, sum: &str| {
        let source = source.map_or(String::new(), |s| format!("source = \"{s}\"\r\n"));
        format!("[[package]]\r\nname = \"{name}\"\r\nversion = \"1.0.0\"\r\n{source}checksum = \"{sum}\"\r\n\r\n")
    };
    let registry = Some("registry+https://github.com/rust-lang/crates.io-index");
    let sum = "ab".repeat(32);
    let recipe = d.join("vendor.scm");
    fs::write(
        &recipe,
        "(use-modules (guix gexp) (guix build-system cargo))\n\
         (cargo-vendor (cargo-lock-crates (local-file \"Cargo.lock\")))\n",
    )
    .unwrap();
    // CRLF line ends, the workspace's own package and a [[patch.unused]] table whose fields
    // are not the last package's.
    fs::write(
        d.join("Cargo.lock"),
        format!(
            "version = 4\r\n\r\n{}{}{}[[patch.unused]]\r\nname = \"evil\"\r\nversion = \"6.6.6\"\r\n",
            package("alpha", registry, &sum),
            package("own", None, ""),
            package("beta", registry, &sum),
        ),
    )
    .unwrap();
    let drv = ok_str(at(&store).arg("eval").arg(&recipe));
    let shown: serde_json::Value =
        serde_json::from_str(&ok_str(at(&store).args(["drv", "show"]).arg(drv.trim()))).unwrap();
    let mut inputs: Vec<String> = shown[drv.trim()]["inputDrvs"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.split_once('-').unwrap().1.to_owned())
        .collect();
    inputs.sort();
    assert_eq!(inputs, ["alpha-1.0.0.crate.drv", "beta-1.0.0.crate.drv"]);

    // Editing the lock file makes a new evaluation (the cache sees it).
    fs::write(d.join("Cargo.lock"), package("gamma", registry, &sum)).unwrap();
    let changed = ok_str(at(&store).arg("eval").arg(&recipe));
    assert_ne!(changed, drv);

    for (lock, says) in [
        (
            package("g", Some("git+https://example.org/g#0123"), &sum),
            "is not crates.io",
        ),
        (package("h", registry, "not-hex"), "no sha256 checksum"),
        (package("../x", registry, &sum), "not a crate name"),
    ] {
        fs::write(d.join("Cargo.lock"), lock).unwrap();
        let e = String::from_utf8_lossy(&fails(at(&store).arg("eval").arg(&recipe)).stderr)
            .into_owned();
        assert!(
            e.contains("Cargo.lock: crate") && e.contains(says),
            "{says}: {e}"
        );
    }
}
