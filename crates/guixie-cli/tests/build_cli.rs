//! `guixie build`: outputs equal to what Nix builds from the same derivations, the issue's
//! attacks each denied with a clear message and a consistent store, and SIGKILL at random
//! moments during a graph build.

mod common;

use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn at(root: &Path) -> Command {
    let mut c = guixie();
    c.arg("--store").arg(root);
    c
}

#[test]
fn the_synthetic_graph_builds_to_the_nar_hashes_nix_builds() {
    if !nix_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_synthetic_graph("nix", 300, &d.join("g.nix"));
    write_synthetic_graph("scm", 300, &d.join("g.scm"));
    let ours_root = d.join("ours");
    let ours: Vec<String> = ok_str(
        at(&ours_root)
            .args(["--store-dir", "/nix/store", "build", "-q"])
            .arg(d.join("g.scm")),
    )
    .lines()
    .map(str::to_owned)
    .collect();
    assert_eq!(ours.len(), 300);
    let nix_root = d.join("nix");
    let uri = nix_store_uri(&nix_root, "/nix/store");
    let drvs = ok_str(
        nix("nix-instantiate")
            .args(["--store", &uri])
            .arg(d.join("g.nix")),
    );
    let theirs = ok_str(
        nix("nix-store")
            .args([
                "--store",
                &uri,
                "--option",
                "sandbox-paths",
                "/bin/sh=/bin/busybox",
                "-r",
            ])
            .args(drvs.lines()),
    );
    let mut a = ours.clone();
    let mut b: Vec<String> = theirs.lines().map(str::to_owned).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "output paths");
    assert_nix_agrees(&ours_root, &uri, &b);
    // The build log is kept, by derivation or by output.
    ok(at(&ours_root).args(["--store-dir", "/nix/store", "log", &ours[0]]));
    // A rebuild finds everything valid and builds nothing.
    let again = at(&ours_root)
        .args(["--store-dir", "/nix/store", "build"])
        .arg(d.join("g.scm"))
        .output()
        .unwrap();
    assert!(again.status.success());
    assert!(
        !String::from_utf8_lossy(&again.stderr).contains("built "),
        "rebuilt something"
    );
}

/// The synthetic graph of `packages` derivations, as guixie Scheme.
fn write_graph(dir: &Path, packages: usize) -> std::path::PathBuf {
    let graph = dir.join("g.scm");
    write_synthetic_graph("scm", packages, &graph);
    graph
}

/// Nix and guixie recorded the same NAR hash and references for each of `paths`.
fn assert_nix_agrees(ours_root: &Path, uri: &str, paths: &[String]) {
    let info: serde_json::Value = serde_json::from_slice(&ok(nix("nix")
        .args(["path-info", "--json", "--store", uri])
        .args(paths)))
    .unwrap();
    for entry in info.as_array().unwrap() {
        let path = entry["path"].as_str().unwrap();
        let mine: serde_json::Value = serde_json::from_slice(&ok(at(ours_root).args([
            "--store-dir",
            "/nix/store",
            "--json",
            "store",
            "info",
            path,
        ])))
        .unwrap();
        let sri = ok_str(guixie().args([
            "hash",
            "convert",
            "--to",
            "sri",
            mine["narHash"].as_str().unwrap(),
        ]));
        assert_eq!(sri, entry["narHash"].as_str().unwrap(), "{path}");
        let sorted = |v: &serde_json::Value| {
            let mut r: Vec<String> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_owned())
                .collect();
            r.sort();
            r
        };
        assert_eq!(
            sorted(&mine["references"]),
            sorted(&entry["references"]),
            "references of {path}"
        );
    }
}

/// Builds `script` as a derivation that must fail; returns the error text.
fn denied(root: &Path, name: &str, script: &str, extra: &[&str]) -> String {
    let file = root.with_extension(format!("{name}.scm"));
    fs::write(
        &file,
        format!(
            "(derivation \"{name}\" \"/bin/sh\" (list \"-c\" \"set -e; {}\"))\n",
            script.replace('\\', "\\\\").replace('"', "\\\"")
        ),
    )
    .unwrap();
    let out = at(root)
        .arg("build")
        .args(extra)
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{name}: the build succeeded");
    let verify = at(root).args(["store", "verify"]).output().unwrap();
    assert!(
        verify.status.success(),
        "{name}: store verify failed after the denied build"
    );
    let valid = ok_str(at(root).args(["store", "ls"]));
    assert!(
        !valid.lines().any(|l| l.ends_with(&format!("-{name}"))),
        "{name}: an output was registered"
    );
    error_and_log(&out.stderr)
}

