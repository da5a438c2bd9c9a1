//! A consumer node fetches a 1 GiB NAR (a sparse file's) while peers on loopback lie to it in
//! every way the protocol allows: a flipped byte, truncated and padded answers, an answer
//! past the message cap, a wrong size, and a Sybil swarm that poses as the trusted builder's
//! log with forged checkpoints and serves junk. Judged from outside: what the consumer's node
//! says it dropped and why, and what its store holds.
mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use common::nodes::*;
use common::*;
use guixie_content::Outboard;
use guixie_log::checkpoint::Checkpoint;
use guixie_log::note::{SignerKey, ALG_ED25519};
use guixie_log::verifier::ClientState;
use guixie_node::message::Response;
use guixie_node::node::Config;
use guixie_node::{Local, Node, Policy};
use guixie_trust::votes::Bundle;

const GIB: u64 = 1 << 30;

/// Ranges a liar served.
type Served = Arc<Mutex<Vec<(u64, u64)>>>;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Lie {
    /// The last byte of every range it serves is flipped.
    Flip,
    /// Half of every answer.
    Truncate,
    /// Every answer with junk after it.
    Pad,
    /// Answers of 5 MiB, past the 4 MiB a response may have.
    Oversize,
    /// Says the NAR is a byte longer.
    WrongSize,
    /// Poses as the trusted builder's log (a forged checkpoint) and serves junk.
    Sybil,
}

struct Liar {
    lie: Lie,
    nar: Arc<(std::fs::File, Outboard)>,
    /// The trusted log it poses as, and the checkpoint it forged for it.
    forged: Option<(String, String)>,
    served: Served,
}

impl Local for Liar {
    fn own_logs(&self) -> Vec<String> {
        self.forged
            .iter()
            .map(|(origin, _)| origin.clone())
            .collect()
    }
    fn checkpoints(&self) -> Vec<String> {
        self.forged.iter().map(|(_, note)| note.clone()).collect()
    }
    fn attestations(&self, _: &str, _: Option<u64>, _: bool) -> Result<Response, String> {
        let (_, note) = self.forged.as_ref().ok_or("no log here")?;
        Ok(Response::Attestations {
            checkpoint: note.clone(),
            consistency: vec![],
            bundle: Bundle {
                size: 1,
                attestations: vec![],
            },
        })
    }
    fn have(&self, root: &[u8; 32]) -> Option<u64> {
        let size = self.nar.1.blob().size;
        (*root == self.nar.1.blob().root).then_some(match self.lie {
            Lie::WrongSize => size + 1,
            _ => size,
        })
    }
    fn range(&self, _: &[u8; 32], start: u64, end: u64) -> Result<Vec<u8>, String> {
        self.served.lock().unwrap().push((start, end));
        let (file, ob) = &*self.nar;
        let honest = || ob.encode(file, start, end).map_err(|e| e.to_string());
        Ok(match self.lie {
            Lie::Flip => {
                let mut enc = honest()?;
                *enc.last_mut().unwrap() ^= 1;
                enc
            }
            Lie::Truncate => {
                let mut enc = honest()?;
                enc.truncate(enc.len() / 2);
                enc
            }
            Lie::Pad => {
                let mut enc = honest()?;
                enc.extend([0x55; 1000]);
                enc
            }
            Lie::Oversize => vec![0; 5 << 20],
            Lie::WrongSize => honest()?,
            Lie::Sybil => vec![0x55; (end - start) as usize + 64],
        })
    }
}

