use std::collections::BTreeMap;

use guixie_attest::{BuildPredicate, DerivationRef, OutputRef, Statement};
use guixie_formats::signing::SecretKey;
use guixie_log::checkpoint::Checkpoint;
use guixie_log::note::{SignerKey, ALG_ED25519};
use guixie_log::verifier::ClientState;
use guixie_log::FileLog;

use super::*;

const DRV: &str = "/gnu/store/00000000000000000000000000000000-x.drv";
const OUT: &str = "/gnu/store/11111111111111111111111111111111-x";
const HASH: &str = "11111111111111111111111111111111";
const NAR: &str = "sha256:1lz94v6gx3xz1mn5fxyzw9c4flh0n79d6mw138nm9iprzh6vj9lg";

fn statement(builder: &SecretKey, drv: &str) -> Statement {
    let out = if drv == DRV {
        OUT
    } else {
        "/gnu/store/33333333333333333333333333333333-y"
    };
    Statement::build(BuildPredicate {
        derivation: DerivationRef {
            path: drv.into(),
            hash_modulo: "ab".repeat(32),
        },
        outputs: BTreeMap::from([(
            "out".to_owned(),
            OutputRef {
                path: out.into(),
                nar_hash: NAR.into(),
                nar_size: 8,
                blake3: None,
                references: None,
            },
        )]),
        builder: builder.public().to_string(),
        time: 0,
        sandbox: "full".into(),
        evidence: vec![],
    })
    .unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    log: FileLog,
    builder: Builder,
    state: ClientState,
}

/// A builder whose log holds `entries`, and a client that accepted its checkpoint.
fn fixture(entries: &[String]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut log = FileLog::open(dir.path()).unwrap();
    log.append_batch(entries).unwrap();
    let key = SecretKey::from_seed("a", &[1; 32]).unwrap();
    let log_key = SignerKey::from_seed("log.a", ALG_ED25519, &[2; 32]).unwrap();
    let note = Checkpoint {
        origin: "log.a".into(),
        size: log.size(),
        root: log.root(log.size()).unwrap(),
        extensions: vec![],
    }
    .sign(&log_key)
    .unwrap();
    let mut state = ClientState::default();
    state
        .accept(note.as_bytes(), &log_key.verifier(), &[], 0, |_, _| {
            Ok(vec![])
        })
        .unwrap();
    Fixture {
        _dir: dir,
        log,
        builder: Builder {
            name: "a".into(),
            attestation_key: key.public(),
            log_key: log_key.verifier(),
            witnesses: vec![],
            witness_threshold: 0,
        },
        state,
    }
}

/// The bundle as `/attestations/<hash>` serves it: every entry with its proof.
fn bundle(log: &FileLog) -> Bundle {
    let size = log.size();
    let hex = |h: &Hash| data_encoding::HEXLOWER.encode(h);
    Bundle {
        size,
        attestations: (0..size)
            .map(|i| LoggedEntry {
                index: i,
                entry: String::from_utf8(log.entry(i).unwrap()).unwrap(),
                proof: log
                    .inclusion_proof(i, size)
                    .unwrap()
                    .iter()
                    .map(hex)
                    .collect(),
            })
            .collect(),
    }
}

#[test]
fn a_signed_logged_proven_attestation_is_a_vote() {
    let a = SecretKey::from_seed("a", &[1; 32]).unwrap();
    let entries = vec![
        guixie_attest::Envelope::sign(
            &statement(&a, "/gnu/store/22222222222222222222222222222222-y.drv"),
            &a,
        )
        .to_json(),
        guixie_attest::Envelope::sign(&statement(&a, DRV), &a).to_json(),
        "not an envelope".to_owned(),
    ];
    let f = fixture(&entries);
    let view = f.state.logs.get("log.a");
    let (ballots, problems) = votes(&f.builder, view, &bundle(&f.log), HASH);
    let votes: Vec<Vote> = ballots.into_iter().map(|b| b.vote).collect();
    assert_eq!(
        votes,
        [Vote {
            builder: "a".into(),
            output: format!("{OUT} {NAR} 8"),
            proof_ok: true
        }]
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].index, 2);
}

#[test]
fn forged_unproven_and_unaccepted_entries_are_not_votes() {
    let a = SecretKey::from_seed("a", &[1; 32]).unwrap();
    let mallory = SecretKey::from_seed("a", &[9; 32]).unwrap();
    let honest = guixie_attest::Envelope::sign(&statement(&a, DRV), &a).to_json();
    // Claims to be a's but is signed by another key under a's name.
    let forged = guixie_attest::Envelope::sign(&statement(&a, DRV), &mallory).to_json();
    // Signed by a, but names another builder.
    let mut other_name = statement(&a, DRV);
    other_name.predicate.builder = mallory.public().to_string();
    let misnamed = guixie_attest::Envelope::sign(&other_name, &a).to_json();
    let f = fixture(&[honest.clone(), forged, misnamed, honest.clone()]);
    let view = f.state.logs.get("log.a");
    let good = bundle(&f.log);
    let (v, problems) = votes(&f.builder, view, &good, HASH);
    assert_eq!(v.len(), 2);
    assert!(v.iter().all(|b| b.vote.proof_ok));
    assert!(
        problems[0].message.contains("not signed by the builder"),
        "{problems:?}"
    );
    assert!(
        problems[1].message.contains("as its builder"),
        "{problems:?}"
    );

    // A proof with one hash changed; a proof against another tree size; an entry whose text
    // differs from what was logged; no accepted checkpoint.
    let mut bad = good.clone();
    bad.attestations.truncate(1);
    let mut flipped = bad.clone();
    flipped.attestations[0].proof[0] = "00".repeat(32);
    let mut resized = bad.clone();
    resized.size += 1;
    let mut rewritten = bad.clone();
    rewritten.attestations[0].entry = format!(" {}", honest);
    for (bundle, why) in [
        (&flipped, "inclusion proof"),
        (&resized, "tree of size 5"),
        (&rewritten, "inclusion proof"),
    ] {
        let (v, problems) = votes(&f.builder, view, bundle, HASH);
        assert_eq!(v.len(), 1);
        assert!(!v[0].vote.proof_ok);
        assert!(problems[0].message.contains(why), "{problems:?}");
    }
    let (v, _) = votes(&f.builder, None, &good, HASH);
    assert!(v.iter().all(|b| !b.vote.proof_ok));
    let mut untrusted = view.unwrap().clone();
    untrusted.untrusted = true;
    let (v, problems) = votes(&f.builder, Some(&untrusted), &good, HASH);
    assert!(v.iter().all(|b| !b.vote.proof_ok));
    assert!(problems.iter().any(|p| p.message.contains("untrusted")));
}
