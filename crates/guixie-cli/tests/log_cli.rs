//! The transparency log through the CLI, as an auditor uses it: append, checkpoint, prove,
//! verify (exit 0 valid, 1 invalid with the reason on stderr), client state, attestations.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

fn at(root: &Path) -> Command {
    let mut c = guixie();
    c.arg("--store")
        .arg(root)
        .env("GUIXIE_LOG_ORIGIN", "test.example/log");
    c
}

fn json(cmd: &mut Command) -> serde_json::Value {
    serde_json::from_slice(&ok(cmd)).unwrap()
}

#[test]
fn append_checkpoint_prove_verify() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let mut leaf_hashes = Vec::new();
    for i in 0..13 {
        let f = dir.path().join(format!("entry{i}"));
        fs::write(&f, format!("entry number {i}")).unwrap();
        let out = json(at(&root).args(["--json", "log", "append"]).arg(&f));
        assert_eq!(out["index"], i);
        leaf_hashes.push(out["leafHash"].as_str().unwrap().to_owned());
    }
    let vkey = ok_str(at(&root).args(["log", "key"]));
    assert!(vkey.starts_with("test.example/log+"), "{vkey}");
    let cp = dir.path().join("checkpoint");
    fs::write(&cp, ok(at(&root).args(["log", "checkpoint"]))).unwrap();
    let text = fs::read_to_string(&cp).unwrap();
    assert!(text.starts_with("test.example/log\n13\n"), "{text}");
    ok(guixie()
        .args(["note", "verify"])
        .arg(&cp)
        .args(["--key", &vkey]));
    ok(guixie()
        .args(["checkpoint", "verify"])
        .arg(&cp)
        .args(["--log-key", &vkey]));
    let root13 = text.lines().nth(2).unwrap().to_owned();

    for index in [0u64, 5, 12] {
        let p = json(at(&root).args(["--json", "log", "prove-inclusion", &index.to_string()]));
        assert_eq!(p["leafHash"], leaf_hashes[index as usize]);
        let proof: Vec<&str> = p["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap())
            .collect();
        // Root given in base64 (from the checkpoint), hashes in hex: both accepted.
        let verify = |leaf: &str, idx: u64, proof: &str| {
            guixie()
                .args([
                    "log",
                    "verify-inclusion",
                    "--leaf-hash",
                    leaf,
                    "--index",
                    &idx.to_string(),
                    "--size",
                    "13",
                    "--root",
                    &root13,
                    "--proof",
                    proof,
                ])
                .output()
                .unwrap()
        };
        assert!(
            verify(&leaf_hashes[index as usize], index, &proof.join(","))
                .status
                .success()
        );
        let wrong = verify(&leaf_hashes[index as usize], index + 1, &proof.join(","));
        assert_eq!(wrong.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&wrong.stderr).contains("invalid:"));
        let mut bad_proof = proof.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let flipped = if bad_proof[0].starts_with('0') {
            "1"
        } else {
            "0"
        };
        bad_proof[0].replace_range(0..1, flipped);
        assert_eq!(
            verify(&leaf_hashes[index as usize], index, &bad_proof.join(","))
                .status
                .code(),
            Some(1)
        );
    }
    let c = json(at(&root).args(["--json", "log", "prove-consistency", "5", "13"]));
    let proof: Vec<&str> = c["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    let args = |r1: &str, r2: &str| -> Vec<String> {
        [
            "log",
            "verify-consistency",
            "--size1",
            "5",
            "--size2",
            "13",
            "--root1",
            r1,
            "--root2",
            r2,
            "--proof",
            &proof.join(","),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    ok(guixie().args(args(
        c["root1"].as_str().unwrap(),
        c["root2"].as_str().unwrap(),
    )));
    let swapped = guixie()
        .args(args(
            c["root2"].as_str().unwrap(),
            c["root1"].as_str().unwrap(),
        ))
        .output()
        .unwrap();
    assert_eq!(swapped.status.code(), Some(1));
    // 64 hashes is more than any tree needs.
    let too_long = vec!["00".repeat(32); 64].join(",");
    let out = guixie()
        .args([
            "log",
            "verify-consistency",
            "--size1",
            "1",
            "--size2",
            "2",
            "--root1",
            &"00".repeat(32),
            "--root2",
            &"00".repeat(32),
            "--proof",
            &too_long,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at most 63"));
}

#[test]
fn root_of_the_rfc6962_leaves() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../guixie-log/tests/data/rfc6962_tree8.json");
    let v: serde_json::Value = serde_json::from_slice(&fs::read(fixture).unwrap()).unwrap();
    let leaves: Vec<&str> = v["leaves_hex"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("leaves");
    fs::write(&f, leaves.join("\n") + "\n").unwrap();
    assert_eq!(
        ok_str(guixie().args(["log", "root", "--leaves"]).arg(&f)),
        v["roots_by_size_hex"][8].as_str().unwrap()
    );
    fs::write(&f, "zz\n").unwrap();
    let e =
        String::from_utf8_lossy(&fails(guixie().args(["log", "root", "--leaves"]).arg(&f)).stderr)
            .into_owned();
    assert!(e.contains("line 1") && e.contains("not hex"), "{e}");
}

#[test]
fn client_state_follows_the_log_and_keeps_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let state = dir.path().join("state.json");
    let entry = dir.path().join("e");
    fs::write(&entry, "x").unwrap();
    for _ in 0..3 {
        ok(at(&root).args(["log", "append"]).arg(&entry));
    }
    let vkey = ok_str(at(&root).args(["log", "key"]));
    let cp3 = dir.path().join("cp3");
    fs::write(&cp3, ok(at(&root).args(["log", "checkpoint"]))).unwrap();
    ok(guixie()
        .args(["checkpoint", "verify"])
        .arg(&cp3)
        .args(["--log-key", &vkey, "--state"])
        .arg(&state));
    for _ in 0..4 {
        ok(at(&root).args(["log", "append"]).arg(&entry));
    }
    let cp7 = dir.path().join("cp7");
    fs::write(&cp7, ok(at(&root).args(["log", "checkpoint"]))).unwrap();
    let proof = ok_str(at(&root).args(["log", "prove-consistency", "3", "7"]))
        .lines()
        .collect::<Vec<_>>()
        .join(",");
    // Without the proof the newer checkpoint is refused; with a wrong one it is evidence.
    let no_proof = guixie()
        .args(["checkpoint", "verify"])
        .arg(&cp7)
        .args(["--log-key", &vkey, "--state"])
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(no_proof.status.code(), Some(1));
    ok(guixie()
        .args(["checkpoint", "verify"])
        .arg(&cp7)
        .args(["--log-key", &vkey, "--proof", &proof, "--state"])
        .arg(&state));
    let saved: serde_json::Value = serde_json::from_slice(&fs::read(&state).unwrap()).unwrap();
    assert_eq!(saved["logs"]["test.example/log"]["size"], 7);
    // An older checkpoint now means the log shrank: untrusted from here on.
    let out = guixie()
        .args(["checkpoint", "verify"])
        .arg(&cp3)
        .args(["--log-key", &vkey, "--state"])
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("shrank"));
    let saved: serde_json::Value = serde_json::from_slice(&fs::read(&state).unwrap()).unwrap();
    assert_eq!(saved["logs"]["test.example/log"]["untrusted"], true);
}

#[test]
fn attestations_verify_with_a_threshold_of_distinct_keys() {
    use guixie_attest::{BuildPredicate, DerivationRef, Envelope, OutputRef, Statement};
    use guixie_formats::signing::SecretKey;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        SecretKey::from_seed("builder-a", &[1u8; 32]).unwrap(),
        SecretKey::from_seed("builder-b", &[2u8; 32]).unwrap(),
    );
    let st = Statement::build(BuildPredicate {
        derivation: DerivationRef {
            path: "/gnu/store/00000000000000000000000000000000-x.drv".into(),
            hash_modulo: "00".repeat(32),
        },
        outputs: [(
            "out".to_owned(),
            OutputRef {
                path: "/gnu/store/11111111111111111111111111111111-x".into(),
                nar_hash: "sha256:1lz94v6gx3xz1mn5fxyzw9c4flh0n79d6mw138nm9iprzh6vj9lg".into(),
                nar_size: 1,
                blake3: None,
                references: None,
            },
        )]
        .into(),
        builder: a.public().to_string(),
        time: 0,
        sandbox: "full".into(),
        evidence: vec![],
    })
    .unwrap();
    let mut env = Envelope::sign(&st, &a);
    env.add_signature(&b);
    let f = dir.path().join("att.json");
    fs::write(&f, env.to_json()).unwrap();
    let shown: serde_json::Value =
        serde_json::from_slice(&ok(guixie().args(["attest", "show"]).arg(&f))).unwrap();
    assert_eq!(
        shown["predicate"]["derivation"]["path"],
        "/gnu/store/00000000000000000000000000000000-x.drv"
    );
    let (ka, kb) = (a.public().to_string(), b.public().to_string());
    ok(guixie().args(["attest", "verify"]).arg(&f).args([
        "--key",
        &ka,
        "--key",
        &kb,
        "--threshold",
        "2",
    ]));
    let out = guixie()
        .args(["attest", "verify"])
        .arg(&f)
        .args(["--key", &ka, "--key", &ka, "--threshold", "2"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "one key twice is still one signer"
    );
    fs::write(&f, "{\"payloadType\": 1}").unwrap();
    let out = guixie()
        .args(["attest", "verify"])
        .arg(&f)
        .args(["--key", &ka])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("malformed envelope"));
    // The log accepts the envelope as an entry.
    fs::write(&f, env.to_json()).unwrap();
    ok(guixie()
        .arg("--store")
        .arg(dir.path().join("store"))
        .args(["log", "append"])
        .arg(&f));
}

