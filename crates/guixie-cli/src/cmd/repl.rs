use std::process::ExitCode;
use std::sync::Arc;

use crate::Context;

pub fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let store = Arc::new(ctx.open_store()?);
    guixie_lang::Evaluator::new(store, ctx.eval_options()).repl()?;
    Ok(ExitCode::SUCCESS)
}
