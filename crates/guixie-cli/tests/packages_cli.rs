//! Packages in Guile: records, inherit, G-expressions, build systems whose build side runs in
//! Guile, package modules on a load path, `guixie show`, origins, and the errors bad package
//! files get. The builds use the bootstrap toolchain, made once per store from the host's
//! Debian packages (see docs/bootstrap.md).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn at(root: &Path) -> Command {
    let mut c = guixie();
    c.arg("--store").arg(root);
    c
}

fn drv_json(root: &Path, drv: &str) -> serde_json::Value {
    let real = root.join(drv.trim_start_matches('/'));
    let shown: serde_json::Value =
        serde_json::from_slice(&ok(at(root).args(["drv", "show"]).arg(&real))).unwrap();
    shown[drv].clone()
}

fn drv_files(root: &Path) -> Vec<String> {
    fs::read_dir(root.join("gnu/store"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".drv"))
                .collect()
        })
        .unwrap_or_default()
}

/// The README's examples: a C program built with gnu-build-system runs and greets; the
/// library and the program linking it; the `inherit` variant builds differently; `--check`
/// rebuilds bit for bit; `show` prints the fields.
#[test]
fn examples_build_from_source_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let ex = examples();

    let hello = ok_str(at(&root).args(["build", "-q"]).arg(ex.join("hello.scm")));
    assert!(
        hello.starts_with("/gnu/store/") && hello.ends_with("-hello-1.0"),
        "{hello}"
    );
    let run = Command::new(root.join(hello.trim_start_matches('/')).join("bin/hello"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&run.stdout), "Hello, world!\n");
    // Its build log, by output path, as `nix log` gives it.
    let log = ok_str(at(&root).arg("log").arg(&hello));
    assert!(
        log.contains("starting phase `configure'") && log.contains("configured for /gnu/store/"),
        "{log}"
    );

    // The derivation: the toolchain's Guile runs the build-side script, which the .drv
    // carries (passAsFile), and every input is declared.
    let drv = ok_str(at(&root).arg("eval").arg(ex.join("hello.scm")));
    let shown = drv_json(&root, &drv);
    let toolchain = shown["env"]["guixieToolchain"].as_str().unwrap().to_owned();
    assert!(toolchain.ends_with("-bootstrap-toolchain"), "{toolchain}");
    assert_eq!(
        shown["builder"].as_str().unwrap(),
        format!("{toolchain}/usr/bin/guile-3.0")
    );
    let script = shown["env"]["guixieBuilder"].as_str().unwrap();
    assert!(
        script.contains("(gnu-build #:name \"hello-1.0\"")
            && script.contains("#:configure-flags (list \"--greeting=Hello, world!\")"),
        "{script}"
    );
    let srcs: Vec<&str> = shown["inputSrcs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(srcs.contains(&toolchain.as_str()), "{srcs:?}");
    assert!(srcs.iter().any(|s| s.ends_with("-hello")), "{srcs:?}");
    assert!(
        srcs.iter()
            .any(|s| s.ends_with("-guixie-build-gnu-build-system.scm")),
        "{srcs:?}"
    );

    // The same source as a tarball behind a url-fetch origin: fetched, checked, unpacked.
    let tarball = dir.path().join("hello-1.0.tar.gz");
    assert!(Command::new("tar")
        .arg("czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&ex)
        .arg("hello")
        .status()
        .unwrap()
        .success());
    let hash = ok_str(
        guixie()
            .args(["hash", "file", "--to", "nix32"])
            .arg(&tarball),
    );
    let from_tarball = dir.path().join("tarball.scm");
    let served = Served::new(dir.path());
    fs::write(
        &from_tarball,
        format!(
            "(package (name \"hello\") (version \"1.0\") (build-system gnu-build-system)\n  (source (origin (method url-fetch) (uri \"{}\") (sha256 (base32 \"{hash}\")))))\n",
            served.url("hello-1.0.tar.gz")
        ),
    )
    .unwrap();
    let out = ok_str(
        at(&root)
            .args(["build", "-q", "--host-loopback"])
            .arg(&from_tarball),
    );
    drop(served);
    let run = Command::new(root.join(out.trim_start_matches('/')).join("bin/hello"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&run.stdout), "Hello, world!\n");

    // Reproducible: a rebuild is bit-for-bit identical.
    ok(at(&root)
        .args(["build", "--check", "-q"])
        .arg(ex.join("hello.scm")));

    // Build events as JSON lines on stderr: the phases each build runs, as modify-phases
    // left them.
    let built = at(&root)
        .args(["--json", "build"])
        .arg(ex.join("greeter.scm"))
        .output()
        .unwrap();
    assert!(built.status.success(), "{built:?}");
    let phases_of = |name: &str| -> Vec<String> {
        String::from_utf8_lossy(&built.stderr)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| {
                e["event"] == "phase"
                    && e["drv"]
                        .as_str()
                        .unwrap()
                        .ends_with(&format!("-{name}.drv"))
            })
            .map(|e| e["phase"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        phases_of("libgreet-0.1"),
        ["set-paths", "unpack", "build", "install"],
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    assert_eq!(
        phases_of("greeter-loud-0.1"),
        [
            "set-paths",
            "unpack",
            "build",
            "check",
            "install",
            "say-hello"
        ]
    );
    let listed: serde_json::Value = serde_json::from_slice(&built.stdout).unwrap();
    let outs: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["outputs"]["out"]["path"].as_str().unwrap())
        .collect();
    assert_eq!(outs.len(), 3, "{outs:?}");
    let lib = root.join(outs[0].trim_start_matches('/'));
    assert!(lib.join("lib/libgreet.a").is_file() && lib.join("include/greet.h").is_file());
    let greet = |out: &str| {
        let o = Command::new(root.join(out.trim_start_matches('/')).join("bin/greeter"))
            .arg("reader")
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(greet(outs[1]), "Hello, reader, from libgreet!\n");
    assert_eq!(greet(outs[2]), "HELLO, READER, FROM LIBGREET!\n");
    assert!(outs[2].ends_with("-greeter-loud-0.1"));

    // `show`: the inherited variant keeps the fields it did not override.
    let shown = ok_str(
        at(&root)
            .args(["show", "-f"])
            .arg(ex.join("greeter.scm"))
            .arg("greeter-loud"),
    );
    for line in [
        "name: greeter-loud",
        "version: 0.1",
        "dependencies: libgreet@0.1",
        "build-system: gnu",
        "synopsis: Greets, with libgreet",
        "license: expat",
    ] {
        assert!(shown.contains(line), "{line} missing from:\n{shown}");
    }
    assert!(
        shown.contains(&format!("output: out {}", outs[2])),
        "{shown}"
    );
    let json: serde_json::Value = serde_json::from_slice(&ok(at(&root)
        .args(["--json", "show", "-f"])
        .arg(ex.join("hello.scm"))
        .arg("hello")))
    .unwrap();
    assert_eq!(json[0]["name"], "hello");
    assert!(json[0]["location"]
        .as_str()
        .unwrap()
        .ends_with("hello.scm:9:3"));

    // The graph names both packages and the edge between them.
    let dot = ok_str(at(&root).arg("graph").arg(ex.join("greeter.scm")));
    assert!(
        dot.contains("label = \"greeter-0.1\"") && dot.contains("label = \"libgreet-0.1\""),
        "{dot}"
    );
}

/// Package modules: found on `-L` and `GUIXIE_LOAD_PATH`, used by other modules, built and
/// shown by name; a missing module is named with the load path.
#[test]
fn package_modules_on_the_load_path() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let modules = examples().join("modules");

    let out = ok_str(
        at(&root)
            .arg("-L")
            .arg(&modules)
            .args(["build", "-q", "greeting-twice"]),
    );
    let text = fs::read_to_string(
        root.join(out.trim_start_matches('/'))
            .join("share/greeting/text"),
    )
    .unwrap();
    assert_eq!(text, "Hello from a package module!\n".repeat(2));

    let shown = ok_str(
        at(&root)
            .env("GUIXIE_LOAD_PATH", &modules)
            .args(["show", "greeting"]),
    );
    // The toolchain can be pinned by its NAR hash: the right one is accepted, another refused.
    let toolchain = shown
        .lines()
        .find_map(|l| l.strip_prefix("toolchain: "))
        .unwrap()
        .to_owned();
    let info: serde_json::Value = serde_json::from_slice(&ok(at(&root)
        .args(["--json", "store", "info"])
        .arg(&toolchain)))
    .unwrap();
    let nar_hash = info["narHash"].as_str().unwrap().to_owned();
    ok(at(&root)
        .env("GUIXIE_LOAD_PATH", &modules)
        .env("GUIXIE_BOOTSTRAP_SHA256", &nar_hash)
        .args(["show", "greeting"]));
    let e = fails(
        at(&root)
            .env("GUIXIE_LOAD_PATH", &modules)
            .env(
                "GUIXIE_BOOTSTRAP_SHA256",
                "sha256:0000000000000000000000000000000000000000000000000000",
            )
            .args(["show", "greeting"]),
    );
    let e = String::from_utf8_lossy(&e.stderr);
    assert!(
        e.contains("GUIXIE_BOOTSTRAP_SHA256 pins")
            && e.contains(nar_hash.trim_start_matches("sha256:")),
        "{e}"
    );
    assert!(
        shown.contains("name: greeting\n") && shown.contains("build-system: trivial"),
        "{shown}"
    );

    let e = fails(
        at(&root)
            .arg("-L")
            .arg(&modules)
            .args(["build", "no-such-package"]),
    );
    let e = String::from_utf8_lossy(&e.stderr);
    assert!(
        e.contains("no package named \"no-such-package\"") && e.contains("-L DIR"),
        "{e}"
    );

    let file = dir.path().join("uses.scm");
    fs::write(&file, "(use-modules (example nowhere))\n").unwrap();
    let e = fails(at(&root).arg("-L").arg(&modules).arg("eval").arg(&file));
    let e = String::from_utf8_lossy(&e.stderr);
    assert!(
        e.contains("uses.scm:1:1") && e.contains("no module (example nowhere) on the load path"),
        "{e}"
    );
}

/// Origins: `url-fetch` is a fixed-output derivation realised by `builtin:fetchurl`; content
/// that does not match the declared hash is refused and nothing becomes valid.
#[test]
fn origins_are_fetched_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let payload = dir.path().join("payload.txt");
    fs::write(&payload, "the payload\n").unwrap();
    let hash = ok_str(
        guixie()
            .args(["hash", "file", "--to", "nix32"])
            .arg(&payload),
    );
    let payload_server = Served::new(dir.path());
    let origin = |hash: &str| {
        format!(
            "(origin (method url-fetch) (uri \"{}\") (sha256 (base32 \"{hash}\")))\n",
            payload_server.url("payload.txt")
        )
    };
    let good = dir.path().join("good.scm");
    fs::write(&good, origin(&hash)).unwrap();
    let out = ok_str(
        at(&root)
            .args(["build", "-q", "--host-loopback"])
            .arg(&good),
    );
    assert!(out.ends_with("-payload.txt"), "{out}");
    assert_eq!(
        fs::read_to_string(root.join(out.trim_start_matches('/'))).unwrap(),
        "the payload\n"
    );
    let drv = ok_str(at(&root).arg("eval").arg(&good));
    let shown = drv_json(&root, &drv);
    assert_eq!(shown["builder"], "builtin:fetchurl");
    assert_eq!(shown["outputs"]["out"]["hashAlgo"], "sha256");

    let mut wrong = hash.clone().into_bytes();
    wrong[10] = if wrong[10] == b'0' { b'1' } else { b'0' };
    let wrong = String::from_utf8(wrong).unwrap();
    let bad = dir.path().join("bad.scm");
    fs::write(&bad, origin(&wrong)).unwrap();
    let e = fails(at(&root).args(["build", "--host-loopback"]).arg(&bad));
    let e = String::from_utf8_lossy(&e.stderr);
    assert!(
        e.contains(&format!("its content hashes to sha256:{hash}"))
            && e.contains(&format!("declares sha256:{wrong}")),
        "{e}"
    );
    let listed = ok_str(at(&root).args(["store", "ls"]));
    assert_eq!(
        listed
            .lines()
            .filter(|l| l.ends_with("-payload.txt"))
            .count(),
        1,
        "only the good download is valid:\n{listed}"
    );
    ok(at(&root).args(["store", "verify"]));

    // Over HTTP, from a server on the loopback; the same content gives the same path.
    let served = dir.path().join("served");
    fs::create_dir_all(&served).unwrap();
    fs::copy(&payload, served.join("payload.txt")).unwrap();
    let server = Served::new(&served);
    let http = dir.path().join("http.scm");
    fs::write(
        &http,
        format!(
            "(origin (method url-fetch) (uri \"{}\") (file-name \"payload-http.txt\") (sha256 (base32 \"{hash}\")))\n",
            server.url("payload.txt")
        ),
    )
    .unwrap();
    let fresh = dir.path().join("store2");
    let fetched = at(&fresh)
        .args(["build", "-q", "--host-loopback"])
        .arg(&http)
        .output()
        .unwrap();
    let missing = at(&fresh)
        .args(["build", "-q", "--host-loopback"])
        .arg({
            let f = dir.path().join("missing.scm");
            fs::write(
                &f,
                format!(
                    "(origin (method url-fetch) (uri \"{}\") (sha256 (base32 \"{hash}\")))\n",
                    server.url("nothing-here")
                ),
            )
            .unwrap();
            f
        })
        .output()
        .unwrap();
    drop(server);
    assert!(fetched.status.success(), "{fetched:?}");
    let out = String::from_utf8(fetched.stdout).unwrap();
    assert_eq!(
        fs::read_to_string(fresh.join(out.trim().trim_start_matches('/'))).unwrap(),
        "the payload\n"
    );
    assert!(!missing.status.success());
    // The download runs inside the sandbox, as a builder: its log says why.
    let e = error_and_log(&missing.stderr);
    assert!(e.contains("nothing-here") && e.contains("404"), "{e}");
    // A file:// URL names a file of the sandbox, not of the host.
    let host_file = dir.path().join("host-file.scm");
    fs::write(
        &host_file,
        format!(
            "(origin (method url-fetch) (uri \"file://{}\") (sha256 (base32 \"{hash}\")))\n",
            payload.display()
        ),
    )
    .unwrap();
    let e = error_and_log(&fails(at(&fresh).arg("build").arg(&host_file)).stderr);
    assert!(e.contains("No such file"), "a host file was fetched: {e}");
}

/// What bad package files get: the file, line and column, what is wrong, a non-zero exit, and
/// no `.drv` written.
#[test]
fn bad_packages_are_located_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let pkg = |fields: &str| {
        format!(
            "(define a\n  (package (name \"a\") (version \"1\") (source #f)\n    (build-system trivial-build-system) {fields}))\na\n"
        )
    };
    let builder = "(arguments (list #:builder #~(mkdir #$output)))";
    let cases: Vec<(String, &str, &str)> = vec![
        (pkg(&format!("(inputs 5) {builder}")), "bad.scm:2:3", "field `inputs' must be a list of packages, not 5"),
        (pkg("(colour \"red\")"), "bad.scm:2:3", "unknown field `colour'"),
        (
            "(define a (package (name \"a\") (version 1) (build-system gnu-build-system)))\na\n".into(),
            "bad.scm:1:11",
            "field `version' must be a string, not 1",
        ),
        (
            "(package (name \"a\") (version \"1\"))\n".into(),
            "bad.scm:1:1",
            "field `build-system' is missing",
        ),
        (
            pkg(&format!("(inputs (list nosuch)) {builder}")),
            "bad.scm:2:3",
            "Unbound variable: nosuch",
        ),
        (
            pkg("(arguments (list #:configure-flagz '()))"),
            "bad.scm:2:3",
            "does not take argument #:configure-flagz",
        ),
        (
            format!(
                "(define a (package (name \"a\") (version \"1\") (build-system trivial-build-system) (inputs (list b)) {builder}))\n\
                 (define b (package (name \"b\") (version \"1\") (build-system trivial-build-system) (inputs (list a)) {builder}))\na\n"
            ),
            "bad.scm:1:11",
            "dependency cycle: a-1 -> b-1 -> a-1",
        ),
        (
            "(define a (package (name \"a\") (version \"1\") (source (local-file \"missing-dir\")) (build-system gnu-build-system)))\na\n".into(),
            "bad.scm:1:",
            "missing-dir\": no such file or directory",
        ),
        (
            "(define a (package (name \"a\")\n".into(),
            "bad.scm:2:1",
            "unexpected end of input",
        ),
        (
            "(origin (method url-fetch) (uri \"file:///x\"))\n".into(),
            "bad.scm:1:1",
            "field `sha256' is missing",
        ),
        (
            "#~(foo #$(error \"boom\"))\n".into(),
            "bad.scm:1:1",
            "boom",
        ),
    ];
    let file = dir.path().join("bad.scm");
    for (source, location, message) in cases {
        fs::write(&file, &source).unwrap();
        let out = fails(at(&root).arg("eval").arg(&file));
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(
            e.contains(location) && e.contains(message),
            "{source}\nexpected {location} and {message:?}, got: {e}"
        );
        assert!(!e.contains("panicked"), "{e}");
        assert!(drv_files(&root).is_empty(), "{source}: a .drv was written");
    }

    // Runaway code in a field that is evaluated lazily is still stopped by the limit.
    fs::write(
        &file,
        "(define a (package (name \"a\") (version \"1\") (build-system gnu-build-system) (inputs (let loop () (loop)))))\na\n",
    )
    .unwrap();
    let out = fails(
        at(&root)
            .args(["eval", "--max-eval-seconds", "1"])
            .arg(&file),
    );
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("max-eval-seconds"), "{e}");
}

