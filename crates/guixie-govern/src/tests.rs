use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use ed25519_dalek::{Signer, SigningKey};

use crate::proposal::{Change, ExtensionBuild, Proposal, Rebuild, Vote};
use crate::{GovError, GovState, Instance, MemberKey, State, Status};

struct Key {
    name: &'static str,
    signing: SigningKey,
}

impl Key {
    fn new(name: &'static str, seed: u8) -> Key {
        Key {
            name,
            signing: SigningKey::from_bytes(&[seed; 32]),
        }
    }
    fn public(&self) -> String {
        MemberKey {
            name: self.name.to_string(),
            key: self.signing.verifying_key().to_bytes(),
        }
        .to_text()
    }
    fn sign(&self, env: &mut guixie_dsse::Envelope, keyid: &str) {
        let sig = self.signing.sign(&env.signed_message()).to_bytes();
        env.push_signature(keyid, sig);
    }
}

fn keys() -> Vec<Key> {
    ["a", "b", "c", "d", "e"]
        .iter()
        .zip(1u8..)
        .map(|(n, s)| Key::new(n, s))
        .collect()
}

fn doc(version: u64, threshold: u32, members: &[&Key], expires: i64) -> GovState {
    GovState {
        instance: "demo".into(),
        version,
        threshold,
        expires,
        members: members.iter().map(|k| k.public()).collect(),
    }
}

fn signed(doc: &GovState, signers: &[&Key]) -> Vec<u8> {
    let mut env = doc.to_envelope();
    for k in signers {
        k.sign(&mut env, k.name);
    }
    env.to_json().into_bytes()
}

const NOW: i64 = 1_000;
const LATER: i64 = 10_000;

fn genesis(k: &[Key]) -> State {
    State::genesis(
        &signed(&doc(1, 2, &[&k[0], &k[1], &k[2]], LATER), &[&k[0], &k[1]]),
        NOW,
    )
    .unwrap()
}

#[test]
fn genesis_needs_its_own_threshold() {
    let k = keys();
    let d = doc(1, 2, &[&k[0], &k[1], &k[2]], LATER);
    assert!(State::genesis(&signed(&d, &[&k[0], &k[1]]), NOW).is_ok());
    let err = State::genesis(&signed(&d, &[&k[0]]), NOW).unwrap_err();
    assert!(
        matches!(
            err,
            GovError::BelowThreshold {
                required: 2,
                found: 1,
                ..
            }
        ),
        "{err}"
    );
    // A non-member's signature does not count.
    let err = State::genesis(&signed(&d, &[&k[0], &k[3]]), NOW).unwrap_err();
    assert!(
        matches!(err, GovError::BelowThreshold { found: 1, .. }),
        "{err}"
    );
    let d2 = doc(2, 2, &[&k[0], &k[1], &k[2]], LATER);
    assert!(State::genesis(&signed(&d2, &[&k[0], &k[1]]), NOW).is_err());
}

