//! Gossip of governance documents. A node passes on what its own instance accepted, in the
//! order it accepted it: to a new peer all of it, to every peer what is new since it last
//! looked. What a peer sends is only ever judged by the own instance's rules
//! ([`Local::offer_governance`]); the node trusts no peer's word that a document counts.
//!
//! Requests on a connection may arrive out of order (a vote before its proposal), so a
//! refused document is kept, boundedly, and offered again whenever another was accepted.

use std::collections::VecDeque;

use super::{Local, Node, Pending};
use crate::message::Request;

/// Refused documents kept to be offered again, at most.
const MAX_WAITING: usize = 64;
/// How often the own instance's documents are looked at for new ones.
const CHECK_MS: u64 = 1_000;

#[derive(Default)]
pub(super) struct Gossip {
    /// How many of the own documents every connected peer has been sent.
    sent: Option<usize>,
    checked_ms: u64,
    waiting: VecDeque<String>,
}

impl<L: Local> Node<L> {
    /// Everything the own instance accepted, to a peer that just connected.
    pub(super) fn send_governance_to(&mut self, peer: &str) {
        let documents = self.local.governance_documents();
        self.governance.sent.get_or_insert(documents.len());
        for document in documents {
            self.send(peer, Request::Governance { document }, Pending::Gossip);
        }
    }

    /// A peer's document: judged by the own rules; once accepted, passed on with whatever
    /// it unblocked.
    pub(super) fn governance_offered(&mut self, document: String) -> Result<(), String> {
        if self.governance.waiting.contains(&document) {
            return Ok(());
        }
        match self.local.offer_governance(&document) {
            Ok(true) => {
                self.offer_waiting();
                self.gossip_new_governance();
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => {
                if self.governance.waiting.len() == MAX_WAITING {
                    self.governance.waiting.pop_front();
                }
                self.governance.waiting.push_back(document);
                Err(e)
            }
        }
    }

    /// Offers the kept documents again until none more is accepted.
    fn offer_waiting(&mut self) {
        loop {
            let before = self.governance.waiting.len();
            let waiting = std::mem::take(&mut self.governance.waiting);
            for document in waiting {
                match self.local.offer_governance(&document) {
                    Ok(_) => {}
                    Err(_) => self.governance.waiting.push_back(document),
                }
            }
            if self.governance.waiting.len() == before {
                return;
            }
        }
    }

    /// Passes on the own documents accepted since they were last looked at (by `govern`
    /// commands in this store, or from peers), at most every [`CHECK_MS`].
    pub(super) fn gossip_governance_if_changed(&mut self, now_ms: u64) {
        if now_ms.saturating_sub(self.governance.checked_ms) < CHECK_MS {
            return;
        }
        self.governance.checked_ms = now_ms;
        self.gossip_new_governance();
    }

    fn gossip_new_governance(&mut self) {
        let documents = self.local.governance_documents();
        let sent = *self.governance.sent.get_or_insert(documents.len());
        self.governance.sent = Some(documents.len());
        for document in documents.into_iter().skip(sent) {
            self.gossip(Request::Governance { document }, None);
        }
    }
}
