//! `guixie run --trace=valgrind|gdb|perf|python STORE-PATH/bin/X [ARGS]`: a program of the
//! store run in the build sandbox (its closure, its toolchain as `/usr`, no network unless
//! asked) under a tool that runs inside with it; what the tool found becomes a report, a
//! store item of its own (`docs/introspection.md`).
//!
//! The tool comes from the host's Debian package, copied with its dependency closure into a
//! store item as the bootstrap toolchain is, and run through that item's own loader and
//! libraries, so the program still sees exactly its own `/usr`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod gateway;
pub(crate) mod perf_graph;
pub(crate) mod python;

use anyhow::Context as _;
use guixie_build::container::{run_in_container, ContainerNetwork, ContainerRequest, EXCHANGE_DIR};
use guixie_formats::StorePath;
use guixie_introspect::{gdb, perf, valgrind};
use guixie_store::{safe_fs, LocalStore, PathInfoQuery as _, TextItem};

use super::shell::{environment, exit_code, program_in_store};
use crate::Context;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RunTracer {
    /// memcheck's errors and leaks with their stacks, then callgrind's instruction count
    /// (the program runs twice).
    Valgrind,
    /// How the program ended and, on a signal, every thread's backtrace.
    Gdb,
    /// `perf stat`'s software counters, then a flame graph of `perf record`'s samples (the
    /// program runs twice).
    Perf,
    /// Every Python process's call tree of the program's own code; with `--record` or
    /// `--replay`, its HTTP through the recording gateway.
    Python,
}

/// How the traced program reaches out.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct RunOptions {
    /// Give the program the network (through slirp4netns); it has none but its own
    /// loopback otherwise.
    #[arg(long, conflicts_with_all = ["record", "replay"])]
    pub network: bool,
    /// With --trace=python: the program's HTTP goes through a recording gateway, its only
    /// egress, and the exchanges become a store item (plain HTTP only).
    #[arg(long, conflicts_with = "replay")]
    pub record: bool,
    /// With --trace=python: the program runs with no network, its HTTP answered from this
    /// recording; a request it does not hold fails the run.
    #[arg(long, value_name = "RECORDING")]
    pub replay: Option<String>,
}

impl RunOptions {
    /// A program run without `--trace` is not sandboxed: there is no network to give.
    pub fn refuse_untraced(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !(self.network || self.record || self.replay.is_some()),
            "--network, --record and --replay go with --trace (a program run without --trace \
             is not sandboxed)"
        );
        Ok(())
    }

    fn network(&self) -> ContainerNetwork<'static> {
        if self.network {
            ContainerNetwork::Full
        } else {
            ContainerNetwork::None
        }
    }
}

impl RunTracer {
    pub(crate) fn package(self) -> &'static str {
        match self {
            RunTracer::Valgrind => "valgrind",
            RunTracer::Gdb => "gdb",
            RunTracer::Perf => "perf",
            RunTracer::Python => "python",
        }
    }

    fn debian_package(self) -> &'static str {
        match self {
            RunTracer::Perf => "linux-perf",
            other => other.package(),
        }
    }

    /// The host's packages its item holds: the tool and the C library's debugging symbols
    /// (valgrind cannot start on Debian's stripped loader without them; gdb names libc's
    /// frames with them).
    pub(crate) fn packages(self) -> Vec<String> {
        let mut packages = vec![self.debian_package().to_owned(), "libc6-dbg".to_owned()];
        if self == RunTracer::Perf {
            // A shell of its own, to run perf record then perf script in a traced build.
            packages.push("dash".to_owned());
        }
        packages
    }
}

pub fn run(
    ctx: &Context,
    tracer: RunTracer,
    options: &RunOptions,
    program: &str,
    args: &[String],
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        tracer == RunTracer::Python || !(options.record || options.replay.is_some()),
        "--record and --replay go with --trace=python"
    );
    let store = ctx.open_store()?;
    // The tool's items and the report's stay while the report is made and rooted.
    let _gc = store.gc_guard()?;
    let (path, logical) = program_in_store(&store, program)?;
    let exchange = store.build_area()?;
    let result = match tracer {
        RunTracer::Python => {
            python::traced_python(&store, &path, &logical, args, &exchange, options)
        }
        _ => Tool::take(&store, &tracer.packages()).and_then(|tool| {
            traced_run(
                &store, tracer, &tool, &path, &logical, args, &exchange, options,
            )
        }),
    };
    let _ = safe_fs::remove_tree(&exchange);
    let Finding {
        json,
        status,
        summary,
        references,
    } = result?;
    let name = format!("{}-{}.json", path.name(), tracer.package());
    let report = store
        .add_texts(&[TextItem::text(&name, json, references)])?
        .remove(0);
    store.add_root(&format!("report-{}", report.hash_part()), &report)?;
    if ctx.json {
        crate::output::print_json(&serde_json::json!({
            "report": store.store_dir().display(&report),
            "summary": summary,
        }))?;
    } else {
        eprintln!("{summary}");
        eprintln!("report: {}", store.store_dir().display(&report));
    }
    if let Some(file) = &ctx.report_to {
        std::fs::write(file, store.store_dir().display(&report))
            .with_context(|| format!("GUIXIE_REPORT_TO {}", file.display()))?;
    }
    Ok(status)
}

