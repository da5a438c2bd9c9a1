//! `guixie govern` and `guixie self` (issue 13, governance part): a three-member instance
//! (2 of 3) takes an upgrade only when two members, each rebuilding the proposed source in
//! their own store's sandbox, vouch for the same output; a non-member's vote, a repeated
//! vote, a replayed proposal, a downgrade and a member whose rebuild differs do not count;
//! the upgrade becomes a generation that runs, and roll-back returns the previous one.

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

fn stderr_of(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&fails(cmd).stderr).into_owned()
}

/// A source tree whose `guixie.scm` builds a stand-in for the next guixie: a C program that
/// prints its version. `noise` makes every build's output differ.
fn source_tree(dir: &Path, version: &str, noise: bool) -> PathBuf {
    let src = dir.join(format!(
        "next-{version}{}",
        if noise { "-noisy" } else { "" }
    ));
    fs::create_dir_all(src.join("src")).unwrap();
    fs::write(
        src.join("guixie.scm"),
        format!(
            "(use-modules (guix packages) (guix gexp) (guix build-system gnu))\n\
             (package (name \"guixie\") (version \"{version}\")\n\
               (source (local-file \"src\" \"guixie-src\" #:recursive? #t))\n\
               (build-system gnu-build-system)\n\
               (arguments (list #:tests? #f #:make-flags #~(list (string-append \"PREFIX=\" #$output))))\n\
               (synopsis \"next\") (description \"The next guixie.\") (license #f) (home-page #f))\n"
        ),
    )
    .unwrap();
    fs::write(
        src.join("src/main.c"),
        format!("#include <stdio.h>\nint main(void) {{ puts(\"guixie {version}\"); return 0; }}\n"),
    )
    .unwrap();
    let noise = if noise { NOISY_INSTALL } else { "" };
    fs::write(
        src.join("src/Makefile"),
        format!(
            "guixie: main.c\n\t$(CC) -o guixie main.c\ninstall: guixie\n\tmkdir -p $(PREFIX)/bin\n\tcp guixie $(PREFIX)/bin/\n{noise}"
        ),
    )
    .unwrap();
    src
}

