//! Derivations: the build recipes in `.drv` files, their ATerm form, Nix's
//! `hashDerivationModulo`, output paths and the `nix show-derivation` JSON view.

mod aterm;

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

pub use aterm::AtermError;

/// A derivation variable (guixie's own, like Nix's `__`-attributes) naming the bootstrap
/// toolchain store path whose `usr/` the sandbox shows at `/usr`; it must be an input.
pub const TOOLCHAIN_ENV: &str = "guixieToolchain";

use crate::hash::{Hash, HashAlgo, HashError};
use crate::store_path::{StoreDir, StorePath, StorePathError};

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Output {
    /// `None` while the path is being computed (written as `""`).
    pub path: Option<StorePath>,
    /// The declared content hash of a fixed-output derivation's `out`.
    pub fixed: Option<FixedOutput>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Derivation {
    pub outputs: BTreeMap<String, Output>,
    /// Input derivation → the outputs of it that are used.
    pub input_drvs: BTreeMap<StorePath, BTreeSet<String>>,
    pub input_srcs: BTreeSet<StorePath>,
    pub system: Vec<u8>,
    pub builder: Vec<u8>,
    pub args: Vec<Vec<u8>>,
    pub env: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// How `hashDerivationModulo` combines two input derivations whose modulo hashes are equal
/// (e.g. two fixed-output derivations producing the same content).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum InputCollision {
    /// The union of the used outputs of all colliding inputs (Nix since Aug 2026).
    #[default]
    Merge,
    /// The outputs of the input whose `.drv` path sorts last replace the others (Nix up to
    /// Aug 2026, including the Nix 2.8 that Debian ships).
    LastWins,
}

impl InputCollision {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "merge" => Some(InputCollision::Merge),
            "last-wins" => Some(InputCollision::LastWins),
            _ => None,
        }
    }
}

/// A fixed output's declared content hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedOutput {
    /// Hash of the NAR serialisation (`r:`), not of a flat file.
    pub recursive: bool,
    pub hash: Hash,
}

impl FixedOutput {
    /// The `.drv` file's `hashAlgo` field: `[r:]algo`.
    pub fn algo_field(&self) -> String {
        format!(
            "{}{}",
            if self.recursive { "r:" } else { "" },
            self.hash.algo()
        )
    }
}

/// A fixed output must be the derivation's only output, named `out`.
fn check_fixed_output_shape(outputs: &BTreeMap<String, Output>) -> Result<(), DerivationError> {
    match outputs.iter().find(|(_, o)| o.fixed.is_some()) {
        Some((name, _)) if outputs.len() != 1 || name != "out" => {
            Err(DerivationError::FixedOutputShape {
                output: name.clone(),
            })
        }
        _ => Ok(()),
    }
}

#[derive(Debug, Error)]
pub enum DerivationError {
    #[error(transparent)]
    Aterm(#[from] AtermError),
    #[error("output {output:?}: {source}")]
    OutputHash { output: String, source: HashError },
    #[error("output {output:?}: fixed-output derivations have a single output named \"out\"")]
    FixedOutputShape { output: String },
    #[error("{what}: {source}")]
    Path {
        what: String,
        source: StorePathError,
    },
    #[error("input derivation {path}: {message}")]
    Input { path: String, message: String },
    #[error("derivation has no \"name\" in its environment")]
    NoName,
    #[error("output {output:?} has no path")]
    NoOutputPath { output: String },
}

impl Derivation {
    /// Parses a `.drv` file whose paths live in `store_dir`.
    pub fn parse(bytes: &[u8], store_dir: &StoreDir) -> Result<Self, AtermError> {
        aterm::parse(bytes, store_dir)
    }

    /// The canonical ATerm bytes, as written to the `.drv` file.
    pub fn to_aterm(&self, store_dir: &StoreDir) -> Vec<u8> {
        aterm::write(self, store_dir, false, None)
    }

    pub fn name(&self) -> Result<&str, DerivationError> {
        self.env
            .get(b"name".as_slice())
            .and_then(|n| std::str::from_utf8(n).ok())
            .ok_or(DerivationError::NoName)
    }

    /// The declared hash if this is a fixed-output derivation.
    pub fn fixed_output(&self) -> Option<&FixedOutput> {
        self.outputs.values().find_map(|o| o.fixed.as_ref())
    }

