//! guixie's package language. Package files are real GNU Guile 3.0, evaluated on the Guile
//! thread (crate `guile`) inside a sandbox module: no file, socket or process access, a time
//! limit, each top-level form interpreted, not compiled.
//!
//! Host side (`scheme/guixie/*.scm`): describes derivations and lowers them through the Rust
//! primitives of `(guixie primitives)`, which compute hashes and store paths with
//! `guixie-formats`. The `.drv` files an evaluation produces are written to the store in one
//! batch, and only if the whole evaluation succeeded.

mod cache;
mod primitives;
mod session;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use guile::{Guile, GuileError, Value};
use guixie_formats::derivation::InputCollision;
use guixie_store::{LocalStore, PathInfoQuery, StoreError};
use thiserror::Error;

use session::Session;

/// Embeds a host-side module: its source (part of the evaluation cache's key) and the
/// bytecode `build.rs` compiled from it with `guild compile -O1`.
macro_rules! module {
    ($name:literal, $go:literal) => {
        (
            $name,
            include_str!(concat!("../scheme/", $name, ".scm")),
            include_bytes!(concat!(env!("OUT_DIR"), "/", $go)) as &[u8],
        )
    };
}

/// guixie's own Scheme modules, in load order: (name, source, compiled).
const MODULES: &[(&str, &str, &[u8])] = &[
    module!("guixie/derivations", "guixie-derivations.go"),
    module!("guixie/gexp", "guixie-gexp.go"),
    module!("guixie/licenses", "guixie-licenses.go"),
    module!("guixie/packages", "guixie-packages.go"),
    module!("guixie/build-systems", "guixie-build-systems.go"),
    module!("guixie/loader", "guixie-loader.go"),
];

/// Modules for the build side (run by the bootstrap toolchain's Guile inside builds), by
/// module name; lowered G-expressions load them from the store.
pub const BUILD_SIDE_MODULES: &[(&str, &str)] = &[
    (
        "guixie build utils",
        include_str!("../scheme/guixie/build/utils.scm"),
    ),
    (
        "guixie build gnu-build-system",
        include_str!("../scheme/guixie/build/gnu-build-system.scm"),
    ),
    (
        "guixie build origin",
        include_str!("../scheme/guixie/build/origin.scm"),
    ),
    (
        "guixie build copy-build-system",
        include_str!("../scheme/guixie/build/copy-build-system.scm"),
    ),
    (
        "guixie build cmake-build-system",
        include_str!("../scheme/guixie/build/cmake-build-system.scm"),
    ),
    (
        "guixie build perl-build-system",
        include_str!("../scheme/guixie/build/perl-build-system.scm"),
    ),
    (
        "guixie build python-build-system",
        include_str!("../scheme/guixie/build/python-build-system.scm"),
    ),
    (
        "guixie build pyproject-build-system",
        include_str!("../scheme/guixie/build/pyproject-build-system.scm"),
    ),
    (
        "guixie build cargo-build-system",
        include_str!("../scheme/guixie/build/cargo-build-system.scm"),
    ),
];

