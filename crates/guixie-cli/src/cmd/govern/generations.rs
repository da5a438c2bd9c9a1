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

/// Where an extension's output keeps its module: `share/guixie/ext/NAME.scm`.
pub fn extension_module(
    store: &LocalStore,
    name: &str,
    output: &str,
) -> anyhow::Result<std::path::PathBuf> {
    let path = store.parse_user_path(output)?;
    let file = store
        .real_path(&path)
        .join(format!("share/guixie/ext/{name}.scm"));
    if !file.is_file() {
        anyhow::bail!(
            "{output} has no share/guixie/ext/{name}.scm: an extension's output holds its module there"
        );
    }
    Ok(file)
}

/// Points extension `name` at `output` (a GC root), or removes it.
pub fn set_extension(store: &LocalStore, name: &str, output: Option<&str>) -> anyhow::Result<()> {
    let dir = extensions_dir(store);
    std::fs::create_dir_all(&dir)?;
    let link = dir.join(name);
    match std::fs::remove_file(&link) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(anyhow::Error::new(e).context(format!("removing {}", link.display()))),
    }
    if let Some(output) = output {
        extension_module(store, name, output)?;
        let tmp = dir.join(format!(".{name}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(output, &tmp)
            .and_then(|()| std::fs::rename(&tmp, &link))
            .map_err(|e| anyhow::Error::new(e).context(format!("writing {}", link.display())))?;
        store.add_indirect_root(&link)?;
    }
    Ok(())
}

/// The modules of the extensions the quorum accepted and `govern apply` installed.
pub fn extension_modules(
    store: &LocalStore,
) -> anyhow::Result<std::collections::BTreeMap<String, std::path::PathBuf>> {
    let dir = extensions_dir(store);
    let mut found = std::collections::BTreeMap::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", dir.display()))),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let target = std::fs::read_link(entry.path())?;
        let file = extension_module(store, &name, &target.to_string_lossy())?;
        found.insert(name, file);
    }
    Ok(found)
}

pub fn run_self(ctx: &Context, cmd: SelfCmd) -> anyhow::Result<ExitCode> {
    let store = ctx.open_store()?;
    let profile = profile(&store)?;
    let _lock = profile.lock()?;
    let before = profile.current();
    let after = match cmd {
        SelfCmd::Generations => {
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
            return Ok(ExitCode::SUCCESS);
        }
        SelfCmd::Switch { number } => {
            profile.switch_to(number)?;
            number
        }
        SelfCmd::RollBack => profile.roll_back()?,
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
