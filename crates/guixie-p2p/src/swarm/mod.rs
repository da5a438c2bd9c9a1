//! The event loop: a libp2p swarm (TCP, Noise, Yamux; identify, ping, and guixie's
//! request-response protocol) feeding a [`Node`], and carrying out what it outputs. Verified
//! bytes of a download go to `node/incoming/<hash>.nar` and, as they become contiguous, into
//! an import staged on a thread of its own, which checks the NAR hash and size again
//! ([`imports`]). The loopback binary cache asks the loop for paths it does not show yet and
//! waits, bounded, for the answer.

mod imports;
mod prepare;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use guixie_env::Clock;
use guixie_formats::signing::SecretKey;
use guixie_formats::StorePath;
use guixie_log::note::SignerKey;
use guixie_log::verifier::ClientState;
use guixie_node::node::{Accepted, Config};
use guixie_node::{Node, Output, Policy};
use guixie_store::{LocalStore, PathInfoQuery, StagedImport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};

use crate::accepted::{AcceptedSet, AcceptedView};
use crate::incoming::Incoming;
use crate::local::StoreLocal;
use crate::transport::{self, p2p, Behaviour, BehaviourEvent, P2pError, Wire};

pub struct NodeOptions {
    pub store: Arc<LocalStore>,
    pub policy: Policy,
    pub listen: Vec<Multiaddr>,
    pub peers: Vec<Multiaddr>,
    /// The loopback binary cache of accepted paths.
    pub http: Option<SocketAddr>,
    /// The node's libp2p identity (Ed25519 secret).
    pub identity: [u8; 32],
    /// The node's own log's key, if it keeps one (a builder).
    pub log_key: Option<SignerKey>,
    /// Signs the narinfos of the binary cache.
    pub cache_key: SecretKey,
    /// How long a narinfo request waits for the network.
    pub wait: Duration,
    /// How long a lookup waits for builders' attestations before deciding with what came.
    pub decide_within: Duration,
    /// At most this many bytes of NAR ranges served per second, on average.
    pub max_upload: Option<u64>,
    /// Witness the policy's builders' logs, cosigning with this key.
    pub witness_key: Option<SignerKey>,
    /// The witnesses whose cosignatures of the own log are taken and served.
    pub witnesses: Vec<guixie_log::note::VerifierKey>,
    /// Find peers on the local network by mDNS (and connect to them).
    pub mdns: bool,
    /// Where the node keeps its files (views of logs, accepted paths, downloads, blobs);
    /// default: the store's `var/guixie/node`. One node per directory at a time.
    pub node_dir: Option<PathBuf>,
    pub clock: Arc<dyn Clock>,
    /// The store's governance journal, whose documents the node gossips.
    pub governance: Option<Box<dyn crate::local::GovernanceBook>>,
}

/// Where the node can be reached, once it is.
#[derive(Clone, Debug)]
pub struct Started {
    pub peer_id: String,
    pub listen: Vec<Multiaddr>,
    pub http: Option<SocketAddr>,
}

/// A question from the binary cache: fetch this path through the quorum.
struct Want {
    hash_part: String,
    reply: oneshot::Sender<bool>,
}

struct Resolver(mpsc::UnboundedSender<Want>);

impl guixie_cache::Resolver for Resolver {
    fn resolve(&self, hash_part: &str) -> oneshot::Receiver<bool> {
        let (reply, answer) = oneshot::channel();
        let _ = self.0.send(Want {
            hash_part: hash_part.to_owned(),
            reply,
        });
        answer
    }
}

/// Runs the node until the process ends; `started` is called once it listens.
pub fn run(opts: NodeOptions, started: impl FnOnce(&Started)) -> Result<(), P2pError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run_async(opts, started))
}

