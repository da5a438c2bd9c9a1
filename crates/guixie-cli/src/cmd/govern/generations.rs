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