#[test]
fn witnesses_cosign_and_verifiers_require_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let e = dir.path().join("e");
    fs::write(&e, "entry").unwrap();
    ok(at(&root).args(["log", "append"]).arg(&e));
    let vkey = ok_str(at(&root).args(["log", "key"]));
    let cp = dir.path().join("cp");
    fs::write(&cp, ok(at(&root).args(["log", "checkpoint"]))).unwrap();
    let (w1, w2) = (dir.path().join("w1.key"), dir.path().join("w2.key"));
    let v1 = ok_str(
        guixie()
            .args([
                "checkpoint",
                "witness-key",
                "witness.one",
                "--secret-key-file",
            ])
            .arg(&w1),
    );
    let v2 = ok_str(
        guixie()
            .args([
                "checkpoint",
                "witness-key",
                "witness.two",
                "--secret-key-file",
            ])
            .arg(&w2),
    );
    let verify = |file: &Path, k: &str| {
        guixie()
            .args(["checkpoint", "verify"])
            .arg(file)
            .args([
                "--log-key",
                &vkey,
                "--witness-key",
                &v1,
                "--witness-key",
                &v2,
                "--witnesses",
                k,
            ])
            .output()
            .unwrap()
    };
    assert_eq!(
        verify(&cp, "1").status.code(),
        Some(1),
        "no cosignature yet"
    );
    let once = dir.path().join("cp1");
    fs::write(
        &once,
        ok(guixie()
            .args(["checkpoint", "cosign"])
            .arg(&cp)
            .arg("--witness-key-file")
            .arg(&w1)),
    )
    .unwrap();
    assert!(verify(&once, "1").status.success());
    let out = verify(&once, "2");
    assert!(String::from_utf8_lossy(&out.stderr).contains("only 1 of the 2 required"));
    let twice = dir.path().join("cp2");
    fs::write(
        &twice,
        ok(guixie()
            .args(["checkpoint", "cosign"])
            .arg(&once)
            .arg("--witness-key-file")
            .arg(&w2)),
    )
    .unwrap();
    assert!(verify(&twice, "2").status.success());
    // A log key is no witness key: the types differ.
    let out = guixie()
        .args(["checkpoint", "cosign"])
        .arg(&cp)
        .arg("--witness-key-file")
        .arg(root.join("var/guixie/log/log.key"))
        .output()
        .unwrap();
    assert!(!out.status.success());
}