async fn run_async(mut opts: NodeOptions, started: impl FnOnce(&Started)) -> Result<(), P2pError> {
    let mut swarm = transport::build_swarm(opts.identity, opts.mdns)?;
    for addr in &opts.listen {
        swarm.listen_on(addr.clone()).map_err(p2p)?;
    }
    let mut listen = Vec::new();
    while listen.len() < opts.listen.len() {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            listen.push(address);
        }
    }

    let node_dir = opts
        .node_dir
        .clone()
        .unwrap_or_else(|| opts.store.state_dir().join("node"));
    std::fs::create_dir_all(&node_dir)?;
    // Two nodes writing one directory would undo each other's views (a convicted log
    // trusted again, a witness forgetting what it cosigned).
    let lock = node_dir.join("lock");
    let _lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)?;
    rustix::fs::flock(&_lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |e| {
            P2pError::Io(std::io::Error::other(format!(
                "{}: another node uses this directory ({e})",
                lock.display()
            )))
        },
    )?;
    // Downloads of an earlier run are incomplete: they are fetched again.
    let incoming_dir = node_dir.join("incoming");
    let _ = std::fs::remove_dir_all(&incoming_dir);
    let client_file = node_dir.join("logs.json");
    let client = ClientState::load(&client_file)?;
    let local = StoreLocal::open(opts.store.clone(), opts.log_key.clone(), &node_dir)?
        .with_witnessing(
            opts.witness_key.clone(),
            opts.witnesses.clone(),
            opts.clock.clone(),
        )
        .with_governance(opts.governance.take());
    let mut config = Config::new(opts.policy.clone());
    config.collect_timeout_ms = opts.decide_within.as_millis() as u64;
    config.witness = opts.witness_key.is_some();
    let node = Node::new(config, local, client);
    let accepted_set = AcceptedSet::load(&node_dir)?;
    let sd = opts.store.store_dir().clone();
    let accepted = Arc::new(RwLock::new(
        accepted_set
            .paths
            .keys()
            .filter_map(|b| StorePath::from_base_name(b).ok())
            .collect::<BTreeSet<_>>(),
    ));

    let (want_tx, want_rx) = mpsc::unbounded_channel();
    let mut http = None;
    if let Some(addr) = opts.http {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        http = Some(listener.local_addr()?);
        let cache = Arc::new(guixie_cache::Cache {
            store: Arc::new(AcceptedView {
                store: opts.store.clone(),
                accepted: accepted.clone(),
            }),
            key: Some(opts.cache_key.clone()),
            priority: 20,
            compression: guixie_cache::Compression::None,
            compressed_dir: None,
            logs_dir: None,
            evidence: None,
            dialect: guixie_cache::Dialect::Nix,
            resolve: Some(guixie_cache::Resolve {
                resolver: Arc::new(Resolver(want_tx)),
                wait: opts.wait,
            }),
        });
        tokio::spawn(guixie_cache::serve(listener, cache));
    }
    started(&Started {
        peer_id: swarm.local_peer_id().to_string(),
        listen,
        http,
    });

    let (staged_tx, staged_rx) = mpsc::unbounded_channel();
    let (prepared_tx, prepared_rx) = mpsc::unbounded_channel();
    let mut driver = Driver {
        node,
        store: opts.store.clone(),
        clock: opts.clock.clone(),
        incoming_dir,
        node_dir,
        client_file,
        accepted,
        accepted_set,
        sd,
        wire: Wire::with_upload_limit(opts.max_upload),
        waiters: BTreeMap::new(),
        parked: BTreeMap::new(),
        downloads: BTreeMap::new(),
        staged: BTreeMap::new(),
        fetched: BTreeMap::new(),
        staged_tx,
        next_download: 0,
        preparing: BTreeMap::new(),
        prepared_tx,
        unsaved: false,
        up: BTreeMap::new(),
        peers: opts.peers,
    };
    std::fs::create_dir_all(&driver.incoming_dir)?;
    driver
        .event_loop(&mut swarm, want_rx, staged_rx, prepared_rx)
        .await
}

/// A staging thread's outcome: hash part, download number, the staged import.
type Staged = (String, u64, Result<StagedImport, String>);

