//! Gossip of governance documents. A node passes on what its own instance accepted, in the
//! order it accepted it: to a new peer all of it, to every peer what is new since it last
//! looked. What a peer sends is only ever judged by the own instance's rules
//! ([`Local::offer_governance`]); the node trusts no peer's word that a document counts.
//!
//! Requests on a connection may arrive out of order (a vote before its proposal), so a
//! refused document is kept, boundedly and per peer (one peer's junk cannot push out
//! another's), and offered again whenever another was accepted, and every second.

use std::collections::VecDeque;

use super::{Local, Node, PeerId, Pending};
use crate::message::Request;

/// Refused documents kept to be offered again, at most, in all and from one peer.
const MAX_WAITING: usize = 64;
const MAX_WAITING_PER_PEER: usize = 16;
/// How often the own instance's documents are looked at for new ones.
const CHECK_MS: u64 = 1_000;

#[derive(Default)]
pub(super) struct Gossip {
    /// How many of the own documents every connected peer has been sent.
    sent: Option<usize>,
    checked_ms: u64,
    waiting: VecDeque<(PeerId, String)>,
}

impl<L: Local> Node<L> {
    /// Everything the own instance accepted, to a peer that just connected.
    pub(super) fn send_governance_to(&mut self, peer: &str) {
        let documents = self.local.governance_documents();
        self.governance.sent.get_or_insert(documents.len());
        for document in documents.iter() {
            self.send(
                peer,
                Request::Governance {
                    document: document.clone(),
                },
                Pending::Gossip,
            );
        }
    }

    /// A peer's document: judged by the own rules; once accepted, passed on with whatever
    /// it unblocked.
    pub(super) fn governance_offered(
        &mut self,
        from: &str,
        document: String,
    ) -> Result<(), String> {
        self.governance.waiting.retain(|(_, d)| d != &document);
        match self.local.offer_governance(&document) {
            Ok(true) => {
                self.offer_waiting();
                self.gossip_new_governance(Some(from));
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => {
                self.keep_waiting(from, document);
                Err(e)
            }
        }
    }

    fn keep_waiting(&mut self, from: &str, document: String) {
        let waiting = &mut self.governance.waiting;
        if waiting.iter().filter(|(p, _)| p == from).count() >= MAX_WAITING_PER_PEER {
            let oldest = waiting
                .iter()
                .position(|(p, _)| p == from)
                .expect("counted");
            waiting.remove(oldest);
        } else if waiting.len() >= MAX_WAITING {
            waiting.pop_front();
        }
        waiting.push_back((from.to_owned(), document));
    }

    /// Offers the kept documents again until none more is accepted.
    fn offer_waiting(&mut self) {
        loop {
            let before = self.governance.waiting.len();
            let waiting = std::mem::take(&mut self.governance.waiting);
            for (peer, document) in waiting {
                if self.local.offer_governance(&document).is_err() {
                    self.governance.waiting.push_back((peer, document));
                }
            }
            if self.governance.waiting.len() == before {
                return;
            }
        }
    }

    /// Passes on the own documents accepted since they were last looked at (by `govern`
    /// commands in this store, or from peers), at most every [`CHECK_MS`], after offering the
    /// kept documents again.
    pub(super) fn gossip_governance_if_changed(&mut self, now_ms: u64) {
        if now_ms.saturating_sub(self.governance.checked_ms) < CHECK_MS {
            return;
        }
        self.governance.checked_ms = now_ms;
        // Kept documents are offered again every time: the journal may have changed, or
        // been busy when they came.
        if !self.governance.waiting.is_empty() {
            self.offer_waiting();
        }
        self.gossip_new_governance(None);
    }

    fn gossip_new_governance(&mut self, except: Option<&str>) {
        let documents = self.local.governance_documents();
        let sent = *self.governance.sent.get_or_insert(documents.len());
        self.governance.sent = Some(documents.len());
        for document in documents.iter().skip(sent) {
            self.gossip(
                Request::Governance {
                    document: document.clone(),
                },
                except,
            );
        }
    }
}
