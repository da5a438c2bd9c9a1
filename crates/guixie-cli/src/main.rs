//! `guixie`: the command-line front end. Parsing arguments and printing results lives here;
//! everything else is in the library crates.

mod cmd;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "guixie",
    version,
    about = "A Guix-like, evidence-based build system"
)]
struct Cli {
    /// Root of the local store (holds `<store dir>/` and `var/guixie/`).
    #[arg(long, global = true, env = "GUIXIE_STORE", value_name = "DIR")]
    store: Option<PathBuf>,
    /// Logical store directory, part of every store path's hash [default: /gnu/store; for
    /// `.drv` and narinfo files: taken from the paths inside them].
    #[arg(long, global = true, env = "GUIXIE_STORE_DIR", value_name = "DIR")]
    store_dir: Option<String>,
    /// Print data as JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Directories of package modules: `(use-modules (a b))` finds DIR/a/b.scm, and package
    /// names (as `guixie build hello`) are looked up there. Repeatable; `:`-separated in the
    /// environment.
    #[arg(
        short = 'L',
        long = "load-path",
        global = true,
        env = "GUIXIE_LOAD_PATH",
        value_delimiter = ':',
        value_name = "DIR"
    )]
    load_path: Vec<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Hash files, trees (NAR) and convert hash encodings.
    #[command(subcommand)]
    Hash(cmd::hash::HashCmd),
    /// Write, restore and list NAR archives.
    #[command(subcommand)]
    Nar(cmd::nar::NarCmd),
    /// Inspect, re-serialise and check `.drv` derivations.
    #[command(subcommand)]
    Drv(cmd::drv::DrvCmd),
    /// Show, sign and verify binary-cache narinfo files.
    #[command(subcommand)]
    Narinfo(cmd::narinfo::NarinfoCmd),
    /// Ed25519 signing keys in Nix's `name:base64` format.
    #[command(subcommand)]
    Key(cmd::key::KeyCmd),
    /// The local store.
    #[command(subcommand)]
    Store(cmd::store::StoreCmd),
    /// Delete store paths not reachable from a GC root.
    Gc(cmd::store::GcArgs),
    /// Evaluate a Guile package file and print the `.drv` path of each derivation it returns.
    Eval(cmd::eval::EvalArgs),
    /// `log STORE-PATH|DRV`: a build's log (as `nix log`). `log SUBCOMMAND`: the local
    /// transparency log: append, checkpoints, proofs; verify proofs.
    Log(cmd::log::LogArgs),
    /// Verify C2SP signed notes.
    #[command(subcommand)]
    Note(cmd::log::NoteCmd),
    /// Verify C2SP checkpoints and witness cosignatures.
    #[command(subcommand)]
    Checkpoint(cmd::log::CheckpointCmd),
    /// Show and verify build attestations (in-toto in DSSE).
    #[command(subcommand)]
    Attest(cmd::attest::AttestCmd),
    /// Build derivations (from `.scm` files or `.drv` paths) in the sandbox; print output paths.
    Build(cmd::build::BuildArgs),
    /// Compare the attested outputs of derivations across builders' logs (exit 1 if they differ).
    Challenge(cmd::challenge::ChallengeArgs),
    /// A long-running peer: shares this store's attested results and fetches others' that
    /// enough trusted builders attest; `--http` serves them to guixie and Nix on loopback.
    Node(cmd::node::NodeArgs),
    /// The k-of-n acceptance rule, for audit: `trust decide CASE.json`; `trust identity`:
    /// this store's entry for others' trust policies.
    #[command(subcommand)]
    Trust(cmd::trust::TrustCmd),
    /// Show packages' fields (as `guix show`): by name, from the load path or a file.
    Show(cmd::show::ShowArgs),
    /// Print the derivation graph of `.scm` files or `.drv` paths in Graphviz DOT.
    Graph {
        #[arg(required = true)]
        targets: Vec<String>,
        #[arg(short = 'A', long = "attr")]
        attr: Option<String>,
    },
    /// A Guile REPL in a package file's sandbox: its bindings, modules and this store's
    /// accepted extensions, with read-only store queries.
    Repl,
    /// Serve the store as a binary cache that Nix substitutes from (read-only).
    Publish(cmd::publish::PublishArgs),
    /// Copy store paths and their closures to or from a binary cache (`file://`, `http(s)://`).
    Copy(cmd::copy::CopyArgs),
    /// Run a command (default: your shell) with packages' programs and search paths, the
    /// store visible at its logical directory: `guixie shell hello -- hello`.
    Shell(cmd::shell::ShellArgs),
    /// Run a program from the store: `guixie run /gnu/store/…-hello-1.0/bin/hello ARGS`.
    /// With `--trace`, in the build sandbox under the tool, its findings kept as a report.
    Run {
        #[arg(long, value_name = "TOOL")]
        trace: Option<cmd::run_trace::RunTracer>,
        #[command(flatten)]
        options: cmd::run_trace::RunOptions,
        program: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Install packages into a profile (default ~/.guixie-profile), as a new generation.
    Install(cmd::package::ShortArgs),
    /// Remove packages from a profile, as a new generation.
    Remove(cmd::package::ShortArgs),
    /// Upgrade a profile's packages (all, without names), as a new generation.
    Upgrade(cmd::package::ShortArgs),
    /// Manage a profile: -i, -r, -u, -m, --list-generations, --switch-generation, --roll-back,
    /// --delete-generations.
    Package(cmd::package::PackageArgs),
    /// The instance's governance: members, proposals, votes by quorum (`docs/governance.md`).
    #[command(subcommand)]
    Govern(cmd::govern::GovernCmd),
    /// guixie itself: `self build` and `self check` (its build from its own source, and the
    /// fixpoint), `self generations|switch N|roll-back` (this instance's generations).
    #[command(subcommand, name = "self")]
    Self_(cmd::govern::SelfCmd),
    /// Reports of traced builds (`guixie build --trace`).
    #[command(subcommand)]
    Report(cmd::report::ReportCmd),
    /// Closure sizes of store paths or packages, per item (as `guix size`).
    Size(cmd::size::SizeArgs),
}

