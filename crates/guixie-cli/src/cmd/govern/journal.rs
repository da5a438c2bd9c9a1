//! An instance's governance on disk: its first state and a journal of every document it
//! accepted, in order, with the time it accepted each. Loading replays the journal through
//! `guixie-govern`'s state machine, so what holds is always recomputed from signed documents
//! (evaluations keep only the accepted extensions, under the journal's hash). Each accepted document is also appended to the store's
//! transparency log, so peers can audit the instance's whole history.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use guixie_govern::{Effect, Instance};
use guixie_store::LocalStore;
use serde::{Deserialize, Serialize};

/// Payload type of the log entries guixie writes when it applies a proposal or changes
/// generation (signed with the store's builder key).
pub const RECORD_PAYLOAD_TYPE: &str = "application/vnd.guixie.governance.record.v1+json";

/// Largest journal accepted (about 100 000 votes).
const MAX_JOURNAL_BYTES: u64 = 256 << 20;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    /// The guixie version the instance ran when it was made.
    version: String,
    created: i64,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
enum Entry {
    Proposal {
        time: i64,
        document: String,
    },
    Withdraw {
        time: i64,
        document: String,
    },
    Vote {
        time: i64,
        document: String,
    },
    Apply {
        time: i64,
        index: u64,
    },
    /// States both quorums signed, one after the other (only the last must be fresh).
    States {
        time: i64,
        documents: Vec<String>,
    },
}

pub struct Journal {
    dir: PathBuf,
    pub instance: Instance,
    _lock: std::fs::File,
}

pub fn dir(store: &LocalStore) -> PathBuf {
    store.state_dir().join("govern")
}

impl Journal {
    /// Makes the instance's governance from its first signed state.
    pub fn create(store: &LocalStore, genesis: &[u8], now: i64) -> anyhow::Result<Journal> {
        let dir = dir(store);
        let version = env!("CARGO_PKG_VERSION");
        let instance = Instance::new(genesis, version, now)?;
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let lock = lock(&dir)?;
        if dir.join("genesis.json").exists() {
            bail!(
                "{} already holds this store's governance; an instance is made once",
                dir.display()
            );
        }
        let header = Header {
            version: version.into(),
            created: now,
        };
        write_new(&dir.join("instance.json"), &serde_json::to_vec(&header)?)?;
        write_new(&dir.join("journal.jsonl"), b"")?;
        append_log(store, genesis)?;
        // Written last: a crash before this leaves no instance, and init can run again.
        write_new(&dir.join("genesis.json"), genesis)?;
        Ok(Journal {
            dir,
            instance,
            _lock: lock,
        })
    }

    /// Loads the instance by replaying its journal; holds its lock until dropped.
    pub fn open(store: &LocalStore) -> anyhow::Result<Journal> {
        let dir = dir(store);
        if !dir.join("genesis.json").exists() {
            bail!(
                "this store has no governance yet: `guixie govern init STATE` makes it (looked in {})",
                dir.display()
            );
        }
        let lock = lock(&dir)?;
        Ok(Journal {
            instance: replay(&dir)?,
            dir,
            _lock: lock,
        })
    }

    /// The instance as its journal says now, without taking the lock (for readers such as
    /// evaluations, which must not wait for a build another command runs); None without
    /// governance.
    pub fn read(store: &LocalStore) -> anyhow::Result<Option<Instance>> {
        let dir = dir(store);
        if !dir.join("genesis.json").exists() {
            return Ok(None);
        }
        replay(&dir).map(Some)
    }

    /// [`Journal::read`], with the error [`Journal::open`] gives when there is no governance.
    pub fn read_existing(store: &LocalStore) -> anyhow::Result<Instance> {
        match Journal::read(store)? {
            Some(instance) => Ok(instance),
            None => bail!(
                "this store has no governance yet: `guixie govern init STATE` makes it (looked in {})",
                dir(store).display()
            ),
        }
    }