/// The rotation table: version 2 has members b, c, d (2 of 3); version 1 is a, b, c (2 of 3).
#[test]
fn rotation_needs_both_quorums_and_each_key_counts_once() {
    let k = keys();
    let v1 = genesis(&k);
    let v2 = doc(2, 2, &[&k[1], &k[2], &k[3]], LATER);
    let rotate = |bytes: Vec<u8>| v1.update(&[&bytes], NOW);
    let with = |signers: &[&Key]| rotate(signed(&v2, signers));

    // Old a, b and new c, d (b and c are in both): accepted.
    assert_eq!(with(&[&k[0], &k[1], &k[3]]).unwrap().doc.version, 2);
    // Only the old keys: a and b are two of version 1, but only b is of version 2.
    let err = with(&[&k[0], &k[1]]).unwrap_err();
    assert!(
        matches!(&err, GovError::BelowThreshold { whose, found: 1, .. } if whose.contains("version 2")),
        "{err}"
    );
    // Only the new keys that are not old ones: d alone of version 1's… none.
    let v2_new = doc(2, 2, &[&k[3], &k[4], &k[2]], LATER);
    let err = rotate(signed(&v2_new, &[&k[3], &k[4]])).unwrap_err();
    assert!(
        matches!(&err, GovError::BelowThreshold { whose, found: 0, .. } if whose.contains("version 1")),
        "{err}"
    );
    // Threshold minus one of the old: b alone (with d for the new quorum).
    let err = with(&[&k[1], &k[3]]).unwrap_err();
    assert!(
        matches!(&err, GovError::BelowThreshold { found: 1, .. }),
        "{err}"
    );
    // One key signing twice under two key ids counts once.
    let mut env = v2.to_envelope();
    k[0].sign(&mut env, "a");
    k[0].sign(&mut env, "b");
    k[3].sign(&mut env, "d");
    k[3].sign(&mut env, "c");
    let err = rotate(env.to_json().into_bytes()).unwrap_err();
    assert!(
        matches!(&err, GovError::BelowThreshold { found: 1, .. }),
        "{err}"
    );
    // A skipped version, a repeated one, one going back.
    for version in [3, 1] {
        let d = doc(version, 2, &[&k[1], &k[2], &k[3]], LATER);
        let err = rotate(signed(&d, &[&k[0], &k[1], &k[2]])).unwrap_err();
        assert!(matches!(err, GovError::NotNext { trusted: 1, .. }), "{err}");
    }
    // Another instance's state.
    let mut other = v2.clone();
    other.instance = "other".into();
    let err = rotate(signed(&other, &[&k[0], &k[1], &k[2]])).unwrap_err();
    assert!(matches!(err, GovError::WrongInstance { .. }), "{err}");
}

#[test]
fn an_expired_state_is_refused_but_can_be_rotated_away_from() {
    let k = keys();
    let v1 = genesis(&k);
    let err = v1.check_fresh(LATER).unwrap_err();
    assert!(matches!(err, GovError::Expired { version: 1, .. }), "{err}");
    assert!(v1.update(&[], LATER + 1).is_err());
    // The fake clock is past version 1's expiry; version 2 lasts longer: accepted.
    let v2 = doc(2, 2, &[&k[0], &k[1], &k[2]], 3 * LATER);
    let bytes = signed(&v2, &[&k[0], &k[1]]);
    assert_eq!(v1.update(&[&bytes], 2 * LATER).unwrap().doc.version, 2);
    // A chain whose last state has expired is refused.
    let err = v1.update(&[&bytes], 3 * LATER).unwrap_err();
    assert!(matches!(err, GovError::Expired { version: 2, .. }), "{err}");
}

#[test]
fn a_weak_key_is_not_a_member() {
    // The identity point: small order, it verifies no strict signature.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let text = MemberKey {
        name: "weak".into(),
        key: identity,
    }
    .to_text();
    let err = MemberKey::parse(&text).unwrap_err();
    assert!(err.to_string().contains("weak"), "{err}");
}

#[test]
fn malformed_states_are_refused_with_what_is_wrong() {
    let k = keys();
    let mut d = doc(1, 2, &[&k[0], &k[1]], LATER);
    d.members.push(d.members[0].replacen("a:", "z:", 1));
    let err = State::genesis(&signed(&d, &[&k[0], &k[1]]), NOW).unwrap_err();
    assert!(err.to_string().contains("the same key"), "{err}");
    for threshold in [0, 3] {
        let d = doc(1, threshold, &[&k[0], &k[1]], LATER);
        let err = State::genesis(&signed(&d, &[&k[0], &k[1]]), NOW).unwrap_err();
        assert!(err.to_string().contains("threshold"), "{err}");
    }
    let mut d = doc(1, 1, &[&k[0]], LATER);
    d.instance = "../x".into();
    assert!(State::genesis(&signed(&d, &[&k[0]]), NOW).is_err());
    let mut env = doc(1, 1, &[&k[0]], LATER).to_envelope();
    env.payload_type = crate::VOTE_PAYLOAD_TYPE.into();
    k[0].sign(&mut env, "a");
    let err = State::genesis(env.to_json().as_bytes(), NOW).unwrap_err();
    assert!(matches!(err, GovError::PayloadType { .. }), "{err}");
    let big = vec![b' '; crate::MAX_STATE_BYTES + 1];
    assert!(matches!(State::parse(&big), Err(GovError::Envelope { .. })));
}

