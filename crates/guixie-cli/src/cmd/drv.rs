use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use guixie_formats::derivation::{Derivation, DerivationError, ModuloHasher};
use guixie_formats::{StoreDir, StorePath};

use guixie_store::safe_fs::read_capped;
use guixie_store::MAX_DERIVATION_SIZE;

use super::{store_dir_of, Collision};
use crate::output::{print_json, stdout};
use crate::Context;

#[derive(Subcommand)]
pub enum DrvCmd {
    /// Show derivations as JSON, in the shape of `nix show-derivation`, keyed by their computed
    /// paths (one object for all).
    Show {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Re-serialise a derivation to standard output (byte-identical for canonical input).
    Fmt { file: PathBuf },
    /// Print `hashDerivationModulo` in base16 (the form dependants embed).
    HashModulo(DrvArgs),
    /// Recompute every output path and the `.drv` path; exit 1 on any mismatch.
    Check(DrvArgs),
}

#[derive(Args)]
pub struct DrvArgs {
    file: PathBuf,
    /// Directory of input `.drv` files named `<hash>-<name>.drv` (searched before the store).
    #[arg(long, value_name = "DIR")]
    inputs: Option<PathBuf>,
    /// How inputs with equal modulo hashes combine (Nix ≥ Aug 2026: merge; Nix 2.8: last-wins).
    #[arg(long, value_enum, default_value_t = Collision::Merge)]
    collision: Collision,
}

/// Where a `.drv` named on the command line is. A path guixie printed (logical, as
/// `/gnu/store/…-x.drv`) or a bare `<hash>-<name>.drv` is looked up in the configured store
/// first; any other path is the file itself.
fn locate(ctx: &Context, file: &Path) -> PathBuf {
    let shown = file.to_string_lossy();
    let in_store = |dir: &str, base: &str| -> Option<PathBuf> {
        let physical = ctx
            .store_root()
            .ok()?
            .join(dir.trim_start_matches('/'))
            .join(base);
        physical.exists().then_some(physical)
    };
    let configured = ctx.store_dir_or(None).ok();
    let base = file.file_name().map(|b| b.to_string_lossy().into_owned());
    let named_in_store = base
        .as_deref()
        .filter(|b| StorePath::from_base_name(b).is_ok());
    if let (Some(sd), Some(base)) = (&configured, named_in_store) {
        let logical = shown.starts_with(&format!("{}/", sd.as_str()));
        let bare = !shown.contains('/');
        if logical || bare {
            if let Some(p) = in_store(sd.as_str(), base) {
                return p;
            }
        }
    }
    if file.exists() {
        return file.to_owned();
    }
    // A logical path of another store directory (`/nix/store/…` with `--store-dir` unset).
    match (store_dir_of(&shown), named_in_store) {
        (Some(dir), Some(base)) if file.is_absolute() => {
            in_store(dir, base).unwrap_or_else(|| file.to_owned())
        }
        _ => file.to_owned(),
    }
}

/// Reads and parses a `.drv` file, in the store directory given on the command line or else
/// the one its own paths name.
fn read_drv(ctx: &Context, path: &Path) -> anyhow::Result<(Derivation, StoreDir)> {
    let bytes = read_capped(path, MAX_DERIVATION_SIZE)
        .with_context(|| format!("reading derivation {}", path.display()))?;
    let sd = ctx.store_dir_or(store_dir_named_in(&bytes).as_deref())?;
    let drv = Derivation::parse(&bytes, &sd).with_context(|| path.display().to_string())?;
    Ok((drv, sd))
}

/// The store directory of the first string in an ATerm that is a store path.
fn store_dir_named_in(aterm: &[u8]) -> Option<String> {
    aterm
        .split(|&b| b == b'"')
        .filter(|s| s.first() == Some(&b'/'))
        .filter_map(|s| std::str::from_utf8(s).ok())
        .find_map(|s| {
            let (dir, base) = s.rsplit_once('/')?;
            StorePath::from_base_name(base).ok()?;
            (!dir.is_empty()).then(|| dir.to_owned())
        })
}

/// The derivation's name: from a `<hash>-<name>.drv` file name, else from its `name` variable.
fn drv_name(file: &Path, drv: &Derivation) -> anyhow::Result<String> {
    let base = file
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Ok(p) = StorePath::from_base_name(&base) {
        if let Some(n) = p.name().strip_suffix(".drv") {
            return Ok(n.to_owned());
        }
    }
    Ok(drv.name()?.to_owned())
}

/// Finds input `.drv` files: `--inputs DIR`, then the local store, then the path itself
/// (which is where it is when the store directory is a real `/nix/store`).
fn loader<'a>(
    ctx: &'a Context,
    inputs: Option<&'a Path>,
    store_dir: &'a StoreDir,
) -> impl FnMut(&StorePath) -> Result<Derivation, DerivationError> + 'a {
    let store_real = ctx
        .store_root()
        .ok()
        .map(|root| root.join(store_dir.as_str().trim_start_matches('/')));
    move |p: &StorePath| {
        let path = store_dir.display(p);
        let base = p.to_string();
        let mut tried = Vec::new();
        let candidates = inputs
            .map(|d| d.join(&base))
            .into_iter()
            .chain(store_real.as_ref().map(|s| s.join(base)))
            .chain(std::iter::once(PathBuf::from(&path)));
        for c in candidates {
            if c.is_file() {
                return read_input_drv(&c, store_dir).map_err(|e| DerivationError::Input {
                    path: path.clone(),
                    message: format!("{e:#}"),
                });
            }
            tried.push(c.display().to_string());
        }
        Err(DerivationError::Input {
            path,
            message: format!(
                "not found (looked at {}); pass --inputs DIR",
                tried.join(", ")
            ),
        })
    }
}

