//! The store through the `guixie` binary: concurrent processes, crashes (SIGKILL at random
//! moments), GC roots, and the messages bad input gets.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn store_cmd(root: &Path) -> Command {
    let mut c = guixie();
    c.arg("--store").arg(root);
    c
}

fn payload(dir: &Path, files: usize, big: usize) -> std::path::PathBuf {
    let t = dir.join("payload");
    fs::create_dir_all(t.join("many")).unwrap();
    for i in 0..files {
        fs::write(
            t.join("many").join(format!("f{i:04}")),
            format!("file {i}\n").repeat(i % 50 + 1),
        )
        .unwrap();
    }
    fs::write(t.join("big.bin"), vec![7u8; big]).unwrap();
    t
}

#[test]
fn concurrent_processes_adding_the_same_path_agree() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let src = payload(dir.path(), 300, 8 << 20);
    let children: Vec<_> = (0..4)
        .map(|_| {
            store_cmd(&root)
                .args(["store", "add"])
                .arg(&src)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<String> = children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8(o.stdout).unwrap()
        })
        .collect();
    assert!(outs.windows(2).all(|w| w[0] == w[1]), "{outs:?}");
    assert_eq!(
        ok_str(store_cmd(&root).args(["store", "ls"]))
            .lines()
            .count(),
        1
    );
    assert_eq!(
        fs::read_dir(root.join("gnu/store")).unwrap().count(),
        1,
        "no temporaries left"
    );
    ok(store_cmd(&root).args(["store", "verify"]));
}

/// SIGKILL `guixie store add` at pseudo-random moments; every time the store must verify
/// clean, hold either nothing or the valid path, and accept the add again.
#[test]
fn sigkill_during_add_never_leaves_a_half_valid_path() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let src = payload(dir.path(), 400, 16 << 20);
    let iterations: u64 = std::env::var("GUIXIE_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut killed_mid_way = 0;
    for i in 0..iterations {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let delay = Duration::from_micros((seed >> 33) % 150_000);
        let name = format!("crash-{}", i % 5);
        let mut child = store_cmd(&root)
            .args(["store", "add", "--name", &name])
            .arg(&src)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();
        if !status.success() {
            killed_mid_way += 1;
        }
        let verify = store_cmd(&root)
            .args(["--json", "store", "verify"])
            .output()
            .unwrap();
        assert!(
            verify.status.success(),
            "iteration {i} (kill after {delay:?}): verify failed: {}",
            String::from_utf8_lossy(&verify.stdout)
        );
        let valid = ok_str(store_cmd(&root).args(["store", "ls"]));
        assert!(
            valid
                .lines()
                .all(|l| (0..5).any(|n| l.ends_with(&format!("-crash-{n}")))),
            "iteration {i}: unexpected valid paths {valid}"
        );
    }
    assert!(
        killed_mid_way > iterations / 4,
        "only {killed_mid_way} of {iterations} kills landed mid-add"
    );
    for n in 0..5 {
        ok(store_cmd(&root)
            .args(["store", "add", "--name", &format!("crash-{n}")])
            .arg(&src));
    }
    ok(store_cmd(&root).args(["store", "verify"]));
    // GC clears every leftover: only the five valid paths remain on disk afterwards.
    let report: serde_json::Value =
        serde_json::from_slice(&ok(store_cmd(&root).args(["--json", "gc", "--dry-run"]))).unwrap();
    assert_eq!(report["deleted"].as_array().unwrap().len(), 5);
    let first = ok_str(store_cmd(&root).args(["store", "ls"]))
        .lines()
        .next()
        .unwrap()
        .to_owned();
    ok(store_cmd(&root).args(["store", "add-root", "keep", &first]));
    ok(store_cmd(&root).args(["gc"]));
    assert_eq!(ok_str(store_cmd(&root).args(["store", "ls"])), first);
    assert_eq!(fs::read_dir(root.join("gnu/store")).unwrap().count(), 1);
}

#[test]
fn verify_reports_corruption_with_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let src = payload(dir.path(), 3, 10);
    let path = ok_str(store_cmd(&root).args(["store", "add"]).arg(&src));
    ok(store_cmd(&root).args(["store", "verify"]));
    let real = root.join(path.trim_start_matches('/')).join("big.bin");
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&real, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&real, "corrupted").unwrap();
    let out = fails(store_cmd(&root).args(["--json", "store", "verify"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["problems"][0]["path"], path);
    assert_eq!(v["problems"][0]["problem"], "modified");
}

fn stderr_of(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&fails(cmd).stderr).into_owned()
}

