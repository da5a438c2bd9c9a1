//! Nodes on an in-memory network: every message goes through the wire encoding, and each
//! node's log is a real file log.

use std::collections::BTreeMap;

use guixie_attest::{BuildPredicate, DerivationRef, Envelope, OutputRef, Statement};
use guixie_content::Outboard;
use guixie_formats::signing::SecretKey;
use guixie_log::checkpoint::Checkpoint;
use guixie_log::note::{SignerKey, ALG_ED25519};
use guixie_log::verifier::ClientState;
use guixie_log::FileLog;
use guixie_trust::votes::{Builder, Bundle, LoggedEntry};
use guixie_trust::Verdict;

use super::*;
use crate::message::{decode_request, decode_response, encode};

const HASH: &str = "1b8m03r63zqhnjf7l5wnldhh7c134ap5";

fn out_path() -> String {
    format!("/gnu/store/{HASH}-hello-1.0")
}

fn nar(seed: u8, len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64 ^ seed as u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A builder's (or consumer's) local side: its own log and the NARs it holds.
struct MemLocal {
    _dir: tempfile::TempDir,
    log: FileLog,
    log_key: SignerKey,
    blobs: BTreeMap<[u8; 32], (Outboard, Vec<u8>)>,
    /// Serves every range with one byte flipped (after its outboard check).
    flip_ranges: bool,
    /// Says it keeps these logs (an impostor of their nodes) …
    claims: Option<Vec<String>>,
    /// … and answers every attestation request with this.
    answer_instead: Option<Response>,
    /// As a witness, cosigns with this.
    witness_key: Option<SignerKey>,
    /// Takes cosignatures of its log from these witnesses.
    witnesses: Vec<guixie_log::note::VerifierKey>,
    /// The latest checkpoint with its cosignatures.
    cosigned: Option<String>,
    /// A stand-in instance's accepted documents, when it has governance: "vote-of-P" needs
    /// P, "forged…" is never accepted, anything else is.
    book: Option<Vec<String>>,
}

impl MemLocal {
    fn new(name: &str, seed: u8) -> Self {
        let dir = tempfile::tempdir().unwrap();
        MemLocal {
            log: FileLog::open(dir.path()).unwrap(),
            _dir: dir,
            log_key: SignerKey::from_seed(&format!("log.{name}"), ALG_ED25519, &[seed; 32])
                .unwrap(),
            blobs: BTreeMap::new(),
            flip_ranges: false,
            claims: None,
            answer_instead: None,
            witness_key: None,
            witnesses: vec![],
            cosigned: None,
            book: None,
        }
    }

    fn hold(&mut self, bytes: &[u8]) -> Outboard {
        let ob = Outboard::compute(bytes, bytes.len() as u64).unwrap();
        self.blobs
            .insert(ob.blob().root, (ob.clone(), bytes.to_vec()));
        ob
    }

    /// Builds: holds the NAR and logs a statement about it signed by `key`.
    fn attest(&mut self, key: &SecretKey, bytes: &[u8]) {
        let ob = self.hold(bytes);
        let nar_hash =
            guixie_formats::hash::Hash::digest_of(guixie_formats::hash::HashAlgo::Sha256, bytes)
                .to_typed_string(guixie_formats::Encoding::Nix32);
        let st = Statement::build(BuildPredicate {
            derivation: DerivationRef {
                path: "/gnu/store/00000000000000000000000000000000-hello-1.0.drv".into(),
                hash_modulo: "ab".repeat(32),
            },
            outputs: BTreeMap::from([(
                "out".to_owned(),
                OutputRef {
                    path: out_path(),
                    nar_hash,
                    nar_size: bytes.len() as u64,
                    blake3: Some(ob.blob().root_string()),
                    references: Some(vec![]),
                },
            )]),
            builder: key.public().to_string(),
            time: 0,
            sandbox: "full".into(),
            evidence: vec![],
        })
        .unwrap();
        self.log
            .append_batch(&[Envelope::sign(&st, key).to_json()])
            .unwrap();
    }

