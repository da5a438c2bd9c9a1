use std::process::ExitCode;
use std::sync::Arc;

use crate::Context;

pub fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let store = Arc::new(ctx.open_store()?);
    guixie_lang::Evaluator::new(store, guixie_lang::EvalOptions::default()).repl()?;
    Ok(ExitCode::SUCCESS)
}