fn instance(k: &[Key]) -> Instance {
    let d = doc(1, 2, &[&k[0], &k[1], &k[2]], LATER);
    Instance::new(&signed(&d, &[&k[0], &k[1]]), "0.1.0", NOW).unwrap()
}

fn upgrade(index: u64, version: &str, downgrade: bool) -> Proposal {
    Proposal {
        instance: "demo".into(),
        index,
        governance_version: 1,
        state: String::new(),
        change: Change::Upgrade {
            version: version.into(),
            source: "sha256:source".into(),
            nar_hash: "sha256:good".into(),
            downgrade,
        },
    }
}

/// Signs `p` (naming the instance's current state unless it names one) and proposes it.
fn propose(inst: &mut Instance, p: &Proposal, by: &Key) -> Result<(u64, String), GovError> {
    let mut p = p.clone();
    if p.state.is_empty() {
        p.state = inst.state.digest();
    }
    let mut env = p.to_envelope();
    by.sign(&mut env, by.name);
    let digest = crate::sha256_hex(&env.signed_message());
    inst.propose(env.to_json().as_bytes(), NOW)
        .map(|i| (i, digest))
}

fn vote(
    inst: &mut Instance,
    index: u64,
    digest: &str,
    aye: bool,
    nar_hash: Option<&str>,
    by: &[(&Key, &str)],
) -> Result<(u64, Status), GovError> {
    let v = Vote {
        instance: "demo".into(),
        index,
        proposal: digest.into(),
        aye,
        round: next_round(),
        rebuild: nar_hash.map(|h| Rebuild {
            nar_hash: h.into(),
            attestation: "0".repeat(64),
        }),
    };
    let mut env = v.to_envelope();
    for (k, id) in by {
        k.sign(&mut env, id);
    }
    inst.vote(env.to_json().as_bytes(), NOW)
        .map(|c| (c.index, c.status))
}

/// Rounds increase from one vote to the next, as a voter's clock does.
fn next_round() -> u64 {
    static ROUND: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);
    ROUND.fetch_add(1, core::sync::atomic::Ordering::Relaxed)
}

fn vote_envelope(index: u64, digest: &str, aye: bool, round: u64, by: &[&Key]) -> Vec<u8> {
    let v = Vote {
        instance: "demo".into(),
        index,
        proposal: digest.into(),
        aye,
        round,
        rebuild: Some(Rebuild {
            nar_hash: "sha256:good".into(),
            attestation: "0".repeat(64),
        }),
    };
    let mut env = v.to_envelope();
    for k in by {
        k.sign(&mut env, k.name);
    }
    env.to_json().into_bytes()
}

#[test]
fn a_vote_replayed_after_a_switch_is_refused_and_a_vote_is_one_members() {
    let k = keys();
    let mut inst = instance(&k);
    let (i, digest) = propose(&mut inst, &upgrade(0, "0.2.0", false), &k[0]).unwrap();
    let aye = vote_envelope(i, &digest, true, 10, &[&k[0]]);
    let nay = vote_envelope(i, &digest, false, 11, &[&k[0]]);
    inst.vote(&aye, NOW).unwrap();
    inst.vote(&nay, NOW).unwrap();
    let err = inst.vote(&aye, NOW).unwrap_err();
    assert!(
        err.to_string().contains("not after its vote of round 11"),
        "{err}"
    );
    assert_eq!(inst.motions[&i].nays.len(), 1);
    // Two members on one envelope: one rebuild cannot be two members' evidence.
    let both = vote_envelope(i, &digest, true, 12, &[&k[1], &k[2]]);
    let err = inst.vote(&both, NOW).unwrap_err();
    assert!(err.to_string().contains("signed by 2 members"), "{err}");
    assert!(inst.motions[&i].ayes.is_empty());
}