    fn checkpoint(&self) -> String {
        let signed = self.signed_checkpoint();
        match &self.cosigned {
            Some(c) if c.starts_with(signed.split("\n\n").next().unwrap()) => c.clone(),
            _ => signed,
        }
    }

    fn signed_checkpoint(&self) -> String {
        Checkpoint {
            origin: self.log_key.name.clone(),
            size: self.log.size(),
            root: self.log.root(self.log.size()).unwrap(),
            extensions: vec![],
        }
        .sign(&self.log_key)
        .unwrap()
    }
}

impl Local for MemLocal {
    fn own_logs(&self) -> Vec<String> {
        self.claims
            .clone()
            .unwrap_or_else(|| vec![self.log_key.name.clone()])
    }
    fn checkpoints(&self) -> Vec<String> {
        vec![self.checkpoint()]
    }
    fn attestations(
        &self,
        hash_part: &str,
        known: Option<u64>,
        _witnessed: bool,
    ) -> Result<Response, String> {
        if let Some(r) = &self.answer_instead {
            return Ok(r.clone());
        }
        let size = self.log.size();
        let hex = |h: &guixie_log::merkle::Hash| data_encoding::HEXLOWER.encode(h);
        let entries = (0..size)
            .filter(|i| {
                let st = Envelope::parse(&self.log.entry(*i).unwrap())
                    .unwrap()
                    .statement()
                    .unwrap();
                st.predicate
                    .outputs
                    .values()
                    .any(|o| o.path.contains(hash_part))
            })
            .map(|i| LoggedEntry {
                index: i,
                entry: String::from_utf8(self.log.entry(i).unwrap()).unwrap(),
                proof: self
                    .log
                    .inclusion_proof(i, size)
                    .unwrap()
                    .iter()
                    .map(hex)
                    .collect(),
            })
            .collect();
        let consistency = match known {
            Some(k) if k > 0 && k < size => self
                .log
                .consistency_proof(k, size)
                .unwrap()
                .iter()
                .map(hex)
                .collect(),
            _ => vec![],
        };
        Ok(Response::Attestations {
            checkpoint: self.checkpoint(),
            consistency,
            bundle: Bundle {
                size,
                attestations: entries,
            },
        })
    }
    fn have(&self, root: &[u8; 32]) -> Option<u64> {
        self.blobs.get(root).map(|(ob, _)| ob.blob().size)
    }
    fn latest(&self, known: Option<u64>) -> Result<Response, String> {
        match self.attestations(&"0".repeat(32), known, false)? {
            Response::Attestations {
                checkpoint,
                consistency,
                bundle,
            } => Ok(Response::Attestations {
                checkpoint,
                consistency,
                bundle: Bundle {
                    attestations: vec![],
                    ..bundle
                },
            }),
            other => Ok(other),
        }
    }
    fn cosign(&self, note: &str) -> Option<String> {
        guixie_log::checkpoint::cosign(note.as_bytes(), self.witness_key.as_ref()?, 1_700_000_000)
            .ok()
    }
    fn add_cosignatures(&mut self, note: &str) -> Result<(), String> {
        let merged = guixie_log::checkpoint::add_cosignatures(
            self.checkpoint().as_bytes(),
            note.as_bytes(),
            &self.log_key.verifier(),
            &self.witnesses,
        )
        .map_err(|e| e.to_string())?;
        self.cosigned = Some(merged);
        Ok(())
    }
    fn governance_documents(&self) -> std::sync::Arc<[String]> {
        self.book.clone().unwrap_or_default().into()
    }
    fn offer_governance(&mut self, document: &str) -> Result<bool, String> {
        let book = self.book.as_mut().ok_or("no governance")?;
        if book.iter().any(|d| d == document) {
            return Ok(false);
        }
        if document.starts_with("forged") {
            return Err("not signed by a member".into());
        }
        if let Some(p) = document.strip_prefix("vote-of-") {
            if !book.iter().any(|d| d == p) {
                return Err(format!("no proposal {p}"));
            }
        }
        book.push(document.to_owned());
        Ok(true)
    }
    fn range(&self, root: &[u8; 32], start: u64, end: u64) -> Result<Vec<u8>, String> {
        let (ob, data) = self.blobs.get(root).ok_or("no such blob")?;
        let mut enc = ob.encode(data, start, end).map_err(|e| e.to_string())?;
        if self.flip_ranges {
            let last = enc.len() - 1;
            enc[last] ^= 1;
        }
        Ok(enc)
    }
}