#[test]
fn builds_are_isolated_and_limited() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    // A path the attacker knows but does not declare as an input.
    let secret_file = dir.path().join("secret.scm");
    fs::write(
        &secret_file,
        "(derivation \"secret\" \"/bin/sh\" '(\"-c\" \"echo s3cret > $out\"))\n",
    )
    .unwrap();
    let secret = ok_str(at(&root).args(["build", "-q"]).arg(&secret_file));

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let e = denied(
        &root,
        "tcp",
        &format!("echo hi | nc 127.0.0.1 {port} > $out"),
        &[],
    );
    assert!(e.contains("Connection refused"), "tcp: {e}");
    assert!(
        listener.accept().is_err(),
        "the build reached the host's loopback"
    );

    let e = denied(&root, "dns", "nslookup example.com > $out", &[]);
    assert!(
        e.contains("can't") || e.contains("refused") || e.contains("timed out"),
        "dns: {e}"
    );
    for (name, script) in [
        ("shadow", "cat /etc/shadow > $out"),
        ("root-home", "ls /root > $out"),
        (
            "home",
            &format!(
                "ls {} > $out",
                std::env::var("HOME").unwrap_or("/root".into())
            ) as &str,
        ),
        ("undeclared", &format!("cat {secret} > $out")),
    ] {
        let e = denied(&root, name, script, &[]);
        assert!(
            e.contains("No such file") || e.contains("can't open") || e.contains("not found"),
            "{name}: {e}"
        );
    }
    let e = denied(
        &root,
        "write-outside",
        "echo x > /etc/evil; echo > $out",
        &[],
    );
    assert!(e.contains("Read-only file system"), "write-outside: {e}");
    let e = denied(&root, "mount", "mount -t tmpfs none /tmp; echo > $out", &[]);
    assert!(
        e.contains("ermission") || e.contains("denied") || e.contains("mount"),
        "mount: {e}"
    );
    let e = denied(&root, "escape-link", "ln -s /etc/passwd $out", &[]);
    assert!(e.contains("points outside the store"), "symlink: {e}");
    // A hard link cannot bring in a file from outside the output: inputs, the root and the
    // build directory are other mounts.
    for (name, target) in [
        ("hard-link-root", "/etc/passwd"),
        ("hard-link-build", "/build/x"),
    ] {
        let e = denied(
            &root,
            name,
            &format!("echo x > /build/x; mkdir $out; ln {target} $out/f"),
            &[],
        );
        assert!(e.contains("cross-device"), "{name}: {e}");
    }
    let e = denied(
        &root,
        "fork-bomb",
        "i=0; while [ $i -lt 500 ]; do sleep 60 & i=$((i+1)); done; echo > $out",
        &["--max-processes", "64"],
    );
    assert!(
        e.contains("fork") || e.contains("Resource"),
        "fork bomb: {e}"
    );
    let e = denied(
        &root,
        "disk",
        "dd if=/dev/zero of=$out bs=1M count=64",
        &["--max-file-size", "1048576"],
    );
    assert!(!e.is_empty(), "disk");
    // Many files each under --max-file-size still hit the total limit.
    let e = denied(
        &root,
        "disk-total",
        "mkdir $out; i=0; while [ $i -lt 200 ]; do dd if=/dev/zero of=$out/f$i bs=1M count=1 2>/dev/null; i=$((i+1)); sleep 0.05; done",
        &["--max-file-size", "2097152", "--max-output-size", "8388608"],
    );
    assert!(
        e.contains("wrote more than 8388608 bytes (--max-output-size)"),
        "disk-total: {e}"
    );
    let start = Instant::now();
    let e = denied(
        &root,
        "sleeper",
        "sleep 600; echo > $out",
        &["--timeout", "2"],
    );
    assert!(e.contains("stopped after 2 s (--timeout)"), "timeout: {e}");
    // Talking keeps a build alive past --max-silent-time; silence stops it.
    let talker = dir.path().join("talker.scm");
    fs::write(&talker, "(derivation \"talker\" \"/bin/sh\" '(\"-c\" \"for i in 1 2 3 4; do echo $i; sleep 1; done; echo > $out\"))\n").unwrap();
    ok(at(&root)
        .args(["build", "--max-silent-time", "3"])
        .arg(&talker));
    let e = denied(
        &root,
        "quiet-sleeper",
        "echo hi; sleep 600; echo > $out",
        &["--max-silent-time", "2"],
    );
    assert!(
        e.contains("stopped after 2 s (--max-silent-time)"),
        "silent: {e}"
    );
    assert!(start.elapsed() < Duration::from_secs(30));

    // setuid bits never survive into the store.
    let suid = dir.path().join("suid.scm");
    fs::write(
        &suid,
        "(derivation \"suid\" \"/bin/sh\" '(\"-c\" \"echo x > $out; chmod 4755 $out\"))\n",
    )
    .unwrap();
    let out = ok_str(at(&root).args(["build", "-q"]).arg(&suid));
    let real = root.join(out.trim_start_matches('/'));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&real).unwrap().permissions().mode() & 0o7777,
        0o555
    );
    ok(at(&root).args(["store", "verify"]));
}