    /// Accepts a proposal; it is kept (journal and log) with its members' signatures only.
    pub fn propose(
        &mut self,
        store: &LocalStore,
        document: &[u8],
        now: i64,
    ) -> anyhow::Result<u64> {
        // The rules check a trust policy's shape; that a node can use its keys is checked
        // here, before a quorum can sign one it would refuse.
        if let Ok(p) = guixie_govern::proposal::SignedProposal::parse(document) {
            if let guixie_govern::Change::TrustPolicy(policy) = &p.doc.change {
                super::policy::to_node(policy)?;
            }
        }
        let index = self.instance.propose(document, now)?;
        let kept = self.instance.proposals[&index].envelope.to_json();
        append_log(store, kept.as_bytes())?;
        self.record(&Entry::Proposal {
            time: now,
            document: kept,
        })?;
        Ok(index)
    }

    /// Counts a vote; it is kept with its voter's signature only.
    pub fn vote(
        &mut self,
        store: &LocalStore,
        document: &[u8],
        now: i64,
    ) -> anyhow::Result<(u64, guixie_govern::Status)> {
        let counted = self.instance.vote(document, now)?;
        let kept = counted.envelope.to_json();
        append_log(store, kept.as_bytes())?;
        self.record(&Entry::Vote {
            time: now,
            document: kept,
        })?;
        Ok((counted.index, counted.status))
    }

    /// Takes back an undecided proposal.
    pub fn withdraw(
        &mut self,
        store: &LocalStore,
        document: &[u8],
        now: i64,
    ) -> anyhow::Result<u64> {
        let (index, kept) = self.instance.withdraw(document, now)?;
        let kept = kept.to_json();
        append_log(store, kept.as_bytes())?;
        self.record(&Entry::Withdraw {
            time: now,
            document: kept,
        })?;
        Ok(index)
    }

    /// Rotates through states both quorums signed, in order.
    pub fn rotate(
        &mut self,
        store: &LocalStore,
        chain: &[Vec<u8>],
        now: i64,
    ) -> anyhow::Result<u64> {
        let refs: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
        let version = self.instance.rotate(&refs, now)?;
        for document in chain {
            append_log(store, document)?;
        }
        self.record(&Entry::States {
            time: now,
            documents: chain
                .iter()
                .map(|d| String::from_utf8(d.clone()))
                .collect::<Result<_, _>>()?,
        })?;
        Ok(version)
    }

    /// Applies an approved proposal; `carry_out` does what it changes outside the
    /// governance (a new generation, say) before it is recorded as applied.
    pub fn apply(
        &mut self,
        store: &LocalStore,
        key: &guixie_formats::signing::SecretKey,
        index: u64,
        now: i64,
        carry_out: impl FnOnce(&Effect) -> anyhow::Result<serde_json::Value>,
    ) -> anyhow::Result<(Effect, serde_json::Value)> {
        let mut next = self.instance.clone();
        let effect = next.apply(index, now)?;
        let outcome = carry_out(&effect)?;
        let record = serde_json::json!({
            "instance": next.state.doc.instance,
            "applied": index,
            "time": now,
            "outcome": outcome,
        });
        append_record(store, key, &record)?;
        self.record(&Entry::Apply { time: now, index })?;
        self.instance = next;
        Ok((effect, outcome))
    }

