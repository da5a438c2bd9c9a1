//! `guixie build --trace=strace|python` (perf, valgrind and gdb have modules of their own): the targets are built as usual, then rebuilt under
//! the tool and compared with the build; the report becomes a store item of its own
//! (`docs/introspection.md`). strace watches from outside the sandbox, and its report has a
//! hermeticity verdict; the Python tracer is loaded by every Python process of the build.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use guixie_build::builder::{InsideTrace, Trace, Traced};
use guixie_build::container::EXCHANGE_DIR;
use guixie_formats::StoreDir;
use guixie_introspect::hermetic::{violations, Allowed};
use guixie_introspect::report::{BuildTrace, SCHEMA};
use guixie_introspect::strace::{Parser, TraceOptions};
use guixie_store::{LocalStore, PathInfoQuery as _, TextItem};

use super::build::{prepare, realise, BuildArgs};
use super::run_trace::RunTracer;
use crate::output::print_json;
use crate::Context;

pub fn run(ctx: &Context, store: &Arc<LocalStore>, args: &BuildArgs) -> anyhow::Result<ExitCode> {
    match args.trace.as_deref() {
        Some("python") => return run_python(ctx, store, args),
        Some("perf") => return super::trace_perf::run(ctx, store, args),
        Some("valgrind") => return super::trace_native::run(ctx, store, args, RunTracer::Valgrind),
        Some("gdb") => return super::trace_native::run(ctx, store, args, RunTracer::Gdb),
        _ => {}
    }
    let (drvs, builder) = prepare(ctx, store, args)?;
    realise(ctx, store, &builder, &drvs, args)?;
    let sd = store.store_dir().clone();
    let dir = store.state_dir().join("trace");
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let mut reports = Vec::new();
    let mut traced_runs = Vec::new();
    let mut all_good = true;
    for drv in &drvs {
        let output = dir.join(format!("{}.strace", drv.hash_part()));
        let _ = std::fs::remove_file(&output);
        let traced = builder
            .check_traced(
                drv,
                &Trace::Strace {
                    output: output.clone(),
                },
            )
            .map_err(anyhow::Error::from);
        let parsed = traced.and_then(|t| {
            let report = read_trace(&output, &t)?;
            Ok((t, report))
        });
        let _ = std::fs::remove_file(&output);
        let (traced, strace_report) = parsed?;
        let allowed = Allowed {
            dirs: traced.visible.clone(),
        }
        .with_sandbox_fixed();
        let found = violations(&strace_report, &allowed);
        let (outputs, differences) = compared(&sd, &traced);
        let report = BuildTrace {
            schema: SCHEMA.into(),
            tool: "strace".into(),
            derivation: sd.display(drv),
            outputs,
            outputs_equal: differences.is_empty(),
            differences,
            strace: strace_report,
            violations: found,
        };
        all_good &= report.outputs_equal && report.violations.is_empty() && report.strace.complete;
        let json = serde_json::to_vec_pretty(&report)?;
        traced_runs.push((drv, traced, json));
        reports.push(report);
    }
    // All reports in one batch (one sync), each a GC root, then the traced rebuilds attested
    // in one batch of the log.
    let items: Vec<TextItem> = traced_runs
        .iter()
        .map(|(drv, _, json)| {
            let name = format!("{}-strace.json", drv.name().trim_end_matches(".drv"));
            TextItem::text(&name, json.clone(), Default::default())
        })
        .collect();
    let paths = store.add_texts(&items)?;
    for p in &paths {
        store.add_root(&format!("report-{}", p.hash_part()), p)?;
    }
    if args.flags.attests() {
        let equal: Vec<_> = traced_runs
            .iter()
            .zip(&reports)
            // Only a complete, hermetic trace of a run that gave the same outputs is evidence.
            .filter(|(_, r)| r.outputs_equal && r.violations.is_empty() && r.strace.complete)
            .map(|(run, _)| run)
            .collect();
        attest_traced(ctx, store, &equal)?;
    }
    let reports: Vec<(BuildTrace, String)> = reports
        .into_iter()
        .zip(&paths)
        .map(|(r, p)| (r, sd.display(p)))
        .collect();
    if ctx.json {
        print_json(&serde_json::Value::Array(
            reports
                .iter()
                .map(|(r, path)| {
                    serde_json::json!({
                        "derivation": r.derivation,
                        "report": path,
                        "outputsEqual": r.outputs_equal,
                        "violations": r.violations,
                    })
                })
                .collect(),
        ))?;
    } else {
        for (r, path) in &reports {
            println!("{path}");
            eprintln!("{}", super::report::summary_line(r));
        }
    }
    Ok(if all_good {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The traced run's outputs (name → path) and the files that differ from the build's.
pub(super) fn compared(sd: &StoreDir, traced: &Traced) -> (BTreeMap<String, String>, Vec<String>) {
    let outputs = traced
        .results
        .iter()
        .map(|r| (r.output.clone(), sd.display(&r.path)))
        .collect();
    let differences = traced
        .results
        .iter()
        .flat_map(|r| {
            r.differences
                .iter()
                .map(|d| format!("{}: {d}", sd.display(&r.path)))
        })
        .collect();
    (outputs, differences)
}

/// `--trace=python`: each target rebuilt with the tracer in every Python process; the
/// report is a `guixie.python-report/1` with the comparison. Not attested: nothing in it
/// speaks for the build's isolation.
fn run_python(
    ctx: &Context,
    store: &Arc<LocalStore>,
    args: &BuildArgs,
) -> anyhow::Result<ExitCode> {
    use super::run_trace::python::{read_traces, tracer_env, tracer_item, write_user_site};
    use guixie_introspect::python::PythonReport;
    use guixie_introspect::report::BuildCheck;
    let (drvs, builder) = prepare(ctx, store, args)?;
    realise(ctx, store, &builder, &drvs, args)?;
    // The tracer's item stays until the reports that reference it are rooted.
    let _gc = store.gc_guard()?;
    let sd = store.store_dir().clone();
    let tracer = tracer_item(store)?;
    let mut reports = Vec::new();
    for drv in &drvs {
        let exchange = store.build_area()?;
        write_user_site(&exchange, &sd.display(&tracer))?;
        let trace = Trace::Inside(InsideTrace {
            inputs: vec![(store.real_path(&tracer), sd.display(&tracer).into())],
            exchange: (exchange.clone(), EXCHANGE_DIR.into()),
            env: tracer_env(),
            wrap: vec![],
            debugger: false,
        });
        let traced = builder
            .check_traced(drv, &trace)
            .map_err(anyhow::Error::from)
            .and_then(|t| Ok((t, read_traces(&exchange)?)));
        let _ = guixie_store::safe_fs::remove_tree(&exchange);
        let (traced, (processes, omitted_processes)) = traced?;
        let (outputs, differences) = compared(&sd, &traced);
        reports.push(PythonReport {
            schema: guixie_introspect::python::SCHEMA.into(),
            tool: sd.display(&tracer),
            program: sd.display(drv),
            args: vec![],
            exit_code: None,
            processes,
            omitted_processes,
            http: None,
            build: Some(BuildCheck {
                outputs,
                outputs_equal: differences.is_empty(),
                differences,
                error: None,
            }),
        });
    }
    let items = drvs
        .iter()
        .zip(&reports)
        .map(|(drv, r)| {
            let name = format!("{}-python.json", drv.name().trim_end_matches(".drv"));
            Ok(TextItem::text(
                &name,
                serde_json::to_vec_pretty(r)?,
                BTreeSet::from([tracer.clone()]),
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let paths = store.add_texts(&items)?;
    let mut all_equal = true;
    for (r, p) in reports.iter().zip(&paths) {
        store.add_root(&format!("report-{}", p.hash_part()), p)?;
        let equal = r.build.as_ref().is_some_and(|b| b.outputs_equal);
        all_equal &= equal;
        println!("{}", sd.display(p));
        eprintln!("{}", super::report::python_summary(r));
    }
    Ok(if all_equal {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Lines longer than this are skipped (counted as not understood), never held whole.
const MAX_LINE: usize = 1 << 20;

/// The trace, read a line at a time: memory grows with what the report names, not with the
/// trace's size.
fn read_trace(file: &Path, traced: &Traced) -> anyhow::Result<guixie_introspect::StraceReport> {
    let f = std::fs::File::open(file)
        .with_context(|| format!("{}: strace wrote no trace", file.display()))?;
    let mut reader = std::io::BufReader::new(f);
    let mut parser = Parser::new(TraceOptions {
        root_exec: Some(guixie_introspect::path::resolve(
            &traced.workdir,
            &traced.builder,
        )),
        initial_cwd: traced.workdir.clone(),
    });
    let mut line = Vec::new();
    loop {
        line.clear();
        let n =
            std::io::Read::take(&mut reader, MAX_LINE as u64 + 1).read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        if line.last() != Some(&b'\n') && n > MAX_LINE {
            skip_line(&mut reader)?;
            parser.skipped_line();
            continue;
        }
        parser.line(String::from_utf8_lossy(&line).trim_end_matches('\n'));
    }
    Ok(parser.finish())
}

/// Reads past the end of the current line without keeping it.
fn skip_line(reader: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|b| *b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    }
}

/// Signs a statement of each traced rebuild (its outputs are the registered ones, checked)
/// whose evidence names its report by SHA-256, and appends them to the log in one batch.
fn attest_traced(
    ctx: &Context,
    store: &Arc<LocalStore>,
    runs: &[&(&guixie_formats::StorePath, Traced, Vec<u8>)],
) -> anyhow::Result<()> {
    if runs.is_empty() {
        return Ok(());
    }
    let key = super::evidence::builder_key(ctx, store)?;
    let mut owned = Vec::new();
    for (drv, traced, report) in runs {
        let derivation = guixie_store::read_derivation(store.as_ref(), drv)?;
        let outputs: BTreeMap<String, guixie_formats::StorePath> = traced
            .results
            .iter()
            .map(|r| (r.output.clone(), r.path.clone()))
            .collect();
        let evidence = [guixie_attest::EvidenceRef {
            kind: "strace-report".into(),
            sha256: guixie_formats::hash::Hash::digest_of(
                guixie_formats::hash::HashAlgo::Sha256,
                report,
            )
            .to_hex(),
        }];
        owned.push((*drv, derivation, outputs, &traced.log, evidence));
    }
    let records: Vec<guixie_evidence::BuildRecord> = owned
        .iter()
        .map(
            |(drv_path, derivation, outputs, log_file, evidence)| guixie_evidence::BuildRecord {
                drv_path,
                derivation,
                outputs,
                log_file,
                evidence,
            },
        )
        .collect();
    let mut log = guixie_log::FileLog::open(&super::evidence::log_dir(store))?;
    let first = guixie_evidence::attest_builds(
        store.as_ref(),
        &key,
        &records,
        ctx.clock().unix_seconds(),
        &mut log,
    )?;
    if !ctx.json {
        for (i, (drv, ..)) in owned.iter().enumerate() {
            eprintln!(
                "attested the traced rebuild of {} as log entry {}",
                store.store_dir().display(drv),
                first + i as u64
            );
        }
    }
    Ok(())
}
