use std::process::ExitCode;

use anyhow::Context as _;
use guixie_store::PathInfoQuery;

use crate::Context;

/// Prints the log of the last build of a derivation (given as its `.drv` or an output path).
pub fn run(ctx: &Context, target: &str) -> anyhow::Result<ExitCode> {
    let store = ctx.open_store()?;
    let sd = store.store_dir().clone();
    let mut drv = store.parse_user_path(target)?;
    if !drv.name().ends_with(".drv") {
        let info = store
            .path_info(&drv)?
            .with_context(|| format!("{} is not valid", sd.display(&drv)))?;
        drv = info
            .deriver
            .with_context(|| format!("{} has no known deriver", sd.display(&drv)))?;
    }
    let log = store
        .state_dir()
        .join("build-logs")
        .join(format!("{drv}.log.gz"));
    let file = std::fs::File::open(&log)
        .with_context(|| format!("no build log for {} ({})", sd.display(&drv), log.display()))?;
    let mut out = std::io::stdout().lock();
    std::io::copy(&mut flate2::read::GzDecoder::new(file), &mut out)
        .with_context(|| log.display().to_string())?;
    Ok(ExitCode::SUCCESS)
}