struct Member {
    key: SecretKey,
    local: MemLocal,
}

fn member(name: &str, seed: u8) -> Member {
    Member {
        key: SecretKey::from_seed(name, &[seed; 32]).unwrap(),
        local: MemLocal::new(name, seed.wrapping_add(100)),
    }
}

fn builder_of(name: &str, m: &Member) -> Builder {
    Builder {
        name: name.into(),
        attestation_key: m.key.public(),
        log_key: m.local.log_key.verifier(),
        witnesses: vec![],
        witness_threshold: 0,
    }
}

/// The in-memory network: every request and response goes through the wire encoding;
/// `route` can send one peer's requests to a different node under the same name (a node that
/// shows each peer another face).
struct Net {
    nodes: BTreeMap<String, Node<MemLocal>>,
    /// (asker, name asked) → node that answers
    route: BTreeMap<(String, String), String>,
    /// node → the name it goes by (its other face's)
    alias: BTreeMap<String, String>,
    links: Vec<(String, String)>,
    /// When set, `Have` requests wait in `delayed` until [`Net::release`].
    delay_have: bool,
    delayed: Vec<(String, String, RequestId, Request)>,
    outputs: BTreeMap<String, Vec<Output>>,
    now: u64,
}

impl Net {
    fn new() -> Self {
        Net {
            nodes: BTreeMap::new(),
            route: BTreeMap::new(),
            alias: BTreeMap::new(),
            links: vec![],
            delay_have: false,
            delayed: vec![],
            outputs: BTreeMap::new(),
            now: 0,
        }
    }

    fn add(&mut self, name: &str, policy: Policy, local: MemLocal) {
        let mut cfg = Config::new(policy);
        cfg.segment_bytes = 16 << 10;
        cfg.window = 2;
        self.nodes
            .insert(name.into(), Node::new(cfg, local, ClientState::default()));
    }

    fn connect(&mut self, a: &str, b: &str) {
        self.links.push((a.into(), b.into()));
        let now = self.now;
        self.nodes.get_mut(a).unwrap().connected(b, now);
        let b_node = self
            .route
            .get(&(a.to_owned(), b.to_owned()))
            .cloned()
            .unwrap_or(b.to_owned());
        self.nodes.get_mut(&b_node).unwrap().connected(a, now);
        self.run();
    }

