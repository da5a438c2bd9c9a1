//! `guixie build` leaves evidence: a signed attestation per built derivation in the local log,
//! each provably included under a signed checkpoint; `guixie challenge` compares builders.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

fn at(root: &Path, builder: &str) -> Command {
    let mut c = guixie();
    c.arg("--store")
        .arg(root)
        .env("GUIXIE_BUILDER_NAME", builder);
    c
}

#[test]
fn builds_are_attested_logged_and_challengeable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pkgs.scm");
    fs::write(
        &file,
        "(define stable (derivation \"stable\" \"/bin/sh\" '(\"-c\" \"echo same > $out\")))\n\
         (define noisy (derivation \"noisy\" \"/bin/sh\" '(\"-c\" \"head -c 16 /dev/urandom > $out\")))\n\
         (list stable noisy)\n",
    )
    .unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let outs = ok_str(at(&a, "builder-a").args(["build", "-q"]).arg(&file));
    ok(at(&b, "builder-b").args(["build", "-q"]).arg(&file));
    let (stable, noisy) = {
        let l: Vec<&str> = outs.lines().collect();
        (l[0].to_owned(), l[1].to_owned())
    };

    // Two entries in a's log, each an envelope signed by a's builder key, each included.
    let builder_key = fs::read_to_string(a.join("var/guixie/builder.key")).unwrap();
    let public = ok_str(
        guixie()
            .args(["key", "public"])
            .arg(a.join("var/guixie/builder.key")),
    );
    assert!(public.starts_with("builder-a:") && builder_key.starts_with("builder-a:"));
    let cp = dir.path().join("cp");
    fs::write(&cp, ok(at(&a, "builder-a").args(["log", "checkpoint"]))).unwrap();
    let vkey = ok_str(at(&a, "builder-a").args(["log", "key"]));
    ok(guixie()
        .args(["checkpoint", "verify"])
        .arg(&cp)
        .args(["--log-key", &vkey]));
    let root_b64 = fs::read_to_string(&cp)
        .unwrap()
        .lines()
        .nth(2)
        .unwrap()
        .to_owned();
    let entries_dir = a.join("var/guixie/log");
    for index in 0..2u64 {
        let p: serde_json::Value = serde_json::from_slice(&ok(at(&a, "builder-a").args([
            "--json",
            "log",
            "prove-inclusion",
            &index.to_string(),
        ])))
        .unwrap();
        let proof: Vec<&str> = p["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap())
            .collect();
        ok(guixie().args([
            "log",
            "verify-inclusion",
            "--leaf-hash",
            p["leafHash"].as_str().unwrap(),
            "--index",
            &index.to_string(),
            "--size",
            "2",
            "--root",
            &root_b64,
            "--proof",
            &proof.join(","),
        ]));
    }
    // Read the entries back through the library and check them with `attest verify`.
    let log = guixie_log::FileLog::open(&entries_dir).unwrap();
    let mut attested = Vec::new();
    for i in 0..log.size() {
        let f = dir.path().join(format!("entry{i}.json"));
        fs::write(&f, log.entry(i).unwrap()).unwrap();
        ok(guixie()
            .args(["attest", "verify"])
            .arg(&f)
            .args(["--key", &public]));
        let st: serde_json::Value =
            serde_json::from_slice(&ok(guixie().args(["attest", "show"]).arg(&f))).unwrap();
        assert_eq!(st["predicate"]["sandbox"], "full");
        assert_eq!(
            st["predicate"]["derivation"]["hashModulo"]
                .as_str()
                .unwrap()
                .len(),
            64
        );
        attested.push(st["subject"][0]["name"].as_str().unwrap().to_owned());
    }
    attested.sort();
    let mut expected = vec![stable.clone(), noisy.clone()];
    expected.sort();
    assert_eq!(attested, expected);

    // The deterministic output agrees across builders; the noisy one is caught.
    let blog = b.join("var/guixie/log");
    let agree = ok_str(
        at(&a, "builder-a")
            .arg("challenge")
            .arg("--log")
            .arg(&blog)
            .arg(&stable),
    );
    assert!(agree.contains(": identical"), "{agree}");
    let out = at(&a, "builder-a")
        .args(["--json", "challenge"])
        .arg("--log")
        .arg(&blog)
        .arg(&noisy)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report[0]["verdict"], "differing");
    // Another builder's log is only read: a missing one is named, not created, and a
    // read-only copy works (a read-only bind mount, in a mount namespace of the test's own).
    let missing = dir.path().join("no-such-log");
    let e = fails(
        at(&a, "builder-a")
            .arg("challenge")
            .arg("--log")
            .arg(&missing)
            .arg(&stable),
    );
    assert!(String::from_utf8_lossy(&e.stderr).contains("not a transparency log"));
    assert!(
        !missing.exists(),
        "challenge created the other builder's log"
    );
    if rustix::process::geteuid().is_root() {
        let copy = dir.path().join("copy-of-b");
        ok(Command::new("cp").arg("-a").arg(&blog).arg(&copy));
        let guixie_bin = env!("CARGO_BIN_EXE_guixie");
        let script = format!(
            "mount --bind {c} {c} && mount -o remount,bind,ro {c} && \
             if touch {c}/probe 2>/dev/null; then echo WRITABLE; exit 1; fi && \
             {g} --store {a} challenge --log {c} {stable}",
            c = copy.display(),
            g = guixie_bin,
            a = a.display(),
        );
        let out = ok_str(Command::new("unshare").args([
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
        ]));
        assert!(out.contains(": identical"), "read-only copy: {out}");
    }
    let only = ok_str(at(&a, "builder-a").arg("challenge").arg(&stable));
    assert!(only.contains("only one builder"), "{only}");
    // --no-attest leaves the log alone.
    let file2 = dir.path().join("more.scm");
    fs::write(
        &file2,
        "(derivation \"quiet\" \"/bin/sh\" '(\"-c\" \"echo > $out\"))\n",
    )
    .unwrap();
    ok(at(&a, "builder-a")
        .args(["build", "-q", "--no-attest"])
        .arg(&file2));
    assert_eq!(guixie_log::FileLog::open(&entries_dir).unwrap().size(), 2);
}

