//! What a node serves, from its store and its own log. A NAR is served by BLAKE3 root only
//! when this node attested it (its log says which root) or fetched it through the quorum;
//! the first request writes the NAR once into `blobs/` beside its outboard, after checking the
//! root it hashes to, and every range is checked against the outboard as it is encoded, so a
//! copy damaged since is never served.

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use guixie_content::{Blob, Outboard};
use guixie_formats::StorePath;
use guixie_log::note::SignerKey;
use guixie_log::FileLog;
use guixie_node::message::Response;
use guixie_node::Local;
use guixie_store::{LocalStore, NarSource, PathInfoQuery};
use guixie_trust::votes::{Bundle, LoggedEntry};

/// The store's governance journal (the CLI's `guixie govern` keeps it), for the node to
/// gossip: what [`guixie_node::Local::governance_documents`] and
/// [`guixie_node::Local::offer_governance`] ask.
pub trait GovernanceBook: Send {
    fn documents(&self) -> Arc<[String]>;
    fn offer(&mut self, document: &str) -> Result<bool, String>;
}

/// Cheap to clone: a blob can be prepared on another thread while the node goes on.
#[derive(Clone)]
pub struct StoreLocal(Arc<Inner>);

impl std::ops::Deref for StoreLocal {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

pub struct Inner {
    store: Arc<LocalStore>,
    log_dir: PathBuf,
    log_key: Option<SignerKey>,
    blobs_dir: PathBuf,
    /// Roots this node may serve, and the path each is the NAR of.
    index: Mutex<BTreeMap<[u8; 32], StorePath>>,
    /// The own log's statements by store path hash part.
    log_index: Mutex<guixie_evidence::LogIndex>,
    loaded: Mutex<BTreeMap<[u8; 32], Loaded>>,
    uses: std::sync::atomic::AtomicU64,
    witnessing: crate::witness::Witnessing,
    governance: Option<Mutex<Box<dyn GovernanceBook>>>,
}

/// An outboard in memory, with when it was last used (a counter).
type Loaded = (Arc<Outboard>, u64);

/// Outboards kept in memory, at most (64 bytes per 16 KiB of NAR: 4 MiB for 1 GiB).
const MAX_LOADED_OUTBOARDS: usize = 1024;
const MAX_LOADED_OUTBOARD_BYTES: usize = 64 << 20;

fn hex(h: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(h)
}

impl StoreLocal {
    /// Serves `store`'s own log (signed with `log_key`, if it has one) and the NARs it names.
    /// Its files (blobs, the witnessed checkpoint) are in `node_dir`.
    pub fn open(
        store: Arc<LocalStore>,
        log_key: Option<SignerKey>,
        node_dir: &Path,
    ) -> std::io::Result<Self> {
        let state = store.state_dir().to_owned();
        let blobs_dir = node_dir.join("blobs");
        std::fs::create_dir_all(&blobs_dir)?;
        let local = StoreLocal(Arc::new(Inner {
            log_dir: guixie_evidence::log_dir(&state),
            store,
            log_key,
            blobs_dir,
            index: Mutex::new(BTreeMap::new()),
            log_index: Mutex::new(guixie_evidence::LogIndex::default()),
            loaded: Mutex::new(BTreeMap::new()),
            uses: std::sync::atomic::AtomicU64::new(0),
            witnessing: crate::witness::Witnessing::default(),
            governance: None,
        }));
        if let Ok(log) = FileLog::open_read_only(&local.log_dir) {
            let _ = local.catch_up(&log);
        }
        Ok(local)
    }

    /// Indexes what the own log gained since last time: its statements by hash part, and the
    /// roots of the outputs they attest.
    fn catch_up(&self, log: &FileLog) -> Result<(), String> {
        let new = self
            .log_index
            .lock()
            .expect("not poisoned")
            .update(log)
            .map_err(|e| e.to_string())?;
        let sd = self.store.store_dir();
        let mut index = self.index.lock().expect("not poisoned");
        for (_, st) in new {
            for out in st.predicate.outputs.values() {
                let (Some(root), Ok(path)) = (&out.blake3, sd.parse_path(&out.path)) else {
                    continue;
                };
                if let Ok(root) = Blob::parse_root(root) {
                    index.insert(root, path);
                }
            }
        }
        Ok(())
    }

    /// Cosigns others' checkpoints with `witness_key` (a tlog-cosignature/v1 key), and takes
    /// cosignatures of the own log from `witnesses`, kept in `node/witnessed.note`.
    pub fn with_witnessing(
        mut self,
        witness_key: Option<SignerKey>,
        witnesses: Vec<guixie_log::note::VerifierKey>,
        clock: Arc<dyn guixie_env::Clock>,
    ) -> Self {
        let file = self.blobs_dir.with_file_name("witnessed.note");
        Arc::get_mut(&mut self.0)
            .expect("not shared before it serves")
            .witnessing = crate::witness::Witnessing::new(witness_key, witnesses, clock, file);
        self
    }

