//! Witnessing, both ways. As a witness, a node cosigns the checkpoints of logs it accepted
//! (after the consistency checks; [`guixie_node::Node`] decides when). As a log's node, it
//! takes cosignatures of its own checkpoints from the witnesses it was told of, keeps the
//! newest witnessed checkpoint in `node/witnessed.note`, and serves it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use guixie_env::Clock;
use guixie_log::checkpoint::{self, Checkpoint};
use guixie_log::note::{Note, SignerKey, VerifierKey};
use guixie_log::FileLog;

/// Cosignature notes larger than this are refused.
const MAX_NOTE_BYTES: usize = 16 << 10;

#[derive(Default)]
pub struct Witnessing {
    /// This node's witness key, if it is one.
    key: Option<SignerKey>,
    /// The witnesses whose cosignatures of the own log are taken.
    witnesses: Vec<VerifierKey>,
    clock: Option<Arc<dyn Clock>>,
    file: Option<PathBuf>,
    /// The newest own checkpoint with cosignatures: (size, note).
    witnessed: Mutex<Option<(u64, String)>>,
}

impl Witnessing {
    pub fn new(
        key: Option<SignerKey>,
        witnesses: Vec<VerifierKey>,
        clock: Arc<dyn Clock>,
        file: PathBuf,
    ) -> Self {
        // Only a log with witnesses serves a witnessed checkpoint.
        let witnessed = std::fs::read_to_string(&file)
            .ok()
            .filter(|_| !witnesses.is_empty())
            .and_then(|note| Some((size_of(&note)?, note)));
        Witnessing {
            key,
            witnesses,
            clock: Some(clock),
            file: Some(file),
            witnessed: Mutex::new(witnessed),
        }
    }

    /// The newest witnessed checkpoint of `log` (signed with `key`): only one that is of this
    /// log as it is (kept from before a log or key change, it is not served).
    pub fn witnessed(&self, log: &FileLog, key: &SignerKey) -> Option<(u64, String)> {
        let (size, note) = self.witnessed.lock().expect("not poisoned").clone()?;
        let v = checkpoint::verify(note.as_bytes(), &key.verifier(), &self.witnesses, 1).ok()?;
        let same = size <= log.size()
            && log.root(size).is_ok_and(|r| r == v.checkpoint.root)
            && v.checkpoint.size == size;
        same.then_some((size, note))
    }

    /// `note` cosigned by this node, if it is a witness and has not cosigned it already.
    pub fn cosign(&self, note: &str) -> Option<String> {
        let (key, clock) = (self.key.as_ref()?, self.clock.as_ref()?);
        let parsed = Note::parse(note.as_bytes()).ok()?;
        let id = key.verifier().id;
        if parsed
            .signatures
            .iter()
            .any(|s| s.name == key.name && s.id == id)
        {
            return None;
        }
        let time = u64::try_from(clock.unix_seconds()).ok()?;
        checkpoint::cosign(note.as_bytes(), key, time).ok()
    }

    /// Takes the known witnesses' cosignatures from `note`, a checkpoint of `log` (signed
    /// with `key`).
    pub fn add(&self, log: &FileLog, key: &SignerKey, note: &str) -> Result<(), String> {
        if note.len() > MAX_NOTE_BYTES {
            return Err(format!("a note of more than {MAX_NOTE_BYTES} bytes"));
        }
        if self.witnesses.is_empty() {
            return Err("this log's node takes no cosignatures (it knows no witness)".into());
        }
        let body = Note::parse(note.as_bytes())
            .map_err(|e| e.to_string())
            .and_then(|n| Checkpoint::parse_body(&n.text).map_err(|e| e.to_string()))?;
        if body.origin != key.name || body.size > log.size() {
            return Err("not a checkpoint of this node's log".into());
        }
        let ours = Checkpoint {
            origin: key.name.clone(),
            size: body.size,
            root: log.root(body.size).map_err(|e| e.to_string())?,
            extensions: vec![],
        };
        let current = self.witnessed(log, key);
        let mut witnessed = self.witnessed.lock().expect("not poisoned");
        let base = match &current {
            Some((size, _)) if *size > body.size => return Ok(()),
            Some((size, kept)) if *size == body.size => kept.clone(),
            _ => ours.sign(key).map_err(|e| e.to_string())?,
        };
        let merged = checkpoint::add_cosignatures(
            base.as_bytes(),
            note.as_bytes(),
            &key.verifier(),
            &self.witnesses,
        )
        .map_err(|e| format!("the cosignature does not check: {e}"))?;
        let cosigned = checkpoint::verify(merged.as_bytes(), &key.verifier(), &self.witnesses, 1)
            .map_err(|_| "no cosignature by a witness this log knows".to_owned())?;
        debug_assert_eq!(cosigned.checkpoint.size, body.size);
        if let Some(file) = &self.file {
            let tmp = file.with_extension("note.tmp");
            std::fs::write(&tmp, &merged)
                .and_then(|()| std::fs::rename(&tmp, file))
                .map_err(|e| format!("{}: {e}", file.display()))?;
        }
        *witnessed = Some((body.size, merged));
        Ok(())
    }
}

fn size_of(note: &str) -> Option<u64> {
    let n = Note::parse(note.as_bytes()).ok()?;
    Some(Checkpoint::parse_body(&n.text).ok()?.size)
}
