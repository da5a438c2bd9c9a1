//! Realising derivations: the closure in dependency order (`schedule`), each missing output
//! laid out (`layout`, pure), built in the sandbox (`run`) under supervision (`supervise`),
//! then checked and registered with its references (`outputs`); `check` rebuilds and
//! compares. A failed build registers nothing and leaves nothing that blocks a retry.

mod cgroup;
mod check;
mod layout;
mod outputs;
mod run;
mod schedule;
mod supervise;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use guixie_env::Clock;
use guixie_formats::derivation::Derivation;
use guixie_formats::StorePath;
use guixie_store::{LocalStore, PathInfoQuery, StoreError, Substituter};
use thiserror::Error;

pub use check::{CheckResult, InsideTrace, Trace, Traced};

#[derive(Debug, Error)]
pub enum BuildError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{drv}: {message}")]
    Derivation { drv: String, message: String },
    #[error("builder for {drv} failed with exit status {status}; log: {log}{}", kept.as_ref().map(|k| format!("; build directory kept at {}", k.display())).unwrap_or_default())]
    Failed {
        drv: String,
        status: i32,
        log: String,
        kept: Option<PathBuf>,
    },
    #[error("cannot build {drv}: the sandbox could not be set up ({message}); guixie refuses to build without isolation")]
    Sandbox { drv: String, message: String },
    #[error("builder for {drv} was stopped: it wrote more than {limit} bytes (--max-output-size); log: {log}")]
    TooLarge {
        drv: String,
        limit: u64,
        log: String,
    },
    #[error("builder for {drv} was stopped after {seconds} s ({what}); log: {log}")]
    TimedOut {
        drv: String,
        seconds: u64,
        what: &'static str,
        log: String,
    },
    #[error("builder for {drv} did not produce output {output} ({path})")]
    MissingOutput {
        drv: String,
        output: String,
        path: String,
    },
    #[error("output {path} of {drv}: {message}")]
    BadOutput {
        drv: String,
        path: String,
        message: String,
    },
    #[error("cannot substitute {path}: {message} (--fallback builds it instead)")]
    Substitute { path: String, message: String },
    #[error("{0}")]
    Io(String),
    #[error("{} builds failed:\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Several(Vec<BuildError>),
}

#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// `/bin/sh` inside the sandbox (a static shell, as Nix's default sandbox paths give).
    pub shell: Option<PathBuf>,
    pub timeout: Duration,
    /// Stop a builder that has printed nothing for this long.
    pub max_silent: Duration,
    pub keep_failed: bool,
    /// Go on building what does not depend on a failed derivation.
    pub keep_going: bool,
    /// Copy builders' output to stderr as it comes (it is always logged).
    pub echo_log: bool,
    /// Builds run at once.
    pub jobs: usize,
    /// What a builder is told it may use (`NIX_BUILD_CORES`), as Nix's `--cores`.
    pub cores: usize,
    /// The certificate authorities (PEM) `builtin:fetchurl` trusts over HTTPS, as Nix's
    /// `ssl-cert-file`; `None`: the built-in web roots.
    pub ca_certificates: Option<String>,
    pub max_processes: u64,
    pub max_file_size: u64,
    /// Most disk space a build may fill in all (outputs, build directory, `/tmp`), in bytes;
    /// checked every second, the build is killed past it.
    pub max_output_size: u64,
    /// The sandbox helper executable, `guixie-sandbox` (normally beside the running one).
    pub helper: PathBuf,
    /// `slirp4netns`, which gives fixed-output builds their network.
    pub slirp4netns: Option<PathBuf>,
    /// Let fixed-output builds reach the host's 127.0.0.1, as 10.0.2.2 (off by default).
    pub host_loopback: bool,
    /// Build what a substitute source has but cannot deliver (a bad signature, a wrong hash,
    /// a network error), instead of failing.
    pub fallback: bool,
}

/// `NAME` found in `$PATH` (or the usual system directories).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            shell: Some(PathBuf::from("/bin/busybox")).filter(|p| p.exists()),
            timeout: Duration::from_secs(3600),
            max_silent: Duration::from_secs(3600),
            keep_failed: false,
            keep_going: false,
            echo_log: false,
            jobs: 1,
            cores: 1,
            ca_certificates: None,
            max_processes: 4096,
            max_file_size: 64 << 30,
            max_output_size: u64::MAX,
            helper: std::env::current_exe()
                .ok()
                .and_then(|exe| Some(exe.parent()?.join("guixie-sandbox")))
                .unwrap_or_else(|| PathBuf::from("guixie-sandbox")),
            slirp4netns: find_program("slirp4netns"),
            host_loopback: false,
            fallback: false,
        }
    }
}

/// What `realise` reports as it goes.
pub enum BuildEvent<'a> {
    /// A running build's builder said it starts a phase (`starting phase `configure'`).
    Phase { drv: &'a StorePath, phase: &'a str },
    /// The closure to realise has this many derivations (valid ones included).
    Planned { derivations: usize },
    /// A build starts (its outputs were not valid).
    Started { drv: &'a StorePath },
    /// A derivation's outputs are valid, built now or before.
    Finished {
        drv: &'a StorePath,
        derivation: &'a Derivation,
        outputs: &'a BTreeMap<String, StorePath>,
        outcome: &'a Realised,
    },
    Failed {
        drv: &'a StorePath,
        error: &'a BuildError,
    },
}

