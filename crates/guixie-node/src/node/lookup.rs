//! A lookup of one wanted output path: ask each configured builder's own node for its
//! attestations (with the checkpoint and consistency proof that make them count), decide by
//! the k-of-n rule, then fetch the accepted NAR by its BLAKE3 root from every peer that has
//! it, each chunk group verified before it is written.

use std::collections::{BTreeMap, BTreeSet};

use guixie_attest::OutputRef;
use guixie_content::{Blob, Download};
use guixie_log::merkle::Hash;
use guixie_log::verifier::{Accepted as Advanced, Rejected};
use guixie_trust::rule::{decide, Case, Verdict, Vote};
use guixie_trust::votes::{votes, Builder};

use super::{Local, Node, Output, PeerId, Pending};
use crate::message::{Request, Response};

/// An output the network accepted: what to import it as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub path: String,
    pub nar_hash: String,
    pub nar_size: u64,
    pub blob: Blob,
    /// Base names, as attested.
    pub references: Vec<String>,
    /// The builders whose attestations carried it.
    pub attesting: Vec<String>,
}

pub(super) struct Lookup {
    started_ms: u64,
    /// Tells this lookup's answers from those of an earlier lookup of the same path.
    generation: u64,
    /// Whether the accepted output is to be fetched ([`Node::want`]).
    pub(super) fetch: bool,
    /// Whether every builder's answer is to be reported ([`Node::survey`]).
    pub(super) survey: bool,
    pub(super) phase: Phase,
}

pub(super) enum Phase {
    Collecting {
        /// (builder, peer) pairs asked: every peer that says it keeps the builder's log is
        /// asked, so an impostor can neither hide the builder nor choose what it said.
        asked: BTreeSet<(String, PeerId)>,
        awaiting: BTreeSet<(String, PeerId)>,
        retried: BTreeSet<(String, PeerId)>,
        votes: Vec<Vote>,
        /// What each builder's proven ballots are for, by label.
        outputs: BTreeMap<(String, String), OutputRef>,
    },
    Fetching {
        accepted: Accepted,
        download: Box<Download>,
        unanswered: usize,
    },
}

/// How long a peer that said it is busy rests before it is asked again.
const BUSY_REST_MS: u64 = 500;

/// The node itself, as the keeper of its own logs (never a peer's name: those are peer ids).
const SELF: &str = "(this node)";

/// What became of a checkpoint a claimant sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Advance {
    /// The view is at it (advanced, or was already).
    Accepted,
    /// It needs a consistency proof from where the view is now.
    NoProof,
    Refused,
}

/// 32 Nix32 characters.
pub(super) fn is_hash_part(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| guixie_formats::nixbase32::ALPHABET.contains(&b))
}

impl<L: Local> Node<L> {
    /// Starts looking for the output path with `hash_part` (a lookup already running goes on).
    pub fn want(&mut self, hash_part: &str, now_ms: u64) {
        if let Some(lookup) = self.lookups.get_mut(hash_part) {
            lookup.fetch = true;
            return;
        }
        if !is_hash_part(hash_part) {
            self.out.push_back(Output::Failed {
                hash_part: hash_part.to_owned(),
                reason: "not a store path hash part".into(),
            });
            return;
        }
        self.failed.retain(|_, (until, _)| *until > now_ms);
        if let Some((_, reason)) = self.failed.get(hash_part) {
            self.out.push_back(Output::Failed {
                hash_part: hash_part.to_owned(),
                reason: reason.clone(),
            });
            return;
        }
        self.start_lookup(hash_part, true, false, now_ms);
    }

    pub(super) fn start_lookup(&mut self, hash_part: &str, fetch: bool, survey: bool, now_ms: u64) {
        let generation = self.next_id;
        self.next_id += 1;
        self.lookups.insert(
            hash_part.to_owned(),
            Lookup {
                started_ms: now_ms,
                generation,
                fetch,
                survey,
                phase: Phase::Collecting {
                    asked: BTreeSet::new(),
                    awaiting: BTreeSet::new(),
                    retried: BTreeSet::new(),
                    votes: vec![],
                    outputs: BTreeMap::new(),
                },
            },
        );
        self.ask_new_owners(now_ms);
        self.decide_if_complete(hash_part, now_ms, false);
    }