#[test]
fn an_upgrade_takes_effect_only_with_two_members_rebuilds() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (instance, store_b, store_c, elsewhere) =
        (d.join("i"), d.join("b"), d.join("c"), d.join("x"));
    let [a, b, c, x] = ["alice", "bob", "carol", "mallory"].map(|name| key_pair(d, name));
    let public = |k: &(PathBuf, String)| k.1.clone();

    // The first state: 2 of alice, bob, carol. Alice's signature alone is not its quorum.
    let state = d.join("state-1.json");
    ok(at(&instance)
        .args(["govern", "state", "--instance", "demo", "--threshold", "2"])
        .args([
            "--member",
            &public(&a),
            "--member",
            &public(&b),
            "--member",
            &public(&c),
        ])
        .arg("-o")
        .arg(&state));
    ok(at(&instance)
        .args(["govern", "sign"])
        .arg(&state)
        .arg("--key")
        .arg(&a.0));
    let e = stderr_of(at(&instance).args(["govern", "init"]).arg(&state));
    assert!(
        e.contains("1 distinct key(s) of version 1's members signed; 2 required"),
        "{e}"
    );
    ok(at(&instance)
        .args(["govern", "sign"])
        .arg(&state)
        .arg("--key")
        .arg(&b.0));
    let out = ok_str(at(&instance).args(["govern", "init"]).arg(&state));
    assert!(
        out.contains("instance demo: governance version 1, 2 of 3 members"),
        "{out}"
    );

    // Alice proposes 0.2.0; her store builds it for the expected NAR hash.
    let next = source_tree(d, "0.2.0", false);
    let p0 = d.join("p0.json");
    let out = ok_str(
        at(&instance)
            .args([
                "govern",
                "propose",
                "upgrade",
                "--version",
                "0.2.0",
                "--source",
            ])
            .arg(&next)
            .arg("--key")
            .arg(&a.0)
            .arg("-o")
            .arg(&p0),
    );
    assert!(out.contains("proposal 0 accepted"), "{out}");
    let e = stderr_of(
        at(&instance)
            .args(["govern", "apply", "0", "--source"])
            .arg(&next),
    );
    assert!(e.contains("open (0 aye"), "{e}");

    // Alice's aye: her store rebuilds it (bit for bit against its copy).
    let va = d.join("va.json");
    let out = ok_str(
        at(&instance)
            .args(["govern", "approve", "0", "--source"])
            .arg(&next)
            .arg("--key")
            .arg(&a.0)
            .arg("-o")
            .arg(&va),
    );
    assert!(out.contains("proposal 0 is open"), "{out}");
    // Her vote again (replayed), a non-member's vote: not counted.
    let e = stderr_of(at(&instance).args(["govern", "submit"]).arg(&va));
    assert!(e.contains("a replayed or reordered vote"), "{e}");
    let vx = d.join("vx.json");
    ok(at(&elsewhere)
        .args(["govern", "reject"])
        .arg(&p0)
        .arg("--key")
        .arg(&x.0)
        .arg("-o")
        .arg(&vx));
    let e = stderr_of(at(&instance).args(["govern", "submit"]).arg(&vx));
    assert!(
        e.contains("not signed by a member of governance version 1"),
        "{e}"
    );
    // Without --source an aye cannot be given: it must be rebuilt.
    let e = stderr_of(
        at(&store_b)
            .args(["govern", "approve"])
            .arg(&p0)
            .arg("--key")
            .arg(&b.0),
    );
    assert!(e.contains("--source DIR"), "{e}");
    // A source other than the one proposed is refused before anything is built.
    let other = source_tree(&d.join("o"), "0.2.0", true);
    let e = stderr_of(
        at(&store_b)
            .args(["govern", "approve"])
            .arg(&p0)
            .arg("--source")
            .arg(&other)
            .arg("--key")
            .arg(&b.0),
    );
    assert!(e.contains("this is not the source proposed"), "{e}");
    let e = stderr_of(
        at(&instance)
            .args(["govern", "apply", "0", "--source"])
            .arg(&next),
    );
    assert!(e.contains("open (1 aye"), "{e}");

    // Bob rebuilds it in his own store and gets the same output: his aye makes two.
    let vb = d.join("vb.json");
    let out = ok_str(
        at(&store_b)
            .args(["govern", "approve"])
            .arg(&p0)
            .arg("--source")
            .arg(&next)
            .arg("--key")
            .arg(&b.0)
            .arg("-o")
            .arg(&vb),
    );
    assert!(out.contains("vote written"), "{out}");
    let vote: serde_json::Value = serde_json::from_slice(&fs::read(&vb).unwrap()).unwrap();
    assert_eq!(
        vote["payloadType"],
        "application/vnd.guixie.governance.vote.v1+json"
    );
    let out = ok_str(at(&instance).args(["govern", "submit"]).arg(&vb));
    assert!(out.contains("proposal 0 is approved"), "{out}");
    let out = ok_str(
        at(&instance)
            .args(["govern", "apply", "0", "--source"])
            .arg(&next),
    );
    assert!(out.contains("guixie 0.2.0 is generation 1"), "{out}");
    let runs = |want: &str| {
        let gens: serde_json::Value =
            serde_json::from_slice(&ok(at(&instance).args(["--json", "self", "generations"])))
                .unwrap();
        let current = gens
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["current"] == true)
            .unwrap()["path"]
            .as_str()
            .unwrap()
            .to_owned();
        let out = ok_str(
            at(&instance)
                .arg("run")
                .arg(format!("{current}/bin/guixie")),
        );
        assert_eq!(out.trim(), want);
    };
    runs("guixie 0.2.0");

    // A replayed proposal, and a downgrade that does not say it is one.
    let e = stderr_of(at(&instance).args(["govern", "submit"]).arg(&p0));
    assert!(e.contains("proposal 0 was already made"), "{e}");
    let e = stderr_of(
        at(&instance)
            .args([
                "govern",
                "propose",
                "upgrade",
                "--version",
                "0.1.5",
                "--source",
            ])
            .arg(&next)
            .arg("--key")
            .arg(&a.0),
    );
    assert!(e.contains("older than the running 0.2.0"), "{e}");

    // 0.3.0 whose build is not reproducible: carol's rebuild differs, and she does not sign.
    let noisy = source_tree(d, "0.3.0", true);
    let p1 = d.join("p1.json");
    ok(at(&instance)
        .args([
            "govern",
            "propose",
            "upgrade",
            "--version",
            "0.3.0",
            "--source",
        ])
        .arg(&noisy)
        .arg("--key")
        .arg(&a.0)
        .arg("-o")
        .arg(&p1));
    let out = fails(
        at(&store_c)
            .args(["govern", "approve"])
            .arg(&p1)
            .arg("--source")
            .arg(&noisy)
            .arg("--key")
            .arg(&c.0)
            .arg("-o")
            .arg(d.join("vc1.json")),
    );
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("but the proposal expects") && e.contains("not signing"),
        "{e}"
    );
    assert!(!d.join("vc1.json").exists(), "no vote was written");

    // A reproducible 0.3.0 passes with alice and carol; then roll-back returns 0.2.0.
    let next3 = source_tree(d, "0.3.0", false);
    let p2 = d.join("p2.json");
    ok(at(&instance)
        .args([
            "govern",
            "propose",
            "upgrade",
            "--version",
            "0.3.0",
            "--source",
        ])
        .arg(&next3)
        .arg("--key")
        .arg(&a.0)
        .arg("-o")
        .arg(&p2));
    ok(at(&instance)
        .args(["govern", "approve", "2", "--source"])
        .arg(&next3)
        .arg("--key")
        .arg(&a.0));
    let vc = d.join("vc.json");
    ok(at(&store_c)
        .args(["govern", "approve"])
        .arg(&p2)
        .arg("--source")
        .arg(&next3)
        .arg("--key")
        .arg(&c.0)
        .arg("-o")
        .arg(&vc));
    ok(at(&instance).args(["govern", "submit"]).arg(&vc));
    let out = ok_str(
        at(&instance)
            .args(["govern", "apply", "2", "--source"])
            .arg(&next3),
    );
    assert!(out.contains("guixie 0.3.0 is generation 2"), "{out}");
    runs("guixie 0.3.0");
    let out = ok_str(at(&instance).args(["self", "roll-back"]));
    assert!(
        out.contains("from generation 2 to 1") && out.contains("log entry"),
        "{out}"
    );
    runs("guixie 0.2.0");

    // A downgrade back to 0.2.0 is proposed as one, and approved only by saying so.
    ok(at(&instance)
        .args([
            "govern",
            "propose",
            "upgrade",
            "--version",
            "0.2.0",
            "--downgrade",
            "--source",
        ])
        .arg(&next)
        .arg("--key")
        .arg(&a.0));
    let e = stderr_of(
        at(&instance)
            .args(["govern", "approve", "3", "--source"])
            .arg(&next)
            .arg("--key")
            .arg(&a.0),
    );
    assert!(
        e.contains("DOWNGRADE to guixie 0.2.0") && e.contains("--downgrade"),
        "{e}"
    );

    // The history is in the journal and the log: replayed, it gives the same tallies.
    let status: serde_json::Value =
        serde_json::from_slice(&ok(at(&instance).args(["--json", "govern", "status"]))).unwrap();
    let statuses: Vec<&str> = status["proposals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["applied", "open", "applied", "open"]);
    assert_eq!(status["version"], "0.3.0");
    assert_eq!(
        status["proposals"][0]["ayes"],
        serde_json::json!(["alice", "bob"])
    );
    let size = ok_str(at(&instance).args(["log", "checkpoint"]));
    let entries: u64 = size.lines().nth(1).unwrap().parse().unwrap();
    // The first state, 4 proposals, 4 votes, 2 applications, 1 roll-back, and the
    // attestations of the 3 outputs this store built (its rebuilds were checks).
    assert_eq!(entries, 15, "{size}");
}