/// What `build` prints is a logical path (the store lives elsewhere): every command that takes
/// a store path accepts it, its physical location and its bare `<hash>-<name>` alike.
#[test]
fn commands_take_the_paths_guixie_prints() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("one.scm");
    fs::write(
        &file,
        "(derivation \"one\" \"/bin/sh\" '(\"-c\" \"echo one > $out\"))\n",
    )
    .unwrap();
    let root = dir.path().join("store");
    let drv = ok_str(at(&root, "b").arg("eval").arg(&file))
        .trim()
        .to_owned();
    let out = ok_str(at(&root, "b").args(["build", "-q"]).arg(&drv))
        .trim()
        .to_owned();
    assert!(out.starts_with("/gnu/store/") && !Path::new(&out).exists());
    let forms = |logical: &str| {
        let physical = root.join(logical.trim_start_matches('/'));
        assert!(physical.exists(), "{}", physical.display());
        let base = logical.rsplit('/').next().unwrap().to_owned();
        [logical.to_owned(), physical.display().to_string(), base]
    };
    // `store info` takes all three forms in one call and names the same path thrice.
    let infos: serde_json::Value = serde_json::from_slice(&ok(at(&root, "b")
        .args(["--json", "store", "info"])
        .args(forms(&out))))
    .unwrap();
    let named: Vec<&str> = infos
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["path"].as_str().unwrap())
        .collect();
    assert_eq!(named, [out.as_str(); 3]);
    for form in forms(&drv) {
        for drv_cmd in ["show", "check", "fmt"] {
            ok(at(&root, "b").args(["drv", drv_cmd, &form]));
        }
        ok(at(&root, "b").args(["build", "-q", &form]));
        ok(at(&root, "b").args(["log", &form]));
        ok(at(&root, "b").args(["graph", &form]));
        let found = ok_str(at(&root, "b").args(["challenge", &form]));
        assert!(
            found.contains(&out) && found.contains("only one builder"),
            "{found}"
        );
    }
    for form in forms(&out) {
        let found = ok_str(at(&root, "b").args(["challenge", &form]));
        assert!(found.contains(&out), "{found}");
    }
}

#[test]
fn trust_decide_applies_the_k_of_n_rule_to_a_case() {
    let dir = tempfile::tempdir().unwrap();
    let decide = |case: serde_json::Value| -> serde_json::Value {
        let file = dir.path().join("case.json");
        fs::write(&file, case.to_string()).unwrap();
        serde_json::from_slice(&ok(guixie().args(["trust", "decide"]).arg(&file))).unwrap()
    };
    let vote = |b: &str, o: &str| serde_json::json!({"builder": b, "output": o});
    let trusted = ["alice", "bob", "carol"];
    // Two of three agree, the third dissents, a liar outside the policy is ignored.
    let d = decide(
        serde_json::json!({"trusted_builders": trusted, "k": 2, "attestations": [
        vote("carol", "Y"), vote("bob", "X"), vote("alice", "X"), vote("liar", "Y")]}),
    );
    assert_eq!(d["result"], "accept", "{d}");
    assert_eq!(d["output"], "X");
    assert_eq!(d["attesting"], serde_json::json!(["alice", "bob"]));
    assert_eq!(d["dissenting"], serde_json::json!(["carol"]));
    // One honest builder stopped, k = 3: a shortfall, with its reason.
    let d = decide(
        serde_json::json!({"trusted_builders": trusted, "k": 3, "attestations": [
        vote("bob", "X"), vote("alice", "X")]}),
    );
    assert_eq!(d["result"], "reject");
    assert_eq!(d["output"], serde_json::Value::Null);
    assert!(d["reason"].as_str().unwrap().contains("2 of the 3"), "{d}");
    // An equivocator counts for nothing.
    let d = decide(
        serde_json::json!({"trusted_builders": trusted, "k": 2, "attestations": [
        vote("alice", "X"), vote("bob", "X"), vote("bob", "Y")]}),
    );
    assert_eq!(d["result"], "reject");
    assert_eq!(d["equivocating"], serde_json::json!(["bob"]));
    // A malformed case is an error naming the file and the field.
    fs::write(dir.path().join("bad.json"), r#"{"k": 1}"#).unwrap();
    let out = fails(
        guixie()
            .args(["trust", "decide"])
            .arg(dir.path().join("bad.json")),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.json") && err.contains("trusted_builders"),
        "{err}"
    );
}