/// What happened to one derivation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Realised {
    AlreadyValid,
    /// Its outputs came from a substitute source.
    Substituted,
    Built {
        log: PathBuf,
    },
}

pub struct Builder<'s> {
    store: &'s LocalStore,
    options: BuildOptions,
    clock: Arc<dyn Clock>,
    substituter: Option<Arc<dyn Substituter>>,
}

pub(super) fn drv_err(drv: &str, message: impl Into<String>) -> BuildError {
    BuildError::Derivation {
        drv: drv.to_owned(),
        message: message.into(),
    }
}

impl<'s> Builder<'s> {
    /// A builder on `store`; supervision (timeouts, silence) reads `clock`.
    pub fn new(store: &'s LocalStore, options: BuildOptions, clock: Arc<dyn Clock>) -> Self {
        Builder {
            store,
            options,
            clock,
            substituter: None,
        }
    }

    /// Missing outputs are asked of `substituter` before they are built.
    pub fn with_substituter(mut self, substituter: Arc<dyn Substituter>) -> Self {
        self.substituter = Some(substituter);
        self
    }

    /// Substitutes every output of `outputs` that is not valid: `Ok(true)` when all are valid
    /// afterwards, `Ok(false)` when one is in no cache (it must be built). A cache that has it
    /// but fails is an error, unless `fallback` says to build instead.
    pub(super) fn try_substitute(&self, outputs: &[StorePath]) -> Result<bool, BuildError> {
        let Some(sub) = &self.substituter else {
            return Ok(false);
        };
        let valid = self.store.are_valid(outputs)?;
        let missing: Vec<StorePath> = outputs
            .iter()
            .zip(valid)
            .filter(|(_, v)| !v)
            .map(|(p, _)| p.clone())
            .collect();
        if missing.is_empty() {
            return Ok(true);
        }
        // All at once: the store can import them as one batch.
        match sub.substitute(self.store, &missing) {
            Ok(found) => Ok(found),
            Err(_) if self.options.fallback => Ok(false),
            Err(message) => Err(BuildError::Substitute {
                path: self.store.store_dir().display(&missing[0]),
                message,
            }),
        }
    }

    /// Reads and parses a valid `.drv` from the store.
    pub(super) fn load(&self, drv_path: &StorePath) -> Result<Derivation, BuildError> {
        let shown = self.store.store_dir().display(drv_path);
        guixie_store::read_derivation(self.store, drv_path).map_err(|e| match e {
            StoreError::NotValid { .. } => {
                drv_err(&shown, "is not in the store (evaluate or import it first)")
            }
            e => drv_err(&shown, e.to_string()),
        })
    }

    pub(super) fn output_paths(
        &self,
        drv_path: &StorePath,
        drv: &Derivation,
    ) -> Result<BTreeMap<String, StorePath>, BuildError> {
        drv.output_paths()
            .map_err(|e| drv_err(&self.store.store_dir().display(drv_path), e.to_string()))
    }

    pub(super) fn realise_one(
        &self,
        drv_path: &StorePath,
        drv: &Derivation,
        outputs_of: &BTreeMap<StorePath, BTreeMap<String, StorePath>>,
        progress: &(dyn Fn(BuildEvent<'_>) + Sync),
    ) -> Result<(BTreeMap<String, StorePath>, Realised), BuildError> {
        let outputs = self.output_paths(drv_path, drv)?;
        // Another process may be building the same outputs: wait for it (locks in sorted
        // order, so two builders cannot deadlock), then see what is left to do.
        let mut locks = Vec::new();
        for p in outputs.values() {
            locks.push(self.store.build_lock(p)?);
        }
        let mut all_valid = true;
        for p in outputs.values() {
            all_valid &= self.store.is_valid(p)?;
        }
        let wanted: Vec<StorePath> = outputs.values().cloned().collect();
        let outcome = if all_valid {
            Realised::AlreadyValid
        } else if self.try_substitute(&wanted)? {
            Realised::Substituted
        } else {
            progress(BuildEvent::Started { drv: drv_path });
            self.build_one(drv_path, drv, &outputs, outputs_of, progress)?
        };
        drop(locks);
        Ok((outputs, outcome))
    }

    pub(super) fn discard(&self, area: &Path) {
        let _ = guixie_store::safe_fs::remove_tree(area);
    }

    /// Where the log of a derivation's last build is kept.
    pub fn log_path(&self, drv_path: &StorePath) -> Result<PathBuf, BuildError> {
        let dir = self.store.state_dir().join("build-logs");
        std::fs::create_dir_all(&dir)
            .map_err(|e| BuildError::Io(format!("{}: {e}", dir.display())))?;
        Ok(dir.join(format!("{drv_path}.log.gz")))
    }
}
