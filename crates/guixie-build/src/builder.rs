//! Realising derivations: the closure in dependency order, each missing output built in the
//! sandbox, checked (fixed-output hashes, escaping symlinks) and registered with its
//! references. A failed build registers nothing and leaves nothing that blocks a retry.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use guixie_formats::derivation::Derivation;
use guixie_formats::{StoreDir, StorePath};
use guixie_store::{LocalStore, Store, StoreError};
use thiserror::Error;

use crate::sandbox::SandboxSpec;
use guixie_formats::derivation::TOOLCHAIN_ENV;

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
            max_processes: 4096,
            max_file_size: 64 << 30,
            max_output_size: u64::MAX,
            helper: std::env::current_exe()
                .ok()
                .and_then(|exe| Some(exe.parent()?.join("guixie-sandbox")))
                .unwrap_or_else(|| PathBuf::from("guixie-sandbox")),
            slirp4netns: find_program("slirp4netns"),
            host_loopback: false,
        }
    }
}

/// Finds the lines `starting phase `NAME'` (as build systems print them, Guix's and ours)
/// in a builder's output, whatever the chunks it arrives in.
#[derive(Default)]
struct PhaseScanner {
    line: Vec<u8>,
}

impl PhaseScanner {
    const PREFIX: &'static [u8] = b"starting phase `";
    /// Longer lines are not phase lines; only their start is kept.
    const MAX_LINE: usize = 256;