pub fn run(ctx: &Context, cmd: DrvCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        DrvCmd::Fmt { file } => {
            let (drv, sd) = read_drv(ctx, &locate(ctx, &file))?;
            let mut out = stdout();
            out.write_all(&drv.to_aterm(&sd))?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        DrvCmd::Show { files } => {
            let mut all = serde_json::Map::new();
            for file in &files {
                let (drv, sd) = read_drv(ctx, &locate(ctx, file))?;
                let name = drv_name(file, &drv)?;
                let path = drv.drv_path(&sd, &name)?;
                all.insert(sd.display(&path), drv.to_json(&sd));
            }
            print_json(&serde_json::Value::Object(all))?;
            Ok(ExitCode::SUCCESS)
        }
        DrvCmd::HashModulo(a) => {
            let (drv, sd) = read_drv(ctx, &locate(ctx, &a.file))?;
            let mut hasher = ModuloHasher::new(
                sd.clone(),
                loader(ctx, a.inputs.as_deref(), &sd),
                a.collision.into(),
            );
            let h = hasher.hash_drv(&drv, false)?;
            if ctx.json {
                let masked = hasher.hash_drv(&drv, true)?;
                print_json(
                    &serde_json::json!({"hashModulo": h.to_hex(), "hashModuloMasked": masked.to_hex()}),
                )?;
            } else {
                println!("{}", h.to_hex());
            }
            Ok(ExitCode::SUCCESS)
        }
        DrvCmd::Check(a) => check(ctx, a),
    }
}

fn check(ctx: &Context, a: DrvArgs) -> anyhow::Result<ExitCode> {
    let (drv, sd) = read_drv(ctx, &locate(ctx, &a.file))?;
    let name = drv_name(&a.file, &drv)?;
    let mut hasher = ModuloHasher::new(
        sd.clone(),
        loader(ctx, a.inputs.as_deref(), &sd),
        a.collision.into(),
    );
    let collision = hasher.collision();
    let computed = drv.compute_output_paths(&sd, &name, collision, &mut |p| hasher.hash_of(p))?;
    let mut results = Vec::new();
    for (output, path) in &computed {
        let expected = sd.display(path);
        let recorded = drv.outputs[output]
            .path
            .as_ref()
            .map(|p| sd.display(p))
            .unwrap_or_default();
        let env = drv
            .env
            .get(output.as_bytes())
            .map(|v| String::from_utf8_lossy(v).into_owned());
        results.push((
            format!("output {output}"),
            recorded.clone(),
            expected.clone(),
        ));
        results.push((format!("env {output}"), env.unwrap_or_default(), expected));
    }
    let drv_path = sd.display(&drv.drv_path(&sd, &name)?);
    let file_base = a
        .file
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    if StorePath::from_base_name(&file_base).is_ok() {
        results.push((
            "drv path".into(),
            format!("{}/{file_base}", sd.as_str()),
            drv_path.clone(),
        ));
    }
    let ok = results
        .iter()
        .all(|(_, recorded, computed)| recorded == computed);
    if ctx.json {
        let items: Vec<_> = results
            .iter()
            .map(|(what, recorded, computed)| {
                serde_json::json!({"what": what, "recorded": recorded, "computed": computed, "ok": recorded == computed})
            })
            .collect();
        print_json(&serde_json::json!({"drvPath": drv_path, "ok": ok, "checks": items}))?;
    } else {
        for (what, recorded, computed) in &results {
            if recorded == computed {
                println!("ok       {what}: {computed}");
            } else {
                println!("MISMATCH {what}: file has {recorded:?}, computed {computed}");
            }
        }
        if !results.iter().any(|(w, _, _)| w == "drv path") {
            println!("computed drv path: {drv_path}");
        }
    }
    if !ok {
        eprintln!(
            "guixie: {}: derivation does not match its recomputation",
            a.file.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// An input `.drv` found outside the store, in the store directory of the one that needs it.
fn read_input_drv(path: &Path, sd: &StoreDir) -> anyhow::Result<Derivation> {
    let bytes = read_capped(path, MAX_DERIVATION_SIZE)
        .with_context(|| format!("reading derivation {}", path.display()))?;
    Derivation::parse(&bytes, sd).with_context(|| path.display().to_string())
}