    /// Every output's path; an error names an output whose path is not filled in.
    pub fn output_paths(&self) -> Result<BTreeMap<String, StorePath>, DerivationError> {
        self.outputs
            .iter()
            .map(|(name, o)| match &o.path {
                Some(p) => Ok((name.clone(), p.clone())),
                None => Err(DerivationError::NoOutputPath {
                    output: name.clone(),
                }),
            })
            .collect()
    }

    /// Nix's `hashDerivationModulo`. `input_hash` gives the (unmasked) modulo hash of each input
    /// derivation; see [`ModuloHasher`] for a memoising implementation.
    pub fn hash_modulo(
        &self,
        store_dir: &StoreDir,
        mask_outputs: bool,
        collision: InputCollision,
        input_hash: &mut dyn FnMut(&StorePath) -> Result<Hash, DerivationError>,
    ) -> Result<Hash, DerivationError> {
        check_fixed_output_shape(&self.outputs)?;
        if let Some(fixed) = self.fixed_output() {
            let path = self.outputs["out"]
                .path
                .as_ref()
                .map(|p| store_dir.display(p))
                .unwrap_or_default();
            let s = format!(
                "fixed:out:{}:{}:{path}",
                fixed.algo_field(),
                fixed.hash.to_hex(),
            );
            return Ok(Hash::digest_of(HashAlgo::Sha256, s.as_bytes()));
        }
        let mut inputs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (path, outputs) in &self.input_drvs {
            let key = input_hash(path)?.to_hex();
            match collision {
                InputCollision::Merge => inputs
                    .entry(key)
                    .or_default()
                    .extend(outputs.iter().cloned()),
                InputCollision::LastWins => {
                    inputs.insert(key, outputs.clone());
                }
            }
        }
        let aterm = aterm::write(self, store_dir, mask_outputs, Some(&inputs));
        Ok(Hash::digest_of(HashAlgo::Sha256, &aterm))
    }

    /// Computes every output path from scratch (ignoring the paths written in `self`).
    pub fn compute_output_paths(
        &self,
        store_dir: &StoreDir,
        drv_name: &str,
        collision: InputCollision,
        input_hash: &mut dyn FnMut(&StorePath) -> Result<Hash, DerivationError>,
    ) -> Result<BTreeMap<String, StorePath>, DerivationError> {
        let path_err = |what: &str| {
            let what = what.to_owned();
            move |source| DerivationError::Path { what, source }
        };
        check_fixed_output_shape(&self.outputs)?;
        if let Some(fixed) = self.fixed_output() {
            let p = store_dir
                .make_fixed_output_path(drv_name, fixed.recursive, &fixed.hash)
                .map_err(path_err("fixed output"))?;
            return Ok(BTreeMap::from([("out".to_owned(), p)]));
        }
        let h = self.hash_modulo(store_dir, true, collision, input_hash)?;
        self.outputs
            .keys()
            .map(|o| {
                let p = store_dir
                    .make_output_path(o, &h, drv_name)
                    .map_err(path_err(&format!("output {o:?}")))?;
                Ok((o.clone(), p))
            })
            .collect()
    }

    /// Fills in output paths and their environment variables, as `derivation` does in Nix.
    pub fn fill_output_paths(
        &mut self,
        store_dir: &StoreDir,
        collision: InputCollision,
        input_hash: &mut dyn FnMut(&StorePath) -> Result<Hash, DerivationError>,
    ) -> Result<(), DerivationError> {
        let name = self.name()?.to_owned();
        for (o, out) in self.outputs.iter_mut() {
            out.path = None;
            self.env.insert(o.as_bytes().to_vec(), Vec::new());
        }
        let paths = self.compute_output_paths(store_dir, &name, collision, input_hash)?;
        for (o, p) in paths {
            self.env
                .insert(o.as_bytes().to_vec(), store_dir.display(&p).into_bytes());
            self.outputs
                .get_mut(&o)
                .expect("computed from outputs")
                .path = Some(p);
        }
        Ok(())
    }

    /// The store paths this `.drv` file references: its input sources and input derivations.
    pub fn references(&self) -> BTreeSet<StorePath> {
        self.input_srcs
            .iter()
            .chain(self.input_drvs.keys())
            .cloned()
            .collect()
    }

