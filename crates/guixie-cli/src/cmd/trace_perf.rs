//! `guixie build --trace=perf`: each target rebuilt with its builder under `perf record`
//! and `perf stat`, inside the sandbox (the tool its own store item, as for `guixie run
//! --trace=perf`), so that every process of the build is counted and sampled; `perf
//! script` runs there too, after the build, where the build's programs are. The rebuild is
//! compared with the build and never registered; the report is a `guixie.perf-report/1`
//! with the comparison and the flame graph of the whole build.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Arc;

use guixie_build::builder::{InsideTrace, Trace};
use guixie_build::container::EXCHANGE_DIR;
use guixie_introspect::perf;
use guixie_introspect::report::BuildCheck;
use guixie_store::{safe_fs, LocalStore, PathInfoQuery as _, TextItem};

use super::build::{prepare, realise, BuildArgs};
use super::run_trace::perf_graph;
use super::run_trace::{RunTracer, Tool};
use crate::Context;

/// Run by the tool's own shell: the builder (`"$@"`) under `perf stat` under `perf
/// record`, then `perf script`, keeping the builder's status. `$1`–`$3` are the tool's
/// loader, its library path and perf.
const SCRIPT: &str = r#"L=$1 LP=$2 P=$3; shift 3
"$L" --library-path "$LP" "$P" RECORD "$L" --library-path "$LP" "$P" STAT "$@"
s=$?
"$L" --library-path "$LP" "$P" script -f -i DATA > SCRIPT_OUT
exit $s"#;

fn quoted(args: &[String]) -> String {
    args.iter()
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn run(ctx: &Context, store: &Arc<LocalStore>, args: &BuildArgs) -> anyhow::Result<ExitCode> {
    let (drvs, builder) = prepare(ctx, store, args)?;
    realise(ctx, store, &builder, &drvs, args)?;
    let _gc = store.gc_guard()?;
    let sd = store.store_dir().clone();
    let tool = Tool::take(store, &RunTracer::Perf.packages())?;
    let inside = |name: &str| format!("{EXCHANGE_DIR}/{name}");
    let script = SCRIPT
        .replace("RECORD", &quoted(&perf::record_args(&inside("perf.data"))))
        .replace("STAT", &quoted(&perf::stat_args(&inside("stat.csv"))))
        .replace("DATA", &inside("perf.data"))
        .replace("SCRIPT_OUT", &inside("script.txt"));
    let (loader, mut wrap) = tool.command(
        "dash",
        vec![
            "-c".into(),
            script,
            "guixie-perf".into(),
            tool.loader.clone(),
            tool.library_path.clone(),
            format!("{}/bin/perf", tool.usr),
        ],
    );
    wrap.insert(0, loader);
    let mut all_equal = true;
    for drv in &drvs {
        let exchange = store.build_area()?;
        let trace = Trace::Inside(InsideTrace {
            inputs: vec![(store.real_path(&tool.item), sd.display(&tool.item).into())],
            exchange: (exchange.clone(), EXCHANGE_DIR.into()),
            env: vec![],
            wrap: wrap.clone(),
            debugger: false,
        });
        let traced = builder
            .check_traced(drv, &trace)
            .map_err(anyhow::Error::from)
            .and_then(|t| {
                let counters = safe_fs::read_capped_written(&exchange.join("stat.csv"), 1 << 20)
                    .map_err(|e| anyhow::anyhow!("perf stat's counters: {e}"))?;
                let counters = perf::parse_stat_csv(&String::from_utf8_lossy(&counters));
                let graph = perf_graph::flame_graph(&exchange.join("script.txt"), drv.name());
                Ok((t, counters, graph))
            });
        let _ = safe_fs::remove_tree(&exchange);
        let (traced, counters, graph) = traced?;
        let (outputs, differences) = super::trace::compared(&sd, &traced);
        let shown = sd.display(drv);
        let (mut report, references) =
            perf_graph::report(store, &tool, drv, &shown, &[], None, counters, graph)?;
        let equal = differences.is_empty();
        all_equal &= equal;
        report.build = Some(BuildCheck {
            outputs,
            outputs_equal: equal,
            differences,
            error: None,
        });
        let name = format!("{}-perf.json", drv.name().trim_end_matches(".drv"));
        let mut references: BTreeSet<_> = references;
        references.insert(tool.item.clone());
        let item = store
            .add_texts(&[TextItem::text(
                &name,
                serde_json::to_vec_pretty(&report)?,
                references,
            )])?
            .remove(0);
        store.add_root(&format!("report-{}", item.hash_part()), &item)?;
        println!("{}", sd.display(&item));
        eprintln!("{}", super::report::perf_summary(&report));
    }
    Ok(if all_equal {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
