use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use guixie_build::{BuildEvent, BuildOptions, Builder, Realised};
use std::collections::BTreeMap;

use guixie_formats::derivation::Derivation;
use guixie_formats::StorePath;
use guixie_store::PathInfoQuery;

use crate::output::print_json;
use crate::Context;

#[derive(Args, Clone)]
pub struct BuildArgs {
    /// `.scm` package files (their derivations are built), package names, or `.drv` store
    /// paths.
    pub targets: Vec<String>,
    /// With a `.scm` file: build only this variable.
    #[arg(short = 'A', long = "attr", value_name = "NAME")]
    pub attr: Option<String>,
    /// Rebuild the (already built) targets and compare bit for bit with the store; exit 1 on a
    /// difference, naming the differing files and keeping the rebuilt copy.
    #[arg(long)]
    pub check: bool,
    /// Build, then rebuild the targets under this tool (strace, from outside; the Python
    /// tracer, in every Python process; perf, valgrind's memcheck and gdb, over all the
    /// build's processes) and keep its report in the store (`guixie report show`); the
    /// traced run is compared with the build, never registered. valgrind and gdb also run a
    /// build that failed, to show where.
    #[arg(long, value_name = "TOOL", value_parser = ["strace", "python", "perf", "valgrind", "gdb"])]
    pub trace: Option<String>,
    /// Print nothing but the output paths.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    #[command(flatten)]
    pub flags: BuildFlags,
}

/// How builds run, for every command that builds (`build`, `shell`).
#[derive(Args, Clone)]
pub struct BuildFlags {
    /// Keep the build directory of a failed build (its location is printed).
    #[arg(long)]
    keep_failed: bool,
    /// Stop a builder after this many seconds.
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
    /// After a failure, go on building everything that does not depend on it.
    #[arg(long, short = 'k')]
    keep_going: bool,
    /// Stop a builder that has printed nothing for this many seconds.
    #[arg(long, default_value_t = 3600)]
    max_silent_time: u64,
    /// Builds to run at once.
    #[arg(short = 'j', long, default_value_t = 1)]
    jobs: usize,
    /// Cores each builder is told it may use (`NIX_BUILD_CORES`); 0: all of this machine's,
    /// as Nix's `--cores`.
    #[arg(long, default_value_t = 0)]
    cores: usize,
    /// Most processes a build may run at once.
    #[arg(long, default_value_t = 4096)]
    max_processes: u64,
    /// Largest file a build may write, in bytes.
    #[arg(long, default_value_t = 64 << 30)]
    max_file_size: u64,
    /// Most disk space a build may fill in all (outputs, build directory, /tmp), in bytes.
    #[arg(long, default_value_t = u64::MAX, hide_default_value = true)]
    max_output_size: u64,
    /// Let fixed-output builds (which have a network of their own, through slirp4netns)
    /// reach the host's 127.0.0.1, at the gateway address 10.0.2.2. Off by default.
    #[arg(long)]
    host_loopback: bool,
    /// Do not append signed attestations of the outputs to the local transparency log.
    #[arg(long)]
    no_attest: bool,
    /// Copy builders' output to stderr as it comes.
    #[arg(long, short = 'v')]
    verbose: bool,
    #[command(flatten)]
    substitutes: super::substitutes::SubstituteArgs,
    /// Build what a cache has but cannot deliver (bad signature, wrong hash, network), instead
    /// of failing.
    #[arg(long)]
    fallback: bool,
}

impl BuildFlags {
    /// Whether builds are to be attested in the log.
    pub fn attests(&self) -> bool {
        !self.no_attest
    }
}