struct Driver {
    node: Node<StoreLocal>,
    store: Arc<LocalStore>,
    clock: Arc<dyn Clock>,
    node_dir: PathBuf,
    incoming_dir: PathBuf,
    client_file: PathBuf,
    accepted: Arc<RwLock<BTreeSet<StorePath>>>,
    accepted_set: AcceptedSet,
    sd: guixie_formats::StoreDir,
    wire: Wire,
    waiters: BTreeMap<String, Vec<oneshot::Sender<bool>>>,
    /// Fetched and staged NARs waiting for their references: hash part → (what to import,
    /// the staged import, missing references).
    parked: BTreeMap<String, (Accepted, StagedImport, BTreeSet<String>)>,
    /// Downloads being written and staged, by hash part, each with its number.
    downloads: BTreeMap<String, (u64, Incoming)>,
    /// Staged imports whose download is not reported complete yet.
    staged: BTreeMap<String, Result<StagedImport, String>>,
    /// Complete downloads whose import is still being staged.
    fetched: BTreeMap<String, Accepted>,
    staged_tx: mpsc::UnboundedSender<Staged>,
    next_download: u64,
    /// Requests waiting for a blob being prepared, by root.
    preparing: BTreeMap<[u8; 32], prepare::Waiting>,
    prepared_tx: mpsc::UnboundedSender<([u8; 32], Result<(), String>)>,
    /// Whether accepted paths or checkpoints changed since they were saved.
    unsaved: bool,
    /// Configured peers' addresses that are connected, and to whom.
    up: BTreeMap<Multiaddr, PeerId>,
    peers: Vec<Multiaddr>,
}

impl Driver {
    fn now_ms(&self) -> u64 {
        self.clock.monotonic().as_millis() as u64
    }

