//! `guixie report show|json ITEM`: a traced build's report, for people and for machines.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use guixie_introspect::report::{BuildTrace, MAX_REPORT_BYTES};
use guixie_store::PathInfoQuery as _;

use crate::Context;

#[derive(Subcommand)]
pub enum ReportCmd {
    /// A readable summary of a report: its processes, execs, files, probes, connects and
    /// hermeticity violations.
    Show { item: String },
    /// The report's JSON, as it is stored.
    Json { item: String },
}

pub fn run(ctx: &Context, cmd: ReportCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ReportCmd::Show { item } => {
            let report = read(ctx, &item)?;
            show(&report);
        }
        ReportCmd::Json { item } => {
            let report = read(ctx, &item)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A report by its store path (as printed) or a file.
fn read(ctx: &Context, item: &str) -> anyhow::Result<BuildTrace> {
    let store = ctx.open_store()?;
    let file = match store.store_dir().parse_path(item) {
        Ok(path) => store.real_path(&path),
        Err(_) => std::path::PathBuf::from(item),
    };
    let bytes = guixie_store::safe_fs::read_capped(&file, MAX_REPORT_BYTES)
        .with_context(|| item.to_owned())?;
    BuildTrace::parse(&bytes).map_err(|e| anyhow::anyhow!("{item}: {e}"))
}

/// One line: what was traced and the verdicts.
pub fn summary_line(r: &BuildTrace) -> String {
    format!(
        "{}: {} processes, {} execs, {} files read, {} written, {} failed probes, {} connects; outputs {}; {}",
        r.derivation,
        r.strace.processes.len(),
        r.strace.execs.len(),
        r.strace.read.len(),
        r.strace.written.len(),
        r.strace.failed_probes.len(),
        r.strace.connects.len(),
        if r.outputs_equal { "equal to the build's" } else { "DIFFER from the build's" },
        match (r.violations.len(), r.strace.complete) {
            (0, true) => "hermetic".to_owned(),
            (0, false) => "INCOMPLETE TRACE (proves nothing)".to_owned(),
            (n, _) => format!("{n} HERMETICITY VIOLATIONS"),
        }
    )
}

fn show(r: &BuildTrace) {
    println!("{}", summary_line(r));
    for d in &r.differences {
        println!("  differs: {d}");
    }
    if !r.violations.is_empty() {
        println!("\nviolations (read or executed outside what the build declared):");
        for v in &r.violations {
            println!("  {:<5} {}", v.how, v.path);
        }
    }
    println!("\nprocesses:");
    let children = |parent: Option<u32>| {
        r.strace
            .processes
            .iter()
            .filter(move |p| p.parent == parent)
            .collect::<Vec<_>>()
    };
    let mut stack: Vec<(usize, &guixie_introspect::strace::Process)> =
        children(None).into_iter().rev().map(|p| (0, p)).collect();
    while let Some((depth, p)) = stack.pop() {
        let exit = match &p.exit {
            Some(guixie_introspect::strace::Exit::Code(c)) => format!("exit {c}"),
            Some(guixie_introspect::strace::Exit::Signal(s)) => format!("killed by {s}"),
            None => "?".into(),
        };
        let argv: String = p.argv.join(" ").chars().take(100).collect();
        println!(
            "  {:indent$}{} [{exit}] {argv}",
            "",
            p.pid,
            indent = depth * 2
        );
        stack.extend(
            children(Some(p.pid))
                .into_iter()
                .rev()
                .map(|c| (depth + 1, c)),
        );
    }
    if !r.strace.connects.is_empty() {
        println!("\nconnects:");
        for c in &r.strace.connects {
            println!("  {} {} ({})", c.pid, c.address, c.result);
        }
    }
    println!("\nfiles written: {}", r.strace.written.len());
    for f in &r.strace.written {
        println!("  {f}");
    }
    if !r.strace.deleted.is_empty() {
        println!("files deleted: {}", r.strace.deleted.len());
        for f in &r.strace.deleted {
            println!("  {f}");
        }
    }
}
