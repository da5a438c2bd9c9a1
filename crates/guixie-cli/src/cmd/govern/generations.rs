//! `guixie self`: the generations of this instance's guixie. Each applied upgrade adds one
//! (a profile link to the built output, a GC root); switching and rolling back are the local
//! operator's decisions, taken without a quorum but recorded, signed, in the log.

use std::process::ExitCode;

use clap::Subcommand;
use guixie_profile::Profile;
use guixie_store::LocalStore;

use crate::output::print_json;
use crate::Context;

#[derive(Subcommand)]
pub enum SelfCmd {
    /// List the generations accepted upgrades made (the current one marked).
    Generations,
    /// Run generation N.
    Switch { number: u32 },
    /// Run the generation before the current one.
    RollBack,
    /// Print the `.drv` a source tree's `guixie.scm` evaluates to, as `self build` evaluates
    /// it (no load path, no extensions, nothing read outside the tree).
    Eval(crate::cmd::self_build::SelfEvalArgs),
    /// Build the next guixie from a source tree by its own recipe (`guixie.scm`) in the
    /// sandbox; print its store path.
    Build(crate::cmd::self_build::SelfBuildArgs),
    /// Prove the fixpoint: the guixie built from the source evaluates its recipe to the
    /// same derivation and rebuilds it bit for bit (exit 1 if not).
    Check(crate::cmd::self_build::SelfBuildArgs),
}

fn profile(store: &LocalStore) -> anyhow::Result<Profile> {
    let dir = super::journal::dir(store).join("generations");
    std::fs::create_dir_all(&dir)?;
    Ok(Profile::new(dir.join("guixie"))?)
}

/// Makes `output` (a logical store path) the new current generation.
pub fn add(store: &LocalStore, output: &str) -> anyhow::Result<u32> {
    let profile = profile(store)?;
    let _lock = profile.lock()?;
    Ok(profile.add(store, output)?)
}

/// The directory of the links to accepted extensions' outputs, one per name.
fn extensions_dir(store: &LocalStore) -> std::path::PathBuf {
    super::journal::dir(store).join("extensions")
}

/// Where an extension's output keeps its module: `share/guixie/ext/NAME.scm`, a regular
/// file reached through no symbolic link (the output's NAR hash covers a link's text, not
/// what it points to).
pub fn extension_module(
    store: &LocalStore,
    name: &str,
    output: &str,
) -> anyhow::Result<std::path::PathBuf> {
    let path = store.parse_user_path(output)?;
    let mut at = store.real_path(&path);
    if !std::fs::symlink_metadata(&at).is_ok_and(|m| m.is_dir()) {
        anyhow::bail!(
            "{output} is not a directory of its own (a link, or a file): an extension's output holds its module"
        );
    }
    for part in ["share", "guixie", "ext", &format!("{name}.scm")] {
        at.push(part);
        let meta = std::fs::symlink_metadata(&at).map_err(|_| {
            anyhow::anyhow!(
                "{output} has no share/guixie/ext/{name}.scm: an extension's output holds its module there"
            )
        })?;
        if meta.file_type().is_symlink() {
            anyhow::bail!(
                "{output}: {} is a symbolic link; an extension's module is a file of its own output",
                at.display()
            );
        }
    }
    if !std::fs::symlink_metadata(&at)?.is_file() {
        anyhow::bail!("{output}: share/guixie/ext/{name}.scm is not a regular file");
    }
    Ok(at)
}

/// Points extension `name` at `output` (a GC root), or removes it.
pub fn set_extension(store: &LocalStore, name: &str, output: Option<&str>) -> anyhow::Result<()> {
    let dir = extensions_dir(store);
    std::fs::create_dir_all(&dir)?;
    let link = dir.join(name);
    match output {
        Some(output) => {
            extension_module(store, name, output)?;
            let tmp = dir.join(format!(".{name}.tmp"));
            let _ = std::fs::remove_file(&tmp);
            std::os::unix::fs::symlink(output, &tmp)
                .and_then(|()| std::fs::rename(&tmp, &link))
                .map_err(|e| {
                    anyhow::Error::new(e).context(format!("writing {}", link.display()))
                })?;
            store.add_indirect_root(&link)?;
        }
        None => match std::fs::remove_file(&link) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("removing {}", link.display())))
            }
        },
    }
    Ok(())
}

/// The modules of the extensions this instance's quorum accepted (as its journal, replayed,
/// says) whose installed output has the approved NAR hash. A link no accepted extension
/// explains is ignored; one that is wrong is skipped with a warning, so a broken extension
/// never stops evaluation of what does not use it.
pub fn extension_modules(
    store: &LocalStore,
) -> anyhow::Result<std::collections::BTreeMap<String, std::path::PathBuf>> {
    use guixie_store::PathInfoQuery as _;
    let mut found = std::collections::BTreeMap::new();
    // No link, no extension: most evaluations need not replay the journal.
    let linked = std::fs::read_dir(extensions_dir(store))
        .map(|mut d| d.any(|e| e.is_ok_and(|e| !e.file_name().to_string_lossy().starts_with('.'))))
        .unwrap_or(false);
    if !linked {
        return Ok(found);
    }
    let accepted = match accepted_extensions(store) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("guixie: warning: no extension is loaded: the governance journal does not replay: {e:#}");
            return Ok(found);
        }
    };
    for (name, nar_hash) in &accepted {
        let build = ExtensionNarHash(nar_hash);
        let link = extensions_dir(store).join(name);
        let checked = (|| -> anyhow::Result<std::path::PathBuf> {
            let target = std::fs::read_link(&link).map_err(|e| {
                anyhow::anyhow!("{}: {e} (run `guixie govern apply` again)", link.display())
            })?;
            let target = target.to_string_lossy();
            let path = store.parse_user_path(&target)?;
            let info = store
                .path_info(&path)?
                .ok_or_else(|| anyhow::anyhow!("{target} is not valid in this store"))?;
            let nar_hash = info
                .nar_hash
                .to_typed_string(guixie_formats::Encoding::Nix32);
            if nar_hash != build.0.as_str() {
                anyhow::bail!(
                    "{target} has NAR hash {nar_hash}, not the approved {}",
                    build.0
                );
            }
            extension_module(store, name, &target)
        })();
        match checked {
            Ok(file) => {
                found.insert(name.clone(), file);
            }
            Err(e) => eprintln!("guixie: warning: extension {name} is not loaded: {e:#}"),
        }
    }
    Ok(found)
}