    /// Loads the instance as [`Journal::open`] does, or `None` at once if another command
    /// holds the journal (a node must not wait for a build).
    pub fn try_open(store: &LocalStore) -> anyhow::Result<Option<Journal>> {
        let dir = dir(store);
        let (file, path) = lock_file(&dir)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Journal {
                instance: replay(&dir)?,
                dir,
                _lock: file,
            })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }

    /// A document a peer passed on (as [`gossipable`] gives them), judged by the same rules
    /// as one a member submits here.
    pub fn offer(
        &mut self,
        store: &LocalStore,
        document: &Gossiped,
        now: i64,
    ) -> anyhow::Result<()> {
        match document {
            Gossiped::Proposal(d) => self.propose(store, d, now).map(drop),
            Gossiped::Vote(d) => self.vote(store, d, now).map(drop),
            Gossiped::Withdrawal(d) => self.withdraw(store, d, now).map(drop),
            Gossiped::States(chain) => self.rotate(store, chain, now).map(drop),
        }
    }

    /// The accepted proposal `index`'s signed bytes.
    pub fn proposal(&self, index: u64) -> anyhow::Result<String> {
        match self.instance.proposals.get(&index) {
            Some(p) => Ok(p.envelope.to_json()),
            None => bail!(
                "there is no proposal {index} (the next is {})",
                self.instance.next_index()
            ),
        }
    }

    fn record(&self, entry: &Entry) -> anyhow::Result<()> {
        let path = self.dir.join("journal.jsonl");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        truncate_to_last_line(&mut file)
            .with_context(|| format!("repairing {}", path.display()))?;
        let mut line = serde_json::to_vec(entry)?;
        line.push(b'\n');
        file.write_all(&line)
            .and_then(|()| file.sync_data())
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// A governance document as peers pass it on.
pub enum Gossiped {
    Proposal(Vec<u8>),
    Vote(Vec<u8>),
    Withdrawal(Vec<u8>),
    /// States accepted together (only the last must be fresh).
    States(Vec<Vec<u8>>),
}

/// Most states gossiped as one chain.
const MAX_GOSSIPED_STATES: usize = 64;

impl Gossiped {
    /// A document's kind, from its envelope alone (nothing is checked yet); a chain of
    /// states is a JSON array of them.
    pub fn parse(document: &str) -> Result<Gossiped, String> {
        if document.starts_with('[') {
            let chain: Vec<String> = serde_json::from_str(document)
                .map_err(|e| format!("not a chain of governance states: {e}"))?;
            if chain.is_empty() || chain.len() > MAX_GOSSIPED_STATES {
                return Err(format!(
                    "a chain of {} states; 1 to {MAX_GOSSIPED_STATES}",
                    chain.len()
                ));
            }
            return Ok(Gossiped::States(
                chain.into_iter().map(String::into_bytes).collect(),
            ));
        }
        let envelope =
            guixie_dsse::Envelope::parse(document.as_bytes(), guixie_govern::MAX_PROPOSAL_BYTES)
                .map_err(|e| format!("not a governance document: {e}"))?;
        let bytes = document.as_bytes().to_vec();
        Ok(match envelope.payload_type.as_str() {
            guixie_govern::PROPOSAL_PAYLOAD_TYPE => Gossiped::Proposal(bytes),
            guixie_govern::VOTE_PAYLOAD_TYPE => Gossiped::Vote(bytes),
            guixie_govern::WITHDRAWAL_PAYLOAD_TYPE => Gossiped::Withdrawal(bytes),
            guixie_govern::STATE_PAYLOAD_TYPE => Gossiped::States(vec![bytes]),
            other => {
                return Err(format!(
                    "a DSSE envelope of payload type {other:?}, not a governance document"
                ))
            }
        })
    }

    /// What the rules say, without recording anything.
    pub fn judge(&self, instance: &mut Instance, now: i64) -> Result<(), guixie_govern::GovError> {
        match self {
            Gossiped::Proposal(d) => instance.propose(d, now).map(drop),
            Gossiped::Vote(d) => instance.vote(d, now).map(drop),
            Gossiped::Withdrawal(d) => instance.withdraw(d, now).map(drop),
            Gossiped::States(chain) => {
                let refs: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
                instance.rotate(&refs, now).map(drop)
            }
        }
    }
}

/// The documents this store's instance accepted that peers may take, oldest first:
/// proposals, votes, withdrawals and states as the journal keeps them (a chain of states
/// accepted together as a JSON array of them). Applying is each store's own act, so
/// applications are not among them. Empty without governance.
pub fn gossipable(store: &LocalStore) -> anyhow::Result<Vec<String>> {
    let path = dir(store).join("journal.jsonl");
    if !path.exists() {
        return Ok(vec![]);
    }
    let text = String::from_utf8(read_capped(&path, MAX_JOURNAL_BYTES)?)
        .with_context(|| format!("{}: not UTF-8", path.display()))?;
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    let mut documents = Vec::new();
    for (n, line) in complete.lines().enumerate() {
        let entry: Entry =
            serde_json::from_str(line).with_context(|| format!("{}:{}", path.display(), n + 1))?;
        match entry {
            Entry::Proposal { document, .. }
            | Entry::Vote { document, .. }
            | Entry::Withdraw { document, .. } => documents.push(document),
            Entry::States {
                documents: mut d, ..
            } if d.len() == 1 => documents.push(d.pop().expect("one")),
            Entry::States { documents: d, .. } => {
                documents.push(serde_json::to_string(&d).expect("strings serialise"))
            }
            Entry::Apply { .. } => {}
        }
    }
    Ok(documents)
}

/// The instance its first state and journal make, replayed in order.
fn replay(dir: &Path) -> anyhow::Result<Instance> {
    let genesis_path = dir.join("genesis.json");
    let header: Header = serde_json::from_slice(&read_capped(&dir.join("instance.json"), 4096)?)
        .with_context(|| format!("{}", dir.join("instance.json").display()))?;
    let genesis = read_capped(&genesis_path, guixie_govern::MAX_STATE_BYTES as u64)?;
    let mut instance = Instance::new(&genesis, &header.version, header.created)
        .with_context(|| genesis_path.display().to_string())?;
    let journal_path = dir.join("journal.jsonl");
    let text = String::from_utf8(read_capped(&journal_path, MAX_JOURNAL_BYTES)?)
        .with_context(|| format!("{}: not UTF-8", journal_path.display()))?;
    // A crash while appending leaves a last line without its newline: it was never
    // recorded, and the next record replaces it.
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    for (n, line) in complete.lines().enumerate() {
        let at = || format!("{}:{}", journal_path.display(), n + 1);
        let entry: Entry = serde_json::from_str(line).with_context(at)?;
        match entry {
            Entry::Proposal { time, document } => {
                instance
                    .propose(document.as_bytes(), time)
                    .with_context(at)?;
            }
            Entry::Vote { time, document } => {
                instance.vote(document.as_bytes(), time).with_context(at)?;
            }
            Entry::Apply { time, index } => {
                instance.apply(index, time).with_context(at)?;
            }
            Entry::Withdraw { time, document } => {
                instance
                    .withdraw(document.as_bytes(), time)
                    .with_context(at)?;
            }
            Entry::States { time, documents } => {
                let chain: Vec<&[u8]> = documents.iter().map(|d| d.as_bytes()).collect();
                instance.rotate(&chain, time).with_context(at)?;
            }
        }
    }
    Ok(instance)
}

/// A record of what this store did (applied a proposal, changed generation), signed with its
/// builder key, appended to its log.
pub fn append_record(
    store: &LocalStore,
    key: &guixie_formats::signing::SecretKey,
    record: &serde_json::Value,
) -> anyhow::Result<u64> {
    let mut envelope = guixie_dsse::Envelope::new(RECORD_PAYLOAD_TYPE, serde_json::to_vec(record)?);
    envelope.push_signature(key.name(), key.sign_raw(&envelope.signed_message()));
    append_log(store, envelope.to_json().as_bytes())
}

fn append_log(store: &LocalStore, bytes: &[u8]) -> anyhow::Result<u64> {
    let mut log = guixie_log::FileLog::open(&super::super::evidence::log_dir(store))?;
    Ok(log.append_batch(&[bytes])?)
}

/// Drops a torn last line (one a crash left without its newline) and seeks to the end.
fn truncate_to_last_line(file: &mut std::fs::File) -> std::io::Result<()> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let len = file.seek(SeekFrom::End(0))?;
    let mut end = len;
    let mut byte = [0u8; 1];
    while end > 0 {
        file.seek(SeekFrom::Start(end - 1))?;
        file.read_exact(&mut byte)?;
        if byte[0] == b'\n' {
            break;
        }
        end -= 1;
    }
    if end != len {
        file.set_len(end)?;
    }
    file.seek(SeekFrom::Start(end))?;
    Ok(())
}

/// The journal's lock file, opened (made if need be) but not locked.
fn lock_file(dir: &Path) -> anyhow::Result<(std::fs::File, PathBuf)> {
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    Ok((file, path))
}

fn lock(dir: &Path) -> anyhow::Result<std::fs::File> {
    let (file, path) = lock_file(dir)?;
    file.lock()
        .with_context(|| format!("locking {}", path.display()))?;
    Ok(file)
}

fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("writing {}", path.display()))
}

/// Reads a file, refusing one larger than `max` bytes before reading it.
pub fn read_capped(path: &Path, max: u64) -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > max {
        bail!("{}: more than the {max} bytes allowed", path.display());
    }
    Ok(bytes)
}