#[test]
fn documents_are_kept_with_members_signatures_only_and_proposers_may_withdraw() {
    let k = keys();
    let mut inst = instance(&k);
    let mut p = upgrade(0, "0.2.0", false);
    p.state = inst.state.digest();
    let mut env = p.to_envelope();
    k[0].sign(&mut env, "a");
    k[3].sign(&mut env, "junk");
    k[0].sign(&mut env, "again");
    let i = inst.propose(env.to_json().as_bytes(), NOW).unwrap();
    assert_eq!(inst.proposals[&i].envelope.signatures.len(), 1);
    let digest = inst.proposals[&i].digest.clone();
    let mut v = vote_envelope(i, &digest, false, 1, &[&k[1]]);
    let mut venv = guixie_dsse::Envelope::parse(&v, 1 << 16).unwrap();
    k[4].sign(&mut venv, "junk");
    v = venv.to_json().into_bytes();
    assert_eq!(inst.vote(&v, NOW).unwrap().envelope.signatures.len(), 1);

    let withdrawal = |by: &Key| {
        let mut env = crate::proposal::Withdrawal {
            instance: "demo".into(),
            index: i,
            proposal: digest.clone(),
        }
        .to_envelope();
        by.sign(&mut env, by.name);
        env.to_json().into_bytes()
    };
    let err = inst.withdraw(&withdrawal(&k[1]), NOW).unwrap_err();
    assert!(
        err.to_string().contains("only by a member who proposed it"),
        "{err}"
    );
    let (index, kept) = inst.withdraw(&withdrawal(&k[0]), NOW).unwrap();
    assert_eq!((index, kept.signatures.len()), (i, 1));
    assert_eq!(inst.motions[&i].status, Status::Withdrawn);
    assert!(vote(&mut inst, i, &digest, false, None, &[(&k[2], "c")]).is_err());
    assert!(inst.withdraw(&withdrawal(&k[0]), NOW).is_err());
}

/// A proposal to add extension `name` whose output has `nar_hash`.
fn add_extension(index: u64, name: &str, nar_hash: &str) -> Proposal {
    Proposal {
        instance: "demo".into(),
        index,
        governance_version: 1,
        state: String::new(),
        change: Change::Extension {
            name: name.into(),
            add: Some(ExtensionBuild {
                source: "sha256:s".into(),
                nar_hash: nar_hash.into(),
            }),
        },
    }
}

#[test]
fn applying_a_change_outdates_other_approvals_of_the_same_thing() {
    let k = keys();
    let mut inst = instance(&k);
    let add = |index, nar: &str| add_extension(index, "hello", nar);
    let (v1, d1) = propose(&mut inst, &add(0, "sha256:v1"), &k[0]).unwrap();
    let (v2, d2) = propose(&mut inst, &add(1, "sha256:v2"), &k[0]).unwrap();
    for (i, d, nar) in [(v1, &d1, "sha256:v1"), (v2, &d2, "sha256:v2")] {
        vote(&mut inst, i, d, true, Some(nar), &[(&k[0], "a")]).unwrap();
        vote(&mut inst, i, d, true, Some(nar), &[(&k[1], "b")]).unwrap();
    }
    inst.apply(v2, NOW).unwrap();
    // The older build of the same extension cannot be applied over the newer one.
    assert_eq!(inst.motions[&v1].status, Status::Outdated);
    assert!(inst.apply(v1, NOW).is_err());
    assert_eq!(inst.extensions["hello"].nar_hash, "sha256:v2");
}

#[test]
fn withdrawing_does_not_let_a_member_grow_the_journal_without_bound() {
    let k = keys();
    let mut inst = instance(&k);
    for i in 0..crate::MAX_UNAPPLIED_PROPOSALS_PER_MEMBER as u64 {
        let (index, digest) = propose(&mut inst, &upgrade(i, "0.2.0", false), &k[0]).unwrap();
        let mut env = crate::proposal::Withdrawal {
            instance: "demo".into(),
            index,
            proposal: digest,
        }
        .to_envelope();
        k[0].sign(&mut env, "a");
        inst.withdraw(env.to_json().as_bytes(), NOW).unwrap();
    }
    let n = crate::MAX_UNAPPLIED_PROPOSALS_PER_MEMBER as u64;
    let err = propose(&mut inst, &upgrade(n, "0.2.0", false), &k[0]).unwrap_err();
    assert!(err.to_string().contains("were not applied"), "{err}");
    propose(&mut inst, &upgrade(n, "0.2.0", false), &k[1]).unwrap();
}