/// Starts the liars in a runtime of their own; their addresses, and the ranges the flipper
/// served.
fn start_liars(
    rt: &tokio::runtime::Runtime,
    nar: Arc<(std::fs::File, Outboard)>,
    trusted_origin: &str,
    sybils: usize,
) -> (Vec<String>, Served) {
    let mut lies = vec![
        Lie::Flip,
        Lie::Truncate,
        Lie::Pad,
        Lie::Oversize,
        Lie::WrongSize,
    ];
    lies.extend(std::iter::repeat_n(Lie::Sybil, sybils));
    let flipped = Arc::new(Mutex::new(Vec::new()));
    let mut addrs = Vec::new();
    for (i, lie) in lies.into_iter().enumerate() {
        let forged = (lie == Lie::Sybil).then(|| {
            // Signed with a key of the log's name that is not the log's.
            let key = SignerKey::from_seed(trusted_origin, ALG_ED25519, &[i as u8; 32]).unwrap();
            let note = Checkpoint {
                origin: trusted_origin.to_owned(),
                size: 1 + i as u64,
                root: [i as u8; 32],
                extensions: vec![],
            }
            .sign(&key)
            .unwrap();
            (trusted_origin.to_owned(), note)
        });
        let served = if lie == Lie::Flip {
            flipped.clone()
        } else {
            Arc::new(Mutex::new(Vec::new()))
        };
        let local = Liar {
            lie,
            nar: nar.clone(),
            forged,
            served,
        };
        let node = Node::new(
            Config::new(Policy {
                k: 1,
                builders: vec![],
            }),
            local,
            ClientState::default(),
        );
        let (tx, rx) = tokio::sync::oneshot::channel();
        rt.spawn(guixie_p2p::transport::serve(
            [i as u8 + 1; 32],
            "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
            node,
            Arc::new(guixie_env::SystemClock),
            tx,
        ));
        addrs.push(rt.block_on(rx).unwrap().to_string());
    }
    (addrs, flipped)
}

/// The first line of the node's log about the fetch: `fetched: N bytes from P, Q dropped (…)`.
fn fetch_report(log: &str) -> &str {
    log.lines()
        .find(|l| l.contains(": fetched: "))
        .unwrap_or_else(|| panic!("no fetch in: {log}"))
}