pub fn run(ctx: &Context, args: BuildArgs) -> anyhow::Result<ExitCode> {
    let store = Arc::new(ctx.open_store()?);
    let sd = store.store_dir().clone();
    if args.trace.is_some() {
        return super::trace::run(ctx, &store, &args);
    }
    if args.check {
        let mut all_same = true;
        for r in check_targets(ctx, &store, &args)? {
            if r.differences.is_empty() {
                println!("reproducible: {}", sd.display(&r.path));
            } else {
                all_same = false;
                println!("DIFFERS: {}", sd.display(&r.path));
                for f in &r.differences {
                    println!("  {f}");
                }
                if let Some(k) = &r.kept {
                    println!(
                        "  rebuilt copy kept at {} (the store copy: {})",
                        k.display(),
                        store.real_path(&r.path).display()
                    );
                }
            }
        }
        return Ok(if all_same {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let (drvs, builder) = prepare(ctx, &store, &args)?;
    let results = realise(ctx, &store, &builder, &drvs, &args)?;
    if ctx.json {
        let items: Vec<_> = drvs
            .iter()
            .zip(&results)
            .map(|(d, outs)| {
                let o: serde_json::Map<_, _> = outs
                    .iter()
                    .map(|(name, p)| (name.clone(), serde_json::json!({"path": sd.display(p), "realPath": store.real_path(p)})))
                    .collect();
                serde_json::json!({"drvPath": sd.display(d), "outputs": o})
            })
            .collect();
        print_json(&serde_json::Value::Array(items))?;
    } else {
        use std::io::Write;
        let mut out = crate::output::stdout();
        for outs in &results {
            for p in outs.values() {
                writeln!(out, "{}", sd.display(p))?;
            }
        }
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Quiet,
    Json,
    Human,
}

/// Build progress for people (a bar on a terminal, lines otherwise) or machines (JSON lines
/// on stderr).
struct Display {
    mode: Mode,
    bar: Option<indicatif::ProgressBar>,
    /// Running builds and the phase each is in, if it said.
    running: std::sync::Mutex<std::collections::BTreeMap<String, Option<String>>>,
}

/// "building hello-1.0 (configure) libgreet-0.1"
fn running_message(running: &std::collections::BTreeMap<String, Option<String>>) -> String {
    let builds: Vec<String> = running
        .iter()
        .map(|(name, phase)| match phase {
            Some(p) => format!("{name} ({p})"),
            None => name.clone(),
        })
        .collect();
    format!("building {}", builds.join(" "))
}

impl Display {
    fn new(mode: Mode) -> Self {
        use std::io::IsTerminal;
        let bar = (mode == Mode::Human && std::io::stderr().is_terminal()).then(|| {
            let b = indicatif::ProgressBar::new(0);
            b.set_style(
                indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} done  {msg}")
                    .expect("valid template"),
            );
            b
        });
        Display {
            mode,
            bar,
            running: Default::default(),
        }
    }

    fn show(&self, sd: &guixie_formats::StoreDir, event: BuildEvent<'_>) {
        let name = |d: &StorePath| d.name().trim_end_matches(".drv").to_owned();
        match self.mode {
            Mode::Quiet => {}
            Mode::Json => {
                let line = match event {
                    BuildEvent::Planned { derivations } => {
                        serde_json::json!({"event": "planned", "derivations": derivations})
                    }
                    BuildEvent::Started { drv } => {
                        serde_json::json!({"event": "started", "drv": sd.display(drv)})
                    }
                    BuildEvent::Phase { drv, phase } => {
                        serde_json::json!({"event": "phase", "drv": sd.display(drv), "phase": phase})
                    }
                    BuildEvent::Finished { drv, outcome, .. } => match outcome {
                        Realised::AlreadyValid => {
                            serde_json::json!({"event": "valid", "drv": sd.display(drv)})
                        }
                        Realised::Substituted => {
                            serde_json::json!({"event": "substituted", "drv": sd.display(drv)})
                        }
                        Realised::Built { log } => {
                            serde_json::json!({"event": "built", "drv": sd.display(drv), "log": log})
                        }
                    },
                    BuildEvent::Failed { drv, error } => {
                        serde_json::json!({"event": "failed", "drv": sd.display(drv), "error": error.to_string()})
                    }
                };
                eprintln!("{line}");
            }
            Mode::Human => {
                let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
                match (event, &self.bar) {
                    (BuildEvent::Planned { derivations }, Some(bar)) => {
                        bar.set_length(derivations as u64)
                    }
                    (BuildEvent::Planned { .. }, None) => {}
                    (BuildEvent::Started { drv }, bar) => {
                        running.insert(name(drv), None);
                        match bar {
                            Some(bar) => bar.set_message(running_message(&running)),
                            None => eprintln!("building {}", sd.display(drv)),
                        }
                    }
                    (BuildEvent::Phase { drv, phase }, bar) => {
                        running.insert(name(drv), Some(phase.to_owned()));
                        if let Some(bar) = bar {
                            bar.set_message(running_message(&running));
                        }
                    }
                    (BuildEvent::Finished { drv, outcome, .. }, bar) => {
                        running.remove(&name(drv));
                        match bar {
                            Some(bar) => bar.inc(1),
                            None if matches!(outcome, Realised::Built { .. }) => {
                                eprintln!("built {}", sd.display(drv))
                            }
                            None if matches!(outcome, Realised::Substituted) => {
                                eprintln!("substituted {}", sd.display(drv))
                            }
                            None => {}
                        }
                    }
                    (BuildEvent::Failed { drv, .. }, bar) => {
                        running.remove(&name(drv));
                        let msg = format!("failed {}", sd.display(drv));
                        match bar {
                            Some(bar) => bar.println(msg),
                            None => eprintln!("{msg}"),
                        }
                    }
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl BuildFlags {
    /// The flags that shape a local rebuild, as arguments for another guixie's `build`
    /// (substitution plays no part in a `--check`).
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            format!("--jobs={}", self.jobs),
            format!("--cores={}", self.cores),
            format!("--timeout={}", self.timeout),
            format!("--max-silent-time={}", self.max_silent_time),
            format!("--max-processes={}", self.max_processes),
            format!("--max-file-size={}", self.max_file_size),
        ];
        if self.max_output_size != u64::MAX {
            args.push(format!("--max-output-size={}", self.max_output_size));
        }
        for (on, flag) in [
            (self.keep_failed, "--keep-failed"),
            (self.keep_going, "--keep-going"),
            (self.no_attest, "--no-attest"),
            (self.verbose, "--verbose"),
        ] {
            if on {
                args.push(flag.to_owned());
            }
        }
        args
    }

    /// These flags for a build that is evidence (a vote's rebuild): built here, in the
    /// sandbox, never substituted, and attested.
    pub fn for_evidence(&self) -> BuildFlags {
        let mut flags = self.clone();
        flags.no_attest = false;
        flags.fallback = false;
        flags.substitutes.no_substitutes = true;
        flags.substitutes.no_network = true;
        flags.host_loopback = false;
        flags
    }
}

/// The derivations `args` name (evaluated, or imported when a `.drv` file is outside the
/// store) and a builder set up as they ask.
pub(super) fn prepare<'s>(
    ctx: &Context,
    store: &'s Arc<guixie_store::LocalStore>,
    args: &BuildArgs,
) -> anyhow::Result<(Vec<StorePath>, Builder<'s>)> {
    if args.targets.is_empty() {
        anyhow::bail!("nothing to build: name a .scm file, a package or a .drv path");
    }
    let sd = store.store_dir().clone();
    let mut drvs: Vec<StorePath> = Vec::new();
    // Store paths are parsed without touching the file system; a file that is not a valid
    // path of this store (a .drv Nix wrote, say) is imported with its inputs.
    let mut pending: Vec<(String, Option<StorePath>)> = Vec::new();
    for t in &args.targets {
        if let Some(evaluated) = ctx.evaluate_target(store, t, args.attr.as_deref())? {
            for e in evaluated {
                pending.push((e.drv_path.clone(), Some(sd.parse_path(&e.drv_path)?)));
            }
        } else {
            pending.push((t.clone(), store.parse_user_path(t).ok()));
        }
    }
    for (t, p) in pending {
        // A .drv file outside the store (one Nix wrote, say) is imported unless this store
        // already has that path; anything else names a path of this store. Only such files
        // cost a query, so a no-op build of many targets stays cheap.
        let file_outside =
            Path::new(&t).is_file() && !Path::new(&t).starts_with(store.real_store_dir());
        match p {
            Some(p) if !file_outside || store.is_valid(&p)? => drvs.push(p),
            _ if file_outside => {
                drvs.push(guixie_build::import::import_drv_closure(
                    store,
                    Path::new(&t),
                )?);
            }
            Some(p) => drvs.push(p),
            None => anyhow::bail!("{t} is neither a .scm file, a .drv store path nor a .drv file"),
        }
    }
    let options = BuildOptions {
        timeout: Duration::from_secs(args.flags.timeout),
        keep_failed: args.flags.keep_failed,
        keep_going: args.flags.keep_going,
        max_silent: Duration::from_secs(args.flags.max_silent_time),
        echo_log: args.flags.verbose,
        jobs: args.flags.jobs,
        cores: match args.flags.cores {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        },
        ca_certificates: host_ca_certificates()?,
        max_processes: args.flags.max_processes,
        max_file_size: args.flags.max_file_size,
        max_output_size: args.flags.max_output_size,
        host_loopback: args.flags.host_loopback,
        fallback: args.flags.fallback,
        ..BuildOptions::default()
    };
    let mut builder = Builder::new(store, options, ctx.clock());
    let show = if ctx.json {
        super::substitutes::Show::Json
    } else if args.quiet {
        super::substitutes::Show::Quiet
    } else {
        super::substitutes::Show::Lines
    };
    if let Some(substituter) = args.flags.substitutes.substituter(ctx, show)? {
        builder = builder.with_substituter(Arc::new(substituter));
    }
    Ok((drvs, builder))
}

/// A command-line target naming a store item to use as it is: a path (with a `/`) that is
/// neither a `.drv` nor a `.scm` file. It must be valid.
pub fn item_target(
    store: &guixie_store::LocalStore,
    target: &str,
) -> anyhow::Result<Option<StorePath>> {
    if !target.contains('/') || target.ends_with(".scm") {
        return Ok(None);
    }
    match store.parse_user_path(target) {
        Ok(p) if !p.name().ends_with(".drv") => {
            if !store.is_valid(&p)? {
                anyhow::bail!("{target} is not valid in this store (build or substitute it first)");
            }
            Ok(Some(p))
        }
        _ => Ok(None),
    }
}

/// Builds (or substitutes) what `args` name, showing progress and attesting what was built;
/// the outputs of each target.
pub fn build_targets(
    ctx: &Context,
    store: &Arc<guixie_store::LocalStore>,
    args: &BuildArgs,
) -> anyhow::Result<Vec<BTreeMap<String, StorePath>>> {
    let (drvs, builder) = prepare(ctx, store, args)?;
    realise(ctx, store, &builder, &drvs, args)
}

/// The host's certificate authorities, as Nix finds its `ssl-cert-file`: `$NIX_SSL_CERT_FILE`,
/// `$SSL_CERT_FILE`, else Debian's bundle if there is one. A machine behind a TLS-inspecting
/// proxy trusts that proxy only through this file, so one named but unusable is an error.
fn host_ca_certificates() -> anyhow::Result<Option<String>> {
    const LARGEST: u64 = 16 << 20;
    let named = ["NIX_SSL_CERT_FILE", "SSL_CERT_FILE"].iter().find_map(|v| {
        std::env::var_os(v)
            .filter(|f| !f.is_empty())
            .map(|f| (*v, f))
    });
    let Some((var, file)) = named else {
        let debian = Path::new("/etc/ssl/certs/ca-certificates.crt");
        return Ok(std::fs::metadata(debian)
            .is_ok_and(|m| m.is_file() && m.len() <= LARGEST)
            .then(|| std::fs::read_to_string(debian).ok())
            .flatten());
    };
    let file = PathBuf::from(file);
    let meta = std::fs::metadata(&file)
        .with_context(|| format!("{var}={}: the certificate authorities", file.display()))?;
    if !meta.is_file() || meta.len() > LARGEST {
        anyhow::bail!(
            "{var}={}: not a certificate file (a regular file of at most 16 MiB)",
            file.display()
        );
    }
    Ok(Some(std::fs::read_to_string(&file).with_context(|| {
        format!("{var}={}: the certificate authorities", file.display())
    })?))
}

/// Rebuilds the (already built) targets and compares each output with the store's copy.
pub fn check_targets(
    ctx: &Context,
    store: &Arc<guixie_store::LocalStore>,
    args: &BuildArgs,
) -> anyhow::Result<Vec<guixie_build::builder::CheckResult>> {
    let (drvs, builder) = prepare(ctx, store, args)?;
    let mut results = Vec::new();
    for d in &drvs {
        results.extend(builder.check(d)?);
    }
    Ok(results)
}

pub(super) fn realise(
    ctx: &Context,
    store: &Arc<guixie_store::LocalStore>,
    builder: &Builder<'_>,
    drvs: &[StorePath],
    args: &BuildArgs,
) -> anyhow::Result<Vec<BTreeMap<String, StorePath>>> {
    let sd = store.store_dir().clone();
    let quiet = args.quiet || ctx.json;
    let key = if args.flags.no_attest {
        None
    } else {
        Some(super::evidence::builder_key(ctx, store)?)
    };
    type Built = (StorePath, Derivation, BTreeMap<String, StorePath>, PathBuf);
    let built: std::sync::Mutex<Vec<Built>> = Default::default();
    let display = Display::new(if ctx.json {
        Mode::Json
    } else if quiet {
        Mode::Quiet
    } else {
        Mode::Human
    });
    let results = builder.realise(drvs, |event| {
        if let BuildEvent::Finished {
            drv,
            derivation,
            outputs,
            outcome: Realised::Built { log },
        } = &event
        {
            built.lock().unwrap_or_else(|p| p.into_inner()).push((
                (*drv).clone(),
                (*derivation).clone(),
                (*outputs).clone(),
                log.clone(),
            ));
        }
        display.show(&sd, event);
    });
    display.finish();
    let built = built.into_inner().unwrap_or_else(|p| p.into_inner());
    // Whatever was built before a failure is attested too: it is in the store.
    if let (Some(key), false) = (&key, built.is_empty()) {
        let now = ctx.clock().unix_seconds();
        let mut log = guixie_log::FileLog::open(&super::evidence::log_dir(store))?;
        let records: Vec<guixie_evidence::BuildRecord> = built
            .iter()
            .map(
                |(drv_path, derivation, outputs, log_file)| guixie_evidence::BuildRecord {
                    drv_path,
                    derivation,
                    outputs,
                    log_file,
                    evidence: &[],
                },
            )
            .collect();
        let first = guixie_evidence::attest_builds(store.as_ref(), key, &records, now, &mut log)?;
        for (i, (drv, ..)) in built.iter().enumerate() {
            let index = first + i as u64;
            if !quiet {
                eprintln!("attested {} as log entry {index}", sd.display(drv));
            }
        }
    }
    Ok(results?)
}