/// A tool's store item and how to start its program inside the sandbox.
pub(crate) struct Tool {
    pub(crate) item: StorePath,
    /// Its `usr/` as the sandbox shows it.
    pub(crate) usr: String,
    pub(crate) loader: String,
    pub(crate) library_path: String,
}

impl Tool {
    pub(crate) fn take(store: &LocalStore, packages: &[String]) -> anyhow::Result<Tool> {
        let package = &packages[0];
        let item = guixie_trust_root::ensure_toolchain(store, packages, None)
            .map_err(anyhow::Error::msg)
            .with_context(|| {
                format!(
                    "--trace={package}: taking {} from the host's Debian packages",
                    packages.join(" and ")
                )
            })?;
        let usr = format!("{}/usr", store.store_dir().display(&item));
        let real = store.real_path(&item).join("usr/lib");
        let (triplet, loader) = LOADERS
            .iter()
            .find(|(t, l)| {
                std::fs::symlink_metadata(real.join(t).join(l)).is_ok_and(|m| m.is_file())
            })
            .with_context(|| format!("{package}'s item holds no dynamic loader"))?;
        Ok(Tool {
            loader: format!("{usr}/lib/{triplet}/{loader}"),
            library_path: format!("{usr}/lib/{triplet}:{usr}/lib"),
            usr,
            item,
        })
    }

    /// `program args` run through the tool's own loader and libraries.
    pub(crate) fn command(&self, program: &str, args: Vec<String>) -> (String, Vec<String>) {
        let mut all = vec![
            "--library-path".to_owned(),
            self.library_path.clone(),
            format!("{}/bin/{program}", self.usr),
        ];
        all.extend(args);
        (self.loader.clone(), all)
    }
}

impl Tool {
    /// valgrind finds detached symbols by build ID only under `/usr/lib/debug`, which the
    /// sandbox's `/usr` (the program's toolchain) lacks, and otherwise by an object's
    /// `.gnu_debuglink` name under its extra path: links named so, in the directories the
    /// C library's objects are loaded from, to the item's `.build-id` files (Debian names a
    /// debug link after the build ID).
    pub(crate) fn link_debug_files(&self, store: &LocalStore, at: &Path) -> anyhow::Result<()> {
        let build_ids = store.real_path(&self.item).join("usr/lib/debug/.build-id");
        let Ok(prefixes) = std::fs::read_dir(&build_ids) else {
            return Ok(());
        };
        let dirs: Vec<PathBuf> = ["lib64", "usr/lib64"]
            .into_iter()
            .map(PathBuf::from)
            .chain(LOADERS.iter().flat_map(|(triplet, _)| {
                [format!("lib/{triplet}"), format!("usr/lib/{triplet}")].map(PathBuf::from)
            }))
            .map(|d| at.join(d))
            .collect();
        for d in &dirs {
            std::fs::create_dir_all(d)?;
        }
        for prefix in prefixes {
            let prefix = prefix?;
            for file in std::fs::read_dir(prefix.path())? {
                let name = file?.file_name();
                let inside = format!(
                    "{}/lib/debug/.build-id/{}/{}",
                    self.usr,
                    prefix.file_name().to_string_lossy(),
                    name.to_string_lossy()
                );
                for d in &dirs {
                    std::os::unix::fs::symlink(&inside, d.join(&name))?;
                }
            }
        }
        Ok(())
    }
}

/// (multiarch directory, loader) of the architectures Debian ships.
const LOADERS: &[(&str, &str)] = &[
    ("x86_64-linux-gnu", "ld-linux-x86-64.so.2"),
    ("aarch64-linux-gnu", "ld-linux-aarch64.so.1"),
];

/// What a traced run gives: the report, the program's status, a line for people, and the
/// store items the report names (the flame graph).
struct Finding {
    json: Vec<u8>,
    status: ExitCode,
    summary: String,
    references: BTreeSet<StorePath>,
}

impl Finding {
    fn new(json: Vec<u8>, status: ExitCode, summary: String) -> Self {
        Finding {
            json,
            status,
            summary,
            references: BTreeSet::new(),
        }
    }
}

