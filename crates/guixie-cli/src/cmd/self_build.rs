//! `guixie self build` and `guixie self check`: guixie built from its own source by its own
//! recipe (`guixie.scm` at the source's root), and the fixpoint proved as GCC's bootstrap
//! compares its stages: the next guixie, evaluating the same recipe, must give the same
//! derivation, and must rebuild it bit for bit. See `docs/self-build.md`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context as _};
use clap::Args;
use guixie_formats::hash::Encoding;
use guixie_store::{LocalStore, PathInfoQuery};

use crate::cmd::build::{BuildArgs, BuildFlags};
use crate::output::print_json;
use crate::Context;

/// The file at a source tree's root that says how it is built.
pub const RECIPE: &str = "guixie.scm";

/// The GC root of the newest `self build`.
const SELF_ROOT: &str = "self-build";

#[derive(Args)]
pub struct SelfEvalArgs {
    /// The source tree whose `guixie.scm` is evaluated.
    #[arg(long, default_value = ".")]
    pub source: PathBuf,
}

#[derive(Args)]
pub struct SelfBuildArgs {
    /// The source tree to build (its `guixie.scm` is the recipe).
    #[arg(long, default_value = ".")]
    pub source: PathBuf,
    #[command(flatten)]
    pub flags: BuildFlags,
}

/// One stage of the bootstrap: the derivation a guixie evaluated and what it built.
pub struct Stage {
    pub drv: String,
    pub output: String,
    /// `sha256:<nix32>` of the output's NAR.
    pub nar_hash: String,
}

/// Evaluates `source`'s recipe with this guixie and builds it; an output already in the
/// store is the answer (nothing is rebuilt). The output becomes the `self-build` GC root.
pub fn build_from_source(
    ctx: &Context,
    store: &Arc<LocalStore>,
    source: &Path,
    flags: &BuildFlags,
) -> anyhow::Result<Stage> {
    let drv = evaluate(ctx, store, source)?;
    let args = BuildArgs {
        targets: vec![drv.clone()],
        attr: None,
        check: false,
        trace: None,
        quiet: true,
        flags: flags.clone(),
    };
    let outputs = crate::cmd::build::build_targets(ctx, store, &args)?;
    let out = outputs
        .first()
        .and_then(|o| o.get("out"))
        .with_context(|| format!("{drv} has no `out' output"))?;
    let info = store.path_info(out)?.with_context(|| {
        format!(
            "{} is not valid after its build",
            store.store_dir().display(out)
        )
    })?;
    // Kept from the collector, as `nix-build` keeps `result`.
    store.add_root(SELF_ROOT, out)?;
    Ok(Stage {
        drv,
        output: store.store_dir().display(out),
        nar_hash: info.nar_hash.to_typed_string(Encoding::Nix32),
    })
}

/// The one package `root`'s recipe defines, evaluated by this guixie with no load path and
/// no extensions, reading nothing outside `root` (a recipe may be untrusted code). Errors
/// name the recipe as it lies under `shown` (the tree the user named, for a copy).
pub fn evaluate_recipe(
    ctx: &Context,
    store: &Arc<LocalStore>,
    root: &Path,
    shown: &Path,
) -> anyhow::Result<guixie_lang::Evaluated> {
    let recipe = root.join(RECIPE);
    if !std::fs::symlink_metadata(&recipe).is_ok_and(|m| m.is_file()) {
        bail!(
            "{}: the source has no {RECIPE} (a file, not a link) at its root to say how it is built",
            shown.join(RECIPE).display()
        );
    }
    let options = guixie_lang::EvalOptions {
        load_path: Vec::new(),
        extensions: Default::default(),
        file_root: Some(root.to_owned()),
        ..ctx.eval_options(store)?
    };
    let mut evaluated =
        guixie_lang::Evaluator::new(store.clone(), options).eval_file(&recipe, None)?;
    if evaluated.len() != 1 {
        bail!(
            "{}: evaluates to {} derivations; the recipe must give exactly one",
            shown.join(RECIPE).display(),
            evaluated.len()
        );
    }
    Ok(evaluated.remove(0))
}

fn evaluate(ctx: &Context, store: &Arc<LocalStore>, source: &Path) -> anyhow::Result<String> {
    let root = source
        .canonicalize()
        .with_context(|| format!("the source tree {}", source.display()))?;
    Ok(evaluate_recipe(ctx, store, &root, source)?.drv_path)
}

/// Prints the `.drv` of the source's recipe, evaluated as `self build` evaluates it.
pub fn run_eval(ctx: &Context, args: SelfEvalArgs) -> anyhow::Result<ExitCode> {
    let store = Arc::new(ctx.open_store()?);
    println!("{}", evaluate(ctx, &store, &args.source)?);
    Ok(ExitCode::SUCCESS)
}

pub fn run_build(ctx: &Context, args: SelfBuildArgs) -> anyhow::Result<ExitCode> {
    let store = Arc::new(ctx.open_store()?);
    let stage = build_from_source(ctx, &store, &args.source, &args.flags)?;
    if ctx.json {
        print_json(&serde_json::json!({
            "drv": stage.drv, "output": stage.output, "nar_hash": stage.nar_hash,
        }))?;
    } else {
        println!("{}", stage.output);
    }
    Ok(ExitCode::SUCCESS)
}

