//! The node: connections, gossip of checkpoints and split views, and answering requests.
//! Lookups (asking builders, deciding, fetching) are in [`lookup`].
//!
//! What a node keeps per log is the caller's [`ClientState`]: the last checkpoint accepted,
//! only with a consistency proof from the log's own node; a checkpoint relayed by anyone else
//! can only convict the log of a split view. A node gossips a checkpoint when it accepted it
//! and a split view when it first learnt of it, so gossip stops once everyone knows.

mod governance;
mod lookup;
mod survey;
mod witness;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use guixie_log::verifier::{ClientState, Rejected};
use guixie_trust::Decision;

use crate::message::{Request, Response, MAX_RANGE_BYTES};
use crate::policy::Policy;
pub use lookup::Accepted;
use lookup::Lookup;
pub use survey::{BuilderAnswer, Survey};

/// A peer, as the transport names it.
pub type PeerId = String;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// Most logs a peer may say it keeps, and the longest origin.
const MAX_PEER_LOGS: usize = 64;
const MAX_ORIGIN_LEN: usize = 256;

/// What the node serves from: its own log and the NARs it holds.
pub trait Local {
    /// Origins of the logs this node keeps.
    fn own_logs(&self) -> Vec<String>;
    /// The latest signed checkpoint of each own log.
    fn checkpoints(&self) -> Vec<String>;
    /// `Response::Attestations` for the output path with `hash_part`, from an own log, with a
    /// consistency proof from `known_size`; against the newest witnessed checkpoint when
    /// `witnessed` (and the asker has not seen a larger one).
    fn attestations(
        &self,
        hash_part: &str,
        known_size: Option<u64>,
        witnessed: bool,
    ) -> Result<Response, String>;
    /// The size of the blob with this root, if this node can serve it.
    fn have(&self, root: &[u8; 32]) -> Option<u64>;
    /// The verified-streaming encoding of `start..end` of the blob.
    fn range(&self, root: &[u8; 32], start: u64, end: u64) -> Result<Vec<u8>, String>;
    /// `Response::Attestations` with no entries: the own log's checkpoint and a consistency
    /// proof from `known_size`.
    fn latest(&self, _known_size: Option<u64>) -> Result<Response, String> {
        Err("this node keeps no log".into())
    }
    /// As a witness: `note` (a checkpoint this node accepted) with this node's cosignature.
    fn cosign(&self, _note: &str) -> Option<String> {
        None
    }
    /// A witness's cosignature of a checkpoint of the own log, to serve it with.
    fn add_cosignatures(&mut self, _note: &str) -> Result<(), String> {
        Err("this node keeps no log".into())
    }
    /// The governance documents the own instance accepted that peers may take (proposals,
    /// votes, withdrawals, states), oldest first; only ever appended to. Asked every second:
    /// cheap when nothing changed.
    fn governance_documents(&self) -> std::sync::Arc<[String]> {
        std::sync::Arc::new([])
    }
    /// A peer's governance document, for the own instance's rules to judge: `Ok(true)` if
    /// they accepted it now, `Ok(false)` if it was accepted before, else why not.
    fn offer_governance(&mut self, _document: &str) -> Result<bool, String> {
        Err("this node keeps no governance".into())
    }
}

/// What the transport and the node's owner are asked to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Send {
        to: PeerId,
        id: RequestId,
        request: Request,
    },
    /// The k-of-n rule's decision about a wanted path.
    Decided {
        hash_part: String,
        decision: Decision,
    },
    /// The accepted NAR is being fetched: `Write`s of its bytes follow, then `Fetched` (or
    /// `Failed`).
    Fetching { hash_part: String, output: Accepted },
    /// Verified bytes of an accepted NAR, to write at `offset`.
    Write {
        hash_part: String,
        offset: u64,
        data: Vec<u8>,
    },
    /// Every byte of the accepted NAR was written; import it as `output` says.
    Fetched {
        hash_part: String,
        output: Accepted,
        /// What each peer contributed, and why any was dropped.
        peers: Vec<guixie_content::download::PeerReport>,
    },
    /// What every configured builder attests about a surveyed path.
    Surveyed(Box<Survey>),
    /// The wanted path cannot be had from the network (the reason says why).
    Failed { hash_part: String, reason: String },
    /// A log showed a split view, shrank or proved inconsistent: it is excluded from now on.
    Convicted { origin: String, detail: String },
}