#[test]
fn approvals_do_not_outlive_their_membership_or_the_running_version() {
    let k = keys();
    let mut inst = instance(&k);
    let good = Some("sha256:good");
    let approve = |inst: &mut Instance, i: u64, d: &str| {
        vote(inst, i, d, true, good, &[(&k[0], "a")]).unwrap();
        vote(inst, i, d, true, good, &[(&k[1], "b")]).unwrap();
    };
    let (p2, d2) = propose(&mut inst, &upgrade(0, "0.2.0", false), &k[0]).unwrap();
    let (p3, d3) = propose(&mut inst, &upgrade(1, "0.3.0", false), &k[0]).unwrap();
    approve(&mut inst, p2, &d2);
    approve(&mut inst, p3, &d3);
    inst.apply(p3, NOW).unwrap();
    // 0.2.0 was approved as an upgrade; after 0.3.0 it would be a downgrade nobody approved:
    // applying 0.3.0 outdated it.
    let err = inst.apply(p2, NOW).unwrap_err();
    assert!(err.to_string().contains("is outdated"), "{err}");

    // An upgrade approved by the old members is outdated by a new membership.
    let (p4, d4) = propose(&mut inst, &upgrade(2, "0.4.0", false), &k[0]).unwrap();
    approve(&mut inst, p4, &d4);
    let v2 = doc(2, 2, &[&k[1], &k[2], &k[3]], LATER);
    let v2 = signed(&v2, &[&k[1], &k[2]]);
    assert_eq!(inst.rotate(&[&v2], NOW).unwrap(), 2);
    assert_eq!(inst.motions[&p4].status, Status::Outdated);
    assert!(inst.apply(p4, NOW).is_err());
}

#[test]
fn an_expired_instance_recovers_only_by_a_state_both_quorums_signed() {
    let k = keys();
    let mut inst = instance(&k);
    let mut p = upgrade(0, "0.2.0", false);
    p.state = inst.state.digest();
    let mut env = p.to_envelope();
    k[0].sign(&mut env, "a");
    assert!(matches!(
        inst.propose(env.to_json().as_bytes(), LATER).unwrap_err(),
        GovError::Expired { .. }
    ));
    // A membership proposal whose state is already expired is refused too.
    let stale = signed(&doc(2, 2, &[&k[0], &k[1], &k[2]], NOW), &[&k[0], &k[1]]);
    let membership = Proposal {
        change: Change::Membership {
            state: String::from_utf8(stale.clone()).unwrap(),
        },
        ..p.clone()
    };
    let err = propose(&mut inst, &membership, &k[0]).unwrap_err();
    assert!(matches!(err, GovError::Expired { version: 2, .. }), "{err}");
    // Version 2, fresh, signed by two of version 1 (and of itself): the instance lives again.
    let fresh = signed(
        &doc(2, 2, &[&k[0], &k[1], &k[2]], 3 * LATER),
        &[&k[0], &k[1]],
    );
    assert!(inst.rotate(&[&stale], LATER).is_err());
    let one = signed(&doc(2, 2, &[&k[0], &k[1], &k[2]], 3 * LATER), &[&k[0]]);
    assert!(matches!(
        inst.rotate(&[&one], LATER),
        Err(GovError::BelowThreshold { .. })
    ));
    assert_eq!(inst.rotate(&[&fresh], LATER).unwrap(), 2);
    let mut p = upgrade(0, "0.2.0", false);
    p.governance_version = 2;
    p.state = inst.state.digest();
    let mut env = p.to_envelope();
    k[0].sign(&mut env, "a");
    inst.propose(env.to_json().as_bytes(), LATER).unwrap();
}

#[test]
fn proposals_name_their_state_and_members_cannot_flood() {
    let k = keys();
    let mut inst = instance(&k);
    let mut p = upgrade(0, "0.2.0", false);
    p.state = "0".repeat(64);
    let err = propose(&mut inst, &p, &k[0]).unwrap_err();
    assert!(err.to_string().contains("names governance state"), "{err}");
    for i in 0..crate::MAX_OPEN_PROPOSALS_PER_MEMBER as u64 {
        propose(&mut inst, &upgrade(i, "0.2.0", false), &k[0]).unwrap();
    }
    let n = crate::MAX_OPEN_PROPOSALS_PER_MEMBER as u64;
    let err = propose(&mut inst, &upgrade(n, "0.2.0", false), &k[0]).unwrap_err();
    assert!(err.to_string().contains("undecided proposals"), "{err}");
    propose(&mut inst, &upgrade(n, "0.2.0", false), &k[1]).unwrap();
}