/// A C program compiled and run inside a build tries `ptrace` (attaching to its own child,
/// and PTRACE_TRACEME) and `mount`: the sandbox's seccomp filter refuses each with EPERM.
#[test]
fn ptrace_and_mount_are_refused_inside_builds() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let probe = dir.path().join("probe.scm");
    fs::write(
        &probe,
        r##"(define probe-source
  (plain-file "probe.c" "
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <unistd.h>
int main(void) {
  pid_t child = fork();
  if (child == 0) { pause(); return 0; }
  long r = ptrace(PTRACE_ATTACH, child, 0, 0);
  printf(\"ptrace-attach: %s\\n\", r == 0 ? \"allowed\" : strerror(errno));
  r = ptrace(PTRACE_TRACEME, 0, 0, 0);
  printf(\"ptrace-traceme: %s\\n\", r == 0 ? \"allowed\" : strerror(errno));
  int m = mount(\"none\", \"/tmp\", \"tmpfs\", 0, 0);
  printf(\"mount: %s\\n\", m == 0 ? \"allowed\" : strerror(errno));
  kill(child, SIGKILL);
  return 0;
}
"))
(package
  (name "probe") (version "1") (source #f) (build-system trivial-build-system)
  (arguments
   (list #:builder
         #~(begin
             (use-modules (guixie build utils))
             (setenv "PATH" "/usr/bin")
             (invoke "gcc" "-o" "/build/probe" #$probe-source)
             (invoke "sh" "-c" (string-append "/build/probe > " #$output))))))
"##,
    )
    .unwrap();
    let out = ok_str(at(&root).args(["build", "-q"]).arg(&probe));
    let report = fs::read_to_string(root.join(out.trim_start_matches('/'))).unwrap();
    assert_eq!(
        report,
        "ptrace-attach: Operation not permitted\nptrace-traceme: Operation not permitted\nmount: Operation not permitted\n"
    );
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// The evaluation cache answers only when nothing the evaluation read has changed: the file,
/// the package modules it loads, the local files they add, and the `.drv`s in the store.
#[test]
fn evaluation_cache_sees_every_input() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let modules = dir.path().join("modules");
    fs::create_dir_all(modules.join("t")).unwrap();
    copy_tree(&examples().join("hello"), &modules.join("t/hello-src"));
    let module = modules.join("t/pkgs.scm");
    let write_module = |version: &str| {
        fs::write(
            &module,
            format!(
                "(define-module (t pkgs))\n(define-public hi (package (name \"hi\") (version \"{version}\") (source (local-file \"hello-src\" #:recursive? #t)) (build-system gnu-build-system)))\n"
            ),
        )
        .unwrap();
    };
    write_module("1");
    let main = dir.path().join("main.scm");
    fs::write(&main, "(use-modules (t pkgs))\nhi\n").unwrap();
    let eval = || ok_str(at(&root).arg("-L").arg(&modules).arg("eval").arg(&main));
    let uncached = || {
        ok_str(
            at(&root)
                .arg("-L")
                .arg(&modules)
                .args(["eval", "--no-eval-cache"])
                .arg(&main),
        )
    };

    let first = eval();
    assert!(first.ends_with("-hi-1.drv"), "{first}");
    let entries = fs::read_dir(root.join("var/guixie/eval-cache"))
        .unwrap()
        .count();
    assert_eq!(entries, 1);
    assert_eq!(eval(), first);

    // A source file changes: so does the derivation.
    let c = modules.join("t/hello-src/hello.c");
    let mut text = fs::read_to_string(&c).unwrap();
    text.push_str("/* edited */\n");
    fs::write(&c, text).unwrap();
    let second = eval();
    assert_ne!(second, first);
    assert_eq!(second, uncached());

    // The module changes.
    write_module("2");
    let third = eval();
    assert!(third.ends_with("-hi-2.drv"), "{third}");
    assert_eq!(third, uncached());

    // The .drv is collected: the cache does not answer with a path that is not there.
    ok(at(&root).arg("gc"));
    assert!(!root.join(third.trim_start_matches('/')).exists());
    assert_eq!(eval(), third);
    assert!(root.join(third.trim_start_matches('/')).is_file());
}
