//! `guixie install|remove|upgrade PKG…` and `guixie package -i|-r|-u|-m|-l|-S|--roll-back|-d`:
//! profiles of packages with generations (see `guixie-profile`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, FromArgMatches};
use guixie_formats::StorePath;
use guixie_profile::{split_name, Entry, Manifest, Profile, Source, MANIFEST_FILE};
use guixie_store::{LocalStore, PathInfoQuery};

use crate::output::print_json;
use crate::Context;

#[derive(Args)]
pub struct PackageArgs {
    /// The profile [default: ~/.guixie-profile].
    #[arg(short = 'p', long, value_name = "PROFILE")]
    pub profile: Option<PathBuf>,
    /// Install packages: names on the load path, `.scm` files, or store paths.
    #[arg(short = 'i', long = "install", num_args = 1.., value_name = "PKG")]
    pub install: Vec<String>,
    /// Remove packages, by name.
    #[arg(short = 'r', long = "remove", num_args = 1.., value_name = "NAME")]
    pub remove: Vec<String>,
    /// Upgrade these packages (all, without names): evaluate them again where they came from.
    #[arg(short = 'u', long = "upgrade", num_args = 0.., value_name = "NAME")]
    pub upgrade: Option<Vec<String>>,
    /// Make the profile exactly the packages this `.scm` file's value names (a package or a
    /// list of them).
    #[arg(short = 'm', long = "manifest", value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// List the generations and what each holds.
    #[arg(short = 'l', long = "list-generations")]
    pub list_generations: bool,
    /// List what the current generation holds.
    #[arg(short = 'I', long = "list-installed")]
    pub list_installed: bool,
    #[arg(short = 'S', long = "switch-generation", value_name = "N")]
    pub switch_generation: Option<u32>,
    /// Switch to the previous generation.
    #[arg(long = "roll-back")]
    pub roll_back: bool,
    /// Delete these generations (all but the current one, without numbers).
    #[arg(short = 'd', long = "delete-generations", num_args = 0.., value_name = "N")]
    pub delete_generations: Option<Vec<u32>>,
}

/// `install`, `remove`, `upgrade`.
#[derive(Args)]
pub struct ShortArgs {
    #[arg(short = 'p', long, value_name = "PROFILE")]
    pub profile: Option<PathBuf>,
    #[arg(value_name = "PKG")]
    pub packages: Vec<String>,
}

pub fn default_profile() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set; pass -p PROFILE")?;
    Ok(PathBuf::from(home).join(".guixie-profile"))
}