/// Writes governance state `version` of `members` (2 of them needed), signed by `signers`.
fn state_file(
    root: &Path,
    file: &Path,
    version: u32,
    members: &[&(PathBuf, String)],
    signers: &[&(PathBuf, String)],
) {
    let mut cmd = at(root);
    cmd.args([
        "govern",
        "state",
        "--instance",
        "ext",
        "--threshold",
        "2",
        "--version",
    ])
    .arg(version.to_string());
    for k in members {
        cmd.arg("--member").arg(&k.1);
    }
    ok(cmd.arg("-o").arg(file));
    for k in signers {
        ok(at(root)
            .args(["govern", "sign"])
            .arg(file)
            .arg("--key")
            .arg(&k.0));
    }
}

/// Makes a 2-of-3 instance in `root` from members' keys; returns their key files.
fn two_of_three(d: &Path, root: &Path) -> [PathBuf; 3] {
    let keys = ["alice", "bob", "carol"].map(|name| key_pair(d, name));
    let state = d.join("state-1.json");
    state_file(
        root,
        &state,
        1,
        &[&keys[0], &keys[1], &keys[2]],
        &[&keys[0], &keys[1]],
    );
    ok(at(root).args(["govern", "init"]).arg(&state));
    keys.map(|k| k.0)
}

