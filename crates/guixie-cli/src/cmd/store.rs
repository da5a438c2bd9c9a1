use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use guixie_store::PathInfoQuery;

use crate::output::print_json;
use crate::Context;

#[derive(Subcommand)]
pub enum StoreCmd {
    /// Add a file or tree as a NAR-hashed source path (like `nix-store --add`); prints its path.
    Add {
        path: PathBuf,
        /// Store path name [default: the file name].
        #[arg(long)]
        name: Option<String>,
        /// Record valid store paths whose hashes occur in the contents as references.
        #[arg(long)]
        scan_references: bool,
    },
    /// Show what the store records for paths (logical, physical or `<hash>-<name>`). With
    /// `--json`: an object for one path, an array for several.
    Info {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// List valid paths (with --roots: the GC roots and what each keeps).
    Ls {
        #[arg(long)]
        roots: bool,
    },
    /// Re-hash every valid path; exit 1 if any is missing or modified.
    Verify,
    /// Register PATH as a GC root called NAME.
    AddRoot { name: String, path: String },
    /// List GC roots.
    Roots,
}

#[derive(Args)]
pub struct GcArgs {
    /// Report what would be deleted without deleting.
    #[arg(long)]
    dry_run: bool,
    /// Print the references of these paths (and collect nothing).
    #[arg(long, value_name = "PATH", num_args = 1.., group = "query")]
    references: Vec<String>,
    /// Print the valid paths that refer to these paths (and collect nothing).
    #[arg(long, value_name = "PATH", num_args = 1.., group = "query")]
    referrers: Vec<String>,
    /// Print the closures of these paths (and collect nothing).
    #[arg(long, value_name = "PATH", num_args = 1.., group = "query")]
    requisites: Vec<String>,
}

pub fn run(ctx: &Context, cmd: StoreCmd) -> anyhow::Result<ExitCode> {
    let store = ctx.open_store()?;
    let sd = store.store_dir().clone();
    match cmd {
        StoreCmd::Add {
            path,
            name,
            scan_references,
        } => {
            let name = match name {
                Some(n) => n,
                None => path
                    .file_name()
                    .with_context(|| format!("{} has no file name; pass --name", path.display()))?
                    .to_string_lossy()
                    .into_owned(),
            };
            let info = store.add_path(&path, &name, scan_references)?;
            if ctx.json {
                print_json(&info.to_json(&sd))?;
            } else {
                println!("{}", sd.display(&info.path));
            }
        }
        StoreCmd::Info { paths } => {
            let mut infos = Vec::new();
            for path in &paths {
                let p = store.parse_user_path(path)?;
                infos.push(
                    store
                        .path_info(&p)?
                        .with_context(|| format!("{} is not valid in the store", sd.display(&p)))?,
                );
            }
            if ctx.json {
                let mut all: Vec<_> = infos.iter().map(|i| i.to_json(&sd)).collect();
                print_json(&if all.len() == 1 {
                    all.remove(0)
                } else {
                    serde_json::Value::Array(all)
                })?;
            }
            for (i, info) in infos.iter().enumerate().filter(|_| !ctx.json) {
                if i > 0 {
                    println!();
                }
                println!("path:       {}", sd.display(&info.path));
                println!("real path:  {}", store.real_path(&info.path).display());
                println!("nar hash:   {}", info.nar_hash);
                println!("nar size:   {}", info.nar_size);
                for r in &info.references {
                    println!("reference:  {}", sd.display(r));
                }
                if let Some(d) = &info.deriver {
                    println!("deriver:    {}", sd.display(d));
                }
                for s in &info.signatures {
                    println!("signature:  {s}");
                }
                println!("registered: {}", info.registration_time);
            }
        }
        StoreCmd::Ls { roots: true } => {
            let roots = store.roots_detailed()?;
            if ctx.json {
                print_json(&serde_json::json!(roots
                    .iter()
                    .map(|(name, link, p)| serde_json::json!({
                        "root": name, "link": link, "path": sd.display(p),
                    }))
                    .collect::<Vec<_>>()))?;
            } else {
                for (name, link, p) in &roots {
                    match link {
                        Some(l) => println!("{} -> {}  (root {name})", l.display(), sd.display(p)),
                        None => println!("{name} -> {}", sd.display(p)),
                    }
                }
            }
        }
        StoreCmd::Ls { roots: false } => {
            let paths = store.valid_paths()?;
            if ctx.json {
                print_json(&serde_json::json!(paths
                    .iter()
                    .map(|p| sd.display(p))
                    .collect::<Vec<_>>()))?;
            } else {
                for p in paths {
                    println!("{}", sd.display(&p));
                }
            }
        }
        StoreCmd::Verify => {
            let (checked, problems) = store.verify()?;
            if ctx.json {
                print_json(&serde_json::json!({
                    "checked": checked,
                    "problems": problems.iter().map(|p| p.to_json()).collect::<Vec<_>>(),
                }))?;
            } else {
                for p in &problems {
                    println!("{p}");
                }
                eprintln!("checked {checked} paths, {} problem(s)", problems.len());
            }
            if !problems.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
        StoreCmd::AddRoot { name, path } => {
            let p = store.parse_user_path(&path)?;
            if !store.is_valid(&p)? {
                anyhow::bail!("{} is not valid in the store", sd.display(&p));
            }
            let link = store.add_root(&name, &p)?;
            println!("{}", link.display());
        }
        StoreCmd::Roots => {
            let roots = store.roots()?;
            if ctx.json {
                let v: serde_json::Map<_, _> = roots
                    .iter()
                    .map(|(n, p)| (n.clone(), sd.display(p).into()))
                    .collect();
                print_json(&serde_json::Value::Object(v))?;
            } else {
                for (n, p) in roots {
                    println!("{n} -> {}", sd.display(&p));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn gc(ctx: &Context, args: GcArgs) -> anyhow::Result<ExitCode> {
    let store = ctx.open_store()?;
    use super::size::Query;
    for (paths, what) in [
        (&args.references, Query::References),
        (&args.referrers, Query::Referrers),
        (&args.requisites, Query::Requisites),
    ] {
        if paths.is_empty() {
            continue;
        }
        let parsed = paths
            .iter()
            .map(|p| store.parse_user_path(p))
            .collect::<Result<Vec<_>, _>>()?;
        let sd = store.store_dir();
        let found = super::size::query(&store, &parsed, what)?;
        if ctx.json {
            print_json(&serde_json::json!(found
                .iter()
                .map(|p| sd.display(p))
                .collect::<Vec<_>>()))?;
        } else {
            for p in &found {
                println!("{}", sd.display(p));
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report = store.gc(args.dry_run)?;
    if ctx.json {
        print_json(&report.to_json())?;
    } else {
        let verb = if args.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        for p in &report.deleted {
            println!("{verb} {p}");
        }
        for s in &report.stray {
            println!("{verb} stray entry {s}");
        }
        eprintln!(
            "{verb} {} path(s), {} NAR bytes; {} stray entr(ies)",
            report.deleted.len(),
            report.freed_nar_bytes,
            report.stray.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
