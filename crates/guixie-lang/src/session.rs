//! The state of one evaluation, kept on the Guile thread while Scheme code runs: the store,
//! the `.drv` and text files computed so far (written only when evaluation succeeds), and
//! memoised modulo hashes of derivations.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use guixie_formats::derivation::{DerivationError, InputCollision};
use guixie_formats::{Hash, StoreDir, StorePath};
use guixie_store::{LocalStore, PathInfoQuery, TextItem};

pub struct Session {
    pub store: Arc<LocalStore>,
    pub store_dir: StoreDir,
    pub collision: InputCollision,
    /// Files to add to the store, in creation order (dependencies first).
    pub pending: Vec<TextItem>,
    /// Local files and trees (`local-file`) to add.
    pub pending_files: Vec<LocalFile>,
    /// Whether the bootstrap toolchain was asked for (the evaluation then depends on the
    /// host's packages).
    pub used_toolchain: bool,
    /// The bootstrap toolchain's trusted NAR hash, from the evaluation options.
    pub bootstrap_pin: Option<guixie_trust_root::ToolchainPin>,
    pending_paths: HashSet<StorePath>,
    modulo: HashMap<StorePath, Hash>,
}

/// A file or tree an evaluation adds to the store (`local-file`).
pub struct LocalFile {
    /// The path its NAR hash gave during evaluation.
    pub path: StorePath,
    pub name: String,
    pub file: std::path::PathBuf,
    /// What `select?` left out of it.
    pub excluded: guixie_formats::nar::Excluded,
    /// Its metadata fingerprint, taken before it was hashed, so that any later change is
    /// seen by the evaluation cache (see `cache::tree_fingerprint`).
    pub fingerprint: Option<String>,
}

thread_local! {
    static CURRENT: RefCell<Option<Session>> = const { RefCell::new(None) };
}

impl Session {
    pub fn new(
        store: Arc<LocalStore>,
        collision: InputCollision,
        bootstrap_pin: Option<guixie_trust_root::ToolchainPin>,
    ) -> Self {
        Session {
            store_dir: store.store_dir().clone(),
            store,
            collision,
            pending: Vec::new(),
            pending_files: Vec::new(),
            used_toolchain: false,
            bootstrap_pin,
            pending_paths: HashSet::new(),
            modulo: HashMap::new(),
        }
    }

    /// Makes `self` the session primitives see on this thread, runs `f`, and hands it back.
    pub fn run<R>(self, f: impl FnOnce() -> R) -> (R, Session) {
        CURRENT.with(|c| *c.borrow_mut() = Some(self));
        let r = f();
        let s = CURRENT
            .with(|c| c.borrow_mut().take())
            .expect("session installed above");
        (r, s)
    }

    pub fn with_current<R>(f: impl FnOnce(&mut Session) -> Result<R, String>) -> Result<R, String> {
        CURRENT.with(|c| match c.borrow_mut().as_mut() {
            Some(s) => f(s),
            None => {
                Err("guixie primitives are only available while guixie evaluates a file".into())
            }
        })
    }

    /// Whether `path` is in the store or will be written by this evaluation.
    pub fn is_available(&self, path: &StorePath) -> Result<bool, String> {
        if self.pending_paths.contains(path) {
            return Ok(true);
        }
        self.store.is_valid(path).map_err(|e| e.to_string())
    }

    pub fn add_pending(&mut self, path: StorePath, item: TextItem) {
        if self.pending_paths.insert(path) {
            self.pending.push(item);
        }
    }

    pub fn add_pending_file(&mut self, local: LocalFile) {
        if self.pending_paths.insert(local.path.clone()) {
            self.pending_files.push(local);
        }
    }

    pub fn remember_modulo(&mut self, drv_path: StorePath, h: Hash) {
        self.modulo.insert(drv_path, h);
    }

    /// The unmasked `hashDerivationModulo` of a derivation made in this session or found in
    /// the store.
    pub fn modulo_of(&mut self, drv_path: &StorePath) -> Result<Hash, DerivationError> {
        if let Some(h) = self.modulo.get(drv_path) {
            return Ok(h.clone());
        }
        let drv = guixie_store::read_derivation(self.store.as_ref(), drv_path).map_err(|e| {
            DerivationError::Input {
                path: self.store_dir.display(drv_path),
                message: e.to_string(),
            }
        })?;
        let (collision, sd) = (self.collision, self.store_dir.clone());
        let h = drv.hash_modulo(&sd, false, collision, &mut |p| self.modulo_of(p))?;
        self.modulo.insert(drv_path.clone(), h.clone());
        Ok(h)
    }

    pub fn references_available(&self, refs: &BTreeSet<StorePath>) -> Result<(), String> {
        for r in refs {
            if !self.is_available(r)? {
                return Err(format!(
                    "input {} is not in the store",
                    self.store_dir.display(r)
                ));
            }
        }
        Ok(())
    }
}
