//! Witnessing: a witness node asks each configured builder's log node for its latest
//! checkpoint with a consistency proof from the size it accepted, and cosigns it only when the
//! view advanced (or stood) by the usual checks; the cosigned note goes back to the log's
//! node, which serves it. Log nodes gossip their own checkpoints as their logs grow, which is
//! what makes witnesses ask. A witness accepts what it witnesses with no cosignature
//! required (its policy's thresholds are for others' logs it only reads), and its views must
//! be saved before its cosignature leaves ([`Node::take_views_changed`]).

use super::lookup::Advance;
use super::{Local, Node, Pending};
use crate::message::{Request, Response};

/// How often a node looks whether its own logs grew.
const OWN_CHECK_MS: u64 = 1_000;

impl<L: Local> Node<L> {
    /// As a witness: asks `peer` about every configured log it says it keeps.
    pub(super) fn witness_logs_of(&mut self, peer: &str) {
        if !self.cfg.witness {
            return;
        }
        let Some(logs) = self.peers.get(peer) else {
            return;
        };
        let builders: Vec<String> = self
            .cfg
            .policy
            .builders
            .iter()
            .filter(|b| logs.contains(&b.log_key.name))
            .map(|b| b.name.clone())
            .collect();
        for b in builders {
            self.ask_latest(peer, &b);
        }
    }

    pub(super) fn ask_latest(&mut self, peer: &str, builder: &str) {
        let Some(b) = self.cfg.policy.builder(builder) else {
            return;
        };
        let known_size = self.state.logs.get(&b.log_key.name).map(|v| v.size);
        self.send(
            peer,
            Request::Latest { known_size },
            Pending::Latest {
                builder: builder.to_owned(),
            },
        );
    }

    pub(super) fn on_latest(
        &mut self,
        from: &str,
        builder: &str,
        response: Result<Response, String>,
    ) {
        let Some(mut b) = self.cfg.policy.builder(builder).cloned() else {
            return;
        };
        // A witness judges a log by its own checks; others' cosignatures are not needed.
        b.witness_threshold = 0;
        let Ok(Response::Attestations {
            checkpoint,
            consistency,
            ..
        }) = response
        else {
            return;
        };
        if self.advance(from, &b, &checkpoint, &consistency) != Advance::Accepted {
            return;
        }
        if let Some(note) = self.local.cosign(&checkpoint) {
            self.send(from, Request::Cosigned { note }, Pending::Gossip);
        }
    }

    /// Gossips the own logs' checkpoints when they changed (the log grew, or a witness
    /// cosigned), at most every [`OWN_CHECK_MS`].
    pub(super) fn gossip_own_if_changed(&mut self, now_ms: u64) {
        if now_ms.saturating_sub(self.own_gossiped.1) < OWN_CHECK_MS {
            return;
        }
        self.own_gossiped.1 = now_ms;
        let notes = self.local.checkpoints();
        if notes == self.own_gossiped.0 {
            return;
        }
        self.own_gossiped.0 = notes.clone();
        for note in notes {
            self.gossip(Request::Checkpoint { note }, None);
        }
    }
}