struct ExtensionNarHash<'a>(&'a String);

/// The accepted extensions and their approved NAR hashes, as the journal replayed says. The
/// answer is kept in `extensions.cache` under the SHA-256 of the files it was replayed from,
/// so an evaluation replays the journal only after it changed.
fn accepted_extensions(
    store: &LocalStore,
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let dir = super::journal::dir(store);
    let mut hasher = guixie_formats::hash::Hasher::new(guixie_formats::HashAlgo::Sha256);
    // Another guixie may replay by other rules.
    hasher.update(env!("CARGO_PKG_VERSION").as_bytes());
    for file in ["instance.json", "genesis.json", "journal.jsonl"] {
        match std::fs::read(dir.join(file)) {
            Ok(bytes) => {
                hasher.update(&(bytes.len() as u64).to_le_bytes());
                hasher.update(&bytes);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(e) => {
                return Err(anyhow::Error::new(e).context(dir.join(file).display().to_string()))
            }
        }
    }
    let digest = hasher.finish().to_hex();
    let cache = dir.join("extensions.cache");
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Cached {
        journal: String,
        extensions: std::collections::BTreeMap<String, String>,
    }
    if let Ok(bytes) = std::fs::read(&cache) {
        if let Ok(c) = serde_json::from_slice::<Cached>(&bytes) {
            if c.journal == digest {
                return Ok(c.extensions);
            }
        }
    }
    let Some(instance) = super::journal::Journal::read(store)? else {
        return Ok(Default::default());
    };
    let extensions: std::collections::BTreeMap<String, String> = instance
        .extensions
        .iter()
        .map(|(name, b)| (name.clone(), b.nar_hash.clone()))
        .collect();
    // A cache that cannot be written costs only time.
    let tmp = dir.join(format!(".extensions.cache.{}", std::process::id()));
    let written = serde_json::to_vec(&Cached {
        journal: digest,
        extensions: extensions.clone(),
    })
    .map_err(std::io::Error::other)
    .and_then(|bytes| std::fs::write(&tmp, bytes))
    .and_then(|()| std::fs::rename(&tmp, &cache));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(extensions)
}

pub fn run_self(ctx: &Context, cmd: SelfCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        SelfCmd::Eval(args) => crate::cmd::self_build::run_eval(ctx, args),
        SelfCmd::Build(args) => crate::cmd::self_build::run_build(ctx, args),
        SelfCmd::Check(args) => crate::cmd::self_build::run_check(ctx, args),
        SelfCmd::Generations => list_generations(ctx),
        SelfCmd::Switch { number } => switch(ctx, Some(number)),
        SelfCmd::RollBack => switch(ctx, None),
    }
}

fn list_generations(ctx: &Context) -> anyhow::Result<ExitCode> {
    let store = ctx.open_store()?;
    let profile = profile(&store)?;
    let _lock = profile.lock()?;
    let generations = profile.generations()?;
    if ctx.json {
        let list: Vec<_> = generations
            .iter()
            .map(|g| serde_json::json!({"number": g.number, "path": g.target, "current": g.current, "created": g.created}))
            .collect();
        print_json(&serde_json::Value::Array(list))?;
    } else if generations.is_empty() {
        println!("no generations: no upgrade has been applied");
    } else {
        for g in generations {
            let mark = if g.current { " (current)" } else { "" };
            println!("{:>4}  {}{mark}", g.number, g.target);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Switches to generation `number`, or rolls back to the one before the current one.
fn switch(ctx: &Context, number: Option<u32>) -> anyhow::Result<ExitCode> {
    let store = ctx.open_store()?;
    let profile = profile(&store)?;
    let _lock = profile.lock()?;
    let before = profile.current();
    let after = match number {
        Some(number) => {
            profile.switch_to(number)?;
            number
        }
        None if before.is_none() => {
            anyhow::bail!(
                "no generations: no upgrade has been applied, so there is nothing to roll back"
            )
        }
        None => profile.roll_back()?,
    };
    let key = crate::cmd::evidence::builder_key(ctx, &store)?;
    let target = profile
        .generations()?
        .into_iter()
        .find(|g| g.number == after)
        .map(|g| g.target)
        .unwrap_or_default();
    let index = super::journal::append_record(
        &store,
        &key,
        &serde_json::json!({
            "generation": {"from": before, "to": after, "path": target},
            "time": ctx.clock().unix_seconds(),
        }),
    )?;
    println!(
        "switched from generation {} to {after} ({target}); recorded as log entry {index}",
        before.map_or("none".into(), |b| b.to_string())
    );
    Ok(ExitCode::SUCCESS)
}
