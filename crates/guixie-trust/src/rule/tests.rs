use super::*;
use proptest::prelude::*;

fn vote(builder: &str, output: &str) -> Vote {
    Vote {
        builder: builder.into(),
        output: output.into(),
        proof_ok: true,
    }
}

fn case(trusted: &[&str], k: u64, votes: Vec<Vote>) -> Case {
    Case {
        trusted_builders: trusted.iter().map(|s| s.to_string()).collect(),
        k,
        attestations: votes,
    }
}

const ABC: &[&str] = &["a", "b", "c"];

#[test]
fn k_of_n_counts_the_configured_builders_not_the_respondents() {
    // A lone respondent is one of three, not 100%.
    let d = decide(&case(ABC, 2, vec![vote("a", "X")]));
    assert_eq!(d.result, Verdict::Reject);
    assert!(
        d.reason.starts_with("shortfall: 1 of the 3"),
        "{}",
        d.reason
    );
    assert_eq!(d.attesting, ["a"]);
    // 3 of 3 is reachable.
    let all = vec![vote("c", "X"), vote("a", "X"), vote("b", "X")];
    let d = decide(&case(ABC, 3, all));
    assert_eq!(d.result, Verdict::Accept);
    assert_eq!(d.output.as_deref(), Some("X"));
    assert_eq!(d.attesting, ["a", "b", "c"]);
    // A builder that repeats itself is still one vote.
    let d = decide(&case(ABC, 2, vec![vote("a", "X"), vote("a", "X")]));
    assert_eq!(d.result, Verdict::Reject);
}

#[test]
fn dissent_is_reported_and_equivocators_count_for_nothing() {
    let d = decide(&case(
        ABC,
        2,
        vec![vote("a", "X"), vote("b", "X"), vote("c", "Y")],
    ));
    assert_eq!(d.result, Verdict::Accept);
    assert_eq!(d.dissenting, ["c"]);
    // b says X and Y: it is not a vote for X any more.
    let d = decide(&case(
        ABC,
        2,
        vec![vote("a", "X"), vote("b", "X"), vote("b", "Y")],
    ));
    assert_eq!(d.result, Verdict::Reject);
    assert_eq!(d.equivocating, ["b"]);
    assert_eq!(d.attesting, ["a"]);
    assert!(
        d.reason.contains("b attested more than one output"),
        "{}",
        d.reason
    );
}

#[test]
fn ties_conflicts_sybils_and_unproven_attestations_are_rejects() {
    let d = decide(&case(
        &["a", "b", "c", "d"],
        1,
        vec![vote("a", "X"), vote("b", "Y")],
    ));
    assert_eq!(d.result, Verdict::Reject);
    assert!(d.reason.starts_with("conflict"), "{}", d.reason);
    assert_eq!(d.dissenting, ["a", "b"]);
    let d = decide(&case(
        &["a", "b", "c", "d"],
        3,
        vec![vote("a", "X"), vote("b", "Y")],
    ));
    assert!(d.reason.starts_with("tie"), "{}", d.reason);
    // A hundred builders nobody trusts.
    let mut votes: Vec<Vote> = (0..100)
        .map(|i| vote(&format!("sybil{i}"), "EVIL"))
        .collect();
    votes.push(vote("a", "X"));
    let d = decide(&case(ABC, 2, votes));
    assert_eq!(d.result, Verdict::Reject);
    assert!(
        d.reason
            .contains("100 attestation(s) from 100 builder(s) outside"),
        "{}",
        d.reason
    );
    assert_eq!(d.dissenting, Vec::<String>::new());
    // Attestations without a valid inclusion proof.
    let mut unproven = vote("b", "X");
    unproven.proof_ok = false;
    let d = decide(&case(ABC, 2, vec![vote("a", "X"), unproven]));
    assert_eq!(d.result, Verdict::Reject);
    assert!(
        d.reason.contains("without a valid inclusion proof"),
        "{}",
        d.reason
    );
}