    /// Asks, for every collecting lookup, each peer that says it keeps a configured builder's
    /// log and was not asked yet.
    pub(super) fn ask_new_owners(&mut self, now_ms: u64) {
        let mut asks = Vec::new();
        let own = self.local.own_logs();
        let me = (SELF.to_owned(), own.into_iter().collect::<BTreeSet<_>>());
        for (hash_part, lookup) in &self.lookups {
            let Phase::Collecting { asked, .. } = &lookup.phase else {
                continue;
            };
            for b in &self.cfg.policy.builders {
                // A builder's own node is one of its log's keepers too.
                for (peer, logs) in self.peers.iter().chain([(&me.0, &me.1)]) {
                    let pair = (b.name.clone(), peer.clone());
                    if logs.contains(&b.log_key.name) && !asked.contains(&pair) {
                        asks.push((hash_part.clone(), pair));
                    }
                }
            }
        }
        for (hash_part, (builder, peer)) in asks {
            let generation = match self.lookups.get_mut(&hash_part) {
                Some(Lookup {
                    phase:
                        Phase::Collecting {
                            asked, awaiting, ..
                        },
                    generation,
                    ..
                }) => {
                    asked.insert((builder.clone(), peer.clone()));
                    awaiting.insert((builder.clone(), peer.clone()));
                    *generation
                }
                _ => continue,
            };
            if peer == SELF {
                let b = self.cfg.policy.builder(&builder);
                let (known, witnessed) = b
                    .map(|b| {
                        let known = self.state.logs.get(&b.log_key.name).map(|v| v.size);
                        (known, b.witness_threshold > 0)
                    })
                    .unwrap_or_default();
                let answer = self.local.attestations(&hash_part, known, witnessed);
                self.on_attestations(SELF, &hash_part, &builder, generation, answer, now_ms);
            } else {
                self.ask_attestations(&peer, &hash_part, &builder, generation);
            }
        }
    }

    /// Asks `peer` for `builder`'s attestations of the path, from the size accepted so far.
    fn ask_attestations(&mut self, peer: &str, hash_part: &str, builder: &str, generation: u64) {
        let Some(b) = self.cfg.policy.builder(builder) else {
            return;
        };
        let request = Request::Attestations {
            hash_part: hash_part.to_owned(),
            known_size: self.state.logs.get(&b.log_key.name).map(|v| v.size),
            witnessed: b.witness_threshold > 0,
        };
        self.send(
            peer,
            request,
            Pending::Attestations {
                hash_part: hash_part.to_owned(),
                builder: builder.to_owned(),
                generation,
            },
        );
    }

    pub(super) fn on_attestations(
        &mut self,
        from: &str,
        hash_part: &str,
        builder_name: &str,
        generation: u64,
        response: Result<Response, String>,
        now_ms: u64,
    ) {
        // An answer to an earlier lookup of the same path is not this one's.
        if self.lookups.get(hash_part).map(|l| l.generation) != Some(generation) {
            return;
        }
        let Some(builder) = self.cfg.policy.builder(builder_name).cloned() else {
            return;
        };
        let mut ballots = Vec::new();
        if let Ok(Response::Attestations {
            checkpoint,
            consistency,
            bundle,
        }) = response
        {
            let advanced = self.advance(from, &builder, &checkpoint, &consistency);
            // The view moved on while this answer was on its way (another claimant's, older,
            // came first): ask once more, from where the view is now.
            if advanced == Advance::NoProof && !self.retried(hash_part, builder_name, from) {
                self.ask_attestations(from, hash_part, builder_name, generation);
                return;
            }
            let view = self.state.logs.get(&builder.log_key.name);
            ballots = votes(&builder, view, &bundle, hash_part).0;
        }
        if let Some(Lookup {
            phase:
                Phase::Collecting {
                    awaiting,
                    votes,
                    outputs,
                    ..
                },
            ..
        }) = self.lookups.get_mut(hash_part)
        {
            awaiting.remove(&(builder_name.to_owned(), from.to_owned()));
            for b in ballots {
                if b.vote.proof_ok {
                    outputs.insert((b.vote.builder.clone(), b.vote.output.clone()), b.output);
                }
                // The same entry from two claimants is one vote.
                if !votes.contains(&b.vote) {
                    votes.push(b.vote);
                }
            }
        }
        self.decide_if_complete(hash_part, now_ms, false);
    }