#[test]
fn votes_follow_pallet_collective() {
    let k = keys();
    let mut inst = instance(&k);
    let (i, digest) = propose(&mut inst, &upgrade(0, "0.2.0", false), &k[0]).unwrap();
    let good = Some("sha256:good");
    // Nay then switching to aye is allowed; repeating a vote is not.
    assert_eq!(
        vote(&mut inst, i, &digest, false, None, &[(&k[0], "a")])
            .unwrap()
            .1,
        Status::Open
    );
    let err = vote(&mut inst, i, &digest, false, None, &[(&k[0], "a")]).unwrap_err();
    assert!(err.to_string().contains("already voted nay"), "{err}");
    assert_eq!(
        vote(&mut inst, i, &digest, true, good, &[(&k[0], "a")])
            .unwrap()
            .1,
        Status::Open
    );
    assert!(
        inst.motions[&i].nays.is_empty(),
        "the switched vote left the nays"
    );
    let err = vote(&mut inst, i, &digest, true, good, &[(&k[0], "a")]).unwrap_err();
    assert!(err.to_string().contains("already voted aye"), "{err}");
    // The same key claiming another member's id is still that key.
    let err = vote(&mut inst, i, &digest, true, good, &[(&k[0], "b")]).unwrap_err();
    assert!(err.to_string().contains("a already voted aye"), "{err}");
    // A non-member, a wrong index, a wrong digest.
    let err = vote(&mut inst, i, &digest, true, good, &[(&k[3], "d")]).unwrap_err();
    assert!(err.to_string().contains("not signed by a member"), "{err}");
    let err = vote(&mut inst, 7, &digest, true, good, &[(&k[1], "b")]).unwrap_err();
    assert!(err.to_string().contains("no proposal 7"), "{err}");
    let err = vote(&mut inst, i, &"0".repeat(64), true, good, &[(&k[1], "b")]).unwrap_err();
    assert!(err.to_string().contains("another proposal"), "{err}");
    // An aye without a rebuild, or with a rebuild that differs, is not counted.
    let err = vote(&mut inst, i, &digest, true, None, &[(&k[1], "b")]).unwrap_err();
    assert!(
        err.to_string().contains("must carry the voter's rebuild"),
        "{err}"
    );
    let err = vote(
        &mut inst,
        i,
        &digest,
        true,
        Some("sha256:evil"),
        &[(&k[1], "b")],
    )
    .unwrap_err();
    assert!(err.to_string().contains("sha256:evil"), "{err}");
    assert_eq!(inst.motions[&i].ayes.len(), 1);
    // Not approved yet: applying is refused.
    assert!(inst
        .apply(i, NOW)
        .unwrap_err()
        .to_string()
        .contains("open (1 aye"));
    // The second aye reaches the threshold.
    assert_eq!(
        vote(&mut inst, i, &digest, true, good, &[(&k[1], "b")])
            .unwrap()
            .1,
        Status::Approved
    );
    let err = vote(&mut inst, i, &digest, false, None, &[(&k[2], "c")]).unwrap_err();
    assert!(err.to_string().contains("approved: no more votes"), "{err}");
    let effect = inst.apply(i, NOW).unwrap();
    assert!(matches!(effect, crate::Effect::Upgrade { ref version, .. } if version == "0.2.0"));
    assert_eq!(inst.version, "0.2.0");
    assert!(inst.apply(i, NOW).is_err(), "applied once");

    // Disapproved as soon as two nays make two ayes unreachable.
    let (j, digest) = propose(&mut inst, &upgrade(1, "0.3.0", false), &k[1]).unwrap();
    assert_eq!(
        vote(&mut inst, j, &digest, false, None, &[(&k[1], "b")])
            .unwrap()
            .1,
        Status::Open
    );
    assert_eq!(
        vote(&mut inst, j, &digest, false, None, &[(&k[2], "c")])
            .unwrap()
            .1,
        Status::Disapproved
    );
}