#[test]
fn membership_changes_by_proposal_and_by_both_quorums() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = d.join("i");
    let keys = ["alice", "bob", "carol", "dave", "erin"].map(|name| key_pair(d, name));
    let [a, b, c, dave, erin] = &keys;
    let s1 = d.join("s1.json");
    state_file(&root, &s1, 1, &[a, b, c], &[a, b]);
    ok(at(&root).args(["govern", "init"]).arg(&s1));

    // Version 2 adds dave; carol and dave sign it (its own quorum), alice and bob vote for it.
    let s2 = d.join("s2.json");
    state_file(&root, &s2, 2, &[a, b, c, dave], &[c, dave]);
    ok(at(&root)
        .args(["govern", "propose", "membership"])
        .arg(&s2)
        .arg("--key")
        .arg(&a.0));
    let va = d.join("va.json");
    ok(at(&root)
        .args(["govern", "approve", "0", "--key"])
        .arg(&a.0)
        .arg("-o")
        .arg(&va));
    // A vote is one member's: bob cannot add his signature to alice's.
    let e = stderr_of(
        at(&root)
            .args(["govern", "sign"])
            .arg(&va)
            .arg("--key")
            .arg(&b.0),
    );
    assert!(e.contains("is a vote"), "{e}");
    ok(at(&root)
        .args(["govern", "approve", "0", "--key"])
        .arg(&b.0));
    let out = ok_str(at(&root).args(["govern", "apply", "0"]));
    assert!(out.contains("governance version 2"), "{out}");
    let status = ok_str(at(&root).args(["govern", "status"]));
    assert!(
        status.contains("governance version 2: 2 of 4 members (alice, bob, carol, dave)"),
        "{status}"
    );

    // Version 3 by both quorums in its own envelope (TUF's way), submitted as a file. Signed
    // by erin (new) and dave: only one key of version 2.
    let s3 = d.join("s3.json");
    state_file(&root, &s3, 3, &[c, dave, erin], &[erin, dave]);
    let e = stderr_of(at(&root).args(["govern", "submit"]).arg(&s3));
    assert!(
        e.contains("1 distinct key(s) of version 2's members signed; 2 required"),
        "{e}"
    );
    ok(at(&root)
        .args(["govern", "sign"])
        .arg(&s3)
        .arg("--key")
        .arg(&c.0));
    let out = ok_str(at(&root).args(["govern", "submit"]).arg(&s3));
    assert!(out.contains("governance version 3 accepted"), "{out}");
    // A trust policy names builders as a node's policy file does.
    let identity: serde_json::Value = serde_json::from_slice(&ok(
        at(&d.join("erin-store")).args(["trust", "identity", "--name", "erin"])
    ))
    .unwrap();
    let policy = d.join("policy.json");
    fs::write(
        &policy,
        serde_json::json!({"k": 1, "builders": [identity]}).to_string(),
    )
    .unwrap();
    let mut broken = identity.clone();
    broken["log_key"] = "erin.example+00000000+notbase64".into();
    let broken_policy = d.join("broken-policy.json");
    fs::write(
        &broken_policy,
        serde_json::json!({"k": 1, "builders": [broken]}).to_string(),
    )
    .unwrap();
    let e = stderr_of(
        at(&root)
            .args(["govern", "propose", "trust-policy", "--policy"])
            .arg(&broken_policy)
            .arg("--key")
            .arg(&c.0),
    );
    assert!(e.contains("builder \"erin\": log_key"), "{e}");
    // Alice is no longer a member: she cannot propose.
    let e = stderr_of(
        at(&root)
            .args(["govern", "propose", "trust-policy", "--policy"])
            .arg(&policy)
            .arg("--key")
            .arg(&a.0),
    );
    assert!(
        e.contains("alice is not a member of governance version 3"),
        "{e}"
    );
    // Carol proposes a trust policy and takes it back; erin, who did not propose it, cannot.
    ok(at(&root)
        .args(["govern", "propose", "trust-policy", "--policy"])
        .arg(&policy)
        .arg("--key")
        .arg(&c.0));
    let e = stderr_of(
        at(&root)
            .args(["govern", "withdraw", "1", "--key"])
            .arg(&erin.0),
    );
    assert!(e.contains("only by a member who proposed it"), "{e}");
    let out = ok_str(
        at(&root)
            .args(["govern", "withdraw", "1", "--key"])
            .arg(&c.0),
    );
    assert!(out.contains("proposal 1 withdrawn"), "{out}");
    // Replayed, the journal gives the same state.
    let status: serde_json::Value =
        serde_json::from_slice(&ok(at(&root).args(["--json", "govern", "status"]))).unwrap();
    assert_eq!(status["proposals"][1]["status"], "withdrawn");
    assert_eq!(status["governanceVersion"], 3);
    assert_eq!(status["members"].as_array().unwrap().len(), 3);
}