#[derive(Clone, Debug)]
pub struct Config {
    pub policy: Policy,
    /// How long a lookup waits for builders' attestations before deciding with what came.
    pub collect_timeout_ms: u64,
    /// How long a peer has to answer one range request.
    pub range_timeout_ms: u64,
    pub segment_bytes: u64,
    /// Range requests in flight per peer.
    pub window: usize,
    /// The largest NAR a lookup fetches (the size is attested, but a builder may lie).
    pub max_nar_bytes: u64,
    /// How long a rejection is remembered: a path wanted again meanwhile fails at once with
    /// the same reason instead of asking every builder again.
    pub reject_ttl_ms: u64,
    /// Whether this node witnesses the policy's builders' logs (its [`Local`] cosigns).
    pub witness: bool,
}

impl Config {
    pub fn new(policy: Policy) -> Self {
        Config {
            policy,
            collect_timeout_ms: 5_000,
            range_timeout_ms: 10_000,
            segment_bytes: 256 << 10,
            window: 8,
            reject_ttl_ms: 60_000,
            max_nar_bytes: 256 << 30,
            witness: false,
        }
    }
}

enum Pending {
    Gossip,
    Attestations {
        hash_part: String,
        builder: String,
        generation: u64,
    },
    /// A witness's question to a log's node.
    Latest {
        builder: String,
    },
    Have {
        hash_part: String,
        generation: u64,
    },
    Range {
        hash_part: String,
        generation: u64,
        id: guixie_content::RequestId,
    },
}

pub struct Node<L> {
    cfg: Config,
    local: L,
    state: ClientState,
    /// Connected peers and the logs each says it keeps.
    peers: BTreeMap<PeerId, BTreeSet<String>>,
    next_id: u64,
    pending: BTreeMap<RequestId, (PeerId, Pending)>,
    lookups: BTreeMap<String, Lookup>,
    /// Surveys asked for while their path was being fetched.
    queued_surveys: BTreeSet<String>,
    /// The own logs' checkpoints last gossiped, and when they were last looked at.
    own_gossiped: (Vec<String>, u64),
    /// Whether a view of a log changed since [`Node::take_views_changed`] last said.
    views_changed: bool,
    /// Recent failures: hash part → (until when, why).
    failed: BTreeMap<String, (u64, String)>,
    governance: governance::Gossip,
    out: VecDeque<Output>,
}

impl<L: Local> Node<L> {
    pub fn new(cfg: Config, local: L, state: ClientState) -> Self {
        Node {
            cfg,
            local,
            state,
            peers: BTreeMap::new(),
            next_id: 0,
            pending: BTreeMap::new(),
            lookups: BTreeMap::new(),
            queued_surveys: BTreeSet::new(),
            own_gossiped: (vec![], 0),
            views_changed: false,
            failed: BTreeMap::new(),
            governance: governance::Gossip::default(),
            out: VecDeque::new(),
        }
    }

    /// What the node accepted of each log, to be saved by its owner.
    pub fn state(&self) -> &ClientState {
        &self.state
    }

    /// Whether [`Node::state`] changed since this was last asked (it is then to be saved: a
    /// witness must never forget what it cosigned).
    pub fn take_views_changed(&mut self) -> bool {
        std::mem::take(&mut self.views_changed)
    }

    pub fn local(&self) -> &L {
        &self.local
    }

