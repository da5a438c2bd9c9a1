use std::process::ExitCode;
use std::sync::Arc;

use guixie_build::{BuildOptions, Builder};
use guixie_formats::StorePath;
use guixie_store::PathInfoQuery;

use crate::Context;

/// Prints the derivation graph of the targets (`.scm` files or `.drv` paths) in Graphviz DOT,
/// as `guix graph` does: an edge from each derivation to each of its inputs.
pub fn run(ctx: &Context, targets: &[String], attr: Option<&str>) -> anyhow::Result<ExitCode> {
    let store = Arc::new(ctx.open_store()?);
    let sd = store.store_dir().clone();
    let mut drvs: Vec<StorePath> = Vec::new();
    for t in targets {
        if let Some(evaluated) = ctx.evaluate_target(&store, t, attr)? {
            for e in evaluated {
                drvs.push(sd.parse_path(&e.drv_path)?);
            }
        } else {
            drvs.push(store.parse_user_path(t)?);
        }
    }
    let plan = Builder::new(&store, BuildOptions::default(), ctx.clock()).plan(&drvs)?;
    let mut out = String::from("digraph \"guixie\" {\n");
    for (path, drv) in &plan {
        let id = path.hash_part();
        let label = path.name().trim_end_matches(".drv");
        out.push_str(&format!(
            "  \"{id}\" [label = \"{label}\", shape = box, fontname = sans];\n"
        ));
        for input in drv.input_drvs.keys() {
            out.push_str(&format!("  \"{id}\" -> \"{}\";\n", input.hash_part()));
        }
    }
    out.push_str("}\n");
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}