#[test]
fn an_extension_adds_a_scheme_function_only_by_quorum() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (instance, store_b) = (d.join("i"), d.join("b"));
    let [a, b, _c] = two_of_three(d, &instance);

    let ext = d.join("ext-hello");
    fs::create_dir_all(&ext).unwrap();
    fs::write(
        ext.join("hello.scm"),
        "(define-module (guixie ext hello))\n(define-public (shout s) (string-upcase s))\n",
    )
    .unwrap();
    fs::write(
        ext.join("guixie.scm"),
        "(use-modules (guix packages) (guix gexp) (guix build-system trivial))\n\
         (package (name \"hello-ext\") (version \"1\") (source #f)\n\
           (build-system trivial-build-system)\n\
           (arguments (list #:modules '((guix build utils)) #:builder\n\
             #~(begin (use-modules (guix build utils))\n\
                 (let ((dir (string-append #$output \"/share/guixie/ext\")))\n\
                   (mkdir-p dir)\n\
                   (copy-file #$(local-file \"hello.scm\") (string-append dir \"/hello.scm\"))))))\n\
           (synopsis \"x\") (description \"x\") (license #f) (home-page #f))\n",
    )
    .unwrap();
    let user = d.join("loud.scm");
    fs::write(
        &user,
        "(use-modules (guixie ext hello))\n\
         (package (name (shout \"loud\")) (version \"1\") (source #f)\n\
           (build-system trivial-build-system) (arguments (list #:builder #~(mkdir #$output)))\n\
           (synopsis \"x\") (description \"x\") (license #f) (home-page #f))\n",
    )
    .unwrap();
    // `guixie repl` resolves modules as package files do.
    let repl = |root: &Path| {
        let out = with_stdin(
            at(root).arg("repl"),
            "(use-modules (guixie ext hello))\n(shout \"from the repl\")\n,q\n",
        );
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let unknown = |root: &Path, has: &str| {
        let missing = "no module (guixie ext hello): this instance's quorum has not accepted an extension named hello";
        let e = stderr_of(at(root).arg("eval").arg(&user));
        assert!(e.contains(missing) && e.contains(has), "{e}");
        let text = repl(root);
        assert!(
            text.contains(missing) && !text.contains("FROM THE REPL"),
            "{text}"
        );
    };
    unknown(&instance, "it has none");

    // A proposal's recipe is untrusted: it reads no file outside its own tree. An extension's
    // module is a file of its own (the store refuses links out of it; a link within it is
    // refused too, as what it points to is not what was named).
    let nosy = d.join("nosy");
    fs::create_dir_all(&nosy).unwrap();
    fs::write(
        nosy.join("guixie.scm"),
        "(use-modules (guix packages) (guix gexp) (guix build-system trivial))\n\
         (package (name \"nosy\") (version \"1\") (source (local-file \"../alice.sec\"))\n\
           (build-system trivial-build-system) (arguments (list #:builder #~(mkdir #$output)))\n\
           (synopsis \"x\") (description \"x\") (license #f) (home-page #f))\n",
    )
    .unwrap();
    let e = stderr_of(
        at(&instance)
            .args(["govern", "propose", "extension", "nosy", "--source"])
            .arg(&nosy)
            .arg("--key")
            .arg(&a),
    );
    assert!(e.contains("local-file \"../alice.sec\" is outside"), "{e}");
    let linked = d.join("linked");
    fs::create_dir_all(&linked).unwrap();
    fs::write(
        linked.join("guixie.scm"),
        "(use-modules (guix packages) (guix gexp) (guix build-system trivial))\n\
         (package (name \"linked\") (version \"1\") (source #f)\n\
           (build-system trivial-build-system)\n\
           (arguments (list #:modules '((guix build utils)) #:builder\n\
             #~(begin (use-modules (guix build utils))\n\
                 (mkdir-p (string-append #$output \"/share/guixie/ext\"))\n\
                 (call-with-output-file (string-append #$output \"/real.scm\")\n\
                   (lambda (port) (display \"(define-module (guixie ext linked))\" port)))\n\
                 (symlink \"../../../real.scm\" (string-append #$output \"/share/guixie/ext/linked.scm\")))))\n\
           (synopsis \"x\") (description \"x\") (license #f) (home-page #f))\n",
    )
    .unwrap();
    let e = stderr_of(
        at(&instance)
            .args(["govern", "propose", "extension", "linked", "--source"])
            .arg(&linked)
            .arg("--key")
            .arg(&a),
    );
    assert!(e.contains("is a symbolic link"), "{e}");

    let p0 = d.join("p0.json");
    ok(at(&instance)
        .args(["govern", "propose", "extension", "hello", "--source"])
        .arg(&ext)
        .arg("--key")
        .arg(&a)
        .arg("-o")
        .arg(&p0));
    ok(at(&instance)
        .args(["govern", "approve", "0", "--source"])
        .arg(&ext)
        .arg("--key")
        .arg(&a));
    // One aye is not a quorum: the function is not there.
    let e = stderr_of(
        at(&instance)
            .args(["govern", "apply", "0", "--source"])
            .arg(&ext),
    );
    assert!(e.contains("open (1 aye"), "{e}");
    unknown(&instance, "it has none");
    // Bob rebuilds it in his store; with his aye it is applied and a package file uses it.
    let vb = d.join("vb.json");
    ok(at(&store_b)
        .args(["govern", "approve"])
        .arg(&p0)
        .arg("--source")
        .arg(&ext)
        .arg("--key")
        .arg(&b)
        .arg("-o")
        .arg(&vb));
    ok(at(&instance).args(["govern", "submit"]).arg(&vb));
    let out = ok_str(
        at(&instance)
            .args(["govern", "apply", "0", "--source"])
            .arg(&ext),
    );
    assert!(out.contains("(use-modules (guixie ext hello))"), "{out}");
    let drv = ok_str(at(&instance).arg("eval").arg(&user));
    assert!(drv.trim().ends_with("-LOUD-1.drv"), "{drv}");
    let text = repl(&instance);
    assert!(text.contains("\"FROM THE REPL\""), "{text}");
    // A module on the load path never stands in for an accepted extension, not even when the
    // load path is scanned for a package by name.
    let fake = d.join("fake");
    fs::create_dir_all(fake.join("guixie/ext")).unwrap();
    fs::write(
        fake.join("guixie/ext/hello.scm"),
        "(define-module (guixie ext hello))\n(define-public (shout s) (string-append s \"-fake\"))\n",
    )
    .unwrap();
    fs::write(
        fake.join("loudpkg.scm"),
        "(define-module (loudpkg) #:use-module (guixie ext hello))\n\
         (define-public loud (package (name (shout \"quiet\")) (version \"1\") (source #f)\n\
           (build-system trivial-build-system) (arguments (list #:builder #~(mkdir #$output)))\n\
           (synopsis \"x\") (description \"x\") (license #f) (home-page #f)))\n",
    )
    .unwrap();
    let shown = ok_str(at(&instance).arg("-L").arg(&fake).args(["show", "QUIET"]));
    assert!(shown.contains("name: QUIET"), "{shown}");
    // Another store, whose quorum accepted nothing, does not have it.
    unknown(&store_b, "it has none");

    // Removed by quorum: gone again (and the evaluation cache does not keep it).
    ok(at(&instance)
        .args([
            "govern",
            "propose",
            "extension",
            "hello",
            "--remove",
            "--key",
        ])
        .arg(&a));
    ok(at(&instance)
        .args(["govern", "approve", "1", "--key"])
        .arg(&a));
    ok(at(&instance)
        .args(["govern", "approve", "1", "--key"])
        .arg(&b));
    ok(at(&instance).args(["govern", "apply", "1"]));
    unknown(&instance, "it has none");
}