#[test]
fn sigkill_during_a_graph_build_never_corrupts_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let graph = write_graph(dir.path(), 60);
    let iterations: u64 = std::env::var("GUIXIE_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..iterations {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(seed % 400);
        let mut child = at(&root)
            .args(["build", "-q"])
            .arg(&graph)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        let mut err = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut err);
        let verify = at(&root).args(["store", "verify"]).output().unwrap();
        assert!(
            verify.status.success(),
            "iteration {i} (kill after {delay:?}): {}",
            String::from_utf8_lossy(&verify.stdout)
        );
        // Only the GC removes the stragglers; builds must also work while they exist.
        if i % 10 == 9 {
            ok(at(&root).arg("gc"));
        }
    }
    let outs = ok_str(at(&root).args(["build", "-q"]).arg(&graph));
    assert_eq!(outs.lines().count(), 60);
    ok(at(&root).args(["store", "verify"]));
}

#[test]
fn two_processes_building_one_graph_build_each_output_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let graph = write_graph(dir.path(), 40);
    ok(at(&root).arg("eval").arg(&graph));
    let children: Vec<_> = (0..2)
        .map(|_| {
            at(&root)
                .args(["build", "-j", "2"])
                .arg(&graph)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut built = Vec::new();
    let mut outputs = Vec::new();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        built.extend(
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .filter(|l| l.starts_with("built "))
                .map(str::to_owned),
        );
        outputs.push(String::from_utf8(o.stdout).unwrap());
    }
    assert_eq!(outputs[0], outputs[1]);
    built.sort();
    let n = built.len();
    built.dedup();
    assert_eq!(built.len(), n, "a derivation was built by both processes");
    assert_eq!(n, 40);
    ok(at(&root).args(["store", "verify"]));
}

#[test]
fn drv_files_written_by_nix_instantiate_build_to_nix_outputs() {
    if !nix_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(
        d.join("set.nix"),
        r#"let src = builtins.toFile "input.txt" "some source\n";
               a = derivation { name = "a"; system = "x86_64-linux"; builder = "/bin/sh"; args = ["-c" "cat ${src} > $out"]; };
               multi = derivation { name = "multi"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = ["out" "dev"];
                                    args = ["-c" "echo out > $out; mkdir $dev; ln -s $out $dev/link"]; };
           in derivation { name = "b"; system = "x86_64-linux"; builder = "/bin/sh";
                           args = ["-c" "cat ${a} ${a} > $out; echo ${src} ${multi.dev} >> $out"]; }"#,
    )
    .unwrap();
    let nix_root = d.join("nix");
    let uri = nix_store_uri(&nix_root, "/nix/store");
    let drv = ok_str(
        nix("nix-instantiate")
            .args(["--store", &uri])
            .arg(d.join("set.nix")),
    );
    let theirs = ok_str(nix("nix-store").args([
        "--store",
        &uri,
        "--option",
        "sandbox-paths",
        "/bin/sh=/bin/busybox",
        "-r",
        &drv,
    ]));
    let ours_root = d.join("ours");
    let file = nix_real_store(&nix_root, "/nix/store").join(drv.trim_start_matches("/nix/store/"));
    let ours = ok_str(
        at(&ours_root)
            .args(["--store-dir", "/nix/store", "build", "-q"])
            .arg(&file),
    );
    assert_eq!(ours, theirs);
    let mut closure = ok_str(nix("nix-store").args(["--store", &uri, "-qR", &theirs]))
        .lines()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    closure.sort();
    assert_nix_agrees(&ours_root, &uri, &closure);
    // A file whose name does not match its contents is refused.
    let forged = file.with_file_name("00000000000000000000000000000000-forged.drv");
    fs::copy(&file, &forged).unwrap();
    let e = String::from_utf8_lossy(
        &fails(
            at(&d.join("other"))
                .args(["--store-dir", "/nix/store", "build"])
                .arg(&forged),
        )
        .stderr,
    )
    .into_owned();
    assert!(e.contains("not its own name"), "{e}");
}