    /// The store path of this derivation's `.drv` file.
    pub fn drv_path(
        &self,
        store_dir: &StoreDir,
        drv_name: &str,
    ) -> Result<StorePath, DerivationError> {
        Ok(self.drv_path_and_aterm(store_dir, drv_name)?.0)
    }

    /// The `.drv` file's store path and its contents, serialised once.
    pub fn drv_path_and_aterm(
        &self,
        store_dir: &StoreDir,
        drv_name: &str,
    ) -> Result<(StorePath, Vec<u8>), DerivationError> {
        let aterm = self.to_aterm(store_dir);
        let h = Hash::digest_of(HashAlgo::Sha256, &aterm);
        let path = store_dir
            .make_text_path(&format!("{drv_name}.drv"), &h, &self.references())
            .map_err(|source| DerivationError::Path {
                what: "derivation path".into(),
                source,
            })?;
        Ok((path, aterm))
    }

    /// The `nix show-derivation` JSON object for this derivation (without the path key).
    pub fn to_json(&self, store_dir: &StoreDir) -> serde_json::Value {
        use serde_json::{json, Map, Value};
        let lossy = |b: &[u8]| Value::String(String::from_utf8_lossy(b).into_owned());
        let outputs: Map<String, Value> = self
            .outputs
            .iter()
            .map(|(name, o)| {
                let mut m = Map::new();
                let path = o.path.as_ref().map(|p| store_dir.display(p));
                m.insert("path".into(), json!(path.unwrap_or_default()));
                if let Some(f) = &o.fixed {
                    m.insert("hashAlgo".into(), json!(f.algo_field()));
                    m.insert("hash".into(), json!(f.hash.to_hex()));
                }
                (name.clone(), Value::Object(m))
            })
            .collect();
        let env: Map<String, Value> = self
            .env
            .iter()
            .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), lossy(v)))
            .collect();
        let input_drvs: Map<String, Value> = self
            .input_drvs
            .iter()
            .map(|(p, outs)| (store_dir.display(p), json!(outs)))
            .collect();
        let input_srcs: Vec<String> = self
            .input_srcs
            .iter()
            .map(|p| store_dir.display(p))
            .collect();
        json!({
            "outputs": outputs,
            "inputSrcs": input_srcs,
            "inputDrvs": input_drvs,
            "system": lossy(&self.system),
            "builder": lossy(&self.builder),
            "args": self.args.iter().map(|a| lossy(a)).collect::<Vec<_>>(),
            "env": env,
        })
    }
}

/// Memoising `hashDerivationModulo` over a graph: `load` returns the parsed derivation for a
/// `.drv` path (from a store, a directory, memory). Each input is hashed once.
pub struct ModuloHasher<L> {
    store_dir: StoreDir,
    load: L,
    collision: InputCollision,
    // Looked up only, never iterated.
    cache: std::collections::HashMap<StorePath, Hash>,
}

impl<L: FnMut(&StorePath) -> Result<Derivation, DerivationError>> ModuloHasher<L> {
    pub fn new(store_dir: StoreDir, load: L, collision: InputCollision) -> Self {
        ModuloHasher {
            store_dir,
            load,
            collision,
            cache: Default::default(),
        }
    }

    /// The unmasked modulo hash of the derivation at `path`, as used for its dependants.
    pub fn hash_of(&mut self, path: &StorePath) -> Result<Hash, DerivationError> {
        if let Some(h) = self.cache.get(path) {
            return Ok(h.clone());
        }
        let drv = (self.load)(path)?;
        let h = self.hash_drv(&drv, false)?;
        self.cache.insert(path.clone(), h.clone());
        Ok(h)
    }

    pub fn hash_drv(
        &mut self,
        drv: &Derivation,
        mask_outputs: bool,
    ) -> Result<Hash, DerivationError> {
        let (collision, sd) = (self.collision, self.store_dir.clone());
        drv.hash_modulo(&sd, mask_outputs, collision, &mut |p| self.hash_of(p))
    }

    pub fn collision(&self) -> InputCollision {
        self.collision
    }
}

#[cfg(test)]
mod tests;
