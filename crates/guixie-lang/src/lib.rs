//! guixie's package language. Package files are real GNU Guile 3.0, evaluated on the Guile
//! thread (crate `guile`) inside a sandbox module: no file, socket or process access, a time
//! limit, each top-level form interpreted, not compiled.
//!
//! Host side (`scheme/guixie/*.scm`): describes derivations and lowers them through the Rust
//! primitives of `(guixie primitives)`, which compute hashes and store paths with
//! `guixie-formats`. The `.drv` files an evaluation produces are written to the store in one
//! batch, and only if the whole evaluation succeeded.

pub mod bootstrap;
mod primitives;
mod session;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use guile::{Guile, GuileError, Value};
use guixie_formats::derivation::InputCollision;
use guixie_store::{LocalStore, Store, StoreError};
use thiserror::Error;

use session::Session;

/// guixie's own Scheme modules, in load order.
const MODULES: &[(&str, &str)] = &[
    (
        "guixie/derivations.scm",
        include_str!("../scheme/guixie/derivations.scm"),
    ),
    ("guixie/gexp.scm", include_str!("../scheme/guixie/gexp.scm")),
    (
        "guixie/packages.scm",
        include_str!("../scheme/guixie/packages.scm"),
    ),
    (
        "guixie/build-systems.scm",
        include_str!("../scheme/guixie/build-systems.scm"),
    ),
    (
        "guixie/loader.scm",
        include_str!("../scheme/guixie/loader.scm"),
    ),
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
];

#[derive(Debug, Error)]
pub enum EvalError {
    #[error("{0}")]
    Scheme(#[from] GuileError),
    #[error("{file}: nothing named {name:?} is defined there")]
    NoSuchAttribute { file: String, name: String },
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
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            max_eval_seconds: 60.0,
            collision: InputCollision::default(),
        }
    }
}

/// A derivation an evaluation returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluated {
    pub name: String,
    pub drv_path: String,
    pub outputs: BTreeMap<String, String>,
}

pub struct Evaluator {
    store: Arc<LocalStore>,
    options: EvalOptions,
}

enum Source<'a> {
    File(&'a Path),
    Expr(&'a str),
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

    /// An interactive Guile REPL on standard input and output, with guixie's modules loaded
    /// (not sandboxed: the user at the keyboard is trusted). The derivations made in it are
    /// written to the store when it ends.
    pub fn repl(&self) -> Result<(), EvalError> {
        let session = Session::new(self.store.clone(), self.options.collision);
        let (result, session) = guile::with_guile(|g| {
            session.run(|| -> Result<(), GuileError> {
                install_modules(g)?;
                g.eval_str("(use-modules (system repl repl) (guixie derivations)) (start-repl)")?;
                Ok(())
            })
        });
        result?;
        self.write_results(&session)?;
        Ok(())
    }

    fn run(&self, source: Source<'_>, attr: Option<&str>) -> Result<Vec<Evaluated>, EvalError> {
        let session = Session::new(self.store.clone(), self.options.collision);
        let max_ms = (self.options.max_eval_seconds * 1000.0).max(1.0) as i64;
        let (result, session) =
            guile::with_guile(|g| session.run(|| evaluate(g, &source, attr, max_ms)));
        let evaluated = result?;
        self.write_results(&session)?;
        Ok(evaluated)
    }

    /// Adds what a successful evaluation made: local files first, then the text files and
    /// `.drv`s that may refer to them.
    fn write_results(&self, session: &Session) -> Result<(), EvalError> {
        for (path, name, file) in &session.pending_files {
            if self.store.is_valid(path)? {
                continue;
            }
            let added = self.store.add_path(file, name, false)?;
            if added.path != *path {
                return Err(EvalError::Changed {
                    file: file.display().to_string(),
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
        primitives::EXPORTS,
    );
    for (_, source) in MODULES {
        g.eval_str(source)?;
    }
    // Back to a neutral module for whatever runs next on this thread.
    g.eval_str("(set-current-module (resolve-module '(guile-user)))")?;
    INSTALLED.with(|i| i.set(true));
    Ok(())
}

fn evaluate(
    g: &Guile,
    source: &Source<'_>,
    attr: Option<&str>,
    max_ms: i64,
) -> Result<Vec<Evaluated>, EvalError> {
    install_modules(g)?;
    let seconds = g.call(g.eval_str("(lambda (ms) (/ ms 1000.0))")?, &[g.int(max_ms)])?;
    let (loaded, label) = match source {
        Source::File(f) => {
            let path = f.to_string_lossy();
            (
                g.call(
                    g.public_ref("guixie loader", "load-user-file")?,
                    &[g.string(&path), seconds],
                )?,
                path.into_owned(),
            )
        }
        Source::Expr(e) => (
            g.call(
                g.public_ref("guixie loader", "load-user-string")?,
                &[g.string(e), seconds],
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
    Ok(found
        .list()
        .unwrap_or_default()
        .into_iter()
        .filter_map(to_evaluated)
        .collect())
}

fn to_evaluated(v: Value<'_>) -> Option<Evaluated> {
    let items = v.list()?;
    let [name, drv, outputs] = items.as_slice() else {
        return None;
    };
    let outputs = outputs
        .list()?
        .into_iter()
        .filter_map(|p| Some((p.car()?.to_text()?, p.cdr()?.to_text()?)))
        .collect();
    Some(Evaluated {
        name: name.to_text()?,
        drv_path: drv.to_text()?,
        outputs,
    })
}