    /// Gossips this governance journal's documents and offers it its peers'.
    pub fn with_governance(mut self, book: Option<Box<dyn GovernanceBook>>) -> Self {
        Arc::get_mut(&mut self.0)
            .expect("not shared before it serves")
            .governance = book.map(Mutex::new);
        self
    }

    /// The own log's latest checkpoint, with the witnesses' cosignatures of it if any.
    fn latest_note(&self, log: &FileLog, key: &SignerKey) -> Result<String, String> {
        let note = guixie_evidence::checkpoint(log, key).map_err(|e| e.to_string())?;
        Ok(match self.witnessing.witnessed(log, key) {
            Some((w, witnessed)) if w == log.size() => witnessed,
            _ => note,
        })
    }

    /// Serves `path` by `root` from now on; `nar` (its NAR, verified) becomes the copy served.
    pub fn add_fetched(&self, root: [u8; 32], path: StorePath, nar: &Path) {
        let target = self.blobs_dir.join(format!("{}.nar", hex(&root)));
        if std::fs::rename(nar, &target).is_ok() {
            self.index.lock().expect("not poisoned").insert(root, path);
        }
    }

    /// Whether a `Have` or `Range` of `root` is answered at once: its blob is ready, or this
    /// node does not serve it. Otherwise [`StoreLocal::prepare`] it first (it reads and
    /// writes the whole NAR).
    pub fn is_ready(&self, root: &[u8; 32]) -> bool {
        if self.loaded.lock().expect("not poisoned").contains_key(root) {
            return true;
        }
        let served = || self.index.lock().expect("not poisoned").contains_key(root);
        if !served() {
            // Built and attested since it was last looked at?
            if let Ok(log) = FileLog::open_read_only(&self.log_dir) {
                let _ = self.catch_up(&log);
            }
            if !served() {
                return true;
            }
        }
        let nar = self.blobs_dir.join(format!("{}.nar", hex(root)));
        nar.exists() && nar.with_extension("obao").exists()
    }

    /// Writes the blob of `root` and its outboard, if this node serves it.
    pub fn prepare(&self, root: &[u8; 32]) -> Result<(), String> {
        self.ensure(root).map(|_| ())
    }

    /// The outboard and NAR file of a root this node serves, made on first use.
    fn ensure(&self, root: &[u8; 32]) -> Result<(Arc<Outboard>, PathBuf), String> {
        let lookup = || self.index.lock().expect("not poisoned").get(root).cloned();
        let path = match lookup() {
            Some(p) => p,
            None => {
                // Built and attested since it was last looked at?
                if let Ok(log) = FileLog::open_read_only(&self.log_dir) {
                    self.catch_up(&log)?;
                }
                lookup().ok_or("this node does not serve that root")?
            }
        };
        let path = &path;
        if !self.store.is_valid(path).map_err(|e| e.to_string())? {
            return Err("the path is no longer in this node's store".into());
        }
        let nar = self.blobs_dir.join(format!("{}.nar", hex(root)));
        let now = self.uses.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some((ob, used)) = self.loaded.lock().expect("not poisoned").get_mut(root) {
            *used = now;
            return Ok((ob.clone(), nar));
        }
        let obao = nar.with_extension("obao");
        let made = if nar.exists() && obao.exists() {
            let size = std::fs::metadata(&nar).map_err(|e| e.to_string())?.len();
            let bytes = std::fs::read(&obao).map_err(|e| e.to_string())?;
            Outboard::from_bytes(Blob { root: *root, size }, bytes).map_err(|e| e.to_string())?
        } else {
            self.write_blob(path, root, &nar, &obao)?
        };
        let ob = Arc::new(made);
        let mut loaded = self.loaded.lock().expect("not poisoned");
        // Outboards in memory are bounded (they are on disk): the least recently used goes.
        while loaded.len() >= MAX_LOADED_OUTBOARDS
            || loaded
                .values()
                .map(|(o, _)| o.as_bytes().len())
                .sum::<usize>()
                + ob.as_bytes().len()
                > MAX_LOADED_OUTBOARD_BYTES
                && !loaded.is_empty()
        {
            let oldest = loaded
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(r, _)| *r)
                .expect("not empty");
            loaded.remove(&oldest);
        }
        loaded.insert(*root, (ob.clone(), now));
        Ok((ob, nar))
    }