    /// Takes a checkpoint a claimant of `builder`'s log sent, with its consistency proof from
    /// the size accepted before: the view advances only if it is signed, consistent and not
    /// shrinking, and is then gossiped; a split view convicts the log.
    pub(super) fn advance(
        &mut self,
        from: &str,
        builder: &Builder,
        checkpoint: &str,
        consistency: &[String],
    ) -> Advance {
        let proof: Result<Vec<Hash>, String> = consistency
            .iter()
            .map(|h| {
                data_encoding::HEXLOWER_PERMISSIVE
                    .decode(h.as_bytes())
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| format!("consistency hash {h:?} is not 32 hex bytes"))
            })
            .collect();
        let before = self.state.logs.get(&builder.log_key.name).cloned();
        let accepted_before = before.as_ref().map(|v| v.checkpoint.clone());
        let result = self.state.accept(
            checkpoint.as_bytes(),
            &builder.log_key,
            &builder.witnesses,
            builder.witness_threshold,
            |_, _| proof,
        );
        match result {
            Ok(Advanced::FirstSeen { .. } | Advanced::Advanced { .. }) => {
                self.views_changed = true;
                self.gossip(
                    Request::Checkpoint {
                        note: checkpoint.to_owned(),
                    },
                    Some(from),
                );
                Advance::Accepted
            }
            Ok(Advanced::Unchanged { .. }) => Advance::Accepted,
            // Two signed notes of one size with different roots convict the log whoever
            // brought the second.
            Err(e @ Rejected::Equivocation { .. }) => {
                self.convicted(&builder.log_key.name, e.to_string());
                if let Some(first) = accepted_before {
                    let second = checkpoint.to_owned();
                    self.gossip(Request::SplitView { first, second }, None);
                }
                Advance::Refused
            }
            // An older note, or a proof that does not connect, may come from a peer that only
            // poses as the log's node (a proof is not signed): the answer does not count, and
            // the log is not blamed for it.
            Err(Rejected::Shrink { .. } | Rejected::Inconsistent { .. }) => {
                match before {
                    Some(view) => {
                        self.state.logs.insert(builder.log_key.name.clone(), view);
                    }
                    None => {
                        self.state.logs.remove(&builder.log_key.name);
                    }
                }
                Advance::Refused
            }
            Err(Rejected::NoProof(..)) => Advance::NoProof,
            Err(_) => Advance::Refused,
        }
    }

    /// Whether (builder, peer) was asked again already; marks it so.
    fn retried(&mut self, hash_part: &str, builder: &str, peer: &str) -> bool {
        match self.lookups.get_mut(hash_part) {
            Some(Lookup {
                phase: Phase::Collecting { retried, .. },
                ..
            }) => !retried.insert((builder.to_owned(), peer.to_owned())),
            _ => true,
        }
    }

    /// Decides when every builder was asked and answered; or, once those that could be asked
    /// answered, if k of them agree (builders unreachable then are not waited for); or at the
    /// deadline (`force`) with what came.
    fn decide_if_complete(&mut self, hash_part: &str, now_ms: u64, force: bool) {
        let Some(Lookup {
            phase:
                Phase::Collecting {
                    asked,
                    awaiting,
                    votes,
                    ..
                },
            fetch,
            survey,
            ..
        }) = self.lookups.get(hash_part)
        else {
            return;
        };
        let (fetch, survey) = (*fetch, *survey);
        let case = Case {
            trusted_builders: self
                .cfg
                .policy
                .builders
                .iter()
                .map(|b| b.name.clone())
                .collect(),
            k: self.cfg.policy.k,
            attestations: votes.clone(),
        };
        let decision = decide(&case);
        let all_asked = self
            .cfg
            .policy
            .builders
            .iter()
            .all(|b| asked.iter().any(|(name, _)| *name == b.name));
        // Builders not heard from could make a second output reach k only when 2k <= n.
        let n = self.cfg.policy.builders.len() as u64;
        // A survey reports every builder, so it waits for all of them.
        let early = !survey && decision.result == Verdict::Accept && 2 * self.cfg.policy.k > n;
        let ready = force || awaiting.is_empty() && (all_asked || early);
        if !ready {
            return;
        }
        if survey {
            let report = self.survey_report(hash_part, &decision);
            self.out.push_back(Output::Surveyed(Box::new(report)));
            if !fetch {
                self.lookups.remove(hash_part);
                return;
            }
        }
        let Some(Lookup {
            phase: Phase::Collecting { outputs, .. },
            ..
        }) = self.lookups.get(hash_part)
        else {
            return;
        };
        // From the proven ballot of a builder the decision counted, never another's.
        let chosen = decision.output.as_ref().and_then(|label| {
            decision
                .attesting
                .iter()
                .find_map(|b| outputs.get(&(b.clone(), label.clone())))
                .cloned()
        });
        self.out.push_back(Output::Decided {
            hash_part: hash_part.to_owned(),
            decision: decision.clone(),
        });
        let max_nar = self.cfg.max_nar_bytes;
        let accepted = chosen.ok_or_else(|| decision.reason.clone()).and_then(|o| {
            if o.nar_size > max_nar {
                return Err(format!(
                    "the accepted NAR is {} bytes, more than the {max_nar} this node takes",
                    o.nar_size
                ));
            }
            let root = o
                .blake3
                .as_deref()
                .ok_or("the accepted attestations give no BLAKE3 root to fetch it by")
                .and_then(|r| Blob::parse_root(r).map_err(|_| "a malformed BLAKE3 root"))
                .map_err(str::to_owned)?;
            Ok(Accepted {
                path: o.path.clone(),
                nar_hash: o.nar_hash.clone(),
                nar_size: o.nar_size,
                blob: Blob {
                    root,
                    size: o.nar_size,
                },
                references: o.references.clone().unwrap_or_default(),
                attesting: decision.attesting.clone(),
            })
        });
        match accepted {
            Err(reason) => self.fail(hash_part, reason, now_ms),
            Ok(accepted) => self.fetch(hash_part, accepted, now_ms),
        }
    }

    fn fail(&mut self, hash_part: &str, reason: String, now_ms: u64) {
        self.end_lookup(hash_part, now_ms);
        self.failed.insert(
            hash_part.to_owned(),
            (now_ms + self.cfg.reject_ttl_ms, reason.clone()),
        );
        self.out.push_back(Output::Failed {
            hash_part: hash_part.to_owned(),
            reason,
        });
    }

    fn fetch(&mut self, hash_part: &str, accepted: Accepted, now_ms: u64) {
        let blob = accepted.blob;
        let Some(generation) = self.lookups.get(hash_part).map(|l| l.generation) else {
            return;
        };
        let peers: Vec<PeerId> = self.peers.keys().cloned().collect();
        let download = Box::new(Download::new(
            blob,
            self.cfg.segment_bytes,
            self.cfg.window,
            self.cfg.range_timeout_ms,
        ));
        if let Some(lookup) = self.lookups.get_mut(hash_part) {
            lookup.started_ms = now_ms;
            self.out.push_back(Output::Fetching {
                hash_part: hash_part.to_owned(),
                output: accepted.clone(),
            });
            lookup.phase = Phase::Fetching {
                accepted,
                download,
                unanswered: peers.len(),
            };
        }
        if peers.is_empty() {
            return self.fail(
                hash_part,
                "no peer is connected to fetch it from".into(),
                now_ms,
            );
        }
        for p in peers {
            self.send(
                &p,
                Request::Have { root: blob.root },
                Pending::Have {
                    hash_part: hash_part.to_owned(),
                    generation,
                },
            );
        }
    }

    pub(super) fn on_have(
        &mut self,
        from: &str,
        hash_part: &str,
        generation: u64,
        response: Result<Response, String>,
        now_ms: u64,
    ) {
        let Some(Lookup {
            phase:
                Phase::Fetching {
                    download,
                    unanswered,
                    ..
                },
            generation: current,
            ..
        }) = self.lookups.get_mut(hash_part)
        else {
            return;
        };
        if *current != generation {
            return;
        }
        *unanswered = unanswered.saturating_sub(1);
        // A peer that has it with another size is simply not asked: the size is attested.
        if let Ok(Response::Have { size: Some(size) }) = response {
            if size == download.blob().size {
                download.add_peer(from);
            }
        }
        self.pump(hash_part, now_ms);
    }

    pub(super) fn on_range(
        &mut self,
        hash_part: &str,
        generation: u64,
        id: guixie_content::RequestId,
        response: Result<Response, String>,
        now_ms: u64,
    ) {
        let Some(Lookup {
            phase: Phase::Fetching { download, .. },
            generation: current,
            ..
        }) = self.lookups.get_mut(hash_part)
        else {
            return;
        };
        if *current != generation {
            return;
        }
        let writes = match response {
            Ok(Response::Range { bytes }) => download.on_response(id, &bytes),
            Ok(Response::Refused { reason }) if reason.starts_with(crate::message::BUSY) => {
                download.on_busy(id, now_ms, BUSY_REST_MS);
                vec![]
            }
            Ok(Response::Refused { reason }) => {
                download.on_failure(id, &format!("refused: {reason}"));
                vec![]
            }
            Ok(other) => {
                download.on_failure(id, &format!("answered {} to a range", kind(&other)));
                vec![]
            }
            Err(e) => {
                download.on_failure(id, &e);
                vec![]
            }
        };
        for w in writes {
            self.out.push_back(Output::Write {
                hash_part: hash_part.to_owned(),
                offset: w.offset,
                data: w.data,
            });
        }
        self.pump(hash_part, now_ms);
    }

    /// Sends the range requests a fetching lookup is ready for; settles it when done.
    fn pump(&mut self, hash_part: &str, now_ms: u64) {
        let Some(Lookup {
            phase:
                Phase::Fetching {
                    accepted,
                    download,
                    unanswered,
                },
            generation,
            ..
        }) = self.lookups.get_mut(hash_part)
        else {
            return;
        };
        let generation = *generation;
        if download.is_complete() {
            let output = accepted.clone();
            let peers = download.peers();
            self.end_lookup(hash_part, now_ms);
            self.out.push_back(Output::Fetched {
                hash_part: hash_part.to_owned(),
                output,
                peers,
            });
            return;
        }
        // Peers join only by answering `Have`: until every one has, none left is no failure.
        if *unanswered == 0 {
            if download.peers().is_empty() {
                return self.fail(hash_part, "no connected peer has it".into(), now_ms);
            }
            if let Some(e) = download.failure() {
                return self.fail(hash_part, e.to_string(), now_ms);
            }
        }
        let root = download.blob().root;
        let requests = download.requests(now_ms);
        for r in requests {
            self.send(
                &r.peer,
                Request::Range {
                    root,
                    start: r.start,
                    end: r.end,
                },
                Pending::Range {
                    hash_part: hash_part.to_owned(),
                    generation,
                    id: r.id,
                },
            );
        }
    }

    /// Deadlines: a lookup still collecting decides with what it has; a fetch drops peers
    /// that stopped answering.
    pub fn tick(&mut self, now_ms: u64) {
        self.gossip_own_if_changed(now_ms);
        self.gossip_governance_if_changed(now_ms);
        let hash_parts: Vec<String> = self.lookups.keys().cloned().collect();
        for h in hash_parts {
            let Some(lookup) = self.lookups.get_mut(&h) else {
                continue;
            };
            match &mut lookup.phase {
                Phase::Collecting { .. } => {
                    if now_ms.saturating_sub(lookup.started_ms) >= self.cfg.collect_timeout_ms {
                        self.decide_if_complete(&h, now_ms, true);
                    }
                }
                Phase::Fetching { download, .. } => {
                    download.on_tick(now_ms);
                    self.pump(&h, now_ms);
                }
            }
        }
    }
}

fn kind(r: &Response) -> &'static str {
    match r {
        Response::Hello { .. } => "Hello",
        Response::Ack => "Ack",
        Response::Attestations { .. } => "Attestations",
        Response::Have { .. } => "Have",
        Response::Range { .. } => "Range",
        Response::Refused { .. } => "Refused",
    }
}