#[derive(Debug, Error)]
pub enum EvalError {
    #[error("{0}")]
    Scheme(#[from] GuileError),
    #[error("{file}: nothing named {name:?} is defined there")]
    NoSuchAttribute { file: String, name: String },
    #[error("no package named {name:?} in the modules on the load path ({load_path:?}); add a directory with -L DIR or GUIXIE_LOAD_PATH, or name a .scm file{}", broken_note(.broken))]
    NoSuchPackage {
        name: String,
        load_path: String,
        /// Modules that failed to load ("file:line:column: message"): the package may be
        /// in one of them.
        broken: Vec<String>,
    },
    #[error("{file} changed while it was being evaluated; evaluate again")]
    Changed { file: String },
    #[error("writing derivations to the store: {0}")]
    Store(#[from] StoreError),
}

#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Wall-clock budget for evaluating user code.
    pub max_eval_seconds: f64,
    pub collision: InputCollision,
    /// Directories where `(use-modules (a b))` finds `a/b.scm`, and `show` looks for packages.
    pub load_path: Vec<std::path::PathBuf>,
    /// Reuse the results of an earlier evaluation of an unchanged file (see `cache`).
    pub use_cache: bool,
    /// The NAR hash of the bootstrap toolchain its user trusts; any other is refused (see
    /// `guixie-trust-root`). `None`: whatever the host's packages give.
    pub bootstrap_pin: Option<guixie_trust_root::ToolchainPin>,
    /// The extensions `(use-modules (guixie ext NAME))` finds: name → its module file. The
    /// caller gives only those its instance's quorum accepted.
    pub extensions: BTreeMap<String, PathBuf>,
    /// When set, `local-file` may read only under this directory (for untrusted recipes).
    pub file_root: Option<PathBuf>,
}

impl EvalOptions {
    /// The load path as `GUIXIE_LOAD_PATH` spells it, for messages.
    pub fn load_path_shown(&self) -> String {
        let dirs: Vec<String> = self
            .load_path
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        dirs.join(":")
    }
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            max_eval_seconds: 60.0,
            collision: InputCollision::default(),
            load_path: Vec::new(),
            extensions: BTreeMap::new(),
            file_root: None,
            use_cache: true,
            bootstrap_pin: None,
        }
    }
}

/// A derivation an evaluation returned.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Evaluated {
    pub name: String,
    pub drv_path: String,
    pub outputs: BTreeMap<String, String>,
    /// The package's `native-search-paths` and `search-paths` (none for a bare derivation):
    /// what an environment holding it sets.
    #[serde(default)]
    pub search_paths: Vec<SearchPath>,
}

/// A package's fields as `guixie show` prints them: (field, value) in order.
pub type PackageFields = Vec<(String, String)>;

/// An environment variable set from directories of an environment's packages.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SearchPath {
    pub variable: String,
    /// Directories relative to each package, e.g. `lib/pkgconfig`.
    pub files: Vec<String>,
    pub separator: String,
}

pub struct Evaluator {
    store: Arc<LocalStore>,
    options: EvalOptions,
}

