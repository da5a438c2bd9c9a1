use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use guixie_lang::Evaluator;

use crate::output::print_json;
use crate::Context;

#[derive(Args)]
pub struct ShowArgs {
    /// Package names; without -f they are looked up in the modules on the load path (-L).
    #[arg(required = true)]
    names: Vec<String>,
    /// Look in this file's definitions instead of the load path.
    #[arg(short = 'f', long = "file", value_name = "FILE.scm")]
    file: Option<PathBuf>,
}

/// Prints each package's fields as recutils records, as `guix show` does.
pub fn run(ctx: &Context, args: ShowArgs) -> anyhow::Result<ExitCode> {
    let store = Arc::new(ctx.open_store()?);
    let options = ctx.eval_options(&store)?;
    let load_path_shown = options.load_path_shown();
    let evaluator = Evaluator::new(store, options);
    let mut records = Vec::new();
    let mut warned = std::collections::BTreeSet::new();
    for name in &args.names {
        let (found, broken) = evaluator.describe_packages(Some(name), args.file.as_deref())?;
        // A module that fails to load does not hide the others; it is named (once).
        for b in broken {
            if warned.insert(b.clone()) {
                eprintln!("warning: a module failed to load: {b}");
            }
        }
        if found.is_empty() {
            let place = match &args.file {
                Some(f) => f.display().to_string(),
                None => format!("the load path ({load_path_shown})"),
            };
            anyhow::bail!("no package named {name:?} in {place}");
        }
        records.extend(found);
    }
    if ctx.json {
        let items: Vec<serde_json::Value> = records
            .iter()
            .map(|fields| {
                serde_json::Value::Object(
                    fields
                        .iter()
                        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                        .collect(),
                )
            })
            .collect();
        print_json(&serde_json::Value::Array(items))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = crate::output::stdout();
    for (i, fields) in records.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        for (k, v) in fields {
            // recutils: continuation lines start with "+ ".
            writeln!(out, "{k}: {}", v.replace('\n', "\n+ "))?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