#[test]
fn proposals_are_not_replayed_and_downgrades_must_say_so() {
    let k = keys();
    let mut inst = instance(&k);
    let p0 = upgrade(0, "0.2.0", false);
    propose(&mut inst, &p0, &k[0]).unwrap();
    let err = propose(&mut inst, &p0, &k[0]).unwrap_err();
    assert!(err.to_string().contains("already made"), "{err}");
    let err = propose(&mut inst, &upgrade(5, "0.2.0", false), &k[0]).unwrap_err();
    assert!(err.to_string().contains("skips ahead"), "{err}");
    let err = propose(&mut inst, &upgrade(1, "0.0.9", false), &k[0]).unwrap_err();
    assert!(
        err.to_string().contains("older than the running 0.1.0"),
        "{err}"
    );
    let err = propose(&mut inst, &upgrade(1, "0.1", false), &k[0]).unwrap_err();
    assert!(err.to_string().contains("is the running one"), "{err}");
    let err = propose(&mut inst, &upgrade(1, "0.2.0-rc1", false), &k[0]).unwrap_err();
    assert!(err.to_string().contains("dotted numbers"), "{err}");
    propose(&mut inst, &upgrade(1, "0.0.9", true), &k[0]).unwrap();
    let err = propose(&mut inst, &upgrade(2, "0.3.0", false), &k[3]).unwrap_err();
    assert!(err.to_string().contains("not signed by a member"), "{err}");
    let mut other = upgrade(2, "0.3.0", false);
    other.instance = "other".into();
    assert!(matches!(
        propose(&mut inst, &other, &k[0]).unwrap_err(),
        GovError::WrongInstance { .. }
    ));
    // Under an expired state nothing is proposed.
    let mut late = upgrade(2, "0.3.0", false);
    late.state = inst.state.digest();
    let mut env = late.to_envelope();
    k[0].sign(&mut env, "a");
    assert!(matches!(
        inst.propose(env.to_json().as_bytes(), LATER).unwrap_err(),
        GovError::Expired { .. }
    ));
}

#[test]
fn membership_changes_by_proposal_and_outdate_open_votes() {
    let k = keys();
    let mut inst = instance(&k);
    let (open, _) = propose(&mut inst, &upgrade(0, "0.2.0", false), &k[0]).unwrap();
    // Version 2 adds d; its state carries the new quorum's signatures (c and d).
    let v2 = doc(2, 2, &[&k[0], &k[1], &k[2], &k[3]], LATER);
    let membership = |index, signers: &[&Key]| Proposal {
        instance: "demo".into(),
        index,
        governance_version: 1,
        state: String::new(),
        change: Change::Membership {
            state: String::from_utf8(signed(&v2, signers)).unwrap(),
        },
    };
    let err = propose(&mut inst, &membership(1, &[&k[3]]), &k[0]).unwrap_err();
    assert!(err.to_string().contains("version 2's members"), "{err}");
    let (i, digest) = propose(&mut inst, &membership(1, &[&k[2], &k[3]]), &k[0]).unwrap();
    vote(&mut inst, i, &digest, true, None, &[(&k[0], "a")]).unwrap();
    assert_eq!(
        vote(&mut inst, i, &digest, true, None, &[(&k[1], "b")])
            .unwrap()
            .1,
        Status::Approved
    );
    assert_eq!(
        inst.apply(i, NOW).unwrap(),
        crate::Effect::Membership { version: 2 }
    );
    assert_eq!(inst.state.members.len(), 4);
    assert_eq!(inst.motions[&open].status, Status::Outdated);
    // d is a member now; proposals under version 1 are not accepted any more.
    let mut p = upgrade(2, "0.2.0", false);
    assert!(propose(&mut inst, &p, &k[3])
        .unwrap_err()
        .to_string()
        .contains("governance version 1"));
    p.governance_version = 2;
    propose(&mut inst, &p, &k[3]).unwrap();
}

