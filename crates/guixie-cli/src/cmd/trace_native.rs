//! `guixie build --trace=valgrind|gdb`: each target run again with its builder under the
//! tool, inside the sandbox (the tool its own store item, as for `guixie run --trace`), and
//! the tool following every process the builder starts: memcheck writes one XML per
//! process, gdb holds them all as its inferiors until one receives a signal. A target whose
//! build failed is run under the tool all the same, since where it failed is what these
//! tools tell; there is then nothing to compare. The rebuild is never registered; the
//! report is a `guixie.valgrind-report/1` or `guixie.gdb-report/1` with the comparison.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use guixie_build::builder::{BuildError, InsideTrace, Trace, Traced};
use guixie_build::container::EXCHANGE_DIR;
use guixie_formats::StorePath;
use guixie_introspect::report::BuildCheck;
use guixie_introspect::{gdb, valgrind};
use guixie_store::{safe_fs, LocalStore, PathInfoQuery as _, TextItem};

use super::build::{prepare, realise, BuildArgs};
use super::run_trace::{RunTracer, Tool};
use crate::Context;

pub fn run(
    ctx: &Context,
    store: &Arc<LocalStore>,
    args: &BuildArgs,
    tracer: RunTracer,
) -> anyhow::Result<ExitCode> {
    let (drvs, builder) = prepare(ctx, store, args)?;
    let built = realise(ctx, store, &builder, &drvs, args);
    if let Err(e) = &built {
        eprintln!(
            "guixie: {e:#}\nguixie: running what failed under {}",
            tracer.package()
        );
    }
    let _gc = store.gc_guard()?;
    let sd = store.store_dir().clone();
    let tool = Tool::take(store, &tracer.packages())?;
    let mut all_good = built.is_ok();
    for drv in &drvs {
        let exchange = store.build_area()?;
        let derivation = guixie_store::read_derivation(store.as_ref(), drv)?;
        let trace = Trace::Inside(inside_trace(store, &tool, tracer, &exchange, &derivation)?);
        let traced = builder.trace_even_unbuilt(drv, &trace);
        let report = finding(store, &tool, tracer, drv, &exchange, traced);
        let _ = safe_fs::remove_tree(&exchange);
        let (json, summary, equal) = report?;
        all_good &= equal;
        let name = format!(
            "{}-{}.json",
            drv.name().trim_end_matches(".drv"),
            tracer.package()
        );
        let item = store
            .add_texts(&[TextItem::text(
                &name,
                json,
                BTreeSet::from([tool.item.clone()]),
            )])?
            .remove(0);
        store.add_root(&format!("report-{}", item.hash_part()), &item)?;
        println!("{}", sd.display(&item));
        eprintln!("{summary}");
    }
    Ok(if all_good {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The tool in the sandbox, the builder run under it.
fn inside_trace(
    store: &LocalStore,
    tool: &Tool,
    tracer: RunTracer,
    exchange: &Path,
    derivation: &guixie_formats::derivation::Derivation,
) -> anyhow::Result<InsideTrace> {
    let inside = |name: &str| format!("{EXCHANGE_DIR}/{name}");
    let debug = format!("{}/lib/debug", tool.usr);
    let (env, wrap) = match tracer {
        RunTracer::Valgrind => {
            tool.link_debug_files(store, &exchange.join("debug"))?;
            std::fs::create_dir(exchange.join("memcheck"))?;
            // valgrind.bin is started as itself (by the build's loader and C library, which
            // it alone needs), not through the item's loader: a child it follows is
            // started again by the path it finds in /proc/self/exe.
            let mut wrap = vec![format!("{}/bin/valgrind.bin", tool.usr)];
            wrap.extend(valgrind::memcheck_build_args(
                &inside("memcheck"),
                &inside("debug"),
            ));
            let lib = (
                "VALGRIND_LIB".into(),
                format!("{}/libexec/valgrind", tool.usr),
            );
            (vec![lib], wrap)
        }
        RunTracer::Gdb => {
            // gdb starts the builder through this shell; the build gets its own SHELL back.
            let restore = match derivation.env.get(b"SHELL".as_slice()) {
                Some(shell) => format!("set environment SHELL {}", String::from_utf8_lossy(shell)),
                None => "unset environment SHELL".into(),
            };
            let (loader, mut wrap) = tool.command(
                "gdb",
                gdb::build_args(
                    &inside("gdb.log"),
                    &format!("{}/share/gdb", tool.usr),
                    &debug,
                    &[restore],
                ),
            );
            wrap.insert(0, loader);
            (vec![("SHELL".into(), "/bin/sh".into())], wrap)
        }
        RunTracer::Perf | RunTracer::Python => {
            anyhow::bail!("--trace={} is not run here", tracer.package())
        }
    };
    Ok(InsideTrace {
        inputs: vec![(
            store.real_path(&tool.item),
            store.store_dir().display(&tool.item).into(),
        )],
        exchange: (exchange.to_owned(), EXCHANGE_DIR.into()),
        env,
        wrap,
        debugger: tracer == RunTracer::Gdb,
    })
}

/// The report of one traced run (JSON), a line for people, and whether the run gave the
/// build's outputs.
fn finding(
    store: &LocalStore,
    tool: &Tool,
    tracer: RunTracer,
    drv: &StorePath,
    exchange: &Path,
    traced: Result<Traced, BuildError>,
) -> anyhow::Result<(Vec<u8>, String, bool)> {
    let sd = store.store_dir();
    let build = match &traced {
        Ok(t) if t.results.is_empty() => BuildCheck {
            outputs: Default::default(),
            outputs_equal: false,
            differences: vec![],
            error: Some("the build failed: there is nothing to compare with".into()),
        },
        Ok(t) => {
            let (outputs, differences) = super::trace::compared(sd, t);
            BuildCheck {
                outputs,
                outputs_equal: differences.is_empty(),
                differences,
                error: None,
            }
        }
        // The traced run failed: what the tool saw of it is the point.
        Err(e @ (BuildError::Failed { .. } | BuildError::MissingOutput { .. })) => BuildCheck {
            outputs: Default::default(),
            outputs_equal: false,
            differences: vec![],
            error: Some(e.to_string()),
        },
        Err(_) => return Err(traced.unwrap_err().into()),
    };
    let equal = build.outputs_equal;
    let written = |name: &str, limit: u64| -> anyhow::Result<String> {
        let bytes = safe_fs::read_capped_written(&exchange.join(name), limit)
            .with_context(|| format!("reading the tool's {name}"))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    let program = sd.display(drv);
    let tool_item = sd.display(&tool.item);
    match tracer {
        RunTracer::Valgrind => {
            let mut report = valgrind::ValgrindReport {
                schema: valgrind::SCHEMA.into(),
                tool: tool_item,
                program,
                args: vec![],
                exit_code: None,
                memcheck: Default::default(),
                instructions: None,
                processes: vec![],
                omitted_processes: 0,
                unfinished_processes: 0,
                build: Some(build),
            };
            read_processes(&exchange.join("memcheck"), &mut report)?;
            let summary = super::report::valgrind_summary(&report);
            Ok((serde_json::to_vec_pretty(&report)?, summary, equal))
        }
        RunTracer::Gdb => {
            let log = written("gdb.log", gdb::MAX_LOG_BYTES)?;
            let (ending, threads, omitted_threads) =
                gdb::parse_batch_log(&log).context("gdb's log")?;
            let report = gdb::GdbReport {
                schema: gdb::SCHEMA.into(),
                tool: tool_item,
                program,
                args: vec![],
                ending,
                threads,
                omitted_threads,
                crashed: gdb::crashed_process(&log),
                build: Some(build),
            };
            let summary = super::report::gdb_summary(&report);
            Ok((serde_json::to_vec_pretty(&report)?, summary, equal))
        }
        RunTracer::Perf | RunTracer::Python => unreachable!("refused by inside_trace"),
    }
}

/// Every process's XML, in order of pid, at most [`valgrind::MAX_PROCESSES`] read; the
/// directory is the build's to write, so each file is read as written (no link followed)
/// and bounded.
fn read_processes(dir: &Path, report: &mut valgrind::ValgrindReport) -> anyhow::Result<()> {
    // The build has ended (its processes with it) and could have replaced the directory.
    anyhow::ensure!(
        std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()),
        "memcheck's directory {} was replaced by the build",
        dir.display()
    );
    let mut files: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir(dir)
        .with_context(|| format!("memcheck's directory {}", dir.display()))?
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name();
            let pid = name
                .to_str()?
                .strip_prefix("memcheck.")?
                .strip_suffix(".xml")?
                .parse()
                .ok()?;
            Some((pid, e.path()))
        })
        .collect();
    files.sort();
    for (_, file) in files {
        if report.processes.len() >= valgrind::MAX_PROCESSES {
            report.omitted_processes += 1;
            continue;
        }
        let xml = safe_fs::read_capped_written(&file, valgrind::MAX_XML_BYTES)
            .with_context(|| format!("reading {}", file.display()))?;
        match valgrind::parse_memcheck_process(&String::from_utf8_lossy(&xml)) {
            Ok(process) => report.processes.push(process),
            Err(valgrind::ValgrindError::Unfinished) => report.unfinished_processes += 1,
            Err(e) => {
                return Err(e).with_context(|| format!("memcheck's {}", file.display()));
            }
        }
    }
    Ok(())
}