    pub fn local_mut(&mut self) -> &mut L {
        &mut self.local
    }

    pub fn poll(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn send(&mut self, to: &str, request: Request, why: Pending) -> RequestId {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        self.pending.insert(id, (to.to_owned(), why));
        self.out.push_back(Output::Send {
            to: to.to_owned(),
            id,
            request,
        });
        id
    }

    fn gossip(&mut self, request: Request, except: Option<&str>) {
        let peers: Vec<PeerId> = self
            .peers
            .keys()
            .filter(|p| Some(p.as_str()) != except)
            .cloned()
            .collect();
        for p in peers {
            self.send(&p, request.clone(), Pending::Gossip);
        }
    }

    /// A new connection: introduce ourselves, then share every checkpoint we stand by.
    pub fn connected(&mut self, peer: &str, _now_ms: u64) {
        self.peers.entry(peer.to_owned()).or_default();
        let logs = self.local.own_logs();
        self.send(peer, Request::Hello { logs }, Pending::Gossip);
        let mut notes = self.local.checkpoints();
        notes.extend(
            self.state
                .logs
                .values()
                .filter(|v| !v.untrusted)
                .map(|v| v.checkpoint.clone()),
        );
        for note in notes {
            self.send(peer, Request::Checkpoint { note }, Pending::Gossip);
        }
        let split_views: Vec<(String, String)> = self
            .state
            .logs
            .values()
            .flat_map(|v| v.evidence.iter())
            .filter(|e| e.kind == "equivocation")
            .map(|e| (e.accepted.clone(), e.conflicting.clone()))
            .collect();
        for (first, second) in split_views {
            self.send(peer, Request::SplitView { first, second }, Pending::Gossip);
        }
        self.send_governance_to(peer);
    }

    /// The connection is gone: its outstanding requests failed.
    pub fn disconnected(&mut self, peer: &str, now_ms: u64) {
        self.peers.remove(peer);
        let theirs: Vec<RequestId> = self
            .pending
            .iter()
            .filter(|(_, (p, _))| p == peer)
            .map(|(id, _)| *id)
            .collect();
        for id in theirs {
            self.handle_response(peer, id, Err("disconnected".into()), now_ms);
        }
    }

    /// Answers a request from `from`.
    pub fn handle_request(&mut self, from: &str, request: Request, now_ms: u64) -> Response {
        match request {
            Request::Hello { logs } => {
                if logs.len() > MAX_PEER_LOGS || logs.iter().any(|l| l.len() > MAX_ORIGIN_LEN) {
                    return refused("too many logs or too long an origin");
                }
                self.peers
                    .insert(from.to_owned(), logs.into_iter().collect());
                self.ask_new_owners(now_ms);
                self.witness_logs_of(from);
                Response::Hello {
                    logs: self.local.own_logs(),
                }
            }
            Request::Checkpoint { note } => {
                self.relayed_checkpoint(from, &note);
                Response::Ack
            }
            Request::SplitView { first, second } => match self.split_view(from, &first, &second) {
                Ok(()) => Response::Ack,
                Err(e) => refused(&e),
            },
            Request::Attestations {
                hash_part,
                known_size,
                witnessed,
            } => {
                if !lookup::is_hash_part(&hash_part) {
                    return refused("not a store path hash part");
                }
                self.local
                    .attestations(&hash_part, known_size, witnessed)
                    .unwrap_or_else(|e| refused(&e))
            }
            Request::Latest { known_size } => self
                .local
                .latest(known_size)
                .unwrap_or_else(|e| refused(&e)),
            Request::Cosigned { note } => match self.local.add_cosignatures(&note) {
                Ok(()) => Response::Ack,
                Err(e) => refused(&e),
            },
            Request::Governance { document } => match self.governance_offered(from, document) {
                Ok(()) => Response::Ack,
                Err(e) => refused(&e),
            },
            Request::Have { root } => Response::Have {
                size: self.local.have(&root),
            },
            Request::Range { root, start, end } => {
                if end.saturating_sub(start) > MAX_RANGE_BYTES {
                    return refused(&format!("ranges are at most {MAX_RANGE_BYTES} bytes"));
                }
                match self.local.range(&root, start, end) {
                    Ok(bytes) => Response::Range { bytes },
                    Err(e) => refused(&e),
                }
            }
        }
    }

    /// A checkpoint someone passed on: it may only convict its log of a split view.
    fn relayed_checkpoint(&mut self, from: &str, note: &str) {
        let Some(builder) = origin_of(note).and_then(|o| self.cfg.policy.builder_by_log(o)) else {
            return;
        };
        let builder = builder.clone();
        // The log's own node says it moved on: a witness asks it for the proof.
        if self.cfg.witness
            && self
                .peers
                .get(from)
                .is_some_and(|l| l.contains(&builder.log_key.name))
        {
            self.ask_latest(from, &builder.name);
        }
        let accepted = self
            .state
            .logs
            .get(&builder.log_key.name)
            .map(|v| v.checkpoint.clone());
        let result = self.state.check_relayed(
            note.as_bytes(),
            &builder.log_key,
            &builder.witnesses,
            builder.witness_threshold,
        );
        if let (Err(Rejected::Equivocation { size, .. }), Some(first)) = (result, accepted) {
            self.convicted(
                &builder.log_key.name,
                format!("two checkpoints of size {size} with different roots"),
            );
            let second = note.to_owned();
            // To its bringer too: it holds the other history, and may not know of this one.
            self.gossip(Request::SplitView { first, second }, None);
        }
    }

    fn split_view(&mut self, from: &str, first: &str, second: &str) -> Result<(), String> {
        let builder = origin_of(first)
            .and_then(|o| self.cfg.policy.builder_by_log(o))
            .ok_or("a split view of a log this node does not follow")?
            .clone();
        let news = self
            .state
            .record_split_view(first.as_bytes(), second.as_bytes(), &builder.log_key)
            .map_err(|e| e.to_string())?;
        if news {
            self.convicted(
                &builder.log_key.name,
                "a split view reported by a peer and checked here".into(),
            );
            self.gossip(
                Request::SplitView {
                    first: first.to_owned(),
                    second: second.to_owned(),
                },
                Some(from),
            );
        }
        Ok(())
    }

    fn convicted(&mut self, origin: &str, detail: String) {
        self.views_changed = true;
        self.out.push_back(Output::Convicted {
            origin: origin.to_owned(),
            detail,
        });
    }

    /// A response (or the failure of the request) from `from`.
    pub fn handle_response(
        &mut self,
        from: &str,
        id: RequestId,
        response: Result<Response, String>,
        now_ms: u64,
    ) {
        let Some((peer, why)) = self.pending.remove(&id) else {
            return;
        };
        if peer != from {
            // Only the peer asked may answer.
            self.pending.insert(id, (peer, why));
            return;
        }
        match why {
            Pending::Gossip => {}
            Pending::Attestations {
                hash_part,
                builder,
                generation,
            } => self.on_attestations(from, &hash_part, &builder, generation, response, now_ms),
            Pending::Latest { builder } => self.on_latest(from, &builder, response),
            Pending::Have {
                hash_part,
                generation,
            } => self.on_have(from, &hash_part, generation, response, now_ms),
            Pending::Range {
                hash_part,
                generation,
                id,
            } => self.on_range(&hash_part, generation, id, response, now_ms),
        }
    }
}

fn refused(reason: &str) -> Response {
    Response::Refused {
        reason: reason.to_owned(),
    }
}

/// A checkpoint note's first line names its log.
fn origin_of(note: &str) -> Option<&str> {
    note.lines().next().filter(|o| !o.is_empty())
}

#[cfg(test)]
mod tests;
