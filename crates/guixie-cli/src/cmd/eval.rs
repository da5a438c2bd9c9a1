use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use guixie_lang::{EvalOptions, Evaluator};

use super::Collision;
use crate::output::print_json;
use crate::Context;

#[derive(Args)]
pub struct EvalArgs {
    /// A Scheme file; its last value (or the variable given with -A) names the derivations.
    #[arg(required_unless_present = "expr", conflicts_with = "expr")]
    file: Option<PathBuf>,
    /// Evaluate this expression instead of a file.
    #[arg(short = 'e', long = "expr", value_name = "EXPR")]
    expr: Option<String>,
    /// The variable of FILE to evaluate instead of its last value.
    #[arg(short = 'A', long = "attr", value_name = "NAME", requires = "file")]
    attr: Option<String>,
    /// Stop evaluating user code after this many seconds.
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    max_eval_seconds: f64,
    /// How inputs with equal modulo hashes combine (see `guixie drv --help`).
    #[arg(long, value_enum, default_value_t = Collision::Merge)]
    collision: Collision,
    /// Evaluate even if the file and everything it uses are unchanged since the last time.
    #[arg(long)]
    no_eval_cache: bool,
}

pub fn run(ctx: &Context, args: EvalArgs) -> anyhow::Result<ExitCode> {
    let store = Arc::new(ctx.open_store()?);
    let options = EvalOptions {
        max_eval_seconds: args.max_eval_seconds,
        collision: args.collision.into(),
        use_cache: !args.no_eval_cache,
        ..ctx.eval_options(&store)?
    };
    let evaluator = Evaluator::new(store, options);
    let evaluated = match (&args.file, &args.expr) {
        (Some(file), _) => evaluator.eval_file(file, args.attr.as_deref())?,
        (None, Some(expr)) => evaluator.eval_expr(expr)?,
        (None, None) => unreachable!("clap requires one"),
    };
    if ctx.json {
        let items: Vec<_> = evaluated
            .iter()
            .map(|e| serde_json::json!({"name": e.name, "drvPath": e.drv_path, "outputs": e.outputs}))
            .collect();
        print_json(&serde_json::Value::Array(items))?;
    } else {
        use std::io::Write;
        let mut out = crate::output::stdout();
        for e in &evaluated {
            writeln!(out, "{}", e.drv_path)?;
        }
        out.flush()?;
    }
    if evaluated.is_empty() {
        eprintln!("guixie: the evaluated value contains no derivation");
    }
    Ok(ExitCode::SUCCESS)
}
