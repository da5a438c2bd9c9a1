//! guixie nodes as real processes on loopback: builders share what they built and attested,
//! a consumer accepts only what k of its n trusted builders attest, and `guixie build`
//! substitutes through the consumer node's loopback cache.
mod common;

use std::path::Path;

use common::nodes::*;
use common::*;

#[test]
fn a_consumer_substitutes_only_what_two_of_three_builders_attest() {
    let names = ["a", "b", "c"];
    let b = builders(&names, 6);
    let policy = b.dir.path().join("policy.json");
    std::fs::write(
        &policy,
        serde_json::json!({"k": 2, "builders": b.identities}).to_string(),
    )
    .unwrap();
    let nodes: Vec<NodeProc> = names
        .iter()
        .zip(&b.roots)
        .map(|(n, root)| start_node(root, &origin(n), &[]))
        .collect();
    let consumer_root = b.dir.path().join("consumer");
    let mut args = vec![
        "--http",
        "127.0.0.1:0",
        "--policy",
        policy.to_str().unwrap(),
    ];
    for n in &nodes {
        args.extend(["--peer", n.addr.as_str()]);
    }
    let consumer = start_node(&consumer_root, &origin("consumer"), &args);
    // guixie build in the consumer's store substitutes everything through the node.
    let store = || store_cmd(&consumer_root, &origin("consumer"));
    let (events_out, log) = consumer.build_through(&consumer_root, &origin("consumer"), &b.graph);
    assert_eq!(
        events(&events_out, "built"),
        0,
        "{}\nnode: {log}",
        String::from_utf8_lossy(&events_out)
    );
    assert_eq!(events(&events_out, "started"), 0);
    // The node imported each into the store it shares with the build, once the quorum
    // accepted it.
    assert_eq!(log.matches("accepted and imported").count(), 6, "{log}");
    assert_eq!(
        log.matches("\"accept\" (3 of the 3 trusted builders")
            .count(),
        6,
        "{log}"
    );
    ok(store().args(["store", "verify"]));

    // With peers and a trust policy, `guixie build` runs a node of its own: no daemon, no
    // cache URL, nothing built.
    let direct_root = b.dir.path().join("direct");
    let direct = || store_cmd(&direct_root, &origin("direct"));
    let drvs = ok_str(direct().arg("eval").arg(&b.graph));
    let mut build = direct();
    build
        .args(["--json", "build", "--trust-policy"])
        .arg(&policy);
    for n in &nodes {
        build.args(["--peer", &n.addr]);
    }
    let out = build.args(drvs.split_whitespace()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        events(&out.stderr, "built"),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(events(&out.stderr, "started"), 0);
    ok(direct().args(["store", "verify"]));
    // Every output is there: with substitutes off, nothing is left to build.
    let again = direct()
        .args(["--json", "build", "--no-substitutes"])
        .args(drvs.split_whitespace())
        .output()
        .unwrap();
    assert!(again.status.success());
    assert_eq!(events(&again.stderr, "built"), 0);
    // A peer without a policy is refused, not taken on trust.
    let e = fails(
        direct()
            .args(["build", "--peer", &nodes[0].addr])
            .arg(&b.graph),
    );
    assert!(
        String::from_utf8_lossy(&e.stderr).contains("needs a trust policy"),
        "{}",
        String::from_utf8_lossy(&e.stderr)
    );

    // A store governed by a quorum substitutes by the trust policy the quorum applied, with
    // no policy file named: before it is applied the network is refused, after it is used.
    let gov_root = b.dir.path().join("governed");
    let gov = || store_cmd(&gov_root, &origin("governed"));
    let gina = key_pair(b.dir.path(), "gina");
    let state = b.dir.path().join("gov-state.json");
    ok(gov()
        .args(["govern", "state", "--instance", "net", "--threshold", "1"])
        .args(["--version", "1", "--member", &gina.1, "-o"])
        .arg(&state));
    ok(gov()
        .args(["govern", "sign"])
        .arg(&state)
        .arg("--key")
        .arg(&gina.0));
    ok(gov().args(["govern", "init"]).arg(&state));
    ok(gov()
        .args(["govern", "propose", "trust-policy", "--policy"])
        .arg(&policy)
        .arg("--key")
        .arg(&gina.0));
    let build_via_peers = || {
        let mut build = gov();
        build.args(["--json", "build"]);
        for n in &nodes {
            build.args(["--peer", &n.addr]);
        }
        build.arg(&b.graph);
        build
    };
    let e = fails(&mut build_via_peers());
    assert!(
        String::from_utf8_lossy(&e.stderr).contains("needs a trust policy"),
        "proposed is not applied: {}",
        String::from_utf8_lossy(&e.stderr)
    );
    ok(gov().args(["govern", "approve", "0", "--key"]).arg(&gina.0));
    let applied = ok_str(gov().args(["govern", "apply", "0"]));
    assert!(applied.contains("now need 2 of 3 builders"), "{applied}");
    let out = build_via_peers().output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(events(&out.stderr, "built"), 0);
    assert_eq!(events(&out.stderr, "started"), 0);
    ok(gov().args(["store", "verify"]));
}

#[test]
fn a_witness_cosigns_the_builders_logs_and_a_consumer_requiring_it_substitutes() {
    let names = ["a", "b"];
    let b = builders(&names, 3);
    let w_file = b.dir.path().join("w.key");
    let w_key = ok_str(
        guixie()
            .args([
                "checkpoint",
                "witness-key",
                "witness.example",
                "--secret-key-file",
            ])
            .arg(&w_file),
    );
    // The builders take the witness's cosignatures; the witness follows both logs.
    let nodes: Vec<NodeProc> = names
        .iter()
        .zip(&b.roots)
        .map(|(n, root)| start_node(root, &origin(n), &["--witness", &w_key]))
        .collect();
    let plain = write_policy(b.dir.path(), "plain.json", 2, &b.identities);
    let w_root = b.dir.path().join("w");
    let mut args = vec![
        "--policy".to_owned(),
        plain.display().to_string(),
        "--witness-key".to_owned(),
        w_file.display().to_string(),
    ];
    for n in &nodes {
        args.extend(["--peer".to_owned(), n.addr.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let _witness = start_node(&w_root, &origin("w"), &args);
    // A consumer that counts a builder only under a checkpoint the witness cosigned.
    let witnessed: Vec<serde_json::Value> = b
        .identities
        .iter()
        .map(|i| {
            let mut i = i.clone();
            i["witnesses"] = serde_json::json!([w_key]);
            i["witness_threshold"] = 1.into();
            i
        })
        .collect();
    let strict = write_policy(b.dir.path(), "strict.json", 2, &witnessed);
    let witnessed_note = b.roots[0].join("var/guixie/node/witnessed.note");
    for _ in 0..100 {
        if witnessed_note.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let note = std::fs::read_to_string(&witnessed_note).expect("a's node kept a cosigned note");
    assert!(note.contains("\n\u{2014} witness.example "), "{note}");
    let consumer_root = b.dir.path().join("consumer");
    let mut args = vec![
        "--http",
        "127.0.0.1:0",
        "--policy",
        strict.to_str().unwrap(),
    ];
    for n in &nodes {
        args.extend(["--peer", n.addr.as_str()]);
    }
    let consumer = start_node(&consumer_root, &origin("consumer"), &args);
    let (events_out, log) = consumer.build_through(&consumer_root, &origin("consumer"), &b.graph);
    assert_eq!(events(&events_out, "built"), 0, "{log}");
    assert_eq!(log.matches("accepted and imported").count(), 3, "{log}");
    // The positive control: requiring a witness that never cosigned, nothing is accepted.
    let absent = ok_str(
        guixie()
            .args([
                "checkpoint",
                "witness-key",
                "absent.example",
                "--secret-key-file",
            ])
            .arg(b.dir.path().join("absent.key")),
    );
    let unwitnessed: Vec<serde_json::Value> = witnessed
        .iter()
        .map(|i| {
            let mut i = i.clone();
            i["witnesses"] = serde_json::json!([absent]);
            i
        })
        .collect();
    let stricter = write_policy(b.dir.path(), "stricter.json", 1, &unwitnessed);
    let second_root = b.dir.path().join("second");
    let mut args = vec![
        "--http",
        "127.0.0.1:0",
        "--decide-within",
        "2",
        "--policy",
        stricter.to_str().unwrap(),
    ];
    for n in &nodes {
        args.extend(["--peer", n.addr.as_str()]);
    }
    let second = start_node(&second_root, &origin("second"), &args);
    let (events_out, log) = second.build_through(&second_root, &origin("second"), &b.graph);
    assert_eq!(events(&events_out, "built"), 3, "{log}");
    assert!(!log.contains("accepted and imported"), "{log}");
}

/// The liar's log gets a signed statement that the first output it attested has another NAR.
fn attest_a_lie(root: &Path) -> String {
    attest_nar_hash(
        root,
        "sha256:0000000000000000000000000000000000000000000000000000",
    )
}

/// Appends to the log at `root` a signed statement that the first output it attested has
/// the NAR hash `nar_hash`; that output's path.
fn attest_nar_hash(root: &Path, nar_hash: &str) -> String {
    use guixie_attest::Envelope;
    let state = root.join("var/guixie");
    let key = guixie_formats::signing::SecretKey::parse(
        std::fs::read_to_string(state.join("builder.key"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let mut log = guixie_log::FileLog::open(&state.join("log")).unwrap();
    let mut st = Envelope::parse(&log.entry(0).unwrap())
        .unwrap()
        .statement()
        .unwrap();
    let out = st.predicate.outputs.values_mut().next().unwrap();
    out.nar_hash = nar_hash.into();
    let lied_about = out.path.clone();
    log.append_batch(&[Envelope::sign(&st, &key).to_json()])
        .unwrap();
    lied_about
}

#[test]
fn a_log_that_shows_two_histories_is_excluded_by_both_consumers_that_saw_them() {
    let names = ["a", "b"];
    let b = builders(&names, 3);
    // b's node and a second node of b's log (same keys, another peer id) each append a
    // different entry: two signed checkpoints of one size with different roots.
    let fork_root = b.dir.path().join("b-fork");
    ok(std::process::Command::new("cp")
        .arg("-a")
        .arg(&b.roots[1])
        .arg(&fork_root));
    std::fs::remove_file(fork_root.join("var/guixie/node/node.key")).ok();
    attest_nar_hash(
        &b.roots[1],
        "sha256:1111111111111111111111111111111111111111111111111111",
    );
    attest_nar_hash(
        &fork_root,
        "sha256:2222222222222222222222222222222222222222222222222222",
    );
    let a = start_node(&b.roots[0], &origin("a"), &[]);
    let b_node = start_node(&b.roots[1], &origin("b"), &[]);
    let fork = start_node(&fork_root, &origin("b"), &[]);
    let policy = write_policy(b.dir.path(), "policy.json", 1, &b.identities);
    let consumer = |name: &str, peers: &[&str]| {
        let mut args = vec![
            "--http".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--policy".to_owned(),
            policy.display().to_string(),
        ];
        for p in peers {
            args.extend(["--peer".to_owned(), p.to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        start_node(&b.dir.path().join(name), &origin(name), &args)
    };
    // One sees b's history, the other the fork's; they also talk to each other.
    let one = consumer("one", &[&a.addr, &b_node.addr]);
    let two = consumer("two", &[&a.addr, &fork.addr, &one.addr]);
    let out = ok_str(
        store_cmd(&b.roots[0], &origin("a"))
            .args(["build", "-q"])
            .arg(&b.graph),
    );
    let first = out.split_whitespace().next().unwrap();
    let hash_part = &Path::new(first).file_name().unwrap().to_str().unwrap()[..32];
    for c in [&one, &two] {
        http_get(c.http.as_deref().unwrap(), &format!("/{hash_part}.narinfo"));
    }
    let excluded = |c: &NodeProc| {
        std::fs::read_to_string(&c.stderr)
            .unwrap_or_default()
            .contains("log b.example/log excluded")
    };
    for _ in 0..100 {
        if excluded(&one) && excluded(&two) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for (name, c) in [("one", &one), ("two", &two)] {
        let log = std::fs::read_to_string(&c.stderr).unwrap_or_default();
        assert!(excluded(c), "{name}: {log}");
        // a's log did not fork and stays trusted.
        assert!(!log.contains("log a.example/log excluded"), "{name}: {log}");
    }
    // The evidence is kept: both signed notes, in the node's views.
    let views: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(b.dir.path().join("one/var/guixie/node/logs.json")).unwrap(),
    )
    .unwrap();
    let b_view = &views["logs"]["b.example/log"];
    assert_eq!(b_view["untrusted"], true, "{views}");
    assert_eq!(b_view["evidence"][0]["kind"], "equivocation", "{views}");
}

#[test]
fn five_nodes_a_liar_a_stopped_builder_and_nix_through_the_consumer() {
    let nix_ok = nix_available();
    let names = ["a", "b", "c", "liar"];
    let b = builders(&names, 6);
    let lied_about = attest_a_lie(&b.roots[3]);
    // The liar is not trusted; a, b and c are, two of them needed.
    let policy = write_policy(b.dir.path(), "k2.json", 2, &b.identities[..3]);
    let mut nodes: Vec<NodeProc> = names
        .iter()
        .zip(&b.roots)
        .map(|(n, root)| start_node(root, &origin(n), &[]))
        .collect();
    let consumer_root = b.dir.path().join("consumer");
    let peer_args = |nodes: &[NodeProc], policy: &Path| -> Vec<String> {
        let mut args: Vec<String> = ["--http", "127.0.0.1:0", "--decide-within", "2", "--policy"]
            .map(String::from)
            .to_vec();
        args.push(policy.display().to_string());
        for n in nodes {
            args.extend(["--peer".to_owned(), n.addr.clone()]);
        }
        args
    };
    let args = peer_args(&nodes, &policy);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let consumer = start_node(&consumer_root, &origin("consumer"), &args);
    let http = consumer.http.clone().unwrap();
    let outs: Vec<String> = {
        let drvs = ok_str(
            store_cmd(&b.roots[0], &origin("a"))
                .arg("eval")
                .arg(&b.graph),
        );
        ok_str(
            store_cmd(&b.roots[0], &origin("a"))
                .args(["build", "-q"])
                .args(drvs.split_whitespace()),
        )
        .split_whitespace()
        .map(str::to_owned)
        .collect()
    };
    assert!(outs.contains(&lied_about));

    // Real Nix substitutes every output through the consumer's cache; the NAR hashes are the
    // builders'.
    if nix_ok {
        let theirs = b.dir.path().join("nix");
        let uri = nix_store_uri(&theirs, "/nix/store");
        let nix_out = nix("nix-store")
            .args(["--store", &uri, "-r"])
            .args(&outs)
            .args(["--option", "substituters", &http])
            .args(["--option", "trusted-public-keys", &consumer.cache_key])
            .args(["--option", "max-jobs", "0"])
            .output()
            .unwrap();
        let log = std::fs::read_to_string(&consumer.stderr).unwrap_or_default();
        assert!(
            nix_out.status.success(),
            "{}\nnode: {log}",
            String::from_utf8_lossy(&nix_out.stderr)
        );
        for out in &outs {
            let ours: serde_json::Value =
                serde_json::from_slice(&ok(
                    store_cmd(&b.roots[1], &origin("b")).args(["--json", "store", "info", out])
                ))
                .unwrap();
            let nix_hash = ok_str(nix("nix-store").args(["--store", &uri, "-q", "--hash", out]));
            assert_eq!(nix_hash, ours["narHash"].as_str().unwrap(), "{out}");
        }
    }
    // guixie build in the consumer's store builds nothing: everything came through the node.
    let store = || store_cmd(&consumer_root, &origin("consumer"));
    let (events_out, log) = consumer.build_through(&consumer_root, &origin("consumer"), &b.graph);
    assert_eq!(events(&events_out, "started"), 0, "{log}");
    assert_eq!(log.matches("accepted and imported").count(), 6, "{log}");
    // The liar's other output for one derivation counted for nothing.
    assert!(
        !log.contains("sha256:0000000000000000000000000000000000000000000000000000"),
        "{log}"
    );
    ok(store().args(["store", "verify"]));

    // c stops; a consumer needing all three rejects with the reason, and builds locally.
    drop(nodes.remove(2));
    let strict = write_policy(b.dir.path(), "k3.json", 3, &b.identities[..3]);
    let second_root = b.dir.path().join("second");
    let args = peer_args(&nodes, &strict);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let second = start_node(&second_root, &origin("second"), &args);
    let (events_out, log) = second.build_through(&second_root, &origin("second"), &b.graph);
    assert_eq!(
        events(&events_out, "built"),
        6,
        "{}\nnode: {log}",
        String::from_utf8_lossy(&events_out)
    );
    assert!(
        log.contains("shortfall: 2 of the 3 trusted builders"),
        "{log}"
    );
    assert!(!log.contains("accepted and imported"), "{log}");

    // `guixie challenge` across the network, with all four builders trusted: the liar's two
    // outputs for one derivation stand beside the others' one; c, stopped, is not reached.
    let everyone = write_policy(b.dir.path(), "all.json", 2, &b.identities);
    let challenge = |targets: &[&str], json: bool| {
        let mut c = store();
        if json {
            c.arg("--json");
        }
        c.args(["challenge", "--decide-within", "2", "--policy"])
            .arg(&everyone);
        for n in &nodes {
            c.args(["--peer", &n.addr]);
        }
        c.args(targets).output().unwrap()
    };
    let other = outs.iter().find(|o| **o != lied_about).unwrap();
    let out = challenge(&[&lied_about, other], true);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let local_of = |p: &str| -> String {
        let info: serde_json::Value =
            serde_json::from_slice(&ok(store().args(["--json", "store", "info", p]))).unwrap();
        info["narHash"].as_str().unwrap().to_owned()
    };
    let hashes = |row: &serde_json::Value, name: &str| -> Vec<String> {
        let b = row["builders"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == name)
            .unwrap();
        serde_json::from_value(b["nar_hashes"].clone()).unwrap()
    };
    let (lie, fine) = (&report[0], &report[1]);
    assert_eq!(lie["path"], lied_about.as_str());
    assert_eq!(lie["verdict"], "differing", "{lie}");
    assert_eq!(lie["local"], local_of(&lied_about));
    for honest in ["a", "b"] {
        assert_eq!(hashes(lie, honest), [local_of(&lied_about)], "{lie}");
    }
    assert_eq!(hashes(lie, "liar").len(), 2, "the liar equivocates: {lie}");
    assert!(hashes(lie, "c").is_empty());
    assert_eq!(lie["builders"][2]["reached"], false, "{lie}");
    assert_eq!(lie["decision"]["equivocating"], serde_json::json!(["liar"]));
    assert_eq!(fine["verdict"], "identical", "{fine}");
    for honest in ["a", "b", "liar"] {
        assert_eq!(hashes(fine, honest), [local_of(other)], "{fine}");
    }
    // The whole store, for people: every output, one differing, with the count.
    let out = challenge(&[], false);
    let text = String::from_utf8_lossy(&out.stdout);
    let summary = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}{summary}");
    assert!(text.contains(&format!("{lied_about}: differing")), "{text}");
    assert!(
        text.contains("(equivocates)") && text.contains("(no peer keeps its log)"),
        "{text}"
    );
    assert!(summary.contains("- 1 ("), "{summary}");
    assert!(summary.contains("differing"), "{summary}");
}

/// The members' nodes gossip governance: a proposal made in alice's store and bob's vote on
/// it in his reach each other's journals through the nodes, and count there by each store's
/// own rules; a store governing another instance takes none of it.
#[test]
fn nodes_gossip_governance_documents_that_each_store_judges_itself() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let [alice, bob, other] = ["alice", "bob", "other"].map(|n| key_pair(d, n));
    let roots = ["a", "b", "o"].map(|n| d.join(n));
    let at = |i: usize| store_cmd(&roots[i], &origin(["a", "b", "o"][i]));
    let state = |instance: &str, members: &[&(std::path::PathBuf, String)], file: &str| {
        let file = d.join(file);
        let mut cmd = at(0);
        cmd.args(["govern", "state", "--instance", instance, "--threshold"])
            .arg(members.len().to_string())
            .args(["--version", "1", "-o"])
            .arg(&file);
        for m in members {
            cmd.arg("--member").arg(&m.1);
        }
        ok(&mut cmd);
        for m in members {
            ok(at(0)
                .args(["govern", "sign"])
                .arg(&file)
                .arg("--key")
                .arg(&m.0));
        }
        file
    };
    let shared = state("team", &[&alice, &bob], "team.json");
    ok(at(0).args(["govern", "init"]).arg(&shared));
    ok(at(1).args(["govern", "init"]).arg(&shared));
    let theirs = state("elsewhere", &[&other], "elsewhere.json");
    ok(at(2).args(["govern", "init"]).arg(&theirs));

    let node_a = start_node(&roots[0], &origin("a"), &[]);
    let node_b = start_node(&roots[1], &origin("b"), &["--peer", &node_a.addr]);
    let _node_o = start_node(&roots[2], &origin("o"), &["--peer", &node_b.addr]);
    let status = |i: usize| -> serde_json::Value {
        serde_json::from_slice(&ok(at(i).args(["--json", "govern", "status"]))).unwrap()
    };
    let wait_for = |i: usize, what: &str, done: &dyn Fn(&serde_json::Value) -> bool| {
        let start = std::time::Instant::now();
        loop {
            let s = status(i);
            if done(&s) {
                return s;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "{what}: {s}\nnode a: {}\nnode b: {}",
                std::fs::read_to_string(&node_a.stderr).unwrap_or_default(),
                std::fs::read_to_string(&node_b.stderr).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };

    let identity: serde_json::Value =
        serde_json::from_slice(&ok(at(0).args(["trust", "identity", "--name", "a"]))).unwrap();
    let policy = d.join("policy.json");
    std::fs::write(
        &policy,
        serde_json::json!({"k": 1, "builders": [identity]}).to_string(),
    )
    .unwrap();
    ok(at(0)
        .args(["govern", "propose", "trust-policy", "--policy"])
        .arg(&policy)
        .arg("--key")
        .arg(&alice.0));
    ok(at(0)
        .args(["govern", "approve", "0", "--key"])
        .arg(&alice.0));
    let s = wait_for(1, "alice's proposal and aye reach bob's store", &|s| {
        s["proposals"][0]["ayes"]
            .as_array()
            .is_some_and(|a| a.len() == 1)
    });
    assert_eq!(s["proposals"][0]["status"], "open", "{s}");
    // Bob votes in his own store; his aye reaches alice's, where the proposal is approved.
    ok(at(1).args(["govern", "approve", "0", "--key"]).arg(&bob.0));
    let s = wait_for(0, "bob's aye reaches alice's store", &|s| {
        s["proposals"][0]["status"] == "approved"
    });
    assert_eq!(
        s["proposals"][0]["ayes"].as_array().unwrap().len(),
        2,
        "{s}"
    );
    // Each store applies by itself; what it applied is its own act, not gossiped.
    ok(at(0).args(["govern", "apply", "0"]));
    assert!(status(0)["trustPolicy"].is_object());
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(status(1)["trustPolicy"].is_null());
    // The store of another instance was sent all of it and took nothing.
    assert_eq!(status(2)["proposals"].as_array().map_or(0, Vec::len), 0);
    let log = std::fs::read_to_string(&node_a.stderr).unwrap();
    assert!(log.contains("\"event\":\"governance\""), "{log}");
}
