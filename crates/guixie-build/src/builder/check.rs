//! `--check`: rebuild a derivation whose outputs are valid and compare the result with the
//! store bit for bit, naming the files that differ.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use guixie_formats::StorePath;
use guixie_store::PathInfoQuery;

use super::{drv_err, BuildError, Builder};

/// How a rebuild is traced.
#[derive(Clone, Debug)]
pub enum Trace {
    /// Under guixie's syscall tracer, from outside the sandbox: the file its trace goes to
    /// (where the build cannot reach it), written as `strace -f` writes.
    Strace { output: PathBuf },
    /// By something the build itself loads (the Python tracer): what it is given besides
    /// its inputs.
    Inside(InsideTrace),
}

/// What an in-sandbox tracer adds to a build: store items it loads, shown at their store
/// paths (host path, path inside); a host directory shared read-write, where it writes
/// what it saw (host path, path inside); variables that make the build load it; and the
/// command the builder is run under, if any.
#[derive(Clone, Debug)]
pub struct InsideTrace {
    pub inputs: Vec<(PathBuf, PathBuf)>,
    pub exchange: (PathBuf, PathBuf),
    pub env: Vec<(String, String)>,
    /// A command the builder runs under (the tool, its arguments), empty for none.
    pub wrap: Vec<String>,
    /// The tool is a debugger: `ptrace` is allowed within the sandbox (its PID namespace
    /// bounds it to the build's own processes; the run is never registered).
    pub debugger: bool,
}

/// What a traced rebuild gives besides the comparison: what the trace is to be read with.
#[derive(Debug)]
pub struct Traced {
    pub results: Vec<CheckResult>,
    /// The builder program, as the build ran it (the trace starts at its exec).
    pub builder: String,
    /// Its working directory.
    pub workdir: String,
    /// What the build could see, by its paths inside the sandbox.
    pub visible: Vec<String>,
    /// The traced run's log.
    pub log: PathBuf,
}

impl Builder<'_> {
    /// Rebuilds `drv_path` (whose outputs are valid) and compares the result bit for bit
    /// with the store. On a difference, the rebuilt output is kept beside the build logs and
    /// the differing files are named.
    pub fn check(&self, drv_path: &StorePath) -> Result<Vec<CheckResult>, BuildError> {
        Ok(self.check_run(drv_path, None, false)?.results)
    }

    /// [`Builder::check`] under a tracer: the traced run is compared with the registered
    /// outputs like any rebuild, and nothing of it is registered.
    pub fn check_traced(&self, drv_path: &StorePath, trace: &Trace) -> Result<Traced, BuildError> {
        self.check_run(drv_path, Some(trace), false)
    }

    /// [`Builder::check_traced`], except that a target whose inputs are built but whose own
    /// build failed is run under the tracer all the same (to see where it fails): there is
    /// nothing to compare it with, so its `results` are empty. An error is the traced run's
    /// failure, as for any build.
    pub fn trace_even_unbuilt(
        &self,
        drv_path: &StorePath,
        trace: &Trace,
    ) -> Result<Traced, BuildError> {
        self.check_run(drv_path, Some(trace), true)
    }

    fn check_run(
        &self,
        drv_path: &StorePath,
        trace: Option<&Trace>,
        unbuilt_allowed: bool,
    ) -> Result<Traced, BuildError> {
        let _gc = self.store.gc_guard()?;
        let sd = self.store.store_dir().clone();
        let plan = self.plan(std::slice::from_ref(drv_path))?;
        let mut outputs_of = BTreeMap::new();
        let mut target_built = true;
        for (p, d) in &plan {
            let outs = self.output_paths(p, d)?;
            for o in outs.values() {
                if !self.store.is_valid(o)? {
                    if unbuilt_allowed && p == drv_path {
                        target_built = false;
                        continue;
                    }
                    return Err(drv_err(
                        &sd.display(p),
                        format!(
                            "{} is not built; --check needs a previous build",
                            sd.display(o)
                        ),
                    ));
                }
            }
            outputs_of.insert(p.clone(), outs);
        }
        let (_, drv) = plan.last().expect("the plan ends with the target");
        let outputs = outputs_of[drv_path].clone();
        let run = self.run_sandboxed(drv_path, drv, &outputs, &outputs_of, &|_| {}, trace)?;
        let traced = |results| Traced {
            results,
            builder: String::from_utf8_lossy(&drv.builder).into_owned(),
            workdir: crate::builder::layout::BUILD_DIR.into(),
            visible: run
                .visible
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
            log: run.log.clone(),
        };
        if !target_built {
            let unbuilt = traced(Vec::new());
            self.discard(&run.area);
            return Ok(unbuilt);
        }
        let staged = match run.stage(&outputs) {
            Ok(s) => s,
            Err(e) => {
                self.discard(&run.area);
                return Err(e);
            }
        };
        let mut results = Vec::new();
        for (output, path) in &outputs {
            let rebuilt = staged.join(path.to_string());
            let stored = self.store.real_path(path);
            let mut differences = Vec::new();
            compare_trees(&stored, &rebuilt, Path::new(""), &mut differences);
            // An output the rebuild did not make is a difference with nothing to keep.
            let kept = if differences.is_empty() || std::fs::symlink_metadata(&rebuilt).is_err() {
                None
            } else {
                let keep = self
                    .store
                    .state_dir()
                    .join("check")
                    .join(format!("{path}.check"));
                let _ = guixie_store::safe_fs::remove_tree(&keep);
                std::fs::create_dir_all(keep.parent().expect("has a parent"))
                    .map_err(|e| BuildError::Io(e.to_string()))?;
                std::fs::rename(&rebuilt, &keep)
                    .map_err(|e| BuildError::Io(format!("{}: {e}", keep.display())))?;
                Some(keep)
            };
            results.push(CheckResult {
                output: output.clone(),
                path: path.clone(),
                differences,
                kept,
            });
        }
        let traced = traced(results);
        self.discard(&run.area);
        Ok(traced)
    }
}