    /// Delivers messages until every node is quiet.
    fn run(&mut self) {
        loop {
            let mut moved = false;
            let names: Vec<String> = self.nodes.keys().cloned().collect();
            for name in names {
                while let Some(o) = self.nodes.get_mut(&name).unwrap().poll() {
                    moved = true;
                    match o {
                        Output::Send { to, id, request }
                            if self.delay_have && matches!(request, Request::Have { .. }) =>
                        {
                            self.delayed.push((name.clone(), to, id, request));
                        }
                        Output::Send { to, id, request } => {
                            let me = self.alias.get(&name).cloned().unwrap_or(name.clone());
                            let target = self
                                .route
                                .get(&(me.clone(), to.clone()))
                                .cloned()
                                .unwrap_or(to.clone());
                            let now = self.now;
                            let request = decode_request(&encode(&request)).unwrap();
                            let connected = self
                                .links
                                .iter()
                                .any(|(a, b)| (a == &me && b == &to) || (b == &me && a == &to));
                            let answer = match self.nodes.get_mut(&target) {
                                Some(t) if connected => {
                                    let r = t.handle_request(&me, request, now);
                                    Ok(decode_response(&encode(&r)).unwrap())
                                }
                                _ => Err("unreachable".to_owned()),
                            };
                            self.nodes
                                .get_mut(&name)
                                .unwrap()
                                .handle_response(&to, id, answer, now);
                        }
                        other => self.outputs.entry(name.clone()).or_default().push(other),
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Delivers the delayed requests.
    fn release(&mut self) {
        self.delay_have = false;
        let now = self.now;
        for (from, to, id, request) in std::mem::take(&mut self.delayed) {
            let r = self
                .nodes
                .get_mut(&to)
                .unwrap()
                .handle_request(&from, request, now);
            self.nodes
                .get_mut(&from)
                .unwrap()
                .handle_response(&to, id, Ok(r), now);
        }
        self.run();
    }

    fn advance(&mut self, ms: u64) {
        self.now += ms;
        let now = self.now;
        for n in self.nodes.values_mut() {
            n.tick(now);
        }
        self.run();
    }

    fn want(&mut self, name: &str) {
        let now = self.now;
        self.nodes.get_mut(name).unwrap().want(HASH, now);
        self.run();
    }

    fn decision(&self, name: &str) -> Option<Decision> {
        self.outputs.get(name)?.iter().find_map(|o| match o {
            Output::Decided { decision, .. } => Some(decision.clone()),
            _ => None,
        })
    }

    fn fetched(&self, name: &str, size: usize) -> Option<(Accepted, Vec<u8>)> {
        self.fetched_from(name, size).map(|(a, b, _)| (a, b))
    }

    fn fetched_from(
        &self,
        name: &str,
        size: usize,
    ) -> Option<(Accepted, Vec<u8>, Vec<guixie_content::download::PeerReport>)> {
        let outs = self.outputs.get(name)?;
        let (accepted, peers) = outs.iter().find_map(|o| match o {
            Output::Fetched { output, peers, .. } => Some((output.clone(), peers.clone())),
            _ => None,
        })?;
        let mut bytes = vec![0; size];
        for o in outs {
            if let Output::Write { offset, data, .. } = o {
                bytes[*offset as usize..*offset as usize + data.len()].copy_from_slice(data);
            }
        }
        Some((accepted, bytes, peers))
    }

    fn failure(&self, name: &str) -> Option<String> {
        self.outputs.get(name)?.iter().find_map(|o| match o {
            Output::Failed { reason, .. } => Some(reason.clone()),
            _ => None,
        })
    }

    fn convicted(&self, name: &str) -> Vec<String> {
        self.outputs
            .get(name)
            .map(|outs| {
                outs.iter()
                    .filter_map(|o| match o {
                        Output::Convicted { origin, .. } => Some(origin.clone()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Three honest builders and a liar, all with the output built; a consumer trusting the three
/// with `k`.
fn network(k: u64, connect_c: bool) -> (Net, Vec<u8>) {
    let good = nar(1, 300_000);
    let bad = nar(2, 300_000);
    let mut members: Vec<(String, Member)> = ["a", "b", "c", "liar"]
        .iter()
        .enumerate()
        .map(|(i, n)| (n.to_string(), member(n, i as u8 + 1)))
        .collect();
    for (name, m) in &mut members {
        let key = m.key.clone();
        m.local
            .attest(&key, if name == "liar" { &bad } else { &good });
    }
    let policy = Policy {
        k,
        builders: members[..3].iter().map(|(n, m)| builder_of(n, m)).collect(),
    };
    let mut net = Net::new();
    for (name, m) in members {
        net.add(&name, policy.clone(), m.local);
    }
    net.add("consumer", policy, MemLocal::new("consumer", 50));
    for n in ["a", "b", "c", "liar"] {
        if n != "c" || connect_c {
            net.connect("consumer", n);
        }
    }
    (net, good)
}

#[test]
fn two_of_three_honest_builders_are_enough_and_the_nar_is_fetched_verified() {
    let (mut net, good) = network(2, true);
    net.want("consumer");
    let d = net.decision("consumer").expect("decided");
    assert_eq!(d.result, Verdict::Accept, "{d:?}");
    assert_eq!(d.attesting, ["a", "b", "c"]);
    let (accepted, bytes) = net.fetched("consumer", good.len()).expect("fetched");
    assert_eq!(bytes, good);
    assert_eq!(accepted.path, out_path());
    assert_eq!(&accepted.blob.root, blake3::hash(&good).as_bytes());
    assert_eq!(net.failure("consumer"), None);
}

#[test]
fn a_fetch_waits_for_slow_answers_to_have() {
    // Peers take longer than several ticks to say they have the NAR (a builder writing a
    // large one the first time): the fetch waits for them.
    let (mut net, good) = network(2, true);
    net.delay_have = true;
    net.want("consumer");
    net.advance(1_000);
    net.advance(1_000);
    assert_eq!(net.failure("consumer"), None);
    net.release();
    let (_, bytes) = net.fetched("consumer", good.len()).expect("fetched");
    assert_eq!(bytes, good);
}

#[test]
fn with_k_of_n_unreachable_it_rejects_at_the_deadline() {
    let (mut net, _) = network(3, false);
    net.want("consumer");
    assert_eq!(
        net.decision("consumer"),
        None,
        "waits for c until the deadline"
    );
    net.advance(6_000);
    let d = net.decision("consumer").expect("decided at the deadline");
    assert_eq!(d.result, Verdict::Reject);
    assert!(d.reason.contains("shortfall: 2 of the 3"), "{}", d.reason);
    assert!(net.failure("consumer").unwrap().contains("shortfall"));
    // Wanted again soon: the same answer at once, without asking anyone.
    net.outputs.clear();
    net.want("consumer");
    assert_eq!(net.decision("consumer"), None);
    assert!(net.failure("consumer").unwrap().contains("shortfall"));
    // After the rejection's time is up, the builders are asked again.
    net.outputs.clear();
    net.advance(60_000);
    net.want("consumer");
    net.advance(6_000);
    assert!(net.decision("consumer").is_some());
}

#[test]
fn a_trusted_liar_dissents_and_a_lying_server_is_dropped() {
    let (mut net, good) = network(2, true);
    // The liar is trusted too, and it serves every range with a flipped byte.
    trust_the_liar(&mut net);
    let good_root = *blake3::hash(&good).as_bytes();
    let liar = net.nodes.get_mut("liar").unwrap().local_mut();
    liar.hold(&good);
    liar.flip_ranges = true;
    assert!(liar.have(&good_root).is_some());
    net.want("consumer");
    let d = net.decision("consumer").unwrap();
    assert_eq!(
        d.result,
        Verdict::Accept,
        "{d:?} {:?}",
        net.nodes["consumer"].state()
    );
    assert_eq!(d.dissenting, ["liar"]);
    let (_, bytes, peers) = net
        .fetched_from("consumer", good.len())
        .expect("fetched from the honest");
    assert_eq!(bytes, good);
    let liar = peers
        .iter()
        .find(|p| p.peer == "liar")
        .expect("the liar was asked");
    assert!(
        liar.dropped
            .as_deref()
            .unwrap()
            .contains("does not match the root"),
        "{liar:?}"
    );
    assert_eq!(liar.verified_bytes, 0);
    assert!(peers
        .iter()
        .filter(|p| p.peer != "liar")
        .all(|p| p.dropped.is_none()));
}

#[test]
fn a_log_that_forks_is_caught_by_every_honest_node() {
    // b's node shows consumer 1 one history and consumer 2 another of the same size.
    let good = nar(1, 50_000);
    let (a, mut b) = (member("a", 1), member("b", 2));
    let a_builder = builder_of("a", &a);
    let mut b_fork = MemLocal::new("b", 102);
    let mut a_local = a.local;
    a_local.attest(&a.key, &good);
    let key = b.key.clone();
    b.local.attest(&key, &good);
    b_fork.attest(&key, &nar(3, 50_000));
    let policy = Policy {
        k: 1,
        builders: vec![a_builder, builder_of("b", &b)],
    };
    let mut net = Net::new();
    net.add("a", policy.clone(), a_local);
    net.add("b", policy.clone(), b.local);
    net.add("b-fork", policy.clone(), b_fork);
    net.add("one", policy.clone(), MemLocal::new("one", 60));
    net.add("two", policy, MemLocal::new("two", 61));
    net.route
        .insert(("two".into(), "b".into()), "b-fork".into());
    net.alias.insert("b-fork".into(), "b".into());
    for c in ["one", "two"] {
        net.connect(c, "a");
        net.connect(c, "b");
    }
    net.want("one");
    net.want("two");
    assert!(net.convicted("one").is_empty() && net.convicted("two").is_empty());
    // The two consumers meet: their gossip convicts b, and both exclude it.
    net.connect("one", "two");
    for c in ["one", "two"] {
        assert_eq!(net.convicted(c), ["log.b"], "{c}");
        assert!(net.nodes[c].state().logs["log.b"].untrusted);
    }
    // a's log did not fork and stays trusted.
    assert!(!net.nodes["one"].state().logs["log.a"].untrusted);
}

#[test]
fn an_impostor_of_builders_nodes_can_neither_convict_nor_hide_them() {
    // It sorts first (asked first, answering first) or last.
    for name in ["0impostor", "zimpostor"] {
        let (mut net, good) = network(2, true);
        // a's log grows; the impostor shows a's older (genuine) checkpoint, an empty bundle
        // and a junk consistency proof, for a's and b's logs.
        let old = net.nodes["a"].local().checkpoint();
        let key = SecretKey::from_seed("a", &[1; 32]).unwrap();
        net.nodes
            .get_mut("a")
            .unwrap()
            .local_mut()
            .attest(&key, &good);
        let mut impostor = MemLocal::new(name, 77);
        impostor.claims = Some(vec!["log.a".into(), "log.b".into()]);
        impostor.answer_instead = Some(Response::Attestations {
            checkpoint: old,
            consistency: vec!["00".repeat(32)],
            bundle: Bundle {
                size: 1,
                attestations: vec![],
            },
        });
        let policy = net.nodes["consumer"].cfg.policy.clone();
        net.add(name, policy, impostor);
        net.connect("consumer", name);
        net.want("consumer");
        let d = net.decision("consumer").expect("decided");
        assert_eq!(d.result, Verdict::Accept, "{name}: {d:?}");
        assert_eq!(d.attesting, ["a", "b", "c"], "{name}");
        assert!(net.convicted("consumer").is_empty(), "{name}");
        let state = net.nodes["consumer"].state();
        assert!(!state.logs["log.a"].untrusted && !state.logs["log.b"].untrusted);
        assert_eq!(
            state.logs["log.a"].size, 2,
            "{name}: the view follows a's real log"
        );
        assert_eq!(net.fetched("consumer", good.len()).unwrap().1, good);
    }
}

impl Net {
    fn survey(&mut self, name: &str) {
        let now = self.now;
        self.nodes.get_mut(name).unwrap().survey(HASH, now);
        self.run();
    }

    fn surveyed(&self, name: &str) -> Option<Survey> {
        self.outputs.get(name)?.iter().find_map(|o| match o {
            Output::Surveyed(s) => Some((**s).clone()),
            _ => None,
        })
    }
}

/// The liar is trusted too, as the fourth builder.
fn trust_the_liar(net: &mut Net) {
    let mut policy = net.nodes["consumer"].cfg.policy.clone();
    let liar = net.nodes["liar"].local();
    policy.builders.push(Builder {
        name: "liar".into(),
        attestation_key: SecretKey::from_seed("liar", &[4; 32]).unwrap().public(),
        log_key: liar.log_key.verifier(),
        witnesses: vec![],
        witness_threshold: 0,
    });
    net.nodes.get_mut("consumer").unwrap().cfg.policy = policy;
}

#[test]
fn a_survey_shows_every_builder_side_by_side_and_fetches_nothing() {
    let (mut net, good) = network(2, false);
    trust_the_liar(&mut net);
    net.survey("consumer");
    assert_eq!(
        net.surveyed("consumer"),
        None,
        "waits for c until the deadline"
    );
    net.advance(6_000);
    let s = net.surveyed("consumer").expect("surveyed at the deadline");
    let names: Vec<&str> = s.builders.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "liar"]);
    let hash_of = |name: &str| -> Vec<String> {
        s.builders
            .iter()
            .find(|b| b.name == name)
            .unwrap()
            .outputs
            .iter()
            .map(|o| o.nar_hash.clone())
            .collect()
    };
    let good_hash =
        guixie_formats::hash::Hash::digest_of(guixie_formats::hash::HashAlgo::Sha256, &good)
            .to_typed_string(guixie_formats::Encoding::Nix32);
    assert_eq!(hash_of("a"), std::slice::from_ref(&good_hash));
    assert_eq!(hash_of("b"), std::slice::from_ref(&good_hash));
    assert!(hash_of("c").is_empty());
    assert!(!s.builders[2].reached);
    assert_eq!(hash_of("liar").len(), 1);
    assert_ne!(hash_of("liar"), [good_hash]);
    assert_eq!(s.decision.dissenting, ["liar"]);
    // Nothing was decided for a fetch, and nothing fetched.
    assert_eq!(net.decision("consumer"), None);
    assert!(net.fetched("consumer", good.len()).is_none());
    assert_eq!(net.failure("consumer"), None);
}

#[test]
fn a_survey_of_a_path_being_fetched_follows_the_fetch() {
    let (mut net, good) = network(2, true);
    net.delay_have = true;
    net.want("consumer");
    net.survey("consumer");
    assert_eq!(net.surveyed("consumer"), None);
    net.release();
    assert!(net.fetched("consumer", good.len()).is_some());
    let s = net.surveyed("consumer").expect("surveyed after the fetch");
    assert!(s.builders.iter().all(|b| b.reached && b.answered));
    assert_eq!(s.decision.attesting, ["a", "b", "c"]);
}

#[test]
fn a_witness_cosigns_what_it_checked_and_a_consumer_requiring_it_accepts_only_then() {
    use guixie_log::note::ALG_COSIGNATURE_V1;
    let (mut net, good) = network(2, false);
    let w_key = SignerKey::from_seed("witness.example", ALG_COSIGNATURE_V1, &[42; 32]).unwrap();
    let stranger = SignerKey::from_seed("absent.example", ALG_COSIGNATURE_V1, &[43; 32]).unwrap();
    for b in ["a", "b", "c"] {
        net.nodes.get_mut(b).unwrap().local_mut().witnesses = vec![w_key.verifier()];
    }
    // The witness follows a, b and c (its own view needs no witness).
    let mut w_local = MemLocal::new("w", 70);
    w_local.witness_key = Some(w_key.clone());
    let plain = net.nodes["consumer"].cfg.policy.clone();
    net.add("w", plain.clone(), w_local);
    net.nodes.get_mut("w").unwrap().cfg.witness = true;
    for b in ["a", "b", "c"] {
        net.connect("w", b);
    }
    for b in ["a", "b", "c"] {
        let note = net.nodes[b].local().checkpoint();
        assert!(
            guixie_log::checkpoint::verify(
                note.as_bytes(),
                &net.nodes[b].local().log_key.verifier(),
                &[w_key.verifier()],
                1
            )
            .is_ok(),
            "{b} serves a cosigned checkpoint: {note}"
        );
    }
    // A consumer requiring that witness accepts; one requiring an absent witness cannot.
    let requiring = |witness: &SignerKey| {
        let mut p = plain.clone();
        for b in &mut p.builders {
            b.witnesses = vec![witness.verifier()];
            b.witness_threshold = 1;
        }
        p
    };
    net.add("strict", requiring(&w_key), MemLocal::new("strict", 71));
    net.add(
        "stricter",
        requiring(&stranger),
        MemLocal::new("stricter", 72),
    );
    for c in ["strict", "stricter"] {
        for b in ["a", "b", "c"] {
            net.connect(c, b);
        }
        let now = net.now;
        net.nodes.get_mut(c).unwrap().want(HASH, now);
        net.run();
    }
    let d = net.decision("strict").expect("decided");
    assert_eq!(d.result, Verdict::Accept, "{d:?}");
    assert_eq!(d.attesting, ["a", "b", "c"]);
    assert_eq!(net.fetched("strict", good.len()).unwrap().1, good);
    let d = net.decision("stricter").expect("decided");
    assert_eq!(d.result, Verdict::Reject, "{d:?}");
    // c's log grows: it says so, the witness checks the consistency and cosigns again.
    let key = SecretKey::from_seed("c", &[3; 32]).unwrap();
    net.nodes
        .get_mut("c")
        .unwrap()
        .local_mut()
        .attest(&key, &good);
    net.advance(1_500);
    let c = net.nodes["c"].local();
    let note = c.checkpoint();
    let v = guixie_log::checkpoint::verify(
        note.as_bytes(),
        &c.log_key.verifier(),
        &[w_key.verifier()],
        1,
    )
    .expect("the grown log is cosigned");
    assert_eq!(v.checkpoint.size, 2);
}

#[test]
fn a_builder_counts_its_own_attestation_without_asking_the_network() {
    // k = 3 of a, b, c, asked by a itself: its own log is one of the three.
    let (mut net, _) = network(3, true);
    net.connect("a", "b");
    net.connect("a", "c");
    let now = net.now;
    net.nodes.get_mut("a").unwrap().want(HASH, now);
    net.run();
    let d = net.decision("a").expect("decided");
    assert_eq!(d.result, Verdict::Accept, "{d:?}");
    assert_eq!(d.attesting, ["a", "b", "c"]);
}

#[test]
fn governance_documents_spread_in_order_and_only_what_the_own_rules_accept() {
    let mut net = Net::new();
    let policy = Policy {
        k: 1,
        builders: vec![],
    };
    for (name, seed) in [("a", 1), ("b", 2), ("c", 3), ("d", 4), ("none", 5)] {
        let mut local = MemLocal::new(name, seed);
        if name != "none" {
            local.book = Some(vec![]);
        }
        net.add(name, policy.clone(), local);
    }
    let book = |net: &Net, name: &str| net.nodes[name].local().book.clone().unwrap();
    net.nodes.get_mut("a").unwrap().local_mut().book = Some(vec!["p0".into()]);
    // A line a - b - c: what a accepted reaches c through b, and a node without governance
    // refuses it without harm.
    net.connect("a", "b");
    net.connect("b", "c");
    net.connect("b", "none");
    assert_eq!(book(&net, "b"), ["p0"]);
    assert_eq!(book(&net, "c"), ["p0"]);
    // What a's own `govern` commands add is passed on within a second.
    net.nodes
        .get_mut("a")
        .unwrap()
        .local_mut()
        .book
        .as_mut()
        .unwrap()
        .push("vote-of-p0".into());
    net.advance(500);
    assert_eq!(book(&net, "c"), ["p0"]);
    net.advance(600);
    assert_eq!(book(&net, "c"), ["p0", "vote-of-p0"]);
    // A forged document is refused where it lands and goes no further.
    let r = net.nodes.get_mut("b").unwrap().handle_request(
        "a",
        Request::Governance {
            document: "forged-p1".into(),
        },
        0,
    );
    assert!(matches!(r, Response::Refused { reason } if reason == "not signed by a member"));
    net.advance(1_000);
    assert!(!book(&net, "c").contains(&"forged-p1".to_owned()));
    // Out of order (requests may overtake each other): a vote before its proposal is kept
    // and counted once the proposal came; both are passed on in the order accepted.
    let d = net.nodes.get_mut("d").unwrap();
    let r = d.handle_request(
        "x",
        Request::Governance {
            document: "vote-of-p1".into(),
        },
        0,
    );
    assert!(matches!(r, Response::Refused { .. }));
    let r = d.handle_request(
        "x",
        Request::Governance {
            document: "p1".into(),
        },
        0,
    );
    assert_eq!(r, Response::Ack);
    assert_eq!(book(&net, "d"), ["p1", "vote-of-p1"]);
    net.connect("d", "c");
    assert_eq!(book(&net, "a"), ["p0", "vote-of-p0", "p1", "vote-of-p1"]);
    assert_eq!(book(&net, "d"), ["p1", "vote-of-p1", "p0", "vote-of-p0"]);
}