#[test]
fn check_rebuilds_and_names_what_differs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let file = dir.path().join("p.scm");
    fs::write(
        &file,
        "(define same (derivation \"same\" \"/bin/sh\" '(\"-c\" \"mkdir $out; echo a > $out/a; echo b > $out/b\")))\n\
         (define noisy (derivation \"noisy\" \"/bin/sh\" '(\"-c\" \"mkdir $out; echo a > $out/a; head -c 8 /dev/urandom > $out/b\")))\n\
         (list same noisy)\n",
    )
    .unwrap();
    let outs = ok_str(at(&root).args(["build", "-q"]).arg(&file));
    let drvs = ok_str(at(&root).arg("eval").arg(&file));
    let (same_drv, noisy_drv) = (drvs.lines().next().unwrap(), drvs.lines().nth(1).unwrap());
    let out = ok_str(at(&root).args(["build", "--check", same_drv]));
    assert!(out.starts_with("reproducible: "), "{out}");
    let out = at(&root)
        .args(["build", "--check", noisy_drv])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("DIFFERS")
            && text.contains("b: contents differ")
            && !text.contains("a: contents"),
        "{text}"
    );
    let kept = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("rebuilt copy kept at "))
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    assert!(Path::new(&kept).join("a").exists());
    // The store copy is untouched and still verifies.
    ok(at(&root).args(["store", "verify"]));
    assert!(outs.lines().count() == 2);
    // --check needs a previous build.
    let fresh = dir.path().join("fresh");
    ok(at(&fresh).arg("eval").arg(&file));
    assert!(!at(&fresh)
        .args(["build", "--check", same_drv])
        .output()
        .unwrap()
        .status
        .success());
}

#[test]
fn keep_going_builds_what_does_not_depend_on_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.scm");
    fs::write(
        &file,
        "(define bad (derivation \"bad\" \"/bin/sh\" '(\"-c\" \"exit 3\")))\n\
         (define after-bad (derivation \"after-bad\" \"/bin/sh\" '(\"-c\" \"echo > $out\") #:inputs (list bad)))\n\
         (define good (derivation \"good\" \"/bin/sh\" '(\"-c\" \"echo > $out\")))\n\
         (list bad after-bad good)\n",
    )
    .unwrap();
    for (flag, good_built) in [("--keep-going", true), ("-j1", false)] {
        let root = dir.path().join(flag.trim_start_matches('-'));
        let out = at(&root).args(["build", flag]).arg(&file).output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("exit status 3"), "{err}");
        let valid = ok_str(at(&root).args(["store", "ls"]));
        assert_eq!(
            valid.lines().any(|l| l.ends_with("-good")),
            good_built,
            "{flag}: {valid}"
        );
        assert!(!valid.lines().any(|l| l.ends_with("-after-bad")), "{flag}");
    }
}