pub fn run(ctx: &Context, args: PackageArgs) -> anyhow::Result<ExitCode> {
    let store = Arc::new(ctx.open_store()?);
    let link = match &args.profile {
        Some(p) => p.clone(),
        None => default_profile()?,
    };
    let profile = Profile::new(&link)?;
    let _lock = profile.lock()?;
    let changes = !args.install.is_empty()
        || !args.remove.is_empty()
        || args.upgrade.is_some()
        || args.manifest.is_some();
    if changes {
        transact(ctx, &store, &profile, &args)?;
    }
    if let Some(n) = args.switch_generation {
        profile.switch_to(n)?;
        eprintln!("switched to generation {n}");
    }
    if args.roll_back {
        let n = profile.roll_back()?;
        eprintln!("switched to generation {n}");
    }
    if let Some(numbers) = &args.delete_generations {
        let numbers: Vec<u32> = if numbers.is_empty() {
            profile
                .generations()?
                .into_iter()
                .filter(|g| !g.current)
                .map(|g| g.number)
                .collect()
        } else {
            numbers.clone()
        };
        profile.delete(&numbers)?;
        for n in &numbers {
            eprintln!("deleted generation {n}");
        }
    }
    if args.list_generations {
        list_generations(ctx, &store, &profile)?;
    }
    if args.list_installed {
        let m = current_manifest(&store, &profile)?;
        if ctx.json {
            print_json(&serde_json::to_value(&m)?)?;
        } else {
            for e in &m.entries {
                println!("{}", entry_line(e));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn install(ctx: &Context, args: ShortArgs) -> anyhow::Result<ExitCode> {
    run(ctx, short(args, |a, p| a.install = p))
}

pub fn remove(ctx: &Context, args: ShortArgs) -> anyhow::Result<ExitCode> {
    run(ctx, short(args, |a, p| a.remove = p))
}

pub fn upgrade(ctx: &Context, args: ShortArgs) -> anyhow::Result<ExitCode> {
    run(ctx, short(args, |a, p| a.upgrade = Some(p)))
}

fn short(args: ShortArgs, set: impl FnOnce(&mut PackageArgs, Vec<String>)) -> PackageArgs {
    let mut p = PackageArgs {
        profile: args.profile,
        install: vec![],
        remove: vec![],
        upgrade: None,
        manifest: None,
        list_generations: false,
        list_installed: false,
        switch_generation: None,
        roll_back: false,
        delete_generations: None,
    };
    set(&mut p, args.packages);
    p
}

/// The store item the profile's current generation is, if there is one.
fn current_item(store: &LocalStore, profile: &Profile) -> anyhow::Result<Option<StorePath>> {
    let Ok(generation) = std::fs::read_link(profile.link()) else {
        return Ok(None);
    };
    let generation = profile
        .link()
        .parent()
        .unwrap_or(Path::new("/"))
        .join(generation);
    let target = std::fs::read_link(&generation)
        .with_context(|| format!("{}: a broken generation link", generation.display()))?;
    Ok(Some(store.parse_user_path(&target.display().to_string())?))
}

/// What the profile's current generation holds (nothing, before the first).
fn current_manifest(store: &LocalStore, profile: &Profile) -> anyhow::Result<Manifest> {
    match current_item(store, profile)? {
        None => Ok(Manifest::new()),
        Some(item) => manifest_of(store, &item),
    }
}

fn manifest_of(store: &LocalStore, item: &StorePath) -> anyhow::Result<Manifest> {
    let file = store.real_path(item).join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "{}: not a profile (no manifest)",
            store.store_dir().display(item)
        )
    })?;
    Ok(Manifest::parse(&text)?)
}

/// What `guixie shell -p PROFILE` enters: the profile's current item, and the search paths
/// its packages declare.
pub fn profile_packages(
    store: &LocalStore,
    link: &Path,
) -> anyhow::Result<(Vec<StorePath>, Vec<guixie_lang::SearchPath>)> {
    let profile = Profile::new(link)?;
    let item = current_item(store, &profile)?
        .with_context(|| format!("{}: no such profile", link.display()))?;
    let paths = manifest_of(store, &item)?
        .entries
        .into_iter()
        .flat_map(|e| e.search_paths)
        .map(|sp| guixie_lang::SearchPath {
            variable: sp.variable,
            files: sp.files,
            separator: sp.separator,
        })
        .collect();
    Ok((vec![item], paths))
}

/// Applies the changes `args` asks for as one new generation.
fn transact(
    ctx: &Context,
    store: &Arc<LocalStore>,
    profile: &Profile,
    args: &PackageArgs,
) -> anyhow::Result<()> {
    // What is built for the new generation is kept from GC until its root exists.
    let _gc = store.gc_guard()?;
    let before = current_manifest(store, profile)?;
    let mut m = before.clone();
    if let Some(file) = &args.manifest {
        m = Manifest::new();
        let file = file.display().to_string();
        for e in resolve(ctx, store, &file)? {
            m.put(e);
        }
    }
    for name in &args.remove {
        if !m.remove(name) {
            anyhow::bail!("{name} is not installed in {}", profile.link().display());
        }
    }
    if let Some(names) = &args.upgrade {
        for old in before
            .entries
            .iter()
            .filter(|e| names.is_empty() || names.contains(&e.name))
        {
            let again = match &old.source {
                Source::Package { name } => name.clone(),
                Source::File { file, .. } => file.clone(),
                Source::Path => continue,
            };
            let fresh = resolve(ctx, store, &again)?;
            if let Some(new) = fresh.into_iter().find(|e| e.name == old.name) {
                if new.path != old.path {
                    eprintln!(
                        "upgrading {} {} → {}",
                        old.name,
                        old.version.as_deref().unwrap_or("?"),
                        new.version.as_deref().unwrap_or("?")
                    );
                    m.put(new);
                }
            }
        }
    }
    for pkg in &args.install {
        for e in resolve(ctx, store, pkg)? {
            eprintln!(
                "installing {} {}",
                e.name,
                e.version.as_deref().unwrap_or("")
            );
            m.put(e);
        }
    }
    if m == before && profile.current().is_some() {
        eprintln!("nothing to be done");
        return Ok(());
    }
    let union = guixie_profile::union(store, &m)?;
    for c in &union.conflicts {
        eprintln!(
            "warning: {} is in two packages: kept {}, not {}",
            c.file, c.kept, c.ignored
        );
    }
    let target = store.store_dir().display(&union.path);
    let n = profile.add(store, &target)?;
    eprintln!("generation {n}: {target}");
    Ok(())
}

/// The profile entries `pkg` names, built (or substituted) as needed.
fn resolve(ctx: &Context, store: &Arc<LocalStore>, pkg: &str) -> anyhow::Result<Vec<Entry>> {
    let sd = store.store_dir().clone();
    if let Some(p) = super::build::item_target(store, pkg)? {
        let (name, version) = split_name(p.name());
        return Ok(vec![Entry {
            name,
            version,
            path: sd.display(&p),
            source: Source::Path,
            search_paths: vec![],
        }]);
    }
    let evaluated = ctx
        .evaluate_target(store, pkg, None)?
        .with_context(|| format!("{pkg}: not a package name, a .scm file or a store path"))?;
    let source = if pkg.ends_with(".scm") {
        Source::File {
            file: std::path::absolute(pkg)?.display().to_string(),
            attr: None,
        }
    } else {
        Source::Package {
            name: pkg.to_owned(),
        }
    };
    let build = build_args(evaluated.iter().map(|e| e.drv_path.clone()).collect())?;
    let outputs = super::build::build_targets(ctx, store, &build)?;
    let mut entries = Vec::new();
    for (outs, e) in outputs.into_iter().zip(&evaluated) {
        let Some(out) = outs.get("out").or_else(|| outs.values().next()) else {
            continue;
        };
        let (name, version) = split_name(out.name());
        entries.push(Entry {
            name,
            version,
            path: sd.display(out),
            source: source.clone(),
            search_paths: e
                .search_paths
                .iter()
                .map(|sp| guixie_profile::SearchPath {
                    variable: sp.variable.clone(),
                    files: sp.files.clone(),
                    separator: sp.separator.clone(),
                })
                .collect(),
        });
    }
    Ok(entries)
}

/// `guixie build`'s defaults, for these targets.
pub fn build_args(targets: Vec<String>) -> anyhow::Result<super::build::BuildArgs> {
    let cmd = <super::build::BuildArgs as Args>::augment_args(clap::Command::new("build"));
    let matches = cmd.try_get_matches_from(["build"])?;
    let mut args = super::build::BuildArgs::from_arg_matches(&matches)?;
    args.targets = targets;
    Ok(args)
}

fn list_generations(ctx: &Context, store: &LocalStore, profile: &Profile) -> anyhow::Result<()> {
    let generations = profile.generations()?;
    let mut json = Vec::new();
    for g in &generations {
        let item = store.parse_user_path(&g.target)?;
        let m = manifest_of(store, &item).unwrap_or_default();
        if ctx.json {
            json.push(serde_json::json!({
                "number": g.number, "current": g.current, "created": g.created,
                "path": g.target, "packages": m.entries,
            }));
            continue;
        }
        println!(
            "Generation {}\t{}{}",
            g.number,
            utc(g.created),
            if g.current { "\t(current)" } else { "" }
        );
        for e in &m.entries {
            println!("  {}", entry_line(e));
        }
        println!();
    }
    if ctx.json {
        print_json(&serde_json::Value::Array(json))?;
    }
    Ok(())
}

/// `name<TAB>version<TAB>out<TAB>path`, as `guix package -I` prints an entry.
fn entry_line(e: &Entry) -> String {
    format!(
        "{}\t{}\tout\t{}",
        e.name,
        e.version.as_deref().unwrap_or(""),
        e.path
    )
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of Unix seconds.
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_utc() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00");
        assert_eq!(super::utc(1_796_132_047), "2026-12-01 13:34:07");
    }
}