/// The outcome of `--check` for one output.
#[derive(Debug)]
pub struct CheckResult {
    /// The output's name (`out`, …).
    pub output: String,
    pub path: StorePath,
    /// Relative paths that differ (contents, type, executable bit, link target, presence).
    pub differences: Vec<String>,
    /// Where the rebuilt copy was kept when it differs.
    pub kept: Option<PathBuf>,
}

fn compare_trees(a: &Path, b: &Path, rel: &Path, out: &mut Vec<String>) {
    use std::os::unix::fs::PermissionsExt;
    let shown = if rel.as_os_str().is_empty() {
        ".".to_owned()
    } else {
        rel.display().to_string()
    };
    let (ma, mb) = match (std::fs::symlink_metadata(a), std::fs::symlink_metadata(b)) {
        (Ok(x), Ok(y)) => (x, y),
        (Ok(_), Err(_)) => return out.push(format!("{shown}: missing in the rebuild")),
        (Err(_), Ok(_)) => return out.push(format!("{shown}: only in the rebuild")),
        (Err(_), Err(_)) => return,
    };
    if ma.file_type().is_dir() && mb.file_type().is_dir() {
        let names = |p: &Path| -> BTreeSet<std::ffi::OsString> {
            std::fs::read_dir(p)
                .map(|d| d.flatten().map(|e| e.file_name()).collect())
                .unwrap_or_default()
        };
        let all: BTreeSet<_> = names(a).union(&names(b)).cloned().collect();
        for n in all {
            compare_trees(&a.join(&n), &b.join(&n), &rel.join(&n), out);
        }
    } else if ma.file_type().is_symlink() && mb.file_type().is_symlink() {
        if std::fs::read_link(a).ok() != std::fs::read_link(b).ok() {
            out.push(format!("{shown}: symlink target differs"));
        }
    } else if ma.file_type().is_file() && mb.file_type().is_file() {
        if (ma.permissions().mode() & 0o100) != (mb.permissions().mode() & 0o100) {
            out.push(format!("{shown}: executable bit differs"));
        } else if ma.len() != mb.len() || !same_contents(a, b) {
            out.push(format!("{shown}: contents differ"));
        }
    } else {
        out.push(format!("{shown}: file type differs"));
    }
}

/// Streams both files in chunks (outputs may be larger than memory).
fn same_contents(a: &Path, b: &Path) -> bool {
    use std::io::Read;
    /// Reads until `buf` is full or the file ends; returns how much was read.
    fn fill(f: &mut std::fs::File, buf: &mut [u8]) -> Option<usize> {
        let mut n = 0;
        while n < buf.len() {
            match f.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        Some(n)
    }
    let (Ok(mut fa), Ok(mut fb)) = (std::fs::File::open(a), std::fs::File::open(b)) else {
        return false;
    };
    let (mut ba, mut bb) = (vec![0u8; 64 << 10], vec![0u8; 64 << 10]);
    loop {
        match (fill(&mut fa, &mut ba), fill(&mut fb, &mut bb)) {
            (Some(na), Some(nb)) if na == nb && ba[..na] == bb[..nb] => {
                if na == 0 {
                    return true;
                }
            }
            _ => return false,
        }
    }
}