#[test]
fn bad_input_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // A NAR cut short: error names the byte offset, the failed restore leaves nothing.
    fs::create_dir(d.join("t")).unwrap();
    fs::write(d.join("t/f"), "contents").unwrap();
    let nar = ok(guixie().args(["nar", "dump"]).arg(d.join("t")));
    fs::write(d.join("cut.nar"), &nar[..nar.len() - 20]).unwrap();
    let child = guixie()
        .args(["nar", "restore"])
        .arg(d.join("restored"))
        .stdin(fs::File::open(d.join("cut.nar")).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid NAR at byte") && err.contains("ends early"),
        "{err}"
    );
    assert!(!d.join("restored").exists());
    let err = stderr_of(guixie().args(["nar", "ls"]).arg(d.join("cut.nar")));
    assert!(err.contains("cut.nar") && err.contains("at byte"), "{err}");

    // A malformed derivation: file and offset named.
    fs::write(
        d.join("bad.drv"),
        "Derive([],[],[],\"s\",\"b\",[\"\\q\"],[])",
    )
    .unwrap();
    let err = stderr_of(guixie().args(["drv", "show"]).arg(d.join("bad.drv")));
    assert!(
        err.contains("bad.drv") && err.contains("byte 26") && err.contains("bad escape"),
        "{err}"
    );

    // A missing input derivation is named, with where it was looked for.
    fs::write(
        d.join("needs-input.drv"),
        "Derive([(\"out\",\"/nix/store/00000000000000000000000000000000-x\",\"\",\"\")],[(\"/nix/store/11111111111111111111111111111111-dep.drv\",[\"out\"])],[],\"s\",\"b\",[],[(\"name\",\"x\")])",
    )
    .unwrap();
    let err = stderr_of(
        guixie()
            .args(["drv", "check"])
            .arg(d.join("needs-input.drv")),
    );
    assert!(
        err.contains("11111111111111111111111111111111-dep.drv") && err.contains("not found"),
        "{err}"
    );

    // narinfo: line numbers; key files: what is wrong with them.
    fs::write(d.join("bad.narinfo"), "StorePath: /nix/store/00000000000000000000000000000000-x\nNarHash: sha256:zz\nNarSize: 1\n").unwrap();
    let err = stderr_of(
        guixie()
            .args(["narinfo", "show"])
            .arg(d.join("bad.narinfo")),
    );
    assert!(err.contains("line 2") && err.contains("NarHash"), "{err}");
    fs::write(d.join("bad.sec"), "name:notbase64!").unwrap();
    fs::write(d.join("ok.narinfo"), "StorePath: /nix/store/00000000000000000000000000000000-x\nNarHash: sha256:1lz94v6gx3xz1mn5fxyzw9c4flh0n79d6mw138nm9iprzh6vj9lg\nNarSize: 1\n").unwrap();
    // A secret key others may read is refused before it is parsed.
    let err = stderr_of(
        guixie()
            .args(["narinfo", "sign"])
            .arg(d.join("ok.narinfo"))
            .arg("--key")
            .arg(d.join("bad.sec")),
    );
    assert!(
        err.contains("bad.sec") && err.contains("chmod 600"),
        "{err}"
    );
    fs::set_permissions(
        d.join("bad.sec"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let err = stderr_of(
        guixie()
            .args(["narinfo", "sign"])
            .arg(d.join("ok.narinfo"))
            .arg("--key")
            .arg(d.join("bad.sec")),
    );
    assert!(err.contains("bad.sec") && err.contains("base64"), "{err}");
    let err = stderr_of(
        guixie()
            .args(["narinfo", "verify"])
            .arg(d.join("ok.narinfo"))
            .args(["--key", "k:AAAA"]),
    );
    assert!(err.contains("3 bytes, expected 32"), "{err}");
    let err = stderr_of(
        guixie()
            .args(["narinfo", "verify"])
            .arg(d.join("ok.narinfo"))
            .args(["--key", "k:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="]),
    );
    assert!(err.contains("no signature verifies"), "{err}");

    // Hash conversion errors say which encoding and why.
    let err = stderr_of(guixie().args(["hash", "convert", "--to", "nix32", "sha256:abc"]));
    assert!(err.contains("3 characters"), "{err}");

    // Store paths and names.
    let err = stderr_of(
        guixie()
            .arg("--store")
            .arg(d.join("s"))
            .args(["store", "add", "--name", "bad name"])
            .arg(d.join("t")),
    );
    assert!(err.contains("invalid store path name"), "{err}");
    let err = stderr_of(guixie().arg("--store").arg(d.join("s")).args([
        "store",
        "info",
        "/gnu/store/not-a-path",
    ]));
    assert!(
        err.contains("too short") || err.contains("not-a-path"),
        "{err}"
    );
}

/// Several processes opening one new store at once all succeed: the schema is created under a
/// lock, and every connection waits for a busy database instead of failing.
#[test]
fn many_processes_opening_a_new_store_at_once_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("t.txt");
    fs::write(&text, "concurrent\n").unwrap();
    for trial in 0..12 {
        let root = dir.path().join(format!("root{trial}"));
        let children: Vec<_> = (0..6)
            .map(|i| {
                let mut c = store_cmd(&root);
                if i % 2 == 0 {
                    c.args(["store", "add"]).arg(&text);
                } else {
                    c.args(["store", "ls"]);
                }
                c.stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "trial {trial}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        ok(store_cmd(&root).args(["store", "verify"]));
    }
}