#[test]
fn extensions_and_trust_policy_by_quorum() {
    let k = keys();
    let mut inst = instance(&k);
    let add = add_extension(0, "hello", "sha256:n");
    let remove = |index| Proposal {
        index,
        change: Change::Extension {
            name: "hello".into(),
            add: None,
        },
        ..add.clone()
    };
    assert!(propose(&mut inst, &remove(0), &k[0])
        .unwrap_err()
        .to_string()
        .contains("not installed"));
    let (i, d) = propose(&mut inst, &add, &k[0]).unwrap();
    vote(&mut inst, i, &d, true, Some("sha256:n"), &[(&k[0], "a")]).unwrap();
    assert!(inst.extensions.is_empty(), "one vote is not a quorum");
    vote(&mut inst, i, &d, true, Some("sha256:n"), &[(&k[2], "c")]).unwrap();
    inst.apply(i, NOW).unwrap();
    assert!(inst.extensions.contains_key("hello"));
    let (j, d) = propose(&mut inst, &remove(1), &k[1]).unwrap();
    vote(&mut inst, j, &d, true, None, &[(&k[0], "a")]).unwrap();
    vote(&mut inst, j, &d, true, None, &[(&k[1], "b")]).unwrap();
    inst.apply(j, NOW).unwrap();
    assert!(inst.extensions.is_empty());

    let builder = |name: &str, key: String| crate::PolicyBuilder {
        name: name.into(),
        attestation_key: key,
        log_key: alloc::format!("{name}.example/log+01234567+AQ"),
        witnesses: vec![],
        witness_threshold: 0,
    };
    let policy = |k_: u32, builders: Vec<crate::PolicyBuilder>| Proposal {
        index: 2,
        change: Change::TrustPolicy(crate::TrustPolicy { k: k_, builders }),
        ..add.clone()
    };
    let refused = |inst: &mut Instance, p: Proposal, why: &str| {
        let e = propose(inst, &p, &k[0]).unwrap_err().to_string();
        assert!(e.contains(why), "{e}");
    };
    // One signer under two names would count twice.
    let same_key = vec![
        builder("d", k[3].public()),
        builder("x", k[3].public().replacen("d:", "x:", 1)),
    ];
    refused(&mut inst, policy(1, same_key), "another builder's too");
    let mut same_log = builder("e", k[4].public());
    same_log.log_key = "d.example/log+89abcdef+AQ".into();
    refused(
        &mut inst,
        policy(1, vec![builder("d", k[3].public()), same_log]),
        "origin \"d.example/log\" is another builder's too",
    );
    let mut witnessed = builder("d", k[3].public());
    witnessed.witness_threshold = 1;
    refused(
        &mut inst,
        policy(1, vec![witnessed]),
        "witness_threshold 1 is more than its 0 witnesses",
    );
    refused(
        &mut inst,
        policy(2, vec![builder("d", k[3].public())]),
        "k = 2 of 1 builders",
    );
    refused(&mut inst, policy(0, vec![]), "0 builders");
    let good = policy(
        1,
        vec![builder("d", k[3].public()), builder("e", k[4].public())],
    );
    let (i, d) = propose(&mut inst, &good, &k[0]).unwrap();
    vote(&mut inst, i, &d, true, None, &[(&k[0], "a")]).unwrap();
    vote(&mut inst, i, &d, true, None, &[(&k[1], "b")]).unwrap();
    inst.apply(i, NOW).unwrap();
    let Change::TrustPolicy(expected) = good.change else {
        unreachable!()
    };
    assert_eq!(inst.trust_policy, Some(expected));
}

#[test]
fn versions_compare_by_component() {
    use core::cmp::Ordering::*;
    assert_eq!(crate::compare_versions("1.10", "1.9"), Greater);
    assert_eq!(crate::compare_versions("0.1.0", "0.1.0"), Equal);
    assert_eq!(crate::compare_versions("0.1", "0.1.1"), Less);
    assert_eq!(crate::compare_versions("1.0", "1.0.0"), Equal);
    assert!(crate::check_version("v1").is_err() && crate::check_version("1..2").is_err());
}

proptest::proptest! {
    #[test]
    fn hostile_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        let _ = State::parse(&bytes);
        let _ = crate::proposal::SignedProposal::parse(&bytes);
        let _ = crate::proposal::SignedVote::parse(&bytes);
        let k = keys();
        let mut inst = instance(&k);
        let _ = inst.propose(&bytes, NOW);
        let _ = inst.vote(&bytes, NOW);
    }
}
