//! Package files written in Guix's style (issue 16, first part): fields that use earlier
//! fields, `this-package`, old quoted `arguments` whose phases are code (`modify-phases`,
//! `substitute*`, `install-file`), the old trivial builder's `%output`, and module specs with
//! `#:prefix`/`#:select`/`#:hide` and pure SRFI modules. Bad forms get `file:line:column`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guix-style")
}

fn at(root: &Path) -> Command {
    let mut c = guixie();
    c.arg("--store").arg(root);
    c
}

fn real(root: &Path, logical: &str) -> PathBuf {
    root.join(logical.trim_start_matches('/'))
}

#[test]
fn quoted_arguments_are_code_and_fields_see_earlier_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let file = dir().join("quoted.scm");
    let outs = ok_str(at(&root).args(["build", "-q"]).arg(&file));
    let outs: Vec<&str> = outs.lines().collect();
    assert_eq!(outs.len(), 3, "{outs:?}");
    let greet = real(&root, outs[0]);
    // The old-style phases ran: substitute* rewrote the file with its match groups, the
    // replaced install phase used install-file, and make ran with the quoted flags.
    assert_eq!(
        std::fs::read_to_string(greet.join("share/message.txt")).unwrap(),
        "hello, guixie (or)\n"
    );
    assert_eq!(
        std::fs::read_to_string(greet.join("share/built.txt")).unwrap(),
        "built\n"
    );
    assert_eq!(
        std::fs::read_to_string(real(&root, outs[1]).join("stamp")).unwrap(),
        "stamped@0.3"
    );
    assert_eq!(
        std::fs::read_to_string(real(&root, outs[2]).join("from")).unwrap(),
        "made by old-trivial"
    );
    let shown = ok_str(at(&root).args(["show", "-f"]).arg(&file).arg("greet"));
    assert!(shown.contains("synopsis: greet 1.2"), "{shown}");
    assert!(shown.contains("The greet package, version 1.2."), "{shown}");
}

#[test]
fn module_specs_select_hide_and_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let modules = dir().join("modules");
    let drvs = ok_str(
        at(&root)
            .arg("-L")
            .arg(&modules)
            .arg("eval")
            .arg(modules.join("use.scm")),
    );
    let names: Vec<&str> = drvs
        .lines()
        .map(|l| &l[l.find('-').unwrap() + 1..])
        .collect();
    assert_eq!(names, ["one-1.drv", "two-1.drv"]);
    let shown = ok_str(
        at(&root)
            .arg("-L")
            .arg(&modules)
            .args(["show", "-f"])
            .arg(modules.join("use.scm"))
            .arg("one"),
    );
    assert!(shown.contains("synopsis: h-one"), "{shown}");

    // Bad forms: each names the file, line and column and what is wrong.
    let bad = |text: &str| -> String {
        let f = tmp.path().join("bad.scm");
        std::fs::write(&f, text).unwrap();
        let out = fails(at(&root).arg("-L").arg(&modules).arg("eval").arg(&f));
        let e = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(e.contains(&format!("{}:", f.display())), "no location: {e}");
        e
    };
    let e = bad("\n(use-modules ((my base) #:select (nothing-here)))\n");
    assert!(
        e.contains(":2:1:") && e.contains("does not export nothing-here"),
        "{e}"
    );
    let e = bad("(use-modules ((my base) #:hide (helper)))\n(helper '(\"x\"))\n");
    assert!(e.contains(":2:1:") && e.contains("helper"), "{e}");
    let e = bad("(use-modules ((my base) #:renamer (symbol-prefix-proc 'x:)))\n");
    assert!(e.contains("#:renamer is not supported"), "{e}");
    let e = bad("(use-modules (ice-9 popen))\n");
    assert!(e.contains("not available in package files"), "{e}");
    let e = bad(
        "(package (name \"bad\") (version \"1\") (source #f) (build-system trivial-build-system)\n\
         (arguments `(#:builder (begin (mkdir %output) ,(lambda () 1))))\n\
         (synopsis \"x\") (description \"d\") (license #f) (home-page #f))\n",
    );
    assert!(
        e.contains(":1:1:") && e.contains("cannot refer to this in a G-expression"),
        "{e}"
    );
}

