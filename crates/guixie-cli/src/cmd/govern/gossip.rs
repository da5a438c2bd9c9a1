//! The journal as the node sees it: the documents it gossips, and the peers' documents it
//! offers to this instance's rules.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::SystemTime;

use guixie_env::Clock;
use guixie_store::LocalStore;

use super::journal::{self, Journal};

/// A journal file's length and modification time.
type Stamp = (u64, SystemTime);

pub struct JournalBook {
    store: Arc<LocalStore>,
    clock: Arc<dyn Clock>,
    /// The documents as of the journal file's (length, modification time): the node asks
    /// every second, and the journal rarely changes.
    read: RefCell<Option<(Stamp, Vec<String>)>>,
}

impl JournalBook {
    pub fn new(store: Arc<LocalStore>, clock: Arc<dyn Clock>) -> Self {
        JournalBook {
            store,
            clock,
            read: RefCell::new(None),
        }
    }
}

impl guixie_p2p::local::GovernanceBook for JournalBook {
    fn documents(&self) -> Vec<String> {
        let stamp = std::fs::metadata(journal::dir(&self.store).join("journal.jsonl"))
            .and_then(|m| Ok((m.len(), m.modified()?)))
            .ok();
        let mut read = self.read.borrow_mut();
        match (&*read, stamp) {
            (Some((seen, documents)), Some(now)) if *seen == now => documents.clone(),
            (_, None) => vec![],
            (_, Some(now)) => match journal::gossipable(&self.store) {
                Ok(documents) => {
                    *read = Some((now, documents.clone()));
                    documents
                }
                Err(e) => {
                    eprintln!("guixie node: warning: the governance journal cannot be read: {e:#}");
                    vec![]
                }
            },
        }
    }

    fn offer(&mut self, document: &str) -> Result<bool, String> {
        // What is not even a governance envelope costs no journal read.
        let envelope =
            guixie_dsse::Envelope::parse(document.as_bytes(), guixie_govern::MAX_PROPOSAL_BYTES)
                .map_err(|e| format!("not a governance document: {e}"))?;
        if self.documents().iter().any(|d| d == document) {
            return Ok(false);
        }
        Journal::open(&self.store)
            .and_then(|mut journal| {
                journal.offer(&self.store, document.as_bytes(), self.clock.unix_seconds())
            })
            .map_err(|e| format!("{e:#}"))?;
        eprintln!(
            "{}",
            serde_json::json!({"event": "governance", "accepted": envelope.payload_type})
        );
        Ok(true)
    }
}