    fn write_blob(
        &self,
        path: &StorePath,
        root: &[u8; 32],
        nar: &Path,
        obao: &Path,
    ) -> Result<Outboard, String> {
        let err = |e: std::io::Error| format!("{}: {e}", nar.display());
        let tmp = nar.with_extension("nar.tmp");
        if !nar.exists() {
            let mut file = std::fs::File::create(&tmp).map_err(err)?;
            self.store
                .write_nar(path, &mut file)
                .map_err(|e| e.to_string())?;
            file.flush().map_err(err)?;
            file.sync_all().map_err(err)?;
        }
        let source = if nar.exists() { nar } else { &tmp };
        let size = std::fs::metadata(source).map_err(err)?.len();
        let file = std::fs::File::open(source).map_err(err)?;
        let ob = Outboard::compute(BufReader::new(file), size).map_err(|e| e.to_string())?;
        if ob.blob().root != *root {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!(
                "{} no longer hashes to the root this node attested",
                self.store.store_dir().display(path)
            ));
        }
        // Whole or not at all: a torn outboard would refuse this root for good.
        let obao_tmp = obao.with_extension("obao.tmp");
        std::fs::write(&obao_tmp, ob.as_bytes())
            .and_then(|()| std::fs::rename(&obao_tmp, obao))
            .map_err(err)?;
        if source == tmp {
            std::fs::rename(&tmp, nar).map_err(err)?;
        }
        Ok(ob)
    }
}

/// The consistency proof from `known` to `size`, hex; none when there is nothing to prove.
fn consistency(log: &FileLog, known: Option<u64>, size: u64) -> Result<Vec<String>, String> {
    match known {
        Some(k) if k > 0 && k < size => Ok(log
            .consistency_proof(k, size)
            .map_err(|e| e.to_string())?
            .iter()
            .map(|h| hex(h))
            .collect()),
        _ => Ok(vec![]),
    }
}

impl Local for StoreLocal {
    fn own_logs(&self) -> Vec<String> {
        self.log_key.iter().map(|k| k.name.clone()).collect()
    }

    fn checkpoints(&self) -> Vec<String> {
        let (Some(key), Ok(log)) = (&self.log_key, FileLog::open_read_only(&self.log_dir)) else {
            return vec![];
        };
        self.latest_note(&log, key).into_iter().collect()
    }

    fn attestations(
        &self,
        hash_part: &str,
        known_size: Option<u64>,
        witnessed: bool,
    ) -> Result<Response, String> {
        let key = self.log_key.as_ref().ok_or("this node keeps no log")?;
        let log = FileLog::open_read_only(&self.log_dir).map_err(|e| e.to_string())?;
        // The witnessed checkpoint, for an asker who wants one and has not seen more;
        // else the latest.
        let (size, checkpoint) = match self.witnessing.witnessed(&log, key) {
            Some((w, note)) if witnessed && known_size.unwrap_or(0) <= w => (w, note),
            _ => (log.size(), self.latest_note(&log, key)?),
        };
        self.catch_up(&log)?;
        let about: Vec<u64> = self
            .log_index
            .lock()
            .expect("not poisoned")
            .about(hash_part)
            .iter()
            .copied()
            .filter(|i| *i < size)
            .collect();
        let mut attestations = Vec::new();
        for index in about {
            let entry = log.entry(index).map_err(|e| e.to_string())?;
            attestations.push(LoggedEntry {
                index,
                entry: String::from_utf8_lossy(&entry).into_owned(),
                proof: log
                    .inclusion_proof(index, size)
                    .map_err(|e| e.to_string())?
                    .iter()
                    .map(|h| hex(h))
                    .collect(),
            });
        }
        Ok(Response::Attestations {
            checkpoint,
            consistency: consistency(&log, known_size, size)?,
            bundle: Bundle { size, attestations },
        })
    }

    fn latest(&self, known_size: Option<u64>) -> Result<Response, String> {
        let key = self.log_key.as_ref().ok_or("this node keeps no log")?;
        let log = FileLog::open_read_only(&self.log_dir).map_err(|e| e.to_string())?;
        let size = log.size();
        Ok(Response::Attestations {
            checkpoint: self.latest_note(&log, key)?,
            consistency: consistency(&log, known_size, size)?,
            bundle: Bundle {
                size,
                attestations: vec![],
            },
        })
    }

    fn cosign(&self, note: &str) -> Option<String> {
        self.witnessing.cosign(note)
    }

    fn add_cosignatures(&mut self, note: &str) -> Result<(), String> {
        let key = self.log_key.as_ref().ok_or("this node keeps no log")?;
        let log = FileLog::open_read_only(&self.log_dir).map_err(|e| e.to_string())?;
        self.witnessing.add(&log, key, note)
    }

    fn have(&self, root: &[u8; 32]) -> Option<u64> {
        self.ensure(root).ok().map(|(ob, _)| ob.blob().size)
    }

    fn governance_documents(&self) -> Arc<[String]> {
        match &self.governance {
            Some(g) => g.lock().expect("not poisoned").documents(),
            None => Arc::new([]),
        }
    }

    fn offer_governance(&mut self, document: &str) -> Result<bool, String> {
        match &self.governance {
            Some(g) => g.lock().expect("not poisoned").offer(document),
            None => Err("this node keeps no governance".into()),
        }
    }

    fn range(&self, root: &[u8; 32], start: u64, end: u64) -> Result<Vec<u8>, String> {
        let (ob, nar) = self.ensure(root)?;
        let file = std::fs::File::open(&nar).map_err(|e| e.to_string())?;
        ob.encode(&file, start, end).map_err(|e| e.to_string())
    }
}