#[test]
fn unusable_policies_are_refused() {
    assert_eq!(check_policy(&["a".into()], 0), Err(PolicyError::KZero));
    assert_eq!(
        check_policy(&["a".into(), "b".into()], 3),
        Err(PolicyError::KAboveN { k: 3, n: 2 })
    );
    assert_eq!(
        check_policy(&["a".into(), "a".into()], 1),
        Err(PolicyError::Duplicate("a".into()))
    );
    let d = decide(&case(&[], 1, vec![vote("a", "X")]));
    assert_eq!(d.result, Verdict::Reject);
    assert!(d.reason.contains("more than the 0 trusted"), "{}", d.reason);
}

#[test]
fn cases_read_as_the_cli_takes_them() {
    let text = r#"{"trusted_builders": ["a", "b"], "k": 2,
        "attestations": [{"builder": "a", "output": "X"},
                         {"builder": "b", "output": "X", "proof_ok": true}]}"#;
    let c: Case = serde_json::from_str(text).unwrap();
    let answer = serde_json::to_value(decide(&c)).unwrap();
    assert_eq!(answer["result"], "accept");
    assert_eq!(answer["output"], "X");
    assert_eq!(answer["attesting"], serde_json::json!(["a", "b"]));
    let bad = r#"{"trusted_builders": [], "k": 1, "attestations": [], "n": 3}"#;
    assert!(serde_json::from_str::<Case>(bad).is_err());
}

fn arb_case() -> impl Strategy<Value = Case> {
    let builder = prop::sample::select(vec!["a", "b", "c", "d", "e", "s1", "s2"]);
    let output = prop::sample::select(vec!["X", "Y", "Z"]);
    let votes = prop::collection::vec((builder, output, any::<bool>()), 0..16);
    (1u64..=5, votes).prop_map(|(k, votes)| Case {
        trusted_builders: ["a", "b", "c", "d", "e"].map(String::from).to_vec(),
        k,
        attestations: votes
            .into_iter()
            .map(|(b, o, p)| Vote {
                builder: b.into(),
                output: o.into(),
                proof_ok: p,
            })
            .collect(),
    })
}

proptest! {
    #[test]
    fn order_never_matters(c in arb_case(), seed in any::<u64>()) {
        let mut shuffled = c.clone();
        // A deterministic permutation from the seed.
        let len = shuffled.attestations.len();
        for i in (1..len).rev() {
            let j = (seed.wrapping_mul(i as u64 + 7) % (i as u64 + 1)) as usize;
            shuffled.attestations.swap(i, j);
        }
        shuffled.trusted_builders.reverse();
        prop_assert_eq!(decide(&c), decide(&shuffled));
    }

    #[test]
    fn an_accepted_output_has_k_proven_single_minded_trusted_builders(c in arb_case()) {
        let d = decide(&c);
        if d.result == Verdict::Accept {
            let out = d.output.clone().unwrap();
            let backers: BTreeSet<&str> = c.attestations.iter()
                .filter(|v| v.proof_ok && v.output == out && c.trusted_builders.contains(&v.builder))
                .filter(|v| c.attestations.iter().all(|w| w.builder != v.builder || !w.proof_ok || w.output == out))
                .map(|v| v.builder.as_str())
                .collect();
            prop_assert!(backers.len() as u64 >= c.k);
            prop_assert_eq!(backers.into_iter().map(String::from).collect::<Vec<_>>(), d.attesting);
        } else {
            prop_assert!(d.output.is_none());
        }
    }

    #[test]
    fn outsiders_never_change_the_decision(c in arb_case(), extra in prop::collection::vec("[xyz][0-9]", 0..20)) {
        let mut swarm = c.clone();
        swarm.attestations.extend(extra.iter().map(|b| vote(b, "EVIL")));
        let (a, b) = (decide(&c), decide(&swarm));
        prop_assert_eq!((a.result, a.output, a.attesting, a.dissenting), (b.result, b.output, b.attesting, b.dissenting));
    }
}