    fn scan(&mut self, bytes: &[u8], found: &mut dyn FnMut(&str)) {
        for &b in bytes {
            if b == b'\n' {
                if let Some(rest) = self.line.strip_prefix(Self::PREFIX) {
                    if let Some(end) = rest.iter().position(|&c| c == b'\'') {
                        found(&String::from_utf8_lossy(&rest[..end]));
                    }
                }
                self.line.clear();
            } else if self.line.len() < Self::MAX_LINE {
                self.line.push(b);
            }
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
    Finished {
        drv: &'a StorePath,
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
    Built { log: PathBuf },
}

pub struct Builder<'s> {
    store: &'s LocalStore,
    options: BuildOptions,
}

fn drv_err(drv: &str, message: impl Into<String>) -> BuildError {
    BuildError::Derivation {
        drv: drv.to_owned(),
        message: message.into(),
    }
}

impl<'s> Builder<'s> {
    pub fn new(store: &'s LocalStore, options: BuildOptions) -> Self {
        Builder { store, options }
    }

    fn load(&self, drv_path: &StorePath) -> Result<Derivation, BuildError> {
        if !self.store.is_valid(drv_path)? {
            let shown = self.store.store_dir().display(drv_path);
            return Err(drv_err(
                &shown,
                "is not in the store (evaluate or import it first)",
            ));
        }
        self.read_drv(drv_path)
    }

    /// Reads and parses a `.drv` from the store without checking that it is valid.
    fn read_drv(&self, drv_path: &StorePath) -> Result<Derivation, BuildError> {
        let shown = self.store.store_dir().display(drv_path);
        let bytes = std::fs::read(self.store.real_path(drv_path))
            .map_err(|e| drv_err(&shown, e.to_string()))?;
        Derivation::parse(&bytes).map_err(|e| drv_err(&shown, e.to_string()))
    }

    /// The derivations to realise for `targets`, dependencies first.
    pub fn plan(&self, targets: &[StorePath]) -> Result<Vec<(StorePath, Derivation)>, BuildError> {
        let sd = self.store.store_dir().clone();
        let mut order = Vec::new();
        let mut done = BTreeSet::new();
        // Iterative post-order DFS: deep graphs do not exhaust the stack.
        let mut stack: Vec<(StorePath, bool)> =
            targets.iter().rev().map(|t| (t.clone(), false)).collect();
        let mut loaded: BTreeMap<StorePath, Derivation> = BTreeMap::new();
        while let Some((p, expanded)) = stack.pop() {
            if done.contains(&p) {
                continue;
            }
            if expanded {
                done.insert(p.clone());
                let drv = loaded.remove(&p).expect("loaded when expanded");
                order.push((p, drv));
                continue;
            }
            let drv = self.load(&p)?;
            stack.push((p.clone(), true));
            for input in drv.input_drvs.keys().rev() {
                let ip = sd
                    .parse_path(input)
                    .map_err(|e| drv_err(&sd.display(&p), e.to_string()))?;
                if !done.contains(&ip) {
                    stack.push((ip, false));
                }
            }
            loaded.insert(p, drv);
        }
        Ok(order)
    }

    fn output_paths(
        &self,
        drv_path: &StorePath,
        drv: &Derivation,
    ) -> Result<BTreeMap<String, StorePath>, BuildError> {
        let sd = self.store.store_dir();
        drv.outputs
            .iter()
            .map(|(name, o)| {
                let p = sd
                    .parse_path(&o.path)
                    .map_err(|e| drv_err(&sd.display(drv_path), format!("output {name}: {e}")))?;
                Ok((name.clone(), p))
            })
            .collect()
    }

    /// Realises `targets` and everything they need, `jobs` builds at a time (a derivation
    /// starts once all its inputs are done); returns each target's outputs. On a failure,
    /// running builds finish, nothing new starts, and the first error is returned.
    pub fn realise(
        &self,
        targets: &[StorePath],
        progress: impl Fn(BuildEvent<'_>) + Sync,
    ) -> Result<Vec<BTreeMap<String, StorePath>>, BuildError> {
        // Inputs and build areas must not be collected while we build.
        let _gc = self.store.gc_guard()?;
        // Nothing to do when every target's outputs are valid: no closure to look at, and no
        // .drv to read when the store recorded its outputs.
        let recorded = self.store.derivation_outputs(targets)?;
        let mut target_outputs = Vec::with_capacity(targets.len());
        // A recorded .drv is valid (the record lives and dies with it); others are checked.
        let mut all: Vec<StorePath> = Vec::new();
        for (t, known) in targets.iter().zip(recorded) {
            target_outputs.push(match known {
                Some(outputs) => outputs,
                None => {
                    all.push(t.clone());
                    self.output_paths(t, &self.read_drv(t)?)?
                }
            });
        }
        all.extend(target_outputs.iter().flat_map(|o| o.values().cloned()));
        if self.store.are_valid(&all)?.into_iter().all(|v| v) {
            return Ok(target_outputs);
        }
        let plan = self.plan(targets)?;
        progress(BuildEvent::Planned {
            derivations: plan.len(),
        });
        let jobs = self.options.jobs.max(1) as u64;
        let _cgroup = SessionCgroup::join(jobs * self.options.max_processes + 64);
        let sd = self.store.store_dir().clone();
        let index: BTreeMap<&StorePath, usize> =
            plan.iter().enumerate().map(|(i, (p, _))| (p, i)).collect();
        let mut waiting_on: Vec<usize> = vec![0; plan.len()];
        let mut dependants: Vec<Vec<usize>> = vec![Vec::new(); plan.len()];
        for (i, (p, drv)) in plan.iter().enumerate() {
            for input in drv.input_drvs.keys() {
                let ip = sd
                    .parse_path(input)
                    .map_err(|e| drv_err(&sd.display(p), e.to_string()))?;
                waiting_on[i] += 1;
                dependants[index[&ip]].push(i);
            }
        }
        let ready: Vec<usize> = (0..plan.len())
            .rev()
            .filter(|&i| waiting_on[i] == 0)
            .collect();
        let state = std::sync::Mutex::new(Schedule {
            ready,
            waiting_on,
            outputs_of: BTreeMap::new(),
            running: 0,
            finished: 0,
            errors: Vec::new(),
        });
        let wake = std::sync::Condvar::new();
        let total = plan.len();
        std::thread::scope(|scope| {
            for _ in 0..self.options.jobs.max(1) {
                scope.spawn(|| loop {
                    let (i, inputs) = {
                        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                        loop {
                            if (!st.errors.is_empty() && !self.options.keep_going)
                                || st.finished == total
                            {
                                return;
                            }
                            if let Some(i) = st.ready.pop() {
                                st.running += 1;
                                // Only this derivation's inputs: copying everything would make
                                // a large graph quadratic.
                                let inputs = plan[i]
                                    .1
                                    .input_drvs
                                    .keys()
                                    .filter_map(|d| sd.parse_path(d).ok())
                                    .filter_map(|d| st.outputs_of.get(&d).map(|o| (d, o.clone())))
                                    .collect::<BTreeMap<_, _>>();
                                break (i, inputs);
                            }
                            if st.running == 0 {
                                return;
                            }
                            st = wake.wait(st).unwrap_or_else(|p| p.into_inner());
                        }
                    };
                    let (drv_path, drv) = &plan[i];
                    let result = self.realise_one(drv_path, drv, &inputs, &progress);
                    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                    st.running -= 1;
                    match result {
                        Ok((outputs, outcome)) => {
                            progress(BuildEvent::Finished {
                                drv: drv_path,
                                outcome: &outcome,
                            });
                            st.outputs_of.insert(drv_path.clone(), outputs);
                            st.finished += 1;
                            for &d in &dependants[i] {
                                st.waiting_on[d] -= 1;
                                if st.waiting_on[d] == 0 {
                                    st.ready.push(d);
                                }
                            }
                        }
                        Err(e) => {
                            // Whatever depends on it never becomes ready; with
                            // --keep-going everything else still builds.
                            progress(BuildEvent::Failed {
                                drv: drv_path,
                                error: &e,
                            });
                            st.errors.push(e);
                        }
                    }
                    wake.notify_all();
                });
            }
        });
        let st = state.into_inner().unwrap_or_else(|p| p.into_inner());
        let mut errors = st.errors;
        match errors.len() {
            0 => {}
            1 => return Err(errors.remove(0)),
            _ => return Err(BuildError::Several(errors)),
        }
        Ok(targets.iter().map(|t| st.outputs_of[t].clone()).collect())
    }

    fn realise_one(
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
        let outcome = if all_valid {
            Realised::AlreadyValid
        } else {
            progress(BuildEvent::Started { drv: drv_path });
            self.build_one(drv_path, drv, &outputs, outputs_of, progress)?
        };
        drop(locks);
        Ok((outputs, outcome))
    }

    /// Runs the builder in the sandbox; on success the outputs are in the returned build area.
    fn run_sandboxed(
        &self,
        drv_path: &StorePath,
        drv: &Derivation,
        outputs: &BTreeMap<String, StorePath>,
        outputs_of: &BTreeMap<StorePath, BTreeMap<String, StorePath>>,
        progress: &(dyn Fn(BuildEvent<'_>) + Sync),
    ) -> Result<SandboxRun, BuildError> {
        let sd = self.store.store_dir().clone();
        let shown = sd.display(drv_path);
        // Inputs: the used outputs of input derivations and the input sources, with closures.
        let mut direct = Vec::new();
        for (input, used) in &drv.input_drvs {
            let ip = sd
                .parse_path(input)
                .map_err(|e| drv_err(&shown, e.to_string()))?;
            let outs = &outputs_of[&ip];
            for o in used {
                direct.push(
                    outs.get(o)
                        .ok_or_else(|| drv_err(&shown, format!("input {input} has no output {o}")))?
                        .clone(),
                );
            }
        }
        for src in &drv.input_srcs {
            direct.push(
                sd.parse_path(src)
                    .map_err(|e| drv_err(&shown, e.to_string()))?,
            );
        }
        let closure = self.store.closure(&direct)?;
        for p in &direct {
            if !closure.contains(p) {
                return Err(drv_err(
                    &shown,
                    format!("input {} is not valid", sd.display(p)),
                ));
            }
        }
        let fixed = drv
            .fixed_output()
            .map_err(|e| drv_err(&shown, e.to_string()))?;

        let build_user = crate::build_user::running_as_root()
            .then(crate::build_user::BuildUser::acquire)
            .transpose()
            .map_err(|e| BuildError::Sandbox {
                drv: shown.clone(),
                message: format!("no build user: {e}"),
            })?;
        if fixed.is_some() && build_user.is_none() {
            crate::slirp::check_tun_usable().map_err(|message| BuildError::Sandbox {
                drv: shown.clone(),
                message,
            })?;
        }
        let area = self.store.build_area()?;
        let root = area.join("root");
        let build_dir = PathBuf::from("/build");
        // What the build may write lives on the store's disk, under `area/w`; the rest of
        // its root is a tmpfs the helper mounts.
        let writable: Vec<(PathBuf, PathBuf)> = [
            ("store", PathBuf::from(sd.as_str())),
            ("build", build_dir.clone()),
            ("tmp", PathBuf::from("/tmp")),
        ]
        .into_iter()
        .map(|(host, inside)| (area.join("w").join(host), inside))
        .collect();
        for dir in std::iter::once(&root).chain(writable.iter().map(|(h, _)| h)) {
            std::fs::create_dir_all(dir)
                .map_err(|e| BuildError::Io(format!("{}: {e}", dir.display())))?;
        }
        let host_store = writable[0].0.clone();
        let host_build = writable[1].0.clone();
        let mut inputs: Vec<(PathBuf, PathBuf)> = closure
            .iter()
            .map(|p| (self.store.real_path(p), PathBuf::from(sd.display(p))))
            .collect();
        let mut symlinks = Vec::new();
        if let Some(toolchain) = drv.env.get(TOOLCHAIN_ENV.as_bytes()) {
            // The bootstrap toolchain's `usr/` is the build's /usr (see guixie-lang's
            // bootstrap): it must be one of the declared inputs.
            let tc = String::from_utf8_lossy(toolchain);
            let tc = sd
                .parse_path(&tc)
                .ok()
                .filter(|p| closure.contains(p))
                .ok_or_else(|| {
                    drv_err(
                        &shown,
                        format!("{TOOLCHAIN_ENV} {tc} is not one of the build's inputs"),
                    )
                })?;
            inputs.push((self.store.real_path(&tc).join("usr"), PathBuf::from("/usr")));
            for top in ["bin", "sbin", "lib", "lib64"] {
                symlinks.push((PathBuf::from("/").join(top), PathBuf::from("usr").join(top)));
            }
        } else if let Some(shell) = &self.options.shell {
            inputs.push((shell.clone(), PathBuf::from("/bin/sh")));
        }
        // Fixed-output builds get a network (their result is checked against its hash), and
        // need the host's name-service configuration to use it (the resolver is slirp4netns's).
        if fixed.is_some() {
            for f in ["/etc/nsswitch.conf", "/etc/services"] {
                if Path::new(f).exists() {
                    inputs.push((PathBuf::from(f), PathBuf::from(f)));
                }
            }
        }
        let mut env = build_env(drv, &sd, &build_dir);
        pass_as_files(&mut env, &host_build, &build_dir)
            .map_err(|e| drv_err(&shown, format!("passAsFile: {e}")))?;
        hand_over(&writable, build_user.as_ref())
            .map_err(|e| BuildError::Io(format!("preparing the build directories: {e}")))?;
        let spec = SandboxSpec {
            root: root.clone(),
            inputs,
            symlinks,
            writable_dirs: writable.clone(),
            workdir: build_dir,
            builtin_fetch: builtin_fetch(drv, outputs, &sd, fixed.is_some())
                .map_err(|m| drv_err(&shown, m))?,
            builder: drv.builder.clone(),
            args: drv.args.clone(),
            env,
            network: fixed.is_some(),
            slirp4netns: self.options.slirp4netns.clone(),
            host_loopback: self.options.host_loopback,
            hostname: "localhost".into(),
            max_processes: self.options.max_processes,
            max_file_size: self.options.max_file_size,
            pids_cgroup: None,
            build_user: build_user.as_ref().map(|u| (u.uid, u.gid)),
            shm_bytes: self.options.max_output_size.min(64 << 20),
        };
        let spec_path = area.join("spec.json");
        std::fs::write(
            &spec_path,
            serde_json::to_vec(&spec).expect("spec serialises"),
        )
        .map_err(|e| BuildError::Io(e.to_string()))?;
        let log = self.log_path(drv_path)?;
        let log_file = std::fs::File::create(&log)
            .map_err(|e| BuildError::Io(format!("{}: {e}", log.display())))?;
        // The builder's output goes through a pipe into a gzip stream (and, with `echo_log`,
        // to our stderr as it comes).
        let (mut reader, writer) = std::io::pipe().map_err(|e| BuildError::Io(e.to_string()))?;
        if let Some(u) = &build_user {
            // The build user reopens its output as /dev/stdout and /dev/stderr.
            std::os::unix::fs::fchown(&writer, Some(u.uid), Some(u.gid))
                .map_err(|e| BuildError::Io(format!("the build log pipe: {e}")))?;
        }
        let writer2 = writer
            .try_clone()
            .map_err(|e| BuildError::Io(e.to_string()))?;
        let spawned = Command::new(&self.options.helper)
            .arg(&spec_path)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(writer2)
            .spawn();
        let echo = self.options.echo_log;
        // Milliseconds after the start at which the builder last wrote something.
        let last_output = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let logger_clock = (std::time::Instant::now(), last_output.clone());
        // Scoped, so that the logger can report phases through `progress` as they start.
        let (status, stopped) = std::thread::scope(|scope| -> Result<_, BuildError> {
            let logger = scope.spawn(move || -> std::io::Result<()> {
                use std::io::{Read, Write};
                let mut gz =
                    flate2::write::GzEncoder::new(log_file, flate2::Compression::default());
                let mut buf = [0u8; 16 << 10];
                let mut phases = PhaseScanner::default();
                let mut escapes = crate::terminal::EscapeFilter::default();
                let mut shown = Vec::new();
                loop {
                    let n = match reader.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    };
                    logger_clock.1.store(
                        logger_clock.0.elapsed().as_millis() as u64,
                        Ordering::Relaxed,
                    );
                    gz.write_all(&buf[..n])?;
                    phases.scan(&buf[..n], &mut |phase| {
                        progress(BuildEvent::Phase {
                            drv: drv_path,
                            phase,
                        })
                    });
                    if echo {
                        shown.clear();
                        escapes.filter(&buf[..n], &mut shown);
                        let _ = std::io::stderr().write_all(&shown);
                    }
                }
                // Not fsynced: a log is evidence of a build, not part of its result, and an
                // fsync per build costs more than many small builds take (as in Nix, logs are
                // written without one). Attestations record the log's hash.
                gz.finish().map(drop)
            });
            let mut child = spawned.map_err(|e| {
                BuildError::Io(format!(
                    "starting the sandbox helper {}: {e}",
                    self.options.helper.display()
                ))
            })?;
            // A watchdog kills the helper at the deadline, or when the build has been silent too
            // long (its PDEATHSIG takes the build with it); otherwise we just block until it exits.
            let pid = child.id() as libc::pid_t;
            let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
            let (timeout, max_silent) = (self.options.timeout, self.options.max_silent);
            let max_output_size = self.options.max_output_size;
            let measured = area.join("w");
            let started = std::time::Instant::now();
            let last_output = last_output.clone();
            let watchdog = std::thread::spawn(move || -> Option<Stop> {
                loop {
                    let silent_for = Duration::from_millis(
                        (started.elapsed().as_millis() as u64)
                            .saturating_sub(last_output.load(Ordering::Relaxed)),
                    );
                    let (left, stop) = match (
                        timeout.checked_sub(started.elapsed()),
                        max_silent.checked_sub(silent_for),
                    ) {
                        (None, _) => (Duration::ZERO, Stop::Timeout),
                        (_, None) => (Duration::ZERO, Stop::Silent),
                        (Some(a), Some(b)) => {
                            (a.min(b), if a <= b { Stop::Timeout } else { Stop::Silent })
                        }
                    };
                    let poll = if max_output_size == u64::MAX {
                        left
                    } else {
                        left.min(Duration::from_secs(1))
                    };
                    match done_rx.recv_timeout(poll) {
                        Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                            return None
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) if poll < left => {
                            // Only the build's writable directories count; inputs are mounts
                            // the helper made in its own namespace, invisible here.
                            if guixie_store::safe_fs::disk_usage(&measured) > max_output_size {
                                // SAFETY: signalling our own child, which has not been reaped.
                                unsafe { libc::kill(pid, libc::SIGKILL) };
                                return Some(Stop::TooLarge);
                            }
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                            // Output may have arrived meanwhile: look again before killing.
                            let silent_for = Duration::from_millis(
                                (started.elapsed().as_millis() as u64)
                                    .saturating_sub(last_output.load(Ordering::Relaxed)),
                            );
                            if stop == Stop::Silent && silent_for < max_silent {
                                continue;
                            }
                            // SAFETY: signalling our own child, which has not been reaped yet.
                            unsafe { libc::kill(pid, libc::SIGKILL) };
                            return Some(stop);
                        }
                    }
                }
            });
            let status = child.wait().map_err(|e| BuildError::Io(e.to_string()));
            let _ = done_tx.send(());
            let stopped = watchdog.join().unwrap_or(None);
            // Every writer of the pipe is gone with the sandbox, so the logger sees its end.
            let logged = logger
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("log writer panicked")));
            logged.map_err(|e| BuildError::Io(format!("writing {}: {e}", log.display())))?;
            Ok((status?, stopped))
        })?;
        if let Some(stop) = stopped {
            self.discard(&area);
            let (what, seconds) = match stop {
                Stop::Timeout => ("--timeout", self.options.timeout.as_secs()),
                Stop::Silent => ("--max-silent-time", self.options.max_silent.as_secs()),
                Stop::TooLarge => {
                    return Err(BuildError::TooLarge {
                        drv: shown,
                        limit: self.options.max_output_size,
                        log: log.display().to_string(),
                    })
                }
            };
            return Err(BuildError::TimedOut {
                drv: shown,
                seconds,
                what,
                log: log.display().to_string(),
            });
        }
        if status.code() == Some(crate::sandbox::SETUP_FAILED) {
            self.discard(&area);
            // The helper says why on its stderr, which went to the log.
            let mut why = String::new();
            if let Ok(f) = std::fs::File::open(&log) {
                use std::io::Read;
                let _ = flate2::read::GzDecoder::new(f)
                    .take(4096)
                    .read_to_string(&mut why);
            }
            return Err(BuildError::Sandbox {
                drv: shown,
                message: why.trim().to_owned(),
            });
        }
        if !status.success() {
            let kept = if self.options.keep_failed {
                // Left for inspection harmless, and the invoking user's (not the build user's).
                let me = (
                    rustix::process::geteuid().as_raw(),
                    rustix::process::getegid().as_raw(),
                );
                guixie_store::safe_fs::defuse_tree(&host_build, Some(me))?;
                Some(host_build.clone())
            } else {
                self.discard(&area);
                None
            };
            return Err(BuildError::Failed {
                drv: shown,
                status: status.code().unwrap_or(-1),
                log: log.display().to_string(),
                kept,
            });
        }
        let inside_store = host_store;
        let mut candidates: Vec<StorePath> = closure.iter().cloned().collect();
        candidates.extend(outputs.values().cloned());
        Ok(SandboxRun {
            area,
            inside_store,
            candidates,
            fixed,
            log,
            _build_user: build_user,
        })
    }

    fn build_one(
        &self,
        drv_path: &StorePath,
        drv: &Derivation,
        outputs: &BTreeMap<String, StorePath>,
        outputs_of: &BTreeMap<StorePath, BTreeMap<String, StorePath>>,
        progress: &(dyn Fn(BuildEvent<'_>) + Sync),
    ) -> Result<Realised, BuildError> {
        let sd = self.store.store_dir().clone();
        let shown = sd.display(drv_path);
        let run = self.run_sandboxed(drv_path, drv, outputs, outputs_of, progress)?;
        let inside_store = match run.stage(outputs) {
            Ok(staged) => staged,
            Err(e) => {
                self.discard(&run.area);
                return Err(e);
            }
        };
        let SandboxRun {
            area,
            candidates,
            fixed,
            log,
            ..
        } = run;
        // Outputs go in after everything the sandbox mounted is gone (the helper has exited,
        // and with it its mount namespace).
        let result = (|| {
            for (name, path) in outputs {
                let tree = inside_store.join(path.to_string());
                if std::fs::symlink_metadata(&tree).is_err() {
                    return Err(BuildError::MissingOutput {
                        drv: shown.clone(),
                        output: name.clone(),
                        path: sd.display(path),
                    });
                }
                let flat = fixed.as_ref().is_some_and(|f| !f.recursive);
                let rel = Path::new(sd.as_str()).join(path.to_string());
                check_output(&tree, &rel, &sd, flat).map_err(|message| BuildError::BadOutput {
                    drv: shown.clone(),
                    path: sd.display(path),
                    message,
                })?;
            }
            // Outputs may refer to each other (`dev` to `out`): register each after the
            // siblings it refers to.
            let siblings: Vec<StorePath> = outputs.values().cloned().collect();
            let mut pending: Vec<(StorePath, BTreeSet<StorePath>)> = Vec::new();
            for path in outputs.values() {
                let tree = inside_store.join(path.to_string());
                let mut refs = self.store.scan_references(&tree, &siblings)?;
                refs.remove(path);
                pending.push((path.clone(), refs));
            }
            let mut registered: BTreeSet<StorePath> = BTreeSet::new();
            while !pending.is_empty() {
                let Some(i) = pending
                    .iter()
                    .position(|(_, refs)| refs.is_subset(&registered))
                else {
                    return Err(BuildError::BadOutput {
                        drv: shown.clone(),
                        path: sd.display(&pending[0].0),
                        message: "outputs refer to each other in a cycle".into(),
                    });
                };
                let (path, _) = pending.remove(i);
                let tree = inside_store.join(path.to_string());
                let expected = fixed.as_ref().map(|f| (&f.hash, f.recursive));
                self.store.register_built(
                    &tree,
                    &path,
                    &candidates,
                    Some(drv_path.clone()),
                    expected,
                )?;
                registered.insert(path);
            }
            Ok(())
        })();
        self.discard(&area);
        result?;
        Ok(Realised::Built { log })
    }

    /// Rebuilds `drv_path` (whose outputs are valid) and compares the result bit for bit
    /// with the store. On a difference, the rebuilt output is kept beside the build logs and
    /// the differing files are named.
    pub fn check(&self, drv_path: &StorePath) -> Result<Vec<CheckResult>, BuildError> {
        let _gc = self.store.gc_guard()?;
        let sd = self.store.store_dir().clone();
        let plan = self.plan(std::slice::from_ref(drv_path))?;
        let mut outputs_of = BTreeMap::new();
        for (p, d) in &plan {
            let outs = self.output_paths(p, d)?;
            for o in outs.values() {
                if !self.store.is_valid(o)? {
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
        let run = self.run_sandboxed(drv_path, drv, &outputs, &outputs_of, &|_| {})?;
        let staged = match run.stage(&outputs) {
            Ok(s) => s,
            Err(e) => {
                self.discard(&run.area);
                return Err(e);
            }
        };
        let mut results = Vec::new();
        for path in outputs.values() {
            let rebuilt = staged.join(path.to_string());
            let stored = self.store.real_path(path);
            let mut differences = Vec::new();
            compare_trees(&stored, &rebuilt, Path::new(""), &mut differences);
            let kept = if differences.is_empty() {
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
                path: path.clone(),
                differences,
                kept,
            });
        }
        self.discard(&run.area);
        Ok(results)
    }

    fn discard(&self, area: &Path) {
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

const PIDS_CGROUP_ROOT: &str = "/sys/fs/cgroup/pids";

/// A `pids` cgroup for one `realise` call, which this process joins so that every build it
/// starts inherits it (moving each build into a cgroup of its own costs milliseconds).
/// `pids.max` bounds all builds of the session together: a fork bomb cannot exhaust the
/// machine, even when guixie runs as root (whom `RLIMIT_NPROC` does not bind).
struct SessionCgroup {
    path: PathBuf,
    parent_procs: PathBuf,
}

impl SessionCgroup {
    fn join(max: u64) -> Option<Self> {
        let root = Path::new(PIDS_CGROUP_ROOT);
        let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let current = own
            .lines()
            .find_map(|l| l.split_once(":pids:").map(|(_, p)| p.trim().to_owned()))?;
        let parent = root.join(current.trim_start_matches('/'));
        let path = root.join("guixie").join(std::process::id().to_string());
        std::fs::create_dir_all(&path).ok()?;
        std::fs::write(path.join("pids.max"), max.to_string()).ok()?;
        std::fs::write(path.join("cgroup.procs"), std::process::id().to_string()).ok()?;
        Some(SessionCgroup {
            path,
            parent_procs: parent.join("cgroup.procs"),
        })
    }
}

impl Drop for SessionCgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.parent_procs, std::process::id().to_string());
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Why the watchdog stopped a build.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    Timeout,
    Silent,
    TooLarge,
}

/// A finished sandbox run, before its outputs are registered or compared.
struct SandboxRun {
    area: PathBuf,
    inside_store: PathBuf,
    candidates: Vec<StorePath>,
    fixed: Option<guixie_formats::derivation::FixedOutput>,
    log: PathBuf,
    _build_user: Option<crate::build_user::BuildUser>,
}

impl SandboxRun {
    /// Copies the outputs out of the build's reach, once every process of the build is gone:
    /// what is checked and registered is a tree of new files no builder ever held a
    /// descriptor to, without owners, extended attributes or capabilities (CVE-2024-27297).
    /// Returns the directory that holds the copies, by output base name.
    fn stage(&self, outputs: &BTreeMap<String, StorePath>) -> Result<PathBuf, BuildError> {
        use std::os::unix::fs::DirBuilderExt;
        let staged = self.area.join("out");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&staged)
            .map_err(|e| BuildError::Io(format!("{}: {e}", staged.display())))?;
        for path in outputs.values() {
            let name = path.to_string();
            let built = self.inside_store.join(&name);
            if std::fs::symlink_metadata(&built).is_ok() {
                guixie_store::safe_fs::copy_tree(&built, &staged.join(&name))?;
            }
        }
        Ok(staged)
    }
}

/// Gives the build's writable directories (and what guixie put in them) to the build user,
/// private to it: mode 0700, so no other local user reads, writes or runs anything there.
fn hand_over(
    writable: &[(PathBuf, PathBuf)],
    user: Option<&crate::build_user::BuildUser>,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for (dir, _) in writable {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        if let Some(u) = user {
            std::os::unix::fs::lchown(dir, Some(u.uid), Some(u.gid))?;
            for entry in std::fs::read_dir(dir)? {
                std::os::unix::fs::lchown(entry?.path(), Some(u.uid), Some(u.gid))?;
            }
        }
    }
    Ok(())
}

/// The outcome of `--check` for one output.
#[derive(Debug)]
pub struct CheckResult {
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

/// The scheduler's shared state.
struct Schedule {
    ready: Vec<usize>,
    waiting_on: Vec<usize>,
    outputs_of: BTreeMap<StorePath, BTreeMap<String, StorePath>>,
    running: usize,
    finished: usize,
    errors: Vec<BuildError>,
}

/// `builtin:fetchurl` (as Nix's `<nix/fetchurl.nix>` writes it): only for fixed-output
/// derivations, whose download is then checked against the declared hash. Other builders:
/// `None`.
fn builtin_fetch(
    drv: &Derivation,
    outputs: &BTreeMap<String, StorePath>,
    sd: &StoreDir,
    fixed: bool,
) -> Result<Option<crate::sandbox::BuiltinFetch>, String> {
    if drv.builder != b"builtin:fetchurl" {
        return Ok(None);
    }
    if !fixed {
        return Err("builtin:fetchurl needs a fixed output hash".into());
    }
    let var = |k: &str| {
        drv.env
            .get(k.as_bytes())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let url = var("url").ok_or("builtin:fetchurl: no `url'")?;
    let out = outputs
        .get("out")
        .ok_or("builtin:fetchurl: no output `out'")?;
    Ok(Some(crate::sandbox::BuiltinFetch {
        url,
        out: PathBuf::from(sd.display(out)),
        executable: var("executable").is_some_and(|e| e == "1"),
        unpack: var("unpack").is_some_and(|u| u == "1"),
    }))
}

/// The environment Nix gives a builder: defaults, then the derivation's variables, then the
/// build directory variables.
fn build_env(drv: &Derivation, sd: &StoreDir, build_dir: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut env: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut set = |k: &str, v: &str| {
        env.insert(k.as_bytes().to_vec(), v.as_bytes().to_vec());
    };
    set("PATH", "/path-not-set");
    set("HOME", "/homeless-shelter");
    set("NIX_STORE", sd.as_str());
    set("NIX_BUILD_CORES", "1");
    set("NIX_LOG_FD", "2");
    set("TERM", "xterm-256color");
    set("SOURCE_DATE_EPOCH", "1");
    for (k, v) in &drv.env {
        env.insert(k.clone(), v.clone());
    }
    let top = build_dir.to_string_lossy().into_owned();
    for k in ["NIX_BUILD_TOP", "TMPDIR", "TEMPDIR", "TMP", "TEMP", "PWD"] {
        env.insert(k.as_bytes().to_vec(), top.as_bytes().to_vec());
    }
    env.into_iter().collect()
}

/// Nix's `passAsFile`: each named variable is written to `.attr-<nix32 sha256 of its name>`
/// in the build directory instead, and `<name>Path` points there.
fn pass_as_files(
    env: &mut Vec<(Vec<u8>, Vec<u8>)>,
    host_build_dir: &Path,
    build_dir: &Path,
) -> std::io::Result<()> {
    let Some((_, names)) = env.iter().find(|(k, _)| k == b"passAsFile") else {
        return Ok(());
    };
    let names: Vec<String> = String::from_utf8_lossy(names)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    std::fs::create_dir_all(host_build_dir)?;
    for name in names {
        let Some(i) = env.iter().position(|(k, _)| k == name.as_bytes()) else {
            continue;
        };
        let (_, value) = env.remove(i);
        let file = format!(
            ".attr-{}",
            guixie_formats::Hash::digest_of(guixie_formats::HashAlgo::Sha256, name.as_bytes())
                .to_nix32()
        );
        std::fs::write(host_build_dir.join(&file), value)?;
        let key = format!("{name}Path").into_bytes();
        let path = build_dir
            .join(&file)
            .to_string_lossy()
            .into_owned()
            .into_bytes();
        match env.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = path,
            None => env.push((key, path)),
        }
    }
    env.sort();
    Ok(())
}

/// Rejects symlinks whose target leaves the store (relative ones resolved lexically from
/// where they are, at any depth), a flat fixed output that is not a regular file, and any
/// file type the store cannot hold. `rel` is `tree`'s path relative to the store directory.
fn check_output(tree: &Path, rel: &Path, sd: &StoreDir, flat: bool) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(tree).map_err(|e| e.to_string())?;
    let ft = meta.file_type();
    if flat && !ft.is_file() {
        return Err("a flat fixed output must be a regular file".into());
    }
    if ft.is_symlink() {
        let target = std::fs::read_link(tree).map_err(|e| e.to_string())?;
        let store = Path::new(sd.as_str());
        let resolved = guixie_store::safe_fs::resolve_link_lexically(rel, &target)
            .map(|p| Path::new("/").join(p));
        if !resolved.is_some_and(|p| p.starts_with(store)) {
            let how = if target.is_absolute() {
                "points outside the store"
            } else {
                "climbs out of the store"
            };
            return Err(format!(
                "symlink {} {how}, to {}",
                rel.display(),
                target.display()
            ));
        }
    } else if ft.is_dir() {
        for e in std::fs::read_dir(tree).map_err(|e| e.to_string())? {
            let e = e.map_err(|e| e.to_string())?;
            check_output(&e.path(), &rel.join(e.file_name()), sd, false)?;
        }
    } else if !ft.is_file() {
        return Err(format!(
            "{} is neither a file, a directory nor a symlink",
            rel.display()
        ));
    }
    Ok(())
}
