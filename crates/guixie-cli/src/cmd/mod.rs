pub mod attest;
pub mod build;
pub mod build_log;
pub mod challenge;
pub mod copy;
pub mod drv;
pub mod eval;
pub mod evidence;
pub mod govern;
pub mod graph;
pub mod hash;
pub mod key;
pub mod log;
pub mod nar;
pub mod narinfo;
pub mod node;
pub mod package;
pub mod publish;
pub mod repl;
pub mod report;
pub mod run_trace;
pub mod self_build;
pub mod shell;
pub mod show;
pub mod size;
pub mod store;
pub mod substitutes;
pub mod trace;
pub mod trace_api;
pub mod trace_native;
pub mod trace_perf;
pub mod trust;

use anyhow::Context as _;
use guixie_formats::StoreDir;
use guixie_store::{LocalStore, StoreConfig};

use crate::Context;

pub const DEFAULT_STORE_DIR: &str = "/gnu/store";

impl Context {
    /// The store directory given on the command line, else `fallback`, else the default.
    pub fn store_dir_or(&self, fallback: Option<&str>) -> anyhow::Result<StoreDir> {
        let dir = self
            .store_dir
            .as_deref()
            .or(fallback)
            .unwrap_or(DEFAULT_STORE_DIR);
        Ok(StoreDir::new(dir)?)
    }

    /// `--store`, `$GUIXIE_STORE`, else `$XDG_DATA_HOME/guixie` or `~/.local/share/guixie`.
    pub fn store_root(&self) -> anyhow::Result<std::path::PathBuf> {
        match &self.store {
            Some(r) => Ok(r.clone()),
            None => default_store_root(),
        }
    }

    /// How `store`'s evaluations run: the load path, the toolchain pin, and the extensions
    /// its instance's quorum accepted.
    pub fn eval_options(&self, store: &LocalStore) -> anyhow::Result<guixie_lang::EvalOptions> {
        Ok(guixie_lang::EvalOptions {
            load_path: self.load_path.clone(),
            bootstrap_pin: self.bootstrap_pin.clone(),
            extensions: govern::extension_modules(store)?,
            ..Default::default()
        })
    }

    /// The derivations a command-line target names: a `.scm` file (its value, or `attr`), a
    /// package name from the load path, or else None (a `.drv` path, for the caller).
    pub fn evaluate_target(
        &self,
        store: &std::sync::Arc<LocalStore>,
        target: &str,
        attr: Option<&str>,
    ) -> anyhow::Result<Option<Vec<guixie_lang::Evaluated>>> {
        let evaluator = guixie_lang::Evaluator::new(store.clone(), self.eval_options(store)?);
        if target.ends_with(".scm") {
            return Ok(Some(
                evaluator.eval_file(std::path::Path::new(target), attr)?,
            ));
        }
        let looks_like_name = !target.contains('/') && !target.ends_with(".drv");
        if looks_like_name && !std::path::Path::new(target).exists() {
            return Ok(Some(evaluator.eval_package(target)?));
        }
        Ok(None)
    }

    pub fn clock(&self) -> std::sync::Arc<dyn guixie_env::Clock> {
        self.clock.clone()
    }

    pub fn rng(&self) -> &dyn guixie_env::Randomness {
        self.rng.as_ref()
    }

    pub fn open_store(&self) -> anyhow::Result<LocalStore> {
        let root = self.store_root()?;
        let store_dir = self.store_dir_or(None)?;
        LocalStore::open(StoreConfig::new(&root, store_dir, self.clock()))
            .with_context(|| format!("opening the store at {}", root.display()))
    }
}

fn default_store_root() -> anyhow::Result<std::path::PathBuf> {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(std::path::PathBuf::from(d).join("guixie"));
    }
    let home = std::env::var_os("HOME")
        .context("neither --store, GUIXIE_STORE, XDG_DATA_HOME nor HOME is set")?;
    Ok(std::path::PathBuf::from(home).join(".local/share/guixie"))
}

/// The directory part of an absolute store path string (`/nix/store/x-y` → `/nix/store`).
pub fn store_dir_of(path: &str) -> Option<&str> {
    path.rsplit_once('/')
        .map(|(d, _)| d)
        .filter(|d| !d.is_empty())
}

/// `--collision`: how inputs with equal modulo hashes combine (see the README).
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Collision {
    /// Union of the used outputs (Nix since Aug 2026).
    Merge,
    /// The input whose `.drv` path sorts last wins (Nix up to Aug 2026, e.g. 2.8).
    LastWins,
}

impl From<Collision> for guixie_formats::derivation::InputCollision {
    fn from(c: Collision) -> Self {
        match c {
            Collision::Merge => Self::Merge,
            Collision::LastWins => Self::LastWins,
        }
    }
}