/// How a traced command is contained, beyond the program's own closure.
struct Sandboxing<'a> {
    tools: &'a [StorePath],
    exchange: &'a Path,
    env: Vec<(String, String)>,
    debugger: bool,
    stdout: Option<&'a std::fs::File>,
    network: ContainerNetwork<'a>,
}

/// Runs `command args` in the sandbox of `program`'s closure, with its environment.
fn contain(
    store: &LocalStore,
    program: &StorePath,
    command: String,
    args: Vec<String>,
    how: Sandboxing<'_>,
) -> anyhow::Result<std::process::ExitStatus> {
    let mut env = environment(store, std::slice::from_ref(program), &[], true);
    env.extend(how.env);
    run_in_container(
        store,
        &ContainerRequest {
            packages: std::slice::from_ref(program),
            program: command,
            args,
            env,
            cwd: std::env::current_dir()?,
            tools: how.tools,
            exchange: Some(how.exchange),
            debugger: how.debugger,
            stdout: how.stdout,
            network: how.network,
        },
    )
    .context("running the traced program in the sandbox")
}

#[allow(clippy::too_many_arguments)]
fn traced_run(
    store: &LocalStore,
    tracer: RunTracer,
    tool: &Tool,
    path: &StorePath,
    logical: &str,
    args: &[String],
    exchange: &Path,
    options: &RunOptions,
) -> anyhow::Result<Finding> {
    let contain = |program: &str,
                   command_args: Vec<String>,
                   env: Vec<(String, String)>,
                   stdout: Option<&std::fs::File>| {
        let (command, command_args) = tool.command(program, command_args);
        let how = Sandboxing {
            tools: std::slice::from_ref(&tool.item),
            exchange,
            env,
            debugger: tracer == RunTracer::Gdb,
            stdout,
            network: options.network(),
        };
        contain(store, path, command, command_args, how)
    };
    // The program comes after the tool's own arguments.
    let run = |program: String, tool_args: Vec<String>, extra_env: Vec<(String, String)>| {
        let mut command_args = tool_args;
        command_args.push(logical.to_owned());
        command_args.extend(args.iter().cloned());
        contain(&program, command_args, extra_env, None)
    };
    let inside = |name: &str| format!("{EXCHANGE_DIR}/{name}");
    let debug = format!("{}/lib/debug", tool.usr);
    let written = |name: &str, limit: u64| -> anyhow::Result<String> {
        let file = exchange.join(name);
        let bytes = safe_fs::read_capped_written(&file, limit)
            .with_context(|| format!("reading the tool's {name}"))?;
        // A symbol or thread name the program chose need not be UTF-8.
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match tracer {
        RunTracer::Valgrind => {
            // Only valgrind needs them: gdb is told the item's debug directory.
            tool.link_debug_files(store, &exchange.join("debug"))?;
            let valgrind_lib = vec![(
                "VALGRIND_LIB".to_owned(),
                format!("{}/libexec/valgrind", tool.usr),
            )];
            let status = run(
                "valgrind.bin".into(),
                valgrind::memcheck_args(&inside("memcheck.xml"), &inside("debug")),
                valgrind_lib.clone(),
            )?;
            let memcheck =
                valgrind::parse_memcheck(&written("memcheck.xml", valgrind::MAX_XML_BYTES)?)
                    .context("memcheck's report")?;
            eprintln!(
                "guixie: running {logical} again, under callgrind, for its instruction count"
            );
            run(
                "valgrind.bin".into(),
                valgrind::callgrind_args(&inside("callgrind.out"), &inside("debug")),
                valgrind_lib,
            )?;
            let instructions = callgrind_total(&exchange.join("callgrind.out"))?;
            let report = valgrind::ValgrindReport {
                schema: valgrind::SCHEMA.into(),
                tool: store.store_dir().display(&tool.item),
                program: logical.to_owned(),
                args: args.to_vec(),
                exit_code: status.code(),
                memcheck,
                instructions,
                processes: vec![],
                omitted_processes: 0,
                unfinished_processes: 0,
                build: None,
            };
            let summary = super::report::valgrind_summary(&report);
            Ok(Finding::new(
                serde_json::to_vec_pretty(&report)?,
                exit_code(status),
                summary,
            ))
        }
        RunTracer::Gdb => {
            let status = run(
                "gdb".into(),
                gdb::batch_args(
                    &inside("gdb.log"),
                    &format!("{}/share/gdb", tool.usr),
                    &debug,
                ),
                vec![],
            )?;
            let log = written("gdb.log", gdb::MAX_LOG_BYTES)?;
            let (ending, threads, omitted_threads) =
                gdb::parse_batch_log(&log).with_context(|| format!("gdb's log (gdb {status})"))?;
            let code = match &ending {
                gdb::Ending::Exited { code } => *code,
                gdb::Ending::Signal { name, .. } | gdb::Ending::Terminated { name, .. } => {
                    signal_number(name).map_or(1, |s| 128 + s)
                }
            };
            let report = gdb::GdbReport {
                schema: gdb::SCHEMA.into(),
                tool: store.store_dir().display(&tool.item),
                program: logical.to_owned(),
                args: args.to_vec(),
                ending,
                threads,
                omitted_threads,
                crashed: None,
                build: None,
            };
            let summary = super::report::gdb_summary(&report);
            Ok(Finding::new(
                serde_json::to_vec_pretty(&report)?,
                ExitCode::from(u8::try_from(code).unwrap_or(1)),
                summary,
            ))
        }
        RunTracer::Python => anyhow::bail!("the Python tracer is not a host tool"),
        RunTracer::Perf => {
            let status = run("perf".into(), perf::stat_args(&inside("stat.csv")), vec![])?;
            let counters = perf::parse_stat_csv(
                &written("stat.csv", 1 << 20).context("perf stat's counters")?,
            );
            eprintln!("guixie: running {logical} again, under perf record, for its flame graph");
            run(
                "perf".into(),
                perf::record_args(&inside("perf.data")),
                vec![],
            )?;
            // perf script reads the samples inside too (the program's objects are there),
            // its output going to a file of guixie's.
            let script_path = exchange.with_extension("script");
            let script = std::fs::File::create(&script_path)?;
            let read = contain(
                "perf",
                ["script", "-f", "-i", &inside("perf.data")]
                    .map(String::from)
                    .to_vec(),
                vec![],
                Some(&script),
            );
            drop(script);
            let graph = read.and_then(|status| {
                anyhow::ensure!(status.success(), "perf script failed ({status})");
                perf_graph::flame_graph(&script_path, logical)
            });
            let _ = std::fs::remove_file(&script_path);
            let report = perf_graph::report(
                store,
                tool,
                path,
                logical,
                args,
                status.code(),
                counters,
                graph,
            )?;
            let summary = super::report::perf_summary(&report.0);
            Ok(Finding {
                json: serde_json::to_vec_pretty(&report.0)?,
                status: exit_code(status),
                summary,
                references: report.1,
            })
        }
    }
}

/// callgrind's total, its profile read a line at a time (it grows with the program).
fn callgrind_total(file: &Path) -> anyhow::Result<Option<u64>> {
    use std::io::{BufRead, Read};
    let profile = safe_fs::open_written(file).context("opening callgrind's profile")?;
    let mut lines = std::io::BufReader::new(profile.take(1 << 30)).split(b'\n');
    Ok(lines.find_map(|l| valgrind::callgrind_total(&String::from_utf8_lossy(&l.ok()?))))
}

/// A signal's number by the name gdb gives it.
fn signal_number(name: &str) -> Option<i32> {
    const SIGNALS: [(&str, i32); 31] = [
        ("SIGHUP", libc::SIGHUP),
        ("SIGINT", libc::SIGINT),
        ("SIGQUIT", libc::SIGQUIT),
        ("SIGILL", libc::SIGILL),
        ("SIGTRAP", libc::SIGTRAP),
        ("SIGABRT", libc::SIGABRT),
        ("SIGBUS", libc::SIGBUS),
        ("SIGFPE", libc::SIGFPE),
        ("SIGKILL", libc::SIGKILL),
        ("SIGUSR1", libc::SIGUSR1),
        ("SIGSEGV", libc::SIGSEGV),
        ("SIGUSR2", libc::SIGUSR2),
        ("SIGPIPE", libc::SIGPIPE),
        ("SIGALRM", libc::SIGALRM),
        ("SIGTERM", libc::SIGTERM),
        ("SIGSTKFLT", libc::SIGSTKFLT),
        ("SIGCHLD", libc::SIGCHLD),
        ("SIGCONT", libc::SIGCONT),
        ("SIGSTOP", libc::SIGSTOP),
        ("SIGTSTP", libc::SIGTSTP),
        ("SIGTTIN", libc::SIGTTIN),
        ("SIGTTOU", libc::SIGTTOU),
        ("SIGURG", libc::SIGURG),
        ("SIGXCPU", libc::SIGXCPU),
        ("SIGXFSZ", libc::SIGXFSZ),
        ("SIGVTALRM", libc::SIGVTALRM),
        ("SIGPROF", libc::SIGPROF),
        ("SIGWINCH", libc::SIGWINCH),
        ("SIGIO", libc::SIGIO),
        ("SIGPWR", libc::SIGPWR),
        ("SIGSYS", libc::SIGSYS),
    ];
    SIGNALS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}