    async fn event_loop(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        mut wants: mpsc::UnboundedReceiver<Want>,
        mut staged: mpsc::UnboundedReceiver<Staged>,
        mut prepared: mpsc::UnboundedReceiver<([u8; 32], Result<(), String>)>,
    ) -> Result<(), P2pError> {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut redial = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                event = swarm.select_next_some() => self.on_swarm_event(swarm, event),
                Some(want) = wants.recv() => self.on_want(want),
                Some((hash_part, download, result)) = staged.recv() => {
                    self.on_staged(&hash_part, download, result)
                }
                Some((root, result)) = prepared.recv() => self.on_prepared(swarm, root, result),
                _ = tick.tick() => {
                    let now = self.now_ms();
                    self.node.tick(now);
                    if self.node.take_views_changed() {
                        self.unsaved = true;
                    }
                    self.save();
                }
                _ = sleep_until_due(self.wire.next_due()) => self.wire.send_due(swarm),
                _ = redial.tick() => {
                    for addr in self.peers.clone() {
                        if !self.up.contains_key(&addr) {
                            let _ = swarm.dial(addr);
                        }
                    }
                }
            }
            self.drain(swarm);
        }
    }

    /// What was accepted, and the checkpoints accepted with it.
    /// Saves what changed; on a failure it stays marked unsaved, to be tried again.
    fn save(&mut self) {
        if !self.unsaved {
            return;
        }
        let mut saved = true;
        if let Err(e) = self.accepted_set.save(&self.node_dir) {
            eprintln!("guixie node: saving the accepted paths: {e}");
            saved = false;
        }
        if let Err(e) = self.node.state().save(&self.client_file) {
            eprintln!("guixie node: saving {}: {e}", self.client_file.display());
            saved = false;
        }
        self.unsaved = !saved;
    }

    fn on_want(&mut self, want: Want) {
        let hash_part = want.hash_part.clone();
        self.waiters
            .entry(hash_part.clone())
            .or_default()
            .push(want.reply);
        // Fetched and being imported: it is answered when it is imported.
        if !self.importing(&hash_part) {
            let now = self.now_ms();
            self.node.want(&hash_part, now);
        }
    }

    fn on_swarm_event(&mut self, swarm: &mut Swarm<Behaviour>, event: SwarmEvent<BehaviourEvent>) {
        let now = self.now_ms();
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                if endpoint.is_dialer() {
                    self.up
                        .insert(endpoint.get_remote_address().clone(), peer_id);
                }
                if num_established.get() == 1 {
                    self.node.connected(&peer_id.to_string(), now);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.up.retain(|_, p| *p != peer_id);
                self.node.disconnected(&peer_id.to_string(), now);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(libp2p::mdns::Event::Discovered(found))) => {
                for (peer, addr) in found {
                    if !swarm.is_connected(&peer) {
                        let _ = swarm.dial(addr);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Rr(event)) => {
                if let Some(event) = self.defer_unready(event) {
                    self.wire.on_event(&mut self.node, swarm, event, now)
                }
            }
            _ => {}
        }
    }

    /// Carries out everything the node asked for.
    fn drain(&mut self, swarm: &mut Swarm<Behaviour>) {
        while let Some(output) = self.node.poll() {
            match output {
                Output::Send { to, id, request } => {
                    let now = self.now_ms();
                    // A witness's views are on disk before its cosignature leaves.
                    if matches!(request, guixie_node::Request::Cosigned { .. }) {
                        if self.node.take_views_changed() {
                            self.unsaved = true;
                        }
                        self.save();
                        if self.unsaved {
                            eprintln!("guixie node: not cosigning: the views are not saved");
                            self.node
                                .handle_response(&to, id, Err("not sent".into()), now);
                            continue;
                        }
                    }
                    self.wire.send(&mut self.node, swarm, &to, id, request, now)
                }
                Output::Decided {
                    hash_part,
                    decision,
                } => {
                    // The lookup may have advanced the node's views of logs.
                    self.unsaved = true;
                    eprintln!(
                        "guixie node: {hash_part}: {} ({})",
                        serde_json::to_string(&decision.result).unwrap_or_default(),
                        decision.reason
                    )
                }
                Output::Write {
                    hash_part,
                    offset,
                    data,
                } => self.on_write(&hash_part, offset, &data),
                Output::Fetched {
                    hash_part,
                    output,
                    peers,
                } => {
                    let from: Vec<String> = peers
                        .iter()
                        .map(|p| match &p.dropped {
                            None => format!("{} bytes from {}", p.verified_bytes, p.peer),
                            Some(why) => format!("{} dropped ({why})", p.peer),
                        })
                        .collect();
                    eprintln!("guixie node: {hash_part}: fetched: {}", from.join(", "));
                    self.on_fetched(&hash_part, output)
                }
                Output::Fetching { hash_part, output } => self.on_fetching(&hash_part, output),
                Output::Failed { hash_part, reason } => {
                    eprintln!("guixie node: {hash_part}: not fetched: {reason}");
                    self.on_failed(&hash_part);
                }
                // This loop never surveys (`guixie challenge` does, in its own).
                Output::Surveyed(_) => {}
                Output::Convicted { origin, detail } => {
                    eprintln!("guixie node: log {origin} excluded: {detail}");
                    if let Err(e) = self.node.state().save(&self.client_file) {
                        eprintln!("guixie node: saving {}: {e}", self.client_file.display());
                    }
                }
            }
        }
    }
}

/// Sleeps until `due`; forever without one.
async fn sleep_until_due(due: Option<tokio::time::Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A node directory of its own for a node inside a command (`guixie build --peer`), beside a
/// `guixie node` that may run on the same store: `node-embedded/<pid>` in the store's state
/// directory, starting from the views of logs the store's node accepted (so no log is
/// trusted afresh). Directories of commands that ended (their lock is free) are removed.
pub fn private_node_dir(state_dir: &std::path::Path) -> std::io::Result<PathBuf> {
    let parent = state_dir.join("node-embedded");
    std::fs::create_dir_all(&parent)?;
    for entry in std::fs::read_dir(&parent)?.flatten() {
        let lock = entry.path().join("lock");
        let free = std::fs::File::open(&lock).is_ok_and(|f| {
            rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok()
        });
        // One with no lock yet may be a command starting right now.
        let abandoned = !lock.exists()
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() > 600));
        if free || abandoned {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = parent.join(std::process::id().to_string());
    std::fs::create_dir_all(&dir)?;
    let views = state_dir.join("node").join("logs.json");
    if views.exists() {
        std::fs::copy(&views, dir.join("logs.json"))?;
    }
    Ok(dir)
}