/// Stage 1 is this guixie's build of the source; stage 2 is the guixie stage 1 built,
/// evaluating the same recipe (its `.drv` must be stage 1's) and rebuilding it with
/// `--check` (its output must be stage 1's, bit for bit).
pub fn run_check(ctx: &Context, args: SelfBuildArgs) -> anyhow::Result<ExitCode> {
    let store = Arc::new(ctx.open_store()?);
    let started = Instant::now();
    let first = build_from_source(ctx, &store, &args.source, &args.flags)?;
    let stage1_seconds = started.elapsed().as_secs_f64();
    let out_path = store.parse_user_path(&first.output)?;
    let next = store.real_path(&out_path).join("bin/guixie");
    eprintln!(
        "stage 1: {} built {} ({}) in {stage1_seconds:.1} s",
        env!("CARGO_PKG_VERSION"),
        first.output,
        first.nar_hash
    );

    let started = Instant::now();
    let root = ctx.store_root()?;
    let base = |store_root: &Path| {
        let mut c = Command::new(&next);
        c.arg("--store")
            .arg(store_root)
            .arg("--store-dir")
            .arg(store.store_dir().as_str());
        c
    };
    // Stage 2 evaluates in a store of its own, which holds nothing of stage 1's: the `.drv`
    // it names must be one it wrote, and this guixie compares its bytes with stage 1's.
    let fresh = tempfile::Builder::new()
        .prefix("self-check-")
        .tempdir_in(store.state_dir())
        .context("making stage 2's store")?;
    let evaluated = run_next(
        base(fresh.path())
            .args(["self", "eval", "--source"])
            .arg(&args.source),
        &next,
        "evaluate the recipe",
    );
    let second_drv = evaluated
        .as_deref()
        .map(|e| e.trim().to_owned())
        .unwrap_or_default();
    let same = same_derivation(&store, fresh.path(), &first.drv, &second_drv);
    // Store items are read-only, which the temporary directory's own removal does not undo.
    let _ = guixie_store::safe_fs::remove_tree(&fresh.keep());
    evaluated?;
    if let Err(why) = same {
        eprintln!(
            "stage 2's guixie evaluates {} to {second_drv}, stage 1's to {}: {why}; the recipe does not reach a fixpoint",
            args.source.join(RECIPE).display(),
            first.drv
        );
        report(ctx, &first, &second_drv, false, false, 0.0)?;
        return Ok(ExitCode::FAILURE);
    }
    eprintln!("stage 2: the built guixie evaluates the recipe to the same {second_drv}");
    let mut check = base(&root);
    check.args(["build", "--check", "--quiet"]).arg(&second_drv);
    for flag in args.flags.to_args() {
        check.arg(flag);
    }
    // Its report goes to stderr: stdout is this command's own (its `--json`).
    let stderr = std::os::fd::AsFd::as_fd(&std::io::stderr()).try_clone_to_owned()?;
    let rebuilt = check
        .stdout(std::process::Stdio::from(stderr))
        .status()
        .with_context(|| format!("running {}", next.display()))?;
    let stage2_seconds = started.elapsed().as_secs_f64();
    report(
        ctx,
        &first,
        &second_drv,
        true,
        rebuilt.success(),
        stage2_seconds,
    )?;
    if !rebuilt.success() {
        eprintln!(
            "stage 2's rebuild of {} differs from stage 1's output: guixie does not rebuild itself bit for bit",
            first.output
        );
        return Ok(ExitCode::FAILURE);
    }
    eprintln!(
        "stage 2: the built guixie rebuilt {} bit for bit in {stage2_seconds:.1} s: fixpoint",
        first.output
    );
    Ok(ExitCode::SUCCESS)
}

/// Whether stage 2's store holds, at `second`, the very bytes of stage 1's `.drv` at `first`.
fn same_derivation(
    store: &LocalStore,
    stage2_root: &Path,
    first: &str,
    second: &str,
) -> Result<(), String> {
    if first != second {
        return Err("another derivation".into());
    }
    let path = store.parse_user_path(first).map_err(|e| e.to_string())?;
    let ours = std::fs::read(store.real_path(&path)).map_err(|e| e.to_string())?;
    let relative = first.trim_start_matches('/');
    let theirs = std::fs::read(stage2_root.join(relative))
        .map_err(|e| format!("its store holds no such .drv ({e})"))?;
    if ours == theirs {
        Ok(())
    } else {
        Err("its .drv file has other bytes".into())
    }
}

fn run_next(cmd: &mut Command, next: &Path, what: &str) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("running {}", next.display()))?;
    if !out.status.success() {
        bail!(
            "the built guixie ({}) could not {what}: {}",
            next.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn report(
    ctx: &Context,
    first: &Stage,
    second_drv: &str,
    same_drv: bool,
    rebuilt_identically: bool,
    stage2_seconds: f64,
) -> anyhow::Result<()> {
    if ctx.json {
        print_json(&serde_json::json!({
            "stage1": {"drv": first.drv, "output": first.output, "nar_hash": first.nar_hash},
            "stage2": {"drv": second_drv, "same_drv": same_drv,
                        "rebuilt_identically": rebuilt_identically,
                        "seconds": stage2_seconds},
            "fixpoint": same_drv && rebuilt_identically,
        }))?;
    } else {
        println!("stage 1 drv     {}", first.drv);
        println!("stage 1 output  {}  {}", first.output, first.nar_hash);
        println!("stage 2 drv     {second_drv}");
        println!(
            "stage 2 rebuild {}",
            if rebuilt_identically {
                "identical"
            } else {
                "DIFFERENT or not done"
            }
        );
    }
    Ok(())
}