/// `--keep-failed` keeps a failed build's directory, says where, and `gc` clears it later.
#[test]
fn keep_failed_keeps_the_build_directory_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let file = dir.path().join("p.scm");
    fs::write(
        &file,
        "(derivation \"half\" \"/bin/sh\" '(\"-c\" \"echo partial > notes.txt; exit 4\"))\n",
    )
    .unwrap();
    let out = at(&root)
        .args(["build", "--keep-failed"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let kept = err
        .split("build directory kept at ")
        .nth(1)
        .unwrap_or_else(|| panic!("{err}"))
        .trim();
    assert_eq!(
        fs::read_to_string(Path::new(kept).join("notes.txt")).unwrap(),
        "partial\n"
    );
    // Without the flag nothing is left behind.
    let out = at(&root).arg("build").arg(&file).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("kept at"), "{err}");
    ok(at(&root).arg("gc"));
    assert!(!Path::new(kept).exists(), "gc removes kept build areas");
}

/// The sandbox needs no privilege: an ordinary user builds in a store of their own.
#[test]
fn an_unprivileged_user_builds_in_the_sandbox() {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc_getuid() } != 0 || Command::new("runuser").arg("--version").output().is_err() {
        eprintln!("skipping: needs root (to make the test user) and runuser");
        return;
    }
    let user = "guixie-test";
    if !Command::new("id")
        .arg(user)
        .output()
        .unwrap()
        .status
        .success()
    {
        ok(Command::new("useradd").args(["--no-create-home", "--shell", "/bin/sh", user]));
    }
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    for bin in ["guixie", "guixie-sandbox"] {
        let from = Path::new(env!("CARGO_BIN_EXE_guixie")).with_file_name(bin);
        fs::copy(&from, dir.path().join(bin)).unwrap();
    }
    let file = dir.path().join("p.scm");
    fs::write(
        &file,
        "(derivation \"mine\" \"/bin/sh\" '(\"-c\" \"id -u > $out\"))\n",
    )
    .unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let script = format!(
        "cd {d} && ./guixie --store {d}/store build -q {f} && ./guixie --store {d}/store store verify",
        d = dir.path().display(),
        f = file.display()
    );
    let out = ok_str(Command::new("runuser").args(["-u", user, "--", "/bin/sh", "-c", &script]));
    let built = dir
        .path()
        .join("store")
        .join(out.lines().next().unwrap().trim_start_matches('/'));
    assert_eq!(
        fs::read_to_string(built).unwrap().trim(),
        "1000",
        "the builder runs as uid 1000 inside"
    );
}

extern "C" {
    #[link_name = "getuid"]
    fn libc_getuid() -> u32;
}

#[test]
fn fixed_output_derivations_are_checked_against_their_hash() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    // sha256("hello")
    let hash = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    let good = dir.path().join("good.scm");
    fs::write(&good, format!("(derivation \"fetched\" \"/bin/sh\" '(\"-c\" \"printf hello > $out\") #:hash \"{hash}\")\n")).unwrap();
    let out = ok_str(at(&root).args(["build", "-q"]).arg(&good));
    assert_eq!(
        fs::read_to_string(root.join(out.trim_start_matches('/'))).unwrap(),
        "hello"
    );
    let bad = dir.path().join("bad.scm");
    fs::write(&bad, format!("(derivation \"fetched-wrong\" \"/bin/sh\" '(\"-c\" \"printf HELLO > $out\") #:hash \"{hash}\")\n")).unwrap();
    let e = String::from_utf8_lossy(&fails(at(&root).arg("build").arg(&bad)).stderr).into_owned();
    assert!(e.contains("hashes to") && e.contains("declares"), "{e}");
    assert!(!ok_str(at(&root).args(["store", "ls"]))
        .lines()
        .any(|l| l.ends_with("-fetched-wrong")));
    ok(at(&root).args(["store", "verify"]));
}

#[test]
fn outputs_that_name_themselves_reference_themselves_and_keep_their_deriver() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let file = dir.path().join("self.scm");
    fs::write(
        &file,
        "(derivation \"selfish\" \"/bin/sh\" '(\"-c\" \"echo $out > $out\"))\n",
    )
    .unwrap();
    let out = ok_str(at(&root).args(["build", "-q"]).arg(&file));
    let drv = ok_str(at(&root).arg("eval").arg(&file));
    let info: serde_json::Value =
        serde_json::from_slice(&ok(at(&root).args(["--json", "store", "info", &out]))).unwrap();
    assert_eq!(info["references"], serde_json::json!([out]));
    assert_eq!(info["deriver"], serde_json::json!(drv));
    ok(at(&root).args(["store", "verify"]));
}
