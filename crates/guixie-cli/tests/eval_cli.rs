//! `guixie eval`: attributes, expressions, JSON, and what bad or hostile Scheme gets: a clear
//! message with file:line:column, a non-zero exit, and nothing written to the store.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

fn eval_in(root: &Path, file: &Path, extra: &[&str]) -> std::process::Command {
    let mut c = guixie();
    c.arg("--store").arg(root).arg("eval").args(extra).arg(file);
    c
}

fn store_is_empty(root: &Path) -> bool {
    let listed = ok_str(guixie().arg("--store").arg(root).args(["store", "ls"]));
    listed.is_empty()
        && fs::read_dir(root.join("gnu/store"))
            .map(|d| d.count() == 0)
            .unwrap_or(true)
}

const GOOD: &str = r#"(define hello
  (derivation "hello" "/bin/sh" '("-c" "echo hello > $out")
              #:env-vars '(("greeting" . "hi"))))
(define both (list hello (derivation "other" "/bin/sh" '() #:inputs (list hello))))
both
"#;

#[test]
fn eval_prints_drv_paths_attributes_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let file = dir.path().join("good.scm");
    fs::write(&file, GOOD).unwrap();
    let all = ok_str(&mut eval_in(&root, &file, &[]));
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("/gnu/store/") && l.ends_with(".drv")),
        "{all}"
    );
    // The .drv files are in the store and check out.
    for l in &lines {
        let real = root.join(l.trim_start_matches('/'));
        ok(guixie()
            .arg("--store")
            .arg(&root)
            .args(["drv", "check"])
            .arg(&real));
    }
    let one = ok_str(&mut eval_in(&root, &file, &["-A", "hello"]));
    assert_eq!(one, lines[0]);
    let json: serde_json::Value = serde_json::from_slice(&ok(guixie()
        .arg("--store")
        .arg(&root)
        .args(["--json", "eval", "-A", "hello"])
        .arg(&file)))
    .unwrap();
    assert_eq!(json[0]["name"], "hello");
    assert_eq!(json[0]["drvPath"], lines[0]);
    assert!(json[0]["outputs"]["out"]
        .as_str()
        .unwrap()
        .ends_with("-hello"));
    let e = ok_str(guixie().arg("--store").arg(&root).args(["eval", "-e", r#"(derivation "hello" "/bin/sh" '("-c" "echo hello > $out") #:env-vars '(("greeting" . "hi")))"#]));
    assert_eq!(e, lines[0]);
    let err = String::from_utf8_lossy(&fails(&mut eval_in(&root, &file, &["-A", "nope"])).stderr)
        .into_owned();
    assert!(err.contains("nothing named \"nope\""), "{err}");
}

/// Runs a bad file; returns stderr after checking the exit status and the store.
fn bad(source: &str, extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let file = dir.path().join("bad.scm");
    fs::write(&file, source).unwrap();
    let out = fails(&mut eval_in(&root, &file, extra));
    assert!(
        store_is_empty(&root),
        "a failed evaluation wrote to the store"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_scheme_gets_a_located_message_and_writes_nothing() {
    // A derivation is made before the error: it must not reach the store either.
    let prefix = "(define ok (derivation \"fine\" \"/bin/sh\" '()))\n";

    let e = bad(&format!("{prefix}(define x (list 1 2)\n"), &[]);
    assert!(
        e.contains("bad.scm:") && e.contains("end of input"),
        "read error: {e}"
    );

    let e = bad(&format!("{prefix}\n  (display-nothing ok)\n"), &[]);
    assert!(
        e.contains("bad.scm:3:3") && e.contains("Unbound variable: display-nothing"),
        "unbound: {e}"
    );

    let e = bad(&format!("{prefix}(let ((a 1) b) a)\n"), &[]);
    assert!(e.contains("bad.scm:2:") && e.contains("let"), "syntax: {e}");

    let e = bad(&format!("{prefix}(derivation 5 \"/bin/sh\" '())\n"), &[]);
    assert!(
        e.contains("bad.scm:2:1") && e.contains("name: expected a string"),
        "field type: {e}"
    );

    let e = bad(
        &format!("{prefix}(derivation \"x\" \"/bin/sh\" '() #:outputs '())\n"),
        &[],
    );
    assert!(e.contains("at least one output"), "{e}");

    let e = bad(
        &format!("{prefix}(derivation \"x\" \"/bin/sh\" '() #:inputs (list \"/gnu/store/00000000000000000000000000000000-gone\"))\n"),
        &[],
    );
    assert!(
        e.contains("bad.scm:2:1") && e.contains("-gone is not in the store"),
        "missing input: {e}"
    );

    let e = bad(
        &format!("{prefix}(derivation \"x\" \"/bin/sh\" '() #:hash \"sha256:abc\")\n"),
        &[],
    );
    assert!(
        e.contains("hash:") && e.contains("3 characters"),
        "bad hash: {e}"
    );

    let e = bad(
        &format!("{prefix}(derivation \"bad name\" \"/bin/sh\" '())\n"),
        &[],
    );
    assert!(e.contains("invalid store path name"), "{e}");
}

#[test]
fn evaluation_is_sandboxed_and_time_limited() {
    for (code, what) in [
        (
            "(call-with-output-file \"/tmp/guixie-escape\" (lambda (p) (display 1 p)))",
            "call-with-output-file",
        ),
        ("(open-input-file \"/etc/shadow\")", "open-input-file"),
        ("(system \"touch /tmp/guixie-escape\")", "system"),
        ("(socket AF_INET SOCK_STREAM 0)", "socket"),
        ("(primitive-load \"/etc/passwd\")", "primitive-load"),
        (
            "(eval '(system \"true\") (interaction-environment))",
            "eval",
        ),
    ] {
        let e = bad(code, &[]);
        assert!(
            e.contains(&format!("Unbound variable: {what}")),
            "{code}: {e}"
        );
    }
    let e = bad("(use-modules (ice-9 popen))", &[]);
    assert!(
        e.contains("(ice-9 popen) is not available in package files"),
        "{e}"
    );
    assert!(!Path::new("/tmp/guixie-escape").exists());
    let start = Instant::now();
    let e = bad(
        "(define (spin n) (spin (+ n 1)))\n(spin 0)\n",
        &["--max-eval-seconds", "1"],
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        e.contains("bad.scm:2:1") && e.contains("max-eval-seconds"),
        "{e}"
    );
}

/// Runs `guixie repl` on `input`; returns what it printed.
fn repl(root: &Path, input: &str) -> String {
    let out = with_stdin(guixie().arg("--store").arg(root).arg("repl"), input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn graph_and_repl() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let file = dir.path().join("good.scm");
    fs::write(&file, GOOD).unwrap();
    let dot = ok_str(guixie().arg("--store").arg(&root).arg("graph").arg(&file));
    assert!(dot.starts_with("digraph"), "{dot}");
    assert!(
        dot.contains("[label = \"hello\"") && dot.contains("[label = \"other\""),
        "{dot}"
    );
    assert_eq!(
        dot.matches(" -> ").count(),
        1,
        "other depends on hello: {dot}"
    );

    let text = repl(
        &root,
        "(derivation-file-name (derivation \"from-repl\" \"/bin/sh\" (list \"-c\" \"echo > $out\")))\n,q\n",
    );
    let drv = text
        .split('"')
        .find(|s| s.ends_with("-from-repl.drv"))
        .unwrap_or_else(|| panic!("{text}"))
        .to_owned();
    // Written to the store when the REPL ended.
    assert!(
        ok_str(guixie().arg("--store").arg(&root).args(["store", "ls"]))
            .lines()
            .any(|l| l == drv)
    );
    // The REPL queries the store through the Rust primitives.
    let text = repl(
        &root,
        &format!(
            "(list (valid-path? \"{drv}\") (valid-path? \"/gnu/store/00000000000000000000000000000000-gone\") (cadr (query-path-info \"{drv}\")))\n,q\n"
        ),
    );
    let size = fs::metadata(root.join(drv.trim_start_matches('/')))
        .unwrap()
        .len();
    // The NAR of a regular file: 112 bytes of framing and the contents padded to 8 bytes.
    let nar_size = 112 + size.div_ceil(8) * 8;
    assert!(text.contains(&format!("(#t #f {nar_size})")), "{text}");
    // It is a package file's sandbox: no files, no processes.
    let text = repl(
        &root,
        "(open-input-file \"/etc/passwd\")\n(system \"true\")\n(+ 1 2)\n,q\n",
    );
    assert!(
        text.contains("Unbound variable: open-input-file")
            && text.contains("Unbound variable: system")
            && text.contains("= 3"),
        "{text}"
    );
}

/// The `.drv` paths `eval` prints are logical; the inspection commands find them in the
/// configured store, several at once.
#[test]
fn drv_commands_take_the_paths_eval_prints() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let file = dir.path().join("good.scm");
    fs::write(&file, GOOD).unwrap();
    let printed = ok_str(&mut eval_in(&root, &file, &[]));
    let drvs: Vec<&str> = printed.lines().collect();
    assert_eq!(drvs.len(), 2);
    assert!(drvs
        .iter()
        .all(|d| d.starts_with("/gnu/store/") && !Path::new(d).exists()));
    let at = || {
        let mut c = guixie();
        c.arg("--store").arg(&root);
        c
    };
    for d in &drvs {
        ok(at().args(["drv", "check", d]));
        ok(at().args(["drv", "fmt", d]));
    }
    let shown: serde_json::Value =
        serde_json::from_slice(&ok(at().args(["drv", "show"]).args(&drvs))).unwrap();
    let keys: Vec<&String> = shown.as_object().unwrap().keys().collect();
    let mut expected: Vec<&str> = drvs.clone();
    expected.sort();
    assert_eq!(keys, expected);
    // Whatever a file claims to be, no more than the cap is read (a device never ends).
    let e = fails(at().args(["drv", "show", "/dev/zero"]));
    assert!(
        String::from_utf8_lossy(&e.stderr).contains("larger than"),
        "{}",
        String::from_utf8_lossy(&e.stderr)
    );
    // A path in no store is still named as missing.
    let missing = fails(at().args([
        "drv",
        "show",
        "/gnu/store/00000000000000000000000000000000-x.drv",
    ]));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("00000000000000000000000000000000-x.drv")
    );
}
