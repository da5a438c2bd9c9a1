use std::process::ExitCode;
use std::sync::Arc;

use crate::Context;

pub fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let store = Arc::new(ctx.open_store()?);
    let options = ctx.eval_options(&store)?;
    guixie_lang::Evaluator::new(store, options).repl()?;
    Ok(ExitCode::SUCCESS)
}