#[test]
fn guix_module_names_licences_and_variants() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let modules = dir().join("modules");
    let file = tmp.path().join("tools.scm");
    std::fs::write(
        &file,
        "(use-modules (guix-style tools))\n(list tool tool-next tool-on-2 libdata-2)\n",
    )
    .unwrap();
    let outs = ok_str(
        at(&root)
            .arg("-L")
            .arg(&modules)
            .args(["build", "-q"])
            .arg(&file),
    );
    let outs: Vec<&str> = outs.lines().collect();
    let read = |out: &str, f: &str| std::fs::read_to_string(real(&root, out).join(f)).unwrap();
    // this-package-input found the input; the variant whose inputs alone changed sees itself
    // as this-package, and so uses libdata 2.
    assert!(read(outs[0], "uses").contains("-libdata-1.0/lib/data"));
    assert!(read(outs[2], "uses").contains("-libdata-2.0/lib/data"));
    // substitute-keyword-arguments wrapped the builder: both its parts ran.
    assert!(read(outs[1], "uses").contains("-libdata-1.0/lib/data"));
    assert_eq!(read(outs[1], "next"), "next");
    // package/inherit changed only the version. The inherited builder names the version
    // given in libdata's own form, as in Guix (a variant that should follow uses
    // this-package), while the variant's store path carries the new one.
    assert_eq!(read(outs[3], "lib/data"), "libdata 1.0");
    assert!(outs[3].ends_with("-libdata-2.0"), "{}", outs[3]);
    let show = |name: &str| ok_str(at(&root).arg("-L").arg(&modules).args(["show", name]));
    assert!(show("tool").contains("license: GPL 3+, non-copyleft"));
    assert!(show("libdata").contains("license: Expat"));
    // The search paths a package declares are set by an environment holding it, directly
    // and through a profile.
    let env_line = |args: &[&str]| -> String {
        let env = ok_str(
            at(&root)
                .env("HOME", tmp.path())
                .arg("-L")
                .arg(&modules)
                .args(args)
                .args(["--", "/usr/bin/env"]),
        );
        env.lines()
            .find(|l| l.starts_with("DATA_PATH="))
            .unwrap_or_else(|| panic!("no DATA_PATH: {env}"))
            .to_owned()
    };
    // By name, the newest version is taken (libdata-2 inherits the name), as Guix picks one.
    let direct = env_line(&["shell", "--pure", "libdata"]);
    assert!(
        direct.ends_with("-libdata-2.0/lib") && !direct.contains(':'),
        "{direct}"
    );
    ok(at(&root)
        .env("HOME", tmp.path())
        .arg("-L")
        .arg(&modules)
        .args(["install", "libdata"]));
    let profile = tmp.path().join(".guixie-profile");
    let via = env_line(&["shell", "--pure", "-p", profile.to_str().unwrap()]);
    assert!(via.ends_with("-profile/lib"), "{via}");
    // A module Guix has and guixie does not yet is refused by name, with its location.
    std::fs::write(&file, "(use-modules (guix build-system go))\n").unwrap();
    let e = fails(at(&root).arg("-L").arg(&modules).arg("eval").arg(&file));
    let e = String::from_utf8_lossy(&e.stderr);
    assert!(
        e.contains(":1:1:") && e.contains("(guix build-system go)"),
        "{e}"
    );
}

#[test]
fn a_broken_module_is_named_and_the_others_still_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let path = tmp.path().join("modules");
    std::fs::create_dir_all(path.join("good")).unwrap();
    std::fs::create_dir_all(path.join("bad")).unwrap();
    std::fs::write(
        path.join("good/one.scm"),
        "(define-module (good one))\n\
         (define-public fine (package (name \"fine\") (version \"1\") (source #f)\n\
           (build-system trivial-build-system) (arguments (list #:builder #~(mkdir #$output)))\n\
           (synopsis \"s\") (description \"d\") (license #f) (home-page #f)))\n",
    )
    .unwrap();
    std::fs::write(
        path.join("bad/two.scm"),
        "(define-module (bad two))\n\n(define-public broken (package (name \"broken\") (nonsense 1)))\n",
    )
    .unwrap();
    let run = |args: &[&str]| at(&root).arg("-L").arg(&path).args(args).output().unwrap();
    let shown = run(&["show", "fine"]);
    assert!(shown.status.success());
    let warning = String::from_utf8_lossy(&shown.stderr);
    let bad = path.join("bad/two.scm");
    assert!(
        warning.contains(&format!("{}:3:", bad.display())) && warning.contains("nonsense"),
        "{warning}"
    );
    assert!(String::from_utf8_lossy(&shown.stdout).contains("name: fine"));
    assert!(run(&["build", "-q", "fine"]).status.success());
    // A name found nowhere: the error names the module that may have held it.
    let missing = run(&["build", "broken"]);
    assert!(!missing.status.success());
    let e = String::from_utf8_lossy(&missing.stderr);
    assert!(
        e.contains("no package named \"broken\"") && e.contains("two.scm:3:"),
        "{e}"
    );
}
