//! The journal as the node sees it: the documents it gossips, and the peers' documents it
//! offers to this instance's rules. The instance is replayed once per change of the journal
//! and each offer is judged on a copy of it, so a document the rules refuse costs neither a
//! replay nor the journal's lock; only one they accept is recorded, under the lock, which a
//! node never waits for.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::SystemTime;

use guixie_env::Clock;
use guixie_govern::Instance;
use guixie_store::LocalStore;

use super::journal::{self, Gossiped, Journal};

/// A journal file's length and modification time.
type Stamp = (u64, SystemTime);

struct Read {
    stamp: Stamp,
    documents: Arc<[String]>,
    instance: Option<Instance>,
}

pub struct JournalBook {
    store: Arc<LocalStore>,
    clock: Arc<dyn Clock>,
    read: RefCell<Option<Read>>,
}

impl JournalBook {
    pub fn new(store: Arc<LocalStore>, clock: Arc<dyn Clock>) -> Self {
        JournalBook {
            store,
            clock,
            read: RefCell::new(None),
        }
    }

    /// The journal as of its current stamp, read again only when it changed; on a read
    /// error the previous reading stands (warned about once per change).
    fn refresh(&self) {
        let stamp = std::fs::metadata(journal::dir(&self.store).join("journal.jsonl"))
            .and_then(|m| Ok((m.len(), m.modified()?)))
            .ok();
        let mut read = self.read.borrow_mut();
        let Some(stamp) = stamp else {
            *read = None;
            return;
        };
        if read.as_ref().is_some_and(|r| r.stamp == stamp) {
            return;
        }
        let fresh = journal::gossipable(&self.store)
            .and_then(|documents| Ok((documents, Journal::read(&self.store)?)));
        match fresh {
            Ok((documents, instance)) => {
                *read = Some(Read {
                    stamp,
                    documents: documents.into(),
                    instance,
                })
            }
            Err(e) => {
                eprintln!("guixie node: warning: the governance journal cannot be read: {e:#}");
                if let Some(r) = read.as_mut() {
                    r.stamp = stamp;
                }
            }
        }
    }
}

impl guixie_p2p::local::GovernanceBook for JournalBook {
    fn documents(&self) -> Arc<[String]> {
        self.refresh();
        self.read
            .borrow()
            .as_ref()
            .map_or_else(|| Arc::from([]), |r| r.documents.clone())
    }

    /// Refusals go to the peer: they name the rule, never this store's files.
    fn offer(&mut self, document: &str) -> Result<bool, String> {
        let gossiped = Gossiped::parse(document)?;
        self.refresh();
        let now = self.clock.unix_seconds();
        {
            let read = self.read.borrow();
            let read = read.as_ref().ok_or("this node's store has no governance")?;
            if read.documents.iter().any(|d| d == document) {
                return Ok(false);
            }
            let mut trial = read
                .instance
                .clone()
                .ok_or("this node's store has no governance")?;
            gossiped.judge(&mut trial, now).map_err(|e| e.to_string())?;
        }
        let accepted = match Journal::try_open(&self.store) {
            Ok(Some(mut journal)) => journal.offer(&self.store, &gossiped, now),
            Ok(None) => return Err("busy: this store's governance journal is in use".into()),
            Err(e) => Err(e),
        };
        if let Err(e) = accepted {
            eprintln!("guixie node: warning: a governance document was not recorded: {e:#}");
            return Err("not recorded (see the node's log)".into());
        }
        eprintln!(
            "{}",
            serde_json::json!({"event": "governance", "accepted": kind(&gossiped)})
        );
        Ok(true)
    }
}

fn kind(document: &Gossiped) -> &'static str {
    match document {
        Gossiped::Proposal(_) => "proposal",
        Gossiped::Vote(_) => "vote",
        Gossiped::Withdrawal(_) => "withdrawal",
        Gossiped::States(_) => "states",
    }
}