/// What every command gets besides its own arguments.
pub struct Context {
    store: Option<PathBuf>,
    store_dir: Option<String>,
    json: bool,
    load_path: Vec<PathBuf>,
    /// `GUIXIE_BOOTSTRAP_SHA256`: the bootstrap toolchain its user trusts.
    bootstrap_pin: Option<guixie_trust_root::ToolchainPin>,
    /// The only clock and randomness the program uses, handed down from here.
    clock: std::sync::Arc<dyn guixie_env::Clock>,
    rng: std::sync::Arc<dyn guixie_env::Randomness>,
    /// `GUIXIE_REPORT_TO`: a file where a traced run also writes its report's path, for
    /// the trace API, which cannot trust the run's stderr (the traced program shares it).
    report_to: Option<PathBuf>,
}

impl Context {
    /// The global options that name this store, for a guixie process started on its behalf.
    pub fn store_args(&self) -> Vec<std::ffi::OsString> {
        let mut args = Vec::new();
        if let Some(root) = &self.store {
            args.push("--store".into());
            args.push(
                std::path::absolute(root)
                    .unwrap_or_else(|_| root.clone())
                    .into(),
            );
        }
        if let Some(dir) = &self.store_dir {
            args.push("--store-dir".into());
            args.push(dir.into());
        }
        args
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ctx = Context {
        store: cli.store,
        store_dir: cli.store_dir,
        json: cli.json,
        load_path: cli.load_path,
        bootstrap_pin: match bootstrap_pin() {
            Ok(pin) => pin,
            Err(e) => {
                eprintln!("guixie: {e:#}");
                return ExitCode::from(2);
            }
        },
        clock: std::sync::Arc::new(guixie_env::SystemClock),
        rng: std::sync::Arc::new(guixie_env::OsRandomness),
        report_to: std::env::var_os("GUIXIE_REPORT_TO").map(PathBuf::from),
    };
    let result = match cli.command {
        Command::Hash(c) => cmd::hash::run(&ctx, c),
        Command::Nar(c) => cmd::nar::run(&ctx, c),
        Command::Drv(c) => cmd::drv::run(&ctx, c),
        Command::Narinfo(c) => cmd::narinfo::run(&ctx, c),
        Command::Key(c) => cmd::key::run(&ctx, c),
        Command::Store(c) => cmd::store::run(&ctx, c),
        Command::Gc(a) => cmd::store::gc(&ctx, a),
        Command::Eval(a) => cmd::eval::run(&ctx, a),
        Command::Show(a) => cmd::show::run(&ctx, a),
        Command::Log(cmd::log::LogArgs {
            command: Some(c), ..
        }) => cmd::log::run(&ctx, c),
        Command::Log(cmd::log::LogArgs {
            target: Some(target),
            ..
        }) => cmd::build_log::run(&ctx, &target),
        Command::Log(_) => unreachable!("clap requires a target or a subcommand"),
        Command::Note(c) => cmd::log::note(&ctx, c),
        Command::Checkpoint(c) => cmd::log::checkpoint(&ctx, c),
        Command::Attest(c) => cmd::attest::run(&ctx, c),
        Command::Build(a) => cmd::build::run(&ctx, a),
        Command::Challenge(a) => cmd::challenge::run(&ctx, a),
        Command::Trust(c) => cmd::trust::run(&ctx, c),
        Command::Node(a) => cmd::node::run(&ctx, a),
        Command::Publish(a) => cmd::publish::run(&ctx, a),
        Command::Copy(a) => cmd::copy::run(&ctx, a),
        Command::Shell(a) => cmd::shell::run(&ctx, a),
        Command::Run {
            trace: None,
            options,
            program,
            args,
        } => options
            .refuse_untraced()
            .and_then(|()| cmd::shell::run_program(&ctx, &program, &args)),
        Command::Run {
            trace: Some(tool),
            options,
            program,
            args,
        } => cmd::run_trace::run(&ctx, tool, &options, &program, &args),
        Command::Install(a) => cmd::package::install(&ctx, a),
        Command::Remove(a) => cmd::package::remove(&ctx, a),
        Command::Upgrade(a) => cmd::package::upgrade(&ctx, a),
        Command::Package(a) => cmd::package::run(&ctx, a),
        Command::Size(a) => cmd::size::run(&ctx, a),
        Command::Govern(c) => cmd::govern::run(&ctx, c),
        Command::Self_(c) => cmd::govern::run_self(&ctx, c),
        Command::Report(c) => cmd::report::run(&ctx, c),
        Command::Graph { targets, attr } => cmd::graph::run(&ctx, &targets, attr.as_deref()),
        Command::Repl => cmd::repl::run(&ctx),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            output::report_error(&e);
            ExitCode::FAILURE
        }
    }
}

/// The pin of the bootstrap toolchains, from `GUIXIE_BOOTSTRAP_SHA256`: NAR hashes (any
/// sha256 encoding) separated by commas or spaces, one per toolchain trusted.
fn bootstrap_pin() -> anyhow::Result<Option<guixie_trust_root::ToolchainPin>> {
    const VAR: &str = "GUIXIE_BOOTSTRAP_SHA256";
    match std::env::var(VAR) {
        Ok(text) if !text.trim().is_empty() => Ok(Some(guixie_trust_root::ToolchainPin {
            nar_hashes: text
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|h| !h.is_empty())
                .map(|h| {
                    guixie_formats::Hash::parse(h, Some(guixie_formats::HashAlgo::Sha256))
                        .map_err(|e| anyhow::anyhow!("{VAR}: {h}: {e}"))
                })
                .collect::<anyhow::Result<_>>()?,
            source: VAR.into(),
        })),
        _ => Ok(None),
    }
}
