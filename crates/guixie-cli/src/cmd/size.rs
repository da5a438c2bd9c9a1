//! `guixie size PATH|PKG…` (as `guix size`): each item of the closure with its own size and
//! the size of its closure; and the reference queries of `guixie gc`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use guixie_formats::StorePath;
use guixie_store::{LocalStore, PathInfoQuery};

use crate::output::print_json;
use crate::Context;

#[derive(Args)]
pub struct SizeArgs {
    /// Store paths, package names or `.scm` files (built or substituted first).
    #[arg(required = true, value_name = "PATH|PKG")]
    pub targets: Vec<String>,
}

pub fn run(ctx: &Context, args: SizeArgs) -> anyhow::Result<ExitCode> {
    let store = Arc::new(ctx.open_store()?);
    let sd = store.store_dir().clone();
    let roots = paths_of(ctx, &store, &args.targets)?;
    let closure = store.closure(&roots)?;
    let mut own = BTreeMap::new();
    for p in &closure {
        let info = store
            .path_info(p)?
            .ok_or_else(|| anyhow::anyhow!("{} is not valid", sd.display(p)))?;
        own.insert(p.clone(), info.nar_size);
    }
    let mut rows: Vec<(StorePath, u64, u64)> = Vec::new();
    for p in &closure {
        let total: u64 = store
            .closure(std::slice::from_ref(p))?
            .iter()
            .map(|q| own.get(q).copied().unwrap_or(0))
            .sum();
        rows.push((p.clone(), total, own[p]));
    }
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let all: u64 = own.values().sum();
    if ctx.json {
        let items: Vec<_> = rows
            .iter()
            .map(|(p, total, own)| serde_json::json!({"path": sd.display(p), "closureSize": total, "narSize": own}))
            .collect();
        print_json(&serde_json::json!({"items": items, "total": all}))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<64} {:>10} {:>10}", "store item", "total", "self");
    for (p, total, own) in &rows {
        println!(
            "{:<64} {:>10} {:>10} {:>5.1}%",
            sd.display(p),
            mib(*total),
            mib(*own),
            if all == 0 {
                0.0
            } else {
                *own as f64 * 100.0 / all as f64
            }
        );
    }
    println!("total: {}", mib(all));
    Ok(ExitCode::SUCCESS)
}

fn mib(bytes: u64) -> String {
    if bytes < 1 << 20 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
}

/// The store paths targets name: valid paths as they are, packages and files built.
pub fn paths_of(
    ctx: &Context,
    store: &Arc<LocalStore>,
    targets: &[String],
) -> anyhow::Result<Vec<StorePath>> {
    let mut paths = Vec::new();
    let mut to_build = Vec::new();
    for t in targets {
        match store.parse_user_path(t) {
            Ok(p) if t.contains('/') && !t.ends_with(".scm") && store.is_valid(&p)? => {
                paths.push(p)
            }
            Ok(p) if t.contains('/') && !t.ends_with(".scm") && !p.name().ends_with(".drv") => {
                anyhow::bail!("{t} is not valid in this store")
            }
            _ => to_build.push(t.clone()),
        }
    }
    if !to_build.is_empty() {
        let build = super::package::build_args(to_build)?;
        for outs in super::build::build_targets(ctx, store, &build)? {
            paths.extend(outs.into_values());
        }
    }
    Ok(paths)
}

/// `--references`, `--referrers` or `--requisites` of `paths`, sorted.
pub fn query(
    store: &LocalStore,
    paths: &[StorePath],
    what: Query,
) -> anyhow::Result<BTreeSet<StorePath>> {
    let sd = store.store_dir();
    let info = |p: &StorePath| -> anyhow::Result<guixie_store::PathInfo> {
        store
            .path_info(p)?
            .ok_or_else(|| anyhow::anyhow!("{} is not valid", sd.display(p)))
    };
    let mut out = BTreeSet::new();
    match what {
        Query::References => {
            for p in paths {
                out.extend(info(p)?.references);
            }
        }
        Query::Requisites => out = store.closure(paths)?,
        Query::Referrers => {
            let wanted: BTreeSet<&StorePath> = paths.iter().collect();
            for p in paths {
                info(p)?;
            }
            for candidate in store.valid_paths()? {
                let refs = info(&candidate)?.references;
                if refs.iter().any(|r| wanted.contains(r)) {
                    out.insert(candidate);
                }
            }
        }
    }
    Ok(out)
}

#[derive(Clone, Copy)]
pub enum Query {
    References,
    Referrers,
    Requisites,
}