enum Source<'a> {
    File(&'a Path),
    Expr(&'a str),
    /// Packages of this name exported by the modules on the load path.
    Package(&'a str),
}

impl Evaluator {
    pub fn new(store: Arc<LocalStore>, options: EvalOptions) -> Self {
        Evaluator { store, options }
    }

    /// Evaluates a file; returns the derivations of its last value, or of the variable `attr`.
    pub fn eval_file(&self, file: &Path, attr: Option<&str>) -> Result<Vec<Evaluated>, EvalError> {
        self.run(Source::File(file), attr)
    }

    pub fn eval_expr(&self, expr: &str) -> Result<Vec<Evaluated>, EvalError> {
        self.run(Source::Expr(expr), None)
    }

    /// The packages named `name` that the modules on the load path export.
    pub fn eval_package(&self, name: &str) -> Result<Vec<Evaluated>, EvalError> {
        let found = self.run(Source::Package(name), None)?;
        if found.is_empty() {
            return Err(EvalError::NoSuchPackage {
                name: name.to_owned(),
                load_path: self.options.load_path_shown(),
                broken: vec![],
            });
        }
        Ok(found)
    }

    /// An interactive Guile REPL on standard input and output in a package file's sandbox:
    /// the same bindings and module resolution (the load path, the accepted extensions),
    /// with read-only store queries and no time limit. The derivations made in it are
    /// written to the store when it ends.
    pub fn repl(&self) -> Result<(), EvalError> {
        let session = Session::new(
            self.store.clone(),
            self.options.collision,
            self.options.bootstrap_pin.clone(),
        );
        let (result, session) = guile::with_guile(|g| {
            session.run(|| -> Result<(), GuileError> {
                install_modules(g)?;
                let load_path = load_path(g, &self.options)?;
                g.call(
                    g.public_ref("guixie loader", "start-package-repl")?,
                    &[load_path],
                )?;
                Ok(())
            })
        });
        result?;
        self.write_results(&session)?;
        Ok(())
    }

    fn run(&self, source: Source<'_>, attr: Option<&str>) -> Result<Vec<Evaluated>, EvalError> {
        // Files are cached (see `cache`); expressions and load-path lookups are not.
        let cached = match &source {
            Source::File(f) if self.options.use_cache => {
                std::fs::canonicalize(f).ok().and_then(|main| {
                    let main_hash = cache::content_hash(&main)?;
                    Some((self.cache_key(&main, attr), main_hash, main))
                })
            }
            _ => None,
        };
        let cache = cache::EvalCache::new(self.store.state_dir());
        if let Some((key, _, _)) = &cached {
            if let Some(results) = cache.lookup(key) {
                if self.all_valid(&results)? {
                    return Ok(results);
                }
            }
        }
        let session = Session::new(
            self.store.clone(),
            self.options.collision,
            self.options.bootstrap_pin.clone(),
        );
        let (result, session) =
            guile::with_guile(|g| session.run(|| evaluate(g, &source, attr, &self.options)));
        let (evaluated, module_files) = result?;
        self.write_results(&session)?;
        if let Some((key, main_hash, main)) = cached {
            let Some(trees) = session
                .pending_files
                .iter()
                .map(|l| Some((l.file.clone(), l.fingerprint.clone()?, l.excluded.clone())))
                .collect::<Option<Vec<_>>>()
            else {
                return Ok(evaluated);
            };
            let mut files = vec![(main, main_hash)];
            for m in module_files {
                match cache::content_hash(&m) {
                    Some(h) => files.push((m, h)),
                    None => return Ok(evaluated),
                }
            }
            let entry = cache::Entry {
                files,
                trees,
                dpkg: if session.used_toolchain {
                    guixie_trust_root::host_packages_fingerprint()
                } else {
                    None
                },
                results: evaluated.clone(),
            };
            cache.store(&key, &entry);
        }
        Ok(evaluated)
    }

    /// Everything an evaluation of `file` (a canonical path) depends on besides what the
    /// cache entry records.
    fn cache_key(&self, file: &Path, attr: Option<&str>) -> String {
        let mut key = format!(
            "guixie eval cache 1\0{}\0{}\0{:?}\0{}\0{}\0{}\0{}\0",
            env!("CARGO_PKG_VERSION"),
            self.store.store_dir().as_str(),
            self.options.collision,
            self.options.max_eval_seconds,
            file.display(),
            attr.unwrap_or(""),
            self.options
                .bootstrap_pin
                .as_ref()
                .map(|p| {
                    p.nar_hashes
                        .iter()
                        .map(|h| h.to_hex())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default(),
        );
        for dir in &self.options.load_path {
            let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
            key.push_str(&dir.display().to_string());
            key.push('\0');
        }
        // An extension accepted or removed changes what `(guixie ext NAME)` names.
        key.push_str(&format!("file root {:?}\0", self.options.file_root));
        key.push_str("extensions\0");
        for (name, file) in &self.options.extensions {
            key.push_str(&format!("{name}={}\0", file.display()));
        }
        for (name, source) in MODULES
            .iter()
            .map(|(name, source, _)| (name, source))
            .chain(
                BUILD_SIDE_MODULES
                    .iter()
                    .map(|(name, source)| (name, source)),
            )
        {
            key.push_str(name);
            key.push_str(source);
        }
        guixie_formats::Hash::digest_of(guixie_formats::HashAlgo::Sha256, key.as_bytes()).to_hex()
    }

    fn all_valid(&self, results: &[Evaluated]) -> Result<bool, EvalError> {
        let sd = self.store.store_dir();
        let mut paths = Vec::new();
        for r in results {
            match sd.parse_path(&r.drv_path) {
                Ok(p) => paths.push(p),
                Err(_) => return Ok(false),
            }
        }
        Ok(self.store.are_valid(&paths)?.into_iter().all(|v| v))
    }

    /// The packages named `name` (all packages, without a name) that `file` defines, or that
    /// the modules on the load path export: each as its fields, in `guix show` order.
    /// The packages named `name` (all of them without a name) in `file` or on the load path,
    /// each as its fields; and the modules of the load path that failed to load
    /// ("file:line:column: message"), which the lookup went past.
    pub fn describe_packages(
        &self,
        name: Option<&str>,
        file: Option<&Path>,
    ) -> Result<(Vec<PackageFields>, Vec<String>), EvalError> {
        let session = Session::new(
            self.store.clone(),
            self.options.collision,
            self.options.bootstrap_pin.clone(),
        );
        let (result, session) = guile::with_guile(|g| {
            session.run(|| -> Result<_, EvalError> {
                install_modules(g)?;
                let found = g.call(
                    g.public_ref("guixie loader", "find-packages")?,
                    &[
                        name.map(|n| g.string(n)).unwrap_or_else(|| g.bool(false)),
                        file.map(|f| g.string(&f.to_string_lossy()))
                            .unwrap_or_else(|| g.bool(false)),
                        eval_seconds(g, &self.options)?,
                        load_path(g, &self.options)?,
                    ],
                )?;
                let describe = g.public_ref("guixie loader", "describe-package")?;
                let mut packages = Vec::new();
                for p in found.list().unwrap_or_default() {
                    let fields = g.call(describe, &[p])?;
                    packages.push(
                        fields
                            .list()
                            .unwrap_or_default()
                            .filter_map(|f| Some((f.car()?.to_text()?, f.cdr()?.to_text()?)))
                            .collect(),
                    );
                }
                Ok((packages, broken_list(g)?))
            })
        });
        let packages = result?;
        self.write_results(&session)?;
        Ok(packages)
    }

    /// Adds what a successful evaluation made: local files first, then the text files and
    /// `.drv`s that may refer to them.
    fn write_results(&self, session: &Session) -> Result<(), EvalError> {
        for local in &session.pending_files {
            if self.store.is_valid(&local.path)? {
                continue;
            }
            let added = self.store.add_path_excluding(
                &local.file,
                &local.name,
                false,
                local.excluded.clone(),
            )?;
            if added.path != local.path {
                return Err(EvalError::Changed {
                    file: local.file.display().to_string(),
                });
            }
        }
        self.store.add_texts(&session.pending)?;
        Ok(())
    }
}

fn install_modules(g: &Guile) -> Result<(), GuileError> {
    thread_local!(static INSTALLED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    if INSTALLED.with(|i| i.get()) {
        return Ok(());
    }
    g.define_module(
        "guixie primitives",
        primitives::define_all,
        primitives::PRIMITIVE_NAMES,
    )?;
    // Loading bytecode from memory costs a few milliseconds; evaluating the sources would
    // expand every macro again on each run.
    let load = g.eval_str("(lambda (bv) ((@ (system vm loader) load-thunk-from-memory) bv))")?;
    for (_, _, compiled) in MODULES {
        let thunk = g.call(load, &[g.bytevector(compiled)])?;
        g.call(thunk, &[])?;
    }
    // Back to a neutral module for whatever runs next on this thread.
    g.eval_str("(set-current-module (resolve-module '(guile-user)))")?;
    INSTALLED.with(|i| i.set(true));
    Ok(())
}

fn eval_seconds<'g>(g: &'g Guile, options: &EvalOptions) -> Result<Value<'g>, GuileError> {
    let max_ms = (options.max_eval_seconds * 1000.0).max(1.0) as i64;
    g.call(g.eval_str("(lambda (ms) (/ ms 1000.0))")?, &[g.int(max_ms)])
}

/// The load path for the loader's entry points, after telling the loader which extensions
/// there are.
fn load_path<'g>(g: &'g Guile, options: &EvalOptions) -> Result<Value<'g>, GuileError> {
    let extensions = g.list_with(
        &options.extensions.iter().collect::<Vec<_>>(),
        |(name, file)| g.cons(g.string(name), g.string(&file.to_string_lossy())),
    );
    g.call(
        g.public_ref("guixie loader", "set-extensions!")?,
        &[extensions],
    )?;
    let root = match &options.file_root {
        Some(dir) => g.string(
            &std::fs::canonicalize(dir)
                .unwrap_or_else(|_| dir.clone())
                .to_string_lossy(),
        ),
        None => g.bool(false),
    };
    g.call(
        g.public_ref("guixie gexp", "set-local-file-root!")?,
        &[root],
    )?;
    Ok(g.list_with(&options.load_path, |dir| {
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
        g.string(&dir.to_string_lossy())
    }))
}

fn evaluate(
    g: &Guile,
    source: &Source<'_>,
    attr: Option<&str>,
    options: &EvalOptions,
) -> Result<(Vec<Evaluated>, Vec<PathBuf>), EvalError> {
    install_modules(g)?;
    let seconds = eval_seconds(g, options)?;
    let load_path = load_path(g, options)?;
    let (loaded, label) = match source {
        Source::File(f) => {
            // Absolute, so that forms remember where they were written (a relative
            // `local-file` in a thunked field is resolved after the file has loaded).
            let f = std::path::absolute(f).unwrap_or_else(|_| f.to_path_buf());
            let path = f.to_string_lossy();
            (
                g.call(
                    g.public_ref("guixie loader", "load-user-file")?,
                    &[g.string(&path), seconds, load_path],
                )?,
                path.into_owned(),
            )
        }
        Source::Package(name) => {
            let found = g.call(
                g.public_ref("guixie loader", "find-newest-packages")?,
                &[g.string(name), seconds, load_path],
            )?;
            if found.list().is_none_or(|mut l| l.next().is_none()) {
                return Err(EvalError::NoSuchPackage {
                    name: (*name).to_owned(),
                    load_path: options.load_path_shown(),
                    broken: broken_list(g)?,
                });
            }
            (g.cons(found, g.bool(false)), "<load path>".to_owned())
        }
        Source::Expr(e) => (
            g.call(
                g.public_ref("guixie loader", "load-user-string")?,
                &[g.string(e), seconds, load_path],
            )?,
            "<expression>".to_owned(),
        ),
    };
    let (Some(mut value), Some(module)) = (loaded.car(), loaded.cdr()) else {
        return Err(GuileError::plain("loader returned no (value . module) pair").into());
    };
    if let Some(name) = attr {
        let var = g.call(
            g.public_ref("guile", "module-variable")?,
            &[module, g.symbol(name)],
        )?;
        if var.is_false() {
            return Err(EvalError::NoSuchAttribute {
                file: label,
                name: name.to_owned(),
            });
        }
        value = g.call(g.public_ref("guile", "variable-ref")?, &[var])?;
    }
    let found = g.call(
        g.public_ref("guixie loader", "collect-derivations")?,
        &[value],
    )?;
    let evaluated = found
        .list()
        .unwrap_or_default()
        .filter_map(to_evaluated)
        .collect();
    let module_files = g
        .call(g.public_ref("guixie loader", "loaded-module-files")?, &[])?
        .list()
        .unwrap_or_default()
        .filter_map(|f| f.to_text().map(PathBuf::from))
        .collect();
    Ok((evaluated, module_files))
}

fn broken_list(g: &Guile) -> Result<Vec<String>, GuileError> {
    Ok(
        g.call(g.public_ref("guixie loader", "broken-modules")?, &[])?
            .list()
            .unwrap_or_default()
            .filter_map(|m| m.to_text())
            .collect(),
    )
}

fn broken_note(broken: &[String]) -> String {
    if broken.is_empty() {
        String::new()
    } else {
        format!("; these modules failed to load: {}", broken.join("; "))
    }
}

fn to_evaluated(v: Value<'_>) -> Option<Evaluated> {
    let [name, drv, outputs, search_paths] = v.list_array()?;
    let outputs = outputs
        .list()?
        .filter_map(|p| Some((p.car()?.to_text()?, p.cdr()?.to_text()?)))
        .collect();
    // ((variable separator file ...) ...)
    let search_paths = search_paths
        .list()?
        .filter_map(|spec| {
            let mut items = spec.list()?;
            let variable = items.next()?.to_text()?;
            let separator = items.next()?.to_text()?;
            let files = items.filter_map(|f| f.to_text()).collect();
            Some(SearchPath {
                variable,
                files,
                separator,
            })
        })
        .collect();
    Some(Evaluated {
        name: name.to_text()?,
        drv_path: drv.to_text()?,
        outputs,
        search_paths,
    })
}