#[test]
fn liars_of_every_kind_are_dropped_and_only_verified_bytes_reach_the_store() {
    let dir = tempfile::tempdir().unwrap();
    // An honest builder: the 1 GiB output is a sparse file of zeros.
    let big = dir.path().join("big.scm");
    std::fs::write(
        &big,
        format!(
            "(derivation \"big\" \"/bin/sh\" '(\"-c\" \"dd if=/dev/zero of=$out bs=1 count=0 \
             seek={GIB} 2>/dev/null\"))\n"
        ),
    )
    .unwrap();
    let a_root = dir.path().join("a");
    let a_origin = origin("a");
    let out = ok_str(
        store_cmd(&a_root, &a_origin)
            .args(["build", "-q"])
            .arg(&big),
    );
    let identity: serde_json::Value = serde_json::from_slice(&ok(
        store_cmd(&a_root, &a_origin).args(["trust", "identity", "--name", "a"])
    ))
    .unwrap();
    let a = start_node(&a_root, &a_origin, &[]);

    // The liars hold the same NAR, to lie about it convincingly.
    let nar_file = dir.path().join("big.nar");
    let status = store_cmd(&a_root, &a_origin)
        .args(["nar", "dump"])
        .arg(a_root.join(out.trim_start_matches('/')))
        .stdout(std::fs::File::create(&nar_file).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    let size = std::fs::metadata(&nar_file).unwrap().len();
    assert!(size > GIB);
    let ob = Outboard::compute(std::fs::File::open(&nar_file).unwrap(), size).unwrap();
    let nar = Arc::new((std::fs::File::open(&nar_file).unwrap(), ob));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (liars, flipped) = start_liars(&rt, nar, &a_origin, 8);

    // The consumer trusts a alone (k = 1) and is connected to everyone.
    let policy = write_policy(dir.path(), "policy.json", 1, &[identity]);
    let consumer_root = dir.path().join("consumer");
    let mut args = vec![
        "--http".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--wait".to_owned(),
        "300".to_owned(),
        "--policy".to_owned(),
        policy.display().to_string(),
        "--peer".to_owned(),
        a.addr.clone(),
    ];
    for l in &liars {
        args.extend(["--peer".to_owned(), l.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let consumer = start_node(&consumer_root, &origin("consumer"), &args);
    // Give the liars time to connect and gossip their forged checkpoints first.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let hash_part = Path::new(&out).file_name().unwrap().to_str().unwrap()[..32].to_owned();
    let answer = http_get(
        consumer.http.as_deref().unwrap(),
        &format!("/{hash_part}.narinfo"),
    );
    let log = std::fs::read_to_string(&consumer.stderr).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}\nnode: {log}");
    let report = fetch_report(&log);

    // Each liar was dropped, for its own lie; only a contributed bytes.
    let peer_ids: Vec<&str> = liars
        .iter()
        .map(|l| l.rsplit('/').next().unwrap())
        .collect();
    // Reasons may hold commas; peer ids do not appear in them.
    let dropped = |id: &str| -> Option<String> {
        let marker = format!("{id} dropped (");
        let rest = &report[report.find(&marker)? + marker.len()..];
        Some(rest.split(", 12D3KooW").next().unwrap().to_owned())
    };
    let a_id = a.addr.rsplit('/').next().unwrap();
    assert!(
        report.contains(&format!("bytes from {a_id}")),
        "a served: {report}"
    );
    let flip = dropped(peer_ids[0]).unwrap_or_else(|| panic!("flipper kept: {report}"));
    assert!(flip.contains("does not match the root"), "{flip}");
    // Where the corruption was caught: within 32 KiB of a byte the flipper flipped.
    let at: u64 = flip
        .split("at byte ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no offset in {flip}"));
    let served = flipped.lock().unwrap().clone();
    assert!(
        served
            .iter()
            .any(|(_, end)| (end - 1).abs_diff(at) <= 32 << 10),
        "caught at {at}; flipped the last byte of {served:?}"
    );
    let truncated = dropped(peer_ids[1]).unwrap_or_else(|| panic!("truncator kept: {report}"));
    assert!(truncated.contains("ends before"), "{truncated}");
    let padded = dropped(peer_ids[2]).unwrap_or_else(|| panic!("padder kept: {report}"));
    assert!(
        padded.contains("past the end") || padded.contains("more than the"),
        "{padded}"
    );
    let oversize = dropped(peer_ids[3]).unwrap_or_else(|| panic!("oversize kept: {report}"));
    assert!(oversize.contains("more than the"), "{oversize}");
    // A peer that has it with another size is never asked for a byte.
    assert!(!report.contains(peer_ids[4]), "{report}");
    for (i, id) in peer_ids[5..].iter().enumerate() {
        let d = dropped(id).unwrap_or_else(|| panic!("sybil {i} kept: {report}"));
        assert!(d.contains("does not match the root"), "{d}");
    }
    // The Sybils' forged checkpoints neither convicted a's log nor counted.
    assert!(!log.contains("excluded"), "{log}");
    assert!(
        log.contains("\"accept\" (1 of the 1 trusted builders"),
        "{log}"
    );

    // What the store holds is a's NAR, whole; nothing else reached it.
    let store = || store_cmd(&consumer_root, &origin("consumer"));
    ok(store().args(["store", "verify"]));
    let theirs: serde_json::Value = serde_json::from_slice(&ok(
        store_cmd(&a_root, &a_origin).args(["--json", "store", "info", &out])
    ))
    .unwrap();
    let ours: serde_json::Value =
        serde_json::from_slice(&ok(store().args(["--json", "store", "info", &out]))).unwrap();
    assert_eq!(ours["narHash"], theirs["narHash"]);
    let incoming = consumer_root.join("var/guixie/node/incoming");
    assert_eq!(
        std::fs::read_dir(&incoming).unwrap().count(),
        0,
        "a download was left behind"
    );
}
